"""Uniswap V2 pair math, an exact integer port of ``UniswapV2Library`` (v2-periphery).

The pair's state is :class:`chains.amm.uniswap_v2.pool.V2PairState`; :mod:`.protocol` registers the kind
(:data:`chains.kinds.PoolKind.V2`).  Function names follow the Solidity ones.  ``fee_bps`` generalises the hard-coded 0.3 % (997/1000) because forks
charge other fees; with the default 30 bps the results equal the real contracts to the wei.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "InsufficientInputAmountError",
    "InsufficientLiquidityError",
    "get_amount_in",
    "get_amount_out",
    "get_amounts_out",
]


class InsufficientInputAmountError(ValueError):
    """``UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT`` / ``INSUFFICIENT_OUTPUT_AMOUNT``."""


class InsufficientLiquidityError(ValueError):
    """``UniswapV2Library: INSUFFICIENT_LIQUIDITY``."""


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Output for an exact input: ``amountIn*997*reserveOut / (reserveIn*1000 + amountIn*997)``, rounded down."""
    if amount_in <= 0:
        raise InsufficientInputAmountError("UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise InsufficientLiquidityError("UniswapV2Library: INSUFFICIENT_LIQUIDITY")
    amount_in_with_fee = amount_in * (10_000 - fee_bps)
    numerator = amount_in_with_fee * reserve_out
    denominator = reserve_in * 10_000 + amount_in_with_fee
    return numerator // denominator


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Input needed for an exact output, rounded up (``+ 1``) as the library does."""
    if amount_out <= 0:
        raise InsufficientInputAmountError("UniswapV2Library: INSUFFICIENT_OUTPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0 or amount_out >= reserve_out:
        raise InsufficientLiquidityError("UniswapV2Library: INSUFFICIENT_LIQUIDITY")
    numerator = reserve_in * amount_out * 10_000
    denominator = (reserve_out - amount_out) * (10_000 - fee_bps)
    return numerator // denominator + 1


def get_amounts_out(amount_in: int, reserves: Sequence[tuple[int, int]], fee_bps: int = 30) -> list[int]:
    """``getAmountsOut`` over a path given as the (reserve_in, reserve_out) of each hop."""
    amounts = [amount_in]
    for reserve_in, reserve_out in reserves:
        amounts.append(get_amount_out(amounts[-1], reserve_in, reserve_out, fee_bps))
    return amounts
