"""The DEX arbitrage bot and the recorder fed by the hub over a real NATS: on the devnet (builder, local relay), a
hub publishes every block through one BusClient; the bot (live) and a recorder consume through others.  The bot's
bundles land with realized = simulated to the wei, its state digest equals the hub's at every block it evaluates,
and its RPC client made no log, receipt or block call; the bus-fed recorder writes the rows a direct one does."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select

from bots.app.config import Config
from bots.app.devnet import Devnet, builder_heads, setup_devnet_executor
from bots.bus import BusClient, NatsServer, chain_subjects
from bots.bus.messages import SnapshotAnnouncement
from bots.dex_arb.bot import DexArbSettings
from bots.dex_arb.runner import DexArbRunner, chain_from_book
from bots.hub import Hub
from bots.recorder.bot import RecorderStrategy, StoreExecutor, block_collector, bus_collector
from bots.runtime.bus_collector import BusBlockCollector
from bots.runtime.bus_source import bus_block_collector, snapshot_loader
from bots.runtime.collectors import BlockApplied, BlockCollector
from bots.runtime.engine import Engine
from bots.store import Block, Opportunity, Store, Trade, Transaction
from chains.abi.blocks import BlockData
from chains.devnet.relay import DEVNET_BUILDER_COINBASE
from chains.node.anvil import DEV_MNEMONIC
from chains.node.rpc import RpcClient
from chains.send.signer import Signer
from chains.state.chain import ChainState
from chains.state.digest import state_digest

Account.enable_unaudited_hdwallet_features()

# What a bus-fed process must never ask its node for: its blocks, logs and receipts come from the hub.
FORBIDDEN = (
    "eth_getLogs",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getBlockReceipts",
    "eth_getTransactionReceipt",
)
SWAP_BLOCKS = 6


def _digest(state: ChainState) -> str:
    return state_digest(state, [a for pools in state.pools.values() for a in pools])


def _record_digests(collector: BusBlockCollector, into: dict[int, tuple[str, str]]) -> None:
    """Record (block hash, state digest) of every ``BlockApplied`` as the engine receives it (the state stays at
    that block until the engine is done with it: ``wait_processed``)."""
    events = collector.events

    async def recording() -> Any:
        async for event in events():
            if isinstance(event, BlockApplied):
                into[event.number] = (event.data.block.hash, _digest(event.state))
            yield event

    collector.events = recording  # type: ignore[method-assign]


async def _rows(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every recorder row, without ids and recording times."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with store.session() as s:
        for name, model, order in (
            ("blocks", Block, (Block.number,)),
            ("txs", Transaction, (Transaction.block_number, Transaction.tx_index)),
            ("trades", Trade, (Trade.block_number, Trade.log_index)),
            ("opportunities", Opportunity, (Opportunity.block_number, Opportunity.key)),
        ):
            rows = (await s.execute(select(model).order_by(*order))).scalars()
            out[name] = [
                {
                    c.key: v
                    for c in model.__table__.columns
                    if c.key != "id" and not isinstance(v := getattr(row, c.key), dt.datetime)
                }
                for row in rows
            ]
    return out


def test_the_bot_and_the_recorder_fed_by_the_hub_over_nats(tmp_path: Path) -> None:
    async def go() -> None:
        dev = await Devnet.start(Config(), seed=11, block_time=0, relay=True)
        clients: list[BusClient] = []
        rpcs: list[RpcClient] = []
        stores: list[Store] = []
        engines: list[tuple[Engine, asyncio.Task[dict[str, Any]]]] = []
        runner: DexArbRunner | None = None
        hub: Hub | None = None
        tasks: list[asyncio.Task[Any]] = []
        nats = NatsServer(tmp_path / "nats")
        try:
            nats.start()
            signer = Signer(bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/36").key))
            book = dev.book
            cid = book.chain_id
            executor = await asyncio.to_thread(
                setup_devnet_executor, dev.node, signer.address, book.weth, fund_wei=1000 * 10**18
            )
            assert dev.relay is not None
            for name in ("hub", "dex-arb", "recorder"):
                clients.append(await BusClient.connect(nats.url, name=name))
            hub_bus, bot_bus, rec_bus = clients
            await hub_bus.ensure_streams(cid)

            # The hub: the whole book (V2, V3, Curve, Balancer, Aave), the builder's real blocks.
            hub_rpc = RpcClient(dev.node.http_url)
            rpcs.append(hub_rpc)
            hub = Hub(
                hub_rpc, book, hub_bus, chain_id=cid, heads=builder_heads(dev.builder), snapshot_every=3
            )
            await hub.start()
            assert hub.watcher is not None
            h0 = hub.published_block
            hub_digests = {h0: (hub.state.block_hash, _digest(hub.state))}

            async def on_hub_block(data: BlockData) -> None:
                assert hub is not None
                hub_digests[data.block.number] = (data.block.hash, _digest(hub.state))

            hub.watcher.add_block_listener(on_hub_block)
            tasks.append(asyncio.create_task(hub.run()))

            # The bot, live, on the bus: no watcher, no load_initial.
            runner = DexArbRunner(
                chain_from_book(book, dev.node.http_url),
                signer,
                executor,
                relay_url=dev.relay.url,
                settings=DexArbSettings(live=True),
                coinbase=DEVNET_BUILDER_COINBASE,
                bus=bot_bus,
            )
            await runner.start()
            assert runner.watcher is None and runner.start_block == h0 and runner.rpc is not None
            assert isinstance(runner.blocks, BusBlockCollector)
            bot_digests: dict[int, tuple[str, str]] = {}
            _record_digests(runner.blocks, bot_digests)
            tasks.append(asyncio.create_task(runner.run()))

            # Two recorders on the same blocks: one fed by the bus, one following the node directly.
            rec_rpc, direct_rpc = RpcClient(dev.node.http_url), RpcClient(dev.node.http_url)
            rpcs += [rec_rpc, direct_rpc]
            collectors: list[BusBlockCollector | BlockCollector] = [
                await bus_collector(rec_bus, chain_id=cid),
                await block_collector(
                    direct_rpc, start_block=h0 + 1, heads=builder_heads(dev.builder), chain_id=cid
                ),
            ]
            for i, (collector, rpc) in enumerate(zip(collectors, (rec_rpc, direct_rpc), strict=True)):
                store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / f'rec{i}.db'}", upgrade=True)
                stores.append(store)
                engine = Engine(
                    [collector],
                    [RecorderStrategy(rpc, book)],
                    [StoreExecutor(store, chain_id=cid)],
                    name=f"recorder-{i}",
                )
                engines.append((engine, asyncio.create_task(engine.run())))

            plain = [
                p
                for p in book.pools
                if p.kind in ("v2", "v3")
                and all(book.token_by_address(t).kind in ("standard", "weth") for t in (p.token0, p.token1))
            ]
            blocks: list[int] = []
            for i in range(SWAP_BLOCKS + 1):  # the last block settles the bundles sent after the last swap
                if i < SWAP_BLOCKS:
                    rec = await dev.traffic.send_swap(
                        pool=plain[(i * 7) % len(plain)], usd_size=250_000, loose=True, multihop=False
                    )
                    assert rec is not None
                blocks.append((await dev.builder.build_block()).number)
                await runner.wait_processed(blocks[-1], timeout=30)
                for collector in collectors:
                    await collector.wait_done(blocks[-1], timeout=30)
            assert blocks == list(range(h0 + 1, h0 + 2 + SWAP_BLOCKS))

            # Bundles landed, realized = simulated to the wei.
            assert runner.bot is not None
            st = runner.bot.stats
            assert st.landed_txs >= 1, st
            assert st.mismatches == [] and st.realized_profit_wei == st.simulated_profit_wei > 0
            # The bot's state is the hub's at every block it evaluated (hash and digest over every pool).
            assert sorted(bot_digests) == [h0, *blocks]
            for n, got in bot_digests.items():
                assert got == hub_digests[n], f"block {n}"
            assert runner.blocks.digests_checked >= len(blocks)
            assert sum(runner.blocks.resnapshots.values()) == 0 and runner.blocks.malformed == 0
            # ... and came from the bus only: no log, receipt or block RPC (the node still simulates and sends).
            for rpc in (runner.rpc, rec_rpc):
                assert {m: rpc.calls[m] for m in FORBIDDEN} == dict.fromkeys(FORBIDDEN, 0), rpc.calls
            assert direct_rpc.calls["eth_getBlockByNumber"] > 0  # the counters do see a direct follower

            # The bus-fed recorder wrote what the direct one wrote, for the same blocks.
            bus_rows, direct_rows = [await _rows(s) for s in stores]
            # it starts on the snapshot's head block, the direct one on the block after it
            assert [b["number"] for b in bus_rows["blocks"]] == [h0, *blocks]
            assert [b["number"] for b in direct_rows["blocks"]] == blocks
            for table, rows in bus_rows.items():
                same_blocks = [r for r in rows if r.get("number", r.get("block_number")) != h0]
                assert same_blocks == direct_rows[table], table
            assert direct_rows["txs"] and direct_rows["trades"]
        finally:
            if runner is not None:
                runner.stop()
            if hub is not None:
                hub.stop()
            for engine, _ in engines:
                engine.stop()
            for task in [*tasks, *(t for _, t in engines)]:
                try:
                    await asyncio.wait_for(task, 10)
                except (Exception, asyncio.CancelledError):  # teardown: the test's own failure comes first
                    task.cancel()
            if runner is not None:
                await runner.close()
            for client in clients:
                await client.close(timeout=1.0)
            for rpc in rpcs:
                await rpc.close()
            for s in stores:
                await s.close()
            nats.stop()
            await dev.close()

    asyncio.run(go())


def test_the_snapshot_loader_serves_only_an_announced_object_at_the_seq_needed(tmp_path: Path) -> None:
    async def go() -> None:
        cid = 31337
        with NatsServer(tmp_path / "nats") as nats:
            client = await BusClient.connect(nats.url, name="loader")
            try:
                await client.ensure_streams(cid)
                load = snapshot_loader(client, cid)
                assert await load(0) is None  # nothing announced yet: the collector keeps waiting
                collector = await bus_block_collector(client, cid, durable="loader-test")
                with pytest.raises(TimeoutError):
                    await collector.load(timeout=0.3)
                assert collector.state is None

                snapshot = chain_subjects(cid).snapshot
                await client.publish(snapshot, b'{"not": "an announcement"}', msg_id="junk")
                await client.flush_outbox(5)
                assert await load(0) is None  # unreadable: skipped, not fatal
                note = SnapshotAnnouncement(cid, 5, "chain-31337-state", 9, "0x" + "ab" * 32, "cd" * 32, 4)
                await client.publish(snapshot, note.encode(), msg_id=note.msg_id())
                await client.flush_outbox(5)
                assert await load(0) is None  # announced, but the object is not there (yet)
                await client.put_object(note.name, b"blob")
                assert await load(5) == b"blob" and await load(0) == b"blob"
                assert await load(6) is None  # too old for a bot that needs seq 6
            finally:
                await client.close(timeout=1.0)

    asyncio.run(go())
