"""A fork of the devnet sees the same state; the same seed on a fresh node gives the same world."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from chains.addressbook import AddressBook
from chains.devnet.deploy import deploy_world
from chains.node.anvil import AnvilNode
from tests.fixtures.devnet import DEVNET_ACCOUNTS, DEVNET_SEED, Devnet

GENESIS_TS = ["--timestamp", "1692000000"]  # same genesis time on both nodes => comparable state roots


def snapshot_state(dn: Devnet, block: str | int, *, timestamps: bool = True) -> dict[str, Any]:
    """Everything a bot reads: V2 reserves, V3 slot0 + liquidity, Aave account data, trader balances.

    ``timestamps=False`` drops the V2 pairs' ``blockTimestampLast``, the only absolute time a bot reads (it
    differs between nodes started at different wall-clock times; all *relative* times are pinned).
    """
    book = dn.book
    out: dict[str, Any] = {}
    for p in book.pools:
        if p.kind == "v2":
            reserves = dn.call(p.address, "UniswapV2Pair", "getReserves", block=block)
            out[p.address] = reserves if timestamps else reserves[:2]
        else:
            out[p.address] = (
                dn.call(p.address, "UniswapV3Pool", "slot0", block=block),
                dn.call(p.address, "UniswapV3Pool", "liquidity", block=block),
            )
    for user in book.aave.borrowers:
        out[user] = dn.call(book.aave.pool, "Pool", "getUserAccountData", user, block=block)
    for t in book.tokens.values():
        for trader in book.traders[:2]:
            out[f"{t.symbol}:{trader}"] = dn.call(
                t.address, "MintableERC20", "balanceOf", trader, block=block
            )
    return out


def test_fork_of_devnet_sees_same_state(devnet_state: Devnet) -> None:
    dn = devnet_state
    head = dn.node.block_number()
    fork = AnvilNode.start(fork_url=dn.node.http_url)
    try:
        forked = Devnet(
            node=fork, book=replace(dn.book, rpc_url=fork.http_url, ws_url=fork.ws_url), deploy_seconds=0.0
        )
        assert fork.block_number() == head
        assert snapshot_state(forked, head) == snapshot_state(dn, head)
        # "latest" as well: the fork's head block is the devnet's head block.
        assert snapshot_state(forked, "latest") == snapshot_state(dn, "latest")
        assert fork.get_balance(dn.book.traders[0]) == dn.node.get_balance(dn.book.traders[0])
    finally:
        fork.stop()


@pytest.fixture(scope="module")
def fresh_pair() -> Iterator[tuple[Devnet, Devnet]]:
    nodes: list[AnvilNode] = []
    try:
        devnets = []
        for automine in (True, False):  # the second as the block builder runs it: --no-mining
            node = AnvilNode.start(accounts=DEVNET_ACCOUNTS, extra_args=GENESIS_TS, automine=automine)
            nodes.append(node)
            devnets.append(Devnet(node=node, book=deploy_world(node, seed=DEVNET_SEED), deploy_seconds=0.0))
        yield devnets[0], devnets[1]
    finally:
        for n in nodes:
            n.stop()


def _without_urls(book: AddressBook) -> dict[str, Any]:
    d = book.to_dict()
    del d["rpc_url"], d["ws_url"]
    return d


def test_same_seed_gives_identical_address_book_and_state(
    devnet: Devnet, fresh_pair: tuple[Devnet, Devnet]
) -> None:
    a, b = fresh_pair
    assert _without_urls(a.book) == _without_urls(b.book) == _without_urls(devnet.book)
    blk = a.book.deployed_at_block
    assert snapshot_state(a, blk) == snapshot_state(b, blk)
    assert snapshot_state(a, blk, timestamps=False) == snapshot_state(devnet, blk, timestamps=False)
    # With the same genesis timestamp, the whole state (every slot of every account) is identical.
    root_a = a.node.rpc("eth_getBlockByNumber", [hex(blk), False])["stateRoot"]
    root_b = b.node.rpc("eth_getBlockByNumber", [hex(blk), False])["stateRoot"]
    assert root_a == root_b
    # deploy_world put back the mode it found: automine on the first node, --no-mining on the second.
    assert a.node.automine() is True and b.node.automine() is False
    assert b.node.block_number() == blk  # and nothing was mined after the deployment


def test_other_seed_gives_other_prices_and_borrowers(devnet: Devnet) -> None:
    node = AnvilNode.start()  # anvil's default 10 accounts: traders are then the upper half
    try:
        other = Devnet(node=node, book=deploy_world(node, seed=DEVNET_SEED + 1), deploy_seconds=0.0)
        assert [t.lower() for t in other.book.traders] == node.accounts()[5:]
        assert other.balance(other.book.token("USDC").address, other.book.traders[-1]) > 0
        # Same deployment sequence => same contract addresses; the seed shapes prices, ranges and positions.
        assert [p.address for p in other.book.pools] == [p.address for p in devnet.book.pools]
        assert other.book.aave.borrowers != devnet.book.aave.borrowers
        blk = devnet.book.deployed_at_block
        mine, theirs = snapshot_state(devnet, blk), snapshot_state(other, blk)
        differing = [p.address for p in devnet.book.pools if mine[p.address] != theirs[p.address]]
        assert len(differing) >= len(devnet.book.pools) - 2
    finally:
        node.stop()
