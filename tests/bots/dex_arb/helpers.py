"""Shared by the DEX arbitrage tests: open an arbitrage on the devnet with one large real router swap."""

from __future__ import annotations

import asyncio

from chains.addressbook import PoolInfo
from chains.devnet.traffic import TrafficGenerator
from tests.fixtures.devnet import Devnet


def weth_v2_pool(devnet: Devnet) -> PoolInfo:
    """The first V2 pair of WETH and a plain ERC20 (no fee-on-transfer or reverting token)."""
    book = devnet.book
    return next(
        p
        for p in book.pools
        if p.kind == "v2"
        and book.weth in (p.token0, p.token1)
        and all(book.token_by_address(t).kind in ("standard", "weth") for t in (p.token0, p.token1))
    )


async def skew_async(devnet: Devnet, usd_size: float, pool: PoolInfo | None = None) -> PoolInfo:
    """Sell WETH into ``pool`` (default :func:`weth_v2_pool`) with a mined router swap of ``usd_size`` USD."""
    book = devnet.book
    pool = pool or weth_v2_pool(devnet)
    gen = TrafficGenerator(devnet.node, book)
    try:
        rec = await gen.send_swap(
            pool=pool, zero_for_one=pool.token0 == book.weth, usd_size=usd_size, loose=True, multihop=False
        )
        assert rec is not None
    finally:
        await gen.aclose()
    # Anvil's automine can answer eth_sendTransaction before the block is queryable: wait for the receipt (and
    # mine if automine is off), so whoever reads "latest" next sees the swap.
    for _ in range(2000):
        receipt = devnet.node.rpc("eth_getTransactionReceipt", [rec.tx_hash])
        if receipt is not None:
            assert receipt["status"] == "0x1", receipt
            return pool
        if not devnet.node.automine():
            devnet.node.mine()
        await asyncio.sleep(0.005)
    raise AssertionError(f"the skewing swap {rec.tx_hash} was never mined")


def skew(devnet: Devnet, usd_size: float = 300_000) -> PoolInfo:
    return asyncio.run(skew_async(devnet, usd_size))
