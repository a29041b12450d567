"""Small helpers shared by the recorder tests (real devnet, real routers)."""

from __future__ import annotations

import time
from typing import Any

from chains.addressbook import PoolInfo
from chains.devnet.artifacts import load
from tests.fixtures.devnet import Devnet

DEADLINE = 2**64
ERC20 = load("MintableERC20")


def v2_pool(dev: Devnet, venue: str, a: str, b: str) -> PoolInfo:
    ta, tb = dev.book.token(a).address, dev.book.token(b).address
    return next(
        p for p in dev.book.pools if p.kind == "v2" and p.venue == venue and {p.token0, p.token1} == {ta, tb}
    )


def v3_pool(dev: Devnet, a: str, b: str, fee: int) -> PoolInfo:
    ta, tb = dev.book.token(a).address, dev.book.token(b).address
    return next(
        p for p in dev.book.pools if p.kind == "v3" and p.fee == fee and {p.token0, p.token1} == {ta, tb}
    )


def send(dev: Devnet, sender: str, to: str, artifact: str, fn: str, *args: Any, gas: int = 400_000) -> str:
    """eth_sendTransaction with an explicit gas limit (no estimate, so a reverting call is still sent)."""
    data = load(artifact).encode_call(fn, *args)
    return str(
        dev.node.rpc("eth_sendTransaction", [{"from": sender, "to": to, "data": data, "gas": hex(gas)}])
    )


def receipt(dev: Devnet, tx_hash: str) -> dict[str, Any]:
    # anvil can answer a send before the receipt is queryable; this is a bound on polling, not an assertion.
    deadline = time.monotonic() + 10
    while True:
        rc: dict[str, Any] | None = dev.node.rpc("eth_getTransactionReceipt", [tx_hash])
        if rc is not None:
            return rc
        if time.monotonic() > deadline:
            raise TimeoutError(f"no receipt for {tx_hash}")
        time.sleep(0.002)


def balance_at(dev: Devnet, token: str, owner: str, block: int) -> int:
    return int(dev.call(token, "MintableERC20", "balanceOf", owner, block=block)[0])


def reserves_at(dev: Devnet, pair: str, block: int | str = "latest") -> tuple[int, int]:
    r0, r1, _ = dev.call(pair, "UniswapV2Pair", "getReserves", block=block)
    return int(r0), int(r1)
