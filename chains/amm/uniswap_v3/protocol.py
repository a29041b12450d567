"""Uniswap V3 pools as a registered pool kind, :data:`chains.kinds.PoolKind.V3`.

State: :class:`~chains.amm.uniswap_v3.pool.V3PoolState`, synced from ``Initialize``, ``Swap`` (slot0 price/tick and
the active liquidity, as reported) and ``Mint`` / ``Burn`` (:func:`~chains.amm.uniswap_v3.pool.update_position`:
ticks' gross/net, bitmap flips, active liquidity).  Quotes: the pool's swap loop (QuoterV2's numbers).  Pool-state
document ``"uniswap_v3"``: ``fee``, ``tick_spacing``, ``sqrt_price_x96``, ``tick``, ``liquidity``, ``ticks``.
Executor hop: flags kind bit 1, parameter = ``sqrtPriceLimitX96`` (u160, 0 = none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chains.amm.registry import (
    HopEncoding,
    HopParamError,
    PoolDocError,
    PoolEventError,
    PoolJournal,
    PoolProtocol,
    QuoteResult,
    SwapQuoteError,
    doc_int,
    event_topic,
    register_protocol,
)
from chains.amm.uniswap_v3.errors import UniswapV3Revert
from chains.amm.uniswap_v3.pool import TickInfo, V3PoolState, swap, update_position
from chains.amm.uniswap_v3.tick_math import MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK
from chains.kinds import PoolKind

__all__ = ["T_V3_BURN", "T_V3_INITIALIZE", "T_V3_MINT", "T_V3_SWAP", "UNISWAP_V3"]

T_V3_INITIALIZE = event_topic("Initialize(uint160,int24)")
T_V3_SWAP = event_topic("Swap(address,address,int256,int256,uint160,uint128,int24)")
T_V3_MINT = event_topic("Mint(address,address,int24,int24,uint128,uint256,uint256)")
T_V3_BURN = event_topic("Burn(address,int24,int24,uint128,uint256,uint256)")

_SAVED = ("sqrt_price_x96", "tick", "liquidity")
_TWO_255 = 1 << 255
_TWO_256 = 1 << 256


# ---------------------------------------------------------------------------------------------- state events
def _int24(word: str) -> int:
    v = int(word, 16)
    return v - _TWO_256 if v >= _TWO_255 else v


def on_swap(journal: PoolJournal, address: str, pool: V3PoolState, data: str, topics: Sequence[str]) -> None:
    if len(data) != 322:
        raise PoolEventError(f"V3 Swap data has {len(data)} characters, not 322")
    journal.save_fields(address, pool, _SAVED)
    tick = int(data[258:322], 16)
    # apply_swap(pool, sqrt, tick, liquidity), inlined
    pool.sqrt_price_x96 = int(data[130:194], 16)
    pool.liquidity = int(data[194:258], 16)
    pool.tick = tick - _TWO_256 if tick >= _TWO_255 else tick


def _modify(
    journal: PoolJournal, address: str, pool: V3PoolState, lower: int, upper: int, delta: int
) -> None:
    journal.save_fields(address, pool, _SAVED)
    spacing = pool.tick_spacing
    for t in (lower, upper):
        journal.save_entry(pool.ticks, t)
        journal.save_entry(pool.bitmap, (t // spacing) >> 8)
    update_position(pool, lower, upper, delta)


def on_mint(journal: PoolJournal, address: str, pool: V3PoolState, data: str, topics: Sequence[str]) -> None:
    if len(data) != 258 or len(topics) != 4:
        raise PoolEventError("V3 Mint log does not have 4 topics and 4 data words")
    _modify(journal, address, pool, _int24(topics[2]), _int24(topics[3]), int(data[66:130], 16))


def on_burn(journal: PoolJournal, address: str, pool: V3PoolState, data: str, topics: Sequence[str]) -> None:
    if len(data) != 194 or len(topics) != 4:
        raise PoolEventError("V3 Burn log does not have 4 topics and 3 data words")
    amount = int(data[2:66], 16)
    if amount:
        _modify(journal, address, pool, _int24(topics[2]), _int24(topics[3]), -amount)


def on_initialize(
    journal: PoolJournal, address: str, pool: V3PoolState, data: str, topics: Sequence[str]
) -> None:
    if len(data) != 130:
        raise PoolEventError("V3 Initialize data is not 2 words")
    journal.save_fields(address, pool, _SAVED)
    pool.sqrt_price_x96 = int(data[2:66], 16)
    pool.tick = _int24("0x" + data[66:130])


# ---------------------------------------------------------------------------------------------- exact math
def quote(
    state: V3PoolState, zero_for_one: bool, amount_in: int | None, amount_out: int | None, limit: int | None
) -> QuoteResult:
    """The pool's swap loop, as QuoterV2 runs it: no caller limit = the extreme price, and an exact output must
    then be filled completely; with a caller's limit the pool stops at it (a partial fill, as QuoterV2's)."""
    caller_limit = limit is not None
    if limit is None:
        limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    specified = amount_in if amount_in is not None else -(amount_out or 0)
    if abs(specified) >= 2**255:
        raise SwapQuoteError("amount exceeds int256")
    try:
        res = swap(state, zero_for_one=zero_for_one, amount_specified=specified, sqrt_price_limit_x96=limit)
    except UniswapV3Revert as exc:
        raise SwapQuoteError(f"the swap reverts: {type(exc).__name__}: {exc}") from None
    except ValueError as exc:
        raise SwapQuoteError(f"the swap reverts: {exc}") from None
    got_in, got_out = (res.amount0, -res.amount1) if zero_for_one else (res.amount1, -res.amount0)
    if amount_out is not None and got_out < amount_out and not caller_limit:
        raise SwapQuoteError(f"the pool cannot fill the exact output: only {got_out} available")
    sp = res.sqrt_price_x96
    return QuoteResult(got_in, got_out, (sp * sp, 2**192), sp, res.tick, res.ticks_crossed)


# ---------------------------------------------------------------------------------------------- documents
def to_doc(state: V3PoolState) -> dict[str, Any]:
    return {
        "fee": str(state.fee),
        "tick_spacing": str(state.tick_spacing),
        "sqrt_price_x96": str(state.sqrt_price_x96),
        "tick": str(state.tick),
        "liquidity": str(state.liquidity),
        "ticks": [
            {"tick": str(t), "liquidity_gross": str(i.liquidity_gross), "liquidity_net": str(i.liquidity_net)}
            for t, i in sorted(state.ticks.items())
        ],
    }


def from_doc(doc: Mapping[str, Any]) -> V3PoolState:
    spacing = doc_int(doc, "tick_spacing", 1, 16383)
    ticks_raw = doc.get("ticks")
    if not isinstance(ticks_raw, list):
        raise PoolDocError("state file: 'ticks' must be a list")
    ticks: dict[int, TickInfo] = {}
    for i, t in enumerate(ticks_raw):
        if not isinstance(t, Mapping):
            raise PoolDocError(f"state file: ticks[{i}] must be an object")
        where = f"ticks[{i}]."
        tick = doc_int(t, "tick", MIN_TICK, MAX_TICK, where)
        if tick % spacing:
            raise PoolDocError(
                f"state file: ticks[{i}] = {tick} is not a multiple of the tick spacing {spacing}"
            )
        if tick in ticks:
            raise PoolDocError(f"state file: tick {tick} appears twice")
        gross = doc_int(t, "liquidity_gross", 1, 2**128 - 1, where)
        net = doc_int(t, "liquidity_net", -(2**127), 2**127 - 1, where)
        ticks[tick] = TickInfo(gross, net)
    bitmap: dict[int, int] = {}
    for t in ticks:
        compressed = t // spacing
        bitmap[compressed >> 8] = bitmap.get(compressed >> 8, 0) | (1 << (compressed & 0xFF))
    return V3PoolState(
        fee=doc_int(doc, "fee", 0, 999_999),
        tick_spacing=spacing,
        sqrt_price_x96=doc_int(doc, "sqrt_price_x96", MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1),
        tick=doc_int(doc, "tick", MIN_TICK, MAX_TICK),
        liquidity=doc_int(doc, "liquidity", 0, 2**128 - 1),
        ticks=ticks,
        bitmap=bitmap,
    )


# ---------------------------------------------------------------------------------------------- executor hop
def _hop_param(fee: int, sqrt_price_limit_x96: int) -> int:
    limit = sqrt_price_limit_x96
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit < 1 << 160:
        raise HopParamError(
            "bad_amount", f"sqrt_price_limit_x96 must be an integer in [0, 2**160), not {limit!r:.60}"
        )
    return limit


def _hop_fields(param: int) -> tuple[int, int]:
    return 0, param


UNISWAP_V3 = PoolProtocol(
    kind=PoolKind.V3,
    state_type=V3PoolState,
    copy=V3PoolState.copy,
    events={T_V3_SWAP: on_swap, T_V3_MINT: on_mint, T_V3_BURN: on_burn, T_V3_INITIALIZE: on_initialize},
    quote=quote,
    doc_kind="uniswap_v3",
    to_doc=to_doc,
    from_doc=from_doc,
    hop=HopEncoding(flag=1, param_bytes=20, encode=_hop_param, decode=_hop_fields),
)

register_protocol(PoolKind.V3, UNISWAP_V3)
