"""The deployed world: real bytecode at mainnet CREATE2 addresses, enough pools, funded traders, fast deploy."""

from __future__ import annotations

import json

from eth_utils.crypto import keccak

from chains.addressbook import AddressBook
from chains.devnet.artifacts import create2_address, load
from chains.devnet.deploy import V2_INIT_CODE_HASH, V3_INIT_CODE_HASH
from tests.fixtures.devnet import Devnet

MAINNET_V2_PAIR_HASH = "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
MAINNET_V3_POOL_HASH = "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"


def test_artifact_init_code_hashes_are_mainnets() -> None:
    assert load("UniswapV2Pair").init_code_hash() == MAINNET_V2_PAIR_HASH == V2_INIT_CODE_HASH
    assert load("UniswapV3Pool").init_code_hash() == MAINNET_V3_POOL_HASH == V3_INIT_CODE_HASH


def test_v2_pairs_sit_at_offchain_create2_addresses(devnet: Devnet) -> None:
    book = devnet.book
    v2 = [p for p in book.pools if p.kind == "v2"]
    assert {p.venue for p in v2} == {"uniswap", "sushiswap"}
    assert book.v2["uniswap"].factory != book.v2["sushiswap"].factory
    for p in v2:
        venue = book.v2[p.venue]
        assert venue.init_code_hash == MAINNET_V2_PAIR_HASH
        assert int(p.token0, 16) < int(p.token1, 16)
        salt = keccak(bytes.fromhex(p.token0[2:] + p.token1[2:]))
        expected = create2_address(venue.factory, salt, MAINNET_V2_PAIR_HASH)
        assert p.address == expected
        (onchain,) = devnet.call(venue.factory, "UniswapV2Factory", "getPair", p.token0, p.token1)
        assert onchain.lower() == expected.lower()
        r0, r1, _ = devnet.call(p.address, "UniswapV2Pair", "getReserves", block=book.deployed_at_block)
        assert r0 > 0 and r1 > 0


def test_v3_pools_sit_at_offchain_create2_addresses(devnet: Devnet) -> None:
    book = devnet.book
    v3 = [p for p in book.pools if p.kind == "v3"]
    assert book.v3.init_code_hash == MAINNET_V3_POOL_HASH
    assert {p.fee for p in v3} == {100, 500, 3000, 10000}
    for p in v3:
        salt = keccak(
            bytes.fromhex(p.token0[2:].rjust(64, "0") + p.token1[2:].rjust(64, "0") + f"{p.fee:064x}")
        )
        expected = create2_address(book.v3.factory, salt, MAINNET_V3_POOL_HASH)
        assert p.address == expected
        (onchain,) = devnet.call(book.v3.factory, "UniswapV3Factory", "getPool", p.token0, p.token1, p.fee)
        assert onchain.lower() == expected.lower()
        (spacing,) = devnet.call(p.address, "UniswapV3Pool", "tickSpacing")
        assert spacing == p.tick_spacing
        (liquidity,) = devnet.call(p.address, "UniswapV3Pool", "liquidity", block=book.deployed_at_block)
        assert liquidity > 0


def test_at_least_30_pools_and_mainnet_like_shape(devnet: Devnet) -> None:
    book = devnet.book
    assert len(book.pools) >= 30
    assert len({p.address for p in book.pools}) == len(book.pools)
    # WETH/USDC is deeper than a long-tail pair on the same venue.
    weth, usdc, link = book.weth, book.token("USDC").address, book.token("LINK").address

    def v2_weth_reserve(a: str, b: str) -> int:
        pool = next(p for p in book.pools if p.venue == "uniswap" and {p.token0, p.token1} == {a, b})
        r0, r1, _ = devnet.call(pool.address, "UniswapV2Pair", "getReserves", block=book.deployed_at_block)
        return int(r0 if pool.token0 == weth else r1)

    assert v2_weth_reserve(weth, usdc) > 10 * v2_weth_reserve(link, weth)


def test_tokens_have_code_and_declared_decimals(devnet: Devnet) -> None:
    book = devnet.book
    kinds = {t.kind for t in book.tokens.values()}
    assert kinds == {"standard", "weth", "fee_on_transfer", "reverting"}
    assert sum(t.kind == "standard" for t in book.tokens.values()) >= 6
    assert book.token("USDC").decimals == 6 and book.token("WBTC").decimals == 8
    for t in book.tokens.values():
        (dec,) = devnet.call(t.address, "MintableERC20", "decimals")
        assert dec == t.decimals, t.symbol
        assert t.usd_price > 0


def test_traders_are_funded_and_have_router_approvals(devnet: Devnet) -> None:
    book = devnet.book
    assert len(book.traders) == 20 and book.deployer not in book.traders
    spenders = [v.router for v in book.v2.values()] + [book.v3.swap_router]
    blk = book.deployed_at_block
    for trader in book.traders[:3]:
        assert devnet.node.get_balance(trader) > 10**18
        for t in book.tokens.values():
            (bal,) = devnet.call(t.address, "MintableERC20", "balanceOf", trader, block=blk)
            assert bal > 0, t.symbol
            for s in spenders:
                (allowance,) = devnet.call(t.address, "MintableERC20", "allowance", trader, s, block=blk)
                assert allowance == 2**256 - 1


def test_deploy_is_fast_and_restores_node_settings(devnet_state: Devnet) -> None:
    devnet = devnet_state
    assert devnet.deploy_seconds < 30
    assert devnet.node.automine() is True
    devnet.node.mine()  # the deploy blocks had a raised gas limit; the next one is back to anvil's default
    block = devnet.node.rpc("eth_getBlockByNumber", ["latest", False])
    assert int(block["gasLimit"], 16) == 30_000_000


def test_address_book_json_round_trip(devnet: Devnet) -> None:
    book = devnet.book
    again = AddressBook.from_dict(json.loads(book.to_json()))
    assert again == book
    assert book.rpc_url == devnet.node.http_url and book.ws_url == devnet.node.ws_url
    assert book.chain_id == 31337 and book.weth == book.token("WETH").address


def test_devnet_state_leaves_a_mess(devnet_state: Devnet) -> None:
    # Switch automine off and leave a transaction pending: the fixture must clean both up (next test).
    dn = devnet_state
    dn.node.set_automine(False)
    dn.node.rpc(
        "eth_sendTransaction", [{"from": dn.book.traders[0], "to": dn.book.traders[1], "value": "0x1"}]
    )
    assert dn.node.rpc("txpool_status")["pending"] != "0x0"


def test_devnet_state_cleaned_up_after_previous_test(devnet_state: Devnet) -> None:
    dn = devnet_state
    assert dn.node.automine() is True
    assert dn.node.rpc("txpool_status")["pending"] == "0x0"
    assert dn.node.block_number() == dn.book.deployed_at_block
