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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from bots.runtime import Collector, Executor, Strategy
from bots.store import Store
from chains.amm.uniswap_v2 import get_amount_out
from chains.blocks import BlockRpc, fetch_block
from chains.devnet.addressbook import AddressBook, PoolInfo
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

    def __init__(self, rpc: Any, *, start_block: int, poll_interval: float = 0.1) -> None:
        self.rpc = rpc
        self.next_block = start_block
        self.poll_interval = poll_interval
        self.blocks_read = 0

    def topic_for(self, event: Event) -> str:
        return TOPIC_BLOCK_STREAM

    async def events(self) -> AsyncIterator[Event]:
        while True:
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
    profitable.  The profit ``amount_back - amount_in`` is unimodal in ``amount_in``, so an integer ternary
    search finds its maximum exactly.
    """
    best: tuple[int, int, int, bool] | None = None
    for a_first in (True, False):
        (r0_buy, r1_buy), (r0_sell, r1_sell) = (reserves_a, reserves_b) if a_first else (reserves_b, reserves_a)
        if min(r0_buy, r1_buy, r0_sell, r1_sell) <= 0:
            continue
        # Profitable only if token1 is cheaper (in token0) on the buy side: r0_buy/r1_buy < r0_sell/r1_sell.
        if r0_buy * r1_sell >= r0_sell * r1_buy:
            continue

        def round_trip(x: int, rb: tuple[int, int] = (r0_buy, r1_buy), rs: tuple[int, int] = (r0_sell, r1_sell)
                       ) -> tuple[int, int]:
            mid = get_amount_out(x, rb[0], rb[1], fee_bps)
            back = get_amount_out(mid, rs[1], rs[0], fee_bps) if mid > 0 else 0
            return mid, back

        lo, hi = 1, r0_buy  # spending more than the whole buy-side reserve is never optimal
        while hi - lo > 2:
            m1 = lo + (hi - lo) // 3
            m2 = hi - (hi - lo) // 3
            if round_trip(m1)[1] - m1 < round_trip(m2)[1] - m2:
                lo = m1
            else:
                hi = m2
        x = max(range(lo, hi + 1), key=lambda v: round_trip(v)[1] - v)
        mid, back = round_trip(x)
        if back > x and (best is None or back - x > best[2] - best[0]):
            best = (x, mid, back, a_first)
    return best


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
            actions: list[RecorderAction] = [RecordBlock(event)]
            actions.extend(await self._scan_arbitrage(event))
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
            found.append(CrossVenueArbitrage(
                block_number=block.number, block_hash=block.hash, token_in=a.token0, token_out=a.token1,
                buy_pool=buy.address, sell_pool=sell.address, amount_in=amount_in, amount_mid=mid,
                amount_back=back,
            ))
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
                chain_id=cid, block_number=t.block_number, block_hash=t.block_hash,
                tx_index=t.tx_index, tx_hash=t.hash, sender=t.sender, to=t.to, nonce=t.nonce, value=t.value,
                gas_used=t.gas_used, effective_gas_price=t.effective_gas_price, success=t.success,
            )
        elif isinstance(action, RecordTrade):
            w = action.swap
            await s.record_trade(
                chain_id=cid, block_number=w.block_number, block_hash=w.block_hash, log_index=w.log_index,
                tx_index=w.tx_index, tx_hash=w.tx_hash, pool=w.pool, token_in=action.token_in,
                token_out=action.token_out, amount_in=action.amount_in, amount_out=action.amount_out,
            )
        elif isinstance(action, CrossVenueArbitrage):
            a = action
            await s.record_opportunity(
                chain_id=cid, block_number=a.block_number, block_hash=a.block_hash, bot=self.bot,
                kind="v2_cross_venue_arbitrage", key=f"{a.buy_pool}>{a.sell_pool}", token=a.token_in,
                expected_profit=a.profit, gas_estimate=CROSS_VENUE_ARB_GAS,
                details={"token_out": a.token_out, "buy_pool": a.buy_pool, "sell_pool": a.sell_pool,
                         "amount_in": str(a.amount_in), "amount_mid": str(a.amount_mid),
                         "amount_back": str(a.amount_back), "executed": False},
            )
        elif isinstance(action, RecordBlock):
            b = action.block
            await s.record_block(chain_id=cid, number=b.number, hash=b.hash, parent_hash=b.parent_hash,
                                 timestamp=b.timestamp)
            self.last_block = b.number
            self.block_written.set()
