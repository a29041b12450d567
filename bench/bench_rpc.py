"""Per-call latency of JSON-RPC paths against a local anvil: raw aiohttp, RpcClient over HTTP and WebSocket,
JSON-RPC batches, web3 through RpcClient, and a default ``AsyncWeb3`` (default middleware) for comparison.

``requests/call`` is how many JSON-RPC requests reach the node per logical call, counted by a small proxy
(web3's default middleware adds chain-id look-ups to an ``eth_call``). Run with ``python -m bench rpc``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from web3 import AsyncHTTPProvider, AsyncWeb3

from chains.node.anvil import AnvilNode
from chains.node.rpc import RpcClient

# value() returns 42, anything else reverts (same contract as tests/chains/node/test_rpc.py).
CODE = (
    "0x" + "600035" + "60e01c" + "633fa4f245" + "14" + "601457" + "60006000fd" + "5b" + "602a60005260206000f3"
)
ADDR = "0x00000000000000000000000000000000000C0dE1"
CALL = {"to": ADDR, "data": "0x3fa4f245"}
ABI = [
    {
        "name": "value",
        "type": "function",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
        "stateMutability": "view",
    }
]
N = 300  # sequential calls per row (after a warm-up)
BATCH = 50


async def _time(fn: Callable[[], Awaitable[Any]], n: int = N, per: int = 1) -> tuple[float, float]:
    for _ in range(20):
        await fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000 / per)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


class _CountingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> _CountingProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        self.calls += len(body) if isinstance(body, list) else 1
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=raw, headers={"Content-Type": "application/json"}
        ) as r:
            out = await r.read()
        return web.Response(body=out, content_type="application/json")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


async def _requests_per_call(proxy: _CountingProxy, fn: Callable[[], Awaitable[Any]], n: int = 10) -> float:
    await fn()  # let one-off start-up requests happen outside the count
    before = proxy.calls
    for _ in range(n):
        await fn()
    return (proxy.calls - before) / n


async def _run(node: AnvilNode) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    proxy = await _CountingProxy(node.http_url).start()

    def row(path: str, method: str, timing: tuple[float, float], rpc_per_call: float) -> None:
        rows.append(
            {
                "path": path,
                "method": method,
                "median ms": timing[0],
                "p90 ms": timing[1],
                "requests/call": rpc_per_call,
            }
        )

    try:
        # Raw aiohttp: the floor for HTTP.
        async with aiohttp.ClientSession() as session:
            for method, params in (("eth_call", [CALL, "latest"]), ("eth_blockNumber", [])):
                body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()

                async def raw(body: bytes = body) -> Any:
                    async with session.post(
                        node.http_url, data=body, headers={"Content-Type": "application/json"}
                    ) as r:
                        return json.loads(await r.read())["result"]

                row("raw aiohttp POST", method, await _time(raw), 1.0)

        for label, url in (("RpcClient http", node.http_url), ("RpcClient ws", node.ws_url)):
            async with RpcClient(url, timeout=10) as client:
                for method, params in (("eth_call", [CALL, "latest"]), ("eth_blockNumber", [])):

                    async def one(method: str = method, params: Any = params) -> Any:
                        return await client.request(method, params)

                    row(label, method, await _time(one), 1.0)

                calls = [("eth_call", [CALL, "latest"])] * BATCH

                async def batch(calls: list[tuple[str, Any]] = calls) -> Any:
                    return await client.batch(calls)

                row(f"{label} batch of {BATCH}", "eth_call", await _time(batch, n=N // 5, per=BATCH), 1.0)

                w3c = client.web3()
                contract = w3c.eth.contract(address=AsyncWeb3.to_checksum_address(ADDR), abi=ABI)

                async def web3_call(contract: Any = contract) -> Any:
                    return await contract.functions.value().call()

                async def web3_block(w3c: Any = w3c) -> Any:
                    return await w3c.eth.get_block_number()

                row(f"web3 via {label}", "eth_call (contract)", await _time(web3_call), 1.0)
                row(f"web3 via {label}", "eth_blockNumber", await _time(web3_block), 1.0)

        async with RpcClient(proxy.url) as counted:
            w3p = counted.web3()
            cp = w3p.eth.contract(address=AsyncWeb3.to_checksum_address(ADDR), abi=ABI)
            rpc_client_call = await _requests_per_call(proxy, lambda: cp.functions.value().call())
        for r in rows:
            if r["path"].startswith("web3 via") and r["method"].startswith("eth_call"):
                r["requests/call"] = rpc_client_call

        # Default AsyncWeb3: AsyncHTTPProvider with web3's default middleware.
        default = AsyncWeb3(AsyncHTTPProvider(node.http_url))
        counted_default = AsyncWeb3(AsyncHTTPProvider(proxy.url))
        try:
            dc = default.eth.contract(address=AsyncWeb3.to_checksum_address(ADDR), abi=ABI)
            cdc = counted_default.eth.contract(address=AsyncWeb3.to_checksum_address(ADDR), abi=ABI)

            async def default_call() -> Any:
                return await dc.functions.value().call()

            async def default_block() -> Any:
                return await default.eth.get_block_number()

            row(
                "default AsyncWeb3 http",
                "eth_call (contract)",
                await _time(default_call),
                await _requests_per_call(proxy, lambda: cdc.functions.value().call()),
            )
            row(
                "default AsyncWeb3 http",
                "eth_blockNumber",
                await _time(default_block),
                await _requests_per_call(proxy, lambda: counted_default.eth.get_block_number()),
            )
        finally:
            await default.provider.disconnect()
            await counted_default.provider.disconnect()
    finally:
        await proxy.stop()
    return rows


def run() -> list[dict[str, Any]]:
    node = AnvilNode.start()
    try:
        node.set_code(ADDR, CODE)
        return asyncio.run(_run(node))
    finally:
        node.stop()


if __name__ == "__main__":
    for r in run():
        print(r)
