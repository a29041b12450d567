"""Aave V3 math against the aave-utilities vectors, plus the rule-set selection and v3.3 close-factor rules.

The aave-utilities vectors are the JS library's expectations: health factors are decimal strings (we compare
after rounding to the 18 decimals the contract returns), and its ``calculateCompoundedInterest`` divides the
rate by SECONDS_PER_YEAR first, as Aave V2's MathUtils did; V3 multiplies first (checked separately).
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from chains.lending import aave_v3 as av
from chains.lending.aave_v3 import (
    RAY,
    UINT256_MAX,
    V3_0,
    V3_3,
    WAD,
    LiquidationRevert,
    ReserveState,
    UnknownPoolRevisionError,
    UserReserve,
)

V = json.loads(
    (Path(__file__).resolve().parents[2] / "data" / "aave" / "aave_utilities_math_vectors.json").read_text()
)


def _v2_compounded(rate: int, t0: int, t1: int) -> int:
    """Aave V2 / aave-utilities binomial expansion (rate per second rounded down first)."""
    exp = t1 - t0
    if exp == 0:
        return RAY
    rps = rate // av.SECONDS_PER_YEAR
    p2 = av.rayMul(rps, rps)
    p3 = av.rayMul(p2, rps)
    return RAY + rps * exp + exp * (exp - 1) * p2 // 2 + exp * (exp - 1) * max(exp - 2, 0) * p3 // 6


def test_linear_balance_real_chain() -> None:
    v = V["getLinearBalance_realchain"]
    idx = av.getNormalizedIncome(
        int(v["liquidityIndex"]),
        int(v["currentLiquidityRate"]),
        v["lastUpdateTimestamp"],
        v["currentTimestamp"],
    )
    assert av.rayMul(int(v["scaledATokenBalance"]), idx) == int(v["expected"])


@pytest.mark.parametrize("v", V["calculateLinearInterest"])
def test_linear_interest(v: dict[str, str]) -> None:
    got = av.calculateLinearInterest(
        int(v["rate"]), int(v["lastUpdateTimestamp"]), int(v["currentTimestamp"])
    )
    assert got == int(v["expected"])


@pytest.mark.parametrize("v", V["calculateCompoundedInterest"])
def test_compounded_interest(v: dict[str, str]) -> None:
    rate, t0, t1 = int(v["rate"]), int(v["lastUpdateTimestamp"]), int(v["currentTimestamp"])
    assert _v2_compounded(rate, t0, t1) == int(v["expected"])
    # V3 keeps rate*exp/SECONDS_PER_YEAR unrounded: here that is the linear value (the squared terms vanish)
    assert av.calculateCompoundedInterest(rate, t0, t1) == av.calculateLinearInterest(rate, t0, t1)


@pytest.mark.parametrize("v", V["getCompoundedBalance"])
def test_compounded_balance(v: dict[str, str]) -> None:
    idx = av.getNormalizedDebt(
        int(v["reserveIndex"]),
        int(v["reserveRate"]),
        int(v["lastUpdateTimestamp"]),
        int(v["currentTimestamp"]),
    )
    assert av.rayMul(int(v["principalBalance"]), idx) == int(v["expected"])


@pytest.mark.parametrize("v", V["getReserveNormalizedIncome"])
def test_normalized_income(v: dict[str, str]) -> None:
    got = av.getNormalizedIncome(
        int(v["index"]), int(v["rate"]), int(v["lastUpdateTimestamp"]), int(v["currentTimestamp"])
    )
    assert got == int(v["expected"])


def _hf(collateral: int, debt: int, lt_bps: int) -> int:
    # decimals 0 and price 1: balances are already in market-reference units, as in the JS helper
    r = ReserveState("C", 0, 0, lt_bps, 10_500, 0, RAY, RAY, 0, 0, 0, 1)
    d = ReserveState("D", 0, 0, 0, 0, 0, RAY, RAY, 0, 0, 0, 1)
    pos = {"C": UserReserve(collateral, 0, 0, True), "D": UserReserve(0, debt, 0, False)}
    return av.calculate_user_account_data([r, d], pos, 0).health_factor


def _round18(s: str) -> int:
    return int((Decimal(s) * WAD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize("v", V["calculateHealthFactorFromBalances"])
def test_health_factor(v: dict[str, str]) -> None:
    hf = _hf(
        int(v["collateralBalanceMarketReferenceCurrency"]),
        int(v["borrowBalanceMarketReferenceCurrency"]),
        int(v["currentLiquidationThreshold_bps"]),
    )
    assert hf == (UINT256_MAX if v["expected"] == "-1" else _round18(v["expected"]))


@pytest.mark.parametrize("v", V["calculateHealthFactorFromBalancesBigUnits"])
def test_health_factor_big_units(v: dict[str, str]) -> None:
    # the BigUnits variant keeps the threshold in bps undivided: its result is HF * 10_000
    hf = _hf(int(v["collateral"]), int(v["borrow"]), int(v["threshold_bps"]))
    assert hf == _round18(str(Decimal(v["expected"]) / 10_000))


@pytest.mark.parametrize("v", V["calculateAvailableBorrowsMarketReferenceCurrency"])
def test_available_borrows(v: dict[str, object]) -> None:
    # GenericLogic.calculateAvailableBorrows; the upstream test passes ltv 0.5 where bps are expected -> 0 bps
    ltv = int(float(v["currentLtv"]))  # type: ignore[arg-type]
    available = av.percentMul(int(v["collateral"]), ltv)  # type: ignore[call-overload]
    assert str(max(0, available - int(v["borrow"]))) == v["expected"]  # type: ignore[call-overload]


@pytest.mark.parametrize("v", V["rayMath"])
def test_ray_math(v: dict[str, str]) -> None:
    fn = {
        "rayMul": lambda: av.rayMul(int(v["a"]), int(v["b"])),
        "wadToRay": lambda: av.wadToRay(int(v["a"])),
        "rayToWad": lambda: av.rayToWad(int(v["a"])),
    }[v["fn"]]
    assert fn() == int(v["expected"])


def test_format_user_summary_example() -> None:
    exp = V["formatUserSummary_example"]["expected"]
    usdc = ReserveState("USDC", 6, 5_000, 6_000, 10_500, 0, RAY, RAY, 0, 0, 1, 10)
    acct = av.calculate_user_account_data([usdc], {"USDC": UserReserve(200 * 10**6, 100 * 10**6, 0, True)}, 1)
    assert (acct.total_collateral_base, acct.total_debt_base) == (2000, 1000)
    assert (acct.avg_ltv, acct.avg_liquidation_threshold) == (5_000, 6_000)
    assert str(Decimal(acct.health_factor) / WAD) == exp["healthFactor"]
    assert max(0, av.percentMul(acct.total_collateral_base, acct.avg_ltv) - acct.total_debt_base) == 0
    assert acct.total_collateral_base * 10**9 // 10**8 == int(exp["totalCollateralUSD"])
    assert acct.total_debt_base * 10**9 // 10**8 == int(exp["totalBorrowsUSD"])


def test_wad_ray_percentage_half_up() -> None:
    assert av.rayMul(3, RAY // 2) == 2 and av.rayDiv(1, 2 * RAY) == 1 and av.rayDiv(1, 3 * RAY) == 0
    assert av.percentMul(1, 5_000) == 1 and av.percentMul(1, 4_999) == 0
    assert av.percentDiv(1, 20_000) == 1 and av.percentDiv(1, 20_001) == 0
    assert av.wadDiv(1, 2 * WAD) == 1
    with pytest.raises(av.AaveMathError):
        av.rayMul(UINT256_MAX, 2)


def test_rules_for_revision_refuses_unknown() -> None:
    assert av.rules_for_revision(1) is V3_0 and av.rules_for_revision(7) is V3_3
    for rev in (0, 2, 3, 4, 5, 6, 8, 9):
        with pytest.raises(UnknownPoolRevisionError, match=f"revision {rev} "):
            av.rules_for_revision(rev)


# --------------------------------------------------------------------------- liquidation (pure)
def _market(coll_price: int, debt_price: int = 10**8, fee: int = 1_000) -> list[ReserveState]:
    return [
        ReserveState("WETH", 18, 8_000, 8_250, 10_500, fee, RAY, RAY, 0, 0, 0, coll_price),
        ReserveState("USDC", 6, 7_700, 8_000, 10_450, 1_000, RAY, RAY, 0, 0, 0, debt_price),
    ]


def _pos(coll: int, debt: int) -> dict[str, UserReserve]:
    return {"WETH": UserReserve(coll, 0, 0, True), "USDC": UserReserve(0, debt, 0, False)}


def test_liquidation_amounts_cap_at_user_collateral() -> None:
    to_liq, debt, fee = av.liquidation_amounts(
        10_000 * 10**6, 2_000 * 10**8, 18, 10**8, 6, 10**18, 10_500, 1_000
    )
    assert to_liq + fee == 10**18
    assert debt == av.percentDiv(2_000 * 10**6, 10_500)
    assert fee == av.percentMul(10**18 - av.percentDiv(10**18, 10_500), 1_000)


def test_v3_0_close_factor() -> None:
    pos = _pos(10 * 10**18, 16_000 * 10**6)  # 10 ETH vs 16k USDC
    healthy = _market(2_000 * 10**8)
    with pytest.raises(LiquidationRevert) as e:
        av.simulate_liquidation_call(V3_0, healthy, pos, "WETH", "USDC", UINT256_MAX, 0)
    assert e.value.code == "45"
    half = av.simulate_liquidation_call(V3_0, _market(1_900 * 10**8), pos, "WETH", "USDC", UINT256_MAX, 0)
    assert 0.95 * WAD < half.health_factor < WAD and half.debt_repaid == 8_000 * 10**6
    full = av.simulate_liquidation_call(V3_0, _market(1_800 * 10**8), pos, "WETH", "USDC", UINT256_MAX, 0)
    assert full.health_factor <= 0.95 * WAD and full.debt_repaid == 16_000 * 10**6 and full.borrowing_cleared


def test_v3_3_close_factor_and_dust_rules() -> None:
    # big position, HF in (0.95, 1): at most 50 % of the total debt
    pos = _pos(10 * 10**18, 16_000 * 10**6)
    r = av.simulate_liquidation_call(V3_3, _market(1_900 * 10**8), pos, "WETH", "USDC", UINT256_MAX, 0)
    assert r.debt_repaid == 8_000 * 10**6
    assert (
        av.simulate_liquidation_call(
            V3_3, _market(1_900 * 10**8), pos, "WETH", "USDC", 7_500 * 10**6, 0
        ).debt_repaid
        == 7_500 * 10**6
    )  # 8.5k USD left behind: allowed
    small = _pos(10**18, 1_600 * 10**6)  # debt < 2000 USD: the whole reserve debt may go at HF in (0.95, 1)
    s = av.simulate_liquidation_call(V3_3, _market(1_900 * 10**8), small, "WETH", "USDC", UINT256_MAX, 0)
    assert s.debt_repaid == 1_600 * 10**6
    assert (
        av.simulate_liquidation_call(
            V3_0, _market(1_900 * 10**8), small, "WETH", "USDC", UINT256_MAX, 0
        ).debt_repaid
        == 800 * 10**6
    )
    with pytest.raises(LiquidationRevert) as e:  # would leave 900 USD of debt: dust
        av.simulate_liquidation_call(V3_3, _market(1_900 * 10**8), small, "WETH", "USDC", 700 * 10**6, 0)
    assert e.value.code == "103"


def test_reader_decodes_and_refuses() -> None:
    from chains.state.aave_reader import POOL_REVISION_SELECTOR, read_pool_revision, read_rules

    seen: list[object] = []

    def rpc(method: str, params: list[object]) -> str:
        seen.append((method, params))
        return "0x" + f"{3:064x}"

    assert read_pool_revision(rpc, "0xPool") == 3
    assert seen[0] == ("eth_call", [{"to": "0xPool", "data": POOL_REVISION_SELECTOR}, "latest"])
    with pytest.raises(UnknownPoolRevisionError):
        read_rules(rpc, "0xPool")
    with pytest.raises(ValueError, match="not one uint256"):
        read_pool_revision(lambda m, p: "0x", "0xPool")


async def test_async_reader() -> None:
    from chains.state.aave_reader import aread_pool_revision

    async def rpc(method: str, params: list[object]) -> str:
        return "0x" + f"{7:064x}"

    assert av.rules_for_revision(await aread_pool_revision(rpc, "0xPool")) is V3_3
