"""Helpers shared by the feature modules (input checks, time handling, guarded arithmetic)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

OHLCV = ("open", "high", "low", "close", "volume")
Columns = dict[str, np.ndarray]


def check_ohlcv(df: pd.DataFrame, what: str = "df") -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in OHLCV if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing OHLCV columns {missing}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise ValueError(f"{what}: index must be a DatetimeIndex (bar open times)")
    if not df.index.is_monotonic_increasing or not df.index.is_unique:
        raise ValueError(f"{what}: index must be strictly increasing")


def to_ns(values: pd.DatetimeIndex | pd.Series | np.ndarray) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch, UTC (naive timestamps are taken as UTC)."""
    idx = pd.DatetimeIndex(values)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)


def timeframe_ns(df: pd.DataFrame) -> int:
    """Bar length: `df.attrs["timeframe"]` (contract of ml.data) or the median spacing of the index.

    The index is the bar schedule (not market data), so inferring from it leaks no prices."""
    tf = df.attrs.get("timeframe") if isinstance(df.attrs, Mapping) else None
    if tf is not None:
        value = int(pd.Timedelta(tf).value)
        if value > 0:
            return value
    ns = to_ns(df.index)
    if len(ns) < 2:
        return int(pd.Timedelta(hours=1).value)
    return int(np.median(np.diff(ns)))


def f64(values: object) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64))


def div(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """a / b with NaN wherever b is 0 / non-finite or the result is not finite (no warnings)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.asarray(a, dtype=np.float64) / b
    out = np.asarray(out, dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def log(a: np.ndarray) -> np.ndarray:
    """Natural log, NaN for values <= 0 (no warnings)."""
    a = np.asarray(a, dtype=np.float64)
    out = np.full(a.shape, np.nan)
    ok = a > 0
    out[ok] = np.log(a[ok])
    return out


def rolling_mean(a: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    out: np.ndarray = (
        pd.Series(a).rolling(window, min_periods=min_periods or window).mean().to_numpy(dtype=np.float64)
    )
    return out


def rolling_std(a: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    out: np.ndarray = (
        pd.Series(a).rolling(window, min_periods=min_periods or window).std().to_numpy(dtype=np.float64)
    )
    return out


def rolling_sum(a: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    out: np.ndarray = (
        pd.Series(a).rolling(window, min_periods=min_periods or window).sum().to_numpy(dtype=np.float64)
    )
    return out


def rolling_z(a: np.ndarray, window: int) -> np.ndarray:
    """Trailing z-score of the latest value against the window ending at (and including) it."""
    return div(a - rolling_mean(a, window), rolling_std(a, window))


def shift(a: np.ndarray, n: int) -> np.ndarray:
    """Lag by n >= 0 bars (the value n bars ago)."""
    out = np.full(len(a), np.nan)
    if n < len(a):
        out[n:] = a[: len(a) - n]
    return out


def slug(name: str) -> str:
    """Column-safe version of an asset name: 'ETH/USDT' -> 'eth_usdt'."""
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in str(name)).strip("_")
    while "__" in out:
        out = out.replace("__", "_")
    return out or "asset"
