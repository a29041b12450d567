"""JSON-RPC access to EVM nodes: one client over several HTTP/WebSocket endpoints, with failover.

Every component that talks to a chain goes through :class:`RpcClient`:

* **Transports.** ``http(s)://`` endpoints share one aiohttp session (keep-alive connections);
  ``ws(s)://`` endpoints keep one persistent websocket each and multiplex concurrent requests by JSON-RPC id.
  Messages without an id (subscription notifications) go to a handler when one is registered, so the
  mempool/block watchers can ride the same connection later.
* **Batching.** :meth:`RpcClient.batch` sends one JSON-RPC batch array and returns the results in call order,
  with one typed error per failed item (one revert does not poison the other items).
* **Timeouts, retries, failover.** Each attempt has a timeout. A transport failure (refused, reset, dropped
  socket, timeout, HTTP 5xx) marks the endpoint *down* for a cool-off and the request moves at once to the
  next endpoint; when every endpoint has failed, the client backs off exponentially with jitter and tries
  again, up to ``retries`` times. Node errors that say "try later" (rate limits, header not found ...) are
  retried too; execution reverts never are. A down endpoint is re-probed in the background once its cool-off
  is over and takes traffic again (in the configured priority order) as soon as it answers.
* **Bounded replies.** An HTTP reply is read up to ``max_reply_bytes`` and a websocket message is capped at
  ``ws_max_size`` (default: the same); both are parsed with :func:`chains.wirejson.loads` to at most
  ``max_json_depth`` (512) levels -- enough for a ``callTracer`` frame tree 250 calls deep, far below what
  could overflow the C stack.  A refused or unparseable reply is a failed attempt like a dropped connection
  (the endpoint is marked down, the request fails over / is retried, and in the end raises
  :class:`AllEndpointsFailedError`); it is counted in ``errors`` and ``bad_replies``.  On a websocket an
  unparseable message cannot be matched to its request: the connection is closed and every request in flight
  on it fails over at once.
* **web3 without extra round trips.** :meth:`RpcClient.web3` returns an ``AsyncWeb3`` built with
  ``middleware=[]`` on a provider that routes every call (and web3's batch requests) through the client, so
  one web3 call is one JSON-RPC request -- web3's default middleware spends three HTTP requests on an
  ``eth_call`` (it fetches the chain id twice for validation).

Counters (``requests``, ``calls``, ``retries``, ``failovers``, ``errors``, ``timeouts``, ``reconnects``,
``bad_replies`` ...) live on each :class:`Endpoint` as plain attributes for the metrics layer to export, and
:attr:`RpcClient.calls` counts the calls made per JSON-RPC method (a batch item is a call; retries are not); this
module sits on the lowest floor and imports nothing of ours but :mod:`chains.wirejson` (stdlib + aiohttp).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import json
import logging
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self, cast
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector
from web3 import AsyncWeb3
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import CloseCode

from chains.node.urls import redact_url
from chains.wirejson import WireJsonError, read_capped
from chains.wirejson import loads as wire_loads

__all__ = [
    "AllEndpointsFailedError",
    "Endpoint",
    "RpcBatchError",
    "RpcClient",
    "RpcClientError",
    "RpcClientProvider",
    "RpcError",
    "RpcTimeoutError",
    "is_retryable_error",
    "is_revert",
]

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
Call = tuple[str, Any]
NotificationHandler = Callable[[JsonDict], None]

MAX_REPLY_BYTES = 256 * 2**20  # one HTTP reply / websocket message (eth_getLogs and traces can be large)
MAX_JSON_DEPTH = 512  # a callTracer frame tree takes 2 levels per call depth


# ---------------------------------------------------------------------------------------------------- errors
class RpcClientError(Exception):
    """Base class of everything :class:`RpcClient` raises."""


class RpcError(RpcClientError):
    """The node answered with a JSON-RPC error object (``code``, ``message``, ``data``)."""

    def __init__(self, code: int, message: str, data: Any = None, *, method: str | None = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        text = f"{method}: {message}" if method else message
        text += f" (code {code}"
        if data not in (None, "", "0x"):
            text += f", data {str(data)[:200]}"
        super().__init__(text + ")")

    @classmethod
    def from_error(cls, error: Any, method: str | None = None) -> RpcError:
        """Build from the ``error`` member of a response (tolerates malformed ones)."""
        if isinstance(error, Mapping):
            code = error.get("code")
            return cls(
                int(code) if isinstance(code, int) else -32603,
                str(error.get("message", "")),
                error.get("data"),
                method=method,
            )
        return cls(-32603, str(error), method=method)

    @property
    def is_revert(self) -> bool:
        return is_revert(self)

    def to_dict(self) -> JsonDict:
        out: JsonDict = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


class RpcBatchError(RpcClientError):
    """Some items of a batch failed. ``results`` holds every item in call order (a value or an :class:`RpcError`)."""

    def __init__(self, results: list[Any]) -> None:
        self.results = results
        self.errors: dict[int, RpcError] = {i: r for i, r in enumerate(results) if isinstance(r, RpcError)}
        first = next(iter(self.errors.items()), None)
        detail = f"; first: item {first[0]}: {first[1]}" if first else ""
        super().__init__(f"{len(self.errors)} of {len(results)} batch items failed{detail}")


class AllEndpointsFailedError(RpcClientError, ConnectionError):
    """No endpoint gave an answer. ``failures`` maps each endpoint tried (redacted URL) to its last error."""

    def __init__(self, failures: Mapping[str, str], attempts: int, note: str = "") -> None:
        self.failures = dict(failures)
        self.attempts = attempts
        what = "the RPC endpoint" if len(self.failures) == 1 else f"all {len(self.failures)} RPC endpoints"
        tail = f" ({note})" if note else ""
        # A single positional argument keeps OSError from reading it as (errno, strerror).
        super().__init__(
            f"{what} failed after {attempts} attempt{'s' if attempts != 1 else ''}{tail}: "
            + "; ".join(self.failures.values())
        )

    def __str__(self) -> str:
        return str(self.args[0])


class RpcTimeoutError(AllEndpointsFailedError, TimeoutError):
    """Every attempt timed out (the request may have reached a node)."""


# ------------------------------------------------------------------------------------------ error policy
# Solidity's Error(string) and Panic(uint256) selectors: revert data that nodes return with varying codes.
_REVERT_SELECTORS = ("0x08c379a0", "0x4e487b71")
# -32005: "limit exceeded" (EIP-1474); 429 is used as a code by some gateways.
_RETRYABLE_CODES = frozenset({-32005, 429})
_RETRYABLE_MESSAGE = re.compile(
    r"rate.?limit|too many requests|header not found|try again|temporar|timeout|timed out|overload|busy"
    r"|capacity|upstream|bad gateway|service unavailable|no response for this request",
    re.IGNORECASE,
)


def is_revert(err: RpcError) -> bool:
    """Whether the error is an EVM execution revert (a deterministic answer: never worth a retry)."""
    if err.code == 3 or "revert" in err.message.lower():
        return True
    return isinstance(err.data, str) and err.data.startswith(_REVERT_SELECTORS)


def is_retryable_error(err: RpcError) -> bool:
    """Default policy: retry node errors that mean "not now" (rate limits, lagging backends); never reverts."""
    if is_revert(err):
        return False
    return err.code in _RETRYABLE_CODES or bool(_RETRYABLE_MESSAGE.search(err.message))


# Methods whose repetition changes state (a second eth_sendTransaction spends the next nonce, a second
# evm_mine mines another block). After a failure that may have reached the node they are not retried.
# eth_sendRawTransaction is safe: the same signed tx has the same hash.
_UNREPEATABLE_METHODS = frozenset({"eth_sendTransaction", "personal_sendTransaction", "eth_subscribe"})
_UNREPEATABLE_PREFIXES = ("evm_", "anvil_", "hardhat_", "miner_")


def _repeatable(method: str) -> bool:
    return method not in _UNREPEATABLE_METHODS and not method.startswith(_UNREPEATABLE_PREFIXES)


# ------------------------------------------------------------------------------------------- helpers
def _json_default(obj: Any) -> Any:
    # web3 hands over HexBytes/bytes, AttributeDicts and (for some params) pydantic models.
    if isinstance(obj, bytes | bytearray | memoryview):
        return "0x" + bytes(obj).hex()
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(by_alias=True)
    raise TypeError(f"cannot JSON-encode {type(obj).__name__}")


def _encode(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), default=_json_default)


class _Failure(Exception):
    """One attempt on one endpoint got no usable answer (internal; surfaces as AllEndpointsFailedError)."""

    def __init__(self, description: str, *, delivered: bool, timeout: bool = False) -> None:
        super().__init__(description)
        self.description = description
        # False only when the request certainly never reached the node (refused, DNS, handshake): such a
        # failure is safe to retry even for methods that must not run twice.
        self.delivered = delivered
        self.timeout = timeout


def _connect_failure(name: str, exc: BaseException) -> _Failure:
    """Describe a failure to open a connection in plain words ("cannot reach URL: connection refused")."""
    os_error: BaseException | None = exc
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return _Failure(f"cannot reach {name}: cannot resolve host", delivered=False)
    if isinstance(os_error, socket.gaierror):
        return _Failure(f"cannot reach {name}: cannot resolve host", delivered=False)
    if isinstance(os_error, ConnectionRefusedError) or getattr(os_error, "errno", None) == errno.ECONNREFUSED:
        return _Failure(f"cannot reach {name}: connection refused", delivered=False)
    if isinstance(exc, InvalidStatus):
        return _Failure(
            f"cannot reach {name}: websocket handshake rejected with HTTP {exc.response.status_code}",
            delivered=False,
        )
    if isinstance(exc, InvalidURI):
        return _Failure(f"cannot reach {name}: invalid URL", delivered=False)
    if isinstance(os_error, OSError) and os_error.strerror:
        return _Failure(f"cannot reach {name}: {os_error.strerror.lower()}", delivered=False)
    return _Failure(f"cannot reach {name}: {type(exc).__name__}: {exc}", delivered=False)


def _timeout_failure(name: str, timeout: float) -> _Failure:
    return _Failure(f"no answer from {name} within {timeout:g} s", delivered=True, timeout=True)


def _is_jsonrpc_reply(obj: Any) -> bool:
    return isinstance(obj, list) or (isinstance(obj, dict) and ("result" in obj or "error" in obj))


# ----------------------------------------------------------------------------------------- transports
class _HttpTransport:
    kind: Literal["http"] = "http"

    def __init__(
        self,
        url: str,
        name: str,
        session_factory: Callable[[], aiohttp.ClientSession],
        headers: Mapping[str, str],
        *,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.url = url
        self.name = name
        self._session = session_factory
        self._headers = {"Content-Type": "application/json", **headers}
        self._max_bytes = max_reply_bytes
        self._max_depth = max_json_depth
        self.reconnects = 0
        self.bad_replies = 0

    def _refused(self, exc: WireJsonError) -> _Failure:
        self.bad_replies += 1
        return _Failure(f"reply from {self.name} refused: {exc}", delivered=True)

    async def send(self, body: str, ids: Sequence[int], batch: bool, per_try: float) -> Any:
        session = self._session()
        try:
            async with asyncio.timeout(per_try):
                async with session.post(self.url, data=body.encode(), headers=self._headers) as resp:
                    status = resp.status
                    raw = await read_capped(resp, self._max_bytes)
        except TimeoutError:
            raise _timeout_failure(self.name, per_try) from None
        except WireJsonError as exc:  # over max_reply_bytes
            raise self._refused(exc) from None
        except aiohttp.ClientConnectorError as exc:
            raise _connect_failure(self.name, exc) from None
        except aiohttp.ServerDisconnectedError:
            raise _Failure(f"{self.name} closed the connection", delivered=True) from None
        except aiohttp.ClientOSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                raise _Failure(f"{self.name} reset the connection", delivered=True) from None
            raise _Failure(f"{self.name}: {exc.strerror or exc}", delivered=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Failure(f"{self.name}: {type(exc).__name__}: {exc}", delivered=True) from None
        try:
            reply = wire_loads(raw, max_bytes=self._max_bytes, max_depth=self._max_depth)
        except WireJsonError as exc:
            if exc.reason != "malformed":
                raise self._refused(exc) from None
            reply = None
        if status != 200 and not _is_jsonrpc_reply(reply):
            snippet = raw[:200].decode(errors="replace").strip()
            raise _Failure(f"HTTP {status} from {self.name}: {snippet}", delivered=True)
        if not _is_jsonrpc_reply(reply):
            self.bad_replies += 1
            raise _Failure(f"invalid JSON-RPC answer from {self.name}: {raw[:200]!r}", delivered=True)
        return reply

    async def close(self) -> None:
        # The shared session belongs to the client.
        return None


class _BatchLevelError(Exception):
    """A websocket node answered a batch with one id-less error object."""

    def __init__(self, reply: JsonDict) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(eq=False)
class _WsConn:
    ws: ClientConnection
    pending: dict[int, asyncio.Future[JsonDict]] = field(default_factory=dict)
    batches: dict[int, list[int]] = field(default_factory=dict)  # first id -> ids, for id-less batch errors
    reader: asyncio.Task[None] | None = None


class _WsTransport:
    kind: Literal["ws"] = "ws"

    def __init__(
        self,
        url: str,
        name: str,
        *,
        headers: Mapping[str, str],
        max_size: int,
        trust_env: bool,
        notify: Callable[[JsonDict], None],
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.url = url
        self.name = name
        self._headers = dict(headers)
        self._max_size = max_size
        self._max_depth = max_json_depth
        self.bad_replies = 0
        self._trust_env = trust_env
        self._notify = notify
        self._conn: _WsConn | None = None
        self._lock = asyncio.Lock()
        self.connects = 0
        self.reconnects = 0
        self.drops = 0

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def _connection(self) -> _WsConn:
        conn = self._conn
        if conn is not None:
            return conn
        async with self._lock:
            if self._conn is None:
                try:
                    ws = await ws_connect(
                        self.url,
                        additional_headers=self._headers or None,
                        max_size=self._max_size,
                        # Latency over bandwidth: deflate costs CPU on every message, and loopback/LAN nodes
                        # gain nothing from it.
                        compression=None,
                        open_timeout=None,  # bounded by the caller's per-request timeout
                        close_timeout=2,
                        proxy=True if self._trust_env else None,
                    )
                except (OSError, InvalidHandshake, InvalidURI) as exc:
                    raise _connect_failure(self.name, exc) from None
                new = _WsConn(ws)
                new.reader = asyncio.create_task(self._read(new), name=f"rpc-ws-reader {self.name}")
                if self.connects:
                    self.reconnects += 1
                self.connects += 1
                self._conn = new
            return self._conn

    async def send(self, body: str, ids: Sequence[int], batch: bool, per_try: float) -> Any:
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in ids]
        conn: _WsConn | None = None
        try:
            async with asyncio.timeout(per_try):
                conn = await self._connection()
                for i, fut in zip(ids, futs, strict=True):
                    conn.pending[i] = fut
                if batch:
                    conn.batches[ids[0]] = list(ids)
                try:
                    await conn.ws.send(body)
                except ConnectionClosed as exc:
                    self._dropped(conn, exc)
                    raise _Failure(f"connection to {self.name} closed ({exc})", delivered=False) from None
                replies = [await fut for fut in futs]
        except TimeoutError:
            raise _timeout_failure(self.name, per_try) from None
        except _BatchLevelError as exc:
            return exc.reply
        finally:
            if conn is not None:
                for i in ids:
                    conn.pending.pop(i, None)
                if batch:
                    conn.batches.pop(ids[0], None)
        return replies if batch else replies[0]

    def _route(self, conn: _WsConn, msg: Any) -> None:
        items = msg if isinstance(msg, list) else [msg]
        for item in items:
            if not isinstance(item, dict):
                continue
            rid = item.get("id")
            if rid is None:
                if "error" in item and "method" not in item:
                    self._fail_oldest_batch(conn, item)
                else:
                    self._notify(item)
                continue
            fut = conn.pending.get(rid) if isinstance(rid, int) else None
            if fut is not None and not fut.done():
                fut.set_result(item)
            # else: the caller timed out and left; the late answer is dropped.

    def _fail_oldest_batch(self, conn: _WsConn, reply: JsonDict) -> None:
        # A node that rejects a whole batch (too large, batches disabled) answers with id null; it can only
        # belong to a batch in flight, and they are answered in order.
        if not conn.batches:
            log.warning("rpc %s: id-less error with no batch in flight: %s", self.name, reply)
            return
        first = min(conn.batches)
        for i in conn.batches.pop(first):
            fut = conn.pending.get(i)
            if fut is not None and not fut.done():
                fut.set_exception(_BatchLevelError(reply))

    async def _read(self, conn: _WsConn) -> None:
        reason = "closed"
        try:
            async for raw in conn.ws:
                try:
                    msg = wire_loads(raw, max_bytes=self._max_size, max_depth=self._max_depth)
                except WireJsonError as exc:
                    # It may be the answer to any request in flight: fail them all now (they fail over) rather
                    # than let them wait for their timeout; the next request opens a new connection.
                    self.bad_replies += 1
                    reason = f"sent a message that was refused: {exc}"
                    log.warning("rpc %s: %s; closing the connection", self.name, reason)
                    self._dropped(conn, reason)
                    code = CloseCode.MESSAGE_TOO_BIG if exc.reason == "too_large" else CloseCode.INVALID_DATA
                    with contextlib.suppress(Exception):
                        await conn.ws.close(code, exc.reason)
                    return
                self._route(conn, msg)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:  # over ws_max_size
                self.bad_replies += 1
            reason = str(exc)
        except Exception as exc:  # a reader that dies silently would hang every caller until timeout
            reason = f"{type(exc).__name__}: {exc}"
            log.exception("rpc %s: websocket reader failed", self.name)
        self._dropped(conn, reason)

    def _dropped(self, conn: _WsConn, reason: object) -> None:
        if self._conn is conn:
            self._conn = None
            self.drops += 1
        failure = _Failure(f"connection to {self.name} dropped ({reason})", delivered=True)
        for fut in conn.pending.values():
            if not fut.done():
                fut.set_exception(failure)
        conn.pending.clear()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        await conn.ws.close()
        if conn.reader is not None:
            conn.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.reader


# ------------------------------------------------------------------------------------------- endpoints
@dataclass(eq=False)
class Endpoint:
    """One node URL, its health and its counters (plain attributes, read by the metrics layer)."""

    url: str
    name: str  # redacted URL: what errors, logs and metric labels show
    transport: _HttpTransport | _WsTransport = field(repr=False)
    priority: int = 0
    requests: int = 0  # messages sent (a batch is one)
    calls: int = 0  # JSON-RPC calls carried (a batch of n is n)
    node_errors: int = 0  # error objects answered (reverts included)
    errors: int = 0  # attempts with no usable answer (transport failures, timeouts included)
    timeouts: int = 0
    retries: int = 0  # backed-off retries caused by this endpoint's failures or retryable errors
    failovers: int = 0  # requests moved from this endpoint to another after it failed
    probes: int = 0  # background health probes while down
    up: bool = True
    down_until: float = 0.0  # monotonic time when a down endpoint is due for a re-probe
    consecutive_failures: int = 0
    last_error: str | None = None

    @property
    def kind(self) -> Literal["http", "ws"]:
        return self.transport.kind

    @property
    def reconnects(self) -> int:
        return self.transport.reconnects

    @property
    def bad_replies(self) -> int:
        """Replies refused (over the size or depth limit) or not parseable as JSON-RPC (also in ``errors``)."""
        return self.transport.bad_replies

    def counters(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "calls": self.calls,
            "node_errors": self.node_errors,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "retries": self.retries,
            "failovers": self.failovers,
            "probes": self.probes,
            "reconnects": self.reconnects,
            "bad_replies": self.bad_replies,
            "up": int(self.up),
        }


# ---------------------------------------------------------------------------------------------- client
class _RpcCollector(PromCollector):
    def __init__(self, client: RpcClient, name: str) -> None:
        self.client, self.name = client, name

    def collect(self) -> Iterator[Metric]:
        stats = self.client.stats()
        keys = (
            "requests",
            "calls",
            "node_errors",
            "errors",
            "timeouts",
            "retries",
            "failovers",
            "probes",
            "reconnects",
            "bad_replies",
        )
        for key in keys:
            fam = CounterMetricFamily(
                f"mevsuite_rpc_{key}",
                f"RpcClient {key.replace('_', ' ')} per endpoint",
                labels=["client", "endpoint"],
            )
            for endpoint, c in stats.items():
                fam.add_metric([self.name, endpoint], c[key])
            yield fam
        up = GaugeMetricFamily(
            "mevsuite_rpc_endpoint_up", "1 if the endpoint is in rotation", labels=["client", "endpoint"]
        )
        for endpoint, c in stats.items():
            up.add_metric([self.name, endpoint], c["up"])
        yield up


class RpcClient:
    """Async JSON-RPC client over one or several endpoints (``http(s)://`` and/or ``ws(s)://``).

    Endpoints are used in the given priority order: the first healthy one takes the traffic, a failed one is
    skipped for a cool-off (``cooloff`` doubling per consecutive failure, up to ``cooloff_max``) and re-probed
    in the background. ``timeout`` bounds each attempt; ``retries`` is the number of backed-off rounds after
    every endpoint has failed (or after a retryable node error), so an unreachable setup fails after
    ``(retries + 1) × len(urls)`` quick attempts.

    The ``timeout=`` arguments of the call methods override ``timeout`` for that call. They bound each attempt,
    which a caller's ``asyncio.timeout`` around the whole call cannot express (hence ruff's ASYNC109 is
    silenced on them); wrap the call in ``asyncio.timeout`` for an overall deadline.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.05,
        backoff_max: float = 2.0,
        cooloff: float = 1.0,
        cooloff_max: float = 30.0,
        headers: Mapping[str, str] | None = None,
        ws_max_size: int | None = None,
        trust_env: bool = False,
        retry_on: Callable[[RpcError], bool] = is_retryable_error,
        on_notification: NotificationHandler | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        url_list = [urls] if isinstance(urls, str) else list(urls)
        if not url_list:
            raise ValueError("RpcClient needs at least one URL")
        if timeout <= 0 or retries < 0:
            raise ValueError("timeout must be > 0 and retries >= 0")
        ws_limit = max_reply_bytes if ws_max_size is None else ws_max_size
        if max_reply_bytes < 1 or ws_limit < 1 or max_json_depth < 1:
            raise ValueError("max_reply_bytes, ws_max_size and max_json_depth must be >= 1")
        self.timeout = timeout
        self.max_retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.cooloff = cooloff
        self.cooloff_max = cooloff_max
        self.retry_on = retry_on
        self._on_notification = on_notification
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._probes: dict[Endpoint, asyncio.Task[None]] = {}
        self._closed = False
        # Calls made per method (a batch item is one; a retry or a failover is not another; health probes are not
        # counted): e.g. a bot fed by the bus asserts it made no eth_getLogs.
        self.calls: Counter[str] = Counter()
        self.endpoints: list[Endpoint] = []
        for prio, url in enumerate(url_list):
            name = redact_url(url)
            scheme = urlsplit(url).scheme.lower()
            transport: _HttpTransport | _WsTransport
            if scheme in ("http", "https"):
                transport = _HttpTransport(
                    url,
                    name,
                    self._http_session,
                    headers or {},
                    max_reply_bytes=max_reply_bytes,
                    max_json_depth=max_json_depth,
                )
            elif scheme in ("ws", "wss"):
                transport = _WsTransport(
                    url,
                    name,
                    headers=headers or {},
                    max_size=ws_limit,
                    trust_env=trust_env,
                    notify=self._dispatch_notification,
                    max_json_depth=max_json_depth,
                )
            else:
                raise ValueError(
                    f"unsupported RPC URL scheme {scheme!r} in {name} (use http(s):// or ws(s)://)"
                )
            self.endpoints.append(Endpoint(url=url, name=name, transport=transport, priority=prio))

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close sockets, the HTTP session and background probes. Idempotent."""
        self._closed = True
        probes = list(self._probes.values())
        self._probes.clear()
        for task in probes:
            task.cancel()
        for task in probes:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for ep in self.endpoints:
            await ep.transport.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _http_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("RpcClient is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # Per-attempt timeouts are enforced by the client around the whole exchange.
                timeout=aiohttp.ClientTimeout(total=None),
                connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300),
                trust_env=self._trust_env,
            )
        return self._session

    # ------------------------------------------------------------------ notifications
    def set_notification_handler(self, handler: NotificationHandler | None) -> None:
        """Receive websocket messages that carry no request id (``eth_subscription`` notifications)."""
        self._on_notification = handler

    def _dispatch_notification(self, msg: JsonDict) -> None:
        handler = self._on_notification
        if handler is None:
            return
        try:
            handler(msg)
        except Exception:  # a faulty consumer must not kill the socket reader
            log.exception("rpc notification handler failed")

    # ------------------------------------------------------------------ public calls
    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        idempotent: bool | None = None,
    ) -> Any:
        """Call ``method`` and return its ``result``; raise :class:`RpcError` if the node answers an error."""
        reply = (
            await self._roundtrip([(method, params)], batch=False, timeout=timeout, idempotent=idempotent)
        )[0]
        if "error" in reply:
            raise RpcError.from_error(reply["error"], method)
        return reply.get("result")

    async def request_raw(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        idempotent: bool | None = None,
    ) -> JsonDict:
        """The whole response object (``result`` or ``error``), after retries; raises only for no answer."""
        return (
            await self._roundtrip([(method, params)], batch=False, timeout=timeout, idempotent=idempotent)
        )[0]

    async def batch(
        self,
        calls: Sequence[Call],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Send ``calls`` as one JSON-RPC batch; results come back in call order.

        A failed item becomes an :class:`RpcError`: with ``return_exceptions=True`` it takes the item's place
        in the list, otherwise :class:`RpcBatchError` is raised carrying every item (``.results``) and the
        failed ones by index (``.errors``).
        """
        if not calls:
            return []
        replies = await self.batch_raw(calls, timeout=timeout)
        results: list[Any] = [
            RpcError.from_error(r["error"], method) if "error" in r else r.get("result")
            for (method, _), r in zip(calls, replies, strict=True)
        ]
        if not return_exceptions and any(isinstance(r, RpcError) for r in results):
            raise RpcBatchError(results)
        return results

    async def batch_raw(self, calls: Sequence[Call], *, timeout: float | None = None) -> list[JsonDict]:  # noqa: ASYNC109
        """The response objects of a batch, in call order. Raises :class:`RpcError` if the node rejects the
        whole batch (one error object instead of an array)."""
        if not calls:
            return []
        return await self._roundtrip(list(calls), batch=True, timeout=timeout, idempotent=None)

    def web3(self) -> AsyncWeb3[RpcClientProvider]:
        """An ``AsyncWeb3`` whose every call (and batch) goes through this client, with no middleware.

        Without web3's default middleware there is no AttributeDict wrapping of results, no chain-id
        validation of transactions and no ENS-name resolution of addresses; pass checksummed addresses and
        fill ``chainId`` yourself (the signer does).
        """
        return AsyncWeb3(RpcClientProvider(self), middleware=[])

    # ------------------------------------------------------------------ counters
    @property
    def total_requests(self) -> int:
        return sum(ep.requests for ep in self.endpoints)

    @property
    def total_retries(self) -> int:
        return sum(ep.retries for ep in self.endpoints)

    @property
    def total_failovers(self) -> int:
        return sum(ep.failovers for ep in self.endpoints)

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per endpoint (keyed by redacted URL)."""
        return {ep.name: ep.counters() for ep in self.endpoints}

    def register_metrics(self, registry: CollectorRegistry, client: str = "rpc") -> None:
        """Expose the per-endpoint counters on ``registry`` (read at scrape time, nothing on the hot path):
        ``mevsuite_rpc_<counter>_total{client, endpoint}`` and ``mevsuite_rpc_endpoint_up``."""
        registry.register(_RpcCollector(self, client))

    @property
    def current_endpoint(self) -> Endpoint:
        """The endpoint the next request goes to."""
        return self._order(time.monotonic())[0]

    # ------------------------------------------------------------------ health
    def _order(self, now: float) -> list[Endpoint]:
        up = [ep for ep in self.endpoints if ep.up]
        down = [ep for ep in self.endpoints if not ep.up]
        due = [ep for ep in down if ep.down_until <= now and ep not in self._probes]
        if due and not self._closed:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # inspected from sync code: probes start with the next request
                due = []
            for ep in due:
                self._probes[ep] = asyncio.create_task(self._probe(ep), name=f"rpc-probe {ep.name}")
        # Down endpoints stay usable as a last resort: "all down" often means "all restarting".
        down.sort(key=lambda ep: ep.down_until)
        return up + down

    def _mark_down(self, ep: Endpoint, failure: _Failure) -> None:
        now = time.monotonic()
        ep.last_error = failure.description
        if not ep.up and now < ep.down_until:
            # Concurrent requests failing on the same outage count as one failure, not a cool-off escalation.
            return
        ep.consecutive_failures += 1
        cool = min(self.cooloff * 2 ** (ep.consecutive_failures - 1), self.cooloff_max)
        ep.down_until = now + cool * random.uniform(0.8, 1.2)
        if ep.up:
            log.warning("rpc endpoint %s down for %.1f s: %s", ep.name, cool, failure.description)
        ep.up = False

    def _mark_up(self, ep: Endpoint) -> None:
        if not ep.up:
            log.info("rpc endpoint %s is back", ep.name)
        ep.up = True
        ep.consecutive_failures = 0
        ep.down_until = 0.0

    async def _probe(self, ep: Endpoint) -> None:
        try:
            rid = next(self._ids)
            body = _encode({"jsonrpc": "2.0", "id": rid, "method": "eth_chainId", "params": []})
            ep.probes += 1
            try:
                reply = await ep.transport.send(body, [rid], False, min(self.timeout, 2.0))
            except _Failure as failure:
                self._mark_down(ep, failure)
                return
            if isinstance(reply, dict) and "result" in reply:
                self._mark_up(ep)
            else:
                self._mark_down(ep, _Failure(f"{ep.name} answered the probe with {reply}", delivered=True))
        finally:
            if self._probes.get(ep) is asyncio.current_task():
                del self._probes[ep]

    def _backoff_delay(self, round_no: int) -> float:
        base = min(self.backoff * 2.0**round_no, self.backoff_max)
        return base / 2 + random.uniform(0, base / 2)  # "equal jitter": spread clients, keep a floor

    # ------------------------------------------------------------------ the retry/failover loop
    async def _roundtrip(
        self,
        calls: list[Call],
        *,
        batch: bool,
        timeout: float | None,  # noqa: ASYNC109
        idempotent: bool | None,
    ) -> list[JsonDict]:
        if self._closed:
            raise RuntimeError("RpcClient is closed")
        per_try = self.timeout if timeout is None else timeout
        self.calls.update(m for m, _ in calls)
        if idempotent is None:
            idempotent = all(_repeatable(m) for m, _ in calls)
        replies: list[JsonDict | None] = [None] * len(calls)
        pending = list(range(len(calls)))
        failures: dict[Endpoint, _Failure] = {}
        avoid: set[Endpoint] = set()  # endpoints that already failed this request in the current round
        rounds_left = self.max_retries
        round_no = 0
        attempts = 0
        while True:
            order = self._order(time.monotonic())
            ep = next((e for e in order if e not in avoid), order[0])
            ids = [next(self._ids) for _ in pending]
            msgs = [
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "method": calls[i][0],
                    "params": [] if calls[i][1] is None else calls[i][1],
                }
                for rid, i in zip(ids, pending, strict=True)
            ]
            body = _encode(msgs if batch else msgs[0])
            attempts += 1
            ep.requests += 1
            ep.calls += len(ids)
            try:
                reply = await ep.transport.send(body, ids, batch, per_try)
            except _Failure as failure:
                ep.errors += 1
                ep.timeouts += failure.timeout
                failures[ep] = failure
                self._mark_down(ep, failure)
                if failure.delivered and not idempotent:
                    raise self._give_up(
                        failures,
                        attempts,
                        f"not retried: {calls[0][0]} must not run twice and may have reached the node",
                    ) from None
                avoid.add(ep)
                if any(e not in avoid for e in self.endpoints):
                    ep.failovers += 1
                    continue
                if rounds_left == 0:
                    raise self._give_up(failures, attempts) from None
                rounds_left -= 1
                ep.retries += 1
                avoid.clear()
                await asyncio.sleep(self._backoff_delay(round_no))
                round_no += 1
                continue

            self._mark_up(ep)
            if isinstance(reply, dict) and batch:
                # The node rejected the batch as a whole.
                err = RpcError.from_error(reply.get("error"), "batch")
                if "error" not in reply or not self.retry_on(err) or rounds_left == 0:
                    raise err
                retry = pending
            else:
                items = reply if isinstance(reply, list) else [reply]
                by_id = {item.get("id"): item for item in items if isinstance(item, dict)}
                retry = []
                for rid, i in zip(ids, pending, strict=True):
                    item = by_id.get(rid)
                    if item is None and not batch and len(items) == 1 and isinstance(items[0], dict):
                        item = items[0]  # some proxies rewrite ids of single requests
                    if item is None:
                        item = {
                            "jsonrpc": "2.0",
                            "id": rid,
                            "error": {"code": -32603, "message": "no response for this request in the batch"},
                        }
                    replies[i] = item
                    if "error" in item:
                        ep.node_errors += 1
                        if self.retry_on(RpcError.from_error(item["error"], calls[i][0])):
                            retry.append(i)
            if not retry or rounds_left == 0:
                return cast(list[JsonDict], replies)
            # Retryable node errors ("rate limited", "header not found"): back off, prefer another endpoint.
            rounds_left -= 1
            ep.retries += 1
            pending = retry
            avoid = {ep}
            await asyncio.sleep(self._backoff_delay(round_no))
            round_no += 1

    @staticmethod
    def _give_up(
        failures: Mapping[Endpoint, _Failure], attempts: int, note: str = ""
    ) -> AllEndpointsFailedError:
        named = {ep.name: f.description for ep, f in sorted(failures.items(), key=lambda kv: kv[0].priority)}
        cls = RpcTimeoutError if all(f.timeout for f in failures.values()) else AllEndpointsFailedError
        return cls(named, attempts, note)


# --------------------------------------------------------------------------------------- web3 provider
class RpcClientProvider(AsyncJSONBaseProvider):
    """A web3 provider that hands every request to an :class:`RpcClient` (failover, retries, batching).

    Node errors are returned as response objects, so web3 raises its usual exceptions
    (``ContractLogicError`` for reverts ...); a failure to reach any node raises the client's
    :class:`AllEndpointsFailedError` (an ``OSError``, which web3's ``is_connected`` understands).
    """

    def __init__(self, client: RpcClient) -> None:
        super().__init__()
        self.client = client

    def __str__(self) -> str:
        return f"RpcClientProvider({', '.join(ep.name for ep in self.client.endpoints)})"

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        return cast(RPCResponse, await self.client.request_raw(method, params))

    async def make_batch_request(
        self, requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        try:
            replies = await self.client.batch_raw([(str(m), p) for m, p in requests])
        except RpcError as exc:
            return cast(RPCResponse, {"jsonrpc": "2.0", "id": None, "error": exc.to_dict()})
        return cast(list[RPCResponse], replies)

    async def disconnect(self) -> None:
        # The client owns the connections; closing one web3 view must not close them for everyone else.
        return None
