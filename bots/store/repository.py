"""The repository the bots use: :class:`Store` records blocks, opportunities, bundles, txs, trades, fills, PnL.

Every ``record_*`` is an idempotent insert keyed by the row's natural key (see :mod:`bots.store.models`) and
returns ``True`` when the row is new.  Each call commits its own transaction, or joins the caller's when
``session=`` is given (write one block's rows atomically with ``async with store.session() as s: …``).
Hashes are stored lower-case; amounts are Python ints (exact, see :mod:`bots.store.types`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Self

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
    Fill,
    ModelRun,
    Opportunity,
    PnlSnapshot,
    Trade,
    Transaction,
)

__all__ = ["OrphanedBundle", "ReorgRollback", "Store"]

_MODELS: tuple[type[Base], ...] = (
    Block,
    Opportunity,
    Bundle,
    Transaction,
    Trade,
    Fill,
    PnlSnapshot,
    ModelRun,
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
        session: AsyncSession | None = None,
    ) -> bool:
        """Record an opportunity (key: chain_id, block_hash, bot, key), already at ``status`` if it is known."""
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
        session: AsyncSession | None = None,
    ) -> int:
        """Move an opportunity along its lifecycle; ``None`` fields are left as they are.  Returns rows updated."""
        table = crud.table_of(Opportunity)
        values: dict[str, Any] = {"status": status}
        for name, value in (
            ("simulated_profit", simulated_profit),
            ("realized_profit", realized_profit),
            ("target_block", target_block),
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
        (:meth:`delete_from_block`: blocks, opportunities, bundles built there, transactions, trades, and the PnL
        snapshots -- so the orphaned bundles' PnL goes too).  Idempotent: a second call changes nothing.
        """
        async with self.session() as session:
            orphaned_bundles = await self.orphan_bundles_from(chain_id, first_orphaned, session=session)
            for b in orphaned_bundles:  # opportunities found before the fork that those bundles had carried
                await self._execute_update(
                    update(crud.table_of(Opportunity))
                    .where(Opportunity.chain_id == chain_id, Opportunity.bundle_hash == b.bundle_hash)
                    .values(status="orphaned", realized_profit=None),
                    session,
                )
            deleted = await crud.delete_from_block(session, chain_id, first_orphaned)
        return ReorgRollback(tuple(orphaned_bundles), deleted)

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
