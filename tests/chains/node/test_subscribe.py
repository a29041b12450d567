"""WsSubscription on its own (it is generic: the block watcher will use it for newHeads): a real anvil's
newHeads across a forced reconnect with the on_reconnect callback, a handshake that keeps failing, a clean close,
and the drop_oldest overflow policy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from chains.node.subscribe import WsSubscription
from tests.fixtures.devnet import Devnet


async def eventually(pred: Callable[[], object], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not pred():  # noqa: ASYNC110 - polling a counter, there is no event to wait on
            await asyncio.sleep(0.01)


async def test_new_heads_survive_a_dropped_socket_and_call_on_reconnect(devnet_state: Devnet) -> None:
    node = devnet_state.node
    node.set_automine(False)
    calls: list[bool] = []
    registry = CollectorRegistry()

    async def on_reconnect() -> None:
        calls.append(sub.connected)  # called once the new subscription is live

    sub = WsSubscription(
        node.ws_url, "newHeads", on_reconnect=on_reconnect, backoff=0.01, backoff_max=0.05, registry=registry
    )
    async with sub:
        first_id = sub.subscription_id
        node.mine()
        head = await asyncio.wait_for(anext(aiter(sub)), 10)
        assert int(head["number"], 16) == node.block_number()
        await sub.drop_connection()
        await eventually(lambda: sub.reconnects == 1)
        assert calls == [True] and sub.subscription_id not in (None, first_id)
        node.mine()
        head2 = await asyncio.wait_for(anext(aiter(sub)), 10)
        assert int(head2["number"], 16) == int(head["number"], 16) + 1
    assert sub.closed and not sub.connected
    assert [n async for n in sub.stamped()] == []  # iteration ends after close
    assert registry.get_sample_value("mevsuite_ws_reconnects_total", {"subscription": "newHeads"}) == 1
    assert registry.get_sample_value("mevsuite_ws_connects_total", {"subscription": "newHeads"}) == 2
    assert registry.get_sample_value("mevsuite_ws_connected", {"subscription": "newHeads"}) == 0


async def test_failed_handshakes_are_retried_and_counted_until_close() -> None:
    def refuse(conn: ServerConnection, request: Request) -> Response:
        return Response(403, "Forbidden", Headers(), b"no\n")

    registry = CollectorRegistry()
    async with serve(lambda ws: None, "127.0.0.1", 0, process_request=refuse) as server:
        url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        sub = WsSubscription(url, "newHeads", backoff=0.01, backoff_max=0.02, registry=registry)
        starter = asyncio.create_task(sub.start())
        await eventually(lambda: sub.errors >= 3)
        assert "handshake rejected with HTTP 403" in (sub.last_error or "")
        await sub.close()
        await asyncio.gather(starter, return_exceptions=True)
    assert (
        registry.get_sample_value(
            "mevsuite_ws_errors_total", {"subscription": "newHeads", "reason": "handshake"}
        )
        == sub.errors
    )
    assert sub.connects == 0


async def test_drop_oldest_keeps_the_newest_and_counts_the_rest() -> None:
    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": "0xs"}))
            for i in range(5):
                await ws.send(
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "method": "eth_subscription",
                            "params": {"subscription": "0xs", "result": i},
                        }
                    )
                )

    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        async with WsSubscription(url, "newHeads", max_queue=2, overflow="drop_oldest") as sub:
            await eventually(lambda: sub.notifications == 5)
            got = [await sub.next_notification() for _ in range(2)]
    assert [n.result for n in got if n is not None] == [3, 4]
    assert sub.dropped == 3
