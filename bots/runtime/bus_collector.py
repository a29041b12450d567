"""Whole blocks and reorgs from the hub's bus messages instead of a node: the bot side of docs/bus.md.

:class:`BusBlockCollector` yields exactly what :class:`bots.runtime.collectors.BlockCollector` yields --
:class:`~bots.runtime.collectors.BlockApplied` (the block's data, the pools it changed, the state at its end) and
:class:`~bots.runtime.collectors.ChainReorged` -- one at a time (``wait_processed``: the next message is applied only
once the engine is done with the last event, the ordering rule of docs/adding-a-bot.md), from a local
:class:`~chains.state.chain.ChainState` that it keeps with the same code as the hub: no log, receipt or block RPC.

* **Start.** ``load_snapshot(0)`` gives the hub's latest :class:`~bots.bus.messages.StateSnapshot`; the state is
  rebuilt from it (:func:`chains.state.digest.state_from_snapshot`) and checked against its digest; its head block is
  emitted first (``initial=True``, as ``BlockCollector(emit_start_block=True)`` does).  ``await load()`` does this
  before the engine starts, for a bot that builds on the state (the wiring on NATS: :mod:`bots.runtime.bus_source`).
* **Blocks.** Messages arrive in ``seq`` order; one at or below the state's ``seq`` is a duplicate (skipped). A
  :class:`~bots.bus.messages.BlockMessage` must follow the state's head (number and parent hash); it is applied with
  ``ChainState.apply_block_data`` and the result checked: the changed pools and
  :func:`~chains.state.digest.state_digest` over them must equal the hub's.
* **Reorgs.** A :class:`~bots.bus.messages.ReorgMessage` rolls the state back with ``ChainState.rollback_to`` (what
  the watcher does), checks the ancestor's hash and the digest of the restored pools, and emits ``ChainReorged``.
* **Re-snapshot.** A ``seq`` gap, a block that does not follow the head, a digest mismatch, a block the state
  refuses, or a reorg the journal cannot undo (or that the hub resynced) is counted in
  ``mevsuite_bus_resnapshots_total{reason}`` (``gap``, ``parent``, ``digest``, ``apply``, ``reorg``) and the state is
  rebuilt: ``load_snapshot(need)`` must return the newest snapshot at ``seq >= need`` (or ``None`` while there is
  none); the messages received since (the collector keeps the last ``buffer`` of them) are replayed on it and
  checked again.  While no usable snapshot exists nothing is emitted, and every incoming message retries.  Reorgs
  the snapshot covers are emitted as ``ChainReorged`` (a bot's store rows must follow), the snapshot's head block
  as a ``BlockApplied`` if the engine had not seen it, and the first ``BlockApplied`` on a rebuilt state names every
  followed pool as changed (``state`` is a new object: strategies rebuild what they derived from the old one).
* **Malformed data.** :func:`bots.bus.messages.decode` raises :class:`~bots.bus.messages.MalformedMessage`.  An
  item with ``term()`` (a transport message) is terminated and counted here (``malformed``); plain bytes re-raise
  it, for the transport to terminate.  Items with ``ack()`` are acknowledged once the engine is done with them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from bots.bus.messages import (
    BlockMessage,
    MalformedMessage,
    Message,
    ReorgMessage,
    SnapshotAnnouncement,
    StateSnapshot,
    decode,
    decode_snapshot,
)
from bots.runtime.collectors import BlockApplied, ChainReorged
from bots.runtime.engine import Collector
from chains.abi.blocks import BlockData
from chains.events import AnyEvent
from chains.promreg import per_registry
from chains.state.chain import ChainState, StateError
from chains.state.digest import StateSnapshotError, state_digest, state_from_snapshot

__all__ = ["BusBlockCollector", "BusCollectorMetrics", "SnapshotLoader"]

log = logging.getLogger(__name__)

# need -> the newest snapshot object whose seq >= need, or None while there is none
SnapshotLoader = Callable[[int], Awaitable[bytes | None]]

RESNAPSHOT_REASONS = ("gap", "parent", "digest", "apply", "reorg")


class BusCollectorMetrics:
    """``mevsuite_bus_resnapshots_total{reason}`` on one registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.resnapshots = Counter(
            "mevsuite_bus_resnapshots_total",
            "Times a bot's bus-fed state lost sync with the hub and was rebuilt from a snapshot",
            ["reason"],
            registry=registry,
        )

    @classmethod
    def on(cls, registry: CollectorRegistry | None) -> BusCollectorMetrics:
        return per_registry(registry, f"{__name__}.{cls.__name__}", cls)


def _all_pools(state: ChainState) -> frozenset[str]:
    return frozenset(a for pools in state.pools.values() for a in pools)


class BusBlockCollector(Collector):
    """``BlockApplied`` / ``ChainReorged`` from bus messages (see the module docstring).

    ``source``: the chain's block-subject consumer (items are the message bytes, or objects with ``.data`` and
    optionally ``ack()`` / ``term()``); ``load_snapshot``: see :data:`SnapshotLoader`.  ``state`` is the local state
    now (a re-snapshot replaces the object); ``seq`` the last message applied to it.
    """

    name = "blocks"
    wait_processed = True

    def __init__(
        self,
        source: AsyncIterable[Any],
        load_snapshot: SnapshotLoader,
        *,
        chain_id: int,
        emit_start_block: bool = True,
        registry: CollectorRegistry | None = None,
        journal_depth: int = 64,
        buffer: int = 64,
        retry_interval: float = 0.25,
    ) -> None:
        if buffer < 1:
            raise ValueError("buffer must be at least 1")
        self.source = source
        self.load_snapshot = load_snapshot
        self.chain_id = chain_id
        self.emit_start_block = emit_start_block
        self.journal_depth = journal_depth
        self.buffer_size = buffer
        self.retry_interval = retry_interval
        self.metrics = BusCollectorMetrics.on(registry)
        self.state: ChainState | None = None
        self.seq = -1  # the last message the state reflects
        self.done_block = -1  # the last block the engine is done with
        self.digests_checked = 0
        self.resnapshots: dict[str, int] = dict.fromkeys(RESNAPSHOT_REASONS, 0)
        self.malformed = 0
        self._iter: AsyncIterator[Any] | None = None
        self._buffer: OrderedDict[int, BlockMessage | ReorgMessage] = OrderedDict()
        self._need: int | None = None  # None: in sync; else the oldest snapshot seq that can restore it
        self._seen = -1  # the highest seq whose event the engine has been given
        self._replaced = False  # the next BlockApplied is the first on a rebuilt state
        self._unfinished: tuple[AnyEvent, int, Any] | None = None  # (event, seq, item) the engine was given
        self._start: BlockApplied | None = None  # the loaded snapshot's head block, not emitted yet
        self._done_changed = asyncio.Event()

    # ------------------------------------------------------------------ the engine's side
    async def load(self, timeout: float | None = None) -> ChainState:  # noqa: ASYNC109
        """Load the first snapshot now (retrying while there is none; ``TimeoutError`` after ``timeout`` seconds)
        rather than when :meth:`events` starts, so a bot can build on the state first; :meth:`events` still emits
        its head block first.  Returns the state (at once if it is loaded already)."""
        if self.state is None:
            async with asyncio.timeout(timeout):
                self._start = await self._first_load()
        assert self.state is not None
        return self.state

    async def events(self) -> AsyncIterator[AnyEvent]:
        if self.state is None:
            await self.load()
        start, self._start = self._start, None
        if self.emit_start_block and start is not None:
            yield start
            self._mark_done(start, self.seq)
        if self._unfinished is not None:
            # The last run stopped while the engine worked on this event (already applied): hand it over again.
            event, seq, item = self._unfinished
            yield event
            self._unfinished = None
            self._mark_done(event, seq)
            await self._settle(item, "ack")
        if self._iter is None:
            self._iter = aiter(self.source)
        while True:
            try:
                item = await anext(self._iter)
            except StopAsyncIteration:
                return
            data = item if isinstance(item, bytes | bytearray | str) else item.data
            try:
                message = decode(data)
                if message.chain_id != self.chain_id:
                    raise MalformedMessage(
                        f"shape: a message of chain {message.chain_id} on chain {self.chain_id}'s subject"
                    )
            except MalformedMessage as exc:
                self.malformed += 1
                if getattr(item, "term", None) is None:
                    raise
                log.warning("bus collector: malformed message terminated: %s", exc)
                await self._settle(item, "term")
                continue
            async for event, seq in self._on_message(message):
                self._unfinished = (event, seq, item)
                yield event
                self._unfinished = None
                self._mark_done(event, seq)
            await self._settle(item, "ack")

    @staticmethod
    async def _settle(item: Any, how: str) -> None:
        settle = getattr(item, how, None)
        if settle is not None:
            await settle()

    def _mark_done(self, event: AnyEvent, seq: int) -> None:
        self._seen = max(self._seen, seq)
        if isinstance(event, BlockApplied):
            self.done_block = max(self.done_block, event.number)
            self._done_changed.set()

    async def wait_done(self, number: int, timeout: float | None = 60.0) -> None:  # noqa: ASYNC109
        """Wait until the engine is done with block ``number`` (``TimeoutError`` after ``timeout`` seconds; None:
        no limit)."""
        async with asyncio.timeout(timeout):
            while self.done_block < number:
                self._done_changed.clear()
                await self._done_changed.wait()

    # ------------------------------------------------------------------ snapshots
    async def _snapshot(self, need: int) -> tuple[StateSnapshot, ChainState] | None:
        """The newest usable snapshot at ``seq >= need`` and its state, or ``None`` (logged) if there is none."""
        try:
            raw = await self.load_snapshot(need)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bus collector: loading a snapshot (seq >= %d) failed", need)
            return None
        if raw is None:
            return None
        try:
            snap = decode_snapshot(raw)
            state = state_from_snapshot(snap.state, journal_depth=self.journal_depth)
        except (MalformedMessage, StateSnapshotError, StateError) as exc:
            log.warning("bus collector: unusable snapshot: %s", exc)
            return None
        if snap.chain_id != self.chain_id or snap.seq < need:
            log.warning(
                "bus collector: snapshot of chain %d at seq %d does not serve chain %d at seq >= %d",
                snap.chain_id,
                snap.seq,
                self.chain_id,
                need,
            )
            return None
        if state_digest(state, _all_pools(state)) != snap.digest:
            log.warning("bus collector: the snapshot at seq %d does not match its own digest", snap.seq)
            return None
        return snap, state

    async def _first_load(self) -> BlockApplied | None:
        while True:
            got = await self._snapshot(0)
            if got is not None:
                break
            await asyncio.sleep(self.retry_interval)
        snap, state = got
        self.state, self.seq, self._seen = state, snap.seq, snap.seq
        log.info(
            "bus collector: chain %d state loaded at block %s (seq %d)",
            self.chain_id,
            state.block_number,
            snap.seq,
        )
        if snap.block is None:
            return None
        data = snap.block.block_data()
        return BlockApplied(data, frozenset(state.pools_in(data.logs)), state, initial=True)

    # ------------------------------------------------------------------ messages
    def _remember(self, message: BlockMessage | ReorgMessage) -> None:
        self._buffer[message.seq] = message
        self._buffer.move_to_end(message.seq)
        while len(self._buffer) > self.buffer_size:
            self._buffer.popitem(last=False)

    def _run_start(self) -> int:
        """The first seq of the contiguous run of buffered messages that ends at the newest one."""
        seqs = sorted(self._buffer)
        start = seqs[-1]
        for s in reversed(seqs[:-1]):
            if s != start - 1:
                break
            start = s
        return start

    def _lose_sync(self, reason: str, at: int) -> None:
        """Counted once per loss of sync; ``need``: a snapshot from which the buffered messages can be replayed."""
        self.resnapshots[reason] += 1
        self.metrics.resnapshots.labels(reason).inc()
        log.warning(
            "bus collector: chain %d out of sync at seq %d (%s): re-snapshotting", self.chain_id, at, reason
        )
        self._need = max(self._run_start() - 1, 0)

    async def _on_message(self, message: Message) -> AsyncIterator[tuple[AnyEvent, int]]:
        if isinstance(message, SnapshotAnnouncement):
            if self._need is not None and message.seq >= self._need:
                async for out in self._resync():
                    yield out
            return
        seq = message.seq
        if self._need is None and seq <= self.seq:
            return  # a duplicate (a redelivery, or a message the snapshot already holds)
        self._remember(message)
        if self._need is None:
            if seq > self.seq + 1:
                self._lose_sync("gap", seq)
            else:
                assert self.state is not None
                event, reason = self._apply(self.state, message)
                if event is not None:
                    self.seq = seq
                    yield self._fresh(event), seq
                    return
                assert reason is not None
                self._lose_sync(reason, seq)
        async for out in self._resync():
            yield out

    def _fresh(self, event: AnyEvent) -> AnyEvent:
        if self._replaced and isinstance(event, BlockApplied):
            self._replaced = False
            return BlockApplied(event.data, _all_pools(event.state), event.state, event.initial)
        return event

    def _apply(
        self, state: ChainState, message: BlockMessage | ReorgMessage
    ) -> tuple[AnyEvent | None, str | None]:
        """Apply ``message`` to ``state`` with the ``ChainState`` code and check it against the hub's digest."""
        if isinstance(message, ReorgMessage):
            reorg = message.reorg
            if reorg.resynced or reorg.common_ancestor is None:
                return None, "reorg"
            try:
                state.rollback_to(reorg.common_ancestor)
            except StateError:
                return None, "reorg"
            if (state.block_hash or "").lower() != reorg.common_ancestor_hash:
                return None, "parent"
            self.digests_checked += 1
            if state_digest(state, message.changed) != message.digest:
                return None, "digest"
            return ChainReorged(reorg, state), None
        block = message.block
        if (
            state.block_number is None
            or block.number != state.block_number + 1
            or block.parent_hash != (state.block_hash or "").lower()
        ):
            return None, "parent"
        data: BlockData = message.block_data()
        try:
            changed = state.apply_block_data(data)
        except StateError:
            return None, "apply"
        self.digests_checked += 1
        if changed != message.changed or state_digest(state, changed) != message.digest:
            return None, "digest"
        return BlockApplied(data, changed, state), None

    async def _resync(self) -> AsyncIterator[tuple[AnyEvent, int]]:
        """Rebuild the state from a snapshot and the buffered messages after it (see the module docstring)."""
        assert self._need is not None
        got = await self._snapshot(self._need)
        if got is None:
            return
        snap, state = got
        seen = self._seen
        self.state, self.seq, self._replaced = state, snap.seq, True
        log.info(
            "bus collector: chain %d state rebuilt at block %s (seq %d)",
            self.chain_id,
            state.block_number,
            snap.seq,
        )
        for seq, message in list(self._buffer.items()):
            if seen < seq <= snap.seq and isinstance(message, ReorgMessage):
                yield ChainReorged(message.reorg, state), seq
        if snap.seq > seen and snap.block is not None:
            yield self._fresh(BlockApplied(snap.block.block_data(), _all_pools(state), state)), snap.seq
        newest = max(self._buffer, default=snap.seq)
        for seq in range(snap.seq + 1, newest + 1):
            pending = self._buffer.get(seq)
            if pending is None:  # still missing: a snapshot after the gap is needed
                self._need = max(self._need, self._run_start() - 1)
                return
            event, reason = self._apply(state, pending)
            if event is None:  # the message itself disagrees: a snapshot that already holds it is needed
                log.warning(
                    "bus collector: seq %d fails again on the snapshot (%s); waiting for a newer one",
                    seq,
                    reason,
                )
                self._need = max(self._need, seq)
                return
            self.seq = seq
            if seq > seen:
                yield self._fresh(event), seq
        self._need = None
