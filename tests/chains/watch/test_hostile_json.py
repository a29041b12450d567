"""Hostile JSON on a subscription stream (chains.node.subscribe.WsSubscription): nested brackets deep enough to overflow
the C stack (run in a subprocess: the old code died with SIGSEGV), messages over the nesting or size limit --
each is counted (``mevsuite_ws_errors_total{reason="bad_message"}``) and skipped, and the subscription lives on.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry
from websockets.asyncio.server import ServerConnection, serve

from chains.node.subscribe import WsSubscription

_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    import eth_account  # as in every bot process (web3): py_ecc raises the recursion limit to 100000
    from prometheus_client import CollectorRegistry
    from websockets.asyncio.server import serve
    from chains.node.subscribe import WsSubscription

    PAYLOADS = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000]

    def note(result):
        return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                           "params": {"subscription": "0xsub", "result": result}})

    async def handler(ws):
        async for raw in ws:
            msg = json.loads(raw)
            if msg["method"] == "eth_subscribe":
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": "0xsub"}))
                for p in PAYLOADS:
                    await ws.send(p.decode())  # text frames
                    await ws.send(p)  # binary frames
                await ws.send(note("0x" + "11" * 32))

    async def main():
        registry = CollectorRegistry()
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with WsSubscription(f"ws://127.0.0.1:{port}", "newPendingTransactions",
                                      registry=registry) as sub:
                async with asyncio.timeout(20):
                    first = await sub.next_notification()
                out = {"recursionlimit": sys.getrecursionlimit(), "result": first.result, "errors": sub.errors,
                       "connects": sub.connects, "connected": sub.connected,
                       "metric": registry.get_sample_value("mevsuite_ws_errors_total",
                           {"subscription": "newPendingTransactions", "reason": "bad_message"})}
        print(json.dumps(out))

    asyncio.run(main())
""")


def test_hostile_messages_on_the_stream_are_skipped_in_a_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "recursionlimit": out["recursionlimit"],
        "result": "0x" + "11" * 32,
        "errors": 4,
        "connects": 1,
        "connected": True,
        "metric": 4,
    }
    assert out["recursionlimit"] >= 100_000


Script = Callable[[ServerConnection], Awaitable[None]]


async def _node(script: Script) -> AsyncIterator[str]:
    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            if msg["method"] == "eth_subscribe":
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": "0xsub"}))
                await script(ws)

    async with serve(handler, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"


def _note(result: Any) -> str:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": "0xsub", "result": result},
        }
    )


async def test_too_deep_and_too_large_messages_are_counted_and_the_subscription_lives_on() -> None:
    sent = 0

    async def script(ws: ServerConnection) -> None:
        nonlocal sent
        sent += 1
        if sent == 1:
            await ws.send(_note("[" * 200 + "]" * 200))  # a string: fine
            await ws.send(
                '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0xsub",'
                '"result":' + "[" * 200 + "]" * 200 + "}}"
            )  # nested 202 deep: refused
            await ws.send(_note("after the deep one"))
            await ws.send(_note("x" * 20_000))  # over max_message_bytes: the socket closes, we reconnect
        else:
            await ws.send(_note("after the reconnect"))

    registry = CollectorRegistry()
    got: list[Any] = []
    async for url in _node(script):
        async with WsSubscription(
            url, "newHeads", registry=registry, max_message_bytes=10_000, backoff=0.01
        ) as sub:
            async with asyncio.timeout(20):
                while len(got) < 3:
                    note = await sub.next_notification()
                    assert note is not None
                    got.append(note.result)
            assert sub.connected and sub.reconnects == 1
    assert got == ["[" * 200 + "]" * 200, "after the deep one", "after the reconnect"]
    assert (
        registry.get_sample_value(
            "mevsuite_ws_errors_total", {"subscription": "newHeads", "reason": "bad_message"}
        )
        == 2
    )
    assert (
        registry.get_sample_value(
            "mevsuite_ws_errors_total", {"subscription": "newHeads", "reason": "dropped"}
        )
        is None
    )
