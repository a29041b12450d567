"""Every vector of ``tests/data/uniswap_math_vectors.json`` (Uniswap v3-core TickMath, SqrtPriceMath,
SwapMath; the v2-core and SDK rows too) against chains.amm.uniswap_v3 (and uniswap_v2 for the V2 rows)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from math import isqrt
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from chains.amm.uniswap_v2 import get_amount_in, get_amount_out
from chains.amm.uniswap_v3.errors import UniswapV3Revert
from chains.amm.uniswap_v3.liquidity_amounts import get_liquidity_for_amounts
from chains.amm.uniswap_v3.sqrt_price_math import (
    get_amount0_delta,
    get_amount1_delta,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
)
from chains.amm.uniswap_v3.swap_math import _slow_step, compute_swap_step
from chains.amm.uniswap_v3.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)
from chains.devnet.artifacts import create2_address

V = json.loads((Path(__file__).parents[2] / "data" / "uniswap_math_vectors.json").read_text())
Q96 = 1 << 96
MAX_UINT256 = (1 << 256) - 1


def test_constants() -> None:
    c = V["constants"]
    assert (MIN_TICK, MAX_TICK) == (c["MIN_TICK"], c["MAX_TICK"])
    assert (MIN_SQRT_RATIO, MAX_SQRT_RATIO) == (int(c["MIN_SQRT_RATIO"]), int(c["MAX_SQRT_RATIO"]))


@pytest.mark.parametrize("case", V["getSqrtRatioAtTick"], ids=lambda c: str(c["tick"]))
def test_get_sqrt_ratio_at_tick(case: dict[str, Any]) -> None:
    assert get_sqrt_ratio_at_tick(case["tick"]) == int(case["sqrtPriceX96"])


@pytest.mark.parametrize("case", V["getTickAtSqrtRatio"], ids=lambda c: c["sqrtPriceX96"][:12])
def test_get_tick_at_sqrt_ratio(case: dict[str, Any]) -> None:
    price = int(case["sqrtPriceX96"])
    tick = get_tick_at_sqrt_ratio(price)
    assert tick == case["tick"]
    # the defining property: the greatest tick whose ratio is <= the price
    assert get_sqrt_ratio_at_tick(tick) <= price
    if tick < MAX_TICK:
        assert get_sqrt_ratio_at_tick(tick + 1) > price


def test_tick_math_reverts() -> None:
    for bad in (MIN_TICK - 1, MAX_TICK + 1):
        with pytest.raises(UniswapV3Revert) as e:
            get_sqrt_ratio_at_tick(bad)
        assert e.value.reason == "T"
    for bad in (MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO, 0):
        with pytest.raises(UniswapV3Revert) as e:
            get_tick_at_sqrt_ratio(bad)
        assert e.value.reason == "R"


def _sqrt_price_math(case: dict[str, Any]) -> int:
    fn = case["fn"]
    if fn in ("getNextSqrtPriceFromInput", "getNextSqrtPriceFromOutput"):
        f = get_next_sqrt_price_from_input if fn.endswith("Input") else get_next_sqrt_price_from_output
        return f(int(case["sqrtP"]), int(case["liquidity"]), int(case["amount"]), case["zeroForOne"])
    g = get_amount0_delta if fn == "getAmount0Delta" else get_amount1_delta
    return g(int(case["sqrtA"]), int(case["sqrtB"]), int(case["liquidity"]), case["roundUp"])


@pytest.mark.parametrize("case", V["sqrtPriceMath"], ids=lambda c: c["fn"])
def test_sqrt_price_math(case: dict[str, Any]) -> None:
    if case["expected"] == "REVERT":
        with pytest.raises(UniswapV3Revert):
            _sqrt_price_math(case)
    else:
        assert _sqrt_price_math(case) == int(case["expected"])


@pytest.mark.parametrize("case", V["computeSwapStep"])
def test_compute_swap_step(case: dict[str, Any]) -> None:
    cur, target = int(case["sqrtRatioCurrentX96"]), int(case["sqrtRatioTargetX96"])
    liq, remaining, fee = int(case["liquidity"]), int(case["amountRemaining"]), case["feePips"]
    got = compute_swap_step(cur, target, liq, remaining, fee)
    exp = case["expected"]
    nxt = exp["sqrtRatioNextX96"]
    if nxt.startswith("= getNextSqrtPriceFromInput"):
        expected_next = get_next_sqrt_price_from_input(cur, liq, remaining - int(exp["feeAmount"]), False)
    elif nxt.startswith("= getNextSqrtPriceFromOutput"):
        expected_next = get_next_sqrt_price_from_output(cur, liq, -remaining, False)
    else:
        expected_next = int(nxt)
    assert got == (expected_next, int(exp["amountIn"]), int(exp["amountOut"]), int(exp["feeAmount"]))
    assert _slow_step(cur, target, liq, remaining, fee) == got  # the inlined step equals the library form


# --------------------------------------------------------------------------- v2-core rows
def test_v2_core_rows() -> None:
    v2 = V["uniswap_v2_core"]
    for c in v2["getAmountOut"]:
        assert get_amount_out(int(c["amountIn"]), int(c["reserveIn"]), int(c["reserveOut"])) == int(
            c["expected"]
        )
    for c in v2["optimistic_flash_swap_limits"]:
        # paying back the borrowed token: the K check with the 0.3 % fee on the input leg
        amount_in, amount_out = int(c["inputAmount"]), int(c["outputAmount"])
        assert amount_out == amount_in * 997 // 1000 or amount_in == -(-amount_out * 1000 // 997)
    m = v2["mint"]
    assert isqrt(int(m["token0"]) * int(m["token1"])) == int(m["expectedLiquidity"])


def test_v2_sdk_rows() -> None:
    sdk = V["uniswap_v2_sdk"]
    for c in sdk["computePairAddress"]:
        factory = c["factory"].split()[0]
        a, b = sorted((c["tokenA"], c["tokenB"]), key=lambda x: int(x, 16))
        salt = keccak(bytes.fromhex(a[2:] + b[2:]))
        assert create2_address(factory, salt, c["initCodeHash"]) == c["expected"]
    # fee-on-transfer: BLASTERS (sell 350 bps) -> BLAST (buy 400 bps), reserves 10000/10000 raw
    r = 10_000
    cases = sdk["fee_on_transfer"]["cases"]
    out_with = (get_amount_out(100 * 9650 // 10000, r, r) * 9600) // 10000
    assert out_with == int(cases[0]["expected_output_raw"])
    # getInputAmount: gross up the output for the buy tax, then the input for the sell tax (quotient + 1)
    before_buy_tax = 91 * 10000 // 9600 + 1
    assert get_amount_in(before_buy_tax, r, r) * 10000 // 9650 + 1 == int(cases[1]["expected_input_raw"])
    assert get_amount_out(100, r, r) == int(cases[2]["expected_output_raw"])
    assert get_amount_in(91, r, r) == int(cases[3]["expected_input_raw"])


# --------------------------------------------------------------------------- v3-sdk rows
def _encode_sqrt_ratio_x96(amount1: int, amount0: int) -> int:
    return isqrt((amount1 << 192) // amount0)


def test_v3_sdk_encode_and_addresses() -> None:
    sdk = V["uniswap_v3_sdk"]
    for c in sdk["encodeSqrtRatioX96"]:
        assert _encode_sqrt_ratio_x96(int(c["amount1"]), int(c["amount0"])) == int(c["expected"])
    for c in sdk["computePoolAddress"]:
        a, b = sorted((c["tokenA"], c["tokenB"]), key=lambda x: int(x, 16))
        salt = keccak(bytes.fromhex(a[2:].rjust(64, "0") + b[2:].rjust(64, "0") + f"{c['fee']:064x}"))
        assert create2_address(c["factory"].split()[0], salt, c["initCodeHash"]) == c["expected"]


def _to_significant(x: Fraction, digits: int = 5) -> str:
    """The SDK's ``toSignificant``: ROUND_HALF_UP to ``digits`` significant digits, trailing zeros dropped."""
    ctx = Context(prec=digits, rounding=ROUND_HALF_UP)
    d = ctx.divide(Decimal(x.numerator), Decimal(x.denominator))
    return format(d.normalize(), "f")


def _tick_to_price(tick: int, base_sorts_first: bool, base_decimals: int, quote_decimals: int) -> Fraction:
    ratio_x192 = get_sqrt_ratio_at_tick(tick) ** 2
    raw = Fraction(ratio_x192, 1 << 192) if base_sorts_first else Fraction(1 << 192, ratio_x192)
    return raw * Fraction(10**base_decimals, 10**quote_decimals)


def test_v3_sdk_tick_to_price() -> None:
    # token0 < token1 < token2 by address; token2 has 6 decimals; "(18d)" otherwise
    order = {"token0": (0, 18), "token1": (1, 18), "token2": (2, 6)}
    for c in V["uniswap_v3_sdk"]["tickToPrice_5sig"]:
        (bi, bd), (qi, qd) = order[c["base"][:6]], order[c["quote"][:6]]
        assert _to_significant(_tick_to_price(c["tick"], bi < qi, bd, qd)) == c["expected"], c


def _price_to_closest_tick(raw_price: Fraction, base_sorts_first: bool) -> int:
    """The SDK's ``priceToClosestTick`` on a raw (undecimalled) price of quote per base."""
    if base_sorts_first:
        sqrt_ratio = _encode_sqrt_ratio_x96(raw_price.numerator, raw_price.denominator)
    else:
        sqrt_ratio = _encode_sqrt_ratio_x96(raw_price.denominator, raw_price.numerator)
    tick = get_tick_at_sqrt_ratio(sqrt_ratio)
    nxt = _tick_to_price(tick + 1, base_sorts_first, 0, 0)
    if base_sorts_first:
        if not raw_price < nxt:
            tick += 1
    elif not raw_price > nxt:
        tick += 1
    return tick


def test_v3_sdk_price_to_closest_tick() -> None:
    rows = V["uniswap_v3_sdk"]["priceToClosestTick"]
    # "1 token1 = 1800 token0": base token1, quote token0 (base sorts after quote)
    assert _price_to_closest_tick(Fraction(1800, 1), False) == rows[0]["expected"]
    # "100e18 token0 : 101e6 token2": base token0, quote token2
    assert _price_to_closest_tick(Fraction(101 * 10**6, 100 * 10**18), True) == rows[1]["expected"]


def _sdk_max_liquidity_imprecise(p: int, a: int, b: int, amount0: int, amount1: int) -> int:
    """The SDK's ``maxLiquidityForAmounts(useFullPrecision=false)``: unbounded integers, no uint128 cast."""

    def l0(x: int, y: int) -> int:
        return amount0 * (x * y // Q96) // (y - x)

    def l1(x: int, y: int) -> int:
        return amount1 * Q96 // (y - x)

    if p <= a:
        return l0(a, b)
    if p < b:
        return min(l0(p, b), l1(a, p))
    return l1(a, b)


def test_v3_sdk_max_liquidity_for_amounts() -> None:
    sdk = V["uniswap_v3_sdk"]
    rows = [
        *sdk["maxLiquidityForAmounts_imprecise_price_inside"],
        *sdk["maxLiquidityForAmounts_imprecise_price_below"],
        *sdk["maxLiquidityForAmounts_imprecise_price_above"],
    ]
    assert len(rows) == 4
    for c in rows:
        amount0 = MAX_UINT256 if c["amount0"] == "MaxUint256" else int(c["amount0"])
        args = (int(c["sqrtP"]), int(c["sqrtA"]), int(c["sqrtB"]), amount0, int(c["amount1"]))
        assert _sdk_max_liquidity_imprecise(*args) == int(c["expected"])
        if amount0 != MAX_UINT256:  # the periphery's LiquidityAmounts is the same formula within uint256
            assert get_liquidity_for_amounts(*args) == int(c["expected"])
