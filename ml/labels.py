"""Targets for the direction models (contract: docs/ml-contracts.md).

Labels look FORWARD by definition (that is what is predicted): the row at t is built from close[t + horizon].
The last `horizon` rows have no future and are NaN; callers drop them (never impute a label).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["direction_labels", "forward_returns"]


def _close(df: pd.DataFrame | pd.Series) -> pd.Series:
    if isinstance(df, pd.Series):
        return df.astype(np.float64)
    if isinstance(df, pd.DataFrame) and "close" in df.columns:
        return df["close"].astype(np.float64)
    raise ValueError("labels: expected an OHLCV DataFrame with a `close` column (or a close Series)")


def _check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"labels: horizon must be a positive integer, got {horizon!r}")
    return int(horizon)


def forward_returns(df: pd.DataFrame | pd.Series, horizon: int = 1, *, log: bool = False) -> pd.Series:
    """close[t + horizon] / close[t] - 1 (or the log of the ratio); NaN for the last `horizon` rows."""
    h = _check_horizon(horizon)
    close = _close(df).to_numpy(dtype=np.float64)
    out = np.full(len(close), np.nan)
    if len(close) > h:
        now, later = close[:-h], close[h:]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = later / now
            out[:-h] = np.log(ratio) if log else ratio - 1.0
        out[~np.isfinite(out)] = np.nan
    name = f"fwd_{'log' if log else ''}ret_{h}"
    return pd.Series(out, index=_close(df).index, name=name)


def direction_labels(df: pd.DataFrame | pd.Series, horizon: int = 1) -> pd.Series:
    """1.0 if close[t + horizon] > close[t] else 0.0 (a flat close is 0); NaN for the last `horizon` rows.

    float64 because of the NaN tail; cast the labelled rows to int for the models."""
    h = _check_horizon(horizon)
    s = _close(df)
    close = s.to_numpy(dtype=np.float64)
    out = np.full(len(close), np.nan)
    if len(close) > h:
        now, later = close[:-h], close[h:]
        known = np.isfinite(now) & np.isfinite(later)
        out[:-h] = np.where(known, (later > now).astype(np.float64), np.nan)
    return pd.Series(out, index=s.index, name=f"direction_{h}")
