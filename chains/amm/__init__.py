"""mevsuite: chains/amm — exact pool math, one package per pool kind, and the protocol registry
(:mod:`chains.amm.registry`).  Importing the package registers the built-in kinds, each from its own package."""

from chains.amm.uniswap_v2 import protocol as _uniswap_v2  # noqa: F401  registers PoolKind.V2
from chains.amm.uniswap_v3 import protocol as _uniswap_v3  # noqa: F401  registers PoolKind.V3
