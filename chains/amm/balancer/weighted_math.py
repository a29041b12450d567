"""Balancer V2 ``WeightedMath`` and the weighted pool's swap wrapper, exact to the wei.

``_calcOutGivenIn`` / ``_calcInGivenOut`` work on upscaled (18-decimal) balances; :func:`query_swap_given_in`
and :func:`query_swap_given_out` add what ``BaseMinimalSwapInfoPool.onSwap`` does around them (swap fee,
scaling by token decimals, rounding direction), i.e. what ``Vault.queryBatchSwap`` returns for a single swap.
"""

from __future__ import annotations

from collections.abc import Sequence

from chains.amm.balancer import fixed_point as fp
from chains.amm.balancer.errors import MAX_IN_RATIO, MAX_OUT_RATIO, ZERO_INVARIANT, require
from chains.amm.balancer.fixed_point import PowVersion

__all__ = [
    "MAX_IN_RATIO_FP",
    "MAX_OUT_RATIO_FP",
    "_addSwapFeeAmount",
    "_calcInGivenOut",
    "_calcOutGivenIn",
    "_calculateInvariant",
    "_subtractSwapFeeAmount",
    "query_swap_given_in",
    "query_swap_given_out",
    "scaling_factor",
]

MAX_IN_RATIO_FP = 3 * 10**17  # 0.3: at most 30 % of the balance in
MAX_OUT_RATIO_FP = 3 * 10**17  # 0.3: at most 30 % of the balance out


def _calculateInvariant(
    normalized_weights: Sequence[int], balances: Sequence[int], version: PowVersion = "v2"
) -> int:
    invariant = fp.ONE
    for w, b in zip(normalized_weights, balances, strict=True):
        invariant = fp.mulDown(invariant, fp.powDown(b, w, version))
    require(invariant > 0, ZERO_INVARIANT)
    return invariant


def _calcOutGivenIn(
    balance_in: int,
    weight_in: int,
    balance_out: int,
    weight_out: int,
    amount_in: int,
    version: PowVersion = "v2",
) -> int:
    """``balanceOut * (1 - (balanceIn / (balanceIn + amountIn))^(weightIn / weightOut))``, rounded down."""
    require(amount_in <= fp.mulDown(balance_in, MAX_IN_RATIO_FP), MAX_IN_RATIO)
    denominator = fp.add(balance_in, amount_in)
    base = fp.divUp(balance_in, denominator)
    exponent = fp.divDown(weight_in, weight_out)
    power = fp.powUp(base, exponent, version)
    return fp.mulDown(balance_out, fp.complement(power))


def _calcInGivenOut(
    balance_in: int,
    weight_in: int,
    balance_out: int,
    weight_out: int,
    amount_out: int,
    version: PowVersion = "v2",
) -> int:
    """``balanceIn * ((balanceOut / (balanceOut - amountOut))^(weightOut / weightIn) - 1)``, rounded up."""
    require(amount_out <= fp.mulDown(balance_out, MAX_OUT_RATIO_FP), MAX_OUT_RATIO)
    base = fp.divUp(balance_out, fp.sub(balance_out, amount_out))
    exponent = fp.divUp(weight_out, weight_in)
    power = fp.powUp(base, exponent, version)
    ratio = fp.sub(power, fp.ONE)
    return fp.mulUp(balance_in, ratio)


def _subtractSwapFeeAmount(amount: int, swap_fee_percentage: int) -> int:
    """``amount - amount.mulUp(fee)``: the fee is taken from the input before scaling."""
    return fp.sub(amount, fp.mulUp(amount, swap_fee_percentage))


def _addSwapFeeAmount(amount: int, swap_fee_percentage: int) -> int:
    """``amount.divUp(fee.complement())``: the fee is added to the input after scaling."""
    return fp.divUp(amount, fp.complement(swap_fee_percentage))


def scaling_factor(decimals: int) -> int:
    """``FixedPoint.ONE * 10**(18 - decimals)``."""
    if not 0 <= decimals <= 18:
        raise ValueError(f"token decimals {decimals} outside 0..18")
    factor: int = 10 ** (18 - decimals)
    return fp.ONE * factor


def query_swap_given_in(
    amount_in: int,
    balance_in: int,
    balance_out: int,
    weight_in: int,
    weight_out: int,
    decimals_in: int,
    decimals_out: int,
    swap_fee_percentage: int,
    version: PowVersion = "v2",
) -> int:
    """Tokens out for an exact ``amount_in`` (raw token units), as the pool's ``onSwap(GIVEN_IN)``."""
    sf_in, sf_out = scaling_factor(decimals_in), scaling_factor(decimals_out)
    amount = fp.mulDown(_subtractSwapFeeAmount(amount_in, swap_fee_percentage), sf_in)
    out = _calcOutGivenIn(
        fp.mulDown(balance_in, sf_in), weight_in, fp.mulDown(balance_out, sf_out), weight_out, amount, version
    )
    return fp.divDown(out, sf_out)


def query_swap_given_out(
    amount_out: int,
    balance_in: int,
    balance_out: int,
    weight_in: int,
    weight_out: int,
    decimals_in: int,
    decimals_out: int,
    swap_fee_percentage: int,
    version: PowVersion = "v2",
) -> int:
    """Tokens in for an exact ``amount_out`` (raw token units), as the pool's ``onSwap(GIVEN_OUT)``."""
    sf_in, sf_out = scaling_factor(decimals_in), scaling_factor(decimals_out)
    amount_in = _calcInGivenOut(
        fp.mulDown(balance_in, sf_in),
        weight_in,
        fp.mulDown(balance_out, sf_out),
        weight_out,
        fp.mulDown(amount_out, sf_out),
        version,
    )
    return _addSwapFeeAmount(fp.divUp(amount_in, sf_in), swap_fee_percentage)
