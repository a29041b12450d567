"""Quote throughput of ``chains.amm.uniswap_v3.pool.swap`` (printed, never asserted: see ``-s``/``-rP``).

Two shapes: a swap that stays within one tick range, and one crossing 10+ initialized ticks of a pool with
many narrow positions. No timed assertions in tests (STYLE.md); this only reports.
"""

from __future__ import annotations

import random
import time

from chains.amm.uniswap_v3.pool import V3PoolState, swap, update_position
from chains.amm.uniswap_v3.tick_math import get_sqrt_ratio_at_tick


def _dense_pool() -> V3PoolState:
    state = V3PoolState.initialized(500, 10, get_sqrt_ratio_at_tick(0))
    update_position(state, -887270, 887270, 10**18)
    rng = random.Random(1)
    for i in range(1, 60):
        update_position(state, -10 * i, 10 * i, 10**18 + rng.randrange(10**17))
    return state


def _rate(state: V3PoolState, amount: int, n: int = 3000) -> tuple[float, int]:
    r = swap(state, zero_for_one=True, amount_specified=amount)
    t0 = time.perf_counter()
    for _ in range(n):
        swap(state, zero_for_one=True, amount_specified=amount)
    return n / (time.perf_counter() - t0), r.ticks_crossed


def test_quote_throughput() -> None:
    state = _dense_pool()
    one_tick, crossed0 = _rate(state, 10**12)
    amount = 10**15
    while swap(state, zero_for_one=True, amount_specified=amount).ticks_crossed < 12:
        amount *= 2
    many_ticks, crossed = _rate(state, amount)
    assert crossed0 == 0 and crossed >= 10
    print(
        f"\nV3 swap quotes: {one_tick:,.0f}/s within one tick; {many_ticks:,.0f}/s crossing {crossed} "
        f"initialized ticks"
    )
