"""The template bot: the smallest complete on-chain bot on the runtime.  Copy this package to start a new bot;
docs/adding-a-bot.md walks through it.

What it does, on every block: for each watched Uniswap V2 pair the block changed, the pair's exact price (token1
per token0 in raw units, ``reserve1 / reserve0`` as a :class:`fractions.Fraction`, read from the event-synced
state -- no RPC call), and the pairs whose price moved by ``threshold_bps`` or more since the bot last priced them.
The store executor writes one ``evaluations`` row per block (``opportunities`` = the pairs that moved) and logs
each move.

The parts, one of each, as every bot has them:

* collector -- :class:`bots.runtime.collectors.BlockCollector` over a :class:`chains.watch.blocks.BlockWatcher`
  that follows the watched pairs: whole blocks, reorgs, and the ordering rule (the watcher applies block N+1 only
  once the bot is done with block N, so the state in a :class:`~bots.runtime.collectors.BlockApplied` is the
  state of that block for as long as the strategy and the executors work on it);
* strategy -- :class:`PriceMoveStrategy`: ``BlockApplied`` → :class:`BlockPrices`, ``ChainReorged`` →
  :class:`RollBackReorg`.  Pure computation, no I/O: what it needs is in the event;
* actions -- :class:`BlockPrices`, :class:`RollBackReorg`: the bot's own frozen dataclasses.  They spend nothing,
  so they are not :class:`bots.runtime.actions.SendAction` s, and the risk gate lets them through;
* executor -- :class:`PriceStoreExecutor`: the only part that writes (through :class:`bots.store.Store`; a reorg
  goes to :class:`bots.runtime.reorg.ReorgHandler`, which deletes the replaced blocks' rows);
* :func:`build_engine` wires them on an :class:`bots.runtime.engine.Engine`; :func:`run` is the entry point.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from bots.runtime.collectors import (
    TOPIC_APPLIED_BLOCKS,
    TOPIC_REORGS,
    BlockApplied,
    BlockCollector,
    ChainReorged,
)
from bots.runtime.engine import Engine, EngineObserver, Executor, Strategy
from bots.runtime.reorg import ReorgHandler, RollBackReorg
from bots.store import Store
from chains.events import AnyEvent, NewBlock
from chains.node.rpc import RpcClient
from chains.state.chain import ChainState, StateAddresses, load_initial
from chains.watch.blocks import BlockWatcher

__all__ = [
    "BOT",
    "BlockPrices",
    "PriceMove",
    "PriceMoveStrategy",
    "PriceStoreExecutor",
    "TemplateBot",
    "build_engine",
    "pair_price",
    "run",
]

log = logging.getLogger(__name__)

BOT = "template"  # the bot's name: engine, metrics label, evaluations.bot


def pair_price(reserve0: int, reserve1: int) -> Fraction | None:
    """A V2 pair's exact price, token1 per token0 in raw units (None while the pair holds no liquidity)."""
    return Fraction(reserve1, reserve0) if reserve0 > 0 and reserve1 > 0 else None


# ------------------------------------------------------------------------------------------------ actions
@dataclass(frozen=True, slots=True)
class PriceMove:
    """Pair ``pool``'s price went from ``before`` (when the bot last priced it) to ``after``."""

    pool: str  # lower-case address
    before: Fraction
    after: Fraction

    @property
    def move_bps(self) -> Fraction:
        """The move in basis points of ``before``, exact."""
        return abs(self.after - self.before) * 10_000 / self.before


@dataclass(frozen=True, slots=True)
class BlockPrices:
    """The bot evaluated ``block``: the pairs that moved by the threshold or more (often none)."""

    block: NewBlock
    moves: tuple[PriceMove, ...]
    duration_ms: float


TemplateAction = BlockPrices | RollBackReorg


# ----------------------------------------------------------------------------------------------- strategy
class PriceMoveStrategy(Strategy[TemplateAction]):
    """Per block, the watched V2 pairs whose exact price moved by ``threshold_bps`` or more."""

    name = BOT
    topics = (TOPIC_APPLIED_BLOCKS, TOPIC_REORGS)

    def __init__(self, pools: Iterable[str], *, threshold_bps: int = 10) -> None:
        if threshold_bps < 0:
            raise ValueError("threshold_bps must be >= 0")
        self.pools = frozenset(p.lower() for p in pools)
        self.threshold_bps = threshold_bps
        self.prices: dict[str, Fraction] = {}  # pool -> its price when the bot last priced it

    async def process_event(self, event: AnyEvent) -> Sequence[TemplateAction]:
        if isinstance(event, ChainReorged):
            # The state is back at the common ancestor: price from there, so that the new branch's moves are
            # measured on the chain they belong to.
            self.prices = {}
            self._price(event.state, self.pools)
            return [RollBackReorg(event.reorg)]
        if not isinstance(event, BlockApplied):
            return []
        t0 = time.perf_counter()
        # The block the bot starts on sets the first prices; after it, only the pairs a block changed can move.
        changed = self.pools if event.initial else self.pools & event.changed
        moves = self._price(event.state, changed)
        duration_ms = (time.perf_counter() - t0) * 1000
        return [BlockPrices(event.data.block, tuple(moves), duration_ms)]

    def _price(self, state: ChainState, pools: Iterable[str]) -> list[PriceMove]:
        moves: list[PriceMove] = []
        for pool in sorted(pools):
            pair = state.v2[pool]
            after = pair_price(pair.reserve0, pair.reserve1)
            if after is None:
                continue
            before = self.prices.get(pool)
            self.prices[pool] = after
            if before is not None:
                move = PriceMove(pool, before, after)
                if move.move_bps >= self.threshold_bps:
                    moves.append(move)
        return moves


# ----------------------------------------------------------------------------------------------- executor
class PriceStoreExecutor(Executor[TemplateAction]):
    """Writes one ``evaluations`` row per block and logs each move; a reorg deletes the replaced blocks' rows.

    ``recent``: the last ``keep`` blocks written (for tools and tests; the store has the rows)."""

    name = "store"

    def __init__(self, store: Store, *, chain_id: int, bot: str = BOT, keep: int = 1_000) -> None:
        self.store = store
        self.chain_id = chain_id
        self.bot = bot
        self.reorgs = ReorgHandler(store, chain_id)
        self.recent: deque[BlockPrices] = deque(maxlen=keep)
        self.moves_recorded = 0

    async def execute(self, action: TemplateAction) -> None:
        if isinstance(action, RollBackReorg):
            await self.reorgs.on_reorg(action.reorg)
            return
        b = action.block
        await self.store.record_evaluation(
            bot=self.bot,
            chain_id=self.chain_id,
            block_number=b.number,
            block_hash=b.hash,
            status="evaluated",
            duration_ms=action.duration_ms,
            opportunities=len(action.moves),
        )
        for m in action.moves:
            log.info(
                "%s: block %d: pair %s moved %.1f bps (%.6g -> %.6g)",
                self.bot, b.number, m.pool, float(m.move_bps), float(m.before), float(m.after),
            )  # fmt: skip
        self.moves_recorded += len(action.moves)
        self.recent.append(action)


# ----------------------------------------------------------------------------------------------- wiring
@dataclass(frozen=True, slots=True)
class TemplateBot:
    """The wired bot: ``await bot.engine.run()``; ``await bot.collector.wait_done(n)`` waits for block ``n``."""

    engine: Engine
    collector: BlockCollector
    strategy: PriceMoveStrategy
    executor: PriceStoreExecutor


async def build_engine(
    rpc: RpcClient,
    store: Store,
    pools: Mapping[str, int],
    *,
    threshold_bps: int = 10,
    at_block: int | None = None,
    heads: AsyncIterable[dict[str, Any]] | None = None,
    poll_interval: float = 0.25,
    observer: EngineObserver | None = None,
) -> TemplateBot:
    """The template bot on ``rpc``, writing to ``store``, watching ``pools`` (V2 pair → fee in bps).

    The state is loaded at ``at_block`` (default: the head); that block is evaluated first, then every block after
    it.  ``heads``: block headers to follow (default: poll the node every ``poll_interval`` seconds; on the devnet
    pass ``bots.app.devnet.builder_heads(builder)``).  ``observer``: e.g. a :class:`bots.metrics.Metrics`.
    """
    chain_id = int(await rpc.request("eth_chainId"), 16)
    if at_block is None:
        at_block = int(await rpc.request("eth_blockNumber"), 16)
    addresses = StateAddresses(v2_pairs={p.lower(): fee for p, fee in pools.items()})

    async def load(
        block: int,
    ) -> ChainState:  # also the watcher's resync after a reorg deeper than its journal
        return await load_initial(rpc, addresses, block)

    watcher = BlockWatcher(
        rpc, await load(at_block), heads=heads, resync=load, chain_id=chain_id, poll_interval=poll_interval
    )
    collector = BlockCollector(watcher)
    strategy = PriceMoveStrategy(pools, threshold_bps=threshold_bps)
    executor = PriceStoreExecutor(store, chain_id=chain_id)
    engine = Engine([collector], [strategy], [executor], name=BOT, observer=observer)
    return TemplateBot(engine, collector, strategy, executor)


async def run(
    rpc_url: str,
    db_url: str,
    pools: Mapping[str, int],
    *,
    threshold_bps: int = 10,
    at_block: int | None = None,
    blocks: int | None = None,
    handle_signals: bool = True,
) -> dict[str, Any]:
    """Run the template bot until SIGINT/SIGTERM (``handle_signals``), or until it is done with ``blocks`` blocks
    after the one it starts on; returns the engine's final health."""
    async with RpcClient([rpc_url]) as rpc, await Store.open(db_url, upgrade=True) as store:
        bot = await build_engine(rpc, store, pools, threshold_bps=threshold_bps, at_block=at_block)
        stopper = None
        if blocks is not None:
            last = bot.collector.watcher.head_number + blocks

            async def stop_after_last() -> None:
                while True:
                    try:
                        await bot.collector.wait_done(last)
                    except TimeoutError:
                        continue
                    bot.engine.stop()
                    return

            stopper = asyncio.create_task(stop_after_last())
        try:
            return await bot.engine.run(handle_signals=handle_signals)
        finally:
            if stopper is not None:
                stopper.cancel()
