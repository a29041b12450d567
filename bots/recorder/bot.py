"""The recording bot: follows the chain block by block and writes what happened to the database.

It is the simplest complete bot on the runtime — a collector (:class:`BlockCollector`: whole blocks with their
receipts, decoded), a strategy (:class:`RecorderStrategy`: turns events into rows, and after each block checks
every token pair listed on both Uniswap V2 venues for a cross-venue arbitrage, sized exactly with the pair
math) and an executor (:class:`StoreExecutor`: writes the rows).  Opportunities are only recorded, never
executed: the DEX-arbitrage bot of a later issue acts on them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bots.runtime.engine import Collector, Executor, Strategy
from bots.store import Store
from chains.abi.blocks import BlockRpc, fetch_block
from chains.addressbook import AddressBook, PoolInfo
from chains.amm.uniswap_v2 import get_amount_out
from chains.events import (
    Event,
    MinedTransaction,
    NewBlock,
    PoolSwap,
)

log = logging.getLogger(__name__)

GET_RESERVES = "0x0902f1ac"  # getReserves()
# Two V2 swaps plus the flash-swap/transfer overhead of an executor contract: a planning figure, not a quote.
CROSS_VENUE_ARB_GAS = 230_000
# One topic for the whole ordered stream of a block (txs, swaps, then NewBlock): separate topics would let a
# consumer see NewBlock before that block's swaps.
TOPIC_BLOCK_STREAM = "chain.block_stream"


class BlockCollector(Collector):
    """Polls the head and emits, per new block: its mined transactions, its decoded swaps, then ``NewBlock``.

    ``NewBlock`` comes last, as the "block complete" signal; all of them go to :data:`TOPIC_BLOCK_STREAM` so a
    consumer sees them in chain order.  The collector keeps its position across restarts,
    so a failure mid-block re-reads that block (the store's writes are idempotent).
    """

    name = "blocks"

    def __init__(
        self,
        rpc: Any,
        *,
        start_block: int,
        poll_interval: float = 0.1,
        final_head: Callable[[], int | None] | None = None,
    ) -> None:
        self.rpc = rpc
        self.next_block = start_block
        self.poll_interval = poll_interval
        self.blocks_read = 0
        # Where the head comes from. Default: eth_blockNumber.  On the devnet pass the builder's ``head``: the
        # builder trial-mines (and reverts) blocks while it builds one, and polling the node could read a trial.
        self.final_head = final_head

    def topic_for(self, event: Event) -> str:
        return TOPIC_BLOCK_STREAM

    async def events(self) -> AsyncIterator[Event]:
        while True:
            if self.final_head is not None:
                known = self.final_head()
                head = self.next_block - 1 if known is None else known
            else:
                head = int(await self.rpc.request("eth_blockNumber"), 16)
            while self.next_block <= head:
                data = await fetch_block(self.rpc, self.next_block)
                for tx in data.transactions:
                    yield tx
                for swap in data.swaps:
                    yield swap
                yield data.block
                self.next_block += 1
                self.blocks_read += 1
            await asyncio.sleep(self.poll_interval)


# ------------------------------------------------------------------------------------------------ actions
@dataclass(frozen=True, slots=True)
class RecordBlock:
    block: NewBlock


@dataclass(frozen=True, slots=True)
class RecordTransaction:
    tx: MinedTransaction


@dataclass(frozen=True, slots=True)
class RecordTrade:
    swap: PoolSwap
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int


@dataclass(frozen=True, slots=True)
class CrossVenueArbitrage:
    """Buy ``token_out`` on ``buy_pool`` with ``amount_in`` of ``token_in``, sell it back on ``sell_pool``."""

    block_number: int
    block_hash: str
    token_in: str
    token_out: str
    buy_pool: str
    sell_pool: str
    amount_in: int
    amount_mid: int
    amount_back: int

    @property
    def profit(self) -> int:
        return self.amount_back - self.amount_in


RecorderAction = RecordBlock | RecordTransaction | RecordTrade | CrossVenueArbitrage


def best_cross_venue_arbitrage(
    reserves_a: tuple[int, int], reserves_b: tuple[int, int], fee_bps: int = 30
) -> tuple[int, int, int, bool] | None:
    """The most profitable round trip token0 → token1 → token0 across two V2 pairs of the same tokens.

    ``reserves_a`` / ``reserves_b`` are (reserve0, reserve1).  Returns ``(amount_in, amount_mid, amount_back,
    a_first)`` with exact integer amounts (pair math, rounding as the contracts do) or None when no size is
    profitable.

    The rounded profit is *not* unimodal (the floors make it jitter by a wei or two around the optimum), so a
    ternary search misses the maximum.  Instead: the unrounded round trip is ``A·x / (D + E·x)``, whose profit
    ``g(x)`` is concave and bounds the exact profit from above; every size that could beat the best exact profit
    found at the continuous optimum lies in the interval where ``g`` reaches it, and the exact profit is
    evaluated on every candidate there — per amount in, or, when fewer, per amount of token1 bought (only the
    smallest input buying a given amount can be optimal).  That is the exact maximum whenever the candidates
    number at most :data:`ARB_SCAN_LIMIT` (always for reserves up to ~10^7); beyond, only the candidates nearest
    the continuous optimum are scanned, so the maximum is no longer proven (in samples at 10^8-10^9 the profit
    still matched a full scan; the amounts are exact pair math either way).
    """
    best: tuple[int, int, int, bool] | None = None
    for a_first in (True, False):
        rb, rs = (reserves_a, reserves_b) if a_first else (reserves_b, reserves_a)
        found = _best_round_trip(rb, rs, fee_bps)
        if found is not None and (best is None or found[2] - found[0] > best[2] - best[0]):
            best = (*found, a_first)
    return best


# Most exact-profit evaluations one direction of :func:`best_cross_venue_arbitrage` makes (~1 ms per 1000).
ARB_SCAN_LIMIT = 4096


def _best_round_trip(
    buy: tuple[int, int], sell: tuple[int, int], fee_bps: int
) -> tuple[int, int, int] | None:
    """Best ``(x, mid, back)``: ``x`` token0 into ``buy`` (token0 → token1), ``mid`` into ``sell`` (token1 → token0)."""
    r0, r1 = buy
    s0, s1 = sell
    if min(r0, r1, s0, s1) <= 0:
        return None
    c, f = 10_000, 10_000 - fee_bps
    # Unrounded: back(x) = A·x / (D + E·x); profitable at the margin (x → 0) iff A > D.
    a_, d_, e_ = f * f * r1 * s0, c * c * r0 * s1, f * (c * s1 + f * r1)
    if a_ <= d_:
        return None

    def mid_of(x: int) -> int:
        return get_amount_out(x, r0, r1, fee_bps)

    def back_of(m: int) -> int:
        return get_amount_out(m, s1, s0, fee_bps) if m > 0 else 0

    def g_at_least(x: int, level: int) -> bool:  # g(x) = A·x/(D+E·x) - x >= level, in integers
        return a_ * x >= (level + x) * (d_ + e_ * x)

    def min_input_for(m: int) -> int:  # smallest x with mid_of(x) >= m  (0 < m < r1)
        return -(-(m * r0 * c) // (f * (r1 - m)))

    # The integer peak of g: the real one is at (sqrt(A·D) - D) / E.
    x0 = max(1, (math.isqrt(a_ * d_) - d_) // e_)
    # g(x0 + 1) > g(x0) iff back gains more than 1 there: A·D / ((D + E·x0)(D + E·(x0 + 1))) > 1.
    peak = x0 + 1 if a_ * d_ > (d_ + e_ * x0) * (d_ + e_ * (x0 + 1)) else x0
    best_x, best_profit = 0, 0
    for x in (peak - 1, peak, peak + 1):
        if x >= 1:
            p = back_of(mid_of(x)) - x
            if p > best_profit:
                best_x, best_profit = x, p
    level = max(best_profit, 1)
    if not g_at_least(peak, level):
        return None if best_x == 0 else (best_x, mid_of(best_x), back_of(mid_of(best_x)))
    # [left, right]: every x with g(x) >= level (g is concave with its peak at ``peak``).
    lo, hi = 1, peak
    while lo < hi:
        mid = (lo + hi) // 2
        if g_at_least(mid, level):
            hi = mid
        else:
            lo = mid + 1
    left = lo
    lo, hi = peak, max(peak, a_ // e_ + 1)  # back < A/E, so a profitable x is below it
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if g_at_least(mid, level):
            lo = mid
        else:
            hi = mid - 1
    right = lo
    m_left, m_right = mid_of(left), mid_of(right)
    if m_right - m_left < right - left:
        # Per amount bought: the optimum is the smallest input buying its amount.
        m_peak = mid_of(peak)
        m_lo = max(m_left, 1, m_peak - ARB_SCAN_LIMIT // 2)
        m_hi = min(m_right, m_lo + ARB_SCAN_LIMIT - 1)
        candidates: Iterable[int] = (min_input_for(m) for m in range(m_lo, m_hi + 1))
    else:
        x_lo = max(left, peak - ARB_SCAN_LIMIT // 2)
        x_hi = min(right, x_lo + ARB_SCAN_LIMIT - 1)
        candidates = range(x_lo, x_hi + 1)
    for x in candidates:
        p = back_of(mid_of(x)) - x
        if p > best_profit or (p == best_profit and x < best_x):
            best_x, best_profit = x, p
    if best_x == 0:
        return None
    m = mid_of(best_x)
    return best_x, m, back_of(m)


class RecorderStrategy(Strategy[RecorderAction]):
    """Events → rows; after each block, exact cross-venue V2 arbitrage checks on every pair listed twice."""

    name = "recorder"
    topics = (TOPIC_BLOCK_STREAM,)

    def __init__(self, rpc: BlockRpc, book: AddressBook) -> None:
        self.rpc = rpc
        self.pools: dict[str, PoolInfo] = {p.address: p for p in book.pools}
        by_pair: dict[tuple[str, str], list[PoolInfo]] = {}
        for p in book.pools:
            if p.kind == "v2":
                by_pair.setdefault((p.token0, p.token1), []).append(p)
        self.twin_pairs = [(ps[0], ps[1]) for ps in by_pair.values() if len(ps) >= 2]
        self.fee_bps = {name: venue.fee_bps for name, venue in book.v2.items()}
        self.opportunities_found = 0

    async def process_event(self, event: Event) -> Sequence[RecorderAction]:
        if isinstance(event, MinedTransaction):
            return [RecordTransaction(event)]
        if isinstance(event, PoolSwap):
            pool = self.pools.get(event.pool)
            if pool is None:
                return []  # a swap on a pool outside the address book
            if event.amount0 > 0:
                return [RecordTrade(event, pool.token0, pool.token1, event.amount0, -event.amount1)]
            return [RecordTrade(event, pool.token1, pool.token0, event.amount1, -event.amount0)]
        if isinstance(event, NewBlock):
            # The block row goes last: it is the "block complete" mark (and the resume point), so it must not
            # be written before the block's opportunities, nor be lost when the arbitrage scan fails.
            actions: list[RecorderAction] = []
            try:
                actions.extend(await self._scan_arbitrage(event))
            except Exception:
                log.exception("recorder: arbitrage scan of block %d failed", event.number)
            actions.append(RecordBlock(event))
            return actions
        return []

    async def _scan_arbitrage(self, block: NewBlock) -> list[CrossVenueArbitrage]:
        if not self.twin_pairs:
            return []
        calls = []
        for a, b in self.twin_pairs:
            for p in (a, b):
                calls.append(("eth_call", [{"to": p.address, "data": GET_RESERVES}, hex(block.number)]))
        results = await self.rpc.batch(calls)
        found: list[CrossVenueArbitrage] = []
        for i, (a, b) in enumerate(self.twin_pairs):
            ra, rb = (_reserves(results[2 * i]), _reserves(results[2 * i + 1]))
            if self.fee_bps.get(a.venue) != self.fee_bps.get(b.venue):
                continue  # the exact search assumes one fee on both legs
            best = best_cross_venue_arbitrage(ra, rb, self.fee_bps.get(a.venue, 30))
            if best is None:
                continue
            amount_in, mid, back, a_first = best
            buy, sell = (a, b) if a_first else (b, a)
            found.append(
                CrossVenueArbitrage(
                    block_number=block.number,
                    block_hash=block.hash,
                    token_in=a.token0,
                    token_out=a.token1,
                    buy_pool=buy.address,
                    sell_pool=sell.address,
                    amount_in=amount_in,
                    amount_mid=mid,
                    amount_back=back,
                )
            )
        self.opportunities_found += len(found)
        return found


def _reserves(result: Any) -> tuple[int, int]:
    raw = bytes.fromhex(str(result)[2:])
    if len(raw) < 64:
        raise ValueError(f"getReserves returned {len(raw)} bytes")
    return int.from_bytes(raw[0:32], "big"), int.from_bytes(raw[32:64], "big")


class StoreExecutor(Executor[RecorderAction]):
    """Writes the recorder's actions to the database (idempotent: a re-read block adds no duplicate rows)."""

    name = "store"

    def __init__(self, store: Store, *, chain_id: int, bot: str = "recorder") -> None:
        self.store = store
        self.chain_id = chain_id
        self.bot = bot
        self.last_block: int | None = None
        self.block_written = asyncio.Event()

    async def execute(self, action: RecorderAction) -> None:
        s, cid = self.store, self.chain_id
        if isinstance(action, RecordTransaction):
            t = action.tx
            await s.record_transaction(
                chain_id=cid,
                block_number=t.block_number,
                block_hash=t.block_hash,
                tx_index=t.tx_index,
                tx_hash=t.hash,
                sender=t.sender,
                to=t.to,
                nonce=t.nonce,
                value=t.value,
                gas_used=t.gas_used,
                effective_gas_price=t.effective_gas_price,
                success=t.success,
            )
        elif isinstance(action, RecordTrade):
            w = action.swap
            await s.record_trade(
                chain_id=cid,
                block_number=w.block_number,
                block_hash=w.block_hash,
                log_index=w.log_index,
                tx_index=w.tx_index,
                tx_hash=w.tx_hash,
                pool=w.pool,
                token_in=action.token_in,
                token_out=action.token_out,
                amount_in=action.amount_in,
                amount_out=action.amount_out,
            )
        elif isinstance(action, CrossVenueArbitrage):
            a = action
            await s.record_opportunity(
                chain_id=cid,
                block_number=a.block_number,
                block_hash=a.block_hash,
                bot=self.bot,
                kind="v2_cross_venue_arbitrage",
                key=f"{a.buy_pool}>{a.sell_pool}",
                token=a.token_in,
                expected_profit=a.profit,
                gas_estimate=CROSS_VENUE_ARB_GAS,
                details={
                    "token_out": a.token_out,
                    "buy_pool": a.buy_pool,
                    "sell_pool": a.sell_pool,
                    "amount_in": str(a.amount_in),
                    "amount_mid": str(a.amount_mid),
                    "amount_back": str(a.amount_back),
                    "executed": False,
                },
            )
        elif isinstance(action, RecordBlock):
            b = action.block
            await s.record_block(
                chain_id=cid, number=b.number, hash=b.hash, parent_hash=b.parent_hash, timestamp=b.timestamp
            )
            self.last_block = b.number
            self.block_written.set()
