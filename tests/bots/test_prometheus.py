"""A real Prometheus scrapes a running process that serves bots.metrics, and reads back what it reported.

The process is ``python -m bots.metrics --serve-demo`` (a separate Python process counting opportunities on its
own registry and port); Prometheus (Debian's ``/usr/bin/prometheus``, ``apt-get install prometheus``) runs
with a temporary TSDB on a free loopback port and scrapes it every second.  Both are stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bots.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = os.environ.get("PROMETHEUS_BIN") or (
    "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else shutil.which("prometheus")
)
COUNT = 7
BOT = "prom-e2e"

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="Prometheus not installed (/usr/bin/prometheus; apt-get install prometheus)"
)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of ``proc`` within ``timeout`` seconds."""
    box: list[str] = []
    reader = threading.Thread(
        target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        raise AssertionError(f"no start-up line from the metrics process (exit code {proc.poll()})")
    return box[0]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=3) as response:
        return json.loads(response.read())


@pytest.fixture
def bot_process() -> Iterator[dict[str, Any]]:
    """A running process serving bots.metrics with COUNT opportunities counted; yields its start-up report."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bots.metrics",
            "--serve-demo",
            "--port",
            "0",
            "--count",
            str(COUNT),
            "--bot",
            BOT,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        report = json.loads(_read_line(proc, timeout=30))
        yield report
    finally:
        _stop(proc)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def prometheus(tmp_path: Path, bot_process: dict[str, Any]) -> Iterator[str]:
    """Prometheus scraping the bot process every second; yields its base URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: mevsuite\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{bot_process['port']}']\n",
        encoding="utf-8",
    )
    log = (tmp_path / "prometheus.log").open("w", encoding="utf-8")
    proc: subprocess.Popen[Any] | None = None
    try:
        for _attempt in range(3):  # the probed port can be taken between probe and bind: try another
            port = free_port()
            proc = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.2)
            if proc.poll() is None:
                yield base
                return
        pytest.fail(f"prometheus did not start: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
    finally:
        if proc is not None:
            _stop(proc)
        log.close()


def test_prometheus_scrapes_the_running_bot_process(prometheus: str, bot_process: dict[str, Any]) -> None:
    """The value Prometheus stores equals what the process reported (and serves on its own /metrics)."""
    assert bot_process["opportunities_total"] == COUNT
    with urllib.request.urlopen(bot_process["url"], timeout=5) as response:
        served = response.read().decode()
    assert f'mevsuite_opportunities_total{{bot="{BOT}",kind="demo"}} {float(COUNT)}' in served.splitlines()

    query = urllib.parse.urlencode({"query": f'mevsuite_opportunities_total{{bot="{BOT}",job="mevsuite"}}'})
    deadline = time.monotonic() + 45
    result: list[Any] = []
    while time.monotonic() < deadline:
        body = _get_json(f"{prometheus}/api/v1/query?{query}")
        assert body["status"] == "success"
        result = body["data"]["result"]
        if result:
            break
        time.sleep(0.5)
    assert result, "Prometheus never stored the bot's mevsuite_opportunities_total"
    assert len(result) == 1
    sample = result[0]
    assert sample["metric"]["kind"] == "demo"
    assert sample["metric"]["instance"] == f"127.0.0.1:{bot_process['port']}"
    assert float(sample["value"][1]) == bot_process["opportunities_total"] == COUNT

    # The histogram made it too: its count series equals the observations the process made.
    query = urllib.parse.urlencode(
        {"query": f'mevsuite_stage_latency_seconds_count{{bot="{BOT}",stage="evaluate"}}'}
    )
    series = _get_json(f"{prometheus}/api/v1/query?{query}")["data"]["result"]
    assert [float(s["value"][1]) for s in series] == [float(COUNT)]
    targets = _get_json(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]
