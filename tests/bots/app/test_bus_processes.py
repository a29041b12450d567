"""Bot processes on the bus: `mevsuite hub` and `mevsuite run recorder --bus` as subprocesses, `mevsuite status`.

The hub and the recorder run as real subprocesses against the session devnet and a NATS server of this test (a free
port in ``tmp_path``, never the machine's 4222); the test mines blocks with real router swaps.  The recorder records
them from the hub's messages only: its summary's per-method RPC counts hold no block, log or receipt call.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from bots.bus import NatsServer
from tests.bots.app.conftest import assert_one_line_error, run_cli, start_cli, stop_process, wait_for
from tests.bots.app.test_hub_process import HUB_ENV, _running, _start_hub, _urls
from tests.bots.dex_arb.helpers import skew_async
from tests.fixtures.devnet import Devnet

# The RPC methods a bus-fed bot must never call: its blocks, logs and receipts come from the hub's messages.
BLOCK_METHODS = {
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getLogs",
    "eth_getTransactionReceipt",
    "eth_getBlockReceipts",
    "eth_blockNumber",
}


def _status(cwd: Path, bus: str) -> dict[str, Any]:
    r = run_cli(["status", "--bus", bus, "--json"], cwd=cwd, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_hub_and_recorder_processes_record_every_block_and_report_their_status(
    devnet_state: Devnet, tmp_path: Path, background: list[subprocess.Popen[Any]]
) -> None:
    devnet = devnet_state
    book = devnet.book.write(tmp_path / "book.json")
    chain_id = devnet.book.chain_id
    db = tmp_path / "recorder.db"
    sizes = iter([40_000, 25_000, 60_000])

    with NatsServer(tmp_path / "nats") as server:
        start = devnet.node.block_number()
        hub, hub_cwd = _start_hub(tmp_path, "hub", book, server.url, 0)
        background.append(hub)
        hub_urls = wait_for(lambda: _urls(hub_cwd), "the hub's URLs on stderr", proc=hub)
        wait_for(lambda: _running(hub_urls), "the hub running", proc=hub)

        rec_cwd = tmp_path / "recorder"
        rec_cwd.mkdir()
        recorder = start_cli(
            [
                "run",
                "recorder",
                "--bus",
                server.url,
                "--rpc-url",
                devnet.node.http_url,
                "--book",
                str(book),
                "--db-url",
                f"sqlite:///{db}",
                "--blocks",
                "3",
            ],
            cwd=rec_cwd,
            env=HUB_ENV,
        )
        background.append(recorder)
        rec_urls = wait_for(lambda: _urls(rec_cwd), "the recorder's URLs on stderr", proc=recorder)
        health = wait_for(lambda: _running(rec_urls), "the recorder running", proc=recorder)
        assert health["kind"] == "recorder" and health["process"] == f"recorder-{chain_id}"
        assert health["pid"] == recorder.pid and health["first_block"] == start

        # `mevsuite status --json`: both processes, ok, while they run.
        def both_ok() -> dict[str, Any] | None:
            doc = _status(tmp_path, server.url)
            by_name = {p["process"]: p for p in doc["processes"]}
            names = {f"hub-{chain_id}", f"recorder-{chain_id}"}
            return doc if names <= by_name.keys() and all(by_name[n]["ok"] for n in names) else None

        doc = wait_for(both_ok, "both processes ok in `mevsuite status`", timeout=20, proc=recorder)
        assert doc["schema"] == 1
        by_name = {p["process"]: p for p in doc["processes"]}
        hub_doc, rec_doc = by_name[f"hub-{chain_id}"], by_name[f"recorder-{chain_id}"]
        assert (hub_doc["kind"], hub_doc["pid"], hub_doc["chain_id"]) == ("hub", hub.pid, chain_id)
        assert (rec_doc["kind"], rec_doc["pid"], rec_doc["chain_id"]) == ("recorder", recorder.pid, chain_id)
        assert rec_doc["metrics_url"] == rec_urls["metrics"] and rec_doc["health_url"] == rec_urls["health"]
        assert all(p["schema"] == 1 and p["age_s"] is not None and p["age_s"] < 15 for p in doc["processes"])
        table = run_cli(["status", "--bus", server.url], cwd=tmp_path, timeout=30)
        assert (
            table.returncode == 0
            and f"recorder-{chain_id}" in table.stdout
            and f"hub-{chain_id}" in table.stdout
        )

        for _ in range(3):
            asyncio.run(skew_async(devnet, next(sizes)))
        assert recorder.wait(60) == 0, (rec_cwd / "stderr.txt").read_text()[-3000:]
        summary = json.loads((rec_cwd / "stdout.txt").read_text())
        assert stop_process(hub, signal.SIGTERM) == 0, (hub_cwd / "stderr.txt").read_text()[-3000:]

    assert summary["first_block"] == start and summary["last_block"] == start + 3
    assert summary["blocks_recorded"] == 3 and summary["stopped_by"] == "blocks"
    # No block, log or receipt RPC: the blocks came from the bus (the arbitrage scan's eth_call is allowed).
    assert not BLOCK_METHODS & summary["rpc_calls"].keys(), summary["rpc_calls"]
    assert summary["rpc_calls"].get("eth_chainId", 0) >= 1  # (the counts are real)
    numbers = list(range(start + 1, start + 4))
    expected = {n: devnet.node.rpc("eth_getBlockByNumber", [hex(n), False])["hash"] for n in numbers}
    with sqlite3.connect(db) as conn:
        rows = dict(
            conn.execute(
                "SELECT number, hash FROM blocks WHERE chain_id = ? AND number > ? ORDER BY number",
                (chain_id, start),
            ).fetchall()
        )
        trades = conn.execute("SELECT COUNT(*) FROM trades WHERE chain_id = ?", (chain_id,)).fetchone()[0]
    assert rows == expected
    assert trades >= 3  # one router swap per block, on a pool of the book


def test_an_unreachable_bus_exits_6_for_the_recorder_and_status(devnet: Devnet, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bus = f"nats://rec:pa55-s3cret@127.0.0.1:{port}"
    env = {"MEVSUITE__BUS__CONNECT_TIMEOUT_S": "1"}
    for args in (
        ["run", "recorder", "--bus", bus, "--rpc-url", devnet.node.http_url, "--db-url", "sqlite://"],
        ["status", "--bus", bus, "--json"],
    ):
        line = assert_one_line_error(run_cli(args, cwd=tmp_path, env=env), 6)
        assert "unreachable" in line and "pa55-s3cret" not in line
