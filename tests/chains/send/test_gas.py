"""chains.send.gas: EIP-1559 base fee vectors and properties, eth_feeHistory parsing against a real anvil,
recommendation monotonicity, bundle tip sizing, and the estimator's publishing."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chains.events import Event
from chains.node.anvil import AnvilNode
from chains.node.rpc import RpcClient
from chains.send.gas import (
    TOPIC_GAS,
    FeeHistory,
    GasEstimator,
    GasRecommendation,
    bundle_tip,
    max_base_fee_after,
    next_base_fee,
    next_base_fee_from_block,
    parse_fee_history,
    recommend,
    reward_percentiles,
)

VECTORS = json.loads((Path(__file__).parents[2] / "data" / "eip1559_basefee_vectors.json").read_text())
GWEI = 10**9


# ------------------------------------------------------------------------------------------------ base fee


@pytest.mark.parametrize("case", VECTORS["ethereum_mainnet"], ids=lambda c: f"used{c['parentGasUsed']}")
def test_base_fee_mainnet_vectors(case: dict[str, int]) -> None:
    assert (
        next_base_fee(case["parentBaseFee"], case["parentGasUsed"], case["parentGasLimit"])
        == case["expectedBaseFee"]
    )


@pytest.mark.parametrize(
    "case", VECTORS["polygon_delhi_denominator16"], ids=lambda c: f"used{c['parentGasUsed']}"
)
def test_base_fee_denominator16_vectors(case: dict[str, int]) -> None:
    assert (
        next_base_fee(case["parentBaseFee"], case["parentGasUsed"], case["parentGasLimit"], denominator=16)
        == case["expectedBaseFee"]
    )


def test_base_fee_minimum_increase_and_floor() -> None:
    # 7 * 1 // 1 // 8 == 0, but an over-target block raises the base fee by at least 1
    assert next_base_fee(7, 20_000_000, 20_000_000) == 8
    assert next_base_fee(7, 10_000_001, 20_000_000) == 8
    assert next_base_fee(0, 20_000_000, 20_000_000) == 1
    assert next_base_fee(7, 0, 20_000_000) == 7  # 7 // 8 == 0: no decrease
    assert next_base_fee(8, 0, 20_000_000) == 7
    assert (
        next_base_fee_from_block({"baseFeePerGas": hex(GWEI), "gasUsed": "0x0", "gasLimit": hex(20_000_000)})
        == 875_000_000
    )
    with pytest.raises(ValueError):
        next_base_fee(GWEI, 3, 2)
    with pytest.raises(TypeError):
        next_base_fee(float(GWEI), 0, 2)  # type: ignore[arg-type]
    assert max_base_fee_after(GWEI, 0) == GWEI
    assert max_base_fee_after(GWEI, 2) == 1_265_625_000
    assert max_base_fee_after(1, 3) == 4


@given(base=st.integers(0, 10**15), target=st.integers(1, 30_000_000), data=st.data())
def test_base_fee_changes_at_most_one_eighth(base: int, target: int, data: st.DataObject) -> None:
    used = data.draw(st.integers(0, 2 * target))
    nxt = next_base_fee(base, used, 2 * target)
    assert abs(nxt - base) <= max(base // 8, 1)
    assert nxt <= max_base_fee_after(base, 1)
    if used > target:
        assert nxt > base
    elif used < target:
        assert nxt <= base
    else:
        assert nxt == base


@given(base=st.integers(0, 10**15), limit=st.integers(2, 60_000_000), data=st.data())
def test_base_fee_monotone_in_gas_used(base: int, limit: int, data: st.DataObject) -> None:
    a = data.draw(st.integers(0, limit))
    b = data.draw(st.integers(a, limit))
    assert next_base_fee(base, a, limit) <= next_base_fee(base, b, limit)


# ------------------------------------------------------------------------------------------- fee history


def test_reward_percentiles_by_hand() -> None:
    # tips 1, 2, 3 with gas 10, 30, 60 (given unsorted); thresholds 0, 10, 39, 40, 100
    txs = [(60, 3), (10, 1), (30, 2)]
    assert reward_percentiles(txs, 100, [0, 10, 39, 40, 41, 100]) == (1, 1, 2, 2, 3, 3)
    assert reward_percentiles([], 0, [50, 90]) == (0, 0)


def test_parse_fee_history_missing_rewards_and_empty_blocks() -> None:
    raw = {
        "oldestBlock": "0x10",
        "baseFeePerGas": ["0x3b9aca00", "0x34a4b4d0", "0x342770c0"],
        "gasUsedRatio": [0.0, 0.5],
    }
    h = parse_fee_history(raw)
    assert h.oldest_block == 16 and h.newest_block == 17 and h.next_base_fee == 0x342770C0
    assert h.rewards == (None, None) and h.usable_rewards == ()
    r = recommend(h, blocks=1, confidence=0.9, fallback_tip=7)
    assert r.max_priority_fee_per_gas == 7 and r.max_fee_per_gas == 0x342770C0 + 7

    raw2 = {**raw, "reward": [["0x0", "0x0"], ["0x5", "0xa"]], "baseFeePerBlobGas": ["0x1"] * 3}
    h2 = parse_fee_history(raw2, [25, 75])
    assert h2.rewards == ((0, 0), (5, 10)) and h2.usable_rewards == ((5, 10),)  # the empty block is ignored
    h3 = parse_fee_history({**raw, "reward": [[], ["0x5", "0xa"]]}, [25, 75])
    assert h3.rewards == (None, (5, 10))
    with pytest.raises(ValueError):
        parse_fee_history({**raw, "baseFeePerGas": ["0x1"]})
    with pytest.raises(ValueError):
        parse_fee_history({**raw, "reward": [["0x1"]]}, [50])


SINK = "0x000000000000000000000000000000000000dEaD"
PERCENTILES = [5.0, 30.0, 55.0, 80.0, 99.0]


def _send_blocks(node: AnvilNode, plan: Sequence[Sequence[tuple[int, int]]]) -> None:
    """Mine one block per entry of ``plan``: (tip in gwei, calldata bytes) per transaction."""
    accounts = node.accounts()
    for block in plan:
        for i, (tip, data_len) in enumerate(block):
            node.rpc(
                "eth_sendTransaction",
                [
                    {
                        "from": accounts[i % len(accounts)],
                        "to": SINK,
                        "value": "0x1",
                        "gas": hex(100_000),
                        "data": "0x" + "ab" * data_len,
                        "maxFeePerGas": hex(100 * GWEI),
                        "maxPriorityFeePerGas": hex(tip * GWEI),
                    }
                ],
            )
        node.mine()


async def _direct_rewards(rpc: RpcClient, number: int) -> tuple[int, ...]:
    block = await rpc.request("eth_getBlockByNumber", [hex(number), False])
    base = int(block["baseFeePerGas"], 16)
    receipts = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in block["transactions"]])
    txs = [(int(r["gasUsed"], 16), int(r["effectiveGasPrice"], 16) - base) for r in receipts]
    return reward_percentiles(txs, int(block["gasUsed"], 16), PERCENTILES)


async def test_fee_history_percentiles_match_receipts_on_anvil(anvil_nomine: AnvilNode) -> None:
    node = anvil_nomine
    plan = [
        [(1, 0), (3, 40), (2, 200), (7, 10)],
        [(5, 300), (1, 0)],
        [],  # an empty block
        [(2, 0), (9, 500), (4, 50), (6, 0), (3, 120)],
    ]
    _send_blocks(node, plan)
    newest = node.block_number()
    async with RpcClient(node.http_url, timeout=5) as rpc:
        raw: Any = None
        expected: list[tuple[int, ...]] = []
        for _ in range(40):  # anvil fills its fee-history cache from a new-block task: allow it a moment
            raw = await rpc.request("eth_feeHistory", [hex(len(plan)), hex(newest), PERCENTILES])
            h = parse_fee_history(raw, PERCENTILES)
            expected = [await _direct_rewards(rpc, n) for n in range(h.oldest_block, newest + 1)]
            if list(h.rewards) == expected:
                break
            await asyncio.sleep(0.05)
        h = parse_fee_history(raw, PERCENTILES)
        assert h.oldest_block == newest - len(plan) + 1 and h.newest_block == newest
        assert list(h.rewards) == expected
        assert expected[2] == (0,) * len(PERCENTILES) and h.gas_used_ratio[2] == 0
        assert len(h.usable_rewards) == 3
        assert expected[0][0] == 1 * GWEI and expected[0][-1] == 7 * GWEI and len(set(expected[3])) >= 3
        # the base fees are the EIP-1559 formula applied block by block
        for i, n in enumerate(range(h.oldest_block, newest + 1)):
            block = await rpc.request("eth_getBlockByNumber", [hex(n), False])
            assert int(block["baseFeePerGas"], 16) == h.base_fee_per_gas[i]
            assert next_base_fee_from_block(block) == h.base_fee_per_gas[i + 1]


# ------------------------------------------------------------------------------------------ recommendation


def _history(rows: list[tuple[int, ...] | None], base: int = 30 * GWEI) -> FeeHistory:
    return FeeHistory(
        oldest_block=100,
        base_fee_per_gas=(base,) * (len(rows) + 1),
        gas_used_ratio=tuple(0.5 if r else 0.0 for r in rows),
        rewards=tuple(rows),
        percentiles=(10.0, 50.0, 90.0),
    )


rows_st = st.lists(
    st.tuples(*[st.integers(0, 500 * GWEI)] * 3).map(lambda t: tuple(sorted(t))), min_size=1, max_size=20
)
conf_st = st.floats(0, 0.999, allow_nan=False)


@given(rows=rows_st, c1=conf_st, c2=conf_st, n=st.integers(1, 30))
def test_recommendation_monotone_in_confidence(
    rows: list[tuple[int, ...]], c1: float, c2: float, n: int
) -> None:
    lo, hi = sorted((c1, c2))
    h = _history(list(rows))
    a, b = recommend(h, blocks=n, confidence=lo), recommend(h, blocks=n, confidence=hi)
    assert a.max_priority_fee_per_gas <= b.max_priority_fee_per_gas
    assert a.max_fee_per_gas <= b.max_fee_per_gas


@given(rows=rows_st, c=conf_st, n1=st.integers(1, 30), n2=st.integers(1, 30))
def test_recommendation_monotone_in_urgency(rows: list[tuple[int, ...]], c: float, n1: int, n2: int) -> None:
    fast, slow = sorted((n1, n2))
    h = _history(list(rows))
    urgent, relaxed = recommend(h, blocks=fast, confidence=c), recommend(h, blocks=slow, confidence=c)
    assert urgent.max_priority_fee_per_gas >= relaxed.max_priority_fee_per_gas  # more urgent -> higher tip
    for r, n in ((urgent, fast), (relaxed, slow)):  # the max fee covers the worst base fee over the horizon
        assert r.max_fee_per_gas == max_base_fee_after(h.next_base_fee, n - 1) + r.max_priority_fee_per_gas
    samples = sorted(v for row in rows for v in row)
    assert samples[0] <= urgent.max_priority_fee_per_gas <= samples[-1]


def test_recommendation_model_by_hand() -> None:
    h = _history([(1, 2, 3), None, (4, 5, 6), (7, 8, 9), (10, 11, 12)])  # 12 samples, one empty block
    # one block at p=0.5: q >= 1/2 -> 6th sample; p=0.9 -> q >= 0.9 -> 11th
    assert recommend(h, blocks=1, confidence=0.5).max_priority_fee_per_gas == 6
    assert recommend(h, blocks=1, confidence=0.9).max_priority_fee_per_gas == 11
    # two blocks at p=0.75: (1 - q)**2 <= 1/4 -> q >= 1/2 -> 6th sample
    assert recommend(h, blocks=2, confidence=0.75).max_priority_fee_per_gas == 6
    r = recommend(h, blocks=3, confidence=0)
    assert r.max_priority_fee_per_gas == 1
    assert r.max_fee_per_gas == max_base_fee_after(30 * GWEI, 2) + 1
    with pytest.raises(ValueError):
        recommend(h, blocks=0, confidence=0.5)
    with pytest.raises(ValueError):
        recommend(h, blocks=1, confidence=1.0)


# ---------------------------------------------------------------------------------------------- bundle tip


@given(
    profit=st.integers(-(10**20), 10**22),
    gas=st.integers(1, 5_000_000),
    base=st.integers(0, 500 * GWEI),
    share=st.sampled_from([0, 0.1, 0.5, 0.9, 0.99, 1]),
    margin=st.integers(0, 10**18),
)
def test_bundle_tip_never_exceeds_profit(profit: int, gas: int, base: int, share: float, margin: int) -> None:
    tip = bundle_tip(profit, gas, base, share=share, min_margin_wei=margin)
    assert isinstance(tip, int) and tip >= 0
    budget = profit - base * gas
    if budget <= 0:
        assert tip == 0
        return
    assert tip * gas + base * gas <= profit  # the whole gas bill fits in the profit
    assert tip * gas <= profit
    floor_share = math.floor(Fraction(repr(float(share))) * budget / gas)
    assert tip <= floor_share
    if budget - floor_share * gas >= margin:  # the margin does not bind: exactly the share
        assert tip == floor_share
    else:
        assert budget - tip * gas >= margin or tip == 0


def test_bundle_tip_by_hand() -> None:
    # 1 ETH profit, 200k gas, 20 gwei base: budget = 1e18 - 4e15 = 996e15; 90% / 200k gas
    assert bundle_tip(10**18, 200_000, 20 * GWEI) == 9 * 996 * 10**15 // 10 // 200_000
    assert bundle_tip(10**18, 200_000, 20 * GWEI, share=0.5) == 996 * 10**15 // 2 // 200_000
    # a margin of 0.5 ETH caps the tip at (budget - margin) / gas
    assert (
        bundle_tip(10**18, 200_000, 20 * GWEI, min_margin_wei=5 * 10**17)
        == (996 * 10**15 - 5 * 10**17) // 200_000
    )
    assert bundle_tip(10**15, 200_000, 20 * GWEI) == 0  # base fee alone eats the profit
    assert bundle_tip(999, 1000, 0, share=1) == 0
    with pytest.raises(ValueError):
        bundle_tip(10**18, 0, 1)
    with pytest.raises(ValueError):
        bundle_tip(10**18, 1, 1, share=1.5)


# ----------------------------------------------------------------------------------------------- estimator


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []

    async def publish(self, topic: str, event: Event) -> None:
        self.events.append((topic, event))


class CountingRpc:
    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc
        self.calls: list[str] = []

    async def batch(self, calls: Sequence[tuple[str, Any]]) -> list[Any]:
        self.calls += [m for m, _ in calls]
        return await self.rpc.batch(calls)

    async def request(self, method: str, params: Any = None) -> Any:
        self.calls.append(method)
        return await self.rpc.request(method, params)


async def _settle(rpc: RpcClient, node: AnvilNode) -> None:
    """Wait until anvil's fee-history cache (filled by a background task) has caught up with the head."""
    head = node.block_number()
    for _ in range(100):
        raw = await rpc.request("eth_feeHistory", ["0x1", "latest", []])
        if int(raw["oldestBlock"], 16) == head:
            return
        await asyncio.sleep(0.02)


async def test_estimator_publishes_per_block(anvil_nomine: AnvilNode) -> None:
    node = anvil_nomine
    _send_blocks(node, [[(2, 0), (4, 100), (8, 0)], [(3, 0)]])
    rec = Recorder()
    async with RpcClient(node.http_url, timeout=5) as client:
        await _settle(client, node)
        rpc = CountingRpc(client)
        est = GasEstimator(rpc, rec, history_blocks=5, blocks=2, confidence=0.8)
        r1 = await est.update()
        assert rpc.calls == ["eth_feeHistory", "eth_getBlockByNumber"]
        head = node.block_number()
        assert len(rec.events) == 1
        topic, ev = rec.events[0]
        assert topic == TOPIC_GAS and isinstance(ev, GasRecommendation)
        assert ev.block_number == head and ev.max_fee_per_gas == r1.max_fee_per_gas
        assert ev.max_priority_fee_per_gas == r1.max_priority_fee_per_gas
        assert GasRecommendation.from_json(ev.to_json()) == ev
        assert est.history is not None and est.next_base_fee == est.history.next_base_fee
        assert r1.max_priority_fee_per_gas in {v for row in est.history.usable_rewards for v in row}
        assert est.recommend(1, 0.99).max_priority_fee_per_gas >= r1.max_priority_fee_per_gas

        await est.update()  # same head: no second recommendation
        assert len(rec.events) == 1

        node.mine()
        nxt = await client.request("eth_getBlockByNumber", ["latest", False])
        assert int(nxt["baseFeePerGas"], 16) == ev.next_base_fee  # the exact base fee the chain then charged
        await _settle(client, node)
        await est.update()
        assert len(rec.events) == 2 and rec.events[1][1].block_number == head + 1  # type: ignore[attr-defined]


async def test_estimator_without_publisher(anvil: AnvilNode) -> None:
    async with RpcClient(anvil.http_url, timeout=5) as client:
        est = GasEstimator(client, history_blocks=3)
        with pytest.raises(RuntimeError):
            est.recommend(1, 0.5)
        r = await est.update()  # genesis only: no usable samples -> fallback tip
        assert r.max_priority_fee_per_gas == est.fallback_tip
        assert est.next_base_fee is not None
        assert r.max_fee_per_gas == max_base_fee_after(est.next_base_fee, est.blocks - 1) + est.fallback_tip


class StaleHistoryRpc:
    """The batch's eth_feeHistory lags one block behind its latest block (a block landed in between)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @staticmethod
    def _history(newest: int) -> dict[str, Any]:
        return {
            "oldestBlock": hex(newest - 1),
            "baseFeePerGas": [hex(GWEI), hex(GWEI), hex(GWEI)],
            "gasUsedRatio": [0.5, 0.5],
            "reward": [[hex(newest)], [hex(newest)]],
        }

    async def batch(self, calls: Sequence[tuple[str, Any]]) -> list[Any]:
        self.calls += list(calls)
        block = {
            "number": hex(11),
            "baseFeePerGas": hex(GWEI),
            "gasUsed": hex(10**6),
            "gasLimit": hex(2 * 10**6),
        }
        return [self._history(10), block]

    async def request(self, method: str, params: Any = None) -> Any:
        self.calls.append((method, params))
        assert method == "eth_feeHistory" and params[1] == hex(11)
        return self._history(11)


async def test_estimator_rereads_a_stale_history() -> None:
    rpc, rec = StaleHistoryRpc(), Recorder()
    est = GasEstimator(rpc, rec, history_blocks=2, percentiles=[50], blocks=1, confidence=0.5)
    r = await est.update()
    assert [m for m, _ in rpc.calls] == ["eth_feeHistory", "eth_getBlockByNumber", "eth_feeHistory"]
    assert est.history is not None and est.history.newest_block == 11 == est.head
    assert r.max_priority_fee_per_gas == 11 and r.max_fee_per_gas == GWEI + 11
    assert [e.block_number for _, e in rec.events] == [11]  # type: ignore[attr-defined]
