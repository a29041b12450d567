"""Mempool watcher: pending-tx arrival -> decoded PendingSwap latency, and router-call decoding throughput.

Latency: an anvil with automine off; raw EIP-1559 router swaps (signed with the dev account's key by
:class:`chains.send.signer.Signer`) are sent one at a time with ``eth_sendRawTransaction`` while a
:class:`chains.watch.mempool.MempoolWatcher` is subscribed; the clock runs from just before the send to the moment the
decoded event is handed to the publisher (so it includes the node's own pending-tx announcement, 12-40 ms on
anvil per TOOLING.md, and the websocket hop). Run for both subscription styles: full transactions, and hashes
followed by a batched ``eth_getTransactionByHash``.

Throughput: :func:`chains.watch.mempool.decode_router_call` on representative calldata of each router kind, next to
``eth_abi.decode`` of the same arguments, and the watcher's whole per-tx path (parse + decode + event) on one tx.

Run: ``python -m bench mempool`` (about 10-20 s).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode
from eth_utils.crypto import keccak

from bench import percentile
from chains.events import Event
from chains.node.anvil import AnvilNode
from chains.node.rpc import RpcClient
from chains.send.signer import Signer
from chains.watch.mempool import MempoolWatcher, RouterKind, decode_router_call

N_SWAPS = 200  # per latency case
N_DECODE = 20_000
DEV_KEY_0 = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's well-known account 0
)
ROUTER = "0x" + "7a" * 20
A, B, C = ("0x" + c * 40 for c in "abc")
TO = "0x" + "12" * 20

V2_SIG = "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"
V3_SINGLE = "(address,address,uint24,address,uint256,uint256,uint256,uint160)"
V3_PATHED = "(bytes,address,uint256,uint256,uint256)"


def _call(sig: str, types: list[str], args: list[Any]) -> bytes:
    return keccak(text=sig)[:4] + encode(types, args)


def _path(tokens: list[str], fees: list[int]) -> bytes:
    out = bytes.fromhex(tokens[0][2:])
    for fee, tok in zip(fees, tokens[1:], strict=True):
        out += fee.to_bytes(3, "big") + bytes.fromhex(tok[2:])
    return out


V2_ARGS = ["uint256", "uint256", "address[]", "address", "uint256"]
CASES: list[tuple[str, RouterKind, bytes, list[str]]] = [
    (
        "V2 swapExactTokensForTokens (3-token path)",
        "uniswap_v2_router02",
        _call(V2_SIG, V2_ARGS, [10**18, 10**6, [A, B, C], TO, 2**40]),
        V2_ARGS,
    ),
    (
        "V3 exactInputSingle",
        "uniswap_v3_swap_router",
        _call(f"exactInputSingle({V3_SINGLE})", [V3_SINGLE], [(A, B, 500, TO, 2**40, 10**18, 1, 0)]),
        [V3_SINGLE],
    ),
    (
        "V3 exactOutput (2 hops, reversed)",
        "uniswap_v3_swap_router",
        _call(
            f"exactOutput({V3_PATHED})",
            [V3_PATHED],
            [(_path([C, B, A], [500, 3000]), TO, 2**40, 10**18, 2**70)],
        ),
        [V3_PATHED],
    ),
]
_inner = _call(
    f"exactInput({V3_PATHED})", [V3_PATHED], [(_path([A, B, C], [500, 3000]), TO, 2**40, 10**18, 1)]
)
CASES.append(
    (
        "V3 multicall(exactInput, refundETH)",
        "uniswap_v3_swap_router",
        _call("multicall(bytes[])", ["bytes[]"], [[_inner, keccak(text="refundETH()")[:4]]]),
        ["bytes[]"],
    )
)


class _Stamps:
    """A publisher that records when each tx's event was handed over."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def publish(self, topic: str, event: Event) -> None:
        self.at[getattr(event, "tx_hash", "")] = time.perf_counter()
        self.arrived.set()


async def _latency(node: AnvilNode, full: bool, nonce0: int) -> tuple[dict[str, Any], int]:
    signer = Signer(DEV_KEY_0)
    stamps = _Stamps()
    data = CASES[0][2]
    base = {
        "chainId": 31337,
        "maxPriorityFeePerGas": 10**9,
        "maxFeePerGas": 50 * 10**9,
        "gas": 300_000,
        "to": ROUTER,
        "value": 0,
        "data": data,
    }
    txs = [signer.sign_eip1559({**base, "nonce": nonce0 + i}) for i in range(N_SWAPS)]
    lat: list[float] = []
    async with (
        RpcClient(node.http_url) as rpc,
        MempoolWatcher(
            stamps, {ROUTER: "uniswap_v2_router02"}, ws_url=node.ws_url, rpc=rpc, full_transactions=full
        ),
    ):
        for tx in txs:
            stamps.arrived.clear()
            t0 = time.perf_counter()
            await rpc.request("eth_sendRawTransaction", [tx.raw_hex])
            async with asyncio.timeout(10):
                while tx.hash_hex not in stamps.at:
                    await stamps.arrived.wait()
                    stamps.arrived.clear()
            lat.append((stamps.at[tx.hash_hex] - t0) * 1e3)
    row = {
        "case": f"send -> PendingSwap ({'full txs' if full else 'hashes + batch fetch'})",
        "n": N_SWAPS,
        "p50 ms": round(statistics.median(lat), 3),
        "p99 ms": round(percentile(lat, 0.99), 3),
    }
    return row, nonce0 + N_SWAPS


def _throughput() -> list[dict[str, Any]]:
    rows = []
    for name, kind, data, types in CASES:
        t0 = time.perf_counter()
        for _ in range(N_DECODE):
            decode_router_call(kind, data)
        ours = (time.perf_counter() - t0) / N_DECODE
        args = data[4:]
        t0 = time.perf_counter()
        for _ in range(N_DECODE // 4):
            abi_decode(types, args)
        theirs = (time.perf_counter() - t0) / (N_DECODE // 4)
        rows.append(
            {
                "case": f"decode {name}",
                "n": N_DECODE,
                "calls/s": round(1 / ours),
                "µs/call": round(ours * 1e6, 2),
                "eth_abi µs/call (args only)": round(theirs * 1e6, 2),
            }
        )
    return rows


async def _handle_tx_cost() -> dict[str, Any]:
    stamps = _Stamps()
    async with RpcClient("http://127.0.0.1:9") as rpc:  # never called
        watcher = MempoolWatcher(
            stamps, {ROUTER: "uniswap_v2_router02"}, rpc=rpc, mode="poll", dedup_capacity=1_000
        )
        txs = [
            {
                "hash": "0x" + f"{i:064x}",
                "from": TO,
                "to": ROUTER,
                "nonce": hex(i),
                "value": "0x0",
                "gas": "0x30000",
                "maxFeePerGas": "0x3b9aca00",
                "maxPriorityFeePerGas": "0x1",
                "input": "0x" + CASES[0][2].hex(),
                "blockNumber": None,
            }
            for i in range(5_000)
        ]
        t0 = time.perf_counter()
        for tx in txs:
            await watcher.handle_tx(tx)
        per = (time.perf_counter() - t0) / len(txs)
    return {
        "case": "handle_tx: parse + decode + PendingSwap + publish",
        "n": len(txs),
        "calls/s": round(1 / per),
        "µs/call": round(per * 1e6, 2),
    }


async def _main() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    node = AnvilNode.start(automine=False)
    try:
        nonce = 0
        for full in (True, False):
            row, nonce = await _latency(node, full, nonce)
            rows.append(row)
    finally:
        node.stop()
    rows += _throughput()
    rows.append(await _handle_tx_cost())
    return rows


def run() -> list[dict[str, Any]]:
    return asyncio.run(_main())


if __name__ == "__main__":
    for r in run():
        print(r)
