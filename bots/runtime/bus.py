"""The event bus: topics, bounded per-subscriber queues, explicit back-pressure and visible lag.

:class:`InProcessBus` implements the :class:`chains.events.Publisher` / :class:`chains.events.Subscriber` seam for
bots that share one process.  Every subscription owns its own :class:`BoundedQueue`, so a slow consumer never
grows memory without bound; what happens when it is full is chosen per subscription:

* ``"block"`` -- the publisher awaits until the consumer takes one (lossless, and the slow consumer slows the
  producer: right for strategies that must see every block);
* ``"drop_oldest"`` -- the oldest queued event is discarded and counted (right for mempool-style firehoses where
  only recent events matter).

Lag is never hidden: each subscription reports its depth, drop count and the age of its oldest queued event
(``time.monotonic`` stamps taken at publish time), which the runtime turns into health and metrics.

Between processes, blocks and other chain data travel over NATS JetStream (:mod:`bots.bus`, docs/bus.md) and
come back into a bot's engine through a collector (:class:`bots.runtime.bus_collector.BusBlockCollector`); nothing
outside this module depends on the in-process classes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeVar

from chains.events import (
    AnyEvent,
    Event,
    EventSubscription,
    LocalEvent,
    Publisher,
    Subscriber,
    validate_topic,
)

__all__ = [
    "BackPressure",
    "BoundedQueue",
    "BusClosedError",
    "BusSubscription",
    "EventBus",
    "InProcessBus",
    "QueueClosedError",
    "QueueFullError",
    "QueueLag",
    "Subscription",
]

log = logging.getLogger(__name__)

BackPressure = Literal["block", "drop_oldest"]
_POLICIES: tuple[BackPressure, ...] = ("block", "drop_oldest")

T = TypeVar("T")


class QueueClosedError(Exception):
    """Raised by :meth:`BoundedQueue.get` once the queue is closed and empty."""


class QueueFullError(Exception):
    """Raised by :meth:`BoundedQueue.put_nowait` on a full ``"block"`` queue."""


class BusClosedError(RuntimeError):
    """The bus was closed; nothing more can be published or subscribed."""


@dataclass(frozen=True, slots=True)
class QueueLag:
    """A point-in-time view of one queue's lag, for health snapshots and metrics."""

    depth: int
    maxsize: int
    dropped: int
    oldest_age: float  # seconds the oldest queued item has waited; 0.0 when empty
    enqueued: int
    dequeued: int
    peak_depth: int
    blocked_publishers: int  # producers waiting for room right now (block policy back-pressure at work)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return {
            "depth": self.depth,
            "maxsize": self.maxsize,
            "dropped": self.dropped,
            "oldest_age_s": self.oldest_age,
            "enqueued": self.enqueued,
            "dequeued": self.dequeued,
            "peak_depth": self.peak_depth,
            "blocked_publishers": self.blocked_publishers,
        }


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)


class BoundedQueue(Generic[T]):
    """A bounded FIFO for one event loop, with a back-pressure policy, a close that wakes both sides, and lag stats.

    Not ``asyncio.Queue``: Python 3.11's queue has no shutdown (a closed subscription must release a publisher
    blocked on it and end its consumer's ``async for``), no atomic drop-oldest, and no enqueue timestamps.  The
    waiter logic mirrors ``asyncio.Queue``'s, including passing a wake-up on when a woken waiter was cancelled.
    """

    def __init__(
        self,
        maxsize: int,
        policy: BackPressure = "block",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if type(maxsize) is not int or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int (queues are always bounded), got {maxsize!r}")
        if policy not in _POLICIES:
            raise ValueError(f"unknown back-pressure policy {policy!r}; expected one of {_POLICIES}")
        self._maxsize = maxsize
        self._policy: BackPressure = policy
        self._clock = clock
        self._items: deque[tuple[float, T]] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._dropped = 0
        self._enqueued = 0
        self._dequeued = 0
        self._peak = 0

    # ---------------------------------------------------------------- observation
    @property
    def maxsize(self) -> int:
        """Capacity; the depth never exceeds it."""
        return self._maxsize

    @property
    def policy(self) -> BackPressure:
        """What a put does when the queue is full."""
        return self._policy

    @property
    def depth(self) -> int:
        """Items currently queued."""
        return len(self._items)

    @property
    def dropped(self) -> int:
        """Items discarded by the ``drop_oldest`` policy (or by a discarding close)."""
        return self._dropped

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def oldest_age(self) -> float:
        """Seconds the oldest queued item has waited; 0.0 when the queue is empty."""
        if not self._items:
            return 0.0
        return max(0.0, self._clock() - self._items[0][0])

    @property
    def blocked_publishers(self) -> int:
        """Producers currently waiting for room (only ever non-zero under the ``block`` policy)."""
        return sum(1 for w in self._putters if not w.done())

    def lag(self) -> QueueLag:
        """Depth, drops, oldest age and counters in one snapshot."""
        return QueueLag(
            depth=len(self._items),
            maxsize=self._maxsize,
            dropped=self._dropped,
            oldest_age=self.oldest_age,
            enqueued=self._enqueued,
            dequeued=self._dequeued,
            peak_depth=self._peak,
            blocked_publishers=self.blocked_publishers,
        )

    # ---------------------------------------------------------------- producing
    def _append(self, item: T, stamp: float | None) -> None:
        if len(self._items) >= self._maxsize:
            # Only reachable under drop_oldest: block-policy callers wait for room first.
            self._items.popleft()
            self._dropped += 1
        self._items.append((self._clock() if stamp is None else stamp, item))
        self._enqueued += 1
        if len(self._items) > self._peak:
            self._peak = len(self._items)
        _wake_one(self._getters)

    def put_nowait(self, item: T, *, stamp: float | None = None) -> bool:
        """Enqueue without waiting.  False if the queue is closed; :class:`QueueFullError` on a full block queue."""
        if self._closed:
            return False
        if self._policy == "block" and len(self._items) >= self._maxsize:
            raise QueueFullError(f"queue full ({self._maxsize})")
        self._append(item, stamp)
        return True

    async def put(self, item: T, *, stamp: float | None = None) -> bool:
        """Enqueue, applying the policy: ``block`` waits for room, ``drop_oldest`` never waits.

        Returns False (and discards ``item``) if the queue is, or becomes while waiting, closed.  ``stamp`` lets a
        fan-out share one enqueue time across subscribers.
        """
        if self._policy == "block":
            while len(self._items) >= self._maxsize and not self._closed:
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._putters.append(waiter)
                try:
                    await waiter
                except BaseException:
                    waiter.cancel()
                    try:
                        self._putters.remove(waiter)
                    except ValueError:
                        pass
                    # We may have been woken just before the cancellation: hand the free slot to the next putter.
                    if not self._closed and len(self._items) < self._maxsize:
                        _wake_one(self._putters)
                    raise
        if self._closed:
            return False
        self._append(item, stamp)
        return True

    # ---------------------------------------------------------------- consuming
    def get_nowait_stamped(self) -> tuple[T, float]:
        """The oldest item and its enqueue stamp; :class:`asyncio.QueueEmpty` / :class:`QueueClosedError` if none."""
        if not self._items:
            if self._closed:
                raise QueueClosedError("queue closed")
            raise asyncio.QueueEmpty
        stamp, item = self._items.popleft()
        self._dequeued += 1
        _wake_one(self._putters)
        return item, stamp

    async def get_stamped(self) -> tuple[T, float]:
        """Wait for the oldest item; returns it with its enqueue stamp (for queue-wait latency)."""
        while not self._items:
            if self._closed:
                raise QueueClosedError("queue closed")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                try:
                    self._getters.remove(waiter)
                except ValueError:
                    pass
                if self._items:
                    _wake_one(self._getters)
                raise
        return self.get_nowait_stamped()

    async def get(self) -> T:
        """Wait for the oldest item.  :class:`QueueClosedError` once closed and drained."""
        item, _ = await self.get_stamped()
        return item

    def close(self, *, discard: bool = False) -> int:
        """Refuse further puts and wake every waiter.  Consumers still drain what is queued unless ``discard``.

        Returns the number of items discarded (counted in :attr:`dropped`).
        """
        self._closed = True
        discarded = 0
        if discard:
            discarded = len(self._items)
            self._items.clear()
            self._dropped += discarded
        _wake_all(self._getters)
        _wake_all(self._putters)
        return discarded

    # A plain async iterator rather than an async generator: a consumer that breaks out of `async for` leaves
    # no suspended generator behind to be finalised later.
    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except QueueClosedError:
            raise StopAsyncIteration from None


class BusSubscription(EventSubscription, Protocol):
    """What every bus's subscriptions offer on top of :class:`chains.events.EventSubscription`: visible lag."""

    @property
    def policy(self) -> BackPressure: ...

    @property
    def closed(self) -> bool: ...

    def lag(self) -> QueueLag: ...

    async def get_stamped(self) -> tuple[AnyEvent, float]:
        """The next event and the ``time.monotonic`` stamp of its publication (same process clock)."""
        ...


class EventBus(Publisher, Subscriber, Protocol):
    """The interface the runtime's engine programs against (the in-process bus implements it)."""

    def subscribe(
        self,
        topic: str,
        *,
        maxsize: int | None = None,
        policy: BackPressure | None = None,
        name: str | None = None,
    ) -> BusSubscription: ...

    async def close(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class Subscription:
    """One subscriber's bounded queue on one topic of an :class:`InProcessBus`.

    Iterate it with ``async for event in sub``; iteration ends after :meth:`close` once the queued events are
    consumed.  One consumer task per subscription (subscribe twice for two consumers: that is fan-out).
    """

    def __init__(self, bus: InProcessBus, topic: str, queue: BoundedQueue[AnyEvent], name: str) -> None:
        self._bus = bus
        self._topic = topic
        self._queue = queue
        self.name = name

    def __repr__(self) -> str:
        lag = self._queue.lag()
        return (
            f"<Subscription {self.name!r} topic={self._topic!r} policy={self._queue.policy} "
            f"depth={lag.depth}/{lag.maxsize} dropped={lag.dropped}{' closed' if self.closed else ''}>"
        )

    @property
    def topic(self) -> str:
        """The topic this subscription reads."""
        return self._topic

    @property
    def policy(self) -> BackPressure:
        """Back-pressure policy when full."""
        return self._queue.policy

    @property
    def maxsize(self) -> int:
        """Queue capacity."""
        return self._queue.maxsize

    @property
    def depth(self) -> int:
        """Events waiting."""
        return self._queue.depth

    @property
    def dropped(self) -> int:
        """Events discarded because the queue was full (``drop_oldest``)."""
        return self._queue.dropped

    @property
    def oldest_age(self) -> float:
        """Seconds the oldest waiting event has waited (0.0 when none)."""
        return self._queue.oldest_age

    @property
    def closed(self) -> bool:
        """True once closed (by the consumer, by unsubscribe or by closing the bus)."""
        return self._queue.closed

    def lag(self) -> QueueLag:
        """Depth, drops, oldest age and counters."""
        return self._queue.lag()

    async def get(self) -> AnyEvent:
        """The next event.  :class:`QueueClosedError` once closed and drained."""
        return await self._queue.get()

    async def get_stamped(self) -> tuple[AnyEvent, float]:
        """The next event with its publish stamp."""
        return await self._queue.get_stamped()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AnyEvent:
        return await self._queue.__anext__()

    async def _deliver(self, event: AnyEvent, stamp: float) -> bool:
        return await self._queue.put(event, stamp=stamp)

    def _close(self, *, discard: bool) -> int:
        return self._queue.close(discard=discard)

    async def close(self, *, discard: bool = False) -> int:
        """Unsubscribe.  Already-queued events are still iterated unless ``discard``; returns how many were discarded."""
        self._bus._detach(self)
        return self._close(discard=discard)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(discard=True)


class InProcessBus:
    """Publish/subscribe within one event loop: topics, per-subscriber bounded queues, counters.

    ``publish`` delivers to each subscriber in subscription order; under ``"block"`` it waits on a full subscriber
    before moving to the next, so the slowest lossless consumer sets the pace -- that is the point of choosing it.
    """

    def __init__(
        self,
        *,
        default_maxsize: int = 1024,
        default_policy: BackPressure = "block",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if default_policy not in _POLICIES:
            raise ValueError(f"unknown back-pressure policy {default_policy!r}; expected one of {_POLICIES}")
        if type(default_maxsize) is not int or default_maxsize < 1:
            raise ValueError(f"default_maxsize must be a positive int, got {default_maxsize!r}")
        self._default_maxsize = default_maxsize
        self._default_policy: BackPressure = default_policy
        self._clock = clock
        self._topics: dict[str, list[Subscription]] = {}
        self._published: Counter[str] = Counter()
        self._unrouted: Counter[str] = Counter()
        self._closed = False
        self._seq = 0

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def subscribe(
        self,
        topic: str,
        *,
        maxsize: int | None = None,
        policy: BackPressure | None = None,
        name: str | None = None,
    ) -> Subscription:
        """A new subscription receiving every event published to ``topic`` from now on."""
        if self._closed:
            raise BusClosedError("cannot subscribe: the bus is closed")
        validate_topic(topic)
        queue: BoundedQueue[AnyEvent] = BoundedQueue(
            self._default_maxsize if maxsize is None else maxsize,
            self._default_policy if policy is None else policy,
            clock=self._clock,
        )
        self._seq += 1
        sub = Subscription(self, topic, queue, name or f"{topic}#{self._seq}")
        self._topics.setdefault(topic, []).append(sub)
        log.debug("subscribed %r to %s (maxsize=%d, policy=%s)", sub.name, topic, queue.maxsize, queue.policy)
        return sub

    async def unsubscribe(self, sub: Subscription, *, discard: bool = False) -> int:
        """Same as ``await sub.close()``."""
        return await sub.close(discard=discard)

    def _detach(self, sub: Subscription) -> None:
        subs = self._topics.get(sub.topic)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._topics[sub.topic]

    async def publish(self, topic: str, event: AnyEvent) -> None:
        """Deliver ``event`` to every subscriber of ``topic``; with none it is a counted no-op."""
        if self._closed:
            raise BusClosedError(f"cannot publish to {topic!r}: the bus is closed")
        if not isinstance(event, (Event, LocalEvent)):
            raise TypeError(
                f"only chains.events.Event or LocalEvent instances can be published, got {type(event).__name__}"
            )
        subs = self._topics.get(topic)
        if not subs:
            validate_topic(topic)  # only here: a routed topic was validated when it was subscribed
            self._unrouted[topic] += 1
            return
        self._published[topic] += 1
        stamp = self._clock()
        # Snapshot: a subscriber may unsubscribe while we wait on another one's back-pressure.
        for sub in tuple(subs):
            await sub._deliver(event, stamp)

    def subscriptions(self, topic: str | None = None) -> tuple[Subscription, ...]:
        """Live subscriptions, of one topic or of all."""
        if topic is not None:
            return tuple(self._topics.get(topic, ()))
        return tuple(s for subs in self._topics.values() for s in subs)

    def unrouted(self, topic: str | None = None) -> int:
        """Publishes that found no subscriber (of one topic, or in total)."""
        return self._unrouted[topic] if topic is not None else sum(self._unrouted.values())

    def published(self, topic: str | None = None) -> int:
        """Publishes delivered to at least one subscriber (of one topic, or in total)."""
        return self._published[topic] if topic is not None else sum(self._published.values())

    def stats(self) -> dict[str, Any]:
        """Counters and per-subscription lag, JSON-ready."""
        return {
            "published": dict(self._published),
            "unrouted": dict(self._unrouted),
            "subscriptions": {
                s.name: {"topic": s.topic, "policy": s.policy, **s.lag().as_dict()}
                for s in self.subscriptions()
            },
        }

    async def close(self) -> None:
        """Close every subscription (consumers drain what is queued, then their iteration ends)."""
        self._closed = True
        for sub in self.subscriptions():
            self._detach(sub)
            sub._close(discard=False)
