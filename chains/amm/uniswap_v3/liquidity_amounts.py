"""``LiquidityAmounts`` (v3-periphery): liquidity for token amounts and amounts for liquidity, as the
NonfungiblePositionManager computes them when it mints or adds liquidity."""

from __future__ import annotations

from chains.amm.uniswap_v3.errors import SafeCastError
from chains.amm.uniswap_v3.full_math import mul_div

__all__ = [
    "get_amount0_for_liquidity",
    "get_amount1_for_liquidity",
    "get_amounts_for_liquidity",
    "get_liquidity_for_amount0",
    "get_liquidity_for_amount1",
    "get_liquidity_for_amounts",
]

_Q96 = 1 << 96
_UINT128_LIMIT = 1 << 128


def _to_uint128(x: int) -> int:
    if x >= _UINT128_LIMIT:
        raise SafeCastError("LiquidityAmounts: liquidity does not fit uint128")
    return x


def get_liquidity_for_amount0(sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, amount0: int) -> int:
    """``amount0 * (sqrt(a) * sqrt(b)) / (sqrt(b) - sqrt(a))``, rounded down."""
    if sqrt_ratio_ax96 > sqrt_ratio_bx96:
        sqrt_ratio_ax96, sqrt_ratio_bx96 = sqrt_ratio_bx96, sqrt_ratio_ax96
    intermediate = mul_div(sqrt_ratio_ax96, sqrt_ratio_bx96, _Q96)
    return _to_uint128(mul_div(amount0, intermediate, sqrt_ratio_bx96 - sqrt_ratio_ax96))


def get_liquidity_for_amount1(sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, amount1: int) -> int:
    """``amount1 / (sqrt(b) - sqrt(a))``, rounded down."""
    if sqrt_ratio_ax96 > sqrt_ratio_bx96:
        sqrt_ratio_ax96, sqrt_ratio_bx96 = sqrt_ratio_bx96, sqrt_ratio_ax96
    return _to_uint128(mul_div(amount1, _Q96, sqrt_ratio_bx96 - sqrt_ratio_ax96))


def get_liquidity_for_amounts(
    sqrt_ratio_x96: int, sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, amount0: int, amount1: int
) -> int:
    """The most liquidity ``amount0`` and ``amount1`` can fund in [a, b] at the current price."""
    if sqrt_ratio_ax96 > sqrt_ratio_bx96:
        sqrt_ratio_ax96, sqrt_ratio_bx96 = sqrt_ratio_bx96, sqrt_ratio_ax96
    if sqrt_ratio_x96 <= sqrt_ratio_ax96:
        return get_liquidity_for_amount0(sqrt_ratio_ax96, sqrt_ratio_bx96, amount0)
    if sqrt_ratio_x96 < sqrt_ratio_bx96:
        return min(
            get_liquidity_for_amount0(sqrt_ratio_x96, sqrt_ratio_bx96, amount0),
            get_liquidity_for_amount1(sqrt_ratio_ax96, sqrt_ratio_x96, amount1),
        )
    return get_liquidity_for_amount1(sqrt_ratio_ax96, sqrt_ratio_bx96, amount1)


def get_amount0_for_liquidity(sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, liquidity: int) -> int:
    """Token0 in ``liquidity`` over [a, b], rounded down."""
    if sqrt_ratio_ax96 > sqrt_ratio_bx96:
        sqrt_ratio_ax96, sqrt_ratio_bx96 = sqrt_ratio_bx96, sqrt_ratio_ax96
    return (liquidity << 96) * (sqrt_ratio_bx96 - sqrt_ratio_ax96) // sqrt_ratio_bx96 // sqrt_ratio_ax96


def get_amount1_for_liquidity(sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, liquidity: int) -> int:
    """Token1 in ``liquidity`` over [a, b], rounded down."""
    if sqrt_ratio_ax96 > sqrt_ratio_bx96:
        sqrt_ratio_ax96, sqrt_ratio_bx96 = sqrt_ratio_bx96, sqrt_ratio_ax96
    return liquidity * (sqrt_ratio_bx96 - sqrt_ratio_ax96) >> 96


def get_amounts_for_liquidity(
    sqrt_ratio_x96: int, sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, liquidity: int
) -> tuple[int, int]:
    """Token amounts in ``liquidity`` over [a, b] at the current price, rounded down."""
    if sqrt_ratio_ax96 > sqrt_ratio_bx96:
        sqrt_ratio_ax96, sqrt_ratio_bx96 = sqrt_ratio_bx96, sqrt_ratio_ax96
    if sqrt_ratio_x96 <= sqrt_ratio_ax96:
        return get_amount0_for_liquidity(sqrt_ratio_ax96, sqrt_ratio_bx96, liquidity), 0
    if sqrt_ratio_x96 < sqrt_ratio_bx96:
        return (
            get_amount0_for_liquidity(sqrt_ratio_x96, sqrt_ratio_bx96, liquidity),
            get_amount1_for_liquidity(sqrt_ratio_ax96, sqrt_ratio_x96, liquidity),
        )
    return 0, get_amount1_for_liquidity(sqrt_ratio_ax96, sqrt_ratio_bx96, liquidity)
