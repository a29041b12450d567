"""Balancer V1 ``BPool`` swap math (``BNum`` + ``BMath``), an exact integer port.

Balancer V1 pools hold raw token balances (no decimal scaling) and *denormalised* weights (each 1e18-scaled,
e.g. 8 and 2 for an 80/20 pool); only the ratio ``weightIn / weightOut`` enters a swap, so weights need not be
normalised.  Function names follow the Solidity ones::

    out = calc_out_given_in(balance_in, weight_in, balance_out, weight_out, amount_in, swap_fee)
    out = swap_exact_amount_in(...)   # the same, plus BPool's MAX_IN_RATIO (half the balance) check

``bpow`` is ``bpowi`` on the whole part of the exponent times the ``bpowApprox`` binomial series on the
fraction, stopped at ``BPOW_PRECISION`` (1e-10), as the contract computes it.  Reverts raise
:class:`BalancerV1Error` with the contract's message (``ERR_SUB_UNDERFLOW``, ``ERR_MAX_IN_RATIO``...).

The route finder uses it for Balancer V1 pools (its benchmark runs on real V1 snapshots in ``bench/data``).
"""

from __future__ import annotations

__all__ = [
    "BONE",
    "BPOW_PRECISION",
    "MAX_IN_RATIO",
    "BalancerV1Error",
    "bdiv",
    "bmul",
    "bpow",
    "calc_out_given_in",
    "calc_spot_price",
    "swap_exact_amount_in",
]

BONE = 10**18
MIN_BPOW_BASE = 1
MAX_BPOW_BASE = 2 * BONE - 1
BPOW_PRECISION = BONE // 10**10
MAX_IN_RATIO = BONE // 2
_UINT256_MAX = 2**256 - 1


class BalancerV1Error(ArithmeticError):
    """A revert of ``BNum``/``BPool`` (the message is the contract's ``ERR_*`` string)."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise BalancerV1Error(message)


def btoi(a: int) -> int:
    return a // BONE


def bfloor(a: int) -> int:
    return btoi(a) * BONE


def badd(a: int, b: int) -> int:
    c = a + b
    _require(c <= _UINT256_MAX, "ERR_ADD_OVERFLOW")
    return c


def bsub(a: int, b: int) -> int:
    _require(b <= a, "ERR_SUB_UNDERFLOW")
    return a - b


def bsub_sign(a: int, b: int) -> tuple[int, bool]:
    return (a - b, False) if a >= b else (b - a, True)


def bmul(a: int, b: int) -> int:
    c0 = a * b
    _require(c0 <= _UINT256_MAX, "ERR_MUL_OVERFLOW")
    c1 = c0 + BONE // 2
    _require(c1 <= _UINT256_MAX, "ERR_MUL_OVERFLOW")
    return c1 // BONE


def bdiv(a: int, b: int) -> int:
    _require(b != 0, "ERR_DIV_ZERO")
    c0 = a * BONE
    _require(c0 <= _UINT256_MAX, "ERR_DIV_INTERNAL")
    c1 = c0 + b // 2
    _require(c1 <= _UINT256_MAX, "ERR_DIV_INTERNAL")
    return c1 // b


def bpowi(a: int, n: int) -> int:
    z = a if n % 2 else BONE
    n //= 2
    while n:
        a = bmul(a, a)
        if n % 2:
            z = bmul(z, a)
        n //= 2
    return z


def bpow_approx(base: int, exp: int, precision: int) -> int:
    """The binomial series of ``base**exp`` for ``0 <= exp < 1``, summed until a term falls below
    ``precision``."""
    a = exp
    x, xneg = bsub_sign(base, BONE)
    term = BONE
    total = term
    negative = False
    i = 1
    while term >= precision:
        big_k = i * BONE
        c, cneg = bsub_sign(a, bsub(big_k, BONE))
        term = bmul(term, bmul(c, x))
        term = bdiv(term, big_k)
        if term == 0:
            break
        if xneg:
            negative = not negative
        if cneg:
            negative = not negative
        total = bsub(total, term) if negative else badd(total, term)
        i += 1
    return total


def bpow(base: int, exp: int) -> int:
    _require(base >= MIN_BPOW_BASE, "ERR_BPOW_BASE_TOO_LOW")
    _require(base <= MAX_BPOW_BASE, "ERR_BPOW_BASE_TOO_HIGH")
    whole = bfloor(exp)
    remain = bsub(exp, whole)
    whole_pow = bpowi(base, btoi(whole))
    if remain == 0:
        return whole_pow
    return bmul(whole_pow, bpow_approx(base, remain, BPOW_PRECISION))


def calc_spot_price(balance_in: int, weight_in: int, balance_out: int, weight_out: int, swap_fee: int) -> int:
    """``calcSpotPrice``: tokens in per token out at zero size, fee included (1e18-scaled)."""
    numer = bdiv(balance_in, weight_in)
    denom = bdiv(balance_out, weight_out)
    ratio = bdiv(numer, denom)
    scale = bdiv(BONE, bsub(BONE, swap_fee))
    return bmul(ratio, scale)


def calc_out_given_in(
    balance_in: int, weight_in: int, balance_out: int, weight_out: int, amount_in: int, swap_fee: int
) -> int:
    """``calcOutGivenIn``: ``balanceOut * (1 - (balanceIn / (balanceIn + amountIn*(1-fee)))^(wIn/wOut))``."""
    weight_ratio = bdiv(weight_in, weight_out)
    adjusted_in = bmul(amount_in, bsub(BONE, swap_fee))
    y = bdiv(balance_in, badd(balance_in, adjusted_in))
    foo = bpow(y, weight_ratio)
    bar = bsub(BONE, foo)
    return bmul(balance_out, bar)


def swap_exact_amount_in(
    balance_in: int, weight_in: int, balance_out: int, weight_out: int, amount_in: int, swap_fee: int
) -> int:
    """What ``BPool.swapExactAmountIn`` pays out (``minAmountOut = 0``, no price limit)."""
    _require(amount_in > 0, "ERR_ZERO_IN")
    _require(balance_in > 0 and balance_out > 0, "ERR_ZERO_BALANCE")
    _require(amount_in <= bmul(balance_in, MAX_IN_RATIO), "ERR_MAX_IN_RATIO")
    out = calc_out_given_in(balance_in, weight_in, balance_out, weight_out, amount_in, swap_fee)
    _require(out > 0, "ERR_ZERO_OUT")
    return out
