// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ArbExecutor} from "../../src/ArbExecutor.sol";
import {TestBase} from "../Vm.sol";

/// Runs against a fork of the mevsuite devnet (real Uniswap V2/V3 and Aave V3 bytecode):
/// `forge test --fork-url http://127.0.0.1:<port> --match-path 'test/fork/*'` with the addresses in env vars
/// (tests/contracts/test_forge.py sets them from the devnet's address book).

interface IERC20T {
    function balanceOf(address) external view returns (uint256);
    function transfer(address, uint256) external returns (bool);
}

interface IWETHT is IERC20T {
    function deposit() external payable;
}

interface IPairT {
    function token0() external view returns (address);
    function getReserves() external view returns (uint112, uint112, uint32);
    function swap(uint256, uint256, address, bytes calldata) external;
}

interface IPoolT {
    function token0() external view returns (address);
    function fee() external view returns (uint24);
    function swap(address, bool, int256, uint160, bytes calldata) external returns (int256, int256);
}

interface IAaveConfiguratorT {
    function setReserveFlashLoaning(address asset, bool enabled) external;
}

interface IAaveT {
    function flashLoanSimple(address, address, uint256, bytes calldata, uint16) external;
    function FLASHLOAN_PREMIUM_TOTAL() external view returns (uint128);
}

/// A "pool" that is not one: when swapped on it calls back into the executor as an attacker would.
contract FakePool {
    uint256 public immutable behaviour; // 1: ask too much in the V3 swap callback, 2: call the wrong callback

    constructor(uint256 behaviour_) {
        behaviour = behaviour_;
    }

    function swap(address, bool, int256 amount, uint160, bytes calldata) external returns (int256, int256) {
        if (behaviour == 1) {
            ArbExecutor(payable(msg.sender)).uniswapV3SwapCallback(amount * 1000, 0, "");
        } else {
            ArbExecutor(payable(msg.sender)).uniswapV2Call(msg.sender, uint256(amount), 0, "");
        }
        return (amount, -amount);
    }

    /// Used as a V2 "lender": hands back a tampered plan in the flash callback.
    function swap(uint256 a0, uint256 a1, address to, bytes calldata data) external {
        bytes memory tampered = data;
        tampered[tampered.length - 1] = bytes1(uint8(tampered[tampered.length - 1]) ^ 1);
        ArbExecutor(payable(to)).uniswapV2Call(to, a0, a1, tampered);
    }

    function attack(ArbExecutor exec) external {
        exec.uniswapV3SwapCallback(1 ether, 0, "");
    }
}

contract ArbExecutorForkTest is TestBase {
    ArbExecutor internal exec;
    address internal weth;
    address internal usdc;
    address internal dai;
    address internal v2WethUsdc;
    address internal v2DaiUsdc;
    address internal v2WethDai;
    address internal v3WethUsdc3000;
    address internal v3WethUsdc500;
    address internal v2Lender;
    address internal v3Lender;
    address internal aave;

    uint256 internal constant OWN_FUNDS = 100 ether;
    address internal constant ATTACKER = address(uint160(0xBAD));

    function setUp() public {
        weth = vm.envAddress("MEVSUITE_WETH");
        usdc = vm.envAddress("MEVSUITE_USDC");
        dai = vm.envAddress("MEVSUITE_DAI");
        v2WethUsdc = vm.envAddress("MEVSUITE_V2_WETH_USDC");
        v2DaiUsdc = vm.envAddress("MEVSUITE_V2_DAI_USDC");
        v2WethDai = vm.envAddress("MEVSUITE_V2_WETH_DAI");
        v3WethUsdc3000 = vm.envAddress("MEVSUITE_V3_WETH_USDC_3000");
        v3WethUsdc500 = vm.envAddress("MEVSUITE_V3_WETH_USDC_500");
        v2Lender = vm.envAddress("MEVSUITE_V2_LENDER");
        v3Lender = vm.envAddress("MEVSUITE_V3_LENDER");
        aave = vm.envAddress("MEVSUITE_AAVE_POOL");
        // The devnet lists its reserves with flash loans off (Aave's default); its pool admin turns WETH's on.
        vm.prank(vm.envAddress("MEVSUITE_AAVE_ADMIN"));
        IAaveConfiguratorT(vm.envAddress("MEVSUITE_AAVE_CONFIGURATOR")).setReserveFlashLoaning(weth, true);
        exec = new ArbExecutor(address(this), weth, aave);
        vm.deal(address(this), 10_000 ether);
        IWETHT(weth).deposit{value: 2_000 ether}();
        IWETHT(weth).transfer(address(exec), OWN_FUNDS);
    }

    receive() external payable {}

    // ------------------------------------------------------------------------------------ plan building
    function _header(uint8 mode, uint8 hops, uint256 amountIn, uint256 minProfit, uint256 tip)
        internal
        view
        returns (bytes memory)
    {
        bytes memory h = abi.encodePacked(mode, hops, weth, uint128(amountIn), uint128(minProfit), uint128(tip));
        if (mode == 1) h = abi.encodePacked(h, v2Lender);
        if (mode == 2) h = abi.encodePacked(h, v3Lender);
        if (mode == 1 && IPairT(v2Lender).token0() != weth) h[0] = bytes1(uint8(1) | 0x80);
        if (mode == 2 && IPoolT(v3Lender).token0() != weth) h[0] = bytes1(uint8(2) | 0x80);
        return h;
    }

    function _v2Hop(address pair, address tokenIn, address tokenOut) internal view returns (bytes memory) {
        uint8 flags = IPairT(pair).token0() == tokenIn ? 2 : 0;
        return abi.encodePacked(flags, pair, tokenOut, uint16(30));
    }

    function _v3Hop(address pool, address tokenIn, address tokenOut) internal view returns (bytes memory) {
        uint8 flags = IPoolT(pool).token0() == tokenIn ? 3 : 1;
        return abi.encodePacked(flags, pool, tokenOut, uint160(0));
    }

    /// WETH -> USDC on the V2 pair, USDC -> WETH on the V3 0.3 % pool (V2 then V3).
    function _twoHop(uint8 mode, uint256 amountIn, uint256 minProfit, uint256 tip) internal view returns (bytes memory) {
        return abi.encodePacked(
            _header(mode, 2, amountIn, minProfit, tip), _v2Hop(v2WethUsdc, weth, usdc), _v3Hop(v3WethUsdc3000, usdc, weth)
        );
    }

    /// WETH -> USDC (V3 0.05 %) -> DAI (V2) -> WETH (V2): V3 into a V2 pair, V2 into V2.
    function _threeHop(uint8 mode, uint256 amountIn, uint256 minProfit, uint256 tip) internal view returns (bytes memory) {
        return abi.encodePacked(
            _header(mode, 3, amountIn, minProfit, tip),
            _v3Hop(v3WethUsdc500, weth, usdc),
            _v2Hop(v2DaiUsdc, usdc, dai),
            _v2Hop(v2WethDai, dai, weth)
        );
    }

    // ------------------------------------------------------------------------------------ skewing pools
    /// Sell WETH into a V3 pool (WETH gets cheap there).
    function _skewV3(address pool, uint256 wethIn) internal {
        bool zeroForOne = IPoolT(pool).token0() == weth;
        IPoolT(pool).swap(
            address(this), zeroForOne, int256(wethIn),
            zeroForOne ? 4295128740 : 1461446703485210103287273052203988822378723970341, ""
        );
    }

    function uniswapV3SwapCallback(int256 a0, int256 a1, bytes calldata) external {
        IWETHT(weth).transfer(msg.sender, uint256(a0 > 0 ? a0 : a1));
    }

    /// Sell WETH into a V2 pair.
    function _skewV2(address pair, uint256 wethIn) internal {
        (uint112 r0, uint112 r1,) = IPairT(pair).getReserves();
        bool wethIs0 = IPairT(pair).token0() == weth;
        (uint256 rin, uint256 rout) = wethIs0 ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        uint256 out = wethIn * 997 * rout / (rin * 1000 + wethIn * 997);
        IWETHT(weth).transfer(pair, wethIn);
        IPairT(pair).swap(wethIs0 ? 0 : out, wethIs0 ? out : 0, address(this), "");
    }

    // ------------------------------------------------------------------------------------ profitable cycles
    function _lenderWeth(uint8 mode) internal view returns (address lender) {
        if (mode == 1) lender = v2Lender;
        if (mode == 2) lender = v3Lender;
    }

    function _expectedFee(uint8 mode, uint256 amount) internal view returns (uint256) {
        if (mode == 1) return (amount * 1000 + 996) / 997 - amount;
        if (mode == 2) return (amount * IPoolT(v3Lender).fee() + 1e6 - 1) / 1e6;
        if (mode == 3) return (amount * IAaveT(aave).FLASHLOAN_PREMIUM_TOTAL() + 5000) / 10000;
        return 0;
    }

    function _runProfitable(bytes memory plan, uint8 mode, uint256 amountIn) internal {
        address lender = _lenderWeth(mode);
        uint256 lenderBefore = lender == address(0) ? 0 : IERC20T(weth).balanceOf(lender);
        uint256 before = IERC20T(weth).balanceOf(address(exec));
        uint256 profit = exec.execute(plan);
        uint256 afterBal = IERC20T(weth).balanceOf(address(exec));
        assertGe(profit, 1, "profit");
        assertEq(afterBal - before, profit, "balance change = reported profit");
        if (lender != address(0)) {
            assertEq(IERC20T(weth).balanceOf(lender) - lenderBefore, _expectedFee(mode, amountIn), "lender fee");
        }
    }

    function _twoHopCase(uint8 mode) internal {
        _skewV3(v3WethUsdc3000, 300 ether);
        _runProfitable(_twoHop(mode, 5 ether, 1, 0), mode, 5 ether);
    }

    function _threeHopCase(uint8 mode) internal {
        _skewV2(v2WethDai, 60 ether);
        _runProfitable(_threeHop(mode, 5 ether, 1, 0), mode, 5 ether);
    }

    function test_twoHop_ownBalance() public { _twoHopCase(0); }
    function test_twoHop_v2FlashSwap() public { _twoHopCase(1); }
    function test_twoHop_v3Flash() public { _twoHopCase(2); }
    function test_twoHop_aaveFlashLoan() public { _twoHopCase(3); }
    function test_threeHop_ownBalance() public { _threeHopCase(0); }
    function test_threeHop_v2FlashSwap() public { _threeHopCase(1); }
    function test_threeHop_v3Flash() public { _threeHopCase(2); }
    function test_threeHop_aaveFlashLoan() public { _threeHopCase(3); }

    // ------------------------------------------------------------------------------------ guards
    function test_minProfitNotMetReverts() public {
        // No skew: the cycle loses the pools' fees.
        try exec.execute(_twoHop(0, 5 ether, 0, 0)) {
            revert("a losing cycle went through");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.InsufficientProfit.selector, "losing cycle");
        }
        // Profitable, but not by this much.
        _skewV3(v3WethUsdc3000, 300 ether);
        try exec.execute(_twoHop(3, 5 ether, 1_000 ether, 0)) {
            revert("minProfit ignored");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.InsufficientProfit.selector, "minProfit");
        }
    }

    function test_coinbaseTipFromWeth() public {
        address builder = address(uint160(0xC0FFEE));
        vm.coinbase(builder);
        _skewV3(v3WethUsdc3000, 300 ether);
        uint256 tip = 0.01 ether;
        uint256 wethBefore = IERC20T(weth).balanceOf(address(exec));
        uint256 profit = exec.execute(_twoHop(3, 5 ether, 1, tip));
        assertEq(builder.balance, tip, "coinbase got the tip");
        assertEq(IERC20T(weth).balanceOf(address(exec)) - wethBefore, profit, "profit is after the unwrapped tip");
        assertEq(address(exec).balance, 0, "no ETH left behind");
    }

    function test_coinbaseTipFromEthHeld() public {
        address builder = address(uint160(0xC0FFEE));
        vm.coinbase(builder);
        vm.deal(address(exec), 1 ether);
        _skewV3(v3WethUsdc3000, 300 ether);
        exec.execute(_twoHop(0, 5 ether, 1, 0.25 ether));
        assertEq(builder.balance, 0.25 ether, "coinbase got the tip");
        assertEq(address(exec).balance, 0.75 ether, "tip paid from ETH held");
    }

    function test_nonOwnerCannotStart() public {
        _skewV3(v3WethUsdc3000, 300 ether);
        bytes memory plan = _twoHop(0, 5 ether, 1, 0);
        vm.prank(ATTACKER);
        try exec.execute(plan) {
            revert("non-owner started a run");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.NotOwner.selector, "non-owner");
        }
    }

    function test_ownerWithdrawsTokens() public {
        exec.withdrawToken(weth, ATTACKER, 1 ether);
        assertEq(IERC20T(weth).balanceOf(ATTACKER), 1 ether, "withdrawn to");
        assertEq(IERC20T(weth).balanceOf(address(exec)), OWN_FUNDS - 1 ether, "left");
    }

    // ------------------------------------------------------------------------------------ attacks
    function test_attackerCallsEachCallbackDirectly() public {
        bytes memory plan = _twoHop(1, 5 ether, 0, 0);
        vm.prank(ATTACKER);
        try exec.uniswapV2Call(address(exec), 5 ether, 0, plan) { revert("uniswapV2Call"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "uniswapV2Call"); }
        vm.prank(ATTACKER);
        try exec.uniswapV3SwapCallback(5 ether, -1, "") { revert("uniswapV3SwapCallback"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "v3 swap cb"); }
        vm.prank(ATTACKER);
        try exec.uniswapV3FlashCallback(0, 0, plan) { revert("uniswapV3FlashCallback"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "v3 flash cb"); }
        vm.prank(ATTACKER);
        try exec.executeOperation(weth, 5 ether, 0, address(exec), plan) { revert("executeOperation"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "executeOperation"); }
    }

    function test_attackerFlashLoansThroughRealLendersAreRejected() public {
        bytes memory plan = _twoHop(0, 5 ether, 0, 0);
        // A real V2 pair flash-swapping to the executor calls uniswapV2Call from the pair itself.
        bool wethIs0 = IPairT(v2Lender).token0() == weth;
        vm.prank(ATTACKER);
        try IPairT(v2Lender).swap(wethIs0 ? 1 ether : 0, wethIs0 ? 0 : 1 ether, address(exec), plan) {
            revert("V2 flash swap into the executor accepted");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "v2 flash by attacker");
        }
        // The real Aave pool calling executeOperation for someone else's loan (initiator = attacker).
        vm.prank(ATTACKER);
        try IAaveT(aave).flashLoanSimple(address(exec), weth, 1 ether, plan, 0) {
            revert("Aave flash loan into the executor accepted");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "aave flash by attacker");
        }
        assertEq(IERC20T(weth).balanceOf(address(exec)), OWN_FUNDS, "nothing moved");
    }

    function test_fakePoolCallingBackIsRejected() public {
        FakePool outsider = new FakePool(1);
        try outsider.attack(exec) { revert("fake pool callback accepted"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "outside a run"); }

        // Even inside a run (a fake pool slipped into the route) it can only take the hop's input, and only
        // through the callback we expect.
        FakePool greedy = new FakePool(1);
        bytes memory plan = abi.encodePacked(
            _header(0, 2, 1 ether, 0, 0), uint8(1), address(greedy), usdc, uint160(0), _v3Hop(v3WethUsdc3000, usdc, weth)
        );
        try exec.execute(plan) { revert("greedy fake pool paid"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.OverPayment.selector, "greedy"); }

        FakePool wrongCallback = new FakePool(2);
        plan = abi.encodePacked(
            _header(0, 2, 1 ether, 0, 0), uint8(1), address(wrongCallback), usdc, uint160(0),
            _v3Hop(v3WethUsdc3000, usdc, weth)
        );
        try exec.execute(plan) { revert("wrong callback accepted"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "wrong callback"); }

        // A lender handing back a different plan than the one we gave it.
        FakePool tamperer = new FakePool(0);
        v2Lender = address(tamperer);
        plan = abi.encodePacked(_header(0, 2, 1 ether, 0, 0), _v2Hop(v2WethUsdc, weth, usdc), _v3Hop(v3WethUsdc3000, usdc, weth));
        plan[0] = bytes1(uint8(1));
        bytes memory withLender = abi.encodePacked(_slice(plan, 0, 70), address(tamperer), _slice(plan, 70, plan.length));
        try exec.execute(withLender) { revert("tampered plan accepted"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.BadPlan.selector, "tampered plan"); }
        assertEq(IERC20T(weth).balanceOf(address(exec)), OWN_FUNDS, "nothing moved");
    }

    function _slice(bytes memory b, uint256 from, uint256 to) internal pure returns (bytes memory out) {
        out = new bytes(to - from);
        for (uint256 i = from; i < to; ++i) out[i - from] = b[i];
    }
}
