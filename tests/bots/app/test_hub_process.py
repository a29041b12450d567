"""`mevsuite hub` as a process: blocks on the bus with contiguous seqs and the right digests, /health, /metrics, a
heartbeat, a restart that continues the sequence, and an unreachable bus (exit 6, one line, no password).

The hub runs as a real subprocess against the session devnet and a NATS server of this test (a free port in
``tmp_path``, never the machine's 4222); the test mines blocks with real router swaps and reads the bus itself.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bots.bus import BusClient, NatsServer, chain_subjects
from bots.bus.messages import BlockMessage, decode, decode_snapshot
from bots.hub.hub import snapshot_name
from chains.abi.blocks import fetch_block
from chains.node.rpc import RpcClient
from chains.state.chain import load_initial
from chains.state.digest import state_digest
from tests.bots.app.conftest import assert_one_line_error, run_cli, start_cli, stop_process, wait_for
from tests.bots.dex_arb.helpers import skew_async
from tests.fixtures.devnet import Devnet

HUB_ENV = {"MEVSUITE__BUS__HEARTBEAT_INTERVAL_S": "0.5", "MEVSUITE__METRICS__PORT": "0"}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _urls(cwd: Path) -> dict[str, str] | None:
    """The health and metrics URLs the hub says on stderr at start (None until it has)."""
    text = (cwd / "stderr.txt").read_text()
    health = re.search(r"health (http://\S+/health)", text)
    metrics = re.search(r"metrics (http://\S+/metrics)", text)
    return {"health": health.group(1), "metrics": metrics.group(1)} if health and metrics else None


def _running(urls: dict[str, str]) -> dict[str, Any] | None:
    status, body = _get(urls["health"])
    doc: dict[str, Any] = json.loads(body)
    return doc if status == 200 and doc["state"] == "running" else None


def _start_hub(
    tmp_path: Path, name: str, book: Path, bus: str, blocks: int
) -> tuple[subprocess.Popen[bytes], Path]:
    cwd = tmp_path / name
    cwd.mkdir()
    args = [
        "hub",
        "--book",
        str(book),
        "--bus",
        bus,
        "--blocks",
        str(blocks),
        "--json-summary",
        "summary.json",
    ]
    return start_cli(args, cwd=cwd, env=HUB_ENV), cwd


async def _bus_view(url: str, chain_id: int) -> tuple[list[BlockMessage], dict[str, dict[str, Any]], Any]:
    """Every message on the chain's blocks subject, the live heartbeats, and the stored snapshot."""
    client = await BusClient.connect(url, name="test-reader")
    try:
        sub = await client.subscribe(chain_subjects(chain_id).blocks, durable=None)
        messages: list[BlockMessage] = []
        try:
            while await sub.lag() > 0 or not messages:
                msg = await asyncio.wait_for(sub.__anext__(), 5)
                decoded = decode(msg.data)
                assert isinstance(decoded, BlockMessage)
                messages.append(decoded)
                await msg.ack()
        finally:
            await sub.close()
        snapshot = decode_snapshot(await client.get_object(snapshot_name(chain_id)))
        return messages, await client.heartbeats(), snapshot
    finally:
        await client.close(timeout=1)


async def _heartbeats(url: str) -> dict[str, dict[str, Any]]:
    client = await BusClient.connect(url, name="test-heartbeats")
    try:
        return await client.heartbeats()
    finally:
        await client.close(timeout=1)


async def _own_sync(
    rpc_url: str, devnet: Devnet, start: int, numbers: list[int]
) -> list[tuple[frozenset[str], str]]:
    """The pools each block changed and their digest after it, from a state the test syncs itself from the node:
    loaded at ``start``, then each block fetched and applied (no bus message involved)."""
    async with RpcClient(rpc_url) as rpc:
        state = await load_initial(rpc, devnet.book, start)
        out = []
        for number in numbers:
            changed = state.apply_block_data(await fetch_block(rpc, number))
            out.append((changed, state_digest(state, changed)))
        return out


def test_hub_publishes_reports_and_continues_after_a_restart(
    devnet_state: Devnet, tmp_path: Path, background: list[subprocess.Popen[Any]]
) -> None:
    devnet = devnet_state
    book = devnet.book.write(tmp_path / "book.json")
    chain_id = devnet.book.chain_id
    sizes = iter([40_000, 25_000, 60_000, 30_000, 45_000])

    def swap() -> None:
        asyncio.run(skew_async(devnet, next(sizes)))

    with NatsServer(tmp_path / "nats") as server:
        # 1. A fresh hub: 3 blocks, each a real router swap.
        start = devnet.node.block_number()
        proc, cwd = _start_hub(tmp_path, "first", book, server.url, 3)
        background.append(proc)
        urls = wait_for(lambda: _urls(cwd), "the hub's URLs on stderr", proc=proc)
        health = wait_for(lambda: _running(urls), "the hub running", proc=proc)
        assert health["chain_id"] == chain_id and health["last_block"] == start and health["last_seq"] == 0
        assert health["bus_connected"] and health["ok"] and health["resumed"] == "fresh"
        assert health["pid"] == proc.pid and health["health_url"] == urls["health"]
        status, text = _get(urls["metrics"])
        assert status == 200 and "mevsuite_hub_messages_published_total" in text
        assert "mevsuite_bus_connected" in text
        beat = asyncio.run(_heartbeats(server.url))[f"hub-{chain_id}"]
        assert beat["pid"] == proc.pid and beat["metrics_url"] == urls["metrics"]
        for _ in range(3):
            swap()
        assert proc.wait(60) == 0, (cwd / "stderr.txt").read_text()[-3000:]
        assert devnet.node.block_number() == start + 3  # one block per swap: the hub stopped at the head
        first = json.loads((cwd / "summary.json").read_text())
        assert first["first_seq"] == 0 and first["last_seq"] == 3 and first["blocks_published"] == 3

        # 2. A block while it is down, then a restart: it catches up, and the sequence continues.
        swap()
        # This one runs until SIGTERM: a clean stop (exit 0, outbox flushed, summary written).
        proc, cwd = _start_hub(tmp_path, "second", book, server.url, 0)
        background.append(proc)
        urls = wait_for(lambda: _urls(cwd), "the restarted hub's URLs", proc=proc)
        health = wait_for(lambda: _running(urls), "the restarted hub running", proc=proc)
        assert health["resumed"] == "continued" and health["first_seq"] == 3
        swap()
        wait_for(
            lambda: True if json.loads(_get(urls["health"])[1])["last_seq"] == 5 else None,
            "seq 5 published",
            proc=proc,
        )
        assert stop_process(proc, signal.SIGTERM) == 0, (cwd / "stderr.txt").read_text()[-3000:]
        second = json.loads((cwd / "summary.json").read_text())
        assert (second["first_seq"], second["last_seq"], second["first_block"]) == (3, 5, start + 3)
        assert second["stopped_by"] == "SIGTERM" and second["outbox_undelivered"] == 0

        messages, beats, snapshot = asyncio.run(_bus_view(server.url, chain_id))
        assert beats[f"hub-{chain_id}"]["state"] == "stopped"  # its last word (expires 15 s later)

    # 5 block messages, seq 1..5 with no gap or duplicate, blocks start+1..start+5 chained by their hashes.
    assert [m.seq for m in messages] == [1, 2, 3, 4, 5]
    assert [m.block.number for m in messages] == list(range(start + 1, start + 6))
    for before, after in itertools.pairwise(messages):
        assert after.block.parent_hash == before.block.hash
    # Each swap changed its pool, and each digest is the one of a state the test loaded itself from the node.
    assert all(m.changed for m in messages)
    own = asyncio.run(_own_sync(devnet.node.http_url, devnet, start, [m.block.number for m in messages]))
    assert [(m.changed, m.digest) for m in messages] == own
    # The restarted hub's snapshot is the state after seq 3 at the block the first one stopped at.
    assert snapshot.seq == 3 and snapshot.block is not None and snapshot.block.block.number == start + 3


def test_an_unreachable_bus_exits_6_with_one_line_and_no_password(devnet: Devnet, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    book = devnet.book.write(tmp_path / "book.json")
    r = run_cli(
        ["hub", "--book", str(book), "--bus", f"nats://hub:pa55-s3cret@127.0.0.1:{port}"],
        cwd=tmp_path,
        env={"MEVSUITE__BUS__CONNECT_TIMEOUT_S": "1"},
    )
    line = assert_one_line_error(r, 6)
    assert f"nats://***@127.0.0.1:{port}" in line, line
    assert "s3cret" not in r.stderr + r.stdout
    # With no URL at all (the embedded server is `mevsuite up`'s): a configuration error.
    r = run_cli(["hub", "--book", str(book)], cwd=tmp_path)
    assert "no bus URL" in assert_one_line_error(r, 2)


# ---------------------------------------------------------------------------------------------- resuming, unit
class _FakeHub:
    def __init__(self, first_seq: int, fail_at: int | None) -> None:
        self.first_seq, self.fail_at, self.at_block = first_seq, fail_at, -1

    async def start(self, at_block: int | None = None) -> None:
        if at_block is not None and at_block == self.fail_at:
            raise RuntimeError("missing trie node")
        self.at_block = 100 if at_block is None else at_block  # 100: the head


class _FakeRpc:
    async def request(self, method: str, params: list[Any]) -> Any:
        if method == "eth_blockNumber":
            return hex(100)
        assert method == "eth_getBlockByNumber"
        return {"hash": "0x" + f"{int(params[0], 16):064x}"}  # block n's canonical hash: n as a word


def _resume(point: Any, *, fail_at: int | None = None, max_catch_up: int = 50) -> tuple[str, int, int]:
    from bots.app.hub import HubProcess, _start_hub

    class _Client:
        connected, outbox_depth = True, 0

    proc = HubProcess(31337, _Client(), bus_url="nats://127.0.0.1:1", rpc_urls=[])  # type: ignore[arg-type]
    hub = asyncio.run(
        _start_hub(
            proc,
            lambda seq: _FakeHub(seq, fail_at),  # type: ignore[arg-type,return-value]
            _FakeRpc(),  # type: ignore[arg-type]
            point,
            lambda _m: None,
            max_catch_up,
        )
    )
    return proc.resumed, hub.first_seq, hub.at_block  # type: ignore[attr-defined]


def test_a_restarted_hub_continues_at_its_last_state_or_leaves_a_gap() -> None:
    from bots.app.hub import ResumePoint

    def point(seq: int, number: int | None, hash_of: int | None = None) -> ResumePoint:
        word = None if number is None else "0x" + f"{hash_of if hash_of is not None else number:064x}"
        return ResumePoint(seq, number, word, "block")

    assert _resume(None) == ("fresh", 0, 100)
    assert _resume(point(7, 90)) == ("continued", 7, 90)  # catches up 10 blocks, seq 8 is block 91
    # Otherwise it starts at the head one seq further: bots see a gap and re-snapshot.
    assert _resume(point(7, 90, hash_of=12345)) == ("gap", 8, 100)  # block 90 was reorged away meanwhile
    assert _resume(point(7, 40)) == ("gap", 8, 100)  # too far behind (max_catch_up 50)
    assert _resume(point(7, 101)) == ("gap", 8, 100)  # above the head (another chain, a reset devnet)
    assert _resume(point(7, 90), fail_at=90) == ("gap", 8, 100)  # the node has pruned that state
    assert _resume(point(7, None)) == ("gap", 8, 100)  # a message this reader cannot place


def test_the_resume_point_is_the_newest_of_the_last_block_and_snapshot_messages() -> None:
    from bots.app.hub import HubError, ResumePoint, resume_point
    from bots.bus.client import StoredMessage
    from bots.bus.messages import SnapshotAnnouncement

    word = "0x" + "ab" * 32
    future = b'{"schema":2,"kind":"block","chain_id":31337,"seq":9}'  # a newer hub's message

    class _Client:
        def __init__(self, stored: dict[str, StoredMessage]) -> None:
            self.stored = stored

        async def last_message(self, subj: str) -> StoredMessage | None:
            return self.stored.get(subj.rsplit(".", 1)[1])

    def run(**stored: StoredMessage) -> ResumePoint | None:
        return asyncio.run(resume_point(_Client(stored), 31337))  # type: ignore[arg-type]

    def snap(seq: int) -> StoredMessage:
        data = SnapshotAnnouncement(31337, seq, "chain-31337-state", 55, word, "0" * 64, 10).encode()
        return StoredMessage("mevsuite.31337.snapshot", data, {}, 1)

    blocks = StoredMessage("mevsuite.31337.blocks", future, {"Nats-Msg-Id": "mevsuite:31337:block:9"}, 2)
    assert run() is None
    assert run(blocks=blocks) == ResumePoint(9, None, None, "msg_id")
    assert run(blocks=blocks, snapshot=snap(8)) == ResumePoint(9, None, None, "msg_id")
    assert run(blocks=blocks, snapshot=snap(9)) == ResumePoint(9, 55, word, "snapshot")
    with pytest.raises(HubError, match="cannot continue its sequence"):
        run(blocks=StoredMessage("mevsuite.31337.blocks", b"junk", {}, 3))
