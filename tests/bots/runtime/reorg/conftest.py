"""Fixtures of the reorg tests: an anvil of their own with the devnet world (reorgs rewrite history, so they do
not run on the session devnet), a clean chain per test (``evm_snapshot``/``evm_revert``), and the database URLs
of the store tests (SQLite file, throw-away PostgreSQL database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chains.devnet.deploy import deploy_world
from chains.node.anvil import AnvilNode
from tests.bots.conftest import pg_admin, pg_url, sqlite_url  # noqa: F401  (fixtures, re-exported)
from tests.fixtures.devnet import DEVNET_ACCOUNTS, DEVNET_SEED, Devnet


@pytest.fixture(scope="module")
def reorg_world() -> Iterator[Devnet]:
    node = AnvilNode.start(accounts=DEVNET_ACCOUNTS)
    try:
        book = deploy_world(node, seed=DEVNET_SEED)
        yield Devnet(node=node, book=book, deploy_seconds=0.0)
    finally:
        node.stop()


@pytest.fixture
def world(reorg_world: Devnet) -> Iterator[Devnet]:
    node = reorg_world.node
    start = node.block_number()
    snap = node.snapshot()
    try:
        yield reorg_world
    finally:
        node.drop_all_transactions()
        node.set_automine(True)
        assert node.revert(snap)
        assert node.block_number() == start
