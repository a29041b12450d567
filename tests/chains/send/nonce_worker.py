"""Subprocess for test_nonces: sends N public txs through a Redis-shared NonceManager, prints the nonces as JSON.

Usage: python -m tests.chains.send.nonce_worker RPC_URL REDIS_URL PREFIX COUNT   (key in MEV_PRIVATE_KEY)
"""

from __future__ import annotations

import asyncio
import json
import sys

from chains.node.rpc import RpcClient
from chains.send.nonces import NonceManager, RedisNonceStore
from chains.send.signer import Signer


async def main(url: str, redis_url: str, prefix: str, count: int) -> list[int]:
    import redis.asyncio as aioredis

    signer = Signer.from_env()
    client = aioredis.Redis.from_url(redis_url)
    used: list[int] = []
    async with RpcClient(url) as rpc:
        chain_id = int(await rpc.request("eth_chainId"), 16)
        mgr = NonceManager(rpc, chain_id, store=RedisNonceStore(client, prefix))
        for _ in range(count):
            async with mgr.committed(signer.address) as nonce:
                tx = signer.sign_eip1559(
                    {
                        "chainId": chain_id,
                        "nonce": nonce,
                        "to": signer.address,
                        "value": 1,
                        "gas": 21_000,
                        "maxFeePerGas": 10**10,
                        "maxPriorityFeePerGas": 10**9,
                    }
                )
                await mgr.send_raw(signer.address, nonce, tx.raw_transaction)
                used.append(nonce)
    await client.aclose()
    return used


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))))
