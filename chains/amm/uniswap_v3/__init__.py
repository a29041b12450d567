"""Uniswap V3 math, an exact integer port of v3-core's libraries (one module per Solidity library) and of
the pool's swap loop (:mod:`.pool`). Python ints only; results equal the contracts' to the wei."""

from __future__ import annotations

from chains.amm.uniswap_v3.errors import (
    ASError,
    IncompleteOutputError,
    LOKError,
    SPLError,
    SqrtRatioOutOfRangeError,
    TickOutOfRangeError,
    UniswapV3Revert,
)
from chains.amm.uniswap_v3.pool import (
    SwapResult,
    TickInfo,
    V3PoolState,
    apply_swap,
    quote_exact_input,
    quote_exact_output,
    swap,
    update_position,
)
from chains.amm.uniswap_v3.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)

__all__ = [
    "MAX_SQRT_RATIO",
    "MAX_TICK",
    "MIN_SQRT_RATIO",
    "MIN_TICK",
    "ASError",
    "IncompleteOutputError",
    "LOKError",
    "SPLError",
    "SqrtRatioOutOfRangeError",
    "SwapResult",
    "TickInfo",
    "TickOutOfRangeError",
    "UniswapV3Revert",
    "V3PoolState",
    "apply_swap",
    "get_sqrt_ratio_at_tick",
    "get_tick_at_sqrt_ratio",
    "quote_exact_input",
    "quote_exact_output",
    "swap",
    "update_position",
]
