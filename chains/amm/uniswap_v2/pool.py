"""A Uniswap V2 pair as plain data (what ``getReserves`` returns, with the pair's tokens and fee)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["V2PairState"]


@dataclass(slots=True, eq=False)
class V2PairState:
    """A Uniswap V2 pair: what ``getReserves`` returns (reserves only; the timestamp is not kept)."""

    address: str
    token0: str
    token1: str
    reserve0: int
    reserve1: int
    fee_bps: int = 30
