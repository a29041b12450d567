"""chains.send.flashbots: the X-Flashbots-Signature vectors, the client against a local relay that checks signatures
like the real one (aiohttp on port 0), and InclusionTracker against a real --no-mining anvil."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from chains.node.anvil import AnvilNode
from chains.node.rpc import RpcClient
from chains.send.flashbots import (
    _SECP256K1_N,
    BuilderResult,
    CallBundleResult,
    FlashbotsClient,
    InclusionStatus,
    InclusionTracker,
    RelayBadReplyError,
    RelayError,
    RelayTimeoutError,
    RelayTransportError,
    bundle_hash,
    flashbots_signature,
    personal_sign_text_hash,
    recover_signature_header,
    validate_mev_bundle,
)

VECTORS = json.loads((Path(__file__).parents[2] / "data" / "flashbots_vectors.json").read_text())
SIG = VECTORS["x_flashbots_signature_vectors"]
KEY = SIG[0]["private_key"]
DEV0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV1_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEV1 = "0x70997970C51812dc3a010C7d01b50E0D5573DC79"
REVERTER = "0x000000000000000000000000000000000000dEaD"
USER_TX = VECTORS["mev_sendBundle_example_txs"]["user_tx"]
BACKRUN_TX = VECTORS["mev_sendBundle_example_txs"]["backrun_tx"]


# ---------------------------------------------------------------------------------------------------- vectors
def test_signature_vector_header_matches_exactly() -> None:
    v = SIG[0]
    assert "0x" + keccak(v["body"].encode()).hex() == v["keccak_body_hex"]
    assert flashbots_signature(v["body"].encode(), v["private_key"]) == v["expected_header"]
    client = FlashbotsClient(v["private_key"], {"r": "http://127.0.0.1:1"})
    assert client.signature_header(v["body"].encode()) == v["expected_header"]
    assert client.address == v["expected_header"].split(":")[0]
    # the coincurve fast path equals eth-account's personal_sign of the "0x"-prefixed TEXT
    ref = Account.sign_message(encode_defunct(text=v["keccak_body_hex"]), v["private_key"])
    assert v["expected_header"].endswith(":0x" + ref.signature.hex())


@pytest.mark.parametrize("v", SIG, ids=lambda v: v["desc"][:24])
def test_every_positive_vector_verifies(v: dict[str, Any]) -> None:
    header = v.get("header") or v["expected_header"]
    assert recover_signature_header(v["body"].encode(), header) == header.split(":")[0]
    if "expected_recovered" in v:
        assert recover_signature_header(v["body"].encode(), header) == v["expected_recovered"]


def test_negative_vector_0x_prefix_dropped_fails() -> None:
    v = SIG[0]
    address = v["expected_header"].split(":")[0]
    # the hexbytes>=1.0 pitfall: signing keccak(body).hex() without "0x" gives exactly the negative vector ...
    wrong = Account.sign_message(encode_defunct(text=keccak(b"Hello").hex()), v["private_key"])
    assert "0x" + wrong.signature.hex() == v["wrong_if_0x_prefix_dropped"]
    # ... which a relay rejects, and which our header never equals
    assert recover_signature_header(b"Hello", f"{address}:{v['wrong_if_0x_prefix_dropped']}") is None
    assert flashbots_signature(b"Hello", v["private_key"]).split(":")[1] != v["wrong_if_0x_prefix_dropped"]
    assert personal_sign_text_hash(b"0x" + keccak(b"Hello").hex().encode()) != personal_sign_text_hash(
        keccak(b"Hello").hex().encode()
    )


def test_negative_cases_from_upstream() -> None:
    header = SIG[0]["expected_header"]
    body = b"Hello"
    for bad in ("", None, "invalid", header + "deadbeef", header[:-8]):
        assert recover_signature_header(body, bad) is None, bad
    for other in (b"", b"{}", body + b"...", body[:-8]):
        assert recover_signature_header(other, header) is None, other
    # a valid signature by someone else than the claimed address
    other_addr = SIG[1]["expected_recovered"]
    assert recover_signature_header(body, other_addr + ":" + header.split(":")[1]) is None


def test_bundle_params_and_validation() -> None:
    tx = bytes.fromhex(USER_TX[2:])
    uid = str(uuid.uuid4())
    p = FlashbotsClient.bundle_params(
        [tx, BACKRUN_TX],
        0xB63DCD,
        min_timestamp=0,
        max_timestamp=1615920932,
        reverting_tx_hashes=["0x" + "AB" * 32],
        replacement_uuid=uid,
        share_with=["builder0x69"],
    )
    assert p == {
        "txs": [USER_TX, BACKRUN_TX],
        "blockNumber": "0xb63dcd",
        "minTimestamp": 0,
        "maxTimestamp": 1615920932,
        "revertingTxHashes": ["0x" + "ab" * 32],
        "replacementUuid": uid,
        "builders": ["builder0x69"],
    }
    for bad in ([], [b""], ["0xzz"], [tx] * 101, [b"\x01" * 300_001]):
        with pytest.raises(ValueError):
            FlashbotsClient.bundle_params(bad, 1)
    with pytest.raises(ValueError):
        FlashbotsClient.bundle_params([tx], 1, min_timestamp=10, max_timestamp=5)
    with pytest.raises(ValueError):
        FlashbotsClient.bundle_params([tx], 1, replacement_uuid="nope")
    with pytest.raises(ValueError):
        FlashbotsClient.bundle_params([tx], 1, reverting_tx_hashes=["0x12"])
    assert bundle_hash([USER_TX, tx]) == "0x" + keccak(keccak(tx) * 2).hex()


def _mev(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "version": "v0.1",
        "inclusion": {"block": 0x8B8DA8, "maxBlock": "0x8b8dab"},
        "body": [
            {"tx": bytes.fromhex(USER_TX[2:]), "canRevert": False},
            {"tx": BACKRUN_TX, "canRevert": False},
        ],
        "validity": {
            "refund": [{"bodyIdx": 0, "percent": 90}],
            "refundConfig": [{"address": DEV1.lower(), "percent": 100}],
        },
        "privacy": {"hints": ["calldata", "logs"], "builders": ["flashbots"]},
    }
    b.update(over)
    return b


def test_mev_bundle_validation() -> None:
    out = validate_mev_bundle(_mev())
    assert out["inclusion"] == {"block": "0x8b8da8", "maxBlock": "0x8b8dab"}
    assert out["body"][0] == {"tx": USER_TX, "canRevert": False}
    assert out["validity"]["refundConfig"] == [{"address": DEV1, "percent": 100}]
    hashed = validate_mev_bundle(
        {
            "version": "v0.1",
            "inclusion": {"block": 1},
            "body": [{"hash": "0x" + "24" * 32}, {"tx": BACKRUN_TX, "canRevert": False}],
            "validity": {"refund": [], "refundConfig": []},
        }
    )
    assert hashed["body"][0] == {"hash": "0x" + "24" * 32}
    bad = [
        _mev(version="v0.2"),
        _mev(inclusion={"block": 10, "maxBlock": 9}),
        _mev(body=[]),
        _mev(body=[{"tx": BACKRUN_TX, "hash": "0x" + "11" * 32}]),
        _mev(body=[{"tx": BACKRUN_TX, "canRevert": "no"}]),
        _mev(validity={"refund": [{"bodyIdx": 2, "percent": 10}]}),  # index outside the body
        _mev(validity={"refund": [{"bodyIdx": 0, "percent": 60}, {"bodyIdx": 1, "percent": 50}]}),
        _mev(validity={"refund": [{"bodyIdx": 0, "percent": 101}]}),
        _mev(validity={"refundConfig": [{"address": "0x12", "percent": 10}]}),
        _mev(validity={"refundConfig": [{"address": DEV1, "percent": 70}, {"address": DEV1, "percent": 40}]}),
        _mev(privacy={"hints": ["everything"]}),
        _mev(body=[{"hash": "0x" + "24" * 32}, {"tx": BACKRUN_TX, "canRevert": False}]),  # hash + privacy
        _mev(extra=1),
    ]
    for b in bad:
        with pytest.raises(ValueError):
            validate_mev_bundle(b)


# ---------------------------------------------------------------------------------------------------- local relay
CALL_BUNDLE_RESULT = VECTORS["eth_callBundle"]["example_response"]["result"]
STATS = {
    "isHighPriority": True,
    "isSimulated": True,
    "simulatedAt": "2022-10-06T21:36:06.317Z",
    "receivedAt": "2022-10-06T21:36:06.250Z",
    "consideredByBuildersAt": [{"pubkey": "0x81babe", "timestamp": "2022-10-06T21:36:06.343Z"}],
    "sealedByBuildersAt": [{"pubkey": "0x81babe", "timestamp": "2022-10-06T21:36:07.742Z"}],
}


@dataclass
class Relay:
    """A relay stand-in. Path = behaviour: /ok answers per the docs, /rpcerr answers a JSON-RPC error,
    /hang never answers, /flaky answers 502 to its first two requests, /down always 502."""

    url: str = ""
    requests: list[tuple[str, str, Any, bytes, str]] = field(
        default_factory=list
    )  # path, method, params, body, signer
    hits: dict[str, int] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def __getitem__(self, path: str) -> str:
        return f"{self.url}/{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["mode"]
        self.hits[path] = self.hits.get(path, 0) + 1
        body = await request.read()
        header = request.headers.get("X-Flashbots-Signature", "")
        claimed, _, sig = header.partition(":")
        try:  # verified independently of chains.send.flashbots, exactly like a relay
            signer = Account.recover_message(
                encode_defunct(text="0x" + keccak(body).hex()),
                signature=bytes.fromhex(sig.removeprefix("0x")),
            )
        except Exception:
            signer = ""
        if not claimed or signer.lower() != claimed.lower():
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "invalid flashbots signature"},
                },
                status=403,
            )
        msg = json.loads(body)
        self.requests.append((path, msg["method"], msg["params"], body, signer))
        if path == "hang":
            await asyncio.wait_for(self.release.wait(), 30)
        if path == "down" or (path == "flaky" and self.hits[path] <= 2):
            return web.Response(status=502, text="bad gateway")
        if path == "rpcerr":
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": msg["id"],
                    "error": {"code": -32000, "message": "bundle simulation failed", "data": "nonce too low"},
                }
            )
        method, params = msg["method"], msg["params"][0]
        result: Any
        if method == "eth_sendBundle":
            result = {"bundleHash": bundle_hash(params["txs"])}
        elif method == "mev_sendBundle":
            result = {"bundleHash": bundle_hash([b["tx"] for b in params["body"] if "tx" in b])}
        elif method == "eth_callBundle":
            result = CALL_BUNDLE_RESULT
        elif method == "eth_cancelBundle":
            result = None
        elif method == "flashbots_getBundleStatsV2":
            result = STATS
        else:
            return web.json_response(
                {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "method not found"}}
            )
        return web.json_response({"jsonrpc": "2.0", "id": msg["id"], "result": result})


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    r = Relay()
    app = web.Application()
    app.router.add_post("/{mode}", r.handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    r.url = f"http://{host}:{port}"
    try:
        yield r
    finally:
        r.release.set()
        await runner.cleanup()


async def test_send_bundle_fans_out_with_per_builder_results(relay: Relay) -> None:
    builders = {"good": relay["ok"], "erroring": relay["rpcerr"], "hanging": relay["hang"]}
    uid = str(uuid.uuid4())
    registry = CollectorRegistry()
    async with FlashbotsClient(
        KEY, builders, timeout=0.3, retries=1, backoff=0.01, registry=registry
    ) as client:
        t0 = time.perf_counter()
        res = await client.send_bundle(
            [USER_TX, BACKRUN_TX], 100, max_timestamp=2_000_000_000, replacement_uuid=uid
        )
        elapsed = time.perf_counter() - t0
    assert set(res) == set(builders) and all(isinstance(r, BuilderResult) for r in res.values())
    good, err, hang = res["good"], res["erroring"], res["hanging"]
    assert good.ok and good.error is None and good.bundle_hash == bundle_hash([USER_TX, BACKRUN_TX])
    assert good.latency < 0.3 and good.attempts == 1
    assert not err.ok and isinstance(err.error, RelayError) and err.bundle_hash is None
    assert (err.error.code, err.error.message, err.error.data) == (
        -32000,
        "bundle simulation failed",
        "nonce too low",
    )
    assert relay.hits["rpcerr"] == 1  # a JSON-RPC error is an answer: never retried
    assert not hang.ok and isinstance(hang.error, RelayTimeoutError) and hang.attempts == 2
    assert hang.latency >= 0.6  # two attempts of 0.3 s each
    assert good.latency < hang.latency and elapsed < 2 * hang.latency  # concurrent: the hang delayed no one

    def count(builder: str, outcome: str) -> float | None:
        return registry.get_sample_value(
            "mevsuite_relay_client_requests_total",
            {"builder": builder, "method": "eth_sendBundle", "outcome": outcome},
        )

    assert (count("good", "ok"), count("erroring", "relay_error"), count("hanging", "timeout")) == (1, 1, 1)
    assert (
        registry.get_sample_value(
            "mevsuite_relay_client_latency_seconds_count", {"builder": "hanging", "method": "eth_sendBundle"}
        )
        == 1
    )
    # every builder got the same signed body, verified by the relay, with the documented params
    bodies = {b for _, _, _, b, _ in relay.requests}
    assert len(bodies) == 1
    assert {p for p, *_ in relay.requests} == {"ok", "rpcerr", "hang"}
    _, method, params, _, signer = relay.requests[0]
    assert method == "eth_sendBundle" and signer == client.address
    assert params == [
        {
            "txs": [USER_TX, BACKRUN_TX],
            "blockNumber": "0x64",
            "maxTimestamp": 2_000_000_000,
            "replacementUuid": uid,
        }
    ]
    # a subset of builders
    async with FlashbotsClient(KEY, builders, timeout=0.3, retries=0) as client:
        only = await client.send_bundle([USER_TX], 101, builders=["good"])
    assert list(only) == ["good"] and only["good"].ok


class _HexBytesBugClient(FlashbotsClient):
    """Signs keccak(body).hex() WITHOUT the 0x prefix: the classic hexbytes>=1.0 mistake."""

    def signature_header(self, body: bytes) -> str:
        sig = Account.sign_message(encode_defunct(text=keccak(body).hex()), KEY)
        return f"{self.address}:0x{sig.signature.hex()}"


async def test_bad_signature_surfaces_as_relay_error(relay: Relay) -> None:
    async with _HexBytesBugClient(KEY, {"relay": relay["ok"]}, timeout=1, retries=3) as client:
        res = await client.send_bundle([USER_TX], 5)
        with pytest.raises(RelayError) as info:
            await client.get_bundle_stats_v2("0x" + "11" * 32, 5)
    assert not res["relay"].ok and isinstance(res["relay"].error, RelayError)
    assert info.value.http_status == 403 and info.value.code == -32600
    assert "invalid flashbots signature" in info.value.message
    assert relay.hits["ok"] == 2 and not relay.requests  # rejected, and not retried


async def test_call_bundle_parses_results(relay: Relay) -> None:
    async with FlashbotsClient(KEY, {"relay": relay["ok"]}) as client:
        sim = await client.call_bundle([USER_TX, BACKRUN_TX], 0xB63DCD, "latest", timestamp=1615920932)
    assert relay.requests[0][2] == [
        {
            "txs": [USER_TX, BACKRUN_TX],
            "blockNumber": "0xb63dcd",
            "stateBlockNumber": "latest",
            "timestamp": 1615920932,
        }
    ]
    assert sim.bundle_gas_price == 476190476193 == sim.coinbase_diff // sim.total_gas_used
    assert sim.coinbase_diff == 20000000000126000 == sim.eth_sent_to_coinbase + sim.gas_fees
    assert sim.total_gas_used == 42000 == sum(r.gas_used for r in sim.results)
    assert sim.state_block_number == 5221585 and sim.bundle_hash == CALL_BUNDLE_RESULT["bundleHash"]
    first = sim.results[0]
    assert first.gas_used == 21000 and first.coinbase_diff == 10000000000063000 and first.value == b""
    assert first.tx_hash == CALL_BUNDLE_RESULT["results"][0]["txHash"] and not first.reverted
    assert sim.first_revert is None and sim.reverted == ()


async def test_call_bundle_result_with_revert() -> None:
    raw = json.loads(json.dumps(CALL_BUNDLE_RESULT))
    raw["results"][1] = {**raw["results"][1], "error": "execution reverted", "revert": "UniswapV2: K"}
    del raw["results"][1]["value"]
    sim = CallBundleResult.parse(raw)
    assert sim.first_revert is sim.results[1] and sim.results[1].revert == "UniswapV2: K"
    assert sim.results[1].value is None and sim.reverted == (sim.results[1],)


async def test_mev_send_bundle_cancel_and_stats(relay: Relay) -> None:
    uid = str(uuid.uuid4())
    async with FlashbotsClient(KEY, {"relay": relay["ok"], "b2": relay["ok"]}) as client:
        bhash = await client.send_mev_bundle(_mev())
        cancelled = await client.cancel_bundle(uid)
        stats = await client.get_bundle_stats_v2(bhash, 0x8B8DA8)
        with pytest.raises(ValueError):
            await client.send_mev_bundle(_mev(privacy={"hints": ["nope"]}))
    assert bhash == bundle_hash([USER_TX, BACKRUN_TX])
    (_, method, params, body, _), *_ = relay.requests
    assert method == "mev_sendBundle" and json.loads(body)["jsonrpc"] == "2.0"
    assert params == [
        {
            "version": "v0.1",
            "inclusion": {"block": "0x8b8da8", "maxBlock": "0x8b8dab"},
            "body": [{"tx": USER_TX, "canRevert": False}, {"tx": BACKRUN_TX, "canRevert": False}],
            "validity": {
                "refund": [{"bodyIdx": 0, "percent": 90}],
                "refundConfig": [{"address": DEV1, "percent": 100}],
            },
            "privacy": {"hints": ["calldata", "logs"], "builders": ["flashbots"]},
        }
    ]
    assert set(cancelled) == {"relay", "b2"} and all(r.ok for r in cancelled.values())
    cancels = [p for _, m, p, _, _ in relay.requests if m == "eth_cancelBundle"]
    assert cancels == [[{"replacementUuid": uid}]] * 2
    assert [p for _, m, p, _, _ in relay.requests if m == "flashbots_getBundleStatsV2"] == [
        [{"bundleHash": bhash, "blockNumber": "0x8b8da8"}]
    ]
    assert stats.is_high_priority and stats.is_simulated and stats.received_at == STATS["receivedAt"]
    assert stats.considered_by_builders_at == (("0x81babe", "2022-10-06T21:36:06.343Z"),)
    assert stats.sealed_by_builders_at == (("0x81babe", "2022-10-06T21:36:07.742Z"),)
    assert len(relay.requests) == 4  # the invalid mev bundle never left the client


async def test_retries_on_502_then_success(relay: Relay) -> None:
    async with FlashbotsClient(
        KEY, {"flaky": relay["flaky"], "down": relay["down"]}, timeout=1, retries=2, backoff=0.01
    ) as client:
        res = await client.send_bundle([USER_TX], 7)
        with pytest.raises(RelayTransportError) as info:
            await client.request("eth_sendBundle", [{"txs": [USER_TX], "blockNumber": "0x7"}], builder="down")
    assert res["flaky"].ok and res["flaky"].attempts == 3 and relay.hits["flaky"] == 3
    assert not res["down"].ok and isinstance(res["down"].error, RelayTransportError)
    assert not isinstance(res["down"].error, RelayTimeoutError) and res["down"].attempts == 3
    assert info.value.attempts == 3 and "502" in info.value.description


async def test_unreachable_relay_is_transport_error() -> None:
    async with FlashbotsClient(KEY, {"gone": "http://127.0.0.1:1"}, timeout=1, retries=1, backoff=0.01) as c:
        res = await c.send_bundle([USER_TX], 1)
    assert isinstance(res["gone"].error, RelayTransportError) and res["gone"].attempts == 2


# ---------------------------------------------------------------------------------------------------- inclusion
def _tx(key: str, nonce: int, to: str, gas: int = 21_000) -> tuple[bytes, str]:
    signed = Account.sign_transaction(
        {
            "type": 2,
            "chainId": 31337,
            "nonce": nonce,
            "to": to,
            "value": 1,
            "gas": gas,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
        },
        key,
    )
    return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()


async def _send(rpc: RpcClient, *raws: bytes) -> None:
    for raw in raws:
        await rpc.request("eth_sendRawTransaction", ["0x" + raw.hex()])


async def test_inclusion_landed_reverted_not_landed(anvil_nomine: AnvilNode) -> None:
    async with RpcClient(anvil_nomine.http_url, timeout=5) as rpc:
        await rpc.request("anvil_setCode", [REVERTER, "0x60006000fd"])  # PUSH1 0 PUSH1 0 REVERT
        raw_a, hash_a = _tx(DEV0_KEY, 0, DEV1)
        raw_b, hash_b = _tx(DEV0_KEY, 1, REVERTER, gas=60_000)
        _, hash_c = _tx(DEV0_KEY, 2, DEV1)  # signed, never sent
        start = int(await rpc.request("eth_blockNumber", []), 16)
        b1 = start + 1
        landed = InclusionTracker(rpc, [hash_a], [b1, b1 + 1])
        reverted = InclusionTracker(rpc, [hash_a, hash_b], [b1])
        allowed = InclusionTracker(rpc, [hash_a, hash_b], [b1], reverting_tx_hashes=[hash_b])
        never = InclusionTracker(rpc, [hash_c], [b1, b1 + 5])
        assert {s.status for s in (await landed.poll()).values()} == {InclusionStatus.PENDING}

        await _send(rpc, raw_a, raw_b)
        await rpc.request("evm_mine", [])
        await rpc.request("evm_mine", [])
        receipt_b = await rpc.request("eth_getTransactionReceipt", [hash_b])
        assert int(receipt_b["status"], 16) == 0 and int(receipt_b["blockNumber"], 16) == b1

        res = await landed.poll()
        assert res[b1].status is InclusionStatus.LANDED and res[b1].included == (hash_a,)
        assert res[b1 + 1].status is InclusionStatus.NOT_LANDED
        block = await rpc.request("eth_getBlockByNumber", [hex(b1), False])
        assert res[b1].block_hash == block["hash"]
        res = await reverted.poll()
        assert res[b1].status is InclusionStatus.REVERTED and res[b1].reverted == (hash_b,)
        assert (await allowed.poll())[b1].status is InclusionStatus.LANDED
        res = await never.poll()
        assert res[b1].status is InclusionStatus.NOT_LANDED and res[b1].included == ()
        assert res[b1 + 5].status is InclusionStatus.PENDING
        res = await never.wait(poll_interval=0.01, timeout=0.05)  # gives up at the timeout: still pending
        assert res[b1 + 5].status is InclusionStatus.PENDING


async def test_inclusion_orphaned_after_reorg(anvil_nomine: AnvilNode) -> None:
    async with RpcClient(anvil_nomine.http_url, timeout=5) as rpc:
        raw_a, hash_a = _tx(DEV0_KEY, 0, DEV1)
        raw_other, _ = _tx(DEV1_KEY, 0, REVERTER)
        b1 = int(await rpc.request("eth_blockNumber", []), 16) + 1
        snap = await rpc.request("evm_snapshot", [])
        tracker = InclusionTracker(rpc, [hash_a], [b1, b1 + 1])
        await _send(rpc, raw_a)
        await rpc.request("evm_mine", [])
        first = await tracker.poll()
        assert first[b1].status is InclusionStatus.LANDED
        old_hash = first[b1].block_hash

        # the block is replaced: back to the parent, and a different block b1 is mined
        assert await rpc.request("evm_revert", [snap]) is True
        await rpc.request("anvil_dropAllTransactions", [])
        await _send(rpc, raw_other)
        await rpc.request("evm_mine", [])
        res = await tracker.poll()
        assert res[b1].status is InclusionStatus.ORPHANED
        assert res[b1].orphaned_hash == old_hash and res[b1].block_hash not in (None, old_hash)
        assert res[b1 + 1].status is InclusionStatus.PENDING

        # the tx comes back in the next block: b1 stays orphaned, b1 + 1 landed
        await _send(rpc, raw_a)
        await rpc.request("evm_mine", [])
        res = await tracker.poll()
        assert res[b1].status is InclusionStatus.ORPHANED
        assert res[b1 + 1].status is InclusionStatus.LANDED and res[b1 + 1].included == (hash_a,)


@settings(max_examples=60, deadline=None)
@given(
    key=st.integers(min_value=1, max_value=_SECP256K1_N - 1),
    body=st.binary(max_size=300),
    legacy_v=st.booleans(),
)
def test_fast_recovery_agrees_with_eth_account(key: int, body: bytes, legacy_v: bool) -> None:
    """The relay's coincurve recovery gives eth-account's answer, for v in {27, 28} and in {0, 1}."""
    acct = Account.from_key(key.to_bytes(32, "big"))
    text = "0x" + keccak(body).hex()
    sig = bytearray(Account.sign_message(encode_defunct(text=text), acct.key).signature)
    if not legacy_v:
        sig[64] -= 27
    header = f"{acct.address}:0x{bytes(sig).hex()}"
    assert recover_signature_header(body, header) == acct.address
    assert recover_signature_header(body + b" ", header) is None
    bad_v = bytearray(sig)
    bad_v[64] = 29
    assert recover_signature_header(body, f"{acct.address}:0x{bytes(bad_v).hex()}") is None
    zero_r = bytes(32) + bytes(sig[32:])
    assert recover_signature_header(body, f"{acct.address}:0x{zero_r.hex()}") is None


# ---------------------------------------------------------------------------------------------------- hostile replies
NESTED_REPLIES = {
    "lists": b"[" * 100_000 + b"]" * 100_000,
    "objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
}

_HOSTILE_BUILDER_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    import eth_account  # as in every bot process (web3): py_ecc raises the recursion limit to 100000
    from aiohttp import web
    from prometheus_client import CollectorRegistry
    from chains.send.flashbots import FlashbotsClient, RelayBadReplyError

    PAYLOADS = {"lists": b"[" * 100_000 + b"]" * 100_000,
                "objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000}

    async def main() -> None:
        async def reply(request: web.Request) -> web.Response:
            return web.Response(body=PAYLOADS[request.match_info["p"]], content_type="application/json")

        app = web.Application()
        app.router.add_post("/{p}", reply)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        registry = CollectorRegistry()
        builders = {p: f"http://127.0.0.1:{port}/{p}" for p in PAYLOADS}
        out = {"recursionlimit": sys.getrecursionlimit()}
        async with FlashbotsClient(sys.argv[1], builders, retries=2, backoff=0.01, registry=registry) as client:
            for name in PAYLOADS:
                try:
                    await client.request("eth_sendBundle", [{"txs": [], "blockNumber": "0x1"}], builder=name)
                    out[name] = "accepted"
                except RelayBadReplyError as exc:
                    out[name] = [type(exc).__name__, exc.reason, exc.attempts]
                out[name + "_bad_reply"] = registry.get_sample_value(
                    "mevsuite_relay_client_requests_total",
                    {"builder": name, "method": "eth_sendBundle", "outcome": "bad_reply"})
        await runner.cleanup()
        print(json.dumps(out))

    asyncio.run(main())
""")


def test_hostile_builder_reply_is_a_clean_counted_error_in_a_subprocess() -> None:
    """A builder answering 100k nested brackets: the client (eth-account imported, recursion limit 100000) raises
    RelayBadReplyError at once and counts outcome bad_reply; the process lives (the old client died: SIGSEGV)."""
    proc = subprocess.run(
        [sys.executable, "-c", _HOSTILE_BUILDER_SCRIPT, KEY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["recursionlimit"] >= 100_000
    for name in NESTED_REPLIES:
        assert out[name] == ["RelayBadReplyError", "too_deep", 1]  # refused at once, never retried
        assert out[name + "_bad_reply"] == 1


@contextlib.asynccontextmanager
async def _replying(replies: Mapping[str, tuple[int, bytes]]) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A builder stand-in: POST /<name> answers replies[name] = (HTTP status, body)."""
    hits: dict[str, int] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hits[name] = hits.get(name, 0) + 1
        status, body = replies[name]
        if name.startswith("chunked"):
            resp = web.StreamResponse(status=status)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(0, len(body), 65_536):
                await resp.write(body[i : i + 65_536])
            return resp
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{name}", handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", hits
    finally:
        await runner.cleanup()


async def test_reply_over_the_limits_is_refused_at_once_and_counted() -> None:
    deep = b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 200 + b"]" * 200 + b"}"
    big = b'{"jsonrpc":"2.0","id":1,"result":"0x' + b"ab" * 600_000 + b'"}'
    replies = {
        "deep": (200, deep),
        "big": (200, big),
        "chunked_big": (200, big),
        "notjson": (200, b"<html>"),
        "deep_error": (400, b'{"error":' + b"[" * 300 + b"]" * 300 + b"}"),
    }
    registry = CollectorRegistry()
    async with _replying(replies) as (url, hits):
        builders = {name: f"{url}/{name}" for name in replies}
        async with FlashbotsClient(
            KEY, builders, retries=1, backoff=0.01, registry=registry, max_reply_bytes=1_000_000
        ) as client:
            res = await client.send_bundle([USER_TX], 5)
    for name, reason in (
        ("deep", "too_deep"),
        ("big", "too_large"),
        ("chunked_big", "too_large"),
        ("deep_error", "too_deep"),
    ):
        err = res[name].error
        assert isinstance(err, RelayBadReplyError) and err.reason == reason and err.attempts == 1, (name, err)
        assert hits[name] == 1  # not retried: the same reply would come back
    err = res["notjson"].error  # not JSON at all: retried (a proxy's page may be transient), then refused
    assert isinstance(err, RelayBadReplyError) and err.reason == "malformed" and err.attempts == 2
    assert isinstance(err, RelayTransportError) and hits["notjson"] == 2
    for name in replies:
        assert (
            registry.get_sample_value(
                "mevsuite_relay_client_requests_total",
                {"builder": name, "method": "eth_sendBundle", "outcome": "bad_reply"},
            )
            == 1
        )


def test_bundle_replacement_uuid_is_deterministic_per_bot_chain_and_block() -> None:
    import uuid

    from chains.send.flashbots import bundle_replacement_uuid

    a = bundle_replacement_uuid("dex_arb", 1, 19_000_000)
    assert a == bundle_replacement_uuid("dex_arb", 1, 19_000_000)  # same inputs: same UUID, every run
    assert uuid.UUID(a).version == 5
    others = {
        bundle_replacement_uuid(*k)
        for k in [("dex_arb", 1, 19_000_001), ("dex_arb", 10, 19_000_000), ("liquidations", 1, 19_000_000)]
    }
    assert a not in others and len(others) == 3
    assert (
        a == "39fdcd29-aed6-51de-8f12-425154ea28b9"
    )  # pinned: a new namespace would stop replacements across versions
    with pytest.raises(ValueError):
        bundle_replacement_uuid("", 1, 1)
