"""Differential tests: Aave v3.0 liquidations predicted by ``chains.lending.aave_v3`` vs the real bytecode.

The devnet runs the real ``@aave/core-v3`` 1.19.3 Pool (revision 1).  For every borrower, random oracle moves
(most making it liquidatable, some not), random liquidation-protocol fees, random timestamps (interest
accrues) and random ``debtToCover`` (0, 1 wei, around the close-factor maximum, the whole debt, above it,
``type(uint256).max``) the pure math predicts the outcome from on-chain reserve data, and the real
``liquidationCall`` must agree to the wei: debt repaid, collateral to the liquidator, protocol fee to the
treasury, the user's resulting scaled and actual balances, the user's configuration flags — or the same
revert reason ('45', '46', '47', '25', a panic).

Most cases run in pyrevm forked from the devnet (one EVM, each case inside snapshot/revert, the block
timestamp pinned with ``set_block_env``); a few hundred run on anvil itself (``evm_snapshot``/``evm_revert``,
``evm_setNextBlockTimestamp``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyrevm
import pytest

from chains.devnet.artifacts import load
from chains.devnet.world import BORROWER_TEMPLATES
from chains.lending.aave_v3 import (
    UINT256_MAX,
    V3_0,
    LiquidationOutcome,
    LiquidationRevert,
    rayMul,
    rules_for_revision,
    simulate_liquidation_call,
)
from chains.state.aave_reader import read_pool_revision
from tests.chains.lending.aave_chain import (
    Call,
    ChainReserve,
    read_positions,
    read_reserves,
    revert_reason,
    user_flags,
    view,
)
from tests.fixtures.devnet import Devnet

PYREVM_CASES_PER_BORROWER = 200
ANVIL_CASES = int(__import__("os").environ.get("AAVE_ANVIL_CASES", "200"))
DAY = 86_400


@dataclass
class Case:
    user: str
    collateral: str
    debt: str
    debt_to_cover: int
    prices: dict[str, int]
    protocol_fee: int | None  # new liquidation protocol fee for the collateral reserve, None = unchanged
    dt: int  # seconds after the latest block


@dataclass
class Tally:
    success: int = 0
    reverts: dict[str, int] = field(default_factory=dict)

    def add(self, code: str | None) -> None:
        if code is None:
            self.success += 1
        else:
            self.reverts[code] = self.reverts.get(code, 0) + 1


def _templates(book: Any) -> list[tuple[str, list[str], str]]:
    out = []
    for user, t in zip(book.aave.borrowers, BORROWER_TEMPLATES, strict=True):
        out.append((user, [book.token(s).address for s, _w in t.collateral], book.token(t.debt).address))
    return out


def make_case(
    rng: random.Random,
    user: str,
    colls: list[str],
    debt: str,
    assets: list[str],
    prices: dict[str, int],
    total_debt_hint: int,
    decimals: dict[str, int],
) -> Case:
    new_prices = dict(prices)
    for c in colls:
        new_prices[c] = max(1, prices[c] * rng.randint(5_000, 10_400) // 10_000)
    new_prices[debt] = prices[debt] * rng.randint(9_600, 16_000) // 10_000
    collateral = rng.choice(colls) if rng.random() < 0.9 else rng.choice([a for a in assets if a != debt])
    debt_asset = debt if rng.random() < 0.92 else rng.choice([a for a in assets if a != collateral])
    if debt_asset == collateral:
        debt_asset = debt
    d = total_debt_hint
    unit = 10 ** decimals[debt_asset]
    debt_to_cover = rng.choice(
        [
            0,
            1,
            rng.randint(1, unit),
            rng.randint(1, max(1, d)),
            d // 2,
            d // 2 + 1,
            d // 2 - 1,
            d,
            d + 1,
            d + rng.randint(1, 10 * unit),
            2 * d,
            UINT256_MAX,
            rng.randint(1, max(1, d // 2)),
        ]
    )
    fee = rng.choice([None, None, 1_000, 5_000, 10_000, rng.randint(0, 10_000)])
    dt = rng.choice([1, 12, rng.randint(1, 3600), rng.randint(1, 120 * DAY)])
    return Case(user, collateral, debt_asset, max(0, debt_to_cover), new_prices, fee, dt)


def predict(reserves: list[ChainReserve], positions: Any, case: Case, ts: int) -> LiquidationOutcome | str:
    try:
        return simulate_liquidation_call(
            V3_0, [r.state for r in reserves], positions, case.collateral, case.debt, case.debt_to_cover, ts
        )
    except LiquidationRevert as e:
        return e.code


@dataclass
class Observation:
    reason: str | None
    liquidator_collateral_delta: int = 0
    liquidator_debt_delta: int = 0
    treasury_scaled_delta: int = 0
    user_scaled_a: int = 0
    user_scaled_v: int = 0
    user_a_balance: int = 0
    user_v_balance: int = 0
    borrowing_flag: bool = False
    collateral_flag: bool = False


def observe(
    call: Call,
    book: Any,
    reserves: list[ChainReserve],
    case: Case,
    liquidator: str,
    treasury: str,
    execute: Callable[[], str | None],
) -> Observation:
    by = {r.state.asset: r for r in reserves}
    cr, dr = by[case.collateral], by[case.debt]

    def bal(token: str, who: str) -> int:
        return int(view(call, token, "MintableERC20", "balanceOf", who)[0])  # type: ignore[call-overload]

    def scaled(token: str, who: str) -> int:
        return int(view(call, token, "AToken", "scaledBalanceOf", who)[0])  # type: ignore[call-overload]

    c0, d0, t0 = bal(case.collateral, liquidator), bal(case.debt, liquidator), scaled(cr.a_token, treasury)
    reason = execute()
    if reason is not None:
        return Observation(reason)
    borrowing, _ = user_flags(call, book, dr.reserve_id, case.user)
    _, coll_flag = user_flags(call, book, cr.reserve_id, case.user)
    return Observation(
        None,
        bal(case.collateral, liquidator) - c0,
        d0 - bal(case.debt, liquidator),
        scaled(cr.a_token, treasury) - t0,
        scaled(cr.a_token, case.user),
        int(view(call, dr.variable_debt_token, "VariableDebtToken", "scaledBalanceOf", case.user)[0]),  # type: ignore[call-overload]
        bal(cr.a_token, case.user),
        bal(dr.variable_debt_token, case.user),
        borrowing,
        coll_flag,
    )


def compare(pred: LiquidationOutcome | str, obs: Observation, case: Case) -> None:
    if isinstance(pred, str) or obs.reason is not None:
        assert obs.reason == (pred if isinstance(pred, str) else None), (case, pred, obs)
        return
    got = (
        obs.liquidator_debt_delta,
        obs.liquidator_collateral_delta,
        obs.treasury_scaled_delta,
        obs.user_scaled_a,
        obs.user_scaled_v,
        obs.user_a_balance,
        obs.user_v_balance,
        obs.borrowing_flag,
        obs.collateral_flag,
    )
    want = (
        pred.debt_repaid,
        pred.collateral_to_liquidator,
        pred.treasury_scaled_increase,
        pred.user_scaled_a_token_after,
        pred.user_scaled_variable_debt_after,
        pred.user_collateral_after,
        pred.user_variable_debt_after,
        not pred.borrowing_cleared,
        not pred.collateral_disabled,
    )
    assert got == want, (case, pred, obs)


# --------------------------------------------------------------------------- pyrevm
class Fork:
    def __init__(self, devnet: Devnet) -> None:
        node, book = devnet.node, devnet.book
        head = node.rpc("eth_getBlockByNumber", ["latest", False])
        self.number, self.base_ts = int(head["number"], 16), int(head["timestamp"], 16)
        self.evm = pyrevm.EVM(fork_url=book.rpc_url, fork_block=head["hash"], spec_id="CANCUN")
        self.book = book
        self.viewer = "0x000000000000000000000000000000000000dEaD"
        self.set_time(self.base_ts + 1)

    def set_time(self, ts: int) -> None:
        self.evm.set_block_env(pyrevm.BlockEnv(number=self.number + 1, timestamp=ts))

    def call(self, to: str, data: str) -> bytes:
        return bytes(self.evm.message_call(self.viewer, to, bytes.fromhex(data[2:])))

    def send(self, sender: str, to: str, data: str, value: int = 0) -> str | None:
        try:
            self.evm.message_call(sender, to, bytes.fromhex(data[2:]), value=value)
        except RuntimeError as e:
            msg = str(e)
            if "output: 0x" not in msg:
                raise
            return revert_reason(msg.split("output: ")[1].split()[0].rstrip("}"))
        return None


def fund_liquidator(send: Callable[..., Any], book: Any, liquidator: str, assets: list[str]) -> None:
    for asset in assets:
        if asset == book.weth:
            assert send(liquidator, asset, load("WETH9").encode_call("deposit"), 5_000 * 10**18) is None
        else:
            assert send(liquidator, asset, load("MintableERC20").encode_call("mint(uint256)", 10**40)) is None
        assert (
            send(liquidator, asset, load("MintableERC20").encode_call("approve", book.aave.pool, UINT256_MAX))
            is None
        )


def run_case(
    call: Call,
    send: Callable[..., str | None],
    book: Any,
    case: Case,
    liquidator: str,
    treasury: str,
    set_time: Callable[[int], None],
    base_ts: int,
    tally: Tally,
    positions: Any,
) -> None:
    """One case; ``positions`` (the user's scaled balances and flags) were read from this chain state."""
    oracle, pool = book.aave.oracle, book.aave.pool
    for asset, price in case.prices.items():
        assert (
            send(book.deployer, oracle, load("PriceOracle").encode_call("setAssetPrice", asset, price))
            is None
        )
    if case.protocol_fee is not None:
        data = load("PoolConfigurator").encode_call(
            "setLiquidationProtocolFee", case.collateral, case.protocol_fee
        )
        assert send(book.deployer, book.aave.pool_configurator, data) is None
    ts = base_ts + case.dt
    set_time(ts)
    reserves = read_reserves(call, book)  # indexes, rates, configuration (the new fee) and oracle prices
    pred = predict(reserves, positions, case, ts)
    data = load("Pool").encode_call(
        "liquidationCall", case.collateral, case.debt, case.user, case.debt_to_cover, False
    )
    obs = observe(call, book, reserves, case, liquidator, treasury, lambda: send(liquidator, pool, data))
    compare(pred, obs, case)
    tally.add(obs.reason)


def _debt_hint(call: Call, book: Any, user: str, debt: str) -> tuple[dict[str, int], int, dict[str, int]]:
    reserves = read_reserves(call, book)
    positions = read_positions(call, book, reserves, user)
    by = {r.state.asset: r.state for r in reserves}
    d = rayMul(positions[debt].scaled_variable_debt, by[debt].variable_borrow_index)
    return {a: s.price for a, s in by.items()}, d, {a: s.decimals for a, s in by.items()}


def test_pool_revision_maps_to_v3_0(devnet: Devnet) -> None:
    assert read_pool_revision(devnet.node.rpc, devnet.book.aave.pool) == 1
    assert rules_for_revision(1) is V3_0


def test_liquidations_match_bytecode_in_pyrevm(devnet: Devnet) -> None:
    book = devnet.book
    fork = Fork(devnet)
    liquidator = devnet.node.accounts()[6]
    fork.evm.set_balance(liquidator, 10**30)
    reserves = read_reserves(fork.call, book)
    assets = [r.state.asset for r in reserves]
    fund_liquidator(fork.send, book, liquidator, assets)
    (treasury,) = view(fork.call, reserves[0].a_token, "AToken", "RESERVE_TREASURY_ADDRESS")
    rng = random.Random(20261123)
    tally = Tally()
    for user, colls, debt in _templates(book):
        prices, d, decimals = _debt_hint(fork.call, book, user, debt)
        positions = read_positions(fork.call, book, reserves, user)
        for _ in range(PYREVM_CASES_PER_BORROWER):
            case = make_case(rng, user, colls, debt, assets, prices, d, decimals)
            snap = fork.evm.snapshot()
            try:
                run_case(
                    fork.call,
                    fork.send,
                    book,
                    case,
                    liquidator,
                    str(treasury),
                    fork.set_time,
                    fork.base_ts,
                    tally,
                    positions,
                )
            finally:
                fork.evm.revert(snap)
    total = tally.success + sum(tally.reverts.values())
    print(f"pyrevm differential: {total} cases, {tally.success} liquidations, reverts {tally.reverts}")
    assert total == PYREVM_CASES_PER_BORROWER * len(book.aave.borrowers)
    assert tally.success >= total // 3 and tally.reverts.get("45", 0) > 0 and tally.reverts.get("25", 0) > 0


# --------------------------------------------------------------------------- anvil
@pytest.fixture
def anvil_market(devnet_state: Devnet) -> Iterator[tuple[Devnet, str]]:
    dn = devnet_state
    liquidator = dn.node.accounts()[7]

    def send(sender: str, to: str, data: str, value: int = 0) -> str | None:
        return _anvil_send(dn, sender, to, data, value)

    reserves = read_reserves(_anvil_call(dn), dn.book)
    fund_liquidator(send, dn.book, liquidator, [r.state.asset for r in reserves])
    yield dn, liquidator


def _anvil_call(dn: Devnet) -> Call:
    def call(to: str, data: str) -> bytes:
        return bytes.fromhex(dn.node.rpc("eth_call", [{"to": to, "data": data}, "latest"])[2:])

    return call


def _anvil_send(dn: Devnet, sender: str, to: str, data: str, value: int = 0) -> str | None:
    node = dn.node
    tx_hash = node.rpc(
        "eth_sendTransaction",
        [{"from": sender, "to": to, "data": data, "value": hex(value), "gas": hex(3_000_000)}],
    )
    receipt = node.rpc("eth_getTransactionReceipt", [tx_hash])
    while receipt is None:  # automine answers before the receipt is queryable
        time.sleep(0.001)
        receipt = node.rpc("eth_getTransactionReceipt", [tx_hash])
    if int(receipt["status"], 16) == 1:
        return None
    trace = node.rpc("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
    return revert_reason(trace.get("output", "0x"))


def test_liquidations_match_bytecode_on_anvil(anvil_market: tuple[Devnet, str]) -> None:
    dn, liquidator = anvil_market
    book, node = dn.book, dn.node
    call = _anvil_call(dn)
    reserves = read_reserves(call, book)
    assets = [r.state.asset for r in reserves]
    (treasury,) = view(call, reserves[0].a_token, "AToken", "RESERVE_TREASURY_ADDRESS")
    rng = random.Random(7_000_001)
    tally = Tally()
    templates = _templates(book)
    hints = {u: _debt_hint(call, book, u, d) for u, _c, d in templates}
    positions = {u: read_positions(call, book, reserves, u) for u, _c, _d in templates}
    for k in range(ANVIL_CASES):
        user, colls, debt = templates[k % len(templates)]
        prices, d, decimals = hints[user]
        case = make_case(rng, user, colls, debt, assets, prices, d, decimals)
        snap = node.snapshot()
        try:
            head_ts = int(node.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
            # the price/fee transactions mine blocks first; pin the liquidation block's time after them
            base = head_ts + 10

            def set_time(ts: int) -> None:
                node.rpc("evm_setNextBlockTimestamp", [ts])

            def send(sender: str, to: str, data: str, value: int = 0) -> str | None:
                return _anvil_send(dn, sender, to, data, value)

            run_case(
                call, send, book, case, liquidator, str(treasury), set_time, base, tally, positions[user]
            )
        finally:
            node.revert(snap)
    total = tally.success + sum(tally.reverts.values())
    print(f"anvil differential: {total} cases, {tally.success} liquidations, reverts {tally.reverts}")
    assert total == ANVIL_CASES and tally.success >= total // 3
