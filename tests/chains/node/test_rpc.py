"""chains.node.rpc against real anvil nodes: transports, batching, web3 without extra round trips, retries,
timeouts, failover and websocket reconnects.

Misbehaving nodes are played by small aiohttp servers on port 0 that sit in front of a real anvil (a counting
HTTP proxy, a websocket proxy whose client sockets we can cut) or answer nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError

from chains.node.anvil import AnvilNode
from chains.node.rpc import (
    AllEndpointsFailedError,
    RpcBatchError,
    RpcClient,
    RpcError,
    RpcTimeoutError,
)

# Runtime code of a tiny contract: `value()` (selector 0x3fa4f245) returns 42, any other call reverts.
#   PUSH1 0 CALLDATALOAD PUSH1 0xe0 SHR PUSH4 0x3fa4f245 EQ PUSH1 0x14 JUMPI PUSH1 0 PUSH1 0 REVERT
#   JUMPDEST PUSH1 0x2a PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
CODE = (
    "0x" + "600035" + "60e01c" + "633fa4f245" + "14" + "601457" + "60006000fd" + "5b" + "602a60005260206000f3"
)
ADDR = "0x00000000000000000000000000000000000C0dE1"
VALUE_CALL = {"to": ADDR, "data": "0x3fa4f245"}
BOOM_CALL = {"to": ADDR, "data": "0xdeadbeef"}
FORTY_TWO = "0x" + "00" * 31 + "2a"
ABI = [
    {
        "name": "value",
        "type": "function",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
        "stateMutability": "view",
    },
    {"name": "boom", "type": "function", "inputs": [], "outputs": [], "stateMutability": "view"},
]
DEV0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's first dev account


# ------------------------------------------------------------------------------------------ helpers
async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, int(port)


class HttpProxy:
    """Forwards JSON-RPC POSTs to a node and records every HTTP request it gets.

    ``inject`` holds error objects to answer instead of forwarding (one per HTTP request);
    ``status`` set to e.g. 503 makes it answer a bare HTTP error (a broken gateway).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.bodies: list[Any] = []
        self.inject: list[dict[str, Any]] = []
        self.status: int | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def methods(self) -> list[list[str]]:
        """The JSON-RPC methods carried by each HTTP request, in arrival order."""
        return [[m["method"] for m in (b if isinstance(b, list) else [b])] for b in self.bodies]

    async def start(self) -> HttpProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner, port = await _serve(app)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        payload = json.loads(raw)
        self.bodies.append(payload)
        if self.status is not None:
            return web.Response(status=self.status, text="upstream unavailable")
        if self.inject:
            error = self.inject.pop(0)
            return web.json_response({"jsonrpc": "2.0", "id": payload["id"], "error": error})
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=raw, headers={"Content-Type": "application/json"}
        ) as r:
            body = await r.read()
        return web.Response(body=body, content_type="application/json")


class SilentServer:
    """Accepts HTTP requests and never answers them (until stopped)."""

    def __init__(self) -> None:
        self.hits = 0
        self.url = ""
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> SilentServer:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner, port = await _serve(app)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        await self._release.wait()
        return web.Response(status=503)

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()


class WsProxy:
    """A websocket proxy in front of anvil whose client sockets can be cut (``drop``) or held (``hold``)."""

    def __init__(self, upstream_ws: str) -> None:
        self.upstream = upstream_ws
        self.accepted = 0
        self.hold = False  # swallow client messages instead of forwarding them
        self.held = asyncio.Event()
        self.url = ""
        self._requests: list[web.Request] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> WsProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner, port = await _serve(app)
        self.url = f"ws://127.0.0.1:{port}"
        return self

    def drop(self) -> None:
        """Cut every client connection at the TCP level, as a crashing node or a load balancer does."""
        for req in self._requests:
            if req.transport is not None:
                req.transport.abort()
        self._requests.clear()

    async def stop(self) -> None:
        self.drop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.accepted += 1
        self._requests.append(request)
        assert self._session is not None
        async with self._session.ws_connect(self.upstream) as up:

            async def pump_down() -> None:
                async for msg in up:
                    if msg.type == aiohttp.WSMsgType.TEXT and not ws.closed:
                        await ws.send_str(msg.data)

            down = asyncio.create_task(pump_down())
            try:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    if self.hold:
                        self.held.set()
                        continue
                    await up.send_str(msg.data)
            finally:
                down.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await down
        return ws


@pytest.fixture
def node(anvil: AnvilNode) -> AnvilNode:
    """The `anvil` fixture with the test contract installed."""
    anvil.set_code(ADDR, CODE)
    return anvil


@pytest.fixture
def two_nodes() -> Iterator[tuple[AnvilNode, AnvilNode]]:
    """Two independent anvils with the same state (same genesis, same contract)."""
    first = AnvilNode.start()
    second: AnvilNode | None = None
    try:
        second = AnvilNode.start()
        for n in (first, second):
            n.set_code(ADDR, CODE)
        yield first, second
    finally:
        first.stop()
        if second is not None:
            second.stop()


@pytest.fixture
async def proxy(node: AnvilNode) -> AsyncIterator[HttpProxy]:
    p = await HttpProxy(node.http_url).start()
    try:
        yield p
    finally:
        await p.stop()


def _url(n: AnvilNode, scheme: str) -> str:
    return n.http_url if scheme == "http" else n.ws_url


# -------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_request_response(node: AnvilNode, scheme: str) -> None:
    async with RpcClient(_url(node, scheme), timeout=5) as client:
        assert await client.request("eth_chainId") == hex(31337)
        assert await client.request("eth_blockNumber", []) == "0x0"
        assert await client.request("eth_call", [VALUE_CALL, "latest"]) == FORTY_TWO
        # Concurrent requests share one connection and are matched back by id.
        got = await asyncio.gather(*(client.request("eth_getBalance", [DEV0, "latest"]) for _ in range(20)))
        assert set(got) == {hex(10_000 * 10**18)}
        with pytest.raises(RpcError) as info:
            await client.request("eth_call", [BOOM_CALL, "latest"])
        assert info.value.code == 3 and info.value.is_revert and info.value.method == "eth_call"
        (ep,) = client.endpoints
        assert ep.kind == scheme
        assert ep.requests == 24 and ep.node_errors == 1
        assert ep.retries == 0 and ep.errors == 0  # a revert is an answer, never retried


async def test_batch_http_mixed_items_one_request(node: AnvilNode, proxy: HttpProxy) -> None:
    calls: list[tuple[str, Any]] = [
        ("eth_blockNumber", []),
        ("eth_call", [BOOM_CALL, "latest"]),
        ("eth_getBalance", [DEV0, "latest"]),
        ("eth_call", [VALUE_CALL, "latest"]),
        ("eth_chainId", None),
    ]
    async with RpcClient(proxy.url, timeout=5) as client:
        results = await client.batch(calls, return_exceptions=True)
        assert proxy.methods == [[m for m, _ in calls]]  # one HTTP request carried the whole batch
        assert results[0] == "0x0"
        assert isinstance(results[1], RpcError) and results[1].is_revert
        assert results[2:] == [hex(10_000 * 10**18), FORTY_TWO, hex(31337)]

        with pytest.raises(RpcBatchError) as info:
            await client.batch(calls)
        assert list(info.value.errors) == [1]
        assert info.value.results[3] == FORTY_TWO
        assert client.endpoints[0].retries == 0
        assert len(proxy.bodies) == 2
        assert await client.batch([]) == []


async def test_batch_ws_in_order(node: AnvilNode) -> None:
    async with RpcClient(node.ws_url, timeout=5) as client:
        calls = [("eth_call", [VALUE_CALL if i % 3 else BOOM_CALL, "latest"]) for i in range(12)]
        results = await client.batch(calls, return_exceptions=True)
        for i, r in enumerate(results):
            if i % 3:
                assert r == FORTY_TWO
            else:
                assert isinstance(r, RpcError) and r.code == 3
        assert client.endpoints[0].requests == 1 and client.endpoints[0].calls == 12


async def test_web3_makes_one_request_per_call(proxy: HttpProxy) -> None:
    async with RpcClient(proxy.url, timeout=5) as client:
        w3 = client.web3()
        contract = w3.eth.contract(address=AsyncWeb3.to_checksum_address(ADDR), abi=ABI)

        async def one(expected_method: str, coro: Any) -> Any:
            before = len(proxy.bodies)
            result = await coro
            assert proxy.methods[before:] == [[expected_method]]
            return result

        assert await one("eth_blockNumber", w3.eth.get_block_number()) == 0
        assert await one("eth_getBalance", w3.eth.get_balance(DEV0)) == 10_000 * 10**18
        assert await one("eth_call", contract.functions.value().call()) == 42
        with pytest.raises(ContractLogicError):
            await one("eth_call", contract.functions.boom().call())
        assert await one("eth_chainId", w3.eth.chain_id) == 31337

        # web3's batch API becomes one JSON-RPC batch (one HTTP request).
        before = len(proxy.bodies)
        async with w3.batch_requests() as b:
            b.add(w3.eth.get_block_number())
            b.add(w3.eth.get_balance(DEV0))
            b.add(contract.functions.value())
            got = await b.async_execute()
        assert proxy.methods[before:] == [["eth_blockNumber", "eth_getBalance", "eth_call"]]
        assert list(got) == [0, 10_000 * 10**18, 42]

    # The counting proxy does see web3's extra round trips when the default middleware is on.
    default = AsyncWeb3(AsyncHTTPProvider(proxy.url))
    try:
        before = len(proxy.bodies)
        await default.eth.call({"to": AsyncWeb3.to_checksum_address(ADDR), "data": "0x3fa4f245"})
        assert len(proxy.bodies) - before > 1
    finally:
        await default.provider.disconnect()


async def test_web3_over_websocket(node: AnvilNode) -> None:
    async with RpcClient(node.ws_url, timeout=5) as client:
        w3 = client.web3()
        contract = w3.eth.contract(address=AsyncWeb3.to_checksum_address(ADDR), abi=ABI)
        assert await w3.eth.get_block_number() == 0
        assert await contract.functions.value().call() == 42
        assert await w3.eth.get_balance(DEV0) == 10_000 * 10**18
        assert client.endpoints[0].requests == 3


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_failover_when_first_node_is_killed(
    two_nodes: tuple[AnvilNode, AnvilNode], scheme: str
) -> None:
    first, second = two_nodes
    per_worker, workers, kill_at = 40, 4, 10
    results: list[str] = []
    registry = CollectorRegistry()
    async with RpcClient(
        [_url(first, scheme), _url(second, scheme)], timeout=5, retries=3, cooloff=60
    ) as client:
        client.register_metrics(registry, client="test")

        async def worker(k: int) -> None:
            for j in range(per_worker):
                if k == 0 and j == kill_at:
                    # Killed from a thread while the other workers' requests are in flight.
                    await asyncio.to_thread(first.kill)
                method, params = ("eth_call", [VALUE_CALL, "latest"]) if j % 2 else ("eth_chainId", [])
                got = await client.request(method, params)
                results.append(got)
                assert got == (FORTY_TWO if j % 2 else hex(31337))

        await asyncio.gather(*(worker(k) for k in range(workers)))
        ep1, ep2 = client.endpoints

    c1, c2 = ep1.counters(), ep2.counters()
    assert not first.running
    assert len(results) == per_worker * workers
    assert c1["requests"] >= kill_at, c1  # the first node served traffic before it died ...
    assert c1["errors"] >= 1, c1  # ... requests failed on it ...
    assert c1["failovers"] >= 1, c1  # ... and moved to the second node at once ...
    assert c1["up"] == 0, c1  # ... which is now preferred while the first one cools off
    assert ep1.last_error is not None and ep1.name in ep1.last_error
    assert c2["up"] == 1 and c2["errors"] == 0, c2
    # Every call the first node did not answer was answered by the second.
    assert c2["calls"] >= per_worker * workers - (c1["calls"] - c1["errors"]), (c1, c2)
    # The drop is visible in the metrics a scrape reads.
    for key in ("errors", "failovers", "requests"):
        sample = registry.get_sample_value(
            f"mevsuite_rpc_{key}_total", {"client": "test", "endpoint": ep1.name}
        )
        assert sample == c1[key], key
    assert (
        registry.get_sample_value("mevsuite_rpc_endpoint_up", {"client": "test", "endpoint": ep1.name}) == 0
    )


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "ws://127.0.0.1:1"])
async def test_unreachable_url_fails_fast_with_clear_message(url: str) -> None:
    async with RpcClient(url, timeout=5, retries=2, backoff=0.01) as client:
        with pytest.raises(AllEndpointsFailedError) as info:
            await client.request("eth_blockNumber")
    err = info.value
    assert not isinstance(err, RpcTimeoutError)
    assert f"cannot reach {url}: connection refused" in str(err)
    assert err.failures == {url: f"cannot reach {url}: connection refused"}
    assert err.attempts == 3 and client.endpoints[0].requests == 3  # bounded: retries + 1
    with pytest.raises(RuntimeError, match="closed"):
        await client.request("eth_blockNumber")


async def test_web3_is_connected_reports_unreachable() -> None:
    async with RpcClient("http://127.0.0.1:1", retries=0) as client:
        assert await client.web3().is_connected() is False


async def test_all_endpoints_named_in_error() -> None:
    silent = await SilentServer().start()
    try:
        async with RpcClient(["http://127.0.0.1:1", silent.url], timeout=0.2, retries=0) as client:
            with pytest.raises(AllEndpointsFailedError) as info:
                await client.request("eth_blockNumber")
    finally:
        await silent.stop()
    msg = str(info.value)
    assert "all 2 RPC endpoints failed" in msg
    assert "cannot reach http://127.0.0.1:1: connection refused" in msg
    assert f"no answer from {silent.url} within 0.2 s" in msg
    assert client.endpoints[0].failovers == 1


async def test_timeout_on_silent_server() -> None:
    silent = await SilentServer().start()
    try:
        async with RpcClient(silent.url, timeout=0.2, retries=1, backoff=0.01) as client:
            with pytest.raises(RpcTimeoutError) as info:
                await client.request("eth_blockNumber")
            assert isinstance(info.value, TimeoutError)
            assert client.endpoints[0].timeouts == 2 and silent.hits == 2
            # A call that must not run twice is not retried after a timeout: it may have reached the node.
            with pytest.raises(RpcTimeoutError, match="not retried"):
                await client.request("evm_mine")
            assert silent.hits == 3
    finally:
        await silent.stop()


async def test_retryable_node_error_retried_revert_not(proxy: HttpProxy) -> None:
    async with RpcClient(proxy.url, timeout=5, retries=3, backoff=0.01) as client:
        proxy.inject = [
            {"code": -32005, "message": "rate limit exceeded"},
            {"code": -32000, "message": "header not found"},
        ]
        assert await client.request("eth_call", [VALUE_CALL, "latest"]) == FORTY_TWO
        assert len(proxy.bodies) == 3 and client.endpoints[0].retries == 2

        with pytest.raises(RpcError):
            await client.request("eth_call", [BOOM_CALL, "latest"])
        assert len(proxy.bodies) == 4 and client.endpoints[0].retries == 2

        # Retries are bounded: a node that keeps refusing ends with its error, after retries + 1 tries.
        proxy.inject = [{"code": -32005, "message": "rate limit exceeded"}] * 10
        with pytest.raises(RpcError) as info:
            await client.request("eth_blockNumber")
        assert info.value.code == -32005 and len(proxy.bodies) == 8


async def test_calls_are_counted_per_method_once_each(proxy: HttpProxy) -> None:
    async with RpcClient(proxy.url, timeout=5, retries=3, backoff=0.01) as client:
        assert client.calls == {}
        await client.request("eth_blockNumber")
        await client.request_raw("eth_call", [BOOM_CALL, "latest"])  # an error answer is still a call
        await client.batch([("eth_call", [VALUE_CALL, "latest"]), ("eth_chainId", None)])
        await client.batch_raw([("eth_call", [VALUE_CALL, "latest"])])
        await client.web3().eth.get_balance(DEV0)
        # a retried call is one call, though it took two HTTP requests
        proxy.inject = [{"code": -32005, "message": "rate limit exceeded"}]
        assert await client.request("eth_getBalance", [DEV0, "latest"]) == hex(10_000 * 10**18)
        assert client.calls == {"eth_blockNumber": 1, "eth_call": 3, "eth_chainId": 1, "eth_getBalance": 2}
        assert len(proxy.bodies) == 7 and client.calls["eth_getLogs"] == 0


async def test_down_endpoint_is_reprobed_and_takes_traffic_back(node: AnvilNode, proxy: HttpProxy) -> None:
    backup = AnvilNode.start()
    try:
        backup.set_code(ADDR, CODE)
        async with RpcClient([proxy.url, backup.http_url], timeout=5, cooloff=0.05) as client:
            primary, secondary = client.endpoints
            proxy.status = 503
            assert await client.request("eth_call", [VALUE_CALL, "latest"]) == FORTY_TWO
            assert not primary.up and primary.failovers == 1 and "HTTP 503" in (primary.last_error or "")
            assert client.current_endpoint is secondary
            proxy.status = None  # the gateway heals; a background probe must notice
            for _ in range(300):
                await client.request("eth_blockNumber")
                if primary.up:
                    break
                await asyncio.sleep(0.01)
            assert primary.up and primary.probes >= 1
            before = len(proxy.bodies)
            assert await client.request("eth_call", [VALUE_CALL, "latest"]) == FORTY_TWO
            assert len(proxy.bodies) == before + 1  # traffic is back on the preferred endpoint
    finally:
        backup.stop()


async def test_ws_reconnects_after_socket_drop(node: AnvilNode) -> None:
    wsp = await WsProxy(node.ws_url).start()
    try:
        async with RpcClient(wsp.url, timeout=5, retries=3, backoff=0.01) as client:
            (ep,) = client.endpoints
            assert await client.request("eth_chainId") == hex(31337)
            wsp.drop()
            assert await client.request("eth_call", [VALUE_CALL, "latest"]) == FORTY_TWO
            assert wsp.accepted == 2 and ep.reconnects == 1

            # A request in flight when the socket drops is retried on a new connection.
            wsp.hold = True
            task = asyncio.create_task(client.request("eth_blockNumber"))
            await asyncio.wait_for(wsp.held.wait(), 5)
            wsp.hold = False
            wsp.drop()
            assert await asyncio.wait_for(task, 10) == "0x0"
            assert wsp.accepted == 3 and ep.reconnects == 2 and ep.errors >= 1
    finally:
        await wsp.stop()


async def test_ws_messages_without_id_go_to_notification_handler(node: AnvilNode) -> None:
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with RpcClient(node.ws_url, timeout=5, on_notification=got.put_nowait) as client:
        sub = await client.request("eth_subscribe", ["newHeads"])
        await asyncio.to_thread(node.mine)
        msg = await asyncio.wait_for(got.get(), 10)
        assert msg["method"] == "eth_subscription" and msg["params"]["subscription"] == sub
        assert msg["params"]["result"]["number"] == "0x1"
        assert await client.request("eth_unsubscribe", [sub]) is True


async def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="scheme"):
        RpcClient("ftp://127.0.0.1:1")
    with pytest.raises(ValueError):
        RpcClient([])


# ------------------------------------------------------------------------------------------ hostile replies
_HOSTILE_NODE_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    import eth_account  # as in every bot process (web3): py_ecc raises the recursion limit to 100000
    from aiohttp import web
    from chains.node.rpc import AllEndpointsFailedError, RpcClient

    PAYLOADS = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000]

    async def main() -> None:
        async def http(request: web.Request) -> web.Response:
            return web.Response(body=PAYLOADS[int(request.match_info["i"])], content_type="application/json")

        async def ws(request: web.Request) -> web.WebSocketResponse:
            sock = web.WebSocketResponse()
            await sock.prepare(request)
            async for _ in sock:
                await sock.send_bytes(PAYLOADS[int(request.match_info["i"])])
            return sock

        app = web.Application()
        app.router.add_post("/{i}", http)
        app.router.add_get("/ws/{i}", ws)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        out = {"recursionlimit": sys.getrecursionlimit()}
        for scheme, path in (("http", ""), ("ws", "ws/")):
            for i in range(len(PAYLOADS)):
                async with RpcClient(f"{scheme}://127.0.0.1:{port}/{path}{i}", retries=0, timeout=5) as client:
                    try:
                        await client.request("eth_chainId")
                        out[f"{scheme}{i}"] = "answered"
                    except AllEndpointsFailedError as exc:
                        ep = client.endpoints[0]
                        out[f"{scheme}{i}"] = ["deeper than" in str(exc), ep.errors, ep.bad_replies]
        await runner.cleanup()
        print(json.dumps(out))

    asyncio.run(main())
""")


def test_hostile_replies_are_clean_errors_in_a_subprocess() -> None:
    """A node answering 100k nested brackets over HTTP and over a websocket: the client (eth-account imported,
    recursion limit 100000) fails the request with AllEndpointsFailedError, counted; the process lives."""
    proc = subprocess.run(
        [sys.executable, "-c", _HOSTILE_NODE_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("recursionlimit") >= 100_000
    assert out == {key: [True, 1, 1] for key in ("http0", "http1", "ws0", "ws1")}


class _Scripted:
    """An HTTP + websocket JSON-RPC stand-in: ``reply`` builds the answer (bytes) to a request message."""

    def __init__(self) -> None:
        self.mode = "deep"

    def reply(self, msg: dict[str, Any]) -> bytes:
        if self.mode == "deep":
            return b'{"jsonrpc":"2.0","id":%d,"result":' % msg["id"] + b"[" * 600 + b"]" * 600 + b"}"
        if self.mode == "big":
            return b'{"jsonrpc":"2.0","id":%d,"result":"0x' % msg["id"] + b"ab" * 5_000 + b'"}'
        if self.mode == "html":
            return b"<html>hello</html>"
        return json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": "0x7a69"}).encode()

    async def http(self, request: web.Request) -> web.Response:
        return web.Response(body=self.reply(await request.json()), content_type="application/json")

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for m in sock:
            await sock.send_str(self.reply(json.loads(m.data)).decode())
        return sock


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[_Scripted, int]]:
    node = _Scripted()
    app = web.Application()
    app.router.add_post("/", node.http)
    app.router.add_get("/ws", node.ws)
    runner, port = await _serve(app)
    try:
        yield node, port
    finally:
        await runner.cleanup()


async def test_http_replies_over_the_limits_fail_over_and_are_counted(
    scripted: tuple[_Scripted, int],
) -> None:
    node, port = scripted
    good = _Scripted()
    good.mode = "ok"
    app = web.Application()
    app.router.add_post("/", good.http)
    runner, good_port = await _serve(app)
    try:
        for mode, reason in (
            ("deep", "deeper than 512 levels"),
            ("big", "exceeds the limit of 8000 bytes"),
            ("html", "invalid JSON-RPC answer"),
        ):
            node.mode = mode
            registry = CollectorRegistry()
            async with RpcClient(
                [f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{good_port}/"],
                retries=0,
                cooloff=60,
                max_reply_bytes=8_000,
            ) as client:
                client.register_metrics(registry, client="t")
                assert await client.request("eth_chainId") == "0x7a69"  # the second node answered
                bad = client.endpoints[0]
                assert (bad.errors, bad.bad_replies, bad.failovers, bad.up) == (1, 1, 1, False), mode
                assert bad.last_error is not None and reason in bad.last_error, bad.last_error
                assert (
                    registry.get_sample_value(
                        "mevsuite_rpc_bad_replies_total", {"client": "t", "endpoint": bad.name}
                    )
                    == 1
                )
    finally:
        await runner.cleanup()


async def test_ws_reply_over_the_limits_fails_the_connection_then_recovers(
    scripted: tuple[_Scripted, int],
) -> None:
    node, port = scripted
    async with RpcClient(f"ws://127.0.0.1:{port}/ws", retries=0, timeout=5, ws_max_size=8_000) as client:
        ep = client.endpoints[0]
        for n, (mode, reason) in enumerate(
            (("deep", "deeper than 512 levels"), ("big", "message too big"), ("html", "not valid JSON")),
            start=1,
        ):
            node.mode = mode
            with pytest.raises(AllEndpointsFailedError, match=reason):
                await client.request("eth_chainId")  # answered with a refusal at once, not after the timeout
            assert (ep.errors, ep.bad_replies) == (n, n), mode
        node.mode = "ok"
        assert await client.request("eth_chainId") == "0x7a69"  # a new connection, and all is well
        assert ep.transport.reconnects >= 2
