"""The brute-force cycle oracle: its best opportunity, executed hop by hop through the real routers, pays
exactly the predicted profit (to the wei)."""

from __future__ import annotations

import asyncio

from analytics.cycle_oracle import (
    enumerate_cycles,
    independent_set,
    opportunities,
    read_pools,
    tradable_pools,
)
from chains.node.rpc import RpcClient
from tests.bots.dex_arb.helpers import skew_async
from tests.fixtures.devnet import Devnet


def gas_for(kinds: tuple[str, ...]) -> int:
    return 56_000 + sum(77_000 if k == "v2" else 87_000 for k in kinds)


def _execute(devnet: Devnet, trader: str, legs: tuple, amount_in: int) -> None:
    book = devnet.book
    info = {p.address: p for p in book.pools}
    amt = amount_in
    for leg in legs:
        p = info[leg.pool]
        before = devnet.balance(leg.token_out, trader)
        if p.kind == "v2":
            router = book.v2[p.venue].router
            devnet.transact(trader, leg.token_in, "MintableERC20", "approve", router, amt)
            r = devnet.transact(
                trader,
                router,
                "UniswapV2Router02",
                "swapExactTokensForTokens",
                amt,
                0,
                [leg.token_in, leg.token_out],
                trader,
                2**40,
            )
        else:
            router = book.v3.swap_router
            devnet.transact(trader, leg.token_in, "MintableERC20", "approve", router, amt)
            r = devnet.transact(
                trader,
                router,
                "SwapRouter",
                "exactInputSingle",
                (leg.token_in, leg.token_out, p.fee, trader, 2**40, amt, 0, 0),
            )
        assert r["status"] == "0x1"
        amt = devnet.balance(leg.token_out, trader) - before


def test_oracle_best_cycle_realizes_its_predicted_profit(devnet_state: Devnet) -> None:
    devnet = devnet_state
    book = devnet.book
    pools = tradable_pools(book)
    assert all(
        book.token_by_address(t).kind in ("standard", "weth") for p in pools for t in (p.token0, p.token1)
    )
    cycles = enumerate_cycles(pools, book.weth, 3)
    assert cycles and all(c[0].token_in == book.weth and c[-1].token_out == book.weth for c in cycles)
    assert all(len({leg.pool for leg in c}) == len(c) for c in cycles)

    async def skew_and_read() -> list:
        await skew_async(devnet, 400_000)
        async with RpcClient(devnet.node.http_url) as rpc:
            block = int(await rpc.request("eth_blockNumber", []), 16)
            state = await read_pools(rpc, pools, block)
        return opportunities(state, cycles, book.weth, base_fee=10**9, gas_for=gas_for)

    opps = asyncio.run(skew_and_read())
    chosen = independent_set(opps)
    assert chosen, "a 400k USD swap must open an arbitrage"
    best = chosen[0]
    assert best.net > 0 and len(best.legs) >= 2
    trader = book.traders[-1]
    weth_before = devnet.balance(book.weth, trader)
    assert weth_before >= best.amount_in
    _execute(devnet, trader, best.legs, best.amount_in)
    assert devnet.balance(book.weth, trader) - weth_before == best.profit
