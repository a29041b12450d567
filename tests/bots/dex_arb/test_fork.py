"""`mevsuite run dex-arb --fork-url`: the same bot, unchanged, on its own anvil fork of the devnet.

The source devnet gets a large swap first, so the forked state has an arbitrage open; the bot (with its own
builder and relay on the fork) must land it.  Pools come from the address book, a pool file, or discovery.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from chains.node.rpc import RpcClient
from chains.state.snapshot import snapshot_pool
from tests.bots.app.conftest import run_cli
from tests.bots.dex_arb.helpers import skew
from tests.fixtures.devnet import Devnet


def test_bot_lands_bundles_on_a_fork_of_the_devnet(devnet_state: Devnet, tmp_path: Path) -> None:
    skew(devnet_state)
    book_path = devnet_state.book.write(tmp_path / "book.json")
    out = tmp_path / "summary.json"
    r = run_cli(
        [
            "run",
            "dex-arb",
            "--fork-url",
            devnet_state.node.http_url,
            "--book",
            str(book_path),
            "--live",
            "--blocks",
            "3",
            "--block-time",
            "0.2",
            "--json-summary",
            str(out),
            "--db-url",
            f"sqlite+aiosqlite:///{tmp_path / 'fork.db'}",
        ],
        cwd=tmp_path,
        env={"MEVSUITE__BOT__DRY_RUN": "false"},
    )  # sending needs both switches
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(out.read_text())
    assert s["live"] and s["blocks"] == 3 and s["pools"] == len(devnet_state.book.pools)
    assert s["bundles_landed"] >= 1 and s["txs_landed"] >= 1, s
    assert s["realized_equals_simulated"] and s["realized_profit_wei"] == s["simulated_profit_wei"] > 0, s
    excluded = {devnet_state.book.token_by_address(t).symbol: v for t, v in s["excluded_tokens"].items()}
    assert excluded == {"DTT": "fee_on_transfer", "PAUSE": "reverting"}
    # The source devnet is untouched: the fork's blocks are its own.
    assert devnet_state.node.block_number() < s["blocks"] + devnet_state.node.block_number() + 1


def test_dry_run_with_discovered_pools_sends_nothing(devnet_state: Devnet, tmp_path: Path) -> None:
    skew(devnet_state)
    book = devnet_state.book
    ck = tmp_path / "pools.checkpoint.json"
    args = [
        "run",
        "dex-arb",
        "--fork-url",
        devnet_state.node.http_url,
        "--weth",
        book.weth,
        "--blocks",
        "2",
        "--block-time",
        "0.2",
        "--checkpoint",
        str(ck),
        "--v3-factory",
        book.v3.factory,
    ]
    for name, venue in book.v2.items():
        args += ["--v2-factory", f"{name}={venue.factory}:{venue.fee_bps}"]
    r = run_cli(args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["pools"] == len(book.pools) and not s["live"]
    assert s["opportunities_found"] >= 1 and s["simulated"] >= 1
    assert s["bundles_submitted"] == 0 and s["bundles_landed"] == 0
    assert ck.exists()


def test_pools_file_and_bad_sources(devnet_state: Devnet, tmp_path: Path) -> None:
    book = devnet_state.book

    async def snap() -> list[dict]:
        async with RpcClient(devnet_state.node.http_url) as rpc:
            return [await snapshot_pool(rpc, p.address) for p in book.pools[:6]]

    pools_file = tmp_path / "pools.json"
    pools_file.write_text(json.dumps(asyncio.run(snap())))
    r = run_cli(
        [
            "run",
            "dex-arb",
            "--fork-url",
            devnet_state.node.http_url,
            "--pools",
            str(pools_file),
            "--weth",
            book.weth,
            "--blocks",
            "1",
            "--block-time",
            "0.2",
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["pools"] == 6
    r = run_cli(
        ["run", "dex-arb", "--fork-url", devnet_state.node.http_url, "--pools", str(pools_file)], cwd=tmp_path
    )
    assert r.returncode == 1 and "--weth is needed" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('[{"address": "0x12"}]')
    r = run_cli(
        [
            "run",
            "dex-arb",
            "--fork-url",
            devnet_state.node.http_url,
            "--pools",
            str(bad),
            "--weth",
            book.weth,
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 1 and "pool #0 is not usable" in r.stderr and "Traceback" not in r.stderr
