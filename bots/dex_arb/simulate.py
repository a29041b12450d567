"""The DEX arbitrage bot's simulation executor: candidates in, a sized :class:`bots.runtime.actions.Bundle` out.

* :class:`~bots.dex_arb.bot.CycleCandidates` (after a block) -- each cycle in pyrevm forked at the block, with
  the target block's environment: a first pass without tip gives the exact profit and gas; the tip is
  ``tip_share`` of what is left after gas; a second pass with the tip and ``minProfit`` confirms the numbers.
* :class:`~bots.dex_arb.bot.BackrunCandidates` (after a pending swap) -- ``[user tx, our txs...]`` in one
  ``eth_simulateV1`` on the node, twice (no tip; then tips and minimums), dropping what fails or does not pay.

Every tx kept is turned into an unsigned EIP-1559 dict (gas limit = simulated gas + margin; priority fee 0 in
bundle mode); the bundle goes to the risk gate and the sending executor.  A cycle dropped gets its
:class:`bots.store.Reason`; a block whose cycles all drop is an :class:`~bots.dex_arb.bot.Evaluated` for the
store executor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from analytics.routing import Opportunity
from bots.dex_arb.bot import (
    BackrunCandidates,
    BundlePlan,
    CycleCandidates,
    DexArbBot,
    Evaluated,
    PlannedTx,
    opportunity_key,
    token_delta,
    victim_key,
)
from bots.runtime.actions import Bundle
from bots.runtime.engine import Executor
from bots.store import Reason
from chains.events import NewBlock
from chains.send.executor import ArbPlan, Funding, FundingMode, Hop, encode_execute
from chains.sim.fork import ForkSim, SimResult

__all__ = ["CycleSimulator", "simulate_calls"]

log = logging.getLogger(__name__)

SIM_GAS = 3_000_000  # the gas a simulated execute() may use


async def simulate_calls(
    bot: DexArbBot, head: NewBlock, base_fee: int, calls: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """``eth_simulateV1`` of ``calls`` in sequence on block ``head``'s state, in the next block's environment."""
    env = {
        "number": hex(head.number + 1),
        "time": hex(head.timestamp + 1),
        "baseFeePerGas": hex(base_fee),
        "feeRecipient": bot.coinbase or "0x" + "00" * 20,
    }
    res = await bot.rpc.request(
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


class CycleSimulator(Executor[object]):
    """See the module docstring."""

    name = "simulate"

    def __init__(self, bot: DexArbBot) -> None:
        self.bot = bot

    def accepts(self, action: object) -> bool:
        return isinstance(action, (CycleCandidates, BackrunCandidates))

    async def execute(self, action: object) -> Sequence[object]:
        if isinstance(action, CycleCandidates):
            return await self._cycles(action)
        assert isinstance(action, BackrunCandidates)
        return await self._backrun(action)

    # ------------------------------------------------------------------ after a block (pyrevm)
    async def _cycles(self, c: CycleCandidates) -> list[object]:
        bot, head = self.bot, c.head
        reasons: dict[str, str] = {}
        try:
            with bot.stage("simulate"):
                planned = await asyncio.to_thread(
                    self._simulate, head.number, head.timestamp, c.base_fee, c.chosen, reasons
                )
        except Exception:
            log.exception("dex_arb: simulating block %d's cycles failed", head.number)
            return [Evaluated(head, started=c.started, error=True)]
        bot.stats.simulated += len(planned)
        if not planned:
            return [Evaluated(head, c.chosen, reasons, c.started)]
        plan = BundlePlan("cycle", head, c.base_fee, c.chosen, tuple(planned), reasons, c.started)
        return [self._bundle(plan)]

    def _bundle(self, plan: BundlePlan, victim: BackrunCandidates | None = None) -> Bundle:
        s = self.bot.settings
        return Bundle(
            bot=s.bot,
            chain_id=self.bot.chain_id,
            target_block=plan.head.number + 1,
            notional_wei=sum(p.plan.amount_in for p in plan.planned),
            expected_profit_wei=sum(p.simulated_net for p in plan.planned),
            txs=tuple(p.tx for p in plan.planned),
            victim=victim.victim_hash if victim else None,
            victim_raw=victim.victim_raw if victim else None,
            # One identity per (bot, chain, target block) -- per victim for backruns, which share the block with
            # the bot's own bundle -- so a re-sent bundle replaces the earlier one.
            replacement_key=f"{s.bot}/backrun/{victim.victim_hash}" if victim else s.bot,
            payload=plan,
        )

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
            funding=Funding(self.bot.settings.funding),
            min_profit=min_profit,
            tip_wei=tip,
        )

    def _simulate(
        self,
        number: int,
        timestamp: int,
        base_fee: int,
        chosen: Sequence[Opportunity],
        why: dict[str, str],
    ) -> list[PlannedTx]:
        """The txs worth sending (worker thread); each cycle dropped gets its :class:`Reason` code in ``why``."""
        bot = self.bot
        s, st = bot.settings, bot.stats
        sim = ForkSim(bot.rpc_url, number)
        coinbase = bot.coinbase or "0x" + "00" * 20
        sim.set_block(number=number + 1, timestamp=timestamp + 1, basefee=base_fee, coinbase=coinbase)
        nonce = int(sim.evm.basic(bot.owner).nonce)
        # Own-balance funding: a cycle cannot spend more than the executor holds (profit is concave in the
        # input, so the capped size is the best feasible one).
        cap = sim.erc20_balance(bot.weth, bot.executor) if s.funding == FundingMode.OWN_BALANCE else None
        out: list[PlannedTx] = []
        for opp in chosen:
            key = opportunity_key(opp)
            amount = opp.amount_in if cap is None else min(opp.amount_in, cap)
            if amount <= 0:
                st.rejected += 1
                why[key] = Reason.NO_FUNDS
                continue
            first = self._sim_plan(sim, self._plan(opp, tip=0, min_profit=0, amount_in=amount), base_fee)
            if not first.success:
                st.sim_failed += 1
                why[key] = Reason.SIMULATION_REVERTED
                log.info("dex_arb: %s reverts in simulation: %s", key, first.reason)
                continue
            d1 = token_delta(first.logs, bot.weth, bot.executor)
            budget = d1 - first.gas_used * base_fee
            if budget <= s.min_net_profit_wei:
                st.rejected += 1
                why[key] = Reason.BELOW_MIN_PROFIT
                log.info(
                    "dex_arb: %s not worth it: simulated profit %d - gas %d x %d = %d (finder said %d)",
                    key, d1, first.gas_used, base_fee, budget, opp.net_profit,
                )  # fmt: skip
                continue
            tip = int(s.tip_share * budget) if s.send_mode == "bundle" else 0
            min_profit = first.gas_used * base_fee + s.min_net_profit_wei
            plan = self._plan(opp, tip=tip, min_profit=min_profit, amount_in=amount)
            second = self._sim_plan(sim, plan, base_fee)
            if not second.success:
                st.rejected += 1
                why[key] = Reason.TIP_REVERTED
                log.info("dex_arb: %s fails with its tip: %s", key, second.reason)
                continue
            d2 = token_delta(second.logs, bot.weth, bot.executor)
            net = d2 - second.gas_used * base_fee
            prio = 0
            if s.send_mode == "public":
                prio = int(s.tip_share * net) // second.gas_used
                net -= prio * second.gas_used
            if net < s.min_net_profit_wei:
                st.rejected += 1
                why[key] = Reason.BELOW_MIN_PROFIT
                continue
            out.append(self._planned(opp, key, plan, second.gas_used, d2, tip, net, nonce, base_fee, prio))
            nonce += 1
        return out

    def _sim_plan(self, sim: ForkSim, plan: ArbPlan, base_fee: int) -> SimResult:
        return sim.call(
            self.bot.owner,
            self.bot.executor,
            encode_execute(plan),
            gas=SIM_GAS,
            gas_price=base_fee,
            commit=False,
        )

    def _planned(
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
        """The unsigned ``execute(plan)`` tx: its gas limit is the simulated gas plus a margin."""
        s = self.bot.settings
        gas_limit = int(gas * s.gas_limit_margin) + 10_000
        tx = {
            "chainId": self.bot.chain_id,
            "nonce": nonce,
            "to": self.bot.executor,
            "value": 0,
            "data": encode_execute(plan),
            "gas": gas_limit,
            "maxFeePerGas": base_fee * s.max_fee_multiplier + prio,
            "maxPriorityFeePerGas": prio,
        }
        return PlannedTx(opp, key, plan, tx, gas, gas_limit, delta, tip, net)

    # ------------------------------------------------------------------ after a pending swap (eth_simulateV1)
    async def _backrun(self, c: BackrunCandidates) -> list[object]:
        bot = self.bot
        try:
            with bot.stage("simulate"):
                planned = await self._plan_after(c.head, c.base_fee, c.victim, c.chosen)
        except Exception as exc:  # a bad pending tx or a node hiccup must not stop the bot
            log.warning("dex_arb: backrun of %s failed: %s: %s", c.victim_hash, type(exc).__name__, exc)
            planned = []
        if not planned:
            bot.observe("backrun", time.perf_counter() - c.started)
            return []
        bot.stats.found += len(c.chosen)
        bot.stats.simulated += len(planned)
        plan = BundlePlan("backrun", c.head, c.base_fee, c.chosen, tuple(planned), {}, c.started)
        return [self._bundle(plan, c)]

    def _call_of(self, plan: ArbPlan, base_fee: int, nonce: int) -> dict[str, Any]:
        return {
            "from": self.bot.owner,
            "to": self.bot.executor,
            "data": "0x" + encode_execute(plan).hex(),
            "gas": hex(SIM_GAS),
            "nonce": hex(nonce),
            "maxFeePerGas": hex(base_fee * self.bot.settings.max_fee_multiplier),
            "maxPriorityFeePerGas": "0x0",
        }

    async def _after_victim(
        self, head: NewBlock, base_fee: int, victim: dict[str, Any], plans: Sequence[ArbPlan], nonce: int
    ) -> list[tuple[int, int] | None] | None:
        """``[user tx, plans...]`` in one ``eth_simulateV1``: per plan ``(gas used, executor WETH change)``, or
        None where it reverts; None in all if the user's tx itself fails."""
        calls = [victim] + [self._call_of(p, base_fee, nonce + i) for i, p in enumerate(plans)]
        res = await simulate_calls(self.bot, head, base_fee, calls)
        if res is None or res[0]["status"] != "0x1":
            return None
        return [
            (int(r["gasUsed"], 16), token_delta(r["logs"], self.bot.weth, self.bot.executor))
            if r["status"] == "0x1"
            else None
            for r in res[1:]
        ]

    async def _plan_after(
        self, head: NewBlock, base_fee: int, victim: dict[str, Any], chosen: Sequence[Opportunity]
    ) -> list[PlannedTx]:
        """Plan ``chosen`` after the user's tx: two simulated passes (no tip; then tip and minimum) of the whole
        sequence, dropping what fails or does not pay, until every kept tx succeeds as simulated."""
        s = self.bot.settings
        nonce = int(
            await self.bot.rpc.request("eth_getTransactionCount", [self.bot.owner, hex(head.number)]), 16
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
                    self._planned(o, key, plan, r[0], r[1], tip, r[1] - r[0] * base_fee, nonce + i, base_fee)
                )
            if len(out) == len(keep):
                return out
            # Drop the first failing one and what follows; retry.
            cands = [o for o, _t, _m in keep][: len(out)]
        return []
