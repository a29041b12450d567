"""The hub and the bus-fed block collector on a real devnet: real router swaps and a reorg, published through an
in-memory bus; bots fed from it (from the start, late, with a lost message, with a corrupted digest) hold the hub's
state at every block and emit the hub's blocks.

One hub run (module fixture) records the bus; every test replays it to a fresh ``BusBlockCollector``, the way a
JetStream consumer and the snapshot object store would present it at that point of the stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bots.bus.messages import BlockMessage, ReorgMessage, SnapshotAnnouncement, decode, decode_snapshot
from bots.hub import Hub
from bots.runtime.bus_collector import BusBlockCollector
from bots.runtime.collectors import BlockApplied, ChainReorged
from chains.abi.blocks import BlockData
from chains.addressbook import PoolInfo
from chains.node.rpc import RpcClient
from chains.state.digest import state_digest, state_snapshot
from chains.watch.blocks import ChainReorg
from tests.bots.recorder.helpers import DEADLINE, reserves_at, v2_pool
from tests.fixtures.devnet import Devnet

CHAIN = 31337


@dataclass
class MemoryBus:
    """The hub's sink: every publish and object put, in order (the object store keeps every version here)."""

    timeline: list[tuple[str, str, bytes]] = field(default_factory=list)  # (what, subject or name, data)

    async def publish(self, subject: str, data: bytes, *, msg_id: str) -> None:
        assert msg_id == decode(data).msg_id()  # type: ignore[union-attr]
        self.timeline.append(("publish", subject, data))

    async def put_object(self, name: str, data: bytes) -> None:
        self.timeline.append(("put", name, data))


@dataclass
class Recorded:
    """What the hub did: its bus, and its own state after each message (by seq)."""

    bus: MemoryBus
    states: dict[int, dict[str, Any]]
    blocks: dict[int, tuple[BlockData, frozenset[str]]]
    reorgs: dict[int, ChainReorg]
    n0: int
    last_seq: int

    def messages(self) -> list[tuple[int, bytes]]:
        """(timeline position, data) of every message on the chain's blocks subject."""
        return [
            (i, d)
            for i, (what, s, d) in enumerate(self.bus.timeline)
            if what == "publish" and s.endswith(".blocks")
        ]


class Item:
    """A delivered message as the transport gives it: data, ack, term."""

    def __init__(self, pos: int, data: bytes) -> None:
        self.pos, self.data = pos, data
        self.acked = self.termed = False

    async def ack(self) -> None:
        self.acked = True

    async def term(self) -> None:
        self.termed = True


class Replay:
    """A consumer's view of the recorded bus: ``items`` in order, and the object store as of the consumer's
    position (the newest snapshot put before the message in hand)."""

    def __init__(self, rec: Recorded, items: list[Item], *, joined_at: int = 0) -> None:
        self.rec, self.items, self.pos = rec, items, joined_at
        self.loads: list[int] = []

    async def source(self) -> AsyncIterator[Item]:
        for item in self.items:
            self.pos = item.pos
            yield item

    async def load(self, need: int) -> bytes | None:
        self.loads.append(need)
        puts = [d for what, _, d in self.rec.bus.timeline[: self.pos + 1] if what == "put"]
        if not puts or decode_snapshot(puts[-1]).seq < need:
            return None
        return puts[-1]


@dataclass
class BotRun:
    collector: BusBlockCollector
    events: list[tuple[Any, dict[str, Any]]]  # (event, the state's snapshot when it was emitted)
    registry: CollectorRegistry


async def run_bot(replay: Replay) -> BotRun:
    registry = CollectorRegistry()
    c = BusBlockCollector(replay.source(), replay.load, chain_id=CHAIN, registry=registry)
    events: list[tuple[Any, dict[str, Any]]] = []
    async for ev in c.events():
        assert isinstance(ev, BlockApplied | ChainReorged)
        events.append((ev, state_snapshot(ev.state)))
    return BotRun(c, events, registry)


def swap(dev: Devnet, pool: PoolInfo, amount_in: int, trader: int = 7) -> int:
    router = next(v.router for name, v in dev.book.v2.items() if name == pool.venue)
    t = dev.book.traders[trader]
    rc = dev.transact(
        t, router, "UniswapV2Router02", "swapExactTokensForTokens",
        amount_in, 1, [pool.token0, pool.token1], t, DEADLINE,
    )  # fmt: skip
    assert rc["status"] == "0x1", rc
    return int(rc["blockNumber"], 16)


@pytest.fixture(scope="module")
async def recorded(devnet: Devnet) -> AsyncIterator[Recorded]:
    """A hub on the whole devnet book (V2, V3, Aave) for 5 swap blocks, 2 more, then a 2-block reorg onto a
    3-block branch; snapshots every 2 blocks."""
    dev = devnet
    base = dev.node.snapshot()
    try:
        uni, sushi = v2_pool(dev, "uniswap", "WETH", "DAI"), v2_pool(dev, "sushiswap", "WETH", "DAI")
        bus = MemoryBus()
        states: dict[int, dict[str, Any]] = {}
        blocks: dict[int, tuple[BlockData, frozenset[str]]] = {}
        reorgs: dict[int, ChainReorg] = {}
        async with RpcClient(dev.node.http_url) as rpc:
            hub = Hub(rpc, dev.book, bus, chain_id=CHAIN, snapshot_every=2, poll_interval=0.01)
            await hub.start()
            n0 = hub.published_block
            states[0] = state_snapshot(hub.state)

            async def on_block(data: BlockData) -> None:
                states[hub.seq] = state_snapshot(hub.state)
                blocks[hub.seq] = (data, frozenset(hub.state.last_changed))

            async def on_reorg(reorg: ChainReorg) -> None:
                states[hub.seq] = state_snapshot(hub.state)
                reorgs[hub.seq] = reorg

            assert hub.watcher is not None
            hub.watcher.add_block_listener(on_block)
            hub.watcher.add_reorg_listener(on_reorg)
            task = asyncio.create_task(hub.run())
            try:
                r = reserves_at(dev, uni.address)[0]
                for i in range(5):
                    pool = uni if i % 2 == 0 else sushi
                    assert swap(dev, pool, r // (300 + i)) == n0 + 1 + i
                    await hub.wait_published(n0 + 1 + i)
                fork = dev.node.snapshot()
                assert swap(dev, uni, r // 500) == n0 + 6
                dev.node.mine()
                await hub.wait_published(n0 + 7)
                assert dev.node.revert(fork)
                # the new branch: a different swap (the new blocks' hashes differ), then two more blocks
                assert swap(dev, sushi, r // 700, trader=8) == n0 + 6
                dev.node.mine()
                dev.node.mine()
                await hub.wait_published(n0 + 8)
            finally:
                hub.stop()
                await task
            assert hub.watcher.reorgs and hub.watcher.reorgs[0].orphaned_numbers == (n0 + 6, n0 + 7)
            yield Recorded(bus, states, blocks, reorgs, n0, hub.seq)
    finally:
        dev.node.revert(base)


def _items(rec: Recorded) -> list[Item]:
    return [Item(pos, data) for pos, data in rec.messages()]


def _check_every_event(rec: Recorded, run: BotRun) -> list[int]:
    """Every emitted event carries the hub's state after the same message; returns the seqs seen, in order."""
    seqs: list[int] = []
    by_block_hash = {data.block.hash: seq for seq, (data, _) in rec.blocks.items()}
    by_block_hash[rec.states[0]["block"]["hash"]] = 0
    for event, snap in run.events:
        if isinstance(event, BlockApplied):
            seq = by_block_hash[event.data.block.hash]
        else:
            assert isinstance(event, ChainReorged)
            seq = next(s for s, r in rec.reorgs.items() if r == event.reorg)
        assert snap == rec.states[seq], f"state after seq {seq}"
        seqs.append(seq)
    return seqs


async def test_a_bot_fed_by_the_hub_holds_the_hubs_state_and_emits_its_blocks(recorded: Recorded) -> None:
    rec = recorded
    kinds = [type(decode(d)).__name__ for _, d in rec.messages()]
    assert kinds.count("BlockMessage") == 10 and kinds.count("ReorgMessage") == 1
    announced = [
        decode(d) for what, s, d in rec.bus.timeline if what == "publish" and s.endswith(".snapshot")
    ]
    assert [a.seq for a in announced if isinstance(a, SnapshotAnnouncement)] == [
        0,
        2,
        4,
        6,
        9,
        11,
    ]  # every 2 blocks (a reorg is no block)

    items = _items(rec)
    run = await run_bot(Replay(rec, items))
    c = run.collector
    assert all(i.acked for i in items) and c.malformed == 0
    assert sum(c.resnapshots.values()) == 0 and c.digests_checked == 11
    assert _check_every_event(rec, run) == list(range(0, rec.last_seq + 1))
    # the blocks are the hub's: number, hash, transactions, logs, swaps, changed pools
    first, *rest = [ev for ev, _ in run.events if isinstance(ev, BlockApplied)]
    assert first.initial and first.number == rec.n0
    hub_blocks = [rec.blocks[s] for s in sorted(rec.blocks)]
    assert [(ev.data, ev.changed) for ev in rest] == hub_blocks
    assert any(ev.data.swaps for ev in rest) and all(ev.changed for ev in rest[:5])
    assert [ev.number for ev in rest] == [rec.n0 + i for i in (1, 2, 3, 4, 5, 6, 7, 6, 7, 8)]
    ((reorged, at),) = [(ev, snap) for ev, snap in run.events if isinstance(ev, ChainReorged)]
    assert reorged.reorg.common_ancestor == rec.n0 + 5 and at["block"]["number"] == str(rec.n0 + 5)
    # and the final state is the hub's, pool by pool and by digest
    assert c.state is not None and state_snapshot(c.state) == rec.states[rec.last_seq]
    every = [a for pools in c.state.pools.values() for a in pools]
    last = decode(rec.messages()[-1][1])
    assert isinstance(last, BlockMessage) and state_digest(c.state, last.changed) == last.digest
    assert c.done_block == rec.n0 + 8 and len(every) > 10


async def test_a_late_joiner_starts_from_a_snapshot_and_converges(recorded: Recorded) -> None:
    rec = recorded
    joined = next(
        i
        for i, (what, s, d) in enumerate(rec.bus.timeline)
        if what == "publish" and s.endswith(".snapshot") and decode(d).seq == 2
    )
    # a durable consumer delivers from the stream's start: what the snapshot holds is skipped as a duplicate
    items = _items(rec)
    replay = Replay(rec, items, joined_at=joined)
    replay.pos = joined
    run = await run_bot(replay)
    first = run.events[0][0]
    assert isinstance(first, BlockApplied) and first.initial and first.number == rec.n0 + 2
    assert _check_every_event(rec, run)[1:] == list(range(3, rec.last_seq + 1))
    assert run.collector.state is not None
    assert state_snapshot(run.collector.state) == rec.states[rec.last_seq]
    assert sum(run.collector.resnapshots.values()) == 0 and all(i.acked for i in items)


def _resnapshots(run: BotRun, reason: str) -> float:
    return run.registry.get_sample_value("mevsuite_bus_resnapshots_total", {"reason": reason}) or 0.0


async def test_a_lost_message_is_a_gap_and_a_counted_resnapshot(recorded: Recorded) -> None:
    rec = recorded
    items = [i for i in _items(rec) if decode(i.data).seq != 3]
    run = await run_bot(Replay(rec, items))
    c = run.collector
    assert c.resnapshots["gap"] == 1 == _resnapshots(run, "gap") and sum(c.resnapshots.values()) == 1
    seqs = _check_every_event(rec, run)
    # seq 3 never arrived; the snapshot at seq 4 (stored after message 4) restores the state before message 5
    assert seqs == [0, 1, 2, 4, *range(5, rec.last_seq + 1)]
    assert c.state is not None and state_snapshot(c.state) == rec.states[rec.last_seq]
    rebuilt = next(ev for ev, _ in run.events if isinstance(ev, BlockApplied) and ev.number == rec.n0 + 4)
    assert rebuilt.changed == frozenset(
        a for p in rebuilt.state.pools.values() for a in p
    )  # a new state object


async def test_a_corrupted_digest_is_a_counted_resnapshot(recorded: Recorded) -> None:
    rec = recorded
    items = _items(rec)
    for i, item in enumerate(items):
        message = decode(item.data)
        if message.seq == 3:
            assert isinstance(message, BlockMessage)
            items[i] = Item(item.pos, replace(message, digest="0" * 64).encode())
    run = await run_bot(Replay(rec, items))
    c = run.collector
    assert c.resnapshots["digest"] == 1 == _resnapshots(run, "digest") and sum(c.resnapshots.values()) == 1
    # the hub's own snapshot at seq 2 replays message 3 to the same disagreement: the one at seq 4 settles it
    assert _check_every_event(rec, run) == [0, 1, 2, 4, *range(5, rec.last_seq + 1)]
    assert c.state is not None and state_snapshot(c.state) == rec.states[rec.last_seq]


async def test_a_state_the_bot_got_wrong_is_rebuilt_from_the_last_snapshot_and_the_buffer(
    recorded: Recorded,
) -> None:
    rec = recorded
    items = _items(rec)
    replay = Replay(rec, items)
    c = BusBlockCollector(replay.source(), replay.load, chain_id=CHAIN)
    events = []
    async for ev in c.events():
        events.append(ev)
        if isinstance(ev, BlockApplied) and ev.number == rec.n0 + 3:
            (pair,) = ev.changed
            # a local bug (a Sync would overwrite a reserve): the next block touching the pair disagrees with the hub
            ev.state.v2[pair].fee_bps += 1
    assert c.resnapshots["digest"] == 1 and sum(c.resnapshots.values()) == 1
    assert c.state is not None and state_snapshot(c.state) == rec.states[rec.last_seq]
    # nothing was skipped: the snapshot at seq 4 and the buffered messages after it replace the state
    applied = [ev.number for ev in events if isinstance(ev, BlockApplied)]
    assert applied == [rec.n0 + i for i in (0, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8)]


async def test_malformed_and_foreign_messages_are_terminated_and_change_nothing(recorded: Recorded) -> None:
    rec = recorded
    items = _items(rec)
    first = json.loads(items[2].data)
    bad = [
        Item(items[1].pos, b'{"schema": 1, "kind": "block", "chain_id": 31337, "seq": 2'),
        Item(items[1].pos, json.dumps({**first, "kind": "mystery"}).encode()),
        Item(items[1].pos, json.dumps({**first, "schema": 99}).encode()),
        Item(items[1].pos, json.dumps({**first, "chain_id": 1}).encode()),
        Item(items[1].pos, b"[" * 100_000),
    ]
    run = await run_bot(Replay(rec, [items[0], items[1], *bad, *items[2:]]))
    assert all(b.termed and not b.acked for b in bad) and run.collector.malformed == len(bad)
    assert sum(run.collector.resnapshots.values()) == 0
    assert _check_every_event(rec, run) == list(range(0, rec.last_seq + 1))
    # plain bytes (no term()): the exception is the transport's to handle
    c = BusBlockCollector(_aiter([items[0].data, b"nope"]), Replay(rec, items).load, chain_id=CHAIN)
    seen = []
    with pytest.raises(ValueError, match="json"):
        async for ev in c.events():
            seen.append(ev)
    assert len(seen) == 2 and c.seq == 1


async def _aiter(datas: list[bytes]) -> AsyncIterator[bytes]:
    for d in datas:
        yield d


def test_reorg_messages_carry_the_rollbacks_digest(recorded: Recorded) -> None:
    (message,) = [m for _, d in recorded.messages() if isinstance(m := decode(d), ReorgMessage)]
    assert not message.reorg.resynced and message.changed  # the rollback restored the swapped pools
    assert recorded.states[message.seq]["block"]["number"] == str(recorded.n0 + 5)
