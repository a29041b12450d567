"""The hub: one process per chain follows the chain once and publishes what every bot needs (docs/bus.md).

:class:`Hub` runs the same :class:`chains.watch.blocks.BlockWatcher` and :class:`chains.state.chain.ChainState` a bot
runs in-process (loaded with :func:`chains.state.chain.load_initial` over the configured pools, as
``bots.dex_arb.runner`` does), and turns what the watcher does into messages (:mod:`bots.bus.messages`):

* each applied block -> a :class:`~bots.bus.messages.BlockMessage` (header, mined transactions, raw logs, the
  pools it changed, the state digest of those pools after it), ``seq`` + 1;
* each reorg -> a :class:`~bots.bus.messages.ReorgMessage` (the watcher's ``ChainReorg``, the pools the rollback
  restored and their digest), ``seq`` + 1; a reorg the watcher had to resync through ``load_initial`` is followed
  by a snapshot at its ``seq``;
* a full snapshot (:class:`~bots.bus.messages.StateSnapshot`: the whole state, its head block) at start, every
  ``snapshot_every`` blocks and after a failed publish, stored with the sink's ``put_object`` (one object per chain,
  :func:`snapshot_name`, replaced each time) and announced with a :class:`~bots.bus.messages.SnapshotAnnouncement`.

Block and reorg messages go to one subject (the chain's ``blocks`` subject): ``seq`` is contiguous over both, and a
bot must see a reorg between the blocks it separates, which one ordered consumer guarantees.  The watcher awaits
the hub's listeners, so messages are published in chain order and block N+1 is applied only after block N's message
is handed to the sink (the transport's outbox).  Process wiring (CLI, the NATS client, heartbeats) is not here: the
sink is anything with :class:`MessageSink`'s two methods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from bots.bus.messages import (
    BlockMessage,
    ReorgMessage,
    SnapshotAnnouncement,
    StateSnapshot,
)
from bots.bus.subjects import Topic, subject
from chains.abi.blocks import BlockData, fetch_block
from chains.addressbook import AddressBook
from chains.node.rpc import RpcClient
from chains.promreg import per_registry
from chains.state.chain import ChainState, StateAddresses, load_initial
from chains.state.digest import state_digest, state_snapshot
from chains.watch.blocks import BlockWatcher, ChainReorg

__all__ = ["Hub", "HubMetrics", "MessageSink", "snapshot_name"]

log = logging.getLogger(__name__)


class MessageSink(Protocol):
    """What the hub publishes through (``bots.bus.client.BusClient`` has both methods)."""

    async def publish(self, subject: str, data: bytes, *, msg_id: str) -> None:
        """Hand ``data`` to the ordered outbox for ``subject``; ``msg_id`` de-duplicates a re-send."""

    async def put_object(self, name: str, data: bytes) -> None:
        """Store ``data`` (may exceed the max message payload) under ``name``, replacing an older object."""


def snapshot_name(chain_id: int) -> str:
    """The object-store name of a chain's latest snapshot (replaced by every new one)."""
    return f"chain-{chain_id}-state"


class HubMetrics:
    """The hub's metric families on one registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.published = Counter(
            "mevsuite_hub_messages_published_total",
            "Messages the hub handed to the bus, by kind",
            ["chain_id", "kind"],
            registry=registry,
        )
        self.errors = Counter(
            "mevsuite_hub_publish_errors_total",
            "Messages (or snapshots) the bus refused; bots see a seq gap and re-snapshot",
            ["chain_id", "kind"],
            registry=registry,
        )
        self.snapshot_bytes = Gauge(
            "mevsuite_hub_snapshot_bytes", "Size of the last state snapshot", ["chain_id"], registry=registry
        )
        self.seq = Gauge("mevsuite_hub_seq", "The last seq the hub assigned", ["chain_id"], registry=registry)

    @classmethod
    def on(cls, registry: CollectorRegistry | None) -> HubMetrics:
        return per_registry(registry, f"{__name__}.{cls.__name__}", cls)


class Hub:
    """Follows one chain and publishes its blocks, reorgs and snapshots (see the module docstring).

    ::

        hub = Hub(rpc, StateAddresses(v2_pairs=...), sink, chain_id=31337)
        await hub.start()            # loads the state at the head, publishes the first snapshot (seq = first_seq)
        task = asyncio.create_task(hub.run())
        await hub.wait_published(n)  # block n's message is in the sink
        hub.stop(); await task

    ``first_seq``: the seq of the state the hub starts with; a restarted hub passes the last seq it published (read
    back from the stream) so its message ids never repeat within the duplicate window.
    """

    def __init__(
        self,
        rpc: RpcClient,
        pools: AddressBook | StateAddresses,
        sink: MessageSink,
        *,
        chain_id: int,
        snapshot_every: int = 100,
        first_seq: int = 0,
        heads: AsyncIterable[dict[str, Any]] | None = None,
        poll_interval: float = 0.25,
        journal_depth: int = 64,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be at least 1")
        if first_seq < 0:
            raise ValueError("first_seq must be >= 0")
        self.rpc = rpc
        self.pools = pools
        self.sink = sink
        self.chain_id = chain_id
        self.snapshot_every = snapshot_every
        self.seq = first_seq
        self.heads = heads
        self.poll_interval = poll_interval
        self.journal_depth = journal_depth
        self.registry = registry
        self.metrics = HubMetrics.on(registry)
        self.blocks_subject = subject(chain_id, Topic.BLOCKS)
        self.snapshot_subject = subject(chain_id, Topic.SNAPSHOT)
        self.watcher: BlockWatcher | None = None
        self.published_block = -1  # the last block whose message is in the sink
        self.last_snapshot: SnapshotAnnouncement | None = None
        self._blocks_since_snapshot = 0
        self._snapshot_due = False
        self._last_block: BlockMessage | None = None  # the head block's message (for the snapshot)
        self._progress = asyncio.Event()
        self._label = str(chain_id)

    # ------------------------------------------------------------------ wiring
    async def _load(self, block: int) -> ChainState:
        return await load_initial(self.rpc, self.pools, block, journal_depth=self.journal_depth)

    async def start(self, at_block: int | None = None) -> None:
        """Load the state at ``at_block`` (default: the head), build the watcher, publish the first snapshot."""
        head = at_block if at_block is not None else int(await self.rpc.request("eth_blockNumber", []), 16)
        state = await self._load(head)
        self.watcher = BlockWatcher(
            self.rpc,
            state,
            heads=self.heads,
            resync=self._load,
            chain_id=self.chain_id,
            registry=self.registry,
            poll_interval=self.poll_interval,
        )
        self.watcher.add_block_listener(self._on_block)
        self.watcher.add_reorg_listener(self._on_reorg)
        self._last_block = await self._head_block_message(state)
        self.published_block = head
        await self.publish_snapshot()

    @property
    def state(self) -> ChainState:
        """The hub's state now (a resync replaces the object)."""
        assert self.watcher is not None, "call start() first"
        return self.watcher.state

    async def run(self) -> None:
        """Follow the chain until :meth:`stop` (or cancellation)."""
        assert self.watcher is not None, "call start() first"
        await self.watcher.run()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    async def wait_published(self, number: int, timeout: float | None = 30.0) -> None:  # noqa: ASYNC109
        """Wait until block ``number``'s message is in the sink (``TimeoutError`` after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            while self.published_block < number:
                self._progress.clear()
                await self._progress.wait()

    # ------------------------------------------------------------------ publishing
    async def _publish(self, subj: str, kind: str, data: bytes, msg_id: str) -> bool:
        try:
            await self.sink.publish(subj, data, msg_id=msg_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.metrics.errors.labels(self._label, kind).inc()
            log.exception("hub: publishing %s failed (bots will re-snapshot)", msg_id)
            return False
        self.metrics.published.labels(self._label, kind).inc()
        return True

    async def _send(self, message: BlockMessage | ReorgMessage) -> None:
        if not await self._publish(self.blocks_subject, message.KIND, message.encode(), message.msg_id()):
            self._snapshot_due = True  # the seq is spent: bots see the gap and re-snapshot from a newer one
        self.metrics.seq.labels(self._label).set(message.seq)

    async def _head_block_message(self, state: ChainState) -> BlockMessage | None:
        assert state.block_number is not None
        try:
            data = await fetch_block(self.rpc, state.block_number)
        except Exception:
            log.exception("hub: fetching block %d for the snapshot failed", state.block_number)
            return None
        changed = frozenset(state.pools_in(data.logs))
        return BlockMessage.of(self.chain_id, self.seq, data, changed, state_digest(state, changed))

    async def publish_snapshot(self) -> SnapshotAnnouncement | None:
        """Store the whole state (after message ``seq``) and announce it; ``None`` if the sink refused it."""
        state = self.state
        every = [a for pools in state.pools.values() for a in pools]
        block = self._last_block
        if block is not None and block.block.number != state.block_number:
            block = None
        snap = StateSnapshot(
            self.chain_id, self.seq, state_snapshot(state), state_digest(state, every), block
        )
        data = snap.encode()
        name = snapshot_name(self.chain_id)
        try:
            await self.sink.put_object(name, data)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.metrics.errors.labels(self._label, "state_snapshot").inc()
            log.exception("hub: storing the snapshot at seq %d failed", self.seq)
            self._snapshot_due = True
            return None
        assert state.block_number is not None and state.block_hash is not None
        note = SnapshotAnnouncement(
            self.chain_id, self.seq, name, state.block_number, state.block_hash, snap.digest, len(data)
        )
        self._blocks_since_snapshot = 0
        self._snapshot_due = False
        self.metrics.snapshot_bytes.labels(self._label).set(len(data))
        if await self._publish(self.snapshot_subject, note.KIND, note.encode(), note.msg_id()):
            self.last_snapshot = note
        return note

    # ------------------------------------------------------------------ watcher listeners
    async def _on_block(self, data: BlockData) -> None:
        state = self.state
        changed = frozenset(state.last_changed)
        self.seq += 1
        message = BlockMessage.of(self.chain_id, self.seq, data, changed, state_digest(state, changed))
        self._last_block = message
        await self._send(message)
        self._blocks_since_snapshot += 1
        if self._snapshot_due or self._blocks_since_snapshot >= self.snapshot_every:
            await self.publish_snapshot()
        self.published_block = data.block.number
        self._progress.set()

    async def _on_reorg(self, reorg: ChainReorg) -> None:
        state = self.state
        self.seq += 1
        changed = (
            frozenset(a for pools in state.pools.values() for a in pools)
            if reorg.resynced
            else frozenset(state.last_changed)
        )
        await self._send(ReorgMessage(self.chain_id, self.seq, reorg, changed, state_digest(state, changed)))
        if reorg.resynced:  # the state was reloaded, not rolled back: bots cannot follow with their journal
            self._last_block = await self._head_block_message(state)
            await self.publish_snapshot()
        assert state.block_number is not None
        self.published_block = state.block_number
        self._progress.set()
