"""chains.send.nonces on a real anvil: committed nonces across tasks and processes, gap filling, tentative nonces."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from chains.node.anvil import AnvilNode
from chains.node.rpc import RpcClient, RpcError
from chains.send.nonces import MemoryNonceStore, NonceManager, RedisNonceStore
from chains.send.signer import Signer

# anvil dev key #0 of the well-known "test test ... junk" mnemonic (test-only)
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).parents[3]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    client = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"test:nonces:{uuid.uuid4().hex}"
    try:
        yield client, prefix
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def _tx(signer: Signer, chain_id: int, nonce: int, tip: int = 10**9) -> bytes:
    return signer.sign_eip1559(
        {
            "chainId": chain_id,
            "nonce": nonce,
            "to": signer.address,
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": tip,
        }
    ).raw_transaction


async def _wait_nonce(mgr: NonceManager, address: str, want: int) -> int:
    """The chain nonce once the node has mined every ready transaction of ``address``.

    Automine mines right after a send, but the mined nonce shows up a moment later, and under load anvil's auto
    miner can leave transactions that a gap-filling send made ready in its pool (foundry-rs/foundry#10122) until
    the next block.  After a short wait, one ``evm_mine`` flushes them: a transaction that sits behind a real nonce
    gap stays queued whatever is mined, so the caller's assertion still catches every skipped nonce.
    """
    for _ in range(200):
        n = await mgr.chain_nonce(address)
        if n >= want:
            return n
        await asyncio.sleep(0.02)
    await mgr.rpc.request("evm_mine", [], idempotent=False)
    return await mgr.chain_nonce(address)


async def _send(mgr: NonceManager, signer: Signer, used: list[int], fail_every: int = 0) -> None:
    async with mgr.committed(signer.address) as nonce:
        if fail_every and nonce % fail_every == 0 and nonce not in used and len(used) % 7 == 3:
            raise ConnectionError("simulated send failure")  # released and reused by a later reservation
        await mgr.send_raw(signer.address, nonce, _tx(signer, mgr.chain_id, nonce))
        used.append(nonce)


async def test_200_sends_four_tasks_two_processes(
    anvil: AnvilNode, redis_prefix: tuple[aioredis.Redis, str]
) -> None:
    client, prefix = redis_prefix
    signer = Signer(DEV_KEY)
    env = dict(os.environ, MEV_PRIVATE_KEY=DEV_KEY, PYTHONPATH=str(ROOT))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.chains.send.nonce_worker",
            anvil.http_url,
            REDIS_URL,
            prefix,
            "50",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
            env=env,
        )
        for _ in range(2)
    ]
    async with RpcClient(anvil.http_url) as rpc:
        mgr = NonceManager(rpc, anvil.chain_id(), store=RedisNonceStore(client, prefix))
        used: list[int] = []
        failures = 0

        async def task() -> None:
            nonlocal failures
            for _ in range(25):
                while True:
                    try:
                        await _send(mgr, signer, used, fail_every=5)
                        break
                    except ConnectionError:
                        failures += 1

        await asyncio.gather(*(task() for _ in range(4)))
        outs = [await p.communicate() for p in procs]
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err.decode()[-2000:]
            used += json.loads(out)
        assert failures > 0
        assert sorted(used) == list(range(200))  # every nonce exactly once, none skipped
        assert await _wait_nonce(mgr, signer.address, 200) == 200  # all mined
        assert (await mgr.fill_gaps(signer)).highest is None


async def test_fill_gaps_after_drop(
    anvil_nomine: AnvilNode, redis_prefix: tuple[aioredis.Redis, str]
) -> None:
    client, prefix = redis_prefix
    node = anvil_nomine
    signer = Signer(DEV_KEY)
    async with RpcClient(node.http_url) as rpc:
        mgr = NonceManager(rpc, node.chain_id(), store=RedisNonceStore(client, prefix))
        hashes: dict[int, str] = {}
        for _ in range(10):
            async with mgr.committed(signer.address) as nonce:
                hashes[nonce] = await mgr.send_raw(signer.address, nonce, _tx(signer, mgr.chain_id, nonce))
        # nonce 10 is reserved, the send "fails", and nobody reuses it before nonce 11.. would need it
        with pytest.raises(ConnectionError):
            async with mgr.committed(signer.address) as nonce:
                assert nonce == 10
                raise ConnectionError
        node.drop_transaction(hashes[4])
        node.mine()
        assert await mgr.chain_nonce(signer.address) == 4  # 5..9 are stuck behind the dropped 4
        # a later public tx takes the released nonce 10; 11 goes after it
        for want in (10, 11):
            async with mgr.committed(signer.address) as nonce:
                assert nonce == want
                await mgr.send_raw(signer.address, nonce, _tx(signer, mgr.chain_id, nonce))
        report = await mgr.fill_gaps(signer)
        assert report.chain_nonce == 4 and report.highest == 11
        # anvil drops 4's dependants (5..9) from its pool along with it: all of them are resent
        assert report.resent[0] == 4 and set(report.resent) <= set(range(4, 10))
        assert report.cancelled == [] and report.unknown == []
        node.mine()
        assert await mgr.chain_nonce(signer.address) == 12  # the gap is filled and every later tx mined


async def test_fill_gaps_cancels_released_nonce(anvil_nomine: AnvilNode) -> None:
    node = anvil_nomine
    signer = Signer(DEV_KEY)
    async with RpcClient(node.http_url) as rpc:
        mgr = NonceManager(rpc, node.chain_id(), store=MemoryNonceStore())  # in-process fallback
        for _ in range(2):
            async with mgr.committed(signer.address) as nonce:
                await mgr.send_raw(signer.address, nonce, _tx(signer, mgr.chain_id, nonce))
        # task A reserves 2, task B reserves 3 and sends it, then A's send fails: 2 is released, nobody reuses it
        with pytest.raises(RpcError):
            async with mgr.committed(signer.address) as nonce_a:
                assert nonce_a == 2
                async with mgr.committed(signer.address) as nonce_b:
                    await mgr.send_raw(signer.address, nonce_b, _tx(signer, mgr.chain_id, nonce_b))
                bad = signer.sign_eip1559(
                    {
                        "chainId": mgr.chain_id,
                        "nonce": nonce_a,
                        "to": signer.address,
                        "gas": 1000,
                        "maxFeePerGas": 10**10,
                        "maxPriorityFeePerGas": 10**9,
                    }
                )
                await mgr.send_raw(signer.address, nonce_a, bad.raw_transaction)  # rejected: intrinsic gas
        node.mine()
        assert await mgr.chain_nonce(signer.address) == 2
        report = await mgr.fill_gaps(signer)
        assert report.cancelled == [2] and report.resent == []
        node.mine()
        assert await mgr.chain_nonce(signer.address) == 4
        async with mgr.committed(signer.address) as nonce:
            assert nonce == 4


async def test_tentative_reuses_nonce_until_landed(
    anvil: AnvilNode, redis_prefix: tuple[aioredis.Redis, str]
) -> None:
    client, prefix = redis_prefix
    signer = Signer(DEV_KEY)
    async with RpcClient(anvil.http_url) as rpc:
        mgr = NonceManager(rpc, anvil.chain_id(), store=RedisNonceStore(client, prefix))
        for _ in range(3):  # some public history first
            async with mgr.committed(signer.address) as nonce:
                await mgr.send_raw(signer.address, nonce, _tx(signer, mgr.chain_id, nonce))
        chain = await _wait_nonce(mgr, signer.address, 3)
        for _ in range(5):  # five bundles, re-targeted block after block, none lands (never sent)
            n = await mgr.tentative(signer.address)
            assert n == chain
            assert await mgr.tentative(signer.address) == n  # same nonce across target blocks
            await mgr.bundle_expired(signer.address, n)
            assert await mgr.inflight(signer.address) is None
        assert await mgr.tentative(signer.address) == await mgr.chain_nonce(signer.address) == 3
        # a bundle lands: until the node shows it, the floor keeps us from reusing the nonce
        await mgr.bundle_landed(signer.address, 3)
        assert await mgr.tentative(signer.address) == 4
        await rpc.request("eth_sendRawTransaction", ["0x" + _tx(signer, mgr.chain_id, 3).hex()])
        await _wait_nonce(mgr, signer.address, 4)
        assert await mgr.tentative(signer.address) == 4


async def test_tentative_counts_pending_public_txs(anvil_nomine: AnvilNode) -> None:
    signer = Signer(DEV_KEY)
    async with RpcClient(anvil_nomine.http_url) as rpc:
        mgr = NonceManager(rpc, anvil_nomine.chain_id())
        for _ in range(2):
            async with mgr.committed(signer.address) as nonce:
                await mgr.send_raw(signer.address, nonce, _tx(signer, mgr.chain_id, nonce))
        assert await mgr.chain_nonce(signer.address) == 0
        assert await mgr.tentative(signer.address) == 2
