"""``FullMath`` (v3-core): 512-bit ``mulDiv`` and ``mulDivRoundingUp``; Python ints make it exact for free."""

from __future__ import annotations

from chains.amm.uniswap_v3.errors import FullMathError

__all__ = ["MAX_UINT256", "mul_div", "mul_div_rounding_up"]

MAX_UINT256 = (1 << 256) - 1


def mul_div(a: int, b: int, denominator: int) -> int:
    """``floor(a * b / denominator)``; reverts on a zero denominator or a result that overflows uint256."""
    if denominator == 0:
        raise FullMathError("FullMath: denominator is zero")
    result = a * b // denominator
    if result > MAX_UINT256:
        raise FullMathError("FullMath: result overflows uint256")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """``ceil(a * b / denominator)``; the contract also requires the rounded-down result < 2**256 - 1."""
    if denominator == 0:
        raise FullMathError("FullMath: denominator is zero")
    result, rem = divmod(a * b, denominator)
    if rem:
        if result >= MAX_UINT256:
            raise FullMathError("FullMath: result overflows uint256")
        result += 1
    elif result > MAX_UINT256:
        raise FullMathError("FullMath: result overflows uint256")
    return result
