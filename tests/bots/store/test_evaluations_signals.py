"""Migration 0004 and its repository methods: evaluations, opportunity reasons, ML signals (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect, select

from bots.store import (
    SIGNAL_VALUES,
    Evaluation,
    EvaluationRecord,
    Opportunity,
    Reason,
    SignalRecord,
    Store,
    create_engine,
    crud,
    upgrade_async,
)
from bots.store.migrate import downgrade_async

BOT = "dex_arb"
T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def h(n: int) -> str:
    return f"0x{n:064x}"


async def _columns(url: str, table: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: [col["name"] for col in inspect(c).get_columns(table)])
    finally:
        await engine.dispose()


async def test_migration_0004_up_and_down_keeps_the_rows(db_url: str) -> None:
    """0003 → 0004 adds the tables and ``opportunities.reason`` to a database with rows; 0004 → 0003 removes them."""
    await upgrade_async(db_url, "0003")
    async with Store(create_engine(db_url)) as s, s.session() as session:  # a 0003 row: no reason column
        row = {"chain_id": 1, "block_number": 5, "block_hash": h(5), "bot": BOT, "kind": "cycle", "key": "k",
               "expected_profit": 2**200}  # fmt: skip
        assert (
            await crud.insert_ignore(session, Opportunity, row, ("chain_id", "block_hash", "bot", "key")) == 1
        )
    await upgrade_async(db_url, "0004")
    assert await _columns(db_url, "evaluations") == [
        "id", "bot", "chain_id", "block_number", "block_hash", "status", "duration_ms", "opportunities",
        "reason", "created_at",
    ]  # fmt: skip
    assert await _columns(db_url, "signals") == [
        "id", "source", "symbol", "venue", "timeframe", "bar_time", "p_up", "signal", "horizon", "created_at",
    ]  # fmt: skip
    assert "reason" in await _columns(db_url, "opportunities")
    async with Store(create_engine(db_url)) as s:
        async with s.session() as session:
            row = (await session.execute(select(Opportunity))).scalar_one()
        assert (row.key, row.expected_profit, row.status, row.reason) == ("k", 2**200, "found", None)
        assert await s.update_opportunity(
            chain_id=1, block_hash=h(5), bot=BOT, key="k", status="rejected", reason=Reason.BELOW_MIN_PROFIT
        )
    await downgrade_async(db_url, "0003")
    assert "reason" not in await _columns(db_url, "opportunities")
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert "evaluations" not in tables and "signals" not in tables and "opportunities" in tables
    await upgrade_async(db_url)  # and up again to head
    assert "reason" in await _columns(db_url, "opportunities")


async def test_evaluations_round_trip_and_a_reevaluation_updates(db_url: str) -> None:
    async with await Store.open(db_url, upgrade=True) as s:
        await s.record_evaluation(
            bot=BOT, chain_id=1, block_number=7, block_hash=h(7).upper().replace("0X", "0x"),
            status="evaluated", duration_ms=12.345678901234, opportunities=3,
        )  # fmt: skip
        await s.record_evaluation(
            bot=BOT, chain_id=1, block_number=8, block_hash=h(8), status="skipped", duration_ms=0.0,
            reason=Reason.EVALUATION_ERROR,
        )  # fmt: skip
        await s.record_evaluation(
            bot="other",
            chain_id=1,
            block_number=7,
            block_hash=h(7),
            status="stale",
            duration_ms=1,
            reason="behind",
        )
        await s.record_evaluation(
            bot=BOT, chain_id=2, block_number=7, block_hash=h(7), status="evaluated", duration_ms=2.5
        )
        rows = await s.evaluations(1, bot=BOT)
        assert [
            (r.block_number, r.block_hash, r.status, r.duration_ms, r.opportunities, r.reason) for r in rows
        ] == [
            (7, h(7), "evaluated", 12.345678901234, 3, None),
            (8, h(8), "skipped", 0.0, 0, "evaluation_error"),
        ]
        assert all(isinstance(r, EvaluationRecord) and r.created_at.tzinfo == dt.UTC for r in rows)
        first_created = rows[0].created_at

        # Evaluated again (same bot, chain, block hash): one row, the new figures, the first created_at.
        await s.record_evaluation(
            bot=BOT, chain_id=1, block_number=7, block_hash=h(7), status="evaluated", duration_ms=4.25,
            opportunities=1,
        )  # fmt: skip
        again = await s.evaluations(1, bot=BOT, from_block=7)
        assert [(r.block_number, r.duration_ms, r.opportunities, r.created_at) for r in again[:1]] == [
            (7, 4.25, 1, first_created)
        ]
        assert len(await s.evaluations(1)) == 3 and len(await s.evaluations(1, from_block=8)) == 1
        assert (await s.counts())["evaluations"] == 4

        # In the caller's transaction: rolled back with it.
        with pytest.raises(RuntimeError):
            async with s.session() as session:
                await s.record_evaluation(
                    bot=BOT, chain_id=1, block_number=9, block_hash=h(9), status="evaluated", duration_ms=1.0,
                    session=session,
                )  # fmt: skip
                raise RuntimeError("abort")
        assert len(await s.evaluations(1, bot=BOT)) == 2

        for bad in (
            {"status": "done", "duration_ms": 1.0},
            {"status": "evaluated", "duration_ms": float("nan")},
            {"status": "evaluated", "duration_ms": -1.0},
            {"status": "evaluated", "duration_ms": 1.0, "opportunities": -1},
        ):
            with pytest.raises(ValueError):
                await s.record_evaluation(bot=BOT, chain_id=1, block_number=9, block_hash=h(9), **bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="block_hash"):
            await s.record_evaluation(
                bot=BOT, chain_id=1, block_number=9, block_hash="0x12", status="evaluated", duration_ms=1.0
            )


async def test_opportunity_reason_is_recorded_and_updated(db_url: str) -> None:
    async with await Store.open(db_url, upgrade=True) as s:
        for key, status, reason in (
            ("a", "rejected", Reason.SIMULATION_REVERTED),
            ("b", "simulated", Reason.DRY_RUN),
            ("c", "submitted", None),
        ):
            await s.record_opportunity(
                chain_id=1, block_number=5, block_hash=h(5), bot=BOT, kind="cycle", key=key, expected_profit=1,
                status=status, reason=reason,
            )  # fmt: skip
        # c did not land; then an update without a reason leaves it as it is
        assert await s.update_opportunity(
            chain_id=1, block_hash=h(5), bot=BOT, key="c", status="not_landed", reason=Reason.NOT_LANDED
        )
        assert await s.update_opportunity(chain_id=1, block_hash=h(5), bot=BOT, key="c", status="not_landed")
        async with s.session() as session:
            rows = {
                r.key: (r.status, r.reason) for r in (await session.execute(select(Opportunity))).scalars()
            }
        assert rows == {
            "a": ("rejected", "simulation_reverted"),
            "b": ("simulated", "dry_run"),
            "c": ("not_landed", "not_landed"),
        }
    assert Reason.OPPORTUNITY == {
        "no_funds", "simulation_reverted", "below_min_profit", "tip_reverted", "dry_run", "send_failed",
        "not_landed", "reverted_on_chain", "orphaned",
        "kill_switch", "risk_notional", "risk_rate_block", "risk_rate_minute", "risk_daily_loss",
    }  # fmt: skip


async def test_signals_round_trip_idempotent_and_recent(db_url: str) -> None:
    async with await Store.open(db_url, upgrade=True) as s:
        p = 0.5731234567890123
        assert await s.record_signal(
            source="ensemble/v7", symbol="BTC/USDT", venue="binance", timeframe="1h", bar_time=T0, p_up=p,
            signal=1, horizon=4,
        )  # fmt: skip
        # the same bar again (even with another answer) is not a new row
        assert not await s.record_signal(
            source="ensemble/v7", symbol="BTC/USDT", venue="binance", timeframe="1h", bar_time=T0, p_up=0.1,
            signal="short", horizon=4,
        )  # fmt: skip
        for i, (sym, sig) in enumerate((("BTC/USDT", "flat"), ("ETH/USDT", "short"), ("BTC/USDT", "long"))):
            assert await s.record_signal(
                source="ensemble/v7", symbol=sym, venue="binance", timeframe="1h",
                bar_time=T0 + dt.timedelta(hours=i + 1), p_up=i / 10, signal=sig, horizon=1,
            )  # fmt: skip
        await s.record_signal(
            source="ensemble/v8", symbol="BTC/USDT", venue="bybit", timeframe="4h",
            bar_time=T0.astimezone(dt.timezone(dt.timedelta(hours=2))), p_up=1.0, signal=0, horizon=2,
        )  # fmt: skip

        btc = await s.recent_signals(symbol="BTC/USDT", source="ensemble/v7")
        assert btc == [
            SignalRecord("ensemble/v7", "BTC/USDT", "binance", "1h", T0 + dt.timedelta(hours=3), 0.2, "long", 1,
                         btc[0].created_at),
            SignalRecord("ensemble/v7", "BTC/USDT", "binance", "1h", T0 + dt.timedelta(hours=1), 0.0, "flat", 1,
                         btc[1].created_at),
            SignalRecord("ensemble/v7", "BTC/USDT", "binance", "1h", T0, p, "long", 4, btc[2].created_at),
        ]  # fmt: skip
        assert btc[2].p_up == p and btc[2].bar_time.tzinfo == dt.UTC
        assert [r.symbol for r in await s.recent_signals(limit=2)] == ["BTC/USDT", "ETH/USDT"]
        (v8,) = await s.recent_signals(venue="bybit")
        assert (v8.source, v8.timeframe, v8.bar_time, v8.signal, v8.p_up) == (
            "ensemble/v8",
            "4h",
            T0,
            "flat",
            1.0,
        )
        assert await s.recent_signals(timeframe="1d") == []
        assert (await s.counts())["signals"] == 5

        base = {"source": "m", "symbol": "X", "venue": "v", "timeframe": "1h", "bar_time": T0, "horizon": 1}
        for bad in (
            {"p_up": 0.5, "signal": "buy"},
            {"p_up": 0.5, "signal": 2},
            {"p_up": 0.5, "signal": True},
            {"p_up": 1.5, "signal": "long"},
            {"p_up": float("nan"), "signal": "long"},
            {"p_up": 0.5, "signal": "long", "horizon": 0},
        ):
            with pytest.raises(ValueError):
                await s.record_signal(**{**base, **bad})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timezone-aware"):
            await s.record_signal(
                **{**base, "bar_time": dt.datetime(2026, 1, 1), "p_up": 0.5, "signal": "long"}
            )  # type: ignore[arg-type]
    assert SIGNAL_VALUES == {1: "long", 0: "flat", -1: "short"}
    assert Evaluation.__table__.c.keys()[1:] == [  # type: ignore[attr-defined]
        "bot", "chain_id", "block_number", "block_hash", "status", "duration_ms", "opportunities", "reason",
        "created_at",
    ]  # fmt: skip
