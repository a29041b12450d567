"""A pool kind registered from the tests alone (tests/chains/amm/constant_sum_kind.py) is synced from its events,
quoted, snapshotted and read back, and routed in a cycle with a Uniswap V2 pair — with no other file edited."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from analytics.routing import RouteFinder, pools_from_chain_state
from chains.amm.registry import protocol
from chains.amm.uniswap_v2 import get_amount_out as v2_amount_out
from chains.amm.uniswap_v2.pool import V2PairState
from chains.amm.uniswap_v2.protocol import T_SYNC
from chains.kinds import PoolKind
from chains.send.executor import ArbPlan, Hop, PlanError, encode_plan
from chains.state.chain import ChainState
from chains.state.snapshot import pool_state_document, quote_from_state, read_pool_state
from tests.chains.amm.constant_sum_kind import (
    CONSTANT_SUM,
    T_BALANCES,
    ConstantSumState,
    get_amount_out,
    register,
    unregister,
)

A = "0x" + "0a" * 20  # the base token
B = "0x" + "0b" * 20
SUM_POOL = "0x" + "51" * 20
PAIR = "0x" + "52" * 20
E18 = 10**18


@pytest.fixture
def constant_sum() -> Iterator[None]:
    register()
    try:
        yield
    finally:
        unregister()


def _log(address: str, topic: str, *words: int) -> dict[str, object]:
    return {"address": address, "topics": [topic], "data": "0x" + "".join(f"{w:064x}" for w in words)}


def _state() -> ChainState:
    """A constant-sum pool A/B at one for one and a V2 pair where B is dearer (1 B = 1.1 A): a cycle pays."""
    st = ChainState(journal_depth=4)
    st.add_pool(CONSTANT_SUM, SUM_POOL, ConstantSumState(SUM_POOL, A, B, 1, 1, fee_bps=10))
    st.add_pool(PoolKind.V2, PAIR, V2PairState(PAIR, A, B, 1_000 * E18, 1_000 * E18))
    st.set_head(100, "0x" + "00" * 32, 1_000)
    return st


def test_the_kind_is_synced_from_its_events_and_rolled_back(constant_sum: None) -> None:
    st = _state()
    logs = [_log(SUM_POOL, T_BALANCES, 500 * E18, 500 * E18), _log(PAIR, T_SYNC, 1_100 * E18, 1_000 * E18)]
    preview = st.preview(logs)
    assert (preview[SUM_POOL].balance0, preview[PAIR].reserve0) == (500 * E18, 1_100 * E18)
    assert st.pools[CONSTANT_SUM][SUM_POOL].balance0 == 1  # a preview changes nothing

    assert st.apply_block(101, "0x" + "01" * 32, logs) == {SUM_POOL, PAIR}
    assert st.pools_in(logs) == {SUM_POOL, PAIR}
    assert (st.pools[CONSTANT_SUM][SUM_POOL].balance1, st.v2[PAIR].reserve0) == (500 * E18, 1_100 * E18)
    st.apply_block(102, "0x" + "02" * 32, [_log(SUM_POOL, T_BALANCES, 7, 8)])
    st.rollback_to(101)
    assert (st.pools[CONSTANT_SUM][SUM_POOL].balance0, st.pools[CONSTANT_SUM][SUM_POOL].balance1) == (
        500 * E18,
        500 * E18,
    )


def test_the_kind_is_quoted_snapshotted_and_read_back(constant_sum: None) -> None:
    pool = ConstantSumState(SUM_POOL, A, B, 500 * E18, 400 * E18, fee_bps=10)
    doc = pool_state_document(CONSTANT_SUM, pool, SUM_POOL, A, B, 101, "0x" + "01" * 32)
    text = json.dumps(doc)
    assert json.loads(text)["kind"] == "test_constant_sum" and json.loads(text)["balance1"] == str(400 * E18)

    kind, back = read_pool_state(text)
    assert kind == CONSTANT_SUM and protocol(kind).to_doc(back) == protocol(kind).to_doc(pool)

    q = quote_from_state(text, amount_in=10 * E18, token_in=A)
    assert (q["kind"], q["amount_in"], q["amount_out"]) == (
        "test_constant_sum",
        str(10 * E18),
        str(9_990 * 10**15),
    )
    q = quote_from_state(text, amount_out=9_990 * 10**15, token_in=0)
    assert q["amount_in"] == str(10 * E18)


def test_the_kind_is_routed_in_a_cycle_with_a_v2_pair_but_never_sent(constant_sum: None) -> None:
    st = _state()
    st.apply_block(
        101,
        "0x" + "01" * 32,
        [_log(SUM_POOL, T_BALANCES, 500 * E18, 500 * E18), _log(PAIR, T_SYNC, 1_100 * E18, 1_000 * E18)],
    )
    finder = RouteFinder(pools_from_chain_state(st, {}), base_tokens=[A], gas_price_wei=0)
    assert {p.kind for p in finder.pools} == {CONSTANT_SUM, PoolKind.V2}
    (best,) = finder.best()
    assert [h.kind for h in best.hops] == [CONSTANT_SUM, PoolKind.V2]
    assert best.gas_units == finder.gas.overhead + 50_000 + 60_000
    # the amounts are the two kinds' exact math, hop by hop
    b_out = get_amount_out(best.amount_in, 500 * E18, 10)
    assert best.hops[0].amount_out == b_out
    assert best.amount_out == v2_amount_out(b_out, 1_000 * E18, 1_100 * E18)
    assert best.gross_profit == best.amount_out - best.amount_in > 0

    # a block that closes the gap: the finder follows the state's pools by reference
    st.apply_block(102, "0x" + "02" * 32, [_log(PAIR, T_SYNC, 1_000 * E18, 1_000 * E18)])
    assert finder.update(st.last_changed) == []

    hops = tuple(
        Hop(h.pool, h.kind, h.token_in, h.token_out, h.fee, h.zero_for_one)  # type: ignore[arg-type]
        for h in best.hops
    )
    with pytest.raises(PlanError, match="kind must be one of 'v2', 'v3'") as info:
        encode_plan(ArbPlan(hops, best.amount_in))
    assert info.value.reason == "bad_route"


def test_the_kind_is_gone_after_the_test(constant_sum: None) -> None:
    unregister()
    try:
        assert CONSTANT_SUM not in ChainState().pools
        with pytest.raises(KeyError, match="no pool kind 'test_constant_sum'"):
            protocol(CONSTANT_SUM)
    finally:
        register()  # the fixture unregisters it
