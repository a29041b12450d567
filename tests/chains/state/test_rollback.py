"""The per-block journal: roll back exactly, refuse deeper than the journal, undo a malformed block."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chains.abi.blocks import BlockData, fetch_block
from chains.amm.uniswap_v2.pool import V2PairState
from chains.amm.uniswap_v2.protocol import T_SYNC
from chains.amm.uniswap_v3.pool import TickInfo, V3PoolState
from chains.amm.uniswap_v3.protocol import T_V3_SWAP
from chains.devnet.actors import TrafficConfig
from chains.devnet.builder import BlockBuilder
from chains.devnet.traffic import TrafficGenerator
from chains.kinds import PoolKind
from chains.node.rpc import RpcClient
from chains.state.chain import (
    BlockOrderError,
    ChainState,
    JournalDepthError,
    StateSyncError,
    load_initial,
)
from tests.chains.state.helpers import (
    DEADLINE,
    MAX_UINT,
    assert_pools_equal_chain,
    fingerprint,
    pool_of,
    send,
)
from tests.fixtures.devnet import Devnet


async def test_rollback_equals_a_fresh_replay_and_the_journal_has_a_depth(devnet_state: Devnet) -> None:
    dev = devnet_state
    dev.node.set_automine(False)
    book = dev.book
    t1 = book.traders[-1]
    async with (
        RpcClient(dev.node.http_url) as rpc,
        BlockBuilder(dev.node, interval_s=0.1, block_time_s=12) as builder,
        TrafficGenerator(
            dev.node, book, TrafficConfig(swaps_per_block=6, oracle_moves_per_block=1), seed=4
        ) as traffic,
    ):
        start = dev.node.block_number()
        state = await load_initial(rpc, book, start, users=[t1], journal_depth=4)
        base = copy.deepcopy(state)
        blocks: list[BlockData] = []
        for i in range(5):
            await traffic.step()
            if i == 0:
                p = pool_of(dev, "WETH", "USDC", 3000)
                ours = state.v3[p.address.lower()]
                lo = (ours.tick // 60 - 2) * 60
                await send(
                    rpc,
                    book.deployer,
                    book.v3.position_manager,
                    "NonfungiblePositionManager",
                    "mint",
                    (
                        p.token0,
                        p.token1,
                        3000,
                        lo,
                        lo + 300,
                        10**18,
                        3_000 * 10**6,
                        0,
                        0,
                        book.deployer,
                        DEADLINE,
                    ),
                )
                await send(
                    rpc, t1, book.token("WETH").address, "MintableERC20", "approve", book.aave.pool, MAX_UINT
                )
            elif i == 1:
                await send(
                    rpc, t1, book.aave.pool, "Pool", "supply", book.token("WETH").address, 10**19, t1, 0
                )
            elif i == 2:
                await traffic.shock("WBTC", 0.05)
            await builder.build_block()
            blocks.append(await fetch_block(rpc, start + i + 1))
            state.apply_block_data(blocks[-1])
        assert sum(len(b.logs) for b in blocks) > 20

        state.rollback_to(start + 2)
        fresh = copy.deepcopy(base)
        for b in blocks[:2]:
            fresh.apply_block_data(b)
        assert fingerprint(state) == fingerprint(fresh)
        # depth 4: the first block has left the journal
        assert state.journal_blocks() == [(b.block.number, b.block.hash) for b in blocks[1:2]]

        for b in blocks[2:]:  # forward again: equal to the chain
            state.apply_block_data(b)
        await assert_pools_equal_chain(rpc, dev, state, start + 5)

        before = fingerprint(state)
        with pytest.raises(JournalDepthError):
            state.rollback_to(start)  # 5 blocks back, the journal holds 4
        assert fingerprint(state) == before  # a refused rollback changes nothing
        state.rollback_to(start + 1)  # exactly the journal's depth
        fresh = copy.deepcopy(base)
        fresh.apply_block_data(blocks[0])
        assert fingerprint(state) == fingerprint(fresh)


def _pair_state() -> ChainState:
    st = ChainState(journal_depth=8)
    pair = V2PairState("0x" + "11" * 20, "0x" + "aa" * 20, "0x" + "bb" * 20, 1000, 2000)
    st.add_pool(PoolKind.V2, pair.address, pair)
    pool = V3PoolState(
        3000,
        60,
        2**96,
        0,
        10**18,
        {-60: TickInfo(10**18, 10**18), 60: TickInfo(10**18, -(10**18))},
        {-1: 1 << 255, 0: 1 << 1},
    )
    st.add_pool(PoolKind.V3, "0x" + "22" * 20, pool)
    st.set_head(10, "0x" + "00" * 32, 1000)
    return st


def _sync(r0: int, r1: int) -> dict[str, Any]:
    return {"address": "0x" + "11" * 20, "topics": [T_SYNC], "data": "0x" + f"{r0:064x}{r1:064x}"}


def test_a_malformed_log_undoes_the_whole_block() -> None:
    st = _pair_state()
    before = fingerprint(st)
    bad_swap = {
        "address": "0x" + "22" * 20,
        "topics": [T_V3_SWAP, "0x" + "00" * 32, "0x" + "00" * 32],
        "data": "0x1234",
        "logIndex": "0x1",
        "transactionHash": "0x" + "ab" * 32,
    }
    with pytest.raises(StateSyncError, match="V3 Swap data"):
        st.apply_block(11, "0x" + "01" * 32, [_sync(5, 6), bad_swap], timestamp=1012)
    assert fingerprint(st) == before
    with pytest.raises(StateSyncError):
        st.apply_block(
            11,
            "0x" + "01" * 32,
            [_sync(5, 6), {"address": "0x" + "11" * 20, "topics": [T_SYNC], "data": "0x" + "zz" * 64}],
            timestamp=1012,
        )
    assert fingerprint(st) == before
    st.apply_block(11, "0x" + "01" * 32, [_sync(5, 6), {**_sync(7, 8), "removed": True}], timestamp=1012)
    assert (st.v2["0x" + "11" * 20].reserve0, st.block_number) == (5, 11)


def test_block_order_and_rollback_bounds() -> None:
    st = _pair_state()
    with pytest.raises(BlockOrderError):
        st.apply_block(12, "0x" + "02" * 32, [])
    for n in range(11, 14):
        st.apply_block(n, f"0x{n:064x}", [_sync(n, n)], timestamp=1000 + n)
    st.rollback_to(13)  # no-op
    with pytest.raises(BlockOrderError):
        st.rollback_to(14)
    st.rollback_to(10)
    assert (st.v2["0x" + "11" * 20].reserve0, st.block_number, st.timestamp) == (1000, 10, 1000)
    with pytest.raises(JournalDepthError):
        st.rollback_to(9)


def _v3_swap(sqrt: int, liquidity: int, tick: int) -> dict[str, Any]:
    words = [0, 0, sqrt, liquidity, tick % 2**256]
    return {
        "address": "0x" + "22" * 20,
        "topics": [T_V3_SWAP, "0x" + "00" * 32, "0x" + "00" * 32],
        "data": "0x" + "".join(f"{w:064x}" for w in words),
    }


def test_apply_block_names_the_pools_it_changed_and_rollback_the_ones_it_undid() -> None:
    st = _pair_state()
    pair, pool = "0x" + "11" * 20, "0x" + "22" * 20
    other = {"address": "0x" + "33" * 20, "topics": [T_SYNC], "data": "0x" + "00" * 64}  # not a tracked pool
    assert st.apply_block(11, "0x" + "01" * 32, [_sync(5, 6), other], timestamp=1011) == {pair}
    assert st.last_changed == {pair}
    assert st.apply_block(12, "0x" + "02" * 32, [_v3_swap(2**96 + 1, 10**18, 0)], timestamp=1012) == {pool}
    assert st.apply_block(13, "0x" + "03" * 32, [], timestamp=1013) == frozenset()
    st.rollback_to(10)
    assert st.last_changed == {pair, pool}  # the undone blocks' pools: re-evaluate them
    assert st.pools_in([_sync(1, 2), _v3_swap(2**96, 1, 0), other]) == {pair, pool}


def test_preview_gives_the_states_after_the_logs_and_changes_nothing() -> None:
    st = _pair_state()
    before = fingerprint(st)
    logs = [
        {**_sync(7, 8), "address": ("0x" + "11" * 20).upper().replace("0X", "0x")},  # any address case
        _v3_swap(2**96 + 12345, 10**18, 0),
    ]
    seen = st.preview(logs)
    assert fingerprint(st) == before  # nothing applied, nothing journaled
    assert (seen["0x" + "11" * 20].reserve0, seen["0x" + "11" * 20].reserve1) == (7, 8)
    assert seen["0x" + "22" * 20].sqrt_price_x96 == 2**96 + 12345
    assert seen["0x" + "22" * 20] is not st.v3["0x" + "22" * 20]  # copies
    # the same answer as applying the logs to a copy of the state
    twin = copy.deepcopy(st)
    twin.apply_block(11, "0x" + "01" * 32, [*logs[1:], _sync(7, 8)], timestamp=1011)
    assert seen["0x" + "22" * 20].sqrt_price_x96 == twin.v3["0x" + "22" * 20].sqrt_price_x96
    with pytest.raises(StateSyncError):
        st.preview([{**_sync(1, 2), "data": "0x12"}])
    assert fingerprint(st) == before
