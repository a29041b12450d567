"""The risk gate and the kill switch: what every :class:`~bots.runtime.actions.SendAction` passes before any
executor sees it.

:class:`RiskGate` holds per-bot :class:`RiskLimits` (a bot without its own uses the gate's ``default``) and
answers one question per action, :meth:`RiskGate.check`: ``None`` (admitted, and counted against the rate
limits) or a refusal reason code (``bots.store.Reason``).  The checks, in this order:

1. ``kill_switch`` -- the :class:`KillSwitch` is engaged;
2. ``risk_notional`` -- ``notional_wei > max_notional_wei`` (equal is admitted);
3. ``risk_daily_loss`` -- the bot's realized PnL since 00:00 UTC (the sum of :meth:`RiskGate.record_pnl` of the
   day) is below ``-max_daily_loss_wei`` (a loss equal to the limit still admits);
4. ``risk_rate_block`` -- ``max_actions_per_block`` actions with the same ``(chain_id, target_block)`` were already
   admitted (an action without a target block is not subject to this limit);
5. ``risk_rate_minute`` -- ``max_actions_per_minute`` actions were admitted in the sliding window
   ``(now - 60 s, now]``.

A refused action counts toward nothing.  Amounts are exact ints throughout (floats appear only in the
``mevsuite_risk_daily_loss_wei`` gauge).  Time comes from the injected ``clock`` (wall-clock seconds, default
``time.time``) so the day boundary is UTC midnight and tests need no sleeping.

:class:`KillSwitch` stops all sending: engaged in-process (:meth:`KillSwitch.engage`) or by a file at its ``path``
(created by ``engage``, by ``mevsuite kill-switch on`` in another process, or by a plain ``touch``; any file there
engages it).  :attr:`KillSwitch.engaged` looks at the file at most every 0.25 s, so it is cheap on the hot path
and another process's switch is seen within 0.25 s.  Releasing is global: removing the file (``release`` in any
process, ``mevsuite kill-switch off``) also clears an in-process engagement once this process sees the file go.
A file that cannot be examined (permissions, I/O error) counts as engaged: the switch fails closed.

The engine gates every SendAction with :meth:`RiskGate.check` and, while :attr:`KillSwitch.engaged`, stops
feeding events to strategies (docs/risk.md).  Callers that flip the switch -- the CLI, later the dashboard over
the bus -- all use the same :meth:`KillSwitch.engage` / :meth:`KillSwitch.release`.

Metrics (on the registry given, never the global default; ``registry=None`` counts on unregistered metrics):
``mevsuite_kill_switch_engaged`` (0/1), ``mevsuite_risk_admitted_total{bot}``,
``mevsuite_risk_refused_total{bot, reason}``, ``mevsuite_risk_daily_loss_wei{bot}``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from bots.runtime.actions import SendAction
from bots.store.repository import Reason
from chains.promreg import per_registry

__all__ = ["FILE_CHECK_INTERVAL_S", "RATE_WINDOW_S", "KillSwitch", "RiskGate", "RiskLimits"]

log = logging.getLogger(__name__)

FILE_CHECK_INTERVAL_S: Final = 0.25  # the kill-switch file is looked at no more often than this
RATE_WINDOW_S: Final = 60.0  # the per-minute limit's sliding window
MAX_REASON_CHARS: Final = 200  # a kill switch's reason is one line, at most this long
_MAX_FILE_BYTES: Final = 4096  # what is read of a kill-switch file (its reason)
_MAX_TRACKED_BLOCKS: Final = 256  # per bot: target blocks whose admitted counts are kept (the highest)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """One bot's limits; ``None`` = no limit.  All are ints >= 0 (0 refuses every action the limit applies to).

    ``max_notional_wei``: the most one action may put at risk (``SendAction.notional_wei``).
    ``max_actions_per_block``: admitted actions with the same ``(chain_id, target_block)``.
    ``max_actions_per_minute``: admitted actions in the sliding 60 s window.
    ``max_daily_loss_wei``: refuse once the realized PnL since 00:00 UTC is below ``-max_daily_loss_wei``.
    """

    max_notional_wei: int | None = None
    max_actions_per_block: int | None = None
    max_actions_per_minute: int | None = None
    max_daily_loss_wei: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if type(value) is not int:
                raise TypeError(f"RiskLimits.{f.name} must be an int or None (exact), not {value!r}")
            if value < 0:
                raise ValueError(f"RiskLimits.{f.name} must be >= 0, not {value}")

    def as_dict(self) -> dict[str, int | None]:
        """The four limits by name (JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_NO_LIMITS: Final = RiskLimits()


# ------------------------------------------------------------------------------------------------- metrics
class _KillSwitchMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.engaged = Gauge(
            "mevsuite_kill_switch_engaged",
            "1 while the kill switch is engaged (no action is sent, strategies are paused), else 0",
            registry=registry,
        )

    @classmethod
    def on(cls, registry: CollectorRegistry | None) -> _KillSwitchMetrics:
        return per_registry(registry, f"{__name__}.{cls.__name__}", cls)


class _GateMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.admitted = Counter(
            "mevsuite_risk_admitted_total", "Send actions the risk gate admitted", ["bot"], registry=registry
        )
        self.refused = Counter(
            "mevsuite_risk_refused_total",
            "Send actions the risk gate refused, by reason code (docs/risk.md)",
            ["bot", "reason"],
            registry=registry,
        )
        self.daily_loss = Gauge(
            "mevsuite_risk_daily_loss_wei",
            "Realized loss since 00:00 UTC as a positive number (0 when the day is in profit)",
            ["bot"],
            registry=registry,
        )

    @classmethod
    def on(cls, registry: CollectorRegistry | None) -> _GateMetrics:
        return per_registry(registry, f"{__name__}.{cls.__name__}", cls)


# ------------------------------------------------------------------------------------------------ kill switch
def _utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:MAX_REASON_CHARS]


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class KillSwitch:
    """Stops all sending and pauses every strategy while engaged (see the module docstring).

    ``path``: the kill-switch file shared by every process of the installation (None: in-process only).
    ``clock``: monotonic seconds, used only to rate-limit looking at the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(path) if path is not None else None
        self._clock = clock
        self._metrics = _KillSwitchMetrics.on(registry)
        self._lock = threading.Lock()
        self._local = False
        self._local_reason: str | None = None
        self._local_since: str | None = None
        self._file_seen = False  # the file's state at the last look
        self._file_error: str | None = None  # why the last look could not tell (counted as engaged)
        self._checked_at = 0.0
        if self._path is not None:
            self._look(self._clock())
        self._publish()

    @property
    def path(self) -> Path | None:
        """The kill-switch file (None: in-process only)."""
        return self._path

    @property
    def engaged(self) -> bool:
        """True if engaged in this process or the file exists (the file is looked at most every 0.25 s)."""
        if self._path is not None:
            now = self._clock()
            if now - self._checked_at >= FILE_CHECK_INTERVAL_S or now < self._checked_at:
                self._look(now)
        return self._local or self._file_seen

    @property
    def reason(self) -> str | None:
        """Why it is engaged (the in-process reason first, else the file's); None when released."""
        if not self.engaged:
            return None
        if self._local:
            return self._local_reason
        return self._file_info()[0]

    def engage(self, reason: str = "manual") -> None:
        """Engage: from now on nothing is sent.  With a path, also (atomically) write the file, holding the reason
        and the UTC time, so every process sharing it stops too.

        The in-process engagement happens first and holds even if writing the file fails (the ``OSError`` is
        raised after it)."""
        text = _one_line(reason) or "manual"
        since = _utc_now_iso()
        with self._lock:
            self._local, self._local_reason, self._local_since = True, text, since
        self._publish()
        log.warning("kill switch engaged: %s", text)
        if self._path is None:
            return
        body = {"engaged": True, "reason": text, "since": since, "pid": os.getpid()}
        _write_atomic(self._path, json.dumps(body) + "\n")
        with self._lock:
            self._file_seen, self._file_error, self._checked_at = True, None, self._clock()

    def release(self) -> None:
        """Release: clear the in-process engagement and remove the file (every process sharing it resumes within
        0.25 s).  An ``OSError`` other than "no such file" is raised; the switch then stays engaged by the file."""
        with self._lock:
            was = self._local or self._file_seen
            self._local, self._local_reason, self._local_since = False, None, None
        try:
            if self._path is not None:
                try:
                    self._path.unlink()
                except FileNotFoundError:
                    pass
                with self._lock:
                    self._file_seen, self._file_error, self._checked_at = False, None, self._clock()
        finally:
            self._publish()
        if was:
            log.warning("kill switch released")

    def status(self) -> dict[str, Any]:
        """JSON-ready: ``engaged``, ``reason``, ``since`` (UTC, ISO 8601), ``source`` (``process`` / ``file`` /
        None), ``file`` (the path or None) and ``error`` (why the file could not be examined, or None)."""
        engaged = self.engaged
        reason = since = source = None
        if self._local:
            reason, since, source = self._local_reason, self._local_since, "process"
        elif engaged:
            reason, since = self._file_info()
            source = "file"
        return {
            "engaged": engaged,
            "reason": reason,
            "since": since,
            "source": source,
            "file": None if self._path is None else str(self._path),
            "error": self._file_error,
        }

    # -- internals -------------------------------------------------------------------------------------------
    def _look(self, now: float) -> None:
        assert self._path is not None
        error: str | None = None
        try:
            os.stat(self._path)
            present = True
        except (FileNotFoundError, NotADirectoryError):
            present = False
        except OSError as exc:  # cannot tell: fail closed
            present, error = True, f"cannot examine {self._path}: {exc.strerror or exc}"
        with self._lock:
            was = self._file_seen
            self._file_seen, self._file_error, self._checked_at = present, error, now
            released_elsewhere = was and not present and self._local
            if released_elsewhere:  # a release anywhere is global (the file is the shared switch)
                self._local, self._local_reason, self._local_since = False, None, None
        if was != present:
            if present:
                log.warning("kill switch engaged by %s%s", self._path, f" ({error})" if error else "")
            else:
                log.warning("kill switch released (%s removed)", self._path)
            self._publish()

    def _file_info(self) -> tuple[str, str | None]:
        """(reason, since) from the file; a file that is not ours (``touch``) reads as ``("file", None)``."""
        if self._file_error is not None:
            return self._file_error, None
        assert self._path is not None
        try:
            with open(self._path, "rb") as fh:
                raw = fh.read(_MAX_FILE_BYTES)
            data = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError):
            return "file", None
        if not isinstance(data, dict):
            return "file", None
        reason, since = data.get("reason"), data.get("since")
        return (
            _one_line(reason) if isinstance(reason, str) and reason.strip() else "file",
            since if isinstance(since, str) else None,
        )

    def _publish(self) -> None:
        self._metrics.engaged.set(1 if (self._local or self._file_seen) else 0)


# ------------------------------------------------------------------------------------------------ the gate
@dataclass(slots=True)
class _BotState:
    blocks: dict[tuple[int, int], int] = field(default_factory=dict)  # (chain_id, target_block) -> admitted
    recent: deque[float] = field(default_factory=deque)  # admission times in the rate window
    pnl_day: dt.date | None = None
    pnl_wei: int = 0  # realized PnL of pnl_day
    admitted: int = 0
    refused: dict[str, int] = field(default_factory=dict)


def _utc_day(timestamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).date()


class RiskGate:
    """Per-bot limits every :class:`SendAction` passes before any executor (see the module docstring).

    ``limits``: bot name -> its limits (replacing ``default`` as a whole); ``kill_switch``: shared with whoever
    flips it (None: an in-process switch on the same registry); ``clock``: wall-clock seconds (UTC days).
    Not thread-safe: call it from the engine's event loop.
    """

    def __init__(
        self,
        limits: Mapping[str, RiskLimits] | None = None,
        *,
        default: RiskLimits = _NO_LIMITS,
        kill_switch: KillSwitch | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limits: dict[str, RiskLimits] = dict(limits or {})
        for bot, value in [*self._limits.items(), ("default", default)]:
            if not isinstance(value, RiskLimits):
                raise TypeError(f"limits of {bot!r} must be RiskLimits, not {type(value).__name__}")
        self._default = default
        self._kill_switch = kill_switch if kill_switch is not None else KillSwitch(registry=registry)
        self._clock = clock
        self._metrics = _GateMetrics.on(registry)
        self._bots: dict[str, _BotState] = {}

    @property
    def kill_switch(self) -> KillSwitch:
        """The kill switch this gate obeys (engage / release it to stop / resume sending)."""
        return self._kill_switch

    def limits_for(self, bot: str) -> RiskLimits:
        """The limits ``bot`` is held to (its own, else the default)."""
        return self._limits.get(bot, self._default)

    def check(self, action: SendAction) -> str | None:
        """None = admitted (and counted against the rate limits); else the refusal reason code."""
        if not isinstance(action, SendAction):
            raise TypeError(f"the risk gate checks SendActions, not {type(action).__name__}")
        now = self._clock()
        state = self._state(action.bot)
        reason = self._refusal(action, state, now)
        if reason is None:
            if action.target_block is not None:
                key = (action.chain_id, action.target_block)
                state.blocks[key] = state.blocks.get(key, 0) + 1
                if len(state.blocks) > _MAX_TRACKED_BLOCKS:
                    for old in sorted(state.blocks)[: len(state.blocks) - _MAX_TRACKED_BLOCKS // 2]:
                        del state.blocks[old]
            state.recent.append(now)
            state.admitted += 1
            self._metrics.admitted.labels(bot=action.bot).inc()
        else:
            state.refused[reason] = state.refused.get(reason, 0) + 1
            self._metrics.refused.labels(bot=action.bot, reason=reason).inc()
        return reason

    def record_pnl(self, bot: str, net_wei: int, *, at: float | None = None) -> None:
        """Add the realized PnL of a landed action (negative = a loss) to ``bot``'s day (UTC, of ``at`` or now).

        A report for a day before the one being counted is too late to matter and is ignored (logged)."""
        if type(net_wei) is not int:
            raise TypeError(f"net_wei must be an int (exact), not {net_wei!r}")
        day = _utc_day(self._clock() if at is None else at)
        state = self._state(bot)
        if state.pnl_day is None or day > state.pnl_day:
            state.pnl_day, state.pnl_wei = day, 0
        elif day < state.pnl_day:
            log.info("risk: %s: PnL %d wei of %s ignored (counting %s)", bot, net_wei, day, state.pnl_day)
            return
        state.pnl_wei += net_wei
        self._metrics.daily_loss.labels(bot=bot).set(max(0, -state.pnl_wei))

    def pnl_today(self, bot: str) -> int:
        """``bot``'s realized PnL since 00:00 UTC, wei (negative = a loss)."""
        return self._pnl_today(self._state(bot), bot, _utc_day(self._clock()))

    def status(self) -> dict[str, Any]:
        """JSON-ready: the kill switch, the default limits and, per bot (configured or seen), its limits, what
        was admitted (total, in the rate window, in its latest target blocks), refusals by reason and today's
        PnL and loss (wei, exact ints)."""
        now = self._clock()
        today = _utc_day(now)
        bots: dict[str, Any] = {}
        for bot in sorted(set(self._limits) | set(self._bots)):
            state = self._state(bot)
            self._expire(state, now)
            pnl = self._pnl_today(state, bot, today)
            latest = sorted(state.blocks, key=lambda k: (k[1], k[0]))[-4:]
            bots[bot] = {
                "limits": self.limits_for(bot).as_dict(),
                "own_limits": bot in self._limits,
                "admitted_total": state.admitted,
                "admitted_last_minute": len(state.recent),
                "admitted_by_target_block": [
                    {"chain_id": c, "target_block": b, "admitted": state.blocks[(c, b)]} for c, b in latest
                ],
                "refused_total": dict(sorted(state.refused.items())),
                "pnl_today_wei": pnl,
                "loss_today_wei": max(0, -pnl),
            }
        return {
            "kill_switch": self._kill_switch.status(),
            "day_utc": today.isoformat(),
            "default": self._default.as_dict(),
            "bots": bots,
        }

    # -- internals -------------------------------------------------------------------------------------------
    def _state(self, bot: str) -> _BotState:
        state = self._bots.get(bot)
        if state is None:
            state = self._bots[bot] = _BotState()
        return state

    def _refusal(self, action: SendAction, state: _BotState, now: float) -> str | None:
        if self._kill_switch.engaged:
            return Reason.KILL_SWITCH
        limits = self.limits_for(action.bot)
        if limits.max_notional_wei is not None and action.notional_wei > limits.max_notional_wei:
            return Reason.RISK_NOTIONAL
        if limits.max_daily_loss_wei is not None:
            if self._pnl_today(state, action.bot, _utc_day(now)) < -limits.max_daily_loss_wei:
                return Reason.RISK_DAILY_LOSS
        if limits.max_actions_per_block is not None and action.target_block is not None:
            admitted = state.blocks.get((action.chain_id, action.target_block), 0)
            if admitted >= limits.max_actions_per_block:
                return Reason.RISK_RATE_BLOCK
        self._expire(state, now)
        if limits.max_actions_per_minute is not None and len(state.recent) >= limits.max_actions_per_minute:
            return Reason.RISK_RATE_MINUTE
        return None

    @staticmethod
    def _expire(state: _BotState, now: float) -> None:
        horizon = now - RATE_WINDOW_S
        recent = state.recent
        while recent and recent[0] <= horizon:
            recent.popleft()

    def _pnl_today(self, state: _BotState, bot: str, today: dt.date) -> int:
        if state.pnl_day is not None and state.pnl_day < today:  # a new UTC day: yesterday's PnL is history
            state.pnl_day, state.pnl_wei = today, 0
            self._metrics.daily_loss.labels(bot=bot).set(0)
        return state.pnl_wei if state.pnl_day == today else 0
