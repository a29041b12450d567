"""The bus client of every mevsuite process: NATS JetStream through ``nats-py``, made hard to misuse.

::

    client = await BusClient.connect(url, name="hub-31337", registry=registry)   # BusUnreachableError: exit 6
    await client.ensure_streams(31337)                  # streams, snapshot object store, heartbeat bucket
    await client.publish(subjects.chain_subjects(31337).blocks, payload, msg_id="31337:blocks:1234")
    sub = await client.subscribe(subject, durable="dex-arb-31337")
    await sub.handle(on_block)                          # ack / term (MalformedMessage) / nak with backoff
    await client.close()                                # flushes the outbox (bounded), then drains

**Connection.** :meth:`BusClient.connect` gives up after ``connect_timeout`` with :class:`BusUnreachableError`
(one line, the URL redacted).  Once connected, the client reconnects forever after a drop; disconnects and
reconnects are counted (``mevsuite_bus_disconnects_total`` / ``mevsuite_bus_reconnects_total{client}``).

**Publishing: the outbox.** :meth:`BusClient.publish` appends to a bounded, ordered in-memory outbox and returns;
one background task sends the head with its ``Nats-Msg-Id`` header and waits for the JetStream ack before it
takes the next, retrying with backoff (capped at ``retry_max_delay``) through any outage.  So the stream gets the
messages in publish order, none is dropped while the process lives, and a re-send after a lost ack is dropped
by the stream's duplicate window (``mevsuite_bus_duplicates_total``).  When the outbox is full, ``publish``
waits (back-pressure) rather than dropping.  One message in flight at a time is the price of the order (a
loopback round trip, ~0.1-0.3 ms).  Messages still in the outbox when the process exits are lost: ``close``
flushes first (``close_timeout``) and logs how many it could not deliver.

**Consuming.** :meth:`BusClient.subscribe` makes a JetStream pull consumer with explicit acks: durable ones
(``durable="name"``) resume after the last acknowledged message when a process restarts; ``deliver_new=True``
delivers only messages published after the subscription (pending swaps: a restarted bot must not act on old
mempool).  ``ordered=True`` (the default) allows one unacknowledged message at a time, so even a redelivery comes
before anything newer, and a redelivery of an already acknowledged message (its ack lost in an outage) is skipped.
Every consumer has ``max_deliver``: nothing is redelivered forever.  :meth:`Subscription.handle` is the one
handling loop: a handler returning acks, raising :class:`MalformedMessage` (or a ``WireJsonError``) terminates
the message (``mevsuite_bus_terminated_total{subject,reason="malformed"}``: never redelivered), any other
exception naks it with backoff, and at the last allowed delivery terminates it (``reason="max_deliver"``).

**Snapshots and heartbeats.** :meth:`BusClient.put_object` / :meth:`BusClient.get_object` use the
``mevsuite-snapshots`` object store (chunked: the payload may exceed the 1 MB message limit);
:meth:`BusClient.heartbeat` writes a JSON value to the ``mevsuite-heartbeats`` key-value bucket whose entries expire
after the bucket's TTL, :meth:`BusClient.heartbeats` reads the live ones (``chains.wirejson``, bounded: a hostile
value is skipped and counted, never fatal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from prometheus_client import CollectorRegistry, Counter, Gauge

from bots.bus import subjects
from bots.bus.subjects import DEFAULT_LIMITS, BusLimits
from chains import wirejson
from chains.node.urls import redact_url, url_secret_parts
from chains.promreg import per_registry

__all__ = [
    "BusClient",
    "BusError",
    "BusMessage",
    "BusUnreachableError",
    "MalformedMessage",
    "StoredMessage",
    "Subscription",
]

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
MAX_HEARTBEAT_BYTES = 64 * 1024
_KEY_RE = re.compile(r"^[-/_=.a-zA-Z0-9]+$")
_CONSUMER_RE = re.compile(r"^[-_a-zA-Z0-9]+$")
_HEADER_ROOM = 512  # bytes kept free for headers under the server's max payload


class BusError(RuntimeError):
    """A bus operation failed (closed client, refused configuration, ...)."""


class BusUnreachableError(BusError):
    """No NATS server answered at the URL within the connect timeout (the CLI's exit code 6); one line, redacted."""


class MalformedMessage(ValueError):
    """Raised by a message handler for a message it can never process: the message is terminated, not retried."""


# --- metrics -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Metrics:
    connected: Gauge
    disconnects: Counter
    reconnects: Counter
    outbox_depth: Gauge
    published: Counter
    retries: Counter
    duplicates: Counter
    received: Counter
    redelivered_skipped: Counter
    naks: Counter
    terminated: Counter
    bad_heartbeats: Counter


def _build_metrics(registry: CollectorRegistry | None) -> _Metrics:
    reg: dict[str, Any] = {"registry": registry}
    return _Metrics(
        connected=Gauge("mevsuite_bus_connected", "1 while connected to NATS", ["client"], **reg),
        disconnects=Counter("mevsuite_bus_disconnects_total", "Connections to NATS lost", ["client"], **reg),
        reconnects=Counter(
            "mevsuite_bus_reconnects_total", "Reconnections to NATS after a loss", ["client"], **reg
        ),
        outbox_depth=Gauge(
            "mevsuite_bus_outbox_depth",
            "Messages published but not yet acked by JetStream",
            ["client"],
            **reg,
        ),
        published=Counter(
            "mevsuite_bus_published_total", "Messages acked by JetStream", ["client", "subject"], **reg
        ),
        retries=Counter(
            "mevsuite_bus_publish_retries_total",
            "Outbox send attempts that failed and were retried",
            ["client"],
            **reg,
        ),
        duplicates=Counter(
            "mevsuite_bus_duplicates_total",
            "Re-sent messages JetStream recognised by Nats-Msg-Id (not stored twice)",
            ["client"],
            **reg,
        ),
        received=Counter(
            "mevsuite_bus_received_total", "Messages delivered to a subscription", ["subject"], **reg
        ),
        redelivered_skipped=Counter(
            "mevsuite_bus_redelivered_skipped_total",
            "Redeliveries of messages this subscription had already acked (ack lost), skipped",
            ["subject"],
            **reg,
        ),
        naks=Counter("mevsuite_bus_naks_total", "Messages handed back for redelivery", ["subject"], **reg),
        terminated=Counter(
            "mevsuite_bus_terminated_total",
            "Messages terminated: malformed, or failing at their last allowed delivery",
            ["subject", "reason"],
            **reg,
        ),
        bad_heartbeats=Counter(
            "mevsuite_bus_bad_heartbeats_total", "Heartbeat values that were not a bounded JSON object", **reg
        ),
    )


def _metrics(registry: CollectorRegistry | None) -> _Metrics:
    return per_registry(registry, __name__, _build_metrics)


# --- messages ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message read directly from a stream (no consumer, nothing to acknowledge)."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    seq: int


class BusMessage:
    """One delivered message; settle it once with :meth:`ack`, :meth:`term` or :meth:`nak`."""

    __slots__ = ("_msg", "_settled", "_sub", "data", "headers", "num_delivered", "seq", "subject")

    def __init__(self, msg: Msg, sub: Subscription | None = None) -> None:
        self._msg = msg
        self._sub = sub
        self._settled = False
        meta = msg.metadata
        self.subject: str = msg.subject
        self.data: bytes = msg.data
        self.headers: Mapping[str, str] = dict(msg.headers or {})
        self.seq: int = meta.sequence.stream
        self.num_delivered: int = meta.num_delivered

    @property
    def msg_id(self) -> str | None:
        """The publisher's ``Nats-Msg-Id``."""
        return self.headers.get(MSG_ID_HEADER)

    @property
    def settled(self) -> bool:
        """True once acked, terminated or nak'd."""
        return self._settled

    async def ack(self) -> None:
        """Processed: never delivered to this consumer again."""
        if not self._settled:
            self._settled = True
            if self._sub is not None:
                self._sub._settle(self, done=True)
            await self._msg.ack()

    async def term(self) -> None:
        """Never deliver again (a message that can never be processed)."""
        if not self._settled:
            self._settled = True
            if self._sub is not None:
                self._sub._settle(self, done=True)
            await self._msg.term()

    async def nak(self, delay: float | None = None) -> None:
        """Deliver again, after ``delay`` seconds if given (up to the consumer's ``max_deliver``)."""
        if not self._settled:
            self._settled = True
            if self._sub is not None:
                self._sub._settle(self, done=False)
            await self._msg.nak(delay=delay)

    async def in_progress(self) -> None:
        """Still working on it: restart the ack timer."""
        if not self._settled:
            await self._msg.in_progress()

    def __repr__(self) -> str:
        return f"BusMessage({self.subject!r}, seq={self.seq}, delivered={self.num_delivered}, {len(self.data)} bytes)"


# --- subscriptions -----------------------------------------------------------------------------------------


Handler = Callable[[BusMessage], Awaitable[None]]


class Subscription:
    """A JetStream pull consumer: ``async for msg in sub`` (settle each) or ``await sub.handle(fn)``.

    Iteration ends after :meth:`close` (or the client's close).  Through a NATS outage it waits; after a
    reconnect it checks that its consumer still exists and recreates it if the server lost it (an ephemeral
    consumer resumes after the last message it saw; a durable one lives in the server's storage).
    """

    def __init__(
        self,
        client: BusClient,
        *,
        subject: str,
        stream: str,
        consumer: str,
        config: api.ConsumerConfig,
        durable: bool,
        ordered: bool,
        batch: int,
        fetch_timeout: float,
        nak_delay: float,
        nak_max_delay: float,
    ) -> None:
        self._client = client
        self.subject = subject
        self.stream = stream
        self.consumer = consumer
        self._config = config
        self.durable = durable
        self.ordered = ordered
        self.max_deliver = config.max_deliver or 0
        self._batch = batch
        self._fetch_timeout = fetch_timeout
        self._nak_delay = nak_delay
        self._nak_max_delay = nak_max_delay
        self._psub: JetStreamContext.PullSubscription | None = None
        self._buffer: deque[Msg] = deque()
        self._closed = False
        self._verify = False
        self._last_seen = 0  # highest stream sequence delivered (for recreating an ephemeral consumer)
        self._last_acked = 0  # highest stream sequence acked or terminated here (ordered: skip redeliveries)
        self._fetch_task: asyncio.Task[list[Msg]] | None = None
        self._outstanding: dict[int, BusMessage] = {}  # handed out, not settled yet (nak'd on close)
        self._metrics = client._metrics

    async def _bind(self) -> None:
        self._psub = await self._client._js.pull_subscribe_bind(durable=self.consumer, stream=self.stream)

    def _settle(self, msg: BusMessage, *, done: bool) -> None:
        self._outstanding.pop(msg.seq, None)
        if done:
            self._last_acked = max(self._last_acked, msg.seq)

    async def _ensure_consumer(self) -> None:
        js = self._client._js
        try:
            await js.consumer_info(self.stream, self.consumer)
            return
        except nats.js.errors.NotFoundError:
            pass
        config = self._config
        if not self.durable and self._last_seen and config.deliver_policy is not api.DeliverPolicy.NEW:
            config = config.evolve(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._last_seen + 1
            )
        log.warning(
            "bus: consumer %s on %s was gone after a reconnect: recreated", self.consumer, self.stream
        )
        await js.add_consumer(self.stream, config=config)

    def __aiter__(self) -> AsyncIterator[BusMessage]:
        return self

    async def __anext__(self) -> BusMessage:
        while True:
            if self._closed:
                while self._buffer:  # fetched as the subscription closed: hand back at once
                    await _quietly(self._buffer.popleft().nak())
                raise StopAsyncIteration
            while self._buffer:
                raw = self._buffer.popleft()
                msg = BusMessage(raw, self)
                self._last_seen = max(self._last_seen, msg.seq)
                if self.ordered and msg.seq <= self._last_acked:
                    # One unacked message at a time: an older sequence is a message acked here whose ack was
                    # lost (an outage); it was processed already.
                    self._metrics.redelivered_skipped.labels(self.subject).inc()
                    await _quietly(raw.ack())
                    continue
                self._metrics.received.labels(self.subject).inc()
                self._outstanding[msg.seq] = msg
                return msg
            await self._fill()

    async def _fill(self) -> None:
        client = self._client
        if not client._nc.is_connected:
            await client._wait_connected(self._fetch_timeout)
            return
        if self._verify:
            try:
                await self._ensure_consumer()
                self._verify = False
            except Exception as exc:  # the server may still be starting up: try again
                log.debug("bus: checking consumer %s failed: %s", self.consumer, exc)
                await asyncio.sleep(min(self._fetch_timeout, 0.25))
                return
        if self._psub is None:  # closed meanwhile
            return
        self._fetch_task = asyncio.ensure_future(self._psub.fetch(self._batch, timeout=self._fetch_timeout))
        try:
            self._buffer.extend(await self._fetch_task)
        except asyncio.CancelledError:
            if self._closed and not _current_task_cancelling():
                return
            raise
        except TimeoutError:  # includes nats.errors.TimeoutError: nothing new
            pass
        except nats.js.errors.APIError as exc:  # e.g. the consumer was deleted
            log.debug("bus: fetch on %s: %s", self.consumer, exc)
            self._verify = True
            await asyncio.sleep(min(self._fetch_timeout, 0.1))
        except Exception as exc:  # connection trouble: the reconnect logic takes over
            if self._closed:
                return
            log.debug("bus: fetch on %s failed: %r", self.consumer, exc)
            self._verify = True
            await asyncio.sleep(min(self._fetch_timeout, 0.1))
        finally:
            self._fetch_task = None

    async def handle(self, fn: Handler) -> None:
        """Call ``fn`` on every message until :meth:`close`; settle each message by the outcome.

        - returns: ``ack`` (unless ``fn`` settled the message itself);
        - raises :class:`MalformedMessage` or :class:`chains.wirejson.WireJsonError`: ``term`` — never redelivered,
          counted in ``mevsuite_bus_terminated_total{subject, reason="malformed"}``;
        - raises anything else: logged, ``nak`` with exponential backoff, and ``term`` (``reason="max_deliver"``)
          at the consumer's last allowed delivery.  Cancellation naks the message at once and propagates.
        """
        async for msg in self:
            try:
                await fn(msg)
            except asyncio.CancelledError:
                await _quietly(msg.nak())
                raise
            except (MalformedMessage, wirejson.WireJsonError) as exc:
                log.warning("bus: malformed message on %s (seq %d) terminated: %s", msg.subject, msg.seq, exc)
                await self._terminate(msg, "malformed")
            except Exception:
                if self.max_deliver > 0 and msg.num_delivered >= self.max_deliver:
                    log.exception(
                        "bus: handler failed on %s seq %d at its last delivery (%d): terminated",
                        msg.subject,
                        msg.seq,
                        msg.num_delivered,
                    )
                    await self._terminate(msg, "max_deliver")
                else:
                    log.exception(
                        "bus: handler failed on %s seq %d (delivery %d): will retry",
                        msg.subject,
                        msg.seq,
                        msg.num_delivered,
                    )
                    self._metrics.naks.labels(msg.subject).inc()
                    delay = min(self._nak_delay * 2 ** (msg.num_delivered - 1), self._nak_max_delay)
                    await _quietly(msg.nak(delay=delay))
            else:
                await _quietly(msg.ack())

    async def _terminate(self, msg: BusMessage, reason: str) -> None:
        self._metrics.terminated.labels(msg.subject, reason).inc()
        await _quietly(msg.term())

    async def info(self) -> api.ConsumerInfo:
        """The consumer's state on the server (delivered / ack floor, ``num_pending``, ``num_redelivered``)."""
        info: api.ConsumerInfo = await self._client._js.consumer_info(self.stream, self.consumer)
        return info

    async def lag(self) -> int:
        """Messages in the stream this consumer has not been delivered yet (its ``num_pending``)."""
        return int((await self.info()).num_pending or 0)

    async def close(self) -> None:
        """Stop the iteration (a durable consumer stays on the server; an ephemeral one expires).

        Messages fetched but not settled are nak'd, so the next consumer gets them at once rather than after
        ``ack_wait``.
        """
        if self._closed:
            return
        self._closed = True
        self._client._subs.discard(self)
        task = self._fetch_task
        if task is not None and not task.done():
            task.cancel()
        unsettled = list(self._outstanding.values())
        self._outstanding.clear()
        for msg in unsettled:
            await _quietly(msg.nak())
        while self._buffer:
            await _quietly(self._buffer.popleft().nak())
        psub, self._psub = self._psub, None
        if psub is not None:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


# --- the client --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Outgoing:
    subject: str
    data: bytes
    msg_id: str


class BusClient:
    """One connection to the bus; build it with :meth:`connect`."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        url: str,
        name: str,
        metrics: _Metrics,
        limits: BusLimits,
        max_outbox: int,
        ack_timeout: float,
        retry_max_delay: float,
    ) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(timeout=ack_timeout)
        self.url = url
        self.name = name
        self.limits = limits
        self._metrics = metrics
        self._max_outbox = max_outbox
        self._ack_timeout = ack_timeout
        self._retry_max_delay = retry_max_delay
        self._outbox: deque[_Outgoing] = deque()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._not_empty = asyncio.Event()
        self._idle = asyncio.Event()  # the outbox is empty
        self._idle.set()
        self._connected = asyncio.Event()
        self._connected.set()
        # resolved when the current connection drops: an in-flight publish is abandoned at once (and re-sent
        # after the reconnect) rather than waiting out its ack timeout
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = False
        self._subs: set[Subscription] = set()
        self._kv: KeyValue | None = None
        self._objects: ObjectStore | None = None
        self._drainer = asyncio.create_task(self._drain_outbox(), name=f"bus-outbox-{name}")
        metrics.connected.labels(name).set(1)
        metrics.outbox_depth.labels(name).set(0)

    # -- connecting -----------------------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str,
        registry: CollectorRegistry | None = None,
        connect_timeout: float = 5.0,
        limits: BusLimits = DEFAULT_LIMITS,
        max_outbox: int = 10_000,
        ack_timeout: float = 2.0,
        reconnect_wait: float = 0.25,
        retry_max_delay: float = 2.0,
    ) -> BusClient:
        """Connect, or raise :class:`BusUnreachableError` after ``connect_timeout`` seconds.

        ``name`` labels the connection on the server and in the metrics (one process, one name).  After the
        first connection the client reconnects forever (every ``reconnect_wait`` seconds while the server is
        down).  ``limits`` are used when this client creates streams and buckets.
        """
        if max_outbox < 1:
            raise ValueError("max_outbox must be at least 1")
        metrics = _metrics(registry)
        nc = NatsClient()
        holder: list[BusClient] = []
        errors: list[BaseException] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)
            del errors[:-1]
            if holder:
                log.debug("bus %s: %s", name, _redacted(str(exc), url))

        async def on_disconnected() -> None:
            if holder:
                holder[0]._on_disconnected()

        async def on_reconnected() -> None:
            if holder:
                holder[0]._on_reconnected()

        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=[url],
                    name=name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=reconnect_wait,  # type: ignore[arg-type]  # seconds, any float works
                    connect_timeout=max(1, math.ceil(connect_timeout)),
                    ping_interval=10,  # a silently dead server (no RST) is noticed within ~30 s
                    max_outstanding_pings=3,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                ),
                timeout=connect_timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            cause = errors[-1] if errors else exc
            detail = _redacted(" ".join(str(cause).split()) or type(cause).__name__, url)
            raise BusUnreachableError(
                f"NATS bus unreachable at {redact_url(url)} after {connect_timeout:g} s: {detail}"
            ) from None
        client = cls(
            nc,
            url=url,
            name=name,
            metrics=metrics,
            limits=limits,
            max_outbox=max_outbox,
            ack_timeout=ack_timeout,
            retry_max_delay=retry_max_delay,
        )
        holder.append(client)
        return client

    def _on_disconnected(self) -> None:
        if self._closing:
            return
        if self._connected.is_set():
            self._connected.clear()
            if not self._lost.done():
                self._lost.set_result(None)
            self._metrics.disconnects.labels(self.name).inc()
            self._metrics.connected.labels(self.name).set(0)
            log.warning("bus %s: disconnected from %s, reconnecting", self.name, redact_url(self.url))

    def _on_reconnected(self) -> None:
        if self._closing:
            return
        self._metrics.reconnects.labels(self.name).inc()
        self._metrics.connected.labels(self.name).set(1)
        if self._lost.done():
            self._lost = asyncio.get_running_loop().create_future()
        self._connected.set()
        for sub in self._subs:
            sub._verify = True
        log.warning("bus %s: reconnected to %s", self.name, redact_url(self.url))

    async def _wait_connected(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), at_most)

    @property
    def connected(self) -> bool:
        return self._nc.is_connected

    @property
    def max_payload(self) -> int:
        """The server's largest message (bytes); larger payloads go through :meth:`put_object`."""
        return int(self._nc.max_payload)

    # -- streams and buckets --------------------------------------------------------------------------------

    async def ensure_streams(self, chain_id: int) -> None:
        """Create or update the chain's streams, the signals stream and both buckets (idempotent)."""
        limits = self.limits
        await self._ensure_stream(subjects.chain_stream_config(chain_id, limits))
        await self._ensure_stream(subjects.pending_stream_config(chain_id, limits))
        await self._ensure_stream(subjects.signals_stream_config(limits))
        await self._snapshots()
        await self._heartbeats()

    async def _ensure_stream(self, config: api.StreamConfig) -> None:
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != 10058:  # "stream name already in use with a different configuration"
                raise BusError(f"stream {config.name} refused: {exc.description}") from exc
            await self._js.update_stream(config)
            log.info("bus: stream %s updated to the current configuration", config.name)

    async def _snapshots(self) -> ObjectStore:
        if self._objects is None:
            try:
                self._objects = await self._js.object_store(subjects.SNAPSHOT_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                cfg = subjects.snapshot_bucket_config(self.limits)
                self._objects = await self._js.create_object_store(subjects.SNAPSHOT_BUCKET, config=cfg)
        return self._objects

    async def _heartbeats(self) -> KeyValue:
        if self._kv is None:
            try:
                self._kv = await self._js.key_value(subjects.HEARTBEAT_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await self._js.create_key_value(subjects.heartbeat_bucket_config(self.limits))
        return self._kv

    # -- publishing -----------------------------------------------------------------------------------------

    async def publish(self, subject: str, data: bytes, *, msg_id: str) -> None:
        """Queue ``data`` for ``subject`` in the outbox (waits while the outbox is full); JetStream stores it
        once, in order, even through an outage.  ``msg_id`` must be unique per message (a re-send within the
        duplicate window with the same id is dropped by the stream)."""
        if self._closing:
            raise BusError(f"bus client {self.name} is closed")
        if subjects.stream_for_subject(subject) is None:
            raise ValueError(f"{subject!r} is not a mevsuite bus subject (see bots.bus.subjects)")
        if not msg_id or len(msg_id) > 256 or any(c.isspace() for c in msg_id):
            raise ValueError(f"msg_id must be 1-256 characters without whitespace, not {msg_id!r}")
        data = bytes(data)
        if len(data) + _HEADER_ROOM > self.max_payload:
            raise ValueError(
                f"{len(data)} bytes exceed the bus's max payload ({self.max_payload}): use put_object"
            )
        while len(self._outbox) >= self._max_outbox:
            self._not_full.clear()
            await self._not_full.wait()
            if self._closing:
                raise BusError(f"bus client {self.name} is closed")
        self._outbox.append(_Outgoing(subject, data, msg_id))
        self._metrics.outbox_depth.labels(self.name).set(len(self._outbox))
        self._idle.clear()
        self._not_empty.set()

    @property
    def outbox_depth(self) -> int:
        """Messages published but not acked yet."""
        return len(self._outbox)

    async def flush_outbox(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until every published message is acked; ``False`` if ``timeout`` ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _drain_outbox(self) -> None:
        while True:
            if not self._outbox:
                self._idle.set()
                self._not_empty.clear()
                await self._not_empty.wait()
                continue
            item = self._outbox[0]
            await self._send(item)
            self._outbox.popleft()
            self._metrics.outbox_depth.labels(self.name).set(len(self._outbox))
            self._not_full.set()

    async def _send(self, item: _Outgoing) -> None:
        attempt = 0
        headers = {MSG_ID_HEADER: item.msg_id}
        while True:
            if not self._nc.is_connected:
                await self._wait_connected(1.0)
                continue
            lost = self._lost
            sending = asyncio.ensure_future(
                self._js.publish(item.subject, item.data, timeout=self._ack_timeout, headers=dict(headers))
            )
            try:
                await asyncio.wait((sending, lost), return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                sending.cancel()
                raise
            if not sending.done():  # the connection dropped under it: re-send after the reconnect
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sending
                self._metrics.retries.labels(self.name).inc()
                continue
            try:
                ack = sending.result()
            except Exception as exc:
                attempt += 1
                self._metrics.retries.labels(self.name).inc()
                logger = log.warning if attempt == 1 or attempt % 20 == 0 else log.debug
                logger(
                    "bus %s: publish %s (id %s) not acked, attempt %d: %r; retrying",
                    self.name,
                    item.subject,
                    item.msg_id,
                    attempt,
                    exc,
                )
                await asyncio.sleep(min(0.02 * 2 ** min(attempt - 1, 10), self._retry_max_delay))
                continue
            if ack.duplicate:
                self._metrics.duplicates.labels(self.name).inc()
            self._metrics.published.labels(self.name, item.subject).inc()
            return

    # -- consuming ------------------------------------------------------------------------------------------

    async def subscribe(
        self,
        subject: str,
        *,
        durable: str | None,
        deliver_new: bool = False,
        ordered: bool = True,
        batch: int = 64,
        max_deliver: int = 5,
        ack_wait: float = 5.0,
        fetch_timeout: float = 1.0,
        nak_delay: float = 0.1,
        nak_max_delay: float = 5.0,
        inactive_threshold: float = 60.0,
    ) -> Subscription:
        """A pull consumer on ``subject`` (one of :mod:`bots.bus.subjects`).

        - ``durable="name"``: the consumer lives on the server and resumes after its last acked message when the
          process restarts; ``None``: ephemeral (removed ``inactive_threshold`` s after its last fetch).
        - ``deliver_new=True``: only messages published after this call.  With a durable name the consumer is
          recreated here, so a restart never replays old messages (pending swaps).
        - ``ordered=True``: one unacked message at a time (``max_ack_pending=1``, ``batch`` ignored): strict order
          even across redeliveries.  ``False``: up to ``batch`` per fetch, ``max_ack_pending = 4 * batch``.
        - ``max_deliver``: deliveries per message at most (then the server gives up on it); ``ack_wait``: seconds
          before an unacked delivered message is delivered again (a handler needing longer calls
          ``msg.in_progress()``).
        """
        stream = subjects.stream_for_subject(subject)
        if stream is None:
            raise ValueError(f"{subject!r} is not a mevsuite bus subject (see bots.bus.subjects)")
        if durable is not None and not _CONSUMER_RE.fullmatch(durable):
            raise ValueError(f"durable name must match {_CONSUMER_RE.pattern}, not {durable!r}")
        if max_deliver < 1 or batch < 1:
            raise ValueError("max_deliver and batch must be at least 1")
        js = self._js
        config = api.ConsumerConfig(
            durable_name=durable,
            name=durable or self._nc._nuid.next().decode(),
            deliver_policy=api.DeliverPolicy.NEW if deliver_new else api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            filter_subject=subject,
            max_ack_pending=1 if ordered else 4 * batch,
            inactive_threshold=None if durable else inactive_threshold,
        )
        assert config.name is not None
        if durable is not None:
            existing: api.ConsumerInfo | None = None
            with contextlib.suppress(nats.js.errors.NotFoundError):
                existing = await js.consumer_info(stream, durable)
            if existing is not None and deliver_new:
                await js.delete_consumer(stream, durable)
                existing = None
            if existing is not None and existing.config.filter_subject != subject:
                raise BusError(
                    f"durable consumer {durable} on {stream} filters {existing.config.filter_subject!r}, not {subject!r}"
                )
            if existing is None:
                await js.add_consumer(stream, config=config)
        else:
            await js.add_consumer(stream, config=config)
        sub = Subscription(
            self,
            subject=subject,
            stream=stream,
            consumer=config.name,
            config=config,
            durable=durable is not None,
            ordered=ordered,
            batch=1 if ordered else batch,
            fetch_timeout=fetch_timeout,
            nak_delay=nak_delay,
            nak_max_delay=nak_max_delay,
        )
        await sub._bind()
        self._subs.add(sub)
        return sub

    async def last_message(self, subject: str) -> StoredMessage | None:
        """The newest stored message on ``subject`` (e.g. the latest snapshot announcement), or ``None``."""
        stream = subjects.stream_for_subject(subject)
        if stream is None:
            raise ValueError(f"{subject!r} is not a mevsuite bus subject (see bots.bus.subjects)")
        try:
            raw = await self._js.get_last_msg(stream, subject)
        except nats.js.errors.NotFoundError:
            return None
        return StoredMessage(
            subject=raw.subject or subject,
            data=raw.data or b"",
            headers=dict(raw.headers or {}),
            seq=int(raw.seq or 0),
        )

    # -- snapshots (object store) ---------------------------------------------------------------------------

    async def put_object(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` in ``mevsuite-snapshots`` (chunked; replaces an older object)."""
        store = await self._snapshots()
        await store.put(name, bytes(data))

    async def get_object(self, name: str) -> bytes:
        """The object's bytes (digest-checked by the client); ``KeyError`` if there is no such object."""
        store = await self._snapshots()
        try:
            result = await store.get(name)
        except nats.js.errors.ObjectNotFoundError:
            raise KeyError(name) from None
        return bytes(result.data or b"")

    # -- heartbeats (key-value) -----------------------------------------------------------------------------

    async def heartbeat(self, process: str, payload: Mapping[str, Any]) -> bool:
        """Write ``payload`` (JSON) as ``process``'s heartbeat; it expires after the bucket's TTL.

        ``process`` may use letters, digits and ``-/_=.``.  Returns ``False`` (logged) if the bus did not take it
        — a heartbeat is best-effort, the next one retries.
        """
        if not _KEY_RE.fullmatch(process):
            raise ValueError(f"process name must match {_KEY_RE.pattern}, not {process!r}")
        value = json.dumps(dict(payload), separators=(",", ":"), sort_keys=True).encode()
        if len(value) > MAX_HEARTBEAT_BYTES:
            raise ValueError(f"heartbeat payload of {len(value)} bytes exceeds {MAX_HEARTBEAT_BYTES}")
        try:
            kv = await self._heartbeats()
            await kv.put(process, value)
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            log.debug("bus %s: heartbeat of %s not written: %r", self.name, process, exc)
            return False
        return True

    async def heartbeats(self) -> dict[str, dict[str, Any]]:
        """The live heartbeats: process name → its last payload (expired ones are gone)."""
        kv = await self._heartbeats()
        try:
            keys = await kv.keys()
        except nats.js.errors.NoKeysError:
            return {}
        live: dict[str, dict[str, Any]] = {}
        for key in keys:
            try:
                entry = await kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                continue  # expired between the listing and the read
            try:
                value = wirejson.loads(entry.value or b"", max_bytes=MAX_HEARTBEAT_BYTES, max_depth=16)
            except wirejson.WireJsonError:
                value = None
            if not isinstance(value, dict):
                self._metrics.bad_heartbeats.inc()
                continue
            live[key] = value
        return live

    # -- closing --------------------------------------------------------------------------------------------

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Flush the outbox (up to ``timeout`` s), stop the subscriptions and drain the connection."""
        if self._closing:
            return
        if self._outbox and not await self.flush_outbox(timeout):
            log.warning("bus %s: closing with %d message(s) not acked (lost)", self.name, len(self._outbox))
        self._closing = True
        self._not_full.set()  # release publishers waiting on a full outbox: they raise BusError
        self._drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drainer
        for sub in list(self._subs):
            await sub.close()
        try:
            if self._nc.is_connected:
                await asyncio.wait_for(self._nc.drain(), timeout)
        except Exception as exc:
            log.debug("bus %s: drain: %r", self.name, exc)
        finally:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._metrics.connected.labels(self.name).set(0)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"BusClient({self.name!r}, {redact_url(self.url)}, outbox={len(self._outbox)})"


# --- helpers -----------------------------------------------------------------------------------------------


def _redacted(text: str, url: str) -> str:
    for part in url_secret_parts(url):
        text = text.replace(part, "***")
    return text


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _quietly(aw: Awaitable[None]) -> None:
    """Settle a message; a lost connection only means the server redelivers it later."""
    try:
        await aw
    except (nats.errors.Error, OSError) as exc:
        log.debug("bus: settling a message failed: %r", exc)
