"""Devnet: world deployment time, and block building with public swaps and with bundles."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chains.devnet.actors import TrafficConfig
from chains.devnet.builder import BlockBuilder
from chains.devnet.deploy import deploy_world
from chains.devnet.traffic import TrafficGenerator
from chains.node.anvil import AnvilNode


async def _blocks(node: AnvilNode, book: Any, swaps_per_block: float, blocks: int) -> tuple[float, int]:
    builder = BlockBuilder(node, interval_s=1.0)
    traffic = TrafficGenerator(
        node, book, TrafficConfig(swaps_per_block=swaps_per_block, oracle_moves_per_block=0.0), seed=3
    )
    total, txs = 0.0, 0
    try:
        for _ in range(blocks):
            await traffic.step()
            t0 = time.perf_counter()
            report = await builder.build_block()
            total += time.perf_counter() - t0
            txs += report.tx_count
    finally:
        await traffic.aclose()
        await builder.aclose()
    return total / blocks * 1000, txs


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with AnvilNode.start(accounts=40) as node:
        t0 = time.perf_counter()
        book = deploy_world(node, 7)
        rows.append(
            {
                "what": "deploy_world (40 pools, Aave market)",
                "ms": round((time.perf_counter() - t0) * 1000, 1),
                "txs": "-",
            }
        )
        node.set_automine(False)
        for per_block in (5, 25):
            ms, txs = asyncio.run(_blocks(node, book, per_block, 5))
            rows.append({"what": f"build_block, ~{per_block} public swaps", "ms": round(ms, 1), "txs": txs})
    return rows
