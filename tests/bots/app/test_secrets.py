"""No secret in any output: a canary RPC URL (user info, a key in the path, a key in the query) goes into every
input that takes a URL, and must never come out — not in stdout, stderr (at -vv), the JSON summary and its file,
/metrics, anvil's command line, ``repr(AnvilNode)``, anvil's captured output, or an error line.  Neither may a
malformed ``db.url``'s password.

The URL points at a tiny local proxy in front of the session devnet, so the fork really works (and the proxy
checks that anvil used the real URL: path, query and credentials).  The fork run doubles as the dry-run case of
docs/keys-and-modes.md: ``bot.dry_run = false`` without ``--live`` sends nothing, and with no key configured the
fork uses anvil's dev key 0 and says so (tests/bots/app/test_keys_and_modes.py has the other switches).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bots.app.config import ConfigError, load_config
from bots.app.keys import FORK_CHAIN_ID
from chains.node.anvil import AnvilNode, NodeStartError
from tests.bots.app.conftest import assert_one_line_error, run_cli, start_cli, wait_for
from tests.bots.dex_arb.helpers import skew
from tests.fixtures.devnet import Devnet

PASS, KEY, QUERY = "CANARY_PASS_8f3a", "CANARY_KEY_19c2", "CANARY_Q_77"
CANARIES = (PASS, KEY, QUERY, "CANARY")
DEV_ADDR_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def canary_url(host_port: str, scheme: str = "http") -> str:
    return f"{scheme}://user:{PASS}@{host_port}/v3/{KEY}?apikey={QUERY}"


def assert_clean(*texts: str) -> None:
    for text in texts:
        for canary in CANARIES:
            assert canary not in text, (
                f"{canary} leaked in: ...{text[max(text.find(canary) - 200, 0) :][:400]}..."
            )


class _Proxy(ThreadingHTTPServer):
    request_queue_size = 256  # anvil opens many connections at once when it forks
    daemon_threads = True
    upstream: str

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away

    seen: list[tuple[str, str]]


_upstream = threading.local()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.path, self.headers.get("Authorization") or ""))
        conn = getattr(_upstream, "conn", None)
        if conn is None:  # one kept-alive upstream connection per proxy thread
            conn = _upstream.conn = http.client.HTTPConnection(
                urlsplit(self.server.upstream).netloc, timeout=30
            )
        conn.request("POST", "/", body, {"Content-Type": "application/json"})
        out = conn.getresponse().read()
        with contextlib.suppress(OSError):  # anvil may drop a connection it no longer needs
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def proxy(devnet_state: Devnet) -> Iterator[_Proxy]:
    """A JSON-RPC proxy to the devnet on a free port that answers on any path (as hosted RPCs do)."""
    server = _Proxy(("127.0.0.1", 0), _Handler)
    server.upstream, server.seen = devnet_state.node.http_url, []
    thread = threading.Thread(target=server.serve_forever, name="canary-proxy", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _host_port(server: _Proxy) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _anvil_of(pid: int) -> int | None:
    for child in _children(pid):
        try:
            if "anvil" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0].decode():
                return child
        except OSError:
            pass
    return None


def test_canary_fork_url_never_shown(
    devnet_state: Devnet, proxy: _Proxy, tmp_path: Path, background: list[Any]
) -> None:
    skew(devnet_state)
    url = canary_url(_host_port(proxy))
    book = devnet_state.book
    # V2 pools by discovery: every state read of the fork goes through the (slow, Python) proxy; V2 keeps it short.
    v2 = [
        a
        for name, venue in book.v2.items()
        for a in ("--v2-factory", f"{name}={venue.factory}:{venue.fee_bps}")
    ]
    proc = start_cli(
        [
            "-vv",
            "run",
            "dex-arb",
            "--fork-url",
            url,
            "--weth",
            book.weth,
            *v2,
            "--blocks",
            "1",
            "--block-time",
            "0.2",
            "--json-summary",
            "summary.json",
        ],
        cwd=tmp_path,
        env={"MEVSUITE__BOT__DRY_RUN": "false"},
    )
    background.append(proc)
    stderr_file = tmp_path / "stderr.txt"

    # While it runs: anvil's argv names the alias only, its working directory is private; /metrics is clean.
    anvil = wait_for(lambda: _anvil_of(proc.pid), "the fork's anvil", proc=proc, timeout=30)
    argv = Path(f"/proc/{anvil}/cmdline").read_bytes().decode().split("\0")
    workdir = Path(f"/proc/{anvil}/cwd").resolve()
    assert argv[argv.index("--fork-url") + 1] == "mevsuite_fork"
    assert_clean(" ".join(argv))
    assert (workdir / "foundry.toml").is_file() and (workdir.stat().st_mode & 0o777) == 0o700
    metrics_url = wait_for(
        lambda: (m := re.search(r"^metrics (\S+)$", stderr_file.read_text(), re.M)) and m.group(1),
        "the metrics line",
        proc=proc,
    )
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        metrics_text = resp.read().decode()
    assert_clean(metrics_text)
    live = [
        s.value
        for f in text_string_to_metric_families(metrics_text)
        for s in f.samples
        if s.name == "mevsuite_bot_live" and s.labels == {"bot": "dex_arb"}
    ]
    assert live == [0]

    assert proc.wait(90) == 0, stderr_file.read_text()[-3000:]
    stdout, stderr = (tmp_path / "stdout.txt").read_text(), stderr_file.read_text()
    summary_file = (tmp_path / "summary.json").read_text()
    assert_clean(stdout, stderr, summary_file)
    assert not workdir.exists()  # the private directory went with anvil
    # Anvil did fork through the real URL: the proxy saw the key path, the query and the credentials.
    assert (
        f"/v3/{KEY}?apikey={QUERY}",
        "Basic " + base64.b64encode(f"user:{PASS}".encode()).decode(),
    ) in proxy.seen
    s = json.loads(summary_file)
    assert s == json.loads(stdout)
    assert s["fork_url"] == f"http://***@{_host_port(proxy)}/v3/***?***"
    assert f"forking http://***@{_host_port(proxy)}/v3/***?***" in stderr.splitlines()

    # The same run is the dry-run case: dry_run = false without --live sends nothing ...
    assert (
        "mode: dry-run (bot.dry_run = false, from MEVSUITE__BOT__DRY_RUN; no --live)" in stderr.splitlines()
    )
    assert not s["live"] and s["opportunities_found"] >= 1 and s["simulated"] >= 1, s
    assert s["bundles_submitted"] == 0 and s["relay_bundles_received"] == 0
    # ... no key configured on a fork: dev key 0, said honestly; the fork has its own chain id.
    assert s["owner"] == DEV_ADDR_0 and "dev account 0" in s["owner_key"]
    assert f"signer: {DEV_ADDR_0} is anvil's public dev account 0: no key configured (fork only" in stderr
    assert s["chain_id"] == FORK_CHAIN_ID and s["upstream_chain_id"] == 31337


def test_canary_in_node_repr_start_error_chain_status_and_config_errors(
    proxy: _Proxy, tmp_path: Path
) -> None:
    url = canary_url(_host_port(proxy))
    # repr(AnvilNode) and anvil's captured output (its banner prints the fork endpoint).
    with AnvilNode.start(fork_url=url, automine=False) as node:
        assert node.chain_id() == 31337
        assert repr(node) == (
            f"AnvilNode(http_url={node.http_url!r}, port={node.port}, pid={node.pid}, "
            f"fork_url='http://***@{_host_port(proxy)}/v3/***?***')"
        )
        assert any("Endpoint" in line for line in node.log_tail(100))
        assert_clean(repr(node), str(node), "\n".join(node.log_tail(200)), " ".join(node.args))
    # NodeStartError: anvil's error output names the URL it failed on.
    with pytest.raises(NodeStartError) as info:
        AnvilNode.start(fork_url=canary_url("127.0.0.1:1"), timeout=20)
    assert "did not start" in str(info.value) and "\n" not in str(info.value)
    assert_clean(str(info.value), repr(info.value))

    # chain status through the canary URL: works, prints the URL redacted.
    r = run_cli(["-vv", "chain", "status", "--rpc-url", url], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["rpc_urls"] == [f"http://***@{_host_port(proxy)}/v3/***?***"]
    assert_clean(r.stdout, r.stderr)

    # Config errors: a malformed RPC URL (echoed redacted), a malformed db.url (never echoed).
    bad_rpc = canary_url("127.0.0.1:8545", scheme="ftp")
    r = run_cli(["chain", "status"], cwd=tmp_path, env={"MEVSUITE__CHAIN__RPC_URLS": bad_rpc})
    line = assert_one_line_error(r, 2)
    assert "chain.rpc_urls" in line and "ftp://***@127.0.0.1:8545/v3/***?***" in line
    assert_clean(r.stdout, r.stderr)
    bad_db = f"postgresql+psycopg//bot:{PASS}@127.0.0.1:5432/mev"  # the ':' after the scheme is missing
    r = run_cli(["chain", "status"], cwd=tmp_path, env={"MEVSUITE__DB__URL": bad_db})
    line = assert_one_line_error(r, 2)
    assert "db.url: not a database URL" in line and "MEVSUITE__DB__URL" in line
    assert_clean(r.stdout, r.stderr)
    # The same in-process, from the file and as a wrongly typed value.
    for body in (
        f'[db]\nurl = "{bad_db}"\n',
        f'[chain]\nrpc_urls = "{bad_rpc}"\n',
        f'[chain]\nws_url = 5\nrpc_url = "{bad_rpc}"\n',
    ):
        (tmp_path / "bad.toml").write_text(body)
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path / "bad.toml", env={})
        assert_clean(str(err.value))
