"""Route finder benchmark: build time, per-update latency (1/10/100 changed pools) and a naive baseline.

Run: ``python -m bench routing`` (part of ``make bench``; ~11 minutes on 2 shared cores, 9.5 of them the naive baseline) or
``MEVSUITE_BENCH_QUICK=1 python -m bench routing`` (a ~20 s smoke version on smaller graphs).

Two graphs side by side:

* ``synthetic``: :func:`bench.graph_bench_data.synthetic_graph`, 10,000 V2/V3/Balancer/Curve pools seeded
  from real pool shapes (docs/routing.md), WETH base, 3 hops;
* ``balancer_v1``: the real Balancer V1 subgraph snapshot of 1,255 pools in ``bench/data`` (V1 weighted math),
  WETH base, 2 hops (3 hops gives 688k cycles, 249k of them profitable at the margin on this stale snapshot:
  too many for the plain-Python baseline to size 5 times), dust rule 0.1 WETH of value per token.

Timed path of an update: :meth:`RouteFinder.update` = refresh the changed pools' edges, re-rank the cycles
through them in numpy, exact re-check (sizing through the integer math) of the top 10. The changed pools are
moved by :func:`bench.graph_bench_data.perturb` (an exact trade through each pool) before the timer starts.

The naive baseline (:func:`naive_opportunities`) re-enumerates every cycle with ``networkx.simple_cycles``,
checks each with an exact small quote and sizes every marginally profitable one with a doubling + ternary
search on the exact per-hop math, in plain Python. Both must report the same set of cycles above the profit
threshold with sizes within tolerance; :func:`compare` asserts it and its result is printed in the table.
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from analytics.routing import GasModel, RouteFinder, RoutePool
from bench import percentile
from bench.graph_bench_data import (
    MAINNET_WETH,
    load_balancer_v1_snapshot,
    perturb,
    restore_state,
    save_state,
    synthetic_graph,
)

DATA = Path(__file__).parent / "data"
BALANCER_SNAPSHOT = DATA / "balancer_v1_0bf94aa7ece3.json.gz"
GAS_PRICE_WEI = 10 * 10**9
SIZE_REL_TOL = 0.02  # sizes agree within 2 %, or the optimum is flat: both sizes' profits within tolerance
PROFIT_REL_TOL = 1e-3
BREAK_EVEN_BAND = 0.02  # the naive baseline probes further only for cycles losing < 2 % at 0.01 WETH
PERTURB_SIZE = 0.005  # each changed pool takes a trade of up to 0.5 % of its depth
INPUT_REL_NOISE = (
    1e-5  # coarse intermediate units (e.g. 300k raw units of an 8-decimal token) make profit steppy
)

CycleKey = tuple[str, tuple[tuple[str, str], ...]]  # (base, ((pool, token_in), ...))


# ------------------------------------------------------------------------------------------- the baseline
def _usable(pool: RoutePool, min_reserve: dict[str, int], default: int) -> bool:
    return all(
        a > 0 and a >= min_reserve.get(t, default) for t, a in zip(pool.tokens, pool.liquidity(), strict=True)
    )


def _naive_size(hops: Sequence[tuple[RoutePool, int, int]], probes: Sequence[int]) -> tuple[int, int] | None:
    def profit(x: int) -> int | None:
        a = x
        try:
            for pool, i, j in hops:
                a = pool.quote(i, j, a)
        except (ArithmeticError, ValueError):
            return None
        return a - x

    def v(x: int) -> float:
        p = profit(x)
        return float("-inf") if p is None else float(p)

    # Probe the first size; the others only when it comes close to break-even (coarse token units make small
    # sizes lose to rounding, large ones to curvature, so one probe alone misses a few cycles).
    x = probes[0]
    if v(x) <= -BREAK_EVEN_BAND * x:
        return None
    x = max(probes, key=v)
    if v(x) <= 0:
        return None
    while v(2 * x) > v(x):
        x *= 2
    while x > 1 and v(x // 2) > v(x):
        x //= 2
    lo, hi = max(1, x // 2), 2 * x
    while hi - lo > max(64, lo // 1000):
        m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        if v(m1) < v(m2):
            lo = m1
        else:
            hi = m2
    best = max(range(lo, hi + 1, max(1, (hi - lo) // 64)), key=v)
    p = profit(best)
    return None if p is None else (best, p)


def naive_opportunities(
    pools: Sequence[RoutePool],
    base: str,
    *,
    max_hops: int,
    gas: GasModel,
    gas_price_wei: int,
    min_profit: int,
    min_reserve: dict[str, int] | None = None,
    default_min_reserve: int = 1_000,
    probes: Sequence[int] = (10**16, 10**14, 10**18),
) -> dict[CycleKey, tuple[int, int]]:
    """Every cycle through ``base`` with net profit > ``min_profit``: ``{key: (amount_in, net_profit)}``."""
    min_reserve = min_reserve or {}
    g: nx.MultiGraph[str] = nx.MultiGraph()
    by_address: dict[str, RoutePool] = {}
    for pool in pools:
        if not _usable(pool, min_reserve, default_min_reserve):
            continue
        by_address[pool.address] = pool
        for a, b in itertools.combinations(pool.tokens, 2):
            g.add_edge(a, b, key=pool.address)
    if base not in g:
        return {}
    near = set(g[base]) | {base}
    if max_hops > 3:
        near |= {u for t in list(near) for u in g[t]}
    digraph = nx.DiGraph(g.subgraph(near))
    out: dict[CycleKey, tuple[int, int]] = {}
    for cyc in nx.simple_cycles(digraph, length_bound=max_hops):
        if base not in cyc:
            continue
        k = cyc.index(base)
        nodes = cyc[k:] + cyc[:k] + [base]
        choices = [list(g[a][b]) for a, b in itertools.pairwise(nodes)]
        for chosen in itertools.product(*choices):
            if len(set(chosen)) != len(chosen):
                continue
            hops = []
            for addr, a, b in zip(chosen, nodes, nodes[1:], strict=False):
                pool = by_address[addr]
                hops.append((pool, pool.tokens.index(a), pool.tokens.index(b)))
            sized = _naive_size(hops, probes)
            if sized is None:
                continue
            x, gross = sized
            units = gas.units(p.kind for p, _, _ in hops)
            net = gross - units * gas_price_wei
            if net > min_profit:
                out[(base, tuple((p.address, p.tokens[i]) for p, i, _ in hops))] = (x, net)
    return out


def finder_opportunities(finder: RouteFinder) -> dict[CycleKey, tuple[int, int]]:
    return {
        (o.base_token, tuple((h.pool, h.token_in) for h in o.hops)): (o.amount_in, o.net_profit)
        for o in finder.all_profitable()
    }


def compare(
    ours: dict[CycleKey, tuple[int, int]], naive: dict[CycleKey, tuple[int, int]], min_profit: int
) -> dict[str, Any]:
    """Same set above the threshold (cycles within the tolerance of the threshold may differ) and sizes
    within tolerance; raises AssertionError otherwise."""

    def near_threshold(net: int) -> bool:
        return net <= min_profit + abs(net) * PROFIT_REL_TOL * 10 + 10**9

    only_ours = [k for k in ours.keys() - naive.keys() if not near_threshold(ours[k][1])]
    only_naive = [k for k in naive.keys() - ours.keys() if not near_threshold(naive[k][1])]
    assert not only_ours and not only_naive, (
        f"sets differ: {len(only_ours)} only ours, {len(only_naive)} only naive"
    )
    worst_size = worst_profit = 0.0
    for k in ours.keys() & naive.keys():
        (x1, p1), (x2, p2) = ours[k], naive[k]
        size_diff = abs(x1 - x2) / max(x1, x2)
        # profit tolerance: relative, or the rounding of coarse intermediate units (1e-5 of the input)
        profit_tol = max(PROFIT_REL_TOL * max(abs(p1), abs(p2)), INPUT_REL_NOISE * max(x1, x2))
        assert p2 - p1 <= profit_tol, f"naive found more profit on {k}: {p2} vs {p1}"
        assert size_diff <= SIZE_REL_TOL or abs(p1 - p2) <= profit_tol, (
            f"sizes differ by {size_diff:.2%} on {k}"
        )
        worst_size = max(worst_size, size_diff)
        worst_profit = max(worst_profit, (p2 - p1) / max(abs(p2), 1))
    return {
        "cycles": len(ours),
        "common": len(ours.keys() & naive.keys()),
        "size_diff": worst_size,
        "naive_profit_gain": worst_profit,
    }


# ------------------------------------------------------------------------------------------- the runs
def _graph(name: str, quick: bool) -> tuple[list[RoutePool], str, dict[str, Any]]:
    if name == "synthetic":
        pools, weth = synthetic_graph(800 if quick else 10_000, seed=1, jitter=0.0005)
        return pools, weth, {"max_hops": 3, "min_reserve": 1_000}
    pools, _ = load_balancer_v1_snapshot(BALANCER_SNAPSHOT)
    return (
        pools,
        MAINNET_WETH,
        {"max_hops": 2, "min_reserve": weth_value_thresholds(pools, MAINNET_WETH, 10**17)},
    )


def weth_value_thresholds(pools: Sequence[RoutePool], weth: str, weth_amount: int) -> dict[str, int]:
    """Per token, the raw amount worth ``weth_amount`` at the spot price of its deepest WETH pool; tokens
    without a WETH pool get an unreachable threshold (``"*"``)."""
    best: dict[str, tuple[float, float]] = {}
    for p in pools:
        if weth not in p.tokens:
            continue
        i = p.tokens.index(weth)
        liq = p.liquidity()
        for j, t in enumerate(p.tokens):
            if j == i or liq[i] <= 0:
                continue
            a, b = p.mobius(i, j)[:2]
            spot = a / b  # token j per WETH at the margin (fee included)
            if t not in best or liq[i] > best[t][0]:
                best[t] = (liq[i], spot)
    out = {t: max(1, int(spot * weth_amount)) for t, (_, spot) in best.items()}
    out[weth] = weth_amount
    out["*"] = 2**255
    return out


def run() -> list[dict[str, Any]]:
    quick = os.environ.get("MEVSUITE_BENCH_QUICK") == "1"
    n_updates, n_naive = (30, 1) if quick else (200, 5)
    rows: list[dict[str, Any]] = []
    for name in ("synthetic", "balancer_v1"):
        pools, weth, opts = _graph(name, quick)
        gas = GasModel()
        min_profit = 0
        t0 = time.perf_counter()
        finder = RouteFinder(pools, base_tokens=[weth], gas=gas, gas_price_wei=GAS_PRICE_WEI, **opts)
        build_s = time.perf_counter() - t0
        rng = random.Random(f"bench-routing:{name}")
        live = finder.pools
        base_state = {p.address: save_state(p) for p in live}

        def move(
            changed: list[RoutePool],
            base_state: dict[str, tuple[int, ...]] = base_state,
            rng: random.Random = rng,
        ) -> None:
            for p in changed:  # a trade away from the base state (no random walk of the whole graph)
                restore_state(p, base_state[p.address])
                perturb(p, rng, PERTURB_SIZE)

        per_n: dict[int, list[float]] = {}
        for n_changed in (1, 10, 100):
            lat = []
            for _ in range(n_updates):
                changed = rng.sample(live, min(n_changed, len(live)))
                move(changed)
                t = time.perf_counter()
                finder.update([p.address for p in changed])
                lat.append(time.perf_counter() - t)
            per_n[n_changed] = lat
        # the naive baseline: n_naive updates of 100 changed pools, each followed by a full re-enumeration
        naive_s: list[float] = []
        ours_s: list[float] = []
        cmp: dict[str, Any] = {}
        for _ in range(n_naive):
            changed = rng.sample(live, min(100, len(live)))
            move(changed)
            t = time.perf_counter()
            finder.update([p.address for p in changed])
            ours_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            naive = naive_opportunities(
                pools,
                weth,
                max_hops=opts["max_hops"],
                gas=gas,
                gas_price_wei=GAS_PRICE_WEI,
                min_profit=min_profit,
                min_reserve=finder._min_reserve,
                default_min_reserve=finder._min_reserve_default,
            )
            naive_s.append(time.perf_counter() - t)
            cmp = compare(finder_opportunities(finder), naive, min_profit)
        print(
            f"routing bench {name}: route finder and naive baseline agree on {cmp['common']} of {cmp['cycles']} "
            f"cycles above the threshold; sizes within {cmp['size_diff']:.2%}; naive mean "
            f"{statistics.mean(naive_s):.2f} s vs {1e3 * statistics.mean(ours_s):.2f} ms"
        )
        for n_changed, lat in per_n.items():
            last = n_changed == 100
            rows.append(
                {
                    "graph": name,
                    "pools": len(pools),
                    "usable": len(finder.pools),
                    "cycles": len(finder.cycles),
                    "build_s": round(build_s, 2),
                    "changed": n_changed,
                    "n": len(lat),
                    "p50_ms": 1e3 * statistics.median(lat),
                    "p99_ms": 1e3 * percentile(lat, 0.99),
                    "naive_mean_s": statistics.mean(naive_s) if last else "",
                    "naive_max_s": max(naive_s) if last else "",
                    "x_faster": round(statistics.mean(naive_s) / statistics.mean(lat)) if last else "",
                    "same_set": f"yes {cmp['common']}/{cmp['cycles']}" if last else "",
                }
            )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
