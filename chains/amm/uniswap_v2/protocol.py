"""Uniswap V2 pairs (and forks) as a registered pool kind, :data:`chains.kinds.PoolKind.V2`.

State: :class:`~chains.amm.uniswap_v2.pool.V2PairState`, synced from ``Sync(reserve0, reserve1)``.  Quotes:
``getAmountOut`` / ``getAmountIn`` (:mod:`chains.amm.uniswap_v2`).  Pool-state document ``"uniswap_v2"``:
``reserve0``, ``reserve1``, ``fee_bps``.  Executor hop: flags kind bit 0, parameter = the fee in bps (u16).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from chains.amm import uniswap_v2 as v2math
from chains.amm.registry import (
    HopEncoding,
    HopParamError,
    PoolEventError,
    PoolJournal,
    PoolProtocol,
    QuoteResult,
    SwapQuoteError,
    doc_int,
    event_topic,
    register_protocol,
)
from chains.amm.uniswap_v2.pool import V2PairState
from chains.kinds import PoolKind

__all__ = ["DEFAULT_FEE_BPS", "T_SYNC", "UNISWAP_V2"]

T_SYNC = event_topic("Sync(uint112,uint112)")
DEFAULT_FEE_BPS = 30
_SAVED = ("reserve0", "reserve1")


def on_sync(journal: PoolJournal, address: str, pair: V2PairState, data: str, topics: Sequence[str]) -> None:
    if len(data) != 130:
        raise PoolEventError(f"Sync data has {len(data)} characters, not 130")
    journal.save_fields(address, pair, _SAVED)
    pair.reserve0 = int(data[2:66], 16)
    pair.reserve1 = int(data[66:130], 16)


def quote(
    pair: V2PairState, zero_for_one: bool, amount_in: int | None, amount_out: int | None, limit: int | None
) -> QuoteResult:
    """``getAmountOut`` (exact input) or ``getAmountIn`` (exact output) at the pair's reserves and fee."""
    if limit is not None:
        raise SwapQuoteError("sqrt_price_limit applies to Uniswap V3 pools only")
    r0, r1 = pair.reserve0, pair.reserve1
    r_in, r_out = (r0, r1) if zero_for_one else (r1, r0)
    try:
        if amount_in is not None:
            got_in, got_out = amount_in, v2math.get_amount_out(amount_in, r_in, r_out, pair.fee_bps)
        else:
            assert amount_out is not None
            got_in, got_out = v2math.get_amount_in(amount_out, r_in, r_out, pair.fee_bps), amount_out
    except ValueError as exc:
        raise SwapQuoteError(str(exc)) from None
    if got_out <= 0:
        raise SwapQuoteError("UniswapV2: INSUFFICIENT_OUTPUT_AMOUNT")
    n0, n1 = (r0 + got_in, r1 - got_out) if zero_for_one else (r0 - got_out, r1 + got_in)
    return QuoteResult(got_in, got_out, (n1, n0))


def to_doc(pair: V2PairState) -> dict[str, Any]:
    return {"reserve0": str(pair.reserve0), "reserve1": str(pair.reserve1), "fee_bps": str(pair.fee_bps)}


def from_doc(doc: Mapping[str, Any]) -> V2PairState:
    r0 = doc_int(doc, "reserve0", 0, 2**112 - 1)
    r1 = doc_int(doc, "reserve1", 0, 2**112 - 1)
    fee = doc_int(doc, "fee_bps", 0, 9_999) if "fee_bps" in doc else DEFAULT_FEE_BPS
    return V2PairState(str(doc.get("address", "")), str(doc["token0"]), str(doc["token1"]), r0, r1, fee)


def _hop_param(fee: int, sqrt_price_limit_x96: int) -> int:
    if not isinstance(fee, int) or not 0 <= fee < 10_000:
        raise HopParamError("bad_fee", f"a V2 fee is in bps [0, 10000), not {fee!r}")
    return fee


def _hop_fields(param: int) -> tuple[int, int]:
    return param, 0


UNISWAP_V2 = PoolProtocol(
    kind=PoolKind.V2,
    state_type=V2PairState,
    copy=replace,
    events={T_SYNC: on_sync},
    quote=quote,
    doc_kind="uniswap_v2",
    to_doc=to_doc,
    from_doc=from_doc,
    hop=HopEncoding(flag=0, param_bytes=2, encode=_hop_param, decode=_hop_fields),
)

register_protocol(PoolKind.V2, UNISWAP_V2)
