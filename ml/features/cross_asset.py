"""Cross-asset returns, rolling correlations and betas against other assets' OHLCV.

As-of alignment: the row at t sees the other asset's last bar with open time <= t (contract). If the other
asset has a COARSER timeframe than `df`, its bar opening at or before t may still be running at t's close,
so the cut-off is moved back by the difference: last bar with open <= t - (tf_other - tf) (i.e. the bar has
closed by the time row t closes). Never a backward fill: before the other's first usable bar, NaN.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ml.features._common import (
    Columns,
    check_ohlcv,
    div,
    f64,
    log,
    rolling_mean,
    shift,
    slug,
    timeframe_ns,
    to_ns,
)


def asof_positions(source_ns: np.ndarray, target_ns: np.ndarray) -> np.ndarray:
    """For each target time, the position of the last source time <= it (-1: none). source sorted."""
    return np.searchsorted(source_ns, target_ns, side="right") - 1


def align_close(df: pd.DataFrame, other: pd.DataFrame, tf_ns: int) -> np.ndarray:
    other_tf = timeframe_ns(other)
    cut = to_ns(df.index) - max(0, other_tf - tf_ns)
    pos = asof_positions(to_ns(other.index), cut)
    close = f64(other["close"])
    out = np.full(len(df), np.nan)
    ok = pos >= 0
    out[ok] = close[pos[ok]]
    return out


def cross_asset_features(
    df: pd.DataFrame,
    others: Mapping[str, pd.DataFrame] | None,
    tf_ns: int,
    windows: tuple[int, ...],
    horizons: tuple[int, ...],
) -> Columns:
    out: Columns = {}
    if not others:
        return out
    c = f64(df["close"])
    logc = log(c)
    r_self = logc - shift(logc, 1)
    seen: set[str] = set()
    for name in sorted(others, key=str):
        other = others[name]
        check_ohlcv(other, f"others[{name!r}]")
        tag = "x_" + slug(name)
        if tag in seen:
            raise ValueError(f"others: two assets map to the same column prefix {tag!r}")
        seen.add(tag)
        oc = align_close(df, other, tf_ns)
        logo = log(oc)
        r_other = logo - shift(logo, 1)
        for hz in horizons:
            ret = logo - shift(logo, hz)
            out[f"{tag}_logret_{hz}"] = ret
            out[f"{tag}_rel_{hz}"] = (logc - shift(logc, hz)) - ret
        for w in windows:
            m_s, m_o = rolling_mean(r_self, w), rolling_mean(r_other, w)
            cov = rolling_mean(r_self * r_other, w) - m_s * m_o
            var_s = rolling_mean(r_self * r_self, w) - m_s * m_s
            var_o = rolling_mean(r_other * r_other, w) - m_o * m_o
            var_s = np.where(var_s > 0, var_s, np.nan)
            var_o = np.where(var_o > 0, var_o, np.nan)
            out[f"{tag}_corr_{w}"] = np.clip(div(cov, np.sqrt(var_s * var_o)), -1.0, 1.0)
            out[f"{tag}_beta_{w}"] = div(cov, var_o)
    return out
