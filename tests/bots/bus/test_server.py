"""The embedded nats-server: free port, restart on the same port and storage, loud failures, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bots.bus import BusClient, NatsServer, NatsServerError, chain_subjects, nats_server_binary
from bots.bus import server as server_module

GUARD = 20.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_the_binary_is_the_wheels() -> None:
    path = nats_server_binary()
    assert path.is_file() and os.access(path, os.X_OK)
    assert Path(sys.executable).parent == path.parent  # the venv's bin/, not the machine's /usr/sbin


def test_a_bad_binary_override_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(server_module.BINARY_ENV, str(tmp_path / "nope"))
    with pytest.raises(NatsServerError, match="MEVSUITE_NATS_SERVER"):
        nats_server_binary()


async def test_restart_keeps_the_port_and_the_streams(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats", monitor=True) as server:
        url, pid = server.url, server.pid
        assert url.startswith("nats://127.0.0.1:") and server.port != 4222
        assert server.monitor_url is not None
        client = await BusClient.connect(url, name="restart")
        await client.ensure_streams(77)
        await client.publish(chain_subjects(77).snapshot, b"announce", msg_id="s1")
        assert await client.flush_outbox(GUARD)
        await client.close()

        server.restart()
        assert server.url == url and server.pid != pid
        assert pid is not None and not alive(pid)
        client = await BusClient.connect(server.url, name="restart-2")
        last = await client.last_message(chain_subjects(77).snapshot)
        assert last is not None and last.data == b"announce"
        await client.close()
        server.kill()  # a crash: storage recovers on the next start
        server.start()
        client = await BusClient.connect(server.url, name="restart-3")
        assert (await client.last_message(chain_subjects(77).snapshot)) is not None
        await client.close()
    assert not server.running and server.pid is None
    assert (tmp_path / "nats" / "jetstream").is_dir()


def test_a_server_that_cannot_start_fails_loudly_with_its_log(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", extra_args=["--no-such-flag"])
    with pytest.raises(NatsServerError, match=r"exited with status .*log .* ends with"):
        server.start()
    assert not server.running


def test_a_taken_port_fails_loudly(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "a") as first:
        second = NatsServer(tmp_path / "b", port=first.port)
        with pytest.raises(NatsServerError, match="nats-server"):
            second.start()
        assert not second.running


_CHILD = """
import sys, time
from bots.bus import NatsServer
server = NatsServer(sys.argv[1]).start()
print(server.pid, flush=True)
time.sleep(60)
"""


def test_no_server_survives_a_kill_9_of_its_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "nats")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert parent.stdout is not None
        nats_pid = int(parent.stdout.readline())
        assert alive(nats_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(GUARD)
        deadline = time.monotonic() + GUARD
        while alive(nats_pid):
            assert time.monotonic() < deadline, "nats-server outlived its parent"
            time.sleep(0.02)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
