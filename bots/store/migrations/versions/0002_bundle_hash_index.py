"""reorg support: bundles looked up by bundle hash

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

A reorg marks the bundles that had landed in replaced blocks ``orphaned`` and, as the new branch is replayed,
finds them again by bundle hash (``Store.orphan_bundles_from``, ``Store.set_bundle_status``): an index on
``(chain_id, bundle_hash)`` keeps those lookups off a full scan of ``bundles``.  The new status value
``orphaned`` fits the existing String(16) column.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_bundles_chain_id_bundle_hash"), "bundles", ["chain_id", "bundle_hash"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bundles_chain_id_bundle_hash"), table_name="bundles")
