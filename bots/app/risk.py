"""The risk gate and the kill switch built from the configuration's ``[risk]`` section (docs/risk.md).

The gate itself is :mod:`bots.runtime.risk`; the runtime must not import the app, so the config → gate step
lives here.  A bot's ``[risk.bots.<bot>]`` table replaces ``[risk.default]`` key by key: what the bot's table
leaves unset keeps the default's value.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from bots.app.config import Config, RiskLimitsConfig
from bots.runtime.risk import KillSwitch, RiskGate, RiskLimits

__all__ = ["kill_switch_from_config", "kill_switch_path", "risk_gate_from_config", "risk_limits"]


def kill_switch_path(cfg: Config) -> Path | None:
    """The configured ``risk.kill_switch_file`` (None: none).  A relative path given in the config file is taken
    relative to that file's directory, so the CLI and the bots find the same file from any working directory;
    one from the environment (or with no file) is relative to the current directory."""
    path = cfg.risk.kill_switch_file
    if path is None:
        return None
    path = path.expanduser()
    source = cfg.source_file
    if (
        not path.is_absolute()
        and source is not None
        and cfg.source_of("risk.kill_switch_file") == str(source)
    ):
        path = source.parent / path
    return path.absolute()


def kill_switch_from_config(cfg: Config, registry: CollectorRegistry | None = None) -> KillSwitch:
    """The process's kill switch: on the configured file, else in-process only."""
    return KillSwitch(kill_switch_path(cfg), registry=registry)


def risk_limits(default: RiskLimitsConfig, own: RiskLimitsConfig | None = None) -> RiskLimits:
    """``own``'s limits over ``default``'s, key by key (a key ``own`` does not set keeps the default)."""
    merged = default.model_dump()
    if own is not None:
        merged.update(own.model_dump(exclude_unset=True))
    return RiskLimits(**merged)


def risk_gate_from_config(
    cfg: Config, registry: CollectorRegistry | None, *, kill_switch: KillSwitch | None = None
) -> RiskGate:
    """The :class:`RiskGate` of ``cfg.risk`` (its kill switch: ``kill_switch``, else one on the configured file),
    its metrics on ``registry``."""
    risk = cfg.risk
    return RiskGate(
        {bot: risk_limits(risk.default, own) for bot, own in risk.bots.items()},
        default=risk_limits(risk.default),
        kill_switch=kill_switch if kill_switch is not None else kill_switch_from_config(cfg, registry),
        registry=registry,
    )
