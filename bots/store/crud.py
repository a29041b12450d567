"""Writes and reads that must behave the same on SQLite and PostgreSQL.

* :func:`insert_ignore` — idempotent insert keyed by a table's natural unique key
  (``INSERT … ON CONFLICT DO NOTHING`` on both backends);
* :func:`upsert` — insert or update the given columns on the same key;
* :func:`delete_from_block` — reorg support: remove every chain-derived row at or after a block;
* :func:`sum_amount` — an exact sum of a :class:`~bots.store.types.Uint256` / ``Int256`` column.

Why :func:`sum_amount` sums SQLite in Python: on SQLite the amounts are decimal TEXT.  ``SUM(text)`` converts
to REAL (53-bit mantissa, so 2**256-1 comes back rounded), and ``CAST(x AS INTEGER)`` saturates at 2**63-1;
SQLite has no exact wide-integer type at all.  So on SQLite the selected values are streamed to Python
(converted to ``int`` by the column type) and added there — exact and O(rows), fine for a local file.  On
PostgreSQL the column is ``NUMERIC(78,0)`` and ``SUM(numeric)`` is exact, so the sum runs on the server and one
``Decimal`` (converted to ``int``) comes back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Numeric, Table, delete, func, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bots.store.models import CHAIN_TABLES, Base, Bundle

__all__ = ["delete_from_block", "dialect_name", "insert_ignore", "sum_amount", "table_of", "upsert"]


async def dialect_name(session: AsyncSession) -> str:
    """``"sqlite"`` or ``"postgresql"``: the backend the session talks to."""
    conn = await session.connection()
    return conn.dialect.name


def table_of(model: type[Base]) -> Table:
    """The Core :class:`Table` of a mapped class."""
    return cast(Table, model.__table__)


def _insert_for(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"mevsuite store supports sqlite and postgresql, not {dialect}")


async def insert_ignore(
    session: AsyncSession,
    model: type[Base],
    rows: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    key: Sequence[str],
) -> int:
    """Insert ``rows`` into ``model``'s table, skipping rows whose ``key`` columns already exist.

    Returns the number of rows actually inserted (0 when everything was there already).
    """
    batch = [rows] if isinstance(rows, Mapping) else list(rows)
    if not batch:
        return 0
    conn = await session.connection()
    table = table_of(model)
    # RETURNING counts what was really inserted on both backends (DBAPI rowcount is -1 for some paths).
    stmt = (
        _insert_for(conn.dialect.name)(table)
        .on_conflict_do_nothing(index_elements=list(key))
        .returning(*table.primary_key)
    )
    result = await conn.execute(stmt, batch)
    return len(result.all())


async def upsert(
    session: AsyncSession,
    model: type[Base],
    row: Mapping[str, Any],
    key: Sequence[str],
    update_columns: Iterable[str],
) -> None:
    """Insert ``row``; if its ``key`` exists, overwrite ``update_columns`` with the new values."""
    insert = _insert_for(await dialect_name(session))
    stmt = insert(model).values(dict(row))
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={name: getattr(stmt.excluded, name) for name in update_columns},
    )
    await session.execute(stmt)


async def delete_from_block(session: AsyncSession, chain_id: int, block_number: int) -> dict[str, int]:
    """Delete every chain-derived row of ``chain_id`` at or after ``block_number`` (a reorg rollback).

    Bundles built earlier but *included* at or after the block go back to status ``submitted`` with their
    inclusion cleared (the including block is gone).  Idempotent: a second call deletes nothing.  Returns
    rows deleted per table (plus ``"bundles_uncommitted"`` for the reset inclusions).
    """
    conn = await session.connection()
    deleted: dict[str, int] = {}
    for model, column_name in CHAIN_TABLES:
        table = table_of(model)
        result = await conn.execute(
            delete(table).where(table.c.chain_id == chain_id, table.c[column_name] >= block_number)
        )
        deleted[table.name] = result.rowcount
    bundles = table_of(Bundle)
    reset = await conn.execute(
        update(bundles)
        .where(bundles.c.chain_id == chain_id, bundles.c.included_block_number >= block_number)
        .values(status="submitted", included_block_number=None, included_block_hash=None)
    )
    deleted["bundles_uncommitted"] = reset.rowcount
    return deleted


async def sum_amount(
    session: AsyncSession,
    column: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
    *filters: ColumnElement[bool],
) -> int:
    """The exact sum (an ``int``) of an amount column over the rows matching ``filters``; 0 when none.

    See the module docstring for why SQLite is summed in Python and PostgreSQL in SQL.
    """
    if await dialect_name(session) == "postgresql":
        # Coerce to an unbounded NUMERIC so the result bypasses the column type's 256-bit range.
        total_expr = type_coerce(func.sum(column), Numeric(asdecimal=True))
        exact = (await session.execute(select(total_expr).where(*filters))).scalar_one()
        if exact is None:
            return 0
        assert isinstance(exact, Decimal) and exact == exact.to_integral_value()
        return int(exact)
    total = 0
    stream = await session.stream_scalars(select(column).where(*filters).execution_options(yield_per=1000))
    async for value in stream:
        if value is not None:
            total += value
    return total
