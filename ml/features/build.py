"""`build_features`: every feature family on the bar index of `df`, causally."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ml.features._common import Columns, check_ohlcv, timeframe_ns
from ml.features.config import FeatureConfig
from ml.features.cross_asset import cross_asset_features
from ml.features.levels import fibonacci_features, support_resistance_features, volume_profile_features
from ml.features.microstructure import micro_features
from ml.features.onchain import OnchainSource, onchain_features
from ml.features.patterns import pattern_features
from ml.features.swings import swing_features
from ml.features.technical import atr, calendar_features, technical_features

# column prefix -> family (every column name starts with one of these)
FAMILIES: dict[str, str] = {
    "tech_": "technical",
    "cal_": "calendar",
    "cdl_": "patterns",
    "vp_": "volume_profile",
    "sr_": "support_resistance",
    "fib_": "fibonacci",
    "zz": "swings",
    "micro_": "microstructure",
    "x_": "cross_asset",
    "oc_": "onchain",
}


def feature_family(name: str) -> str:
    for prefix, family in FAMILIES.items():
        if name.startswith(prefix):
            return family
    raise KeyError(f"unknown feature family for column {name!r}")


def build_features(
    df: pd.DataFrame,
    *,
    config: FeatureConfig | None = None,
    others: Mapping[str, pd.DataFrame] | None = None,
    trades: pd.DataFrame | None = None,
    onchain: OnchainSource | None = None,
) -> pd.DataFrame:
    """Raw (unscaled, un-imputed) features on `df.index`, float64, NaN where history is insufficient.

    The row at t depends only on rows of df / others / trades / onchain at or before t (see each module for
    the exact as-of rule). Column order is deterministic for a given config and set of `others` names.
    Microstructure and on-chain columns are always present (all NaN without `trades` / `onchain`);
    cross-asset columns exist only for the assets given in `others`.
    """
    cfg = config or FeatureConfig()
    check_ohlcv(df)
    if onchain is not None and not isinstance(onchain, OnchainSource):
        raise TypeError("onchain: expected an OnchainSource (a .frame(index) method)")
    tf_ns = timeframe_ns(df)
    a = atr(df, cfg.atr_period)

    parts: list[Columns] = [technical_features(df, cfg)]
    if cfg.calendar:
        parts.append(calendar_features(pd.DatetimeIndex(df.index)))
    if cfg.patterns:
        parts.append(pattern_features(df))
    parts.append(volume_profile_features(df, cfg.profile_window, cfg.profile_bins, cfg.value_area, a))
    parts.append(support_resistance_features(df, cfg.sr_window, cfg.pivot_width, a))
    parts.append(fibonacci_features(df, cfg.zigzag_thresholds, cfg.fib_levels, a))
    parts.append(swing_features(df, cfg.zigzag_thresholds, cfg.zigzag_count_window))
    parts.append(micro_features(df, trades, tf_ns, cfg.micro_windows))
    parts.append(cross_asset_features(df, others, tf_ns, cfg.cross_windows, cfg.cross_horizons))
    parts.append(onchain_features(pd.DatetimeIndex(df.index), onchain, cfg.onchain_windows))

    columns: Columns = {}
    for part in parts:
        for name, values in part.items():
            if name in columns:
                raise RuntimeError(f"duplicate feature name {name!r}")
            arr = np.array(values, dtype=np.float64, copy=True)
            arr[~np.isfinite(arr)] = np.nan
            columns[name] = arr
    return pd.DataFrame(columns, index=df.index.copy())
