"""The one vocabulary of pool kinds.

:class:`PoolKind` names every pool kind the suite knows; its values are the strings that address books, pool files,
database rows, CLI flags and the route finder's gas table have always used (``"v2"``, ``"v3"`` ...), so
``kind == "v2"`` and JSON written before it existed keep working.  What each kind *does* (exact math, state
events, pool-state documents, executor hop) is registered against it in :mod:`chains.amm.registry`; the route
finder's adapters in ``analytics.routing``'s registry.  A kind defined outside ``chains`` (a test's, a plugin's) is a
string of its own — a ``StrEnum`` of its own works — registered the same way (docs/adding-a-pool-kind.md).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PoolKind"]


class PoolKind(StrEnum):
    V2 = "v2"  # Uniswap V2 pairs and forks (Sushiswap ...)
    V3 = "v3"  # Uniswap V3 pools
    CURVE = "curve"  # Curve StableSwap plain pools
    BALANCER = "balancer"  # Balancer V2 weighted pools
    BALANCER_V1 = "balancer_v1"  # Balancer V1 BPools
