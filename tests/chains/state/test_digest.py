"""The state digest and the whole-state snapshot: one wei in a named pool changes the digest, an unnamed pool does
not enter it, and a state rebuilt from its snapshot (the devnet's, Aave market included) is equal in every field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chains.amm.uniswap_v2.pool import V2PairState
from chains.amm.uniswap_v2.protocol import T_SYNC
from chains.amm.uniswap_v3.pool import TickInfo, V3PoolState
from chains.kinds import PoolKind
from chains.node.rpc import RpcClient
from chains.state.chain import ChainState, load_initial
from chains.state.digest import (
    StateSnapshotError,
    state_digest,
    state_from_snapshot,
    state_snapshot,
)
from tests.chains.state.helpers import fingerprint
from tests.fixtures.devnet import Devnet

PAIR, OTHER, POOL = "0x" + "11" * 20, "0x" + "33" * 20, "0x" + "22" * 20


def _state() -> ChainState:
    st = ChainState()
    for address, r0 in ((PAIR, 2**100), (OTHER, 5)):
        st.add_pool(PoolKind.V2, address, V2PairState(address, "0x" + "aa" * 20, "0x" + "bb" * 20, r0, 2000))
    st.add_pool(
        PoolKind.V3,
        POOL,
        V3PoolState(
            3000,
            60,
            2**96,
            0,
            10**18,
            {-60: TickInfo(10**18, 10**18), 60: TickInfo(10**18, -(10**18))},
            {-1: 1 << 255, 0: 1 << 1},
        ),
    )
    st.set_head(10, "0x" + "00" * 32, 1000)
    return st


def _sync(address: str, r0: int, r1: int) -> dict[str, Any]:
    return {"address": address, "topics": [T_SYNC], "data": "0x" + f"{r0:064x}{r1:064x}"}


def test_one_wei_in_a_named_pool_changes_the_digest_and_an_unnamed_pool_does_not() -> None:
    st = _state()
    named = [
        PAIR.upper().replace("0X", "0x"),
        POOL,
    ]  # any case, any order: addresses are lower-cased and sorted
    before = state_digest(st, named)
    assert len(before) == 64 and before == state_digest(_state(), [POOL, PAIR])
    st.apply_block(11, "0x" + "01" * 32, [_sync(OTHER, 6, 2000)])  # a pool the digest does not name
    assert st.last_changed == {OTHER} and state_digest(st, named) == before
    st.apply_block(12, "0x" + "02" * 32, [_sync(PAIR, 2**100 + 1, 2000)])  # one wei more, beyond 2**64
    after = state_digest(st, named)
    assert after != before
    st.v3[POOL].liquidity += 1  # one unit of V3 liquidity
    assert state_digest(st, named) != after
    st.v3[POOL].liquidity -= 1
    assert state_digest(st, named) == after
    st.rollback_to(10)
    assert state_digest(st, named) == before
    # a pool that is not followed is named as such, not skipped
    assert state_digest(st, [*named, "0x" + "44" * 20]) != before


def test_a_state_rebuilt_from_its_snapshot_is_equal() -> None:
    st = _state()
    doc = state_snapshot(st)
    text = json.dumps(doc)  # JSON-safe, exact through any JSON reader
    back = state_from_snapshot(json.loads(text))
    assert fingerprint(back) == fingerprint(st)
    assert state_snapshot(back) == doc
    everything = [PAIR, OTHER, POOL]
    assert state_digest(back, everything) == state_digest(st, everything)
    assert back.v2[PAIR].reserve0 == 2**100 and back.v2[PAIR].token0 == "0x" + "aa" * 20
    # the rebuilt state follows the chain with the same code
    for s in (st, back):
        s.apply_block(11, "0x" + "01" * 32, [_sync(PAIR, 7, 8)], timestamp=1012)
    assert state_digest(back, [PAIR]) == state_digest(st, [PAIR])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(version=2),
        lambda d: d.update(format="something-else"),
        lambda d: d["pools"].append({"kind": "no-such-kind", "address": PAIR, "fields": {}}),
        lambda d: d["pools"][0]["fields"].update(reserve0="1.5"),
        lambda d: d["pools"][0]["fields"].update(reserve0=str(2**112)),
        lambda d: d["block"].update(number=12),
        lambda d: d.update(pools={}),
    ],
)
def test_a_malformed_snapshot_is_refused(mutate: object) -> None:
    doc = json.loads(json.dumps(state_snapshot(_state())))
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(StateSnapshotError):
        state_from_snapshot(doc)


async def test_the_devnet_state_with_its_aave_market_survives_a_snapshot(devnet: Devnet) -> None:
    async with RpcClient(devnet.node.http_url) as rpc:
        head = devnet.node.block_number()
        state = await load_initial(rpc, devnet.book, head)
    assert state.aave is not None and state.aave.a_scaled and state.v3 and state.v2
    doc = json.loads(json.dumps(state_snapshot(state)))
    back = state_from_snapshot(doc)
    assert fingerprint(back) == fingerprint(state)
    assert back.aave is not None and back.aave.collateral == state.aave.collateral
    every = [a for pools in state.pools.values() for a in pools]
    assert state_digest(back, every) == state_digest(state, every)
    # the Aave market enters every digest while the state tracks one
    assert state_digest(state, []) != state_digest(state, [], include_aave=False)
    user, asset = next(iter(state.aave.a_scaled))[::-1]
    back.aave.a_scaled[(asset, user)] += 1
    assert state_digest(back, []) != state_digest(state, [])
