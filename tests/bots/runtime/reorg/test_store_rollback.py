"""Store side of a reorg: orphaning landed bundles and deleting the replaced blocks' rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bots.store import Opportunity, PnlSnapshot, Store

H = "0x" + "ab" * 32


def h(n: int) -> str:
    return f"0x{n:064x}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


async def test_rollback_orphans_landed_bundles_deletes_rows_and_is_idempotent(store_url: str) -> None:
    async with await Store.open(store_url, upgrade=True) as s:
        for n in range(10, 14):
            await s.record_block(chain_id=1, number=n, hash=h(n), parent_hash=h(n - 1), timestamp=1000 + n)
        # landed before the reorg point (kept), landed in a replaced block (orphaned), built on a replaced block
        # (deleted with it), and one on another chain (untouched)
        for bundle, built, landed, chain in (
            (h(100), 10, 11, 1),
            (h(101), 11, 12, 1),
            (h(102), 12, 13, 1),
            (h(103), 11, 12, 2),
        ):
            await s.record_bundle(
                chain_id=chain,
                block_number=built,
                block_hash=h(built),
                bundle_hash=bundle,
                target_block=landed,
                bot="arb",
                status="submitted",
                tx_count=1,
                expected_profit=5,
                tip=1,
            )
            await s.set_bundle_status(
                chain_id=chain,
                bundle_hash=bundle,
                status="included",
                included_block_number=landed,
                included_block_hash=h(landed),
            )
            await s.record_transaction(
                chain_id=chain,
                block_number=landed,
                block_hash=h(landed),
                tx_index=0,
                tx_hash=h(200 + landed),
                sender="0x" + "11" * 20,
                nonce=landed,
                value=0,
                gas_used=21_000,
                effective_gas_price=10**9,
                success=True,
                bundle_hash=bundle,
            )
            await s.record_pnl(
                chain_id=chain,
                block_number=landed,
                block_hash=h(landed),
                bot="arb",
                token="0x" + "00" * 20,
                realized=7,
                gas_spent=2,
                net=5,
            )

        result = await s.rollback_reorg(1, 12)
        assert [
            (b.bundle_hash, b.included_block_number, b.included_block_hash, b.tx_hashes)
            for b in result.orphaned_bundles
        ] == [(h(101), 12, h(12), (h(212),)), (h(102), 13, h(13), (h(213),))]
        assert result.deleted == {
            "evaluations": 0,
            "opportunities": 0,
            "bundles": 1,
            "transactions": 2,
            "trades": 0,
            "pnl_snapshots": 2,
            "blocks": 2,
            "bundles_uncommitted": 0,
        }
        assert await s.bundle_status(1, h(100)) == ("included", 11, h(11))
        assert await s.bundle_status(1, h(101)) == ("orphaned", None, None)
        assert await s.bundle_status(1, h(102)) is None  # built on a replaced block: gone with it
        assert await s.bundle_status(2, h(103)) == ("included", 12, h(12))
        assert await s.total(PnlSnapshot.net, PnlSnapshot.chain_id == 1) == 5
        assert await s.latest_block(1) == (11, h(11))

        again = await s.rollback_reorg(1, 12)
        assert again.orphaned_bundles == () and again.rows_deleted == 0
        with pytest.raises(ValueError, match="bundle_hash"):
            await s.bundle_status(1, "0x12")


async def test_rollback_orphans_the_opportunities_a_bundle_carried(store_url: str) -> None:
    """An opportunity found on block 11 (kept) whose bundle landed in block 12 (replaced) becomes ``orphaned`` and
    loses its realized profit; one whose bundle landed before the fork keeps both."""
    async with await Store.open(store_url, upgrade=True) as s:
        for n in range(10, 13):
            await s.record_block(chain_id=1, number=n, hash=h(n), parent_hash=h(n - 1), timestamp=1000 + n)
        for key, built, bundle in (("kept", 10, h(300)), ("gone", 11, h(301))):
            await s.record_opportunity(
                chain_id=1,
                block_number=built,
                block_hash=h(built),
                bot="dex_arb",
                kind="cycle",
                key=key,
                expected_profit=9,
            )
            await s.record_bundle(
                chain_id=1,
                block_number=built,
                block_hash=h(built),
                bundle_hash=bundle,
                target_block=built + 1,
                bot="dex_arb",
                status="submitted",
                tx_count=1,
                expected_profit=8,
                tip=1,
            )
            await s.set_bundle_status(
                chain_id=1,
                bundle_hash=bundle,
                status="included",
                included_block_number=built + 1,
                included_block_hash=h(built + 1),
            )
            assert (
                await s.update_opportunity(
                    chain_id=1,
                    block_hash=h(built),
                    bot="dex_arb",
                    key=key,
                    status="landed",
                    simulated_profit=8,
                    realized_profit=8,
                    bundle_hash=bundle,
                    target_block=built + 1,
                )
                == 1
            )
        await s.rollback_reorg(1, 12)
        async with s.session() as session:
            rows = {
                r.key: (r.status, r.simulated_profit, r.realized_profit)
                for r in (await session.execute(select(Opportunity))).scalars()
            }
        assert rows == {"kept": ("landed", 8, 8), "gone": ("orphaned", 8, None)}


async def test_rollback_deletes_the_evaluations_of_replaced_blocks(store_url: str) -> None:
    """Evaluations at or after the first replaced block go with the block (every bot), those before it and those
    of another chain stay; the new branch's evaluations are written at the same heights; orphaned opportunities
    get the reason ``orphaned``."""
    async with await Store.open(store_url, upgrade=True) as s:
        for n in range(10, 14):
            await s.record_block(chain_id=1, number=n, hash=h(n), parent_hash=h(n - 1), timestamp=1000 + n)
            for bot, chain in (("dex_arb", 1), ("other", 1), ("dex_arb", 2)):
                await s.record_evaluation(
                    bot=bot, chain_id=chain, block_number=n, block_hash=h(n), status="evaluated",
                    duration_ms=n / 8, opportunities=n % 3,
                )  # fmt: skip
        await s.record_opportunity(
            chain_id=1, block_number=11, block_hash=h(11), bot="dex_arb", kind="cycle", key="c",
            expected_profit=9, status="submitted", bundle_hash=h(400), target_block=12,
        )  # fmt: skip
        await s.record_bundle(
            chain_id=1, block_number=11, block_hash=h(11), bundle_hash=h(400), target_block=12, bot="dex_arb",
            status="submitted", tx_count=1, expected_profit=8, tip=1,
        )  # fmt: skip
        await s.set_bundle_status(
            chain_id=1,
            bundle_hash=h(400),
            status="included",
            included_block_number=12,
            included_block_hash=h(12),
        )
        await s.update_opportunity(
            chain_id=1, block_hash=h(11), bot="dex_arb", key="c", status="landed", realized_profit=8
        )

        result = await s.rollback_reorg(1, 12)
        assert result.deleted["evaluations"] == 4 and result.deleted["blocks"] == 2
        assert [(e.bot, e.block_number) for e in await s.evaluations(1)] == [
            ("dex_arb", 10), ("other", 10), ("dex_arb", 11), ("other", 11),
        ]  # fmt: skip
        assert [e.block_number for e in await s.evaluations(2)] == [10, 11, 12, 13]
        async with s.session() as session:
            opp = (await session.execute(select(Opportunity))).scalar_one()
        assert (opp.status, opp.realized_profit, opp.reason) == ("orphaned", None, "orphaned")

        # The new branch: the same heights, other hashes.
        await s.record_evaluation(
            bot="dex_arb",
            chain_id=1,
            block_number=12,
            block_hash=h(1012),
            status="evaluated",
            duration_ms=0.5,
        )
        (e12,) = await s.evaluations(1, from_block=12)
        assert (e12.block_number, e12.block_hash, e12.duration_ms) == (12, h(1012), 0.5)
        assert (await s.rollback_reorg(1, 12)).deleted["evaluations"] == 1
