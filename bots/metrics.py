"""Prometheus metrics of a mevsuite process: one registry per process, ``/metrics`` on a configurable port.

Every bot process builds one :class:`Metrics` (or takes :func:`process_metrics`) on its own
:class:`~prometheus_client.CollectorRegistry` — never the library's global default, so tests and several
components in one process cannot collide — and serves it with :meth:`Metrics.serve` (port 0 picks a free port;
the bound port is :attr:`MetricsServer.port`).  Names follow Prometheus conventions: base units
(``_seconds``), ``_total`` on counters, low-cardinality labels (bot, stage, queue, table — never a tx hash).

Serving uses prometheus-client's threaded WSGI server, so a scrape is answered even while the event loop is
busy, and it stops cleanly (:meth:`MetricsServer.stop`).

``python -m bots.metrics --serve-demo --port 0 --count 7`` runs a tiny process that serves metrics, counts 7
opportunities, prints ``{"port": …, "opportunities_total": 7}`` on one line and serves until SIGTERM — handy to
check a Prometheus setup (the integration test scrapes it with a real Prometheus).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, Self
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = [
    "LATENCY_BUCKETS",
    "Metrics",
    "MetricsServer",
    "MetricsServerError",
    "main",
    "process_metrics",
]

# 100 µs … 10 s, roughly 1-2.5-5 per decade: decode/evaluate stages are sub-millisecond, RPC and relay
# round trips are milliseconds to seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05,
    0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class MetricsServerError(RuntimeError):
    """The metrics HTTP server could not bind (``str()`` names host, port and the OS error)."""


class MetricsServer:
    """A running ``/metrics`` HTTP server for one registry; stop it with :meth:`stop` (or use ``with``)."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = registry
        self.host = host
        self.requested_port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind and start serving in a background thread; :class:`MetricsServerError` if the bind fails."""
        if self._server is not None:
            return self
        try:
            server, thread = start_http_server(self.requested_port, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise MetricsServerError(
                f"metrics: cannot serve on {self.host}:{self.requested_port}: {exc.strerror or exc}"
            ) from exc
        self._server, self._thread = server, thread
        return self

    @property
    def port(self) -> int:
        """The port actually bound (the free port chosen when 0 was requested)."""
        if self._server is None:
            raise RuntimeError("metrics server is not running")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """``http://host:port/metrics`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and join the thread (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class Metrics:
    """The metrics every mevsuite component reports, on one registry.

    Attributes are the prometheus-client objects themselves (``metrics.opportunities_total.labels(bot="arb",
    kind="cycle").inc()``); :meth:`stage` / :meth:`observe_latency` cover the latency histogram, and the
    ``on_*`` methods make a ``Metrics`` usable as the ``observer`` of a :class:`bots.runtime.engine.Engine`.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process_collectors: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process_collectors:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.stage_latency_seconds = Histogram(
            "mevsuite_stage_latency_seconds",
            "Time spent in one pipeline stage (decode, evaluate, simulate, sign, submit, db ...)",
            ["bot", "stage"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.events_total = Counter(
            "mevsuite_events_total", "Events received from collectors", ["bot", "source", "kind"], registry=r
        )
        self.queue_depth = Gauge(
            "mevsuite_queue_depth", "Items waiting in a bounded queue", ["bot", "queue"], registry=r
        )
        self.queue_lag_seconds = Gauge(
            "mevsuite_queue_lag_seconds",
            "Age of the oldest item waiting in a queue",
            ["bot", "queue"],
            registry=r,
        )
        self.collector_restarts_total = Counter(
            "mevsuite_collector_restarts_total", "Collectors restarted after they ended or failed",
            ["bot", "collector"], registry=r,
        )  # fmt: skip
        self.opportunities_total = Counter(
            "mevsuite_opportunities_total", "Opportunities found", ["bot", "kind"], registry=r
        )
        self.actions_total = Counter(
            "mevsuite_actions_total", "Actions (bundles, transactions, orders) by outcome",
            ["bot", "kind", "outcome"], registry=r,
        )  # fmt: skip
        self.blocks_total = Counter("mevsuite_blocks_total", "Blocks processed", ["chain_id"], registry=r)
        self.reorgs_total = Counter(
            "mevsuite_reorgs_total", "Chain reorganisations handled", ["chain_id"], registry=r
        )
        self.db_rows_written_total = Counter(
            "mevsuite_db_rows_written_total",
            "Rows written to the store (new rows only)",
            ["table"],
            registry=r,
        )
        self.bot_live = Gauge(
            "mevsuite_bot_live",
            "1 if the bot sends (live), 0 if it only simulates and records (dry-run); docs/keys-and-modes.md",
            ["bot"],
            registry=r,
        )

    @contextmanager
    def stage(self, bot: str, stage: str) -> Iterator[None]:
        """Time the ``with`` body into ``mevsuite_stage_latency_seconds{bot, stage}`` (also on exceptions)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_latency_seconds.labels(bot=bot, stage=stage).observe(time.perf_counter() - start)

    def observe_latency(self, bot: str, stage: str, seconds: float) -> None:
        """Record one stage duration measured elsewhere."""
        self.stage_latency_seconds.labels(bot=bot, stage=stage).observe(seconds)

    # -- bots.runtime.engine.EngineObserver: pass a Metrics as the engine's observer --------------------------------

    def on_event(self, bot: str, collector: str, event: object) -> None:
        """A collector produced ``event`` (counted by its type name)."""
        self.events_total.labels(bot=bot, source=collector, kind=type(event).__name__).inc()

    def on_action(self, bot: str, executor: str, action: object, outcome: str) -> None:
        """An action finished with ``outcome`` (executed / failed / unrouted)."""
        self.actions_total.labels(bot=bot, kind=type(action).__name__, outcome=outcome).inc()

    def on_stage_latency(self, bot: str, stage: str, seconds: float) -> None:
        """One stage took ``seconds``."""
        self.observe_latency(bot, stage, seconds)

    def on_collector_restart(self, bot: str, collector: str, error: BaseException | None) -> None:
        """A collector ended or failed and will be restarted."""
        self.collector_restarts_total.labels(bot=bot, collector=collector).inc()

    def on_queue_depth(self, bot: str, queue: str, depth: int, oldest_age: float) -> None:
        """Periodic sample of one queue: depth and age of its oldest item."""
        self.queue_depth.labels(bot=bot, queue=queue).set(depth)
        self.queue_lag_seconds.labels(bot=bot, queue=queue).set(oldest_age)

    def set_mode(self, bot: str, live: bool) -> None:
        """Report the bot's effective mode: ``mevsuite_bot_live{bot}`` 1 (live) or 0 (dry-run)."""
        self.bot_live.labels(bot=bot).set(1 if live else 0)

    def rows_written(self, table: str, count: int) -> None:
        """Count ``count`` new rows in ``table`` (the store calls this after each commit)."""
        if count > 0:
            self.db_rows_written_total.labels(table=table).inc(count)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (what ``/metrics`` returns)."""
        return generate_latest(self.registry)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
        """Start serving ``/metrics`` on ``host:port`` (0 = a free port) and return the running server."""
        return MetricsServer(self.registry, host, port).start()

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The current value of one sample (e.g. ``"mevsuite_blocks_total"``) — for tests and summaries."""
        return self.registry.get_sample_value(name, labels or {})


_process_metrics: Metrics | None = None
_process_lock = threading.Lock()


def process_metrics() -> Metrics:
    """The :class:`Metrics` of this process (created on first use, with process/platform/GC collectors)."""
    global _process_metrics
    with _process_lock:
        if _process_metrics is None:
            _process_metrics = Metrics()
        return _process_metrics


def _serve_demo(host: str, port: int, count: int, bot: str) -> int:
    metrics = Metrics()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with metrics.serve(host, port) as server:
        for i in range(count):
            with metrics.stage(bot, "evaluate"):
                metrics.opportunities_total.labels(bot=bot, kind="demo").inc()
            metrics.blocks_total.labels(chain_id="31337").inc()
            metrics.observe_latency(bot, "simulate", 0.002 * (i + 1))
        reported = metrics.value("mevsuite_opportunities_total", {"bot": bot, "kind": "demo"})
        line: dict[str, Any] = {"port": server.port, "url": server.url, "opportunities_total": reported}
        print(json.dumps(line), flush=True)
        while not stop.wait(0.2):
            pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bots.metrics --serve-demo``: serve demo metrics until SIGTERM (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bots.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--serve-demo", action="store_true", help="serve demo metrics until SIGTERM")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (printed)")
    parser.add_argument("--count", type=int, default=7, help="opportunities to count")
    parser.add_argument("--bot", default="demo")
    args = parser.parse_args(argv)
    if not args.serve_demo:
        parser.print_help()
        return 2
    try:
        return _serve_demo(args.host, args.port, args.count, args.bot)
    except MetricsServerError as exc:
        print(str(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
