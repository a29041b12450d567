"""Whale detection: real ERC-20 transfers and ETH payments on the devnet, and pending swaps, against thresholds."""

from __future__ import annotations

import asyncio

import pytest
from eth_utils.address import to_checksum_address

from chains.abi.blocks import fetch_block
from chains.events import Event, PendingSwap, PendingTransaction, WhaleTransfer
from chains.node.rpc import RpcClient
from chains.watch.whales import WhaleThresholds, mined_whales, pending_whales
from tests.fixtures.devnet import Devnet

HASH = "0x" + "ab" * 32


def test_a_big_transfer_and_a_big_payment_are_whales_a_small_one_is_not(devnet_state: Devnet) -> None:
    dev = devnet_state
    book = dev.book
    usdc = book.token("USDC")
    holder = book.deployer
    whale_to, small_to = (to_checksum_address(a) for a in dev.node.accounts()[5:7])
    dev.node.set_automine(False)
    # one block: a big USDC transfer, a small one, a big ETH payment
    for to, amount in ((whale_to, 2_000_000 * 10**6), (small_to, 5 * 10**6)):
        data = "0xa9059cbb" + to[2:].lower().rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
        dev.node.rpc(
            "eth_sendTransaction", [{"from": holder, "to": usdc.address, "data": data, "gas": hex(100_000)}]
        )
    eth_hash = dev.node.rpc(
        "eth_sendTransaction", [{"from": holder, "to": whale_to, "value": hex(600 * 10**18)}]
    )
    dev.node.mine()
    number = dev.node.block_number()

    async def block():  # type: ignore[no-untyped-def]
        async with RpcClient(dev.node.http_url) as rpc:
            return await fetch_block(rpc, number)

    data = asyncio.run(block())
    thresholds = WhaleThresholds(eth_wei=500 * 10**18, tokens={usdc.address.lower(): 1_000_000 * 10**6})
    whales = mined_whales(data, thresholds)
    assert [(w.whale_kind, w.recipient, w.amount) for w in whales] == [
        ("erc20_transfer", whale_to, 2_000_000 * 10**6),
        ("eth_transfer", whale_to, 600 * 10**18),
    ]
    assert whales[1].tx_hash == eth_hash and all(w.block_number == number for w in whales)
    assert whales[0].token == usdc.address and whales[0].sender == holder and whales[0].log_index is not None
    assert all(Event.from_json(w.to_json()) == w for w in whales)
    assert mined_whales(data, WhaleThresholds()) == []  # no thresholds, no whales


def test_pending_swaps_and_payments() -> None:
    token_in, token_out = "0x" + "11" * 20, "0x" + "22" * 20
    sender = "0x" + "33" * 20
    swap = PendingSwap(
        tx_hash=HASH,
        sender=sender,
        router="0x" + "44" * 20,
        protocol="uniswap_v2",
        path=(token_in, token_out),
        exact_input=True,
        amount_in=10**24,
        amount_out_min=1,
    )
    t = WhaleThresholds(eth_wei=10**20, tokens={token_in: 10**24})
    (w,) = pending_whales(swap, t)
    assert (w.whale_kind, w.status, w.token, w.amount, w.threshold) == (
        "swap",
        "pending",
        swap.token_in,
        10**24,
        10**24,
    )
    assert pending_whales(swap, WhaleThresholds(tokens={token_in: 10**24 + 1})) == []
    tx = PendingTransaction(
        hash=HASH,
        sender=sender,
        to=token_out,
        nonce=0,
        value=10**20,
        gas=21_000,
        max_fee_per_gas=1,
        max_priority_fee_per_gas=1,
        input=b"",
        seen_at=0.0,
    )
    assert [w.whale_kind for w in pending_whales(tx, t)] == ["eth_transfer"]
    with pytest.raises(ValueError, match="positive"):
        WhaleThresholds(eth_wei=0)


def test_whale_events_check_their_fields() -> None:
    base = dict(
        whale_kind="erc20_transfer",
        status="mined",
        tx_hash=HASH,
        sender="0x" + "11" * 20,
        token="0x" + "22" * 20,
        amount=10,
        threshold=5,
        block_number=1,
        block_hash=HASH,
    )
    WhaleTransfer(**base)  # type: ignore[arg-type]
    for bad, match in [
        ({"amount": 4}, "below the threshold"),
        ({"block_hash": None}, "needs block_number"),
        ({"token": None}, "only an ETH transfer"),
        ({"status": "pending"}, "has no block"),
    ]:
        with pytest.raises(ValueError, match=match):
            WhaleTransfer(**{**base, **bad})  # type: ignore[arg-type]
