"""The route finder: a token graph over every known pool, arbitrage cycles ranked in numpy, sized exactly.

What it does, in the order a block goes through it::

    finder = RouteFinder(pools_from_chain_state(state, book), base_tokens=[book.weth],
                         excluded_tokens=[dtt, pause], gas_price_wei=20 * 10**9)
    best = finder.best()                       # top-k exact opportunities, net of gas, best first
    ...                                        # a block is applied to `state` (pools mutate in place)
    best = finder.update(changed_pool_addresses)   # only cycles through those pools are re-evaluated
    route = finder.best_route(usdc, weth, 10**9)    # non-cycle path for a user's trade / CEX-DEX

* **Graph.** A ``networkx.MultiGraph``: tokens are nodes, each pool is one keyed edge per token pair
  (multi-token Curve/Balancer pools give every pair). Pools holding an excluded token (fee-on-transfer,
  revert-on-transfer: what the bot's token screen flags) are dropped at build time; pools with zero or dust
  liquidity stay enumerated but are masked out on every evaluation, so they never appear in a result and come
  back by themselves when liquidity returns.
* **Cycles.** Every simple cycle through a base token (WETH by default) of 2..``max_hops`` hops (3 by default,
  4 on request), each pool used at most once, enumerated once at build. A cycle is a row of directed-edge
  indices (padded with an identity edge), and a CSR index maps each pool to the cycles through it.
* **Ranking (vectorized).** Each directed edge is summarised by the Möbius map of a constant-product pool,
  ``out = p*x / (q + r*x)`` (V2: exact with ``p = γR_out, q = R_in, r = γ``; V3: the in-range virtual reserves
  ``L/√P``, ``L·√P``; Balancer weighted: the constant-product pool with the same first and second derivative at
  zero; Curve: the invariant's exact marginal rate, depth ≈ A × balance). Möbius maps compose (``P = p1p2, Q = q1q2,
  R = q2r1 + r2p1``), so a whole cycle is one map, its best input is ``(√(PQ) − Q)/R`` and its best gross profit
  ``(√P − √Q)²/R``. Net estimate = gross − gas units × gas price (in base-token units). All in numpy, over the
  affected cycles only on :meth:`RouteFinder.update`.
* **Exact re-check.** The top ``top_k`` (10) by estimated net profit are sized and quoted through the
  ``chains/amm`` integer math: closed form with integer ``isqrt`` for all-V2 cycles (then ±2 wei of local
  search for the library's rounding), otherwise a bracketed integer golden-section search (started from the
  numpy estimate, bracket grown by doubling) refined locally to ``rel_tol``. Results are cached per cycle until
  one of its pools changes.
* **Gas.** ``GasModel``: a fixed overhead per transaction plus gas per hop by protocol (defaults: each kind's
  :attr:`RouteKind.gas_per_hop`, documented in docs/routing.md). Gas cost in base-token raw units is
  ``ceil(units × gas_price_wei × base_per_eth)`` (1 for WETH; give ``base_per_eth`` for other base tokens).

Output: :class:`Opportunity` (and :class:`Route` for paths) carries, per :class:`Hop`, everything an executor
needs: pool address, protocol kind, token in/out (and their indices in the pool), ``zero_for_one``, fee,
amount in and out; plus the total input, expected output, gross and net profit. Amounts are ints (wei).
Curve legs have ``verified_math=False`` on the opportunity: the Curve port is not yet checked against chain
values (see ``chains/amm/curve_stableswap.py``) and must not size a transaction.

Pool kinds: every adapter class has a :class:`chains.kinds.PoolKind` and registers itself here with
:func:`register_route_kind` (its default gas per hop, and how to wrap a :class:`chains.state.chain.ChainState` pool
of that kind, which :func:`pools_from_chain_state` looks up by kind); docs/adding-a-pool-kind.md.

Bad input never crashes: an update naming an unknown pool, a pool with an unknown protocol or a quote the
math rejects is skipped and counted in ``mevsuite_routing_bad_input_total{reason}`` (registry optional).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import networkx as nx
import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from chains.amm import curve_stableswap as curve
from chains.amm.balancer import v1 as balancer_v1
from chains.amm.balancer import weighted_math
from chains.amm.uniswap_v2 import get_amount_out
from chains.amm.uniswap_v2.pool import V2PairState
from chains.amm.uniswap_v3.pool import V3PoolState, swap
from chains.kinds import PoolKind
from chains.state.chain import ChainState

__all__ = [
    "DEFAULT_GAS_OVERHEAD",
    "BalancerV1RoutePool",
    "BalancerWeightedRoutePool",
    "CurveRoutePool",
    "GasModel",
    "Hop",
    "Opportunity",
    "Route",
    "RouteFinder",
    "RouteKind",
    "RoutePool",
    "RouteQuoteError",
    "V2RoutePool",
    "V3RoutePool",
    "default_gas_per_hop",
    "golden_section_max",
    "pools_from_chain_state",
    "register_route_kind",
    "route_kind",
    "unregister_route_kind",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_GAS_OVERHEAD = 45_000  # 21,000 intrinsic + executor entry, profit check, final transfer
_Q96 = float(1 << 96)


class RouteQuoteError(ValueError):
    """A pool cannot quote this swap (zero liquidity, partial fill, the math reverts)."""


# ============================================================================================ pool adapters
class RoutePool:
    """One pool as the route finder sees it: tokens, an exact quote and a constant-product summary.

    Subclasses wrap the ``chains/amm`` state objects by reference: when the state mutates (``chains.state.chain``
    applies a block), :meth:`RouteFinder.update` with the pool's address picks it up.
    """

    kind: PoolKind
    address: str
    tokens: tuple[str, ...]
    verified: bool = True

    def replace_state(self, new: Any) -> None:
        """Take ``new`` as the pool's state (:meth:`RouteFinder.update` given a replacement); ``TypeError`` if it is
        not a state of this kind."""
        raise TypeError(f"cannot use a {type(new).__name__} as the state of a {self.kind} pool")

    def fee(self) -> int:
        """The pool's fee in its protocol's units (V2 bps, V3 hundredths of a bip, Curve 1e10, Balancer 1e18)."""
        raise NotImplementedError

    def quote(self, i: int, j: int, amount_in: int) -> int:
        """Exact output of token ``j`` for ``amount_in`` of token ``i`` (raw units); raises on a revert."""
        raise NotImplementedError

    def mobius(self, i: int, j: int) -> tuple[float, float, float]:
        """``(p, q, r)`` with ``out ≈ p*x / (q + r*x)`` near the current state."""
        raise NotImplementedError

    def liquidity(self) -> list[int]:
        """Per token (aligned with ``tokens``), the depth the dust rule compares with ``min_reserve``: reserves,
        balances, or for V3 the in-range virtual reserves (0 without in-range liquidity)."""
        raise NotImplementedError

    def zero_for_one(self, i: int, j: int) -> bool:
        return i < j


class V2RoutePool(RoutePool):
    """A Uniswap V2 pair (or fork), exact via ``chains.amm.uniswap_v2``."""

    kind = PoolKind.V2

    def __init__(self, pair: V2PairState) -> None:
        self.state = pair
        self.address = pair.address.lower()
        self.tokens = (pair.token0.lower(), pair.token1.lower())

    @classmethod
    def from_state(cls, address: str, pair: V2PairState, tokens: tuple[str, str] | None) -> V2RoutePool:
        return cls(pair)

    def replace_state(self, new: Any) -> None:
        if not isinstance(new, V2PairState):
            super().replace_state(new)
        self.state = new

    def fee(self) -> int:
        return self.state.fee_bps

    def reserves(self, i: int) -> tuple[int, int]:
        s = self.state
        return (s.reserve0, s.reserve1) if i == 0 else (s.reserve1, s.reserve0)

    def quote(self, i: int, j: int, amount_in: int) -> int:
        r_in, r_out = self.reserves(i)
        return get_amount_out(amount_in, r_in, r_out, self.state.fee_bps)

    def mobius(self, i: int, j: int) -> tuple[float, float, float]:
        r_in, r_out = self.reserves(i)
        g = (10_000 - self.state.fee_bps) / 10_000
        return g * r_out, float(r_in), g

    def mobius_int(self, i: int) -> tuple[int, int, int]:
        """The exact integer map of ``getAmountOut`` before its floor: ``(γ'R_out, 10⁴R_in, γ')``."""
        r_in, r_out = self.reserves(i)
        g = 10_000 - self.state.fee_bps
        return g * r_out, 10_000 * r_in, g

    def liquidity(self) -> list[int]:
        return [self.state.reserve0, self.state.reserve1]


class V3RoutePool(RoutePool):
    """A Uniswap V3 pool, exact via ``chains.amm.uniswap_v3.pool.swap`` (no price limit, full fill only)."""

    kind = PoolKind.V3

    def __init__(self, address: str, token0: str, token1: str, state: V3PoolState) -> None:
        self.state = state
        self.address = address.lower()
        self.tokens = (token0.lower(), token1.lower())

    @classmethod
    def from_state(cls, address: str, pool: V3PoolState, tokens: tuple[str, str] | None) -> V3RoutePool:
        if tokens is None:
            raise ValueError(f"no (token0, token1) for V3 pool {address}")
        return cls(address, tokens[0], tokens[1], pool)

    def replace_state(self, new: Any) -> None:
        if not isinstance(new, V3PoolState):
            super().replace_state(new)
        self.state = new

    def fee(self) -> int:
        return self.state.fee

    def quote(self, i: int, j: int, amount_in: int) -> int:
        if amount_in <= 0:
            raise RouteQuoteError("amount_in must be positive")
        zfo = i == 0
        res = swap(self.state, zero_for_one=zfo, amount_specified=amount_in)
        used = res.amount0 if zfo else res.amount1
        if used != amount_in:
            raise RouteQuoteError("the pool runs out of liquidity before taking all of amount_in")
        return -(res.amount1 if zfo else res.amount0)

    def mobius(self, i: int, j: int) -> tuple[float, float, float]:
        s = self.state
        sqrt_p = s.sqrt_price_x96 / _Q96
        liq = float(s.liquidity)
        if sqrt_p <= 0 or liq <= 0:
            return 0.0, 1.0, 1.0
        r0, r1 = liq / sqrt_p, liq * sqrt_p
        g = 1.0 - s.fee / 1_000_000
        return (g * r1, r0, g) if i == 0 else (g * r0, r1, g)

    def liquidity(self) -> list[int]:
        s = self.state
        if s.liquidity <= 0 or s.sqrt_price_x96 <= 0:
            return [0, 0]
        return [(s.liquidity << 96) // s.sqrt_price_x96, s.liquidity * s.sqrt_price_x96 >> 96]


class CurveRoutePool(RoutePool):
    """A Curve StableSwap plain pool, via ``chains.amm.curve_stableswap.get_dy`` (``verified = False``)."""

    kind = PoolKind.CURVE
    verified = False

    def __init__(
        self,
        address: str,
        tokens: Sequence[str],
        balances: Sequence[int],
        amp: int,
        fee: int,
        decimals: Sequence[int],
        *,
        a_precision: int = curve.A_PRECISION,
        d_p_rule: curve.DPRule = "per_coin",
        fee_after_rate: bool = False,
    ) -> None:
        self.address = address.lower()
        self.tokens = tuple(t.lower() for t in tokens)
        self.balances = list(balances)
        self.amp, self._fee, self.a_precision = amp, fee, a_precision
        self.rates = curve.rates_from_decimals(decimals)
        self.d_p_rule: curve.DPRule = d_p_rule
        self.fee_after_rate = fee_after_rate

    def fee(self) -> int:
        return self._fee

    def replace_state(self, new: Any) -> None:
        self.balances = _balances(self, new)

    def quote(self, i: int, j: int, amount_in: int) -> int:
        if amount_in <= 0:
            raise RouteQuoteError("amount_in must be positive")
        out = curve.get_dy(
            i,
            j,
            amount_in,
            self.balances,
            self.amp,
            self._fee,
            self.rates,
            a_precision=self.a_precision,
            d_p_rule=self.d_p_rule,
            fee_after_rate=self.fee_after_rate,
        )
        if out <= 0 or out >= self.balances[j]:
            raise RouteQuoteError("curve pool cannot pay this out")
        return out

    def mobius(self, i: int, j: int) -> tuple[float, float, float]:
        # Exact marginal rate of the invariant Ann S + D = Ann D + D^(n+1) / (n^n Π x) in floats:
        # dx_j/dx_i = (Ann + c/x_i) / (Ann + c/x_j), c = D^(n+1) / (n^n Π x); depth ≈ A × balance.
        xp = [r * b / 1e36 for r, b in zip(self.rates, self.balances, strict=True)]
        if min(xp) <= 0:
            return 0.0, 1.0, 1.0
        n = len(xp)
        ann = self.amp / self.a_precision * n  # Curve's Ann = A * n
        s = sum(xp)
        d = s
        prod = math.prod(xp)
        for _ in range(64):
            c = d ** (n + 1) / (n**n * prod)
            d_new = (ann * s + n * c) * d / ((ann - 1) * d + (n + 1) * c)
            if abs(d_new - d) <= 1e-12 * d:
                d = d_new
                break
            d = d_new
        c = d ** (n + 1) / (n**n * prod)
        m_norm = (ann + c / xp[i]) / (ann + c / xp[j])
        m_raw = m_norm * self.rates[i] / self.rates[j] * (1 - self._fee / 1e10)
        depth_in = self.balances[i] * max(1.0, self.amp / self.a_precision)
        return m_raw * depth_in, depth_in, 1.0

    def liquidity(self) -> list[int]:
        return list(self.balances)


class BalancerWeightedRoutePool(RoutePool):
    """A Balancer V2 weighted pool (normalised 1e18 weights, raw balances), via ``weighted_math``."""

    kind = PoolKind.BALANCER

    def __init__(
        self,
        address: str,
        tokens: Sequence[str],
        balances: Sequence[int],
        weights: Sequence[int],
        decimals: Sequence[int],
        swap_fee: int,
        version: Literal["v1", "v2"] = "v2",
    ) -> None:
        self.address = address.lower()
        self.tokens = tuple(t.lower() for t in tokens)
        self.balances, self.weights, self.decimals = list(balances), list(weights), list(decimals)
        self.swap_fee, self.version = swap_fee, version

    def fee(self) -> int:
        return self.swap_fee

    def replace_state(self, new: Any) -> None:
        self.balances = _balances(self, new)

    def quote(self, i: int, j: int, amount_in: int) -> int:
        if amount_in <= 0:
            raise RouteQuoteError("amount_in must be positive")
        return weighted_math.query_swap_given_in(
            amount_in,
            self.balances[i],
            self.balances[j],
            self.weights[i],
            self.weights[j],
            self.decimals[i],
            self.decimals[j],
            self.swap_fee,
            self.version,
        )

    def mobius(self, i: int, j: int) -> tuple[float, float, float]:
        return _weighted_mobius(
            self.balances[i], self.weights[i], self.balances[j], self.weights[j], self.swap_fee / 1e18
        )

    def liquidity(self) -> list[int]:
        return list(self.balances)


class BalancerV1RoutePool(BalancerWeightedRoutePool):
    """A Balancer V1 ``BPool`` (denormalised weights, raw balances), via :mod:`chains.amm.balancer.v1`."""

    kind = PoolKind.BALANCER_V1

    def __init__(
        self,
        address: str,
        tokens: Sequence[str],
        balances: Sequence[int],
        denorm_weights: Sequence[int],
        swap_fee: int,
    ) -> None:
        super().__init__(address, tokens, balances, denorm_weights, [18] * len(tokens), swap_fee, "v1")

    def quote(self, i: int, j: int, amount_in: int) -> int:
        return balancer_v1.swap_exact_amount_in(
            self.balances[i], self.weights[i], self.balances[j], self.weights[j], amount_in, self.swap_fee
        )


def _weighted_mobius(b_in: int, w_in: int, b_out: int, w_out: int, fee: float) -> tuple[float, float, float]:
    # The constant-product pool with the same first and second derivative at x = 0 as
    # b_out * (1 - (b_in / (b_in + x))**(w_in / w_out)), then the fee on the input (γ).
    ratio = w_in / w_out
    r_in = 2.0 * b_in / (ratio + 1.0)
    r_out = b_out * ratio * r_in / b_in
    g = 1.0 - fee
    return g * r_out, r_in, g


def _balances(pool: RoutePool, new: Any) -> list[int]:
    if not isinstance(new, Sequence):
        raise TypeError(f"cannot use a {type(new).__name__} as the state of a {pool.kind} pool")
    if len(new) != len(pool.tokens):
        raise ValueError(f"{pool.address}: {len(new)} balances for {len(pool.tokens)} tokens")
    return [int(b) for b in new]


# ============================================================================================ the kinds
# (pool address, its state in a ChainState, its (token0, token1) when the state does not carry them) -> adapter
FromChainState = Callable[[str, Any, tuple[str, str] | None], RoutePool]


@dataclass(frozen=True, slots=True)
class RouteKind:
    """The route finder's entry for one pool kind.  ``gas_per_hop``: the default gas of one swap leg of this kind
    inside the executor (transfer in, pool swap, callback; :class:`GasModel`); ``from_state``: the adapter of a
    :class:`~chains.state.chain.ChainState` pool of this kind (``None``: the kind is not followed from events, its
    adapters are built by the caller)."""

    kind: str  # a chains.kinds.PoolKind, or a kind defined outside chains (a string)
    gas_per_hop: int
    from_state: FromChainState | None = None


_ROUTE_KINDS: dict[str, RouteKind] = {}


def register_route_kind(kind: str, entry: RouteKind) -> None:
    """Register the route finder's entry for ``kind`` (a kind registered twice is a ``ValueError``)."""
    if entry.kind != kind:
        raise ValueError(f"route entry is for {entry.kind!r}, registered as {kind!r}")
    if kind in _ROUTE_KINDS:
        raise ValueError(f"pool kind {kind!r} already has a route entry")
    _ROUTE_KINDS[kind] = entry


def unregister_route_kind(kind: str) -> None:
    """Remove ``kind``'s entry (tests register kinds of their own and remove them afterwards)."""
    del _ROUTE_KINDS[kind]


def route_kind(kind: str) -> RouteKind:
    """The entry of ``kind``; ``KeyError`` naming the registered kinds if there is none."""
    try:
        return _ROUTE_KINDS[kind]
    except KeyError:
        raise KeyError(
            f"the route finder has no pool kind {kind!r} (have: {', '.join(_ROUTE_KINDS)})"
        ) from None


def default_gas_per_hop() -> dict[str, int]:
    """Gas per hop of every registered kind (GasModel's default; measured orders of magnitude from mainnet
    traces, override with ``GasModel(per_hop=...)``)."""
    return {k: e.gas_per_hop for k, e in _ROUTE_KINDS.items()}


register_route_kind(PoolKind.V2, RouteKind(PoolKind.V2, 60_000, V2RoutePool.from_state))
register_route_kind(PoolKind.V3, RouteKind(PoolKind.V3, 100_000, V3RoutePool.from_state))
register_route_kind(PoolKind.CURVE, RouteKind(PoolKind.CURVE, 130_000))
register_route_kind(PoolKind.BALANCER, RouteKind(PoolKind.BALANCER, 110_000))
register_route_kind(PoolKind.BALANCER_V1, RouteKind(PoolKind.BALANCER_V1, 100_000))


def pools_from_chain_state(
    state: ChainState, v3_tokens: Mapping[str, tuple[str, str]] | Any
) -> list[RoutePool]:
    """Adapters for every pool of ``state``, each built by its kind's :attr:`RouteKind.from_state` (by reference:
    they follow the state's updates).

    ``v3_tokens`` maps a pool address to ``(token0, token1)`` for the kinds whose state does not carry its tokens
    (V3), or is an ``AddressBook`` (its pool list).
    """
    if not isinstance(v3_tokens, Mapping):
        v3_tokens = {p.address: (p.token0, p.token1) for p in v3_tokens.pools}
    tokens = {k.lower(): v for k, v in v3_tokens.items()}
    out: list[RoutePool] = []
    for kind, pools in state.pools.items():
        from_state = route_kind(kind).from_state
        if from_state is None:
            raise ValueError(f"the route finder cannot wrap a chain-state pool of kind {kind!r}")
        out.extend(from_state(address, pool, tokens.get(address.lower())) for address, pool in pools.items())
    return out


# ============================================================================================ results
@dataclass(frozen=True, slots=True)
class Hop:
    """One swap of a route, as an executor performs it."""

    pool: str
    kind: PoolKind
    token_in: str
    token_out: str
    index_in: int  # the tokens' positions in the pool (Curve i/j, Balancer indices; 0/1 for Uniswap)
    index_out: int
    zero_for_one: bool
    fee: int
    amount_in: int
    amount_out: int


@dataclass(frozen=True, slots=True)
class Route:
    """A path between two tokens, quoted exactly."""

    hops: tuple[Hop, ...]
    amount_in: int
    amount_out: int


@dataclass(frozen=True, slots=True)
class Opportunity:
    """An arbitrage cycle from ``base_token`` back to it, sized and quoted exactly (raw base-token units)."""

    cycle_id: int
    base_token: str
    hops: tuple[Hop, ...]
    amount_in: int
    amount_out: int
    gross_profit: int
    gas_units: int
    gas_cost: int
    net_profit: int
    verified_math: bool

    @property
    def pools(self) -> tuple[str, ...]:
        return tuple(h.pool for h in self.hops)


@dataclass(frozen=True)
class GasModel:
    """Gas of an arbitrage transaction: ``overhead + Σ per_hop[kind]``."""

    overhead: int = DEFAULT_GAS_OVERHEAD
    per_hop: Mapping[str, int] = field(default_factory=default_gas_per_hop)

    def units(self, kinds: Iterable[str]) -> int:
        return self.overhead + sum(self.per_hop[k] for k in kinds)


# ============================================================================================ sizing
def golden_section_max(
    f: Callable[[int], int | None], x0: int, *, rel_tol: float = 1e-3, x_max: int = 1 << 200
) -> tuple[int, int | None]:
    """Integer maximiser of a (near-)unimodal ``f`` (``None`` = infeasible, e.g. a revert) near ``x0``.

    Brackets by doubling/halving from ``x0``, then golden-section until the bracket is narrower than
    ``max(2, rel_tol * x)``, then scans the few integers left. Returns ``(x, f(x))``; ``f(x)`` is ``None`` when
    nothing in the bracket was feasible.
    """
    cache: dict[int, int | None] = {}

    def val(x: int) -> float:
        if x not in cache:
            cache[x] = f(x)
        v = cache[x]
        return -math.inf if v is None else float(v)

    x0 = max(1, min(x0, x_max))
    lo, mid = max(1, x0 // 2), x0
    # grow upward while improving
    hi = min(x_max, 2 * mid)
    while hi > mid and val(hi) > val(mid):
        lo, mid = mid, hi
        hi = min(x_max, 2 * hi)
    # shrink downward while the lower point is better (or the middle one infeasible)
    while lo < mid and (val(lo) > val(mid) or val(mid) == -math.inf):
        hi, mid = mid, lo
        lo = max(1, lo // 2)
    a, b = lo, hi
    invphi = (math.sqrt(5) - 1) / 2
    c = b - int((b - a) * invphi)
    d = a + int((b - a) * invphi)
    while b - a > max(64, int(rel_tol * max(a, 1))):
        if not a < c < d < b:
            c, d = a + (b - a) // 3, b - (b - a) // 3
        if val(c) >= val(d):
            b, d = d, c
            c = b - int((b - a) * invphi)
        else:
            a, c = c, d
            d = a + int((b - a) * invphi)
    best_x = max(cache, key=lambda x: (val(x), -x))
    # an optimum on a cliff (a pool's max-in ratio, a V3 pool running dry): bisect to the last feasible wei
    cliff = min((x for x, v in cache.items() if v is None and x > best_x), default=None)
    if cliff is not None and val(best_x) > -math.inf:
        lo_c = best_x
        while cliff - lo_c > 1:
            m = (lo_c + cliff) // 2
            if val(m) == -math.inf:
                cliff = m
            elif val(m) >= val(lo_c):
                lo_c = m
            else:
                break
        best_x = max(cache, key=lambda x: (val(x), -x))
    lo_s, hi_s = max(1, min(a, best_x) - 1), max(b, best_x) + 1
    if hi_s - lo_s <= 64:
        for x in range(lo_s, hi_s + 1):
            val(x)
        best_x = max(cache, key=lambda x: (val(x), -x))
    return best_x, cache[best_x]


# ============================================================================================ the finder
@dataclass(slots=True)
class _Metrics:
    bad_input: Counter
    updates: Counter
    exact_checks: Counter
    cycles: Gauge


def _metrics(registry: CollectorRegistry | None) -> _Metrics:
    return _Metrics(
        bad_input=Counter(
            "mevsuite_routing_bad_input_total",
            "Inputs the route finder skipped, by reason",
            ["reason"],
            registry=registry,
        ),
        updates=Counter("mevsuite_routing_updates_total", "Incremental updates applied", registry=registry),
        exact_checks=Counter(
            "mevsuite_routing_exact_checks_total", "Cycles sized with the exact math", registry=registry
        ),
        cycles=Gauge("mevsuite_routing_cycles", "Candidate cycles enumerated", registry=registry),
    )


class RouteFinder:
    """Token graph, cycles, vectorized ranking, exact sizing and incremental updates (module docstring)."""

    def __init__(
        self,
        pools: Iterable[RoutePool],
        *,
        base_tokens: Sequence[str],
        max_hops: int = 3,
        excluded_tokens: Iterable[str] = (),
        gas: GasModel | None = None,
        gas_price_wei: int = 0,
        base_per_eth: Mapping[str, Fraction | int] | None = None,
        top_k: int = 10,
        min_profit: int = 0,
        min_reserve: int | Mapping[str, int] = 1_000,
        rel_tol: float = 1e-3,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if not 2 <= max_hops <= 4:
            raise ValueError(f"max_hops must be 2..4, not {max_hops}")
        if gas_price_wei < 0:
            raise ValueError("gas_price_wei must be >= 0")
        self.metrics = _metrics(registry)
        self.base_tokens = tuple(dict.fromkeys(t.lower() for t in base_tokens))
        if not self.base_tokens:
            raise ValueError("at least one base token is needed")
        self.max_hops, self.top_k, self.min_profit = max_hops, top_k, min_profit
        self.rel_tol = rel_tol
        if isinstance(min_reserve, Mapping):
            self._min_reserve: dict[str, int] = {t.lower(): int(v) for t, v in min_reserve.items()}
            self._min_reserve_default = int(self._min_reserve.pop("*", 1_000))
        else:
            self._min_reserve, self._min_reserve_default = {}, int(min_reserve)
        self.excluded = frozenset(t.lower() for t in excluded_tokens)
        self.gas = gas or GasModel()
        self.base_per_eth: dict[str, Fraction] = {
            t.lower(): Fraction(v) for t, v in (base_per_eth or {}).items()
        }
        self.pools: list[RoutePool] = []
        self.pool_index: dict[str, int] = {}
        self.dust_at_build: list[str] = []  # left out of the graph; a rebuild picks them up
        for pool in pools:
            if pool.address in self.pool_index:
                self.metrics.bad_input.labels("duplicate_pool").inc()
                continue
            if pool.kind not in self.gas.per_hop:
                self.metrics.bad_input.labels("unknown_protocol").inc()
                continue
            if self.excluded.intersection(pool.tokens):
                self.metrics.bad_input.labels("excluded_token").inc()
                continue
            if self.is_dust(pool):
                self.metrics.bad_input.labels("dust_pool").inc()
                self.dust_at_build.append(pool.address)
                continue
            self.pool_index[pool.address] = len(self.pools)
            self.pools.append(pool)
        self.graph: nx.MultiGraph[str] = nx.MultiGraph()
        self._build_edges()
        self._enumerate_cycles()
        self._exact_cache: dict[int, Opportunity | None] = {}
        self.set_gas_price(gas_price_wei)

    @classmethod
    def from_chain_state(cls, state: ChainState, book: Any, **kwargs: Any) -> RouteFinder:
        """A finder over every pool of ``state`` (``book``: the ``AddressBook``), WETH as the base token unless
        ``base_tokens`` is given. Exclusions stay the caller's (the bot's token screen): pass ``excluded_tokens``."""
        kwargs.setdefault("base_tokens", [book.weth])
        return cls(pools_from_chain_state(state, book), **kwargs)

    # ------------------------------------------------------------------ build
    def is_dust(self, pool: RoutePool) -> bool:
        """Zero or dust liquidity: some token's depth below its ``min_reserve`` (per token, ``"*"`` default)."""
        get = self._min_reserve.get
        d = self._min_reserve_default
        return any(
            amount < get(t, d) or amount <= 0 for t, amount in zip(pool.tokens, pool.liquidity(), strict=True)
        )

    def _build_edges(self) -> None:
        self.edge_pool: list[int] = []
        self.edge_ij: list[tuple[int, int]] = []
        self._pool_edges: list[list[int]] = []
        for pidx, pool in enumerate(self.pools):
            ids = []
            n = len(pool.tokens)
            for i in range(n):
                for j in range(n):
                    if i != j:
                        ids.append(len(self.edge_pool))
                        self.edge_pool.append(pidx)
                        self.edge_ij.append((i, j))
                        if i < j:
                            self.graph.add_edge(pool.tokens[i], pool.tokens[j], key=pool.address)
            self._pool_edges.append(ids)
        n_edges = len(self.edge_pool)
        self.identity_edge = n_edges  # p = q = 1, r = 0: pads short cycles
        self._p = np.zeros(n_edges + 1)
        self._q = np.ones(n_edges + 1)
        self._r = np.ones(n_edges + 1)
        self._p[n_edges], self._r[n_edges] = 1.0, 0.0
        self._edge_of: dict[tuple[int, int, int], int] = {
            (self.edge_pool[e], *self.edge_ij[e]): e for e in range(n_edges)
        }
        for pidx in range(len(self.pools)):
            self._refresh_pool(pidx)

    def _refresh_pool(self, pidx: int) -> None:
        pool = self.pools[pidx]
        dust = self.is_dust(pool)
        for e in self._pool_edges[pidx]:
            i, j = self.edge_ij[e]
            p, q, r = (0.0, 1.0, 1.0) if dust else pool.mobius(i, j)
            if not (math.isfinite(p) and math.isfinite(q) and math.isfinite(r)) or q <= 0:
                p, q, r = 0.0, 1.0, 1.0
            self._p[e], self._q[e], self._r[e] = p, q, r

    def _enumerate_cycles(self) -> None:
        rows: list[list[int]] = []
        bases: list[int] = []
        adjacency: dict[str, list[tuple[int, int, int, str]]] = {}
        for pidx, pool in enumerate(self.pools):
            for i, t in enumerate(pool.tokens):
                for j, u in enumerate(pool.tokens):
                    if i != j:
                        adjacency.setdefault(t, []).append((pidx, i, j, u))
        edge_of = self._edge_of
        for b_idx, base in enumerate(self.base_tokens):
            path: list[int] = []
            used_pools: set[int] = set()
            visited = {base}

            def dfs(
                token: str,
                depth: int,
                b_idx: int = b_idx,
                base: str = base,
                path: list[int] = path,
                used_pools: set[int] = used_pools,
                visited: set[str] = visited,
            ) -> None:
                for pidx, i, j, u in adjacency.get(token, ()):
                    if pidx in used_pools:
                        continue
                    if u == base:
                        if depth >= 1:
                            rows.append([*path, edge_of[(pidx, i, j)]])
                            bases.append(b_idx)
                        continue
                    if depth + 1 >= self.max_hops or u in visited:
                        continue
                    path.append(edge_of[(pidx, i, j)])
                    used_pools.add(pidx)
                    visited.add(u)
                    dfs(u, depth + 1)
                    visited.discard(u)
                    used_pools.discard(pidx)
                    path.pop()

            dfs(base, 0)
        n = len(rows)
        cyc = np.full((n, self.max_hops), self.identity_edge, dtype=np.int64)
        lens = np.zeros(n, dtype=np.int64)
        for k, row in enumerate(rows):
            cyc[k, : len(row)] = row
            lens[k] = len(row)
        self.cycles: IntArray = cyc
        self.cycle_len: IntArray = lens
        self.cycle_base: IntArray = np.asarray(bases, dtype=np.int64)
        # CSR: pool -> cycles through it
        edge_pool = np.asarray([*self.edge_pool, -1], dtype=np.int64)
        flat_pool = edge_pool[cyc].ravel()
        flat_cycle = np.repeat(np.arange(n, dtype=np.int64), self.max_hops)
        keep = flat_pool >= 0
        flat_pool, flat_cycle = flat_pool[keep], flat_cycle[keep]
        order = np.argsort(flat_pool, kind="stable")
        self._pc_cycles: IntArray = flat_cycle[order]
        self._pc_offsets: IntArray = np.searchsorted(flat_pool[order], np.arange(len(self.pools) + 1))
        self.metrics.cycles.set(n)

    # ------------------------------------------------------------------ gas
    def set_gas_price(self, gas_price_wei: int) -> None:
        """Change the gas price (re-ranks every cycle)."""
        if gas_price_wei < 0:
            raise ValueError("gas_price_wei must be >= 0")
        self.gas_price_wei = gas_price_wei
        kinds_gas = np.asarray(
            [*(self.gas.per_hop[self.pools[p].kind] for p in self.edge_pool), 0], dtype=np.int64
        )
        self.cycle_gas: IntArray = self.gas.overhead + kinds_gas[self.cycles].sum(axis=1)
        rates = []
        for base in self.base_tokens:
            rate = self._rate(base)
            rates.append(float(rate))
        rate_arr = np.asarray(rates) if rates else np.zeros(0)
        self.cycle_gas_cost_f: FloatArray = (
            self.cycle_gas.astype(np.float64) * float(gas_price_wei) * rate_arr[self.cycle_base]
            if len(self.cycle_base)
            else np.zeros(0)
        )
        self._exact_cache.clear()
        self._estimate_all()

    def _rate(self, base: str) -> Fraction:
        if base in self.base_per_eth:
            return self.base_per_eth[base]
        if base == self.base_tokens[0] or self.gas_price_wei == 0:
            return Fraction(
                1
            )  # the first base token is the gas token (WETH) unless base_per_eth says otherwise
        raise ValueError(f"base token {base} needs a base_per_eth rate to price gas")

    def gas_cost(self, gas_units: int, base: str) -> int:
        """``ceil(units × gas price × base_per_eth)`` in base-token raw units."""
        v = gas_units * self.gas_price_wei * self._rate(base)
        return -((-v.numerator) // v.denominator)

    # ------------------------------------------------------------------ ranking
    def _estimate(self, ids: IntArray) -> tuple[FloatArray, FloatArray]:
        e = self.cycles[ids]
        p, q, r = self._p, self._q, self._r
        P, Q, R = p[e[:, 0]], q[e[:, 0]], r[e[:, 0]]
        for h in range(1, self.max_hops):
            eh = e[:, h]
            p2, q2, r2 = p[eh], q[eh], r[eh]
            R = q2 * R + r2 * P
            P = P * p2
            Q = Q * q2
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            sp, sq = np.sqrt(P), np.sqrt(Q)
            gross = np.where(P > Q, (sp - sq) ** 2 / R, 0.0)
            x = np.where(P > Q, (sp * sq - Q) / R, 0.0)
        gross = np.nan_to_num(gross, nan=0.0, posinf=0.0)
        return gross, np.nan_to_num(x, nan=0.0, posinf=0.0)

    def _estimate_all(self) -> None:
        ids = np.arange(len(self.cycles), dtype=np.int64)
        self.est_gross, self.est_x = self._estimate(ids)
        self.est_net: FloatArray = self.est_gross - self.cycle_gas_cost_f

    def affected_cycles(self, pool_indices: Iterable[int]) -> IntArray:
        """Cycle ids through any of these pools (CSR lookup)."""
        off = self._pc_offsets
        parts = [self._pc_cycles[off[p] : off[p + 1]] for p in pool_indices]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        mask = np.zeros(len(self.cycles), dtype=bool)
        for part in parts:
            mask[part] = True
        return np.flatnonzero(mask)

    def update(self, changed: Iterable[str] | Mapping[str, Any]) -> list[Opportunity]:
        """Re-evaluate only the cycles through ``changed`` pools; returns :meth:`best`.

        ``changed`` lists pool addresses whose state objects were mutated in place (``chains.state.chain`` does so), or
        maps an address to a replacement state object (``V2PairState``, ``V3PoolState``, or for Curve/Balancer
        a new ``balances`` list).
        """
        self.metrics.updates.inc()
        replace = changed if isinstance(changed, Mapping) else None
        pidxs: list[int] = []
        for address in changed:
            pidx = self.pool_index.get(address.lower())
            if pidx is None:
                self.metrics.bad_input.labels("unknown_pool").inc()
                continue
            if replace is not None:
                self.pools[pidx].replace_state(replace[address])
            self._refresh_pool(pidx)
            pidxs.append(pidx)
        ids = self.affected_cycles(pidxs)
        if len(ids):
            gross, x = self._estimate(ids)
            self.est_gross[ids], self.est_x[ids] = gross, x
            self.est_net[ids] = gross - self.cycle_gas_cost_f[ids]
            if self._exact_cache:
                dirty = np.zeros(len(self.cycles), dtype=bool)
                dirty[ids] = True
                for c in [c for c in self._exact_cache if dirty[c]]:
                    del self._exact_cache[c]
        return self.best()

    def ranked(self, k: int | None = None) -> IntArray:
        """Cycle ids with a positive estimated gross profit, best estimated net first (at most ``k``)."""
        k = self.top_k if k is None else k
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        cand = np.flatnonzero(self.est_gross > 0)
        if len(cand) > k:
            part = np.argpartition(-self.est_net[cand], k - 1)[:k]
            cand = cand[part]
        return cand[np.argsort(-self.est_net[cand], kind="stable")]

    def best(self, k: int | None = None) -> list[Opportunity]:
        """The top ``k`` cycles by estimate, sized exactly, those with ``net_profit > min_profit``, best first."""
        out = []
        for c in self.ranked(k):
            opp = self.exact(int(c))
            if opp is not None and opp.net_profit > self.min_profit:
                out.append(opp)
        out.sort(key=lambda o: -o.net_profit)
        return out

    def all_profitable(self) -> list[Opportunity]:
        """Every cycle whose exact net profit exceeds ``min_profit`` (exact-checks all positive estimates)."""
        return self.best(k=len(self.cycles))

    # ------------------------------------------------------------------ exact
    def cycle_hops(self, cycle_id: int) -> list[tuple[RoutePool, int, int]]:
        n = int(self.cycle_len[cycle_id])
        return [(self.pools[self.edge_pool[e]], *self.edge_ij[e]) for e in self.cycles[cycle_id, :n].tolist()]

    def quote_path(self, hops: Sequence[tuple[RoutePool, int, int]], amount_in: int) -> list[int] | None:
        """Exact amounts along ``hops`` (``[amount_in, out1, out2, ...]``) or ``None`` if any hop reverts."""
        amounts = [amount_in]
        try:
            for pool, i, j in hops:
                amounts.append(pool.quote(i, j, amounts[-1]))
        except (ArithmeticError, ValueError):
            return None
        return amounts

    def size_cycle(self, cycle_id: int) -> tuple[int, int | None]:
        """The exact-math optimal input of a cycle and its gross profit (``None``: nothing feasible)."""
        hops = self.cycle_hops(cycle_id)

        def profit(x: int) -> int | None:
            amounts = self.quote_path(hops, x)
            return None if amounts is None else amounts[-1] - x

        v2_maps = [p.mobius_int(i) for p, i, _ in hops if isinstance(p, V2RoutePool)]
        if len(v2_maps) == len(hops):
            x = v2_closed_form(v2_maps)
            if x <= 0:
                return 1, profit(1)
            return golden_section_local(profit, x, 2)
        x0 = int(self.est_x[cycle_id]) if self.est_x[cycle_id] >= 1 else 1
        return golden_section_max(profit, x0, rel_tol=self.rel_tol)

    def exact(self, cycle_id: int) -> Opportunity | None:
        """The cycle sized and quoted exactly (cached until one of its pools changes)."""
        if cycle_id in self._exact_cache:
            return self._exact_cache[cycle_id]
        self.metrics.exact_checks.inc()
        hops = self.cycle_hops(cycle_id)
        opp: Opportunity | None = None
        if not any(self.is_dust(p) for p, _, _ in hops):
            x, gross = self.size_cycle(cycle_id)
            amounts = self.quote_path(hops, x) if gross is not None else None
            if amounts is not None:
                base = self.base_tokens[int(self.cycle_base[cycle_id])]
                gas_units = int(self.cycle_gas[cycle_id])
                cost = self.gas_cost(gas_units, base)
                opp = Opportunity(
                    cycle_id=cycle_id,
                    base_token=base,
                    hops=_hops(hops, amounts),
                    amount_in=x,
                    amount_out=amounts[-1],
                    gross_profit=amounts[-1] - x,
                    gas_units=gas_units,
                    gas_cost=cost,
                    net_profit=amounts[-1] - x - cost,
                    verified_math=all(p.verified for p, _, _ in hops),
                )
        self._exact_cache[cycle_id] = opp
        return opp

    # ------------------------------------------------------------------ paths
    def paths(
        self, token_in: str, token_out: str, max_hops: int | None = None
    ) -> list[list[tuple[RoutePool, int, int]]]:
        """Every simple path (no token or pool twice) from ``token_in`` to ``token_out`` over usable pools."""
        token_in, token_out = token_in.lower(), token_out.lower()
        limit = max_hops or self.max_hops
        if token_in not in self.graph or token_out not in self.graph or token_in == token_out:
            self.metrics.bad_input.labels("unknown_token").inc()
            return []
        out: list[list[tuple[RoutePool, int, int]]] = []
        for edge_path in nx.all_simple_edge_paths(self.graph, token_in, token_out, cutoff=limit):
            hops: list[tuple[RoutePool, int, int]] = []
            t = token_in
            for a, b, key in edge_path:
                nxt = b if a == t else a
                pool = self.pools[self.pool_index[key]]
                if self.is_dust(pool):
                    break
                hops.append((pool, pool.tokens.index(t), pool.tokens.index(nxt)))
                t = nxt
            else:
                out.append(hops)
        return out

    def best_route(
        self, token_in: str, token_out: str, amount_in: int, max_hops: int | None = None
    ) -> Route | None:
        """The path giving the most ``token_out`` for ``amount_in`` (exact quotes), or ``None``."""
        if amount_in <= 0:
            self.metrics.bad_input.labels("bad_amount").inc()
            return None
        best: Route | None = None
        for hops in self.paths(token_in, token_out, max_hops):
            amounts = self.quote_path(hops, amount_in)
            if amounts is not None and (best is None or amounts[-1] > best.amount_out):
                best = Route(_hops(hops, amounts), amount_in, amounts[-1])
        return best


def _hops(hops: Sequence[tuple[RoutePool, int, int]], amounts: Sequence[int]) -> tuple[Hop, ...]:
    return tuple(
        Hop(
            pool=p.address,
            kind=p.kind,
            token_in=p.tokens[i],
            token_out=p.tokens[j],
            index_in=i,
            index_out=j,
            zero_for_one=p.zero_for_one(i, j),
            fee=p.fee(),
            amount_in=amounts[k],
            amount_out=amounts[k + 1],
        )
        for k, (p, i, j) in enumerate(hops)
    )


def v2_closed_form(maps: Sequence[tuple[int, int, int]]) -> int:
    """Optimal input of a chain of constant-product maps ``out = p x / (q + r x)`` (exact integers).

    The chain composes to one map ``(P, Q, R)``; ``d/dx (P x/(Q + R x) − x) = 0`` gives
    ``x* = (√(PQ) − Q) / R``, rounded down; 0 when the chain is not profitable (``P <= Q``).
    """
    p, q, r = maps[0]
    for p2, q2, r2 in maps[1:]:
        p, q, r = p * p2, q * q2, q2 * r + r2 * p
    if p <= q:
        return 0
    return (math.isqrt(p * q) - q) // r


def golden_section_local(f: Callable[[int], int | None], x: int, radius: int) -> tuple[int, int | None]:
    """Best of ``f`` over ``x - radius .. x + radius`` (the closed form's rounding neighbourhood)."""
    best_x, best_v = x, f(x)
    for y in range(max(1, x - radius), x + radius + 1):
        v = f(y)
        if v is not None and (best_v is None or v > best_v):
            best_x, best_v = y, v
    return best_x, best_v
