"""The devnet's local Flashbots-compatible relay, with MEV-Share, in front of :class:`BlockBuilder`.

An aiohttp server on loopback (port 0 = a free port)::

    relay = LocalRelay(builder)                # builder: chains.devnet.builder.BlockBuilder
    url = await relay.start()                  # "http://127.0.0.1:<port>/"  (JSON-RPC, POST)
    relay.sse_url                              # "http://127.0.0.1:<port>/events" (MEV-Share hint stream, GET)
    ...
    await relay.stop()

JSON-RPC methods (every request must carry ``X-Flashbots-Signature``; see docs/relay.md for the exact formats):

* ``eth_sendBundle`` -> ``{"bundleHash"}``: validated, handed to :meth:`BlockBuilder.submit_bundle` (top of block,
  ranked by bundle gas price, re-simulated, conflicts dropped) -- never to the public mempool.  The accept path
  does no simulation and no node I/O.
* ``eth_callBundle``: :meth:`BlockBuilder.simulate_bundle` -- the bundle mined alone in a throw-away block on top
  of the head under the builder's lock, then reverted; per-tx results, ``coinbaseDiff``, ``bundleGasPrice``,
  ``gasFees``, ``ethSentToCoinbase``, ``totalGasUsed``, ``stateBlockNumber``, ``bundleHash``.
* ``eth_cancelBundle`` (by ``replacementUuid`` and signer), ``flashbots_getBundleStatsV2`` (from the builder's own
  timestamps).
* MEV-Share: ``eth_sendPrivateTransaction`` / ``eth_sendPrivateRawTransaction`` (and a one-tx ``mev_sendBundle``
  with ``privacy``) take a user's tx as private order flow: it never enters the public mempool, a hint is
  streamed to ``/events`` (server-sent events, ``data: <json>``, ``:ping`` when idle), and, unless a backrun
  takes it, the builder includes it on its own (a pre-build hook hands it in as a one-tx bundle, for up to
  ``maxBlockNumber`` / 25 blocks).  ``mev_sendBundle`` with ``[{"hash": <hint hash or tx hash>}, {"tx": ...}]``
  is a backrun: the builder lands [user tx, backrun] in that order and pays the user
  ``validity.refund[bodyIdx].percent`` of the backrun's value (its coinbase payment minus the user tx's own
  priority fees) by a transfer from the builder's coinbase at the end of the same block.
* ``eth_cancelPrivateTransaction``.

A missing signature is answered as relay.flashbots.net does: HTTP 403 ``{"error":"missing
X-Flashbots-Signature header"}``; a bad one HTTP 403 ``{"error":"error in signature check <address>"}``.  Bad
params get JSON-RPC errors (-32700 parse, -32600 invalid request, -32601 unknown method, -32602 invalid params,
-32005 a pending-items limit) and are counted in metrics; an unexpected failure is answered ``-32603 internal
error`` (details only in the log); the relay keeps serving.  Every received bundle is kept in
:meth:`LocalRelay.received` (method, bundle hash, signer, target block, txs, time, accepted/error) for audits.

Limits (constructor parameters, docs/relay.md "Limits"; docs/wire-limits.md): request bodies are capped
(``max_body_bytes``; HTTP 413 + -32600 past it) and parsed with :func:`chains.wirejson.loads` (nesting depth
``max_json_depth``: hostile JSON cannot crash the process); ``maxBlockNumber`` of private txs and the target
blocks of bundles at head + 25; pending bundles + private txs per signer and in total; hint stream subscribers
(a subscriber whose queue fills is disconnected); hint size and hint history bytes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from prometheus_client import CollectorRegistry, Counter, Gauge

from chains.devnet.builder import (
    BlockBuilder,
    Bundle,
    BundleOutcome,
    BundleStatus,
    Refund,
    SimulationFailed,
)
from chains.node.anvil import RpcCallError
from chains.promreg import per_registry
from chains.send.flashbots import (
    MAX_BUNDLE_BYTES,
    MAX_BUNDLE_TXS,
    bundle_hash,
    recover_signature_header,
    validate_mev_bundle,
)
from chains.wirejson import DEFAULT_MAX_DEPTH, WireJsonError
from chains.wirejson import loads as wire_loads

__all__ = [
    "DEFAULT_HINTS",
    "DEFAULT_REFUND_PERCENT",
    "DEVNET_BUILDER_COINBASE",
    "MAX_BLOCKS_AHEAD",
    "MAX_BODY_BYTES",
    "LocalRelay",
    "PrivateTx",
    "ReceivedBundle",
    "RelayRpcError",
    "hint_hash",
]

log = logging.getLogger(__name__)

DEFAULT_REFUND_PERCENT = 90  # the docs: "90% of the backrun value is sent to the user by default"
DEFAULT_HINTS = frozenset({"hash", "contract_address", "function_selector", "logs"})
PRIVATE_TX_BLOCKS = 25  # eth_sendPrivateTransaction: "Flashbots will attempt ... for the next 25 blocks"
MAX_BLOCK_RANGE = 30  # mev_sendBundle inclusion.block..maxBlock
MAX_BLOCKS_AHEAD = (
    25  # bundle target blocks (eth_sendBundle blockNumber, mev_sendBundle inclusion) <= head + 25
)
MAX_BODY_BYTES = 2 * MAX_BUNDLE_BYTES + 65_536  # a full bundle as hex, plus the envelope
MAX_PENDING_PER_SIGNER = 1_000  # pending bundles (one per target block) + pending private txs of one signer
MAX_PENDING_TOTAL = 10_000
MAX_SSE_SUBSCRIBERS = 100
MAX_HINT_BYTES = 64 * 1024  # one hint event as JSON; bigger ones lose logs / callData / accessList first
MAX_HISTORY_HINTS = 10_000
MAX_HISTORY_BYTES = 8 * 2**20
DEVNET_BUILDER_COINBASE = "0x00000000000000000000000000000000b1d3b1d3"
REFUND_FLOAT_WEI = 100 * 10**18
BUILDER_PUBKEY = "0x" + "b1d3" * 24  # the one builder's (fake BLS) identity in stats v2
SIGNATURE_HEADER = "X-Flashbots-Signature"
_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_QTY_RE = re.compile(r"^0x[0-9a-fA-F]+$")
_HINTS = frozenset({"calldata", "contract_address", "logs", "function_selector", "hash", "tx_hash", "full"})


class RelayRpcError(Exception):
    """A JSON-RPC error answer (the request was understood but refused).  ``reason``: the label counted in
    ``mevsuite_relay_errors_total`` (default: ``invalid_params`` for -32602, else ``refused``)."""

    def __init__(self, code: int, message: str, data: Any = None, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.reason = reason or ("invalid_params" if code == -32602 else "refused")


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _invalid(message: str) -> RelayRpcError:
    return RelayRpcError(-32602, message)


def hint_hash(tx_hash: str) -> str:
    """MEV-Share's event ``hash``: keccak256 of the 32 bytes of the tx hash (the "double hash")."""
    return "0x" + keccak(bytes.fromhex(tx_hash[2:])).hex()


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class ReceivedBundle:
    """One received bundle-like request, accepted or not (the relay's audit log)."""

    method: str
    bundle_hash: str | None
    signer: str | None
    target_block: int | None
    txs: tuple[str, ...]  # raw txs as 0x-hex (a referenced private tx as its raw bytes too)
    received_at: float  # time.time()
    accepted: bool
    error: str | None = None
    replacement_uuid: str | None = None
    max_block: int | None = None


@dataclass(slots=True)
class PrivateTx:
    """A user's transaction received as private order flow."""

    raw: bytes
    hash: str
    hint_hash: str
    sender: str
    max_block: int
    hints: frozenset[str]
    refund_recipient: str
    signer: str
    received_at: float
    status: str = "pending"  # pending | included | expired | cancelled
    block_number: int | None = None
    backruns: set[str] = field(default_factory=set)  # bundle hashes of backruns carrying it
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class _Subscriber:
    """One hint-stream connection: its queue, and the transport to abort when it falls behind."""

    queue: asyncio.Queue[str]
    transport: asyncio.BaseTransport | None
    kicked: bool = False


@dataclass(slots=True)
class _Metrics:
    requests: Counter
    errors: Counter
    bundles: Counter
    hints: Counter
    hints_dropped: Counter
    hints_trimmed: Counter
    subscribers: Gauge
    subscribers_dropped: Counter


def _metrics(registry: CollectorRegistry | None) -> _Metrics:
    return per_registry(registry, __name__, _build_metrics)


def _build_metrics(registry: CollectorRegistry | None) -> _Metrics:
    m = _Metrics(
        requests=Counter(
            "mevsuite_relay_requests_total",
            "JSON-RPC requests by method and result",
            ["method", "result"],
            registry=registry,
        ),
        errors=Counter(
            "mevsuite_relay_errors_total", "Refused requests by reason", ["reason"], registry=registry
        ),
        bundles=Counter(
            "mevsuite_relay_bundles_total",
            "Bundles handed to the builder by kind",
            ["kind"],
            registry=registry,
        ),
        hints=Counter("mevsuite_relay_hints_total", "MEV-Share hints streamed", registry=registry),
        hints_dropped=Counter(
            "mevsuite_relay_hints_dropped_total", "Hints dropped for a slow SSE subscriber", registry=registry
        ),
        hints_trimmed=Counter(
            "mevsuite_relay_hints_trimmed_total",
            "Hints over the size limit, streamed without logs / callData / accessList",
            registry=registry,
        ),
        subscribers=Gauge(
            "mevsuite_relay_sse_subscribers", "Connected MEV-Share stream subscribers", registry=registry
        ),
        subscribers_dropped=Counter(
            "mevsuite_relay_sse_subscribers_dropped_total",
            "Hint stream subscribers refused (limit) or disconnected (slow)",
            ["reason"],
            registry=registry,
        ),
    )
    return m


# ---------------------------------------------------------------------------------------------------- parsing
def _raw(tx: Any, where: str) -> bytes:
    if not isinstance(tx, str) or not tx.startswith("0x") or len(tx) < 4 or len(tx) % 2:
        raise _invalid(f"{where} must be a 0x-prefixed hex raw transaction")
    try:
        return bytes.fromhex(tx[2:])
    except ValueError:
        raise _invalid(f"{where} is not valid hex") from None


def _block(v: Any, where: str) -> int:
    if isinstance(v, str) and _QTY_RE.fullmatch(v):
        return int(v, 16)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    raise _invalid(f"{where} must be a hex block number")


def _hash(v: Any, where: str) -> str:
    if not isinstance(v, str) or not _HASH_RE.fullmatch(v):
        raise _invalid(f"{where} must be a 32-byte 0x-hex hash")
    return v.lower()


def _object_param(params: Any, method: str) -> Mapping[str, Any]:
    if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], Mapping):
        raise _invalid(f"{method} takes one params object")
    return params[0]


def _txs(value: Any) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not value:
        raise _invalid("txs must be a non-empty list of raw transactions")
    if len(value) > MAX_BUNDLE_TXS:
        raise _invalid(f"a bundle holds at most {MAX_BUNDLE_TXS} transactions")
    raws = tuple(_raw(t, f"txs[{i}]") for i, t in enumerate(value))
    if sum(len(r) for r in raws) > MAX_BUNDLE_BYTES:
        raise _invalid(f"a bundle holds at most {MAX_BUNDLE_BYTES} bytes of transactions")
    return raws


def _decode_tx(raw: bytes) -> dict[str, Any]:
    """Sender and fields of a signed typed (EIP-2718) transaction."""
    if not raw or raw[0] > 0x7F:
        raise _invalid("only typed (EIP-2718) transactions are accepted as private transactions")
    try:
        d = dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
        d["from"] = Account.recover_transaction(raw)
    except Exception as exc:
        raise _invalid(f"cannot decode the transaction: {type(exc).__name__}") from None
    return d


# ---------------------------------------------------------------------------------------------------- the relay
class LocalRelay:
    """The local relay: JSON-RPC on ``url`` (POST), the MEV-Share hint stream on ``sse_url`` (GET).

    ``ping_interval_s``: an SSE ``:ping`` comment after this long without events (the docs: 15 s).
    ``registry``: prometheus registry for the relay's metrics (none: unregistered counters).

    Limits (docs/relay.md, "Limits"): ``max_body_bytes`` per request body (HTTP 413 past it) and
    ``max_json_depth`` nesting levels; ``max_private_blocks`` (a private tx's ``maxBlockNumber`` <= head + 25) and
    ``max_blocks_ahead`` (bundle target blocks <= head + 25); ``max_pending_per_signer`` / ``max_pending_total``
    pending bundles (one per target block) + pending private txs; ``max_sse_subscribers`` hint streams, each
    with a queue of ``subscriber_queue`` events (a subscriber whose queue fills is disconnected);
    ``max_hint_bytes`` per hint event; the hint history keeps at most ``max_history`` events and
    ``max_history_bytes`` bytes of them.
    """

    def __init__(
        self,
        builder: BlockBuilder,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry | None = None,
        ping_interval_s: float = 15.0,
        max_log: int = 100_000,
        subscriber_queue: int = 1_000,
        refund_float_wei: int = REFUND_FLOAT_WEI,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_json_depth: int = DEFAULT_MAX_DEPTH,
        max_private_blocks: int = PRIVATE_TX_BLOCKS,
        max_blocks_ahead: int = MAX_BLOCKS_AHEAD,
        max_pending_per_signer: int = MAX_PENDING_PER_SIGNER,
        max_pending_total: int = MAX_PENDING_TOTAL,
        max_sse_subscribers: int = MAX_SSE_SUBSCRIBERS,
        max_hint_bytes: int = MAX_HINT_BYTES,
        max_history: int = MAX_HISTORY_HINTS,
        max_history_bytes: int = MAX_HISTORY_BYTES,
    ) -> None:
        limits = {
            "max_body_bytes": max_body_bytes,
            "max_json_depth": max_json_depth,
            "max_private_blocks": max_private_blocks,
            "max_blocks_ahead": max_blocks_ahead,
            "max_pending_per_signer": max_pending_per_signer,
            "max_pending_total": max_pending_total,
            "max_sse_subscribers": max_sse_subscribers,
            "subscriber_queue": subscriber_queue,
            "max_hint_bytes": max_hint_bytes,
            "max_history": max_history,
            "max_history_bytes": max_history_bytes,
        }
        bad = [k for k, v in limits.items() if v < 1]
        if bad:
            raise ValueError(f"relay limits must be >= 1: {', '.join(bad)}")
        self.builder = builder
        self.host = host
        self.port = port
        self.ping_interval_s = ping_interval_s
        self.refund_float_wei = refund_float_wei
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.max_private_blocks = max_private_blocks
        self.max_blocks_ahead = max_blocks_ahead
        self.max_pending_per_signer = max_pending_per_signer
        self.max_pending_total = max_pending_total
        self.max_sse_subscribers = max_sse_subscribers
        self.max_hint_bytes = max_hint_bytes
        self.max_history_bytes = max_history_bytes
        self.keep_private = 10_000  # finished private txs kept for private_tx() look-ups
        self.metrics = _metrics(registry)
        self._log: collections.deque[ReceivedBundle] = collections.deque(maxlen=max_log)
        self._private: dict[str, PrivateTx] = {}  # by tx hash
        self._node_head: int | None = None  # the node's head as last asked (before the builder's first block)
        self._by_hint: dict[str, str] = {}  # hint hash -> tx hash
        self._bundles: dict[
            tuple[str, int], str
        ] = {}  # (bundle hash, target block) -> signer: for the limits
        self._subscribers: set[_Subscriber] = set()
        self._subscriber_queue = subscriber_queue
        # (entry, its size as JSON): bounded by count and by bytes
        self._hint_history: collections.deque[tuple[dict[str, Any], int]] = collections.deque(
            maxlen=max_history
        )
        self._history_bytes = 0
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()
        self.url = ""
        self.sse_url = ""
        builder.add_pre_build_hook(self._before_block)
        builder.add_outcome_listener(self._on_outcome)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> str:
        """Serve on ``host``:``port`` (0 = free port); returns the JSON-RPC URL.  Gives the builder a coinbase
        that can pay refunds (:data:`DEVNET_BUILDER_COINBASE`, with a float of ``refund_float_wei``) if it has
        none."""
        if self.builder.coinbase is None:
            self.builder.set_coinbase(DEVNET_BUILDER_COINBASE)
        coinbase = str(self.builder.coinbase)
        with contextlib.suppress(RpcCallError):
            bal = int(await self.builder.request("eth_getBalance", [coinbase, "latest"]), 16)
            if bal < self.refund_float_wei:
                await self.builder.request("anvil_setBalance", [coinbase, hex(self.refund_float_wei)])
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post("/", self._handle_rpc)
        app.router.add_get("/events", self._handle_sse)
        app.router.add_get("/api/v1/history", self._handle_history)
        app.router.add_get("/health", self._handle_health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets: list[Any] = list(getattr(server, "sockets", None) or ())
        self.port = int(sockets[0].getsockname()[1])
        self.url = f"http://{self.host}:{self.port}/"
        self.sse_url = f"http://{self.host}:{self.port}/events"
        return self.url

    async def stop(self) -> None:
        self._closing.set()
        for sub in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait("")  # wakes the stream handler, which ends the response
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ queries (Python side)
    def received(
        self, *, method: str | None = None, signer: str | None = None, bundle_hash: str | None = None
    ) -> list[ReceivedBundle]:
        """The audit log of received bundles, oldest first, optionally filtered."""
        return [
            r
            for r in self._log
            if (method is None or r.method == method)
            and (signer is None or (r.signer or "").lower() == signer.lower())
            and (bundle_hash is None or (r.bundle_hash or "") == bundle_hash.lower())
        ]

    def private_tx(self, tx_or_hint_hash: str) -> PrivateTx | None:
        h = tx_or_hint_hash.lower()
        return self._private.get(self._by_hint.get(h, h))

    def hints(self) -> list[dict[str, Any]]:
        """Every hint event streamed so far (the history the ``/api/v1/history`` endpoint serves)."""
        return [dict(x["hint"]) for x, _ in self._hint_history]

    # ------------------------------------------------------------------ HTTP
    async def _handle_health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": True, "private_pending": sum(1 for p in self._private.values() if p.status == "pending")}
        )

    async def _handle_history(self, request: web.Request) -> web.Response:
        return web.json_response([x for x, _ in self._hint_history], dumps=_compact)

    def _too_large(self, size: int | None) -> web.Response:
        self.metrics.errors.labels("too_large").inc()
        what = f"of {size} bytes " if size is not None else ""
        err = {
            "code": -32600,
            "message": f"request body {what}exceeds the limit of {self.max_body_bytes} bytes",
        }
        return web.json_response({"jsonrpc": "2.0", "id": None, "error": err}, status=413)

    async def _handle_rpc(self, request: web.Request) -> web.Response:
        # The body is capped before it is read (Content-Length), and while it is read (client_max_size, chunked).
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return self._too_large(request.content_length)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(None)
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            self.metrics.errors.labels("missing_signature").inc()
            return web.json_response({"error": "missing X-Flashbots-Signature header"}, status=403)
        signer = recover_signature_header(body, header)
        if signer is None:
            self.metrics.errors.labels("bad_signature").inc()
            claimed = header.split(":", 1)[0]
            return web.json_response({"error": f"error in signature check {claimed}"}, status=403)
        try:
            req = wire_loads(body, max_bytes=self.max_body_bytes, max_depth=self.max_json_depth)
        except (
            WireJsonError
        ) as exc:  # size and nesting depth are bounded: hostile JSON cannot crash the relay
            if exc.reason == "too_large":
                return self._too_large(len(body))
            self.metrics.errors.labels("too_deep" if exc.reason == "too_deep" else "parse_error").inc()
            return self._error(None, RelayRpcError(-32700, f"parse error: {exc}"))
        if (
            not isinstance(req, dict)
            or not isinstance(req.get("method"), str)
            or ("params" in req and not isinstance(req["params"], list))
        ):
            self.metrics.errors.labels("invalid_request").inc()
            rid = req.get("id") if isinstance(req, dict) else None
            return self._error(
                rid,
                RelayRpcError(
                    -32600, "invalid request: expected a JSON-RPC 2.0 object with a method and a params list"
                ),
            )
        rid, method, params = req.get("id"), req["method"], req.get("params", [])
        handler = self._methods.get(method)
        if handler is None:
            self.metrics.requests.labels("unknown", "error").inc()
            return self._error(
                rid, RelayRpcError(-32601, f"the method {method} does not exist/is not available")
            )
        try:
            result = await handler(self, params, signer)
        except RelayRpcError as exc:
            self.metrics.requests.labels(method, "error").inc()
            self.metrics.errors.labels(exc.reason).inc()
            return self._error(rid, exc)
        except Exception:  # the relay keeps running; details go to the log only, never to the caller
            log.exception("relay: %s from %s failed", method, signer)
            self.metrics.requests.labels(method, "error").inc()
            self.metrics.errors.labels("internal").inc()
            return self._error(rid, RelayRpcError(-32603, "internal error"))
        self.metrics.requests.labels(method, "ok").inc()
        return web.Response(
            body=json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}, separators=(",", ":")),
            content_type="application/json",
        )

    @staticmethod
    def _error(rid: Any, exc: RelayRpcError) -> web.Response:
        err: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.data is not None:
            err["data"] = exc.data
        return web.json_response({"jsonrpc": "2.0", "id": rid, "error": err})

    async def _handle_sse(self, request: web.Request) -> web.StreamResponse:
        if len(self._subscribers) >= self.max_sse_subscribers:
            self.metrics.subscribers_dropped.labels("limit").inc()
            return web.json_response(
                {"error": f"too many hint stream subscribers (at most {self.max_sse_subscribers})"},
                status=503,
            )
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "Connection": "keep-alive",
            }
        )
        await resp.prepare(request)
        sub = _Subscriber(asyncio.Queue(self._subscriber_queue), request.transport)
        self._subscribers.add(sub)
        self.metrics.subscribers.inc()
        try:
            await resp.write(b":ping\n\n")  # tells the client the stream is live
            while not self._closing.is_set() and not sub.kicked:
                try:
                    msg = await asyncio.wait_for(sub.queue.get(), self.ping_interval_s)
                except TimeoutError:
                    msg = ":ping"
                if not msg or sub.kicked:
                    break
                await resp.write(msg.encode() + b"\n\n")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._subscribers.discard(sub)
            self.metrics.subscribers.dec()
        return resp

    def _kick(self, sub: _Subscriber) -> None:
        """A subscriber whose queue is full is too slow to follow the stream: disconnect it (it may reconnect and
        read the missed hints from ``/api/v1/history``)."""
        sub.kicked = True
        self._subscribers.discard(sub)
        self.metrics.subscribers_dropped.labels("slow").inc()
        log.warning(
            "relay: hint stream subscriber disconnected: its queue of %d events is full",
            self._subscriber_queue,
        )
        if sub.transport is not None and not sub.transport.is_closing():
            abort = getattr(sub.transport, "abort", None)  # do not wait for its unread buffer to drain
            (abort or sub.transport.close)()

    def _fit_hint(self, event: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The event and its SSE line, within ``max_hint_bytes``: the bulky optional parts (logs, then the
        tx's callData and accessList) are left out of an oversized hint, as a last resort everything but the
        hash."""
        line = "data: " + _compact(event)
        if len(line) - 6 <= self.max_hint_bytes:
            return event, line
        self.metrics.hints_trimmed.inc()
        trimmed = dict(event, logs=None)
        txs = trimmed.get("txs")
        for key in (None, "callData", "accessList"):
            if key is not None and txs:
                txs = [{k: v for k, v in tx.items() if k != key} for tx in txs]
                trimmed["txs"] = txs
            line = "data: " + _compact(trimmed)
            if len(line) - 6 <= self.max_hint_bytes:
                return trimmed, line
        trimmed = {"hash": event.get("hash"), "logs": None, "txs": None}
        return trimmed, "data: " + _compact(trimmed)

    def _publish(self, event: dict[str, Any], block: int) -> None:
        event, line = self._fit_hint(event)
        entry = {"block": block, "timestamp": int(time.time()), "hint": event}
        size = len(_compact(entry)) + 1  # as served by /api/v1/history, with its comma
        if len(self._hint_history) == self._hint_history.maxlen:
            self._history_bytes -= self._hint_history[0][1]
        self._hint_history.append((entry, size))
        self._history_bytes += size
        while self._history_bytes > self.max_history_bytes and self._hint_history:
            self._history_bytes -= self._hint_history.popleft()[1]
        self.metrics.hints.inc()
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(line)
            except asyncio.QueueFull:
                self.metrics.hints_dropped.inc()
                self._kick(sub)

    # ------------------------------------------------------------------ bundles
    def _next_block(self) -> int:
        head = self.builder.head
        return (head if head is not None else 0) + 1

    async def _head(self, *, fresh: bool = False) -> int:
        """The chain head: the builder's last block, or the node's (before the first build, or ``fresh``)."""
        head = self.builder.head
        if head is None or fresh:
            head = self._node_head = int(await self.builder.request("eth_blockNumber"), 16)
        return head

    async def _check_ahead(self, block: int, where: str, limit: int) -> int:
        """Refuse (-32602) a block more than ``limit`` blocks after the head; returns the head.  Before the
        builder's first block the node's head is asked once and remembered: a remembered head can only be too
        low, and a block that looks too far ahead is checked again against a fresh one -- so the submit path
        makes no round trip to the node per request."""
        head = self.builder.head
        if head is None:
            head = self._node_head if self._node_head is not None else await self._head(fresh=True)
        if block > head + limit:
            head = await self._head(fresh=True)  # blocks mined behind the builder's back
            if block > head + limit:
                raise _invalid(f"{where} {block} is more than {limit} blocks after the head {head}")
        return head

    def _check_pending(self, signer: str, adding: int) -> None:
        """Refuse (-32005) what would take ``signer`` or the relay past the pending limits.  Pending items: bundles
        for a block not built yet (one per target block) and private txs waiting for inclusion."""
        # Everything the relay tracks bounds what is pending: while that is under both limits, nothing can be
        # over them, and the recount (a builder lookup per tracked bundle) is skipped on the submit path.
        if len(self._bundles) + len(self._private) + adding <= min(
            self.max_pending_per_signer, self.max_pending_total
        ):
            return
        who = signer.lower()
        mine = total = 0
        done = []
        for key, s in self._bundles.items():
            out = self.builder.outcome(*key)
            if out is None or out.status != BundleStatus.PENDING:
                done.append(key)
                continue
            total += 1
            mine += s == who
        for key in done:
            del self._bundles[key]
        for p in self._private.values():
            if p.status == "pending":
                total += 1
                mine += p.signer.lower() == who
        if mine + adding > self.max_pending_per_signer:
            raise RelayRpcError(
                -32005,
                f"limit exceeded: {signer} has {mine} pending bundles and private "
                f"transactions (at most {self.max_pending_per_signer} per signer)",
                reason="pending_limit",
            )
        if total + adding > self.max_pending_total:
            raise RelayRpcError(
                -32005,
                f"limit exceeded: the relay holds {total} pending bundles and private "
                f"transactions (at most {self.max_pending_total})",
                reason="pending_limit",
            )

    def _submit(self, bundle: Bundle) -> str:
        bh = self.builder.submit_bundle(bundle)
        self._bundles[(bh, bundle.block_number)] = (bundle.signer or "").lower()
        return bh

    def _audit(
        self,
        method: str,
        signer: str | None,
        txs: Sequence[bytes],
        *,
        bundle_hash: str | None,
        target: int | None,
        accepted: bool,
        error: str | None = None,
        uuid_: str | None = None,
        max_block: int | None = None,
        received_at: float | None = None,
    ) -> None:
        self._log.append(
            ReceivedBundle(
                method=method,
                bundle_hash=bundle_hash,
                signer=signer,
                target_block=target,
                txs=tuple("0x" + t.hex() for t in txs),
                received_at=received_at or time.time(),
                accepted=accepted,
                error=error,
                replacement_uuid=uuid_,
                max_block=max_block,
            )
        )

    async def _eth_send_bundle(self, params: Any, signer: str) -> dict[str, Any]:
        now = time.time()
        p = _object_param(params, "eth_sendBundle")
        txs: tuple[bytes, ...] = ()
        try:
            unknown = set(p) - {
                "txs",
                "blockNumber",
                "minTimestamp",
                "maxTimestamp",
                "revertingTxHashes",
                "replacementUuid",
                "builders",
            }
            if unknown:
                raise _invalid(f"unknown eth_sendBundle fields: {sorted(unknown)}")
            txs = _txs(p.get("txs"))
            if "blockNumber" not in p:
                raise _invalid("blockNumber is required")
            target = _block(p["blockNumber"], "blockNumber")
            await self._check_ahead(target, "blockNumber", self.max_blocks_ahead)
            ts: dict[str, int | None] = {}
            for key in ("minTimestamp", "maxTimestamp"):
                v = p.get(key)
                if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                    raise _invalid(f"{key} must be a non-negative integer (seconds)")
                ts[key] = v or None  # 0 means "no bound", as in the docs' example
            reverting = p.get("revertingTxHashes") or []
            if not isinstance(reverting, list):
                raise _invalid("revertingTxHashes must be a list of tx hashes")
            rev = frozenset(_hash(h, "revertingTxHashes[]") for h in reverting)
            ruuid = p.get("replacementUuid")
            if ruuid is not None:
                try:
                    ruuid = str(uuid.UUID(str(ruuid)))
                except ValueError:
                    raise _invalid("replacementUuid must be a UUID") from None
            bundle = Bundle(
                txs=txs,
                block_number=target,
                min_timestamp=ts["minTimestamp"],
                max_timestamp=ts["maxTimestamp"],
                reverting_tx_hashes=rev,
                replacement_uuid=ruuid,
                signer=signer.lower(),
                received_at=now,
            )
            self._check_pending(signer, 1)
        except RelayRpcError as exc:
            self._audit(
                "eth_sendBundle",
                signer,
                txs,
                bundle_hash=None,
                target=None,
                accepted=False,
                error=exc.message,
                received_at=now,
            )
            raise
        bh = self._submit(bundle)
        self.metrics.bundles.labels("bundle").inc()
        self._audit(
            "eth_sendBundle",
            signer,
            txs,
            bundle_hash=bh,
            target=target,
            accepted=True,
            uuid_=ruuid,
            received_at=now,
        )
        return {"bundleHash": bh}

    async def _eth_call_bundle(self, params: Any, signer: str) -> dict[str, Any]:
        p = _object_param(params, "eth_callBundle")
        txs = _txs(p.get("txs"))
        if "blockNumber" not in p:
            raise _invalid("blockNumber is required")
        target = _block(p["blockNumber"], "blockNumber")
        state = p.get("stateBlockNumber", "latest")
        ts = p.get("timestamp")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int) or ts < 0):
            raise _invalid("timestamp must be a non-negative integer (seconds)")
        head = int(await self.builder.request("eth_blockNumber"), 16)
        if state not in ("latest", "pending") and _block(state, "stateBlockNumber") != head:
            raise _invalid(f"stateBlockNumber must be 'latest' or the head ({head}) on this devnet")
        if target <= head:
            raise _invalid(f"blockNumber {target} is not after the head {head}")
        try:
            sim = await self.builder.simulate_bundle(txs, timestamp=ts)
        except SimulationFailed as exc:
            raise RelayRpcError(-32000, str(exc)) from None
        results = []
        for r in sim.results:
            entry: dict[str, Any] = {
                "coinbaseDiff": str(r.coinbase_diff),
                "ethSentToCoinbase": str(r.eth_sent_to_coinbase),
                "fromAddress": r.from_address,
                "gasFees": str(r.gas_fees),
                "gasPrice": str(r.gas_price),
                "gasUsed": r.gas_used,
                "toAddress": r.to_address,
                "txHash": r.tx_hash,
            }
            if r.success:
                entry["value"] = r.output
            else:
                entry["error"] = "execution reverted"
                entry["revert"] = r.output
            results.append(entry)
        return {
            "bundleGasPrice": str(sim.bundle_gas_price),
            "bundleHash": sim.bundle_hash,
            "coinbaseDiff": str(sim.coinbase_diff),
            "ethSentToCoinbase": str(sim.eth_sent_to_coinbase),
            "gasFees": str(sim.gas_fees),
            "results": results,
            "stateBlockNumber": sim.state_block_number,
            "totalGasUsed": sim.total_gas_used,
        }

    async def _eth_cancel_bundle(self, params: Any, signer: str) -> bool:
        p = _object_param(params, "eth_cancelBundle")
        try:
            ruuid = str(uuid.UUID(str(p.get("replacementUuid"))))
        except ValueError:
            raise _invalid("replacementUuid must be a UUID") from None
        return self.builder.cancel_bundle(ruuid, signer=signer.lower())

    async def _get_bundle_stats_v2(self, params: Any, signer: str) -> dict[str, Any]:
        p = _object_param(params, "flashbots_getBundleStatsV2")
        bh = _hash(p.get("bundleHash"), "bundleHash")
        block = _block(p.get("blockNumber"), "blockNumber")
        out = self.builder.outcome(bh, block)
        if out is None or (out.signer is not None and out.signer != signer.lower()):
            raise RelayRpcError(-32000, "bundle not found for this signer and block")
        considered = (
            [{"pubkey": BUILDER_PUBKEY, "timestamp": _iso(out.considered_at)}] if out.considered_at else []
        )
        sealed = [{"pubkey": BUILDER_PUBKEY, "timestamp": _iso(out.sealed_at)}] if out.sealed_at else []
        return {
            "isHighPriority": True,
            "isSimulated": out.simulated_at is not None,
            "simulatedAt": _iso(out.simulated_at),
            "receivedAt": _iso(out.received_at),
            "consideredByBuildersAt": considered,
            "sealedByBuildersAt": sealed,
        }

    # ------------------------------------------------------------------ MEV-Share
    async def _take_private(
        self,
        raw: bytes,
        signer: str,
        *,
        max_block: int | None,
        hints: Sequence[str] | None,
        refund_to: str | None,
        method: str,
        max_block_field: str = "maxBlockNumber",
        refund_field: str = "preferences.validity.refund[0].address",
    ) -> str:
        fields = _decode_tx(raw)
        tx_hash = "0x" + keccak(raw).hex()
        if tx_hash in self._private and self._private[tx_hash].status == "pending":
            return tx_hash
        if max_block is not None:
            head = await self._check_ahead(max_block, max_block_field, self.max_private_blocks)
        else:
            head = await self._head()
        nxt = head + 1
        mb = max_block if max_block is not None else head + self.max_private_blocks
        if mb < nxt:
            raise _invalid(f"{max_block_field} {mb} is already past (next block {nxt})")
        chosen = frozenset(hints) if hints is not None else DEFAULT_HINTS
        bad = chosen - _HINTS
        if bad:
            raise _invalid(f"unknown hints {sorted(bad)} (allowed: {sorted(_HINTS)})")
        sender = str(fields["from"]).lower()
        # The refund of a backrun belongs to the user whose tx is backrun: it goes to the tx's sender.  Only the
        # sender itself (signing the request) may name another recipient -- whoever else holds the signed tx
        # (a wallet, an RPC, someone who copied it) cannot redirect the user's refund to themselves.
        if refund_to is not None and refund_to.lower() != sender and signer.lower() != sender:
            raise _invalid(
                f"{refund_field}: only the transaction's sender {sender} may direct its refund to "
                f"another address (this request is signed by {signer.lower()})"
            )
        self._check_pending(signer, 1)
        ptx = PrivateTx(
            raw=raw,
            hash=tx_hash,
            hint_hash=hint_hash(tx_hash),
            sender=sender,
            max_block=mb,
            hints=chosen | {"hash"},
            refund_recipient=(refund_to or sender).lower(),
            signer=signer,
            received_at=time.time(),
            fields=fields,
        )
        self._private[tx_hash] = ptx
        self._by_hint[ptx.hint_hash] = tx_hash
        self._audit(
            method, signer, [raw], bundle_hash=bundle_hash([raw]), target=nxt, accepted=True, max_block=mb
        )
        self.metrics.bundles.labels("private_tx").inc()
        if "logs" in ptx.hints:
            task = asyncio.get_running_loop().create_task(self._hint_with_logs(ptx, head))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._publish(self._hint(ptx, None), head)
        return tx_hash

    def _hint(self, ptx: PrivateTx, logs: list[dict[str, Any]] | None) -> dict[str, Any]:
        f, h = ptx.fields, ptx.hints
        full = "full" in h
        tx: dict[str, Any] = {}
        to = f.get("to")
        to_hex = ("0x" + bytes(to).hex()) if isinstance(to, bytes | bytearray) and to else (to or None)
        data = f.get("data", b"")
        data_hex = "0x" + bytes(data).hex() if isinstance(data, bytes | bytearray) else str(data)
        if full or "tx_hash" in h:
            tx["hash"] = ptx.hash
        if full or "contract_address" in h:
            tx["to"] = to_hex
        if full or "function_selector" in h:
            tx["functionSelector"] = data_hex[:10] if len(data_hex) >= 10 else None
        if full or "calldata" in h:
            tx["callData"] = data_hex
        if full:
            tx.update(
                {
                    "from": f["from"],
                    "value": hex(f.get("value", 0)),
                    "nonce": hex(f["nonce"]),
                    "chainId": hex(f["chainId"]),
                    "gas": hex(f["gas"]),
                    "type": hex(int(f.get("type", 2))),
                    "maxFeePerGas": hex(f.get("maxFeePerGas", 0)),
                    "maxPriorityFeePerGas": hex(f.get("maxPriorityFeePerGas", 0)),
                    "accessList": [
                        {
                            "address": a["address"] if isinstance(a, Mapping) else a[0],
                            "storageKeys": list(a["storageKeys"] if isinstance(a, Mapping) else a[1]),
                        }
                        for a in f.get("accessList") or ()
                    ],
                }
            )
        event: dict[str, Any] = {
            "hash": ptx.hint_hash,
            "logs": logs if (full or "logs" in h) else None,
            "txs": [tx] if tx else None,
        }
        return event

    async def _hint_with_logs(self, ptx: PrivateTx, head: int) -> None:
        logs: list[dict[str, Any]] | None = None
        try:
            sim = await self.builder.simulate_bundle([ptx.raw])
            logs = (
                [
                    {"address": lg["address"], "topics": lg["topics"], "data": lg["data"]}
                    for lg in sim.results[0].logs
                ]
                if sim.results[0].success
                else []
            )
        except Exception as exc:  # the hint still goes out, without logs
            log.warning("relay: could not simulate private tx %s for its log hint: %s", ptx.hash, exc)
        self._publish(self._hint(ptx, logs), max(head, self._next_block() - 1))

    async def _eth_send_private_transaction(self, params: Any, signer: str) -> str:
        p = _object_param(params, "eth_sendPrivateTransaction")
        raw = _raw(p.get("tx"), "tx")
        mb = _block(p["maxBlockNumber"], "maxBlockNumber") if p.get("maxBlockNumber") is not None else None
        hints, refund_to = self._preferences(p.get("preferences"))
        return await self._take_private(
            raw, signer, max_block=mb, hints=hints, refund_to=refund_to, method="eth_sendPrivateTransaction"
        )

    async def _eth_send_private_raw_transaction(self, params: Any, signer: str) -> str:
        if not isinstance(params, list) or not 1 <= len(params) <= 2:
            raise _invalid("eth_sendPrivateRawTransaction takes [tx, preferences?]")
        raw = _raw(params[0], "tx")
        hints, refund_to = self._preferences(params[1] if len(params) > 1 else None)
        return await self._take_private(
            raw,
            signer,
            max_block=None,
            hints=hints,
            refund_to=refund_to,
            method="eth_sendPrivateRawTransaction",
        )

    @staticmethod
    def _preferences(prefs: Any) -> tuple[list[str] | None, str | None]:
        if prefs is None:
            return None, None
        if not isinstance(prefs, Mapping):
            raise _invalid("preferences must be an object")
        hints = None
        privacy = prefs.get("privacy")
        if privacy is not None:
            if not isinstance(privacy, Mapping):
                raise _invalid("preferences.privacy must be an object")
            raw_hints = privacy.get("hints")
            if raw_hints is not None:
                if not isinstance(raw_hints, list) or not all(isinstance(x, str) for x in raw_hints):
                    raise _invalid("preferences.privacy.hints must be a list of hint names")
                hints = raw_hints
        refund_to = None
        validity = prefs.get("validity")
        if validity is not None:
            if not isinstance(validity, Mapping):
                raise _invalid("preferences.validity must be an object")
            refunds = validity.get("refund")
            if refunds is not None:
                if not isinstance(refunds, list):
                    raise _invalid("preferences.validity.refund must be a list of {address, percent}")
                for j, r in enumerate(refunds):
                    where = f"preferences.validity.refund[{j}]"
                    if not isinstance(r, Mapping):
                        raise _invalid(f"{where} must be an object {{address, percent}}")
                    addr = r.get("address")
                    if not isinstance(addr, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", addr):
                        raise _invalid(f"{where}.address must be an address")
                    pct = r.get("percent")
                    if pct is not None and (
                        isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100
                    ):
                        raise _invalid(f"{where}.percent must be an integer in 0..100")
                if refunds:
                    refund_to = str(refunds[0]["address"])
        return hints, refund_to

    async def _eth_cancel_private_transaction(self, params: Any, signer: str) -> bool:
        p = _object_param(params, "eth_cancelPrivateTransaction")
        h = _hash(p.get("txHash"), "txHash")
        ptx = self._private.get(h)
        if ptx is None or ptx.status != "pending" or ptx.signer.lower() != signer.lower():
            return False
        ptx.status = "cancelled"
        return True

    async def _mev_send_bundle(self, params: Any, signer: str) -> dict[str, Any]:
        now = time.time()
        p = _object_param(params, "mev_sendBundle")
        try:
            b = validate_mev_bundle(p)
        except (ValueError, TypeError) as exc:
            self._audit(
                "mev_sendBundle",
                signer,
                [],
                bundle_hash=None,
                target=None,
                accepted=False,
                error=str(exc),
                received_at=now,
            )
            raise _invalid(str(exc)) from None
        first = int(b["inclusion"]["block"], 16)
        last = int(b["inclusion"].get("maxBlock", b["inclusion"]["block"]), 16)
        if last - first >= MAX_BLOCK_RANGE:
            raise _invalid(f"inclusion spans more than {MAX_BLOCK_RANGE} blocks")
        last_field = "inclusion.maxBlock" if "maxBlock" in b["inclusion"] else "inclusion.block"
        body = b["body"]
        if any("bundle" in item for item in body):
            raise _invalid("nested bundles are not supported by the devnet relay")
        hashes = [i for i, item in enumerate(body) if "hash" in item]
        if not hashes:
            txs = [bytes.fromhex(item["tx"][2:]) for item in body]
            privacy = b.get("privacy")
            if privacy is not None and len(txs) == 1:  # a user's tx shared with searchers: private order flow
                refund_to = next((c["address"] for c in b.get("validity", {}).get("refundConfig", [])), None)
                h = await self._take_private(
                    txs[0],
                    signer,
                    max_block=last,
                    hints=privacy.get("hints"),
                    refund_to=refund_to,
                    method="mev_sendBundle",
                    max_block_field=last_field,
                    refund_field="validity.refundConfig[0].address",
                )
                return {"bundleHash": bundle_hash(txs), "txHash": h}
            await self._check_ahead(last, last_field, self.max_blocks_ahead)
            self._check_pending(signer, last - first + 1)
            reverting = frozenset(
                "0x" + keccak(t).hex() for t, item in zip(txs, body, strict=True) if item["canRevert"]
            )
            bh = ""
            for n in range(first, last + 1):
                bh = self._submit(
                    Bundle(
                        txs=tuple(txs),
                        block_number=n,
                        reverting_tx_hashes=reverting,
                        signer=signer.lower(),
                        received_at=now,
                    )
                )
            self.metrics.bundles.labels("mev_bundle").inc()
            self._audit(
                "mev_sendBundle",
                signer,
                txs,
                bundle_hash=bh,
                target=first,
                accepted=True,
                max_block=last,
                received_at=now,
            )
            return {"bundleHash": bh}
        if hashes != [0]:
            raise _invalid("a backrun references exactly one hinted tx, as body[0]")
        ptx = self.private_tx(body[0]["hash"])
        if ptx is None:
            raise RelayRpcError(-32000, f"unknown or unhinted transaction {body[0]['hash']}")
        if ptx.status != "pending":
            raise RelayRpcError(-32000, f"transaction {ptx.hash} is no longer pending ({ptx.status})")
        ours = [bytes.fromhex(item["tx"][2:]) for item in body[1:]]
        if len(ours) != 1:
            raise _invalid("a bundle can only contain one backrun transaction")
        txs = [ptx.raw, *ours]
        reverting = frozenset(
            "0x" + keccak(t).hex() for t, item in zip(ours, body[1:], strict=True) if item["canRevert"]
        )
        percent = DEFAULT_REFUND_PERCENT
        for r in b.get("validity", {}).get("refund", []):
            if r["bodyIdx"] == 0:
                percent = r["percent"]
        refunds = (Refund(ptx.refund_recipient, percent),) if percent else ()
        await self._check_ahead(last, last_field, self.max_blocks_ahead)
        last = min(last, ptx.max_block)
        if last < first:
            raise _invalid(f"the hinted tx is only valid up to block {ptx.max_block}")
        self._check_pending(signer, last - first + 1)
        bh = ""
        for n in range(first, last + 1):
            bh = self._submit(
                Bundle(
                    txs=tuple(txs),
                    block_number=n,
                    reverting_tx_hashes=reverting,
                    signer=signer.lower(),
                    refunds=refunds,
                    user_tx_hashes=frozenset({ptx.hash}),
                    received_at=now,
                )
            )
        ptx.backruns.add(bh)
        self.metrics.bundles.labels("backrun").inc()
        self._audit(
            "mev_sendBundle",
            signer,
            txs,
            bundle_hash=bh,
            target=first,
            accepted=True,
            max_block=last,
            received_at=now,
        )
        return {"bundleHash": bh}

    # ------------------------------------------------------------------ builder hooks
    def _before_block(self, number: int) -> None:
        """Private txs that no backrun targets in this block go in on their own (as a one-tx bundle)."""
        if self._closing.is_set():
            return  # a stopped relay hands in nothing more
        pending_backruns = {
            h for b in self.builder.pending_bundles() if b.block_number == number for h in b.user_tx_hashes
        }
        finished = [h for h, p in self._private.items() if p.status != "pending"]
        for h in finished[
            : max(0, len(finished) - self.keep_private)
        ]:  # oldest first: dicts keep insertion order
            self._by_hint.pop(self._private.pop(h).hint_hash, None)
        for ptx in self._private.values():
            if ptx.status != "pending":
                continue
            if number > ptx.max_block:
                ptx.status = "expired"
                continue
            if ptx.hash in pending_backruns:
                continue
            self.builder.submit_bundle(
                Bundle(
                    txs=(ptx.raw,),
                    block_number=number,
                    signer=ptx.signer.lower(),
                    received_at=ptx.received_at,
                )
            )

    def _on_outcome(self, out: BundleOutcome) -> None:
        if out.status != BundleStatus.INCLUDED:
            return
        for h in out.tx_hashes:
            ptx = self._private.get(h)
            if ptx is not None and ptx.status == "pending":
                ptx.status = "included"
                ptx.block_number = out.block_number

    _methods: ClassVar[dict[str, Any]] = {
        "eth_sendBundle": _eth_send_bundle,
        "eth_callBundle": _eth_call_bundle,
        "eth_cancelBundle": _eth_cancel_bundle,
        "flashbots_getBundleStatsV2": _get_bundle_stats_v2,
        "mev_sendBundle": _mev_send_bundle,
        "eth_sendPrivateTransaction": _eth_send_private_transaction,
        "eth_sendPrivateRawTransaction": _eth_send_private_raw_transaction,
        "eth_cancelPrivateTransaction": _eth_cancel_private_transaction,
    }
