"""Order-flow features from public trades, aggregated per bar.

A trade belongs to bar t if index[t] <= timestamp < index[t] + timeframe, i.e. it happened inside the bar,
before the bar's close (the time the row at t is known). Trades before the first bar or in gaps between bars
are ignored. Rolling windows are trailing. When no trades are given, every column is NaN (same names).
`trades`: columns (or index) `timestamp`, and `side` ("buy"/"sell", "b"/"s", or +1/-1: the taker side),
`price`, `amount` (base units).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.features._common import Columns, div, f64, rolling_mean, rolling_std, rolling_sum, to_ns


def micro_names(windows: tuple[int, ...]) -> list[str]:
    names = [
        "micro_trade_count",
        "micro_intensity_per_min",
        "micro_ofi",
        "micro_buy_count_frac",
        "micro_avg_trade_size",
        "micro_avg_trade_size_rel",
        "micro_vwap_dist",
        "micro_trade_vol_share",
    ]
    for w in windows:
        names += [f"micro_ofi_{w}", f"micro_intensity_z_{w}"]
    return names


def _side_sign(side: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(side):
        signs: np.ndarray = np.sign(f64(side))
        return signs
    s = side.astype(str).str.strip().str.lower()
    out = np.zeros(len(s))
    out[s.isin(["buy", "b", "bid", "long"]).to_numpy()] = 1.0
    out[s.isin(["sell", "s", "ask", "short"]).to_numpy()] = -1.0
    return out


def micro_features(
    df: pd.DataFrame, trades: pd.DataFrame | None, tf_ns: int, windows: tuple[int, ...]
) -> Columns:
    n = len(df)
    names = micro_names(windows)
    if trades is None:
        return {k: np.full(n, np.nan) for k in names}
    if "timestamp" in trades.columns:
        ts = to_ns(trades["timestamp"])
    elif isinstance(trades.index, pd.DatetimeIndex):
        ts = to_ns(trades.index)
    else:
        raise ValueError("trades: need a `timestamp` column or a DatetimeIndex")
    missing = [c for c in ("side", "price", "amount") if c not in trades.columns]
    if missing:
        raise ValueError(f"trades: missing columns {missing}")
    bar_open = to_ns(df.index)
    pos = np.searchsorted(bar_open, ts, side="right") - 1
    inside = pos >= 0
    inside[inside] &= ts[inside] < bar_open[pos[inside]] + tf_ns
    sign = _side_sign(trades["side"])
    price = f64(trades["price"])
    amount = f64(trades["amount"])
    good = inside & np.isfinite(price) & np.isfinite(amount) & (amount >= 0) & (price > 0)
    p = pos[good]
    amt = amount[good]
    sg = sign[good]
    count = np.bincount(p, minlength=n).astype(np.float64)
    vol = np.bincount(p, weights=amt, minlength=n)
    signed = np.bincount(p, weights=amt * sg, minlength=n)
    buys = np.bincount(p, weights=(sg > 0).astype(np.float64), minlength=n)
    notional = np.bincount(p, weights=amt * price[good], minlength=n)

    out: Columns = {}
    out["micro_trade_count"] = count
    out["micro_intensity_per_min"] = count / (tf_ns / 60e9)
    ofi = div(signed, vol)
    ofi[vol == 0] = 0.0  # no traded volume: no imbalance
    out["micro_ofi"] = ofi
    out["micro_buy_count_frac"] = div(buys, count)
    avg = div(vol, count)
    out["micro_avg_trade_size"] = avg
    long_w = max(windows) if windows else 24
    out["micro_avg_trade_size_rel"] = div(
        avg, pd.Series(avg).rolling(long_w, min_periods=1).mean().to_numpy()
    )
    vwap = div(notional, vol)
    out["micro_vwap_dist"] = div(f64(df["close"]), vwap) - 1.0
    out["micro_trade_vol_share"] = div(vol, f64(df["volume"]))
    for w in windows:
        out[f"micro_ofi_{w}"] = div(rolling_sum(signed, w), rolling_sum(vol, w))
        out[f"micro_intensity_z_{w}"] = div(count - rolling_mean(count, w), rolling_std(count, w))
    return {k: out[k] for k in names}
