"""SQLAlchemy 2 typed models: blocks, evaluations, opportunities, bundles, transactions, trades, fills, PnL,
model runs, ML signals.

Every chain-derived row carries its position on the chain — ``chain_id``, ``block_number``, ``block_hash``
and, where the chain defines one, ``tx_index`` / ``log_index`` — so that

* writes are idempotent: each table has a natural unique key that starts with ``(chain_id, block_hash, …)``
  and writes are *insert or ignore* on that key (re-processing a block writes nothing new);
* a reorg is handled by deleting everything at or after the first replaced block
  (:func:`bots.store.crud.delete_from_block`) and re-processing the new branch.

No foreign keys between the chain-derived tables: rows are linked by natural keys (``opportunity_key``,
``bundle_hash``, ``tx_hash``), which keeps insert-or-ignore and delete-by-block order-free.

Amounts are :class:`~bots.store.types.Uint256` / :class:`~bots.store.types.Int256` (exact, Python ``int``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Double, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bots.store.types import ExactDecimal, Int256, Uint256, UTCDateTime

__all__ = [
    "CHAIN_TABLES",
    "Base",
    "Block",
    "Bundle",
    "Evaluation",
    "Fill",
    "ModelRun",
    "Opportunity",
    "PnlSnapshot",
    "Signal",
    "Trade",
    "Transaction",
]

# Deterministic constraint names on every backend, so Alembic sees the same schema everywhere.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an "INTEGER PRIMARY KEY"; PostgreSQL gets a 64-bit identity.
_Id = BigInteger().with_variant(Integer(), "sqlite")
_HASH = 66  # "0x" + 64 hex digits
_ADDRESS = 42  # "0x" + 40 hex digits


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC (the default of every ``recorded_at``)."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every mevsuite table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Block(Base):
    """A processed block; the reorg handler compares stored hashes with the chain's."""

    __tablename__ = "blocks"
    __table_args__ = (
        UniqueConstraint("chain_id", "hash"),
        Index(None, "chain_id", "number"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(_HASH))
    parent_hash: Mapped[str] = mapped_column(String(_HASH))
    timestamp: Mapped[int] = mapped_column(BigInteger)  # the block's own unix timestamp, seconds
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Opportunity(Base):
    """An opportunity a bot found on the state after a block (or triggered by a tx inside it).

    ``key`` identifies the opportunity within the block for its bot (e.g. a cycle id or the trigger tx hash);
    ``tx_index`` is the index of the triggering transaction, NULL when the opportunity comes from block state.
    """

    __tablename__ = "opportunities"
    __table_args__ = (
        UniqueConstraint("chain_id", "block_hash", "bot", "key"),
        Index(None, "chain_id", "block_number"),
        Index(None, "chain_id", "bundle_hash"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(_HASH))
    tx_index: Mapped[int | None] = mapped_column(Integer)
    bot: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))
    token: Mapped[str | None] = mapped_column(String(_ADDRESS))  # profit token (None: native ETH)
    expected_profit: Mapped[int] = mapped_column(Int256)  # in token base units, after gas when known
    gas_estimate: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # found | simulated | rejected | submitted | landed | not_landed | failed | orphaned  (migration 0003)
    status: Mapped[str] = mapped_column(String(16), default="found", server_default="found")
    # why it was not sent / did not land: a short code, NULL otherwise (migration 0004; docs/store.md)
    reason: Mapped[str | None] = mapped_column(Text)
    simulated_profit: Mapped[int | None] = mapped_column(
        Int256
    )  # net, after gas and tip, at the target state
    realized_profit: Mapped[int | None] = mapped_column(Int256)  # net, read from the landed receipts
    bundle_hash: Mapped[str | None] = mapped_column(String(_HASH))
    target_block: Mapped[int | None] = mapped_column(BigInteger)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Evaluation(Base):
    """One block a bot considered: evaluated (how long it took, how many opportunities), or stale / skipped and why.

    Keyed by ``(chain_id, block_hash, bot)``: a re-evaluation of the same block updates the row
    (:meth:`bots.store.Store.record_evaluation`); deleted with the block's other rows on a reorg.
    """

    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("chain_id", "block_hash", "bot"),
        Index(None, "chain_id", "block_number"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    bot: Mapped[str] = mapped_column(String(64))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(_HASH))
    status: Mapped[str] = mapped_column(String(16))  # evaluated | stale | skipped
    duration_ms: Mapped[float] = mapped_column(Double)  # wall time of the evaluation, milliseconds
    opportunities: Mapped[int] = mapped_column(Integer)  # opportunities found (0 when stale / skipped)
    reason: Mapped[str | None] = mapped_column(Text)  # why stale / skipped (NULL when evaluated)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Bundle(Base):
    """A bundle built on the state of ``block_number`` for ``target_block`` (simulated, sent, landed …).

    ``bundle_hash`` is keccak256 of the concatenated tx hashes (the Flashbots bundle hash, computable locally).
    """

    __tablename__ = "bundles"
    __table_args__ = (
        UniqueConstraint("chain_id", "block_hash", "bundle_hash"),
        Index(None, "chain_id", "block_number"),
        Index(None, "chain_id", "included_block_number"),
        Index(None, "chain_id", "bundle_hash"),  # status updates and reorg lookups by bundle hash (0002)
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(_HASH))
    bundle_hash: Mapped[str] = mapped_column(String(_HASH))
    target_block: Mapped[int] = mapped_column(BigInteger)
    bot: Mapped[str] = mapped_column(String(64))
    opportunity_key: Mapped[str | None] = mapped_column(String(200))
    # simulated | submitted | included | failed | dropped | orphaned (landed in a block a reorg replaced)
    status: Mapped[str] = mapped_column(String(16))
    tx_count: Mapped[int] = mapped_column(Integer)
    expected_profit: Mapped[int] = mapped_column(Int256)
    tip: Mapped[int] = mapped_column(Uint256)  # coinbase payment / priority fees, wei
    relay: Mapped[str | None] = mapped_column(String(200))
    included_block_number: Mapped[int | None] = mapped_column(BigInteger)
    included_block_hash: Mapped[str | None] = mapped_column(String(_HASH))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transaction(Base):
    """A transaction of ours (or one we track) as included in a block, with its receipt outcome."""

    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("chain_id", "block_hash", "tx_index"),
        Index(None, "chain_id", "block_number"),
        Index(None, "chain_id", "tx_hash"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(_HASH))
    tx_index: Mapped[int] = mapped_column(Integer)
    tx_hash: Mapped[str] = mapped_column(String(_HASH))
    bot: Mapped[str | None] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(_ADDRESS))
    to: Mapped[str | None] = mapped_column(String(_ADDRESS))
    nonce: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[int] = mapped_column(Uint256)
    gas_used: Mapped[int] = mapped_column(BigInteger)
    effective_gas_price: Mapped[int] = mapped_column(Uint256)
    success: Mapped[bool]
    bundle_hash: Mapped[str | None] = mapped_column(String(_HASH))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Trade(Base):
    """An on-chain swap leg executed by us, from its Swap log."""

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("chain_id", "block_hash", "log_index"),
        Index(None, "chain_id", "block_number"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(_HASH))
    log_index: Mapped[int] = mapped_column(Integer)
    tx_index: Mapped[int] = mapped_column(Integer)
    tx_hash: Mapped[str] = mapped_column(String(_HASH))
    bot: Mapped[str | None] = mapped_column(String(64))
    pool: Mapped[str] = mapped_column(String(_ADDRESS))
    token_in: Mapped[str] = mapped_column(String(_ADDRESS))
    token_out: Mapped[str] = mapped_column(String(_ADDRESS))
    amount_in: Mapped[int] = mapped_column(Uint256)
    amount_out: Mapped[int] = mapped_column(Uint256)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Fill(Base):
    """A fill of an order on a centralised exchange (not chain-derived: keyed by venue and fill id)."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("venue", "fill_id"),)

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    venue: Mapped[str] = mapped_column(String(64))
    fill_id: Mapped[str] = mapped_column(String(128))
    order_id: Mapped[str | None] = mapped_column(String(128))
    bot: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    price: Mapped[Decimal] = mapped_column(ExactDecimal)
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal)
    fee: Mapped[Decimal] = mapped_column(ExactDecimal)
    fee_currency: Mapped[str | None] = mapped_column(String(32))
    filled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PnlSnapshot(Base):
    """Cumulative profit and loss of a bot in one token, as of a block."""

    __tablename__ = "pnl_snapshots"
    __table_args__ = (
        UniqueConstraint("chain_id", "block_hash", "bot", "token"),
        Index(None, "chain_id", "block_number"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(_HASH))
    bot: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(_ADDRESS))  # "0x0…0" for native ETH
    realized: Mapped[int] = mapped_column(Int256)
    gas_spent: Mapped[int] = mapped_column(Uint256)  # wei
    net: Mapped[int] = mapped_column(Int256)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelRun(Base):
    """One ML training / evaluation run (written through the sink the ML registry is given)."""

    __tablename__ = "model_runs"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # running | finished | failed
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    artifact_uri: Mapped[str | None] = mapped_column(String(500))


class Signal(Base):
    """An ML signal for one bar: ``source`` (model/version) said ``p_up`` and ``signal`` (long | short | flat).

    Not chain-derived: keyed by ``(source, symbol, timeframe, bar_time)``; ``horizon`` is in bars.
    """

    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("source", "symbol", "timeframe", "bar_time"),
        Index(None, "symbol", "bar_time"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(128))  # model / version, e.g. "ensemble/2026-11-25T10-00-00"
    symbol: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(16))
    bar_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the last bar the signal was computed on
    p_up: Mapped[float] = mapped_column(Double)
    signal: Mapped[str] = mapped_column(String(8))  # long | short | flat
    horizon: Mapped[int] = mapped_column(Integer)  # bars ahead the model predicts
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# Tables whose rows sit at a block: (model, column holding the block number).
CHAIN_TABLES: tuple[tuple[type[Base], str], ...] = (
    (Evaluation, "block_number"),
    (Opportunity, "block_number"),
    (Bundle, "block_number"),
    (Transaction, "block_number"),
    (Trade, "block_number"),
    (PnlSnapshot, "block_number"),
    (Block, "number"),
)
