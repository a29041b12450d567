"""Helpers of the CLI end-to-end tests: run `mevsuite` as a real subprocess in a temporary directory.

Every run gets a clean environment (no inherited ``MEVSUITE__*`` overrides, no ``MEVSUITE_DB_URL``, no
``MEVSUITE_FORK_URL``, no old ``MEV_*`` key variables; ``XDG_DATA_HOME`` inside the working directory, so a bot's
Flashbots reputation key file is never written to the real home) and a temporary working directory (so no
``./mevsuite.toml`` and no ``./mevsuite.db`` of the checkout are used), and a timeout.  The PostgreSQL fixtures (``pg_admin``, ``pg_url``: a throw-away ``mevsuite_test_<random>``
database, dropped afterwards) are those of ``tests/bots``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.bots.conftest import pg_admin, pg_url  # noqa: F401  (fixtures re-exported for the app tests)

T = TypeVar("T")

_SCRIPT = Path(sys.executable).with_name("mevsuite")
# The installed console script (what `make demo` runs); `python -m bots.app.cli` if it is not there.
MEVSUITE: list[str] = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "bots.app.cli"]

RUN_TIMEOUT = 90.0  # seconds; any single CLI run here takes a few seconds at most


_NOT_INHERITED = {
    "MEVSUITE_DB_URL",
    "MEVSUITE_FORK_URL",
    "MEV_PRIVATE_KEY",
    "MEV_KEYSTORE_PATH",
    "MEV_KEYSTORE_PASSWORD",
}


def cli_env(extra: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """The environment of a CLI run: ours minus mevsuite overrides, plus ``extra`` (``XDG_DATA_HOME`` in ``cwd``
    unless ``extra`` sets it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEVSUITE__") and k not in _NOT_INHERITED}
    env["PYTHONUNBUFFERED"] = "1"
    if cwd is not None:
        env["XDG_DATA_HOME"] = str(cwd / ".local" / "share")
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``mevsuite *args`` to completion (killed after ``timeout`` seconds)."""
    return subprocess.run(
        [*MEVSUITE, *args],
        cwd=cwd,
        env=cli_env(env, cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def start_cli(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``mevsuite *args`` in the background, stdout/stderr to ``cwd/stdout.txt`` / ``cwd/stderr.txt``."""
    with open(cwd / "stdout.txt", "wb") as out, open(cwd / "stderr.txt", "wb") as err:
        return subprocess.Popen(
            [*MEVSUITE, *args],
            cwd=cwd,
            env=cli_env(env, cwd),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
    """Send ``sig`` to a process we started and wait for it (SIGKILL if it does not exit in time)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"pid {proc.pid} did not exit within {timeout} s of signal {sig}") from None
    return int(proc.returncode)


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[Any]]]:
    """Processes a test starts and appends here are killed (by PID) if still running at teardown."""
    procs: list[subprocess.Popen[Any]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def wait_for(
    check: Callable[[], T | None],
    what: str,
    timeout: float = 60.0,
    proc: subprocess.Popen[Any] | None = None,
    interval: float = 0.05,
) -> T:
    """Poll ``check`` until it returns a non-None value (bounded; fails early if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit ``code``, no traceback, exactly one ``error:`` line and it is the last line; returns that line."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0], result.stderr
    return errors[0]


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 2.0) -> Any:
    """One JSON-RPC call over HTTP (raises OSError if nothing answers)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())["result"]


def answers(url: str) -> bool:
    """True if a JSON-RPC node answers eth_blockNumber at ``url``."""
    try:
        rpc_call(url, "eth_blockNumber")
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return False
    return True


def sqlite_counts(path: Path, tables: Sequence[str]) -> dict[str, int]:
    """Row counts of ``tables`` in the SQLite file at ``path`` (opened read-only)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


def sqlite_tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


SCHEMA_TABLES = {
    "alembic_version",
    "blocks",
    "transactions",
    "trades",
    "opportunities",
    "bundles",
    "fills",
    "pnl_snapshots",
    "model_runs",
}
