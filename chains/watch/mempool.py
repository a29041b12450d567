"""The mempool watcher: pending router swaps, decoded into typed :class:`~chains.events.PendingSwap` events.

    watcher = MempoolWatcher(bus, routers_for_book(book), ws_url=book.ws_url, rpc=rpc, registry=registry)
    async with watcher:                      # subscribed, and the pool as it was at start-up re-read
        ...                                  # PendingSwap events arrive on the "mempool.swaps" topic

**Sources.** ``mode="subscribe"`` (default) rides ``eth_subscribe newPendingTransactions`` with full
transactions (``params=[true]``: anvil, geth and reth send the whole tx, so no second round trip); a node that
sends only hashes is handled too, the bodies fetched with one batched ``eth_getTransactionByHash`` per burst.
``mode="poll"`` polls ``txpool_content`` every ``poll_interval`` seconds; ``mode="auto"`` subscribes and falls
back to polling when the node rejects the subscription. After every re-subscribe (the websocket is managed by
:class:`chains.node.subscribe.WsSubscription`: backoff, jitter, re-subscribe) and once at start-up, the watcher
re-reads the *pending* section of ``txpool_content``, so a tx that arrived while the socket was down is still
seen; the dedup set makes the overlap harmless.

**What is published.** For each new pending tx sent to a configured router address (``routers``: address ->
:data:`RouterKind`), every swap in its calldata becomes one ``PendingSwap`` (a multicall may hold several):
Uniswap V2 ``UniswapV2Router02`` (all nine ``swap*`` functions incl. ETH and ``SupportingFeeOnTransferTokens``),
Uniswap V3 ``SwapRouter`` (``exactInputSingle``, ``exactInput``, ``exactOutputSingle``, ``exactOutput``,
``multicall(bytes[])``) and ``SwapRouter02`` (its V3 functions without a struct deadline, its two V2
functions, and ``multicall(bytes[])`` / ``multicall(uint256 deadline, bytes[])`` /
``multicall(bytes32 previousBlockhash, bytes[])``). Paths are in swap direction (exact-output V3 paths, which
are encoded backwards, are reversed together with their fees). With ``publish_transactions=True`` every pending
tx is also published as a :class:`~chains.events.PendingTransaction`.

**Dropped.** Txs already seen (a bounded LRU of hashes, ``dedup_capacity``), txs that already carry a
``blockNumber`` (mined), and the ``queued`` (nonce-gapped) section of the pool. Malformed tx objects, unknown
selectors, truncated or garbage calldata and swaps that fail the event's validation are counted by reason and
skipped; nothing a node or a user sends can raise out of the watcher.

**Metrics** (prometheus-client on ``registry``; one metric set per registry, shared by several watchers):
``mevsuite_mempool_txs_seen_total{source}``, ``mevsuite_mempool_swaps_total{protocol}``,
``mevsuite_mempool_duplicates_total``, ``mevsuite_mempool_mined_skipped_total``,
``mevsuite_mempool_decode_errors_total{reason}``, ``mevsuite_mempool_resyncs_total``,
``mevsuite_mempool_publish_latency_seconds`` (socket arrival -> published), plus the websocket's
``mevsuite_ws_*`` metrics (reconnects, errors) from :mod:`chains.node.subscribe`.

The decoder (:func:`decode_router_call`) is hand-rolled word slicing (``int.from_bytes``) with the checks that
matter for garbage input (address padding, integer ranges, offsets and lengths inside the data); it is tested
against ``eth_abi`` and is several times faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter

from chains.events import (
    TOPIC_PENDING_SWAPS,
    TOPIC_PENDING_TXS,
    PendingSwap,
    PendingTransaction,
    Publisher,
    SwapProtocol,
)
from chains.node.rpc import RpcClient, RpcClientError
from chains.node.subscribe import SubscriptionRejectedError, WsSubscription
from chains.promreg import per_registry

__all__ = [
    "CalldataError",
    "MempoolStats",
    "MempoolWatcher",
    "RouterKind",
    "SwapCall",
    "decode_router_call",
    "routers_for_book",
    "selectors",
]

log = logging.getLogger(__name__)

RouterKind = Literal["uniswap_v2_router02", "uniswap_v3_swap_router", "uniswap_v3_swap_router02"]
WatchMode = Literal["subscribe", "poll", "auto"]
ROUTER_KINDS: tuple[RouterKind, ...] = (
    "uniswap_v2_router02",
    "uniswap_v3_swap_router",
    "uniswap_v3_swap_router02",
)

# arrival -> published: tens of microseconds (decode) to tens of milliseconds (a hash fetch under load)
LATENCY_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


# ------------------------------------------------------------------------------------------------ decoding
class CalldataError(ValueError):
    """Calldata that is not a swap we can decode. ``reason`` is the metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SwapCall:
    """One swap decoded from router calldata (addresses lowercase ``0x`` hex, amounts exact ints)."""

    method: str
    protocol: SwapProtocol
    path: tuple[str, ...]
    fees: tuple[int, ...]
    exact_input: bool
    amount_in: int | None
    amount_out_min: int | None
    amount_out: int | None
    amount_in_max: int | None
    deadline: int | None
    recipient: str


_ZERO12 = bytes(12)
_MAX_MULTICALL_DEPTH = 2


def _truncated(what: str) -> CalldataError:
    return CalldataError("bad_calldata", f"calldata too short for {what}")


def _word(d: bytes, i: int) -> int:
    if i < 0 or i + 32 > len(d):
        raise _truncated(f"the word at byte {i}")
    return int.from_bytes(d[i : i + 32], "big")


def _uint(d: bytes, i: int, bits: int) -> int:
    v = _word(d, i)
    if v >> bits:
        raise CalldataError("bad_calldata", f"word at byte {i} does not fit a uint{bits}")
    return v


def _addr(d: bytes, i: int) -> str:
    w = d[i : i + 32]
    if len(w) != 32:
        raise _truncated(f"the address at byte {i}")
    if w[:12] != _ZERO12:
        raise CalldataError("bad_calldata", f"address word at byte {i} has non-zero padding")
    return "0x" + w[12:].hex()


def _offset(d: bytes, i: int, base: int) -> int:
    off = _word(d, i)
    if off > len(d) or base + off + 32 > len(d):
        raise CalldataError("bad_calldata", f"offset {off} at byte {i} points outside the calldata")
    return base + off


def _address_array(d: bytes, pos: int) -> tuple[str, ...]:
    n = _word(d, pos)
    if n > (len(d) - pos - 32) // 32:
        raise CalldataError("bad_calldata", f"address[] of length {n} runs past the calldata")
    return tuple(_addr(d, pos + 32 + 32 * k) for k in range(n))


def _bytes(d: bytes, pos: int) -> bytes:
    n = _word(d, pos)
    if (n + 31) // 32 * 32 > len(d) - pos - 32:  # the zero padding to a whole word must be there too
        raise CalldataError("bad_calldata", f"bytes of length {n} runs past the calldata")
    return d[pos + 32 : pos + 32 + n]


def _bytes_array(d: bytes, pos: int) -> list[bytes]:
    n = _word(d, pos)
    if n > (len(d) - pos - 32) // 32:
        raise CalldataError("bad_calldata", f"bytes[] of length {n} runs past the calldata")
    base = pos + 32
    return [_bytes(d, _offset(d, base + 32 * k, base)) for k in range(n)]


def _v3_path(p: bytes, *, reverse: bool) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if len(p) < 43 or (len(p) - 20) % 23:
        raise CalldataError(
            "bad_calldata", f"a V3 path of {len(p)} bytes is not token(20) + n*(fee(3) + token(20))"
        )
    tokens = tuple("0x" + p[i : i + 20].hex() for i in range(0, len(p), 23))
    fees = tuple(int.from_bytes(p[i : i + 3], "big") for i in range(20, len(p), 23))
    if reverse:  # exact-output paths are encoded tokenOut -> tokenIn
        return tokens[::-1], fees[::-1]
    return tokens, fees


# ---- Uniswap V2 Router02 (and SwapRouter02's two V2 functions)
# layout "ab": (uint a, uint b, address[] path, address to[, uint deadline]); "eth": (uint a, address[] path,
# address to, uint deadline) with msg.value as the input.
_V2_FUNCS: tuple[tuple[str, str, bool], ...] = (
    # (name, layout, exact_input)
    ("swapExactTokensForTokens", "ab", True),
    ("swapTokensForExactTokens", "ab", False),
    ("swapExactETHForTokens", "eth", True),
    ("swapTokensForExactETH", "ab", False),
    ("swapExactTokensForETH", "ab", True),
    ("swapETHForExactTokens", "eth", False),
    ("swapExactTokensForTokensSupportingFeeOnTransferTokens", "ab", True),
    ("swapExactETHForTokensSupportingFeeOnTransferTokens", "eth", True),
    ("swapExactTokensForETHSupportingFeeOnTransferTokens", "ab", True),
)

_V3_SINGLE = "(address,address,uint24,address,uint256,uint256,uint256,uint160)"
_V3_PATH = "(bytes,address,uint256,uint256,uint256)"
_V3_SINGLE_02 = "(address,address,uint24,address,uint256,uint256,uint160)"
_V3_PATH_02 = "(bytes,address,uint256,uint256)"


def _sel(signature: str) -> bytes:
    return keccak(text=signature)[:4]


@dataclass(frozen=True, slots=True)
class _Fn:
    name: str
    decode: Any  # (args: bytes, value: int, deadline: int | None, depth: int, kind) -> list[SwapCall]
    signature: str


def _swap(
    name: str,
    protocol: SwapProtocol,
    path: tuple[str, ...],
    fees: tuple[int, ...],
    exact_input: bool,
    x: int,
    y: int,
    deadline: int | None,
    recipient: str,
) -> SwapCall:
    """(x, y) are (amountIn, amountOutMin) for exact-input calls, (amountOut, amountInMax) for exact-output."""
    if exact_input:
        return SwapCall(name, protocol, path, fees, True, x, y, None, None, deadline, recipient)
    return SwapCall(name, protocol, path, fees, False, None, None, x, y, deadline, recipient)


def _v2_decoder(name: str, layout: str, exact_input: bool, with_deadline: bool) -> Any:
    def decode(a: bytes, value: int, deadline: int | None, depth: int, kind: RouterKind) -> list[SwapCall]:
        if layout == "eth":
            x = _word(a, 0)
            path = _address_array(a, _offset(a, 32, 0))
            to = _addr(a, 64)
            dl: int | None = _word(a, 96)
            # msg.value is the input: amountIn of exact-input calls, amountInMax of swapETHForExactTokens
            xy = (value, x) if exact_input else (x, value)
        else:
            x, y = _word(a, 0), _word(a, 32)
            path = _address_array(a, _offset(a, 64, 0))
            to = _addr(a, 96)
            dl = _word(a, 128) if with_deadline else deadline
            xy = (x, y)
        return [_swap(name, "uniswap_v2", path, (), exact_input, *xy, dl, to)]

    return decode


def _v3_single(name: str, exact_input: bool, with_deadline: bool) -> Any:
    def decode(a: bytes, value: int, deadline: int | None, depth: int, kind: RouterKind) -> list[SwapCall]:
        t_in, t_out = _addr(a, 0), _addr(a, 32)
        fee = _uint(a, 64, 24)
        to = _addr(a, 96)
        k = 128
        dl = deadline
        if with_deadline:
            dl, k = _word(a, 128), 160
        x, y = _word(a, k), _word(a, k + 32)
        _uint(a, k + 64, 160)  # sqrtPriceLimitX96: validated, not reported
        return [_swap(name, "uniswap_v3", (t_in, t_out), (fee,), exact_input, x, y, dl, to)]

    return decode


def _v3_path_call(name: str, exact_input: bool, with_deadline: bool) -> Any:
    def decode(a: bytes, value: int, deadline: int | None, depth: int, kind: RouterKind) -> list[SwapCall]:
        t = _offset(a, 0, 0)  # the struct is dynamic (it holds bytes): the head is its offset
        path, fees = _v3_path(_bytes(a, _offset(a, t, t)), reverse=not exact_input)
        to = _addr(a, t + 32)
        k = t + 64
        dl = deadline
        if with_deadline:
            dl, k = _word(a, t + 64), t + 96
        x, y = _word(a, k), _word(a, k + 32)
        return [_swap(name, "uniswap_v3", path, fees, exact_input, x, y, dl, to)]

    return decode


def _multicall(prefix_words: int, has_deadline: bool) -> Any:
    def decode(a: bytes, value: int, deadline: int | None, depth: int, kind: RouterKind) -> list[SwapCall]:
        if depth >= _MAX_MULTICALL_DEPTH:
            raise CalldataError("bad_calldata", "multicall nested too deep")
        dl = _word(a, 0) if has_deadline else deadline
        calls = _bytes_array(a, _offset(a, 32 * prefix_words, 0))
        out: list[SwapCall] = []
        for inner in calls:
            fn = _TABLES[kind].get(inner[:4]) if len(inner) >= 4 else None
            if fn is None:
                continue  # unwrapWETH9, refundETH, sweepToken, selfPermit ...: not swaps
            for call in fn.decode(inner[4:], value, dl, depth + 1, kind):
                out.append(_renamed(call, f"multicall/{call.method}"))
        if not out:
            raise CalldataError("no_swap", "multicall without a swap")
        return out

    return decode


def _renamed(call: SwapCall, method: str) -> SwapCall:
    return SwapCall(
        method,
        call.protocol,
        call.path,
        call.fees,
        call.exact_input,
        call.amount_in,
        call.amount_out_min,
        call.amount_out,
        call.amount_in_max,
        call.deadline,
        call.recipient,
    )


def _v2_table(router02: bool) -> dict[bytes, _Fn]:
    table: dict[bytes, _Fn] = {}
    for name, layout, exact_input in _V2_FUNCS:
        args = (
            "(uint256,address[],address,uint256)"
            if layout == "eth"
            else "(uint256,uint256,address[],address,uint256)"
        )
        if router02:
            if name not in ("swapExactTokensForTokens", "swapTokensForExactTokens"):
                continue
            args = "(uint256,uint256,address[],address)"
        sig = name + args
        table[_sel(sig)] = _Fn(name, _v2_decoder(name, layout, exact_input, not router02), sig)
    return table


def _v3_table(router02: bool) -> dict[bytes, _Fn]:
    single, pathed = (_V3_SINGLE_02, _V3_PATH_02) if router02 else (_V3_SINGLE, _V3_PATH)
    rows = [
        (f"exactInputSingle({single})", _v3_single("exactInputSingle", True, not router02)),
        (f"exactInput({pathed})", _v3_path_call("exactInput", True, not router02)),
        (f"exactOutputSingle({single})", _v3_single("exactOutputSingle", False, not router02)),
        (f"exactOutput({pathed})", _v3_path_call("exactOutput", False, not router02)),
        ("multicall(bytes[])", _multicall(0, False)),
    ]
    if router02:
        rows += [
            ("multicall(uint256,bytes[])", _multicall(1, True)),
            ("multicall(bytes32,bytes[])", _multicall(1, False)),
        ]
    table = {_sel(sig): _Fn(sig.split("(")[0], dec, sig) for sig, dec in rows}
    if router02:
        table.update(_v2_table(router02=True))
    return table


_TABLES: dict[RouterKind, dict[bytes, _Fn]] = {
    "uniswap_v2_router02": _v2_table(router02=False),
    "uniswap_v3_swap_router": _v3_table(router02=False),
    "uniswap_v3_swap_router02": _v3_table(router02=True),
}


def selectors(kind: RouterKind) -> dict[str, str]:
    """The decoded functions of a router kind: ``0x``-selector -> canonical signature."""
    return {"0x" + sel.hex(): fn.signature for sel, fn in _TABLES[kind].items()}


def decode_router_call(kind: RouterKind, data: bytes, value: int = 0) -> list[SwapCall]:
    """Decode the swaps in one router call's calldata (selector included).

    ``value`` is the tx's ``msg.value``, the input amount of V2 ETH-in calls. Raises :class:`CalldataError`
    (``reason`` ``unknown_selector``, ``bad_calldata`` or ``no_swap``) and nothing else.
    """
    table = _TABLES.get(kind)
    if table is None:
        raise ValueError(f"unknown router kind {kind!r}; expected one of {ROUTER_KINDS}")
    if len(data) < 4:
        raise CalldataError("bad_calldata", f"calldata of {len(data)} bytes has no selector")
    fn = table.get(data[:4])
    if fn is None:
        raise CalldataError("unknown_selector", f"selector 0x{data[:4].hex()} is not a {kind} swap")
    return list(fn.decode(data[4:], value, None, 0, kind))


def routers_for_book(book: Any) -> dict[str, RouterKind]:
    """The routers of a devnet :class:`~chains.addressbook.AddressBook`: both V2 Router02s and the SwapRouter."""
    routers: dict[str, RouterKind] = {v.router: "uniswap_v2_router02" for v in book.v2.values()}
    routers[book.v3.swap_router] = "uniswap_v3_swap_router"
    return routers


# ------------------------------------------------------------------------------------------------ metrics
@dataclass(slots=True)
class _Metrics:
    seen: PromCounter
    swaps: PromCounter
    duplicates: PromCounter
    mined: PromCounter
    errors: PromCounter
    resyncs: PromCounter
    latency: Histogram


def _metrics(registry: CollectorRegistry | None) -> _Metrics:
    return per_registry(registry, __name__, _build_metrics)


def _build_metrics(registry: CollectorRegistry | None) -> _Metrics:
    m = _Metrics(
        seen=PromCounter(
            "mevsuite_mempool_txs_seen_total",
            "Pending txs received, by source",
            ["source"],
            registry=registry,
        ),
        swaps=PromCounter(
            "mevsuite_mempool_swaps_total", "PendingSwap events published", ["protocol"], registry=registry
        ),
        duplicates=PromCounter(
            "mevsuite_mempool_duplicates_total", "Pending txs dropped as already seen", registry=registry
        ),
        mined=PromCounter(
            "mevsuite_mempool_mined_skipped_total", "Txs dropped because already mined", registry=registry
        ),
        errors=PromCounter(
            "mevsuite_mempool_decode_errors_total",
            "Pending txs skipped as undecodable, by reason",
            ["reason"],
            registry=registry,
        ),
        resyncs=PromCounter(
            "mevsuite_mempool_resyncs_total",
            "txpool_content re-reads (start, reconnect, poll)",
            registry=registry,
        ),
        latency=Histogram(
            "mevsuite_mempool_publish_latency_seconds",
            "From a pending tx's arrival on the socket to its events being published",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
    )
    return m


@dataclass(slots=True)
class MempoolStats:
    """Plain counters of one watcher (the same numbers as its metrics)."""

    seen: Counter[str] = field(default_factory=Counter)  # by source
    swaps: int = 0
    transactions: int = 0  # PendingTransaction events published
    duplicates: int = 0
    mined: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by reason
    resyncs: int = 0


# ------------------------------------------------------------------------------------------------ the watcher
_HASH_RE = re.compile(r"0x[0-9a-fA-F]{64}")
_ADDR_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_HEXDATA_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


class _MalformedTx(Exception):
    pass


def _qty(tx: Mapping[str, Any], key: str, default: int | None = None) -> int:
    v = tx.get(key)
    if v is None:
        if default is None:
            raise _MalformedTx(f"missing {key}")
        return default
    if type(v) is int and v >= 0:
        return v
    if isinstance(v, str) and v.startswith("0x") and 2 < len(v) <= 66:
        try:
            return int(v, 16)
        except ValueError:
            pass
    raise _MalformedTx(f"bad {key} {str(v)[:80]!r}")


def _address(v: Any, key: str) -> str:
    if isinstance(v, str) and _ADDR_RE.fullmatch(v):
        return v.lower()
    raise _MalformedTx(f"bad {key} {str(v)[:80]!r}")


@dataclass(frozen=True, slots=True)
class _Tx:
    hash: str
    sender: str
    to: str | None
    nonce: int
    value: int
    gas: int
    max_fee: int
    max_tip: int
    data: bytes


def _parse_tx(tx: Any) -> _Tx:
    if not isinstance(tx, Mapping):
        raise _MalformedTx(f"a tx must be a JSON object, got {type(tx).__name__}")
    h = tx.get("hash")
    if not isinstance(h, str) or not _HASH_RE.fullmatch(h):
        raise _MalformedTx(f"bad hash {str(h)[:80]!r}")
    to_raw = tx.get("to")
    data = tx.get("input", tx.get("data", "0x"))
    if not isinstance(data, str) or not _HEXDATA_RE.fullmatch(data):
        raise _MalformedTx("bad input (expected 0x-hex bytes)")
    if "maxFeePerGas" in tx and tx["maxFeePerGas"] is not None:
        max_fee, max_tip = _qty(tx, "maxFeePerGas"), _qty(tx, "maxPriorityFeePerGas")
    else:
        max_fee = max_tip = _qty(tx, "gasPrice")
    return _Tx(
        hash=h.lower(),
        sender=_address(tx.get("from"), "from"),
        to=None if to_raw is None else _address(to_raw, "to"),
        nonce=_qty(tx, "nonce"),
        value=_qty(tx, "value", 0),
        gas=_qty(tx, "gas"),
        max_fee=max_fee,
        max_tip=max_tip,
        data=bytes.fromhex(data[2:]),
    )


class MempoolWatcher:
    """Watch a node's mempool and publish decoded router swaps (see the module docstring).

    ``rpc`` carries ``txpool_content`` and hash look-ups; when omitted the watcher opens its own
    :class:`~chains.node.rpc.RpcClient` on ``ws_url`` and closes it on :meth:`stop`.
    """

    def __init__(
        self,
        publisher: Publisher,
        routers: Mapping[str, RouterKind],
        *,
        ws_url: str | None = None,
        rpc: RpcClient | None = None,
        mode: WatchMode = "subscribe",
        full_transactions: bool = True,
        poll_interval: float = 0.25,
        publish_transactions: bool = False,
        dedup_capacity: int = 100_000,
        backoff: float = 0.05,
        backoff_max: float = 2.0,
        max_queue: int = 10_000,
        registry: CollectorRegistry | None = None,
        swap_topic: str = TOPIC_PENDING_SWAPS,
        tx_topic: str = TOPIC_PENDING_TXS,
    ) -> None:
        if mode not in ("subscribe", "poll", "auto"):
            raise ValueError(f"mode must be 'subscribe', 'poll' or 'auto', got {mode!r}")
        if mode != "poll" and not ws_url:
            raise ValueError(f"mode {mode!r} needs ws_url")
        if rpc is None and not ws_url:
            raise ValueError("give rpc (an RpcClient) or ws_url")
        if dedup_capacity < 1 or poll_interval <= 0:
            raise ValueError("dedup_capacity must be >= 1 and poll_interval > 0")
        self.publisher = publisher
        self.routers: dict[str, RouterKind] = {}
        for addr, kind in routers.items():
            if kind not in ROUTER_KINDS:
                raise ValueError(f"router {addr}: unknown kind {kind!r}; expected one of {ROUTER_KINDS}")
            self.routers[_address(addr, "router").lower()] = kind
        self.ws_url = ws_url
        self._own_rpc = rpc is None
        self.rpc = rpc if rpc is not None else RpcClient(ws_url or "")
        self.mode: WatchMode = mode
        self.full_transactions = full_transactions
        self.poll_interval = poll_interval
        self.publish_transactions = publish_transactions
        self.dedup_capacity = dedup_capacity
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_queue = max_queue
        self.registry = registry
        self.swap_topic = swap_topic
        self.tx_topic = tx_topic
        self.stats = MempoolStats()
        self.subscription: WsSubscription | None = None
        self.polling = mode == "poll"
        self._m = _metrics(registry)
        self._children: dict[tuple[int, str], Any] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._hashes: dict[str, float] = {}  # hash-only notifications waiting for their bodies
        self._fetcher: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._resync_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Run in the background; returns once subscribed (or polling) and the pool has been read once."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="mempool-watcher")
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._task.done() and not self._ready.is_set():
            self._task.result()  # re-raise why it ended

    async def stop(self) -> None:
        """Stop watching and close the subscription (and the RPC client if the watcher opened it). Idempotent."""
        self._stopping = True
        if self.subscription is not None:
            await self.subscription.close()
        for task in (self._task, self._fetcher):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._fetcher = None
        if self._own_rpc:
            await self.rpc.close()

    async def run(self) -> None:
        """Watch until :meth:`stop` (or cancellation)."""
        if self.mode != "poll":
            variants: list[tuple[Any, ...]] = [(True,), ()] if self.full_transactions else [()]
            for params in variants:
                try:
                    await self._run_subscription(params)
                    return
                except SubscriptionRejectedError as exc:
                    log.warning("mempool: %s", exc)
                    self._error("subscription_rejected")
                    if self.mode == "subscribe" and params == variants[-1]:
                        raise
            log.warning("mempool: the node offers no pending-tx subscription; polling txpool_content")
        self.polling = True
        await self._run_polling()

    async def _run_subscription(self, params: tuple[Any, ...]) -> None:
        assert self.ws_url is not None
        sub = WsSubscription(
            self.ws_url,
            "newPendingTransactions",
            params,
            on_reconnect=self._on_reconnect,
            backoff=self.backoff,
            backoff_max=self.backoff_max,
            max_queue=self.max_queue,
            registry=self.registry,
        )
        self.subscription = sub
        try:
            await sub.start()
            await self.resync()
            self._ready.set()
            async for note in sub.stamped():
                result = note.result
                if isinstance(result, str):
                    self._queue_hash(result, note.received_at)
                else:
                    await self.handle_tx(result, source="subscription", received_at=note.received_at)
        finally:
            await sub.close()

    async def _run_polling(self) -> None:
        while not self._stopping:
            await self.resync()
            self._ready.set()
            await asyncio.sleep(self.poll_interval)

    async def _on_reconnect(self) -> None:
        await self.resync()

    # ------------------------------------------------------------------ sources
    async def resync(self) -> int:
        """Re-read the pending section of ``txpool_content``; returns the number of txs that were new."""
        async with self._resync_lock:
            self.stats.resyncs += 1
            self._m.resyncs.inc()
            try:
                content = await self.rpc.request("txpool_content")
            except (RpcClientError, OSError) as exc:
                self._error("resync_failed")
                log.warning("mempool: txpool_content failed: %s", exc)
                return 0
            received_at = time.monotonic()
            pending = content.get("pending") if isinstance(content, dict) else None
            if not isinstance(pending, dict):
                self._error("resync_failed")
                return 0
            txs: list[tuple[str, int, Any]] = []
            for sender, by_nonce in pending.items():
                if not isinstance(by_nonce, dict):
                    self._error("malformed_tx")
                    continue
                for nonce, tx in by_nonce.items():
                    txs.append((str(sender), int(nonce) if str(nonce).isdigit() else 0, tx))
            txs.sort(key=lambda t: (t[0], t[1]))
            new = 0
            for _, _, tx in txs:
                new += await self.handle_tx(tx, source="txpool", received_at=received_at)
            return new

    def _queue_hash(self, tx_hash: Any, received_at: float) -> None:
        if not isinstance(tx_hash, str) or not _HASH_RE.fullmatch(tx_hash):
            self._seen_one("subscription")
            self._error("malformed_tx")
            return
        h = tx_hash.lower()
        if h in self._seen or h in self._hashes:
            self._seen_one("subscription")
            self._duplicate()
            return
        self._hashes[h] = received_at
        if self._fetcher is None or self._fetcher.done():
            self._fetcher = asyncio.create_task(self._fetch_bodies(), name="mempool-fetch")

    async def _fetch_bodies(self) -> None:
        while self._hashes:
            batch = list(self._hashes.items())[:500]
            for h, _ in batch:
                del self._hashes[h]
            try:
                bodies = await self.rpc.batch(
                    [("eth_getTransactionByHash", [h]) for h, _ in batch], return_exceptions=True
                )
            except (RpcClientError, OSError) as exc:
                log.warning("mempool: fetching %d tx bodies failed: %s", len(batch), exc)
                for _ in batch:
                    self._seen_one("subscription")
                    self._error("fetch_failed")
                continue
            for (_h, received_at), body in zip(batch, bodies, strict=True):
                if body is None or isinstance(body, Exception):
                    self._seen_one("subscription")
                    self._error("not_found" if body is None else "fetch_failed")
                    continue
                await self.handle_tx(body, source="subscription", received_at=received_at)

    # ------------------------------------------------------------------ one tx
    def _child(self, metric: PromCounter, label: str) -> Any:
        # labels() takes a lock and builds a key on every call; the hot path keeps the children
        key = (id(metric), label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(label)
        return child

    def _seen_one(self, source: str) -> None:
        self.stats.seen[source] += 1
        self._child(self._m.seen, source).inc()

    def _error(self, reason: str) -> None:
        self.stats.errors[reason] += 1
        self._child(self._m.errors, reason).inc()

    def _duplicate(self) -> None:
        self.stats.duplicates += 1
        self._m.duplicates.inc()

    def _remember(self, h: str) -> None:
        self._seen[h] = None
        if len(self._seen) > self.dedup_capacity:
            self._seen.popitem(last=False)

    async def handle_tx(
        self, tx: Any, *, source: str = "subscription", received_at: float | None = None
    ) -> int:
        """Process one pending tx object (as a node returns it); returns 1 if it was new, else 0.

        Never raises for bad input: malformed txs and calldata are counted in ``decode_errors`` and skipped.
        """
        arrival = time.monotonic() if received_at is None else received_at
        self._seen_one(source)
        h = tx.get("hash") if isinstance(tx, Mapping) else None
        key = h.lower() if isinstance(h, str) else None
        if key is not None and key in self._seen:
            self._seen.move_to_end(key)
            self._duplicate()
            return 0
        if isinstance(tx, Mapping) and tx.get("blockNumber") is not None:
            if key is not None:
                self._remember(key)
            self.stats.mined += 1
            self._m.mined.inc()
            return 0
        try:
            parsed = _parse_tx(tx)
        except (_MalformedTx, ValueError) as exc:
            if key is not None and _HASH_RE.fullmatch(key):
                self._remember(key)
            self._error("malformed_tx")
            log.debug("mempool: malformed tx %s: %s", key, exc)
            return 0
        self._remember(parsed.hash)
        seen_at = time.time() - (time.monotonic() - arrival)
        events: list[PendingSwap | PendingTransaction] = []
        if self.publish_transactions:
            try:
                events.append(
                    PendingTransaction(
                        hash=parsed.hash,
                        sender=parsed.sender,
                        to=parsed.to,
                        nonce=parsed.nonce,
                        value=parsed.value,
                        gas=parsed.gas,
                        max_fee_per_gas=parsed.max_fee,
                        max_priority_fee_per_gas=parsed.max_tip,
                        input=parsed.data,
                        seen_at=seen_at,
                    )
                )
            except (TypeError, ValueError):
                self._error("invalid_tx")
        kind = self.routers.get(parsed.to) if parsed.to is not None else None
        if kind is not None:
            events.extend(self._swaps(parsed, kind, seen_at))
        for event in events:
            try:
                if isinstance(event, PendingSwap):
                    await self.publisher.publish(self.swap_topic, event)
                    self.stats.swaps += 1
                    self._child(self._m.swaps, event.protocol).inc()
                else:
                    await self.publisher.publish(self.tx_topic, event)
                    self.stats.transactions += 1
            except Exception as exc:  # a failing bus must not end the watcher
                self._error("publish_failed")
                log.warning("mempool: publishing %s failed: %s", parsed.hash, exc)
        if events:
            self._m.latency.observe(time.monotonic() - arrival)
        return 1

    def _swaps(self, tx: _Tx, kind: RouterKind, seen_at: float) -> list[PendingSwap]:
        try:
            calls = decode_router_call(kind, tx.data, tx.value)
        except CalldataError as exc:
            self._error(exc.reason)
            log.debug("mempool: %s: %s", tx.hash, exc)
            return []
        out: list[PendingSwap] = []
        for c in calls:
            try:
                out.append(
                    PendingSwap(
                        tx_hash=tx.hash,
                        sender=tx.sender,
                        router=tx.to or "",
                        protocol=c.protocol,
                        path=c.path,
                        fees=c.fees,
                        exact_input=c.exact_input,
                        amount_in=c.amount_in,
                        amount_out_min=c.amount_out_min,
                        amount_out=c.amount_out,
                        amount_in_max=c.amount_in_max,
                        deadline=c.deadline,
                        recipient=c.recipient,
                        method=c.method,
                        value=tx.value,
                        nonce=tx.nonce,
                        max_fee_per_gas=tx.max_fee,
                        max_priority_fee_per_gas=tx.max_tip,
                        seen_at=seen_at,
                    )
                )
            except (TypeError, ValueError) as exc:
                self._error("invalid_swap")
                log.debug("mempool: %s: %s", tx.hash, exc)
        return out
