"""A made-up pool kind that exists only in the tests: a constant-sum pool ("one token for one, minus a fee").

It is the worked example of docs/adding-a-pool-kind.md and is built the way a real kind is, without touching any
file outside ``tests/``: the chains side (state, exact math, state event, pool-state document; no executor hop:
``ArbExecutor`` cannot swap it) is one :class:`chains.amm.registry.PoolProtocol`, the route finder's side one
adapter class and one :class:`analytics.routing.RouteKind`; :func:`register` makes the two registrations and
:func:`unregister` undoes them.

The pool: ``out = amount_in * (10_000 - fee_bps) // 10_000`` (raw units, both tokens alike), reverting when the
pool does not hold ``out``; its state changes through ``Balances(uint256 balance0, uint256 balance1)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from analytics.routing import RouteKind, RoutePool, register_route_kind, unregister_route_kind
from chains.amm.registry import (
    PoolEventError,
    PoolJournal,
    PoolProtocol,
    QuoteResult,
    SwapQuoteError,
    doc_int,
    event_topic,
    register_protocol,
    unregister_protocol,
)

CONSTANT_SUM = "test_constant_sum"  # the kind: a string of its own, not a chains.kinds.PoolKind member
T_BALANCES = event_topic("Balances(uint256,uint256)")
_SAVED = ("balance0", "balance1")


# ---------------------------------------------------------------------------------------------- chains side
@dataclass(slots=True, eq=False)
class ConstantSumState:
    address: str
    token0: str
    token1: str
    balance0: int
    balance1: int
    fee_bps: int = 10


def get_amount_out(amount_in: int, balance_out: int, fee_bps: int) -> int:
    """The pool's exact math (what its contract would compute)."""
    if amount_in <= 0:
        raise SwapQuoteError("ConstantSum: amount_in must be positive")
    out = amount_in * (10_000 - fee_bps) // 10_000
    if out > balance_out:
        raise SwapQuoteError("ConstantSum: INSUFFICIENT_BALANCE")
    return out


def get_amount_in(amount_out: int, balance_out: int, fee_bps: int) -> int:
    if amount_out <= 0 or amount_out > balance_out:
        raise SwapQuoteError("ConstantSum: INSUFFICIENT_BALANCE")
    return -(-amount_out * 10_000 // (10_000 - fee_bps))


def on_balances(
    journal: PoolJournal, address: str, pool: ConstantSumState, data: str, topics: Sequence[str]
) -> None:
    if len(data) != 130:
        raise PoolEventError(f"Balances data has {len(data)} characters, not 130")
    journal.save_fields(address, pool, _SAVED)
    pool.balance0 = int(data[2:66], 16)
    pool.balance1 = int(data[66:130], 16)


def quote(
    pool: ConstantSumState,
    zero_for_one: bool,
    amount_in: int | None,
    amount_out: int | None,
    limit: int | None,
) -> QuoteResult:
    if limit is not None:
        raise SwapQuoteError("a constant-sum pool has no price limit")
    b_out = pool.balance1 if zero_for_one else pool.balance0
    if amount_in is not None:
        got_in, got_out = amount_in, get_amount_out(amount_in, b_out, pool.fee_bps)
    else:
        assert amount_out is not None
        got_in, got_out = get_amount_in(amount_out, b_out, pool.fee_bps), amount_out
    return QuoteResult(got_in, got_out, (1, 1))  # the price is one for one at any balances


def to_doc(pool: ConstantSumState) -> dict[str, Any]:
    return {"balance0": str(pool.balance0), "balance1": str(pool.balance1), "fee_bps": str(pool.fee_bps)}


def from_doc(doc: Mapping[str, Any]) -> ConstantSumState:
    return ConstantSumState(
        str(doc["address"]),
        str(doc["token0"]),
        str(doc["token1"]),
        doc_int(doc, "balance0", 0, 2**256 - 1),
        doc_int(doc, "balance1", 0, 2**256 - 1),
        doc_int(doc, "fee_bps", 0, 9_999),
    )


PROTOCOL = PoolProtocol(
    kind=CONSTANT_SUM,
    state_type=ConstantSumState,
    copy=replace,
    events={T_BALANCES: on_balances},
    quote=quote,
    doc_kind="test_constant_sum",
    to_doc=to_doc,
    from_doc=from_doc,
    hop=None,  # ArbExecutor has no branch for it: routed, never sent
)


# ---------------------------------------------------------------------------------------------- analytics side
class ConstantSumRoutePool(RoutePool):
    kind = CONSTANT_SUM  # type: ignore[assignment]  # a kind outside chains.kinds.PoolKind

    def __init__(self, pool: ConstantSumState) -> None:
        self.state = pool
        self.address = pool.address.lower()
        self.tokens = (pool.token0.lower(), pool.token1.lower())

    @classmethod
    def from_state(
        cls, address: str, pool: ConstantSumState, tokens: tuple[str, str] | None
    ) -> ConstantSumRoutePool:
        return cls(pool)

    def replace_state(self, new: Any) -> None:
        if not isinstance(new, ConstantSumState):
            super().replace_state(new)
        self.state = new

    def fee(self) -> int:
        return self.state.fee_bps

    def quote(self, i: int, j: int, amount_in: int) -> int:
        return get_amount_out(amount_in, self.liquidity()[j], self.state.fee_bps)

    def mobius(self, i: int, j: int) -> tuple[float, float, float]:
        # out = g*x until the pool runs dry: a constant-product pool as deep as the output side is close enough
        g = (10_000 - self.state.fee_bps) / 10_000
        depth = float(self.liquidity()[j])
        return g * depth, depth, g

    def liquidity(self) -> list[int]:
        return [self.state.balance0, self.state.balance1]


ROUTE_KIND = RouteKind(CONSTANT_SUM, gas_per_hop=50_000, from_state=ConstantSumRoutePool.from_state)


# ---------------------------------------------------------------------------------------------- registrations
def register() -> None:
    register_protocol(CONSTANT_SUM, PROTOCOL)
    register_route_kind(CONSTANT_SUM, ROUTE_KIND)


def unregister() -> None:
    unregister_route_kind(CONSTANT_SUM)
    unregister_protocol(CONSTANT_SUM)
