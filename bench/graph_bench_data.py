"""Pool graphs for the route-finder benchmark and tests: a seeded synthetic graph and the real Balancer V1 one.

* :func:`synthetic_graph` (``n_pools=10_000, seed=1``) builds V2, V3, Balancer weighted and Curve pools whose
  shapes are taken from real data (numbers measured on the Balancer V1 snapshot ``0bf94aa7ece3``, 1,255 pools,
  and the devnet's mainnet-shaped pools; see docs/routing.md "The synthetic graph"):

  - token hubs: WETH is in 48 % of the pools (608 of 1,255 in the snapshot), the next hubs DAI/USDC/... follow
    the snapshot's degree sequence (272, 197, 123, 89 ... pools), the long tail is Zipf-like, so most tokens are
    in one or two pools;
  - at most ``max_pools_per_pair`` (6) pools per token pair (mainnet: V2, Sushi, 4 V3 tiers);
  - pool TVL in WETH is log-normal with the snapshot's median (3.6 WETH) and a narrower spread (σ = 2.0 instead
    of 5.3, which puts many pools at zero liquidity), times 10 for the V2/V3 venues (mainnet Uniswap pools are
    deeper than Balancer V1's);
  - protocol mix 55 % V2 (30 bps), 35 % V3 (fee tiers 1/5/30/100 bps at 10/30/45/15 %, a full-range position
    plus a 3x deeper ±10 % one), 8 % Balancer weighted (2-3 tokens; 50/50, 80/20, 98/2, 90/10 weights and the
    snapshot's fee quantiles 0.1-3.5 %), 2 % Curve 3-coin stable pools (A = 200, 4 bps);
  - every pool priced at the tokens' reference prices times a seeded jitter (σ = ``jitter``), so a few cycles are
    profitable after fees and gas.

* :func:`load_balancer_v1_snapshot` reads a balancer-sor subgraph snapshot (``bench/data``) into
  :class:`~analytics.routing.BalancerV1RoutePool` objects: balances (decimal strings in token units) become raw
  integers by the token's decimals, denormalised weights and the swap fee become 1e18-scaled integers.

* :func:`perturb` moves a pool's state as a trade would (a real exact swap through the pool's own math for V2/V3,
  a balance shift for Balancer/Curve), to drive :meth:`RouteFinder.update` in benchmarks; :func:`save_state` /
  :func:`restore_state` put a pool back to a saved state first, so repeated updates do not random-walk the
  whole graph away from its (near-)equilibrium.
"""

from __future__ import annotations

import gzip
import json
import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

from analytics.routing import (
    BalancerV1RoutePool,
    BalancerWeightedRoutePool,
    CurveRoutePool,
    RoutePool,
    V2RoutePool,
    V3RoutePool,
)
from chains.amm.uniswap_v2.pool import V2PairState
from chains.amm.uniswap_v3.pool import V3PoolState, apply_swap, swap, update_position
from chains.amm.uniswap_v3.tick_math import MAX_TICK, MIN_TICK, get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio
from chains.kinds import PoolKind

__all__ = [
    "MAINNET_WETH",
    "SNAPSHOT_SHAPE",
    "load_balancer_v1_snapshot",
    "perturb",
    "restore_state",
    "save_state",
    "synthetic_graph",
]

MAINNET_WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
# Measured on balancer-sor snapshot 0bf94aa7ece3 (1,255 pools, 760 tokens).
SNAPSHOT_SHAPE: dict[str, Any] = {
    "weth_pool_share": 608 / 1255,
    "hub_degrees": [272, 197, 123, 89, 85, 81, 59, 46, 43],
    "tvl_weth_median": 3.58,
    "tvl_weth_log_sigma": 5.34,
    "fee_quantiles": [0.001, 0.0015, 0.003, 0.01, 0.035],
    "two_token_weights": [(0.5, 0.5), (0.2, 0.8), (0.02, 0.98), (0.1, 0.9), (0.3, 0.7)],
}
_V3_TIERS = [(100, 1, 0.10), (500, 10, 0.30), (3000, 60, 0.45), (10000, 200, 0.15)]


def _address(kind: int, i: int) -> str:
    return f"0x{kind:04x}{i:036x}"


def synthetic_graph(
    n_pools: int = 10_000,
    seed: int = 1,
    *,
    n_tokens: int | None = None,
    jitter: float = 0.002,
    max_pools_per_pair: int = 6,
) -> tuple[list[RoutePool], str]:
    """A seeded graph of ``n_pools`` pools; returns ``(pools, weth_address)``. Deterministic for a seed."""
    rng = random.Random(f"mevsuite-routing-graph:{seed}")
    n_tokens = n_tokens or max(12, n_pools // 4)
    weth = _address(1, 0)
    tokens = [weth] + [_address(2, i) for i in range(1, n_tokens)]
    stables = tokens[1:4]
    decimals = {t: rng.choices([18, 6, 8, 9], [70, 15, 10, 5])[0] for t in tokens}
    decimals[weth] = 18
    decimals[stables[0]] = decimals[stables[1]] = 6
    decimals[stables[2]] = 18
    price = {t: math.exp(rng.uniform(math.log(1e-6), math.log(50.0))) for t in tokens}  # WETH per whole token
    price[weth] = 1.0
    for t in tokens[4:]:  # valuable tokens have fine units (WBTC: 8 decimals), as on mainnet
        if price[t] > 0.01 and decimals[t] < 8:
            decimals[t] = 8
    for s in stables:
        price[s] = 1 / 2000
    # popularity: hubs from the snapshot's degree sequence, then a Zipf tail
    hub = SNAPSHOT_SHAPE["hub_degrees"]
    pop = [0.0] + [hub[i - 1] / 1255 if i <= len(hub) else 0.6 / (i**0.9) for i in range(1, n_tokens)]
    others = tokens[1:]
    weights = pop[1:]

    def raw(token: str, weth_value: float) -> int:
        return max(0, int(weth_value / price[token] * 10 ** decimals[token]))

    pair_count: dict[tuple[str, str], int] = {}
    pools: list[RoutePool] = []
    n_curve = max(1, n_pools // 50)
    for k in range(n_curve):  # Curve: 3-coin stable pools
        bal_w = 10 * math.exp(rng.gauss(math.log(SNAPSHOT_SHAPE["tvl_weth_median"]), 2.0))
        bals = [raw(s, bal_w / 3 * (1 + rng.gauss(0, jitter))) for s in stables]
        pools.append(
            CurveRoutePool(
                _address(3, k), stables, bals, 200 * 100, 4_000_000, [decimals[s] for s in stables]
            )
        )
    while len(pools) < n_pools:
        kind = rng.choices([PoolKind.V2, PoolKind.V3, PoolKind.BALANCER], [55, 35, 8])[0]
        a = weth if rng.random() < SNAPSHOT_SHAPE["weth_pool_share"] else rng.choices(others, weights)[0]
        b = rng.choices(others, weights)[0]
        if a == b:
            continue
        key = (min(a, b), max(a, b))
        if pair_count.get(key, 0) >= max_pools_per_pair:
            continue
        tvl = math.exp(rng.gauss(math.log(SNAPSHOT_SHAPE["tvl_weth_median"]), 2.0))
        idx = len(pools)
        if kind == PoolKind.BALANCER:
            third = rng.choices(others, weights)[0] if rng.random() < 0.2 else None
            toks = [a, b] if third in (None, a, b) else [a, b, third]
            if len(toks) == 2:
                w = list(rng.choice(SNAPSHOT_SHAPE["two_token_weights"]))
                rng.shuffle(w)
            else:
                w = [1 / 3, 1 / 3, 1 / 3]
            w_int = [int(x * 10**18) for x in w]
            w_int[-1] = 10**18 - sum(w_int[:-1])
            bals = [raw(t, tvl * wi * (1 + rng.gauss(0, jitter))) for t, wi in zip(toks, w, strict=True)]
            fee = int(rng.choice(SNAPSHOT_SHAPE["fee_quantiles"][:4]) * 10**18)
            pools.append(
                BalancerWeightedRoutePool(
                    _address(4, idx), toks, bals, w_int, [decimals[t] for t in toks], fee
                )
            )
        else:
            t0, t1 = key
            tvl *= 10
            r0 = raw(t0, tvl / 2)
            r1 = raw(t1, tvl / 2 * (1 + rng.gauss(0, jitter)))
            if kind == PoolKind.V2:
                pools.append(V2RoutePool(V2PairState(_address(5, idx), t0, t1, r0, r1, 30)))
            else:
                pool = _v3_pool(rng, r0, r1)
                if pool is None:
                    continue
                pools.append(V3RoutePool(_address(6, idx), t0, t1, pool))
        pair_count[key] = pair_count.get(key, 0) + 1
    return pools, weth


def _v3_pool(rng: random.Random, r0: int, r1: int) -> V3PoolState | None:
    if r0 <= 0 or r1 <= 0:
        return None
    fee, spacing = rng.choices([(f, s) for f, s, _ in _V3_TIERS], [w for _, _, w in _V3_TIERS])[0]
    sqrt_p = math.isqrt(r1 * 2**192 // r0)
    if not get_sqrt_ratio_at_tick(MIN_TICK + spacing) < sqrt_p < get_sqrt_ratio_at_tick(MAX_TICK - spacing):
        return None
    state = V3PoolState.initialized(fee, spacing, sqrt_p)
    liq = math.isqrt(r0 * r1)
    lo_full = -(MAX_TICK // spacing) * spacing
    hi_full = (MAX_TICK // spacing) * spacing
    tick = get_tick_at_sqrt_ratio(sqrt_p)
    width = max(spacing, (1000 // spacing) * spacing)  # ~ ±10 %
    lo = (tick // spacing) * spacing - width
    hi = (tick // spacing) * spacing + spacing + width
    if liq <= 0 or lo <= lo_full or hi >= hi_full:
        return None
    update_position(state, lo_full, hi_full, liq)
    update_position(state, lo, hi, 3 * liq)
    return state


def load_balancer_v1_snapshot(path: str | Path) -> tuple[list[RoutePool], dict[str, int]]:
    """Weighted pools of a balancer-sor snapshot as V1 pools; returns ``(pools, skipped_by_reason)``."""
    p = Path(path)
    raw_bytes = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    docs = json.loads(raw_bytes)
    pools: list[RoutePool] = []
    skipped: dict[str, int] = {}
    for doc in docs:
        if doc.get("poolType", "Weighted") != "Weighted" or not doc.get("swapEnabled", True):
            skipped["not_weighted"] = skipped.get("not_weighted", 0) + 1
            continue
        toks = [t["address"].lower() for t in doc["tokens"]]
        bals = [int(Decimal(t["balance"]) * 10 ** int(t["decimals"])) for t in doc["tokens"]]
        wts = [int(Decimal(t["weight"]) * 10**18) for t in doc["tokens"]]
        if len(set(toks)) != len(toks) or min(wts) <= 0:
            skipped["malformed"] = skipped.get("malformed", 0) + 1
            continue
        pools.append(
            BalancerV1RoutePool(doc["address"], toks, bals, wts, int(Decimal(doc["swapFee"]) * 10**18))
        )
    return pools, skipped


def perturb(pool: RoutePool, rng: random.Random, size: float = 0.01) -> None:
    """Move ``pool``'s state in place as a trade of about ``size`` of its depth would (either direction)."""
    if isinstance(pool, V2RoutePool):
        s = pool.state
        i = rng.randrange(2)
        r_in, r_out = pool.reserves(i)
        amount = max(1, int(r_in * size * rng.random()))
        try:
            out = pool.quote(i, 1 - i, amount)
        except (ArithmeticError, ValueError):
            return
        if i == 0:
            s.reserve0, s.reserve1 = r_in + amount, r_out - out
        else:
            s.reserve1, s.reserve0 = r_in + amount, r_out - out
    elif isinstance(pool, V3RoutePool):
        st = pool.state
        if st.liquidity <= 0:
            return
        zfo = rng.random() < 0.5
        sqrt_p = st.sqrt_price_x96 / 2**96
        depth = st.liquidity / sqrt_p if zfo else st.liquidity * sqrt_p
        amount = max(1, int(depth * size * rng.random()))
        try:
            res = swap(st, zero_for_one=zfo, amount_specified=amount)
        except (ArithmeticError, ValueError):
            return
        apply_swap(st, res.sqrt_price_x96, res.tick, res.liquidity)
    elif isinstance(pool, BalancerWeightedRoutePool | CurveRoutePool):
        n = len(pool.tokens)
        i = rng.randrange(n)
        j = (i + 1 + rng.randrange(n - 1)) % n
        amount = max(1, int(pool.balances[i] * size * rng.random()))
        try:
            out = pool.quote(i, j, amount)
        except (ArithmeticError, ValueError):
            return
        pool.balances[i] += amount
        pool.balances[j] -= out


def save_state(pool: RoutePool) -> tuple[int, ...]:
    """The mutable part of ``pool``'s state, for :func:`restore_state` (benchmarks move pools around a base)."""
    if isinstance(pool, V2RoutePool):
        return (pool.state.reserve0, pool.state.reserve1)
    if isinstance(pool, V3RoutePool):
        return (pool.state.sqrt_price_x96, pool.state.tick, pool.state.liquidity)
    if isinstance(pool, BalancerWeightedRoutePool | CurveRoutePool):
        return tuple(pool.balances)
    raise TypeError(f"unknown pool type {type(pool).__name__}")


def restore_state(pool: RoutePool, saved: tuple[int, ...]) -> None:
    if isinstance(pool, V2RoutePool):
        pool.state.reserve0, pool.state.reserve1 = saved
    elif isinstance(pool, V3RoutePool):
        apply_swap(pool.state, *saved)
    elif isinstance(pool, BalancerWeightedRoutePool | CurveRoutePool):
        pool.balances = list(saved)
