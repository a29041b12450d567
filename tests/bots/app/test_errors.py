"""Bad input ends with ONE clear line on stderr and the documented exit code — never a traceback.

Exit codes (bots/app/cli.py): 1 the run failed, 2 configuration error, 3 anvil missing, 4 node/RPC unreachable,
5 database unreachable, 130 interrupted.  Every case runs the real console script in a temporary directory.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.bots.app.conftest import assert_one_line_error, run_cli

# Every command that reads the configuration (a bad config must stop each of them before it does anything).
CONFIG_COMMANDS = [
    ["chain", "status"],
    ["db", "upgrade"],
    ["devnet", "up", "--blocks", "1"],
    ["demo", "--blocks", "1"],
]
CONFIG_IDS = [" ".join(c[:2]) for c in CONFIG_COMMANDS]

NO_ANVIL = {"MEVSUITE_ANVIL": "/nonexistent/anvil"}


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=CONFIG_IDS)
def test_malformed_toml_names_the_file(command: list[str], tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[chain]\nrpc_urls = ["http://127.0.0.1:8545"\n')
    line = assert_one_line_error(run_cli(["--config", "bad.toml", *command], cwd=tmp_path), 2)
    assert "bad.toml" in line and "TOML" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # nothing created, nothing started


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[metrics]\nport = "abc"\n', "metrics.port"),
        ("[metrics]\nprot = 9464\n", "prot"),  # unknown keys are errors (typo safety)
        ("[nosuchsection]\nx = 1\n", "nosuchsection"),
    ],
    ids=["wrong-type", "unknown-key", "unknown-section"],
)
def test_invalid_config_file_names_the_key(content: str, expected: str, tmp_path: Path) -> None:
    (tmp_path / "conf.toml").write_text(content)
    line = assert_one_line_error(run_cli(["--config", "conf.toml", "chain", "status"], cwd=tmp_path), 2)
    assert expected in line


def test_missing_config_file(tmp_path: Path) -> None:
    line = assert_one_line_error(run_cli(["--config", "nope.toml", "chain", "status"], cwd=tmp_path), 2)
    assert "nope.toml" in line


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=CONFIG_IDS)
def test_bad_env_value_names_the_key(command: list[str], tmp_path: Path) -> None:
    result = run_cli(command, cwd=tmp_path, env={"MEVSUITE__METRICS__PORT": "abc"})
    line = assert_one_line_error(result, 2)
    assert "MEVSUITE__METRICS__PORT" in line and "metrics.port" in line and "'abc'" in line
    assert not list(tmp_path.iterdir())


def test_unreachable_rpc_exits_4(tmp_path: Path) -> None:
    result = run_cli(
        ["chain", "status", "--rpc-url", "http://127.0.0.1:1"],
        cwd=tmp_path,
        env={"MEVSUITE__CHAIN__RETRIES": "0"},
    )
    line = assert_one_line_error(result, 4)
    assert "cannot reach" in line and "http://127.0.0.1:1" in line
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command", [["demo", "--blocks", "1"], ["devnet", "up", "--blocks", "1"]], ids=["demo", "devnet up"]
)
def test_missing_anvil_exits_3_and_says_make_setup(command: list[str], tmp_path: Path) -> None:
    line = assert_one_line_error(run_cli(command, cwd=tmp_path, env=NO_ANVIL), 3)
    assert "make setup" in line and "/nonexistent/anvil" in line
    # Checked before anything else: no database, no address book left behind.
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("password", [None, "s3cr3t-pw"], ids=["no-password", "password"])
def test_unreachable_database_exits_5_with_password_masked(password: str | None, tmp_path: Path) -> None:
    user = "nobody" if password is None else f"nobody:{password}"
    url = f"postgresql+psycopg://{user}@127.0.0.1:1/x"
    result = run_cli(["db", "upgrade", "--url", url], cwd=tmp_path, timeout=60)
    line = assert_one_line_error(result, 5)
    assert "127.0.0.1:1/x" in line and "database unreachable" in line
    if password is not None:
        assert password not in result.stderr + result.stdout
        assert "nobody:***@127.0.0.1:1/x" in line


def test_unreachable_database_from_env_in_demo_is_masked(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody:hunter2@127.0.0.1:1/x"
    result = run_cli(["demo", "--blocks", "1"], cwd=tmp_path, env={"MEVSUITE__DB__URL": url})
    line = assert_one_line_error(result, 5)
    assert "hunter2" not in result.stderr + result.stdout
    assert "nobody:***@" in line


def test_invalid_database_url(tmp_path: Path) -> None:
    line = assert_one_line_error(run_cli(["db", "upgrade", "--url", "not a url"], cwd=tmp_path), 5)
    assert "not valid" in line


def test_metrics_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(["demo", "--blocks", "1", "--metrics-port", str(port)], cwd=tmp_path)
    line = assert_one_line_error(result, 2)
    assert f"127.0.0.1:{port}" in line


def test_summary_path_not_writable_fails_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    result = run_cli(["demo", "--blocks", "1", "--json", "afile/summary.json"], cwd=tmp_path)
    line = assert_one_line_error(result, 1)
    assert "afile/summary.json" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # the demo did not start


def test_address_book_path_not_writable(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    result = run_cli(["devnet", "up", "--blocks", "1", "--out", "afile/book.json"], cwd=tmp_path)
    line = assert_one_line_error(result, 1)
    assert "afile/book.json" in line


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--blocks", "0"],
        ["demo", "--metrics-port", "70000"],
        ["devnet", "up", "--blocks", "-1"],
        ["devnet", "up", "--block-time", "-1"],
        ["chain", "nosuchcommand"],
        ["--nosuchoption"],
    ],
    ids=lambda a: " ".join(a),
)
def test_usage_errors_exit_2_without_traceback(args: list[str], tmp_path: Path) -> None:
    result = run_cli(args, cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("Error: ")
    assert not list(tmp_path.iterdir())


def test_unsupported_or_driverless_database_is_one_line(tmp_path: Path) -> None:
    for url, expect in (
        ("mysql://u:pw@127.0.0.1:1/x", "unsupported database 'mysql'"),
        ("postgresql+nosuchdriver://u:pw@127.0.0.1:1/x", "u:***@"),
    ):
        r = run_cli(["db", "upgrade", "--url", url], cwd=tmp_path)
        assert expect in assert_one_line_error(r, 5)
        assert "pw@" not in r.stdout + r.stderr
