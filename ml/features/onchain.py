"""On-chain inputs through the `OnchainSource` protocol (chain services implement it later).

`source.frame(index)` must return, for each index time t, values known at or before t (as-of). The features
are computed on that per-bar series with trailing windows only. `StaticOnchainSource(frame)` is a simple
in-memory implementation: as-of join of a timestamped frame (last row with timestamp <= t, never a later
one). Without a source every on-chain column is NaN (same names).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ml.features._common import Columns, f64, log, rolling_mean, rolling_z, shift, to_ns

ONCHAIN_COLUMNS = ("base_fee_gwei", "gas_used_ratio")


@runtime_checkable
class OnchainSource(Protocol):
    def frame(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        """Columns `base_fee_gwei`, `gas_used_ratio` on `index`, values known at or before each time."""
        ...


class StaticOnchainSource:
    """In-memory `OnchainSource`: as-of join of `frame` (DatetimeIndex or a `timestamp` column)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        if "timestamp" in frame.columns:
            frame = frame.set_index("timestamp")
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise ValueError("StaticOnchainSource: need a DatetimeIndex or a `timestamp` column")
        missing = [c for c in ONCHAIN_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"StaticOnchainSource: missing columns {missing}")
        ns = to_ns(frame.index)
        order = np.argsort(ns, kind="stable")
        self._ns = ns[order]
        self._values = {c: f64(frame[c])[order] for c in ONCHAIN_COLUMNS}

    def frame(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        # side="right": a row stamped exactly at t is known at t; for duplicate stamps the last one wins
        pos = np.searchsorted(self._ns, to_ns(index), side="right") - 1
        ok = pos >= 0
        cols = {}
        for c in ONCHAIN_COLUMNS:
            col = np.full(len(index), np.nan)
            col[ok] = self._values[c][pos[ok]]
            cols[c] = col
        return pd.DataFrame(cols, index=index)


def onchain_names(windows: tuple[int, ...]) -> list[str]:
    names = ["oc_base_fee_gwei", "oc_log_base_fee", "oc_gas_used_ratio"]
    for w in windows:
        names += [f"oc_base_fee_chg_{w}", f"oc_base_fee_z_{w}", f"oc_gas_used_ratio_ma_{w}"]
    return names


def onchain_features(
    index: pd.DatetimeIndex, source: OnchainSource | None, windows: tuple[int, ...]
) -> Columns:
    n = len(index)
    names = onchain_names(windows)
    if source is None:
        return {k: np.full(n, np.nan) for k in names}
    raw = source.frame(index)
    missing = [c for c in ONCHAIN_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"OnchainSource.frame: missing columns {missing}")
    if len(raw) != n or not raw.index.equals(index):
        raise ValueError("OnchainSource.frame: must return a frame on exactly the requested index")
    fee = f64(raw["base_fee_gwei"])
    gur = f64(raw["gas_used_ratio"])
    log_fee = log(fee)
    out: Columns = {"oc_base_fee_gwei": fee, "oc_log_base_fee": log_fee, "oc_gas_used_ratio": gur}
    for w in windows:
        out[f"oc_base_fee_chg_{w}"] = log_fee - shift(log_fee, w)
        out[f"oc_base_fee_z_{w}"] = rolling_z(log_fee, w)
        out[f"oc_gas_used_ratio_ma_{w}"] = rolling_mean(gur, w)
    return {k: out[k] for k in names}
