"""The DEX arbitrage bot: after every applied block, find cycles, simulate them, and land them as a bundle.

One block goes through these stages (each timed into ``mevsuite_stage_latency_seconds{bot, stage}`` and kept
for the summary's p50/p99):

1. **find** — the blocks' logs name the pools that changed; :class:`analytics.routing.RouteFinder` re-evaluates
   only the cycles through them (its pools follow :class:`chains.state.chain.ChainState`, which the
   :class:`chains.watch.blocks.BlockWatcher` has already moved to the end of the block) and returns the best
   opportunities net of gas at the next block's base fee.
2. **select** — the best opportunities that share no pool (at most ``max_cycles``).
3. **simulate** — each one as an ``ArbExecutor.execute`` call in pyrevm (:class:`chains.sim.fork.ForkSim`) forked at
   the block, with the *target* block's environment (number, base fee, builder coinbase).  A first pass
   (no tip) gives the exact profit and gas; the coinbase tip is ``tip_share`` of what is left after gas; a
   second pass with that tip and ``minProfit`` = its gas cost confirms the final numbers.  Each cycle is
   simulated on the block's state on its own: the chosen cycles share no pool, and each leaves the executor's
   balance no lower than it found it, so their results in sequence are the same (and pyrevm prices calls made
   after a kept one as the same transaction, so sequential simulation would misstate gas).
4. **submit** — the signed EIP-1559 transactions (priority fee 0: the builder is paid by the coinbase tip,
   only if the bundle lands) go to the relay as one ``eth_sendBundle`` for block N+1 — or, with
   ``send_mode="public"``, to the mempool with the tip as priority fee.  Dry-run (the default) stops before
   sending and records the opportunities as ``simulated``.
5. **settle** — when block N+1 is applied: each of our txs that is in it gives the realized profit, read
   from its receipt logs (the executor's WETH balance change: Transfer/Deposit/Withdrawal) minus
   ``gasUsed × effectiveGasPrice``; missing txs mean ``not_landed``.

Every opportunity is recorded (``found`` → ``simulated``/``rejected`` → ``submitted`` → ``landed`` /
``not_landed`` / ``failed``; reorgs make them ``orphaned`` through :class:`bots.runtime.reorg.ReorgHandler`), with
a ``reason`` code for each one not sent or not landed (:class:`bots.store.Reason`, docs/store.md), the bundle, a
PnL row per landed block, and one ``evaluations`` row per block (``evaluated``: its duration and the number of
opportunities found; ``skipped`` with ``evaluation_error`` when the evaluation raised).  Nothing is sent that was
not simulated profitable at its target state.

**Pending swaps** (:meth:`DexArbBot.on_pending_swap`, fed by :class:`chains.watch.mempool.MempoolWatcher`): a
pending router swap is simulated on top of the last block (``eth_simulateV1`` on the node, with the next block's
environment); the pools it moves are handed to the route finder as hypothetical states (restored afterwards);
the whole plan for block N+1 is then redone *after* the user's swap and sent as ``[user tx, our txs...]``.  It
uses the same nonces as the block-level bundle, so the builder lands whichever pays more.  The user's tx always
comes first: we backrun, never front-run.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from eth_utils.crypto import keccak

from analytics.routing import Opportunity, RouteFinder
from bots.metrics import Metrics
from bots.store import Reason, Store
from chains.abi.blocks import BlockData
from chains.events import PendingSwap
from chains.node.rpc import RpcClient
from chains.send.executor import ArbPlan, Funding, FundingMode, Hop, encode_execute
from chains.send.flashbots import FlashbotsClient, bundle_hash, bundle_replacement_uuid
from chains.send.gas import next_base_fee
from chains.send.signer import Signer
from chains.sim.fork import ForkSim, SimLog, SimResult
from chains.state.chain import ChainState
from chains.watch.blocks import ChainReorg

log = logging.getLogger(__name__)

__all__ = ["DexArbBot", "DexArbSettings", "PlannedTx", "SentBundle", "token_delta"]

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
DEPOSIT = "0x" + keccak(text="Deposit(address,uint256)").hex()
WITHDRAWAL = "0x" + keccak(text="Withdrawal(address,uint256)").hex()
STAGES = ("find", "simulate", "sign", "submit", "settle", "block", "backrun")


def _topic_addr(topic: str) -> str:
    return "0x" + topic[-40:].lower()


def token_delta(logs: Iterable[SimLog | dict[str, Any]], token: str, holder: str) -> int:
    """``holder``'s balance change of ``token`` from ERC20 ``Transfer`` logs (and WETH9 Deposit/Withdrawal).

    Works on simulated logs and on receipt logs alike, so simulated and realized profit are measured the same way.
    """
    token, holder = token.lower(), holder.lower()
    delta = 0
    for lg in logs:
        if isinstance(lg, SimLog):
            address, topics, data = (
                lg.address,
                [t if t.startswith("0x") else "0x" + t for t in lg.topics],
                lg.data,
            )
        else:
            address, topics, data = lg["address"], lg["topics"], bytes.fromhex(str(lg["data"])[2:])
        if address.lower() != token or not topics:
            continue
        t0 = topics[0].lower()
        amount = int.from_bytes(data[:32], "big") if data else 0
        if t0 == TRANSFER and len(topics) >= 3:
            if _topic_addr(topics[2]) == holder:
                delta += amount
            if _topic_addr(topics[1]) == holder:
                delta -= amount
        elif t0 == DEPOSIT and len(topics) >= 2 and _topic_addr(topics[1]) == holder:
            delta += amount
        elif t0 == WITHDRAWAL and len(topics) >= 2 and _topic_addr(topics[1]) == holder:
            delta -= amount
    return delta


@dataclass
class DexArbSettings:
    bot: str = "dex_arb"
    max_cycles: int = 12  # opportunities per block (pool-disjoint)
    extra_exact_checks: int = 200  # cycles sized exactly beyond the finder's top-k, looking for disjoint ones
    tip_share: Fraction = Fraction(9, 10)  # of the profit left after gas, paid to the builder (coinbase)
    min_net_profit_wei: int = 1  # after gas and tip
    send_mode: Literal["bundle", "public"] = "bundle"
    live: bool = False  # dry-run unless True
    gas_limit_margin: Fraction = Fraction(13, 10)
    funding: FundingMode = FundingMode.OWN_BALANCE
    max_fee_multiplier: int = 2  # maxFeePerGas = multiplier × the target block's base fee
    backrun: bool = True  # re-plan after pending swaps (when a mempool feed is connected)


@dataclass(frozen=True)
class PlannedTx:
    opportunity: Opportunity
    key: str
    plan: ArbPlan
    raw: str
    tx_hash: str
    gas_used: int  # simulated, including the intrinsic gas
    gas_limit: int
    weth_delta: int  # simulated executor WETH change (after the tip)
    tip: int
    simulated_net: int  # weth_delta - gas_used * base_fee (priority fee 0)


@dataclass
class SentBundle:
    state_block: int
    state_block_hash: str
    target_block: int
    base_fee: int
    txs: list[PlannedTx]
    bundle_hash: str
    sent: bool
    status: str = "submitted"
    realized: dict[str, int] = field(default_factory=dict)  # tx hash -> realized net
    victim: str | None = None  # a backrun bundle: the user's tx it follows


@dataclass
class DexArbStats:
    blocks: int = 0
    found: int = 0
    simulated: int = 0
    rejected: int = 0
    sim_failed: int = 0
    submitted_bundles: int = 0
    submitted_txs: int = 0
    landed_bundles: int = 0
    landed_txs: int = 0
    not_landed_bundles: int = 0
    failed_txs: int = 0
    send_errors: int = 0
    simulated_profit_wei: int = 0  # of landed txs
    realized_profit_wei: int = 0
    gas_spent_wei: int = 0
    tips_paid_wei: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    mismatches: list[str] = field(default_factory=list)  # landed txs whose realized != simulated
    pending_seen: int = 0
    backrun_bundles: int = 0
    backrun_landed: int = 0

    def latency_summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for stage, xs in self.latencies.items():
            if not xs:
                continue
            s = sorted(xs)
            p99 = s[min(len(s) - 1, max(0, round(0.99 * len(s)) - 1))]
            out[stage] = {
                "n": len(s),
                "p50_ms": round(statistics.median(s) * 1e3, 3),
                "p99_ms": round(p99 * 1e3, 3),
            }
        return out


def victim_key(victim: dict[str, Any]) -> str:
    return f"{str(victim['from']).lower()[2:8]}{int(str(victim['nonce']), 16):x}"


def opportunity_key(opp: Opportunity) -> str:
    """Stable id of a cycle (pools and directions) — unique per block for the bot."""
    return "|".join(f"{h.pool.lower()[2:14]}{'a' if h.zero_for_one else 'b'}" for h in opp.hops)


class DexArbBot:
    """Evaluate after each whole block; pass :meth:`on_block` to ``BlockWatcher.add_block_listener``."""

    def __init__(
        self,
        *,
        rpc: RpcClient,
        rpc_url: str,
        finder: RouteFinder,
        state: ChainState,
        executor: str,
        signer: Signer,
        weth: str,
        chain_id: int,
        settings: DexArbSettings | None = None,
        relay: FlashbotsClient | None = None,
        store: Store | None = None,
        metrics: Metrics | None = None,
        coinbase: str | None = None,
    ) -> None:
        self.rpc = rpc
        self.rpc_url = rpc_url
        self.finder = finder
        self.state = state  # the chain state the finder's pools follow (previews of pending txs' effects)
        self.executor = executor
        self.signer = signer
        self.weth = weth
        self.chain_id = chain_id
        self.settings = settings or DexArbSettings()
        self.relay = relay
        self.store = store
        self.metrics = metrics
        self.coinbase = coinbase
        self.stats = DexArbStats()
        self.pending: dict[int, list[SentBundle]] = {}  # target block -> bundles sent for it
        self.history: list[SentBundle] = []
        self._lock = asyncio.Lock()  # blocks and pending swaps are planned one at a time
        self._head: Any = None  # the last evaluated block's header (NewBlock)
        self._head_base_fee = 0
        self._seen_pending: set[str] = set()
        if self.settings.send_mode == "bundle" and self.settings.live and relay is None:
            raise ValueError("bundle mode needs a relay client (FlashbotsClient)")

    # ------------------------------------------------------------------ block pipeline
    async def on_block(self, block: BlockData, changed: Collection[str]) -> None:
        """Evaluate block ``block``, applied to the state; ``changed``: the pools it changed (lower-case,
        ``ChainState.apply_block``'s answer)."""
        async with self._lock:
            await self._on_block(block, changed)

    async def _on_block(self, block: BlockData, changed_pools: Collection[str]) -> None:
        t_block = time.perf_counter()
        self.stats.blocks += 1
        head = block.block
        reasons: dict[str, str] = {}  # opportunity key -> why the simulation dropped it
        planned: list[PlannedTx] = []
        bundle: SentBundle | None = None
        try:
            await self._settle(block)
            changed = set(changed_pools) & self.finder.pool_index.keys()
            base_fee = next_base_fee(head.base_fee_per_gas or 0, head.gas_used, head.gas_limit)
            self._head, self._head_base_fee = head, base_fee
            self._seen_pending.clear()
            with self._stage("find"):
                self.finder.set_gas_price(base_fee)
                opps = self.finder.update(changed)
                chosen = self._select(opps)
            self.stats.found += len(chosen)
            if self.metrics:
                self.metrics.opportunities_total.labels(bot=self.settings.bot, kind="cycle").inc(len(chosen))
            if chosen:
                with self._stage("simulate"):
                    planned = await asyncio.to_thread(
                        self._simulate, head.number, head.timestamp, base_fee, chosen, reasons
                    )
                self.stats.simulated += len(planned)
                bundle = await self._submit(head.number, head.hash, base_fee, planned) if planned else None
        except Exception:
            await self._record_skipped(head, time.perf_counter() - t_block, Reason.EVALUATION_ERROR)
            raise
        duration = time.perf_counter() - t_block
        by_key = {p.key: p for p in planned}
        # The database is written after the bundle is out: it never delays a submission.
        await self._record(
            head,
            "cycle",
            [(opportunity_key(o), o, by_key.get(opportunity_key(o))) for o in chosen],
            bundle,
            reasons=reasons,
            evaluation=(duration, len(chosen)),
        )
        self._observe("block", time.perf_counter() - t_block)

    async def _record_skipped(self, head: Any, seconds: float, reason: str) -> None:
        """Best effort: an evaluation that raised is recorded as ``skipped`` (the error itself is re-raised)."""
        if not self.store:
            return
        try:
            await self.store.record_evaluation(
                bot=self.settings.bot,
                chain_id=self.chain_id,
                block_number=head.number,
                block_hash=head.hash,
                status="skipped",
                duration_ms=seconds * 1e3,
                opportunities=0,
                reason=reason,
            )
        except Exception as exc:
            log.warning("dex_arb: recording the skipped evaluation of block %d failed: %s", head.number, exc)

    async def on_reorg(self, reorg: ChainReorg) -> None:
        """Bundles targeting replaced blocks are forgotten (their rows are orphaned by the ReorgHandler)."""
        for n in list(self.pending):
            if n > (reorg.common_ancestor or 0):
                for b in self.pending.pop(n):
                    b.status = "orphaned"
        for b in self.history:
            if b.status == "landed" and b.target_block > (reorg.common_ancestor or 0):
                b.status = "orphaned"

    def _select(self, opps: Sequence[Opportunity]) -> list[Opportunity]:
        """Greedy pool-disjoint set: the finder's exact top-k by net profit first; then, because the top-k is
        often many variants of one mispriced pool, the rest of the ranking (by estimate) is scanned for cycles
        that share no pool with those taken, each sized exactly (at most ``extra_exact_checks`` of them)."""
        s = self.settings
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
        finder = self.finder
        for cid in finder.ranked(len(finder.cycles)).tolist():
            if len(chosen) >= s.max_cycles or checks >= s.extra_exact_checks or finder.est_net[cid] <= 0:
                break
            if any(pool.address in used for pool, _, _ in finder.cycle_hops(cid)):
                continue
            checks += 1
            take(finder.exact(cid))
        return chosen

    # ------------------------------------------------------------------ simulation (worker thread)
    def _plan(self, opp: Opportunity, *, tip: int, min_profit: int, amount_in: int | None = None) -> ArbPlan:
        hops = tuple(
            Hop(
                pool=h.pool,
                kind=h.kind,  # type: ignore[arg-type]  # the bot routes only through v2/v3 pools
                token_in=h.token_in,
                token_out=h.token_out,
                fee=h.fee,
                zero_for_one=h.zero_for_one,
            )
            for h in opp.hops
        )
        return ArbPlan(
            hops=hops,
            amount_in=opp.amount_in if amount_in is None else amount_in,
            funding=Funding(self.settings.funding),
            min_profit=min_profit,
            tip_wei=tip,
        )

    def _simulate(
        self,
        number: int,
        timestamp: int,
        base_fee: int,
        chosen: Sequence[Opportunity],
        reasons: dict[str, str] | None = None,
    ) -> list[PlannedTx]:
        """The txs worth sending; each cycle dropped gets its :class:`Reason` code in ``reasons`` (by key)."""
        s = self.settings
        why = reasons if reasons is not None else {}
        sim = ForkSim(self.rpc_url, number)
        coinbase = self.coinbase or "0x" + "00" * 20
        sim.set_block(number=number + 1, timestamp=timestamp + 1, basefee=base_fee, coinbase=coinbase)
        owner = self.signer.address
        nonce = int(sim.evm.basic(owner).nonce)
        # Own-balance funding: a cycle cannot spend more than the executor holds (profit is concave in the
        # input, so the capped size is the best feasible one).
        cap = sim.erc20_balance(self.weth, self.executor) if s.funding == FundingMode.OWN_BALANCE else None
        out: list[PlannedTx] = []
        for opp in chosen:
            key = opportunity_key(opp)
            amount = opp.amount_in if cap is None else min(opp.amount_in, cap)
            if amount <= 0:
                self.stats.rejected += 1
                why[key] = Reason.NO_FUNDS
                continue
            first = self._sim_plan(
                sim, self._plan(opp, tip=0, min_profit=0, amount_in=amount), base_fee, commit=False
            )
            if not first.success:
                self.stats.sim_failed += 1
                why[key] = Reason.SIMULATION_REVERTED
                log.info("dex_arb: %s reverts in simulation: %s", key, first.reason)
                continue
            d1 = token_delta(first.logs, self.weth, self.executor)
            budget = d1 - first.gas_used * base_fee
            if budget <= s.min_net_profit_wei:
                self.stats.rejected += 1
                why[key] = Reason.BELOW_MIN_PROFIT
                log.info(
                    "dex_arb: %s not worth it: simulated profit %d - gas %d x %d = %d (finder said %d)",
                    key,
                    d1,
                    first.gas_used,
                    base_fee,
                    budget,
                    opp.net_profit,
                )
                continue
            tip = int(s.tip_share * budget) if s.send_mode == "bundle" else 0
            min_profit = first.gas_used * base_fee + s.min_net_profit_wei
            plan = self._plan(opp, tip=tip, min_profit=min_profit, amount_in=amount)
            second = self._sim_plan(sim, plan, base_fee, commit=False)
            if not second.success:
                self.stats.rejected += 1
                why[key] = Reason.TIP_REVERTED
                log.info("dex_arb: %s fails with its tip: %s", key, second.reason)
                continue
            d2 = token_delta(second.logs, self.weth, self.executor)
            net = d2 - second.gas_used * base_fee
            prio = 0
            if s.send_mode == "public":
                prio = int(s.tip_share * net) // second.gas_used
                net -= prio * second.gas_used
            if net < s.min_net_profit_wei:
                self.stats.rejected += 1
                why[key] = Reason.BELOW_MIN_PROFIT
                continue
            out.append(self._signed(opp, key, plan, second.gas_used, d2, tip, net, nonce, base_fee, prio))
            nonce += 1
        return out

    def _sim_plan(self, sim: ForkSim, plan: ArbPlan, base_fee: int, *, commit: bool) -> SimResult:
        return sim.call(
            self.signer.address,
            self.executor,
            encode_execute(plan),
            gas=3_000_000,
            gas_price=base_fee,
            commit=commit,
        )

    # ------------------------------------------------------------------ submission
    async def _submit(
        self,
        number: int,
        block_hash: str,
        base_fee: int,
        planned: list[PlannedTx],
        *,
        victim: tuple[str, str] | None = None,
    ) -> SentBundle:
        s = self.settings
        target = number + 1
        raws = ([victim[1]] if victim else []) + [p.raw for p in planned]
        bhash = bundle_hash(raws)
        sent = False
        if s.live:
            t0 = time.perf_counter()
            try:
                if s.send_mode == "bundle":
                    assert self.relay is not None
                    # One identity per (bot, chain, target block) -- per victim for backruns, which share the
                    # block with the bot's own bundle -- so a re-sent bundle replaces the earlier one.
                    who = s.bot if victim is None else f"{s.bot}/backrun/{victim[0]}"
                    uid = bundle_replacement_uuid(who, self.chain_id, target)
                    results = await self.relay.send_bundle(raws, target, replacement_uuid=uid)
                    sent = any(r.ok for r in results.values())
                    for name, r in results.items():
                        if not r.ok:
                            log.warning("dex_arb: builder %s refused bundle %s: %s", name, bhash, r.error)
                else:
                    for raw in raws:
                        await self.rpc.request("eth_sendRawTransaction", [raw])
                    sent = True
            except Exception as exc:  # a relay/RPC failure must not stop the bot
                log.warning("dex_arb: sending bundle %s failed: %s", bhash, exc)
            self._observe("submit", time.perf_counter() - t0)
            if not sent:
                self.stats.send_errors += 1
        status = "submitted" if sent else ("simulated" if not s.live else "failed")
        bundle = SentBundle(
            number,
            block_hash,
            target,
            base_fee,
            list(planned),
            bhash,
            sent,
            status,
            victim=victim[0] if victim else None,
        )
        if sent:
            self.pending.setdefault(target, []).append(bundle)
            self.stats.submitted_bundles += 1
            self.stats.submitted_txs += len(planned)
            self.stats.backrun_bundles += victim is not None
        if self.metrics:
            self.metrics.actions_total.labels(bot=s.bot, kind=s.send_mode, outcome=status).inc()
        self.history.append(bundle)
        return bundle

    async def _record(
        self,
        head: Any,
        kind: str,
        items: Sequence[tuple[str, Opportunity, PlannedTx | None]],
        bundle: SentBundle | None,
        *,
        reasons: dict[str, str] | None = None,
        evaluation: tuple[float, int] | None = None,
    ) -> None:
        """One transaction per evaluation: each opportunity at the status it reached (with the reason when it is
        not sent), the bundle, and -- for a block evaluation -- its ``evaluations`` row (``evaluation`` =
        ``(seconds, opportunities found)``)."""
        if not self.store:
            return
        s = self.settings
        async with self.store.session() as session:
            if evaluation is not None:
                seconds, found = evaluation
                await self.store.record_evaluation(
                    bot=s.bot,
                    chain_id=self.chain_id,
                    block_number=head.number,
                    block_hash=head.hash,
                    status="evaluated",
                    duration_ms=seconds * 1e3,
                    opportunities=found,
                    session=session,
                )
            if bundle is not None:
                await self.store.record_bundle(
                    chain_id=self.chain_id,
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
                    relay=next(iter(self.relay.builders)) if self.relay else None,
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
                if p is None:  # the simulation dropped it
                    status, reason = "rejected", (reasons or {}).get(key)
                elif bundle is not None and bundle.sent:
                    status, reason = "submitted", None
                else:  # simulated profitable, not sent
                    status, reason = "simulated", Reason.SEND_FAILED if s.live else Reason.DRY_RUN
                await self.store.record_opportunity(
                    chain_id=self.chain_id,
                    block_number=head.number,
                    block_hash=head.hash,
                    bot=s.bot,
                    kind=kind,
                    key=key,
                    expected_profit=opp.net_profit,
                    token=self.weth,
                    gas_estimate=opp.gas_units,
                    details=details,
                    status=status,
                    simulated_profit=p.simulated_net if p else None,
                    bundle_hash=bundle.bundle_hash
                    if p is not None and bundle is not None and bundle.sent
                    else None,
                    target_block=head.number + 1 if p is not None else None,
                    reason=reason,
                    session=session,
                )

    # ------------------------------------------------------------------ pending swaps (backruns)
    async def on_pending_swap(self, swap: PendingSwap) -> None:
        """Redo the plan for the next block as if ``swap``'s tx came first, and send ``[user tx, ours...]``."""
        if not self.settings.backrun or self._head is None:
            return
        async with self._lock:
            head, base_fee = self._head, self._head_base_fee
            if swap.tx_hash in self._seen_pending:
                return
            self._seen_pending.add(swap.tx_hash)
            self.stats.pending_seen += 1
            t0 = time.perf_counter()
            try:
                await self._backrun(head, base_fee, swap.tx_hash)
            except Exception as exc:  # a bad pending tx or a node hiccup must not stop the bot
                log.warning("dex_arb: backrun of %s failed: %s: %s", swap.tx_hash, type(exc).__name__, exc)
            self._observe("backrun", time.perf_counter() - t0)

    async def _backrun(self, head: Any, base_fee: int, tx_hash: str) -> None:
        tx, raw = await self.rpc.batch(
            [("eth_getTransactionByHash", [tx_hash]), ("eth_getRawTransactionByHash", [tx_hash])]
        )
        if not isinstance(tx, dict) or not raw or tx.get("blockNumber"):
            return  # gone, or already mined
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
        first = await self._simulate_calls(head, base_fee, [victim])
        if first is None or first[0]["status"] != "0x1":
            return  # the user's tx would revert: nothing to backrun
        # the finder's pools' states after the user's tx: the chain state's own handlers on its logs
        moved = {
            a: st for a, st in self.state.preview(first[0]["logs"]).items() if a in self.finder.pool_index
        }
        if not moved:
            return
        finder = self.finder
        originals = {a: finder.pools[finder.pool_index[a]].state for a in moved}  # type: ignore[attr-defined]
        try:
            with self._stage("find"):
                opps = finder.update(moved)
                chosen = self._select(opps)
        finally:
            finder.update(originals)
        if not chosen:
            return
        with self._stage("simulate"):
            planned = await self._plan_after(head, base_fee, victim, chosen)
        if planned:
            self.stats.found += len(chosen)
            self.stats.simulated += len(planned)
            bundle = await self._submit(head.number, head.hash, base_fee, planned, victim=(tx_hash, str(raw)))
            await self._record(head, "backrun", [(p.key, p.opportunity, p) for p in planned], bundle)

    async def _simulate_calls(
        self, head: Any, base_fee: int, calls: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """``eth_simulateV1`` of ``calls`` in sequence on block ``head``'s state, in the next block's environment."""
        env = {
            "number": hex(head.number + 1),
            "time": hex(head.timestamp + 1),
            "baseFeePerGas": hex(base_fee),
            "feeRecipient": self.coinbase or "0x" + "00" * 20,
        }
        res = await self.rpc.request(
            "eth_simulateV1",
            [
                {"blockStateCalls": [{"blockOverrides": env, "calls": calls}], "validation": False},
                hex(head.number),
            ],
        )
        if not isinstance(res, list) or not res or not isinstance(res[0], dict):
            return None
        out = res[0].get("calls")
        return out if isinstance(out, list) and len(out) == len(calls) else None

    def _call_of(self, plan: ArbPlan, base_fee: int, nonce: int) -> dict[str, Any]:
        return {
            "from": self.signer.address,
            "to": self.executor,
            "data": "0x" + encode_execute(plan).hex(),
            "gas": hex(3_000_000),
            "nonce": hex(nonce),
            "maxFeePerGas": hex(base_fee * self.settings.max_fee_multiplier),
            "maxPriorityFeePerGas": "0x0",
        }

    async def _after_victim(
        self, head: Any, base_fee: int, victim: dict[str, Any], plans: Sequence[ArbPlan], nonce: int
    ) -> list[tuple[int, int] | None] | None:
        """``[user tx, plans...]`` in one ``eth_simulateV1``: per plan ``(gas used, executor WETH change)``, or
        None where it reverts; None in all if the user's tx itself fails."""
        calls = [victim] + [self._call_of(p, base_fee, nonce + i) for i, p in enumerate(plans)]
        res = await self._simulate_calls(head, base_fee, calls)
        if res is None or res[0]["status"] != "0x1":
            return None
        return [
            (int(r["gasUsed"], 16), token_delta(r["logs"], self.weth, self.executor))
            if r["status"] == "0x1"
            else None
            for r in res[1:]
        ]

    def _signed(
        self,
        opp: Opportunity,
        key: str,
        plan: ArbPlan,
        gas: int,
        delta: int,
        tip: int,
        net: int,
        nonce: int,
        base_fee: int,
        prio: int = 0,
    ) -> PlannedTx:
        """Sign the ``execute(plan)`` tx: its gas limit is the simulated gas plus a margin."""
        s = self.settings
        gas_limit = int(gas * s.gas_limit_margin) + 10_000
        signed = self.signer.sign_eip1559(
            {
                "chainId": self.chain_id,
                "nonce": nonce,
                "to": self.executor,
                "value": 0,
                "data": encode_execute(plan),
                "gas": gas_limit,
                "maxFeePerGas": base_fee * s.max_fee_multiplier + prio,
                "maxPriorityFeePerGas": prio,
            }
        )
        return PlannedTx(opp, key, plan, signed.raw_hex, signed.hash_hex, gas, gas_limit, delta, tip, net)

    async def _plan_after(
        self, head: Any, base_fee: int, victim: dict[str, Any], chosen: Sequence[Opportunity]
    ) -> list[PlannedTx]:
        """Plan ``chosen`` after the user's tx: two simulated passes (no tip; then tip and minimum) of the whole
        sequence, dropping what fails or does not pay, until every kept tx succeeds as simulated."""
        s = self.settings
        nonce = int(
            await self.rpc.request("eth_getTransactionCount", [self.signer.address, hex(head.number)]), 16
        )
        cands = list(chosen)
        for _round in range(3):
            if not cands:
                return []
            first = await self._after_victim(
                head, base_fee, victim, [self._plan(o, tip=0, min_profit=0) for o in cands], nonce
            )
            if first is None:
                return []
            keep: list[tuple[Opportunity, int, int]] = []  # (opp, tip, min_profit)
            for o, r in zip(cands, first, strict=True):
                if r is not None and r[1] - r[0] * base_fee > s.min_net_profit_wei:
                    budget = r[1] - r[0] * base_fee
                    keep.append((o, int(s.tip_share * budget), r[0] * base_fee + s.min_net_profit_wei))
            plans = [self._plan(o, tip=t, min_profit=m) for o, t, m in keep]
            second = await self._after_victim(head, base_fee, victim, plans, nonce)
            if second is None:
                return []
            out: list[PlannedTx] = []
            for i, ((o, tip, _m), plan, r) in enumerate(zip(keep, plans, second, strict=True)):
                if r is None or r[1] - r[0] * base_fee < s.min_net_profit_wei:
                    break
                key = f"br{victim_key(victim)}:{opportunity_key(o)}"
                out.append(
                    self._signed(o, key, plan, r[0], r[1], tip, r[1] - r[0] * base_fee, nonce + i, base_fee)
                )
            if len(out) == len(keep):
                return out
            cands = [o for o, _t, _m in keep][
                : len(out)
            ]  # drop the first failing one and what follows; retry
        return []

    # ------------------------------------------------------------------ settlement
    async def _settle(self, block: BlockData) -> None:
        head = block.block
        due = [n for n in self.pending if n <= head.number]
        if not due:
            return
        t0 = time.perf_counter()
        mined = {t.hash.lower(): t for t in block.transactions}
        logs_by_tx: dict[str, list[dict[str, Any]]] = {}
        for lg in block.logs:
            logs_by_tx.setdefault(str(lg.get("transactionHash", "")).lower(), []).append(lg)
        for n in due:
            for b in self.pending.pop(n):
                if n != head.number:
                    b.status = "not_landed"  # its target block went by without being seen (should not happen)
                    await self._mark(b, head.number, head.hash)
                    continue
                landed = [p for p in b.txs if p.tx_hash.lower() in mined]
                if not landed:
                    b.status = "not_landed"
                    self.stats.not_landed_bundles += 1
                    await self._mark(b, head.number, head.hash)
                    continue
                realized_total = gas_total = 0
                for p in landed:
                    tx = mined[p.tx_hash.lower()]
                    delta = token_delta(logs_by_tx.get(p.tx_hash.lower(), []), self.weth, self.executor)
                    gas_cost = tx.gas_used * tx.effective_gas_price
                    realized = delta - gas_cost
                    b.realized[p.tx_hash] = realized
                    realized_total += realized
                    gas_total += gas_cost
                    if not tx.success:
                        self.stats.failed_txs += 1
                    else:
                        self.stats.landed_txs += 1
                        self.stats.simulated_profit_wei += p.simulated_net
                        self.stats.tips_paid_wei += p.tip
                        if realized != p.simulated_net or tx.gas_used != p.gas_used:
                            self.stats.mismatches.append(
                                f"{p.tx_hash}: simulated {p.simulated_net} (gas {p.gas_used}), "
                                f"realized {realized} (gas {tx.gas_used})"
                            )
                    self.stats.realized_profit_wei += realized
                    self.stats.gas_spent_wei += gas_cost
                b.status = "landed" if all(mined[p.tx_hash.lower()].success for p in landed) else "failed"
                self.stats.landed_bundles += 1
                self.stats.backrun_landed += b.victim is not None
                await self._mark(
                    b, head.number, head.hash, landed=landed, realized=realized_total, gas=gas_total
                )
        self._observe("settle", time.perf_counter() - t0)

    async def _mark(
        self,
        b: SentBundle,
        number: int,
        block_hash: str,
        *,
        landed: Sequence[PlannedTx] = (),
        realized: int = 0,
        gas: int = 0,
    ) -> None:
        if self.metrics:
            self.metrics.actions_total.labels(
                bot=self.settings.bot, kind="bundle_outcome", outcome=b.status
            ).inc()
        if not self.store:
            return
        included = b.status in ("landed", "failed")
        await self.store.set_bundle_status(
            chain_id=self.chain_id,
            bundle_hash=b.bundle_hash,
            status="included" if b.status == "landed" else ("failed" if b.status == "failed" else "dropped"),
            included_block_number=number if included else None,
            included_block_hash=block_hash if included else None,
        )
        landed_hashes = {p.tx_hash for p in landed}
        for p in b.txs:
            status = (
                ("landed" if b.status == "landed" else b.status)
                if p.tx_hash in landed_hashes
                else "not_landed"
            )
            await self.store.update_opportunity(
                chain_id=self.chain_id,
                block_hash=b.state_block_hash,
                bot=self.settings.bot,
                key=p.key,
                status=status,
                realized_profit=b.realized.get(p.tx_hash),
                reason=Reason.REVERTED_ON_CHAIN
                if status == "failed"
                else Reason.NOT_LANDED
                if status == "not_landed"
                else None,
            )
        if landed:
            await self.store.record_pnl(
                chain_id=self.chain_id,
                block_number=number,
                block_hash=block_hash,
                bot=self.settings.bot,
                token=self.weth,
                realized=realized + gas,
                gas_spent=gas,
                net=realized,
            )

    # ------------------------------------------------------------------ helpers
    @contextmanager
    def _stage(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._observe(stage, time.perf_counter() - t0)

    def _observe(self, stage: str, seconds: float) -> None:
        self.stats.latencies.setdefault(stage, []).append(seconds)
        if self.metrics:
            self.metrics.observe_latency(self.settings.bot, stage, seconds)
