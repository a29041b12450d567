"""Route finder on seeded random graphs: sizing vs brute force, closed form vs search, incremental vs rebuild,
exclusions, bad input, paths, and the benchmark's route-finder-vs-naive comparison on a small graph."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from analytics.routing import (
    BalancerWeightedRoutePool,
    CurveRoutePool,
    GasModel,
    RouteFinder,
    RoutePool,
    V2RoutePool,
    V3RoutePool,
    golden_section_max,
    v2_closed_form,
)
from bench.bench_routing import BALANCER_SNAPSHOT, compare, finder_opportunities, naive_opportunities
from bench.graph_bench_data import _v3_pool, load_balancer_v1_snapshot, perturb, synthetic_graph
from chains.amm.balancer import v1 as balancer_v1
from chains.amm.uniswap_v2.pool import V2PairState

WETH = "0x" + "ee" * 20


def tok(i: int) -> str:
    return f"0x{i:040x}"


def random_graph(
    seed: int, n_pools: int = 14, n_tokens: int = 6, kinds: tuple[str, ...] = ("v2",), jitter: float = 0.03
) -> list[RoutePool]:
    """Pools between WETH and a few tokens, priced at reference prices times a ±jitter (many cycles pay)."""
    rng = random.Random(seed)
    pools: list[RoutePool] = []
    tokens = [WETH] + [tok(i) for i in range(1, n_tokens)]
    price = {t: rng.uniform(0.2, 5.0) for t in tokens}
    price[WETH] = 1.0
    for k in range(n_pools):
        a, b = rng.sample(tokens, 2)
        if k % 3 == 0 and WETH not in (a, b):
            a = WETH
        depth = rng.randint(50, 5_000) * 10**18
        r_a = depth
        r_b = int(depth * price[a] / price[b] * (1 + rng.uniform(-jitter, jitter)))
        kind = kinds[k % len(kinds)]
        addr = f"0x{0xABC0000 + k:040x}"
        t0, t1 = sorted((a, b))
        r0, r1 = (r_a, r_b) if t0 == a else (r_b, r_a)
        if kind == "v2":
            pools.append(V2RoutePool(V2PairState(addr, t0, t1, r0, r1, rng.choice([30, 25, 5]))))
        elif kind == "v3":
            state = _v3_pool(rng, r0, r1)
            assert state is not None
            pools.append(V3RoutePool(addr, t0, t1, state))
        elif kind == "balancer":
            w = rng.choice([(5 * 10**17, 5 * 10**17), (8 * 10**17, 2 * 10**17)])
            bal = [r0 * 2 * w[0] // 10**18, r1 * 2 * w[1] // 10**18]
            pools.append(BalancerWeightedRoutePool(addr, [t0, t1], bal, list(w), [18, 18], 3 * 10**15))
        elif kind == "curve":
            pools.append(
                CurveRoutePool(
                    addr,
                    [t0, t1],
                    [r0, r0 * (1000 + rng.randint(-20, 20)) // 1000],
                    200 * 100,
                    4_000_000,
                    [18, 18],
                )
            )
    return pools


def grid_best(profit, lo: int, hi: int, n: int = 400) -> tuple[int, int, int]:
    step = max(1, (hi - lo) // n)
    best_x, best_v = lo, None
    for x in range(lo, hi + 1, step):
        v = profit(x)
        if v is not None and (best_v is None or v > best_v):
            best_x, best_v = x, v
    assert best_v is not None
    return best_x, best_v, step


@pytest.mark.parametrize(
    "kinds", [("v2",), ("v2", "v3"), ("v3", "balancer"), ("v2", "v3", "balancer", "curve")]
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_optimal_size_matches_brute_force_grid(kinds: tuple[str, ...], seed: int) -> None:
    pools = random_graph(seed, kinds=kinds)
    finder = RouteFinder(pools, base_tokens=[WETH], max_hops=3, rel_tol=1e-4)
    opps = finder.all_profitable()
    assert opps, "the jittered graph must have profitable cycles"
    for opp in opps[:6]:
        hops = finder.cycle_hops(opp.cycle_id)

        def profit(x: int, hops=hops) -> int | None:
            a = finder.quote_path(hops, x)
            return None if a is None else a[-1] - x

        x_grid, v_grid, step = grid_best(profit, 1, 3 * opp.amount_in)
        assert opp.gross_profit == profit(opp.amount_in)  # the reported amounts are the exact math's
        assert opp.gross_profit >= v_grid  # never worse than the brute-force grid
        assert abs(opp.amount_in - x_grid) <= step + 1e-3 * opp.amount_in
        assert [h.amount_out for h in opp.hops][-1] == opp.amount_out == opp.amount_in + opp.gross_profit
        for a, b in zip(opp.hops, opp.hops[1:], strict=False):
            assert a.amount_out == b.amount_in and a.token_out == b.token_in
        assert opp.hops[0].token_in == opp.hops[-1].token_out == WETH


@given(seed=st.integers(0, 10_000))
def test_closed_form_equals_search_on_v2_cycles(seed: int) -> None:
    finder = RouteFinder(random_graph(seed, n_pools=10, kinds=("v2",)), base_tokens=[WETH])
    for c in finder.ranked(5):
        hops = finder.cycle_hops(int(c))

        def profit(x: int, hops=hops) -> int | None:
            a = finder.quote_path(hops, x)
            return None if a is None else a[-1] - x

        maps = [p.mobius_int(i) for p, i, _ in hops]  # type: ignore[attr-defined]
        x_cf = v2_closed_form(maps)
        x_gs, v_gs = golden_section_max(profit, max(1, x_cf // 7), rel_tol=1e-6)
        if x_cf == 0:
            assert v_gs is None or v_gs <= 1
            continue
        v_cf = max(profit(x) or 0 for x in range(x_cf - 2, x_cf + 3))
        assert v_cf >= v_gs - len(hops)  # getAmountOut floors once per hop: a wei each, at most
        # the profit is flat to a few wei around the optimum: sizes agree to 1e-4 (search tolerance 1e-6)
        assert abs(x_cf - x_gs) <= max(64, 1e-4 * x_cf)


def test_incremental_update_equals_full_rebuild() -> None:
    pools, weth = synthetic_graph(400, seed=5, jitter=0.01)
    finder = RouteFinder(pools, base_tokens=[weth], gas_price_wei=10**9)
    before = finder.best()
    rng = random.Random(9)
    for _ in range(5):
        changed = rng.sample(finder.pools, 25)
        for p in changed:
            perturb(p, rng, 0.05)
        got = finder.update([p.address for p in changed])
    rebuilt = RouteFinder(pools, base_tokens=[weth], gas_price_wei=10**9)
    assert len(rebuilt.cycles) == len(finder.cycles)
    assert (rebuilt.est_gross == finder.est_gross).all() and (rebuilt.est_net == finder.est_net).all()
    assert got == rebuilt.best()
    assert got != before  # the updates did change the answer
    assert finder.all_profitable() == rebuilt.all_profitable()


def test_update_touches_only_cycles_through_changed_pools() -> None:
    pools, weth = synthetic_graph(300, seed=6, jitter=0.01)
    finder = RouteFinder(pools, base_tokens=[weth])
    pool = finder.pools[finder.edge_pool[int(finder.cycles[0, 0])]]
    ids = finder.affected_cycles([finder.pool_index[pool.address]])
    assert 0 < len(ids) < len(finder.cycles)
    old = finder.est_gross.copy()
    perturb(pool, random.Random(1), 0.2)
    finder.update([pool.address])
    changed = (old != finder.est_gross).nonzero()[0]
    assert set(changed.tolist()) <= set(ids.tolist()) and len(changed)


def mispriced_world() -> tuple[list[RoutePool], str, str]:
    """WETH/A and WETH/B fair, A/B cheap (a cycle pays), plus a very mispriced pool through a flagged token
    and a zero-liquidity pool that the finder must never use."""
    a, b, bad = tok(1), tok(2), tok(3)
    e18 = 10**18
    pools: list[RoutePool] = [
        V2RoutePool(V2PairState(tok(101), a, WETH, 1000 * e18, 1000 * e18)),
        V2RoutePool(V2PairState(tok(102), b, WETH, 1000 * e18, 1000 * e18)),
        V2RoutePool(V2PairState(tok(103), a, b, 1000 * e18, 1100 * e18)),
        V2RoutePool(V2PairState(tok(104), bad, WETH, 1000 * e18, 3000 * e18)),  # fee-on-transfer, flagged
        V2RoutePool(V2PairState(tok(105), a, bad, 1000 * e18, 100 * e18)),
        V2RoutePool(V2PairState(tok(106), a, WETH, 0, 0)),  # zero liquidity
        V2RoutePool(V2PairState(tok(107), b, WETH, 10, 10**6)),  # dust, hugely "mispriced"
    ]
    return pools, bad, tok(106)


def test_excluded_tokens_and_dust_pools_never_appear() -> None:
    pools, bad, zero = mispriced_world()
    reg = CollectorRegistry()
    finder = RouteFinder(pools, base_tokens=[WETH], excluded_tokens=[bad], registry=reg, min_reserve=10**6)
    opps = finder.all_profitable()
    assert opps  # the A/B cycle
    used = {p for o in opps for p in o.pools} | {h.token_out for o in opps for h in o.hops}
    assert bad not in used and zero not in used and tok(107) not in used and tok(104) not in used
    assert reg.get_sample_value("mevsuite_routing_bad_input_total", {"reason": "excluded_token"}) == 2
    assert reg.get_sample_value("mevsuite_routing_bad_input_total", {"reason": "dust_pool"}) == 2
    # without the exclusion, the flagged token's cycle would be the best one
    naive = RouteFinder(pools, base_tokens=[WETH], min_reserve=10**6)
    assert bad in {h.token_out for h in naive.best()[0].hops}
    # a pool drained after the build is masked at once, and comes back with liquidity
    ab = finder.pools[finder.pool_index[tok(103)]]
    assert isinstance(ab, V2RoutePool)
    saved = ab.state.reserve0
    ab.state.reserve0 = 0
    assert all(tok(103) not in o.pools for o in finder.update([tok(103)]))
    assert finder.all_profitable() == []
    ab.state.reserve0 = saved
    assert any(tok(103) in o.pools for o in finder.update([tok(103)]))


def test_bad_input_is_counted_not_raised() -> None:
    pools, _, _ = mispriced_world()
    reg = CollectorRegistry()
    finder = RouteFinder(pools, base_tokens=[WETH], registry=reg)
    finder.update(["0x" + "12" * 20, tok(101)])
    assert reg.get_sample_value("mevsuite_routing_bad_input_total", {"reason": "unknown_pool"}) == 1
    assert finder.best_route(tok(1), WETH, 0) is None
    assert finder.best_route(tok(1), "0x" + "34" * 20, 10) is None
    assert reg.get_sample_value("mevsuite_routing_bad_input_total", {"reason": "bad_amount"}) == 1
    assert reg.get_sample_value("mevsuite_routing_bad_input_total", {"reason": "unknown_token"}) == 1
    with pytest.raises(ValueError, match="max_hops"):
        RouteFinder(pools, base_tokens=[WETH], max_hops=5)
    with pytest.raises(ValueError, match="base_per_eth"):
        RouteFinder(pools, base_tokens=[WETH, tok(1)], gas_price_wei=1)


def test_gas_is_netted_per_hop_and_protocol() -> None:
    pools, _, _ = mispriced_world()
    gas = GasModel(
        overhead=50_000, per_hop={"v2": 70_000, "v3": 1, "curve": 1, "balancer": 1, "balancer_v1": 1}
    )
    free = RouteFinder(pools[:3], base_tokens=[WETH], gas=gas).best()[0]
    priced = RouteFinder(pools[:3], base_tokens=[WETH], gas=gas, gas_price_wei=30 * 10**9).best()[0]
    assert priced.gas_units == 50_000 + 70_000 * len(priced.hops)
    assert priced.gas_cost == priced.gas_units * 30 * 10**9
    assert priced.net_profit == priced.gross_profit - priced.gas_cost == free.net_profit - priced.gas_cost
    # a gas price above the profit leaves nothing
    assert RouteFinder(pools[:3], base_tokens=[WETH], gas=gas, gas_price_wei=10**18).best() == []


def test_best_route_between_two_tokens() -> None:
    pools, _, _ = mispriced_world()
    finder = RouteFinder(pools, base_tokens=[WETH], min_reserve=10**6, max_hops=3)
    route = finder.best_route(tok(1), WETH, 10**18)
    assert route is not None
    assert route.hops[0].token_in == tok(1) and route.hops[-1].token_out == WETH
    # exhaustive check: no usable path gives more
    for hops in finder.paths(tok(1), WETH):
        a = finder.quote_path(hops, 10**18)
        assert a is None or a[-1] <= route.amount_out
    direct = pools[0]
    assert route.amount_out >= direct.quote(0, 1, 10**18)


def test_four_hops_on_request() -> None:
    pools = random_graph(4, n_pools=16, kinds=("v2",))
    three = RouteFinder(pools, base_tokens=[WETH], max_hops=3)
    four = RouteFinder(pools, base_tokens=[WETH], max_hops=4)
    assert int(three.cycle_len.max()) <= 3 and int(four.cycle_len.max()) == 4
    assert len(four.cycles) > len(three.cycles)


def test_route_finder_and_naive_baseline_report_the_same_cycles() -> None:
    """The benchmark's comparison, on a small graph (CI): same set above the threshold, sizes within tolerance."""
    pools, weth = synthetic_graph(250, seed=11, jitter=0.01)
    gas = GasModel()
    finder = RouteFinder(pools, base_tokens=[weth], gas=gas, gas_price_wei=10**9)
    naive = naive_opportunities(pools, weth, max_hops=3, gas=gas, gas_price_wei=10**9, min_profit=0)
    ours = finder_opportunities(finder)
    assert len(ours) >= 5
    result = compare(ours, naive, 0)
    assert result["common"] >= len(ours) - 1


def test_balancer_v1_snapshot_loads_and_quotes() -> None:
    pools, skipped = load_balancer_v1_snapshot(BALANCER_SNAPSHOT)
    assert len(pools) == 1255 and skipped == {}
    p = pools[0]
    # 80/20 pool: out = B_out * (1 - (B_in / (B_in + x*(1-fee)))**(w_in/w_out)), to ~1e-10 relative
    x = p.balances[0] // 1000
    exact = p.quote(0, 1, x)
    b_in, b_out, w_in, w_out, fee = (
        p.balances[0],
        p.balances[1],
        p.weights[0],
        p.weights[1],
        p.swap_fee / 1e18,
    )
    approx = b_out * (1 - (b_in / (b_in + x * (1 - fee))) ** (w_in / w_out))
    assert abs(exact - approx) / approx < 1e-9
    with pytest.raises(balancer_v1.BalancerV1Error, match="ERR_MAX_IN_RATIO"):
        p.quote(0, 1, p.balances[0])
