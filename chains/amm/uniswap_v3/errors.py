"""Typed errors mirroring the reverts of Uniswap V3's contracts and libraries.

Each class carries the Solidity ``require`` reason string in ``reason`` (``""`` for the bare ``require``s of
the math libraries), so a simulation that fails can be matched against what a node returned: the pool's
``'SPL'`` revert surfaces here as :class:`SPLError` with ``reason == "SPL"``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ASError",
    "FullMathError",
    "IncompleteOutputError",
    "LAError",
    "LOError",
    "LOKError",
    "LSError",
    "SPLError",
    "SafeCastError",
    "SqrtPriceMathError",
    "SqrtRatioOutOfRangeError",
    "TLMError",
    "TLUError",
    "TUMError",
    "TickMisalignedError",
    "TickOutOfRangeError",
    "UniswapV3Revert",
]


class UniswapV3Revert(Exception):
    """A revert of the on-chain code; ``reason`` is the Solidity reason string (``""`` if none)."""

    reason: ClassVar[str] = ""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else (self.reason or type(self).__name__))


class ASError(UniswapV3Revert):
    """``UniswapV3Pool.swap``: ``amountSpecified`` is zero."""

    reason = "AS"


class LOKError(UniswapV3Revert):
    """``UniswapV3Pool``: the pool is locked (or not initialized: ``slot0.unlocked`` is false until then)."""

    reason = "LOK"


class SPLError(UniswapV3Revert):
    """``UniswapV3Pool.swap``: the price limit is already passed or outside (MIN_SQRT_RATIO, MAX_SQRT_RATIO)."""

    reason = "SPL"


class TickOutOfRangeError(UniswapV3Revert):
    """``TickMath.getSqrtRatioAtTick``: ``|tick| > MAX_TICK``."""

    reason = "T"


class SqrtRatioOutOfRangeError(UniswapV3Revert):
    """``TickMath.getTickAtSqrtRatio``: the price is outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)."""

    reason = "R"


class LSError(UniswapV3Revert):
    """``LiquidityMath.addDelta``: liquidity would go below zero."""

    reason = "LS"


class LAError(UniswapV3Revert):
    """``LiquidityMath.addDelta``: liquidity would exceed ``type(uint128).max``."""

    reason = "LA"


class LOError(UniswapV3Revert):
    """``Tick.update``: a tick's gross liquidity would exceed ``maxLiquidityPerTick``."""

    reason = "LO"


class TLUError(UniswapV3Revert):
    """``UniswapV3Pool.checkTicks``: ``tickLower >= tickUpper``."""

    reason = "TLU"


class TLMError(UniswapV3Revert):
    """``UniswapV3Pool.checkTicks``: ``tickLower < MIN_TICK``."""

    reason = "TLM"


class TUMError(UniswapV3Revert):
    """``UniswapV3Pool.checkTicks``: ``tickUpper > MAX_TICK``."""

    reason = "TUM"


class TickMisalignedError(UniswapV3Revert):
    """``TickBitmap.flipTick``: the tick is not a multiple of the tick spacing (bare ``require``)."""


class FullMathError(UniswapV3Revert):
    """``FullMath.mulDiv``/``mulDivRoundingUp``: zero denominator or a result above 2**256 - 1."""


class SqrtPriceMathError(UniswapV3Revert):
    """``SqrtPriceMath``: zero price/liquidity, a price that underflows, or a result above uint160."""


class SafeCastError(UniswapV3Revert):
    """``SafeCast``: a value does not fit the target type."""


class IncompleteOutputError(UniswapV3Revert):
    """``SwapRouter``/``QuoterV2`` exact output without a price limit: the pool delivered less than asked."""
