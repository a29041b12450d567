"""`mevsuite demo`: the first look — a devnet with the real contracts, simulated users, and a bot recording it all.

Steps: serve ``/metrics``; migrate the database; start anvil and deploy the world; then for each block the
simulated users send swaps (and oracle moves) into the mempool, our block builder mines them, and the recording
bot (:mod:`bots.recorder`) reads the block and writes transactions, trades, blocks and exact cross-venue
arbitrage opportunities to the database.  Ends with a summary table (and returns it as a dict).
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

from bots.config import Config
from bots.devnet_runner import Devnet
from bots.metrics import Metrics
from bots.recorder import BlockCollector, RecorderStrategy, StoreExecutor
from bots.runtime import Engine
from bots.store import Store, mask_url, resolve_url
from chains.devnet.builder import BlockReport
from chains.node import find_anvil
from chains.rpc import RpcClient

BOT = "recorder"


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
    cfg: Config, *, blocks: int, seed: int | None = None, db_url: str | None = None,
    metrics_port: int | None = None, console: Console | None = None, metrics: Metrics | None = None,
    on_block: OnBlock | None = None, on_finish: OnFinish | None = None,
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
        out.print(f"[bold]database[/] {mask_url(url)} (migrating)")
        store = await Store.open(url, upgrade=True, metrics=metrics)
        with out.status("deploying the devnet (anvil + Uniswap V2/V3 + Aave V3)") as status:
            devnet = await Devnet.start(cfg, seed=seed, block_time=0,
                                        progress=lambda msg: status.update(f"devnet: {msg}"))
        book = devnet.book
        out.print(f"[bold]devnet[/] {devnet.node.http_url}: {len(book.tokens)} tokens, {len(book.pools)} pools, "
                  f"{len(book.aave.reserves)} Aave reserves, deployed in {devnet.deploy_seconds:.2f} s")
        async with RpcClient([devnet.node.http_url], timeout=cfg.chain.request_timeout_s) as rpc:
            start_block = devnet.node.block_number() + 1
            collector = BlockCollector(rpc, start_block=start_block, poll_interval=0.05)
            strategy = RecorderStrategy(rpc, book)
            executor = StoreExecutor(store, chain_id=book.chain_id, bot=BOT)
            engine = Engine([collector], [strategy], [executor], name=BOT, observer=metrics)
            engine_task = asyncio.create_task(engine.run(), name="engine")
            try:
                last = await _produce_blocks(out, devnet, blocks, on_block)
                await _wait_recorded(executor, engine_task, last)
            finally:
                engine.stop()
                final_health = await engine_task
            await devnet.traffic.settle()
        summary = await _summary(store, devnet, strategy, server.url, url, time.perf_counter() - t_start)
        summary["engine_state"] = str(final_health.get("state"))
        _print_summary(out, summary)
        await _call(on_finish, summary)
        return summary
    finally:
        if devnet is not None:
            await devnet.close()
        if store is not None:
            await store.close()
        server.stop()


async def _produce_blocks(out: Console, devnet: Devnet, blocks: int, on_block: OnBlock | None) -> int:
    last = 0
    with Progress(TextColumn("[bold]blocks"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=out, transient=False) as progress:
        task = progress.add_task("blocks", total=blocks, info="")
        for _ in range(blocks):
            swaps, moves = await devnet.traffic.step()
            report = await devnet.builder.build_block()
            last = report.number
            progress.update(task, advance=1,
                            info=f"#{report.number}: {report.tx_count} txs ({len(swaps)} swaps, {len(moves)} oracle)")
            await _call(on_block, report)
    return last


async def _wait_recorded(executor: StoreExecutor, engine_task: asyncio.Task[Any], last_block: int) -> None:
    """Wait until the bot has written block ``last_block`` (or the engine died, which is an error)."""
    deadline = time.monotonic() + 120
    while executor.last_block is None or executor.last_block < last_block:
        if engine_task.done():
            raise DemoError(f"the recording bot stopped early: {engine_task.result()!r}")
        if time.monotonic() > deadline:
            raise DemoError(f"the recording bot did not reach block {last_block} within 120 s")
        executor.block_written.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(executor.block_written.wait(), timeout=1.0)


async def _summary(store: Store, devnet: Devnet, strategy: RecorderStrategy, metrics_url: str, db_url: str,
                   elapsed: float) -> dict[str, Any]:
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


def _print_summary(out: Console, s: dict[str, Any]) -> None:
    table = Table(title="mevsuite demo — summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in ("blocks", "transactions_mined", "swaps_sent", "swaps_reverted", "loose_slippage_swaps",
                "oracle_moves", "opportunities_found", "deploy_seconds", "elapsed_seconds"):
        table.add_row(key.replace("_", " "), str(s[key]))
    for name, n in s["rows"].items():
        table.add_row(f"rows in {name}", str(n))
    table.add_row("database", s["database"])
    table.add_row("metrics", s["metrics_url"])
    out.print(table)
