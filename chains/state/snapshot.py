"""Pool snapshots as files, and offline quotes from them.

:func:`snapshot_pool` reads one pool at one block over RPC (its kind is detected: Uniswap V3 pool or Uniswap V2
pair) and returns the versioned JSON document described in ``docs/pool-state-format.md`` — every integer as a
decimal STRING, so any JSON reader keeps it exact.  :func:`quote_from_state` prices a swap against such a document
with the exact integer ports in :mod:`chains.amm` (no I/O): the result equals QuoterV2 / ``getAmountsOut`` /
``getAmountsIn`` on the chain at the snapshot block, to the wei.

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
from chains.amm import uniswap_v2 as v2math
from chains.amm.uniswap_v3.tick_math import MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK

__all__ = [
    "FORMAT",
    "VERSION",
    "QuoteError",
    "SnapshotError",
    "V2PairRead",
    "V3PoolRead",
    "bitmap_word_range",
    "quote_from_state",
    "quote_main",
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
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "block": str(number),
        "block_hash": block_hash,
    }
    if ok[0] and ok[2]:
        pool = await read_v3_pool(rpc, address, number)
        doc.update(
            {
                "kind": "uniswap_v3",
                "address": pool.address,
                "token0": pool.token0,
                "token1": pool.token1,
                "fee": str(pool.fee),
                "tick_spacing": str(pool.tick_spacing),
                "sqrt_price_x96": str(pool.sqrt_price_x96),
                "tick": str(pool.tick),
                "liquidity": str(pool.liquidity),
                "ticks": [
                    {"tick": str(t), "liquidity_gross": str(g), "liquidity_net": str(n)}
                    for t, (g, n) in sorted(pool.ticks.items())
                ],
            }
        )
        return doc
    if ok[1]:
        pair = await read_v2_pair(rpc, address, number)
        doc.update(
            {
                "kind": "uniswap_v2",
                "address": pair.address,
                "token0": pair.token0,
                "token1": pair.token1,
                "reserve0": str(pair.reserve0),
                "reserve1": str(pair.reserve1),
                "fee_bps": str(v2_fee_bps),
            }
        )
        return doc
    raise SnapshotError(
        f"{address} is neither a Uniswap V3 pool nor a Uniswap V2 pair "
        "(Curve pools are reserved for a later format version)"
    )


# ---------------------------------------------------------------------------------------------- reading a file
def _int_field(doc: Mapping[str, Any], key: str, lo: int, hi: int, where: str = "") -> int:
    if key not in doc:
        raise SnapshotError(f"state file: missing field {where}{key!r}")
    raw = doc[key]
    if not isinstance(raw, str):
        raise SnapshotError(
            f"state file: {where}{key!r} must be an integer as a decimal string, not {raw!r:.60}"
        )
    try:
        value = int(raw, 10)
    except ValueError:
        raise SnapshotError(f"state file: {where}{key!r} is not a decimal integer: {raw!r:.60}") from None
    if not lo <= value <= hi:
        raise SnapshotError(f"state file: {where}{key!r} = {value} is outside [{lo}, {hi}]")
    return value


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
    kind = doc.get("kind")
    if kind not in ("uniswap_v2", "uniswap_v3"):
        raise SnapshotError(f"state file: unknown pool kind {kind!r} (supported: uniswap_v2, uniswap_v3)")
    for key in ("token0", "token1"):
        if key not in doc:
            raise SnapshotError(f"state file: missing field {key!r}")
        _checked_address(doc[key])
    return dict(doc)


@dataclass(frozen=True, slots=True)
class _V3File:
    token0: str
    token1: str
    fee: int
    tick_spacing: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    ticks: dict[int, tuple[int, int]]


def _v3_from_doc(doc: Mapping[str, Any]) -> _V3File:
    spacing = _int_field(doc, "tick_spacing", 1, 16383)
    ticks_raw = doc.get("ticks")
    if not isinstance(ticks_raw, list):
        raise SnapshotError("state file: 'ticks' must be a list")
    ticks: dict[int, tuple[int, int]] = {}
    for i, t in enumerate(ticks_raw):
        if not isinstance(t, Mapping):
            raise SnapshotError(f"state file: ticks[{i}] must be an object")
        where = f"ticks[{i}]."
        tick = _int_field(t, "tick", MIN_TICK, MAX_TICK, where)
        if tick % spacing:
            raise SnapshotError(
                f"state file: ticks[{i}] = {tick} is not a multiple of the tick spacing {spacing}"
            )
        if tick in ticks:
            raise SnapshotError(f"state file: tick {tick} appears twice")
        gross = _int_field(t, "liquidity_gross", 1, 2**128 - 1, where)
        net = _int_field(t, "liquidity_net", -(2**127), 2**127 - 1, where)
        ticks[tick] = (gross, net)
    return _V3File(
        token0=str(doc["token0"]),
        token1=str(doc["token1"]),
        fee=_int_field(doc, "fee", 0, 999_999),
        tick_spacing=spacing,
        sqrt_price_x96=_int_field(doc, "sqrt_price_x96", MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1),
        tick=_int_field(doc, "tick", MIN_TICK, MAX_TICK),
        liquidity=_int_field(doc, "liquidity", 0, 2**128 - 1),
        ticks=ticks,
    )


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
    if doc["kind"] == "uniswap_v2":
        if limit is not None:
            raise QuoteError("sqrt_price_limit applies to Uniswap V3 pools only")
        return _quote_v2(doc, zfo, a_in, a_out)
    return _quote_v3(_v3_from_doc(doc), zfo, a_in, a_out, limit)


def _quote_v2(doc: Mapping[str, Any], zfo: bool, a_in: int | None, a_out: int | None) -> dict[str, Any]:
    r0 = _int_field(doc, "reserve0", 0, 2**112 - 1)
    r1 = _int_field(doc, "reserve1", 0, 2**112 - 1)
    fee = _int_field(doc, "fee_bps", 0, 9_999) if "fee_bps" in doc else V2_DEFAULT_FEE_BPS
    r_in, r_out = (r0, r1) if zfo else (r1, r0)
    try:
        if a_in is not None:
            got_in, got_out = a_in, v2math.get_amount_out(a_in, r_in, r_out, fee)
        else:
            assert a_out is not None
            got_in, got_out = v2math.get_amount_in(a_out, r_in, r_out, fee), a_out
    except ValueError as exc:
        raise QuoteError(str(exc)) from None
    if got_out <= 0:
        raise QuoteError("UniswapV2: INSUFFICIENT_OUTPUT_AMOUNT")
    n0, n1 = (r0 + got_in, r1 - got_out) if zfo else (r0 - got_out, r1 + got_in)
    return {
        "kind": "uniswap_v2",
        "amount_in": str(got_in),
        "amount_out": str(got_out),
        "sqrt_price_after": None,
        "tick_after": None,
        "ticks_crossed": "0",
        "price_after": _price(n1, n0),
    }


def _quote_v3(
    f: _V3File, zfo: bool, a_in: int | None, a_out: int | None, limit: int | None
) -> dict[str, Any]:
    from chains.amm.uniswap_v3.errors import UniswapV3Revert
    from chains.amm.uniswap_v3.pool import TickInfo, V3PoolState, swap

    state = V3PoolState(
        fee=f.fee,
        tick_spacing=f.tick_spacing,
        sqrt_price_x96=f.sqrt_price_x96,
        tick=f.tick,
        liquidity=f.liquidity,
        ticks={t: TickInfo(g, n) for t, (g, n) in f.ticks.items()},
        bitmap=_bitmap_of(f.ticks, f.tick_spacing),
    )
    caller_limit = limit is not None
    if limit is None:
        limit = MIN_SQRT_RATIO + 1 if zfo else MAX_SQRT_RATIO - 1
    specified = a_in if a_in is not None else -(a_out or 0)
    if abs(specified) >= 2**255:
        raise QuoteError("amount exceeds int256")
    try:
        res = swap(state, zero_for_one=zfo, amount_specified=specified, sqrt_price_limit_x96=limit)
    except UniswapV3Revert as exc:
        raise QuoteError(f"the swap reverts: {type(exc).__name__}: {exc}") from None
    except ValueError as exc:
        raise QuoteError(f"the swap reverts: {exc}") from None
    got_in, got_out = (res.amount0, -res.amount1) if zfo else (res.amount1, -res.amount0)
    if a_out is not None and got_out < a_out and not caller_limit:
        # QuoterV2 requires the full output when no price limit is given (and reverts); with a caller's limit the
        # pool stops at it and the quote is the partial fill, as QuoterV2's is.
        raise QuoteError(f"the pool cannot fill the exact output: only {got_out} available")
    sp = res.sqrt_price_x96
    return {
        "kind": "uniswap_v3",
        "amount_in": str(got_in),
        "amount_out": str(got_out),
        "sqrt_price_after": str(sp),
        "tick_after": str(res.tick),
        "ticks_crossed": str(res.ticks_crossed),
        "price_after": _price(sp * sp, 2**192),
    }


def _bitmap_of(ticks: Mapping[int, Any], spacing: int) -> dict[int, int]:
    bitmap: dict[int, int] = {}
    for t in ticks:
        compressed = t // spacing
        bitmap[compressed >> 8] = bitmap.get(compressed >> 8, 0) | (1 << (compressed & 0xFF))
    return bitmap


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
