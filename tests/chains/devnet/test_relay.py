"""The local relay on the deployed devnet world (automine off, our block builder mining), through the real
Flashbots client: bundles, eth_callBundle, conflicts, MEV-Share hints + backruns with refunds, auth, errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry

from chains.devnet.actors import V3_VENUE, TrafficConfig
from chains.devnet.builder import BlockBuilder, BundleStatus, DropReason
from chains.devnet.relay import DEFAULT_HINTS, LocalRelay, hint_hash
from chains.devnet.traffic import TrafficGenerator
from chains.node.anvil import DEV_MNEMONIC
from chains.node.rpc import RpcClient
from chains.send.flashbots import FlashbotsClient, InclusionStatus, InclusionTracker, RelayError
from chains.send.signer import Signer

Account.enable_unaudited_hdwallet_features()
DATA = Path(__file__).resolve().parents[2] / "data"
GWEI = 10**9
ZERO = "0x0000000000000000000000000000000000000000"
SINK = "0x000000000000000000000000000000000000dEaD"
ONE_SHOT = "0x600054600c576001600055005b60006000fd"  # reverts if slot 0 is set, else sets it
ONE_SHOT_ADDR = "0x00000000000000000000000000000000000c1a1d"
ALWAYS_REVERT = "0x60006000fd"
ALWAYS_REVERT_ADDR = "0x00000000000000000000000000000000000bad00"
PAY_COINBASE = "0x600060006000600034415af15000"  # forwards msg.value to block.coinbase
PAY_COINBASE_ADDR = "0x00000000000000000000000000000000000c0b0b"


def dev_key(i: int) -> bytes:
    return bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)


# accounts 30-39 are free on the devnet (0-9 bots, 10-29 traders)
SEARCHER = Signer(dev_key(30))
OTHER = Signer(dev_key(31))
VICTIM = Signer(dev_key(32))
AUTH = Signer(keccak(b"relay-test-auth"))  # the reputation key: not a funded account


@dataclass
class Env:
    dev: Any  # tests.fixtures.devnet.Devnet
    builder: BlockBuilder
    relay: LocalRelay
    client: FlashbotsClient
    registry: CollectorRegistry
    rpc: RpcClient

    def rpc_sync(self, method: str, params: list[Any] | None = None) -> Any:
        return self.dev.node.rpc(method, params or [])

    def next_block(self) -> int:
        return int(self.dev.node.block_number()) + 1

    def nonce(self, who: Signer) -> int:
        return int(self.rpc_sync("eth_getTransactionCount", [who.address, "latest"]), 16)

    def balance(self, who: str) -> int:
        return int(self.rpc_sync("eth_getBalance", [who, "latest"]), 16)

    def base_fee_next(self) -> int:
        return int(self.rpc_sync("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)

    def sign(
        self,
        who: Signer,
        *,
        nonce: int | None = None,
        to: str = SINK,
        value: int = 1,
        prio: int = GWEI,
        data: str = "0x",
        gas: int = 100_000,
    ) -> bytes:
        tx = {
            "chainId": 31337,
            "nonce": self.nonce(who) if nonce is None else nonce,
            "to": to,
            "value": value,
            "gas": gas,
            "maxFeePerGas": 100 * GWEI,
            "maxPriorityFeePerGas": prio,
            "data": data,
        }
        return who.sign_eip1559(tx).raw_transaction

    def receipt(self, h: str) -> dict[str, Any] | None:
        r = self.rpc_sync("eth_getTransactionReceipt", [h])
        return dict(r) if r else None

    def block(self, n: int, full: bool = False) -> dict[str, Any]:
        return dict(self.rpc_sync("eth_getBlockByNumber", [hex(n), full]))

    def pool(self) -> set[str]:
        content = self.dev.node.txpool_content()
        return {
            t["hash"] for part in content.values() for by_nonce in part.values() for t in by_nonce.values()
        }


def txh(raw: bytes) -> str:
    return "0x" + keccak(raw).hex()


@pytest.fixture
async def env(devnet_state: Any) -> AsyncIterator[Env]:
    node = devnet_state.node
    node.set_automine(False)  # the devnet fixture restores it
    registry = CollectorRegistry()
    builder = BlockBuilder(node, interval_s=1.0, block_time_s=12)
    relay = LocalRelay(builder, registry=registry, ping_interval_s=0.2)
    await relay.start()
    client = FlashbotsClient(AUTH, {"devnet": relay.url}, timeout=30.0, retries=0)
    rpc = RpcClient([node.http_url])
    try:
        yield Env(devnet_state, builder, relay, client, registry, rpc)
    finally:
        await client.close()
        await relay.stop()
        await builder.aclose()
        await rpc.close()
        node.rpc("anvil_setCoinbase", [ZERO])  # node config, not state: the snapshot revert does not undo it


def metric(env: Env, name: str, **labels: str) -> float:
    return env.registry.get_sample_value(name, labels) or 0.0


# ---------------------------------------------------------------------------------------------- bundles
async def test_victim_then_our_tx_lands_in_target_block_in_order(env: Env) -> None:
    dev = env.dev
    async with TrafficGenerator(dev.node, dev.book, TrafficConfig(eth_fraction=0.0), seed=5) as tg:
        rec = await tg.send_swap(venue="uniswap", loose=True, usd_size=2_000)
    assert rec is not None and rec.tx_hash in env.pool()  # the victim waits in the public mempool
    victim_raw = bytes.fromhex(env.rpc_sync("eth_getRawTransactionByHash", [rec.tx_hash])[2:])
    ours = env.sign(SEARCHER, prio=3 * GWEI)
    n = env.next_block()
    res = await env.client.send_bundle([victim_raw, ours], n)
    assert res["devnet"].ok and res["devnet"].bundle_hash is not None
    assert txh(ours) not in env.pool()  # a bundle tx never goes to the public mempool
    await env.builder.build_block()
    assert env.block(n)["transactions"][:2] == [rec.tx_hash, txh(ours)]
    tracker = InclusionTracker(env.rpc, [rec.tx_hash, txh(ours)], [n])
    assert (await tracker.poll())[n].status == InclusionStatus.LANDED
    [logged] = env.relay.received(method="eth_sendBundle")
    assert logged.signer == AUTH.address and logged.target_block == n and logged.accepted
    assert logged.txs == ("0x" + victim_raw.hex(), "0x" + ours.hex())
    assert logged.bundle_hash == res["devnet"].bundle_hash


async def test_reverting_bundle_does_not_land_and_costs_nothing(env: Env) -> None:
    env.dev.node.set_code(ALWAYS_REVERT_ADDR, ALWAYS_REVERT)
    before, nonce = env.balance(SEARCHER.address), env.nonce(SEARCHER)
    ok_tx = env.sign(SEARCHER, value=10**15)
    bad_tx = env.sign(SEARCHER, nonce=nonce + 1, to=ALWAYS_REVERT_ADDR, value=0)
    n = env.next_block()
    res = await env.client.send_bundle([ok_tx, bad_tx], n)
    await env.builder.build_block()
    out = env.builder.outcome(res["devnet"].bundle_hash or "")
    assert out is not None and out.status == BundleStatus.DROPPED and out.reason == DropReason.REVERTED
    assert env.block(n)["transactions"] == []
    assert env.receipt(txh(ok_tx)) is None and env.receipt(txh(bad_tx)) is None
    assert env.balance(SEARCHER.address) == before and env.nonce(SEARCHER) == nonce  # to the wei
    tracker = InclusionTracker(env.rpc, [txh(ok_tx), txh(bad_tx)], [n])
    assert (await tracker.poll())[n].status == InclusionStatus.NOT_LANDED


async def test_conflicting_bundles_higher_paying_lands_nothing_reverts(env: Env) -> None:
    env.dev.node.set_code(ONE_SHOT_ADDR, ONE_SHOT)
    n = env.next_block()
    low = env.sign(SEARCHER, to=ONE_SHOT_ADDR, value=0, prio=2 * GWEI)
    high = env.sign(OTHER, to=ONE_SHOT_ADDR, value=0, prio=5 * GWEI)
    low_id = (await env.client.send_bundle([low], n))["devnet"].bundle_hash
    high_id = (await env.client.send_bundle([high], n))["devnet"].bundle_hash
    # each is valid alone: the relay's simulation says so
    for raw in (low, high):
        assert (await env.client.call_bundle([raw], n)).first_revert is None
    report = await env.builder.build_block()
    assert report.included_bundles == (high_id,)
    assert (low_id, DropReason.CONFLICT) in report.dropped_bundles
    txs = env.block(n)["transactions"]
    assert txs == [txh(high)]
    assert all(env.receipt(h)["status"] == "0x1" for h in txs)  # type: ignore[index]
    assert env.receipt(txh(low)) is None


async def test_call_bundle_numbers_equal_the_landed_bundle(env: Env) -> None:
    dev = env.dev
    dev.node.set_code(PAY_COINBASE_ADDR, PAY_COINBASE)
    public = str(
        env.rpc_sync("eth_sendTransaction", [{"from": dev.book.traders[0], "to": SINK, "value": "0x7"}])
    )
    pay = env.sign(SEARCHER, to=PAY_COINBASE_ADDR, value=10**16, prio=2 * GWEI)
    plain = env.sign(OTHER, prio=3 * GWEI, value=123)
    n = env.next_block()
    head_before, pool_before = dev.node.block_number(), env.pool()
    sim = await env.client.call_bundle([pay, plain], n)
    # the simulation disturbed nothing: same head, same public pool, no bundle tx left anywhere
    assert dev.node.block_number() == head_before and env.pool() == pool_before == {public}
    assert env.receipt(txh(pay)) is None
    assert (
        sim.state_block_number == n - 1
        and sim.bundle_hash == (await env.client.send_bundle([pay, plain], n))["devnet"].bundle_hash
    )
    coinbase = env.builder.coinbase
    assert coinbase is not None
    cb_before = env.balance(coinbase)
    report = await env.builder.build_block()
    assert report.included_bundles == (sim.bundle_hash,)
    blk = env.block(n)
    assert blk["transactions"] == [txh(pay), txh(plain), public]
    base_fee = int(blk["baseFeePerGas"], 16)
    receipts = [env.receipt(txh(r)) for r in (pay, plain)]
    assert [r.gas_used for r in sim.results] == [int(rc["gasUsed"], 16) for rc in receipts]  # type: ignore[index]
    fees = [int(rc["gasUsed"], 16) * (int(rc["effectiveGasPrice"], 16) - base_fee) for rc in receipts]  # type: ignore[index]
    assert [r.gas_fees for r in sim.results] == fees
    assert [r.eth_sent_to_coinbase for r in sim.results] == [10**16, 0]
    assert [r.coinbase_diff for r in sim.results] == [fees[0] + 10**16, fees[1]]
    assert sim.gas_fees == sum(fees) and sim.eth_sent_to_coinbase == 10**16
    assert sim.total_gas_used == sum(r.gas_used for r in sim.results)
    assert sim.coinbase_diff == sum(fees) + 10**16
    assert sim.bundle_gas_price == sim.coinbase_diff // sim.total_gas_used
    out = env.builder.outcome(sim.bundle_hash or "")
    assert (
        out is not None and out.coinbase_payment == sim.coinbase_diff and out.gas_used == sim.total_gas_used
    )
    public_rc = env.receipt(public)
    assert public_rc is not None
    public_fee = int(public_rc["gasUsed"], 16) * (int(public_rc["effectiveGasPrice"], 16) - base_fee)
    assert env.balance(coinbase) - cb_before == sim.coinbase_diff + public_fee  # what the chain really paid


async def test_call_bundle_reports_reverts_per_tx(env: Env) -> None:
    env.dev.node.set_code(ALWAYS_REVERT_ADDR, ALWAYS_REVERT)
    ok = env.sign(SEARCHER)
    bad = env.sign(SEARCHER, nonce=env.nonce(SEARCHER) + 1, to=ALWAYS_REVERT_ADDR, value=0)
    sim = await env.client.call_bundle([ok, bad], env.next_block())
    assert sim.results[0].error is None and sim.results[1].error == "execution reverted"
    assert sim.first_revert is not None and sim.first_revert.tx_hash == txh(bad)


# ---------------------------------------------------------------------------------------------- MEV-Share
async def read_hint(resp: aiohttp.ClientResponse) -> tuple[str, dict[str, Any]]:
    """The next ``data:`` event of an SSE stream (skips ``:ping`` comments): (raw line, parsed JSON)."""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 20)).decode().rstrip("\n")
        if line.startswith("data: "):
            return line, json.loads(line[len("data: ") :])


async def test_mev_share_backrun_lands_and_user_gets_the_refund(env: Env) -> None:
    dev = env.dev
    dev.node.set_code(PAY_COINBASE_ADDR, PAY_COINBASE)
    cfg = TrafficConfig(private_fraction=1.0, eth_fraction=0.0, multihop_fraction=0.0)
    async with (
        aiohttp.ClientSession() as http,
        http.get(env.relay.sse_url) as stream,
        TrafficGenerator(dev.node, dev.book, cfg, seed=21, relay_url=env.relay.url) as tg,
    ):
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        rec = await tg.send_swap(venue=V3_VENUE, loose=True, usd_size=3_000)
        assert rec is not None and rec.private
        line, hint = await read_hint(stream)
    assert rec.tx_hash not in env.pool()  # private order flow never enters the public mempool
    # the documented event: double-hashed tx hash, the hinted fields only (DEFAULT_HINTS: no calldata, no tx hash)
    assert hint["hash"] == hint_hash(rec.tx_hash) and rec.tx_hash not in line
    assert hint["txs"] == [{"to": dev.book.v3.swap_router.lower(), "functionSelector": "0x414bf389"}]
    assert isinstance(hint["logs"], list) and hint["logs"]  # the swap's Transfer/Swap logs, from a simulation
    assert set(hint) == {"hash", "logs", "txs"}

    n = env.next_block()
    backrun = env.sign(SEARCHER, to=PAY_COINBASE_ADDR, value=4 * 10**16, prio=0)
    user = rec.trader
    user_before = env.balance(user)
    bhash = await env.client.send_mev_bundle(
        {
            "version": "v0.1",
            "inclusion": {"block": n},
            "body": [{"hash": hint["hash"]}, {"tx": backrun, "canRevert": False}],
            "validity": {"refund": [{"bodyIdx": 0, "percent": 50}]},
        }
    )
    report = await env.builder.build_block()
    assert report.included_bundles == (bhash,)
    blk = env.block(n, full=True)
    hashes = [t["hash"] for t in blk["transactions"]]
    assert hashes[:2] == [rec.tx_hash, txh(backrun)]  # [user tx, ours]
    out = env.builder.outcome(bhash)
    assert out is not None and out.status == BundleStatus.INCLUDED
    refund = 4 * 10**16 * 50 // 100  # the backrun's value: its coinbase transfer (priority fee 0)
    [(to, amount, refund_tx)] = out.refunds_paid
    assert (to, amount) == (user.lower(), refund)
    assert hashes[-1] == refund_tx  # paid at the end of the same block, from the builder's coinbase
    rtx = blk["transactions"][-1]
    assert rtx["from"].lower() == str(env.builder.coinbase).lower() and int(rtx["value"], 16) == refund
    user_rc = env.receipt(rec.tx_hash)
    assert user_rc is not None and user_rc["status"] == "0x1"
    user_gas = int(user_rc["gasUsed"], 16) * int(user_rc["effectiveGasPrice"], 16)
    assert env.balance(user) - user_before == refund - user_gas  # exact wei (a token-in swap: no ETH value)
    ptx = env.relay.private_tx(hint["hash"])
    assert ptx is not None and ptx.status == "included" and ptx.block_number == n
    [logged] = env.relay.received(method="mev_sendBundle")
    assert logged.bundle_hash == bhash and logged.txs == ("0x" + ptx.raw.hex(), "0x" + backrun.hex())


async def test_private_tx_without_backrun_lands_alone(env: Env) -> None:
    raw = env.sign(VICTIM, value=55)
    h = await env.client.request(
        "eth_sendPrivateTransaction",
        [{"tx": "0x" + raw.hex(), "preferences": {"privacy": {"hints": ["hash"]}}}],
    )
    assert h == txh(raw) and h not in env.pool()
    assert env.relay.hints()[-1] == {"hash": hint_hash(h), "logs": None, "txs": None}
    n = env.next_block()
    await env.builder.build_block()
    assert env.block(n)["transactions"] == [h]
    assert env.relay.private_tx(h).status == "included"  # type: ignore[union-attr]


def test_double_hash_vector() -> None:
    vec = json.loads((DATA / "flashbots_vectors.json").read_text())["mev_share_sse"]["double_hash_vector"]
    assert hint_hash(vec["underlying_tx_hash"]) == vec["event_hash_keccak_of_32_bytes"]
    assert {"hash", "logs"} <= DEFAULT_HINTS


# ---------------------------------------------------------------------------------------------- auth, cancel, stats
async def test_missing_or_bad_signature_is_rejected_like_the_real_relay(env: Env) -> None:
    real = json.loads((DATA / "flashbots_relay_errors.json").read_text())
    missing, bad = real["missing_signature"], real["bad_signature"]
    body = FlashbotsClient(AUTH, {"x": env.relay.url}).encode(
        "eth_sendBundle", [{"txs": ["0x" + env.sign(SEARCHER).hex()], "blockNumber": hex(env.next_block())}]
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(env.relay.url, data=body, headers={"Content-Type": "application/json"}) as r:
            assert r.status == missing["http_status"] and await r.json() == missing["body"]
        forged = OTHER.flashbots_signature(body + b" ").replace(
            OTHER.address, AUTH.address
        )  # other key, other body
        async with http.post(env.relay.url, data=body, headers={"X-Flashbots-Signature": forged}) as r:
            assert r.status == bad["http_status"]
            assert await r.json() == {"error": bad["body_template"]["error"].format(address=AUTH.address)}
        async with http.post(env.relay.url, data=body, headers={"X-Flashbots-Signature": "garbage"}) as r:
            assert r.status == 403
    # the client sees it as a RelayError (never retried)
    bad_client = FlashbotsClient(AUTH, {"devnet": env.relay.url}, retries=3)
    bad_client.signature_header = lambda b: OTHER.flashbots_signature(b).replace(OTHER.address, AUTH.address)  # type: ignore[method-assign]
    with pytest.raises(RelayError) as err:
        await bad_client.request(
            "eth_sendBundle", [{"txs": ["0x" + env.sign(SEARCHER).hex()], "blockNumber": "0x1"}]
        )
    await bad_client.close()
    assert err.value.http_status == 403 and err.value.attempts == 1
    assert env.relay.received() == [] and env.builder.pending_bundles() == []
    assert metric(env, "mevsuite_relay_errors_total", reason="missing_signature") == 1
    assert metric(env, "mevsuite_relay_errors_total", reason="bad_signature") == 3


async def test_cancel_bundle(env: Env) -> None:
    n = env.next_block()
    u = str(uuid.uuid4())
    raw = env.sign(SEARCHER)
    bh = (await env.client.send_bundle([raw], n, replacement_uuid=u))["devnet"].bundle_hash
    res = await env.client.cancel_bundle(u)
    assert res["devnet"].ok and res["devnet"].result is True
    assert (await env.client.cancel_bundle(u))["devnet"].result is False  # nothing left to cancel
    await env.builder.build_block()
    out = env.builder.outcome(bh or "")
    assert out is not None and out.reason == DropReason.CANCELLED and env.receipt(txh(raw)) is None


async def test_bundle_stats_v2(env: Env) -> None:
    n = env.next_block()
    landed = (await env.client.send_bundle([env.sign(SEARCHER)], n))["devnet"].bundle_hash or ""
    later = (await env.client.send_bundle([env.sign(OTHER)], n + 1))["devnet"].bundle_hash or ""
    waiting = await env.client.get_bundle_stats_v2(later, n + 1)
    assert not waiting.is_simulated and waiting.simulated_at is None and waiting.sealed_by_builders_at == ()
    assert waiting.received_at is not None
    await env.builder.build_block()
    st = await env.client.get_bundle_stats_v2(landed, n)
    assert st.is_simulated and st.is_high_priority
    assert set(st.raw) == {
        "isHighPriority",
        "isSimulated",
        "simulatedAt",
        "receivedAt",
        "consideredByBuildersAt",
        "sealedByBuildersAt",
    }

    def ts(s: str | None) -> datetime:
        assert s is not None and s.endswith("Z")
        return datetime.fromisoformat(s)

    [(_, considered)] = st.considered_by_builders_at
    [(_, sealed)] = st.sealed_by_builders_at
    assert ts(st.received_at) <= ts(considered) <= ts(st.simulated_at) <= ts(sealed)
    with pytest.raises(RelayError):  # someone else's bundle, or a wrong block
        await env.client.get_bundle_stats_v2(landed, n + 5)


async def test_malformed_params_get_json_rpc_errors_and_the_relay_keeps_running(env: Env) -> None:
    n = env.next_block()
    good_tx = "0x" + env.sign(SEARCHER).hex()
    cases: list[tuple[str, Any, int]] = [
        ("eth_sendBundle", [], -32602),
        ("eth_sendBundle", [{"txs": [], "blockNumber": hex(n)}], -32602),
        ("eth_sendBundle", [{"txs": ["0xzz"], "blockNumber": hex(n)}], -32602),
        ("eth_sendBundle", [{"txs": [good_tx]}], -32602),
        ("eth_sendBundle", [{"txs": [good_tx], "blockNumber": "latest"}], -32602),
        ("eth_sendBundle", [{"txs": [good_tx], "blockNumber": hex(n), "replacementUuid": "nope"}], -32602),
        ("eth_sendBundle", [{"txs": [good_tx], "blockNumber": hex(n), "bogus": 1}], -32602),
        ("eth_callBundle", [{"txs": [good_tx], "blockNumber": hex(n), "stateBlockNumber": "0x1"}], -32602),
        ("eth_callBundle", [{"txs": ["0x02"], "blockNumber": hex(n)}], -32000),  # not a decodable tx
        ("mev_sendBundle", [{"version": "v0.1", "inclusion": {"block": hex(n)}, "body": []}], -32602),
        (
            "mev_sendBundle",
            [
                {
                    "version": "v0.1",
                    "inclusion": {"block": hex(n)},
                    "body": [{"hash": "0x" + "11" * 32}, {"tx": good_tx, "canRevert": False}],
                }
            ],
            -32000,
        ),
        ("eth_sendPrivateTransaction", [{"tx": "0x01"}], -32602),
        ("eth_cancelBundle", [{"replacementUuid": 5}], -32602),
        ("flashbots_getBundleStatsV2", [{"bundleHash": "0x12", "blockNumber": hex(n)}], -32602),
        ("eth_doesNotExist", [], -32601),
    ]
    for method, params, code in cases:
        with pytest.raises(RelayError) as err:
            await env.client.request(method, params)
        assert err.value.code == code, (method, params, err.value)
    async with aiohttp.ClientSession() as http:
        for body, code in ((b"{not json", -32700), (b'{"jsonrpc":"2.0","id":1,"params":"x"}', -32600)):
            async with http.post(
                env.relay.url, data=body, headers={"X-Flashbots-Signature": AUTH.flashbots_signature(body)}
            ) as r:
                assert (await r.json())["error"]["code"] == code
    assert metric(env, "mevsuite_relay_errors_total", reason="invalid_params") >= 12
    assert env.builder.pending_bundles() == []
    # still serving, and a good bundle still lands
    res = await env.client.send_bundle([good_tx], n)
    await env.builder.build_block()
    assert env.builder.outcome(res["devnet"].bundle_hash or "").status == BundleStatus.INCLUDED  # type: ignore[union-attr]
    assert [r.accepted for r in env.relay.received(method="eth_sendBundle")][-1] is True


async def test_sse_pings_when_idle_and_stops_cleanly(env: Env) -> None:
    async with aiohttp.ClientSession() as http, http.get(env.relay.sse_url) as stream:
        lines = [(await asyncio.wait_for(stream.content.readline(), 10)).decode() for _ in range(4)]
    assert lines.count(":ping\n") >= 2 and all(x in (":ping\n", "\n") for x in lines)
    with contextlib.suppress(Exception):
        await env.relay.stop()
    await env.relay.stop()  # idempotent


async def test_two_relays_share_one_registry(env: Env) -> None:
    second = LocalRelay(env.builder, registry=env.registry)
    await second.start()
    try:
        assert second.url != env.relay.url
        c2 = FlashbotsClient(AUTH, {"second": second.url}, retries=0)
        with pytest.raises(RelayError):
            await c2.request("eth_sendBundle", [])
        await c2.close()
        assert metric(env, "mevsuite_relay_requests_total", method="eth_sendBundle", result="error") == 1
    finally:
        await second.stop()
