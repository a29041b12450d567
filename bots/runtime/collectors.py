"""Collectors every on-chain bot shares: whole blocks (with reorgs) from the block watcher, and pending swaps.

:class:`BlockCollector` runs a :class:`chains.watch.blocks.BlockWatcher` and turns each applied block into a
:class:`BlockApplied` (the block's decoded data, the pools it changed, the chain state at its end) and each reorg
into a :class:`ChainReorged`.  It sets ``wait_processed``: the watcher applies block N+1 only once the engine is
done with block N (every strategy has processed it and every action of it has been executed), so a strategy and
its executors always read the state of the block they are working on -- the ordering rule of
docs/adding-a-bot.md.  :meth:`BlockCollector.wait_done` lets a driver (the demo, a test) wait for a block.

:class:`PendingSwapCollector` runs a :class:`chains.watch.mempool.MempoolWatcher` and yields its
:class:`chains.events.PendingSwap` events, keeping only the newest ``maxsize`` when the strategy falls behind (a
minutes-old pending swap is worthless).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from bots.runtime.engine import Collector
from chains.abi.blocks import BlockData, fetch_block
from chains.events import AnyEvent, Event, LocalEvent, PendingSwap
from chains.state.chain import ChainState
from chains.watch.blocks import BlockWatcher, ChainReorg
from chains.watch.mempool import MempoolWatcher, RouterKind

__all__ = [
    "TOPIC_APPLIED_BLOCKS",
    "TOPIC_REORGS",
    "BlockApplied",
    "BlockCollector",
    "ChainReorged",
    "PendingSwapCollector",
]

TOPIC_APPLIED_BLOCKS = "chain.applied"
TOPIC_REORGS = "chain.reorged"


@dataclass(frozen=True, slots=True, eq=False)
class BlockApplied(LocalEvent):
    """Block ``data`` has been applied to ``state``; ``changed``: the pools it changed (lower-case addresses).

    ``state`` is the watcher's state object *now* (a resync replaces it): read pools from it, not from one kept
    from an earlier block.  ``initial`` marks the block the collector started on (already applied before the bot
    started; it is evaluated so that an opportunity already open is acted on at once).
    """

    TOPIC: ClassVar[str] = TOPIC_APPLIED_BLOCKS
    data: BlockData
    changed: frozenset[str]
    state: ChainState
    initial: bool = False

    @property
    def number(self) -> int:
        return self.data.block.number


@dataclass(frozen=True, slots=True, eq=False)
class ChainReorged(LocalEvent):
    """The watcher rolled ``state`` back to ``reorg.common_ancestor``; the new branch's blocks follow."""

    TOPIC: ClassVar[str] = TOPIC_REORGS
    reorg: ChainReorg
    state: ChainState


@dataclass(slots=True)
class _Item:
    event: AnyEvent
    done: asyncio.Future[None]


class BlockCollector(Collector):
    """Whole blocks and reorgs from a :class:`BlockWatcher`, one at a time (``wait_processed``).

    The collector owns the watcher's ``run()``: it starts it when the engine starts the collector and stops it
    when the engine stops (or restarts) it.  ``emit_start_block``: first emit the block the state is at.
    """

    name = "blocks"
    wait_processed = True

    def __init__(self, watcher: BlockWatcher, *, emit_start_block: bool = True) -> None:
        self.watcher = watcher
        self.emit_start_block = emit_start_block
        self.done_block = -1  # the last block the engine is done with
        self._done_changed = asyncio.Event()
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=1)
        self._unfinished: AnyEvent | None = None  # handed to the engine, not done with when the stream closed
        watcher.add_block_listener(self._on_block)
        watcher.add_reorg_listener(self._on_reorg)

    async def _hand_over(self, event: AnyEvent) -> None:
        # Called by the watcher: it applies nothing more until the engine is done with this event.
        item = _Item(event, asyncio.get_running_loop().create_future())
        await self._queue.put(item)
        await item.done

    async def _on_block(self, data: BlockData) -> None:
        state = self.watcher.state
        await self._hand_over(BlockApplied(data, frozenset(state.last_changed), state))

    async def _on_reorg(self, reorg: ChainReorg) -> None:
        await self._hand_over(ChainReorged(reorg, self.watcher.state))

    async def events(self) -> AsyncIterator[AnyEvent]:
        if self.emit_start_block and self.done_block < 0:
            state = self.watcher.state
            assert state.block_number is not None  # the watcher refuses a state without a head
            data = await fetch_block(self.watcher.rpc, state.block_number)  # type: ignore[arg-type]
            yield BlockApplied(data, frozenset(state.pools_in(data.logs)), state, initial=True)
            self._mark_done(data.block.number)
        if self._unfinished is not None:
            # The last run stopped while the engine was working on this event (already applied to the state, so
            # the watcher will not report it again): hand it over once more.
            event = self._unfinished
            yield event
            self._unfinished = None
            if isinstance(event, BlockApplied):
                self._mark_done(event.number)
        runner = asyncio.create_task(self.watcher.run(), name="block-watcher")
        try:
            while True:
                get = asyncio.ensure_future(self._queue.get())
                await asyncio.wait({get, runner}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    runner.result()  # re-raise the watcher's failure (the engine restarts the collector)
                    return  # the watcher was stopped
                item = get.result()
                self._unfinished = item.event
                yield item.event
                self._unfinished = None
                item.done.set_result(None)  # the engine is done with it: let the watcher go on
                if isinstance(item.event, BlockApplied):
                    self._mark_done(item.event.number)
        finally:
            # Cancelled rather than stop()ped, so that a restarted collector can run the same watcher again.
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner

    def _mark_done(self, number: int) -> None:
        self.done_block = max(self.done_block, number)
        self._done_changed.set()

    async def wait_done(self, number: int, timeout: float | None = 60.0) -> None:  # noqa: ASYNC109
        """Wait until the engine is done with block ``number`` (``TimeoutError`` after ``timeout`` seconds; None:
        no limit)."""
        async with asyncio.timeout(timeout):
            while self.done_block < number:
                self._done_changed.clear()
                await self._done_changed.wait()


class _QueuePublisher:
    """The mempool watcher's publisher: keeps the newest events in a bounded queue."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    async def publish(self, topic: str, event: AnyEvent) -> None:
        if not isinstance(event, PendingSwap):
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)


class PendingSwapCollector(Collector):
    """Pending router swaps from a :class:`MempoolWatcher` on ``ws_url`` (newest ``maxsize`` kept)."""

    name = "pending_swaps"

    def __init__(
        self,
        routers: Mapping[str, RouterKind],
        *,
        ws_url: str,
        registry: Any = None,
        maxsize: int = 1_000,
    ) -> None:
        self.routers = dict(routers)
        self.ws_url = ws_url
        self.registry = registry
        self.maxsize = maxsize
        self.watcher: MempoolWatcher | None = None

    async def events(self) -> AsyncIterator[AnyEvent]:
        sink = _QueuePublisher(self.maxsize)
        watcher = self.watcher = MempoolWatcher(
            sink, self.routers, ws_url=self.ws_url, mode="auto", registry=self.registry
        )
        await watcher.start()
        try:
            while True:
                yield await sink.queue.get()
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()
