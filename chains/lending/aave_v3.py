"""Aave V3 math: an exact integer port of the pool's health-factor and liquidation code.

Function names follow the Solidity ones (``WadRayMath``, ``PercentageMath``, ``MathUtils``,
``GenericLogic.calculateUserAccountData``, ``LiquidationLogic._calculateAvailableCollateralToLiquidate``).
Pure: reserve and user state come in as frozen dataclasses, nothing here does I/O.

Liquidation rules changed between releases, so they are versioned :class:`LiquidationRules`:

* :data:`V3_0` — ``@aave/core-v3`` 1.19.x (pool revision 1, the devnet market).  Close factor 50 % of the user's
  debt in the debt reserve, 100 % when the health factor is at or below 0.95.  Checked to the wei against
  the real bytecode by ``tests/chains/lending/test_aave_differential.py``.
* :data:`V3_3` — aave-v3-origin 3.3 (pool revision 7, Ethereum mainnet since 2025).  All of the reserve's
  debt may be liquidated when the reserve's collateral or debt is worth less than
  ``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD`` (2000 USD) or HF <= 0.95; otherwise at most 50 % of the user's
  *total* debt (in base currency); a liquidation that leaves less than ``MIN_LEFTOVER_BASE`` (1000 USD)
  of both debt and collateral behind reverts ``MUST_NOT_LEAVE_DUST`` ('103').  Ported from the source;
  no v3.3 bytecode is installable here, so it is NOT differential-tested.

:func:`rules_for_revision` maps the on-chain ``POOL_REVISION`` to a rule set and refuses any other revision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "HALF_PERCENTAGE_FACTOR",
    "HALF_RAY",
    "HALF_WAD",
    "HEALTH_FACTOR_LIQUIDATION_THRESHOLD",
    "PERCENTAGE_FACTOR",
    "RAY",
    "SECONDS_PER_YEAR",
    "UINT256_MAX",
    "V3_0",
    "V3_3",
    "WAD",
    "AaveMathError",
    "EModeCategory",
    "LiquidationOutcome",
    "LiquidationRevert",
    "LiquidationRules",
    "ReserveState",
    "UnknownPoolRevisionError",
    "UserAccountData",
    "UserReserve",
    "calculateCompoundedInterest",
    "calculateLinearInterest",
    "calculate_user_account_data",
    "getNormalizedDebt",
    "getNormalizedIncome",
    "liquidation_amounts",
    "percentDiv",
    "percentMul",
    "rayDiv",
    "rayMul",
    "rayToWad",
    "rules_for_revision",
    "simulate_liquidation_call",
    "wadDiv",
    "wadMul",
    "wadToRay",
]

UINT256_MAX = 2**256 - 1
WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
WAD_RAY_RATIO = 10**9
HALF_WAD_RAY_RATIO = WAD_RAY_RATIO // 2
PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = 5_000
SECONDS_PER_YEAR = 365 * 24 * 3600
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = WAD

# Errors.sol codes (the revert strings)
RESERVE_INACTIVE = "27"
RESERVE_PAUSED = "29"
INVALID_BURN_AMOUNT = "25"
HEALTH_FACTOR_NOT_BELOW_THRESHOLD = "45"
COLLATERAL_CANNOT_BE_LIQUIDATED = "46"
SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER = "47"
MUST_NOT_LEAVE_DUST = "103"
PANIC_ARITHMETIC = "panic:0x11"


class AaveMathError(ArithmeticError):
    """A revert of the math libraries themselves (overflow, division by zero): the EVM would revert too."""


class UnknownPoolRevisionError(ValueError):
    """The pool's ``POOL_REVISION`` has no rule set here: refuse rather than guess."""


class LiquidationRevert(Exception):
    """``liquidationCall`` would revert; ``code`` is the Errors.sol string ('45', '25', …) or ``panic:0x11``."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        super().__init__(f"{code} {detail}".strip())


# --------------------------------------------------------------------------- WadRayMath / PercentageMath
def _check(x: int) -> int:
    if x > UINT256_MAX or x < 0:
        raise AaveMathError("uint256 overflow")
    return x


def wadMul(a: int, b: int) -> int:
    return _check(a * b + HALF_WAD) // WAD


def wadDiv(a: int, b: int) -> int:
    if b == 0:
        raise AaveMathError("division by zero")
    return _check(a * WAD + b // 2) // b


def rayMul(a: int, b: int) -> int:
    """``(a * b + HALF_RAY) / RAY``: half-up."""
    return _check(a * b + HALF_RAY) // RAY


def rayDiv(a: int, b: int) -> int:
    """``(a * RAY + b / 2) / b``: half-up."""
    if b == 0:
        raise AaveMathError("division by zero")
    return _check(a * RAY + b // 2) // b


def rayToWad(a: int) -> int:
    b, remainder = divmod(a, WAD_RAY_RATIO)
    return b + 1 if remainder >= HALF_WAD_RAY_RATIO else b


def wadToRay(a: int) -> int:
    return _check(a * WAD_RAY_RATIO)


def percentMul(value: int, percentage: int) -> int:
    """``(value * percentage + HALF_PERCENTAGE_FACTOR) / PERCENTAGE_FACTOR``: half-up."""
    return _check(value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def percentDiv(value: int, percentage: int) -> int:
    """``(value * PERCENTAGE_FACTOR + percentage / 2) / percentage``: half-up."""
    if percentage == 0:
        raise AaveMathError("division by zero")
    return _check(value * PERCENTAGE_FACTOR + percentage // 2) // percentage


# --------------------------------------------------------------------------- MathUtils / ReserveLogic
def calculateLinearInterest(rate: int, last_update_timestamp: int, current_timestamp: int) -> int:
    """``RAY + rate * dt / SECONDS_PER_YEAR`` (no rounding step: plain division)."""
    return RAY + rate * (current_timestamp - last_update_timestamp) // SECONDS_PER_YEAR


def calculateCompoundedInterest(rate: int, last_update_timestamp: int, current_timestamp: int) -> int:
    """Three-term binomial approximation of ``(1 + rate/yr)^dt`` exactly as ``MathUtils`` (v3)."""
    exp = current_timestamp - last_update_timestamp
    if exp == 0:
        return RAY
    exp_minus_one = exp - 1
    exp_minus_two = exp - 2 if exp > 2 else 0
    base_power_two = rayMul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = rayMul(base_power_two, rate) // SECONDS_PER_YEAR
    second_term = exp * exp_minus_one * base_power_two // 2
    third_term = exp * exp_minus_one * exp_minus_two * base_power_three // 6
    return RAY + rate * exp // SECONDS_PER_YEAR + second_term + third_term


def getNormalizedIncome(
    liquidity_index: int, current_liquidity_rate: int, last_update_timestamp: int, timestamp: int
) -> int:
    """``ReserveLogic.getNormalizedIncome``: the liquidity index accrued (linearly) to ``timestamp``."""
    if timestamp == last_update_timestamp:
        return liquidity_index
    return rayMul(
        calculateLinearInterest(current_liquidity_rate, last_update_timestamp, timestamp), liquidity_index
    )


def getNormalizedDebt(
    variable_borrow_index: int, current_variable_borrow_rate: int, last_update_timestamp: int, timestamp: int
) -> int:
    """``ReserveLogic.getNormalizedDebt``: the variable borrow index compounded to ``timestamp``."""
    if timestamp == last_update_timestamp:
        return variable_borrow_index
    return rayMul(
        calculateCompoundedInterest(current_variable_borrow_rate, last_update_timestamp, timestamp),
        variable_borrow_index,
    )


# --------------------------------------------------------------------------- state
@dataclass(frozen=True, slots=True)
class ReserveState:
    """One reserve as ``getReserveData`` + its configuration bitmap + the oracle price (base currency)."""

    asset: str
    decimals: int
    ltv: int  # bps
    liquidation_threshold: int  # bps
    liquidation_bonus: int  # bps, 10500 = 5 % bonus
    liquidation_protocol_fee: int  # bps of the bonus
    liquidity_index: int  # ray
    variable_borrow_index: int  # ray
    current_liquidity_rate: int  # ray
    current_variable_borrow_rate: int  # ray
    last_update_timestamp: int
    price: int  # oracle price, base-currency units (USD 8 decimals on v3)
    active: bool = True
    paused: bool = False
    emode_category: int = 0

    def normalized_income(self, timestamp: int) -> int:
        return getNormalizedIncome(
            self.liquidity_index, self.current_liquidity_rate, self.last_update_timestamp, timestamp
        )

    def normalized_debt(self, timestamp: int) -> int:
        return getNormalizedDebt(
            self.variable_borrow_index,
            self.current_variable_borrow_rate,
            self.last_update_timestamp,
            timestamp,
        )


@dataclass(frozen=True, slots=True)
class UserReserve:
    """The user's position in one reserve: scaled balances as stored, the current stable debt, the flags."""

    scaled_a_token_balance: int = 0
    scaled_variable_debt: int = 0
    stable_debt: int = 0  # StableDebtToken.balanceOf(user) at the timestamp (v3.0 only; 0 on v3.2+)
    using_as_collateral: bool = False

    @property
    def borrowing(self) -> bool:
        return self.scaled_variable_debt != 0 or self.stable_debt != 0


@dataclass(frozen=True, slots=True)
class EModeCategory:
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    price: int = 0  # price of the category's price source, 0 when none


@dataclass(frozen=True, slots=True)
class UserAccountData:
    total_collateral_base: int
    total_debt_base: int
    avg_ltv: int
    avg_liquidation_threshold: int
    health_factor: int
    has_zero_ltv_collateral: bool


def calculate_user_account_data(
    reserves: Sequence[ReserveState],
    positions: Mapping[str, UserReserve],
    timestamp: int,
    user_emode_category: int = 0,
    emode: EModeCategory | None = None,
) -> UserAccountData:
    """``GenericLogic.calculateUserAccountData`` over ``reserves`` in the pool's reserve-list order."""
    if not any(p.using_as_collateral or p.borrowing for p in positions.values()):
        return UserAccountData(0, 0, 0, 0, UINT256_MAX, False)
    total_collateral = total_debt = avg_ltv = avg_lt = 0
    has_zero_ltv = False
    for r in reserves:
        p = positions.get(r.asset)
        if p is None or not (p.using_as_collateral or p.borrowing):
            continue
        unit = 10**r.decimals
        in_emode = user_emode_category != 0 and r.emode_category == user_emode_category
        price = emode.price if (emode is not None and emode.price != 0 and in_emode) else r.price
        if r.liquidation_threshold != 0 and p.using_as_collateral:
            balance = rayMul(p.scaled_a_token_balance, r.normalized_income(timestamp)) * price // unit
            total_collateral += balance
            ltv = emode.ltv if (in_emode and emode is not None) else r.ltv
            lt = emode.liquidation_threshold if (in_emode and emode is not None) else r.liquidation_threshold
            if r.ltv != 0:
                avg_ltv += balance * ltv
            else:
                has_zero_ltv = True
            avg_lt += balance * lt
        if p.borrowing:
            debt = p.scaled_variable_debt
            if debt != 0:
                debt = rayMul(debt, r.normalized_debt(timestamp))
            total_debt += price * (debt + p.stable_debt) // unit
    avg_ltv = avg_ltv // total_collateral if total_collateral else 0
    avg_lt = avg_lt // total_collateral if total_collateral else 0
    hf = UINT256_MAX if total_debt == 0 else wadDiv(percentMul(total_collateral, avg_lt), total_debt)
    return UserAccountData(total_collateral, total_debt, avg_ltv, avg_lt, hf, has_zero_ltv)


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True, slots=True)
class LiquidationRules:
    name: str
    revisions: tuple[int, ...]
    close_factor_model: Literal["v3.0", "v3.3"]
    DEFAULT_LIQUIDATION_CLOSE_FACTOR: int = 5_000
    MAX_LIQUIDATION_CLOSE_FACTOR: int = 10_000
    CLOSE_FACTOR_HF_THRESHOLD: int = 95 * 10**16
    MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD: int = 0
    MIN_LEFTOVER_BASE: int = 0
    verified_against_bytecode: bool = False
    notes: str = field(default="", compare=False)


V3_0 = LiquidationRules(
    name="v3.0",
    revisions=(1,),
    close_factor_model="v3.0",
    verified_against_bytecode=True,
    notes="@aave/core-v3 1.19.x; differential-tested against the devnet's real Pool",
)
V3_3 = LiquidationRules(
    name="v3.3",
    revisions=(7,),
    close_factor_model="v3.3",
    MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD=2000 * 10**8,
    MIN_LEFTOVER_BASE=1000 * 10**8,
    notes="aave-v3-origin 3.3 (PoolInstance.POOL_REVISION = 7); ported from source, not bytecode-tested",
)
_BY_REVISION = {rev: rules for rules in (V3_0, V3_3) for rev in rules.revisions}


def rules_for_revision(revision: int) -> LiquidationRules:
    """The rule set of a pool whose ``POOL_REVISION()`` is ``revision``; any other revision is refused."""
    try:
        return _BY_REVISION[revision]
    except KeyError:
        known = ", ".join(f"{rev} ({r.name})" for rev, r in sorted(_BY_REVISION.items()))
        raise UnknownPoolRevisionError(
            f"Aave pool revision {revision} has no liquidation rule set here (known: {known}); revisions 2-6 "
            "(v3.0.x patch releases, v3.1, v3.2) and 8+ (v3.4+) changed liquidation details and are refused "
            "rather than guessed"
        ) from None


# --------------------------------------------------------------------------- liquidation
def liquidation_amounts(
    debt_to_cover: int,
    collateral_price: int,
    collateral_decimals: int,
    debt_price: int,
    debt_decimals: int,
    user_collateral_balance: int,
    liquidation_bonus: int,
    liquidation_protocol_fee: int,
) -> tuple[int, int, int]:
    """``_calculateAvailableCollateralToLiquidate``: (collateral to the liquidator, debt repaid, protocol fee).

    The collateral taken from the user is the first plus the third.
    """
    collateral_unit, debt_unit = 10**collateral_decimals, 10**debt_decimals
    base_collateral = _check(debt_price * debt_to_cover * collateral_unit) // (collateral_price * debt_unit)
    max_collateral = percentMul(base_collateral, liquidation_bonus)
    if max_collateral > user_collateral_balance:
        collateral_amount = user_collateral_balance
        debt_needed = percentDiv(
            _check(collateral_price * collateral_amount * debt_unit) // (debt_price * collateral_unit),
            liquidation_bonus,
        )
    else:
        collateral_amount = max_collateral
        debt_needed = debt_to_cover
    if liquidation_protocol_fee != 0:
        bonus_collateral = collateral_amount - percentDiv(collateral_amount, liquidation_bonus)
        fee = percentMul(bonus_collateral, liquidation_protocol_fee)
        return collateral_amount - fee, debt_needed, fee
    return collateral_amount, debt_needed, 0


@dataclass(frozen=True, slots=True)
class LiquidationOutcome:
    """What ``liquidationCall(collateral, debt, user, debtToCover, receiveAToken=false)`` does."""

    health_factor: int  # before
    max_liquidatable_debt: int
    debt_repaid: int  # pulled from the liquidator
    collateral_to_liquidator: int  # underlying sent to the liquidator
    protocol_fee: int  # collateral aTokens sent to the treasury
    user_collateral_before: int
    user_debt_before: int  # stable + variable in the debt reserve
    user_scaled_a_token_after: int
    user_scaled_variable_debt_after: int
    user_collateral_after: int  # aToken.balanceOf(user) right after
    user_variable_debt_after: int  # variableDebtToken.balanceOf(user) right after
    treasury_scaled_increase: int  # scaled aTokens the treasury receives
    collateral_disabled: bool  # the user's collateral flag is cleared
    borrowing_cleared: bool  # the user's borrowing flag is cleared
    bad_debt_cleanup: bool = False  # v3.3: no collateral left, remaining debt written off as deficit

    @property
    def collateral_seized(self) -> int:
        return self.collateral_to_liquidator + self.protocol_fee


def _burn_scaled(scaled_balance: int, amount: int, index: int) -> int:
    """ScaledBalanceTokenBase._burnScaled: returns the new scaled balance or raises the revert."""
    amount_scaled = rayDiv(amount, index)
    if amount_scaled == 0:
        raise LiquidationRevert(INVALID_BURN_AMOUNT, "INVALID_BURN_AMOUNT")
    if amount_scaled > scaled_balance:
        raise LiquidationRevert(PANIC_ARITHMETIC, "scaled burn exceeds balance")
    return scaled_balance - amount_scaled


def simulate_liquidation_call(
    rules: LiquidationRules,
    reserves: Sequence[ReserveState],
    positions: Mapping[str, UserReserve],
    collateral_asset: str,
    debt_asset: str,
    debt_to_cover: int,
    timestamp: int,
    user_emode_category: int = 0,
    emode: EModeCategory | None = None,
) -> LiquidationOutcome:
    """Predict ``liquidationCall`` with ``receiveAToken = false`` at block ``timestamp``.

    Raises :class:`LiquidationRevert` with the code the real pool reverts with.  The collateral and debt
    assets must differ (the same-asset case touches one reserve twice and is not modelled).
    """
    if collateral_asset == debt_asset:
        raise ValueError("same-asset liquidation is not modelled")
    by_asset = {r.asset: r for r in reserves}
    coll, debt = by_asset[collateral_asset], by_asset[debt_asset]
    empty = UserReserve()
    pc, pd = positions.get(collateral_asset, empty), positions.get(debt_asset, empty)

    account = calculate_user_account_data(reserves, positions, timestamp, user_emode_category, emode)
    debt_index = debt.normalized_debt(timestamp)
    coll_index = coll.normalized_income(timestamp)
    variable_debt = rayMul(pd.scaled_variable_debt, debt_index)
    total_debt = variable_debt + pd.stable_debt
    hf = account.health_factor
    user_collateral = rayMul(pc.scaled_a_token_balance, coll_index)

    in_emode = user_emode_category != 0 and emode is not None and coll.emode_category == user_emode_category
    bonus = emode.liquidation_bonus if (in_emode and emode is not None) else coll.liquidation_bonus
    coll_price = emode.price if (in_emode and emode is not None and emode.price) else coll.price
    debt_price = (
        emode.price if (user_emode_category != 0 and emode is not None and emode.price) else debt.price
    )

    if rules.close_factor_model == "v3.0":
        close_factor = (
            rules.DEFAULT_LIQUIDATION_CLOSE_FACTOR
            if hf > rules.CLOSE_FACTOR_HF_THRESHOLD
            else rules.MAX_LIQUIDATION_CLOSE_FACTOR
        )
        max_debt = percentMul(total_debt, close_factor)
    _validate(coll, debt, pc, hf, total_debt)
    if rules.close_factor_model == "v3.3":
        debt_unit, coll_unit = 10**debt.decimals, 10**coll.decimals
        debt_base = total_debt * debt_price // debt_unit
        coll_base = user_collateral * coll_price // coll_unit
        max_debt = total_debt
        if (
            coll_base >= rules.MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and debt_base >= rules.MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and hf > rules.CLOSE_FACTOR_HF_THRESHOLD
        ):
            default_base = percentMul(account.total_debt_base, rules.DEFAULT_LIQUIDATION_CLOSE_FACTOR)
            if debt_base > default_base:
                max_debt = default_base * debt_unit // debt_price
    actual_debt = min(debt_to_cover, max_debt)

    to_liquidator, actual_debt, fee = liquidation_amounts(
        actual_debt,
        coll_price,
        coll.decimals,
        debt_price,
        debt.decimals,
        user_collateral,
        bonus,
        coll.liquidation_protocol_fee,
    )

    bad_debt = False
    if rules.close_factor_model == "v3.3":
        if actual_debt < total_debt and to_liquidator + fee < user_collateral:
            debt_left = (total_debt - actual_debt) * debt_price // 10**debt.decimals
            coll_left = (user_collateral - to_liquidator - fee) * coll_price // 10**coll.decimals
            if not (debt_left >= rules.MIN_LEFTOVER_BASE and coll_left >= rules.MIN_LEFTOVER_BASE):
                raise LiquidationRevert(MUST_NOT_LEAVE_DUST, "MUST_NOT_LEAVE_DUST")
        seized_base = (to_liquidator + fee) * coll_price // 10**coll.decimals
        bad_debt = account.total_collateral_base == seized_base

    # _burnDebtTokens: variable first, the rest from stable debt
    if variable_debt >= actual_debt:
        scaled_debt_after = _burn_scaled(pd.scaled_variable_debt, actual_debt, debt_index)
    else:
        scaled_debt_after = (
            _burn_scaled(pd.scaled_variable_debt, variable_debt, debt_index)
            if variable_debt != 0
            else pd.scaled_variable_debt
        )
    # _burnCollateralATokens, then the protocol fee to the treasury
    scaled_coll_after = _burn_scaled(pc.scaled_a_token_balance, to_liquidator, coll_index)
    treasury_scaled = 0
    seized_as_computed = to_liquidator + fee  # the collateral flag check uses the fee before the 1-wei cap
    if fee != 0:
        if rayDiv(fee, coll_index) > scaled_coll_after:
            fee = rayMul(scaled_coll_after, coll_index)
        treasury_scaled = rayDiv(fee, coll_index)
        if treasury_scaled > scaled_coll_after:
            raise LiquidationRevert(PANIC_ARITHMETIC, "fee transfer exceeds balance")
        scaled_coll_after -= treasury_scaled
    return LiquidationOutcome(
        health_factor=hf,
        max_liquidatable_debt=max_debt,
        debt_repaid=actual_debt,
        collateral_to_liquidator=to_liquidator,
        protocol_fee=fee,
        user_collateral_before=user_collateral,
        user_debt_before=total_debt,
        user_scaled_a_token_after=scaled_coll_after,
        user_scaled_variable_debt_after=scaled_debt_after,
        user_collateral_after=rayMul(scaled_coll_after, coll_index),
        user_variable_debt_after=rayMul(scaled_debt_after, debt_index),
        treasury_scaled_increase=treasury_scaled,
        collateral_disabled=seized_as_computed == user_collateral,
        borrowing_cleared=total_debt == actual_debt,
        bad_debt_cleanup=bad_debt,
    )


def _validate(coll: ReserveState, debt: ReserveState, pc: UserReserve, hf: int, total_debt: int) -> None:
    """``ValidationLogic.validateLiquidationCall`` (no price-oracle sentinel: L1 markets have none)."""
    if not (coll.active and debt.active):
        raise LiquidationRevert(RESERVE_INACTIVE, "RESERVE_INACTIVE")
    if coll.paused or debt.paused:
        raise LiquidationRevert(RESERVE_PAUSED, "RESERVE_PAUSED")
    if hf >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        raise LiquidationRevert(HEALTH_FACTOR_NOT_BELOW_THRESHOLD, "HEALTH_FACTOR_NOT_BELOW_THRESHOLD")
    if not (coll.liquidation_threshold != 0 and pc.using_as_collateral):
        raise LiquidationRevert(COLLATERAL_CANNOT_BE_LIQUIDATED, "COLLATERAL_CANNOT_BE_LIQUIDATED")
    if total_debt == 0:
        raise LiquidationRevert(
            SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER, "SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER"
        )


def with_price(reserve: ReserveState, price: int) -> ReserveState:
    """A copy of ``reserve`` at another oracle price."""
    return replace(reserve, price=price)
