"""The local relay's limits (docs/relay.md "Limits", docs/wire-limits.md) on a fresh --no-mining anvil: hostile
JSON (in a subprocess: the old relay died with SIGSEGV), body size, maxBlockNumber and bundle target caps,
pending items per signer and in total, hint stream subscribers and slow readers, hint and history size,
malformed refunds, generic internal errors, and who the backrun refund belongs to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry

from chains.devnet.builder import BlockBuilder
from chains.devnet.relay import LocalRelay
from chains.node.anvil import AnvilNode
from chains.send.flashbots import FlashbotsClient, RelayError
from chains.send.signer import Signer

ROOT = Path(__file__).resolve().parents[3]
USER = Signer("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")  # anvil dev account 0
OTHER_USER = Signer("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")  # dev account 1
AUTH = Signer(keccak(b"relay-limits-auth"))  # a searcher / wallet identity (not funded)
AUTH2 = Signer(keccak(b"relay-limits-auth-2"))
ATTACKER = "0x000000000000000000000000000000000000a77a"
SINK = "0x000000000000000000000000000000000000dEaD"
GWEI = 10**9
NESTED = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000]


def sign(who: Signer, nonce: int = 0, data: str = "0x") -> str:
    tx = {
        "chainId": 31337,
        "nonce": nonce,
        "to": SINK,
        "value": 1,
        "gas": 100_000,
        "maxFeePerGas": 100 * GWEI,
        "maxPriorityFeePerGas": GWEI,
        "data": data,
    }
    return "0x" + who.sign_eip1559(tx).raw_transaction.hex()


MakeRelay = Callable[..., Awaitable[tuple[LocalRelay, FlashbotsClient]]]
REGISTRIES: dict[LocalRelay, CollectorRegistry] = {}


@pytest.fixture
async def make(anvil_nomine: AnvilNode) -> AsyncIterator[MakeRelay]:
    builder = BlockBuilder(anvil_nomine, interval_s=1.0, block_time_s=12)
    started: list[tuple[LocalRelay, FlashbotsClient]] = []

    async def factory(**limits: Any) -> tuple[LocalRelay, FlashbotsClient]:
        registry = CollectorRegistry()
        relay = LocalRelay(builder, registry=registry, ping_interval_s=0.2, **limits)
        REGISTRIES[relay] = registry
        await relay.start()
        client = FlashbotsClient(AUTH, {"relay": relay.url}, timeout=30.0, retries=0)
        started.append((relay, client))
        return relay, client

    try:
        yield factory
    finally:
        for relay, client in started:
            await client.close()
            await relay.stop()
            REGISTRIES.pop(relay, None)
        await builder.aclose()


def metric(relay: LocalRelay, name: str, **labels: str) -> float:
    return REGISTRIES[relay].get_sample_value(name, labels) or 0.0


async def rpc_error(client: FlashbotsClient, method: str, params: list[Any]) -> RelayError:
    with pytest.raises(RelayError) as info:
        await client.request(method, params)
    return info.value


async def post_signed(url: str, body: bytes, signer: Signer = AUTH) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers={"X-Flashbots-Signature": signer.flashbots_signature(body)}) as r,
    ):
        return r.status, await r.json(content_type=None)


# ---------------------------------------------------------------------------------------------- hostile JSON
_RELAY_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from chains.devnet.builder import BlockBuilder
    from chains.devnet.relay import LocalRelay

    async def main() -> None:
        builder = BlockBuilder(sys.argv[1], interval_s=1.0)
        relay = LocalRelay(builder)
        url = await relay.start()
        print(url, sys.getrecursionlimit(), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin
        await relay.stop()
        await builder.aclose()

    asyncio.run(main())
""")


async def test_hostile_json_gets_an_error_and_the_relay_process_lives(anvil_nomine: AnvilNode) -> None:
    """The 100k-deep payloads, signed, to a relay in its own process (eth-account imported: recursion limit
    100000): each is answered -32700 and the relay answers a normal request afterwards.  The old relay died."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RELAY_SCRIPT,
        anvil_nomine.http_url,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        assert line, (await proc.stderr.read()).decode()[-2000:] if proc.stderr else ""
        url, limit = line[0], int(line[1])
        assert limit >= 100_000  # py_ecc's recursion limit is in force in the relay process
        for payload in NESTED:
            status, reply = await post_signed(url, payload)
            assert status == 200 and reply["error"]["code"] == -32700, reply
            assert "deeper than" in reply["error"]["message"]
        async with FlashbotsClient(AUTH, {"relay": url}, retries=0, timeout=10) as client:
            assert await client.request("eth_cancelBundle", [{"replacementUuid": str(uuid.uuid4())}]) is False
        assert proc.returncode is None
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_too_deep_json_is_a_counted_parse_error(make: MakeRelay) -> None:
    relay, client = await make()
    for body in (
        b"[" * 200 + b"]" * 200,
        b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[' + b"[" * 200 + b"]" * 200 + b"]}",
    ):
        status, reply = await post_signed(relay.url, body)
        assert status == 200 and reply["error"]["code"] == -32700 and reply["id"] is None
        assert reply["error"]["message"] == "parse error: JSON nested deeper than 128 levels"
    assert metric(relay, "mevsuite_relay_errors_total", reason="too_deep") == 2
    status, reply = await post_signed(relay.url, b"{nope")
    assert (
        reply["error"]["code"] == -32700
        and metric(relay, "mevsuite_relay_errors_total", reason="parse_error") == 1
    )
    assert await client.request("eth_cancelBundle", [{"replacementUuid": str(uuid.uuid4())}]) is False


async def test_body_size_is_capped_with_413(make: MakeRelay) -> None:
    relay, client = await make(max_body_bytes=10_000)
    big = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_sendBundle",
            "params": [{"txs": ["0x" + "ab" * 6000], "blockNumber": "0x1"}],
        }
    ).encode()
    status, reply = await post_signed(relay.url, big)  # with Content-Length: refused before reading
    assert status == 413 and reply["error"]["code"] == -32600 and "10000 bytes" in reply["error"]["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while reading
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            relay.url, data=chunks(), headers={"X-Flashbots-Signature": AUTH.flashbots_signature(big)}
        ) as r,
    ):
        assert r.status == 413 and (await r.json())["error"]["code"] == -32600
    assert metric(relay, "mevsuite_relay_errors_total", reason="too_large") == 2
    assert await client.request("eth_cancelBundle", [{"replacementUuid": str(uuid.uuid4())}]) is False


# ---------------------------------------------------------------------------------------------- block caps
async def test_private_tx_max_block_number_is_capped_at_head_plus_25(make: MakeRelay) -> None:
    relay, client = await make()
    head = 0  # a fresh chain; the builder has not built yet: the relay asks the node
    err = await rpc_error(
        client, "eth_sendPrivateTransaction", [{"tx": sign(USER, 0), "maxBlockNumber": hex(head + 26)}]
    )
    assert err.code == -32602 and "maxBlockNumber" in err.message and "25 blocks" in err.message
    h = await client.request(
        "eth_sendPrivateTransaction",
        [
            {
                "tx": sign(USER, 0),
                "maxBlockNumber": hex(head + 25),
                "preferences": {"privacy": {"hints": ["hash"]}},
            }
        ],
    )
    assert relay.private_tx(h).max_block == head + 25  # type: ignore[union-attr]
    h2 = await client.request(
        "eth_sendPrivateRawTransaction", [sign(USER, 1), {"privacy": {"hints": ["hash"]}}]
    )
    assert relay.private_tx(h2).max_block == head + 25  # type: ignore[union-attr]  # the default: the next 25


async def test_bundle_target_blocks_are_capped_at_head_plus_25(make: MakeRelay) -> None:
    relay, client = await make()
    err = await rpc_error(client, "eth_sendBundle", [{"txs": [sign(USER)], "blockNumber": hex(26)}])
    assert err.code == -32602 and err.message.startswith(
        "blockNumber 26 is more than 25 blocks after the head 0"
    )
    assert (await client.send_bundle([sign(USER)], 25))["relay"].ok
    err = await rpc_error(
        client,
        "mev_sendBundle",
        [
            {
                "version": "v0.1",
                "inclusion": {"block": "0x14", "maxBlock": hex(26)},
                "body": [{"tx": sign(USER)}],
            }
        ],
    )
    assert err.code == -32602 and err.message.startswith("inclusion.maxBlock 26 is more than 25 blocks")
    assert relay.received(method="eth_sendBundle")[0].accepted is False


# ---------------------------------------------------------------------------------------------- pending items
async def test_pending_items_are_capped_per_signer_and_in_total(make: MakeRelay) -> None:
    relay, client = await make(max_pending_per_signer=3, max_pending_total=5)
    tx = sign(USER)
    for n in (1, 2, 3):  # one pending item per target block
        assert (await client.send_bundle([tx], n))["relay"].ok
    err = await rpc_error(client, "eth_sendBundle", [{"txs": [tx], "blockNumber": hex(4)}])
    assert err.code == -32005 and "at most 3 per signer" in err.message and AUTH.address in err.message
    async with FlashbotsClient(AUTH2, {"relay": relay.url}, retries=0, timeout=30) as other:
        await other.request(
            "eth_sendPrivateTransaction",
            [{"tx": sign(OTHER_USER, 0), "preferences": {"privacy": {"hints": ["hash"]}}}],
        )
        assert (await other.send_bundle([sign(OTHER_USER, 1)], 2))["relay"].ok  # 5 pending in all
        err = await rpc_error(
            other, "eth_sendBundle", [{"txs": [sign(OTHER_USER, 1)], "blockNumber": hex(3)}]
        )
        assert err.code == -32005 and "at most 5)" in err.message
        err = await rpc_error(
            other,
            "mev_sendBundle",
            [{"version": "v0.1", "inclusion": {"block": "0x3"}, "body": [{"tx": sign(OTHER_USER, 1)}]}],
        )
        assert err.code == -32005
    assert metric(relay, "mevsuite_relay_errors_total", reason="pending_limit") == 3
    await relay.builder.build_block()  # block 1: its bundles are done, and the private tx lands
    assert (await client.send_bundle([tx], 4))["relay"].ok


# ---------------------------------------------------------------------------------------------- hint stream
async def test_hint_stream_subscribers_are_capped(make: MakeRelay) -> None:
    relay, _ = await make(max_sse_subscribers=1)
    async with aiohttp.ClientSession() as http, http.get(relay.sse_url) as first:
        assert first.status == 200 and await asyncio.wait_for(first.content.readline(), 10) == b":ping\n"
        async with http.get(relay.sse_url) as second:
            assert second.status == 503 and "too many" in (await second.json())["error"]
    assert metric(relay, "mevsuite_relay_sse_subscribers_dropped_total", reason="limit") == 1


async def test_a_slow_hint_reader_is_disconnected_and_counted(make: MakeRelay) -> None:
    relay, _ = await make(subscriber_queue=4)
    host, port = relay.host, relay.port
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(slow, (host, port))
    await loop.sock_sendall(slow, f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    got: list[bytes] = []

    async def fast_reader(stream: aiohttp.ClientResponse) -> None:
        async for line in stream.content:
            got.append(line)

    async with aiohttp.ClientSession() as http, http.get(relay.sse_url) as fast:
        reader = asyncio.create_task(fast_reader(fast))
        while metric(relay, "mevsuite_relay_sse_subscribers") < 2:  # noqa: ASYNC110 - both connected
            await asyncio.sleep(0.01)
        pad = "ab" * 10_000
        sent = 0
        while (
            metric(relay, "mevsuite_relay_sse_subscribers_dropped_total", reason="slow") == 0 and sent < 2_000
        ):
            relay._publish({"hash": "0x" + f"{sent:064x}", "logs": None, "txs": [{"callData": pad}]}, 0)
            sent += 1
            await asyncio.sleep(0.005)
        assert metric(relay, "mevsuite_relay_sse_subscribers_dropped_total", reason="slow") == 1
        await asyncio.sleep(0.2)
        assert metric(relay, "mevsuite_relay_sse_subscribers") == 1  # the fast one stays
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    slow.close()
    assert sum(1 for line in got if line.startswith(b"data: ")) >= sent - 5  # the fast reader kept up


async def test_hint_size_is_capped(make: MakeRelay) -> None:
    relay, client = await make(max_hint_bytes=400)
    data = "0x" + "ab" * 1000
    h = await client.request(
        "eth_sendPrivateTransaction",
        [
            {
                "tx": sign(USER, 0, data),
                "preferences": {"privacy": {"hints": ["hash", "calldata", "contract_address"]}},
            }
        ],
    )
    [hint] = relay.hints()
    assert hint["txs"] == [{"to": SINK.lower()}] and hint["hash"] == relay.private_tx(h).hint_hash  # type: ignore[union-attr]
    assert len(json.dumps(hint, separators=(",", ":"))) <= 400
    assert metric(relay, "mevsuite_relay_hints_trimmed_total") == 1
    small = await client.request(
        "eth_sendPrivateTransaction",
        [{"tx": sign(USER, 1, "0x1234"), "preferences": {"privacy": {"hints": ["hash", "calldata"]}}}],
    )
    assert relay.hints()[-1]["txs"] == [{"callData": "0x1234"}] and small


async def test_hint_history_is_bounded_by_bytes(make: MakeRelay) -> None:
    relay, client = await make(max_history_bytes=2_000)
    hashes = []
    for nonce in range(30):
        hashes.append(
            await client.request(
                "eth_sendPrivateRawTransaction", [sign(USER, nonce), {"privacy": {"hints": ["hash"]}}]
            )
        )
    kept = relay.hints()
    assert 5 < len(kept) < 30 and kept[-1]["hash"] == relay.private_tx(hashes[-1]).hint_hash  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http, http.get(relay.url + "api/v1/history") as r:
        history = await r.json()
    assert [x["hint"] for x in history] == kept
    assert len(json.dumps(history, separators=(",", ":"))) <= 2_001  # the entries, their commas, the brackets


# ---------------------------------------------------------------------------------------------- params, errors
async def test_malformed_refunds_get_invalid_params_naming_the_field(make: MakeRelay) -> None:
    _, client = await make()
    mev_cases: list[tuple[dict[str, Any], str]] = [
        ({"refund": 5}, "validity.refund must be a list"),
        ({"refund": {"bodyIdx": 0, "percent": 50}}, "validity.refund must be a list"),
        ({"refund": ["x"]}, "validity.refund[0] must be an object"),
        ({"refund": [{"bodyIdx": 0, "percent": "50"}]}, "validity.refund[0].percent"),
        ({"refund": [{"bodyIdx": 7, "percent": 50}]}, "validity.refund[0].bodyIdx"),
        ({"refundConfig": 1}, "validity.refundConfig must be a list"),
        ({"refundConfig": [{"address": "0x12", "percent": 5}]}, "validity.refundConfig[0].address"),
    ]
    for validity, field in mev_cases:
        err = await rpc_error(
            client,
            "mev_sendBundle",
            [
                {
                    "version": "v0.1",
                    "inclusion": {"block": "0x1"},
                    "body": [{"hash": "0x" + "11" * 32}, {"tx": sign(USER), "canRevert": False}],
                    "validity": validity,
                }
            ],
        )
        assert err.code == -32602 and err.message.startswith(field), (validity, err.message)
    private_cases: list[tuple[Any, str]] = [
        ({"validity": {"refund": {"address": ATTACKER}}}, "preferences.validity.refund must be a list"),
        ({"validity": {"refund": 5}}, "preferences.validity.refund must be a list"),
        ({"validity": {"refund": [5]}}, "preferences.validity.refund[0] must be an object"),
        ({"validity": {"refund": [{"address": "nope"}]}}, "preferences.validity.refund[0].address"),
        (
            {"validity": {"refund": [{"address": ATTACKER, "percent": 101}]}},
            "preferences.validity.refund[0].percent",
        ),
        ({"validity": 3}, "preferences.validity must be an object"),
    ]
    for prefs, field in private_cases:
        err = await rpc_error(
            client, "eth_sendPrivateTransaction", [{"tx": sign(USER), "preferences": prefs}]
        )
        assert err.code == -32602 and err.message.startswith(field), (prefs, err.message)


async def test_internal_errors_are_generic_and_logged(
    make: MakeRelay, caplog: pytest.LogCaptureFixture
) -> None:
    relay, client = await make()

    def boom(*_: Any, **__: Any) -> bool:
        raise RuntimeError("secret detail at /home/builder/state.db")

    relay.builder.cancel_bundle = boom  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="chains.devnet.relay"):
        err = await rpc_error(client, "eth_cancelBundle", [{"replacementUuid": str(uuid.uuid4())}])
    assert err.code == -32603 and err.message == "internal error"
    assert "secret detail" in caplog.text  # the details are in the log only
    assert metric(relay, "mevsuite_relay_errors_total", reason="internal") == 1


# ---------------------------------------------------------------------------------------------- refunds
async def test_backrun_refund_goes_to_the_sender_unless_the_sender_chooses(make: MakeRelay) -> None:
    relay, client = await make()
    prefs = {"privacy": {"hints": ["hash"]}, "validity": {"refund": [{"address": ATTACKER, "percent": 90}]}}
    # someone holding the user's signed tx (a wallet, an RPC, a copycat) cannot redirect the user's refund
    err = await rpc_error(client, "eth_sendPrivateTransaction", [{"tx": sign(USER, 0), "preferences": prefs}])
    assert err.code == -32602 and err.message.startswith(
        f"preferences.validity.refund[0].address: only the transaction's sender {USER.address.lower()}"
    )
    err = await rpc_error(
        client,
        "mev_sendBundle",
        [
            {
                "version": "v0.1",
                "inclusion": {"block": "0x1"},
                "body": [{"tx": sign(USER, 0)}],
                "privacy": {"hints": ["hash"]},
                "validity": {"refundConfig": [{"address": ATTACKER, "percent": 100}]},
            }
        ],
    )
    assert err.code == -32602 and err.message.startswith("validity.refundConfig[0].address: only the")
    # by default the refund goes to the sender
    h = await client.request(
        "eth_sendPrivateTransaction", [{"tx": sign(USER, 0), "preferences": {"privacy": {"hints": ["hash"]}}}]
    )
    assert relay.private_tx(h).refund_recipient == USER.address.lower()  # type: ignore[union-attr]
    # naming yourself is fine whoever submits
    own = {"privacy": {"hints": ["hash"]}, "validity": {"refund": [{"address": OTHER_USER.address}]}}
    h = await client.request("eth_sendPrivateTransaction", [{"tx": sign(OTHER_USER, 0), "preferences": own}])
    assert relay.private_tx(h).refund_recipient == OTHER_USER.address.lower()  # type: ignore[union-attr]
    # the sender itself (signing the request) may send its refund elsewhere
    async with FlashbotsClient(USER, {"relay": relay.url}, retries=0, timeout=30) as self_signed:
        h = await self_signed.request(
            "eth_sendPrivateTransaction", [{"tx": sign(USER, 1), "preferences": prefs}]
        )
    assert relay.private_tx(h).refund_recipient == ATTACKER  # type: ignore[union-attr]
