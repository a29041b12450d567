"""``LiquidityMath`` (v3-core): add a signed liquidity delta to a uint128 liquidity."""

from __future__ import annotations

from chains.amm.uniswap_v3.errors import LAError, LSError

__all__ = ["MAX_UINT128", "add_delta"]

MAX_UINT128 = (1 << 128) - 1


def add_delta(x: int, y: int) -> int:
    """``x + y`` with the contract's checks: ``'LS'`` below zero, ``'LA'`` above ``type(uint128).max``."""
    z = x + y
    if y < 0:
        if z < 0:
            raise LSError()
    elif z > MAX_UINT128:
        raise LAError()
    return z
