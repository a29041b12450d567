"""Idempotent writes and reorg deletes of the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from prometheus_client import CollectorRegistry
from sqlalchemy import select

from bots.metrics import Metrics
from bots.store import Bundle, Evaluation, Fill, ModelRun, Opportunity, PnlSnapshot, Store, Trade, Transaction

CHAIN, OTHER_CHAIN = 1, 2
TOKEN = "0x" + "cc" * 20
NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def bhash(chain: int, number: int, branch: str = "a") -> str:
    """A deterministic block hash per (chain, number, branch)."""
    return f"0x{branch * 2}{chain:030x}{number:032x}"


def txhash(chain: int, number: int, index: int) -> str:
    return f"0x{chain:020x}{number:022x}{index:022x}"


async def _fill_block(store: Store, chain: int, number: int, branch: str = "a") -> None:
    """One row in every chain-derived table at block ``number``."""
    h = bhash(chain, number, branch)
    await store.record_block(
        chain_id=chain,
        number=number,
        hash=h,
        parent_hash=bhash(chain, number - 1, branch),
        timestamp=1_700_000_000 + number,
    )
    await store.record_evaluation(
        bot="arb", chain_id=chain, block_number=number, block_hash=h, status="evaluated", duration_ms=1.5,
        opportunities=1,
    )  # fmt: skip
    await store.record_opportunity(
        chain_id=chain, block_number=number, block_hash=h, bot="arb", kind="cycle", key=f"cycle-{number}",
        expected_profit=10**18 + number, token=TOKEN, details={"hops": 3, "amount_in": 2**200},
    )  # fmt: skip
    await store.record_bundle(
        chain_id=chain, block_number=number, block_hash=h, bundle_hash=txhash(chain, number, 999),
        target_block=number + 1, bot="arb", status="simulated", tx_count=1, expected_profit=10**18, tip=10**16,
        opportunity_key=f"cycle-{number}",
    )  # fmt: skip
    await store.record_transaction(
        chain_id=chain, block_number=number, block_hash=h, tx_index=0, tx_hash=txhash(chain, number, 0),
        sender="0x" + "01" * 20, to="0x" + "02" * 20, nonce=number, value=0, gas_used=150_000,
        effective_gas_price=30 * 10**9, success=True, bot="arb",
    )  # fmt: skip
    await store.record_trade(
        chain_id=chain, block_number=number, block_hash=h, log_index=3, tx_index=0, tx_hash=txhash(chain, number, 0),
        pool="0x" + "03" * 20, token_in=TOKEN, token_out="0x" + "04" * 20, amount_in=10**18, amount_out=2**255,
    )  # fmt: skip
    await store.record_pnl(
        chain_id=chain, block_number=number, block_hash=h, bot="arb", token=TOKEN,
        realized=-(10**15) * number, gas_spent=4_500_000 * 10**9, net=-(10**15) * number - 4_500_000 * 10**9,
    )  # fmt: skip


CHAIN_TABLE_NAMES = (
    "blocks",
    "evaluations",
    "opportunities",
    "bundles",
    "transactions",
    "trades",
    "pnl_snapshots",
)


async def test_delete_from_block_removes_exactly_rows_at_and_after(db_url: str) -> None:
    async with await Store.open(db_url, upgrade=True) as store:
        for number in range(10, 15):
            await _fill_block(store, CHAIN, number)
            await _fill_block(store, OTHER_CHAIN, number)
        # A bundle built on block 11 that landed in block 12: block 12 is reorged out, so is its inclusion.
        await store.set_bundle_status(
            chain_id=CHAIN, bundle_hash=txhash(CHAIN, 11, 999), status="included",
            included_block_number=12, included_block_hash=bhash(CHAIN, 12),
        )  # fmt: skip
        await store.record_fill(
            venue="binance",
            fill_id="f1",
            symbol="ETH/USDT",
            side="buy",
            price="3000.01",
            quantity="0.5",
            filled_at=NOW,
        )
        before = await store.counts()
        assert all(before[t] == 10 for t in CHAIN_TABLE_NAMES)

        deleted = await store.delete_from_block(CHAIN, 12)
        assert deleted == {**dict.fromkeys(CHAIN_TABLE_NAMES, 3), "bundles_uncommitted": 1}
        after = await store.counts()
        assert all(after[t] == 7 for t in CHAIN_TABLE_NAMES)
        assert after["fills"] == 1  # not chain-derived: untouched

        async with store.sessionmaker() as session:
            for model in (Evaluation, Opportunity, Bundle, Transaction, Trade, PnlSnapshot):
                numbers = (await session.execute(select(model.chain_id, model.block_number))).all()
                assert sorted(n for c, n in numbers if c == CHAIN) == [10, 11], model.__tablename__
                assert sorted(n for c, n in numbers if c == OTHER_CHAIN) == [10, 11, 12, 13, 14], (
                    model.__tablename__
                )
            bundle = (
                await session.execute(select(Bundle).where(Bundle.bundle_hash == txhash(CHAIN, 11, 999)))
            ).scalar_one()
            assert (bundle.status, bundle.included_block_number, bundle.included_block_hash) == (
                "submitted",
                None,
                None,
            )

        assert await store.latest_block(CHAIN) == (11, bhash(CHAIN, 11))
        assert await store.block_hash_at(CHAIN, 12) is None
        assert await store.latest_block(OTHER_CHAIN) == (14, bhash(OTHER_CHAIN, 14))

        # Idempotent: nothing left to delete.
        again = await store.delete_from_block(CHAIN, 12)
        assert set(again.values()) == {0}

        # The new branch is written at the same heights with other hashes.
        for number in range(12, 16):
            await _fill_block(store, CHAIN, number, branch="b")
        assert await store.latest_block(CHAIN) == (15, bhash(CHAIN, 15, "b"))
        assert (await store.counts())["trades"] == 7 + 4


async def test_writes_are_idempotent(db_url: str) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, process_collectors=False)
    async with await Store.open(db_url, upgrade=True, metrics=metrics) as store:
        await _fill_block(store, CHAIN, 7)
        first = await store.counts()
        await _fill_block(store, CHAIN, 7)  # the same block processed twice
        assert await store.counts() == first
        assert metrics.value("mevsuite_db_rows_written_total", {"table": "trades"}) == 1.0

        h = bhash(CHAIN, 7)
        assert not await store.record_block(chain_id=CHAIN, number=7, hash=h.upper().replace("0X", "0x"),
                                            parent_hash=bhash(CHAIN, 6), timestamp=0)  # fmt: skip
        assert not await store.record_trade(
            chain_id=CHAIN,
            block_number=7,
            block_hash=h,
            log_index=3,
            tx_index=0,
            tx_hash=txhash(CHAIN, 7, 0),
            pool="x",
            token_in="y",
            token_out="z",
            amount_in=1,
            amount_out=1,
        )  # same key, other values: ignored, not overwritten
        assert await store.record_trade(
            chain_id=CHAIN,
            block_number=7,
            block_hash=h,
            log_index=4,
            tx_index=0,
            tx_hash=txhash(CHAIN, 7, 0),
            pool="x",
            token_in="y",
            token_out="z",
            amount_in=1,
            amount_out=1,
        )  # next log index: a new row
        assert await store.total(Trade.amount_in) == 10**18 + 1

        # Several rows in one transaction (a whole block at once); re-running it inserts nothing.
        for _ in range(2):
            async with store.session() as session:
                for i in range(3):
                    await store.record_fill(
                        venue="kraken", fill_id=f"k{i}", symbol="ETH/USD", side="sell", price=Decimal("3100.123456789"),
                        quantity=Decimal("0.000000001"), fee="0.01", filled_at=NOW, session=session,
                    )  # fmt: skip
        assert (await store.counts())["fills"] == 3
        async with store.sessionmaker() as session:
            fill = (await session.execute(select(Fill).where(Fill.fill_id == "k0"))).scalar_one()
        assert (fill.price, fill.quantity, fill.fee) == (
            Decimal("3100.123456789"),
            Decimal("1E-9"),
            Decimal("0.01"),
        )
        assert fill.filled_at == NOW

        # Model runs are upserts: the run's final state overwrites the running one.
        await store.record_model_run(run_id="r1", model="lstm", status="running", started_at=NOW)
        await store.record_model_run(
            run_id="r1",
            model="lstm",
            status="finished",
            started_at=NOW,
            finished_at=NOW,
            metrics={"sharpe": 1.5},
        )
        async with store.sessionmaker() as session:
            run = (await session.execute(select(ModelRun))).scalar_one()
        assert (run.status, run.metrics, run.finished_at) == ("finished", {"sharpe": 1.5}, NOW)
