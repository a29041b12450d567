"""All 128 swap cases of Uniswap v3-core's pool swap snapshot (``tests/data/v3_core_pool_swap_vectors.json``)
through chains.amm.uniswap_v3.pool: positions minted with ``update_position``, then ``swap``."""

from __future__ import annotations

import copy
import json
from decimal import ROUND_HALF_UP, Context, Decimal
from pathlib import Path
from typing import Any

import pytest

from chains.amm.uniswap_v3.errors import ASError, IncompleteOutputError, LOKError, SPLError, TLUError
from chains.amm.uniswap_v3.pool import (
    V3PoolState,
    apply_swap,
    quote_exact_input,
    quote_exact_output,
    swap,
    update_position,
)
from chains.amm.uniswap_v3.tick_math import MAX_SQRT_RATIO, MIN_SQRT_RATIO

D = json.loads((Path(__file__).parents[2] / "data" / "v3_core_pool_swap_vectors.json").read_text())
CASES: list[dict[str, Any]] = D["cases"]
LIMITS = {"MIN_SQRT_RATIO+1": MIN_SQRT_RATIO + 1, "MAX_SQRT_RATIO-1": MAX_SQRT_RATIO - 1}
_CTX20 = Context(prec=20, rounding=ROUND_HALF_UP)  # decimal.js defaults used by the test helper


def _pool(name: str) -> tuple[V3PoolState, int, int]:
    """The set-up ``name`` and the token balances its mints paid into the pool."""
    p = D["pools"][name]
    state = V3PoolState.initialized(p["feePips"], p["tickSpacing"], int(p["startingSqrtPriceX96"]))
    paid0 = paid1 = 0
    for pos in p["positions"]:
        a0, a1 = update_position(state, pos["tickLower"], pos["tickUpper"], int(pos["liquidity"]))
        paid0, paid1 = paid0 + a0, paid1 + a1
    return state, paid0, paid1


def _precision5(x: Decimal) -> str:
    """decimal.js ``toPrecision(5)`` (ROUND_HALF_UP; exponential notation when the exponent >= 5)."""
    q = Context(prec=5, rounding=ROUND_HALF_UP).plus(x)
    exp = q.adjusted()
    digits = "".join(map(str, q.as_tuple().digits)).ljust(5, "0")[:5]
    if exp >= 5:
        return f"{digits[0]}.{digits[1:]}e+{exp}"
    return format(q.quantize(Decimal(1).scaleb(exp - 4)), "f")


def _format_price(sqrt_price_x96: int) -> str:
    q96 = _CTX20.power(Decimal(2), 96)
    return _precision5(_CTX20.power(_CTX20.divide(Decimal(sqrt_price_x96), q96), 2))


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['case']}" for i, c in enumerate(CASES)])
def test_pool_swap_vector(case: dict[str, Any]) -> None:
    state, paid0, paid1 = _pool(case["pool"])
    before = copy.deepcopy(state)
    sw, exp = case["swap"], case["expected"]
    limit = LIMITS.get(sw["sqrtPriceLimitX96"]) or int(sw["sqrtPriceLimitX96"])
    kwargs = {
        "zero_for_one": sw["zeroForOne"],
        "amount_specified": int(sw["amountSpecified_poolSign"]),
        "sqrt_price_limit_x96": limit,
    }
    assert exp["tickBefore"] == state.tick
    assert exp["poolPriceBefore"] == _format_price(state.sqrt_price_x96)
    if case["kind"] == "error":
        assert exp["swapError"].endswith("revert SPL")
        assert (paid0, paid1) == (int(exp["poolBalance0"]), int(exp["poolBalance1"]))
        with pytest.raises(SPLError) as e:
            swap(state, **kwargs)
        assert e.value.reason == "SPL"
        return
    r = swap(state, **kwargs)
    assert state == before  # pure: the state is not touched
    assert (paid0, paid1) == (int(exp["amount0Before"]), int(exp["amount1Before"]))
    assert (r.amount0, r.amount1) == (int(exp["amount0Delta"]), int(exp["amount1Delta"]))
    assert r.tick == exp["tickAfter"]
    assert _format_price(r.sqrt_price_x96) == exp["poolPriceAfter"]
    fg_in, fg_other = ("feeGrowthGlobal0X128Delta", "feeGrowthGlobal1X128Delta")[
        :: 1 if sw["zeroForOne"] else -1
    ]
    assert r.fee_growth_global_x128_delta == int(exp[fg_in]) and int(exp[fg_other]) == 0
    execution = _CTX20.multiply(_CTX20.divide(Decimal(r.amount1), Decimal(r.amount0)), Decimal(-1))
    assert _precision5(execution) == exp["executionPrice"]


def test_all_cases_present() -> None:
    assert len(CASES) == 128 and len(D["pools"]) == 8
    assert sum(c["kind"] == "error" for c in CASES) == 20


def test_swap_reverts() -> None:
    state, _, _ = _pool("medium fee, 1:1 price, 2e18 max range liquidity")
    with pytest.raises(ASError) as e:
        swap(state, zero_for_one=True, amount_specified=0)
    assert e.value.reason == "AS"
    for limit in (MIN_SQRT_RATIO, state.sqrt_price_x96, state.sqrt_price_x96 + 1):
        with pytest.raises(SPLError):
            swap(state, zero_for_one=True, amount_specified=10, sqrt_price_limit_x96=limit)
    for limit in (MAX_SQRT_RATIO, state.sqrt_price_x96, state.sqrt_price_x96 - 1):
        with pytest.raises(SPLError):
            swap(state, zero_for_one=False, amount_specified=10, sqrt_price_limit_x96=limit)
    with pytest.raises(LOKError) as lok:
        swap(V3PoolState(3000, 60, 0, 0, 0), zero_for_one=True, amount_specified=1)
    assert lok.value.reason == "LOK"
    with pytest.raises(TLUError):
        update_position(state, 60, 60, 1)


def test_quotes_and_sync_helpers() -> None:
    state, _, _ = _pool("medium fee, 1:1 price, 0 liquidity, all liquidity around current price")
    r = quote_exact_input(state, True, 10**18)
    assert r.amount0 == 10**18 and r.amount1 < 0 and r.ticks_crossed == 1
    back = quote_exact_output(state, True, -r.amount1)
    assert -back.amount1 == -r.amount1 and back.amount0 <= r.amount0
    with pytest.raises(IncompleteOutputError):
        quote_exact_output(state, True, 10**30)  # more than all the token1 in the pool
    partial = quote_exact_output(state, True, 10**30, sqrt_price_limit=MIN_SQRT_RATIO + 1)
    assert 0 < -partial.amount1 < 10**30
    # event sync: a swap applied, then burning every position empties ticks, bitmap and liquidity
    apply_swap(state, r.sqrt_price_x96, r.tick, r.liquidity)
    assert (state.sqrt_price_x96, state.tick, state.liquidity) == (r.sqrt_price_x96, r.tick, r.liquidity)
    for pos in D["pools"]["medium fee, 1:1 price, 0 liquidity, all liquidity around current price"][
        "positions"
    ]:
        a0, a1 = update_position(state, pos["tickLower"], pos["tickUpper"], -int(pos["liquidity"]))
        assert a0 <= 0 and a1 <= 0
    assert state.ticks == {} and state.bitmap == {} and state.liquidity == 0
