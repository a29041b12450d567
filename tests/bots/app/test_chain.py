"""`mevsuite chain status` against a real anvil prints the chain's state as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from chains.node.anvil import AnvilNode
from tests.bots.app.conftest import run_cli


def test_chain_status_json(anvil: AnvilNode, tmp_path: Path) -> None:
    result = run_cli(["chain", "status", "--rpc-url", anvil.http_url], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["chain_id"] == 31337
    assert status["block_number"] == anvil.block_number()
    assert status["block_hash"].startswith("0x") and len(status["block_hash"]) == 66
    assert status["base_fee_per_gas"] > 0
    assert status["rpc_urls"] == [anvil.http_url]


def test_chain_status_fails_over_and_reads_urls_from_env(anvil: AnvilNode, tmp_path: Path) -> None:
    # The first endpoint is dead: the client fails over to anvil.  URLs come from the environment.
    urls = f"http://127.0.0.1:1,{anvil.http_url}"
    result = run_cli(
        ["chain", "status"],
        cwd=tmp_path,
        env={"MEVSUITE__CHAIN__RPC_URLS": urls, "MEVSUITE__CHAIN__RETRIES": "0"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chain_id"] == 31337
