"""`mevsuite db upgrade` creates the schema on SQLite and on PostgreSQL (real subprocess, temp cwd)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.bots.app.conftest import SCHEMA_TABLES, run_cli, sqlite_tables


def test_upgrade_sqlite_file_creates_tables_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "data" / "x.db"
    db.parent.mkdir()
    for _ in range(2):  # the second run finds the newest revision and changes nothing
        result = run_cli(["db", "upgrade", "--url", f"sqlite:///{db}"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "newest revision" in result.stdout
    assert SCHEMA_TABLES <= sqlite_tables(db)


def test_upgrade_default_is_mevsuite_db_in_cwd(tmp_path: Path) -> None:
    result = run_cli(["db", "upgrade"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert SCHEMA_TABLES <= sqlite_tables(tmp_path / "mevsuite.db")


def test_upgrade_url_from_env(tmp_path: Path) -> None:
    result = run_cli(
        ["db", "upgrade"],
        cwd=tmp_path,
        env={"MEVSUITE__DB__URL": f"sqlite+aiosqlite:///{tmp_path / 'env.db'}"},
    )
    assert result.returncode == 0, result.stderr
    assert SCHEMA_TABLES <= sqlite_tables(tmp_path / "env.db")
    assert not (tmp_path / "mevsuite.db").exists()


def test_upgrade_postgresql(pg_url: str, tmp_path: Path) -> None:
    result = run_cli(["db", "upgrade", "--url", pg_url], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    url = make_url(pg_url)
    with psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        dbname=url.database,
        password=url.password,
        connect_timeout=5,
    ) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert SCHEMA_TABLES <= tables
    assert len(revision) == 1
