"""Cross-venue V2 arbitrage sizing: the exact maximum (brute force), and executed for real to the wei."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bots.recorder.bot import CrossVenueArbitrage, RecorderStrategy, best_cross_venue_arbitrage
from bots.runtime.collectors import BlockApplied
from chains.abi.blocks import fetch_block
from chains.amm.uniswap_v2 import get_amount_out
from chains.node.rpc import RpcClient
from chains.state.chain import ChainState
from tests.bots.recorder.helpers import DEADLINE, receipt, reserves_at, v2_pool
from tests.fixtures.devnet import Devnet


def brute_force(buy: tuple[int, int], sell: tuple[int, int], fee_bps: int) -> int:
    """max over every amount_in of (token0 back from sell) - amount_in; 0 if nothing is profitable.

    The getAmountOut formula is inlined (speed); any amount_in >= sell[0] loses, as the sell pool cannot pay
    more than its reserve.
    """
    (r0, r1), (s0, s1) = buy, sell
    f = 10_000 - fee_bps
    r0c, s1c = r0 * 10_000, s1 * 10_000
    best = 0
    for x in range(1, s0):
        xf = x * f
        m = xf * r1 // (r0c + xf)
        if m:
            mf = m * f
            p = mf * s0 // (s1c + mf) - x
            if p > best:
                best = p
    return best


def check_exact(ra: tuple[int, int], rb: tuple[int, int], fee_bps: int) -> None:
    got = best_cross_venue_arbitrage(ra, rb, fee_bps)
    expected = max(brute_force(ra, rb, fee_bps), brute_force(rb, ra, fee_bps))
    if got is None:
        assert expected == 0
        return
    amount_in, mid, back, a_first = got
    buy, sell = (ra, rb) if a_first else (rb, ra)
    # the amounts are the pair math's, and the profit is the true maximum
    assert mid == get_amount_out(amount_in, buy[0], buy[1], fee_bps)
    assert back == get_amount_out(mid, sell[1], sell[0], fee_bps)
    assert back - amount_in == expected > 0


reserve_small = st.integers(10**3, 10**4)
reserve = st.integers(10**3, 10**6)


@given(
    ra=st.tuples(reserve_small, reserve_small),
    rb=st.tuples(reserve_small, reserve_small),
    fee_bps=st.sampled_from([30, 25, 5]),
)
@example(ra=(4439, 2537), rb=(8993, 1464), fee_bps=30)  # the former ternary search returned 1228, max is 1229
@example(ra=(1000, 1000), rb=(10**6, 1000), fee_bps=30)  # optimum (~15 000) far above the buy reserve (1000)
def test_profit_is_the_brute_force_maximum_small(
    ra: tuple[int, int], rb: tuple[int, int], fee_bps: int
) -> None:
    check_exact(ra, rb, fee_bps)


@settings(max_examples=30)  # each example brute-forces up to 2 x 10^6 amounts
@given(ra=st.tuples(reserve, reserve), rb=st.tuples(reserve, reserve))
@example(ra=(10**6, 10**6), rb=(999_000, 10**6))
@example(ra=(1000, 10**6), rb=(10**6, 1000))
def test_profit_is_the_brute_force_maximum_up_to_1e6(ra: tuple[int, int], rb: tuple[int, int]) -> None:
    check_exact(ra, rb, 30)


def test_no_opportunity_without_a_gap() -> None:
    assert best_cross_venue_arbitrage((10**6, 2 * 10**6), (10**6, 2 * 10**6)) is None
    assert best_cross_venue_arbitrage((0, 10**6), (10**6, 10**6)) is None
    # a gap smaller than the two fees is not an opportunity either
    assert best_cross_venue_arbitrage((10**9, 10**9), (1_005 * 10**6, 10**9)) is None


async def test_devnet_opportunity_executes_to_the_wei(devnet_state: Devnet) -> None:
    dev, book = devnet_state, devnet_state.book
    a, b = v2_pool(dev, "uniswap", "WETH", "DAI"), v2_pool(dev, "sushiswap", "WETH", "DAI")
    assert (a.token0, a.token1) == (b.token0, b.token1)
    whale, arber = book.traders[3], book.traders[4]
    # the gap: dump token1 on uniswap (token1 gets cheap there)
    ra = reserves_at(dev, a.address)
    rc = dev.transact(
        whale,
        book.v2["uniswap"].router,
        "UniswapV2Router02",
        "swapExactTokensForTokens",
        ra[1] // 20,
        1,
        [a.token1, a.token0],
        whale,
        DEADLINE,
    )
    assert rc["status"] == "0x1"
    number = int(rc["blockNumber"], 16)

    ra, rb = reserves_at(dev, a.address, number), reserves_at(dev, b.address, number)
    found = best_cross_venue_arbitrage(ra, rb, book.v2["uniswap"].fee_bps)
    assert found is not None
    amount_in, amount_mid, amount_back, a_first = found
    assert a_first  # token1 is cheap on uniswap: buy it there
    assert amount_back > amount_in

    # the recording strategy sees the same opportunity from the chain at that block
    async with RpcClient(dev.node.http_url) as rpc:
        data = await fetch_block(rpc, number)
        # (the recorder follows no pool: the state in the event is not read)
        actions = await RecorderStrategy(rpc, book).process_event(
            BlockApplied(data, frozenset(), ChainState())
        )
    arbs = [x for x in actions if isinstance(x, CrossVenueArbitrage) and x.buy_pool == a.address]
    assert len(arbs) == 1
    arb = arbs[0]
    assert (arb.sell_pool, arb.token_in, arb.token_out) == (b.address, a.token0, a.token1)
    assert (arb.amount_in, arb.amount_mid, arb.amount_back) == (amount_in, amount_mid, amount_back)

    # execute it for real: buy on uniswap, sell what was received on sushiswap, exact minimums
    def bal(token: str) -> int:
        return dev.balance(token, arber)

    t0_before, t1_before = bal(a.token0), bal(a.token1)
    assert t0_before >= amount_in
    leg1 = dev.transact(
        arber,
        book.v2["uniswap"].router,
        "UniswapV2Router02",
        "swapExactTokensForTokens",
        amount_in,
        amount_mid,
        [a.token0, a.token1],
        arber,
        DEADLINE,
    )
    assert leg1["status"] == "0x1"
    assert bal(a.token1) - t1_before == amount_mid
    t0_mid = bal(a.token0)
    assert t0_before - t0_mid == amount_in
    leg2 = dev.transact(
        arber,
        book.v2["sushiswap"].router,
        "UniswapV2Router02",
        "swapExactTokensForTokens",
        amount_mid,
        amount_back,
        [a.token1, a.token0],
        arber,
        DEADLINE,
    )
    assert leg2["status"] == "0x1"
    assert bal(a.token0) - t0_mid == amount_back
    assert bal(a.token1) == t1_before
    assert bal(a.token0) - t0_before == amount_back - amount_in == arb.profit > 0
    # each leg went through the intended pair
    for leg, pool in ((leg1, a.address), (leg2, b.address)):
        assert any(
            lg["address"].lower() == pool.lower() for lg in receipt(dev, leg["transactionHash"])["logs"]
        )
