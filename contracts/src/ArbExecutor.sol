// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ArbExecutor — runs one multi-hop Uniswap V2/V3 cycle atomically, funded by a flash source or its own
///        balance, and reverts unless the cycle made at least `minProfit` of its start token, after the tip.
/// @notice Only the owner can start a run (`execute`). Every callback accepts exactly one caller and one callback
///         kind: the contract the executor itself is calling at that moment (transient "expected caller" + "kind"
///         slots, set just before the call and cleared by the callback, so each accepted callback happens once).
///         Flash callbacks must also hand back the very plan `execute` got (its keccak is held in transient
///         storage) and the borrowed amount it asked for; uniswapV2Call needs `sender == this`; executeOperation
///         needs `msg.sender == AAVE_POOL` and `initiator == this`. A V3 swap callback pays at most the hop's input.
///         Pools are not trusted: a V3 pool's returned deltas must have the exact-input signs, and a hop whose
///         output the executor then pays from (the next hop is V3) is measured with `balanceOf` before/after —
///         the next hop's input (its payment cap) is what really arrived, never what the pool says.
///         The coinbase tip is paid only in WETH out of the start token's profit (the start token must be WETH)
///         and counted against `minProfit`. Ownership moves in two steps (`transferOwnership`, `acceptOwnership`).
///         The calldata ("plan") is a packed byte string, documented in docs/executor.md and encoded by
///         chains/executor.py:
///
///   header:  mode u8 | hopCount u8 | startToken address | amountIn u128 | minProfit u128 | tipWei u128
///            [| lender address  — only for modes 1 (V2 flash swap) and 2 (V3 flash)]
///            [| lenderFeeBps u16 — only for mode 1: the lender pair's swap fee in bps (30 on Uniswap V2)]
///            mode byte: low 4 bits = funding mode (0 own balance, 1 V2 flash swap, 2 V3 flash, 3 Aave
///            flashLoanSimple); bit 7 = the start token is the lender's token1 (modes 1 and 2).
///   hop:     flags u8 | pool address | tokenOut address | (V2: feeBps u16 | V3: sqrtPriceLimitX96 u160)
///            [| amount u128 if flags bit 2]
///            flags: bit 0 = V3 pool (else V2 pair), bit 1 = zeroForOne, bit 2 = amount present
///            (V2: the exact output to ask for, skipping getReserves; V3: the minimum output of this hop).
contract ArbExecutor {
    // ----------------------------------------------------------------------------------------- errors
    error NotOwner(address caller);
    error UnexpectedCaller(address caller, address expected);
    error BadInitiator(address initiator);
    error InsufficientProfit(int256 profit, uint256 minProfit);
    error BadPlan(uint256 code);
    error RouteNotCycle(address endToken, address startToken);
    error HopOutputTooLow(uint256 hop, uint256 amountOut, uint256 minAmountOut);
    error CallbackMissing(address lender);
    error OverPayment(uint256 asked, uint256 max);
    error TransferFailed(address token, address to, uint256 amount);
    error TipFailed(uint256 tipWei);
    error BadPoolDelta(address pool, int256 amountIn, int256 amountOut);
    error ShortPaid(uint256 hop, uint256 claimed, uint256 received);
    error TipNotInWeth(address startToken);
    error NotPendingOwner(address caller);
    error ZeroAddress();
    error NotAContract(address token);

    event Executed(address indexed startToken, uint8 mode, uint256 amountIn, uint256 profit, uint256 tipWei);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    // ----------------------------------------------------------------------------------------- state
    address public owner;
    address public pendingOwner;
    address public immutable WETH;
    address public immutable AAVE_POOL;

    /// The only address whose callback is accepted right now (zero outside a run), which callback it may call,
    /// and (flash callbacks) the hash of the plan it must hand back.
    address transient _expected;
    uint256 transient _expectedKind;
    bytes32 transient _planHash;
    /// What a V3 swap callback pays with, and at most how much.
    address transient _payToken;
    uint256 transient _payMax;

    uint160 internal constant MIN_SQRT_RATIO_PLUS_1 = 4295128740;
    uint160 internal constant MAX_SQRT_RATIO_MINUS_1 = 1461446703485210103287273052203988822378723970341;

    uint256 internal constant MODE_OWN = 0;
    uint256 internal constant MODE_V2_FLASH = 1;
    uint256 internal constant MODE_V3_FLASH = 2;
    uint256 internal constant MODE_AAVE = 3;

    uint256 internal constant KIND_V2_FLASH = 1;
    uint256 internal constant KIND_V3_FLASH = 2;
    uint256 internal constant KIND_AAVE = 3;
    uint256 internal constant KIND_V3_SWAP = 4;

    // plan header offsets
    uint256 internal constant H_TOKEN = 2;
    uint256 internal constant H_AMOUNT = 22;
    uint256 internal constant H_MIN_PROFIT = 38;
    uint256 internal constant H_TIP = 54;
    uint256 internal constant H_LENDER = 70;
    uint256 internal constant H_LENDER_FEE = 90;
    uint256 internal constant H_LEN = 70;
    uint256 internal constant H_LEN_LENDER = 90;
    uint256 internal constant H_LEN_V2_LENDER = 92;

    uint256 internal constant CTX_PREPAID = 1 << 8;
    uint256 internal constant CTX_MEASURE = 1 << 9;

    constructor(address owner_, address weth_, address aavePool_) {
        if (owner_ == address(0)) revert ZeroAddress();
        owner = owner_;
        WETH = weth_;
        AAVE_POOL = aavePool_;
        emit OwnershipTransferred(address(0), owner_);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    receive() external payable {}

    // ----------------------------------------------------------------------------------------- entry point
    /// @notice Run the plan. Returns the profit in the start token after repaying the loan and its fee and after
    ///         the tip (which is unwrapped from the start token, WETH); reverts unless it is at least minProfit.
    function execute(bytes calldata plan) external payable onlyOwner returns (uint256 profit) {
        if (plan.length < H_LEN) revert BadPlan(0);
        uint256 modeByte = uint8(plan[0]);
        uint256 mode = modeByte & 0x0f;
        if (mode > MODE_AAVE) revert BadPlan(3);
        address start = _addr(plan, H_TOKEN);
        uint256 amountIn = _u128(plan, H_AMOUNT);
        uint256 tip = _u128(plan, H_TIP);
        // The tip comes out of the start token's profit: only possible when that is WETH (unwrapped to pay it).
        if (tip != 0 && start != WETH) revert TipNotInWeth(start);
        uint256 before = _balanceOf(start, address(this));

        if (mode == MODE_OWN) {
            _runRoute(plan, amountIn);
        } else if (mode == MODE_V2_FLASH || mode == MODE_V3_FLASH) {
            _flash(plan, modeByte, amountIn);
        } else {
            address pool = AAVE_POOL;
            if (pool == address(0)) revert BadPlan(2);
            _expect(pool, KIND_AAVE);
            _planHash = keccak256(plan);
            IAavePoolLike(pool).flashLoanSimple(address(this), start, amountIn, plan, 0);
            if (_expected != address(0)) revert CallbackMissing(pool);
        }

        // Profit after the loan is repaid, net of the tip: afterBal - before - tip >= minProfit.
        uint256 afterBal = _balanceOf(start, address(this));
        uint256 minProfit = _u128(plan, H_MIN_PROFIT);
        if (afterBal < before + tip + minProfit) {
            revert InsufficientProfit(int256(afterBal) - int256(before) - int256(tip), minProfit);
        }
        profit = afterBal - before - tip;
        if (tip != 0) {
            // Exactly `tip` WETH is unwrapped and sent: ETH the executor holds is never spent.
            IWETHLike(WETH).withdraw(tip);
            (bool ok,) = block.coinbase.call{value: tip}("");
            if (!ok) revert TipFailed(tip);
        }
        emit Executed(start, uint8(mode), amountIn, profit, tip);
    }

    function _flash(bytes calldata plan, uint256 modeByte, uint256 amountIn) internal {
        uint256 mode = modeByte & 0x0f;
        if (plan.length < (mode == MODE_V2_FLASH ? H_LEN_V2_LENDER : H_LEN_LENDER)) revert BadPlan(1);
        address lender = _addr(plan, H_LENDER);
        bool isToken1 = modeByte & 0x80 != 0;
        _expect(lender, mode == MODE_V2_FLASH ? KIND_V2_FLASH : KIND_V3_FLASH);
        _planHash = keccak256(plan);
        if (mode == MODE_V2_FLASH) {
            IUniswapV2PairLike(lender).swap(isToken1 ? 0 : amountIn, isToken1 ? amountIn : 0, address(this), plan);
        } else {
            IUniswapV3PoolLike(lender).flash(address(this), isToken1 ? 0 : amountIn, isToken1 ? amountIn : 0, plan);
        }
        if (_expected != address(0)) revert CallbackMissing(lender);
    }

    // ----------------------------------------------------------------------------------------- callbacks
    /// V2 flash swap: the lender pair calls back with the borrowed amount already sent to us.
    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata plan) external {
        _consumeExpected(KIND_V2_FLASH);
        if (sender != address(this)) revert BadInitiator(sender);
        _checkPlan(plan);
        uint256 borrowed = _u128(plan, H_AMOUNT);
        if (amount0 + amount1 != borrowed) revert BadPlan(9); // one of them is zero
        uint256 feeBps = uint16(bytes2(plan[H_LENDER_FEE:H_LENDER_FEE + 2]));
        if (feeBps >= 10_000) revert BadPlan(10);
        _runRoute(plan, borrowed);
        // The pair's K check charges feeBps of the amount paid back: repay * (10000 - fee) >= borrowed * 10000.
        uint256 keep = 10_000 - feeBps;
        uint256 repay = (borrowed * 10_000 + keep - 1) / keep;
        _transfer(_addr(plan, H_TOKEN), msg.sender, repay);
    }

    /// V3 flash: pay back the borrowed amount plus the pool's fee.
    function uniswapV3FlashCallback(uint256 fee0, uint256 fee1, bytes calldata plan) external {
        _consumeExpected(KIND_V3_FLASH);
        _checkPlan(plan);
        uint256 borrowed = _u128(plan, H_AMOUNT);
        _runRoute(plan, borrowed);
        _transfer(_addr(plan, H_TOKEN), msg.sender, borrowed + fee0 + fee1);
    }

    /// V3 swap: pay the pool what it asks of the input token, never more than the hop's input.
    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata) external {
        _consumeExpected(KIND_V3_SWAP);
        uint256 pay = amount0Delta > 0 ? uint256(amount0Delta) : uint256(amount1Delta);
        uint256 max = _payMax;
        if (pay > max) revert OverPayment(pay, max);
        _transfer(_payToken, msg.sender, pay);
    }

    /// Aave V3 flashLoanSimple: run the route, then let the pool pull amount + premium.
    function executeOperation(address asset, uint256 amount, uint256 premium, address initiator, bytes calldata plan)
        external
        returns (bool)
    {
        if (msg.sender != AAVE_POOL) revert UnexpectedCaller(msg.sender, AAVE_POOL);
        _consumeExpected(KIND_AAVE);
        if (initiator != address(this)) revert BadInitiator(initiator);
        _checkPlan(plan);
        if (amount != _u128(plan, H_AMOUNT)) revert BadPlan(9);
        _runRoute(plan, amount);
        _approve(asset, msg.sender, amount + premium);
        return true;
    }

    // ----------------------------------------------------------------------------------------- owner
    /// An address without code is refused: the low-level transfer to it would "succeed" and move nothing.
    function withdrawToken(address token, address to, uint256 amount) external onlyOwner {
        if (token.code.length == 0) revert NotAContract(token);
        _transfer(token, to, amount);
    }

    function withdrawEth(address payable to, uint256 amount) external onlyOwner {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(address(0), to, amount);
    }

    /// Step 1 of 2: name the next owner (replaces any pending one). It takes over only by `acceptOwnership`.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(msg.sender, newOwner);
    }

    /// Step 2 of 2: the pending owner takes over.
    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender);
        address previous = owner;
        owner = msg.sender;
        pendingOwner = address(0);
        emit OwnershipTransferred(previous, msg.sender);
    }

    // ----------------------------------------------------------------------------------------- the route
    function _runRoute(bytes calldata plan, uint256 amount) internal {
        uint256 n = uint8(plan[1]);
        if (n == 0) revert BadPlan(4);
        uint256 mode = uint8(plan[0]) & 0x0f;
        uint256 off = mode == MODE_V2_FLASH ? H_LEN_V2_LENDER : mode == MODE_V3_FLASH ? H_LEN_LENDER : H_LEN;
        address token = _addr(plan, H_TOKEN);
        bool prepaid = false; // the input already sits in this V2 pair (the previous hop paid it there)
        for (uint256 i = 0; i < n; ++i) {
            if (plan.length < off + 43) revert BadPlan(5);
            uint256 flags = uint8(plan[off]);
            uint256 next = off + (flags & 1 != 0 ? 61 : 43) + (flags & 4 != 0 ? 16 : 0);
            if (plan.length < next) revert BadPlan(6);
            // Outputs go straight into the next pair when the next hop is V2 (saves a transfer); that pair's own
            // K check then verifies what it really received. Otherwise the output comes to us and, unless this
            // is the last hop (the final balance check covers it), the next (V3) hop pays from it: measured.
            address recipient = address(this);
            uint256 ctx = i | (prepaid ? CTX_PREPAID : 0);
            if (i + 1 < n) {
                if (plan.length < next + 43) revert BadPlan(7);
                if (uint8(plan[next]) & 1 == 0) recipient = _addr(plan, next + 1);
                else ctx |= CTX_MEASURE;
            }
            amount = _hop(plan, off, token, amount, recipient, ctx);
            prepaid = recipient != address(this);
            token = _addr(plan, off + 21);
            off = next;
        }
        address start = _addr(plan, H_TOKEN);
        if (token != start) revert RouteNotCycle(token, start);
    }

    /// One hop; returns its output: what arrived (measured) when `ctx` has CTX_MEASURE, else what the pool said.
    /// ctx = hop index | CTX_PREPAID (the input already sits in the pair) | CTX_MEASURE.
    function _hop(bytes calldata plan, uint256 off, address token, uint256 amount, address recipient, uint256 ctx)
        internal
        returns (uint256 out)
    {
        uint256 flags = uint8(plan[off]);
        address tokenOut;
        uint256 balBefore;
        if (ctx & CTX_MEASURE != 0) {
            tokenOut = _addr(plan, off + 21);
            balBefore = _balanceOf(tokenOut, address(this));
        }
        if (flags & 1 != 0) {
            out = _swapV3(plan, off, flags, token, amount, recipient);
        } else {
            out = _swapV2(plan, off, flags, token, amount, recipient, ctx & CTX_PREPAID != 0);
        }
        if (ctx & CTX_MEASURE != 0) {
            uint256 balAfter = _balanceOf(tokenOut, address(this));
            uint256 received = balAfter > balBefore ? balAfter - balBefore : 0;
            if (received < out) revert ShortPaid(uint8(ctx), out, received);
            out = received;
        }
        if (flags & 5 == 5) {
            uint256 minOut = _u128(plan, off + 61);
            if (out < minOut) revert HopOutputTooLow(uint8(ctx), out, minOut);
        }
    }

    function _swapV3(
        bytes calldata plan,
        uint256 off,
        uint256 flags,
        address token,
        uint256 amount,
        address recipient
    ) internal returns (uint256 out) {
        address pool = _addr(plan, off + 1);
        bool zeroForOne = flags & 2 != 0;
        uint160 limit = uint160(bytes20(plan[off + 41:off + 61]));
        if (limit == 0) limit = zeroForOne ? MIN_SQRT_RATIO_PLUS_1 : MAX_SQRT_RATIO_MINUS_1;
        _expect(pool, KIND_V3_SWAP);
        _payToken = token;
        _payMax = amount;
        (int256 a0, int256 a1) = IUniswapV3PoolLike(pool).swap(recipient, zeroForOne, int256(amount), limit, "");
        if (_expected != address(0)) revert CallbackMissing(pool);
        // Exact input: the pool took 0..amount of the input token (>= 0) and sends the output (< 0).
        (int256 dIn, int256 dOut) = zeroForOne ? (a0, a1) : (a1, a0);
        if (dOut >= 0 || dIn < 0 || uint256(dIn) > amount) revert BadPoolDelta(pool, dIn, dOut);
        out = uint256(-dOut);
    }

    function _swapV2(
        bytes calldata plan,
        uint256 off,
        uint256 flags,
        address token,
        uint256 amount,
        address recipient,
        bool prepaid
    ) internal returns (uint256 out) {
        address pair = _addr(plan, off + 1);
        bool zeroForOne = flags & 2 != 0;
        if (flags & 4 != 0) {
            out = _u128(plan, off + 43);
        } else {
            uint256 feeBps = uint16(bytes2(plan[off + 41:off + 43]));
            (uint112 r0, uint112 r1,) = IUniswapV2PairLike(pair).getReserves();
            (uint256 rin, uint256 rout) = zeroForOne ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
            uint256 inWithFee = amount * (10_000 - feeBps);
            out = inWithFee * rout / (rin * 10_000 + inWithFee);
        }
        if (!prepaid) _transfer(token, pair, amount);
        IUniswapV2PairLike(pair).swap(zeroForOne ? 0 : out, zeroForOne ? out : 0, recipient, "");
    }

    // ----------------------------------------------------------------------------------------- helpers
    function _expect(address caller, uint256 kind) internal {
        _expected = caller;
        _expectedKind = kind;
    }

    /// Accept the callback only from the address we are calling right now, and only the callback we expect.
    function _consumeExpected(uint256 kind) internal {
        address expected = _expected;
        if (msg.sender != expected || _expectedKind != kind) revert UnexpectedCaller(msg.sender, expected);
        _expected = address(0);
        _expectedKind = 0;
    }

    /// A flash callback must hand back exactly the plan `execute` was given.
    function _checkPlan(bytes calldata plan) internal view {
        if (keccak256(plan) != _planHash) revert BadPlan(8);
    }

    function _addr(bytes calldata b, uint256 off) internal pure returns (address a) {
        a = address(bytes20(b[off:off + 20]));
    }

    function _u128(bytes calldata b, uint256 off) internal pure returns (uint256 v) {
        v = uint128(bytes16(b[off:off + 16]));
    }

    /// `token.balanceOf(who)` in scratch memory; reverts unless the call succeeds with a 32-byte answer (an address
    /// without code answers nothing).
    function _balanceOf(address token, address who) internal view returns (uint256 bal) {
        bool ok;
        assembly ("memory-safe") {
            mstore(0x14, who)
            mstore(0x00, 0x70a08231000000000000000000000000) // balanceOf(address), at 0x10..0x14
            ok := and(gt(returndatasize(), 0x1f), staticcall(gas(), token, 0x10, 0x24, 0x20, 0x20))
            bal := mload(0x20)
        }
        if (!ok) revert TransferFailed(token, who, 0);
    }

    function _transfer(address token, address to, uint256 amount) internal {
        (bool ok, bytes memory data) = token.call(abi.encodeWithSelector(0xa9059cbb, to, amount));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed(token, to, amount);
    }

    function _approve(address token, address spender, uint256 amount) internal {
        (bool ok, bytes memory data) = token.call(abi.encodeWithSelector(0x095ea7b3, spender, amount));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed(token, spender, amount);
    }
}

interface IUniswapV2PairLike {
    function getReserves() external view returns (uint112, uint112, uint32);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

interface IUniswapV3PoolLike {
    function swap(address recipient, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96, bytes calldata data)
        external
        returns (int256, int256);
    function flash(address recipient, uint256 amount0, uint256 amount1, bytes calldata data) external;
}

interface IAavePoolLike {
    function flashLoanSimple(address receiver, address asset, uint256 amount, bytes calldata params, uint16 referral)
        external;
}

interface IWETHLike {
    function withdraw(uint256 wad) external;
}
