"""`mevsuite demo`: the first look — a devnet with the real contracts, simulated users, and two bots at work.

Steps: serve ``/metrics``; migrate the database; start anvil, deploy the world and the local relay; deploy our
``ArbExecutor`` and fund it with WETH; then for each block the simulated users send swaps (and oracle moves)
into the mempool, our block builder mines them (bundles first), and

* the recording bot (:mod:`bots.recorder.bot`) writes transactions, trades, blocks and exact cross-venue
  arbitrage opportunities to the database;
* the DEX arbitrage bot (:mod:`bots.dex_arb.bot`) evaluates the block, simulates its best cycles and sends them
  to the relay as a bundle for the next block, which the builder lands (or not).

The next block is built only after the arbitrage bot has evaluated the last one, so every bundle competes for
its target block.  Afterwards the independent brute-force oracle (:mod:`analytics.cycle_oracle`) re-reads every
block's pools and counts the opportunities above gas cost the traffic created, and how many the bot captured in
the next block.  Ends with a summary table (and returns it as a dict; ``--json-summary`` writes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from analytics.cycle_oracle import (
    enumerate_cycles,
    independent_set,
    opportunities,
    read_pools,
    tradable_pools,
)
from bots.app.config import Config
from bots.app.devnet import Devnet, builder_heads, setup_devnet_executor
from bots.app.risk import risk_gate_from_config
from bots.dex_arb.bot import DexArbSettings
from bots.dex_arb.runner import (
    EXECUTOR_GAS,
    DexArbRunner,
    chain_from_book,
)
from bots.metrics import Metrics
from bots.recorder.bot import RecorderStrategy, StoreExecutor, block_collector
from bots.runtime.collectors import BlockCollector
from bots.runtime.engine import Engine
from bots.store import Store, mask_url, resolve_url
from chains.devnet.builder import BlockReport
from chains.devnet.relay import DEVNET_BUILDER_COINBASE
from chains.node.anvil import DEV_MNEMONIC, find_anvil
from chains.node.rpc import RpcClient
from chains.send.gas import next_base_fee
from chains.send.signer import Signer

BOT = "recorder"
ARB_OWNER_INDEX = 36  # dev account (mnemonic index) that owns the demo's ArbExecutor: 30-39 are free
ARB_FUNDING_WEI = 1_000 * 10**18  # WETH the executor trades with (own-balance funding)
ARB_BOT = "dex_arb"  # the arbitrage bot's metric label (DexArbSettings.bot)
DEMO_MODE_LINE = "mode: live on the demo's own devnet (bot.dry_run and --live apply to forks and real chains)"


OnBlock = Callable[[BlockReport], Awaitable[None] | None]
OnFinish = Callable[[dict[str, Any]], Awaitable[None] | None]


class DemoError(RuntimeError):
    """The demo could not complete (the message says which step)."""


async def _call(hook: Callable[[Any], Awaitable[None] | None] | None, arg: Any) -> None:
    if hook is not None:
        result = hook(arg)
        if inspect.isawaitable(result):
            await result


async def run_demo(
    cfg: Config,
    *,
    blocks: int,
    seed: int | None = None,
    db_url: str | None = None,
    metrics_port: int | None = None,
    console: Console | None = None,
    metrics: Metrics | None = None,
    on_block: OnBlock | None = None,
    on_finish: OnFinish | None = None,
) -> dict[str, Any]:
    """Run the demo for ``blocks`` blocks and return its summary.

    ``metrics``: the registry to report to and serve (default: a new one).  ``on_block(report)`` is called
    (and awaited if it returns an awaitable) after each block is mined; ``on_finish(summary)`` once every
    block is recorded, while ``/metrics``, the database and the devnet are all still up — e.g. to scrape
    ``summary["metrics_url"]``.
    """
    if blocks < 1:
        raise ValueError("blocks must be at least 1")
    find_anvil()  # fail fast (AnvilNotFoundError) before serving metrics or creating a database
    out = console or Console(stderr=True)
    t_start = time.perf_counter()
    url = resolve_url(db_url or cfg.db.sqlalchemy_url())
    metrics = metrics if metrics is not None else Metrics()
    server = metrics.serve(cfg.metrics.host, cfg.metrics.port if metrics_port is None else metrics_port)
    store: Store | None = None
    devnet: Devnet | None = None
    try:
        out.print(f"[bold]metrics[/] {server.url}")
        # The exception to "bot.dry_run = false AND --live" (docs/keys-and-modes.md): the demo's bot sends only
        # to the throw-away devnet the demo starts, with dev keys, so it is always live there.
        out.print(DEMO_MODE_LINE, highlight=False, markup=False)
        metrics.set_mode(ARB_BOT, True)
        out.print(f"[bold]database[/] {mask_url(url)} (migrating)")
        store = await Store.open(url, upgrade=True, metrics=metrics)
        with out.status("deploying the devnet (anvil + Uniswap V2/V3 + Aave V3)") as status:
            devnet = await Devnet.start(
                cfg, seed=seed, block_time=0, progress=lambda msg: status.update(f"devnet: {msg}")
            )
        book = devnet.book
        out.print(
            f"[bold]devnet[/] {devnet.node.http_url}: {len(book.tokens)} tokens, {len(book.pools)} pools, "
            f"{len(book.aave.reserves)} Aave reserves, deployed in {devnet.deploy_seconds:.2f} s"
        )
        arb = await _start_arb(cfg, devnet, store, metrics, out)
        arb_task = asyncio.create_task(arb.run(), name="dex_arb")
        async with RpcClient([devnet.node.http_url], timeout=cfg.chain.request_timeout_s) as rpc:
            start_block = devnet.node.block_number() + 1
            collector = await block_collector(
                rpc, start_block=start_block, heads=builder_heads(devnet.builder), chain_id=book.chain_id
            )
            strategy = RecorderStrategy(rpc, book)
            executor = StoreExecutor(store, chain_id=book.chain_id, bot=BOT)
            engine = Engine([collector], [strategy], [executor], name=BOT, observer=metrics)
            engine_task = asyncio.create_task(engine.run(), name="engine")
            try:
                last = await _produce_blocks(out, devnet, blocks, on_block, arb, arb_task)
                await _wait_recorded(collector, engine_task, last)
                await _wait_arb(arb, arb_task, last)
            finally:
                engine.stop()
                final_health = await engine_task
                arb.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(arb_task, timeout=10)
                await arb.close()
            await devnet.traffic.settle()
        summary = await _summary(store, devnet, strategy, server.url, url, time.perf_counter() - t_start)
        summary["engine_state"] = str(final_health.get("state"))
        with out.status("checking the arbitrage bot against the brute-force oracle"):
            summary["arb"] = await _arb_summary(devnet, arb, start_block, last)
        _print_summary(out, summary)
        await _call(on_finish, summary)
        return summary
    finally:
        if devnet is not None:
            await devnet.close()
        if store is not None:
            await store.close()
        server.stop()


async def _start_arb(
    cfg: Config, devnet: Devnet, store: Store, metrics: Metrics, out: Console
) -> DexArbRunner:
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    key = bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{ARB_OWNER_INDEX}").key)
    signer = Signer(key)
    book = devnet.book
    executor = await asyncio.to_thread(
        setup_devnet_executor,
        devnet.node,
        signer.address,
        book.weth,
        fund_wei=ARB_FUNDING_WEI,
        aave_pool=book.aave.pool,
    )
    assert devnet.relay is not None, "the demo needs the local relay"
    runner = DexArbRunner(
        chain_from_book(book, devnet.node.http_url),
        signer,
        executor,
        relay_url=devnet.relay.url,
        settings=DexArbSettings(live=True),
        store=store,
        metrics=metrics,
        coinbase=DEVNET_BUILDER_COINBASE,
        heads=builder_heads(devnet.builder),
        risk=risk_gate_from_config(cfg, metrics.registry),
    )
    await runner.start()
    excluded = ", ".join(
        f"{book.token_by_address(t).symbol} ({runner.verdicts[t].verdict})" for t in sorted(runner.excluded)
    )
    out.print(
        f"[bold]dex-arb[/] executor {executor} with {ARB_FUNDING_WEI // 10**18} WETH, "
        f"{len(runner.bot.finder.pools) if runner.bot else 0} pools in the graph; excluded: {excluded or 'none'}"
    )
    return runner


async def _wait_arb(arb: DexArbRunner, arb_task: asyncio.Task[Any], number: int) -> None:
    if arb_task.done():
        raise DemoError(f"the arbitrage bot stopped early: {arb_task.exception()!r}")
    try:
        await arb.wait_processed(number, timeout=120)
    except TimeoutError:
        raise DemoError(f"the arbitrage bot did not evaluate block {number} within 120 s") from None


async def _produce_blocks(
    out: Console,
    devnet: Devnet,
    blocks: int,
    on_block: OnBlock | None,
    arb: DexArbRunner | None = None,
    arb_task: asyncio.Task[Any] | None = None,
) -> int:
    last = 0
    with Progress(
        TextColumn("[bold]blocks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    ) as progress:
        task = progress.add_task("blocks", total=blocks, info="")
        for _ in range(blocks):
            if arb is not None and arb_task is not None:
                await _wait_arb(arb, arb_task, devnet.node.block_number())  # its bundle is in before we build
            swaps, moves = await devnet.traffic.step()
            report = await devnet.builder.build_block()
            last = report.number
            progress.update(
                task,
                advance=1,
                info=f"#{report.number}: {report.tx_count} txs ({len(swaps)} swaps, {len(moves)} oracle)",
            )
            await _call(on_block, report)
    return last


async def _wait_recorded(collector: BlockCollector, engine_task: asyncio.Task[Any], last_block: int) -> None:
    """Wait until the bot is done with block ``last_block`` (or the engine died, which is an error)."""
    done = asyncio.ensure_future(collector.wait_done(last_block, timeout=120))
    await asyncio.wait({done, engine_task}, return_when=asyncio.FIRST_COMPLETED)
    if not done.done():
        done.cancel()
        raise DemoError(f"the recording bot stopped early: {engine_task.result()!r}")
    try:
        done.result()
    except TimeoutError:
        raise DemoError(f"the recording bot did not reach block {last_block} within 120 s") from None


async def _summary(
    store: Store, devnet: Devnet, strategy: RecorderStrategy, metrics_url: str, db_url: str, elapsed: float
) -> dict[str, Any]:
    counts = await store.counts()
    stats = devnet.traffic.stats
    return {
        "blocks": len(devnet.reports),
        "transactions_mined": sum(r.tx_count for r in devnet.reports),
        "swaps_sent": stats.total_sent,
        "swaps_reverted": stats.swaps_reverted,
        "loose_slippage_swaps": stats.loose_swaps,
        "oracle_moves": stats.oracle_moves,
        "opportunities_found": strategy.opportunities_found,
        "rows": counts,
        "database": mask_url(db_url),
        "metrics_url": metrics_url,
        "deploy_seconds": round(devnet.deploy_seconds, 3),
        "elapsed_seconds": round(elapsed, 2),
    }


async def _arb_summary(devnet: Devnet, arb: DexArbRunner, first: int, last: int) -> dict[str, Any]:
    """The bot's numbers, and the oracle's: opportunities above gas cost after blocks first-1 .. last-1, and
    which of them the bot captured in the next block (a landed cycle sharing a pool with it)."""
    assert arb.bot is not None
    bot, book = arb.bot, devnet.book
    st = bot.stats
    landed_pools: dict[int, list[set[str]]] = {}
    for b in bot.history:
        if b.status == "landed":
            landed_pools.setdefault(b.target_block, []).extend(
                {p.lower() for p in t.opportunity.pools} for t in b.txs
            )
    pools = tradable_pools(book)
    cycles = enumerate_cycles(pools, book.weth, arb.max_hops)
    oracle_total = captured = 0
    missed: list[dict[str, Any]] = []
    submitted_at: dict[int, list[set[str]]] = {}
    for b in bot.history:
        submitted_at.setdefault(b.state_block, []).extend(
            {p.lower() for p in t.opportunity.pools} for t in b.txs
        )
    async with RpcClient([devnet.node.http_url]) as rpc:
        for n in range(first - 1, last):
            head = await rpc.request("eth_getBlockByNumber", [hex(n), False])
            base_fee = next_base_fee(
                int(head["baseFeePerGas"], 16), int(head["gasUsed"], 16), int(head["gasLimit"], 16)
            )
            state = await read_pools(rpc, pools, n)
            found = independent_set(
                opportunities(
                    state,
                    cycles,
                    book.weth,
                    base_fee=base_fee,
                    gas_for=lambda kinds: EXECUTOR_GAS.units(kinds),
                )
            )
            for o in found:
                oracle_total += 1
                mine = {p.lower() for p in o.pools}
                if any(mine & got for got in landed_pools.get(n + 1, [])):
                    captured += 1
                elif len(missed) < 20:
                    missed.append(
                        {
                            "block": n,
                            "net": o.net,
                            "hops": len(o.legs),
                            "amount_in": o.amount_in,
                            "submitted_overlap": any(mine & got for got in submitted_at.get(n, [])),
                            "bundle": [
                                (b.status, b.target_block, len(b.txs))
                                for b in bot.history
                                if b.state_block == n
                            ],
                        }
                    )
    relay_log = devnet.relay.received(method="eth_sendBundle") if devnet.relay is not None else []
    sent = {b.bundle_hash: b for b in bot.history if b.sent}
    # Audit from the relay's side: every bundle it received is one we simulated, each tx profitable after gas
    # and tip at the bundle's target state (the state of the block before the target).
    unprofitable = sum(
        1
        for r in relay_log
        if r.bundle_hash in sent
        and (
            any(t.simulated_net <= 0 for t in sent[r.bundle_hash].txs)
            or sent[r.bundle_hash].state_block + 1 != r.target_block
        )
    )
    excluded = {t.lower() for t in arb.excluded}
    bad_landed = sum(
        1
        for b in bot.history
        if b.status == "landed"
        for t in b.txs
        if any(h.token_in.lower() in excluded or h.token_out.lower() in excluded for h in t.opportunity.hops)
    )
    return {
        "executor": arb.executor,
        "weth": book.weth,
        "rpc_url": devnet.node.http_url,
        "funding_wei": ARB_FUNDING_WEI,
        "oracle_opportunities_above_gas": oracle_total,
        "captured_next_block": captured,
        "capture_rate": round(captured / oracle_total, 4) if oracle_total else None,
        "opportunities_found": st.found,
        "simulated": st.simulated,
        "rejected_after_simulation": st.rejected,
        "simulation_reverts": st.sim_failed,
        "bundles_submitted": st.submitted_bundles,
        "bundles_landed": st.landed_bundles,
        "bundles_not_landed": st.not_landed_bundles,
        "txs_landed": st.landed_txs,
        "txs_failed": st.failed_txs,
        "simulated_profit_wei": st.simulated_profit_wei,
        "realized_profit_wei": st.realized_profit_wei,
        "realized_equals_simulated": st.realized_profit_wei == st.simulated_profit_wei and not st.mismatches,
        "mismatches": st.mismatches,
        "gas_spent_wei": st.gas_spent_wei,
        "tips_paid_wei": st.tips_paid_wei,
        "relay_bundles_received": len(relay_log),
        "relay_bundles_not_simulated_by_us": sum(1 for r in relay_log if r.bundle_hash not in sent),
        "relay_bundles_unprofitable_in_simulation": unprofitable,
        "landed_pools_with_excluded_tokens": bad_landed,
        "excluded_tokens": {
            book.token_by_address(t).symbol: arb.verdicts[t].verdict for t in sorted(arb.excluded)
        },
        "latency_ms": st.latency_summary(),
        "missed_examples": missed,
    }


def _print_summary(out: Console, s: dict[str, Any]) -> None:
    table = Table(title="mevsuite demo — summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in (
        "blocks",
        "transactions_mined",
        "swaps_sent",
        "swaps_reverted",
        "loose_slippage_swaps",
        "oracle_moves",
        "opportunities_found",
        "deploy_seconds",
        "elapsed_seconds",
    ):
        table.add_row(key.replace("_", " "), str(s[key]))
    for name, n in s["rows"].items():
        table.add_row(f"rows in {name}", str(n))
    table.add_row("database", s["database"])
    table.add_row("metrics", s["metrics_url"])
    a = s.get("arb")
    if a:
        rate = "n/a" if a["capture_rate"] is None else f"{a['capture_rate']:.0%}"
        table.add_row("arb: oracle opportunities above gas", str(a["oracle_opportunities_above_gas"]))
        table.add_row("arb: captured in the next block", f"{a['captured_next_block']} ({rate})")
        table.add_row("arb: bundles submitted / landed", f"{a['bundles_submitted']} / {a['bundles_landed']}")
        table.add_row("arb: simulated profit (wei)", f"{a['simulated_profit_wei']:,}")
        table.add_row("arb: realized profit (wei)", f"{a['realized_profit_wei']:,}")
        table.add_row("arb: gas spent / tips paid (wei)", f"{a['gas_spent_wei']:,} / {a['tips_paid_wei']:,}")
        for stage, q in a["latency_ms"].items():
            table.add_row(f"arb: {stage} p50 / p99 (ms)", f"{q['p50_ms']} / {q['p99_ms']}")
    out.print(table)
