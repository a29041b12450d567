"""The repository the bots use: :class:`Store` records blocks, evaluations, opportunities, bundles, txs, trades,
fills, PnL, ML runs and ML signals.

Every ``record_*`` is an idempotent insert keyed by the row's natural key (see :mod:`bots.store.models`) and
returns ``True`` when the row is new (``record_evaluation`` and ``record_model_run`` insert or update).  Each call commits its own transaction, or joins the caller's when
``session=`` is given (write one block's rows atomically with ``async with store.session() as s: …``).
Hashes are stored lower-case; amounts are Python ints (exact, see :mod:`bots.store.types`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Self

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from bots.metrics import Metrics
from bots.store import crud
from bots.store.engine import connect
from bots.store.models import (
    Base,
    Block,
    Bundle,
    Evaluation,
    Fill,
    ModelRun,
    Opportunity,
    PnlSnapshot,
    Signal,
    Trade,
    Transaction,
)

__all__ = [
    "EVALUATION_STATUSES",
    "SIGNAL_VALUES",
    "EvaluationRecord",
    "OrphanedBundle",
    "Reason",
    "ReorgRollback",
    "SignalRecord",
    "Store",
]

EVALUATION_STATUSES: Final = frozenset({"evaluated", "stale", "skipped"})
SIGNAL_VALUES: Final = {1: "long", 0: "flat", -1: "short"}  # the signal service's -1/0/1 as stored


class Reason:
    """The ``opportunities.reason`` / ``evaluations.reason`` codes (a contract: docs/store.md)."""

    # opportunities: not sent
    NO_FUNDS: Final = "no_funds"  # the executor holds nothing to trade with (own-balance funding)
    SIMULATION_REVERTED: Final = "simulation_reverted"  # the first simulation (no tip) reverts
    BELOW_MIN_PROFIT: Final = "below_min_profit"  # simulated net after gas (and tip) < the minimum
    TIP_REVERTED: Final = "tip_reverted"  # the second simulation, with the tip and minProfit, reverts
    DRY_RUN: Final = "dry_run"  # simulated profitable, not sent: the bot is in dry-run
    SEND_FAILED: Final = "send_failed"  # live, but no relay/builder/node accepted it
    # opportunities: sent, did not land
    NOT_LANDED: Final = "not_landed"  # its tx is not in the target block
    REVERTED_ON_CHAIN: Final = "reverted_on_chain"  # its bundle landed with a reverted tx
    ORPHANED: Final = "orphaned"  # landed in a block a reorg replaced
    # opportunities: refused by the risk gate before any executor (bots.runtime.risk, docs/risk.md)
    KILL_SWITCH: Final = "kill_switch"  # the kill switch is engaged
    RISK_NOTIONAL: Final = "risk_notional"  # notional above the bot's max_notional_wei
    RISK_RATE_BLOCK: Final = "risk_rate_block"  # max_actions_per_block already admitted for its target block
    RISK_RATE_MINUTE: Final = "risk_rate_minute"  # max_actions_per_minute already admitted in the last 60 s
    RISK_DAILY_LOSS: Final = "risk_daily_loss"  # the day's (UTC) realized loss exceeds max_daily_loss_wei
    # evaluations (status skipped)
    EVALUATION_ERROR: Final = "evaluation_error"  # the evaluation raised before it finished

    OPPORTUNITY: Final = frozenset(
        {
            NO_FUNDS,
            SIMULATION_REVERTED,
            BELOW_MIN_PROFIT,
            TIP_REVERTED,
            DRY_RUN,
            SEND_FAILED,
            NOT_LANDED,
            REVERTED_ON_CHAIN,
            ORPHANED,
            KILL_SWITCH,
            RISK_NOTIONAL,
            RISK_RATE_BLOCK,
            RISK_RATE_MINUTE,
            RISK_DAILY_LOSS,
        }
    )


@dataclass(frozen=True, slots=True)
class EvaluationRecord:
    """One ``evaluations`` row as read back."""

    bot: str
    chain_id: int
    block_number: int
    block_hash: str
    status: str
    duration_ms: float
    opportunities: int
    reason: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """One ``signals`` row as read back."""

    source: str
    symbol: str
    venue: str
    timeframe: str
    bar_time: dt.datetime
    p_up: float
    signal: str
    horizon: int
    created_at: dt.datetime


_MODELS: tuple[type[Base], ...] = (
    Block,
    Evaluation,
    Opportunity,
    Bundle,
    Transaction,
    Trade,
    Fill,
    PnlSnapshot,
    ModelRun,
    Signal,
)


@dataclass(frozen=True, slots=True)
class OrphanedBundle:
    """A bundle that had landed in a block a reorg replaced (now status ``orphaned``, inclusion cleared)."""

    bundle_hash: str
    bot: str
    included_block_number: int
    included_block_hash: str | None
    tx_hashes: tuple[str, ...]  # its transactions as recorded (``transactions.bundle_hash``), in block order


@dataclass(frozen=True, slots=True)
class ReorgRollback:
    """What :meth:`Store.rollback_reorg` did: the bundles orphaned and the rows deleted per table."""

    orphaned_bundles: tuple[OrphanedBundle, ...]
    deleted: dict[str, int]

    @property
    def rows_deleted(self) -> int:
        return sum(v for k, v in self.deleted.items() if k != "bundles_uncommitted")


def _hash(value: str, what: str = "hash") -> str:
    text = value.lower()
    if len(text) != 66 or not text.startswith("0x"):
        raise ValueError(f"{what} must be 0x + 64 hex digits, got {value!r}")
    return text


class Store:
    """Async repository over one engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine, *, metrics: Metrics | None = None) -> None:
        self.engine = engine
        self.metrics = metrics
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(
        cls,
        url: str | URL | None = None,
        *,
        upgrade: bool = False,
        metrics: Metrics | None = None,
        **engine_kwargs: Any,
    ) -> Store:
        """Connect (``DatabaseUnavailableError`` if impossible) and optionally migrate to the latest schema."""
        engine = await connect(url, **engine_kwargs)
        if upgrade:
            from bots.store.migrate import upgrade_async

            try:
                await upgrade_async(engine)
            except BaseException:
                await engine.dispose()
                raise
        return cls(engine, metrics=metrics)

    async def close(self) -> None:
        """Dispose of the engine's connections."""
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on exit (rolled back on an exception)."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    # -- writes --------------------------------------------------------------------------------------------

    async def _insert(
        self,
        model: type[Base],
        row: Mapping[str, Any],
        key: tuple[str, ...],
        session: AsyncSession | None,
    ) -> bool:
        if session is not None:
            inserted = await crud.insert_ignore(session, model, row, key)
        else:
            async with self.session() as own:
                inserted = await crud.insert_ignore(own, model, row, key)
        if self.metrics is not None:
            self.metrics.rows_written(model.__tablename__, inserted)
        return inserted > 0

    async def record_block(
        self,
        *,
        chain_id: int,
        number: int,
        hash: str,
        parent_hash: str,
        timestamp: int,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record a processed block (key: chain_id, hash)."""
        row = {
            "chain_id": chain_id,
            "number": number,
            "hash": _hash(hash),
            "parent_hash": _hash(parent_hash, "parent_hash"),
            "timestamp": timestamp,
        }
        return await self._insert(Block, row, ("chain_id", "hash"), session)

    async def record_evaluation(
        self,
        *,
        bot: str,
        chain_id: int,
        block_number: int,
        block_hash: str,
        status: str,
        duration_ms: float,
        opportunities: int = 0,
        reason: str | None = None,
        session: AsyncSession | None = None,
    ) -> None:
        """Record that ``bot`` considered a block (key: chain_id, block_hash, bot); a re-evaluation updates the row.

        ``status``: ``evaluated`` (``opportunities`` found, in ``duration_ms``), or ``stale`` / ``skipped`` with
        a ``reason``.  ``created_at`` stays the first write's.
        """
        if status not in EVALUATION_STATUSES:
            raise ValueError(
                f"evaluation status must be one of {sorted(EVALUATION_STATUSES)}, got {status!r}"
            )
        if isinstance(duration_ms, bool) or not math.isfinite(duration_ms) or duration_ms < 0:
            raise ValueError(f"duration_ms must be a finite number >= 0, got {duration_ms!r}")
        if isinstance(opportunities, bool) or not isinstance(opportunities, int) or opportunities < 0:
            raise ValueError(f"opportunities must be an int >= 0, got {opportunities!r}")
        row = {
            "bot": bot,
            "chain_id": chain_id,
            "block_number": block_number,
            "block_hash": _hash(block_hash, "block_hash"),
            "status": status,
            "duration_ms": float(duration_ms),
            "opportunities": opportunities,
            "reason": reason,
        }
        key = ("chain_id", "block_hash", "bot")
        changing = ("block_number", "status", "duration_ms", "opportunities", "reason")
        if session is not None:
            await crud.upsert(session, Evaluation, row, key, changing)
        else:
            async with self.session() as own:
                await crud.upsert(own, Evaluation, row, key, changing)
        if self.metrics is not None:
            self.metrics.rows_written(Evaluation.__tablename__, 1)

    async def record_opportunity(
        self,
        *,
        chain_id: int,
        block_number: int,
        block_hash: str,
        bot: str,
        kind: str,
        key: str,
        expected_profit: int,
        token: str | None = None,
        tx_index: int | None = None,
        gas_estimate: int | None = None,
        details: dict[str, Any] | None = None,
        status: str = "found",
        simulated_profit: int | None = None,
        bundle_hash: str | None = None,
        target_block: int | None = None,
        reason: str | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record an opportunity (key: chain_id, block_hash, bot, key), already at ``status`` if it is known.

        ``reason``: why it was not sent or did not land (a :class:`Reason` code), None otherwise."""
        row = {
            "chain_id": chain_id,
            "block_number": block_number,
            "block_hash": _hash(block_hash, "block_hash"),
            "tx_index": tx_index,
            "bot": bot,
            "kind": kind,
            "key": key,
            "token": token,
            "expected_profit": expected_profit,
            "gas_estimate": gas_estimate,
            "details": details,
            "status": status,
            "simulated_profit": simulated_profit,
            "bundle_hash": None if bundle_hash is None else _hash(bundle_hash, "bundle_hash"),
            "target_block": target_block,
            "reason": reason,
        }
        return await self._insert(Opportunity, row, ("chain_id", "block_hash", "bot", "key"), session)

    async def update_opportunity(
        self,
        *,
        chain_id: int,
        block_hash: str,
        bot: str,
        key: str,
        status: str,
        simulated_profit: int | None = None,
        realized_profit: int | None = None,
        bundle_hash: str | None = None,
        target_block: int | None = None,
        reason: str | None = None,
        session: AsyncSession | None = None,
    ) -> int:
        """Move an opportunity along its lifecycle; ``None`` fields are left as they are.  Returns rows updated."""
        table = crud.table_of(Opportunity)
        values: dict[str, Any] = {"status": status}
        for name, value in (
            ("simulated_profit", simulated_profit),
            ("realized_profit", realized_profit),
            ("target_block", target_block),
            ("reason", reason),
        ):
            if value is not None:
                values[name] = value
        if bundle_hash is not None:
            values["bundle_hash"] = _hash(bundle_hash, "bundle_hash")
        stmt = (
            update(table)
            .where(
                table.c.chain_id == chain_id,
                table.c.block_hash == _hash(block_hash, "block_hash"),
                table.c.bot == bot,
                table.c.key == key,
            )
            .values(**values)
        )
        return await self._execute_update(stmt, session)

    async def _execute_update(self, stmt: Any, session: AsyncSession | None) -> int:
        if session is not None:
            result = await (await session.connection()).execute(stmt)
        else:
            async with self.session() as own:
                result = await (await own.connection()).execute(stmt)
        return int(result.rowcount)

    async def record_bundle(
        self,
        *,
        chain_id: int,
        block_number: int,
        block_hash: str,
        bundle_hash: str,
        target_block: int,
        bot: str,
        status: str,
        tx_count: int,
        expected_profit: int,
        tip: int,
        opportunity_key: str | None = None,
        relay: str | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record a bundle built on ``block_number`` (key: chain_id, block_hash, bundle_hash)."""
        row = {
            "chain_id": chain_id,
            "block_number": block_number,
            "block_hash": _hash(block_hash, "block_hash"),
            "bundle_hash": _hash(bundle_hash, "bundle_hash"),
            "target_block": target_block,
            "bot": bot,
            "status": status,
            "tx_count": tx_count,
            "expected_profit": expected_profit,
            "tip": tip,
            "opportunity_key": opportunity_key,
            "relay": relay,
        }
        return await self._insert(Bundle, row, ("chain_id", "block_hash", "bundle_hash"), session)

    async def set_bundle_status(
        self,
        *,
        chain_id: int,
        bundle_hash: str,
        status: str,
        included_block_number: int | None = None,
        included_block_hash: str | None = None,
        session: AsyncSession | None = None,
    ) -> int:
        """Update a bundle's status (and where it landed); returns the rows updated."""
        bundles = crud.table_of(Bundle)
        stmt = (
            update(bundles)
            .where(bundles.c.chain_id == chain_id, bundles.c.bundle_hash == _hash(bundle_hash, "bundle_hash"))
            .values(
                status=status,
                included_block_number=included_block_number,
                included_block_hash=None if included_block_hash is None else _hash(included_block_hash),
            )
        )
        if session is not None:
            result = await (await session.connection()).execute(stmt)
        else:
            async with self.session() as own:
                result = await (await own.connection()).execute(stmt)
        return result.rowcount

    async def record_transaction(
        self,
        *,
        chain_id: int,
        block_number: int,
        block_hash: str,
        tx_index: int,
        tx_hash: str,
        sender: str,
        nonce: int,
        value: int,
        gas_used: int,
        effective_gas_price: int,
        success: bool,
        to: str | None = None,
        bot: str | None = None,
        bundle_hash: str | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record an included transaction and its receipt outcome (key: chain_id, block_hash, tx_index)."""
        row = {
            "chain_id": chain_id,
            "block_number": block_number,
            "block_hash": _hash(block_hash, "block_hash"),
            "tx_index": tx_index,
            "tx_hash": _hash(tx_hash, "tx_hash"),
            "bot": bot,
            "sender": sender,
            "to": to,
            "nonce": nonce,
            "value": value,
            "gas_used": gas_used,
            "effective_gas_price": effective_gas_price,
            "success": success,
            "bundle_hash": None if bundle_hash is None else _hash(bundle_hash, "bundle_hash"),
        }
        return await self._insert(Transaction, row, ("chain_id", "block_hash", "tx_index"), session)

    async def record_trade(
        self,
        *,
        chain_id: int,
        block_number: int,
        block_hash: str,
        log_index: int,
        tx_index: int,
        tx_hash: str,
        pool: str,
        token_in: str,
        token_out: str,
        amount_in: int,
        amount_out: int,
        bot: str | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record an on-chain swap leg from its log (key: chain_id, block_hash, log_index)."""
        row = {
            "chain_id": chain_id,
            "block_number": block_number,
            "block_hash": _hash(block_hash, "block_hash"),
            "log_index": log_index,
            "tx_index": tx_index,
            "tx_hash": _hash(tx_hash, "tx_hash"),
            "bot": bot,
            "pool": pool,
            "token_in": token_in,
            "token_out": token_out,
            "amount_in": amount_in,
            "amount_out": amount_out,
        }
        return await self._insert(Trade, row, ("chain_id", "block_hash", "log_index"), session)

    async def record_fill(
        self,
        *,
        venue: str,
        fill_id: str,
        symbol: str,
        side: str,
        price: Decimal | str,
        quantity: Decimal | str,
        filled_at: dt.datetime,
        fee: Decimal | str = Decimal(0),
        fee_currency: str | None = None,
        order_id: str | None = None,
        bot: str | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record a CEX fill (key: venue, fill_id); prices and quantities are exact decimals."""
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        row = {
            "venue": venue,
            "fill_id": fill_id,
            "order_id": order_id,
            "bot": bot,
            "symbol": symbol,
            "side": side,
            "price": price,
            "quantity": quantity,
            "fee": fee,
            "fee_currency": fee_currency,
            "filled_at": filled_at,
        }
        return await self._insert(Fill, row, ("venue", "fill_id"), session)

    async def record_pnl(
        self,
        *,
        chain_id: int,
        block_number: int,
        block_hash: str,
        bot: str,
        token: str,
        realized: int,
        gas_spent: int,
        net: int,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record a PnL snapshot as of a block (key: chain_id, block_hash, bot, token)."""
        row = {
            "chain_id": chain_id,
            "block_number": block_number,
            "block_hash": _hash(block_hash, "block_hash"),
            "bot": bot,
            "token": token,
            "realized": realized,
            "gas_spent": gas_spent,
            "net": net,
        }
        return await self._insert(PnlSnapshot, row, ("chain_id", "block_hash", "bot", "token"), session)

    async def record_model_run(
        self,
        *,
        run_id: str,
        model: str,
        status: str,
        started_at: dt.datetime,
        version: str | None = None,
        finished_at: dt.datetime | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        artifact_uri: str | None = None,
    ) -> None:
        """Insert or update an ML run record (key: run_id) — the sink the ML registry is given."""
        row = {
            "run_id": run_id,
            "model": model,
            "version": version,
            "status": status,
            "started_at": started_at,
            "finished_at": finished_at,
            "params": params,
            "metrics": metrics,
            "artifact_uri": artifact_uri,
        }
        changing = ("status", "version", "finished_at", "params", "metrics", "artifact_uri")
        async with self.session() as session:
            await crud.upsert(session, ModelRun, row, ("run_id",), changing)

    async def record_signal(
        self,
        *,
        source: str,
        symbol: str,
        venue: str,
        timeframe: str,
        bar_time: dt.datetime,
        p_up: float,
        signal: str | int,
        horizon: int,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record an ML signal (key: source, symbol, timeframe, bar_time); ``True`` when new.

        ``signal`` is ``long`` / ``short`` / ``flat``, or the signal service's ``1`` / ``-1`` / ``0``;
        ``p_up`` a probability in [0, 1]; ``bar_time`` timezone-aware (the service's ``as_of``); ``horizon`` in bars.
        """
        if isinstance(signal, bool):
            raise ValueError(f"signal must be long/short/flat or 1/-1/0, got {signal!r}")
        name = SIGNAL_VALUES.get(signal) if isinstance(signal, int) else signal
        if name not in SIGNAL_VALUES.values():
            raise ValueError(f"signal must be long/short/flat or 1/-1/0, got {signal!r}")
        if isinstance(p_up, bool) or not isinstance(p_up, int | float) or not 0.0 <= p_up <= 1.0:
            raise ValueError(f"p_up must be a probability in [0, 1], got {p_up!r}")
        if not isinstance(bar_time, dt.datetime) or bar_time.tzinfo is None:
            raise ValueError(f"bar_time must be a timezone-aware datetime, got {bar_time!r}")
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be an int >= 1 (bars), got {horizon!r}")
        row = {
            "source": source,
            "symbol": symbol,
            "venue": venue,
            "timeframe": timeframe,
            "bar_time": bar_time,
            "p_up": float(p_up),
            "signal": name,
            "horizon": horizon,
        }
        return await self._insert(Signal, row, ("source", "symbol", "timeframe", "bar_time"), session)

    async def recent_signals(
        self,
        *,
        symbol: str | None = None,
        source: str | None = None,
        timeframe: str | None = None,
        venue: str | None = None,
        limit: int = 100,
    ) -> list[SignalRecord]:
        """The latest signals (newest bar first), optionally of one symbol / source / timeframe / venue."""
        filters = [
            column == value
            for column, value in (
                (Signal.symbol, symbol),
                (Signal.source, source),
                (Signal.timeframe, timeframe),
                (Signal.venue, venue),
            )
            if value is not None
        ]
        stmt = select(Signal).where(*filters).order_by(Signal.bar_time.desc(), Signal.id.desc()).limit(limit)
        async with self.sessionmaker() as session:
            return [
                SignalRecord(
                    r.source,
                    r.symbol,
                    r.venue,
                    r.timeframe,
                    r.bar_time,
                    r.p_up,
                    r.signal,
                    r.horizon,
                    r.created_at,
                )
                for r in (await session.execute(stmt)).scalars()
            ]

    # -- reorgs and reads ----------------------------------------------------------------------------------

    async def delete_from_block(self, chain_id: int, block_number: int) -> dict[str, int]:
        """Remove every chain-derived row at or after ``block_number`` (see :func:`crud.delete_from_block`)."""
        async with self.session() as session:
            return await crud.delete_from_block(session, chain_id, block_number)

    async def orphan_bundles_from(
        self, chain_id: int, block_number: int, *, session: AsyncSession | None = None
    ) -> list[OrphanedBundle]:
        """Mark every bundle that landed at or after ``block_number`` as ``orphaned`` (inclusion cleared).

        Returns them with the hashes of their recorded transactions (read before the reorg deletes those rows),
        so a caller can tell when the same transactions land again on the new branch.
        """
        if session is None:
            async with self.session() as own:
                return await self.orphan_bundles_from(chain_id, block_number, session=own)
        bundles = crud.table_of(Bundle)
        txs = crud.table_of(Transaction)
        conn = await session.connection()
        rows = (
            await conn.execute(
                select(
                    bundles.c.bundle_hash,
                    bundles.c.bot,
                    bundles.c.included_block_number,
                    bundles.c.included_block_hash,
                )
                .where(bundles.c.chain_id == chain_id, bundles.c.included_block_number >= block_number)
                .order_by(bundles.c.included_block_number, bundles.c.id)
            )
        ).all()
        out: list[OrphanedBundle] = []
        for bundle_hash, bot, included_number, included_hash in rows:
            tx_hashes = (
                (
                    await conn.execute(
                        select(txs.c.tx_hash)
                        .where(txs.c.chain_id == chain_id, txs.c.bundle_hash == bundle_hash)
                        .order_by(txs.c.block_number, txs.c.tx_index)
                    )
                )
                .scalars()
                .all()
            )
            out.append(
                OrphanedBundle(
                    str(bundle_hash),
                    str(bot),
                    int(included_number),
                    None if included_hash is None else str(included_hash),
                    tuple(str(h) for h in tx_hashes),
                )
            )
        if out:
            await conn.execute(
                update(bundles)
                .where(bundles.c.chain_id == chain_id, bundles.c.included_block_number >= block_number)
                .values(status="orphaned", included_block_number=None, included_block_hash=None)
            )
        return out

    async def rollback_reorg(self, chain_id: int, first_orphaned: int) -> ReorgRollback:
        """Undo the rows of the blocks a reorg replaced, in ONE transaction.

        Bundles that had landed at or after ``first_orphaned`` become ``orphaned`` (see
        :meth:`orphan_bundles_from`), and so do the opportunities they carried (their realized profit is cleared);
        then every chain-derived row at or after it is deleted
        (:meth:`delete_from_block`: blocks, evaluations, opportunities, bundles built there, transactions, trades,
        and the PnL snapshots -- so the orphaned bundles' PnL goes too).  Orphaned opportunities get the reason
        ``orphaned``.  Idempotent: a second call changes nothing.
        """
        async with self.session() as session:
            orphaned_bundles = await self.orphan_bundles_from(chain_id, first_orphaned, session=session)
            for b in orphaned_bundles:  # opportunities found before the fork that those bundles had carried
                await self._execute_update(
                    update(crud.table_of(Opportunity))
                    .where(Opportunity.chain_id == chain_id, Opportunity.bundle_hash == b.bundle_hash)
                    .values(status="orphaned", realized_profit=None, reason=Reason.ORPHANED),
                    session,
                )
            deleted = await crud.delete_from_block(session, chain_id, first_orphaned)
        return ReorgRollback(tuple(orphaned_bundles), deleted)

    async def evaluations(
        self, chain_id: int, *, bot: str | None = None, from_block: int | None = None
    ) -> list[EvaluationRecord]:
        """The evaluations of ``chain_id`` (of one ``bot``, at or after ``from_block``), by block number."""
        filters = [Evaluation.chain_id == chain_id]
        if bot is not None:
            filters.append(Evaluation.bot == bot)
        if from_block is not None:
            filters.append(Evaluation.block_number >= from_block)
        stmt = select(Evaluation).where(*filters).order_by(Evaluation.block_number, Evaluation.id)
        async with self.sessionmaker() as session:
            return [
                EvaluationRecord(
                    r.bot,
                    r.chain_id,
                    r.block_number,
                    r.block_hash,
                    r.status,
                    r.duration_ms,
                    r.opportunities,
                    r.reason,
                    r.created_at,
                )
                for r in (await session.execute(stmt)).scalars()
            ]

    async def bundle_status(
        self, chain_id: int, bundle_hash: str
    ) -> tuple[str, int | None, str | None] | None:
        """``(status, included_block_number, included_block_hash)`` of a bundle (the latest recorded row)."""
        async with self.sessionmaker() as session:
            stmt = (
                select(Bundle.status, Bundle.included_block_number, Bundle.included_block_hash)
                .where(Bundle.chain_id == chain_id, Bundle.bundle_hash == _hash(bundle_hash, "bundle_hash"))
                .order_by(Bundle.id.desc())
                .limit(1)
            )
            row = (await session.execute(stmt)).first()
            return None if row is None else (str(row[0]), row[1], row[2])

    async def block_hash_at(self, chain_id: int, number: int) -> str | None:
        """The stored hash of block ``number`` (None if not recorded); compared with the chain on reorgs."""
        async with self.sessionmaker() as session:
            stmt = select(Block.hash).where(Block.chain_id == chain_id, Block.number == number).limit(1)
            return (await session.execute(stmt)).scalar_one_or_none()

    async def latest_block(self, chain_id: int) -> tuple[int, str] | None:
        """``(number, hash)`` of the highest recorded block of ``chain_id`` — the resume point."""
        async with self.sessionmaker() as session:
            stmt = (
                select(Block.number, Block.hash)
                .where(Block.chain_id == chain_id)
                .order_by(Block.number.desc())
                .limit(1)
            )
            row = (await session.execute(stmt)).first()
            return None if row is None else (int(row[0]), str(row[1]))

    async def counts(self) -> dict[str, int]:
        """Rows per table (for the demo summary)."""
        out: dict[str, int] = {}
        async with self.sessionmaker() as session:
            for model in _MODELS:
                count = (await session.execute(select(func.count()).select_from(model))).scalar_one()
                out[model.__tablename__] = int(count)
        return out

    async def total(
        self,
        column: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
        *filters: ColumnElement[bool],
    ) -> int:
        """Exact sum of an amount column (e.g. ``store.total(PnlSnapshot.net, PnlSnapshot.bot == "arb")``)."""
        async with self.sessionmaker() as session:
            return await crud.sum_amount(session, column, *filters)
