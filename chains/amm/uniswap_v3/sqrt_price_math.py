"""``SqrtPriceMath`` (v3-core): next prices from token amounts and token amounts between prices.

The overflow branches of the contract are kept (``product`` overflowing uint256 switches formula, and
changes the rounding), because they decide the last wei of extreme swaps.
"""

from __future__ import annotations

from chains.amm.uniswap_v3.errors import SafeCastError, SqrtPriceMathError

__all__ = [
    "get_amount0_delta",
    "get_amount0_delta_signed",
    "get_amount1_delta",
    "get_amount1_delta_signed",
    "get_next_sqrt_price_from_amount0_rounding_up",
    "get_next_sqrt_price_from_amount1_rounding_down",
    "get_next_sqrt_price_from_input",
    "get_next_sqrt_price_from_output",
]

_Q96_SHIFT = 96
_UINT256_LIMIT = 1 << 256
_UINT160_LIMIT = 1 << 160
_INT256_LIMIT = 1 << 255


def get_next_sqrt_price_from_amount0_rounding_up(
    sqrt_px96: int, liquidity: int, amount: int, add: bool
) -> int:
    """Price after adding (``add``) or removing ``amount`` of token0, rounded up."""
    if amount == 0:
        return sqrt_px96
    numerator1 = liquidity << _Q96_SHIFT
    product = amount * sqrt_px96
    if add:
        if product < _UINT256_LIMIT:
            denominator = numerator1 + product
            if denominator < _UINT256_LIMIT:
                return -(-(numerator1 * sqrt_px96) // denominator)
        # numerator1 / (numerator1 / sqrtP + amount), rounded up; the sum is a checked add
        denominator = numerator1 // sqrt_px96 + amount
        if denominator >= _UINT256_LIMIT:
            raise SqrtPriceMathError("SafeMath: addition overflow")
        return -(-numerator1 // denominator) & (_UINT160_LIMIT - 1)  # uint160(...) truncates
    if product >= _UINT256_LIMIT or numerator1 <= product:
        raise SqrtPriceMathError("SqrtPriceMath: token0 removal exceeds reserves")
    result = -(-(numerator1 * sqrt_px96) // (numerator1 - product))
    if result >= _UINT160_LIMIT:
        raise SafeCastError("SafeCast: value does not fit uint160")
    return result


def get_next_sqrt_price_from_amount1_rounding_down(
    sqrt_px96: int, liquidity: int, amount: int, add: bool
) -> int:
    """Price after adding (``add``) or removing ``amount`` of token1, rounded down."""
    if add:
        # both of the contract's branches are floor(amount * 2^96 / liquidity); mulDiv would revert above uint256
        quotient = (amount << _Q96_SHIFT) // liquidity
        result = sqrt_px96 + quotient
        if quotient >= _UINT256_LIMIT or result >= _UINT160_LIMIT:
            raise SafeCastError("SafeCast: value does not fit uint160")
        return result
    quotient = -(-(amount << _Q96_SHIFT) // liquidity)
    if quotient >= _UINT256_LIMIT:
        raise SqrtPriceMathError("FullMath: result overflows uint256")
    if sqrt_px96 <= quotient:
        raise SqrtPriceMathError("SqrtPriceMath: token1 removal exceeds reserves")
    return sqrt_px96 - quotient


def get_next_sqrt_price_from_input(sqrt_px96: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """Price after ``amount_in`` of token0 (``zero_for_one``) or token1 goes in, rounded to not pass the target."""
    if sqrt_px96 <= 0 or liquidity <= 0:
        raise SqrtPriceMathError("SqrtPriceMath: zero price or liquidity")
    if zero_for_one:
        return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_in, True)
    return get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(
    sqrt_px96: int, liquidity: int, amount_out: int, zero_for_one: bool
) -> int:
    """Price after ``amount_out`` of token1 (``zero_for_one``) or token0 comes out."""
    if sqrt_px96 <= 0 or liquidity <= 0:
        raise SqrtPriceMathError("SqrtPriceMath: zero price or liquidity")
    if zero_for_one:
        return get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_out, False)
    return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_out, False)


def get_amount0_delta(sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, liquidity: int, round_up: bool) -> int:
    """``liquidity * (sqrt(b) - sqrt(a)) / (sqrt(a) * sqrt(b))`` in token0, for an unsigned liquidity."""
    if sqrt_ratio_ax96 > sqrt_ratio_bx96:
        sqrt_ratio_ax96, sqrt_ratio_bx96 = sqrt_ratio_bx96, sqrt_ratio_ax96
    if sqrt_ratio_ax96 <= 0:
        raise SqrtPriceMathError("SqrtPriceMath: zero price")
    numerator = (liquidity << _Q96_SHIFT) * (sqrt_ratio_bx96 - sqrt_ratio_ax96)
    if round_up:
        up = -(-numerator // sqrt_ratio_bx96)
        return -(-up // sqrt_ratio_ax96)
    return numerator // sqrt_ratio_bx96 // sqrt_ratio_ax96


def get_amount1_delta(sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, liquidity: int, round_up: bool) -> int:
    """``liquidity * (sqrt(b) - sqrt(a))`` in token1, for an unsigned liquidity."""
    if sqrt_ratio_ax96 > sqrt_ratio_bx96:
        sqrt_ratio_ax96, sqrt_ratio_bx96 = sqrt_ratio_bx96, sqrt_ratio_ax96
    product = liquidity * (sqrt_ratio_bx96 - sqrt_ratio_ax96)
    if round_up:
        return -(-product >> _Q96_SHIFT)
    return product >> _Q96_SHIFT


def _to_int256(x: int) -> int:
    if x >= _INT256_LIMIT:
        raise SafeCastError("SafeCast: value does not fit int256")
    return x


def get_amount0_delta_signed(sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, liquidity: int) -> int:
    """Signed token0 amount for a signed liquidity delta: owed to the pool (up) or paid out (down, negative)."""
    if liquidity < 0:
        return -_to_int256(get_amount0_delta(sqrt_ratio_ax96, sqrt_ratio_bx96, -liquidity, False))
    return _to_int256(get_amount0_delta(sqrt_ratio_ax96, sqrt_ratio_bx96, liquidity, True))


def get_amount1_delta_signed(sqrt_ratio_ax96: int, sqrt_ratio_bx96: int, liquidity: int) -> int:
    """Signed token1 amount for a signed liquidity delta."""
    if liquidity < 0:
        return -_to_int256(get_amount1_delta(sqrt_ratio_ax96, sqrt_ratio_bx96, -liquidity, False))
    return _to_int256(get_amount1_delta(sqrt_ratio_ax96, sqrt_ratio_bx96, liquidity, True))
