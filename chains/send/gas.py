"""Gas: exact next-block base fee, priority-fee percentiles from ``eth_feeHistory``, fee recommendations and
bundle tip sizing.

Everything that becomes a transaction field is an ``int`` in wei; floats appear only where the JSON-RPC API
itself uses them (reward percentiles, ``gasUsedRatio``) and in the ``confidence`` of a recommendation, which
is compared exactly (as a :class:`~fractions.Fraction`) and never multiplied into an amount.

Pure functions (no I/O):

* :func:`next_base_fee` -- the EIP-1559 integer formula as go-ethereum implements it
  (``consensus/misc/eip1559.CalcBaseFee``): target = gas limit // elasticity (2); at target the base fee stays;
  above it rises by ``max(1, base * (used - target) // target // 8)`` (the "+1 minimum increase" rule); below it
  falls by ``base * (target - used) // target // 8``.
* :func:`reward_percentiles` -- a block's effective-tip percentiles weighted by gas used, as go-ethereum's
  ``eth_feeHistory`` computes them (for checking a node, and for building histories from receipts).
* :func:`parse_fee_history` -- the hex ``eth_feeHistory`` reply as a typed :class:`FeeHistory`; a missing
  ``reward`` array (no percentiles requested, or a node that omits it) and empty blocks are handled.
* :func:`recommend` -- ``maxFeePerGas`` / ``maxPriorityFeePerGas`` for inclusion within ``blocks`` blocks with
  probability ``confidence`` (model below).
* :func:`bundle_tip` -- the priority fee per gas a bundle can bid from its expected profit.

:class:`GasEstimator` does the I/O: one JSON-RPC batch (``eth_feeHistory`` + the latest block) per
:meth:`GasEstimator.update`, and publishes a :class:`GasRecommendation` per new head when given a publisher.

Recommendation model
--------------------
The samples are every reward value of every *usable* block in the history (a block with a reward row and
``gasUsedRatio > 0``): each block's percentile rewards approximate its gas-weighted tip distribution, so the
pooled samples approximate the tip distribution of the competition over the window.  Assume a block includes
our transaction with probability ``q`` = the share of that distribution our tip is at or above, independently
per block.  Inclusion within ``N`` blocks then has probability ``1 - (1 - q)**N``; the tip is the smallest
sample (nearest rank) whose rank share ``q = (k + 1) / len(samples)`` satisfies ``(1 - q)**N <= 1 - p``.
This is evaluated exactly with fractions, so the tip is non-decreasing in ``confidence`` and non-increasing in
``blocks`` (more urgency -> higher tip).  With no usable samples the tip is ``fallback_tip``.

The max fee covers the worst case of the base fee over the horizon: starting from the next block's exact base
fee, ``N - 1`` consecutive full blocks (the maximal +12.5% step, :func:`max_base_fee_after`), plus the tip.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Protocol

from chains.events import Event, Publisher, Uint64, Uint256, register_event

__all__ = [
    "BASE_FEE_MAX_CHANGE_DENOMINATOR",
    "DEFAULT_PERCENTILES",
    "ELASTICITY_MULTIPLIER",
    "TOPIC_GAS",
    "FeeHistory",
    "FeeRecommendation",
    "GasEstimator",
    "GasRecommendation",
    "bundle_tip",
    "max_base_fee_after",
    "next_base_fee",
    "next_base_fee_from_block",
    "parse_fee_history",
    "parse_quantity",
    "recommend",
    "reward_percentiles",
]

log = logging.getLogger(__name__)

ELASTICITY_MULTIPLIER = 2
BASE_FEE_MAX_CHANGE_DENOMINATOR = 8
DEFAULT_PERCENTILES: tuple[float, ...] = (10.0, 25.0, 50.0, 75.0, 90.0)
DEFAULT_FALLBACK_TIP = 10**9  # 1 gwei, used only when the history holds no usable reward samples
TOPIC_GAS = "chain.gas"


# --------------------------------------------------------------------------------------------- base fee


def next_base_fee(
    parent_base_fee: int,
    parent_gas_used: int,
    parent_gas_limit: int,
    *,
    elasticity: int = ELASTICITY_MULTIPLIER,
    denominator: int = BASE_FEE_MAX_CHANGE_DENOMINATOR,
) -> int:
    """The base fee of the child of a London-or-later block (EIP-1559, go-ethereum ``CalcBaseFee``), exactly."""
    for name, v in (
        ("parent_base_fee", parent_base_fee),
        ("parent_gas_used", parent_gas_used),
        ("parent_gas_limit", parent_gas_limit),
        ("elasticity", elasticity),
        ("denominator", denominator),
    ):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    if elasticity == 0 or denominator == 0:
        raise ValueError("elasticity and denominator must be > 0")
    target = parent_gas_limit // elasticity
    if target == 0:
        raise ValueError(f"gas limit {parent_gas_limit} gives a zero gas target")
    if parent_gas_used > parent_gas_limit:
        raise ValueError(f"gas used {parent_gas_used} exceeds gas limit {parent_gas_limit}")
    if parent_gas_used == target:
        return parent_base_fee
    if parent_gas_used > target:
        delta = max(parent_base_fee * (parent_gas_used - target) // target // denominator, 1)
        return parent_base_fee + delta
    delta = parent_base_fee * (target - parent_gas_used) // target // denominator
    return max(parent_base_fee - delta, 0)


def parse_quantity(value: Any) -> int:
    """A JSON-RPC QUANTITY (``"0x1a"``) or an int as an int."""
    if isinstance(value, bool):
        raise TypeError("a quantity cannot be a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        s = value.strip()
        if s[:2].lower() == "0x":
            return int(s, 16) if len(s) > 2 else 0
        return int(s, 10)
    raise TypeError(f"expected a hex quantity, got {type(value).__name__}")


def next_base_fee_from_block(block: Mapping[str, Any]) -> int:
    """:func:`next_base_fee` of a JSON-RPC block object (``baseFeePerGas``/``gasUsed``/``gasLimit``, hex)."""
    if block.get("baseFeePerGas") is None:
        raise ValueError("block has no baseFeePerGas (pre-London)")
    return next_base_fee(
        parse_quantity(block["baseFeePerGas"]),
        parse_quantity(block["gasUsed"]),
        parse_quantity(block["gasLimit"]),
    )


def max_base_fee_after(base_fee: int, blocks: int) -> int:
    """The highest base fee reachable ``blocks`` blocks after one with ``base_fee`` (every block full)."""
    if blocks < 0:
        raise ValueError("blocks must be >= 0")
    b = base_fee
    for _ in range(blocks):
        b += max(b // BASE_FEE_MAX_CHANGE_DENOMINATOR, 1)  # full block: used - target == target
    return b


# ------------------------------------------------------------------------------------------ fee history


def reward_percentiles(
    txs: Sequence[tuple[int, int]], block_gas_used: int, percentiles: Sequence[float]
) -> tuple[int, ...]:
    """Gas-weighted effective-tip percentiles of one block, as go-ethereum's ``eth_feeHistory`` computes them.

    ``txs`` holds ``(gas_used, effective_tip)`` per transaction, where the effective tip is
    ``effectiveGasPrice - baseFeePerGas``.  An empty block gives zeros.
    """
    if not txs:
        return tuple(0 for _ in percentiles)
    ordered = sorted(txs, key=lambda t: t[1])  # stable, like Go's sort.Stable on the reward only
    out: list[int] = []
    idx = 0
    cum = ordered[0][0]
    for p in percentiles:
        threshold = int(float(block_gas_used) * p / 100)
        while cum < threshold and idx < len(ordered) - 1:
            idx += 1
            cum += ordered[idx][0]
        out.append(ordered[idx][1])
    return tuple(out)


@dataclass(frozen=True, slots=True)
class FeeHistory:
    """A parsed ``eth_feeHistory`` reply.

    ``base_fee_per_gas`` has one entry more than there are blocks: the last is the next block's base fee.
    ``rewards[i]`` is block ``oldest_block + i``'s reward per requested percentile, or None when the node gave
    no reward row for it.  Use :attr:`usable_rewards` for the rows that describe real competition.
    """

    oldest_block: int
    base_fee_per_gas: tuple[int, ...]
    gas_used_ratio: tuple[float, ...]
    rewards: tuple[tuple[int, ...] | None, ...]
    percentiles: tuple[float, ...]

    @property
    def newest_block(self) -> int:
        """Number of the newest block in the history."""
        return self.oldest_block + len(self.gas_used_ratio) - 1

    @property
    def next_base_fee(self) -> int:
        """The base fee of the block after :attr:`newest_block`."""
        return self.base_fee_per_gas[-1]

    @property
    def usable_rewards(self) -> tuple[tuple[int, ...], ...]:
        """The reward rows of non-empty blocks (an empty block's zeros say nothing about the tips needed)."""
        return tuple(
            r
            for r, ratio in zip(self.rewards, self.gas_used_ratio, strict=True)
            if r is not None and ratio > 0 and len(r) > 0
        )


def parse_fee_history(raw: Mapping[str, Any], percentiles: Sequence[float] = ()) -> FeeHistory:
    """Parse an ``eth_feeHistory`` result (hex quantities) into a :class:`FeeHistory`."""
    blocks = len(raw.get("gasUsedRatio") or [])
    ratios = tuple(float(r) for r in (raw.get("gasUsedRatio") or []))
    base = tuple(parse_quantity(b) for b in (raw.get("baseFeePerGas") or []))
    if blocks and len(base) != blocks + 1:
        raise ValueError(f"eth_feeHistory: {len(base)} base fees for {blocks} blocks (expected {blocks + 1})")
    if not blocks and not base:
        raise ValueError("eth_feeHistory: empty history")
    raw_rewards = raw.get("reward")
    rewards: list[tuple[int, ...] | None]
    if raw_rewards is None:
        rewards = [None] * blocks
    else:
        if len(raw_rewards) != blocks:
            raise ValueError(f"eth_feeHistory: {len(raw_rewards)} reward rows for {blocks} blocks")
        rewards = []
        for row in raw_rewards:
            if not row:
                rewards.append(None)
                continue
            if percentiles and len(row) != len(percentiles):
                raise ValueError(
                    f"eth_feeHistory: reward row of {len(row)} for {len(percentiles)} percentiles"
                )
            rewards.append(tuple(parse_quantity(v) for v in row))
    return FeeHistory(
        oldest_block=parse_quantity(raw.get("oldestBlock", 0)),
        base_fee_per_gas=base,
        gas_used_ratio=ratios,
        rewards=tuple(rewards),
        percentiles=tuple(float(p) for p in percentiles),
    )


# --------------------------------------------------------------------------------------- recommendation


@dataclass(frozen=True, slots=True)
class FeeRecommendation:
    """EIP-1559 fee fields, in wei per gas."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def _as_fraction(x: float | Fraction) -> Fraction:
    if isinstance(x, Fraction):
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise TypeError(f"expected a finite number, got {x!r}")
    return Fraction(repr(float(x)))  # 0.9 means 9/10, not the binary float next to it


def _tip_quantile(samples: Sequence[int], blocks: int, confidence: Fraction) -> int:
    """Smallest sorted sample whose rank share q satisfies (1 - q)**blocks <= 1 - confidence."""
    n = len(samples)
    miss = 1 - confidence

    def ok(k: int) -> bool:
        return (1 - Fraction(k + 1, n)) ** blocks <= miss

    lo, hi = 0, n - 1  # ok(n - 1) always holds: (1 - 1)**blocks == 0 <= miss
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return samples[lo]


def recommend(
    history: FeeHistory,
    *,
    blocks: int,
    confidence: float | Fraction,
    fallback_tip: int = DEFAULT_FALLBACK_TIP,
    min_tip: int = 0,
) -> FeeRecommendation:
    """Fees for inclusion within ``blocks`` blocks with probability ``confidence`` (see the module docstring)."""
    if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 1:
        raise ValueError(f"blocks must be an int >= 1, got {blocks!r}")
    p = _as_fraction(confidence)
    if not 0 <= p < 1:
        raise ValueError(f"confidence must be in [0, 1), got {confidence!r}")
    samples = sorted(v for row in history.usable_rewards for v in row)
    tip = _tip_quantile(samples, blocks, p) if samples else fallback_tip
    tip = max(tip, min_tip)
    max_base = max_base_fee_after(history.next_base_fee, blocks - 1)
    return FeeRecommendation(max_fee_per_gas=max_base + tip, max_priority_fee_per_gas=tip)


# -------------------------------------------------------------------------------------------- bundle tip


def bundle_tip(
    expected_profit_wei: int,
    gas_used: int,
    base_fee: int,
    *,
    share: float | Fraction = 0.9,
    min_margin_wei: int = 0,
) -> int:
    """Priority fee per gas for a bundle that expects ``expected_profit_wei`` before paying any gas.

    The base fee is burned whatever we bid, so the biddable budget is ``profit - base_fee * gas_used``; the tip
    hands ``share`` of it to the builder: ``floor(share * budget / gas_used)``, lowered if needed so that at least
    ``min_margin_wei`` stays with us.  ``share`` is read as a decimal (0.9 == 9/10).  Returns 0 when nothing is
    left to bid (the bundle is not worth sending), and ``tip * gas_used`` never exceeds the profit.
    """
    for name, v in (
        ("expected_profit_wei", expected_profit_wei),
        ("gas_used", gas_used),
        ("base_fee", base_fee),
        ("min_margin_wei", min_margin_wei),
    ):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if gas_used <= 0:
        raise ValueError("gas_used must be > 0")
    if base_fee < 0 or min_margin_wei < 0:
        raise ValueError("base_fee and min_margin_wei must be >= 0")
    s = _as_fraction(share)
    if not 0 <= s <= 1:
        raise ValueError(f"share must be in [0, 1], got {share!r}")
    budget = expected_profit_wei - base_fee * gas_used
    if budget <= 0:
        return 0
    tip = math.floor(s * budget / gas_used)
    cap = (budget - min_margin_wei) // gas_used
    return max(0, min(tip, cap))


# ---------------------------------------------------------------------------------------------- estimator


@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class GasRecommendation(Event):
    """The gas estimator's recommendation after head ``block_number``."""

    KIND: ClassVar[str] = "gas_recommendation"
    TOPIC: ClassVar[str] = TOPIC_GAS

    block_number: Uint64
    next_base_fee: Uint256
    max_fee_per_gas: Uint256
    max_priority_fee_per_gas: Uint256
    blocks: Uint64
    confidence: float


class _Rpc(Protocol):
    async def batch(self, calls: Sequence[tuple[str, Any]]) -> list[Any]: ...

    async def request(self, method: str, params: Any = None) -> Any: ...


class GasEstimator:
    """Keeps a fee history and the exact next base fee; publishes a :class:`GasRecommendation` per new head.

    ``update()`` sends one JSON-RPC batch: ``eth_feeHistory(history_blocks, "latest", percentiles)`` and
    ``eth_getBlockByNumber("latest")``.  Should a block land between the two, the history is re-read at the
    block's number so both describe the same head.
    """

    def __init__(
        self,
        rpc: _Rpc,
        publisher: Publisher | None = None,
        *,
        history_blocks: int = 20,
        percentiles: Sequence[float] = DEFAULT_PERCENTILES,
        blocks: int = 3,
        confidence: float = 0.9,
        topic: str = TOPIC_GAS,
        fallback_tip: int = DEFAULT_FALLBACK_TIP,
    ) -> None:
        if history_blocks < 1:
            raise ValueError("history_blocks must be >= 1")
        self.rpc = rpc
        self.publisher = publisher
        self.history_blocks = history_blocks
        self.percentiles = tuple(float(p) for p in percentiles)
        self.blocks = blocks
        self.confidence = confidence
        self.topic = topic
        self.fallback_tip = fallback_tip
        self.history: FeeHistory | None = None
        self.head: int | None = None
        self.next_base_fee: int | None = None
        self.latest: FeeRecommendation | None = None
        self._published: int | None = None
        self._lock = asyncio.Lock()

    async def update(self) -> FeeRecommendation:
        """Refresh from the node; publish when the head is new and a publisher is set."""
        async with self._lock:
            raw_hist, block = await self.rpc.batch(
                [
                    ("eth_feeHistory", [hex(self.history_blocks), "latest", list(self.percentiles)]),
                    ("eth_getBlockByNumber", ["latest", False]),
                ]
            )
            head = parse_quantity(block["number"])
            history = parse_fee_history(raw_hist, self.percentiles)
            if history.newest_block != head:
                raw_hist = await self.rpc.request(
                    "eth_feeHistory", [hex(self.history_blocks), hex(head), list(self.percentiles)]
                )
                history = parse_fee_history(raw_hist, self.percentiles)
            next_base = next_base_fee_from_block(block)
            if next_base != history.next_base_fee:
                log.warning(
                    "eth_feeHistory next base fee %d differs from the EIP-1559 formula's %d at block %d",
                    history.next_base_fee,
                    next_base,
                    head,
                )
            self.history, self.head, self.next_base_fee = history, head, next_base
            self.latest = self.recommend(self.blocks, self.confidence)
            if self.publisher is not None and self._published != head:
                await self.publisher.publish(
                    self.topic,
                    GasRecommendation(
                        block_number=head,
                        next_base_fee=next_base,
                        max_fee_per_gas=self.latest.max_fee_per_gas,
                        max_priority_fee_per_gas=self.latest.max_priority_fee_per_gas,
                        blocks=self.blocks,
                        confidence=float(self.confidence),
                    ),
                )
                self._published = head
            return self.latest

    def recommend(self, blocks: int, confidence: float) -> FeeRecommendation:
        """:func:`recommend` on the current history, with the next base fee from the formula."""
        if self.history is None or self.next_base_fee is None:
            raise RuntimeError("GasEstimator.update() has not run yet")
        hist = self.history
        if hist.next_base_fee != self.next_base_fee:
            hist = FeeHistory(
                hist.oldest_block,
                (*hist.base_fee_per_gas[:-1], self.next_base_fee),
                hist.gas_used_ratio,
                hist.rewards,
                hist.percentiles,
            )
        return recommend(hist, blocks=blocks, confidence=confidence, fallback_tip=self.fallback_tip)
