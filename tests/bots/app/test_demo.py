"""The demo end to end: devnet up, traffic for a set number of blocks, rows in the database, metrics served,
exit 0 with a short summary (the acceptance criterion of `make demo`)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from sqlalchemy.engine import make_url

from bots.app.config import Config
from bots.app.demo import run_demo
from bots.metrics import Metrics
from chains.devnet.builder import BlockReport
from tests.bots.app.conftest import answers, run_cli, sqlite_counts, start_cli, stop_process, wait_for

TABLES = ("blocks", "transactions", "trades", "opportunities")


def test_demo_subprocess_sqlite(tmp_path: Path) -> None:
    result = run_cli(["demo", "--blocks", "4", "--json", "summary.json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "summary" in result.stderr  # the summary table (rich, on stderr)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["blocks"] == 4
    assert summary["transactions_mined"] > 0
    assert summary["swaps_sent"] > 0
    assert summary["engine_state"] == "stopped"
    assert summary["metrics_url"].startswith("http://127.0.0.1:")
    counts = sqlite_counts(tmp_path / "mevsuite.db", TABLES)
    assert counts["blocks"] == 4
    assert counts["transactions"] == summary["transactions_mined"]
    assert counts["trades"] > 0
    assert counts["opportunities"] == summary["opportunities_found"] + summary["arb"]["opportunities_found"]
    assert {k: summary["rows"][k] for k in TABLES} == counts
    # Everything it started is stopped: /metrics no longer answers.
    with pytest.raises(OSError):
        urllib.request.urlopen(summary["metrics_url"], timeout=2)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(url: str) -> tuple[set[str], Samples]:
    """GET ``url`` (Prometheus text format): the metric family names, and every sample's value."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    families = list(text_string_to_metric_families(text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return {f.name for f in families}, samples


def _total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items() if n == name and set(labels.items()) <= set(lab))


async def test_demo_serves_metrics_while_it_runs(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    metrics = Metrics()
    during: list[set[str]] = []
    at_end: dict[str, Any] = {}
    output = io.StringIO()
    console = Console(file=output, width=120)

    async def on_block(report: BlockReport) -> None:
        # The server is up from the start (its URL is the first line the demo prints): every block,
        # /metrics answers over HTTP with the mevsuite families.
        url = re.search(r"metrics (http://\S+/metrics)", output.getvalue())
        assert url is not None
        families, _ = await asyncio.to_thread(_scrape, url.group(1))
        during.append(families)

    async def on_finish(summary: dict[str, Any]) -> None:
        # Every block is recorded; the server, the database and the devnet are still up.
        _, at_end["samples"] = await asyncio.to_thread(_scrape, summary["metrics_url"])
        at_end["db"] = await asyncio.to_thread(sqlite_counts, db, TABLES)

    summary = await run_demo(
        Config(),
        blocks=3,
        db_url=f"sqlite+aiosqlite:///{db}",
        metrics_port=0,
        console=console,
        metrics=metrics,
        on_block=on_block,
        on_finish=on_finish,
    )

    assert len(during) == 3
    expected = {"mevsuite_events", "mevsuite_stage_latency_seconds", "mevsuite_db_rows_written"}
    assert all(expected <= families for families in during), during
    samples = at_end["samples"]
    # The demo's bot always sends, to its own throw-away devnet: it says so, and the gauge says live.
    assert "mode: live on the demo's own devnet" in output.getvalue()
    assert _total(samples, "mevsuite_bot_live", bot="dex_arb") == 1
    assert _total(samples, "mevsuite_events_total", bot="recorder") > 0
    assert _total(samples, "mevsuite_stage_latency_seconds_count", bot="recorder") > 0
    assert _total(samples, "mevsuite_stage_latency_seconds_sum", bot="recorder") > 0
    db_counts = at_end["db"]
    assert db_counts["blocks"] == summary["blocks"] == 3
    assert db_counts["transactions"] == summary["transactions_mined"] > 0
    for table in ("transactions", "blocks", "trades"):
        assert _total(samples, "mevsuite_db_rows_written_total", table=table) == db_counts[table], table
    # The scrape and the Metrics object passed in agree (the demo reported to the registry we gave it).
    assert (
        metrics.value("mevsuite_db_rows_written_total", {"table": "transactions"})
        == db_counts["transactions"]
    )
    # And it stopped serving when the demo ended.
    with pytest.raises(OSError):
        await asyncio.to_thread(urllib.request.urlopen, summary["metrics_url"], None, 2)


def test_demo_postgresql(pg_url: str, tmp_path: Path) -> None:
    result = run_cli(["demo", "--blocks", "2", "--db-url", pg_url, "--json", "summary.json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["database"].startswith("postgresql+psycopg://")
    assert not (tmp_path / "mevsuite.db").exists()
    url = make_url(pg_url)
    with psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        dbname=url.database,
        password=url.password,
        connect_timeout=5,
    ) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]
    assert counts["blocks"] == 2
    assert counts["transactions"] == summary["transactions_mined"] > 0
    assert counts["trades"] > 0


def _rows(db: Path) -> int | None:
    try:
        return sqlite_counts(db, ["blocks"])["blocks"] or None
    except sqlite3.Error:  # not created / not migrated yet
        return None


def test_demo_interrupted_cleans_up(tmp_path: Path, background: list[subprocess.Popen[Any]]) -> None:
    proc = start_cli(["demo", "--blocks", "100000"], cwd=tmp_path)
    background.append(proc)
    wait_for(lambda: _rows(tmp_path / "mevsuite.db"), "the first recorded block", proc=proc)
    stderr_file = tmp_path / "stderr.txt"
    node = wait_for(
        lambda: re.search(r"devnet (http://127\.0\.0\.1:\d+)", stderr_file.read_text()),
        "the devnet line",
        proc=proc,
    ).group(1)
    metrics_url = re.search(r"metrics (http://\S+/metrics)", stderr_file.read_text())
    assert metrics_url is not None
    assert stop_process(proc, signal.SIGINT) == 130
    stderr = stderr_file.read_text()
    assert "Traceback" not in stderr
    assert stderr.rstrip().splitlines()[-1] == "error: interrupted by SIGINT"
    assert not answers(node)  # anvil stopped
    with pytest.raises(OSError):
        urllib.request.urlopen(metrics_url.group(1), timeout=2)
