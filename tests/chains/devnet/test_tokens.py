"""The odd tokens behave as advertised: one takes a fee on transfer, one reverts on transfer."""

from __future__ import annotations

import pytest

from chains.devnet.artifacts import load
from chains.node.anvil import RpcCallError
from tests.fixtures.devnet import Devnet


def test_fee_on_transfer_token_burns_one_percent(devnet_state: Devnet) -> None:
    dn, book = devnet_state, devnet_state.book
    dtt = book.token("DTT")
    assert dtt.kind == "fee_on_transfer"
    a, b = book.traders[0], book.traders[1]
    (supply_before,) = dn.call(dtt.address, "DeflatingERC20", "totalSupply")
    a0, b0 = dn.balance(dtt.address, a), dn.balance(dtt.address, b)
    amount = 1_000 * 10**18 + 7
    rcpt = dn.transact(a, dtt.address, "DeflatingERC20", "transfer", b, amount)
    assert int(rcpt["status"], 16) == 1
    fee = amount // 100
    assert dn.balance(dtt.address, a) == a0 - amount
    assert dn.balance(dtt.address, b) == b0 + amount - fee
    (supply_after,) = dn.call(dtt.address, "DeflatingERC20", "totalSupply")
    assert supply_before - supply_after == fee


def test_fee_on_transfer_pair_needs_the_supporting_router_function(devnet_state: Devnet) -> None:
    dn, book = devnet_state, devnet_state.book
    dtt = book.token("DTT").address
    router = book.v2["uniswap"].router
    trader = book.traders[3]
    amount = 100 * 10**18
    (amounts,) = dn.call(router, "UniswapV2Router02", "getAmountsOut", amount, [dtt, book.weth])
    # The plain swap expects the quoted output and fails (the pair receives 1 % less than it was told) ...
    data = load("UniswapV2Router02").encode_call(
        "swapExactTokensForTokens", amount, amounts[-1], [dtt, book.weth], trader, 2**64
    )
    with pytest.raises(RpcCallError):
        dn.node.rpc("eth_call", [{"from": trader, "to": router, "data": data}])
    # ... the fee-aware variant succeeds with less than the naive quote.
    before = dn.balance(book.weth, trader)
    rcpt = dn.transact(
        trader,
        router,
        "UniswapV2Router02",
        "swapExactTokensForTokensSupportingFeeOnTransferTokens",
        amount,
        0,
        [dtt, book.weth],
        trader,
        2**64,
    )
    assert int(rcpt["status"], 16) == 1
    got = dn.balance(book.weth, trader) - before
    assert 0 < got < amounts[-1]


def test_reverting_token_reverts_on_transfer(devnet_state: Devnet) -> None:
    dn, book = devnet_state, devnet_state.book
    tok = book.token("PAUSE")
    assert tok.kind == "reverting"
    a, b = book.traders[0], book.traders[1]
    assert dn.balance(tok.address, a) > 0
    (paused,) = dn.call(tok.address, "ERC20PresetMinterPauser", "paused")
    assert paused is True
    data = load("ERC20PresetMinterPauser").encode_call("transfer", b, 1)
    with pytest.raises(RpcCallError, match="paused"):
        dn.node.rpc("eth_call", [{"from": a, "to": tok.address, "data": data}])
    rcpt = dn.transact(a, tok.address, "ERC20PresetMinterPauser", "transfer", b, 1, gas=200_000)
    assert int(rcpt["status"], 16) == 0
    # Its (seeded) pair exists, but any swap through it reverts too.
    pair = next(p for p in book.pools if tok.address in (p.token0, p.token1))
    r0, r1, _ = dn.call(pair.address, "UniswapV2Pair", "getReserves")
    assert r0 > 0 and r1 > 0
    swap = load("UniswapV2Router02").encode_call(
        "swapExactTokensForTokens", 10**18, 0, [tok.address, book.weth], a, 2**64
    )
    with pytest.raises(RpcCallError):
        dn.node.rpc("eth_call", [{"from": a, "to": book.v2["uniswap"].router, "data": swap}])
