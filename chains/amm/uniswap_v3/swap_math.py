"""``SwapMath.computeSwapStep`` (v3-core): one step of a swap within a single tick range.

This is the body of the pool's swap loop, so the ``SqrtPriceMath`` amount formulas are inlined here (Python
function calls cost more than the arithmetic); the rare next-price branches call ``sqrt_price_math``.
"""

from __future__ import annotations

from chains.amm.uniswap_v3.sqrt_price_math import (
    get_amount0_delta,
    get_amount1_delta,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
)

__all__ = ["compute_swap_step"]

_FEE_DENOMINATOR = 1_000_000


def compute_swap_step(
    sqrt_ratio_current_x96: int,
    sqrt_ratio_target_x96: int,
    liquidity: int,
    amount_remaining: int,
    fee_pips: int,
) -> tuple[int, int, int, int]:
    """``(sqrt_ratio_next_x96, amount_in, amount_out, fee_amount)`` of swapping toward the target price.

    ``amount_remaining`` > = 0 is an exact input (fees included), < 0 an exact output; the direction is
    implied by ``target < current`` (token0 in). Equal to the contract's results to the wei.
    """
    current = sqrt_ratio_current_x96
    target = sqrt_ratio_target_x96
    zero_for_one = current >= target
    if amount_remaining >= 0:
        remaining_less_fee = amount_remaining * (_FEE_DENOMINATOR - fee_pips) // _FEE_DENOMINATOR
        if zero_for_one:
            # getAmount0Delta(target, current, L, roundUp=true)
            if target <= 0:
                return _slow_step(current, target, liquidity, amount_remaining, fee_pips)
            up = -(-((liquidity << 96) * (current - target)) // current)
            amount_in = -(-up // target)
        else:
            # getAmount1Delta(current, target, L, roundUp=true)
            amount_in = -((-liquidity * (target - current)) >> 96)
        if remaining_less_fee >= amount_in:
            sqrt_next = target
            # the fee is what rounds the step up to a whole amount
            fee_amount = -(-amount_in * fee_pips // (_FEE_DENOMINATOR - fee_pips))
        else:
            sqrt_next = get_next_sqrt_price_from_input(current, liquidity, remaining_less_fee, zero_for_one)
            if zero_for_one:
                up = -(-((liquidity << 96) * (current - sqrt_next)) // current)
                amount_in = -(-up // sqrt_next)
            else:
                amount_in = -((-liquidity * (sqrt_next - current)) >> 96)
            if sqrt_next != target:
                fee_amount = amount_remaining - amount_in
            else:  # rounding can land exactly on the target: the contract then charges the rounded-up fee
                fee_amount = -(-amount_in * fee_pips // (_FEE_DENOMINATOR - fee_pips))
        if zero_for_one:
            amount_out = (liquidity * (current - sqrt_next)) >> 96
        else:
            amount_out = (liquidity << 96) * (sqrt_next - current) // sqrt_next // current
        return sqrt_next, amount_in, amount_out, fee_amount

    wanted = -amount_remaining
    if zero_for_one:
        # getAmount1Delta(target, current, L, roundUp=false)
        amount_out = (liquidity * (current - target)) >> 96
    else:
        # getAmount0Delta(current, target, L, roundUp=false)
        amount_out = (liquidity << 96) * (target - current) // target // current
    if wanted >= amount_out:
        sqrt_next = target
    else:
        sqrt_next = get_next_sqrt_price_from_output(current, liquidity, wanted, zero_for_one)
        if zero_for_one:
            amount_out = (liquidity * (current - sqrt_next)) >> 96
        else:
            amount_out = (liquidity << 96) * (sqrt_next - current) // sqrt_next // current
    if zero_for_one:
        if sqrt_next <= 0:
            return _slow_step(current, target, liquidity, amount_remaining, fee_pips)
        up = -(-((liquidity << 96) * (current - sqrt_next)) // current)
        amount_in = -(-up // sqrt_next)
    else:
        amount_in = -((-liquidity * (sqrt_next - current)) >> 96)
    if amount_out > wanted:
        amount_out = wanted
    fee_amount = -(-amount_in * fee_pips // (_FEE_DENOMINATOR - fee_pips))
    return sqrt_next, amount_in, amount_out, fee_amount


def _slow_step(
    current: int, target: int, liquidity: int, amount_remaining: int, fee_pips: int
) -> tuple[int, int, int, int]:
    """The step written exactly as the contract, through ``sqrt_price_math`` (kept for the degenerate
    prices a pool never holds, e.g. a zero target, where the library's ``require``s must fire)."""
    zero_for_one = current >= target
    exact_in = amount_remaining >= 0
    amount_in = amount_out = 0
    if exact_in:
        remaining_less_fee = amount_remaining * (_FEE_DENOMINATOR - fee_pips) // _FEE_DENOMINATOR
        amount_in = (
            get_amount0_delta(target, current, liquidity, True)
            if zero_for_one
            else get_amount1_delta(current, target, liquidity, True)
        )
        if remaining_less_fee >= amount_in:
            sqrt_next = target
        else:
            sqrt_next = get_next_sqrt_price_from_input(current, liquidity, remaining_less_fee, zero_for_one)
    else:
        amount_out = (
            get_amount1_delta(target, current, liquidity, False)
            if zero_for_one
            else get_amount0_delta(current, target, liquidity, False)
        )
        if -amount_remaining >= amount_out:
            sqrt_next = target
        else:
            sqrt_next = get_next_sqrt_price_from_output(current, liquidity, -amount_remaining, zero_for_one)
    is_max = target == sqrt_next
    if zero_for_one:
        if not (is_max and exact_in):
            amount_in = get_amount0_delta(sqrt_next, current, liquidity, True)
        if not (is_max and not exact_in):
            amount_out = get_amount1_delta(sqrt_next, current, liquidity, False)
    else:
        if not (is_max and exact_in):
            amount_in = get_amount1_delta(current, sqrt_next, liquidity, True)
        if not (is_max and not exact_in):
            amount_out = get_amount0_delta(current, sqrt_next, liquidity, False)
    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining
    if exact_in and sqrt_next != target:
        fee_amount = amount_remaining - amount_in
    else:
        fee_amount = -(-amount_in * fee_pips // (_FEE_DENOMINATOR - fee_pips))
    return sqrt_next, amount_in, amount_out, fee_amount
