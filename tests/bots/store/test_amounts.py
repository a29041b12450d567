"""Exact 256-bit amounts: round trips and sums on SQLite (decimal TEXT) and PostgreSQL (NUMERIC(78,0))."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError

from bots.store import PnlSnapshot, Store, Trade
from bots.store.types import INT256_MAX, INT256_MIN, UINT256_MAX, Int256, Uint256

BLOCK = "0x" + "aa" * 32
TX = "0x" + "bb" * 32

# (gas_spent: Uint256, realized: Int256) pairs; the brief's edge values plus neighbours of the limits.
CASES = [
    (0, 0),
    (2**63, 2**63),
    (2**63 - 1, -(2**63)),
    (UINT256_MAX, INT256_MIN),
    (UINT256_MAX - 1, INT256_MAX),
    (1, -1),
]


async def _trade(store: Store, log_index: int, amount: int, *, block: int = 1) -> None:
    await store.record_trade(
        chain_id=1, block_number=block, block_hash=BLOCK, log_index=log_index, tx_index=0, tx_hash=TX,
        pool="0x" + "11" * 20, token_in="0x" + "22" * 20, token_out="0x" + "33" * 20,
        amount_in=amount, amount_out=log_index,
    )  # fmt: skip


async def test_amounts_round_trip_exactly(db_url: str) -> None:
    """0, 2**63, 2**256-1 (Uint256) and -2**255, 2**255-1 (Int256) come back as the same Python ints."""
    async with await Store.open(db_url, upgrade=True) as store:
        for i, (unsigned, signed) in enumerate(CASES):
            await store.record_pnl(
                chain_id=1, block_number=1, block_hash=BLOCK, bot="t", token=f"0x{i:040x}",
                realized=signed, gas_spent=unsigned, net=signed,
            )  # fmt: skip
        async with store.sessionmaker() as session:
            rows = (await session.execute(select(PnlSnapshot).order_by(PnlSnapshot.token))).scalars().all()
        assert [(r.gas_spent, r.realized, r.net) for r in rows] == [(u, s, s) for u, s in CASES]
        assert all(type(r.gas_spent) is int and type(r.realized) is int for r in rows)

        # How it is stored: exact decimal TEXT on SQLite, NUMERIC(78,0) on PostgreSQL — never REAL.
        async with store.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                raw = (
                    await conn.execute(
                        text("SELECT typeof(gas_spent), gas_spent, realized FROM pnl_snapshots")
                    )
                ).all()
                assert {r[0] for r in raw} == {"text"}
                assert sorted((r[1], r[2]) for r in raw) == sorted((str(u), str(s)) for u, s in CASES)
            else:
                types = (
                    await conn.execute(
                        text(
                            "SELECT column_name, data_type, numeric_precision, numeric_scale "
                            "FROM information_schema.columns WHERE table_name = 'pnl_snapshots' "
                            "AND column_name IN ('gas_spent', 'realized', 'net')"
                        )
                    )
                ).all()
                assert {tuple(r[1:]) for r in types} == {("numeric", 78, 0)}

        # Equality filters on amount columns work on both backends (canonical decimal form).
        async with store.sessionmaker() as session:
            hit = await session.execute(select(PnlSnapshot.token).where(PnlSnapshot.realized == INT256_MIN))
            assert hit.scalars().all() == [f"0x{3:040x}"]


async def test_sums_are_exact_and_identical(db_url: str) -> None:
    """sum([2**256-1, 2**255, 12345]) is the exact int on both backends (beyond 2**256, even)."""
    values = [UINT256_MAX, 2**255, 12345]
    async with await Store.open(db_url, upgrade=True) as store:
        assert await store.total(Trade.amount_in) == 0  # empty table
        for i, value in enumerate(values):
            await _trade(store, i, value)
        await _trade(store, 99, 7, block=2)
        exact = UINT256_MAX + 2**255 + 12345
        assert await store.total(Trade.amount_in, Trade.block_number == 1) == exact
        assert await store.total(Trade.amount_in) == exact + 7
        assert await store.total(Trade.amount_in, Trade.block_number == 3) == 0

        for i, (unsigned, signed) in enumerate(CASES):
            await store.record_pnl(
                chain_id=1, block_number=1, block_hash=BLOCK, bot="t", token=f"0x{i:040x}",
                realized=signed, gas_spent=unsigned, net=signed,
            )  # fmt: skip
        assert await store.total(PnlSnapshot.realized) == sum(s for _, s in CASES)
        assert await store.total(PnlSnapshot.gas_spent) == sum(u for u, _ in CASES)

        async with store.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                # Why sum_amount sums SQLite in Python: SQL SUM over the TEXT column goes through REAL.
                naive = (
                    await conn.execute(text("SELECT SUM(amount_in) FROM trades WHERE block_number = 1"))
                ).scalar()
                assert isinstance(naive, float) and int(naive) != exact


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("gas_spent", 2**256, ValueError),
        ("gas_spent", -1, ValueError),
        ("realized", INT256_MIN - 1, ValueError),
        ("realized", INT256_MAX + 1, ValueError),
        ("gas_spent", 1.0, TypeError),
        ("realized", True, TypeError),
        ("gas_spent", "5", TypeError),
    ],
)
async def test_out_of_range_or_inexact_amounts_are_refused(
    sqlite_url: str, field: str, value: object, error: type[Exception]
) -> None:
    """Values outside the type, floats, bools and strings never reach the database."""
    async with await Store.open(sqlite_url, upgrade=True) as store:
        row = {"realized": 0, "gas_spent": 0, "net": 0, field: value}
        with pytest.raises(StatementError) as info:
            await store.record_pnl(chain_id=1, block_number=1, block_hash=BLOCK, bot="t", token="0x0", **row)  # type: ignore[arg-type]
        assert isinstance(info.value.orig, error)
        assert (await store.counts())["pnl_snapshots"] == 0


DIALECTS = (sqlite.dialect(), postgresql.dialect())  # type: ignore[no-untyped-call]


@given(st.integers(min_value=INT256_MIN, max_value=UINT256_MAX))
def test_bind_then_result_is_the_identity(value: int) -> None:
    """For every value in range, what the column type sends is what it reads back (both dialects)."""
    for column_type in (Uint256(), Int256()):
        if not column_type._min <= value <= column_type._max:
            continue
        for dialect in DIALECTS:
            stored = column_type.process_bind_param(value, dialect)
            assert column_type.process_result_value(stored, dialect) == value
            assert type(stored) is (str if dialect.name == "sqlite" else Decimal)
