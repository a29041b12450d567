"""Swap-log decoding: our slicing fast path vs eth_abi, per log."""

from __future__ import annotations

import random
import time
from typing import Any

from eth_abi import decode as abi_decode

from chains.abi.decode import V2_SWAP_TOPIC, V3_SWAP_TOPIC, decode_swap_log

N = 20_000


def _log(topic: str, data: bytes) -> dict[str, Any]:
    return {
        "address": "0x" + "ab" * 20,
        "topics": [topic, "0x" + "00" * 12 + "11" * 20, "0x" + "00" * 12 + "22" * 20],
        "data": "0x" + data.hex(),
        "blockNumber": "0x10",
        "blockHash": "0x" + "cd" * 32,
        "transactionHash": "0x" + "ef" * 32,
        "transactionIndex": "0x1",
        "logIndex": "0x2",
    }


def _time(fn: Any, items: list[Any]) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t0) / len(items) * 1e6


def run() -> list[dict[str, Any]]:
    rnd = random.Random(1)
    v2 = [
        _log(V2_SWAP_TOPIC, b"".join(rnd.getrandbits(112).to_bytes(32, "big") for _ in range(4)))
        for _ in range(N)
    ]
    v3 = []
    for _ in range(N):
        words = [
            rnd.getrandbits(100),
            (1 << 256) - rnd.getrandbits(100),
            rnd.getrandbits(160),
            rnd.getrandbits(128),
            (1 << 256) - rnd.randrange(1, 800_000),
        ]
        v3.append(_log(V3_SWAP_TOPIC, b"".join(w.to_bytes(32, "big") for w in words)))
    rows = []
    for name, logs, types in (
        ("V2 Swap", v2, ["uint256"] * 4),
        ("V3 Swap", v3, ["int256", "int256", "uint160", "uint128", "int24"]),
    ):
        ours = _time(decode_swap_log, logs)
        abi = _time(lambda lg, t=types: abi_decode(t, bytes.fromhex(lg["data"][2:])), logs)
        rows.append(
            {
                "event": name,
                "logs": N,
                "decode_swap_log µs (full event)": round(ours, 2),
                "eth_abi.decode µs (data only)": round(abi, 2),
            }
        )
    return rows
