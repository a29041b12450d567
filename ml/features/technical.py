"""Technical indicators (TA-Lib where it has them). Every value at t uses bars <= t only.

TA-Lib functions run forward over the array (recursive smoothers seeded by the first window), so the value
at t is a function of bars 0..t. Price-level outputs (MACD, ATR, moving averages) are divided by the close
so the features are scale free.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from ml.features._common import (
    Columns,
    div,
    f64,
    log,
    rolling_mean,
    rolling_std,
    rolling_sum,
    rolling_z,
    shift,
)
from ml.features.config import FeatureConfig

_SMA = talib.MA_Type.SMA  # type: ignore[attr-defined]


def atr(df: pd.DataFrame, period: int) -> np.ndarray:
    """Wilder ATR (TA-Lib), price units."""
    return np.asarray(talib.ATR(f64(df["high"]), f64(df["low"]), f64(df["close"]), timeperiod=period))


def technical_features(df: pd.DataFrame, cfg: FeatureConfig) -> Columns:
    o, h, lo, c, v = (f64(df[k]) for k in ("open", "high", "low", "close", "volume"))
    out: Columns = {}
    logc = log(c)
    lr1 = logc - shift(logc, 1)

    # returns over several horizons
    for n in cfg.return_horizons:
        out[f"tech_ret_{n}"] = div(c, shift(c, n)) - 1.0
        out[f"tech_logret_{n}"] = logc - shift(logc, n)

    # volatility: close-to-close, Parkinson, Garman-Klass
    hl2 = log(div(h, lo)) ** 2
    co2 = log(div(c, o)) ** 2
    gk_bar = 0.5 * hl2 - (2.0 * np.log(2.0) - 1.0) * co2
    for w in cfg.vol_windows:
        out[f"tech_vol_std_{w}"] = rolling_std(lr1, w)
        out[f"tech_vol_parkinson_{w}"] = np.sqrt(np.maximum(rolling_mean(hl2, w) / (4.0 * np.log(2.0)), 0.0))
        out[f"tech_vol_gk_{w}"] = np.sqrt(np.maximum(rolling_mean(gk_bar, w), 0.0))
    # (np.maximum keeps NaN, so insufficient history stays NaN)

    # momentum / oscillators
    for p in cfg.rsi_periods:
        out[f"tech_rsi_{p}"] = np.asarray(talib.RSI(c, timeperiod=p)) / 100.0
    macd, macd_sig, macd_hist = talib.MACD(
        c, fastperiod=cfg.macd_fast, slowperiod=cfg.macd_slow, signalperiod=cfg.macd_signal
    )
    out["tech_macd"] = div(np.asarray(macd), c)
    out["tech_macd_signal"] = div(np.asarray(macd_sig), c)
    out["tech_macd_hist"] = div(np.asarray(macd_hist), c)
    upper, middle, lower = talib.BBANDS(
        c, timeperiod=cfg.bb_period, nbdevup=cfg.bb_std, nbdevdn=cfg.bb_std, matype=_SMA
    )
    upper, middle, lower = np.asarray(upper), np.asarray(middle), np.asarray(lower)
    out["tech_bb_pctb"] = div(c - lower, upper - lower)
    out["tech_bb_width"] = div(upper - lower, middle)
    a = atr(df, cfg.atr_period)
    out["tech_atr_pct"] = div(a, c)
    out["tech_range_atr"] = div(h - lo, a)
    out["tech_adx"] = np.asarray(talib.ADX(h, lo, c, timeperiod=cfg.adx_period)) / 100.0
    out["tech_plus_di"] = np.asarray(talib.PLUS_DI(h, lo, c, timeperiod=cfg.adx_period)) / 100.0
    out["tech_minus_di"] = np.asarray(talib.MINUS_DI(h, lo, c, timeperiod=cfg.adx_period)) / 100.0
    slowk, slowd = talib.STOCH(
        h,
        lo,
        c,
        fastk_period=cfg.stoch_k,
        slowk_period=cfg.stoch_smooth,
        slowk_matype=_SMA,
        slowd_period=cfg.stoch_d,
        slowd_matype=_SMA,
    )
    out["tech_stoch_k"] = np.asarray(slowk) / 100.0
    out["tech_stoch_d"] = np.asarray(slowd) / 100.0
    out["tech_willr"] = np.asarray(talib.WILLR(h, lo, c, timeperiod=cfg.willr_period)) / 100.0
    out["tech_mfi"] = np.asarray(talib.MFI(h, lo, c, v, timeperiod=cfg.mfi_period)) / 100.0
    out["tech_cci"] = np.asarray(talib.CCI(h, lo, c, timeperiod=cfg.cci_period)) / 100.0
    # OBV is a cumulative level: use its change over a window relative to the volume traded in it (in [-1, 1])
    obv = np.asarray(talib.OBV(c, v))
    w = cfg.obv_window
    out[f"tech_obv_flow_{w}"] = div(obv - shift(obv, w), rolling_sum(v, w))

    # distance to moving averages
    for p in cfg.ma_periods:
        out[f"tech_sma_dist_{p}"] = div(c, np.asarray(talib.SMA(c, timeperiod=p))) - 1.0
        out[f"tech_ema_dist_{p}"] = div(c, np.asarray(talib.EMA(c, timeperiod=p))) - 1.0

    # candle shape (scale free)
    rng = h - lo
    out["tech_body_frac"] = div(c - o, rng)
    out["tech_upper_wick_frac"] = div(h - np.maximum(o, c), rng)
    out["tech_lower_wick_frac"] = div(np.minimum(o, c) - lo, rng)

    # volume and rolling z-scores
    logv = log(v + 1.0)
    for zw in cfg.zscore_windows:
        out[f"tech_z_close_{zw}"] = rolling_z(c, zw)
        out[f"tech_z_logvol_{zw}"] = rolling_z(logv, zw)
        out[f"tech_z_ret1_{zw}"] = rolling_z(lr1, zw)
        out[f"tech_vol_ratio_{zw}"] = div(v, rolling_mean(v, zw))
    return out


def calendar_features(index: pd.DatetimeIndex) -> Columns:
    """Hour-of-day / day-of-week on the unit circle (bar open time, UTC)."""
    idx = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    hour = (np.asarray(idx.hour, dtype=np.float64) + np.asarray(idx.minute, dtype=np.float64) / 60.0) / 24.0
    dow = np.asarray(idx.day_of_week, dtype=np.float64) / 7.0
    return {
        "cal_hour_sin": np.sin(2 * np.pi * hour),
        "cal_hour_cos": np.cos(2 * np.pi * hour),
        "cal_dow_sin": np.sin(2 * np.pi * dow),
        "cal_dow_cos": np.cos(2 * np.pi * dow),
    }
