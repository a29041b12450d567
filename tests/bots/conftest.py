"""Fixtures of the bots tests: throw-away SQLite files and PostgreSQL databases, a free TCP port.

PostgreSQL: each test that asks for ``pg_url`` gets its own database ``mevsuite_test_<random>`` on the server
named by ``MEVSUITE_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``, used only to
create and drop it), dropped WITH (FORCE) afterwards — parallel runs never collide.  If the server is not
reachable the PostgreSQL variants are skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("MEVSUITE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _admin_conninfo() -> str:
    url = make_url(ADMIN_URL)
    parts = {
        "host": url.host or "127.0.0.1",
        "port": str(url.port or 5432),
        "user": url.username or "postgres",
        "dbname": url.database or "postgres",
        "connect_timeout": "3",
    }
    if url.password:
        parts["password"] = str(url.password)
    return " ".join(f"{k}={v}" for k, v in parts.items())


@pytest.fixture(scope="session")
def pg_admin() -> str:
    """libpq conninfo of the admin database; skips the test when the server is unreachable."""
    conninfo = _admin_conninfo()
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {make_url(ADMIN_URL).render_as_string()}: {exc}".strip())
    return conninfo


@pytest.fixture
def pg_url(pg_admin: str) -> Iterator[str]:
    """An empty throw-away PostgreSQL database (SQLAlchemy async URL), dropped after the test."""
    name = f"mevsuite_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database file in the test's temporary directory."""
    return f"sqlite+aiosqlite:///{tmp_path / 'mevsuite.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test runs once on an empty SQLite file and once on an empty PostgreSQL database."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
