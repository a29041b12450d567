"""chains.amm.uniswap_v2 against Uniswap v2-core's published getAmountOut cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chains.amm.uniswap_v2 import (
    InsufficientInputAmountError,
    InsufficientLiquidityError,
    get_amount_in,
    get_amount_out,
    get_amounts_out,
)

VECTORS = json.loads((Path(__file__).parents[2] / "data" / "uniswap_v2_get_amount_out.json").read_text())


@pytest.mark.parametrize("case", VECTORS["getAmountOut"])
def test_v2_core_vectors(case: dict[str, str]) -> None:
    got = get_amount_out(int(case["amountIn"]), int(case["reserveIn"]), int(case["reserveOut"]))
    assert got == int(case["expected"])


@given(
    amount_out=st.integers(1, 10**30),
    reserve_in=st.integers(1000, 10**33),
    reserve_out=st.integers(1000, 10**33),
)
def test_amount_in_buys_at_least_the_output(amount_out: int, reserve_in: int, reserve_out: int) -> None:
    if amount_out >= reserve_out:
        with pytest.raises(InsufficientLiquidityError):
            get_amount_in(amount_out, reserve_in, reserve_out)
        return
    need = get_amount_in(amount_out, reserve_in, reserve_out)
    # The library rounds up with `+ 1`, so `need` always suffices (it may exceed the minimum by one wei).
    assert get_amount_out(need, reserve_in, reserve_out) >= amount_out


def test_errors_and_multihop() -> None:
    with pytest.raises(InsufficientInputAmountError):
        get_amount_out(0, 10, 10)
    with pytest.raises(InsufficientLiquidityError):
        get_amount_out(1, 0, 10)
    hops = [(5 * 10**18, 10 * 10**18), (10 * 10**18, 5 * 10**18)]
    assert get_amounts_out(10**18, hops) == [
        10**18,
        1662497915624478906,
        get_amount_out(1662497915624478906, 10 * 10**18, 5 * 10**18),
    ]
