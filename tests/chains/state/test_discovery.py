"""chains.state.discovery: every devnet pool found from factory logs, resumable from a checkpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from chains.node.rpc import RpcClient
from chains.state.discovery import DiscoveryError, Factory, discover_pools
from tests.fixtures.devnet import Devnet


def _factories(devnet: Devnet) -> list[Factory]:
    fs = [Factory(name, v.factory, "v2", v.fee_bps) for name, v in devnet.book.v2.items()]
    return [*fs, Factory("uniswap_v3", devnet.book.v3.factory, "v3")]


def test_discovers_every_devnet_pool_and_resumes(devnet: Devnet, tmp_path: Path) -> None:
    ck = tmp_path / "pools.json"
    head = int(devnet.node.rpc("eth_blockNumber"), 16)
    progress: list[str] = []

    async def scan(to_block: int | None, chunk: int) -> list:
        async with RpcClient(devnet.node.http_url) as rpc:
            return await discover_pools(
                rpc,
                _factories(devnet),
                to_block=to_block,
                chunk=chunk,
                checkpoint=ck,
                on_progress=progress.append,
            )

    half = asyncio.run(scan(head // 2, 3))
    doc = json.loads(ck.read_text())
    assert set(doc["scanned"].values()) == {head // 2}
    full = asyncio.run(scan(None, 3))
    expected = {(p.address, p.token0, p.token1, p.fee, p.tick_spacing) for p in devnet.book.pools}
    got = {(p.address, p.token0, p.token1, p.fee, p.tick_spacing) for p in full}
    assert got == expected
    assert {p.address for p in half} <= {p.address for p in full}
    # A rerun scans nothing new and returns the same pools from the checkpoint.
    progress.clear()
    again = asyncio.run(scan(None, 3))
    assert again == full and progress == []


def test_bad_checkpoint_is_a_clear_error(devnet: Devnet, tmp_path: Path) -> None:
    ck = tmp_path / "bad.json"
    ck.write_text('{"format": "something else"}')

    async def scan() -> None:
        async with RpcClient(devnet.node.http_url) as rpc:
            await discover_pools(rpc, _factories(devnet), checkpoint=ck)

    with pytest.raises(DiscoveryError, match="not a pool-discovery checkpoint"):
        asyncio.run(scan())
