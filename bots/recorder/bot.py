"""The recording bot: follows the chain block by block and writes what happened to the database.

It is a complete bot on the runtime, on the collector every on-chain bot shares:

* collector: :class:`bots.runtime.collectors.BlockCollector` over a :class:`chains.watch.blocks.BlockWatcher` whose
  state follows no pool (:func:`block_collector` builds it): whole blocks with their receipts, decoded, one at a
  time, and reorgs; or, in a process fed by the hub, :class:`bots.runtime.bus_collector.BusBlockCollector`
  (:func:`bus_collector`): the same events from the bus, no block or receipt RPC;
* strategy: :class:`RecorderStrategy` turns each :class:`~bots.runtime.collectors.BlockApplied` into rows (the
  block's transactions, its swaps, the exact cross-venue arbitrage found on every token pair listed on both Uniswap
  V2 venues, then the block row) and each :class:`~bots.runtime.collectors.ChainReorged` into a
  :class:`RollBackReorg`;
* executor: :class:`StoreExecutor` writes the rows, and rolls the replaced blocks' rows back through
  :class:`bots.runtime.reorg.ReorgHandler`.

The block collector publishes block N+1 only once every row of block N is written (the ordering rule of
docs/adding-a-bot.md), so the block row -- written last -- marks a block complete.  Opportunities are only
recorded, never executed: the DEX arbitrage bot acts on them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from bots.bus.client import BusClient
from bots.runtime.bus_collector import BusBlockCollector
from bots.runtime.bus_source import bus_block_collector
from bots.runtime.collectors import (
    TOPIC_APPLIED_BLOCKS,
    TOPIC_REORGS,
    BlockApplied,
    BlockCollector,
    ChainReorged,
)
from bots.runtime.engine import Executor, Strategy
from bots.runtime.reorg import ReorgHandler, RollBackReorg
from bots.store import Store
from chains.abi.blocks import BlockRpc
from chains.addressbook import AddressBook, PoolInfo
from chains.amm.uniswap_v2 import get_amount_out
from chains.events import AnyEvent, MinedTransaction, NewBlock, PoolSwap
from chains.node.rpc import RpcClient
from chains.state.chain import ChainState, StateAddresses, load_initial
from chains.watch.blocks import BlockWatcher

log = logging.getLogger(__name__)

GET_RESERVES = "0x0902f1ac"  # getReserves()
# Two V2 swaps plus the flash-swap/transfer overhead of an executor contract: a planning figure, not a quote.
CROSS_VENUE_ARB_GAS = 230_000


async def block_collector(
    rpc: RpcClient,
    *,
    start_block: int,
    heads: AsyncIterable[dict[str, Any]] | None = None,
    poll_interval: float = 0.1,
    chain_id: int | None = None,
) -> BlockCollector:
    """The recorder's collector: blocks from ``start_block`` on (the block before it is not emitted).

    The watcher's state follows no pool -- the recorder reads blocks, not pool state -- so loading it is one
    request (the head block).  ``heads``: the block headers to follow (on the devnet the builder's,
    ``bots.app.devnet.builder_heads``: the builder trial-mines and reverts blocks, so polling ``latest`` could read
    a trial block -- which the watcher would then see reorged away, and the recorder would roll back); None polls
    the node every ``poll_interval`` seconds.
    """
    no_pools = StateAddresses()

    async def head_state(block: int) -> ChainState:
        return await load_initial(rpc, no_pools, block)

    watcher = BlockWatcher(
        rpc,
        await head_state(start_block - 1),
        heads=heads,
        resync=head_state,
        chain_id=chain_id,
        poll_interval=poll_interval,
    )
    return BlockCollector(watcher, emit_start_block=False)


async def bus_collector(
    client: BusClient,
    *,
    chain_id: int,
    durable: str | None = None,
    registry: CollectorRegistry | None = None,
    emit_start_block: bool = True,
) -> BusBlockCollector:
    """The recorder's collector in a process fed by the hub: the same ``BlockApplied`` / ``ChainReorged`` as
    :func:`block_collector`, from the chain's blocks subject (durable consumer ``durable``, default
    ``recorder-<chain id>``: a restarted recorder resumes after its last acknowledged block).

    It starts on the hub's latest snapshot: ``emit_start_block`` (the default) records that snapshot's head block
    first (the rows are idempotent), then every block after it.
    """
    return await bus_block_collector(
        client,
        chain_id,
        durable=durable or f"recorder-{chain_id}",
        registry=registry,
        emit_start_block=emit_start_block,
    )


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


RecorderAction = RecordBlock | RecordTransaction | RecordTrade | CrossVenueArbitrage | RollBackReorg


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
    """Blocks → rows (transactions, trades, exact cross-venue V2 arbitrage checks on every pair listed twice, then
    the block); reorgs → :class:`RollBackReorg`."""

    name = "recorder"
    topics = (TOPIC_APPLIED_BLOCKS, TOPIC_REORGS)

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

    async def process_event(self, event: AnyEvent) -> Sequence[RecorderAction]:
        if isinstance(event, ChainReorged):
            return [RollBackReorg(event.reorg)]
        if not isinstance(event, BlockApplied):
            return []
        data = event.data
        actions: list[RecorderAction] = [RecordTransaction(tx) for tx in data.transactions]
        for swap in data.swaps:
            trade = self._trade(swap)
            if trade is not None:
                actions.append(trade)
        # The block row goes last: it is the "block complete" mark (and the resume point), so it must not be
        # written before the block's opportunities, nor be lost when the arbitrage scan fails.
        try:
            actions.extend(await self._scan_arbitrage(data.block))
        except Exception:
            log.exception("recorder: arbitrage scan of block %d failed", data.block.number)
        actions.append(RecordBlock(data.block))
        return actions

    def _trade(self, swap: PoolSwap) -> RecordTrade | None:
        pool = self.pools.get(swap.pool)
        if pool is None:
            return None  # a swap on a pool outside the address book
        if swap.amount0 > 0:
            return RecordTrade(swap, pool.token0, pool.token1, swap.amount0, -swap.amount1)
        return RecordTrade(swap, pool.token1, pool.token0, swap.amount1, -swap.amount0)

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
    """Writes the recorder's actions to the database (idempotent: a re-read block adds no duplicate rows); on a
    reorg, the replaced blocks' rows are deleted through :class:`bots.runtime.reorg.ReorgHandler`."""

    name = "store"

    def __init__(self, store: Store, *, chain_id: int, bot: str = "recorder", metrics: Any = None) -> None:
        self.store = store
        self.chain_id = chain_id
        self.bot = bot
        self.reorgs = ReorgHandler(store, chain_id, metrics=metrics)
        self.last_block: int | None = None

    async def execute(self, action: RecorderAction) -> None:
        s, cid = self.store, self.chain_id
        if isinstance(action, RollBackReorg):
            await self.reorgs.on_reorg(action.reorg)
            first = action.reorg.first_orphaned
            if first is not None and self.last_block is not None and self.last_block >= first:
                self.last_block = first - 1
        elif isinstance(action, RecordTransaction):
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
