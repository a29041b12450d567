"""The DEX arbitrage bot: after every applied block, find cycles, simulate them, and land them as a bundle.

The bot runs on the runtime's :class:`bots.runtime.engine.Engine` (assembled by :class:`bots.dex_arb.runner.DexArbRunner`):

* collectors -- :class:`bots.runtime.collectors.BlockCollector` (whole blocks applied to the chain state by the
  :class:`chains.watch.blocks.BlockWatcher`, reorgs) and, with a mempool feed,
  :class:`bots.runtime.collectors.PendingSwapCollector`;
* the strategy -- :class:`bots.dex_arb.strategy.DexArbStrategy`: settles the bundles sent for this block, finds
  and selects cycles (:class:`CycleCandidates`), and for a pending swap the cycles its effects open
  (:class:`BackrunCandidates`);
* executors, chained by typed actions -- :class:`bots.dex_arb.simulate.CycleSimulator` (candidates → a sized
  :class:`bots.runtime.actions.Bundle`), the risk gate, :class:`bots.runtime.send.Sender` (sign + send,
  dry-run unless live → :class:`bots.runtime.send.BundleSent`) and :class:`bots.dex_arb.record.DexArbRecorder`
  (the store rows, the bundles to settle).

One block goes through these stages (each timed into ``mevsuite_stage_latency_seconds{bot, stage}`` and kept
for the summary's p50/p99):

1. **find** — the pools the block changed (``ChainState.apply_block``'s answer); :class:`analytics.routing.RouteFinder`
   re-evaluates only the cycles through them and returns the best opportunities net of gas at the next block's
   base fee.
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
   sending and records the opportunities as ``simulated``; a bundle the risk gate refuses is recorded with the
   gate's reason.
5. **settle** — when block N+1 is applied: each of our txs that is in it gives the realized profit, read
   from its receipt logs (the executor's WETH balance change: Transfer/Deposit/Withdrawal) minus
   ``gasUsed × effectiveGasPrice``; missing txs mean ``not_landed``.

The block collector waits until the engine is done with block N -- every stage above, the store writes
included -- before the watcher applies block N+1 (docs/adding-a-bot.md, "ordering").

Every opportunity is recorded (``found`` → ``simulated``/``rejected`` → ``submitted`` → ``landed`` /
``not_landed`` / ``failed``; reorgs make them ``orphaned`` through :class:`bots.runtime.reorg.ReorgHandler`), with
a ``reason`` code for each one not sent or not landed (:class:`bots.store.Reason`, docs/store.md), the bundle, a
PnL row per landed block, and one ``evaluations`` row per block (``evaluated``: its duration and the number of
opportunities found; ``skipped`` with ``evaluation_error`` when the evaluation raised).  Nothing is sent that was
not simulated profitable at its target state.

**Pending swaps**: a pending router swap is simulated on top of the last block (``eth_simulateV1`` on the node,
with the next block's environment); the pools it moves are handed to the route finder as hypothetical states
(restored afterwards); the plan for block N+1 is then redone *after* the user's swap and sent as
``[user tx, our txs...]``.  It uses the same nonces as the block-level bundle, so the builder lands whichever
pays more.  The user's tx always comes first: we backrun, never front-run.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from eth_utils.crypto import keccak

from analytics.routing import Opportunity, RouteFinder
from bots.metrics import Metrics
from bots.store import Store
from chains.events import NewBlock
from chains.node.rpc import RpcClient
from chains.send.executor import ArbPlan, FundingMode
from chains.sim.fork import SimLog
from chains.state.chain import ChainState

log = logging.getLogger(__name__)

__all__ = [
    "BackrunCandidates",
    "CycleCandidates",
    "DexArbBot",
    "DexArbSettings",
    "Evaluated",
    "PlannedTx",
    "SentBundle",
    "Settled",
    "opportunity_key",
    "token_delta",
]

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
    """One sized ``execute(plan)`` transaction: ``tx`` unsigned (the simulation's); ``raw``/``tx_hash`` once the
    sending executor has signed it."""

    opportunity: Opportunity
    key: str
    plan: ArbPlan
    tx: dict[str, Any]
    gas_used: int  # simulated, including the intrinsic gas
    gas_limit: int
    weth_delta: int  # simulated executor WETH change (after the tip)
    tip: int
    simulated_net: int  # weth_delta - gas_used * base_fee (priority fee 0)
    raw: str = ""
    tx_hash: str = ""


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
    refused: int = 0  # bundles the risk gate stopped
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
    """A short id of a pending user tx (sender prefix and nonce) for backrun opportunity keys."""
    return f"{str(victim['from']).lower()[2:8]}{int(str(victim['nonce']), 16):x}"


def opportunity_key(opp: Opportunity) -> str:
    """Stable id of a cycle (pools and directions) — unique per block for the bot."""
    return "|".join(f"{h.pool.lower()[2:14]}{'a' if h.zero_for_one else 'b'}" for h in opp.hops)


# ------------------------------------------------------------------------------------------------ actions
# The bot's own actions (never sent, so never gated); what it sends is a bots.runtime.actions.Bundle.


@dataclass(frozen=True, slots=True, eq=False)
class CycleCandidates:
    """The cycles chosen after block ``head`` (pool-disjoint, best first), for the simulation executor."""

    head: NewBlock
    base_fee: int  # of the target block, head + 1
    chosen: tuple[Opportunity, ...]
    started: float  # perf_counter when the block's evaluation began


@dataclass(frozen=True, slots=True, eq=False)
class BackrunCandidates:
    """The cycles a pending swap opens; the simulation executor re-plans them after the user's tx."""

    head: NewBlock
    base_fee: int
    victim: dict[str, Any]  # the user's tx as an eth_simulateV1 call
    victim_hash: str
    victim_raw: str
    chosen: tuple[Opportunity, ...]
    started: float


@dataclass(frozen=True, slots=True, eq=False)
class BundlePlan:
    """A :class:`bots.runtime.actions.Bundle`'s payload: what the bot planned, for its store executor."""

    kind: Literal["cycle", "backrun"]
    head: NewBlock
    base_fee: int
    chosen: tuple[Opportunity, ...]
    planned: tuple[PlannedTx, ...]
    reasons: dict[str, str]  # opportunity key -> why the simulation dropped it
    started: float


@dataclass(frozen=True, slots=True, eq=False)
class Evaluated:
    """A block evaluation that sends nothing (nothing found, nothing survived the simulation, or it failed)."""

    head: NewBlock
    chosen: tuple[Opportunity, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    error: bool = False  # the evaluation raised: an evaluations row ``skipped`` / ``evaluation_error``


@dataclass(frozen=True, slots=True, eq=False)
class Settled:
    """Bundle ``bundle``'s target block ``number`` has been seen: mark it (landed txs, realized profit, gas)."""

    bundle: SentBundle
    number: int
    block_hash: str
    landed: tuple[PlannedTx, ...] = ()
    realized: int = 0
    gas: int = 0


# ---------------------------------------------------------------------------------------------- the bot


class DexArbBot:
    """What the bot's strategy and executors share: its settings, chain, route finder, ledger and statistics.

    ``pending``: target block → bundles sent for it (settled when it is applied); ``history``: every bundle
    planned; ``stats``: the run's counters and stage latencies.
    """

    def __init__(
        self,
        *,
        rpc: RpcClient,
        rpc_url: str,
        finder: RouteFinder,
        state: ChainState,
        executor: str,
        owner: str,
        weth: str,
        chain_id: int,
        settings: DexArbSettings | None = None,
        store: Store | None = None,
        metrics: Metrics | None = None,
        coinbase: str | None = None,
    ) -> None:
        self.rpc = rpc
        self.rpc_url = rpc_url
        self.finder = finder
        self.state = state  # the chain state the finder's pools follow (previews of pending txs' effects)
        self.executor = executor
        self.owner = owner  # the executor's owner: the address that signs and sends
        self.weth = weth
        self.chain_id = chain_id
        self.settings = settings or DexArbSettings()
        self.store = store
        self.metrics = metrics
        self.coinbase = coinbase
        self.stats = DexArbStats()
        self.pending: dict[int, list[SentBundle]] = {}  # target block -> bundles sent for it
        self.history: list[SentBundle] = []

    @contextmanager
    def stage(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.observe(stage, time.perf_counter() - t0)

    def observe(self, stage: str, seconds: float) -> None:
        self.stats.latencies.setdefault(stage, []).append(seconds)
        if self.metrics:
            self.metrics.observe_latency(self.settings.bot, stage, seconds)
