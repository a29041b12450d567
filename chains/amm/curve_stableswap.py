"""Curve StableSwap math for plain pools (2 and 3 coins, e.g. 3pool), an integer port of the Vyper code.

NOT ON THE EXECUTION PATH.  No Curve bytecode is installable on these machines, so these functions are checked
only against degenbot's reference math (itself a port of the Vyper code), not against chain-recorded values.
Until a test compares them with real ``get_dy`` results recorded from chain, quotes from here must not size a
transaction.

Names follow the Vyper ones (``get_D``, ``get_y``, ``get_y_D``, ``get_dy``).  The pool generations differ in
small ways that change results by a few wei, so they are parameters rather than separate copies:

* ``a_precision``: pools since 2020-11 store ``A * A_PRECISION`` (100) and divide by it inside the formulas;
  3pool and the older pools have no ``A_PRECISION`` — pass ``a_precision=1`` with the plain ``A``.
* ``d_p_rule``: how ``D_P = D^(n+1) / (n^n prod x)`` is built — ``"per_coin"`` (``D_P * D / (x * N)``, 3pool and
  the factory pools), ``"per_coin_plus_one"`` (``D_P * D / (x * N + 1)``, compound/usdt/y/busd/susd/pax) or
  ``"ng"`` (StableSwap-NG: ``D_P * D / x`` for each coin, then ``/ N**N``).
* ``fee_after_rate`` in :func:`get_dy`: 3pool takes the fee from ``dy`` in coin units; factory and NG pools take
  it in normalised (``xp``) units before converting.

Vyper reverts on uint256 overflow, underflow and division by zero; here those raise
:class:`CurveMathError`.  The Newton loops raise it too when 255 iterations do not converge (Vyper ``raise``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = [
    "A_PRECISION",
    "FEE_DENOMINATOR",
    "PRECISION",
    "CurveMathError",
    "DPRule",
    "dynamic_fee",
    "get_D",
    "get_dy",
    "get_y",
    "get_y_D",
    "newton_y",
    "rates_from_decimals",
    "reduction_coefficient",
    "xp_mem",
]

A_PRECISION = 100
FEE_DENOMINATOR = 10**10
PRECISION = 10**18
MAX_ITERATIONS = 255
_UINT256_MAX = 2**256 - 1

DPRule = Literal["per_coin", "per_coin_plus_one", "ng"]


class CurveMathError(ArithmeticError):
    """A revert of the Vyper code: overflow/underflow/division by zero, bad index, or no convergence."""


def _u(x: int) -> int:
    """Vyper checked uint256: reverts below 0 or above 2**256-1."""
    if x < 0 or x > _UINT256_MAX:
        raise CurveMathError(f"uint256 out of range: {x}")
    return x


def _div(a: int, b: int) -> int:
    if b == 0:
        raise CurveMathError("division by zero")
    return _u(a) // b


def rates_from_decimals(decimals: Sequence[int]) -> list[int]:
    """``RATES`` of a plain pool: ``PRECISION * 10**(18 - decimals)`` (``PRECISION_MUL * 1e18``)."""
    return [PRECISION * 10 ** (18 - d) for d in decimals]


def xp_mem(rates: Sequence[int], balances: Sequence[int]) -> list[int]:
    """``_xp_mem``: balances normalised to 18 decimals, ``rate * balance / PRECISION``."""
    return [_u(r * b) // PRECISION for r, b in zip(rates, balances, strict=True)]


def _d_p(xp: Sequence[int], D: int, n: int, rule: DPRule) -> int:
    d_p = D
    if rule == "per_coin":
        for x in xp:
            d_p = _div(d_p * D, _u(x * n))
    elif rule == "per_coin_plus_one":
        for x in xp:
            d_p = _div(d_p * D, _u(x * n + 1))
    elif rule == "ng":
        for x in xp:
            d_p = _div(d_p * D, x)
        d_p //= n**n
    else:  # pragma: no cover - Literal guards this
        raise ValueError(f"unknown d_p_rule {rule!r}")
    return d_p


def get_D(xp: Sequence[int], amp: int, a_precision: int = A_PRECISION, d_p_rule: DPRule = "per_coin") -> int:
    """The invariant ``D`` by Newton's method, converged to within 1 wei (``get_D(xp, amp)``)."""
    n = len(xp)
    S = 0
    for x in xp:
        S = _u(S + x)
    if S == 0:
        return 0
    D = S
    Ann = _u(amp * n)
    for _ in range(MAX_ITERATIONS):
        D_P = _d_p(xp, D, n, d_p_rule)
        D_prev = D
        numerator = _u(_u(_u(Ann * S) // a_precision + _u(D_P * n)) * D)
        denominator = _u(_u(_u(Ann - a_precision) * D) // a_precision + _u((n + 1) * D_P))
        D = _div(numerator, denominator)
        if abs(D - D_prev) <= 1:
            return D
    raise CurveMathError("get_D did not converge")


def _solve_y(c: int, b: int, D: int) -> int:
    y = D
    for _ in range(MAX_ITERATIONS):
        y_prev = y
        y = _div(_u(y * y + c), _u(2 * y + b - D))
        if abs(y - y_prev) <= 1:
            return y
    raise CurveMathError("get_y did not converge")


def get_y(
    i: int,
    j: int,
    x: int,
    xp: Sequence[int],
    amp: int,
    a_precision: int = A_PRECISION,
    D: int | None = None,
    d_p_rule: DPRule = "per_coin",
) -> int:
    """``xp[j]`` after ``xp[i]`` becomes ``x``, keeping ``D`` (computed from ``xp`` when not given)."""
    n = len(xp)
    if i == j or not (0 <= i < n) or not (0 <= j < n):
        raise CurveMathError(f"bad coin indices i={i} j={j} for {n} coins")
    if D is None:
        D = get_D(xp, amp, a_precision, d_p_rule)
    Ann = _u(amp * n)
    c = D
    S_ = 0
    for k in range(n):
        if k == i:
            _x = x
        elif k != j:
            _x = xp[k]
        else:
            continue
        S_ = _u(S_ + _x)
        c = _div(c * D, _u(_x * n))
    c = _div(_u(c * D * a_precision), _u(Ann * n))
    b = _u(S_ + _div(D * a_precision, Ann))
    return _solve_y(c, b, D)


def get_y_D(A: int, i: int, xp: Sequence[int], D: int, a_precision: int = A_PRECISION) -> int:
    """``xp[i]`` that keeps the other balances at invariant ``D`` (used by ``calc_withdraw_one_coin``)."""
    n = len(xp)
    if not (0 <= i < n):
        raise CurveMathError(f"bad coin index i={i} for {n} coins")
    Ann = _u(A * n)
    c = D
    S_ = 0
    for k in range(n):
        if k == i:
            continue
        S_ = _u(S_ + xp[k])
        c = _div(c * D, _u(xp[k] * n))
    c = _div(_u(c * D * a_precision), _u(Ann * n))
    b = _u(S_ + _div(D * a_precision, Ann))
    return _solve_y(c, b, D)


def dynamic_fee(xpi: int, xpj: int, fee: int, offpeg_fee_multiplier: int) -> int:
    """StableSwap-NG ``_dynamic_fee``: the fee grows as the two balances move apart."""
    if offpeg_fee_multiplier <= FEE_DENOMINATOR:
        return fee
    xps2 = _u((xpi + xpj) ** 2)
    return _div(
        _u(offpeg_fee_multiplier * fee),
        _div(_u((offpeg_fee_multiplier - FEE_DENOMINATOR) * 4 * xpi * xpj), xps2) + FEE_DENOMINATOR,
    )


def get_dy(
    i: int,
    j: int,
    dx: int,
    balances: Sequence[int],
    amp: int,
    fee: int,
    rates: Sequence[int],
    *,
    a_precision: int = A_PRECISION,
    d_p_rule: DPRule = "per_coin",
    fee_after_rate: bool = False,
    offpeg_fee_multiplier: int = 0,
) -> int:
    """Coin ``j`` out for ``dx`` of coin ``i`` in, after the fee (``fee`` in 1e10 units), as ``get_dy``."""
    xp = xp_mem(rates, balances)
    x = _u(xp[i] + _u(dx * rates[i]) // PRECISION)
    y = get_y(i, j, x, xp, amp, a_precision, None, d_p_rule)
    dy = _u(xp[j] - y - 1)
    if fee_after_rate:
        dy = _u(dy * PRECISION) // rates[j]
        return _u(dy - _u(fee * dy) // FEE_DENOMINATOR)
    if offpeg_fee_multiplier > FEE_DENOMINATOR:
        fee = dynamic_fee((xp[i] + x) // 2, (xp[j] + y) // 2, fee, offpeg_fee_multiplier)
    _fee = _u(fee * dy) // FEE_DENOMINATOR
    return _u(_u(dy - _fee) * PRECISION) // rates[j]


# --------------------------------------------------------------------------- CryptoSwap helpers
# Not StableSwap: tricrypto's ``newton_y`` and the fee ``reduction_coefficient``.  Kept here because the
# reference vectors include them; the same "not on the execution path" caveat applies.


def reduction_coefficient(x: Sequence[int], fee_gamma: int) -> int:
    """``fee_gamma / (fee_gamma + (1 - K))`` with ``K = prod(x) / (sum(x) / N)**N``, all 1e18-scaled."""
    n = len(x)
    K = PRECISION
    S = sum(x)
    for xi in x:
        K = _div(K * n * xi, S)
    if fee_gamma > 0:
        K = _div(fee_gamma * PRECISION, _u(fee_gamma + PRECISION - K))
    return K


def newton_y(ANN: int, gamma: int, x: Sequence[int], D: int, i: int, a_multiplier: int = 10_000) -> int:
    """Tricrypto ``newton_y``: ``x[i]`` for invariant ``D`` given the other balances (Newton's method)."""
    n = len(x)
    n_n = n**n
    if not (n_n * a_multiplier - 1 < ANN < 10_000 * n_n * a_multiplier + 1):
        raise CurveMathError("unsafe values A")
    if not (10**10 - 1 < gamma < 10**16 + 1):
        raise CurveMathError("unsafe values gamma")
    if not (10**17 - 1 < D < 10**15 * 10**18 + 1):
        raise CurveMathError("unsafe values D")
    for k in range(n):
        if k != i:
            frac = _div(x[k] * 10**18, D)
            if not (10**16 - 1 < frac < 10**20 + 1):
                raise CurveMathError("unsafe values x[i]")
    y = D // n
    K0_i = 10**18
    S_i = 0
    x_sorted = list(x)
    x_sorted[i] = 0
    x_sorted.sort(reverse=True)
    convergence_limit = max(max(x_sorted[0], D) // 10**14, 100)
    for j in range(2, n + 1):
        _x = x_sorted[n - j]
        y = _div(y * D, _u(_x * n))  # small x first
        S_i += _x
    for j in range(n - 1):
        K0_i = _div(K0_i * x_sorted[j] * n, D)  # large x first
    for _ in range(MAX_ITERATIONS):
        y_prev = y
        K0 = _div(K0_i * y * n, D)
        S = S_i + y
        _g1k0 = gamma + 10**18
        _g1k0 = _g1k0 - K0 + 1 if _g1k0 > K0 else K0 - _g1k0 + 1
        mul1 = _div(_div(_div(10**18 * D, gamma) * _g1k0, gamma) * _g1k0 * a_multiplier, ANN)
        mul2 = 10**18 + _div(2 * 10**18 * K0, _g1k0)
        yfprime = 10**18 * y + S * mul2 + mul1
        _dyfprime = D * mul2
        if yfprime < _dyfprime:
            y = y_prev // 2
            continue
        yfprime -= _dyfprime
        fprime = _div(yfprime, y)
        y_minus = _div(mul1, fprime)
        y_plus = _div(yfprime + 10**18 * D, fprime) + _div(y_minus * 10**18, K0)
        y_minus += _div(10**18 * S, fprime)
        y = y_prev // 2 if y_plus < y_minus else y_plus - y_minus
        diff = abs(y - y_prev)
        if diff < max(convergence_limit, y // 10**14):
            frac = _div(y * 10**18, D)
            if not (10**16 - 1 < frac < 10**20 + 1):
                raise CurveMathError("unsafe value for y")
            return y
    raise CurveMathError("newton_y did not converge")
