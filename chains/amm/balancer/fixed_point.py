"""Balancer V2 ``FixedPoint`` (18-decimal unsigned fixed point), exact to the EVM.

Two ``pow`` generations exist on chain: the original library (``v1``: always ``LogExpMath.pow`` with a relative
error margin) and the later one (``v2``: exponents 1, 2 and 4 computed exactly with ``mul``).  Which one a pool
uses depends on its factory version, so ``powDown``/``powUp`` take ``version``.
"""

from __future__ import annotations

from typing import Literal

from chains.amm.balancer import log_exp_math
from chains.amm.balancer.errors import (
    ADD_OVERFLOW,
    DIV_INTERNAL,
    MUL_OVERFLOW,
    SUB_OVERFLOW,
    ZERO_DIVISION,
    require,
)

__all__ = [
    "FOUR",
    "MAX_POW_RELATIVE_ERROR",
    "ONE",
    "TWO",
    "PowVersion",
    "add",
    "complement",
    "divDown",
    "divUp",
    "mulDown",
    "mulUp",
    "powDown",
    "powUp",
    "sub",
]

PowVersion = Literal["v1", "v2"]

ONE = 10**18
TWO = 2 * ONE
FOUR = 4 * ONE
MAX_POW_RELATIVE_ERROR = 10_000  # 1e-14
_UINT256_MAX = 2**256 - 1


def add(a: int, b: int) -> int:
    c = a + b
    require(c <= _UINT256_MAX, ADD_OVERFLOW)
    return c


def sub(a: int, b: int) -> int:
    require(b <= a, SUB_OVERFLOW)
    return a - b


def _mul(a: int, b: int) -> int:
    product = a * b
    require(product <= _UINT256_MAX, MUL_OVERFLOW)
    return product


def mulDown(a: int, b: int) -> int:
    return _mul(a, b) // ONE


def mulUp(a: int, b: int) -> int:
    product = _mul(a, b)
    return 0 if product == 0 else (product - 1) // ONE + 1


def divDown(a: int, b: int) -> int:
    require(b != 0, ZERO_DIVISION)
    if a == 0:
        return 0
    a_inflated = a * ONE
    require(a_inflated <= _UINT256_MAX, DIV_INTERNAL)
    return a_inflated // b


def divUp(a: int, b: int) -> int:
    require(b != 0, ZERO_DIVISION)
    if a == 0:
        return 0
    a_inflated = a * ONE
    require(a_inflated <= _UINT256_MAX, DIV_INTERNAL)
    return (a_inflated - 1) // b + 1


def powDown(x: int, y: int, version: PowVersion = "v2") -> int:
    """``x^y`` rounded down: the raw ``LogExpMath.pow`` minus its maximum relative error (never negative)."""
    if version == "v2":
        if y == ONE:
            return x
        if y == TWO:
            return mulDown(x, x)
        if y == FOUR:
            square = mulDown(x, x)
            return mulDown(square, square)
    raw = log_exp_math.pow(x, y)
    max_error = add(mulUp(raw, MAX_POW_RELATIVE_ERROR), 1)
    return 0 if raw < max_error else sub(raw, max_error)


def powUp(x: int, y: int, version: PowVersion = "v2") -> int:
    """``x^y`` rounded up: the raw ``LogExpMath.pow`` plus its maximum relative error."""
    if version == "v2":
        if y == ONE:
            return x
        if y == TWO:
            return mulUp(x, x)
        if y == FOUR:
            square = mulUp(x, x)
            return mulUp(square, square)
    raw = log_exp_math.pow(x, y)
    max_error = add(mulUp(raw, MAX_POW_RELATIVE_ERROR), 1)
    return add(raw, max_error)


def complement(x: int) -> int:
    """``1 - x`` clamped at zero (``x < ONE ? ONE - x : 0``)."""
    return ONE - x if x < ONE else 0
