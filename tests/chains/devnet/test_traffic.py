"""The traffic generator on the deployed devnet world, with the block builder mining (automine off)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from chains.addressbook import PoolInfo
from chains.devnet.actors import V3_VENUE, SwapRecord, TrafficConfig
from chains.devnet.artifacts import load
from chains.devnet.builder import BlockBuilder
from chains.devnet.traffic import TrafficGenerator

ERC20 = load("MintableERC20")


@dataclass
class World:
    dev: Any  # tests.fixtures.devnet.Devnet
    builder: BlockBuilder
    traffic: TrafficGenerator


@pytest.fixture
async def world(devnet_state: Any) -> AsyncIterator[World]:
    devnet_state.node.set_automine(False)  # the devnet fixture restores it
    cfg = TrafficConfig(eth_fraction=0.0, multihop_fraction=0.0, loose_slippage=0.4, tight_slippage_bps=50)
    async with (
        BlockBuilder(devnet_state.node, interval_s=0.1, block_time_s=12) as b,
        TrafficGenerator(devnet_state.node, devnet_state.book, cfg, seed=11) as t,
    ):
        yield World(devnet_state, b, t)


def pending_hashes(dev: Any) -> set[str]:
    pool = dev.node.txpool_content()["pending"]
    return {tx["hash"] for by_nonce in pool.values() for tx in by_nonce.values()}


def pool_of(dev: Any, venue: str, a: str, b: str, fee: int | None = None) -> PoolInfo:
    ta, tb = dev.book.token(a).address.lower(), dev.book.token(b).address.lower()
    for p in dev.book.pools:
        if p.venue == venue and {p.token0.lower(), p.token1.lower()} == {ta, tb} and fee in (None, p.fee):
            return p
    raise LookupError((venue, a, b, fee))


def balances(dev: Any, rec: SwapRecord) -> tuple[int, int]:
    return dev.balance(rec.path[0], rec.trader), dev.balance(rec.path[-1], rec.trader)


async def test_swap_waits_in_mempool_and_is_mined_in_the_next_block(world: World) -> None:
    dev, tg = world.dev, world.traffic
    start = dev.node.block_number()
    trader = dev.book.traders[0]
    recs = [
        await tg.send_swap(
            pool=pool_of(dev, "uniswap", "WETH", "USDC"), trader=trader, loose=False, usd_size=5_000
        ),
        await tg.send_swap(
            pool=pool_of(dev, "sushiswap", "WETH", "DAI"), trader=trader, loose=True, usd_size=800
        ),
        await tg.send_swap(
            pool=pool_of(dev, V3_VENUE, "WETH", "USDC", 500),
            trader=dev.book.traders[1],
            loose=False,
            usd_size=20_000,
        ),
        await tg.send_swap(
            pool=pool_of(dev, V3_VENUE, "WBTC", "WETH", 3000),
            trader=dev.book.traders[2],
            multihop=True,
            usd_size=3_000,
        ),
    ]
    sent = [r for r in recs if r is not None]
    assert len(sent) == 4
    assert {r.method for r in sent} == {"swapExactTokensForTokens", "exactInputSingle", "exactInput"}
    before = {r.tx_hash: balances(dev, r) for r in sent}
    assert {r.tx_hash for r in sent} <= pending_hashes(dev)  # visible in the mempool before the next block
    assert dev.node.block_number() == start
    report = await world.builder.build_block()
    assert report.number == start + 1
    for r in sent:
        rc = dev.node.rpc("eth_getTransactionReceipt", [r.tx_hash])
        assert rc is not None and int(rc["blockNumber"], 16) == start + 1 and rc["status"] == "0x1", r
    # same trader, two swaps in one block: consecutive nonces assigned by anvil
    n0, n1 = (int(dev.node.rpc("eth_getTransactionByHash", [r.tx_hash])["nonce"], 16) for r in sent[:2])
    assert n1 == n0 + 1
    after = {r.tx_hash: balances(dev, r) for r in sent[2:]}  # traders 1 and 2 have one swap each
    for r in sent[2:]:
        (in0, out0), (in1, out1) = before[r.tx_hash], after[r.tx_hash]
        assert in0 - in1 == r.amount_in
        assert out1 - out0 >= r.amount_out_min and out1 > out0
    settled = await tg.settle()
    assert len(settled) == 4 and all(ok for _, ok in settled)
    assert tg.stats.swaps_mined == 4 and tg.stats.swaps_reverted == 0
    assert tg.stats.swaps_sent == {"uniswap": 1, "sushiswap": 1, V3_VENUE: 2}
    assert pending_hashes(dev) == set()


async def test_native_eth_swap(devnet_state: Any) -> None:
    dev = devnet_state
    dev.node.set_automine(False)
    cfg = TrafficConfig(eth_fraction=1.0)
    async with (
        BlockBuilder(dev.node, interval_s=0.1) as b,
        TrafficGenerator(dev.node, dev.book, cfg, seed=3) as tg,
    ):
        p = pool_of(dev, "uniswap", "WETH", "USDC")
        weth_is_0 = p.token0.lower() == dev.book.weth.lower()
        rec = await tg.send_swap(pool=p, zero_for_one=weth_is_0, usd_size=1_000)
        assert rec is not None and rec.method == "swapExactETHForTokens"
        usdc0 = dev.balance(rec.path[-1], rec.trader)
        await b.build_block()
        assert dev.node.rpc("eth_getTransactionReceipt", [rec.tx_hash])["status"] == "0x1"
        assert dev.balance(rec.path[-1], rec.trader) - usdc0 == rec.quote  # alone in its block: quote exact


async def test_loose_and_tight_slippage_against_the_quote(world: World) -> None:
    dev, tg = world.dev, world.traffic
    p = pool_of(dev, "uniswap", "WETH", "USDC")
    loose = await tg.send_swap(pool=p, loose=True, usd_size=2_000, trader=dev.book.traders[3])
    assert loose is not None and loose.loose
    # the quote is the router's own getAmountsOut at the latest block
    out = dev.call(
        dev.book.v2["uniswap"].router, "UniswapV2Router02", "getAmountsOut", loose.amount_in, list(loose.path)
    )
    assert out[0][-1] == loose.quote
    assert loose.amount_out_min == loose.quote * 6_000 // 10_000  # configured: 40 % below the quote
    tight = await tg.send_swap(
        pool=pool_of(dev, V3_VENUE, "WETH", "USDC", 3000),
        loose=False,
        usd_size=2_000,
        trader=dev.book.traders[4],
    )
    assert tight is not None and not tight.loose
    assert tight.amount_out_min == tight.quote * 9_950 // 10_000  # tight: 50 bps below the quote
    got0 = dev.balance(loose.path[-1], loose.trader), dev.balance(tight.path[-1], tight.trader)
    await world.builder.build_block()
    assert all(ok for _, ok in await tg.settle())
    got1 = dev.balance(loose.path[-1], loose.trader), dev.balance(tight.path[-1], tight.trader)
    # each was alone on its pool in the block, so each received exactly its quote
    assert (got1[0] - got0[0], got1[1] - got0[1]) == (loose.quote, tight.quote)


async def test_oracle_shock_makes_a_borrower_liquidatable(world: World) -> None:
    dev, tg = world.dev, world.traffic
    pool = dev.book.aave.pool
    borrower = dev.book.aave.borrowers[0]  # WETH collateral, USDC debt
    hf0 = dev.call(pool, "Pool", "getUserAccountData", borrower)[5]
    assert hf0 > 10**18
    price0 = await tg.oracle_price("WETH")
    move = await tg.shock("WETH", -0.3)
    assert move.tx_hash in pending_hashes(dev)
    assert dev.call(pool, "Pool", "getUserAccountData", borrower)[5] == hf0  # not mined yet
    await world.builder.build_block()
    assert await tg.oracle_price("WETH") == move.new_price == round(price0 * 0.7)
    hf1 = dev.call(pool, "Pool", "getUserAccountData", borrower)[5]
    assert hf1 < 10**18
    assert tg.stats.oracle_shocks == 1


async def test_step_is_deterministic_and_counts(world: World) -> None:
    dev = world.dev
    cfg = TrafficConfig(swaps_per_block=6, oracle_moves_per_block=2, loose_fraction=0.5)

    async def one_run() -> list[tuple[Any, ...]]:
        snap = dev.node.snapshot()
        try:
            async with TrafficGenerator(dev.node, dev.book, cfg, seed=99) as tg:
                swaps, moves = await tg.step()
                await world.builder.build_block()
                await tg.settle()
                assert tg.stats.total_sent == len(swaps) and tg.stats.swaps_mined == len(swaps)
                assert tg.stats.oracle_moves == len(moves)
                assert tg.stats.loose_swaps == sum(s.loose for s in swaps)
                return [(s.venue, s.path, s.amount_in, s.amount_out_min, s.loose) for s in swaps] + [
                    (m.symbol, m.new_price) for m in moves
                ]
        finally:
            dev.node.drop_all_transactions()
            dev.node.revert(snap)

    first, second = await one_run(), await one_run()
    assert first == second and len(first) > 0


async def test_traffic_and_builder_running_together(world: World) -> None:
    dev = world.dev
    tg = TrafficGenerator(
        dev.node, dev.book, TrafficConfig(swaps_per_second=40, oracle_moves_per_second=5), seed=5
    )
    blocks: list[int] = []
    builder = world.builder

    async def until_mined() -> None:
        while tg.stats.swaps_mined < 5 or len(blocks) < 3:
            await asyncio.sleep(0.05)
            await tg.settle()

    builder.add_block_listener(lambda r: blocks.append(r.number))
    runs = [asyncio.create_task(builder.run()), asyncio.create_task(tg.run())]
    try:
        await asyncio.wait_for(until_mined(), timeout=60)
    finally:
        tg.stop()
        builder.stop()
        await asyncio.gather(*runs)
        await tg.aclose()
    assert blocks == list(range(blocks[0], blocks[0] + len(blocks)))
    assert tg.stats.swaps_mined >= 5 and builder.stats.errors == 0 and builder.stats.order_violations == 0
