"""Anvil as a managed subprocess: a local EVM node for the devnet, forks and tests.

The node binds a free port (anvil is started with ``--port 0`` and the port it really bound is read from its
``Listening on`` line), so several nodes and other programs can share one machine.  Every control method is a
thin wrapper over anvil's JSON-RPC (``evm_snapshot``, ``anvil_setBalance`` ...) so the same calls work against
any anvil, including one started by someone else (:meth:`AnvilNode.attach`).

**A fork URL never appears in anvil's command line** (``/proc/PID/cmdline`` is readable by every user, and hosted
RPC URLs carry API keys).  Anvil resolves ``--fork-url ALIAS`` through ``[rpc_endpoints]`` of a ``foundry.toml``
in its working directory, with ``${VAR}`` interpolation; so a forking anvil runs in a private temporary
directory (mode 0700, removed by :meth:`AnvilNode.stop`) holding ``mevsuite_fork = "${MEVSUITE_ANVIL_FORK_URL}"``,
the real URL is only in anvil's environment (readable by the same user only), and argv says
``--fork-url mevsuite_fork``.  Every URL in anvil's captured output (its banner prints the fork endpoint, its
errors the URL it failed on) is redacted with :func:`chains.node.urls.redact_url`, and so is the ``repr``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from chains import wirejson
from chains.node.urls import URL_IN_TEXT, redact_url, url_secret_parts

__all__ = [
    "AnvilNode",
    "AnvilNotFoundError",
    "NodeError",
    "NodeStartError",
    "RpcCallError",
    "find_anvil",
    "project_root",
]

# Anvil's well-known development mnemonic ("test test ... junk"); its keys are public and only fit devnets.
DEV_MNEMONIC = "test test test test test test test test test test test junk"

_LISTEN_RE = re.compile(r"Listening on (\S+):(\d+)")

# How a forking anvil finds its upstream without the URL in argv (see the module docstring).
FORK_ALIAS = "mevsuite_fork"
MAX_REPLY_BYTES = 256 << 20  # one reply of our own anvil (a state dump is the largest)
FORK_URL_ENV = "MEVSUITE_ANVIL_FORK_URL"
_FOUNDRY_TOML = f'[rpc_endpoints]\n{FORK_ALIAS} = "${{{FORK_URL_ENV}}}"\n'


def _output_redactor(fork_url: str | None) -> Callable[[str], str]:
    """A filter for anvil's output lines: every URL redacted, and the fork URL's secret parts masked anywhere."""
    if not fork_url:
        return lambda line: line
    fragments = url_secret_parts(fork_url)

    def redact(line: str) -> str:
        line = URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), line)
        for piece in fragments:  # the same secrets in any other form (a bare host:port/path, unquoted ...)
            line = line.replace(piece, "***")
        return line

    return redact


def _fork_workdir(fork_url: str) -> tuple[Path, dict[str, str]]:
    """A private directory with the ``foundry.toml`` alias, and anvil's environment carrying the real URL."""
    workdir = Path(tempfile.mkdtemp(prefix="mevsuite-anvil-"))  # mode 0700
    os.chmod(workdir, 0o700)
    (workdir / "foundry.toml").write_text(_FOUNDRY_TOML)
    # Our own configuration (keys, passwords) is none of anvil's business.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MEVSUITE__")}
    env[FORK_URL_ENV] = fork_url
    return workdir, env


class NodeError(RuntimeError):
    """Base class of local-node errors."""


class AnvilNotFoundError(NodeError):
    """The anvil binary could not be located."""


class NodeStartError(NodeError):
    """Anvil started but did not come up (bad flags, bind failure, unreachable fork URL ...)."""


class RpcCallError(NodeError):
    """A JSON-RPC call returned an error object."""

    def __init__(self, method: str, error: Any) -> None:
        self.method = method
        self.error = error
        msg = error.get("message", error) if isinstance(error, dict) else error
        super().__init__(f"{method}: {msg}")


def project_root() -> Path:
    """The repository root (where package.json and node_modules live)."""
    return Path(__file__).resolve().parents[2]


def _foundry_binary(tool: str) -> Path | None:
    env = os.environ.get(f"MEVSUITE_{tool.upper()}")
    if env:
        return Path(env)
    candidates = [
        project_root() / "node_modules" / "@foundry-rs" / f"{tool}-linux-amd64" / "bin" / tool,
        Path.cwd() / "node_modules" / "@foundry-rs" / f"{tool}-linux-amd64" / "bin" / tool,
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    found = shutil.which(tool)
    return Path(found) if found else None


def find_anvil() -> Path:
    """Locate anvil: ``$MEVSUITE_ANVIL``, then ``node_modules/@foundry-rs``, then ``PATH``."""
    path = _foundry_binary("anvil")
    if path is None or not path.is_file():
        where = (
            os.environ.get("MEVSUITE_ANVIL") or "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil or PATH"
        )
        raise AnvilNotFoundError(
            f"anvil not found ({where}). Run `make setup` (it runs `npm ci`, which installs "
            "@foundry-rs/anvil 1.7.1) or set MEVSUITE_ANVIL to the anvil binary."
        )
    return path


@dataclass(repr=False)
class AnvilNode:
    """A running anvil (started by us, or attached to by URL).

    Use :meth:`start` to launch one; it is stopped by :meth:`stop` or on leaving a ``with`` block.  ``args`` is
    anvil's argv (a fork URL in it is the alias ``mevsuite_fork``); ``repr`` shows the fork URL redacted.
    """

    http_url: str
    ws_url: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)
    _log: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    _req_id: int = 0
    _pump: threading.Thread | None = None
    _fork_url: str | None = None  # the real upstream URL (only in anvil's environment and here)
    _workdir: Path | None = None  # the private directory of a forking anvil's foundry.toml

    @property
    def fork_url_redacted(self) -> str | None:
        """The upstream this node forks, safe to show (None: not a fork we started)."""
        if self._fork_url is None:
            return None

        return redact_url(self._fork_url)

    def __repr__(self) -> str:
        fork = f", fork_url={self.fork_url_redacted!r}" if self._fork_url is not None else ""
        return f"AnvilNode(http_url={self.http_url!r}, port={self.port}, pid={self.pid}{fork})"

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(
        cls,
        *,
        fork_url: str | None = None,
        fork_block: int | None = None,
        automine: bool = True,
        block_time: float | None = None,
        order: str = "fifo",
        chain_id: int = 31337,
        accounts: int = 10,
        balance_eth: int = 10_000,
        mnemonic: str = DEV_MNEMONIC,
        gas_limit: int | None = None,
        base_fee: int | None = None,
        load_state: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        extra_args: list[str] | None = None,
        binary: str | Path | None = None,
        timeout: float = 30.0,
    ) -> AnvilNode:
        """Start anvil on a free port and wait until it answers JSON-RPC.

        ``automine=False`` starts it with ``--no-mining``: transactions wait in the mempool until a block is
        mined explicitly (:meth:`mine`), which is how the devnet's block builder drives it.

        ``fork_url`` is passed through anvil's environment and a private ``foundry.toml``, never in argv (see the
        module docstring); anvil then runs in that private directory, so relative paths in ``extra_args`` of a
        fork are relative to it (``load_state`` is made absolute).  A fork keeps its upstream's chain id
        (anvil's ``--chain-id`` does not override it): set another with ``anvil_setChainId`` over RPC.
        """
        exe = Path(binary) if binary else find_anvil()
        if not exe.is_file():
            raise AnvilNotFoundError(f"anvil binary {exe} does not exist")
        args = [
            str(exe),
            "--host",
            host,
            "--port",
            str(port),
            "--accounts",
            str(accounts),
            "--balance",
            str(balance_eth),
            "--mnemonic",
            mnemonic,
            "--order",
            order,
        ]
        workdir: Path | None = None
        env: dict[str, str] | None = None
        if fork_url:
            args += ["--fork-url", FORK_ALIAS]
            if fork_block is not None:
                args += ["--fork-block-number", str(fork_block)]
        else:
            args += ["--chain-id", str(chain_id)]
        if not automine:
            args.append("--no-mining")
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        if gas_limit is not None:
            args += ["--gas-limit", str(gas_limit)]
        if base_fee is not None:
            args += ["--base-fee", str(base_fee)]
        if load_state is not None:
            args += ["--load-state", str(Path(load_state).absolute())]
        args += list(extra_args or [])

        redact = _output_redactor(fork_url)
        if fork_url:
            workdir, env = _fork_workdir(fork_url)
        try:
            proc = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=workdir,
                env=env,
            )
        except OSError as exc:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise AnvilNotFoundError(f"cannot execute anvil at {exe}: {exc}") from exc

        log: deque[str] = deque(maxlen=200)
        port_box: list[tuple[str, int]] = []
        ready = threading.Event()

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = redact(raw.decode(errors="replace").rstrip())
                log.append(line)
                if not port_box:
                    m = _LISTEN_RE.search(line)
                    if m:
                        port_box.append((m.group(1), int(m.group(2))))
                        ready.set()
            ready.set()

        pump_thread = threading.Thread(target=pump, name=f"anvil-{proc.pid}-log", daemon=True)
        pump_thread.start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if time.monotonic() > deadline:
                break
        if not port_box:
            proc.kill()
            proc.wait(5)
            pump_thread.join(5)
            if proc.stdout is not None:
                proc.stdout.close()
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            tail = " ".join(t for t in (line.strip() for line in list(log)[-15:]) if t)  # one line
            raise NodeStartError(f"anvil did not start (exit code {proc.returncode}): {tail or 'no output'}")
        bound_host, bound_port = port_box[0]
        node = cls(
            http_url=f"http://{bound_host}:{bound_port}",
            ws_url=f"ws://{bound_host}:{bound_port}",
            port=bound_port,
            process=proc,
            args=args,
            _log=log,
            _pump=pump_thread,
            _fork_url=fork_url or None,
            _workdir=workdir,
        )
        # First request is answered ~85 ms after start; poll until it is.
        while True:
            try:
                node.rpc("eth_chainId")
                break
            except (OSError, NodeError) as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    node.stop()
                    raise NodeStartError(
                        f"anvil at {node.http_url} did not answer: {redact(str(exc))}"
                    ) from None
                time.sleep(0.02)
        return node

    @classmethod
    def attach(cls, url: str) -> AnvilNode:
        """Control an anvil we did not start (no process handle; :meth:`stop` does nothing)."""
        http = url.replace("ws://", "http://").replace("wss://", "https://")
        ws = http.replace("http://", "ws://").replace("https://", "wss://")
        port = int(http.rsplit(":", 1)[1].split("/")[0]) if http.count(":") >= 2 else 0
        return cls(http_url=http, ws_url=ws, port=port)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, n: int = 30) -> list[str]:
        return list(self._log)[-n:]

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the anvil we started (SIGTERM, then SIGKILL). Idempotent."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        # The log pump sees EOF once the process is gone; join it before closing the pipe it reads.
        if self._pump is not None:
            self._pump.join(timeout)
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def kill(self) -> None:
        """SIGKILL the process at once (used to simulate a crashed node)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ JSON-RPC
    def rpc(self, method: str, params: list[Any] | None = None, *, timeout: float = 30.0) -> Any:
        """One synchronous JSON-RPC call (stdlib only; for control calls and scripts, not hot paths)."""
        self._req_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._req_id, "method": method, "params": params or []})
        req = urllib.request.Request(
            self.http_url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = wirejson.loads(
                    resp.read(MAX_REPLY_BYTES + 1), max_bytes=MAX_REPLY_BYTES, max_depth=512
                )
        except urllib.error.HTTPError as exc:
            raise RpcCallError(method, f"HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        except wirejson.WireJsonError as exc:
            raise RpcCallError(method, str(exc)) from None
        if not isinstance(payload, dict):
            raise RpcCallError(method, f"not a JSON-RPC reply: {str(payload)[:100]!r}")
        if "error" in payload:
            raise RpcCallError(method, payload["error"])
        return payload.get("result")

    # ------------------------------------------------------------------ control helpers
    def chain_id(self) -> int:
        return int(self.rpc("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def accounts(self) -> list[str]:
        return list(self.rpc("eth_accounts"))

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> bool:
        return bool(self.rpc("evm_revert", [snapshot_id]))

    def mine(self, blocks: int = 1, interval: int | None = None) -> None:
        if blocks == 1 and interval is None:
            self.rpc("evm_mine")
        else:
            params: list[Any] = [hex(blocks)]
            if interval is not None:
                params.append(hex(interval))
            self.rpc("anvil_mine", params)

    def set_automine(self, enabled: bool) -> None:
        self.rpc("evm_setAutomine", [enabled])

    def automine(self) -> bool:
        return bool(self.rpc("anvil_getAutomine"))

    def set_interval_mining(self, seconds: int) -> None:
        self.rpc("evm_setIntervalMining", [seconds])

    def set_balance(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", [address, hex(wei)])

    def get_balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", [address, "latest"]), 16)

    def set_code(self, address: str, code: str | bytes) -> None:
        hexcode = code if isinstance(code, str) else "0x" + code.hex()
        self.rpc("anvil_setCode", [address, hexcode])

    def set_storage_at(self, address: str, slot: int, value: int) -> None:
        self.rpc(
            "anvil_setStorageAt",
            [address, "0x" + slot.to_bytes(32, "big").hex(), "0x" + value.to_bytes(32, "big").hex()],
        )

    def get_storage_at(self, address: str, slot: int) -> int:
        return int(self.rpc("eth_getStorageAt", [address, hex(slot), "latest"]), 16)

    def impersonate(self, address: str) -> None:
        self.rpc("anvil_impersonateAccount", [address])

    def stop_impersonating(self, address: str) -> None:
        self.rpc("anvil_stopImpersonatingAccount", [address])

    def set_next_block_timestamp(self, ts: int) -> None:
        self.rpc("evm_setNextBlockTimestamp", [ts])

    def set_next_block_base_fee(self, wei: int) -> None:
        self.rpc("anvil_setNextBlockBaseFeePerGas", [hex(wei)])

    def drop_transaction(self, tx_hash: str) -> None:
        self.rpc("anvil_dropTransaction", [tx_hash])

    def drop_all_transactions(self) -> None:
        self.rpc("anvil_dropAllTransactions")

    def txpool_content(self) -> dict[str, Any]:
        return dict(self.rpc("txpool_content"))

    def dump_state(self) -> str:
        """The whole chain state as anvil's hex blob (feed it to :meth:`load_state` or ``--load-state``)."""
        return str(self.rpc("anvil_dumpState"))

    def load_state(self, blob: str) -> bool:
        return bool(self.rpc("anvil_loadState", [blob]))

    def reset(self, fork_url: str | None = None, fork_block: int | None = None) -> None:
        """``anvil_reset``; a ``fork_url`` goes over JSON-RPC (never argv) and is not logged."""
        if fork_url is None:
            self.rpc("anvil_reset", [])
        else:
            forking: dict[str, Any] = {"jsonRpcUrl": fork_url}
            if fork_block is not None:
                forking["blockNumber"] = fork_block
            self.rpc("anvil_reset", [{"forking": forking}])
