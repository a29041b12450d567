"""The fast Swap-log decoder and the block reader, against real swaps on the devnet and against eth_abi."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from chains.abi.blocks import MalformedBlockError, fetch_block, parse_block
from chains.abi.decode import LogDecodeError, decode_swap_log
from chains.node.rpc import RpcClient
from tests.bots.recorder.helpers import DEADLINE, balance_at, receipt, send, v2_pool, v3_pool
from tests.fixtures.devnet import Devnet

# Computed here from the signatures, not imported from the module under test.
V2_TOPIC = "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex()
V3_TOPIC = "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex()


def _q(x: str) -> int:
    return int(x, 16)


async def test_real_v2_and_v3_swaps_decode_to_the_pools_balance_changes(devnet_state: Devnet) -> None:
    dev, book = devnet_state, devnet_state.book
    weth, dai, usdc = book.weth, book.token("DAI").address, book.token("USDC").address
    p2 = v2_pool(dev, "uniswap", "WETH", "DAI")
    p3 = v3_pool(dev, "WETH", "USDC", 500)
    t_v2, t_v3, t_bad = book.traders[0], book.traders[1], book.traders[2]

    dev.node.set_automine(False)  # all three in one block (devnet_state restores automine)
    parent = dev.node.block_number()
    h_v2 = send(
        dev,
        t_v2,
        book.v2["uniswap"].router,
        "UniswapV2Router02",
        "swapExactTokensForTokens",
        7 * 10**18 + 12345,
        1,
        [weth, dai],
        t_v2,
        DEADLINE,
    )
    h_v3 = send(
        dev,
        t_v3,
        book.v3.swap_router,
        "SwapRouter",
        "exactInputSingle",
        (weth, usdc, 500, t_v3, DEADLINE, 300 * 10**18 + 777, 1, 0),
    )
    # An impossible amountOutMin: the router reverts (INSUFFICIENT_OUTPUT_AMOUNT), no Swap is emitted.
    h_bad = send(
        dev,
        t_bad,
        book.v2["sushiswap"].router,
        "UniswapV2Router02",
        "swapExactTokensForTokens",
        10**18,
        2**255,
        [weth, usdc],
        t_bad,
        DEADLINE,
    )
    dev.node.mine(1)
    number = parent + 1
    assert dev.node.block_number() == number

    async with RpcClient(dev.node.http_url) as rpc:
        data = await fetch_block(rpc, number)

    raw_block = dev.node.rpc("eth_getBlockByNumber", [hex(number), False])
    assert data.block.number == number and data.block.hash == raw_block["hash"]
    assert data.block.parent_hash == raw_block["parentHash"]
    assert data.block.gas_used == _q(raw_block["gasUsed"])
    assert [t.hash for t in data.transactions] == raw_block["transactions"]
    assert {t.hash for t in data.transactions} == {h_v2, h_v3, h_bad}

    # MinedTransaction == receipt + transaction, field by field
    for t in data.transactions:
        rc, tx = receipt(dev, t.hash), dev.node.rpc("eth_getTransactionByHash", [t.hash])
        assert t.block_number == number and t.block_hash == raw_block["hash"]
        assert t.tx_index == _q(rc["transactionIndex"])
        assert t.gas_used == _q(rc["gasUsed"]) > 0
        assert t.effective_gas_price == _q(rc["effectiveGasPrice"]) > 0
        assert t.success is (_q(rc["status"]) == 1)
        assert t.sender == to_checksum_address(tx["from"]) and t.to == to_checksum_address(tx["to"])
        assert t.nonce == _q(tx["nonce"]) and t.value == 0
    outcome = {t.hash: t.success for t in data.transactions}
    assert outcome == {h_v2: True, h_v3: True, h_bad: False}
    assert receipt(dev, h_bad)["logs"] == []

    # exactly the two Swap logs; none from the reverted tx
    assert sorted((s.tx_hash, s.protocol) for s in data.swaps) == sorted(
        [(h_v2, "uniswap_v2"), (h_v3, "uniswap_v3")]
    )
    by_tx = {s.tx_hash: s for s in data.swaps}
    for pool, swap in ((p2, by_tx[h_v2]), (p3, by_tx[h_v3])):
        assert swap.pool == pool.address and swap.block_hash == raw_block["hash"]
        # the signed deltas are the pool's actual token balance changes over the block, to the wei
        d0 = balance_at(dev, pool.token0, pool.address, number) - balance_at(
            dev, pool.token0, pool.address, parent
        )
        d1 = balance_at(dev, pool.token1, pool.address, number) - balance_at(
            dev, pool.token1, pool.address, parent
        )
        assert (swap.amount0, swap.amount1) == (d0, d1)
        assert d0 != 0 and d1 != 0 and (d0 > 0) != (d1 > 0)
        # the log's position is the receipt's
        rc_logs = [lg for lg in receipt(dev, swap.tx_hash)["logs"] if lg["topics"][0] in (V2_TOPIC, V3_TOPIC)]
        assert [_q(lg["logIndex"]) for lg in rc_logs] == [swap.log_index]
    s2, s3 = by_tx[h_v2], by_tx[h_v3]
    assert (s2.sender, s2.recipient) == (book.v2["uniswap"].router, t_v2)
    assert (s3.sender, s3.recipient) == (book.v3.swap_router, t_v3)
    weth_in_v2 = 7 * 10**18 + 12345
    assert (s2.amount0_in, s2.amount1_in) == ((weth_in_v2, 0) if p2.token0 == weth else (0, weth_in_v2))
    assert s2.amount0_in is not None and s2.amount0_out is not None
    assert s2.amount0 == s2.amount0_in - s2.amount0_out
    # V3: the post-swap state in the log is the pool's state after the block
    sqrt_p, tick, *_ = dev.call(p3.address, "UniswapV3Pool", "slot0", block=number)
    (liq,) = dev.call(p3.address, "UniswapV3Pool", "liquidity", block=number)
    sqrt_before, *_ = dev.call(p3.address, "UniswapV3Pool", "slot0", block=parent)
    assert (s3.sqrt_price_x96, s3.tick, s3.liquidity) == (sqrt_p, tick, liq)
    assert sqrt_p != sqrt_before

    # the same block with a receipt missing is refused, not silently mis-paired
    receipts = dev.node.rpc("eth_getBlockReceipts", [hex(number)])
    full = dev.node.rpc("eth_getBlockByNumber", [hex(number), True])
    assert parse_block(full, receipts).transactions == data.transactions
    with pytest.raises(MalformedBlockError, match=r"has 3 txs but 2 receipts"):
        parse_block(full, receipts[:-1])
    with pytest.raises(MalformedBlockError, match="does not match tx"):
        parse_block(full, [receipts[1], receipts[0], receipts[2]])


# ------------------------------------------------------------------------------ decoder vs eth_abi

addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
hashes = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
uint112 = st.integers(0, 2**112 - 1)  # a V2 pair's balances are uint112, so are its Swap amounts


def _topic(addr: str) -> str:
    return "0x" + "00" * 12 + addr[2:].lower()


def _log(
    topic0: str, sender: str, recipient: str, data: bytes, pos: tuple[int, str, str, int, int], pool: str
) -> dict[str, Any]:
    number, block_hash, tx_hash, tx_index, log_index = pos
    return {
        "address": pool.lower(),
        "topics": [topic0, _topic(sender), _topic(recipient)],
        "data": "0x" + data.hex(),
        "blockNumber": hex(number),
        "blockHash": block_hash,
        "transactionHash": tx_hash,
        "transactionIndex": hex(tx_index),
        "logIndex": hex(log_index),
        "removed": False,
    }


positions = st.tuples(st.integers(0, 2**40), hashes, hashes, st.integers(0, 5000), st.integers(0, 10**5))


@given(pos=positions, pool=addresses, sender=addresses, to=addresses, amounts=st.tuples(*[uint112] * 4))
def test_v2_decoder_equals_eth_abi(
    pos: Any, pool: str, sender: str, to: str, amounts: tuple[int, ...]
) -> None:
    data = abi_encode(["uint256"] * 4, list(amounts))
    swap = decode_swap_log(_log(V2_TOPIC, sender, to, data, pos, pool))
    ref = tuple(int(v) for v in abi_decode(["uint256"] * 4, data))
    assert swap is not None and swap.protocol == "uniswap_v2"
    assert (swap.amount0_in, swap.amount1_in, swap.amount0_out, swap.amount1_out) == ref
    assert (swap.amount0, swap.amount1) == (ref[0] - ref[2], ref[1] - ref[3])
    assert (swap.pool, swap.sender, swap.recipient) == (pool, sender, to)
    assert (swap.block_number, swap.block_hash, swap.tx_hash, swap.tx_index, swap.log_index) == pos


V3_TYPES = ["int256", "int256", "uint160", "uint128", "int24"]


@given(
    pos=positions,
    pool=addresses,
    sender=addresses,
    to=addresses,
    a0=st.integers(-(2**255), 2**255 - 1),
    a1=st.integers(-(2**255), 2**255 - 1),
    sqrt_p=st.integers(0, 2**160 - 1),
    liq=st.integers(0, 2**128 - 1),
    tick=st.integers(-(2**23), 2**23 - 1),
)
def test_v3_decoder_equals_eth_abi(
    pos: Any, pool: str, sender: str, to: str, a0: int, a1: int, sqrt_p: int, liq: int, tick: int
) -> None:
    data = abi_encode(V3_TYPES, [a0, a1, sqrt_p, liq, tick])
    swap = decode_swap_log(_log(V3_TOPIC, sender, to, data, pos, pool))
    ref = abi_decode(V3_TYPES, data)
    assert swap is not None and swap.protocol == "uniswap_v3"
    assert (
        (swap.amount0, swap.amount1, swap.sqrt_price_x96, swap.liquidity, swap.tick)
        == ref
        == (a0, a1, sqrt_p, liq, tick)
    )
    assert (swap.pool, swap.sender, swap.recipient) == (pool, sender, to)


POS = (5, "0x" + "ab" * 32, "0x" + "cd" * 32, 1, 2)
A, B, P = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20


def test_other_logs_are_not_swaps() -> None:
    transfer = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
    assert decode_swap_log(_log(transfer, A, B, abi_encode(["uint256"], [5]), POS, P)) is None
    assert decode_swap_log({"topics": [], "data": "0x"}) is None


@pytest.mark.parametrize(
    ("log", "message"),
    [
        (_log(V2_TOPIC, A, B, bytes(96), POS, P), "V2 Swap data has 96 bytes, not 128"),
        (_log(V2_TOPIC, A, B, bytes(160), POS, P), "V2 Swap data has 160 bytes, not 128"),
        (_log(V3_TOPIC, A, B, bytes(128), POS, P), "V3 Swap data has 128 bytes, not 160"),
        (_log(V3_TOPIC, A, B, bytes(161), POS, P), "V3 Swap data has 161 bytes, not 160"),
        (
            {**_log(V2_TOPIC, A, B, bytes(128), POS, P), "topics": [V2_TOPIC, _topic(A)]},
            "has 2 topics, not 3",
        ),
        ({**_log(V3_TOPIC, A, B, bytes(160), POS, P), "topics": [V3_TOPIC]}, "has 1 topics, not 3"),
        ({**_log(V2_TOPIC, A, B, bytes(128), POS, P), "data": "0xzz" + "00" * 127}, "log data is not 0x-hex"),
        ({**_log(V2_TOPIC, A, B, bytes(128), POS, P), "data": "00" * 128}, "log data is not 0x-hex"),
        (
            {**_log(V2_TOPIC, A, B, bytes(128), POS, P), "topics": [V2_TOPIC, "0xnothex", _topic(B)]},
            "topic is not 0x-hex",
        ),
        ({**_log(V2_TOPIC, A, B, bytes(128), POS, P), "logIndex": "0xq"}, "malformed Swap log"),
        (
            {k: v for k, v in _log(V2_TOPIC, A, B, bytes(128), POS, P).items() if k != "transactionHash"},
            "without field 'transactionHash'",
        ),
        ({**_log(V2_TOPIC, A, B, bytes(128), POS, P), "blockHash": None}, "without blockHash/logIndex"),
        # V3 tick word that is not a sign-extended int24, and a V2 amount no pair could hold
        (_log(V3_TOPIC, A, B, bytes(128) + (2**23).to_bytes(32, "big"), POS, P), "int24"),
        (_log(V2_TOPIC, A, B, (2**256 - 1).to_bytes(32, "big") + bytes(96), POS, P), "int256"),
    ],
)
def test_malformed_swap_logs_raise_a_clear_error(log: dict[str, Any], message: str) -> None:
    with pytest.raises(LogDecodeError, match=message):
        decode_swap_log(log)
    # in a block, the same log is a MalformedBlockError naming the block
    tx = {"hash": POS[2], "transactionIndex": "0x1", "from": A, "to": B, "nonce": "0x0", "value": "0x0"}
    block = {
        "number": "0x5",
        "hash": POS[1],
        "parentHash": "0x" + "00" * 32,
        "timestamp": "0x1",
        "gasUsed": "0x1",
        "gasLimit": "0x2",
        "transactions": [tx],
    }
    rc = {
        "transactionHash": POS[2],
        "gasUsed": "0x1",
        "effectiveGasPrice": "0x1",
        "status": "0x1",
        "logs": [log],
    }
    with pytest.raises(MalformedBlockError, match="block 5: "):
        parse_block(block, [rc])
