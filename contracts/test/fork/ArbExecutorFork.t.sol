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

/// A V3-like pool that lies: it takes the hop's input through the callback like a real pool, then reports an
/// output of `claim` while sending only `pay` — or reports its output delta with the wrong (positive) sign.
contract LiarPool {
    address public immutable tokenOut;
    uint256 public immutable claim;
    uint256 public immutable pay;
    bool public immutable wrongSign;

    constructor(address tokenOut_, uint256 claim_, uint256 pay_, bool wrongSign_) {
        (tokenOut, claim, pay, wrongSign) = (tokenOut_, claim_, pay_, wrongSign_);
    }

    function swap(address recipient, bool zeroForOne, int256 amount, uint160, bytes calldata)
        external
        returns (int256 d0, int256 d1)
    {
        int256 out = wrongSign ? int256(claim) : -int256(claim);
        (d0, d1) = zeroForOne ? (amount, out) : (out, amount);
        ArbExecutor(payable(msg.sender)).uniswapV3SwapCallback(d0, d1, "");
        if (pay > 0) IERC20T(tokenOut).transfer(recipient, pay);
    }
}

/// A V2-like pair that lies about its reserves (so the executor asks it for a huge output) and sends `pay`.
contract LiarPair {
    address public immutable tokenOut;
    uint256 public immutable pay;
    bool public immutable outIsToken1;

    constructor(address tokenOut_, uint256 pay_, bool outIsToken1_) {
        (tokenOut, pay, outIsToken1) = (tokenOut_, pay_, outIsToken1_);
    }

    function getReserves() external view returns (uint112, uint112, uint32) {
        return outIsToken1 ? (uint112(1), uint112(1e30), uint32(0)) : (uint112(1e30), uint112(1), uint32(0));
    }

    function swap(uint256, uint256, address to, bytes calldata) external {
        if (pay > 0) IERC20T(tokenOut).transfer(to, pay);
    }
}

/// The liar's accomplice, next in the route: a V3-like pool asking, in its swap callback, for everything of the
/// input token the executor holds (up to the hop's input the executor believes in), and sending back `give` of
/// the start token so that the cycle still looks profitable.
contract Drainer {
    address public immutable tokenIn;
    address public immutable tokenOut;
    uint256 public immutable give;

    constructor(address tokenIn_, address tokenOut_, uint256 give_) {
        (tokenIn, tokenOut, give) = (tokenIn_, tokenOut_, give_);
    }

    function swap(address recipient, bool zeroForOne, int256 amount, uint160, bytes calldata)
        external
        returns (int256 d0, int256 d1)
    {
        uint256 ask = IERC20T(tokenIn).balanceOf(msg.sender);
        if (ask > uint256(amount)) ask = uint256(amount);
        (d0, d1) = zeroForOne ? (int256(ask), -int256(give)) : (-int256(give), int256(ask));
        ArbExecutor(payable(msg.sender)).uniswapV3SwapCallback(d0, d1, "");
        IERC20T(tokenOut).transfer(recipient, give);
    }
}

/// An otherwise honest (and generous) V3-like pool that re-enters the executor every way it can during its swap
/// and records the selector each attempt reverted with (0 = it went through).
contract ReentrantPool {
    address public immutable tokenOut;
    uint256 public immutable payOut;
    bytes4[] public refused;

    constructor(address tokenOut_, uint256 payOut_) {
        (tokenOut, payOut) = (tokenOut_, payOut_);
    }

    function swap(address recipient, bool zeroForOne, int256 amount, uint160, bytes calldata)
        external
        returns (int256 d0, int256 d1)
    {
        (d0, d1) = zeroForOne ? (amount, -int256(payOut)) : (-int256(payOut), amount);
        ArbExecutor(payable(msg.sender)).uniswapV3SwapCallback(d0, d1, ""); // the one legitimate payment
        _try(abi.encodeWithSelector(ArbExecutor.uniswapV3SwapCallback.selector, d0, d1, "")); // paid twice?
        _try(abi.encodeWithSelector(ArbExecutor.execute.selector, hex"00"));
        _try(abi.encodeWithSelector(ArbExecutor.withdrawToken.selector, tokenOut, address(this), 1));
        _try(abi.encodeWithSelector(ArbExecutor.withdrawEth.selector, address(this), 1));
        _try(abi.encodeWithSelector(ArbExecutor.transferOwnership.selector, address(this)));
        _try(abi.encodeWithSignature("acceptOwnership()"));
        _try(abi.encodeWithSelector(ArbExecutor.uniswapV2Call.selector, msg.sender, 1, 0, ""));
        _try(abi.encodeWithSelector(ArbExecutor.uniswapV3FlashCallback.selector, 0, 0, ""));
        _try(abi.encodeWithSelector(ArbExecutor.executeOperation.selector, tokenOut, 1, 0, msg.sender, ""));
        IERC20T(tokenOut).transfer(recipient, payOut);
    }

    function _try(bytes memory data) internal {
        (bool ok, bytes memory err) = msg.sender.call(data);
        refused.push(ok ? bytes4(0) : bytes4(err));
    }

    function refusedCount() external view returns (uint256) {
        return refused.length;
    }
}

/// A fake pool whose accomplice (another address) calls the swap callback while the executor waits for the pool's.
contract BystanderPool {
    function swap(address, bool, int256, uint160, bytes calldata) external returns (int256, int256) {
        new Bystander().poke(ArbExecutor(payable(msg.sender)));
        return (0, 0);
    }
}

contract Bystander {
    function poke(ArbExecutor exec) external {
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
        if (mode == 1) h = abi.encodePacked(h, v2Lender, uint16(30)); // the Uniswap V2 lender's fee, bps
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
        _sellWethV2(pair, wethIn, address(this));
    }

    /// Sell WETH into a V2 pair, the output to `to`; returns the output.
    function _sellWethV2(address pair, uint256 wethIn, address to) internal returns (uint256 out) {
        (uint112 r0, uint112 r1,) = IPairT(pair).getReserves();
        bool wethIs0 = IPairT(pair).token0() == weth;
        (uint256 rin, uint256 rout) = wethIs0 ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        out = wethIn * 997 * rout / (rin * 1000 + wethIn * 997);
        IWETHT(weth).transfer(pair, wethIn);
        IPairT(pair).swap(wethIs0 ? 0 : out, wethIs0 ? out : 0, to, "");
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

    // ------------------------------------------------------------------------------------ the tip: from profit only
    error Probe(uint256 profit);

    /// Runs the plan and reverts with its profit (a dry run: nothing it did stays).
    function probe(bytes memory plan) external {
        revert Probe(exec.execute(plan));
    }

    function _dryRunProfit(bytes memory plan) internal returns (uint256 profit) {
        try this.probe(plan) { revert("probe returned"); }
        catch (bytes memory err) {
            assertRevertSelector(err, Probe.selector, "dry run");
            assembly { profit := mload(add(err, 36)) }
        }
    }

    /// In every funding mode the tip is unwrapped from the start token's (WETH's) profit — never from ETH the
    /// executor holds — and `minProfit` is checked net of it: profit - tip < minProfit reverts.
    function _tipCase(uint8 mode) internal {
        address builder = address(uint160(0xC0FFEE));
        vm.coinbase(builder);
        vm.deal(address(exec), 1 ether); // ETH held: must stay untouched
        _skewV3(v3WethUsdc3000, 300 ether);
        uint256 gross = _dryRunProfit(_twoHop(mode, 5 ether, 0, 0));
        uint256 tip = gross / 3;
        uint256 net = gross - tip;
        try exec.execute(_twoHop(mode, 5 ether, net + 1, tip)) { revert("profit - tip < minProfit went through"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.InsufficientProfit.selector, int256(net), net + 1),
                "profit net of the tip");
        }
        uint256 wethBefore = IERC20T(weth).balanceOf(address(exec));
        uint256 profit = exec.execute(_twoHop(mode, 5 ether, net, tip));
        assertEq(profit, net, "reported profit is net of the tip");
        assertEq(IERC20T(weth).balanceOf(address(exec)) - wethBefore, net, "WETH grew by profit - tip");
        assertEq(builder.balance, tip, "coinbase got the tip");
        assertEq(address(exec).balance, 1 ether, "ETH held untouched");
    }

    function test_tipFromProfit_ownBalance() public { _tipCase(0); }
    function test_tipFromProfit_v2FlashSwap() public { _tipCase(1); }
    function test_tipFromProfit_v3Flash() public { _tipCase(2); }
    function test_tipFromProfit_aaveFlashLoan() public { _tipCase(3); }

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
        bytes memory withLender =
            abi.encodePacked(_slice(plan, 0, 70), address(tamperer), uint16(30), _slice(plan, 70, plan.length));
        try exec.execute(withLender) { revert("tampered plan accepted"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.BadPlan.selector, "tampered plan"); }
        assertEq(IERC20T(weth).balanceOf(address(exec)), OWN_FUNDS, "nothing moved");
    }

    function test_bystanderCallbackDuringARunIsRejected() public {
        // While the executor waits for pool P's swap callback, another contract calls it: refused.
        BystanderPool pool = new BystanderPool();
        bytes memory plan = abi.encodePacked(
            _header(0, 2, 1 ether, 0, 0), uint8(1), address(pool), usdc, uint160(0), _v3Hop(v3WethUsdc3000, usdc, weth)
        );
        try exec.execute(plan) { revert("bystander callback accepted"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "bystander"); }
    }

    // ------------------------------------------------------------------------------------ malicious pools
    /// The executor holds USDC (say, from an earlier run or a deposit) that a route's pools must not reach.
    function _execHoldsUsdc() internal returns (uint256 held) {
        _sellWethV2(v2WethUsdc, 20 ether, address(exec));
        held = IERC20T(usdc).balanceOf(address(exec));
        assertGe(held, 1, "executor holds USDC");
    }

    /// Route: WETH -> USDC on `liar` (hop 0), USDC -> WETH on a Drainer that asks for all the executor's USDC and
    /// gives back 1.1 WETH for the 1 WETH in. Before hop verification the liar's claim became the Drainer's
    /// payment cap and the run went through, draining the USDC; now it must revert and move nothing.
    function _drainThrough(bytes memory liarHop) internal returns (bytes memory err, uint256 usdcHeld) {
        usdcHeld = _execHoldsUsdc();
        Drainer drainer = new Drainer(usdc, weth, 1.1 ether);
        IWETHT(weth).transfer(address(drainer), 1.1 ether);
        bytes memory plan = abi.encodePacked(_header(0, 2, 1 ether, 1, 0), liarHop, uint8(1), address(drainer), weth,
            uint160(0));
        uint256 wethBefore = IERC20T(weth).balanceOf(address(exec));
        try exec.execute(plan) { revert("a lying pool's claim drained the executor"); }
        catch (bytes memory e) { err = e; }
        assertEq(IERC20T(usdc).balanceOf(address(exec)), usdcHeld, "USDC untouched");
        assertEq(IERC20T(weth).balanceOf(address(exec)), wethBefore, "WETH untouched");
    }

    function test_v3PoolClaimingWhatItDidNotSendIsCaught() public {
        uint256 claim = 1e30;
        LiarPool liar = new LiarPool(usdc, claim, 0, false);
        (bytes memory err,) = _drainThrough(abi.encodePacked(uint8(3), address(liar), usdc, uint160(0)));
        assertRevertData(err, abi.encodeWithSelector(ArbExecutor.ShortPaid.selector, 0, claim, 0), "sent nothing");
    }

    function test_v3PoolPayingLessThanItClaimsIsCaught() public {
        uint256 claim = 1e30;
        uint256 pay = 1_000e6;
        LiarPool liar = new LiarPool(usdc, claim, pay, false);
        _sellWethV2(v2WethUsdc, 5 ether, address(liar)); // it does have some USDC to send
        (bytes memory err,) = _drainThrough(abi.encodePacked(uint8(3), address(liar), usdc, uint160(0)));
        assertRevertData(err, abi.encodeWithSelector(ArbExecutor.ShortPaid.selector, 0, claim, pay), "sent less");
    }

    function test_v3PoolReportingAWrongSignIsCaught() public {
        // A positive output delta used to become uint256(-delta): an astronomically large payment cap.
        uint256 claim = 5_000e6;
        LiarPool liar = new LiarPool(usdc, claim, 0, true);
        (bytes memory err,) = _drainThrough(abi.encodePacked(uint8(3), address(liar), usdc, uint160(0)));
        assertRevertData(err, abi.encodeWithSelector(ArbExecutor.BadPoolDelta.selector, address(liar),
            int256(1 ether), int256(claim)), "wrong sign");
    }

    function test_v2PairLyingAboutItsReservesIsCaught() public {
        LiarPair liar = new LiarPair(usdc, 0, true);
        uint256 inWithFee = 1 ether * 9_970;
        uint256 claim = inWithFee * 1e30 / (1 * 10_000 + inWithFee); // what the executor asks of it
        (bytes memory err,) = _drainThrough(abi.encodePacked(uint8(2), address(liar), usdc, uint16(30)));
        assertRevertData(err, abi.encodeWithSelector(ArbExecutor.ShortPaid.selector, 0, claim, 0), "lying pair");
    }

    function test_reentrantPoolIsRefusedEverywhere() public {
        (uint112 r0, uint112 r1,) = IPairT(v2WethUsdc).getReserves();
        bool wethIs0 = IPairT(v2WethUsdc).token0() == weth;
        uint256 payOut = 2 * 1 ether * (wethIs0 ? r1 : r0) / (wethIs0 ? r0 : r1); // twice the market: profitable
        ReentrantPool pool = new ReentrantPool(usdc, payOut);
        _sellWethV2(v2WethUsdc, 10 ether, address(pool));
        bytes memory plan = abi.encodePacked(
            _header(0, 2, 1 ether, 1, 0), uint8(3), address(pool), usdc, uint160(0), _v3Hop(v3WethUsdc3000, usdc, weth)
        );
        uint256 profit = exec.execute(plan);
        assertGe(profit, 1, "the honest part of the swap went through");
        assertEq(IERC20T(weth).balanceOf(address(pool)), 1 ether, "paid once, exactly the hop's input");
        bytes4[9] memory expected = [
            ArbExecutor.UnexpectedCaller.selector, // a second swap callback
            ArbExecutor.NotOwner.selector, // execute
            ArbExecutor.NotOwner.selector, // withdrawToken
            ArbExecutor.NotOwner.selector, // withdrawEth
            ArbExecutor.NotOwner.selector, // transferOwnership
            bytes4(keccak256("NotPendingOwner(address)")), // acceptOwnership
            ArbExecutor.UnexpectedCaller.selector, // uniswapV2Call
            ArbExecutor.UnexpectedCaller.selector, // uniswapV3FlashCallback
            ArbExecutor.UnexpectedCaller.selector // executeOperation
        ];
        assertEq(pool.refusedCount(), expected.length, "attempts");
        for (uint256 i = 0; i < expected.length; ++i) {
            assertTrue(pool.refused(i) == expected[i], string.concat("re-entry #", _str(i), " not refused as expected"));
        }
    }

    function _slice(bytes memory b, uint256 from, uint256 to) internal pure returns (bytes memory out) {
        out = new bytes(to - from);
        for (uint256 i = from; i < to; ++i) out[i - from] = b[i];
    }
}
