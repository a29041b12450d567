"""A Uniswap V3 pool as plain data, and the pool's swap loop as a pure function.

:class:`V3PoolState` holds what a quote needs (slot0's price and tick, the active liquidity, every
initialized tick's gross/net liquidity and the tick bitmap) and does no I/O: ``chains/state/chain.py`` keeps it in
sync from events with :func:`apply_swap` (Swap) and :func:`update_position` (Mint/Burn).

:func:`swap` mirrors ``UniswapV3Pool.swap`` (v3-core 1.0.1) step for step: the same word-by-word bitmap
walk, the same ``computeSwapStep`` rounding, the same sign conventions (amounts are the pool's balance
changes: positive paid in, negative paid out), the same reverts as typed errors. It never mutates the state.
Protocol fees only move fee-growth accounting, never the swap amounts, so they are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chains.amm.uniswap_v3.errors import (
    ASError,
    IncompleteOutputError,
    LAError,
    LOError,
    LOKError,
    LSError,
    SPLError,
    TickMisalignedError,
    TLMError,
    TLUError,
    TUMError,
)
from chains.amm.uniswap_v3.liquidity_math import MAX_UINT128, add_delta
from chains.amm.uniswap_v3.sqrt_price_math import get_amount0_delta_signed, get_amount1_delta_signed
from chains.amm.uniswap_v3.swap_math import compute_swap_step
from chains.amm.uniswap_v3.tick_bitmap import flip_tick
from chains.amm.uniswap_v3.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)

__all__ = [
    "SwapResult",
    "TickInfo",
    "V3PoolState",
    "apply_swap",
    "quote_exact_input",
    "quote_exact_output",
    "swap",
    "tick_spacing_to_max_liquidity_per_tick",
    "update_position",
]

_MIN_LIMIT = MIN_SQRT_RATIO + 1  # what the periphery (QuoterV2, SwapRouter) uses for "no limit"
_MAX_LIMIT = MAX_SQRT_RATIO - 1
_UINT256_MASK = (1 << 256) - 1


@dataclass(frozen=True, slots=True)
class TickInfo:
    """The part of ``Tick.Info`` a swap needs: total liquidity referencing the tick, and the net change."""

    liquidity_gross: int
    liquidity_net: int


@dataclass(slots=True)
class V3PoolState:
    """Everything a swap reads from a pool. ``ticks`` holds the initialized ticks only; ``bitmap`` maps a
    word position to its uint256 word (absent = 0)."""

    fee: int
    tick_spacing: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    ticks: dict[int, TickInfo] = field(default_factory=dict)
    bitmap: dict[int, int] = field(default_factory=dict)

    @classmethod
    def initialized(cls, fee: int, tick_spacing: int, sqrt_price_x96: int) -> V3PoolState:
        """A pool right after ``initialize(sqrtPriceX96)``: no liquidity, tick from the price."""
        return cls(fee, tick_spacing, sqrt_price_x96, get_tick_at_sqrt_ratio(sqrt_price_x96), 0, {}, {})

    def copy(self) -> V3PoolState:
        """A deep enough copy to mutate independently (ticks are immutable values)."""
        return V3PoolState(
            self.fee,
            self.tick_spacing,
            self.sqrt_price_x96,
            self.tick,
            self.liquidity,
            dict(self.ticks),
            dict(self.bitmap),
        )


@dataclass(frozen=True, slots=True)
class SwapResult:
    """The pool's view of a swap: balance changes (positive = into the pool) and the state after it.

    ``ticks_crossed`` counts initialized ticks crossed; ``fee_growth_global_x128_delta`` is the increase of
    the input token's ``feeGrowthGlobalX128`` (protocol fee off).
    """

    amount0: int
    amount1: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    ticks_crossed: int
    fee_growth_global_x128_delta: int = 0


def swap(
    state: V3PoolState,
    *,
    zero_for_one: bool,
    amount_specified: int,
    sqrt_price_limit_x96: int | None = None,
) -> SwapResult:
    """Simulate ``UniswapV3Pool.swap``: exact input if ``amount_specified > 0``, exact output if ``< 0``.

    ``sqrt_price_limit_x96=None`` means no limit (MIN_SQRT_RATIO + 1 / MAX_SQRT_RATIO - 1, as the
    periphery passes). Raises :class:`ASError`, :class:`LOKError` (uninitialized pool), :class:`SPLError`,
    or :class:`LSError`/:class:`LAError` on an inconsistent state, as the contract reverts.
    """
    if amount_specified == 0:
        raise ASError()
    sqrt_price = state.sqrt_price_x96
    if sqrt_price == 0:
        raise LOKError("LOK (pool not initialized)")
    if zero_for_one:
        limit = _MIN_LIMIT if sqrt_price_limit_x96 is None else sqrt_price_limit_x96
        if not (MIN_SQRT_RATIO < limit < sqrt_price):
            raise SPLError()
    else:
        limit = _MAX_LIMIT if sqrt_price_limit_x96 is None else sqrt_price_limit_x96
        if not (sqrt_price < limit < MAX_SQRT_RATIO):
            raise SPLError()

    bitmap = state.bitmap
    ticks = state.ticks
    spacing = state.tick_spacing
    fee = state.fee
    tick = state.tick
    liquidity = state.liquidity
    exact_input = amount_specified > 0
    remaining = amount_specified
    calculated = 0
    crossed = 0
    fee_growth = 0
    step = compute_swap_step
    sqrt_at = get_sqrt_ratio_at_tick
    bitmap_get = bitmap.get

    while remaining != 0 and sqrt_price != limit:
        # TickBitmap.nextInitializedTickWithinOneWord, inlined
        compressed = tick // spacing
        if zero_for_one:
            bit_pos = compressed & 0xFF
            masked = bitmap_get(compressed >> 8, 0) & ((2 << bit_pos) - 1)
            if masked:
                tick_next = (compressed - bit_pos + masked.bit_length() - 1) * spacing
                initialized = True
            else:
                tick_next = (compressed - bit_pos) * spacing
                initialized = False
                if tick_next < MIN_TICK:
                    tick_next = MIN_TICK
            sqrt_next = sqrt_at(tick_next)
            target = limit if sqrt_next < limit else sqrt_next
        else:
            compressed += 1
            bit_pos = compressed & 0xFF
            masked = bitmap_get(compressed >> 8, 0) >> bit_pos
            if masked:
                tick_next = (compressed + (masked & -masked).bit_length() - 1) * spacing
                initialized = True
            else:
                tick_next = (compressed + 255 - bit_pos) * spacing
                initialized = False
                if tick_next > MAX_TICK:
                    tick_next = MAX_TICK
            sqrt_next = sqrt_at(tick_next)
            target = limit if sqrt_next > limit else sqrt_next

        sqrt_start = sqrt_price
        sqrt_price, amount_in, amount_out, fee_amount = step(sqrt_price, target, liquidity, remaining, fee)
        if exact_input:
            remaining -= amount_in + fee_amount
            calculated -= amount_out
        else:
            remaining += amount_out
            calculated += amount_in + fee_amount
        if liquidity:
            fee_growth += (fee_amount << 128) // liquidity

        if sqrt_price == sqrt_next:
            if initialized:
                net = ticks[tick_next].liquidity_net
                liquidity = liquidity - net if zero_for_one else liquidity + net
                if liquidity < 0:
                    raise LSError()
                if liquidity > MAX_UINT128:
                    raise LAError()
                crossed += 1
            tick = tick_next - 1 if zero_for_one else tick_next
        elif sqrt_price != sqrt_start:
            tick = get_tick_at_sqrt_ratio(sqrt_price)

    if zero_for_one == exact_input:
        amount0, amount1 = amount_specified - remaining, calculated
    else:
        amount0, amount1 = calculated, amount_specified - remaining
    return SwapResult(amount0, amount1, sqrt_price, tick, liquidity, crossed, fee_growth & _UINT256_MASK)


def quote_exact_input(
    state: V3PoolState, zero_for_one: bool, amount_in: int, sqrt_price_limit: int | None = None
) -> SwapResult:
    """``swap`` for an exact input (the output is ``-amount1`` or ``-amount0``); like QuoterV2, a price limit
    may stop the swap before all of ``amount_in`` is used."""
    return swap(
        state, zero_for_one=zero_for_one, amount_specified=amount_in, sqrt_price_limit_x96=sqrt_price_limit
    )


def quote_exact_output(
    state: V3PoolState, zero_for_one: bool, amount_out: int, sqrt_price_limit: int | None = None
) -> SwapResult:
    """``swap`` for an exact output. Without a price limit, a pool too shallow to deliver all of
    ``amount_out`` raises :class:`IncompleteOutputError`, as QuoterV2 and SwapRouter revert."""
    result = swap(
        state, zero_for_one=zero_for_one, amount_specified=-amount_out, sqrt_price_limit_x96=sqrt_price_limit
    )
    if sqrt_price_limit is None and -(result.amount1 if zero_for_one else result.amount0) != amount_out:
        raise IncompleteOutputError(f"the pool can deliver only part of {amount_out}")
    return result


def apply_swap(state: V3PoolState, sqrt_price_x96: int, tick: int, liquidity: int) -> None:
    """Set slot0's price and tick and the active liquidity, as a Swap event reports them."""
    state.sqrt_price_x96 = sqrt_price_x96
    state.tick = tick
    state.liquidity = liquidity


def tick_spacing_to_max_liquidity_per_tick(tick_spacing: int) -> int:
    """``Tick.tickSpacingToMaxLiquidityPerTick``: uint128 max over the number of usable ticks."""
    min_tick = -(-MIN_TICK // tick_spacing) * tick_spacing  # Solidity's / truncates toward zero
    max_tick = (MAX_TICK // tick_spacing) * tick_spacing
    num_ticks = (max_tick - min_tick) // tick_spacing + 1
    return MAX_UINT128 // num_ticks


def _update_tick(
    state: V3PoolState, tick: int, liquidity_delta: int, upper: bool, max_liquidity: int
) -> bool:
    """``Tick.update`` for gross/net liquidity; returns whether the tick flipped (un)initialized."""
    info = state.ticks.get(tick)
    gross_before, net_before = (info.liquidity_gross, info.liquidity_net) if info is not None else (0, 0)
    gross_after = add_delta(gross_before, liquidity_delta)
    if gross_after > max_liquidity:
        raise LOError()
    net_after = net_before - liquidity_delta if upper else net_before + liquidity_delta
    if gross_after == 0:
        state.ticks.pop(tick, None)  # Tick.clear on a burn that empties the tick
    else:
        state.ticks[tick] = TickInfo(gross_after, net_after)
    return (gross_after == 0) != (gross_before == 0)


def update_position(
    state: V3PoolState, tick_lower: int, tick_upper: int, liquidity_delta: int
) -> tuple[int, int]:
    """Apply a Mint (``liquidity_delta > 0``) or Burn (``< 0``) to ``state`` as ``_modifyPosition`` does.

    Updates both ticks' gross/net liquidity, flips their bitmap bits when they become (un)initialized,
    and the active liquidity when the current tick is in ``[tick_lower, tick_upper)``. Returns the pool's
    ``(amount0, amount1)``: owed to the pool on a mint (rounded up), owed to the owner on a burn (negative,
    rounded down), as in the Mint/Burn events.
    """
    if tick_lower >= tick_upper:
        raise TLUError()
    if tick_lower < MIN_TICK:
        raise TLMError()
    if tick_upper > MAX_TICK:
        raise TUMError()
    if state.sqrt_price_x96 == 0:
        raise LOKError("LOK (pool not initialized)")
    if liquidity_delta == 0:
        return 0, 0
    max_liquidity = tick_spacing_to_max_liquidity_per_tick(state.tick_spacing)
    # validate everything before mutating, so a revert leaves the state untouched
    sqrt_lower = get_sqrt_ratio_at_tick(tick_lower)
    sqrt_upper = get_sqrt_ratio_at_tick(tick_upper)
    for t in (tick_lower, tick_upper):
        if t % state.tick_spacing:
            raise TickMisalignedError(f"tick {t} is not a multiple of the tick spacing {state.tick_spacing}")
        info = state.ticks.get(t)
        gross = add_delta(info.liquidity_gross if info is not None else 0, liquidity_delta)
        if gross > max_liquidity:
            raise LOError()
    current = state.tick
    in_range = tick_lower <= current < tick_upper
    new_liquidity = add_delta(state.liquidity, liquidity_delta) if in_range else state.liquidity

    if _update_tick(state, tick_lower, liquidity_delta, False, max_liquidity):
        flip_tick(state.bitmap, tick_lower, state.tick_spacing)
    if _update_tick(state, tick_upper, liquidity_delta, True, max_liquidity):
        flip_tick(state.bitmap, tick_upper, state.tick_spacing)

    if current < tick_lower:
        return get_amount0_delta_signed(sqrt_lower, sqrt_upper, liquidity_delta), 0
    if current < tick_upper:
        state.liquidity = new_liquidity
        sqrt_price = state.sqrt_price_x96
        return (
            get_amount0_delta_signed(sqrt_price, sqrt_upper, liquidity_delta),
            get_amount1_delta_signed(sqrt_lower, sqrt_price, liquidity_delta),
        )
    return 0, get_amount1_delta_signed(sqrt_lower, sqrt_upper, liquidity_delta)
