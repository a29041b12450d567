"""The bot runtime: Collector → Strategy → Executor (the artemis shape) on asyncio.

A bot is a set of :class:`Collector` s (events in), :class:`Strategy` s (events → actions) and :class:`Executor` s
(actions out), wired by an :class:`Engine`:

* collectors publish to topics of an event bus (:class:`bots.runtime.bus.InProcessBus` unless another
  :class:`bots.runtime.bus.EventBus` is given); each strategy subscribes to its ``topics`` with its own bounded queue;
* every action a strategy returns passes the risk gate (:mod:`bots.runtime.risk`: a
  :class:`~bots.runtime.actions.SendAction` it refuses becomes a :class:`~bots.runtime.actions.Refused`) and is
  then put on the bounded queue of each executor that ``accepts`` it (always the ``block`` policy: actions are
  never dropped silently); an executor may return follow-up actions, which take the same path -- so simulation,
  signing + sending and store writes are separate executors chained by typed actions;
* **ordering**: a collector with ``wait_processed = True`` (the block collector) publishes its next event only
  once the previous one is *done*: every strategy subscribed to its topic has processed it and every action that
  came of it, follow-ups included, has been executed.  So a strategy (and its executors) read block N's state
  until they have finished with N, and the next block is applied only then;
* the **kill switch** (the risk gate's) pauses every strategy: while it is engaged, events are dropped (counted
  in ``paused_events``; they would be stale when it is released) and every send action is refused;
* everything is bounded, and lag is visible: :meth:`Engine.health` reports every queue's depth, drops and oldest
  item age, and an optional :class:`EngineObserver` receives events, actions, stage latencies, restarts and queue
  depths (the Prometheus metrics plug in there).

Where artemis falls short the engine does not: a collector that fails *or ends* is restarted with capped
exponential backoff for as long as the engine runs (counted, and the engine reports ``degraded`` until it
delivers again); an exception in a strategy or executor is logged and counted and the engine carries on; SIGINT /
SIGTERM (with ``handle_signals=True``, as :func:`run_engine` does) stop it gracefully: collectors stop, queued
events are discarded (they would be stale), in-flight strategy calls finish and the executors drain the queued
actions within ``drain_timeout``.  A second signal skips the drain.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from bots.runtime.actions import Refused, SendAction
from bots.runtime.bus import (
    BackPressure,
    BoundedQueue,
    BusSubscription,
    EventBus,
    InProcessBus,
    QueueClosedError,
)
from bots.runtime.risk import RiskGate
from chains.events import AnyEvent, validate_topic

__all__ = [
    "Backoff",
    "Collector",
    "Engine",
    "EngineObserver",
    "EngineState",
    "Executor",
    "Strategy",
    "run_engine",
]

log = logging.getLogger(__name__)

ActionT = TypeVar("ActionT")


class EngineState(enum.StrEnum):
    """Lifecycle of an :class:`Engine` (``degraded`` = running, but some component is failing)."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"


# ------------------------------------------------------------------------------------------ interfaces


class Collector(ABC):
    """A source of events (new blocks, pending swaps, exchange trades ...).

    ``events()`` is usually an async generator.  If it raises or returns, the engine restarts it (with backoff)
    by calling ``events()`` again -- so keep per-connection state inside it -- unless ``restart_on_end`` is False
    and it returned normally (a finite replay, for instance).
    """

    #: Component name in logs, health and metrics; defaults to the class name.
    name: str = ""
    #: Restart the collector when ``events()`` returns normally (a live feed ending is a failure).
    restart_on_end: bool = True
    #: Publish the next event only once the last one is done (processed by every strategy subscribed to its topic,
    #: and every action of it executed): the ordering a block collector needs (see the module docstring).
    wait_processed: bool = False

    @abstractmethod
    def events(self) -> AsyncIterator[AnyEvent]:
        """Yield events until cancelled; implement as ``async def events(self) -> AsyncIterator[AnyEvent]: ... yield``."""

    def topic_for(self, event: AnyEvent) -> str:
        """The topic an event is published to; by default the event class's ``TOPIC``."""
        return event.TOPIC


class Strategy(ABC, Generic[ActionT]):
    """Turns events into actions.  Calls are never concurrent for one strategy instance, so state needs no locks."""

    name: str = ""
    #: Topics to consume (at least one).
    topics: Sequence[str] = ()
    #: Per-strategy subscription settings; None = the engine's defaults.
    queue_maxsize: int | None = None
    backpressure: BackPressure | None = None

    async def sync_state(self) -> None:  # optional hook, deliberately not abstract
        """Load initial state before any collector starts (pools, positions, balances).  Optional."""

    @abstractmethod
    async def process_event(self, event: AnyEvent) -> Sequence[ActionT]:
        """Return the actions this event calls for (often none).  Exceptions are logged and counted."""


class Executor(ABC, Generic[ActionT]):
    """Carries actions out (simulate, sign, submit; or place an order).  One action at a time per executor.

    ``execute`` may return follow-up actions (e.g. a simulation executor returns the sized bundle for the sending
    executor, which returns what it sent for the store executor); the engine dispatches them like a strategy's.
    """

    name: str = ""

    def accepts(self, action: object) -> bool:
        """Whether this executor handles ``action``; by default every action."""
        return True

    @abstractmethod
    async def execute(self, action: ActionT) -> Sequence[object] | None:
        """Carry out one action; return follow-up actions (or None).  Exceptions are logged and counted; the next
        action follows."""


class EngineObserver(Protocol):
    """Optional hooks for metrics.  Every method is optional at runtime (missing ones are skipped) and must not block.

    Stages of ``on_stage_latency``: ``publish`` (collector → bus, includes back-pressure), ``event_queue`` (time an
    event waited for its strategy), ``strategy`` (``process_event``), ``action_queue`` (time an action waited for
    its executor) and ``executor`` (``execute``).  ``bot`` is the engine's name.
    """

    def on_event(self, bot: str, collector: str, event: AnyEvent) -> None:
        """A collector produced ``event``."""

    def on_action(self, bot: str, executor: str, action: object, outcome: str) -> None:
        """An action finished: outcome ``executed`` or ``failed``; ``executor`` is empty for ``unrouted`` (no
        executor took it) and ``refused`` (the risk gate stopped it)."""

    def on_stage_latency(self, bot: str, stage: str, seconds: float) -> None:
        """One stage took ``seconds``."""

    def on_collector_restart(self, bot: str, collector: str, error: BaseException | None) -> None:
        """A collector failed (``error``) or ended (None) and will be restarted after its backoff."""

    def on_queue_depth(self, bot: str, queue: str, depth: int, oldest_age: float) -> None:
        """Periodic sample of one queue (``strategy:<name>:<topic>`` or ``executor:<name>``)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter: ``min(maximum, initial * factor**(attempt-1)) * (1 ± jitter)``."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before restart number ``attempt`` (1-based) of a consecutive run of failures."""
        # Cap the exponent so a collector failing for days does not overflow a float.
        base = min(self.maximum, self.initial * self.factor ** min(max(attempt, 1) - 1, 64))
        if self.jitter:
            # Jitter spreads the reconnects of many bots after a shared node restart.
            base *= 1 + self.jitter * (2 * rand() - 1)
        return max(0.0, base)


# ---------------------------------------------------------------------------------------- component state


class _Work:
    """What is left of one event of a ``wait_processed`` collector: strategy calls and actions still to finish."""

    __slots__ = ("done", "pending")

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.done = asyncio.Event()
        if pending <= 0:
            self.done.set()

    def add(self) -> None:
        self.pending += 1

    def finish(self) -> None:
        self.pending -= 1
        if self.pending <= 0:
            self.done.set()


@dataclass(eq=False)
class _CollectorState:
    collector: Collector
    name: str
    status: str = "idle"  # idle | running | backoff | finished | stopped
    events: int = 0
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    next_restart_at: float | None = None
    task: asyncio.Task[None] | None = None

    def healthy(self) -> bool:
        return self.consecutive_failures == 0


@dataclass(eq=False)
class _StrategyState:
    strategy: Strategy[Any]
    name: str
    subscriptions: list[BusSubscription] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    status: str = "idle"  # idle | syncing | sync_failed | running | stopped
    synced: bool = False
    events: int = 0
    actions: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def healthy(self) -> bool:
        return self.status != "sync_failed" and self.consecutive_errors == 0


@dataclass(eq=False)
class _ExecutorState:
    executor: Executor[Any]
    name: str
    queue: BoundedQueue[Any]
    status: str = "idle"  # idle | running | stopped
    in_flight: int = 0
    executed: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = None

    def healthy(self) -> bool:
        return self.consecutive_errors == 0


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}#{n}"
    taken.add(candidate)
    return candidate


# -------------------------------------------------------------------------------------------------- engine


class Engine:
    """Runs collectors, strategies and executors with bounded queues, restarts, health and graceful shutdown.

    Build it with the components (or ``add_*`` them before :meth:`run`), then ``await engine.run()``; it returns the
    final :meth:`health` snapshot (with a ``shutdown`` section) after :meth:`stop` or a signal.
    """

    def __init__(
        self,
        collectors: Iterable[Collector] = (),
        strategies: Iterable[Strategy[Any]] = (),
        executors: Iterable[Executor[Any]] = (),
        *,
        name: str = "engine",
        bus: EventBus | None = None,
        event_queue_maxsize: int = 1024,
        event_backpressure: BackPressure = "block",
        action_queue_maxsize: int = 1024,
        restart_backoff: Backoff | None = None,
        drain_timeout: float = 10.0,
        observer: EngineObserver | None = None,
        sample_interval: float = 1.0,
        risk: RiskGate | None = None,
    ) -> None:
        self.name = name
        self.risk = risk
        self._bus: EventBus = (
            bus
            if bus is not None
            else InProcessBus(default_maxsize=event_queue_maxsize, default_policy=event_backpressure)
        )
        self._owns_bus = bus is None
        self._event_queue_maxsize = event_queue_maxsize
        self._event_backpressure: BackPressure = event_backpressure
        self._action_queue_maxsize = action_queue_maxsize
        self._backoff = restart_backoff if restart_backoff is not None else Backoff()
        self._drain_timeout = drain_timeout
        self._observer = observer
        self._sample_interval = sample_interval
        self._names: set[str] = set()
        self._collectors: list[_CollectorState] = []
        self._strategies: list[_StrategyState] = []
        self._executors: list[_ExecutorState] = []
        self._phase = EngineState.CREATED
        # asyncio.Event binds to a loop only when first awaited (3.10+), so stop() works even before run().
        self._stop_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._started = asyncio.Event()
        self._started_at: float | None = None
        self._unrouted_actions = 0
        self._refused_actions = 0
        self._paused_events = 0
        self._work: dict[int, _Work] = {}  # id(event) -> what is left of it (wait_processed collectors only)
        self._observer_errors = 0
        self._observer_failed: set[str] = set()
        self._shutdown: dict[str, Any] | None = None
        self._sampler: asyncio.Task[None] | None = None
        for c in collectors:
            self.add_collector(c)
        for s in strategies:
            self.add_strategy(s)
        for e in executors:
            self.add_executor(e)

    # ---------------------------------------------------------------- assembly
    def _check_assembling(self) -> None:
        if self._phase is not EngineState.CREATED:
            raise RuntimeError(f"components can only be added before run() (engine is {self._phase})")

    def add_collector(self, collector: Collector) -> None:
        """Add a collector (before :meth:`run`)."""
        self._check_assembling()
        name = _unique(collector.name or type(collector).__name__, self._names)
        self._collectors.append(_CollectorState(collector, name))

    def add_strategy(self, strategy: Strategy[Any]) -> None:
        """Add a strategy (before :meth:`run`); it must name at least one topic."""
        self._check_assembling()
        label = strategy.name or type(strategy).__name__
        topics = tuple(strategy.topics)
        if not topics:
            raise ValueError(f"strategy {label!r} subscribes to no topics; set its `topics`")
        for t in topics:
            validate_topic(t)
        self._strategies.append(_StrategyState(strategy, _unique(label, self._names)))

    def add_executor(self, executor: Executor[Any]) -> None:
        """Add an executor (before :meth:`run`) with its own bounded action queue."""
        self._check_assembling()
        name = _unique(executor.name or type(executor).__name__, self._names)
        self._executors.append(
            _ExecutorState(executor, name, BoundedQueue(self._action_queue_maxsize, "block"))
        )

    # ---------------------------------------------------------------- observation
    @property
    def bus(self) -> EventBus:
        """The event bus (publish to it to inject events, e.g. in tests)."""
        return self._bus

    @property
    def state(self) -> EngineState:
        """Current lifecycle state; ``running`` becomes ``degraded`` while any component is unhealthy."""
        if self._phase is EngineState.RUNNING and not (
            all(c.healthy() for c in self._collectors)
            and all(s.healthy() for s in self._strategies)
            and all(e.healthy() for e in self._executors)
        ):
            return EngineState.DEGRADED
        return self._phase

    @property
    def paused(self) -> bool:
        """True while the risk gate's kill switch is engaged: strategies get no events, send actions are refused."""
        return self.risk is not None and self.risk.kill_switch.engaged

    async def wait_started(self) -> None:
        """Return once every component runs (strategies synced, collectors started)."""
        await self._started.wait()

    def health(self) -> dict[str, Any]:
        """A JSON-ready snapshot: state, per-component status and counters, per-queue lag."""
        now = time.monotonic()
        return {
            "name": self.name,
            "state": str(self.state),
            "uptime_s": 0.0 if self._started_at is None else now - self._started_at,
            "collectors": {
                c.name: {
                    "status": c.status,
                    "healthy": c.healthy(),
                    "events": c.events,
                    "restarts": c.restarts,
                    "consecutive_failures": c.consecutive_failures,
                    "last_error": c.last_error,
                    "next_restart_in_s": None
                    if c.next_restart_at is None or c.status != "backoff"
                    else max(0.0, c.next_restart_at - now),
                }
                for c in self._collectors
            },
            "strategies": {
                s.name: {
                    "status": s.status,
                    "healthy": s.healthy(),
                    "events": s.events,
                    "actions": s.actions,
                    "errors": s.errors,
                    "last_error": s.last_error,
                    "queues": {sub.topic: sub.lag().as_dict() for sub in s.subscriptions},
                }
                for s in self._strategies
            },
            "executors": {
                e.name: {
                    "status": e.status,
                    "healthy": e.healthy(),
                    "in_flight": e.in_flight,
                    "executed": e.executed,
                    "errors": e.errors,
                    "last_error": e.last_error,
                    "queue": e.queue.lag().as_dict(),
                }
                for e in self._executors
            },
            "unrouted_actions": self._unrouted_actions,
            "refused_actions": self._refused_actions,
            "paused": self.paused,
            "paused_events": self._paused_events,
            "observer_errors": self._observer_errors,
            "shutdown": None if self._shutdown is None else dict(self._shutdown),
        }

    def _notify(self, hook: str, *args: Any) -> None:
        if self._observer is None:
            return
        fn = getattr(self._observer, hook, None)
        if fn is None:
            return
        try:
            fn(self.name, *args)
        except Exception:
            # Metrics must never take the bot down; log each failing hook once to avoid flooding.
            self._observer_errors += 1
            if hook not in self._observer_failed:
                self._observer_failed.add(hook)
                log.exception(
                    "%s: observer hook %s failed (further failures are only counted)", self.name, hook
                )

    # ---------------------------------------------------------------- control
    def stop(self, *, force: bool = False) -> None:
        """Request a graceful shutdown (``force``: skip draining).  Safe to call at any time, repeatedly.

        Call it from the engine's event-loop thread (``loop.call_soon_threadsafe(engine.stop)`` from others).
        """
        self._stop_requested.set()
        if force:
            self._force.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop_requested.is_set():
            log.warning("%s: %s again; stopping now without draining", self.name, sig.name)
            self.stop(force=True)
        else:
            log.info(
                "%s: %s received; shutting down (drain deadline %.1fs)",
                self.name,
                sig.name,
                self._drain_timeout,
            )
            self.stop()

    async def run(self, *, handle_signals: bool = False) -> dict[str, Any]:
        """Run until :meth:`stop` (or SIGINT/SIGTERM with ``handle_signals``); return the final health snapshot."""
        if self._phase is not EngineState.CREATED:
            raise RuntimeError(f"engine {self.name!r} has already run (state {self._phase})")
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        self._phase = EngineState.STARTING
        log.info(
            "%s: starting (%d collector(s), %d strategy(ies), %d executor(s))",
            self.name, len(self._collectors), len(self._strategies), len(self._executors),
        )  # fmt: skip
        try:
            await self._start()
            if not self._stop_requested.is_set():
                self._phase = EngineState.RUNNING
                self._started_at = time.monotonic()
                self._started.set()
                log.info("%s: running", self.name)
            await self._stop_requested.wait()
            await self._shutdown_gracefully()
        finally:
            # Whatever happened (including our own cancellation), leave no task behind.
            await self._cancel_all()
            for sig in signals:
                loop.remove_signal_handler(sig)
            self._phase = EngineState.STOPPED
            self._started.set()  # release anyone waiting for a start that will not come
        log.info("%s: stopped %s", self.name, self._shutdown)
        return self.health()

    # ---------------------------------------------------------------- lifecycle internals
    async def _start(self) -> None:
        # Subscribe before anything can publish, so no event between "collector up" and "strategy up" is lost.
        for s in self._strategies:
            for topic in s.strategy.topics:
                s.subscriptions.append(
                    self._bus.subscribe(
                        topic,
                        maxsize=s.strategy.queue_maxsize or self._event_queue_maxsize,
                        policy=s.strategy.backpressure or self._event_backpressure,
                        name=f"{s.name}:{topic}",
                    )
                )
        for e in self._executors:
            e.status = "running"
            e.task = asyncio.create_task(self._executor_loop(e), name=f"{self.name}:executor:{e.name}")
        # artemis order: strategies sync their state first, then collectors start feeding them.
        await self._sync_strategies()
        for s in self._strategies:
            if s.status != "sync_failed":
                s.status = "running"
            for sub in s.subscriptions:
                s.tasks.append(
                    asyncio.create_task(
                        self._strategy_loop(s, sub), name=f"{self.name}:strategy:{s.name}:{sub.topic}"
                    )
                )
        for c in self._collectors:
            c.task = asyncio.create_task(self._collector_loop(c), name=f"{self.name}:collector:{c.name}")
        if self._observer is not None and self._sample_interval > 0:
            self._sampler = asyncio.create_task(self._sample_loop(), name=f"{self.name}:sampler")

    async def _sync_one(self, s: _StrategyState) -> None:
        s.status = "syncing"
        try:
            await s.strategy.sync_state()
        except Exception as exc:
            # The strategy still runs (events may repair its state), but health shows it degraded.
            s.status, s.last_error = "sync_failed", _describe(exc)
            s.errors += 1
            log.exception("%s: strategy %s failed to sync its state", self.name, s.name)
        else:
            s.synced = True

    async def _sync_strategies(self) -> None:
        if not self._strategies:
            return
        syncing: asyncio.Future[Any] = asyncio.gather(*(self._sync_one(s) for s in self._strategies))
        stop_wait: asyncio.Future[Any] = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({syncing, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            if not syncing.done():
                log.warning(
                    "%s: stop requested while strategies were syncing; abandoning the sync", self.name
                )
                syncing.cancel()
            await asyncio.gather(syncing, stop_wait, return_exceptions=True)

    async def _collector_loop(self, c: _CollectorState) -> None:
        while True:
            c.status = "running"
            error: BaseException | None = None
            stream = c.collector.events()
            try:
                async for event in stream:
                    c.events += 1
                    c.consecutive_failures = 0  # delivering again: healthy, and the backoff starts over
                    self._notify("on_event", c.name, event)
                    t0 = time.monotonic()
                    topic = c.collector.topic_for(event)
                    if c.collector.wait_processed:
                        await self._publish_and_wait(topic, event)
                    else:
                        await self._bus.publish(topic, event)
                    self._notify("on_stage_latency", "publish", time.monotonic() - t0)
                if not c.collector.restart_on_end:
                    c.status = "finished"
                    log.info("%s: collector %s finished", self.name, c.name)
                    return
                log.warning("%s: collector %s ended unexpectedly", self.name, c.name)
            except Exception as exc:
                error = exc
                log.error("%s: collector %s failed: %s", self.name, c.name, _describe(exc), exc_info=exc)
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    # Run the generator's own cleanup (sockets, subscriptions) now rather than at GC time.
                    try:
                        await aclose()
                    except Exception:
                        log.exception("%s: collector %s failed while closing", self.name, c.name)
            c.consecutive_failures += 1
            c.restarts += 1
            c.last_error = "ended unexpectedly" if error is None else _describe(error)
            delay = self._backoff.delay(c.consecutive_failures)
            c.status = "backoff"
            c.next_restart_at = time.monotonic() + delay
            self._notify("on_collector_restart", c.name, error)
            log.warning(
                "%s: restarting collector %s in %.2fs (restart #%d, %d consecutive failure(s))",
                self.name, c.name, delay, c.restarts, c.consecutive_failures,
            )  # fmt: skip
            await asyncio.sleep(delay)

    async def _publish_and_wait(self, topic: str, event: AnyEvent) -> None:
        """Publish ``event`` and wait until it is done (see :attr:`Collector.wait_processed`)."""
        readers = sum(1 for s in self._strategies for sub in s.subscriptions if sub.topic == topic)
        work = _Work(readers)
        self._work[id(event)] = work
        try:
            await self._bus.publish(topic, event)
            await work.done.wait()
        finally:
            del self._work[id(event)]

    async def _strategy_loop(self, s: _StrategyState, sub: BusSubscription) -> None:
        while True:
            try:
                event, stamp = await sub.get_stamped()
            except QueueClosedError:
                return
            work = self._work.get(id(event))
            try:
                # One call at a time per strategy, even when it reads several topics.
                async with s.lock:
                    if self.paused:
                        self._paused_events += 1
                        continue
                    t0 = time.monotonic()
                    self._notify("on_stage_latency", "event_queue", t0 - stamp)
                    try:
                        actions = await s.strategy.process_event(event)
                    except Exception as exc:
                        s.errors += 1
                        s.consecutive_errors += 1
                        s.last_error = _describe(exc)
                        log.exception("%s: strategy %s failed on %s", self.name, s.name, type(event).__name__)
                        continue
                    finally:
                        self._notify("on_stage_latency", "strategy", time.monotonic() - t0)
                    s.events += 1
                    s.consecutive_errors = 0
                    for action in actions or ():
                        s.actions += 1
                        await self._dispatch(action, work)
            finally:
                if work is not None:
                    work.finish()

    async def _dispatch(self, action: object, work: _Work | None = None) -> None:
        if isinstance(action, SendAction) and self.risk is not None:
            reason = self.risk.check(action)
            if reason is not None:
                self._refused_actions += 1
                log.info("%s: risk gate refused %s: %s", self.name, type(action).__name__, reason)
                self._notify("on_action", "", action, "refused")
                action = Refused(action, reason)
        routed = False
        for e in self._executors:
            try:
                accepted = e.executor.accepts(action)
            except Exception:
                log.exception(
                    "%s: executor %s.accepts() failed; skipping it for this action", self.name, e.name
                )
                continue
            if accepted:
                routed = True
                if work is not None:
                    work.add()
                if not await e.queue.put((action, work)):
                    if work is not None:
                        work.finish()
                    log.warning("%s: executor %s is closed; action %r dropped", self.name, e.name, action)
        if not routed and not isinstance(action, Refused):
            self._unrouted_actions += 1
            log.warning("%s: no executor accepts %s; dropped", self.name, type(action).__name__)
            self._notify("on_action", "", action, "unrouted")

    async def _executor_loop(self, e: _ExecutorState) -> None:
        while True:
            try:
                (action, work), stamp = await e.queue.get_stamped()
            except QueueClosedError:
                e.status = "stopped"
                return
            try:
                await self._execute_one(e, action, work, stamp)
            finally:
                if work is not None:
                    work.finish()

    async def _execute_one(self, e: _ExecutorState, action: object, work: _Work | None, stamp: float) -> None:
        t0 = time.monotonic()
        self._notify("on_stage_latency", "action_queue", t0 - stamp)
        e.in_flight = 1
        follow: Sequence[object] | None = None
        try:
            follow = await e.executor.execute(action)
        except Exception as exc:
            e.errors += 1
            e.consecutive_errors += 1
            e.last_error = _describe(exc)
            log.exception("%s: executor %s failed on %s", self.name, e.name, type(action).__name__)
            outcome = "failed"
        else:
            e.executed += 1
            e.consecutive_errors = 0
            outcome = "executed"
        self._notify("on_stage_latency", "executor", time.monotonic() - t0)
        self._notify("on_action", e.name, action, outcome)
        try:
            # Follow-ups are part of the same work: the event is done only once they are executed too.
            for nxt in follow or ():
                await self._dispatch(nxt, work)
        finally:
            e.in_flight = 0

    async def _sample_loop(self) -> None:
        while True:
            for s in self._strategies:
                for sub in s.subscriptions:
                    lag = sub.lag()
                    self._notify(
                        "on_queue_depth", f"strategy:{s.name}:{sub.topic}", lag.depth, lag.oldest_age
                    )
            for e in self._executors:
                lag = e.queue.lag()
                self._notify("on_queue_depth", f"executor:{e.name}", lag.depth, lag.oldest_age)
            await asyncio.sleep(self._sample_interval)

    async def _wait_drained(
        self, tasks: Sequence[asyncio.Task[None]], deadline: float
    ) -> set[asyncio.Task[None]]:
        """Wait for ``tasks`` until the deadline or a forced stop; return those still running."""
        pending = {t for t in tasks if not t.done()}
        if not pending:
            return pending
        force_wait = asyncio.create_task(self._force.wait())
        try:
            while pending and not self._force.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(
                    {*pending, force_wait}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= done
        finally:
            force_wait.cancel()
            await asyncio.gather(force_wait, return_exceptions=True)
        return pending

    async def _wait_executors_idle(self, deadline: float) -> None:
        while not self._force.is_set() and time.monotonic() < deadline:
            if all(e.queue.depth == 0 and e.in_flight == 0 for e in self._executors):
                return
            await asyncio.sleep(0.01)

    async def _shutdown_gracefully(self) -> None:
        self._phase = EngineState.STOPPING
        began = time.monotonic()
        deadline = began + self._drain_timeout
        log.info("%s: stopping: collectors first, then draining in-flight actions", self.name)
        executed_before = sum(e.executed for e in self._executors)
        # 1. No new events.
        producers = [c.task for c in self._collectors if c.task is not None]
        if self._sampler is not None:
            producers.append(self._sampler)
        for t in producers:
            t.cancel()
        await asyncio.gather(*producers, return_exceptions=True)
        for c in self._collectors:
            if c.status != "finished":
                c.status = "stopped"
        # 2. Queued events are stale by now: discard them; a strategy mid-call finishes and its actions are queued.
        discarded = 0
        for s in self._strategies:
            for sub in s.subscriptions:
                discarded += await sub.close(discard=True)
        strategy_tasks = [t for s in self._strategies for t in s.tasks]
        left = await self._wait_drained(strategy_tasks, deadline)
        for s in self._strategies:
            s.status = "stopped"
        # 3. Executors finish every queued action (within the deadline), follow-ups included: the queues close only
        #    once every executor is idle, so a sending executor's report still reaches the store executor.
        await self._wait_executors_idle(deadline)
        for e in self._executors:
            e.queue.close()
        left |= await self._wait_drained([e.task for e in self._executors if e.task is not None], deadline)
        undrained = sum(e.queue.depth + e.in_flight for e in self._executors)
        for t in left:
            t.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        for e in self._executors:
            e.status = "stopped"
        if self._owns_bus:
            await self._bus.close()
        forced = self._force.is_set()
        self._shutdown = {
            "discarded_events": discarded,
            "drained_actions": sum(e.executed for e in self._executors) - executed_before,
            "undrained_actions": undrained,
            "deadline_hit": bool(left) and not forced,
            "forced": forced,
            "duration_s": time.monotonic() - began,
        }
        if left:
            log.warning(
                "%s: drain %s; %d action(s) not executed",
                self.name, "skipped (forced)" if forced else "deadline hit", undrained,
            )  # fmt: skip

    async def _cancel_all(self) -> None:
        tasks: list[asyncio.Task[None]] = [c.task for c in self._collectors if c.task is not None]
        tasks += [t for s in self._strategies for t in s.tasks]
        tasks += [e.task for e in self._executors if e.task is not None]
        if self._sampler is not None:
            tasks.append(self._sampler)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run_engine(engine: Engine) -> dict[str, Any]:
    """Run ``engine`` as the main program: a fresh event loop, SIGINT/SIGTERM → graceful shutdown.

    Returns the final health snapshot (its ``shutdown`` section says what was drained).
    """
    return asyncio.run(engine.run(handle_signals=True))
