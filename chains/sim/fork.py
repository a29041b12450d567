"""In-process EVM simulation on a fork of any RPC (pyrevm), with the state kept clean between calls.

``ForkSim(rpc_url, block)`` forks the chain at ``block`` (storage is fetched lazily over RPC and cached for the
lifetime of the object, so make a new one for each new block).  Every :meth:`ForkSim.call` runs inside a
journal checkpoint and is reverted afterwards unless ``commit=True``: pyrevm's ``message_call`` keeps state,
so without this a simulated swap would move the pool for the next simulation.

The block environment (number, timestamp, base fee, coinbase) is the *target* block's when set with
:meth:`ForkSim.set_block`: a bundle simulated for block N+1 sees N+1's base fee and coinbase.

A revert never raises out of :meth:`call`: it returns a :class:`SimResult` with ``success=False``, the gas used
and the decoded ``Error(string)`` / custom-error data, so callers can count and log it.

Typical use::

    sim = ForkSim(node.http_url, block=head)
    sim.set_block(number=head + 1, timestamp=ts + 12, basefee=next_base_fee, coinbase=builder)
    res = sim.call(owner, executor, calldata, gas_price=next_base_fee)
    if res.success: ...
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass

from pyrevm import EVM, AccountInfo, BlockEnv

from chains.wirejson import loads as wire_loads

__all__ = ["ForkSim", "SimError", "SimLog", "SimResult", "decode_revert"]

_BALANCE_OF = bytes.fromhex("70a08231")
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
_PANIC_SELECTOR = bytes.fromhex("4e487b71")
_REVERT_RE = re.compile(r"Revert \{ gas_used: (\d+), output: 0x([0-9a-fA-F]*) \}")
_HALT_RE = re.compile(r"Halt \{ reason: ([^,]+), gas_used: (\d+) \}")
_PROBE_REPLY_BYTES = 64 * 1024  # the eth_blockNumber answer is ~50 bytes


class SimError(RuntimeError):
    """The simulator itself failed (fork RPC unreachable, invalid transaction), not the simulated call."""


@dataclass(frozen=True, slots=True)
class SimLog:
    address: str
    topics: tuple[str, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class SimResult:
    """Outcome of one simulated transaction.  ``gas_used`` includes the intrinsic cost (21000 + calldata)."""

    success: bool
    gas_used: int
    output: bytes = b""
    logs: tuple[SimLog, ...] = ()
    reason: str = (
        ""  # "" on success; the decoded revert message, a custom error's selector, or the halt reason
    )


def decode_revert(output: bytes) -> str:
    """Human-readable revert reason: ``Error(string)``, ``Panic(uint256)`` or a custom error's selector + data."""
    if output[:4] == _ERROR_SELECTOR and len(output) >= 68:
        try:
            n = int.from_bytes(output[36:68], "big")
            return output[68 : 68 + n].decode("utf-8", "replace")
        except (ValueError, OverflowError):
            pass
    if output[:4] == _PANIC_SELECTOR and len(output) >= 36:
        return f"Panic(0x{int.from_bytes(output[4:36], 'big'):x})"
    if not output:
        return "reverted without data"
    return "0x" + output.hex()


def _probe(rpc_url: str, timeout: float = 5.0) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()
    req = urllib.request.Request(rpc_url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read(_PROBE_REPLY_BYTES + 1)  # bounded read, then bounded parse (chains.wirejson)
            return int(wire_loads(raw, max_bytes=_PROBE_REPLY_BYTES, max_depth=8)["result"], 16)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # WireJsonError is a ValueError
        raise SimError(f"cannot fork {rpc_url}: eth_blockNumber failed ({exc})") from exc


def _word_address(addr: str) -> bytes:
    return bytes(12) + bytes.fromhex(addr[2:] if addr.startswith(("0x", "0X")) else addr)


class ForkSim:
    """A pyrevm EVM forked from ``rpc_url`` at ``block`` (a number, ``"latest"`` or a block hash)."""

    def __init__(self, rpc_url: str, block: int | str = "latest", *, spec_id: str = "CANCUN") -> None:
        # pyrevm only touches the RPC lazily, in native code that retries for minutes: probe it first (and pin
        # "latest" to a number so every lazy fetch reads the same block).
        head = _probe(rpc_url)
        if block == "latest":
            block = head
        tag = str(block) if isinstance(block, int) else block
        try:
            self.evm = EVM(fork_url=rpc_url, fork_block=tag, spec_id=spec_id)
        except Exception as exc:  # pyrevm raises plain RuntimeError/ValueError from native code
            raise SimError(f"cannot fork {rpc_url} at block {block}: {exc}") from exc
        self.rpc_url = rpc_url
        self.block = block
        self.calls = 0

    # ------------------------------------------------------------------ environment
    def set_block(
        self,
        *,
        number: int,
        timestamp: int,
        basefee: int,
        coinbase: str,
        gas_limit: int = 30_000_000,
        prevrandao: bytes | None = None,
    ) -> None:
        """Run later calls as if in block ``number`` (the bundle's target block)."""
        self.evm.set_block_env(
            BlockEnv(
                number=number,
                timestamp=timestamp,
                basefee=basefee,
                coinbase=coinbase,
                gas_limit=gas_limit,
                prevrandao=prevrandao or bytes(32),
            )
        )

    # ------------------------------------------------------------------ calls
    def call(
        self,
        caller: str,
        to: str,
        data: bytes,
        *,
        value: int = 0,
        gas: int = 3_000_000,
        gas_price: int = 0,
        commit: bool = False,
    ) -> SimResult:
        """Execute one transaction from ``caller``; reverted afterwards unless ``commit``.

        ``commit=True`` keeps the state changes, but pyrevm then prices later calls as a continuation of the same
        transaction (access lists stay warm, SSTORE original values are not refreshed): their ``gas_used`` can
        be lower than on chain.  For exact gas, simulate each transaction on its own (``commit=False``)."""
        self.calls += 1
        cp = self.evm.snapshot()
        try:
            try:
                out = self.evm.message_call(caller, to, data, value=value, gas=gas, gas_price=gas_price)
            except RuntimeError as exc:
                return self._failure(str(exc))
            res = self.evm.result
            gas_used = res.gas_used if res is not None else 0
            logs = tuple(SimLog(lg.address, tuple(lg.topics), lg.data[1]) for lg in (res.logs if res else ()))
            result = SimResult(True, gas_used, bytes(out), logs)
        finally:
            if not commit:
                self.evm.revert(cp)
        return result

    def view(self, to: str, data: bytes, *, caller: str = "0x" + "00" * 19 + "01") -> bytes:
        """A static call; raises :class:`SimError` when it reverts."""
        cp = self.evm.snapshot()  # even a static call warms accounts and slots for later calls: undo it
        try:
            return bytes(self.evm.message_call(caller, to, data, is_static=True))
        except RuntimeError as exc:
            raise SimError(f"view call to {to} failed: {self._failure(str(exc)).reason}") from exc
        finally:
            self.evm.revert(cp)

    def erc20_balance(self, token: str, owner: str) -> int:
        return int.from_bytes(self.view(token, _BALANCE_OF + _word_address(owner)), "big")

    def make_codeless(self, address: str) -> None:
        """Strip ``address``'s code (so it may be a transaction sender: EIP-3607).  Not undone by a revert:
        use it on a throw-away :class:`ForkSim`."""
        info = self.evm.basic(address)
        self.evm.insert_account_info(address, AccountInfo(nonce=info.nonce, code=b""))
        self.evm.set_balance(address, info.balance)

    # ------------------------------------------------------------------ helpers
    def _failure(self, text: str) -> SimResult:
        m = _REVERT_RE.search(text)
        if m:
            output = bytes.fromhex(m.group(2))
            return SimResult(False, int(m.group(1)), output, (), decode_revert(output))
        m = _HALT_RE.search(text)
        if m:
            return SimResult(False, int(m.group(2)), b"", (), f"halt: {m.group(1)}")
        raise SimError(f"simulation failed: {text}")

    def __repr__(self) -> str:
        return f"ForkSim({self.rpc_url!r}, block={self.block!r}, calls={self.calls})"
