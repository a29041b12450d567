// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ArbExecutor} from "../src/ArbExecutor.sol";
import {TestBase} from "./Vm.sol";

/// No chain needed: a small world of mock tokens and Uniswap-V2-style pairs with any swap fee (like the V2 forks),
/// plus lenders and an "Aave pool" that call the executor back the wrong way.

contract MockToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        allowance[from][msg.sender] -= amount;
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        return true;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        return true;
    }
}

interface IV2Callee {
    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata data) external;
}

/// Uniswap V2's swap / flash swap / K check, with the fee in bps as a parameter (Uniswap 30, Pancake-style 25 ...).
contract FeePair {
    address public immutable token0;
    address public immutable token1;
    uint256 public immutable feeBps;
    uint112 internal reserve0;
    uint112 internal reserve1;

    constructor(address t0, address t1, uint256 fee) {
        (token0, token1, feeBps) = (t0, t1, fee);
    }

    function sync() external {
        reserve0 = uint112(MockToken(token0).balanceOf(address(this)));
        reserve1 = uint112(MockToken(token1).balanceOf(address(this)));
    }

    function getReserves() external view returns (uint112, uint112, uint32) {
        return (reserve0, reserve1, 0);
    }

    function swap(uint256 out0, uint256 out1, address to, bytes calldata data) external {
        require(out0 > 0 || out1 > 0, "OUT");
        uint256 r0 = reserve0;
        uint256 r1 = reserve1;
        require(out0 < r0 && out1 < r1, "LIQ");
        if (out0 > 0) MockToken(token0).transfer(to, out0);
        if (out1 > 0) MockToken(token1).transfer(to, out1);
        if (data.length > 0) IV2Callee(to).uniswapV2Call(msg.sender, out0, out1, data);
        uint256 b0 = MockToken(token0).balanceOf(address(this));
        uint256 b1 = MockToken(token1).balanceOf(address(this));
        uint256 in0 = b0 > r0 - out0 ? b0 - (r0 - out0) : 0;
        uint256 in1 = b1 > r1 - out1 ? b1 - (r1 - out1) : 0;
        require(in0 > 0 || in1 > 0, "IN");
        require((b0 * 10_000 - in0 * feeBps) * (b1 * 10_000 - in1 * feeBps) >= r0 * r1 * 1e8, "K");
        (reserve0, reserve1) = (uint112(b0), uint112(b1));
    }
}

/// A V2 "lender" that calls uniswapV2Call the way an attacker would (it is the expected caller: the plan names it).
contract EvilV2Lender {
    uint256 public immutable behaviour; // 1: foreign `sender`, 2: lies about the amount, 3: lends nothing

    constructor(uint256 behaviour_) {
        behaviour = behaviour_;
    }

    function swap(uint256 a0, uint256 a1, address to, bytes calldata data) external {
        address sender = behaviour == 1 ? address(0xBAD) : to;
        if (behaviour == 2) a0 += 1;
        ArbExecutor(payable(to)).uniswapV2Call(sender, a0, a1, data);
    }
}

/// A V3 flash "lender" that calls the flash callback twice (the second would be a second repayment).
contract TwiceV3Lender {
    function flash(address to, uint256, uint256, bytes calldata data) external {
        ArbExecutor(payable(to)).uniswapV3FlashCallback(0, 0, data);
        ArbExecutor(payable(to)).uniswapV3FlashCallback(0, 0, data);
    }
}

/// An "Aave pool" (the executor's immutable AAVE_POOL) handing executeOperation a foreign initiator, or a wrong
/// amount, or not calling back at all.
contract EvilAave {
    uint256 public behaviour; // 1: initiator = attacker, 2: amount + 1, 3: no callback

    function setBehaviour(uint256 b) external {
        behaviour = b;
    }

    function flashLoanSimple(address receiver, address asset, uint256 amount, bytes calldata params, uint16) external {
        if (behaviour == 3) return;
        address initiator = behaviour == 1 ? address(0xBAD) : msg.sender;
        if (behaviour == 2) amount += 1;
        ArbExecutor(payable(receiver)).executeOperation(asset, amount, 0, initiator, params);
    }
}

contract ArbExecutorMockWorldTest is TestBase {
    ArbExecutor internal exec;
    MockToken internal a; // the start token (the executor's "WETH")
    MockToken internal b;
    MockToken internal c;
    FeePair internal cheapB; // A/B, 30 bps: B is cheap here
    FeePair internal fairB; // A/B, 25 bps: 1:1
    EvilAave internal aave;

    uint256 internal constant AMOUNT = 1 ether;

    function setUp() public {
        a = new MockToken();
        b = new MockToken();
        c = new MockToken();
        aave = new EvilAave();
        exec = new ArbExecutor(address(this), address(a), address(aave));
        cheapB = _pair(a, b, 30, 1_000 ether, 1_100 ether);
        fairB = _pair(a, b, 25, 1_000 ether, 1_000 ether);
        a.mint(address(exec), 10 ether);
    }

    function _pair(MockToken t0, MockToken t1, uint256 fee, uint256 r0, uint256 r1) internal returns (FeePair p) {
        p = new FeePair(address(t0), address(t1), fee);
        t0.mint(address(p), r0);
        t1.mint(address(p), r1);
        p.sync();
    }

    /// A -> B on cheapB (30 bps), B -> A on fairB (25 bps): ~9 % profit on 1 A.
    function _route() internal view returns (bytes memory) {
        return abi.encodePacked(
            uint8(2), address(cheapB), address(b), uint16(30), uint8(0), address(fairB), address(a), uint16(25)
        );
    }

    function _v2FlashPlan(address lender, uint256 lenderFeeBps) internal view returns (bytes memory) {
        return abi.encodePacked(uint8(1), uint8(2), address(a), uint128(AMOUNT), uint128(1), uint128(0), lender,
            uint16(lenderFeeBps), _route());
    }

    // ------------------------------------------------------------------------------------ V2 flash fee from plan
    function _flashFrom(uint256 pairFeeBps) internal {
        FeePair lender = _pair(a, c, pairFeeBps, 100 ether, 100 ether);
        uint256 before = a.balanceOf(address(exec));
        uint256 profit = exec.execute(_v2FlashPlan(address(lender), pairFeeBps));
        uint256 keep = 10_000 - pairFeeBps;
        uint256 fee = (AMOUNT * 10_000 + keep - 1) / keep - AMOUNT; // the least the pair's K check accepts
        assertEq(a.balanceOf(address(lender)), 100 ether + fee, "lender got exactly its fee");
        assertEq(a.balanceOf(address(exec)) - before, profit, "profit");
        assertGe(profit, 1, "profitable");
    }

    /// A 0.25 % fork pair: repaid ceil(a*10000/9975), not Uniswap's ceil(a*1000/997) (0.05 % too much).
    function test_v2FlashFromA25BpsPair() public {
        _flashFrom(25);
    }

    /// A 1 % pair: a hard-coded 0.3 % repayment would fail its K check.
    function test_v2FlashFromA100BpsPair() public {
        _flashFrom(100);
    }

    function test_v2FlashFeeIsTheOneInThePlan() public {
        // The plan says 25 bps but the pair charges 30: the executor repays too little and the pair refuses.
        FeePair lender = _pair(a, c, 30, 100 ether, 100 ether);
        try exec.execute(_v2FlashPlan(address(lender), 25)) { revert("underpaid flash swap accepted"); }
        catch Error(string memory reason) { assertTrue(keccak256(bytes(reason)) == keccak256("K"), "pair's K check"); }
        // A fee of 100 % or more is a malformed plan.
        try exec.execute(_v2FlashPlan(address(lender), 10_000)) { revert("fee >= 100 % accepted"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.BadPlan.selector, 10), "fee 10000");
        }
    }

    // ------------------------------------------------------------------------------------ callbacks, inside a run
    function test_v2CallbackWithAForeignSenderIsRejected() public {
        EvilV2Lender lender = new EvilV2Lender(1);
        try exec.execute(_v2FlashPlan(address(lender), 30)) { revert("foreign sender accepted"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.BadInitiator.selector, address(0xBAD)), "sender");
        }
    }

    function test_v2LenderLyingAboutTheAmountIsRejected() public {
        EvilV2Lender lender = new EvilV2Lender(2);
        try exec.execute(_v2FlashPlan(address(lender), 30)) { revert("wrong amount accepted"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.BadPlan.selector, 9), "amount");
        }
    }

    function test_v2LenderLendingNothingCannotTakeAnything() public {
        // It calls back correctly but never sent the loan: the route runs on our own A and we "repay" it; the
        // start token's balance check reverts the whole run.
        EvilV2Lender lender = new EvilV2Lender(3);
        uint256 before = a.balanceOf(address(exec));
        try exec.execute(_v2FlashPlan(address(lender), 30)) { revert("phantom loan repaid"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.InsufficientProfit.selector, "phantom loan"); }
        assertEq(a.balanceOf(address(exec)), before, "nothing moved");
    }

    function test_v3FlashCallbackOnlyOnce() public {
        TwiceV3Lender lender = new TwiceV3Lender();
        bytes memory plan = abi.encodePacked(uint8(2), uint8(2), address(a), uint128(AMOUNT), uint128(0), uint128(0),
            address(lender), _route());
        try exec.execute(plan) { revert("second flash callback accepted"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.UnexpectedCaller.selector, address(lender),
                address(0)), "second callback");
        }
    }

    function _aavePlan() internal view returns (bytes memory) {
        return abi.encodePacked(uint8(3), uint8(2), address(a), uint128(AMOUNT), uint128(0), uint128(0), _route());
    }

    function test_aaveCallbackWithAForeignInitiatorIsRejected() public {
        aave.setBehaviour(1);
        try exec.execute(_aavePlan()) { revert("foreign initiator accepted"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.BadInitiator.selector, address(0xBAD)), "init");
        }
        aave.setBehaviour(2);
        try exec.execute(_aavePlan()) { revert("wrong amount accepted"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.BadPlan.selector, 9), "amount");
        }
        aave.setBehaviour(3);
        try exec.execute(_aavePlan()) { revert("missing callback accepted"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.CallbackMissing.selector, address(aave)), "none");
        }
    }
}
