"""evaluations, ML signals, and why an opportunity was not sent or did not land

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

* ``evaluations``: one row per block a bot considered (``evaluated`` / ``stale`` / ``skipped``), its duration,
  the opportunities found, keyed by ``(chain_id, block_hash, bot)`` (a re-evaluation updates it) and
  deleted with the block's other rows on a reorg;
* ``opportunities.reason``: a short machine-readable code for every opportunity not sent or not landed
  (docs/store.md has the vocabulary), NULL otherwise;
* ``signals``: ML signals per bar, keyed by ``(source, symbol, timeframe, bar_time)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bots.store.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("opportunities", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
        sa.UniqueConstraint(
            "chain_id", "block_hash", "bot", name=op.f("uq_evaluations_chain_id_block_hash_bot")
        ),
    )
    op.create_index(
        op.f("ix_evaluations_chain_id_block_number"),
        "evaluations",
        ["chain_id", "block_number"],
        unique=False,
    )

    op.create_table(
        "signals",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=16), nullable=False),
        sa.Column("bar_time", bots.store.types.UTCDateTime(), nullable=False),
        sa.Column("p_up", sa.Double(), nullable=False),
        sa.Column("signal", sa.String(length=8), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("created_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
        sa.UniqueConstraint(
            "source",
            "symbol",
            "timeframe",
            "bar_time",
            name=op.f("uq_signals_source_symbol_timeframe_bar_time"),
        ),
    )
    op.create_index(op.f("ix_signals_symbol_bar_time"), "signals", ["symbol", "bar_time"], unique=False)

    with op.batch_alter_table("opportunities") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("opportunities") as batch:
        batch.drop_column("reason")
    op.drop_index(op.f("ix_signals_symbol_bar_time"), table_name="signals")
    op.drop_table("signals")
    op.drop_index(op.f("ix_evaluations_chain_id_block_number"), table_name="evaluations")
    op.drop_table("evaluations")
