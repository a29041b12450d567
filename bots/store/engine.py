"""Async engine factory: SQLite (WAL) by default, PostgreSQL through ``MEVSUITE_DB_URL`` or the config.

URL precedence: an explicit URL (from ``db.url`` in the config / ``MEVSUITE__DB__URL``) > ``MEVSUITE_DB_URL``
> :data:`DEFAULT_URL` (``mevsuite.db`` in the current directory).  :func:`connect` checks the database
answers and otherwise raises :class:`DatabaseUnavailableError` whose message is one line naming the URL with the
password masked.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "DB_URL_ENV",
    "DEFAULT_URL",
    "DatabaseUnavailableError",
    "connect",
    "create_engine",
    "mask_url",
    "resolve_url",
]

DEFAULT_URL = "sqlite+aiosqlite:///mevsuite.db"
DB_URL_ENV = "MEVSUITE_DB_URL"


class DatabaseUnavailableError(RuntimeError):
    """The database at a URL cannot be reached or opened; ``str()`` is one line, password masked."""


def resolve_url(url: str | URL | None = None) -> str:
    """The URL to use: ``url`` if given, else ``$MEVSUITE_DB_URL``, else :data:`DEFAULT_URL`."""
    if url is not None and str(url):
        return url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    return os.environ.get(DB_URL_ENV) or DEFAULT_URL


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***`` (safe to print or log)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (dashboard, CLI) run while a bot writes; NORMAL is durable enough under WAL.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def create_engine(url: str | URL | None = None, *, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    """An :class:`AsyncEngine` for ``url`` (see :func:`resolve_url`); nothing is connected yet.

    SQLite connections get ``journal_mode=WAL``.  A plain ``sqlite://`` / ``postgresql://`` URL is given its
    async driver (aiosqlite / psycopg 3).
    """
    resolved = resolve_url(url)
    try:
        parsed = make_url(resolved)
    except ArgumentError as exc:
        raise DatabaseUnavailableError(f"database URL is not valid: {mask_url(resolved)}") from exc
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUnavailableError(
            f"unsupported database {parsed.get_backend_name()!r} in {mask_url(resolved)}: use sqlite or postgresql"
        )
    try:
        engine = create_async_engine(parsed, echo=echo, **kwargs)
    except (ImportError, ArgumentError) as exc:  # a driver that is not installed, a sync driver ...
        raise DatabaseUnavailableError(f"cannot use database URL {mask_url(resolved)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def connect(url: str | URL | None = None, *, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    """:func:`create_engine` and check the database answers; :class:`DatabaseUnavailableError` otherwise."""
    engine = create_engine(url, echo=echo, **kwargs)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        await engine.dispose()
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        password = engine.url.password
        if password:
            reason = reason.replace(str(password), "***")
        if len(reason) > 200:
            reason = reason[:197] + "..."
        raise DatabaseUnavailableError(f"database unreachable: {mask_url(engine.url)}: {reason}") from exc
    return engine
