"""The Collector → Strategy → Executor engine: flow, restarts, error isolation, bounded queues, shutdown, signals."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bots.runtime.bus import InProcessBus
from bots.runtime.engine import Backoff, Collector, Engine, EngineState, Executor, Strategy
from chains.events import Event

from .helpers import TICKS, Tick, until

ROOT = Path(__file__).resolve().parents[3]
TINY = Backoff(initial=0.001, factor=2.0, maximum=0.004, jitter=0.0)


# ------------------------------------------------------------------------------------------- components


class ListCollector(Collector):
    """Yields the given ticks once, then ends (finite, so not restarted)."""

    restart_on_end = False

    def __init__(self, ns: Sequence[int], name: str = "") -> None:
        self.ns = list(ns)
        self.name = name

    async def events(self) -> AsyncIterator[Event]:
        for n in self.ns:
            yield Tick(n=n)


class ScriptedCollector(Collector):
    """Each run yields the next batch of ticks, then raises (or ends); after the last batch it idles forever."""

    def __init__(self, batches: list[list[int]], *, raise_after: bool = True) -> None:
        self.batches = batches
        self.raise_after = raise_after
        self.runs = 0
        self.closed_runs = 0

    async def events(self) -> AsyncIterator[Event]:
        run = self.runs
        self.runs += 1
        try:
            if run >= len(self.batches):
                await asyncio.Event().wait()  # a healthy, quiet feed
            for n in self.batches[run]:
                yield Tick(n=n)
            if self.raise_after:
                raise ConnectionError(f"feed dropped after run {run}")
        finally:
            self.closed_runs += 1


class AlwaysFailing(Collector):
    name = "flaky-ws"

    def __init__(self) -> None:
        self.calls = 0

    async def events(self) -> AsyncIterator[Event]:
        self.calls += 1
        raise ConnectionRefusedError("node down")
        yield Tick(n=0)  # pragma: no cover - makes this an async generator


class Doubler(Strategy[tuple[str, int]]):
    """Tick(n) → [("a", n), ("b", n)]; raises on the ticks in ``fail_on``.

    With a ``gate``, processing waits for it (on every tick, or only on tick ``hold_on``); ``seen`` records ticks
    on entry, so ``seen[-1]`` is the one being held.
    """

    topics: Sequence[str] = (TICKS,)

    def __init__(
        self,
        fail_on: frozenset[int] = frozenset(),
        gate: asyncio.Event | None = None,
        hold_on: int | None = None,
    ) -> None:
        self.fail_on = fail_on
        self.gate = gate
        self.hold_on = hold_on
        self.synced = False
        self.seen: list[int] = []

    async def sync_state(self) -> None:
        self.synced = True

    async def process_event(self, event: Event) -> Sequence[tuple[str, int]]:
        assert isinstance(event, Tick) and self.synced
        self.seen.append(event.n)
        if self.gate is not None and self.hold_on in (None, event.n):
            await self.gate.wait()
        if event.n in self.fail_on:
            raise ValueError(f"cannot price tick {event.n}")
        return [("a", event.n), ("b", event.n)]


class Recorder(Executor[Any]):
    def __init__(
        self,
        *,
        accepts: Callable[[object], bool] = lambda a: True,
        fail_on: Callable[[object], bool] = lambda a: False,
        gate: asyncio.Event | None = None,
        name: str = "",
    ) -> None:
        self.received: list[Any] = []
        self._accepts = accepts
        self._fail_on = fail_on
        self.gate = gate
        self.name = name

    def accepts(self, action: object) -> bool:
        return self._accepts(action)

    async def execute(self, action: Any) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.received.append(action)
        if self._fail_on(action):
            raise RuntimeError(f"revert: {action}")


class RecordingObserver:
    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[Any, ...]]] = {}

    def _rec(self, hook: str, *args: Any) -> None:
        self.calls.setdefault(hook, []).append(args)

    def on_event(self, bot: str, collector: str, event: Event) -> None:
        self._rec("on_event", bot, collector, event)

    def on_action(self, bot: str, executor: str, action: object, outcome: str) -> None:
        self._rec("on_action", bot, executor, action, outcome)

    def on_stage_latency(self, bot: str, stage: str, seconds: float) -> None:
        self._rec("on_stage_latency", bot, stage, seconds)

    def on_collector_restart(self, bot: str, collector: str, error: BaseException | None) -> None:
        self._rec("on_collector_restart", bot, collector, error)

    def on_queue_depth(self, bot: str, queue: str, depth: int, oldest_age: float) -> None:
        self._rec("on_queue_depth", bot, queue, depth, oldest_age)


def lag_depth(engine: Engine, strategy: str | None = None) -> int:
    """Depth of the (first) strategy's TICKS subscription."""
    strategies = engine.health()["strategies"]
    stats = strategies[strategy] if strategy else next(iter(strategies.values()))
    return int(stats["queues"][TICKS]["depth"])


def expected(ns: Sequence[int]) -> list[tuple[str, int]]:
    return [(tag, n) for n in ns for tag in ("a", "b")]


async def run_until(engine: Engine, cond: Callable[[], bool], what: str) -> dict[str, Any]:
    """Run the engine until ``cond`` holds, stop it and return its final snapshot."""
    task = asyncio.create_task(engine.run())
    try:
        await until(lambda: cond() or task.done(), what)
    finally:
        engine.stop()
    return await task


# ------------------------------------------------------------------------------------------------ flow


async def test_events_flow_from_collector_through_strategy_to_executor_in_order() -> None:
    executor = Recorder()
    strategy = Doubler()
    engine = Engine([ListCollector(range(20))], [strategy], [executor], name="flow")
    final = await run_until(engine, lambda: len(executor.received) == 40, "40 actions")
    assert executor.received == expected(range(20))
    assert final["state"] == "stopped"
    assert final["collectors"]["ListCollector"]["status"] == "finished"
    assert final["strategies"]["Doubler"]["events"] == 20 and final["strategies"]["Doubler"]["actions"] == 40
    assert final["executors"]["Recorder"]["executed"] == 40
    assert final["shutdown"]["undrained_actions"] == 0 and not final["shutdown"]["deadline_hit"]
    json.dumps(final)  # the health snapshot is JSON-ready


async def test_actions_go_only_to_executors_that_accept_them() -> None:
    only_a = Recorder(accepts=lambda a: a[0] == "a", name="only-a")  # type: ignore[index]
    everything = Recorder(name="everything")
    engine = Engine([ListCollector([1, 2])], [Doubler()], [only_a, everything])
    await run_until(engine, lambda: len(everything.received) == 4 and len(only_a.received) == 2, "routing")
    assert only_a.received == [("a", 1), ("a", 2)]
    assert everything.received == expected([1, 2])


async def test_an_action_no_executor_accepts_is_counted() -> None:
    nobody = Recorder(accepts=lambda a: False)
    engine = Engine([ListCollector([1])], [Doubler()], [nobody])
    final = await run_until(engine, lambda: engine.health()["unrouted_actions"] == 2, "two unrouted actions")
    assert final["unrouted_actions"] == 2 and nobody.received == []


async def test_two_collectors_and_duplicate_names_are_kept_apart() -> None:
    executor = Recorder()
    engine = Engine(
        [ListCollector([1, 2], name="feed"), ListCollector([10, 20], name="feed")], [Doubler()], [executor]
    )
    final = await run_until(engine, lambda: len(executor.received) == 8, "8 actions")
    assert set(final["collectors"]) == {"feed", "feed#2"}
    by_source = [n for tag, n in executor.received if tag == "a"]
    assert sorted(by_source) == [1, 2, 10, 20]
    assert by_source.index(1) < by_source.index(2) and by_source.index(10) < by_source.index(20)


# --------------------------------------------------------------------------------------------- restarts


async def test_a_failing_collector_is_restarted_and_later_events_still_arrive() -> None:
    collector = ScriptedCollector([[1, 2], [3, 4]])
    executor = Recorder()
    observer = RecordingObserver()
    engine = Engine([collector], [Doubler()], [executor], restart_backoff=TINY, observer=observer)
    final = await run_until(
        engine, lambda: len(executor.received) == 8 and collector.runs == 3, "events after two restarts"
    )
    assert executor.received == expected([1, 2, 3, 4])
    stats = final["collectors"]["ScriptedCollector"]
    assert stats["restarts"] == 2 and stats["events"] == 4
    assert "ConnectionError: feed dropped after run 1" in stats["last_error"]
    assert collector.closed_runs == 3  # every run's generator was closed, the last one at shutdown
    restarts = observer.calls["on_collector_restart"]
    assert [type(err) for _, _, err in restarts] == [ConnectionError, ConnectionError]


async def test_a_collector_that_ends_unexpectedly_is_restarted() -> None:
    collector = ScriptedCollector([[1], [2]], raise_after=False)
    executor = Recorder()
    engine = Engine([collector], [Doubler()], [executor], restart_backoff=TINY)
    final = await run_until(engine, lambda: len(executor.received) == 4 and collector.runs == 3, "restart")
    assert executor.received == expected([1, 2])
    assert final["collectors"]["ScriptedCollector"]["restarts"] == 2
    assert final["collectors"]["ScriptedCollector"]["last_error"] == "ended unexpectedly"


async def test_a_collector_that_keeps_failing_stays_restartable_and_the_engine_reports_degraded() -> None:
    flaky = AlwaysFailing()
    engine = Engine([flaky], [Doubler()], [Recorder()], restart_backoff=TINY)
    task = asyncio.create_task(engine.run())
    await until(lambda: flaky.calls >= 6, "six attempts")
    health = engine.health()
    assert engine.state is EngineState.DEGRADED and health["state"] == "degraded"
    stats = health["collectors"]["flaky-ws"]
    assert not stats["healthy"] and stats["restarts"] >= 5 and stats["consecutive_failures"] >= 5
    assert stats["last_error"] == "ConnectionRefusedError: node down"
    engine.stop()
    final = await task
    assert final["state"] == "stopped"


def test_backoff_is_exponential_and_capped() -> None:
    b = Backoff(initial=0.5, factor=2.0, maximum=30.0, jitter=0.0)
    assert [b.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert b.delay(50) == 30.0 and b.delay(10**6) == 30.0
    jittered = Backoff(initial=1.0, jitter=0.1)
    assert jittered.delay(1, rand=lambda: 0.0) == pytest.approx(0.9)
    assert jittered.delay(1, rand=lambda: 1.0) == pytest.approx(1.1)
    with pytest.raises(ValueError):
        Backoff(initial=2.0, maximum=1.0)


# -------------------------------------------------------------------------------------- error isolation


async def test_a_strategy_exception_is_counted_and_does_not_stop_the_engine() -> None:
    executor = Recorder()
    engine = Engine([ListCollector([1, 2, 3, 4])], [Doubler(fail_on=frozenset({2}))], [executor])
    final = await run_until(engine, lambda: len(executor.received) == 6, "actions of ticks 1, 3, 4")
    assert executor.received == expected([1, 3, 4])
    stats = final["strategies"]["Doubler"]
    assert stats["errors"] == 1 and stats["healthy"]  # later events succeeded
    assert stats["last_error"] == "ValueError: cannot price tick 2"


async def test_an_executor_exception_is_counted_and_the_next_action_follows() -> None:
    executor = Recorder(fail_on=lambda a: a == ("b", 1))
    observer = RecordingObserver()
    engine = Engine([ListCollector([1, 2])], [Doubler()], [executor], observer=observer)
    final = await run_until(engine, lambda: len(executor.received) == 4, "four attempts")
    assert executor.received == expected([1, 2])
    assert final["executors"]["Recorder"]["errors"] == 1 and final["executors"]["Recorder"]["executed"] == 3
    outcomes = [(action, outcome) for _, _, action, outcome in observer.calls["on_action"]]
    assert outcomes == [
        (("a", 1), "executed"),
        (("b", 1), "failed"),
        (("a", 2), "executed"),
        (("b", 2), "executed"),
    ]


async def test_a_failing_sync_state_marks_the_strategy_degraded_but_the_engine_runs() -> None:
    class BadSync(Doubler):
        async def sync_state(self) -> None:
            raise TimeoutError("state reader timed out")

    engine = Engine([ListCollector([])], [BadSync()], [Recorder()])
    task = asyncio.create_task(engine.run())
    await engine.wait_started()
    assert engine.state is EngineState.DEGRADED
    assert engine.health()["strategies"]["BadSync"]["status"] == "sync_failed"
    engine.stop()
    await task


async def test_a_broken_observer_never_takes_the_engine_down() -> None:
    class Broken:
        def on_event(self, *args: Any) -> None:
            raise RuntimeError("metrics backend gone")

    executor = Recorder()
    engine = Engine([ListCollector([1, 2])], [Doubler()], [executor], observer=Broken())  # type: ignore[arg-type]
    final = await run_until(engine, lambda: len(executor.received) == 4, "4 actions")
    assert final["observer_errors"] == 2 and executor.received == expected([1, 2])


async def test_observer_receives_events_latencies_and_queue_depths() -> None:
    observer = RecordingObserver()
    executor = Recorder()
    engine = Engine(
        [ListCollector([1, 2])], [Doubler()], [executor], observer=observer, sample_interval=0.001
    )
    await run_until(
        engine,
        lambda: len(executor.received) == 4 and "on_queue_depth" in observer.calls,
        "actions and a sample",
    )
    assert [(bot, c, e) for bot, c, e in observer.calls["on_event"]] == [
        ("engine", "ListCollector", Tick(n=1)),
        ("engine", "ListCollector", Tick(n=2)),
    ]
    stages = {stage for _, stage, _ in observer.calls["on_stage_latency"]}
    assert stages == {"publish", "event_queue", "strategy", "action_queue", "executor"}
    assert all(seconds >= 0 for *_, seconds in observer.calls["on_stage_latency"])
    queues = {queue for _, queue, _, _ in observer.calls["on_queue_depth"]}
    assert queues == {f"strategy:Doubler:{TICKS}", "executor:Recorder"}


# ------------------------------------------------------------------------------------- bounded queues


async def test_queues_stay_bounded_under_a_slow_strategy_and_lose_nothing_with_block() -> None:
    gate = asyncio.Event()
    executor_gate = asyncio.Event()
    strategy = Doubler(gate=gate)
    executor = Recorder(gate=executor_gate)
    engine = Engine(
        [ListCollector(range(50))], [strategy], [executor], event_queue_maxsize=3, action_queue_maxsize=2
    )
    task = asyncio.create_task(engine.run())
    await engine.wait_started()

    def sub_lag() -> dict[str, Any]:
        lag: dict[str, Any] = engine.health()["strategies"]["Doubler"]["queues"][TICKS]
        return lag

    await until(
        lambda: strategy.seen == [0] and sub_lag()["depth"] == 3 and sub_lag()["blocked_publishers"] == 1,
        "collector held back",
    )
    # 1 in the strategy, 3 queued, 1 waiting to be published
    assert engine.health()["collectors"]["ListCollector"]["events"] == 5
    gate.set()
    await until(lambda: engine.health()["executors"]["Recorder"]["queue"]["depth"] == 2, "actions queued")
    executor_gate.set()
    await until(lambda: len(executor.received) == 100, "all actions")
    engine.stop()
    final = await task
    assert executor.received == expected(range(50))
    assert final["strategies"]["Doubler"]["queues"][TICKS]["peak_depth"] == 3
    assert final["executors"]["Recorder"]["queue"]["peak_depth"] == 2
    assert final["strategies"]["Doubler"]["queues"][TICKS]["dropped"] == 0


async def test_a_drop_oldest_strategy_sheds_load_and_counts_it() -> None:
    gate = asyncio.Event()

    class Firehose(Doubler):
        queue_maxsize = 2
        backpressure = "drop_oldest"

    strategy = Firehose(gate=gate)
    engine = Engine([ListCollector(range(10))], [strategy], [Recorder()])
    task = asyncio.create_task(engine.run())
    await until(
        lambda: engine.health()["collectors"]["ListCollector"]["status"] == "finished", "collector done"
    )
    lag = engine.health()["strategies"]["Firehose"]["queues"][TICKS]
    # The collector never had to wait, so all ten were published before the strategy ran: the two newest survive.
    assert lag["depth"] == 2 and lag["dropped"] == 8 and lag["peak_depth"] == 2
    gate.set()
    await until(lambda: len(strategy.seen) == 2 and lag_depth(engine) == 0, "the survivors")
    assert strategy.seen == [8, 9]
    engine.stop()
    await task


# --------------------------------------------------------------------------------------------- shutdown


async def test_stop_drains_queued_actions_and_discards_stale_events() -> None:
    executor_gate = asyncio.Event()
    strategy_gate = asyncio.Event()
    executor = Recorder(gate=executor_gate)
    strategy = Doubler(gate=strategy_gate, hold_on=1)  # tick 1 is held inside process_event
    engine = Engine([ListCollector(range(6))], [strategy], [executor], action_queue_maxsize=10)
    task = asyncio.create_task(engine.run())
    await engine.wait_started()
    await until(lambda: strategy.seen == [0, 1] and lag_depth(engine) == 4, "tick 1 held, ticks 2..5 queued")
    engine.stop()
    await until(
        lambda: engine.state is EngineState.STOPPING and lag_depth(engine) == 0, "stale events discarded"
    )
    strategy_gate.set()  # the in-flight call finishes during the drain; its actions are executed too
    executor_gate.set()
    final = await task
    assert executor.received == expected([0, 1])
    shutdown = final["shutdown"]
    assert shutdown["discarded_events"] == 4
    assert shutdown["drained_actions"] == 4 and shutdown["undrained_actions"] == 0
    assert not shutdown["deadline_hit"] and not shutdown["forced"]


async def test_the_drain_deadline_bounds_shutdown_with_a_stuck_executor() -> None:
    never = asyncio.Event()
    executor = Recorder(gate=never)
    engine = Engine([ListCollector([1, 2])], [Doubler()], [executor], drain_timeout=0.01)
    task = asyncio.create_task(engine.run())
    await until(lambda: engine.health()["executors"]["Recorder"]["queue"]["depth"] == 3, "actions stuck")
    engine.stop()
    final = await task
    assert final["shutdown"]["deadline_hit"] and final["shutdown"]["undrained_actions"] == 4
    assert final["state"] == "stopped" and executor.received == []


async def test_a_forced_stop_skips_the_drain() -> None:
    never = asyncio.Event()
    engine = Engine([ListCollector([1])], [Doubler()], [Recorder(gate=never)], drain_timeout=60.0)
    task = asyncio.create_task(engine.run())
    await until(lambda: engine.health()["executors"]["Recorder"]["in_flight"] == 1, "an action in flight")
    engine.stop()
    await until(lambda: engine.state is EngineState.STOPPING, "stopping")
    engine.stop(force=True)
    final = await task
    assert final["shutdown"]["forced"] and final["shutdown"]["undrained_actions"] == 2


async def test_stop_before_run_returns_at_once_and_an_engine_runs_only_once() -> None:
    engine = Engine([ListCollector([1])], [Doubler()], [Recorder()])
    engine.stop()
    final = await engine.run()
    assert final["state"] == "stopped"
    with pytest.raises(RuntimeError, match="already run"):
        await engine.run()
    with pytest.raises(RuntimeError, match="before run"):
        engine.add_executor(Recorder())


async def test_an_external_bus_is_left_open() -> None:
    bus = InProcessBus()
    engine = Engine([ListCollector([])], [Doubler()], [Recorder()], bus=bus)
    task = asyncio.create_task(engine.run())
    await engine.wait_started()
    engine.stop()
    await task
    assert not bus.closed and bus.subscriptions() == ()
    await bus.close()


def test_a_strategy_must_name_its_topics() -> None:
    class NoTopics(Doubler):
        topics = ()

    with pytest.raises(ValueError, match="no topics"):
        Engine(strategies=[NoTopics()])


# ----------------------------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_shuts_a_real_engine_process_down_gracefully(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bots.runtime.engine_main", "--ready", "5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    final = json.loads(out.strip().splitlines()[-1])
    assert final["state"] == "stopped" and final["executed_in_order"]
    shutdown = final["shutdown"]
    assert not shutdown["forced"] and not shutdown["deadline_hit"] and shutdown["undrained_actions"] == 0
    # Every action the strategy produced was executed, including those queued when the signal arrived.
    assert final["executors"]["recorder"]["executed"] == final["strategies"]["echo"]["actions"] >= 5
    assert f"{sig.name} received" in err
