"""Fast, deterministic transaction batching for deploying the devnet.

Deploying the world is ~1,000 transactions. Mining each on its own (automine) costs a block and a round trip
per transaction and makes the chain's timestamps depend on wall-clock time. Instead the deployer:

* sends transactions from anvil's *unlocked* accounts (``eth_sendTransaction``, no signing) with explicit
  ``nonce`` and ``gas`` (estimation cannot see not-yet-mined dependencies), so CREATE addresses are known
  before mining (:func:`chains.devnet.artifacts.create_address`);
* mines each *phase* (a set of transactions whose dependencies are already mined or earlier in the same
  block) as one block with ``evm_mine`` and then checks every receipt, naming the failed step;
* talks JSON-RPC over one keep-alive HTTP connection and fetches receipts with a batch request.  Replies are
  read up to :data:`MAX_REPLY_BYTES` and parsed with :func:`chains.wirejson.loads` (bounded nesting depth); a
  refused reply raises :class:`chains.node.anvil.RpcCallError` (code -32700).

Anvil orders a block first-in first-out (``--order fifo``, the default of :class:`chains.node.anvil.AnvilNode`),
so sending transactions one by one in a fixed order gives the same block every time.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chains.devnet.artifacts import create_address
from chains.node.anvil import RpcCallError
from chains.wirejson import WireJsonError
from chains.wirejson import loads as wire_loads

__all__ = ["MAX_REPLY_BYTES", "DeployError", "JsonRpc", "PendingTx", "TxBatcher"]

MAX_REPLY_BYTES = 64 * 2**20  # one reply (a batch of a thousand receipts is a few MB)


class DeployError(RuntimeError):
    """A deployment transaction failed (the message names the step)."""


class JsonRpc:
    """A minimal synchronous JSON-RPC client over one persistent HTTP connection."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._path = parts.path or "/"
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0

    def _post(self, body: Any, what: str) -> Any:
        payload = json.dumps(body).encode()
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request("POST", self._path, payload, {"Content-Type": "application/json"})
                resp = self._conn.getresponse()
                data = resp.read(MAX_REPLY_BYTES + 1)
                if len(data) > MAX_REPLY_BYTES:
                    self.close()  # the rest of the body is unread: the connection cannot be reused
                return wire_loads(data, max_bytes=MAX_REPLY_BYTES)
            except WireJsonError as exc:
                raise RpcCallError(what, {"code": -32700, "message": f"reply refused: {exc}"}) from None
            except (http.client.HTTPException, ConnectionError):
                # A keep-alive connection closed by the server: reconnect once.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        self._id += 1
        out = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}, method)
        if not isinstance(out, dict):
            raise RpcCallError(method, {"code": -32603, "message": f"not a JSON-RPC reply: {out!r:.200}"})
        if "error" in out:
            raise RpcCallError(method, out["error"])
        return out.get("result")

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one request; results in call order (errors raise)."""
        if not calls:
            return []
        base = self._id + 1
        self._id += len(calls)
        body = [
            {"jsonrpc": "2.0", "id": base + i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        out = self._post(body, "batch")
        if isinstance(out, dict) and "error" in out:  # the batch refused as a whole
            raise RpcCallError("batch", out["error"])
        if not isinstance(out, list) or not all(isinstance(r, dict) and "id" in r for r in out):
            raise RpcCallError(
                "batch", {"code": -32603, "message": f"not a JSON-RPC batch reply: {out!r:.200}"}
            )
        by_id = {r["id"]: r for r in out}
        results: list[Any] = []
        for i, (m, _) in enumerate(calls):
            r = by_id[base + i]
            if "error" in r:
                raise RpcCallError(m, r["error"])
            results.append(r.get("result"))
        return results

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(slots=True)
class PendingTx:
    label: str
    tx_hash: str
    sender: str
    to: str | None
    data: str


class TxBatcher:
    """Sends transactions with explicit nonces and mines them in blocks (``flush``)."""

    DEFAULT_CALL_GAS = 3_000_000
    DEFAULT_DEPLOY_GAS = 15_000_000  # under EIP-7825's 2**24 per-transaction cap, should a node enforce it

    def __init__(self, rpc: JsonRpc) -> None:
        self.rpc = rpc
        self._nonces: dict[str, int] = {}
        self._pending: list[PendingTx] = []
        self.sent = 0
        self.blocks = 0

    def nonce(self, sender: str) -> int:
        key = sender.lower()
        if key not in self._nonces:
            self._nonces[key] = int(self.rpc.call("eth_getTransactionCount", [sender, "pending"]), 16)
        return self._nonces[key]

    def send(
        self,
        sender: str,
        to: str | None,
        data: str = "0x",
        *,
        value: int = 0,
        gas: int | None = None,
        label: str = "",
    ) -> str:
        nonce = self.nonce(sender)
        tx: dict[str, Any] = {
            "from": sender,
            "data": data,
            "nonce": hex(nonce),
            "gas": hex(gas or (self.DEFAULT_DEPLOY_GAS if to is None else self.DEFAULT_CALL_GAS)),
            "value": hex(value),
        }
        if to is not None:
            tx["to"] = to
        tx_hash = str(self.rpc.call("eth_sendTransaction", [tx]))
        self._nonces[sender.lower()] = nonce + 1
        self._pending.append(PendingTx(label or (to or "create"), tx_hash, sender, to, data))
        self.sent += 1
        return tx_hash

    def deploy(self, sender: str, init_code: str, *, gas: int | None = None, label: str = "") -> str:
        """Send a CREATE and return the address it will have (known before mining)."""
        address = create_address(sender, self.nonce(sender))
        self.send(sender, None, init_code, gas=gas, label=label or "deploy")
        return address

    def flush(self) -> list[dict[str, Any]]:
        """Mine until every pending transaction has a receipt; raise :class:`DeployError` on any revert."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        receipts: list[dict[str, Any] | None] = [None] * len(pending)
        deadline = time.monotonic() + 60
        while True:
            self.rpc.call("evm_mine")
            self.blocks += 1
            missing = [i for i, r in enumerate(receipts) if r is None]
            got = self.rpc.batch([("eth_getTransactionReceipt", [pending[i].tx_hash]) for i in missing])
            for i, r in zip(missing, got, strict=True):
                receipts[i] = r
            if all(r is not None for r in receipts):
                break
            if time.monotonic() > deadline:
                lost = [pending[i].label for i, r in enumerate(receipts) if r is None]
                raise DeployError(f"transactions never mined: {lost[:5]}")
        done: list[dict[str, Any]] = [r for r in receipts if r is not None]
        for p, r in zip(pending, done, strict=True):
            if int(r["status"], 16) != 1:
                raise DeployError(f"{p.label} reverted (tx {p.tx_hash}): {self._revert_reason(p, r)}")
        return done

    def _revert_reason(self, p: PendingTx, receipt: dict[str, Any]) -> str:
        """Best effort: replay the call at the parent block to get the revert data."""
        try:
            block = hex(int(receipt["blockNumber"], 16) - 1)
            call: dict[str, Any] = {"from": p.sender, "data": p.data}
            if p.to:
                call["to"] = p.to
            self.rpc.call("eth_call", [call, block])
            return f"no revert on replay (gas used {int(receipt['gasUsed'], 16)})"
        except RpcCallError as exc:
            return str(exc.error)

    def call(self, to: str, data: str, block: str = "latest") -> str:
        return str(self.rpc.call("eth_call", [{"to": to, "data": data}, block]))
