"""Shared helpers of the state tests: send txs into the devnet mempool, compare synced state with the chain."""

from __future__ import annotations

from typing import Any

from chains.amm.uniswap_v3.pool import V3PoolState
from chains.devnet.artifacts import load
from chains.node.rpc import RpcClient
from chains.state.chain import ChainState
from chains.state.snapshot import read_v2_pair, read_v3_pool
from tests.fixtures.devnet import Devnet

MAX_UINT = 2**256 - 1
DEADLINE = 2**64
T_INCREASE = "0x3067048beee31b25b2f1681f88dac838c8bba36af25bfb2b7cf7473a5847e35f"  # IncreaseLiquidity


async def send(
    rpc: RpcClient, sender: str, to: str, artifact: str, fn: str, *args: Any, gas: int = 1_500_000
) -> str:
    """eth_sendTransaction into the mempool (automine off: the builder mines it)."""
    data = load(artifact).encode_call(fn, *args)
    return str(
        await rpc.request("eth_sendTransaction", [{"from": sender, "to": to, "data": data, "gas": hex(gas)}])
    )


async def receipt_ok(rpc: RpcClient, tx_hash: str) -> dict[str, Any]:
    rc = await rpc.request("eth_getTransactionReceipt", [tx_hash])
    assert rc is not None and rc["status"] == "0x1", (tx_hash, rc and rc["status"])
    return dict(rc)


def pool_of(dev: Devnet, a: str, b: str, fee: int) -> Any:
    ta, tb = dev.book.token(a).address.lower(), dev.book.token(b).address.lower()
    for p in dev.book.pools:
        if p.kind == "v3" and p.fee == fee and {p.token0.lower(), p.token1.lower()} == {ta, tb}:
            return p
    raise LookupError((a, b, fee))


def v3_tuple(p: V3PoolState) -> tuple[Any, ...]:
    return (
        p.sqrt_price_x96,
        p.tick,
        p.liquidity,
        p.fee,
        p.tick_spacing,
        {t: (i.liquidity_gross, i.liquidity_net) for t, i in p.ticks.items()},
        {w: v for w, v in p.bitmap.items() if v},
    )


def fingerprint(state: ChainState) -> dict[str, Any]:
    """Everything a ChainState holds, as comparable plain data."""
    out: dict[str, Any] = {
        "head": (state.block_number, state.block_hash, state.timestamp),
        "v2": {a: (p.reserve0, p.reserve1) for a, p in state.v2.items()},
        "v3": {a: v3_tuple(p) for a, p in state.v3.items()},
    }
    if state.aave is not None:
        aa = state.aave
        out["aave"] = (
            dict(aa.reserves),
            dict(aa.prices),
            dict(aa.emode_categories),
            {k: v for k, v in aa.a_scaled.items() if v},
            {k: v for k, v in aa.v_scaled.items() if v},
            dict(aa.stable),
            {k: v for k, v in aa.collateral.items() if v},
            {k: v for k, v in aa.borrowing.items() if v},
            {k: v for k, v in aa.user_emode.items() if v},
            dict(aa.stale),
        )
    return out


async def assert_pools_equal_chain(
    rpc: RpcClient, dev: Devnet, state: ChainState, block: int
) -> dict[str, int]:
    """Every V3 pool's slot0/liquidity/ticks/bitmap and every V2 pair's reserves equal the chain at ``block``."""
    lens = dev.book.v3.tick_lens
    n_ticks = 0
    for p in dev.book.pools:
        if p.kind == "v2":
            chain2 = await read_v2_pair(rpc, p.address, block)
            ours2 = state.v2[p.address.lower()]
            assert (ours2.reserve0, ours2.reserve1) == (chain2.reserve0, chain2.reserve1), p
            continue
        chain = await read_v3_pool(rpc, p.address, block)
        ours = state.v3[p.address.lower()]
        assert (ours.sqrt_price_x96, ours.tick, ours.liquidity) == (
            chain.sqrt_price_x96,
            chain.tick,
            chain.liquidity,
        ), p
        assert {w: v for w, v in ours.bitmap.items() if v} == chain.bitmap, p
        assert {t: (i.liquidity_gross, i.liquidity_net) for t, i in ours.ticks.items()} == chain.ticks, p
        # an independent reader: the periphery's TickLens, word by word
        for word in ours.bitmap:
            (populated,) = dev.call(lens, "TickLens", "getPopulatedTicksInWord", p.address, word, block=block)
            lens_ticks = {int(t): (int(g), int(n)) for t, n, g in populated}
            assert lens_ticks == {
                t: (i.liquidity_gross, i.liquidity_net)
                for t, i in ours.ticks.items()
                if (t // ours.tick_spacing) >> 8 == word
            }, (p, word)
            n_ticks += len(lens_ticks)
    return {"ticks": n_ticks}
