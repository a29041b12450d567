"""Balancer V2 ``LogExpMath``: exact port of ``solidity-utils/contracts/math/LogExpMath.sol``.

Signed 18-decimal fixed point.  Solidity's ``int256`` division truncates toward zero and ``%`` takes the sign
of the dividend; :func:`_div` / :func:`_mod` reproduce that, because the weighted pools' results depend on
this exact rounding.  ``pow`` takes the unsigned arguments of the Solidity function; the bounds checks raise
:class:`~chains.amm.balancer.errors.BalancerError` with the on-chain ``BAL#`` code.
"""

from __future__ import annotations

from chains.amm.balancer.errors import (
    INVALID_EXPONENT,
    OUT_OF_BOUNDS,
    PRODUCT_OUT_OF_BOUNDS,
    X_OUT_OF_BOUNDS,
    Y_OUT_OF_BOUNDS,
    require,
)

__all__ = ["MAX_NATURAL_EXPONENT", "MIN_NATURAL_EXPONENT", "exp", "ln", "log", "pow"]

ONE_18 = 10**18
ONE_20 = 10**20
ONE_36 = 10**36

MAX_NATURAL_EXPONENT = 130 * 10**18
MIN_NATURAL_EXPONENT = -41 * 10**18

LN_36_LOWER_BOUND = ONE_18 - 10**17
LN_36_UPPER_BOUND = ONE_18 + 10**17

MILD_EXPONENT_BOUND = 2**254 // ONE_20

# e^(x_n) for the decomposition: x0, x1 with no decimals in a_n; x2..x11 with 20 decimals.
x0 = 128000000000000000000
a0 = 38877084059945950922200000000000000000000000000000000000
x1 = 64000000000000000000
a1 = 6235149080811616882910000000
x2 = 3200000000000000000000
a2 = 7896296018268069516100000000000000
x3 = 1600000000000000000000
a3 = 888611052050787263676000000
x4 = 800000000000000000000
a4 = 298095798704172827474000
x5 = 400000000000000000000
a5 = 5459815003314423907810
x6 = 200000000000000000000
a6 = 738905609893065022723
x7 = 100000000000000000000
a7 = 271828182845904523536
x8 = 50000000000000000000
a8 = 164872127070012814685
x9 = 25000000000000000000
a9 = 128402541668774148407
x10 = 12500000000000000000
a10 = 113314845306682631683
x11 = 6250000000000000000
a11 = 106449445891785942956

_DECOMPOSITION_20 = ((x2, a2), (x3, a3), (x4, a4), (x5, a5), (x6, a6), (x7, a7), (x8, a8), (x9, a9))
_LN_DECOMPOSITION_20 = (*_DECOMPOSITION_20, (x10, a10), (x11, a11))


def _div(a: int, b: int) -> int:
    """Solidity ``int256`` division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _mod(a: int, b: int) -> int:
    """Solidity ``int256`` remainder: the sign of the dividend."""
    return a - _div(a, b) * b


def pow(x: int, y: int) -> int:
    """``x^y`` (both 18-decimal) as ``exp(y * ln(x))``; ``ln`` at 36 decimals when ``x`` is close to one."""
    if y == 0:
        return ONE_18
    if x == 0:
        return 0
    require(x >> 255 == 0, X_OUT_OF_BOUNDS)
    require(y < MILD_EXPONENT_BOUND, Y_OUT_OF_BOUNDS)
    if LN_36_LOWER_BOUND < x < LN_36_UPPER_BOUND:
        ln_36_x = _ln_36(x)
        logx_times_y = _div(ln_36_x, ONE_18) * y + _div(_mod(ln_36_x, ONE_18) * y, ONE_18)
    else:
        logx_times_y = _ln(x) * y
    logx_times_y = _div(logx_times_y, ONE_18)
    require(MIN_NATURAL_EXPONENT <= logx_times_y <= MAX_NATURAL_EXPONENT, PRODUCT_OUT_OF_BOUNDS)
    return exp(logx_times_y)


def exp(x: int) -> int:
    """``e^x`` for 18-decimal ``x`` in [-41, 130]."""
    require(MIN_NATURAL_EXPONENT <= x <= MAX_NATURAL_EXPONENT, INVALID_EXPONENT)
    if x < 0:
        return _div(ONE_18 * ONE_18, exp(-x))
    if x >= x0:
        x -= x0
        first_an = a0
    elif x >= x1:
        x -= x1
        first_an = a1
    else:
        first_an = 1
    x *= 100
    product = ONE_20
    for xn, an in _DECOMPOSITION_20:
        if x >= xn:
            x -= xn
            product = _div(product * an, ONE_20)
    series_sum = ONE_20
    term = x
    series_sum += term
    for n in range(2, 13):
        term = _div(_div(term * x, ONE_20), n)
        series_sum += term
    return _div(_div(product * series_sum, ONE_20) * first_an, 100)


def log(arg: int, base: int) -> int:
    """``log_base(arg)``, both 18-decimal."""
    if LN_36_LOWER_BOUND < base < LN_36_UPPER_BOUND:
        log_base = _ln_36(base)
    else:
        log_base = _ln(base) * ONE_18
    if LN_36_LOWER_BOUND < arg < LN_36_UPPER_BOUND:
        log_arg = _ln_36(arg)
    else:
        log_arg = _ln(arg) * ONE_18
    return _div(log_arg * ONE_18, log_base)


def ln(a: int) -> int:
    """Natural logarithm of an 18-decimal ``a > 0``."""
    require(a > 0, OUT_OF_BOUNDS)
    if LN_36_LOWER_BOUND < a < LN_36_UPPER_BOUND:
        return _div(_ln_36(a), ONE_18)
    return _ln(a)


def _ln(a: int) -> int:
    if a < ONE_18:
        return -_ln(_div(ONE_18 * ONE_18, a))
    total = 0
    if a >= a0 * ONE_18:
        a = _div(a, a0)
        total += x0
    if a >= a1 * ONE_18:
        a = _div(a, a1)
        total += x1
    total *= 100
    a *= 100
    for xn, an in _LN_DECOMPOSITION_20:
        if a >= an:
            a = _div(a * ONE_20, an)
            total += xn
    z = _div((a - ONE_20) * ONE_20, a + ONE_20)
    z_squared = _div(z * z, ONE_20)
    num = z
    series_sum = num
    for d in (3, 5, 7, 9, 11):
        num = _div(num * z_squared, ONE_20)
        series_sum += _div(num, d)
    series_sum *= 2
    return _div(total + series_sum, 100)


def _ln_36(x: int) -> int:
    x *= ONE_18
    z = _div((x - ONE_36) * ONE_36, x + ONE_36)
    z_squared = _div(z * z, ONE_36)
    num = z
    series_sum = num
    for d in (3, 5, 7, 9, 11, 13, 15):
        num = _div(num * z_squared, ONE_36)
        series_sum += _div(num, d)
    return series_sum * 2
