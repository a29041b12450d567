"""Reading whole blocks, and following the chain block by block with reorg handling.

:func:`chains.abi.blocks.fetch_block` is the unit every block consumer works in: one batched round trip
(``eth_getBlockByNumber`` + ``eth_getBlockReceipts``) gives a :class:`BlockData` with typed events, so bots
evaluate after a whole block, never after a single log.

:class:`BlockWatcher` keeps a :class:`chains.state.chain.ChainState` on the canonical chain::

    state = await load_initial(rpc, book, await rpc_block_number(rpc))
    watcher = BlockWatcher(rpc, state, publisher=bus, resync=lambda n: load_initial(rpc, book, n))
    watcher.add_reorg_listener(handler.on_reorg)          # e.g. bots.runtime.reorg.ReorgHandler
    watcher.add_block_listener(handler.on_block)
    await watcher.run()                                   # until cancelled (or watcher.stop())

* **Heads** come from any ``AsyncIterable[dict]`` of block headers (a ``newHeads`` subscription, e.g.
  ``chains.node.subscribe.WsSubscription(url, "newHeads")``) or, by default, from polling
  ``eth_getBlockByNumber("latest")``.  A head is only a wake-up call: the watcher catches up by number, so a
  missed or duplicated head loses nothing.  If the head stream ends or fails, the watcher falls back to polling.
* **Blocks** are fetched whole (as :func:`chains.abi.blocks.fetch_block` does), applied with ``ChainState.apply_block_data`` one block at a
  time, then announced: block listeners are awaited with the :class:`BlockData` and the block's
  :class:`~chains.events.NewBlock` -- the "block applied" event -- is published (optionally preceded by the
  block's mined transactions and swaps, see ``publish_contents``).  Bots evaluate after the whole block.
* **Reorgs.** A fetched block whose ``parentHash`` is not our head's hash, or a head at or below our height whose
  hash differs from ours, means the chain changed under us.  The watcher walks its hash history back (newest
  first, checking the canonical hashes in batches) to the common ancestor, rolls the state back with
  ``ChainState.rollback_to(ancestor)``, awaits every reorg listener with a :class:`ChainReorg` (ancestor,
  orphaned block numbers and hashes, new head), publishes it, then replays the new branch block by block.
  A reorg deeper than the state's journal (:class:`~chains.state.chain.JournalDepthError`) calls the user's
  ``resync(ancestor)`` callback (typically ``load_initial`` at that block) and replays from there; an ancestor
  older than the hash history (``history_depth`` blocks) calls ``resync(head)`` -- never a crash.
* **Bad data and dropped RPCs.**  A malformed block (:class:`MalformedBlockError`, a log the state rejects) or a
  failed request is counted in ``mevsuite_block_watcher_errors_total{kind}``, logged, and retried with
  exponential backoff (``backoff_initial`` doubling up to ``backoff_max``); the state stays at a block boundary.

Metrics (prometheus-client, on the ``registry`` given, else a private one; ``watcher.metrics``):
``mevsuite_block_watcher_blocks_applied_total``, ``mevsuite_block_watcher_reorg_depth_blocks`` (histogram; its
``_count`` is the number of reorgs), ``mevsuite_block_watcher_resyncs_total{reason}``,
``mevsuite_block_watcher_errors_total{kind}``, ``mevsuite_block_watcher_apply_seconds`` (fetch excluded: applying
the block to the state plus its listeners) and ``mevsuite_block_watcher_head_block``; every one is labelled
``chain_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chains.abi.blocks import BlockData, MalformedBlockError, hex_quantity, parse_block
from chains.events import (
    Event,
    Hash32,
    Publisher,
    Uint64,
    register_event,
)
from chains.promreg import per_registry

if TYPE_CHECKING:
    from chains.state.chain import ChainState

__all__ = [
    "TOPIC_CHAIN_REORGS",
    "BlockListener",
    "BlockWatcher",
    "BlockWatcherMetrics",
    "ChainReorg",
    "ReorgListener",
    "ResyncError",
    "WatcherRpc",
]

log = logging.getLogger(__name__)

TOPIC_CHAIN_REORGS = "chain.reorgs"


class WatcherRpc(Protocol):
    """What :class:`BlockWatcher` needs of an RPC client (``chains.node.rpc.RpcClient`` has it)."""

    async def request(self, method: str, params: Any = None) -> Any: ...

    async def batch(self, calls: Any) -> list[Any]: ...


# ------------------------------------------------------------------------------------------------ reorg event
@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReorg(Event):
    """The canonical chain replaced blocks we had applied.

    ``common_ancestor`` is the last block both branches share (None when it is older than the watcher's hash
    history: then the state was resynced at the new head and ``orphaned_*`` lists every block we knew after the
    resync point).  ``orphaned_numbers`` / ``orphaned_hashes`` are the replaced blocks, oldest first;
    ``new_head`` / ``new_head_hash`` the canonical head seen when the reorg was detected (the new branch is
    replayed, and announced block by block, right after the listeners return).  ``resynced`` tells that the
    state was reloaded through the resync callback instead of rolled back through its journal.
    """

    KIND: ClassVar[str] = "chain_reorg"
    TOPIC: ClassVar[str] = TOPIC_CHAIN_REORGS

    common_ancestor: Uint64 | None
    common_ancestor_hash: Hash32 | None
    orphaned_numbers: tuple[Uint64, ...]
    orphaned_hashes: tuple[Hash32, ...]
    new_head: Uint64
    new_head_hash: Hash32
    resynced: bool = False

    def _validate(self) -> None:
        if len(self.orphaned_numbers) != len(self.orphaned_hashes):
            raise ValueError("ChainReorg: orphaned_numbers and orphaned_hashes differ in length")
        if list(self.orphaned_numbers) != sorted(self.orphaned_numbers):
            raise ValueError("ChainReorg: orphaned blocks must be oldest first")
        if self.common_ancestor is not None and any(n <= self.common_ancestor for n in self.orphaned_numbers):
            raise ValueError("ChainReorg: an orphaned block is not after the common ancestor")

    @property
    def depth(self) -> int:
        """Number of blocks replaced."""
        return len(self.orphaned_numbers)

    @property
    def first_orphaned(self) -> int | None:
        """The first replaced block number (rows from here on belong to the old branch)."""
        return self.orphaned_numbers[0] if self.orphaned_numbers else None


BlockListener = Callable[[BlockData], Awaitable[None]]
ReorgListener = Callable[[ChainReorg], Awaitable[None]]
Resync = Callable[[int], Awaitable["ChainState"]]


# ------------------------------------------------------------------------------------------------ metrics
REORG_DEPTH_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128)
APPLY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # fmt: skip


class BlockWatcherMetrics:
    """The watcher's metric families on one registry (created once per registry, shared by its watchers)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = self.registry = registry
        self.blocks_applied = Counter(
            "mevsuite_block_watcher_blocks_applied_total",
            "Blocks applied to the synced state",
            ["chain_id"],
            registry=r,
        )
        self.reorg_depth = Histogram(
            "mevsuite_block_watcher_reorg_depth_blocks",
            "Blocks replaced per reorg (the _count is the number of reorgs)",
            ["chain_id"],
            buckets=REORG_DEPTH_BUCKETS,
            registry=r,
        )
        self.resyncs = Counter(
            "mevsuite_block_watcher_resyncs_total",
            "Full state reloads (reorg deeper than the journal or the hash history)",
            ["chain_id", "reason"],
            registry=r,
        )
        self.errors = Counter(
            "mevsuite_block_watcher_errors_total",
            "Errors handled without stopping (malformed data, RPC failures, listeners)",
            ["chain_id", "kind"],
            registry=r,
        )
        self.apply_seconds = Histogram(
            "mevsuite_block_watcher_apply_seconds",
            "Applying one block to the state and running its listeners",
            ["chain_id"],
            buckets=APPLY_BUCKETS,
            registry=r,
        )
        self.head = Gauge(
            "mevsuite_block_watcher_head_block",
            "Block number the synced state is at",
            ["chain_id"],
            registry=r,
        )

    @classmethod
    def on(cls, registry: CollectorRegistry) -> BlockWatcherMetrics:
        return per_registry(registry, f"{__name__}.{cls.__name__}", cls)


@dataclass(slots=True)
class _Head:
    number: int
    hash: str


def _parse_head(head: Any) -> _Head:
    if not isinstance(head, dict):
        raise MalformedBlockError(f"head is {head!r:.80}, not an object")
    number = hex_quantity(head, "number")
    h = head.get("hash")
    if not isinstance(h, str) or len(h) != 66 or not h.startswith("0x"):
        raise MalformedBlockError(f"head hash {h!r:.80} is not 0x + 64 hex digits")
    try:
        int(h, 16)
    except ValueError as exc:
        raise MalformedBlockError(f"head hash {h!r:.80} is not hex") from exc
    return _Head(number, h.lower())


class ResyncError(RuntimeError):
    """A reorg needs a resync but there is no callback, or the callback returned a state at the wrong block."""


def _error_kind(exc: BaseException) -> str:
    """The ``kind`` label of a handled error."""
    from chains.state.chain import StateError, StateSyncError

    if isinstance(exc, MalformedBlockError):
        return "malformed_block"
    if isinstance(exc, StateSyncError):
        return "state_sync"  # a log the state rejects: the block is undone, state at the previous block
    if isinstance(exc, StateError):
        return "state"
    if isinstance(exc, ResyncError):
        return "resync"
    if isinstance(exc, TimeoutError):
        return "rpc_timeout"
    return "rpc"  # dropped connections, node error objects, anything else the RPC layer raises


class BlockWatcher:
    """Follows the canonical chain and keeps ``state`` on it, one whole block at a time (see the module doc).

    ``state`` is replaced by a new object after a resync: read ``watcher.state`` each time rather than keeping a
    reference across blocks.  ``heads`` is any async iterable of block-header dicts (``number``, ``hash``);
    None polls ``eth_getBlockByNumber("latest")`` every ``poll_interval`` seconds.
    """

    def __init__(
        self,
        rpc: WatcherRpc,
        state: ChainState,
        *,
        heads: AsyncIterable[dict[str, Any]] | None = None,
        publisher: Publisher | None = None,
        resync: Resync | None = None,
        chain_id: int | None = None,
        registry: CollectorRegistry | None = None,
        poll_interval: float = 0.25,
        history_depth: int = 256,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
        publish_contents: bool = False,
        stream_topic: str | None = None,
    ) -> None:
        if state.block_number is None or state.block_hash is None:
            raise ValueError(
                "the state has no head block: load it with chains.state.chain.load_initial first"
            )
        if history_depth < 1:
            raise ValueError("history_depth must be >= 1")
        self.rpc = rpc
        self.state = state
        self.heads = heads
        self.publisher = publisher
        self.resync = resync
        self.poll_interval = poll_interval
        self.history_depth = history_depth
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.publish_contents = publish_contents
        self.stream_topic = stream_topic
        self.chain_label = str(chain_id) if chain_id is not None else "unknown"
        self.metrics = BlockWatcherMetrics.on(registry if registry is not None else CollectorRegistry())
        self._block_listeners: list[BlockListener] = []
        self._reorg_listeners: list[ReorgListener] = []
        self._history: OrderedDict[int, str] = OrderedDict()
        self._reset_history()
        self._stopping = asyncio.Event()
        self.blocks_applied = 0
        self.reorgs: list[ChainReorg] = []
        self.applied = asyncio.Condition()

    # ------------------------------------------------------------------ wiring
    def add_block_listener(self, listener: BlockListener) -> None:
        """``await listener(block_data)`` after each block is applied (in order, before the next block)."""
        self._block_listeners.append(listener)

    def add_reorg_listener(self, listener: ReorgListener) -> None:
        """``await listener(reorg)`` after the state is rolled back and before the new branch is replayed."""
        self._reorg_listeners.append(listener)

    def stop(self) -> None:
        """Make :meth:`run` return after the step in progress."""
        self._stopping.set()

    # ------------------------------------------------------------------ helpers
    def _count_error(self, kind: str) -> None:
        self.metrics.errors.labels(chain_id=self.chain_label, kind=kind).inc()

    def error_count(self, kind: str) -> int:
        """How many errors of ``kind`` were handled (malformed_block, state_sync, rpc, rpc_timeout, head, ...)."""
        value = self.metrics.registry.get_sample_value(
            "mevsuite_block_watcher_errors_total", {"chain_id": self.chain_label, "kind": kind}
        )
        return int(value or 0)

    def _reset_history(self) -> None:
        st = self.state
        self._history.clear()
        journal = st.journal_blocks()
        for n, h in journal:
            self._history[n] = h.lower()
        assert st.block_number is not None and st.block_hash is not None
        self._history[st.block_number] = st.block_hash.lower()
        self._trim_history()

    def _trim_history(self) -> None:
        while len(self._history) > self.history_depth:
            self._history.popitem(last=False)

    @property
    def head_number(self) -> int:
        n = self.state.block_number
        assert n is not None
        return n

    @property
    def head_hash(self) -> str:
        h = self.state.block_hash
        assert h is not None
        return h.lower()

    async def wait_for(self, predicate: Callable[[BlockWatcher], bool], timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate(self)`` holds after an applied block or reorg (for tests and tools)."""
        async with self.applied:
            await asyncio.wait_for(self.applied.wait_for(lambda: predicate(self)), timeout)

    async def _notify_progress(self) -> None:
        async with self.applied:
            self.applied.notify_all()

    # ------------------------------------------------------------------ heads
    async def _poll_heads(self) -> AsyncGenerator[dict[str, Any], None]:
        last: Any = None
        while True:
            try:
                head = await self.rpc.request("eth_getBlockByNumber", ["latest", False])
            except Exception as exc:  # a dropped RPC is expected; counted and retried
                self._count_error(_error_kind(exc))
                log.warning("block watcher: polling the head failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(self.poll_interval)
                continue
            key = head.get("hash") if isinstance(head, dict) else head
            if key != last:
                last = key
                yield head
            await asyncio.sleep(self.poll_interval)

    async def _head_stream(self) -> AsyncGenerator[dict[str, Any], None]:
        if self.heads is not None:
            try:
                async for head in self.heads:
                    yield head
                log.warning("block watcher: the head stream ended; polling instead")
            except Exception as exc:  # fall back to polling, never die
                log.warning(
                    "block watcher: the head stream failed (%s: %s); polling instead", type(exc).__name__, exc
                )
            self._count_error("head_stream")
        async for head in self._poll_heads():
            yield head

    # ------------------------------------------------------------------ main loop
    async def run(self) -> None:
        """Follow the chain until cancelled or :meth:`stop` is called.  Never raises on bad data or RPC errors."""
        stream = self._head_stream()
        next_head: asyncio.Future[dict[str, Any]] | None = None
        try:
            while not self._stopping.is_set():
                next_head = asyncio.ensure_future(anext(stream))
                stop_wait = asyncio.ensure_future(self._stopping.wait())
                done, _ = await asyncio.wait({next_head, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if next_head not in done:
                    next_head.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await next_head  # the generator must be idle before it can be closed
                    break
                stop_wait.cancel()
                raw = next_head.result()
                try:
                    head = _parse_head(raw)
                except MalformedBlockError as exc:
                    self._count_error("head")
                    log.warning("block watcher: ignoring a malformed head: %s", exc)
                    continue
                await self.sync_to(head.number, head.hash)
        finally:
            if next_head is not None and not next_head.done():  # cancelled while waiting for a head
                next_head.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await next_head
            with contextlib.suppress(RuntimeError):  # the generator may still be closing on its own
                await stream.aclose()

    async def sync_to(self, number: int, block_hash: str | None = None) -> None:
        """Bring the state to the canonical block ``number`` (handling reorgs), retrying errors with backoff."""
        delay = self.backoff_initial
        while not self._stopping.is_set():
            try:
                await self._sync_once(number, block_hash)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # counted, logged, retried: the watcher never dies
                kind = _error_kind(exc)
                self._count_error(kind)
                log.warning(
                    "block watcher: %s while syncing to block %d: %s: %s (retrying in %.2fs)",
                    kind,
                    number,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)

    async def _canonical_hashes(self, numbers: Sequence[int]) -> list[str | None]:
        if not numbers:
            return []
        out = await self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        hashes: list[str | None] = []
        for n, blk in zip(numbers, out, strict=True):
            if blk is None:
                hashes.append(None)
            else:
                hashes.append(_parse_head(blk).hash)
                if hex_quantity(blk, "number") != n:
                    raise MalformedBlockError(f"asked for block {n}, got {blk.get('number')}")
        return hashes

    async def _sync_once(self, number: int, block_hash: str | None) -> None:
        if number <= self.head_number:
            known = self._history.get(number)
            if block_hash is not None and known == block_hash.lower() and number == self.head_number:
                return  # the head we are at
            # A head at or below ours: is our head still canonical?
            (ours,) = await self._canonical_hashes([self.head_number])
            if ours == self.head_hash:
                return  # a stale or duplicate notification
            await self._handle_reorg()
        target = number
        while self.head_number < target and not self._stopping.is_set():
            n = self.head_number + 1
            tag = hex(n)
            block, receipts = await self.rpc.batch(
                [("eth_getBlockByNumber", [tag, True]), ("eth_getBlockReceipts", [tag])]
            )
            if (
                block is None
            ):  # no block n (any more): the chain got shorter, or the node lags behind its head
                (ours,) = await self._canonical_hashes([self.head_number])
                if ours != self.head_hash:
                    await self._handle_reorg()
                    continue
                return  # wait for the next head
            data = parse_block(block, receipts)
            if data.block.parent_hash != self.head_hash:
                await self._handle_reorg()
                continue
            await self._apply(data)

    async def _apply(self, data: BlockData) -> None:
        t0 = time.perf_counter()
        self.state.apply_block_data(data)  # StateSyncError: the state is unchanged; the caller retries
        self._history[data.block.number] = data.block.hash
        self._trim_history()
        self.blocks_applied += 1
        for listener in self._block_listeners:
            try:
                await listener(data)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failing bot must not stop the chain
                self._count_error("block_listener")
                log.exception("block watcher: a block listener failed on block %d", data.block.number)
        await self._publish_block(data)
        labels = {"chain_id": self.chain_label}
        self.metrics.apply_seconds.labels(**labels).observe(time.perf_counter() - t0)
        self.metrics.blocks_applied.labels(**labels).inc()
        self.metrics.head.labels(**labels).set(data.block.number)
        await self._notify_progress()

    async def _publish(self, event: Event) -> None:
        if self.publisher is None:
            return
        try:
            await self.publisher.publish(self.stream_topic or event.TOPIC, event)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._count_error("publish")
            log.exception("block watcher: publishing %s failed", type(event).__name__)

    async def _publish_block(self, data: BlockData) -> None:
        if self.publish_contents:
            for tx in data.transactions:
                await self._publish(tx)
            for swap in data.swaps:
                await self._publish(swap)
        await self._publish(data.block)

    async def _find_ancestor(self) -> tuple[int, str] | None:
        known = list(self._history.items())  # oldest first
        for end in range(len(known), 0, -16):
            chunk = known[max(0, end - 16) : end]
            canon = await self._canonical_hashes([n for n, _ in chunk])
            for (n, h), c in zip(reversed(chunk), reversed(canon), strict=True):
                if c == h:
                    return n, h
        return None

    async def _handle_reorg(self) -> None:
        from chains.state.chain import JournalDepthError

        latest = await self.rpc.request("eth_getBlockByNumber", ["latest", False])
        new_head = _parse_head(latest)
        ancestor = await self._find_ancestor()
        labels = {"chain_id": self.chain_label}
        if ancestor is None:
            orphaned = list(self._history.items())
            reload_at, reason, resynced = new_head.number, "beyond_history", True
        else:
            orphaned = [(n, h) for n, h in self._history.items() if n > ancestor[0]]
            reload_at, reason, resynced = ancestor[0], "beyond_journal", False
            try:
                self.state.rollback_to(ancestor[0])
            except JournalDepthError:
                resynced = True
        if not orphaned:
            return  # nothing of ours was replaced (e.g. the node's answer lagged); catch up normally
        reorg = ChainReorg(
            common_ancestor=None if ancestor is None else ancestor[0],
            common_ancestor_hash=None if ancestor is None else ancestor[1],
            orphaned_numbers=tuple(n for n, _ in orphaned),
            orphaned_hashes=tuple(h for _, h in orphaned),
            new_head=new_head.number,
            new_head_hash=new_head.hash,
            resynced=resynced,
        )
        log.warning(
            "block watcher: reorg of %d block(s) after block %s; new head %d %s%s",
            reorg.depth,
            reorg.common_ancestor,
            new_head.number,
            new_head.hash,
            " (resync)" if resynced else "",
        )
        if resynced:
            if self.resync is None:
                raise ResyncError(
                    f"reorg of {reorg.depth} block(s) is deeper than the journal and no resync "
                    "callback was given"
                )
            state = await self.resync(reload_at)
            if state.block_number != reload_at:
                raise ResyncError(
                    f"resync callback returned a state at block {state.block_number}, not {reload_at}"
                )
            self.state = state
            self.metrics.resyncs.labels(reason=reason, **labels).inc()
        for n, _ in orphaned:
            self._history.pop(n, None)
        if resynced:
            self._reset_history()
        self.metrics.reorg_depth.labels(**labels).observe(reorg.depth)
        self.reorgs.append(reorg)
        for listener in self._reorg_listeners:
            try:
                await listener(reorg)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._count_error("reorg_listener")
                log.exception("block watcher: a reorg listener failed")
        await self._publish(reorg)
        self.metrics.head.labels(**labels).set(self.head_number)
        await self._notify_progress()
