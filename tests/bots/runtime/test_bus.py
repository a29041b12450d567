"""The in-process bus: fan-out, bounded queues, the two back-pressure policies, lag and closing."""

from __future__ import annotations

import asyncio

import pytest

from bots.runtime.bus import BoundedQueue, BusClosedError, EventBus, InProcessBus, QueueClosedError
from chains.events import Publisher

from .helpers import TICKS, FakeClock, Tick, until


async def test_in_process_bus_satisfies_the_protocols() -> None:
    bus = InProcessBus()
    assert isinstance(bus, Publisher)
    as_bus: EventBus = bus  # static check of the seam a Redis bus will implement too
    assert as_bus is bus
    await bus.close()


async def test_fan_out_delivers_every_event_to_every_subscriber_in_order() -> None:
    bus = InProcessBus()
    a, b = bus.subscribe(TICKS), bus.subscribe(TICKS)
    other = bus.subscribe("test.other")
    for n in range(5):
        await bus.publish(TICKS, Tick(n=n))
    assert [(await a.get()).n for _ in range(5)] == list(range(5))  # type: ignore[attr-defined]
    assert [(await b.get()).n for _ in range(5)] == list(range(5))  # type: ignore[attr-defined]
    assert other.depth == 0
    assert bus.published(TICKS) == 5
    await bus.close()


async def test_publishing_without_subscribers_is_a_counted_no_op() -> None:
    bus = InProcessBus()
    await bus.publish(TICKS, Tick(n=1))
    await bus.publish(TICKS, Tick(n=2))
    await bus.publish("test.other", Tick(n=3))
    assert bus.unrouted(TICKS) == 2 and bus.unrouted() == 3 and bus.published() == 0
    assert bus.stats()["unrouted"] == {TICKS: 2, "test.other": 1}
    await bus.close()


async def test_publish_validates_event_and_topic() -> None:
    bus = InProcessBus()
    with pytest.raises(TypeError, match="Event instances"):
        await bus.publish(TICKS, {"n": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid topic"):
        await bus.publish("Bad Topic", Tick(n=1))
    with pytest.raises(ValueError, match="invalid topic"):
        bus.subscribe("nodots")
    with pytest.raises(ValueError, match="unknown back-pressure"):
        bus.subscribe(TICKS, policy="drop_newest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        bus.subscribe(TICKS, maxsize=0)
    await bus.close()


async def test_drop_oldest_keeps_the_newest_and_counts_every_drop() -> None:
    bus = InProcessBus()
    sub = bus.subscribe(TICKS, maxsize=3, policy="drop_oldest")
    for n in range(10):
        await bus.publish(TICKS, Tick(n=n))  # never waits under drop_oldest
    assert sub.depth == 3 and sub.dropped == 7
    assert sub.lag().peak_depth == 3
    assert [(await sub.get()).n for _ in range(3)] == [7, 8, 9]  # type: ignore[attr-defined]
    assert sub.dropped == 7 and sub.depth == 0
    await bus.close()


async def test_block_policy_makes_the_publisher_wait_for_the_consumer() -> None:
    bus = InProcessBus()
    sub = bus.subscribe(TICKS, maxsize=2, policy="block")
    published: list[int] = []

    async def publisher() -> None:
        for n in range(5):
            await bus.publish(TICKS, Tick(n=n))
            published.append(n)

    task = asyncio.create_task(publisher())
    await until(lambda: sub.lag().blocked_publishers == 1, "the publisher to block")
    assert published == [0, 1] and sub.depth == 2  # the third publish is parked, not queued

    first = await sub.get()
    await until(lambda: published == [0, 1, 2] and sub.lag().blocked_publishers == 1, "one more publish")
    assert first == Tick(n=0) and sub.depth == 2

    rest = [(await sub.get()).n for _ in range(4)]  # type: ignore[attr-defined]
    await task
    assert rest == [1, 2, 3, 4] and published == list(range(5))
    assert sub.dropped == 0 and sub.lag().peak_depth == 2
    await bus.close()


async def test_fan_out_with_block_lets_the_slowest_lossless_consumer_set_the_pace() -> None:
    bus = InProcessBus()
    fast = bus.subscribe(TICKS, maxsize=100)
    slow = bus.subscribe(TICKS, maxsize=1)
    await bus.publish(TICKS, Tick(n=1))
    second = asyncio.create_task(bus.publish(TICKS, Tick(n=2)))
    await until(lambda: slow.lag().blocked_publishers == 1, "publisher blocked on the slow subscriber")
    assert fast.depth == 2 and slow.depth == 1  # delivered to `fast` first, waiting on `slow`
    assert (await slow.get()) == Tick(n=1)
    await second
    assert slow.depth == 1
    await bus.close()


async def test_lag_reports_the_age_of_the_oldest_queued_event() -> None:
    clock = FakeClock(100.0)
    bus = InProcessBus(clock=clock)
    sub = bus.subscribe(TICKS)
    assert sub.oldest_age == 0.0
    await bus.publish(TICKS, Tick(n=1))
    clock.now = 101.0
    await bus.publish(TICKS, Tick(n=2))
    clock.now = 102.5
    assert sub.oldest_age == 2.5 and sub.lag().depth == 2
    event, stamp = await sub.get_stamped()
    assert event == Tick(n=1) and stamp == 100.0
    assert sub.oldest_age == 1.5
    await sub.get()
    assert sub.oldest_age == 0.0
    stats = bus.stats()["subscriptions"][sub.name]
    assert stats["oldest_age_s"] == 0.0 and stats["enqueued"] == 2 and stats["dequeued"] == 2
    await bus.close()


async def test_lag_with_the_real_clock_is_positive_while_queued() -> None:
    bus = InProcessBus()
    sub = bus.subscribe(TICKS)
    await bus.publish(TICKS, Tick(n=1))
    stamp = sub.lag()
    await until(lambda: sub.oldest_age > 0, "the monotonic clock to advance")
    assert stamp.depth == 1
    await sub.get()
    assert sub.oldest_age == 0.0
    await bus.close()


async def test_close_ends_iteration_after_draining_and_unsubscribes() -> None:
    bus = InProcessBus()
    sub = bus.subscribe(TICKS)
    for n in range(3):
        await bus.publish(TICKS, Tick(n=n))
    await sub.close()
    await bus.publish(TICKS, Tick(n=99))  # no longer routed to `sub`
    assert [e.n async for e in sub] == [0, 1, 2]  # type: ignore[attr-defined]
    assert bus.unrouted(TICKS) == 1 and bus.subscriptions(TICKS) == ()
    with pytest.raises(QueueClosedError):
        await sub.get()


async def test_close_with_discard_counts_the_discarded_events() -> None:
    bus = InProcessBus()
    sub = bus.subscribe(TICKS)
    for n in range(4):
        await bus.publish(TICKS, Tick(n=n))
    assert await bus.unsubscribe(sub, discard=True) == 4
    assert sub.dropped == 4 and [e async for e in sub] == []


async def test_close_wakes_a_waiting_consumer_and_a_blocked_publisher() -> None:
    bus = InProcessBus()
    idle = bus.subscribe("test.idle")
    consumer = asyncio.create_task(idle.get())
    full = bus.subscribe(TICKS, maxsize=1)
    await bus.publish(TICKS, Tick(n=1))
    publisher = asyncio.create_task(bus.publish(TICKS, Tick(n=2)))
    await until(lambda: full.lag().blocked_publishers == 1 and not consumer.done(), "both sides waiting")
    await bus.close()
    with pytest.raises(QueueClosedError):
        await consumer
    await publisher  # released; the event is not delivered to a closed subscription
    assert [e async for e in full] == [Tick(n=1)]
    with pytest.raises(BusClosedError):
        await bus.publish(TICKS, Tick(n=3))
    with pytest.raises(BusClosedError):
        bus.subscribe(TICKS)


async def test_async_with_subscription_unsubscribes() -> None:
    bus = InProcessBus()
    async with bus.subscribe(TICKS) as sub:
        await bus.publish(TICKS, Tick(n=1))
        assert await sub.get() == Tick(n=1)
    assert sub.closed and bus.subscriptions() == ()
    await bus.close()


async def test_a_cancelled_blocked_publisher_passes_its_wake_up_on() -> None:
    queue: BoundedQueue[int] = BoundedQueue(1, "block")
    await queue.put(0)
    first = asyncio.create_task(queue.put(1))
    second = asyncio.create_task(queue.put(2))
    await until(lambda: queue.blocked_publishers == 2, "two blocked putters")
    assert await queue.get() == 0  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs: `second` must get the slot instead
    await asyncio.gather(first, return_exceptions=True)
    await second
    assert first.cancelled() and await queue.get() == 2
    queue.close()


@pytest.mark.parametrize("policy", ["block", "drop_oldest"])
async def test_queues_never_exceed_maxsize(policy: str) -> None:
    bus = InProcessBus()
    sub = bus.subscribe(TICKS, maxsize=4, policy=policy)  # type: ignore[arg-type]
    received: list[int] = []

    async def consume() -> None:
        async for event in sub:
            received.append(event.n)  # type: ignore[attr-defined]
            if len(received) % 3 == 0:
                await asyncio.sleep(0)  # let the producer refill

    consumer = asyncio.create_task(consume())
    for n in range(200):
        await bus.publish(TICKS, Tick(n=n))
        assert sub.depth <= 4
    await sub.close()
    await consumer
    lag = sub.lag()
    assert lag.peak_depth <= 4
    assert len(received) + lag.dropped == 200
    assert received == sorted(received)  # FIFO, whatever was dropped
    if policy == "block":
        assert received == list(range(200)) and lag.dropped == 0
