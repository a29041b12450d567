"""chains.send.executor against the real devnet: deploy from the committed artifact, skew a pool with a real swap, run
a cycle, and check the executor's balance change to the wei against chains/amm's exact math; plus the plan
encoding (round trip, bad input counted in metrics) and the unsigned transaction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from chains.node.anvil import RpcCallError
from chains.send.executor import (
    ArbPlan,
    Funding,
    FundingMode,
    Hop,
    PlanError,
    build_execute_tx,
    decode_plan,
    decode_revert,
    encode_execute,
    encode_plan,
    load_artifact,
    v2_flash_repay,
)
from tests.contracts.chainhelp import (
    balance_of,
    find_pool,
    funding,
    hop,
    predict_profit,
    send,
    setup_executor,
    skew_v2,
    skew_v3,
)
from tests.fixtures.devnet import Devnet

OWNER_INDEX = 1  # dev account 1: untouched by the devnet world
OWN_FUNDS = 50 * 10**18


@pytest.fixture
def world(devnet_state: Devnet) -> Iterator[tuple[Devnet, str, str]]:
    owner = devnet_state.node.accounts()[OWNER_INDEX]
    executor = setup_executor(devnet_state.node, devnet_state.book, owner, OWN_FUNDS)
    yield devnet_state, owner, executor


def _two_hop(d: Devnet, mode: FundingMode, amount: int) -> ArbPlan:
    """WETH -> USDC on the Uniswap V2 pair, USDC -> WETH on the V3 0.3 % pool."""
    b = d.book
    usdc = b.token("USDC").address
    return ArbPlan(
        (
            hop(find_pool(b, "uniswap", "WETH", "USDC"), b.weth, usdc),
            hop(find_pool(b, "uniswap_v3", "WETH", "USDC", 3000), usdc, b.weth),
        ),
        amount,
        funding(b, mode),
        min_profit=1,
    )


def _three_hop(d: Devnet, mode: FundingMode, amount: int) -> ArbPlan:
    """WETH -> USDC (V3 0.05 %) -> DAI (V2) -> WETH (V2)."""
    b = d.book
    usdc, dai = b.token("USDC").address, b.token("DAI").address
    return ArbPlan(
        (
            hop(find_pool(b, "uniswap_v3", "WETH", "USDC", 500), b.weth, usdc),
            hop(find_pool(b, "uniswap", "DAI", "USDC"), usdc, dai),
            hop(find_pool(b, "uniswap", "WETH", "DAI"), dai, b.weth),
        ),
        amount,
        funding(b, mode),
        min_profit=1,
    )


def _run(d: Devnet, owner: str, executor: str, plan: ArbPlan) -> tuple[int, int, dict[str, object]]:
    """(predicted profit, realized balance change, receipt)."""
    predicted, _ = predict_profit(d.node, plan, d.book.aave.pool)
    before = balance_of(d.node, d.book.weth, executor)
    receipt = send(d.node, owner, executor, encode_execute(plan), gas=2_000_000)
    assert receipt["status"] == "0x1", receipt
    return predicted, balance_of(d.node, d.book.weth, executor) - before, receipt


@pytest.mark.parametrize("mode", list(FundingMode), ids=lambda m: m.name.lower())
def test_two_hop_profit_is_exact(world: tuple[Devnet, str, str], mode: FundingMode) -> None:
    d, owner, executor = world
    b = d.book
    skew_v3(d.node, b, find_pool(b, "uniswap_v3", "WETH", "USDC", 3000), b.weth, 300 * 10**18)
    predicted, realized, _ = _run(d, owner, executor, _two_hop(d, mode, 5 * 10**18))
    assert predicted > 0
    assert realized == predicted


@pytest.mark.parametrize("mode", list(FundingMode), ids=lambda m: m.name.lower())
def test_three_hop_profit_is_exact(world: tuple[Devnet, str, str], mode: FundingMode) -> None:
    d, owner, executor = world
    b = d.book
    skew_v2(d.node, b, "uniswap", b.weth, b.token("DAI").address, 60 * 10**18)
    predicted, realized, _ = _run(d, owner, executor, _three_hop(d, mode, 5 * 10**18))
    assert predicted > 0
    assert realized == predicted


def test_passed_in_amounts_are_used(world: tuple[Devnet, str, str]) -> None:
    """A V2 hop with its output given skips getReserves; a V3 minimum output above the real one reverts."""
    d, owner, executor = world
    b = d.book
    skew_v2(d.node, b, "uniswap", b.weth, b.token("DAI").address, 60 * 10**18)
    plan = _three_hop(d, FundingMode.OWN_BALANCE, 5 * 10**18)
    _, outs = predict_profit(d.node, plan, b.aave.pool)
    too_strict = ArbPlan(
        (replace(plan.hops[0], amount_out=outs[0] + 1), *plan.hops[1:]),
        plan.amount_in,
        plan.funding,
        plan.min_profit,
    )
    receipt = send(d.node, owner, executor, encode_execute(too_strict), gas=2_000_000)
    assert receipt["status"] == "0x0"
    exact = ArbPlan(
        (replace(plan.hops[0], amount_out=outs[0]), plan.hops[1], replace(plan.hops[2], amount_out=outs[2])),
        plan.amount_in,
        plan.funding,
        plan.min_profit,
    )
    predicted, realized, _ = _run(d, owner, executor, exact)
    assert realized == predicted == outs[2] - plan.amount_in


@pytest.mark.parametrize("mode", list(FundingMode), ids=lambda m: m.name.lower())
def test_tip_is_paid_out_of_the_profit(world: tuple[Devnet, str, str], mode: FundingMode) -> None:
    """The tip is unwrapped WETH out of the cycle's profit (never ETH the executor holds) and ``min_profit`` is
    checked net of it: the executor's WETH grows by the predicted profit minus the tip, to the wei."""
    d, owner, executor = world
    b = d.book
    d.node.rpc("anvil_setBalance", [executor, hex(10**18)])  # ETH held: must stay untouched
    skew_v3(d.node, b, find_pool(b, "uniswap_v3", "WETH", "USDC", 3000), b.weth, 300 * 10**18)
    plan = _two_hop(d, mode, 5 * 10**18)
    predicted, _ = predict_profit(d.node, plan, b.aave.pool)
    tip = predicted // 3
    too_much = replace(plan, min_profit=predicted - tip + 1, tip_wei=tip)
    with pytest.raises(RpcCallError) as info:
        d.node.rpc(
            "eth_call",
            [{"from": owner, "to": executor, "data": "0x" + encode_execute(too_much).hex()}, "latest"],
        )
    assert (
        decode_revert(str(info.value.error["data"]))
        == f"InsufficientProfit({predicted - tip}, {predicted - tip + 1})"
    )
    _, realized, receipt = _run(d, owner, executor, replace(plan, min_profit=predicted - tip, tip_wei=tip))
    assert realized == predicted - tip
    assert int(d.node.rpc("eth_getBalance", [executor, "latest"]), 16) == 10**18
    # The block's coinbase got the tip on top of the transaction's priority fee.
    block = d.node.rpc("eth_getBlockByNumber", [receipt["blockNumber"], False])
    number = int(str(receipt["blockNumber"]), 16)
    gained = int(d.node.rpc("eth_getBalance", [block["miner"], hex(number)]), 16) - int(
        d.node.rpc("eth_getBalance", [block["miner"], hex(number - 1)]), 16
    )
    priority = (int(str(receipt["effectiveGasPrice"]), 16) - int(block["baseFeePerGas"], 16)) * int(
        str(receipt["gasUsed"]), 16
    )
    assert gained == tip + priority


def test_v2_flash_fee_comes_from_the_plan() -> None:
    plan = replace(_sample(), funding=Funding(FundingMode.V2_FLASH_SWAP, "0x" + "dd" * 20, False, 25))
    raw = encode_plan(plan)
    assert raw[0] == 0x01 and raw[90:92] == (25).to_bytes(2, "big")  # header 70 | lender 20 | fee u16
    assert len(raw) == 70 + 20 + 2 + (61 + 16) + 43 + (43 + 16)
    back = decode_plan(raw)
    assert (back.funding.mode, back.funding.lender.lower(), back.funding.fee_bps) == (  # type: ignore[union-attr]
        FundingMode.V2_FLASH_SWAP,
        "0x" + "dd" * 20,
        25,
    )
    assert back.hops == decode_plan(encode_plan(_sample())).hops
    assert encode_plan(back) == raw
    # ceil(a * 10000 / (10000 - fee)): the least the pair's K check accepts
    assert v2_flash_repay(10**18, 30) == (10**18 * 1000 + 996) // 997  # Uniswap's 0.3 %
    assert v2_flash_repay(10**18, 25) == 1_002_506_265_664_160_402
    assert v2_flash_repay(997, 30) == 1000 and v2_flash_repay(0, 30) == 0


def test_unprofitable_plan_reverts_with_insufficient_profit(world: tuple[Devnet, str, str]) -> None:
    d, owner, executor = world
    plan = _two_hop(d, FundingMode.OWN_BALANCE, 5 * 10**18)  # no skew: the fees make it a loss
    predicted, _ = predict_profit(d.node, plan, d.book.aave.pool)
    assert predicted < 0
    with pytest.raises(RpcCallError) as info:  # anvil returns the revert data with the error
        d.node.rpc(
            "eth_call", [{"from": owner, "to": executor, "data": "0x" + encode_execute(plan).hex()}, "latest"]
        )
    assert decode_revert(str(info.value.error["data"])) == f"InsufficientProfit({predicted}, 1)"


# ------------------------------------------------------------------------------------------- encoding
def _sample() -> ArbPlan:
    w, u, d = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
    return ArbPlan(
        (
            Hop("0x" + "aa" * 20, "v3", w, u, 500, True, 7, 123),
            Hop("0x" + "bb" * 20, "v2", u, d, 30, False),
            Hop("0x" + "cc" * 20, "v2", d, w, 25, True, 99),
        ),
        10**18,
        Funding(FundingMode.V3_FLASH, "0x" + "dd" * 20, True),
        5,
        6,
    )


def test_encoding_layout_and_round_trip() -> None:
    plan = _sample()
    raw = encode_plan(plan)
    assert raw[0] == 0x82 and raw[1] == 3  # V3 flash, start token is the lender's token1; 3 hops
    assert len(raw) == 70 + 20 + (61 + 16) + 43 + (43 + 16)
    back = decode_plan(raw)
    assert back.amount_in == plan.amount_in and back.min_profit == 5 and back.tip_wei == 6
    assert back.funding.mode is FundingMode.V3_FLASH and back.funding.start_is_token1
    assert [(h.kind, h.zero_for_one, h.amount_out) for h in back.hops] == [
        ("v3", True, 7),
        ("v2", False, None),
        ("v2", True, 99),
    ]
    assert back.hops[0].sqrt_price_limit_x96 == 123 and back.hops[2].fee == 25
    assert encode_plan(back) == raw
    assert encode_execute(plan)[:4].hex() == "09c5eabe"  # execute(bytes)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount_in": 0}, "bad_amount"),
        ({"amount_in": 2**128}, "bad_amount"),
        ({"min_profit": -1}, "bad_amount"),
        ({"hops": ()}, "bad_route"),
        ({"funding": Funding(FundingMode.V2_FLASH_SWAP)}, "bad_funding"),
        ({"funding": Funding(FundingMode.V2_FLASH_SWAP, "0x" + "aa" * 20)}, "bad_funding"),
        (
            {"funding": Funding(FundingMode.V2_FLASH_SWAP, "0x" + "dd" * 20)},
            "bad_fee",
        ),  # the lender's fee is required
        ({"funding": Funding(FundingMode.V2_FLASH_SWAP, "0x" + "dd" * 20, fee_bps=10_000)}, "bad_fee"),
        ({"hops": (Hop("0x" + "aa" * 20, "v2", "0x" + "11" * 20, "0x" + "22" * 20, 30, True),)}, "bad_route"),
        ({"hops": (Hop("0xnope", "v2", "0x" + "11" * 20, "0x" + "11" * 20, 30, True),)}, "bad_address"),
        (
            {"hops": (Hop("0x" + "aa" * 20, "v2", "0x" + "11" * 20, "0x" + "11" * 20, 10_000, True),)},
            "bad_fee",
        ),
    ],
)
def test_bad_plans_are_clear_errors_counted_in_metrics(change: dict[str, object], reason: str) -> None:
    registry = CollectorRegistry()
    base = _sample()
    fields = {
        "hops": base.hops,
        "amount_in": base.amount_in,
        "funding": base.funding,
        "min_profit": base.min_profit,
        "tip_wei": base.tip_wei,
        **change,
    }
    with pytest.raises(PlanError) as info:
        encode_plan(ArbPlan(**fields), registry=registry)  # type: ignore[arg-type]
    assert info.value.reason == reason
    assert registry.get_sample_value("mevsuite_executor_plan_errors_total", {"reason": reason}) == 1.0


def test_build_execute_tx_and_artifact(world: tuple[Devnet, str, str]) -> None:
    d, owner, executor = world
    plan = _two_hop(d, FundingMode.OWN_BALANCE, 10**18)
    tx = build_execute_tx(
        executor,
        plan,
        sender=owner,
        nonce=3,
        chain_id=31337,
        gas=500_000,
        max_fee_per_gas=2 * 10**9,
        max_priority_fee_per_gas=10**9,
    )
    assert tx["to"] == executor and tx["data"] == "0x" + encode_execute(plan).hex() and tx["type"] == 2
    code = str(d.node.rpc("eth_getCode", [executor, "latest"]))
    # The committed runtime code has zeros where the immutables (WETH, Aave pool) are filled in at deployment.
    for immutable in (d.book.weth, d.book.aave.pool):
        assert immutable[2:].lower() in code
        code = code.replace(immutable[2:].lower(), "00" * 20)
    assert code == load_artifact().deployed_bytecode
