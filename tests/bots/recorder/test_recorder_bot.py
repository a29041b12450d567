"""The recording bot end to end: Engine(BlockCollector → RecorderStrategy → StoreExecutor) over SQLite while the
traffic generator and the block builder produce real blocks on the devnet (automine off); a dropped connection
and a reorg on the way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy import select

from bots.recorder.bot import RecorderStrategy, StoreExecutor, block_collector
from bots.runtime.collectors import BlockCollector
from bots.runtime.engine import Backoff, Engine
from bots.store import Block, Opportunity, Store, Trade, Transaction
from chains.devnet.actors import TrafficConfig
from chains.devnet.builder import BlockBuilder, BlockReport
from chains.devnet.traffic import TrafficGenerator
from chains.node.rpc import RpcClient
from chains.state.chain import StateAddresses, load_initial
from chains.watch.blocks import BlockWatcher
from tests.bots.recorder.helpers import DEADLINE, reserves_at, v2_pool
from tests.fixtures.devnet import Devnet

V2_TOPIC = "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex()
V3_TOPIC = "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex()
BLOCKS = 3


@dataclass
class Produced:
    dev: Devnet
    start: int  # first produced block
    numbers: list[int]
    tx_counts: dict[int, int]  # from the builder's reports


class BuilderHeads:
    """The builder's real blocks as the watcher's head stream (the builder trial-mines and reverts blocks, so a
    watcher polling ``latest`` could catch a trial block); registered before the first block is built."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_block(self, report: BlockReport) -> None:
        self.queue.put_nowait({"number": hex(report.number), "hash": report.hash})

    def __aiter__(self) -> BuilderHeads:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.queue.get()


@dataclass
class Running:
    engine: Engine
    task: asyncio.Task[dict[str, Any]]
    executor: StoreExecutor
    strategy: RecorderStrategy
    collector: BlockCollector


def start_engine(rpc: Any, dev: Devnet, store: Store, collector: BlockCollector) -> Running:
    strategy = RecorderStrategy(rpc, dev.book)
    executor = StoreExecutor(store, chain_id=dev.book.chain_id)
    engine = Engine(
        [collector],
        [strategy],
        [executor],
        name="recorder-test",
        restart_backoff=Backoff(initial=0.01, maximum=0.05),
    )
    task = asyncio.create_task(engine.run())
    return Running(engine, task, executor, strategy, collector)


async def stop_after(run: Running, last: int) -> dict[str, Any]:
    """Wait (bounded) until the engine is done with block ``last``, then stop it gracefully; the final health."""
    try:
        done = asyncio.ensure_future(run.collector.wait_done(last, timeout=60))
        await asyncio.wait({done, run.task}, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():
            done.cancel()
            raise AssertionError(f"engine ended early: {run.task.result()}")
        done.result()
    finally:
        run.engine.stop()
        health = await run.task
    store = health["executors"]["store"]
    assert store["errors"] == 0, store["last_error"]
    return health


async def produce(dev: Devnet, seed: int, heads: BuilderHeads | None = None) -> Produced:
    """Three blocks of traffic (swaps on V2/V3, multi-hop, native ETH, oracle moves) mined by the builder
    (``heads``: told of each block the builder mines)."""
    dev.node.set_automine(False)  # devnet_state restores it
    cfg = TrafficConfig(
        swaps_per_block=5.0, oracle_moves_per_block=1.0, multihop_fraction=0.3, loose_fraction=0.3
    )
    start = dev.node.block_number() + 1
    tx_counts: dict[int, int] = {}
    async with (
        BlockBuilder(dev.node, interval_s=0.1, block_time_s=12) as builder,
        TrafficGenerator(dev.node, dev.book, cfg, seed=seed) as traffic,
    ):
        if heads is not None:
            builder.add_block_listener(heads.on_block)
        for _ in range(BLOCKS):
            await traffic.step()
            report = await builder.build_block()
            tx_counts[report.number] = report.tx_count
        await traffic.settle()
    numbers = list(range(start, start + BLOCKS))
    assert sorted(tx_counts) == numbers
    return Produced(dev, start, numbers, tx_counts)


async def rows(store: Store) -> dict[str, list[Any]]:
    async with store.session() as s:
        return {
            "blocks": list((await s.execute(select(Block).order_by(Block.number))).scalars()),
            "txs": list(
                (
                    await s.execute(
                        select(Transaction).order_by(Transaction.block_number, Transaction.tx_index)
                    )
                ).scalars()
            ),
            "trades": list(
                (await s.execute(select(Trade).order_by(Trade.block_number, Trade.log_index))).scalars()
            ),
            "opportunities": list((await s.execute(select(Opportunity))).scalars()),
        }


def check_store_matches_chain(p: Produced, r: dict[str, list[Any]]) -> dict[str, int]:
    dev, book = p.dev, p.dev.book
    pools = {pl.address: pl for pl in book.pools}
    chain_id = book.chain_id
    # blocks: exactly the produced ones, with their hashes
    chain_blocks = {n: dev.node.rpc("eth_getBlockByNumber", [hex(n), False]) for n in p.numbers}
    assert [(b.number, b.hash, b.parent_hash, b.timestamp) for b in r["blocks"]] == [
        (n, chain_blocks[n]["hash"], chain_blocks[n]["parentHash"], int(chain_blocks[n]["timestamp"], 16))
        for n in p.numbers
    ]
    assert all(b.chain_id == chain_id for b in r["blocks"])

    # transactions: one row per mined tx, equal to the receipts
    receipts = {n: dev.node.rpc("eth_getBlockReceipts", [hex(n)]) for n in p.numbers}
    for n in p.numbers:
        assert len(chain_blocks[n]["transactions"]) == len(receipts[n]) == p.tx_counts[n]
    assert len(r["txs"]) == sum(p.tx_counts.values())
    expected_txs = [
        (
            int(rc["blockNumber"], 16),
            rc["blockHash"],
            int(rc["transactionIndex"], 16),
            rc["transactionHash"],
            to_checksum_address(rc["from"]),
            int(rc["gasUsed"], 16),
            int(rc["effectiveGasPrice"], 16),
            rc["status"] == "0x1",
        )
        for n in p.numbers
        for rc in receipts[n]
    ]
    assert [
        (
            t.block_number,
            t.block_hash,
            t.tx_index,
            t.tx_hash,
            t.sender,
            t.gas_used,
            t.effective_gas_price,
            t.success,
        )
        for t in r["txs"]
    ] == expected_txs

    # trades: one row per Swap log, decoded here with eth_abi
    swap_logs = [
        lg
        for n in p.numbers
        for rc in receipts[n]
        for lg in rc["logs"]
        if lg["topics"] and lg["topics"][0] in (V2_TOPIC, V3_TOPIC)
    ]
    assert len(r["trades"]) == len(swap_logs)
    for lg, tr in zip(swap_logs, r["trades"], strict=True):
        data = bytes.fromhex(lg["data"][2:])
        if lg["topics"][0] == V2_TOPIC:
            in0, in1, out0, out1 = abi_decode(["uint256"] * 4, data)
            d0, d1 = in0 - out0, in1 - out1
        else:
            d0, d1, *_ = abi_decode(["int256", "int256", "uint160", "uint128", "int24"], data)
        pool = pools[to_checksum_address(lg["address"])]
        assert (tr.block_hash, tr.log_index, tr.tx_hash, tr.pool) == (
            lg["blockHash"],
            int(lg["logIndex"], 16),
            lg["transactionHash"],
            pool.address,
        )
        assert (d0 > 0) != (d1 > 0)  # a router swap: the pool receives one token and pays the other
        if d0 > 0:
            assert (tr.token_in, tr.token_out, tr.amount_in, tr.amount_out) == (
                pool.token0,
                pool.token1,
                d0,
                -d1,
            )
        else:
            assert (tr.token_in, tr.token_out, tr.amount_in, tr.amount_out) == (
                pool.token1,
                pool.token0,
                d1,
                -d0,
            )
        assert tr.amount_in > 0 and tr.amount_out > 0
    return {
        "txs": len(r["txs"]),
        "swaps": len(swap_logs),
        "failed": sum(not t.success for t in r["txs"]),
        "v3": sum(lg["topics"][0] == V3_TOPIC for lg in swap_logs),
    }


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    st = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'recorder.db'}", upgrade=True)
    try:
        yield st
    finally:
        await st.close()


async def test_records_every_block_tx_and_swap_and_rereading_adds_nothing(
    devnet_state: Devnet, store: Store
) -> None:
    dev = devnet_state
    async with RpcClient(dev.node.http_url) as rpc:
        start = dev.node.block_number() + 1
        heads = BuilderHeads()
        # follows the builder's blocks while they are produced
        live = start_engine(rpc, dev, store, await block_collector(rpc, start_block=start, heads=heads))
        p = await produce(dev, seed=21, heads=heads)
        health = await stop_after(live, p.numbers[-1])
        assert health["collectors"]["blocks"]["restarts"] == 0
        assert health["strategies"]["recorder"]["errors"] == 0
        assert live.collector.watcher.reorgs == []
        first = await rows(store)
        seen = check_store_matches_chain(p, first)
        assert seen["txs"] > seen["swaps"] // 2 > 0 and seen["v3"] > 0  # the traffic really traded
        assert len(first["opportunities"]) == live.strategy.opportunities_found
        assert live.executor.last_block == p.numbers[-1]

        # a second bot over the same store from the same start block (polling the node): every write is a no-op
        again = start_engine(
            rpc, dev, store, await block_collector(rpc, start_block=start, poll_interval=0.02)
        )
        health = await stop_after(again, p.numbers[-1])
        assert again.collector.watcher.blocks_applied == BLOCKS
        assert health["executors"]["store"]["executed"] > 0
        second = await rows(store)
        assert {k: len(v) for k, v in second.items()} == {k: len(v) for k, v in first.items()}
        assert [t.id for t in second["trades"]] == [t.id for t in first["trades"]]
        check_store_matches_chain(p, second)


class FailOnce:
    """An RPC client whose very first call raises (a dropped connection), then behaves."""

    def __init__(self, inner: RpcClient) -> None:
        self.inner = inner
        self.calls = 0

    def _tick(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionResetError("injected: connection reset by peer")

    async def request(self, method: str, params: Any = None) -> Any:
        self._tick()
        return await self.inner.request(method, params)

    async def batch(self, calls: Any) -> list[Any]:
        self._tick()
        return await self.inner.batch(calls)


async def test_a_dropped_connection_is_retried_and_misses_no_block(
    devnet_state: Devnet, store: Store
) -> None:
    dev = devnet_state
    async with RpcClient(dev.node.http_url) as rpc:
        p = await produce(dev, seed=5)
        flaky = FailOnce(rpc)
        # The collector's pieces, as block_collector() builds them, with the flaky client under the watcher.
        state = await load_initial(rpc, StateAddresses(), p.start - 1)
        watcher = BlockWatcher(flaky, state, poll_interval=0.02, backoff_initial=0.01)
        run = start_engine(rpc, dev, store, BlockCollector(watcher, emit_start_block=False))
        health = await stop_after(run, p.numbers[-1])
    # The watcher retries a failed request itself: the collector never fails, nothing is lost or read twice.
    assert health["collectors"]["blocks"]["restarts"] == 0
    assert watcher.error_count("rpc") == 1 and flaky.calls > 1
    assert watcher.blocks_applied == BLOCKS
    seen = check_store_matches_chain(p, await rows(store))
    assert seen["swaps"] > 0


def _swap(dev: Devnet, trader: str, pool_in: str, pool_out: str, amount: int) -> dict[str, Any]:
    return dev.transact(
        trader,
        dev.book.v2["uniswap"].router,
        "UniswapV2Router02",
        "swapExactTokensForTokens",
        amount,
        1,
        [pool_in, pool_out],
        trader,
        DEADLINE,
    )


async def test_a_reorg_replaces_the_rows_of_the_orphaned_blocks(devnet_state: Devnet, store: Store) -> None:
    dev, book = devnet_state, devnet_state.book
    pool = v2_pool(dev, "uniswap", "WETH", "DAI")
    t_a, t_b = book.traders[5], book.traders[6]
    reserve1 = reserves_at(dev, pool.address)[1]
    async with RpcClient(dev.node.http_url) as rpc:
        n0 = dev.node.block_number()
        run = start_engine(
            rpc, dev, store, await block_collector(rpc, start_block=n0 + 1, poll_interval=0.02)
        )
        fork = dev.node.snapshot()
        old = [
            _swap(dev, t_a, pool.token1, pool.token0, reserve1 // 2000) for _ in range(2)
        ]  # blocks n0+1, n0+2
        assert [int(rc["blockNumber"], 16) for rc in old] == [n0 + 1, n0 + 2]
        await run.collector.wait_done(n0 + 2, timeout=30)
        assert (await store.latest_block(book.chain_id)) == (n0 + 2, old[1]["blockHash"])

        # The other branch: back to n0, three blocks with another trader's swaps.
        assert dev.node.revert(fork)
        new = [_swap(dev, t_b, pool.token0, pool.token1, 10**17 * (i + 1)) for i in range(3)]
        assert [int(rc["blockNumber"], 16) for rc in new] == [n0 + 1, n0 + 2, n0 + 3]
        health = await stop_after(run, n0 + 3)
    assert health["strategies"]["recorder"]["errors"] == 0
    (outcome,) = run.executor.reorgs.outcomes
    assert outcome.reorg.common_ancestor == n0
    assert outcome.reorg.orphaned_hashes == tuple(rc["blockHash"] for rc in old)
    assert outcome.rollback.deleted["blocks"] == 2 and outcome.rollback.deleted["transactions"] == 2
    r = await rows(store)
    assert [(b.number, b.hash) for b in r["blocks"]] == [
        (n0 + 1 + i, rc["blockHash"]) for i, rc in enumerate(new)
    ]
    assert [(t.block_hash, t.tx_hash) for t in r["txs"]] == [
        (rc["blockHash"], rc["transactionHash"]) for rc in new
    ]
    assert [(t.tx_hash, t.token_in) for t in r["trades"]] == [
        (rc["transactionHash"], pool.token0) for rc in new
    ]
