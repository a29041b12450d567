"""The template bot end to end on the devnet: real router swaps, one evaluations row per block, and every price
move it reports equal to the pair's getReserves at that block (and the block before the move)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from bots.store import Store
from bots.template.bot import BOT, BlockPrices, build_engine, pair_price, run
from chains.addressbook import PoolInfo
from chains.node.rpc import RpcClient
from tests.bots.recorder.helpers import DEADLINE, reserves_at, v2_pool
from tests.fixtures.devnet import Devnet

THRESHOLD_BPS = 10


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    st = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'template.db'}", upgrade=True)
    try:
        yield st
    finally:
        await st.close()


def swap(dev: Devnet, trader: str, pool: PoolInfo, token_in: str, amount_in: int) -> int:
    """A mined router swap on ``pool`` (automine: one block each); returns its block number."""
    router = next(v.router for name, v in dev.book.v2.items() if name == pool.venue)
    token_out = pool.token1 if token_in == pool.token0 else pool.token0
    rc = dev.transact(
        trader, router, "UniswapV2Router02", "swapExactTokensForTokens",
        amount_in, 1, [token_in, token_out], trader, DEADLINE,
    )  # fmt: skip
    assert rc["status"] == "0x1", rc
    return int(rc["blockNumber"], 16)


def price_at(dev: Devnet, pool: PoolInfo, block: int) -> Fraction:
    """The pair's price from its own getReserves at ``block``: the figure the bot must have computed."""
    price = pair_price(*reserves_at(dev, pool.address, block))
    assert price is not None
    return price


def block_hash(dev: Devnet, n: int) -> str:
    return str(dev.node.rpc("eth_getBlockByNumber", [hex(n), False])["hash"])


async def test_reports_exact_price_moves_and_writes_a_row_per_block(
    devnet_state: Devnet, store: Store
) -> None:
    dev, book = devnet_state, devnet_state.book
    moved = v2_pool(dev, "uniswap", "WETH", "DAI")
    nudged = v2_pool(dev, "sushiswap", "WETH", "DAI")
    quiet = v2_pool(dev, "uniswap", "WETH", "USDC")
    unwatched = v2_pool(dev, "sushiswap", "WETH", "USDC")
    watched = {p.address: p.fee for p in (moved, nudged, quiet)}
    trader = book.traders[7]
    r_moved, r_nudged = reserves_at(dev, moved.address), reserves_at(dev, nudged.address)
    async with RpcClient(dev.node.http_url) as rpc:
        n0 = dev.node.block_number()
        bot = await build_engine(rpc, store, watched, threshold_bps=THRESHOLD_BPS, poll_interval=0.02)
        task = asyncio.create_task(bot.engine.run())
        try:
            blocks = [
                swap(dev, trader, moved, moved.token0, r_moved[0] // 200),  # ~1 % of the pair: a move
                swap(
                    dev, trader, nudged, nudged.token0, r_nudged[0] // 10**6
                ),  # ~0.02 bps: priced, not a move
                swap(dev, trader, unwatched, unwatched.token0, 10**15),  # no watched pair changes
                swap(dev, trader, moved, moved.token1, r_moved[1] // 400),  # back the other way: a move
            ]
            assert blocks == [n0 + 1, n0 + 2, n0 + 3, n0 + 4]
            await bot.collector.wait_done(n0 + 4, timeout=30)
        finally:
            bot.engine.stop()
            health = await task
    assert health["strategies"][BOT]["errors"] == 0 and health["executors"]["store"]["errors"] == 0

    # One evaluated row per block, the start block included, with the number of moves.
    rows = await store.evaluations(book.chain_id, bot=BOT)
    assert [(r.block_number, r.block_hash, r.status, r.opportunities) for r in rows] == [
        (n, block_hash(dev, n), "evaluated", moves)
        for n, moves in zip(range(n0, n0 + 5), [0, 1, 0, 0, 1], strict=True)
    ]

    # Every reported move is the exact getReserves price, before (at the previous change) and after.
    written: list[BlockPrices] = list(bot.executor.recent)
    assert [a.block.number for a in written] == list(range(n0, n0 + 5))
    moves = {a.block.number: a.moves for a in written if a.moves}
    assert sorted(moves) == [n0 + 1, n0 + 4]
    (first,) = moves[n0 + 1]
    assert (first.pool, first.before, first.after) == (
        moved.address.lower(),
        price_at(dev, moved, n0),
        price_at(dev, moved, n0 + 1),
    )
    (second,) = moves[n0 + 4]
    assert (second.pool, second.before, second.after) == (
        moved.address.lower(),
        price_at(dev, moved, n0 + 1),  # unchanged through blocks n0+2 and n0+3
        price_at(dev, moved, n0 + 4),
    )
    for m in (first, second):
        exact = abs(m.after - m.before) * 10_000 / m.before
        assert m.move_bps == exact >= THRESHOLD_BPS
    # The small swap was priced (the next move of that pair is measured from it), but below the threshold.
    assert (
        bot.strategy.prices[nudged.address.lower()]
        == price_at(dev, nudged, n0 + 2)
        != price_at(dev, nudged, n0)
    )
    assert bot.strategy.prices[quiet.address.lower()] == price_at(dev, quiet, n0)
    assert bot.executor.moves_recorded == 2


async def test_run_evaluates_the_blocks_asked_for_and_stops(devnet_state: Devnet, tmp_path: Path) -> None:
    dev = devnet_state
    pool = v2_pool(dev, "uniswap", "WETH", "DAI")
    n0 = dev.node.block_number()
    last = swap(dev, dev.book.traders[8], pool, pool.token0, reserves_at(dev, pool.address)[0] // 100)
    dev.node.mine(1)  # one more block without a swap
    url = f"sqlite+aiosqlite:///{tmp_path / 'run.db'}"
    health: dict[str, Any] = await run(
        dev.node.http_url, url, {pool.address: pool.fee}, at_block=n0, blocks=2, handle_signals=False
    )
    assert health["state"] == "stopped" and health["strategies"][BOT]["events"] == 3
    async with await Store.open(url) as store:
        rows = await store.evaluations(dev.book.chain_id, bot=BOT)
    assert [(r.block_number, r.opportunities) for r in rows] == [(n0, 0), (last, 1), (last + 1, 0)]
