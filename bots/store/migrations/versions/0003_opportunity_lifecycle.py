"""opportunity lifecycle: status, simulated and realized profit, the bundle that carried it

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

The DEX arbitrage bot records every opportunity it finds and then follows it: ``found`` → ``simulated`` (or
``rejected`` when the simulation says it is not worth sending) → ``submitted`` → ``landed`` / ``not_landed`` /
``failed`` / ``orphaned``.  ``simulated_profit`` is the net profit (wei of the profit token, after gas and tip)
the pyrevm simulation predicted at the target state; ``realized_profit`` is what the chain then paid, read from
the landed receipts; ``bundle_hash`` and ``target_block`` tie the row to the bundle that carried it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bots.store.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("opportunities") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="found"))
        batch.add_column(sa.Column("simulated_profit", bots.store.types.Int256(), nullable=True))
        batch.add_column(sa.Column("realized_profit", bots.store.types.Int256(), nullable=True))
        batch.add_column(sa.Column("bundle_hash", sa.String(66), nullable=True))
        batch.add_column(sa.Column("target_block", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_opportunities_chain_id_bundle_hash"), "opportunities", ["chain_id", "bundle_hash"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_opportunities_chain_id_bundle_hash"), table_name="opportunities")
    with op.batch_alter_table("opportunities") as batch:
        for col in ("target_block", "bundle_hash", "realized_profit", "simulated_profit", "status"):
            batch.drop_column(col)
