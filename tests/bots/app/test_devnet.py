"""`mevsuite devnet up`: the address book on stdout and in a file, blocks, and a clean stop on SIGINT."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.bots.app.conftest import answers, rpc_call, run_cli, start_cli, stop_process, wait_for


def _check_book(book: dict[str, Any]) -> None:
    assert book["chain_id"] == 31337
    assert len(book["pools"]) >= 30
    assert book["rpc_url"].startswith("http://127.0.0.1:")
    assert book["ws_url"] == book["rpc_url"].replace("http://", "ws://")
    assert book["tokens"] and book["aave"]


def test_devnet_up_fixed_blocks(tmp_path: Path) -> None:
    result = run_cli(
        ["devnet", "up", "--blocks", "3", "--out", "book.json", "--block-time", "0.2"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    printed = json.loads(result.stdout)  # stdout is exactly the address book (progress goes to stderr)
    _check_book(printed)
    assert json.loads((tmp_path / "book.json").read_text()) == printed
    mined = [int(n) for n in re.findall(r"^\[devnet\] block (\d+):", result.stderr, re.MULTILINE)]
    assert len(mined) == 3 and mined == list(range(mined[0], mined[0] + 3)), result.stderr[-2000:]
    assert mined[0] > printed["deployed_at_block"]
    assert '"blocks": 3' in result.stderr
    assert not answers(printed["rpc_url"])  # its anvil was stopped on the way out


def _book_if_ready(path: Path) -> dict[str, Any] | None:
    try:
        book: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not there yet, or half written
    return book if answers(book["rpc_url"]) else None


def test_devnet_up_runs_until_sigint(tmp_path: Path, background: list[subprocess.Popen[Any]]) -> None:
    proc = start_cli(["devnet", "up", "--out", "book.json", "--block-time", "0.1"], cwd=tmp_path)
    background.append(proc)
    book = wait_for(
        lambda: _book_if_ready(tmp_path / "book.json"), "the address book and its node", proc=proc
    )
    _check_book(book)
    start = int(rpc_call(book["rpc_url"], "eth_blockNumber"), 16)
    # It keeps producing blocks by itself (no --blocks).
    wait_for(
        lambda: True if int(rpc_call(book["rpc_url"], "eth_blockNumber"), 16) >= start + 2 else None,
        "two more blocks",
        proc=proc,
    )
    assert proc.poll() is None

    assert stop_process(proc, signal.SIGINT) == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in stderr
    assert "stopped:" in stderr
    # The anvil it started is gone: its port no longer answers (the process stopped it before exiting).
    assert not answers(book["rpc_url"])
    assert json.loads((tmp_path / "stdout.txt").read_text()) == book
