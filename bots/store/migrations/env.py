"""Alembic environment for the mevsuite store: async engines, connection sharing, no alembic.ini.

:mod:`bots.store.migrate` passes an open (sync-facing) connection in ``config.attributes["connection"]``;
without one, the URL in ``config.attributes["url"]`` (or ``MEVSUITE_DB_URL`` / the SQLite default) is opened
with an async engine and the migrations run inside ``asyncio.run``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from bots.store.engine import create_engine, resolve_url
from bots.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        **kwargs,  # type: ignore[arg-type]
    )


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on an open connection."""
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Open the configured URL with an async engine and run the migrations on it."""
    engine = create_engine(config.attributes.get("url"), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of executing it (``alembic upgrade --sql``)."""
    _configure(url=resolve_url(config.attributes.get("url")), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a shared connection when one is given, else against a new async engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
