"""Pool snapshots as files, and offline quotes from them.

:func:`snapshot_pool` reads one pool at one block over RPC (its kind is detected: Uniswap V3 pool or Uniswap V2
pair) and returns the versioned JSON document described in ``docs/pool-state-format.md`` — every integer as a
decimal STRING, so any JSON reader keeps it exact.  :func:`quote_from_state` prices a swap against such a document
with the exact integer ports in :mod:`chains.amm` (no I/O): the result equals QuoterV2 / ``getAmountsOut`` /
``getAmountsIn`` on the chain at the snapshot block, to the wei.

The document is a common header (format, version, block, kind, address, tokens) written and checked here, plus
the kind's own fields, written and read by the kind's registered entry (:attr:`chains.amm.registry.PoolProtocol.to_doc`
/ ``from_doc``, looked up by the document's ``kind``): :func:`pool_state_document` and :func:`read_pool_state`
work for every registered kind, the quote runs the kind's registered exact math.

The RPC readers (:func:`read_v3_pool`, :func:`read_v2_pair`) are shared with :func:`chains.state.chain.load_initial`.
The V3 reader scans every ``tickBitmap`` word of the tick spacing's full range (batched ``eth_call``s), then
reads ``ticks(t)`` for each initialized tick, all pinned to one block number.

``snapshot_main`` / ``quote_main`` are the bodies of ``mevsuite pool snapshot`` and ``mevsuite quote``: they print
JSON on stdout (errors too, as ``{"error": {"type", "message"}}``) and return the process exit code.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chains import wirejson
from chains.amm.registry import (
    PoolDocError,
    PoolProtocol,
    SwapQuoteError,
    protocol,
    protocol_for_doc,
    protocols,
)
from chains.amm.uniswap_v2.pool import V2PairState
from chains.amm.uniswap_v3.pool import TickInfo, V3PoolState
from chains.amm.uniswap_v3.tick_math import MAX_TICK, MIN_TICK
from chains.kinds import PoolKind

__all__ = [
    "FORMAT",
    "VERSION",
    "QuoteError",
    "SnapshotError",
    "V2PairRead",
    "V3PoolRead",
    "bitmap_word_range",
    "load_state",
    "pool_state_document",
    "quote_from_state",
    "quote_main",
    "read_pool_state",
    "read_v2_pair",
    "read_v3_pool",
    "snapshot_main",
    "snapshot_pool",
]

FORMAT = "mevsuite.pool-state"
VERSION = 1
STATE_FILE_MAX_BYTES = 64 << 20  # a V3 pool with every tick initialised is a few MB
UINT256_MAX = 2**256 - 1
BATCH = 1_000  # eth_calls per JSON-RPC batch
V2_DEFAULT_FEE_BPS = 30


class SnapshotError(ValueError):
    """A pool cannot be snapshotted (no contract, unknown kind, bad block), or a state file is malformed."""


class QuoteError(ValueError):
    """A quote cannot be given: bad input (amounts, token, limit) or the swap reverts on chain (reason given)."""


class CallRpc(Protocol):
    """What the readers need of an RPC client (``chains.node.rpc.RpcClient`` has it)."""

    async def request(self, method: str, params: Any = None) -> Any: ...

    async def batch(
        self, calls: Sequence[tuple[str, Any]], *, return_exceptions: bool = False
    ) -> list[Any]: ...


def _sel(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


SEL = {
    name: _sel(sig)
    for name, sig in {
        "slot0": "slot0()",
        "liquidity": "liquidity()",
        "fee": "fee()",
        "tickSpacing": "tickSpacing()",
        "token0": "token0()",
        "token1": "token1()",
        "tickBitmap": "tickBitmap(int16)",
        "ticks": "ticks(int24)",
        "getReserves": "getReserves()",
    }.items()
}


def _word(value: int) -> str:
    return (value % 2**256).to_bytes(32, "big").hex()


def _signed(word: int, bits: int = 256) -> int:
    return word - (1 << bits) if word >= 1 << (bits - 1) else word


def _words(data: Any, n: int, what: str) -> list[int]:
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 2 + 64 * n:
        raise SnapshotError(f"{what}: unexpected return data {data!r:.80}")
    return [int(data[2 + 64 * i : 66 + 64 * i], 16) for i in range(n)]


def _address_word(word: int) -> str:
    return str(to_checksum_address(f"0x{word:040x}"))


async def _block_tag(rpc: CallRpc, block: int | None) -> tuple[int, str]:
    """The block number and hash every read is pinned to (``None`` = the latest block, resolved once)."""
    if block is not None and (not isinstance(block, int) or isinstance(block, bool) or block < 0):
        raise SnapshotError(f"block must be a non-negative integer, not {block!r}")
    head = await rpc.request("eth_getBlockByNumber", ["latest" if block is None else hex(block), False])
    if not isinstance(head, dict):
        raise SnapshotError(f"block {block} does not exist on this node")
    return int(head["number"], 16), str(head["hash"])


async def _calls(
    rpc: CallRpc, address: str, datas: Sequence[str], tag: str, *, return_exceptions: bool = False
) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(datas), BATCH):
        chunk = [("eth_call", [{"to": address, "data": d}, tag]) for d in datas[i : i + BATCH]]
        out.extend(await rpc.batch(chunk, return_exceptions=return_exceptions))
    return out


def bitmap_word_range(tick_spacing: int) -> range:
    """Every ``tickBitmap`` word position a pool with this spacing can use (``compress(tick) >> 8``)."""
    if tick_spacing <= 0:
        raise SnapshotError(f"tick spacing must be positive, not {tick_spacing}")
    return range((MIN_TICK // tick_spacing) >> 8, ((MAX_TICK // tick_spacing) >> 8) + 1)


@dataclass(frozen=True, slots=True)
class V3PoolRead:
    address: str
    token0: str
    token1: str
    fee: int
    tick_spacing: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    ticks: dict[int, tuple[int, int]]  # tick -> (liquidityGross, liquidityNet), initialized ticks only
    bitmap: dict[int, int]  # word position -> word, non-zero words only


@dataclass(frozen=True, slots=True)
class V2PairRead:
    address: str
    token0: str
    token1: str
    reserve0: int
    reserve1: int


async def read_v3_pool(rpc: CallRpc, address: str, block: int) -> V3PoolRead:
    """A V3 pool's swap-relevant state at ``block``: slot0, liquidity, fee, spacing, tokens, bitmap and ticks."""
    tag = hex(block)
    head = await _calls(
        rpc, address, [SEL[k] for k in ("slot0", "liquidity", "fee", "tickSpacing", "token0", "token1")], tag
    )
    sqrt_price, tick_word = _words(head[0], 2, "slot0()")
    (liquidity,), (fee,), (spacing_word,) = (_words(h, 1, "pool getter") for h in head[1:4])
    (t0,), (t1,) = (_words(h, 1, "token getter") for h in head[4:6])
    spacing = _signed(spacing_word)
    words = list(bitmap_word_range(spacing))
    raw = await _calls(rpc, address, [SEL["tickBitmap"] + _word(w) for w in words], tag)
    bitmap: dict[int, int] = {}
    for w, data in zip(words, raw, strict=True):
        (value,) = _words(data, 1, "tickBitmap()")
        if value:
            bitmap[w] = value
    initialized = [
        ((w << 8) + bit) * spacing
        for w, value in sorted(bitmap.items())
        for bit in range(256)
        if value >> bit & 1
    ]
    tick_data = await _calls(rpc, address, [SEL["ticks"] + _word(t) for t in initialized], tag)
    ticks: dict[int, tuple[int, int]] = {}
    for t, data in zip(initialized, tick_data, strict=True):
        gross, net = _words(data, 2, "ticks()")
        ticks[t] = (gross, _signed(net))
    return V3PoolRead(
        address=str(to_checksum_address(address)),
        token0=_address_word(t0),
        token1=_address_word(t1),
        fee=fee,
        tick_spacing=spacing,
        sqrt_price_x96=sqrt_price,
        tick=_signed(tick_word),
        liquidity=liquidity,
        ticks=ticks,
        bitmap=bitmap,
    )


async def read_v2_pair(rpc: CallRpc, address: str, block: int) -> V2PairRead:
    """A V2 pair's reserves and tokens at ``block``."""
    out = await _calls(rpc, address, [SEL["getReserves"], SEL["token0"], SEL["token1"]], hex(block))
    r0, r1 = _words(out[0], 2, "getReserves()")
    (t0,), (t1,) = _words(out[1], 1, "token0()"), _words(out[2], 1, "token1()")
    return V2PairRead(str(to_checksum_address(address)), _address_word(t0), _address_word(t1), r0, r1)


def _checked_address(address: str) -> str:
    if not isinstance(address, str):
        raise SnapshotError(f"not an address: {address!r}")
    low = address.lower()
    if len(low) != 42 or not low.startswith("0x") or any(c not in "0123456789abcdef" for c in low[2:]):
        raise SnapshotError(f"not an address: {address!r:.80}")
    try:
        return str(to_checksum_address(address))
    except ValueError as exc:
        raise SnapshotError(f"bad address checksum: {address}") from exc


async def snapshot_pool(
    rpc: CallRpc, address: str, block: int | None = None, *, v2_fee_bps: int = V2_DEFAULT_FEE_BPS
) -> dict[str, Any]:
    """Snapshot the pool at ``address`` at ``block`` (default: latest) as a ``mevsuite.pool-state`` document."""
    address = _checked_address(address)
    if not 0 <= v2_fee_bps < 10_000:
        raise SnapshotError(f"v2 fee must be in [0, 10000) bps, not {v2_fee_bps}")
    number, block_hash = await _block_tag(rpc, block)
    tag = hex(number)
    code = await rpc.request("eth_getCode", [address, tag])
    if not code or code == "0x":
        raise SnapshotError(f"no contract at {address} at block {number}")
    probe = await _calls(
        rpc, address, [SEL["slot0"], SEL["getReserves"], SEL["tickSpacing"]], tag, return_exceptions=True
    )
    ok = [isinstance(p, str) and len(p) >= 2 + 64 for p in probe]
    if ok[0] and ok[2]:
        pool = await read_v3_pool(rpc, address, number)
        state = V3PoolState(
            fee=pool.fee,
            tick_spacing=pool.tick_spacing,
            sqrt_price_x96=pool.sqrt_price_x96,
            tick=pool.tick,
            liquidity=pool.liquidity,
            ticks={t: TickInfo(g, n) for t, (g, n) in pool.ticks.items()},
            bitmap=dict(pool.bitmap),
        )
        return pool_state_document(
            PoolKind.V3, state, pool.address, pool.token0, pool.token1, number, block_hash
        )
    if ok[1]:
        pair = await read_v2_pair(rpc, address, number)
        v2 = V2PairState(pair.address, pair.token0, pair.token1, pair.reserve0, pair.reserve1, v2_fee_bps)
        return pool_state_document(
            PoolKind.V2, v2, pair.address, pair.token0, pair.token1, number, block_hash
        )
    raise SnapshotError(
        f"{address} is neither a Uniswap V3 pool nor a Uniswap V2 pair "
        "(Curve pools are reserved for a later format version)"
    )


def pool_state_document(
    kind: str, state: Any, address: str, token0: str, token1: str, block: int, block_hash: str
) -> dict[str, Any]:
    """The ``mevsuite.pool-state`` document of ``state``, a pool of the registered ``kind`` at ``block``."""
    entry = protocol(kind)
    return {
        "format": FORMAT,
        "version": VERSION,
        "block": str(block),
        "block_hash": block_hash,
        "kind": entry.doc_kind,
        "address": address,
        "token0": token0,
        "token1": token1,
        **entry.to_doc(state),
    }


# ---------------------------------------------------------------------------------------------- reading a file
def load_state(state: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    """Parse (JSON text) and validate a ``mevsuite.pool-state`` document; returns it as a dict."""
    if isinstance(state, str | bytes):
        try:
            doc = wirejson.loads(state, max_bytes=STATE_FILE_MAX_BYTES)
        except ValueError as exc:
            raise SnapshotError(f"state file is not JSON: {exc}") from None
    else:
        doc = state
    if not isinstance(doc, Mapping):
        raise SnapshotError("state file: the top level must be a JSON object")
    if doc.get("format") != FORMAT:
        raise SnapshotError(f"state file: format is {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise SnapshotError(
            f"state file: version {doc.get('version')!r} is not supported (this reader: {VERSION})"
        )
    _doc_protocol(doc)
    for key in ("token0", "token1"):
        if key not in doc:
            raise SnapshotError(f"state file: missing field {key!r}")
        _checked_address(doc[key])
    return dict(doc)


def _doc_protocol(doc: Mapping[str, Any]) -> PoolProtocol:
    kind = doc.get("kind")
    entry = protocol_for_doc(kind) if isinstance(kind, str) else None
    if entry is None:
        supported = ", ".join(p.doc_kind for p in protocols())
        raise SnapshotError(f"state file: unknown pool kind {kind!r} (supported: {supported})")
    return entry


def read_pool_state(state: Mapping[str, Any] | str | bytes) -> tuple[str, Any]:
    """The pool kind and the pool's state (its kind's registered ``state_type``) of a ``mevsuite.pool-state``
    document (JSON text or parsed); :class:`SnapshotError` if it is malformed."""
    return _pool_of(load_state(state))


def _pool_of(doc: Mapping[str, Any]) -> tuple[str, Any]:
    entry = _doc_protocol(doc)
    try:
        return entry.kind, entry.from_doc(doc)
    except PoolDocError as exc:
        raise SnapshotError(str(exc)) from None


# ---------------------------------------------------------------------------------------------- quoting
def _amount(value: int | str | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise QuoteError(f"{what} must be an integer, not {value!r}")
    if isinstance(value, str):
        try:
            value = (
                int(value.strip(), 0) if value.strip().lower().startswith("0x") else int(value.strip(), 10)
            )
        except ValueError:
            raise QuoteError(f"{what} is not an integer: {value!r:.60}") from None
    if not isinstance(value, int):
        raise QuoteError(f"{what} must be an integer, not {type(value).__name__}")
    if value <= 0:
        raise QuoteError(f"{what} must be positive, not {value}")
    if value > UINT256_MAX:
        raise QuoteError(f"{what} exceeds uint256")
    return value


def _zero_for_one(doc: Mapping[str, Any], token_in: str | int) -> bool:
    if isinstance(token_in, bool):
        raise QuoteError(f"unknown token_in {token_in!r}")
    if isinstance(token_in, int) or (isinstance(token_in, str) and token_in.strip() in ("0", "1")):
        idx = int(token_in)
        if idx not in (0, 1):
            raise QuoteError(f"token_in index must be 0 or 1, not {idx}")
        return idx == 0
    if isinstance(token_in, str):
        low = token_in.strip().lower()
        if low == str(doc["token0"]).lower():
            return True
        if low == str(doc["token1"]).lower():
            return False
    raise QuoteError(
        f"token_in {token_in!r:.60} is neither token0 ({doc['token0']}), token1 ({doc['token1']}), 0 nor 1"
    )


def _price(numerator: int, denominator: int) -> str:
    """token1 per token0 in raw units, as a decimal string with 18 significant digits."""
    if denominator == 0:
        return "inf"
    return f"{float(Fraction(numerator, denominator)):.18g}"


def quote_from_state(
    state_json: Mapping[str, Any] | str | bytes,
    amount_in: int | str | None = None,
    amount_out: int | str | None = None,
    token_in: str | int = 0,
    sqrt_price_limit: int | str | None = None,
) -> dict[str, Any]:
    """Quote an exact-input (``amount_in``) or exact-output (``amount_out``) swap of ``token_in`` (address, or
    index 0/1) against a snapshot.  Returns strings: ``amount_in``, ``amount_out``, ``sqrt_price_after``,
    ``tick_after``, ``ticks_crossed``, ``price_after`` (raw token1 per token0) and the pool ``kind``.

    Raises :class:`SnapshotError` for a malformed document and :class:`QuoteError` for bad input or a swap that
    reverts on chain (V2 ``INSUFFICIENT_LIQUIDITY``, V3 ``SPL``, an exact output the pool cannot fill ...).
    """
    doc = load_state(state_json)
    a_in, a_out = _amount(amount_in, "amount_in"), _amount(amount_out, "amount_out")
    if (a_in is None) == (a_out is None):
        raise QuoteError("give exactly one of amount_in and amount_out")
    zfo = _zero_for_one(doc, token_in)
    limit = None if sqrt_price_limit is None else _amount(sqrt_price_limit, "sqrt_price_limit")
    kind, pool = _pool_of(doc)
    try:
        q = protocol(kind).quote(pool, zfo, a_in, a_out, limit)
    except SwapQuoteError as exc:
        raise QuoteError(str(exc)) from None
    return {
        "kind": doc["kind"],
        "amount_in": str(q.amount_in),
        "amount_out": str(q.amount_out),
        "sqrt_price_after": None if q.sqrt_price_after is None else str(q.sqrt_price_after),
        "tick_after": None if q.tick_after is None else str(q.tick_after),
        "ticks_crossed": str(q.ticks_crossed),
        "price_after": _price(*q.price_after),
    }


# ---------------------------------------------------------------------------------------------- CLI bodies
def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    sys.stdout.flush()


def _error(exc: BaseException) -> int:
    """An error is one line of JSON on stdout (as documented in docs/pool-state-format.md), exit status 1."""
    message = " ".join(str(exc).split())
    sys.stdout.write(json.dumps({"error": {"type": type(exc).__name__, "message": message}}) + "\n")
    sys.stdout.flush()
    return 1


def snapshot_main(
    address: str,
    rpc: str,
    block: int | None = None,
    out: str | Path | None = None,
    *,
    v2_fee_bps: int = V2_DEFAULT_FEE_BPS,
) -> int:
    """``mevsuite pool snapshot``: print the snapshot (or, with ``out``, write it and print a summary)."""
    from chains.node.rpc import RpcClient, RpcClientError

    async def go() -> dict[str, Any]:
        async with RpcClient(rpc, timeout=30.0, retries=1) as client:
            return await snapshot_pool(client, address, block, v2_fee_bps=v2_fee_bps)

    try:
        doc = asyncio.run(go())
    except (SnapshotError, RpcClientError, ValueError, OSError) as exc:
        return _error(exc)
    if out is None:
        _print(doc)
        return 0
    try:
        path = Path(out)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        return _error(exc)
    _print(
        {
            "written": str(path),
            "kind": doc["kind"],
            "address": doc["address"],
            "block": doc["block"],
            "ticks": str(len(doc.get("ticks", []))),
        }
    )
    return 0


def quote_main(
    state_path: str | Path,
    amount_in: int | str | None = None,
    amount_out: int | str | None = None,
    token_in: str | int = 0,
    sqrt_price_limit: int | str | None = None,
) -> int:
    """``mevsuite quote``: read a state file, print the quote as JSON (errors as JSON, exit code 1)."""
    try:
        with open(state_path, "rb") as fh:
            text = fh.read(STATE_FILE_MAX_BYTES + 1)
    except OSError as exc:
        return _error(SnapshotError(f"cannot read state file {state_path}: {exc.strerror or exc}"))
    try:
        result = quote_from_state(
            text,
            amount_in=amount_in,
            amount_out=amount_out,
            token_in=token_in,
            sqrt_price_limit=sqrt_price_limit,
        )
    except (SnapshotError, QuoteError) as exc:
        return _error(exc)
    _print(result)
    return 0
