"""Bundle build + sign + post to the local relay (:mod:`chains.devnet.relay`), p50 / p99 over N bundles.

One anvil (``--no-mining``), one :class:`BlockBuilder`, one :class:`LocalRelay` on loopback and one
:class:`FlashbotsClient` with a kept-alive aiohttp session.  Each bundle is two fresh EIP-1559 txs signed with
:class:`chains.send.signer.Signer` (coincurve), the ``eth_sendBundle`` body, its ``X-Flashbots-Signature`` and the POST
until the relay's answer (the relay verifies the signature, validates, hashes and queues the bundle with the
builder; no simulation and no node I/O on its accept path).  Target blocks lie far ahead, so no block is built
while timing.  Goal (issue 5): p50 < 2 ms, p99 < 5 ms.  Run with ``python -m bench relay``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench import percentile
from chains.devnet.builder import BlockBuilder
from chains.devnet.relay import LocalRelay
from chains.node.anvil import AnvilNode
from chains.send.flashbots import FlashbotsClient
from chains.send.signer import Signer

N = 1_000
WARMUP = 50
GWEI = 10**9


async def _run(node: AnvilNode) -> list[dict[str, Any]]:
    key = Signer(b"\x11" * 32)
    auth = Signer(b"\x22" * 32)
    builder = BlockBuilder(node, interval_s=1.0)
    # every bundle stays pending (the builder never runs here): allow them all from this one signer
    relay = LocalRelay(builder, max_pending_per_signer=2 * (WARMUP + N))
    await relay.start()
    client = FlashbotsClient(auth, {"devnet": relay.url}, timeout=5.0, retries=0)
    target = node.block_number() + 1  # within the relay's limit of head + 25
    build_sign: list[float] = []
    post: list[float] = []
    total: list[float] = []
    try:
        for i in range(WARMUP + N):
            t0 = time.perf_counter()
            txs = [
                key.sign_eip1559(
                    {
                        "chainId": 31337,
                        "nonce": 2 * i + j,
                        "to": "0x" + "ab" * 20,
                        "value": 1,
                        "gas": 21_000,
                        "maxFeePerGas": 100 * GWEI,
                        "maxPriorityFeePerGas": GWEI,
                        "data": b"",
                    }
                ).raw_transaction
                for j in range(2)
            ]
            params = client.bundle_params(txs, target)
            body = client.encode("eth_sendBundle", [params])
            headers = {
                "Content-Type": "application/json",
                "X-Flashbots-Signature": client.signature_header(body),
            }
            t1 = time.perf_counter()
            result, _ = await client._post("devnet", relay.url, "eth_sendBundle", body, headers)
            t2 = time.perf_counter()
            assert isinstance(result, dict) and "bundleHash" in result
            if i >= WARMUP:
                build_sign.append(t1 - t0)
                post.append(t2 - t1)
                total.append(t2 - t0)
        # the public API path (send_bundle: fan-out + per-builder result), same work
        api: list[float] = []
        for i in range(N // 2):
            t0 = time.perf_counter()
            txs = [
                key.sign_eip1559(
                    {
                        "chainId": 31337,
                        "nonce": 10**6 + 2 * i + j,
                        "to": "0x" + "ab" * 20,
                        "value": 1,
                        "gas": 21_000,
                        "maxFeePerGas": 100 * GWEI,
                        "maxPriorityFeePerGas": GWEI,
                        "data": b"",
                    }
                ).raw_transaction
                for j in range(2)
            ]
            res = await client.send_bundle(txs, target)
            api.append(time.perf_counter() - t0)
            assert res["devnet"].ok
    finally:
        await client.close()
        await relay.stop()
        await builder.aclose()
    received = len(relay.received(method="eth_sendBundle"))
    rows = []
    for what, xs in (
        ("build + sign 2 txs + header", build_sign),
        ("POST to relay until accepted", post),
        ("total: build + sign + post", total),
        ("FlashbotsClient.send_bundle (incl. signing)", api),
    ):
        rows.append(
            {
                "what": what,
                "n": len(xs),
                "p50 ms": 1e3 * percentile(xs, 0.5),
                "p99 ms": 1e3 * percentile(xs, 0.99),
                "mean ms": statistics.fmean(xs) * 1e3,
            }
        )
    rows.append({"what": "bundles in the relay's audit log", "n": received})
    return rows


def run() -> list[dict[str, Any]]:
    node = AnvilNode.start(automine=False)
    try:
        return asyncio.run(_run(node))
    finally:
        node.stop()


if __name__ == "__main__":
    for row in run():
        print(row)
