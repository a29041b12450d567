"""The DEX arbitrage bot's store executor: what was found, simulated, sent, refused and settled, as rows.

It takes the end of every chain of actions (:class:`bots.runtime.send.BundleSent`, a
:class:`bots.runtime.actions.Refused` bundle, :class:`~bots.dex_arb.bot.Evaluated`,
:class:`~bots.dex_arb.bot.Settled`, and :class:`bots.runtime.reorg.RollBackReorg` for the
:class:`bots.runtime.reorg.ReorgHandler`), keeps the bot's ledger (the bundles to settle when their target block
is applied) and statistics, and writes one transaction per evaluation: each opportunity at the status it reached
(with its reason when not sent), the bundle, and the block's ``evaluations`` row.  Without a store it keeps the
ledger and statistics only.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

from analytics.routing import Opportunity
from bots.dex_arb.bot import BundlePlan, DexArbBot, Evaluated, PlannedTx, SentBundle, Settled, opportunity_key
from bots.runtime.actions import Bundle, Refused
from bots.runtime.engine import Executor
from bots.runtime.reorg import ReorgHandler, RollBackReorg
from bots.runtime.risk import RiskGate
from bots.runtime.send import BundleSent
from bots.store import Reason
from chains.events import NewBlock

__all__ = ["DexArbRecorder"]

log = logging.getLogger(__name__)


class DexArbRecorder(Executor[object]):
    """See the module docstring.  ``relay``: the relay's name for the bundle rows (None in public mode)."""

    name = "store"

    def __init__(
        self, bot: DexArbBot, *, reorgs: ReorgHandler | None = None, risk: RiskGate | None = None
    ) -> None:
        self.bot = bot
        self.reorgs = reorgs
        self.risk = risk  # told each landed bundle's realized PnL (its daily-loss limit)

    def _ours(self, bundle: Bundle) -> bool:
        return bundle.bot == self.bot.settings.bot and isinstance(bundle.payload, BundlePlan)

    def accepts(self, action: object) -> bool:
        if isinstance(action, BundleSent):
            return self._ours(action.bundle)
        if isinstance(action, Refused):
            return isinstance(action.action, Bundle) and self._ours(action.action)
        return isinstance(action, (Evaluated, Settled, RollBackReorg))

    async def execute(self, action: object) -> None:
        if isinstance(action, BundleSent):
            await self._sent(action)
        elif isinstance(action, Refused):
            await self._refused(action)
        elif isinstance(action, Evaluated):
            await self._evaluated(action)
        elif isinstance(action, Settled):
            await self._mark(action)
        elif isinstance(action, RollBackReorg) and self.reorgs is not None:
            await self.reorgs.on_reorg(action.reorg)

    # ------------------------------------------------------------------ outcomes
    async def _sent(self, sent: BundleSent) -> None:
        bot, s, st = self.bot, self.bot.settings, self.bot.stats
        plan: BundlePlan = sent.bundle.payload
        txs = [
            dataclasses.replace(p, raw=raw, tx_hash=h)
            for p, raw, h in zip(plan.planned, sent.own_raws, sent.tx_hashes, strict=True)
        ]
        bundle = SentBundle(
            plan.head.number,
            plan.head.hash,
            plan.head.number + 1,
            plan.base_fee,
            txs,
            sent.bundle_hash,
            sent.sent,
            sent.status,
            victim=sent.bundle.victim,
        )
        if sent.submit_seconds is not None:
            bot.observe("submit", sent.submit_seconds)
        if sent.sent:
            bot.pending.setdefault(bundle.target_block, []).append(bundle)
            st.submitted_bundles += 1
            st.submitted_txs += len(txs)
            st.backrun_bundles += bundle.victim is not None
        elif s.live:
            st.send_errors += 1
        if bot.metrics:
            bot.metrics.actions_total.labels(bot=s.bot, kind=s.send_mode, outcome=sent.status).inc()
        bot.history.append(bundle)
        not_sent = None if sent.sent else (Reason.SEND_FAILED if s.live else Reason.DRY_RUN)
        await self._record_plan(plan, txs, bundle, not_sent, relay=sent.relay)

    async def _refused(self, refused: Refused) -> None:
        bot = self.bot
        assert isinstance(refused.action, Bundle)
        plan: BundlePlan = refused.action.payload
        bot.stats.refused += 1
        if bot.metrics:
            bot.metrics.actions_total.labels(
                bot=bot.settings.bot, kind=bot.settings.send_mode, outcome="refused"
            ).inc()
        await self._record_plan(plan, list(plan.planned), None, refused.reason)

    async def _record_plan(
        self,
        plan: BundlePlan,
        txs: list[PlannedTx],
        bundle: SentBundle | None,
        not_sent: str | None,
        *,
        relay: str | None = None,
    ) -> None:
        elapsed = time.perf_counter() - plan.started
        if plan.kind == "cycle":
            by_key = {p.key: p for p in txs}
            items = [(opportunity_key(o), o, by_key.get(opportunity_key(o))) for o in plan.chosen]
            await self._record(
                plan.head, "cycle", items, bundle, not_sent, relay, plan.reasons, (elapsed, len(plan.chosen))
            )
            self.bot.observe("block", elapsed)
        else:
            items = [(p.key, p.opportunity, p) for p in txs]
            await self._record(plan.head, "backrun", items, bundle, not_sent, relay)
            self.bot.observe("backrun", elapsed)

    async def _evaluated(self, ev: Evaluated) -> None:
        elapsed = time.perf_counter() - ev.started
        if ev.error:
            await self._record_skipped(ev.head, elapsed)
            return
        items = [(opportunity_key(o), o, None) for o in ev.chosen]
        await self._record(ev.head, "cycle", items, None, None, None, ev.reasons, (elapsed, len(ev.chosen)))
        self.bot.observe("block", elapsed)

    # ------------------------------------------------------------------ rows
    async def _record_skipped(self, head: NewBlock, seconds: float) -> None:
        """Best effort: an evaluation that raised is recorded as ``skipped`` (the error itself was logged)."""
        bot = self.bot
        if not bot.store:
            return
        try:
            await bot.store.record_evaluation(
                bot=bot.settings.bot,
                chain_id=bot.chain_id,
                block_number=head.number,
                block_hash=head.hash,
                status="skipped",
                duration_ms=seconds * 1e3,
                opportunities=0,
                reason=Reason.EVALUATION_ERROR,
            )
        except Exception as exc:
            log.warning("dex_arb: recording the skipped evaluation of block %d failed: %s", head.number, exc)

    async def _record(
        self,
        head: NewBlock,
        kind: str,
        items: Sequence[tuple[str, Opportunity, PlannedTx | None]],
        bundle: SentBundle | None,
        not_sent: str | None,
        relay: str | None,
        reasons: dict[str, str] | None = None,
        evaluation: tuple[float, int] | None = None,
    ) -> None:
        """One transaction per evaluation: each opportunity at the status it reached (with the reason when it is
        not sent), the bundle, and -- for a block evaluation -- its ``evaluations`` row (``evaluation`` =
        ``(seconds, opportunities found)``).  ``not_sent``: why the planned txs were not sent (None: sent)."""
        bot = self.bot
        store = bot.store
        if not store:
            return
        s = bot.settings
        async with store.session() as session:
            if evaluation is not None:
                seconds, found = evaluation
                await store.record_evaluation(
                    bot=s.bot,
                    chain_id=bot.chain_id,
                    block_number=head.number,
                    block_hash=head.hash,
                    status="evaluated",
                    duration_ms=seconds * 1e3,
                    opportunities=found,
                    session=session,
                )
            if bundle is not None:
                await store.record_bundle(
                    chain_id=bot.chain_id,
                    block_number=head.number,
                    block_hash=head.hash,
                    bundle_hash=bundle.bundle_hash,
                    target_block=bundle.target_block,
                    bot=s.bot,
                    status=bundle.status,
                    tx_count=len(bundle.txs),
                    expected_profit=sum(p.simulated_net for p in bundle.txs),
                    tip=sum(p.tip for p in bundle.txs),
                    opportunity_key=bundle.txs[0].key,
                    relay=relay,
                    session=session,
                )
            for key, opp, p in items:
                details = {
                    "pools": list(opp.pools),
                    "tokens": [h.token_in for h in opp.hops],
                    "amount_in": str(p.plan.amount_in if p else opp.amount_in),
                    "gross_profit": str(opp.gross_profit),
                }
                if bundle is not None and bundle.victim is not None:
                    details["victim"] = bundle.victim
                sent = p is not None and bundle is not None and bundle.sent
                if p is None:  # the simulation dropped it
                    status, reason = "rejected", (reasons or {}).get(key)
                elif sent:
                    status, reason = "submitted", None
                else:  # simulated profitable, not sent
                    status, reason = "simulated", not_sent
                await store.record_opportunity(
                    chain_id=bot.chain_id,
                    block_number=head.number,
                    block_hash=head.hash,
                    bot=s.bot,
                    kind=kind,
                    key=key,
                    expected_profit=opp.net_profit,
                    token=bot.weth,
                    gas_estimate=opp.gas_units,
                    details=details,
                    status=status,
                    simulated_profit=p.simulated_net if p else None,
                    bundle_hash=bundle.bundle_hash if sent and bundle is not None else None,
                    target_block=head.number + 1 if p is not None else None,
                    reason=reason,
                    session=session,
                )

    async def _mark(self, settled: Settled) -> None:
        bot, b = self.bot, settled.bundle
        if self.risk is not None and settled.landed:
            self.risk.record_pnl(bot.settings.bot, settled.realized)
        if bot.metrics:
            bot.metrics.actions_total.labels(
                bot=bot.settings.bot, kind="bundle_outcome", outcome=b.status
            ).inc()
        store = bot.store
        if not store:
            return
        included = b.status in ("landed", "failed")
        await store.set_bundle_status(
            chain_id=bot.chain_id,
            bundle_hash=b.bundle_hash,
            status="included" if b.status == "landed" else ("failed" if b.status == "failed" else "dropped"),
            included_block_number=settled.number if included else None,
            included_block_hash=settled.block_hash if included else None,
        )
        landed_hashes = {p.tx_hash for p in settled.landed}
        for p in b.txs:
            status = (
                ("landed" if b.status == "landed" else b.status)
                if p.tx_hash in landed_hashes
                else "not_landed"
            )
            await store.update_opportunity(
                chain_id=bot.chain_id,
                block_hash=b.state_block_hash,
                bot=bot.settings.bot,
                key=p.key,
                status=status,
                realized_profit=b.realized.get(p.tx_hash),
                reason=Reason.REVERTED_ON_CHAIN
                if status == "failed"
                else Reason.NOT_LANDED
                if status == "not_landed"
                else None,
            )
        if settled.landed:
            await store.record_pnl(
                chain_id=bot.chain_id,
                block_number=settled.number,
                block_hash=settled.block_hash,
                bot=bot.settings.bot,
                token=bot.weth,
                realized=settled.realized + settled.gas,
                gas_spent=settled.gas,
                net=settled.realized,
            )
