"""Bad input never stops the mempool watcher: malformed tx objects, unknown selectors, truncated or garbage
calldata and invalid swaps are counted by reason and skipped; garbage on the websocket itself (undecodable frames,
notifications for another subscription) is counted too; a node that rejects the subscription is reported, and
``mode="auto"`` falls back to polling ``txpool_content``.

The websocket cases use a small real websocket server on a free port that speaks just enough JSON-RPC.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from eth_abi import encode
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry
from websockets.asyncio.server import ServerConnection, serve

from bots.runtime.bus import InProcessBus
from chains.events import TOPIC_PENDING_SWAPS, PendingSwap
from chains.node.rpc import RpcClient
from chains.node.subscribe import SubscriptionRejectedError
from chains.watch.mempool import MempoolWatcher

V2 = "0x" + "11" * 20
V3 = "0x" + "33" * 20
ROUTERS: dict[str, Any] = {V2: "uniswap_v2_router02", V3: "uniswap_v3_swap_router"}
TOK_A, TOK_B = "0x" + "aa" * 20, "0x" + "bb" * 20
SENDER = "0x" + "22" * 20
SIG = "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"


def v2_call(path: list[str], amount_in: int = 1000) -> str:
    data = keccak(text=SIG)[:4] + encode(
        ["uint256", "uint256", "address[]", "address", "uint256"], [amount_in, 1, path, SENDER, 10**10]
    )
    return "0x" + data.hex()


def tx(n: int, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "hash": "0x" + f"{n:064x}",
        "from": SENDER,
        "to": V2,
        "nonce": hex(n),
        "value": "0x0",
        "gas": "0x30000",
        "maxFeePerGas": "0x3b9aca00",
        "maxPriorityFeePerGas": "0x1",
        "input": v2_call([TOK_A, TOK_B]),
        "blockNumber": None,
        "blockHash": None,
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not ...}


BAD: list[tuple[Any, str]] = [
    (42, "malformed_tx"),
    ({}, "malformed_tx"),
    (tx(1, hash="0x12"), "malformed_tx"),
    (tx(2, **{"from": "alice"}), "malformed_tx"),
    (tx(3, input="0xzz"), "malformed_tx"),
    (tx(4, input="0xabc"), "malformed_tx"),
    (tx(5, value="lots"), "malformed_tx"),
    (tx(6, nonce=...), "malformed_tx"),
    (tx(7, value=-1), "malformed_tx"),
    (tx(8, input="0xa9059cbb" + "00" * 64), "unknown_selector"),  # an ERC20 transfer sent to the router
    (tx(9, input=v2_call([TOK_A, TOK_B])[:100]), "bad_calldata"),  # truncated
    (tx(10, input="0x" + keccak(text=SIG)[:4].hex() + "ff" * 160), "bad_calldata"),  # garbage words
    (tx(11, input="0x"), "bad_calldata"),
    (tx(12, input=v2_call([TOK_A])), "invalid_swap"),  # a one-token path
    (tx(13, input=v2_call([TOK_A, TOK_A])), "invalid_swap"),  # a token swapped into itself
    (
        tx(
            14,
            to=V3,
            input="0x"
            + (
                keccak(text="multicall(bytes[])")[:4]
                + encode(["bytes[]"], [[keccak(text="refundETH()")[:4]]])
            ).hex(),
        ),
        "no_swap",
    ),
]


async def test_malformed_txs_are_counted_by_reason_and_skipped() -> None:
    bus = InProcessBus()
    sub = bus.subscribe(TOPIC_PENDING_SWAPS, maxsize=100)
    registry = CollectorRegistry()
    async with RpcClient("http://127.0.0.1:9") as rpc:  # never called: txs are fed directly
        watcher = MempoolWatcher(bus, ROUTERS, rpc=rpc, mode="poll", registry=registry)
        for bad, _ in BAD:
            assert await watcher.handle_tx(bad) in (0, 1)
        assert await watcher.handle_tx(tx(100, to="0x" + "44" * 20)) == 1  # not a router: seen, not a swap
        assert await watcher.handle_tx(tx(101)) == 1  # the watcher still decodes good txs
    expected = Counter(reason for _, reason in BAD)
    assert watcher.stats.errors == expected
    for reason, n in expected.items():
        assert registry.get_sample_value("mevsuite_mempool_decode_errors_total", {"reason": reason}) == n
    assert (
        registry.get_sample_value("mevsuite_mempool_txs_seen_total", {"source": "subscription"})
        == len(BAD) + 2
    )
    assert sub.depth == 1
    ev = await sub.get()
    assert isinstance(ev, PendingSwap) and ev.tx_hash == "0x" + f"{101:064x}" and ev.amount_in == 1000


# ------------------------------------------------------------------------------------------ a scripted ws node

Script = Callable[[ServerConnection, str], Any]


async def fake_node(
    script: Script, *, reject: bool = False, pool: dict[str, Any] | None = None
) -> AsyncIterator[str]:
    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            if msg["method"] == "eth_subscribe":
                if reject:
                    await ws.send(
                        json.dumps(
                            {
                                "jsonrpc": "2.0",
                                "id": msg["id"],
                                "error": {"code": -32602, "message": "unsupported"},
                            }
                        )
                    )
                    continue
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": "0xsub"}))
                await script(ws, "0xsub")
            elif msg["method"] == "txpool_content":
                await ws.send(
                    json.dumps(
                        {"jsonrpc": "2.0", "id": msg["id"], "result": pool or {"pending": {}, "queued": {}}}
                    )
                )
            else:
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": None}))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def note(sub_id: str, result: Any) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "method": "eth_subscription", "params": {"subscription": sub_id, "result": result}}
    )


async def test_garbage_on_the_socket_is_counted_and_the_stream_goes_on() -> None:
    async def script(ws: ServerConnection, sub_id: str) -> None:
        await ws.send("this is not json")
        await ws.send(note("0xother", tx(1)))  # someone else's subscription id
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": "nope"}))
        await ws.send(note(sub_id, 12345))  # neither a tx nor a hash
        await ws.send(note(sub_id, tx(2, input="0xdeadbeef")))
        await ws.send(note(sub_id, tx(3)))  # a good swap after all that

    bus = InProcessBus()
    sub = bus.subscribe(TOPIC_PENDING_SWAPS, maxsize=100)
    registry = CollectorRegistry()
    async for url in fake_node(script):
        async with MempoolWatcher(bus, ROUTERS, ws_url=url, registry=registry) as watcher:
            async with asyncio.timeout(10):
                ev = await sub.get()
            assert isinstance(ev, PendingSwap) and ev.tx_hash == "0x" + f"{3:064x}"
            assert watcher.subscription is not None and watcher.subscription.connected
    bad = {"subscription": "newPendingTransactions", "reason": "bad_message"}
    assert registry.get_sample_value("mevsuite_ws_errors_total", bad) == 3
    assert watcher.stats.errors == Counter({"malformed_tx": 1, "unknown_selector": 1})


async def test_rejected_subscription_raises_in_subscribe_mode() -> None:
    async def script(ws: ServerConnection, sub_id: str) -> None:
        return None

    registry = CollectorRegistry()
    async for url in fake_node(script, reject=True):
        watcher = MempoolWatcher(InProcessBus(), ROUTERS, ws_url=url, registry=registry)
        with pytest.raises(SubscriptionRejectedError, match="unsupported"):
            await watcher.start()
        await watcher.stop()
    # tried with full txs, then with hashes only
    assert watcher.stats.errors == Counter({"subscription_rejected": 2})


async def test_auto_mode_falls_back_to_polling_txpool() -> None:
    async def script(ws: ServerConnection, sub_id: str) -> None:
        return None

    bus = InProcessBus()
    sub = bus.subscribe(TOPIC_PENDING_SWAPS, maxsize=100)
    pool = {"pending": {SENDER: {"7": tx(7, nonce="0x7")}}, "queued": {SENDER: {"9": tx(9, nonce="0x9")}}}
    async for url in fake_node(script, reject=True, pool=pool):
        async with MempoolWatcher(bus, ROUTERS, ws_url=url, mode="auto", poll_interval=0.01) as watcher:
            async with asyncio.timeout(10):
                ev = await sub.get()
                while watcher.stats.duplicates < 2:  # noqa: ASYNC110 - polling a counter, no event to wait on
                    await asyncio.sleep(0.01)
        assert watcher.polling
    assert isinstance(ev, PendingSwap) and ev.tx_hash == "0x" + f"{7:064x}" and ev.nonce == 7
    assert sub.depth == 0  # the queued (nonce-gapped) tx is not published, the pending one only once
