"""`mevsuite hub`: the hub (:class:`bots.hub.hub.Hub`) as a process of its own — docs/bus.md, "The hub process".

What :func:`run_hub` does, in order:

1. asks the node its chain id (``eth_chainId``; a book for another chain is a :class:`HubError`);
2. connects the :class:`~bots.bus.client.BusClient` (``BusUnreachableError``: the CLI's exit code 6) and creates the
   chain's streams and buckets (``ensure_streams``: idempotent);
3. serves ``/metrics`` (:meth:`bots.metrics.Metrics.serve`: its prometheus-client server answers every path with the
   metrics, so it cannot serve a second one) and ``/health`` (a tiny aiohttp server of this module), each on a free
   port unless configured, and says both URLs on stderr;
4. writes a heartbeat (``hub-<chain>``) every ``bus.heartbeat_interval_s``: the same JSON as ``/health``;
5. **resumes the per-chain sequence** (:func:`resume_point`): the newest message on the blocks subject (or the
   newest snapshot announcement, when it is newer) gives the last ``seq`` and the block whose state follows it.
   If that block is still canonical and at most ``max_catch_up`` blocks behind the head, the hub loads the state
   there and continues with ``first_seq = seq``: the watcher catches up block by block, so the stream continues
   without a gap or a duplicate (message ids are per ``seq``: a restarted hub that started over at 0 would have its
   first messages dropped by the duplicate window).  Otherwise (the block was reorged away while the hub was down,
   the node has pruned its state, the hub was down too long) it starts at the head with ``first_seq = seq + 1``:
   the skipped ``seq`` is a gap, and every bot re-snapshots from the hub's first snapshot;
6. runs the hub with the bus client as its sink until SIGINT/SIGTERM, or until it has published ``max_blocks``
   blocks; then stops the watcher, writes a last heartbeat (``state: "stopped"``), flushes the outbox (bounded) and
   closes everything.  It returns a summary (printed by the CLI as JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from aiohttp import web

from bots.app.config import Config
from bots.bus.client import BusClient, MalformedMessage, StoredMessage
from bots.bus.messages import BlockMessage, ReorgMessage, SnapshotAnnouncement, decode
from bots.bus.subjects import Topic, subject
from bots.hub.hub import Hub
from bots.metrics import Metrics, MetricsServer, MetricsServerError
from chains.addressbook import AddressBook
from chains.node.rpc import RpcClient
from chains.node.urls import redact_url
from chains.state.chain import StateAddresses

__all__ = [
    "HEALTH_SCHEMA",
    "HealthServer",
    "HealthSource",
    "HubError",
    "HubProcess",
    "ResumePoint",
    "health_document",
    "read_pool_source",
    "resume_point",
    "run_hub",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

HEALTH_SCHEMA = 1  # the version of the /health and heartbeat JSON (docs/bus.md, "The hub process")
FLUSH_TIMEOUT_S = 10.0  # how long a stopping hub waits for the outbox to drain
MAX_CATCH_UP_BLOCKS = 1024  # a restarted hub further behind than this starts at the head (a seq gap)
_MSG_ID = re.compile(r"mevsuite:(\d+):([a-z_]+):(\d+)")

State = Literal["starting", "running", "stopping", "stopped"]


class HubError(RuntimeError):
    """The hub could not start or stopped on a failure; ``str()`` is one line (the CLI's exit code 1)."""


# ---------------------------------------------------------------------------------------------- inputs
def read_pool_source(book: Path | None, pools: Path | None) -> AddressBook | StateAddresses:
    """What the hub follows: an address book (its pools and its Aave market), or the pools of a pool file
    (``bots.dex_arb.runner.read_pools_file``'s format).  A bad file is one :class:`HubError` line."""
    if (book is None) == (pools is None):
        raise HubError("give exactly one of --book and --pools")
    try:
        if book is not None:
            return AddressBook.read(book)
        from bots.dex_arb.runner import read_pools_file

        assert pools is not None
        entries = read_pools_file(pools)
    except ValueError as exc:  # AddressBookError and the pool file's errors are ValueErrors
        raise HubError(str(exc)) from None
    if not entries:
        raise HubError(f"pools file {pools}: no pools")
    return StateAddresses(
        v2_pairs={p.address: p.fee for p in entries if p.kind == "v2"},
        v3_pools=[p.address for p in entries if p.kind == "v3"],
    )


# ---------------------------------------------------------------------------------------------- resuming
@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where the stream of a chain ends: the last ``seq``, and the block (number, hash) whose state follows it
    (``None`` when the last message does not say: then the hub cannot continue at that state)."""

    seq: int
    block_number: int | None
    block_hash: str | None
    source: str  # "block", "reorg", "snapshot" or "msg_id" (a message this reader could not decode)


def _point_of(stored: StoredMessage) -> ResumePoint:
    try:
        message = decode(stored.data)
    except MalformedMessage as exc:
        # Another schema version, say: its Nats-Msg-Id still names the seq.
        match = _MSG_ID.fullmatch(stored.headers.get("Nats-Msg-Id", ""))
        if match is None:
            raise HubError(
                f"the last message on {stored.subject} is not a hub message ({exc}) and has no hub message id: "
                "cannot continue its sequence"
            ) from None
        return ResumePoint(int(match.group(3)), None, None, "msg_id")
    if isinstance(message, BlockMessage):
        return ResumePoint(message.seq, message.block.number, message.block.hash, "block")
    if isinstance(message, ReorgMessage):
        reorg = message.reorg
        if reorg.resynced:  # the state is not at the ancestor: the snapshot at this seq says where it is
            return ResumePoint(message.seq, None, None, "reorg")
        return ResumePoint(message.seq, reorg.common_ancestor, reorg.common_ancestor_hash, "reorg")
    return ResumePoint(message.seq, message.block_number, message.block_hash, "snapshot")


async def resume_point(client: BusClient, chain_id: int) -> ResumePoint | None:
    """The end of the chain's stream (``None``: nothing published yet).

    The last ``block``/``reorg`` message gives the ``seq``; the last snapshot announcement wins when its ``seq`` is at
    least as high (a resynced reorg, or a message the bus refused after which the hub stored a snapshot)."""
    last_block = await client.last_message(subject(chain_id, Topic.BLOCKS))
    last_snapshot = await client.last_message(subject(chain_id, Topic.SNAPSHOT))
    block_point = None if last_block is None else _point_of(last_block)
    snap_point = None
    if last_snapshot is not None:
        try:
            snap = decode(last_snapshot.data)
        except MalformedMessage:
            snap = None
        if isinstance(snap, SnapshotAnnouncement):
            snap_point = ResumePoint(snap.seq, snap.block_number, snap.block_hash, "snapshot")
    if block_point is None:
        return snap_point
    if snap_point is not None and snap_point.seq >= block_point.seq:
        return snap_point
    return block_point


# ---------------------------------------------------------------------------------------------- the process
def health_document(
    *,
    process: str,
    kind: str,
    state: str,
    ok: bool,
    chain_id: int,
    last_block: int | None,
    client: BusClient,
    bus_url: str,
    rpc_urls: Sequence[str],
    health_url: str | None,
    metrics_url: str | None,
    started_at: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``/health`` and heartbeat document every bus process writes (docs/bus.md, "The hub process"): the common
    fields, then the process kind's own (``extra``) before the bus and URL fields.  ``bus_url`` and ``rpc_urls``
    must be redacted already."""
    doc: dict[str, Any] = {
        "schema": HEALTH_SCHEMA,
        "process": process,
        "kind": kind,
        "state": state,
        "ok": ok,
        "pid": os.getpid(),
        "chain_id": chain_id,
        "last_block": last_block,
    }
    doc.update(extra or {})
    doc.update(
        {
            "bus_connected": client.connected,
            "outbox_depth": client.outbox_depth,
            "bus_url": bus_url,
            "rpc_urls": list(rpc_urls),
            "health_url": health_url,
            "metrics_url": metrics_url,
            "started_at": round(started_at, 3),
            "time": round(time.time(), 3),
        }
    )
    return doc


class HealthSource(Protocol):
    """What :class:`HealthServer` serves: a process's ``ok`` and its :func:`health_document`."""

    @property
    def ok(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...


class HubProcess:
    """The running hub process: its parts, and the status that ``/health`` and the heartbeat report."""

    def __init__(self, chain_id: int, client: BusClient, *, bus_url: str, rpc_urls: Sequence[str]) -> None:
        self.chain_id = chain_id
        self.client = client
        self.name = f"hub-{chain_id}"
        self.bus_url = redact_url(bus_url)
        self.rpc_urls = [redact_url(u) for u in rpc_urls]
        self.hub: Hub | None = None
        self.state: State = "starting"
        self.resumed = "fresh"
        self.first_seq = 0
        self.start_block: int | None = None
        self.health_url: str | None = None
        self.metrics_url: str | None = None
        self.started_at = time.time()

    @property
    def ok(self) -> bool:
        """Running and connected to the bus."""
        return self.state == "running" and self.client.connected

    def status(self) -> dict[str, Any]:
        """The ``/health`` document (also the heartbeat's payload); docs/bus.md, "The hub process"."""
        hub = self.hub
        snapshot = hub.last_snapshot if hub is not None else None
        return health_document(
            process=self.name,
            kind="hub",
            state=self.state,
            ok=self.ok,
            chain_id=self.chain_id,
            last_block=hub.published_block if hub is not None and hub.watcher is not None else None,
            client=self.client,
            bus_url=self.bus_url,
            rpc_urls=self.rpc_urls,
            health_url=self.health_url,
            metrics_url=self.metrics_url,
            started_at=self.started_at,
            extra={
                "last_seq": hub.seq if hub is not None else None,
                "first_seq": self.first_seq,
                "snapshot_seq": snapshot.seq if snapshot is not None else None,
                "resumed": self.resumed,
            },
        )


class HealthServer:
    """``GET /health`` of one process (a :class:`HealthSource`, e.g. :class:`HubProcess`; aiohttp, in the event
    loop): 200 when it is ``ok``, else 503."""

    def __init__(self, process: HealthSource, host: str = "127.0.0.1", port: int = 0) -> None:
        self.process = process
        self.host = host
        self.requested_port = port
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.requested_port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise MetricsServerError(  # the same failure as a busy /metrics port: the CLI's exit code 2
                f"health: cannot serve on {self.host}:{self.requested_port}: {exc.strerror or exc}"
            ) from None
        self._runner = runner
        port = runner.addresses[0][1] if runner.addresses else self.requested_port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}/health"
        return self.url

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response(self.process.status(), status=200 if self.process.ok else 503)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def _until(stop: asyncio.Event, coro: Awaitable[T]) -> T | None:
    """``await coro`` unless ``stop`` is set first (then ``coro`` is cancelled and ``None`` returned)."""
    task = asyncio.ensure_future(coro)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def run_until(
    main: asyncio.Task[Any], stop: asyncio.Event, done: Awaitable[Any] | None = None
) -> Literal["ended", "stop", "blocks"]:
    """Wait until the process's ``main`` task ends, ``stop`` is set, or ``done`` (its ``--blocks N``) completes;
    say which.  ``main`` is left running unless it ended; the other waits are cancelled."""
    stopping = asyncio.ensure_future(stop.wait())
    waits: list[asyncio.Future[Any]] = [main, stopping]
    if done is not None:
        waits.append(asyncio.ensure_future(done))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits[1:]:
            w.cancel()
    if main.done():
        return "ended"
    return "stop" if stop.is_set() else "blocks"


async def _canonical_hash(rpc: RpcClient, number: int) -> str | None:
    block = await rpc.request("eth_getBlockByNumber", [hex(number), False])
    return str(block["hash"]).lower() if isinstance(block, dict) and block.get("hash") else None


async def _start_hub(
    proc: HubProcess,
    make: Callable[[int], Hub],
    rpc: RpcClient,
    point: ResumePoint | None,
    say: Callable[[str], None],
    max_catch_up: int,
) -> Hub:
    """Build and start the hub where the stream ends (see the module docstring, step 5)."""
    if point is None:
        hub = make(0)
        await hub.start()
        proc.resumed, proc.first_seq = "fresh", 0
        return hub
    head = int(await rpc.request("eth_blockNumber", []), 16)
    number, expected = point.block_number, point.block_hash
    why = "the last message names no block state"
    if number is not None and expected is not None:
        if number > head:
            why = f"block {number} is above the node's head {head}"
        elif head - number > max_catch_up:
            why = f"block {number} is {head - number} blocks behind the head (more than {max_catch_up})"
        elif await _canonical_hash(rpc, number) != expected.lower():
            why = f"block {number} is no longer canonical (reorged while the hub was down)"
        else:
            hub = make(point.seq)
            try:
                await hub.start(at_block=number)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("hub: loading the state at block %d failed: %r", number, exc)
                why = f"the node could not give the state at block {number} ({type(exc).__name__})"
            else:
                proc.resumed, proc.first_seq = "continued", point.seq
                say(
                    f"resumed: seq {point.seq} at block {number} (from the last {point.source} message); "
                    f"catching up {head - number} block(s)"
                )
                return hub
    # Start over at the head, one seq further: the skipped seq is a gap, so every bot re-snapshots.
    hub = make(point.seq + 1)
    await hub.start()
    proc.resumed, proc.first_seq = "gap", point.seq + 1
    say(f"resumed with a gap: {why}; starting at the head with seq {point.seq + 1} (bots re-snapshot)")
    return hub


async def run_hub(
    cfg: Config,
    *,
    bus_url: str,
    rpc_urls: Sequence[str],
    pools: AddressBook | StateAddresses,
    max_blocks: int = 0,
    metrics_port: int | None = None,
    health_port: int = 0,
    poll_interval: float = 0.25,
    max_catch_up: int = MAX_CATCH_UP_BLOCKS,
    stop: asyncio.Event | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the hub process until SIGINT/SIGTERM, ``stop``, or ``max_blocks`` published blocks (0: no limit).

    Returns the summary (chain id, seqs, blocks, how it resumed, what the outbox could not deliver).  Raises
    :class:`HubError`, ``BusUnreachableError``, ``RpcClientError`` or ``MetricsServerError`` (a busy ``/metrics``
    or ``/health`` port), each one line."""
    say = progress or (lambda m: print(f"[hub] {m}", file=sys.stderr, flush=True))
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    stopped_by: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        if not stopped_by:
            stopped_by.append(sig.name)
        stop.set()

    installed: list[signal.Signals] = []
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    try:
        async with RpcClient(
            list(rpc_urls), timeout=cfg.chain.request_timeout_s, retries=cfg.chain.retries
        ) as rpc:
            chain_id = int(await rpc.request("eth_chainId", []), 16)
            expected = pools.chain_id if isinstance(pools, AddressBook) else cfg.chain.chain_id
            if expected is not None and expected != chain_id:
                raise HubError(
                    f"the node is chain {chain_id}, but the "
                    f"{'address book' if isinstance(pools, AddressBook) else 'configuration (chain.chain_id)'} "
                    f"is for chain {expected}"
                )
            metrics = Metrics()
            rpc.register_metrics(metrics.registry, "hub")
            client = await BusClient.connect(
                bus_url,
                name=f"hub-{chain_id}",
                registry=metrics.registry,
                connect_timeout=cfg.bus.connect_timeout_s,
            )
            try:
                return await _serve(
                    cfg,
                    HubProcess(chain_id, client, bus_url=bus_url, rpc_urls=rpc_urls),
                    rpc,
                    pools,
                    metrics,
                    stop=stop,
                    stopped_by=stopped_by,
                    say=say,
                    max_blocks=max_blocks,
                    metrics_port=metrics_port,
                    health_port=health_port,
                    poll_interval=poll_interval,
                    max_catch_up=max_catch_up,
                )
            finally:
                await client.close(timeout=1.0)  # (the outbox was flushed by _serve)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _serve(
    cfg: Config,
    proc: HubProcess,
    rpc: RpcClient,
    pools: AddressBook | StateAddresses,
    metrics: Metrics,
    *,
    stop: asyncio.Event,
    stopped_by: list[str],
    say: Callable[[str], None],
    max_blocks: int,
    metrics_port: int | None,
    health_port: int,
    poll_interval: float,
    max_catch_up: int,
) -> dict[str, Any]:
    client, chain_id = proc.client, proc.chain_id
    await client.ensure_streams(chain_id)
    health = HealthServer(proc, cfg.metrics.host, health_port)
    metrics_server: MetricsServer | None = None
    beat: asyncio.Task[None] | None = None
    run_task: asyncio.Task[None] | None = None
    hub: Hub | None = None
    try:
        proc.health_url = await health.start()
        if cfg.metrics.enabled or metrics_port is not None:
            port = metrics_port if metrics_port is not None else cfg.metrics.port
            metrics_server = metrics.serve(cfg.metrics.host, port)
            proc.metrics_url = metrics_server.url
        say(
            f"chain {chain_id}; bus {proc.bus_url}; health {proc.health_url}; "
            f"metrics {proc.metrics_url or 'off'}; heartbeat {proc.name} every {cfg.bus.heartbeat_interval_s:g} s"
        )

        async def heartbeats() -> None:
            while True:
                await client.heartbeat(proc.name, proc.status())
                await asyncio.sleep(cfg.bus.heartbeat_interval_s)

        beat = asyncio.create_task(heartbeats(), name="hub-heartbeat")

        def make(first_seq: int) -> Hub:
            return Hub(
                rpc,
                pools,
                client,
                chain_id=chain_id,
                snapshot_every=cfg.bus.snapshot_every_blocks,
                first_seq=first_seq,
                poll_interval=poll_interval,
                registry=metrics.registry,
            )

        point = await _until(stop, resume_point(client, chain_id))
        if not stop.is_set():
            hub = await _until(stop, _start_hub(proc, make, rpc, point, say, max_catch_up))
        if hub is not None:
            proc.hub = hub
            proc.start_block = hub.published_block
            proc.state = "running"
            await client.heartbeat(proc.name, proc.status())
            say(
                f"running: block {hub.published_block}, seq {hub.seq}"
                + (f"; stopping after {max_blocks} block(s)" if max_blocks else "")
            )
            run_task = asyncio.create_task(hub.run(), name="hub")
            done = hub.wait_published(hub.published_block + max_blocks, timeout=None) if max_blocks else None
            why = await run_until(run_task, stop, done)
            if why == "ended":
                failure = None if run_task.cancelled() else run_task.exception()
                raise HubError(
                    f"the hub's block watcher ended: {type(failure).__name__}: {failure}"
                ) from failure
            if not stopped_by:
                stopped_by.append(why)
    finally:
        proc.state = "stopping"
        if hub is not None:
            hub.stop()
        if run_task is not None:
            run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run_task
        if beat is not None:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        delivered = await client.flush_outbox(FLUSH_TIMEOUT_S)
        proc.state = "stopped"
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.heartbeat(proc.name, proc.status()), 2.0)
        await health.stop()
        if metrics_server is not None:
            metrics_server.stop()
    if not delivered:
        log.warning("hub: %d message(s) not acknowledged by the bus at exit (lost)", client.outbox_depth)
    summary: dict[str, Any] = {
        "chain_id": chain_id,
        "resumed": proc.resumed,
        "first_seq": proc.first_seq,
        "last_seq": hub.seq if hub is not None else None,
        "first_block": proc.start_block,
        "last_block": hub.published_block if hub is not None else None,
        "blocks_published": (
            hub.published_block - proc.start_block if hub is not None and proc.start_block is not None else 0
        ),
        "outbox_undelivered": client.outbox_depth,
        "stopped_by": stopped_by[0] if stopped_by else "stop",
    }
    say(f"stopped: {json.dumps(summary)}")
    return summary
