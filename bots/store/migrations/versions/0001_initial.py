"""initial schema: blocks, opportunities, bundles, transactions, trades, fills, pnl, model runs

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Amounts are bots.store.types.Uint256 / Int256: NUMERIC(78,0) on PostgreSQL, decimal TEXT on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bots.store.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blocks",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("parent_hash", sa.String(length=66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocks")),
        sa.UniqueConstraint("chain_id", "hash", name=op.f("uq_blocks_chain_id_hash")),
    )
    op.create_index(op.f("ix_blocks_chain_id_number"), "blocks", ["chain_id", "number"], unique=False)

    op.create_table(
        "bundles",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("bundle_hash", sa.String(length=66), nullable=False),
        sa.Column("target_block", sa.BigInteger(), nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("opportunity_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_count", sa.Integer(), nullable=False),
        sa.Column("expected_profit", bots.store.types.Int256(), nullable=False),
        sa.Column("tip", bots.store.types.Uint256(), nullable=False),
        sa.Column("relay", sa.String(length=200), nullable=True),
        sa.Column("included_block_number", sa.BigInteger(), nullable=True),
        sa.Column("included_block_hash", sa.String(length=66), nullable=True),
        sa.Column("recorded_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundles")),
        sa.UniqueConstraint(
            "chain_id", "block_hash", "bundle_hash", name=op.f("uq_bundles_chain_id_block_hash_bundle_hash")
        ),
    )
    op.create_index(
        op.f("ix_bundles_chain_id_block_number"), "bundles", ["chain_id", "block_number"], unique=False
    )
    op.create_index(
        op.f("ix_bundles_chain_id_included_block_number"),
        "bundles",
        ["chain_id", "included_block_number"],
        unique=False,
    )

    op.create_table(
        "fills",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("fill_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("bot", sa.String(length=64), nullable=True),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", bots.store.types.ExactDecimal(), nullable=False),
        sa.Column("quantity", bots.store.types.ExactDecimal(), nullable=False),
        sa.Column("fee", bots.store.types.ExactDecimal(), nullable=False),
        sa.Column("fee_currency", sa.String(length=32), nullable=True),
        sa.Column("filled_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.Column("recorded_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("venue", "fill_id", name=op.f("uq_fills_venue_fill_id")),
    )
    op.create_table(
        "model_runs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", bots.store.types.UTCDateTime(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("artifact_uri", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_runs")),
        sa.UniqueConstraint("run_id", name=op.f("uq_model_runs_run_id")),
    )
    op.create_table(
        "opportunities",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=True),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=True),
        sa.Column("expected_profit", bots.store.types.Int256(), nullable=False),
        sa.Column("gas_estimate", sa.BigInteger(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("recorded_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunities")),
        sa.UniqueConstraint(
            "chain_id", "block_hash", "bot", "key", name=op.f("uq_opportunities_chain_id_block_hash_bot_key")
        ),
    )
    op.create_index(
        op.f("ix_opportunities_chain_id_block_number"),
        "opportunities",
        ["chain_id", "block_number"],
        unique=False,
    )

    op.create_table(
        "pnl_snapshots",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("realized", bots.store.types.Int256(), nullable=False),
        sa.Column("gas_spent", bots.store.types.Uint256(), nullable=False),
        sa.Column("net", bots.store.types.Int256(), nullable=False),
        sa.Column("recorded_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pnl_snapshots")),
        sa.UniqueConstraint(
            "chain_id",
            "block_hash",
            "bot",
            "token",
            name=op.f("uq_pnl_snapshots_chain_id_block_hash_bot_token"),
        ),
    )
    op.create_index(
        op.f("ix_pnl_snapshots_chain_id_block_number"),
        "pnl_snapshots",
        ["chain_id", "block_number"],
        unique=False,
    )

    op.create_table(
        "trades",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=True),
        sa.Column("pool", sa.String(length=42), nullable=False),
        sa.Column("token_in", sa.String(length=42), nullable=False),
        sa.Column("token_out", sa.String(length=42), nullable=False),
        sa.Column("amount_in", bots.store.types.Uint256(), nullable=False),
        sa.Column("amount_out", bots.store.types.Uint256(), nullable=False),
        sa.Column("recorded_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
        sa.UniqueConstraint(
            "chain_id", "block_hash", "log_index", name=op.f("uq_trades_chain_id_block_hash_log_index")
        ),
    )
    op.create_index(
        op.f("ix_trades_chain_id_block_number"), "trades", ["chain_id", "block_number"], unique=False
    )

    op.create_table(
        "transactions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=True),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("to", sa.String(length=42), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("value", bots.store.types.Uint256(), nullable=False),
        sa.Column("gas_used", sa.BigInteger(), nullable=False),
        sa.Column("effective_gas_price", bots.store.types.Uint256(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("bundle_hash", sa.String(length=66), nullable=True),
        sa.Column("recorded_at", bots.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint(
            "chain_id", "block_hash", "tx_index", name=op.f("uq_transactions_chain_id_block_hash_tx_index")
        ),
    )
    op.create_index(
        op.f("ix_transactions_chain_id_block_number"),
        "transactions",
        ["chain_id", "block_number"],
        unique=False,
    )
    op.create_index(
        op.f("ix_transactions_chain_id_tx_hash"), "transactions", ["chain_id", "tx_hash"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_transactions_chain_id_tx_hash"), table_name="transactions")
    op.drop_index(op.f("ix_transactions_chain_id_block_number"), table_name="transactions")
    op.drop_table("transactions")
    op.drop_index(op.f("ix_trades_chain_id_block_number"), table_name="trades")
    op.drop_table("trades")
    op.drop_index(op.f("ix_pnl_snapshots_chain_id_block_number"), table_name="pnl_snapshots")
    op.drop_table("pnl_snapshots")
    op.drop_index(op.f("ix_opportunities_chain_id_block_number"), table_name="opportunities")
    op.drop_table("opportunities")
    op.drop_table("model_runs")
    op.drop_table("fills")
    op.drop_index(op.f("ix_bundles_chain_id_included_block_number"), table_name="bundles")
    op.drop_index(op.f("ix_bundles_chain_id_block_number"), table_name="bundles")
    op.drop_table("bundles")
    op.drop_index(op.f("ix_blocks_chain_id_number"), table_name="blocks")
    op.drop_table("blocks")
