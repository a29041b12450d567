"""Exact column types: 256-bit integers, exact decimals and UTC timestamps on PostgreSQL and SQLite.

On-chain amounts are integers up to 2**256-1 (or signed, down to -2**255).  Neither a 64-bit INTEGER nor a
REAL holds them, so:

* PostgreSQL stores them as ``NUMERIC(78, 0)`` (78 decimal digits hold 2**256-1 exactly; arithmetic and
  ``SUM`` on NUMERIC are exact);
* SQLite stores them as canonical decimal ``TEXT`` (``"-123"``, ``"0"``, no leading zeros), never as REAL.
  Equality filters work (the canonical form is unique), but ``<``/``ORDER BY``/``SUM`` in SQL do not mean the
  numeric thing on TEXT: use :func:`bots.store.crud.sum_amount` for sums.

Python code always sees :class:`int` (or :class:`~decimal.Decimal` for :class:`ExactDecimal`); floats and bools
are refused at bind time so a rounded amount can never reach the database.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["INT256_MAX", "INT256_MIN", "UINT256_MAX", "ExactDecimal", "Int256", "UTCDateTime", "Uint256"]

UINT256_MAX = 2**256 - 1
INT256_MIN = -(2**255)
INT256_MAX = 2**255 - 1


class _BigInt(TypeDecorator[int]):
    """Shared implementation of :class:`Uint256` and :class:`Int256` (range checked, int in and out)."""

    impl = Numeric(78, 0)
    cache_ok = True
    _min: int = 0
    _max: int = UINT256_MAX

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))
        return dialect.type_descriptor(Text())

    def _check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{type(self).__name__} takes an int, got {type(value).__name__} {value!r}")
        if not self._min <= value <= self._max:
            raise ValueError(f"{type(self).__name__} out of range: {value}")
        return value

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = self._check(value)
        if dialect.name == "postgresql":
            return Decimal(value)
        return str(value)

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        if value is None:
            return "NULL"
        value = self._check(value)
        return str(value) if dialect.name == "postgresql" else f"'{value}'"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            if value != value.to_integral_value():
                raise ValueError(f"non-integral value in a {type(self).__name__} column: {value}")
            return int(value)
        if isinstance(value, float):  # only if someone wrote REAL into the column behind our back
            raise TypeError(f"float found in a {type(self).__name__} column: {value!r}")
        return int(value)

    @property
    def python_type(self) -> type[int]:
        return int


class Uint256(_BigInt):
    """An unsigned 256-bit integer: 0 .. 2**256-1 (token amounts, wei, gas prices)."""

    cache_ok = True
    _min = 0
    _max = UINT256_MAX


class Int256(_BigInt):
    """A signed 256-bit integer: -2**255 .. 2**255-1 (profit and loss, balance deltas)."""

    cache_ok = True
    _min = INT256_MIN
    _max = INT256_MAX


class ExactDecimal(TypeDecorator[Decimal]):
    """An exact decimal (CEX prices and quantities): NUMERIC on PostgreSQL, decimal TEXT on SQLite."""

    impl = Numeric()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or isinstance(value, float) or not isinstance(value, (Decimal, int, str)):
            raise TypeError(f"ExactDecimal takes a Decimal, int or str, got {type(value).__name__} {value!r}")
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError(f"ExactDecimal must be finite, got {value!r}")
        return number if dialect.name == "postgresql" else format(number, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError(f"float found in an ExactDecimal column: {value!r}")
        return value if isinstance(value, Decimal) else Decimal(value)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on both backends (SQLite keeps no zone; we put UTC back on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"UTCDateTime takes a timezone-aware datetime, got {value!r}")
        utc: dt.datetime = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        result: dt.datetime = value
        return result.replace(tzinfo=dt.UTC) if value.tzinfo is None else result.astimezone(dt.UTC)
