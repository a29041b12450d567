"""`--help` on every command and group of the CLI exits 0 and shows its usage.

The command tree is walked programmatically, so a command added later is covered without touching this file.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from bots.app.cli import main
from tests.bots.app.conftest import run_cli


def _walk(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, cmd)]
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            found += _walk(cmd.commands[name], (*path, name))
    return found


TREE = _walk(main)


def test_tree_has_the_documented_commands() -> None:
    paths = {" ".join(p) for p, _ in TREE}
    assert {"", "chain", "chain status", "db", "db upgrade", "devnet", "devnet up", "demo"} <= paths


@pytest.mark.parametrize("path", [p for p, _ in TREE], ids=[" ".join(p) or "mevsuite" for p, _ in TREE])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(path: tuple[str, ...], flag: str, tmp_path: Path) -> None:
    cmd = dict(TREE)[path]
    result = run_cli([*path, flag], cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    usage = result.stdout.splitlines()[0]
    arguments = [p.make_metavar(click.Context(cmd)) for p in cmd.params if isinstance(p, click.Argument)]
    expected = " ".join([*path, "[OPTIONS]", *arguments]) + (
        " COMMAND [ARGS]..." if isinstance(cmd, click.Group) else ""
    )
    assert usage.startswith("Usage: ") and usage.endswith(expected), usage
    assert "Options:" in result.stdout
    if isinstance(cmd, click.Group):  # a group lists every subcommand
        for name in cmd.commands:
            assert f"  {name} " in result.stdout or result.stdout.rstrip().endswith(f"  {name}"), name
    assert not list(tmp_path.iterdir()), "--help must not create files"


def test_version(tmp_path: Path) -> None:
    result = run_cli(["--version"], cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mevsuite, version ")
