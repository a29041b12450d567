"""The DEX arbitrage bot's strategy: settle, find and select after each block; backrun candidates from pending swaps.

It reads three topics: applied blocks and reorgs (:class:`bots.runtime.collectors.BlockCollector`) and pending
swaps (:class:`bots.runtime.collectors.PendingSwapCollector`).  It never simulates, signs or writes: it returns
:class:`~bots.dex_arb.bot.CycleCandidates` / :class:`~bots.dex_arb.bot.BackrunCandidates` for the simulation
executor, :class:`~bots.dex_arb.bot.Settled` and :class:`~bots.dex_arb.bot.Evaluated` for the store executor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from analytics.routing import Opportunity, RouteFinder
from bots.dex_arb.bot import (
    BackrunCandidates,
    CycleCandidates,
    DexArbBot,
    Evaluated,
    Settled,
    token_delta,
)
from bots.dex_arb.simulate import simulate_calls
from bots.runtime.collectors import TOPIC_APPLIED_BLOCKS, TOPIC_REORGS, BlockApplied, ChainReorged
from bots.runtime.engine import Strategy
from bots.runtime.reorg import RollBackReorg
from chains.abi.blocks import BlockData
from chains.events import TOPIC_PENDING_SWAPS, AnyEvent, NewBlock, PendingSwap
from chains.send.gas import next_base_fee
from chains.state.chain import ChainState

__all__ = ["DexArbStrategy"]

log = logging.getLogger(__name__)


class DexArbStrategy(Strategy[object]):
    """See the module docstring; ``finder_for(state)`` builds the route finder over a (new) chain state."""

    name = "dex_arb"
    topics = (TOPIC_APPLIED_BLOCKS, TOPIC_REORGS, TOPIC_PENDING_SWAPS)

    def __init__(self, bot: DexArbBot, finder_for: Callable[[ChainState], RouteFinder]) -> None:
        self.bot = bot
        self.finder_for = finder_for
        self._finder_state: ChainState = bot.state
        self._head: NewBlock | None = None  # the last evaluated block
        self._head_base_fee = 0
        self._seen_pending: set[str] = set()

    async def process_event(self, event: AnyEvent) -> Sequence[object]:
        if isinstance(event, BlockApplied):
            return await self._on_block(event)
        if isinstance(event, ChainReorged):
            return self._on_reorg(event)
        if isinstance(event, PendingSwap):
            return await self._on_pending_swap(event)
        return ()

    # ------------------------------------------------------------------ blocks
    async def _on_block(self, event: BlockApplied) -> list[object]:
        bot = self.bot
        started = time.perf_counter()
        bot.stats.blocks += 1
        head = event.data.block
        if event.state is not self._finder_state:  # a resync replaced the state: a graph on the new one
            self._use_state(event.state)
        out: list[object] = []
        try:
            out += self._settle(event.data)
            changed = set(event.changed) & bot.finder.pool_index.keys()
            base_fee = next_base_fee(head.base_fee_per_gas or 0, head.gas_used, head.gas_limit)
            self._head, self._head_base_fee = head, base_fee
            self._seen_pending.clear()
            with bot.stage("find"):
                bot.finder.set_gas_price(base_fee)
                chosen = self._select(bot.finder.update(changed))
        except Exception:
            log.exception("dex_arb: evaluating block %d failed", head.number)
            return [*out, Evaluated(head, started=started, error=True)]
        bot.stats.found += len(chosen)
        if bot.metrics:
            bot.metrics.opportunities_total.labels(bot=bot.settings.bot, kind="cycle").inc(len(chosen))
        if chosen:
            out.append(CycleCandidates(head, base_fee, tuple(chosen), started))
        else:
            out.append(Evaluated(head, started=started))
        return out

    def _use_state(self, state: ChainState) -> None:
        self._finder_state = state
        self.bot.state = state
        self.bot.finder = self.finder_for(state)

    def _on_reorg(self, event: ChainReorged) -> list[object]:
        """Bundles targeting replaced blocks are forgotten (their rows are orphaned by the store executor)."""
        bot, ancestor = self.bot, event.reorg.common_ancestor or 0
        for n in list(bot.pending):
            if n > ancestor:
                for b in bot.pending.pop(n):
                    b.status = "orphaned"
        for b in bot.history:
            if b.status == "landed" and b.target_block > ancestor:
                b.status = "orphaned"
        # Rolled-back pools are restored objects: rebuild the graph's adapters on the state as it is now.
        self._use_state(event.state)
        self._head = None  # no backruns on a block that is gone
        return [RollBackReorg(event.reorg)]

    def _select(self, opps: Sequence[Opportunity]) -> list[Opportunity]:
        """Greedy pool-disjoint set: the finder's exact top-k by net profit first; then, because the top-k is
        often many variants of one mispriced pool, the rest of the ranking (by estimate) is scanned for cycles
        that share no pool with those taken, each sized exactly (at most ``extra_exact_checks`` of them)."""
        s = self.bot.settings
        chosen: list[Opportunity] = []
        used: set[str] = set()

        def take(opp: Opportunity | None) -> None:
            if opp is None or opp.net_profit < s.min_net_profit_wei or not opp.verified_math:
                return
            if any(h.kind not in ("v2", "v3") for h in opp.hops):
                return
            pools = {p.lower() for p in opp.pools}
            if not pools & used:
                chosen.append(opp)
                used.update(pools)

        for opp in sorted(opps, key=lambda o: -o.net_profit):
            if len(chosen) >= s.max_cycles:
                return chosen
            take(opp)
        checks = 0
        finder = self.bot.finder
        for cid in finder.ranked(len(finder.cycles)).tolist():
            if len(chosen) >= s.max_cycles or checks >= s.extra_exact_checks or finder.est_net[cid] <= 0:
                break
            if any(pool.address in used for pool, _, _ in finder.cycle_hops(cid)):
                continue
            checks += 1
            take(finder.exact(cid))
        return chosen

    # ------------------------------------------------------------------ settlement
    def _settle(self, block: BlockData) -> list[Settled]:
        bot, head = self.bot, block.block
        due = [n for n in bot.pending if n <= head.number]
        if not due:
            return []
        t0 = time.perf_counter()
        out: list[Settled] = []
        mined = {t.hash.lower(): t for t in block.transactions}
        logs_by_tx: dict[str, list[dict[str, Any]]] = {}
        for lg in block.logs:
            logs_by_tx.setdefault(str(lg.get("transactionHash", "")).lower(), []).append(lg)
        st = bot.stats
        for n in due:
            for b in bot.pending.pop(n):
                if n != head.number:
                    b.status = "not_landed"  # its target block went by without being seen (should not happen)
                    out.append(Settled(b, head.number, head.hash))
                    continue
                landed = [p for p in b.txs if p.tx_hash.lower() in mined]
                if not landed:
                    b.status = "not_landed"
                    st.not_landed_bundles += 1
                    out.append(Settled(b, head.number, head.hash))
                    continue
                realized_total = gas_total = 0
                for p in landed:
                    tx = mined[p.tx_hash.lower()]
                    delta = token_delta(logs_by_tx.get(p.tx_hash.lower(), []), bot.weth, bot.executor)
                    gas_cost = tx.gas_used * tx.effective_gas_price
                    realized = delta - gas_cost
                    b.realized[p.tx_hash] = realized
                    realized_total += realized
                    gas_total += gas_cost
                    if not tx.success:
                        st.failed_txs += 1
                    else:
                        st.landed_txs += 1
                        st.simulated_profit_wei += p.simulated_net
                        st.tips_paid_wei += p.tip
                        if realized != p.simulated_net or tx.gas_used != p.gas_used:
                            st.mismatches.append(
                                f"{p.tx_hash}: simulated {p.simulated_net} (gas {p.gas_used}), "
                                f"realized {realized} (gas {tx.gas_used})"
                            )
                    st.realized_profit_wei += realized
                    st.gas_spent_wei += gas_cost
                b.status = "landed" if all(mined[p.tx_hash.lower()].success for p in landed) else "failed"
                st.landed_bundles += 1
                st.backrun_landed += b.victim is not None
                out.append(Settled(b, head.number, head.hash, tuple(landed), realized_total, gas_total))
        bot.observe("settle", time.perf_counter() - t0)
        return out

    # ------------------------------------------------------------------ pending swaps (backruns)
    async def _on_pending_swap(self, swap: PendingSwap) -> list[object]:
        """The cycles ``swap``'s effects open on the last block's state (the simulation executor re-plans them
        after the user's tx)."""
        bot, head = self.bot, self._head
        if not bot.settings.backrun or head is None or swap.tx_hash in self._seen_pending:
            return []
        self._seen_pending.add(swap.tx_hash)
        bot.stats.pending_seen += 1
        started = time.perf_counter()
        try:
            found = await self._backrun_candidates(head, self._head_base_fee, swap.tx_hash, started)
        except Exception as exc:  # a bad pending tx or a node hiccup must not stop the bot
            log.warning("dex_arb: backrun of %s failed: %s: %s", swap.tx_hash, type(exc).__name__, exc)
            found = None
        if found is None:
            bot.observe("backrun", time.perf_counter() - started)
            return []
        return [found]

    async def _backrun_candidates(
        self, head: NewBlock, base_fee: int, tx_hash: str, started: float
    ) -> BackrunCandidates | None:
        bot = self.bot
        tx, raw = await bot.rpc.batch(
            [("eth_getTransactionByHash", [tx_hash]), ("eth_getRawTransactionByHash", [tx_hash])]
        )
        if not isinstance(tx, dict) or not raw or tx.get("blockNumber"):
            return None  # gone, or already mined
        victim = {
            "from": tx["from"],
            "to": tx["to"],
            "data": tx.get("input", "0x"),
            "value": tx.get("value", "0x0"),
            "gas": tx["gas"],
            "nonce": tx["nonce"],
        }
        if tx.get("maxFeePerGas"):
            victim |= {"maxFeePerGas": tx["maxFeePerGas"], "maxPriorityFeePerGas": tx["maxPriorityFeePerGas"]}
        else:
            victim["gasPrice"] = tx["gasPrice"]
        first = await simulate_calls(bot, head, base_fee, [victim])
        if first is None or first[0]["status"] != "0x1":
            return None  # the user's tx would revert: nothing to backrun
        # the finder's pools' states after the user's tx: the chain state's own handlers on its logs
        finder = bot.finder
        moved = {a: st for a, st in bot.state.preview(first[0]["logs"]).items() if a in finder.pool_index}
        if not moved:
            return None
        originals = {a: finder.pools[finder.pool_index[a]].state for a in moved}  # type: ignore[attr-defined]
        try:
            with bot.stage("find"):
                chosen = self._select(finder.update(moved))
        finally:
            finder.update(originals)
        if not chosen:
            return None
        return BackrunCandidates(head, base_fee, victim, tx_hash, str(raw), tuple(chosen), started)
