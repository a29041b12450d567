"""The recording bot end to end: Engine(BlockCollector → RecorderStrategy → StoreExecutor) over SQLite while the
traffic generator and the block builder produce real blocks on the devnet (automine off)."""

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

from bots.recorder.bot import BlockCollector, RecorderStrategy, StoreExecutor
from bots.runtime.engine import Backoff, Engine
from bots.store import Block, Opportunity, Store, Trade, Transaction
from chains.devnet.actors import TrafficConfig
from chains.devnet.builder import BlockBuilder
from chains.devnet.traffic import TrafficGenerator
from chains.node.rpc import RpcClient
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


@dataclass
class Running:
    engine: Engine
    task: asyncio.Task[dict[str, Any]]
    executor: StoreExecutor
    strategy: RecorderStrategy
    collector: BlockCollector


def start_engine(rpc: Any, collector_rpc: Any, dev: Devnet, store: Store, start: int) -> Running:
    collector = BlockCollector(collector_rpc, start_block=start, poll_interval=0.02)
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
    """Wait (bounded) until block ``last`` is written, then stop the engine gracefully; the final health."""
    try:
        async with asyncio.timeout(60):
            while run.executor.last_block is None or run.executor.last_block < last:
                if run.task.done():
                    raise AssertionError(f"engine ended early: {run.task.result()}")
                failing = run.engine.health()["executors"]["store"]
                if failing["errors"]:
                    raise AssertionError(f"the store executor failed: {failing['last_error']}")
                await asyncio.sleep(0.02)
    finally:
        run.engine.stop()
        health = await run.task
    return health


async def produce(dev: Devnet, seed: int) -> Produced:
    """Three blocks of traffic (swaps on V2/V3, multi-hop, native ETH, oracle moves) mined by the builder."""
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
        live = start_engine(rpc, rpc, dev, store, start)  # follows the chain while the blocks are produced
        p = await produce(dev, seed=21)
        health = await stop_after(live, p.numbers[-1])
        assert health["collectors"]["blocks"]["restarts"] == 0
        assert health["strategies"]["recorder"]["errors"] == 0 and health["executors"]["store"]["errors"] == 0
        first = await rows(store)
        seen = check_store_matches_chain(p, first)
        assert seen["txs"] > seen["swaps"] // 2 > 0 and seen["v3"] > 0  # the traffic really traded
        assert len(first["opportunities"]) == live.strategy.opportunities_found

        # a second bot over the same store from the same start block: every write is a no-op
        again = start_engine(rpc, rpc, dev, store, start)
        health = await stop_after(again, p.numbers[-1])
        assert again.collector.blocks_read == BLOCKS
        assert health["executors"]["store"]["executed"] > 0 and health["executors"]["store"]["errors"] == 0
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


async def test_a_failing_collector_is_restarted_and_misses_no_block(
    devnet_state: Devnet, store: Store
) -> None:
    dev = devnet_state
    async with RpcClient(dev.node.http_url) as rpc:
        p = await produce(dev, seed=5)
        flaky = FailOnce(rpc)
        run = start_engine(rpc, flaky, dev, store, p.start)
        health = await stop_after(run, p.numbers[-1])
    c = health["collectors"]["blocks"]
    assert c["restarts"] == 1 and "injected: connection reset" in str(c["last_error"])
    assert flaky.calls > 1 and run.collector.blocks_read == BLOCKS
    seen = check_store_matches_chain(p, await rows(store))
    assert seen["swaps"] > 0
