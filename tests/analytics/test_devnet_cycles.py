"""Route finder on the real devnet pools: after one pool is skewed by a real swap, every reported cycle is
executed through the real routers (Router02 + SwapRouter, one single-hop swap per leg, from a funded dev
account) and realizes exactly the predicted amounts, to the wei. The odd tokens never appear in a cycle."""

from __future__ import annotations

from typing import Any

from analytics.routing import Opportunity, RouteFinder, pools_from_chain_state
from chains.abi.blocks import fetch_block
from chains.node.rpc import RpcClient
from chains.state.chain import load_initial
from tests.fixtures.devnet import Devnet

DEADLINE = 2**64
MAX_UINT = 2**256 - 1
GAS_PRICE_WEI = 10**9  # 1 gwei: the devnet's opportunities are small


def status_ok(rcpt: dict[str, Any]) -> None:
    assert int(rcpt["status"], 16) == 1, rcpt


def execute(dn: Devnet, bot: str, opp: Opportunity) -> list[int]:
    """Run ``opp`` hop by hop through the routers; returns the realized output of every hop."""
    book = dn.book
    venue_of = {p.address.lower(): p.venue for p in book.pools}
    status_ok(dn.transact(bot, book.weth, "WETH9", "deposit", value=opp.amount_in))
    realized = []
    for hop in opp.hops:
        if hop.kind == "v2":
            router = book.v2[venue_of[hop.pool]].router
            status_ok(dn.transact(bot, hop.token_in, "MintableERC20", "approve", router, MAX_UINT))
            before = dn.balance(hop.token_out, bot)
            status_ok(
                dn.transact(
                    bot,
                    router,
                    "UniswapV2Router02",
                    "swapExactTokensForTokens",
                    hop.amount_in,
                    hop.amount_out,
                    [hop.token_in, hop.token_out],
                    bot,
                    DEADLINE,
                )
            )
        else:
            assert hop.kind == "v3"
            router = book.v3.swap_router
            status_ok(dn.transact(bot, hop.token_in, "MintableERC20", "approve", router, MAX_UINT))
            before = dn.balance(hop.token_out, bot)
            status_ok(
                dn.transact(
                    bot,
                    router,
                    "SwapRouter",
                    "exactInputSingle",
                    (hop.token_in, hop.token_out, hop.fee, bot, DEADLINE, hop.amount_in, hop.amount_out, 0),
                )
            )
        realized.append(dn.balance(hop.token_out, bot) - before)
    return realized


async def test_every_reported_cycle_is_profitable_on_the_devnet(devnet_state: Devnet) -> None:
    dn, book = devnet_state, devnet_state.book
    odd = {book.token("DTT").address.lower(), book.token("PAUSE").address.lower()}
    async with RpcClient(dn.node.http_url) as rpc:
        state = await load_initial(rpc, book, dn.node.block_number())
        finder = RouteFinder.from_chain_state(state, book, excluded_tokens=odd, gas_price_wei=GAS_PRICE_WEI)
        assert finder.base_tokens == (book.weth.lower(),)
        assert len(RouteFinder(pools_from_chain_state(state, book), base_tokens=[book.weth]).pools) == len(
            book.pools
        )
        # the odd tokens' pools are gone from the graph and from every enumerated cycle
        assert not odd & set(finder.graph.nodes)
        assert all(not odd & set(p.tokens) for p in finder.pools)
        assert len(finder.pools) == len(book.pools) - 2
        mixed = {
            tuple(sorted({finder.pools[finder.edge_pool[int(e)]].kind for e in row[:n]}))
            for row, n in zip(finder.cycles, finder.cycle_len, strict=True)
        }
        assert ("v2", "v3") in mixed

        # skew the uniswap V2 WETH/USDC pair with a real swap, then sync the state from the block's logs
        usdc = book.token("USDC").address
        trader = book.traders[0]
        rcpt = dn.transact(
            trader,
            book.v2["uniswap"].router,
            "UniswapV2Router02",
            "swapExactTokensForTokens",
            150 * 10**18,
            0,
            [book.weth, usdc],
            trader,
            DEADLINE,
        )
        status_ok(rcpt)
        block = await fetch_block(rpc, int(rcpt["blockNumber"], 16))
        state.apply_block_data(block)
        changed = {log["address"].lower() for log in block.logs}
        skewed = next(
            p.address.lower()
            for p in book.pools
            if p.kind == "v2" and p.venue == "uniswap" and {p.token0, p.token1} == {book.weth, usdc}
        )
        assert skewed in changed
        opps = finder.update(changed)

    assert opps, "a 150 WETH swap leaves the pair mispriced against the other venues"
    assert any(skewed in o.pools for o in opps)
    assert any({h.kind for h in o.hops} == {"v2", "v3"} for o in opps)
    bot = dn.node.accounts()[31]
    for opp in opps:
        assert opp.net_profit > 0 and opp.verified_math
        assert not odd & {h.token_out for h in opp.hops}
        snap = dn.node.snapshot()
        try:
            weth_before = dn.balance(book.weth, bot)
            realized = execute(dn, bot, opp)
            assert realized == [h.amount_out for h in opp.hops]  # to the wei, every hop
            assert dn.balance(book.weth, bot) - weth_before == opp.amount_out
            assert opp.amount_out - opp.amount_in == opp.gross_profit > opp.gas_cost
        finally:
            dn.node.revert(snap)
