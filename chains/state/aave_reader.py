"""Reads from a node what the Aave math needs to pick its rule set: the pool's ``POOL_REVISION()``.

The math in :mod:`chains.lending.aave_v3` never does I/O; this module is the thin I/O edge.  ``rpc_call`` is
any callable ``(method, params) -> result`` speaking JSON-RPC (e.g. ``AnvilNode.rpc``); an async variant takes
an awaitable one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from chains.lending.aave_v3 import LiquidationRules, rules_for_revision

__all__ = ["POOL_REVISION_SELECTOR", "aread_pool_revision", "read_pool_revision", "read_rules"]

POOL_REVISION_SELECTOR = "0x0148170e"  # keccak256("POOL_REVISION()")[:4]

RpcCall = Callable[[str, list[Any]], Any]
AsyncRpcCall = Callable[[str, list[Any]], Awaitable[Any]]


def _decode(result: Any, pool: str) -> int:
    raw = result.hex() if isinstance(result, bytes | bytearray) else str(result)
    raw = raw.removeprefix("0x")
    if len(raw) != 64:
        raise ValueError(
            f"POOL_REVISION() on {pool} returned {len(raw) // 2} bytes, not one uint256 "
            "(not an Aave V3 pool?)"
        )
    return int(raw, 16)


def _request(pool: str, block: str) -> list[Any]:
    return [{"to": pool, "data": POOL_REVISION_SELECTOR}, block]


def read_pool_revision(rpc_call: RpcCall, pool: str, block: str = "latest") -> int:
    """``Pool.POOL_REVISION()`` of the pool proxy at ``pool``."""
    return _decode(rpc_call("eth_call", _request(pool, block)), pool)


async def aread_pool_revision(rpc_call: AsyncRpcCall, pool: str, block: str = "latest") -> int:
    """:func:`read_pool_revision` over an async JSON-RPC callable."""
    return _decode(await rpc_call("eth_call", _request(pool, block)), pool)


def read_rules(rpc_call: RpcCall, pool: str, block: str = "latest") -> LiquidationRules:
    """The liquidation rule set for the pool's on-chain revision (refuses unknown revisions)."""
    return rules_for_revision(read_pool_revision(rpc_call, pool, block))
