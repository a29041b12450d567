"""A websocket ``eth_subscribe`` client that survives dropped sockets: reconnect, re-subscribe, tell the user.

:class:`WsSubscription` owns one websocket to one node and one subscription on it (``newHeads``,
``newPendingTransactions``, ``logs`` ...). It is generic: the mempool watcher and the block watcher both use it.

    async with WsSubscription(url, "newHeads", on_reconnect=reread_missed_blocks, registry=reg) as sub:
        async for head in sub:          # each notification's ``result``, in arrival order
            ...

* **Reconnects.** A dropped socket, a refused connection, a failed handshake or a node that stops answering
  pings is an expected event: the subscription reconnects with exponential backoff ("equal jitter", capped at
  ``backoff_max``; the delay resets after every successful subscribe), subscribes again, and then awaits
  ``on_reconnect()`` so the user can re-read what it may have missed while the socket was down (the mempool
  watcher re-reads ``txpool_content``, a block watcher the blocks after its last one). The call comes *after*
  the new subscription is live, so nothing falls into a gap between the re-read and the stream; the user
  must tolerate overlap (duplicates), not gaps.
* **Errors.** A JSON-RPC error answer to ``eth_subscribe`` (unknown subscription kind, bad params) is not a
  transport problem and will not heal by retrying: iteration raises :class:`SubscriptionRejectedError`.
  Everything else is retried until :meth:`close`.
* **Back-pressure.** Notifications wait in a bounded queue (``max_queue``). ``overflow="block"`` stops reading
  the socket while it is full (lossless; the node buffers or drops us), ``"drop_oldest"`` discards the oldest
  queued notification and counts it (firehoses where only recent items matter).
* **Hostile messages.** Messages are parsed with :func:`chains.wirejson.loads` to at most ``max_json_depth``
  levels: a message that is refused or not JSON is counted (``reason="bad_message"``) and skipped, and the
  subscription lives on.  Messages are capped at ``max_message_bytes``: past it the websocket library closes
  the socket (1009), which is counted as ``bad_message`` too, and the subscription reconnects.  No message
  can crash the process with deeply nested JSON.
* **Metrics** (prometheus-client, on ``registry`` when one is given; labels ``subscription`` = the kind and
  ``reason``): ``mevsuite_ws_connects_total``, ``mevsuite_ws_reconnects_total``, ``mevsuite_ws_errors_total``,
  ``mevsuite_ws_notifications_total``, ``mevsuite_ws_dropped_total``, ``mevsuite_ws_connected`` (gauge). The same
  counts are plain attributes (:attr:`WsSubscription.reconnects` ...) for code without a registry.

Transport error descriptions follow :mod:`chains.node.rpc` ("cannot reach URL: connection refused"), and URLs in
logs and errors are redacted with :func:`chains.node.urls.redact_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

from prometheus_client import CollectorRegistry, Counter, Gauge
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import CloseCode

from chains.node.rpc import _connect_failure
from chains.node.urls import redact_url
from chains.promreg import per_registry
from chains.wirejson import DEFAULT_MAX_DEPTH, WireJsonError
from chains.wirejson import loads as wire_loads

__all__ = [
    "Notification",
    "SubscriptionClosedError",
    "SubscriptionRejectedError",
    "WsSubscription",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 2**20  # one websocket message (a full pending tx or a block header is a few kB)

Overflow = Literal["block", "drop_oldest"]
ReconnectCallback = Callable[[], Awaitable[None]]


class SubscriptionRejectedError(RuntimeError):
    """The node answered ``eth_subscribe`` with a JSON-RPC error (``code``, ``message``); retrying will not help."""

    def __init__(self, kind: str, error: Any) -> None:
        self.code = error.get("code") if isinstance(error, dict) else None
        self.message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
        self.kind = kind
        super().__init__(f"eth_subscribe {kind}: rejected by the node: {self.message} (code {self.code})")


class SubscriptionClosedError(RuntimeError):
    """Raised by :meth:`WsSubscription.start` when the subscription is closed before it first subscribed."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification's ``result`` and when it came off the socket (``time.monotonic()``)."""

    result: Any
    received_at: float


class _Fatal(Exception):
    pass


@dataclass(slots=True)
class _Metrics:
    connects: Counter
    reconnects: Counter
    errors: Counter
    notifications: Counter
    dropped: Counter
    connected: Gauge


def _metrics(registry: CollectorRegistry | None) -> _Metrics:
    return per_registry(registry, __name__, _build_metrics)


def _build_metrics(registry: CollectorRegistry | None) -> _Metrics:
    label = ["subscription"]
    m = _Metrics(
        connects=Counter(
            "mevsuite_ws_connects_total",
            "Websocket subscriptions established (first and re-)",
            label,
            registry=registry,
        ),
        reconnects=Counter(
            "mevsuite_ws_reconnects_total",
            "Websocket re-subscriptions after a drop",
            label,
            registry=registry,
        ),
        errors=Counter(
            "mevsuite_ws_errors_total",
            "Websocket subscription failures by reason",
            ["subscription", "reason"],
            registry=registry,
        ),
        notifications=Counter(
            "mevsuite_ws_notifications_total", "Subscription notifications received", label, registry=registry
        ),
        dropped=Counter(
            "mevsuite_ws_dropped_total",
            "Notifications dropped from a full queue (drop_oldest)",
            label,
            registry=registry,
        ),
        connected=Gauge(
            "mevsuite_ws_connected", "1 while the subscription is live", label, registry=registry
        ),
    )
    return m


class WsSubscription:
    """One ``eth_subscribe`` stream over its own websocket, reconnecting and re-subscribing until closed.

    ``kind`` and ``params`` are the ``eth_subscribe`` parameters (``"newPendingTransactions", (True,)`` asks for
    full transactions). Use it as an async context manager (or call :meth:`start` / :meth:`close`) and iterate it
    for each notification's ``result``; :meth:`stamped` also yields the arrival time.
    """

    def __init__(
        self,
        url: str,
        kind: str,
        params: Sequence[Any] = (),
        *,
        on_reconnect: ReconnectCallback | None = None,
        backoff: float = 0.05,
        backoff_max: float = 5.0,
        open_timeout: float = 5.0,
        ping_interval: float | None = 20.0,
        max_queue: int = 10_000,
        overflow: Overflow = "block",
        registry: CollectorRegistry | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_json_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        if backoff <= 0 or backoff_max < backoff:
            raise ValueError("backoff must be > 0 and backoff_max >= backoff")
        if max_message_bytes < 1 or max_json_depth < 1:
            raise ValueError("max_message_bytes and max_json_depth must be >= 1")
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        if overflow not in ("block", "drop_oldest"):
            raise ValueError(f"overflow must be 'block' or 'drop_oldest', got {overflow!r}")
        self.url = url
        self.name = redact_url(url)
        self.kind = kind
        self.params = tuple(params)
        self.on_reconnect = on_reconnect
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.overflow: Overflow = overflow
        self.max_message_bytes = max_message_bytes
        self.max_json_depth = max_json_depth
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(max_queue)
        self._m = _metrics(registry)
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._closed = False
        self._fatal: BaseException | None = None
        self._first = asyncio.Event()  # set on the first successful subscribe, a fatal error or close
        self._wake = asyncio.Event()  # wakes readers blocked on an empty queue at close / fatal error
        self.subscription_id: str | None = None
        # plain counters (also in the metrics)
        self.connects = 0
        self.reconnects = 0
        self.errors = 0
        self.notifications = 0
        self.dropped = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True while a subscription is live on an open socket."""
        return self._ws is not None and self.subscription_id is not None

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        """Start the connection task and wait until the first subscription is live.

        Connection failures are retried with backoff (bound the wait with ``asyncio.timeout`` if needed); a
        rejected ``eth_subscribe`` raises :class:`SubscriptionRejectedError`.
        """
        if self._closed:
            raise SubscriptionClosedError(f"subscription {self.kind} on {self.name} is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ws-subscription {self.kind} {self.name}")
        await self._first.wait()
        if self._fatal is not None:
            raise self._fatal
        if self._closed and self.subscription_id is None:
            raise SubscriptionClosedError(
                f"subscription {self.kind} on {self.name} closed before subscribing"
            )

    async def close(self) -> None:
        """Unsubscribe (best effort), close the socket and end iteration. Idempotent."""
        if self._closed:
            return
        self._closed = True
        ws, sub_id = self._ws, self.subscription_id
        if ws is not None and sub_id is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await ws.send(
                        json.dumps(
                            {"jsonrpc": "2.0", "id": 0, "method": "eth_unsubscribe", "params": [sub_id]}
                        )
                    )
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None
        self.subscription_id = None
        self._m.connected.labels(self.kind).set(0)
        self._first.set()
        self._wake.set()

    async def drop_connection(self) -> None:
        """Close the current socket as if the network had dropped it (the subscription then reconnects).

        For tests and operational tooling ("force a reconnect"); a no-op while disconnected.
        """
        ws = self._ws
        if ws is not None:
            await ws.close()

    # ------------------------------------------------------------------ iteration
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._results()

    async def _results(self) -> AsyncIterator[Any]:
        async for note in self.stamped():
            yield note.result

    async def stamped(self) -> AsyncIterator[Notification]:
        """Notifications with their arrival time; ends after :meth:`close`, raises on a rejected subscribe."""
        while True:
            note = await self.next_notification()
            if note is None:
                return
            yield note

    async def next_notification(self) -> Notification | None:
        """The next notification, or None once closed (queued ones are still delivered first)."""
        while True:
            if not self._queue.empty():
                return self._queue.get_nowait()
            if self._fatal is not None:
                raise self._fatal
            if self._closed:
                return None
            getter = asyncio.ensure_future(self._queue.get())
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                done, _ = await asyncio.wait({getter, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waker.cancel()
                if not getter.done():
                    getter.cancel()
            if getter in done and not getter.cancelled():
                return getter.result()

    # ------------------------------------------------------------------ the connection loop
    def _delay(self, failures: int) -> float:
        base = min(self.backoff * 2.0 ** max(failures - 1, 0), self.backoff_max)
        return base / 2 + random.uniform(0, base / 2)

    def _error(self, reason: str, description: str) -> None:
        self.errors += 1
        self.last_error = description
        self._m.errors.labels(self.kind, reason).inc()

    async def _run(self) -> None:
        failures = 0
        ever = False
        try:
            while not self._closed:
                try:
                    await self._session(resubscribe=ever)
                    ever = ever or self.subscription_id is not None
                    failures = 0 if self.subscription_id is not None else failures + 1
                    reason, description = "dropped", f"connection to {self.name} closed"
                except _Fatal:
                    return
                except _SessionError as exc:
                    ever = ever or exc.subscribed
                    failures = 0 if exc.subscribed else failures + 1
                    reason, description = exc.reason, exc.description
                except Exception as exc:  # anything unforeseen: log it, and keep the stream alive
                    log.exception("ws subscription %s on %s failed", self.kind, self.name)
                    ever = ever or self.subscription_id is not None
                    failures += 1
                    reason, description = "internal", f"{type(exc).__name__}: {exc}"
                finally:
                    self._ws = None
                    self.subscription_id = None
                    self._m.connected.labels(self.kind).set(0)
                if self._closed:
                    return
                self._error(reason, description)
                delay = self._delay(max(failures, 1))
                log.warning(
                    "ws subscription %s on %s: %s; reconnecting in %.2f s",
                    self.kind,
                    self.name,
                    description,
                    delay,
                )
                await asyncio.sleep(delay)
        finally:
            self._first.set()
            self._wake.set()

    async def _session(self, *, resubscribe: bool) -> None:
        """One connection: connect, subscribe, call on_reconnect, pump notifications until the socket ends."""
        try:
            ws = await asyncio.wait_for(
                ws_connect(
                    self.url,
                    compression=None,
                    open_timeout=None,
                    close_timeout=1,
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_interval,
                    max_size=self.max_message_bytes,
                ),
                self.open_timeout,
            )
        except TimeoutError:
            raise _SessionError(
                "timeout",
                f"cannot reach {self.name}: no handshake within {self.open_timeout:g} s",
                subscribed=False,
            ) from None
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            reason = "handshake" if isinstance(exc, InvalidHandshake) else "connect"
            raise _SessionError(
                reason, _connect_failure(self.name, exc).description, subscribed=False
            ) from None
        self._ws = ws
        subscribed = False
        try:
            sub_id = await self._subscribe(ws)
            subscribed = True
            self.subscription_id = sub_id
            self.connects += 1
            self._m.connects.labels(self.kind).inc()
            self._m.connected.labels(self.kind).set(1)
            if resubscribe:
                self.reconnects += 1
                self._m.reconnects.labels(self.kind).inc()
                log.info("ws subscription %s on %s: re-subscribed", self.kind, self.name)
            self._first.set()
            if resubscribe and self.on_reconnect is not None:
                try:
                    await self.on_reconnect()
                except Exception as exc:  # the user's re-read failing must not end the stream
                    self._error("on_reconnect", f"on_reconnect failed: {type(exc).__name__}: {exc}")
                    log.exception("ws subscription %s: on_reconnect failed", self.kind)
            async for raw in ws:
                note = self._parse(raw, sub_id)
                if note is None:
                    continue
                if self.overflow == "block":
                    await self._queue.put(note)  # a full queue stops the reading: back-pressure
                    continue
                if self._queue.full():
                    self._queue.get_nowait()
                    self.dropped += 1
                    self._m.dropped.labels(self.kind).inc()
                self._queue.put_nowait(note)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:  # over max_message_bytes
                raise _SessionError(
                    "bad_message",
                    f"{self.name} sent a message over {self.max_message_bytes} bytes: connection closed",
                    subscribed=subscribed,
                ) from None
            raise _SessionError(
                "dropped", f"connection to {self.name} dropped ({exc})", subscribed=subscribed
            ) from None
        except OSError as exc:
            raise _SessionError(
                "dropped", f"connection to {self.name} failed: {exc}", subscribed=subscribed
            ) from None
        finally:
            with contextlib.suppress(Exception):
                await ws.close()

    async def _subscribe(self, ws: ClientConnection) -> str:
        await ws.send(
            json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": [self.kind, *self.params]}
            )
        )
        try:
            async with asyncio.timeout(self.open_timeout):
                while True:
                    raw = await ws.recv()
                    try:
                        msg = self._loads(raw)
                    except WireJsonError as exc:
                        self._error("bad_message", f"refused message from {self.name}: {exc}")
                        continue
                    if not isinstance(msg, dict) or msg.get("id") != 1:
                        continue
                    if "error" in msg:
                        self._fatal = SubscriptionRejectedError(self.kind, msg["error"])
                        self._error("rejected", str(self._fatal))
                        raise _Fatal
                    result = msg.get("result")
                    if not isinstance(result, str) or not result:
                        self._fatal = SubscriptionRejectedError(
                            self.kind, {"message": f"bad subscription id {result!r}"}
                        )
                        self._error("rejected", str(self._fatal))
                        raise _Fatal
                    return result
        except TimeoutError:
            raise _SessionError(
                "timeout",
                f"no answer to eth_subscribe from {self.name} within {self.open_timeout:g} s",
                subscribed=False,
            ) from None

    def _loads(self, raw: str | bytes) -> Any:
        return wire_loads(raw, max_bytes=self.max_message_bytes, max_depth=self.max_json_depth)

    def _parse(self, raw: str | bytes, sub_id: str) -> Notification | None:
        now = time.monotonic()
        try:
            msg = self._loads(raw)
        except WireJsonError as exc:
            self._error("bad_message", f"refused message from {self.name}: {exc}")
            log.warning("ws subscription %s on %s: message skipped: %s", self.kind, self.name, exc)
            return None
        if not isinstance(msg, dict) or msg.get("method") != "eth_subscription":
            return None  # e.g. the answer to eth_unsubscribe
        params = msg.get("params")
        if not isinstance(params, dict) or params.get("subscription") != sub_id or "result" not in params:
            self._error("bad_message", f"malformed notification from {self.name}")
            return None
        self.notifications += 1
        self._m.notifications.labels(self.kind).inc()
        return Notification(params["result"], now)


class _SessionError(Exception):
    def __init__(self, reason: str, description: str, *, subscribed: bool) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.subscribed = subscribed
