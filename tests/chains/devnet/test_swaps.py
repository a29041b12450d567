"""Swaps through the real routers return exactly what the real quoters predicted, to the wei."""

from __future__ import annotations

import pytest

from chains.addressbook import PoolInfo
from tests.fixtures.devnet import Devnet

DEADLINE = 2**64


def v3_pool(devnet: Devnet, a: str, b: str, fee: int) -> PoolInfo:
    ta, tb = devnet.book.token(a).address, devnet.book.token(b).address
    return next(
        p for p in devnet.book.pools if p.kind == "v3" and p.fee == fee and {p.token0, p.token1} == {ta, tb}
    )


def encode_path(tokens: list[str], fees: list[int]) -> bytes:
    out = bytes.fromhex(tokens[0][2:])
    for fee, tok in zip(fees, tokens[1:], strict=True):
        out += fee.to_bytes(3, "big") + bytes.fromhex(tok[2:])
    return out


@pytest.mark.parametrize("venue", ["uniswap", "sushiswap"])
def test_router02_swap_matches_get_amounts_out(devnet_state: Devnet, venue: str) -> None:
    dn, book = devnet_state, devnet_state.book
    trader = book.traders[0]
    router = book.v2[venue].router
    path = [book.token("WBTC").address, book.weth, book.token("USDC").address]
    amount_in = 3 * 10**8 + 12345  # 3.00012345 WBTC
    (amounts,) = dn.call(router, "UniswapV2Router02", "getAmountsOut", amount_in, path)
    assert len(amounts) == 3 and amounts[-1] > 0
    before = dn.balance(path[-1], trader)
    rcpt = dn.transact(
        trader,
        router,
        "UniswapV2Router02",
        "swapExactTokensForTokens",
        amount_in,
        amounts[-1],
        path,
        trader,
        DEADLINE,
    )
    assert int(rcpt["status"], 16) == 1
    assert dn.balance(path[-1], trader) - before == amounts[-1]


def test_swaprouter_exact_input_single_matches_quoter_and_crosses_ticks(devnet_state: Devnet) -> None:
    dn, book = devnet_state, devnet_state.book
    trader = book.traders[1]
    usdc = book.token("USDC").address
    pool = v3_pool(dn, "WETH", "USDC", 500)
    amount_in = 600 * 10**18
    _, tick_before, *_ = dn.call(pool.address, "UniswapV3Pool", "slot0")
    out, sqrt_after, crossed, _ = dn.call(
        book.v3.quoter_v2, "QuoterV2", "quoteExactInputSingle", (book.weth, usdc, amount_in, 500, 0)
    )
    assert crossed >= 1  # the swap leaves at least one concentrated range
    before = dn.balance(usdc, trader)
    rcpt = dn.transact(
        trader,
        book.v3.swap_router,
        "SwapRouter",
        "exactInputSingle",
        (book.weth, usdc, 500, trader, DEADLINE, amount_in, out, 0),
    )
    assert int(rcpt["status"], 16) == 1
    assert dn.balance(usdc, trader) - before == out
    sqrt_now, tick_after, *_ = dn.call(pool.address, "UniswapV3Pool", "slot0")
    assert sqrt_now == sqrt_after and tick_after != tick_before


def test_swaprouter_multihop_exact_input_matches_quoter(devnet_state: Devnet) -> None:
    dn, book = devnet_state, devnet_state.book
    trader = book.traders[2]
    wbtc, usdc = book.token("WBTC").address, book.token("USDC").address
    path = encode_path([wbtc, book.weth, usdc], [3000, 500])
    amount_in = 40 * 10**8
    out, sqrt_afters, crossed, _ = dn.call(book.v3.quoter_v2, "QuoterV2", "quoteExactInput", path, amount_in)
    assert len(sqrt_afters) == 2 and sum(crossed) >= 1
    before = dn.balance(usdc, trader)
    rcpt = dn.transact(
        trader, book.v3.swap_router, "SwapRouter", "exactInput", (path, trader, DEADLINE, amount_in, out)
    )
    assert int(rcpt["status"], 16) == 1
    assert dn.balance(usdc, trader) - before == out
    (sqrt_now, *_) = dn.call(v3_pool(dn, "WBTC", "WETH", 3000).address, "UniswapV3Pool", "slot0")
    assert sqrt_now == sqrt_afters[0]


def test_state_is_reverted_between_tests(devnet_state: Devnet) -> None:
    # Runs after the swaps above (file order): the WETH/USDC pool is back at its deployed state.
    dn, book = devnet_state, devnet_state.book
    pool = v3_pool(dn, "WETH", "USDC", 500)
    now = dn.call(pool.address, "UniswapV3Pool", "slot0")
    deployed = dn.call(pool.address, "UniswapV3Pool", "slot0", block=book.deployed_at_block)
    assert now == deployed
    assert dn.node.block_number() == book.deployed_at_block
