"""`mevsuite run recorder --bus URL`: the recording bot as a process of its own, fed by the hub (docs/bus.md, "Bot
processes").

What :func:`run_recorder` does, in order:

1. asks the node its chain id (``eth_chainId``; a book for another chain is a :class:`RecorderProcessError`);
2. connects the :class:`~bots.bus.client.BusClient` (``BusUnreachableError``: the CLI's exit code 6), creates the
   chain's streams if the hub has not yet (``ensure_streams``: idempotent), opens (and migrates) the store;
3. serves ``/metrics`` and ``/health`` (:class:`bots.app.hub.HealthServer`), says both URLs on stderr, and writes a
   heartbeat ``recorder-<chain>`` every ``bus.heartbeat_interval_s``: the same document as ``/health``, built by
   :func:`bots.app.hub.health_document` (the hub's schema, ``kind: "recorder"``);
4. runs the recorder's engine (:class:`bots.recorder.bot.RecorderStrategy` and ``StoreExecutor``) on
   :func:`bots.recorder.bot.bus_collector` — a durable consumer of the chain's blocks subject, starting on the hub's
   latest snapshot (whose head block it records first) — so it makes no block, log or receipt RPC call (the node
   answers ``eth_chainId`` and the arbitrage scan's ``eth_call``\\s only);
5. stops on SIGINT/SIGTERM, ``stop``, or once ``max_blocks`` blocks after the snapshot's head block are recorded;
   writes a last heartbeat (``state: "stopped"``) and returns a summary (printed by the CLI as JSON), which counts
   the RPC calls per method (``rpc_calls``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

from bots.app.config import Config
from bots.app.hub import HealthServer, _until, health_document, run_until
from bots.bus.client import BusClient
from bots.metrics import Metrics, MetricsServer
from bots.recorder.bot import RecorderStrategy, StoreExecutor, bus_collector
from bots.runtime.bus_collector import BusBlockCollector
from bots.runtime.engine import Engine
from bots.store import Store, mask_url, resolve_url
from chains.addressbook import AddressBook, PoolInfo, V2Venue
from chains.node.rpc import RpcClient
from chains.node.urls import redact_url

__all__ = ["RECORDER_MODE_LINE", "RecorderProcess", "RecorderProcessError", "run_recorder"]

log = logging.getLogger(__name__)

BOT = "recorder"
RECORDER_MODE_LINE = "[recorder] mode: record only (the recorder never sends a transaction)"

State = Literal["starting", "running", "stopping", "stopped"]


class RecorderProcessError(RuntimeError):
    """The recorder could not start or stopped on a failure; ``str()`` is one line (the CLI's exit code 1)."""


class _NoBook:
    """The part of an address book :class:`RecorderStrategy` reads, empty: without ``--book`` the recorder writes
    blocks and transactions, but no trades (it knows no pool's tokens) and no arbitrage checks."""

    pools: tuple[PoolInfo, ...] = ()
    v2: dict[str, V2Venue] = {}  # noqa: RUF012 (never written)


class RecorderProcess:
    """The running recorder process: its parts, and the status that ``/health`` and the heartbeat report."""

    def __init__(
        self, chain_id: int, client: BusClient, *, bus_url: str, rpc_urls: Sequence[str], durable: str
    ) -> None:
        self.chain_id = chain_id
        self.client = client
        self.name = f"{BOT}-{chain_id}"
        self.durable = durable
        self.bus_url = redact_url(bus_url)
        self.rpc_urls = [redact_url(u) for u in rpc_urls]
        self.state: State = "starting"
        self.collector: BusBlockCollector | None = None
        self.executor: StoreExecutor | None = None
        self.engine: Engine | None = None
        self.start_block: int | None = None
        self.consumer_lag: int | None = None
        self.health_url: str | None = None
        self.metrics_url: str | None = None
        self.started_at = time.time()

    @property
    def ok(self) -> bool:
        """Running and connected to the bus."""
        return self.state == "running" and self.client.connected

    @property
    def blocks_recorded(self) -> int:
        """Blocks recorded after the snapshot's head block (what ``--blocks`` counts)."""
        collector = self.collector
        if collector is None or self.start_block is None:
            return 0
        return max(0, collector.done_block - self.start_block)

    def status(self) -> dict[str, Any]:
        """The ``/health`` document (also the heartbeat's payload): :func:`bots.app.hub.health_document`."""
        collector, executor = self.collector, self.executor
        return health_document(
            process=self.name,
            kind=BOT,
            state=self.state,
            ok=self.ok,
            chain_id=self.chain_id,
            last_block=executor.last_block if executor is not None else None,
            client=self.client,
            bus_url=self.bus_url,
            rpc_urls=self.rpc_urls,
            health_url=self.health_url,
            metrics_url=self.metrics_url,
            started_at=self.started_at,
            extra={
                "last_seq": collector.seq if collector is not None and collector.seq >= 0 else None,
                "durable": self.durable,
                "consumer_lag": self.consumer_lag,
                "first_block": self.start_block,
                "blocks_recorded": self.blocks_recorded,
                "resnapshots": dict(collector.resnapshots) if collector is not None else {},
            },
        )

    async def refresh_lag(self) -> None:
        """``consumer_lag``: the blocks consumer's pending messages (``None`` if the server does not answer)."""
        collector = self.collector
        source = collector.source if collector is not None else None
        lag = getattr(source, "lag", None)
        if lag is None:
            return
        try:
            self.consumer_lag = int(await asyncio.wait_for(lag(), 2.0))
        except Exception:  # best-effort: the heartbeat must not fail on it
            self.consumer_lag = None


async def run_recorder(
    cfg: Config,
    *,
    bus_url: str,
    rpc_urls: Sequence[str],
    book: AddressBook | None = None,
    db_url: str | None = None,
    durable: str | None = None,
    max_blocks: int = 0,
    metrics_port: int | None = None,
    health_port: int = 0,
    snapshot_timeout: float | None = None,
    stop: asyncio.Event | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the recorder process until SIGINT/SIGTERM, ``stop``, or ``max_blocks`` recorded blocks (0: no limit).

    Returns the summary.  Raises :class:`RecorderProcessError`, ``BusUnreachableError``, ``RpcClientError``,
    ``DatabaseUnavailableError`` or ``MetricsServerError``, each one line."""
    say = progress or (lambda m: print(f"[recorder] {m}", file=sys.stderr, flush=True))
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    stopped_by: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        if not stopped_by:
            stopped_by.append(sig.name)
        stop.set()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    try:
        async with RpcClient(
            list(rpc_urls), timeout=cfg.chain.request_timeout_s, retries=cfg.chain.retries
        ) as rpc:
            chain_id = int(await rpc.request("eth_chainId", []), 16)
            if book is not None and book.chain_id != chain_id:
                raise RecorderProcessError(
                    f"the node is chain {chain_id}, but the address book is for chain {book.chain_id}"
                )
            metrics = Metrics()
            rpc.register_metrics(metrics.registry, BOT)
            client = await BusClient.connect(
                bus_url,
                name=f"{BOT}-{chain_id}",
                registry=metrics.registry,
                connect_timeout=cfg.bus.connect_timeout_s,
            )
            try:
                proc = RecorderProcess(
                    chain_id,
                    client,
                    bus_url=bus_url,
                    rpc_urls=rpc_urls,
                    durable=durable or f"{BOT}-{chain_id}",
                )
                summary = await _serve(
                    cfg,
                    proc,
                    rpc,
                    book,
                    metrics,
                    db_url=db_url,
                    stop=stop,
                    stopped_by=stopped_by,
                    say=say,
                    max_blocks=max_blocks,
                    metrics_port=metrics_port,
                    health_port=health_port,
                    snapshot_timeout=snapshot_timeout,
                )
            finally:
                await client.close(timeout=1.0)
            summary["rpc_calls"] = dict(sorted(rpc.calls.items()))
            say(f"stopped: {json.dumps(summary)}")
            return summary
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _serve(
    cfg: Config,
    proc: RecorderProcess,
    rpc: RpcClient,
    book: AddressBook | None,
    metrics: Metrics,
    *,
    db_url: str | None,
    stop: asyncio.Event,
    stopped_by: list[str],
    say: Callable[[str], None],
    max_blocks: int,
    metrics_port: int | None,
    health_port: int,
    snapshot_timeout: float | None,
) -> dict[str, Any]:
    client, chain_id = proc.client, proc.chain_id
    await client.ensure_streams(chain_id)
    url = resolve_url(db_url or cfg.db.sqlalchemy_url())
    store = await Store.open(url, upgrade=True, metrics=metrics)
    health = HealthServer(proc, cfg.metrics.host, health_port)
    metrics_server: MetricsServer | None = None
    beat: asyncio.Task[None] | None = None
    engine_task: asyncio.Task[dict[str, Any]] | None = None
    engine: Engine | None = None
    failure: str | None = None
    try:
        proc.health_url = await health.start()
        if cfg.metrics.enabled or metrics_port is not None:
            port = metrics_port if metrics_port is not None else cfg.metrics.port
            metrics_server = metrics.serve(cfg.metrics.host, port)
            proc.metrics_url = metrics_server.url
        metrics.set_mode(BOT, False)
        say(
            f"chain {chain_id}; bus {proc.bus_url}; consumer {proc.durable}; database {mask_url(url)}; "
            f"health {proc.health_url}; metrics {proc.metrics_url or 'off'}; "
            f"heartbeat {proc.name} every {cfg.bus.heartbeat_interval_s:g} s"
        )

        async def heartbeats() -> None:
            while True:
                await proc.refresh_lag()
                await client.heartbeat(proc.name, proc.status())
                await asyncio.sleep(cfg.bus.heartbeat_interval_s)

        beat = asyncio.create_task(heartbeats(), name="recorder-heartbeat")
        collector = await bus_collector(
            client, chain_id=chain_id, durable=proc.durable, registry=metrics.registry
        )
        proc.collector = collector
        say("waiting for the hub's snapshot")
        state = await _until(stop, collector.load(snapshot_timeout))
        if state is not None:
            proc.start_block = state.block_number
            strategy = RecorderStrategy(rpc, book if book is not None else cast(AddressBook, _NoBook()))
            proc.executor = StoreExecutor(store, chain_id=chain_id, bot=BOT)
            engine = proc.engine = Engine(
                [collector], [strategy], [proc.executor], name=BOT, observer=metrics
            )
            engine_task = asyncio.create_task(engine.run(), name="recorder-engine")
            proc.state = "running"
            await client.heartbeat(proc.name, proc.status())
            say(
                f"running: from the snapshot's block {proc.start_block} (seq {collector.seq})"
                + (f"; stopping after {max_blocks} block(s)" if max_blocks else "")
            )
            done = (
                collector.wait_done(proc.start_block + max_blocks, timeout=None)
                if max_blocks and proc.start_block is not None
                else None
            )
            why = await run_until(engine_task, stop, done)
            if why == "ended":
                exc = None if engine_task.cancelled() else engine_task.exception()
                failure = f"the recorder's engine ended: {type(exc).__name__}: {exc}" if exc else None
                failure = failure or "the recorder's engine ended"
            elif not stopped_by:
                stopped_by.append(why)
    finally:
        proc.state = "stopping"
        final: dict[str, Any] | None = None
        if engine is not None and engine_task is not None:
            engine.stop()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                final = await asyncio.wait_for(engine_task, 15.0)
        if beat is not None:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        proc.state = "stopped"
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.heartbeat(proc.name, proc.status()), 2.0)
        await health.stop()
        if metrics_server is not None:
            metrics_server.stop()
        await store.close()
    if failure is not None:
        raise RecorderProcessError(failure)
    collector_ = proc.collector
    return {
        "chain_id": chain_id,
        "durable": proc.durable,
        "database": mask_url(url),
        "first_block": proc.start_block,
        "last_block": proc.executor.last_block if proc.executor is not None else None,
        "blocks_recorded": proc.blocks_recorded,
        "last_seq": collector_.seq if collector_ is not None and collector_.seq >= 0 else None,
        "resnapshots": dict(collector_.resnapshots) if collector_ is not None else {},
        "engine_state": str(final.get("state")) if final is not None else None,
        "stopped_by": stopped_by[0] if stopped_by else "stop",
    }
