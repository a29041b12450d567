"""The risk gate and the kill switch: every limit refuses exactly at its boundary, in the documented order, and
the kill switch stops everything -- by API and by a file shared between processes.  Clocks are injected: no
test sleeps or times anything."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bots.runtime.actions import SendAction
from bots.runtime.risk import FILE_CHECK_INTERVAL_S, KillSwitch, RiskGate, RiskLimits
from bots.store import Reason

ETH = 10**18
BOT = "dex_arb"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Probe(SendAction):
    """A bare SendAction: the gate reads only the base fields (the real Bundle / Transaction add what to send)."""


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()


def bundle(notional: int = ETH, block: int | None = 100, bot: str = BOT, chain_id: int = 1) -> Probe:
    return Probe(bot=bot, chain_id=chain_id, target_block=block, notional_wei=notional, expected_profit_wei=0)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# ------------------------------------------------------------------------------------------------ limits
def test_notional_equal_to_the_limit_is_admitted_one_wei_more_is_refused() -> None:
    limit = 500 * ETH + 1  # beyond 2**64: exact ints, no float rounding
    gate = RiskGate({BOT: RiskLimits(max_notional_wei=limit)})
    assert gate.check(bundle(limit)) is None
    assert gate.check(bundle(limit + 1)) == Reason.RISK_NOTIONAL == "risk_notional"
    assert gate.check(bundle(0)) is None
    # another bot falls back to the default (no limit)
    assert gate.check(bundle(10 * limit, bot="other")) is None


def test_per_block_limit_refuses_the_third_and_admits_again_in_the_next_block() -> None:
    gate = RiskGate(default=RiskLimits(max_actions_per_block=2))
    assert [gate.check(bundle(block=100)) for _ in range(3)] == [None, None, Reason.RISK_RATE_BLOCK]
    assert gate.check(bundle(block=100)) == "risk_rate_block"  # refusals do not count, it stays refused
    assert gate.check(bundle(block=101)) is None
    assert gate.check(bundle(block=100, chain_id=10)) is None  # the block of another chain
    assert gate.check(bundle(block=100, bot="other")) is None  # per bot
    # no target block (a public transaction): not subject to the per-block limit
    tx = bundle(block=None)
    assert [gate.check(tx) for _ in range(3)] == [None, None, None]
    assert gate.status()["bots"][BOT]["admitted_by_target_block"] == [
        {"chain_id": 1, "target_block": 100, "admitted": 2},
        {"chain_id": 10, "target_block": 100, "admitted": 1},
        {"chain_id": 1, "target_block": 101, "admitted": 1},
    ]


def test_per_minute_limit_is_a_sliding_60_second_window() -> None:
    clock = Clock(1_000.0)
    gate = RiskGate(default=RiskLimits(max_actions_per_minute=2), clock=clock)
    assert gate.check(bundle(block=1)) is None  # t = 1000
    clock.now = 1_030.0
    assert gate.check(bundle(block=2)) is None
    clock.now = 1_059.999
    assert gate.check(bundle(block=3)) == Reason.RISK_RATE_MINUTE
    clock.now = 1_060.0  # the first admission (t = 1000) is now 60 s old: out of the window
    assert gate.check(bundle(block=4)) is None
    clock.now = 1_061.0
    assert gate.check(bundle(block=5)) == "risk_rate_minute"  # 1030 and 1060 are in (1001, 1061]
    clock.now = 1_090.0
    assert gate.check(bundle(block=6)) is None
    assert gate.status()["bots"][BOT]["admitted_last_minute"] == 2


def test_a_refused_action_does_not_count_toward_the_rate_limits() -> None:
    clock = Clock(0.0)
    gate = RiskGate(
        default=RiskLimits(max_notional_wei=ETH, max_actions_per_block=1, max_actions_per_minute=1),
        clock=clock,
    )
    for _ in range(5):
        assert gate.check(bundle(ETH + 1, block=7)) == Reason.RISK_NOTIONAL
    assert (
        gate.check(bundle(ETH, block=7)) is None
    )  # the refusals took neither the block's nor the minute's slot
    assert gate.check(bundle(ETH, block=7)) == Reason.RISK_RATE_BLOCK
    assert gate.check(bundle(ETH, block=8)) == Reason.RISK_RATE_MINUTE


def test_daily_loss_refuses_past_the_limit_and_resets_at_midnight_utc() -> None:
    clock = Clock(utc(2026, 12, 7, 23, 0))
    registry = CollectorRegistry()
    gate = RiskGate({BOT: RiskLimits(max_daily_loss_wei=100)}, registry=registry, clock=clock)
    gate.record_pnl(BOT, 50)
    gate.record_pnl(BOT, -150)  # net -100: a loss equal to the limit still admits
    assert gate.pnl_today(BOT) == -100
    assert gate.check(bundle()) is None
    gate.record_pnl(BOT, -1)  # net -101 < -100
    assert gate.check(bundle(block=101)) == Reason.RISK_DAILY_LOSS == "risk_daily_loss"
    assert sample(registry, "mevsuite_risk_daily_loss_wei", bot=BOT) == 101.0
    gate.record_pnl(BOT, 1)  # a gain offsets it
    assert gate.check(bundle(block=102)) is None
    gate.record_pnl(BOT, -2)
    clock.now = utc(2026, 12, 7, 23, 59, 59)
    assert gate.check(bundle(block=103)) == Reason.RISK_DAILY_LOSS

    clock.now = utc(2026, 12, 8, 0, 0, 0)  # a new UTC day
    assert gate.check(bundle(block=104)) is None
    assert gate.pnl_today(BOT) == 0
    assert sample(registry, "mevsuite_risk_daily_loss_wei", bot=BOT) == 0.0
    gate.record_pnl(
        BOT, -(10**6), at=utc(2026, 12, 7, 23, 30)
    )  # a late report of yesterday: not today's loss
    assert gate.pnl_today(BOT) == 0
    gate.record_pnl(BOT, -101, at=utc(2026, 12, 8, 0, 0, 1))
    assert gate.check(bundle(block=105)) == Reason.RISK_DAILY_LOSS
    assert gate.status()["bots"][BOT]["loss_today_wei"] == 101


def test_checks_run_in_the_documented_order() -> None:
    clock = Clock(utc(2026, 12, 7, 12))
    limits = RiskLimits(
        max_notional_wei=10, max_actions_per_block=1, max_actions_per_minute=2, max_daily_loss_wei=5
    )
    gate = RiskGate(default=limits, clock=clock)
    assert gate.check(bundle(10, block=1)) is None
    assert gate.check(bundle(10, block=2)) is None
    gate.record_pnl(BOT, -6)
    gate.kill_switch.engage("test")
    over_all = bundle(11, block=1)  # over the notional, the day's loss, the block's and the minute's limits
    assert gate.check(over_all) == Reason.KILL_SWITCH
    gate.kill_switch.release()
    assert gate.check(over_all) == Reason.RISK_NOTIONAL
    assert gate.check(bundle(10, block=1)) == Reason.RISK_DAILY_LOSS
    gate.record_pnl(BOT, 6)
    assert gate.check(bundle(10, block=1)) == Reason.RISK_RATE_BLOCK
    assert gate.check(bundle(10, block=3)) == Reason.RISK_RATE_MINUTE


def test_zero_limits_refuse_everything_they_apply_to() -> None:
    gate = RiskGate(default=RiskLimits(max_actions_per_block=0))
    assert gate.check(bundle(block=1)) == Reason.RISK_RATE_BLOCK
    gate = RiskGate(default=RiskLimits(max_notional_wei=0))
    assert gate.check(bundle(0)) is None
    assert gate.check(bundle(1)) == Reason.RISK_NOTIONAL


def test_limits_and_amounts_must_be_exact_non_negative_ints() -> None:
    with pytest.raises(ValueError, match="max_notional_wei must be >= 0"):
        RiskLimits(max_notional_wei=-1)
    with pytest.raises(TypeError, match="exact"):
        RiskLimits(max_daily_loss_wei=1e18)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RiskLimits(max_actions_per_block=True)
    gate = RiskGate()
    with pytest.raises(TypeError, match="exact"):
        gate.record_pnl(BOT, -1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SendAction"):
        gate.check(object())  # type: ignore[arg-type]


def test_the_reason_codes_are_store_opportunity_reasons() -> None:
    codes = {"kill_switch", "risk_notional", "risk_rate_block", "risk_rate_minute", "risk_daily_loss"}
    assert codes <= Reason.OPPORTUNITY


# ----------------------------------------------------------------------------------------------- metrics
def test_metrics_count_admitted_and_refused_by_bot_and_reason() -> None:
    registry = CollectorRegistry()
    gate = RiskGate({BOT: RiskLimits(max_actions_per_block=1)}, registry=registry)
    assert gate.check(bundle(block=1)) is None
    assert gate.check(bundle(block=1)) == Reason.RISK_RATE_BLOCK
    assert gate.check(bundle(block=1)) == Reason.RISK_RATE_BLOCK
    gate.kill_switch.engage()
    assert gate.check(bundle(block=2, bot="b2")) == Reason.KILL_SWITCH
    assert sample(registry, "mevsuite_risk_admitted_total", bot=BOT) == 1.0
    assert sample(registry, "mevsuite_risk_refused_total", bot=BOT, reason="risk_rate_block") == 2.0
    assert sample(registry, "mevsuite_risk_refused_total", bot="b2", reason="kill_switch") == 1.0
    assert sample(registry, "mevsuite_kill_switch_engaged") == 1.0
    gate.kill_switch.release()
    assert sample(registry, "mevsuite_kill_switch_engaged") == 0.0
    # a second gate on the same registry shares the metric families (no duplicate registration)
    other = RiskGate(registry=registry)
    assert other.check(bundle(bot="b3")) is None
    assert sample(registry, "mevsuite_risk_admitted_total", bot="b3") == 1.0


def test_status_is_json_ready() -> None:
    clock = Clock(utc(2026, 12, 7, 12))
    gate = RiskGate(
        {BOT: RiskLimits(max_notional_wei=10**30)}, default=RiskLimits(max_actions_per_block=3), clock=clock
    )
    gate.check(bundle(10**30 + 1))
    gate.check(bundle(5, bot="other"))
    gate.record_pnl("other", -7)
    status = json.loads(json.dumps(gate.status()))
    assert status["kill_switch"] == {
        "engaged": False, "reason": None, "since": None, "source": None, "file": None, "error": None,
    }  # fmt: skip
    assert status["day_utc"] == "2026-12-07"
    assert status["default"]["max_actions_per_block"] == 3
    assert status["bots"][BOT]["limits"]["max_notional_wei"] == 10**30  # exact, not a float
    assert (
        status["bots"][BOT]["limits"]["max_actions_per_block"] is None
    )  # its own limits replace the default
    assert status["bots"][BOT]["refused_total"] == {"risk_notional": 1}
    assert status["bots"]["other"]["own_limits"] is False
    assert status["bots"]["other"]["admitted_total"] == 1
    assert (status["bots"]["other"]["pnl_today_wei"], status["bots"]["other"]["loss_today_wei"]) == (-7, 7)


# ------------------------------------------------------------------------------------------- kill switch
def test_kill_switch_by_api_refuses_everything_until_released() -> None:
    registry = CollectorRegistry()
    switch = KillSwitch(registry=registry)
    gate = RiskGate(kill_switch=switch, registry=registry)
    assert gate.kill_switch is switch
    assert (switch.engaged, switch.reason, sample(registry, "mevsuite_kill_switch_engaged")) == (
        False,
        None,
        0.0,
    )
    switch.engage("relay misbehaves\nsecond line")
    assert switch.engaged and switch.reason == "relay misbehaves second line"  # one line
    assert sample(registry, "mevsuite_kill_switch_engaged") == 1.0
    assert [gate.check(bundle(0, block=b)) for b in range(3)] == [Reason.KILL_SWITCH] * 3
    assert switch.status()["source"] == "process"
    switch.release()
    assert not switch.engaged and switch.reason is None
    assert gate.check(bundle(0)) is None
    assert sample(registry, "mevsuite_kill_switch_engaged") == 0.0


def test_kill_switch_file_is_seen_by_another_instance_within_the_cache_interval(tmp_path: Path) -> None:
    path = tmp_path / "state" / "kill-switch"  # its directory is created on engage
    clock_a, clock_b = Clock(10.0), Clock(500.0)
    reg_a, reg_b = CollectorRegistry(), CollectorRegistry()
    a = KillSwitch(path, registry=reg_a, clock=clock_a)  # "process" A
    b = KillSwitch(str(path), registry=reg_b, clock=clock_b)  # "process" B, same file
    gate_b = RiskGate(kill_switch=b, registry=reg_b)
    assert not a.engaged and not b.engaged

    a.engage("operator: halt")
    data = json.loads(path.read_text())
    assert data["reason"] == "operator: halt" and data["engaged"] is True
    assert dt.datetime.fromisoformat(data["since"].replace("Z", "+00:00")).tzinfo is not None
    assert [p.name for p in path.parent.iterdir()] == ["kill-switch"]  # the atomic write left no temp file
    assert not b.engaged  # B looked at the file less than 0.25 s ago (cached)
    assert gate_b.check(bundle()) is None
    clock_b.now += FILE_CHECK_INTERVAL_S
    assert b.engaged and b.reason == "operator: halt"
    assert gate_b.check(bundle()) == Reason.KILL_SWITCH
    assert sample(reg_b, "mevsuite_kill_switch_engaged") == 1.0  # the observed change is exported
    assert b.status()["source"] == "file" and b.status()["since"] == data["since"]

    b.release()  # releasing is global: the file goes, and A's own engagement with it
    assert not path.exists() and not b.engaged
    assert a.engaged  # until A looks again
    clock_a.now += FILE_CHECK_INTERVAL_S
    assert not a.engaged and a.reason is None
    assert sample(reg_a, "mevsuite_kill_switch_engaged") == 0.0
    assert gate_b.check(bundle()) is None


def test_any_file_at_the_path_engages_it(tmp_path: Path) -> None:
    path = tmp_path / "kill-switch"
    path.touch()
    switch = KillSwitch(path)
    assert switch.engaged and switch.reason == "file"
    path.write_text("not json")
    assert switch.reason == "file"


def test_without_a_path_the_switch_is_per_process(tmp_path: Path) -> None:
    a, b = KillSwitch(), KillSwitch()
    a.engage()
    assert a.engaged and a.reason == "manual" and not b.engaged
    assert a.path is None and a.status()["file"] is None


def test_a_file_that_cannot_be_examined_counts_as_engaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kill-switch"
    clock = Clock(0.0)
    switch = KillSwitch(path, clock=clock)
    assert not switch.engaged
    real_stat = os.stat

    def broken_stat(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(p) == path:
            raise OSError(errno.EIO, "Input/output error")
        return real_stat(p, *args, **kwargs)

    monkeypatch.setattr(os, "stat", broken_stat)
    clock.now += FILE_CHECK_INTERVAL_S
    assert switch.engaged
    assert "Input/output error" in (switch.reason or "") and switch.status()["error"] is not None


def test_engage_stays_engaged_in_process_when_the_file_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    switch = KillSwitch(blocker / "kill-switch")
    with pytest.raises(OSError):
        switch.engage("disk trouble")
    assert switch.engaged and switch.reason == "disk trouble"
