"""`mevsuite kill-switch on|off|status`: the real console script flips the configured kill-switch file, and a
bot's :class:`~bots.runtime.risk.KillSwitch` in another process (this one) sees it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

from bots.runtime.actions import SendAction
from bots.runtime.risk import FILE_CHECK_INTERVAL_S, KillSwitch, RiskGate
from bots.store import Reason
from tests.bots.app.conftest import assert_one_line_error, run_cli


class Clock:
    """The bot's monotonic clock, advanced by hand past the kill-switch file cache."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Probe(SendAction):
    """A bare SendAction (the gate reads only the base fields)."""


def bundle() -> Probe:
    return Probe(bot="dex_arb", chain_id=31337, target_block=1, notional_wei=1, expected_profit_wei=0)


def status_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    status: dict[str, Any] = json.loads(lines[0])
    return status


def test_on_off_status_through_the_configured_file(tmp_path: Path) -> None:
    (tmp_path / "mevsuite.toml").write_text('[risk]\nkill_switch_file = "run/kill-switch"\n')
    path = tmp_path / "run" / "kill-switch"
    clock = Clock(0.0)
    bot_switch = KillSwitch(path, clock=clock)  # the bot's process
    gate = RiskGate(kill_switch=bot_switch)
    assert gate.check(bundle()) is None

    off = status_of(run_cli(["kill-switch", "status"], cwd=tmp_path))
    assert off == {
        "engaged": False, "reason": None, "since": None, "source": None, "file": str(path), "error": None,
    }  # fmt: skip

    on = status_of(run_cli(["kill-switch", "on", "--reason", "relay down"], cwd=tmp_path))
    assert on["engaged"] is True and on["reason"] == "relay down" and on["since"].endswith("Z")
    assert path.is_file() and json.loads(path.read_text())["reason"] == "relay down"
    clock.now += FILE_CHECK_INTERVAL_S
    assert bot_switch.engaged and bot_switch.reason == "relay down"
    assert gate.check(bundle()) == Reason.KILL_SWITCH

    seen = status_of(run_cli(["kill-switch", "status"], cwd=tmp_path))
    assert seen == {**on, "source": "file"}  # what another process reads back from the file

    released = status_of(run_cli(["kill-switch", "off"], cwd=tmp_path))
    assert released["engaged"] is False and not path.exists()
    clock.now += FILE_CHECK_INTERVAL_S
    assert not bot_switch.engaged and gate.check(bundle()) is None
    status_of(run_cli(["kill-switch", "off"], cwd=tmp_path))  # releasing twice is fine


def test_off_also_releases_a_bot_that_engaged_itself(tmp_path: Path) -> None:
    config = tmp_path / "conf.toml"
    config.write_text(f"[risk]\nkill_switch_file = {json.dumps(str(tmp_path / 'ks'))}\n")
    clock = Clock(0.0)
    bot_switch = KillSwitch(tmp_path / "ks", clock=clock)
    bot_switch.engage("dashboard")
    seen = status_of(run_cli(["--config", str(config), "kill-switch", "status"], cwd=tmp_path))
    assert (seen["engaged"], seen["reason"]) == (True, "dashboard")
    status_of(run_cli(["--config", str(config), "kill-switch", "off"], cwd=tmp_path))
    clock.now += FILE_CHECK_INTERVAL_S
    assert not bot_switch.engaged


def test_environment_override_and_default_reason(tmp_path: Path) -> None:
    env = {"MEVSUITE__RISK__KILL_SWITCH_FILE": str(tmp_path / "ks")}
    on = status_of(run_cli(["kill-switch", "on"], cwd=tmp_path, env=env))
    assert on["reason"] == "manual" and (tmp_path / "ks").is_file()


def test_no_configured_file_is_a_config_error(tmp_path: Path) -> None:
    for command in (["on"], ["off"], ["status"]):
        line = assert_one_line_error(run_cli(["kill-switch", *command], cwd=tmp_path), 2)
        assert "risk.kill_switch_file" in line
    assert not list(tmp_path.iterdir())  # nothing created


def test_an_unwritable_file_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    env = {"MEVSUITE__RISK__KILL_SWITCH_FILE": str(tmp_path / "blocker" / "ks")}
    line = assert_one_line_error(run_cli(["kill-switch", "on"], cwd=tmp_path, env=env), 1)
    assert "kill switch" in line and "blocker" in line
    line = assert_one_line_error(
        run_cli(
            ["kill-switch", "status"], cwd=tmp_path, env={"MEVSUITE__RISK__DEFAULT__MAX_NOTIONAL_WEI": "-1"}
        ),
        2,
    )
    assert "risk.default.max_notional_wei" in line
