"""What the devnet world contains: tokens, pools, liquidity shapes, the Aave market and its positions.

Pure data and planning, no I/O besides reading ``data/reference.json``; :mod:`chains.devnet.deploy` turns a
plan into transactions. Everything random is drawn from ``random.Random(f"{seed}:{name}")`` — one stream per
named item, seeded by a string (hashed with SHA-512 by CPython, independent of ``PYTHONHASHSEED``) — so the
same seed gives the same world, and adding a pool does not reshuffle the others.

Depths are *shaped* like Ethereum mainnet in August 2023 (WETH/USDC and WBTC/WETH deep, stablecoin pairs
deep and tight, long-tail pairs shallow, SushiSwap a fraction of Uniswap) and scaled down about tenfold;
the numbers are hand-chosen approximations, except the WETH/USDC 0.05 % pool whose in-range liquidity is
calibrated to the real Polygon pool in ``reference.json`` (see ``data/SOURCES.md``).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from chains.addressbook import TokenKind

__all__ = [
    "AAVE_RESERVES",
    "BORROWER_TEMPLATES",
    "TOKENS",
    "V2_PAIRS",
    "V3_POOLS",
    "BorrowerTemplate",
    "PositionShape",
    "TokenSpec",
    "V2PairSpec",
    "V3PoolSpec",
    "reference",
    "rng",
]

DATA_DIR = Path(__file__).resolve().parent / "data"

MIN_TICK = -887272
MAX_TICK = 887272
TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}


@cache
def reference() -> dict[str, Any]:
    """The reference prices and Aave parameters shipped in ``data/reference.json``."""
    data: dict[str, Any] = json.loads((DATA_DIR / "reference.json").read_text())
    return data


def rng(seed: int, name: str) -> random.Random:
    """An independent deterministic random stream for one named item of the world."""
    return random.Random(f"mevsuite-devnet:{seed}:{name}")


@dataclass(frozen=True, slots=True)
class TokenSpec:
    symbol: str
    name: str
    decimals: int
    kind: TokenKind
    artifact: str

    @property
    def usd(self) -> float:
        return float(reference()["usd_prices"][self.symbol])


# Order matters: tokens are deployed in this order, so their addresses (and hence token0/token1 in every
# pool) are fixed by it.
TOKENS: tuple[TokenSpec, ...] = (
    TokenSpec("WETH", "Wrapped Ether", 18, "weth", "WETH9"),
    TokenSpec("USDC", "USD Coin", 6, "standard", "MintableERC20"),
    TokenSpec("USDT", "Tether USD", 6, "standard", "MintableERC20"),
    TokenSpec("DAI", "Dai Stablecoin", 18, "standard", "MintableERC20"),
    TokenSpec("WBTC", "Wrapped BTC", 8, "standard", "MintableERC20"),
    TokenSpec("LINK", "ChainLink Token", 18, "standard", "MintableERC20"),
    TokenSpec("UNI", "Uniswap", 18, "standard", "MintableERC20"),
    TokenSpec("AAVE", "Aave Token", 18, "standard", "MintableERC20"),
    # v2-periphery's DeflatingERC20: burns 1 % of every transfer (its on-chain symbol is DTT).
    TokenSpec("DTT", "Deflating Test Token", 18, "fee_on_transfer", "DeflatingERC20"),
    # OpenZeppelin 3.4.2 ERC20PresetMinterPauser, paused after seeding: every transfer reverts.
    TokenSpec("PAUSE", "Paused Token", 18, "reverting", "ERC20PresetMinterPauser"),
)
TOKEN_BY_SYMBOL = {t.symbol: t for t in TOKENS}
STABLES = frozenset({"USDC", "USDT", "DAI"})


@dataclass(frozen=True, slots=True)
class V2PairSpec:
    a: str
    b: str
    tvl_usd: dict[str, float]  # venue -> total value locked (both sides)

    @property
    def name(self) -> str:
        return f"{self.a}/{self.b}"


_V2 = [
    ("WETH", "USDC", 40e6, 6e6),
    ("WETH", "USDT", 20e6, 4e6),
    ("WETH", "DAI", 12e6, 3e6),
    ("WBTC", "WETH", 16e6, 5e6),
    ("USDC", "USDT", 4e6, 1e6),
    ("DAI", "USDC", 6e6, 1.5e6),
    ("LINK", "WETH", 3e6, 1.2e6),
    ("UNI", "WETH", 5e6, 0.6e6),
    ("AAVE", "WETH", 1.5e6, 1e6),
    ("WBTC", "USDC", 2e6, 0.3e6),
    ("LINK", "USDC", 0.4e6, 0.1e6),
]
V2_PAIRS: tuple[V2PairSpec, ...] = (
    *(V2PairSpec(a, b, {"uniswap": u / 10, "sushiswap": s / 10}) for a, b, u, s in _V2),
    # The odd tokens live on Uniswap V2 only, shallow, as real long-tail tokens do.
    V2PairSpec("DTT", "WETH", {"uniswap": 40_000.0}),
    V2PairSpec("PAUSE", "WETH", {"uniswap": 20_000.0}),
)


@dataclass(frozen=True, slots=True)
class V3PoolSpec:
    a: str
    b: str
    fee: int
    tvl_usd: float

    @property
    def name(self) -> str:
        return f"{self.a}/{self.b}/{self.fee}"

    @property
    def stable(self) -> bool:
        return self.a in STABLES and self.b in STABLES


_V3 = [
    ("WETH", "USDC", 500, 150e6),
    ("WETH", "USDC", 3000, 25e6),
    ("WETH", "USDC", 10000, 1e6),
    ("WETH", "USDT", 500, 30e6),
    ("WETH", "USDT", 3000, 10e6),
    ("WBTC", "WETH", 500, 50e6),
    ("WBTC", "WETH", 3000, 100e6),
    ("DAI", "USDC", 100, 20e6),
    ("USDC", "USDT", 100, 30e6),
    ("DAI", "WETH", 3000, 8e6),
    ("LINK", "WETH", 3000, 10e6),
    ("UNI", "WETH", 3000, 20e6),
    ("AAVE", "WETH", 3000, 3e6),
    ("WBTC", "USDC", 3000, 5e6),
    ("LINK", "USDC", 10000, 0.5e6),
    ("UNI", "USDC", 10000, 0.3e6),
]
V3_POOLS: tuple[V3PoolSpec, ...] = tuple(V3PoolSpec(a, b, f, tvl / 10) for a, b, f, tvl in _V3)


@dataclass(frozen=True, slots=True)
class PositionShape:
    """A range as relative price bounds around the pool price, and its share of the pool's TVL."""

    lower: float  # price multiplier, e.g. 0.97; 0 means the full range
    upper: float
    share: float


# Volatile pairs: a little full-range liquidity, most of it within a few percent, plus one-sided ranges
# (limit-order-like) so that swaps of realistic sizes cross several initialized ticks.
VOLATILE_SHAPE = (
    PositionShape(0.0, 0.0, 0.08),
    PositionShape(0.50, 1.60, 0.12),
    PositionShape(0.88, 1.12, 0.20),
    PositionShape(0.97, 1.03, 0.25),
    PositionShape(0.993, 1.007, 0.20),
    PositionShape(1.004, 1.05, 0.075),
    PositionShape(0.95, 0.996, 0.075),
)
STABLE_SHAPE = (
    PositionShape(0.0, 0.0, 0.04),
    PositionShape(0.98, 1.02, 0.16),
    PositionShape(0.995, 1.005, 0.30),
    PositionShape(0.999, 1.001, 0.40),
    PositionShape(1.0003, 1.003, 0.05),
    PositionShape(0.997, 0.9997, 0.05),
)


@dataclass(frozen=True, slots=True)
class BorrowerTemplate:
    """An Aave borrower: collateral assets (with value weights) and one debt asset."""

    collateral: tuple[tuple[str, float], ...]
    debt: str


BORROWER_TEMPLATES: tuple[BorrowerTemplate, ...] = (
    BorrowerTemplate((("WETH", 1.0),), "USDC"),
    BorrowerTemplate((("WETH", 1.0),), "DAI"),
    BorrowerTemplate((("WETH", 1.0),), "USDT"),
    BorrowerTemplate((("WBTC", 1.0),), "USDC"),
    BorrowerTemplate((("WBTC", 1.0),), "WETH"),
    BorrowerTemplate((("USDC", 1.0),), "WETH"),  # short ETH: liquidatable when ETH *rises*
    BorrowerTemplate((("WETH", 1.0),), "LINK"),
    BorrowerTemplate((("WETH", 0.6), ("WBTC", 0.4)), "USDC"),
)
AAVE_RESERVES: tuple[str, ...] = ("WETH", "USDC", "WBTC", "DAI", "USDT", "LINK")
# Supplier liquidity per reserve, in USD (scaled like the pools).
AAVE_SUPPLY_USD = {"WETH": 15e6, "USDC": 20e6, "WBTC": 8e6, "DAI": 10e6, "USDT": 10e6, "LINK": 3e6}


# ---------------------------------------------------------------------- price / range math (floats: planning only)
def raw_price(sym0: str, sym1: str, jitter: float = 0.0) -> float:
    """Price of token0 in token1, in raw units (token1 wei per token0 wei)."""
    t0, t1 = TOKEN_BY_SYMBOL[sym0], TOKEN_BY_SYMBOL[sym1]
    return (t0.usd / t1.usd) * 10.0 ** (t1.decimals - t0.decimals) * (1.0 + jitter)


def price_to_tick(p: float) -> int:
    return math.floor(math.log(p) / math.log(1.0001))


def sqrt_price_x96(p: float) -> int:
    return int(math.sqrt(p) * 2**96)


def align(tick: int, spacing: int, up: bool) -> int:
    t = (tick // spacing) * spacing
    if up and t < tick:
        t += spacing
    lo = -(MAX_TICK // spacing) * spacing
    hi = (MAX_TICK // spacing) * spacing
    return max(lo, min(hi, t))


def amounts_for_liquidity(
    sqrt_p: float, tick_lower: int, tick_upper: int, liquidity: float
) -> tuple[float, float]:
    """Token amounts (raw, float) a position of ``liquidity`` in [lower, upper) holds at sqrt price ``sqrt_p``."""
    sa = 1.0001 ** (tick_lower / 2)
    sb = 1.0001 ** (tick_upper / 2)
    if sqrt_p <= sa:
        return liquidity * (1 / sa - 1 / sb), 0.0
    if sqrt_p >= sb:
        return 0.0, liquidity * (sb - sa)
    return liquidity * (1 / sqrt_p - 1 / sb), liquidity * (sqrt_p - sa)
