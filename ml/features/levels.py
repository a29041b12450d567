"""Price levels: volume profile, support / resistance from rolling pivots, Fibonacci retracements.

Causality:
- volume profile at t: histogram of the bars t-W+1..t (typical price binned between the window's lowest low
  and highest high, weighted by volume); nothing after t.
- support / resistance at t: rolling pivots. A pivot high at bar i (high[i] = max of high[i-k..i+k]) needs the
  k bars after it, so it only becomes a level at bar i+k; at t the levels are pivots with i+k <= t (and
  i >= t-W+1). The check at t is a trailing max over bars t-2k..t, never a centered window.
- Fibonacci at t: the last zig-zag swing whose end pivot was CONFIRMED at or before t (see swings.py).
Distances are in ATRs (Wilder ATR at t) so they are scale free.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from ml.features._common import Columns, div, f64
from ml.features.swings import last_confirmed, threshold_tag, zigzag_pivots


def volume_profile_features(
    df: pd.DataFrame, window: int, bins: int, value_area: float, atr: np.ndarray
) -> Columns:
    h, lo, c, v = f64(df["high"]), f64(df["low"]), f64(df["close"]), f64(df["volume"])
    n = len(c)
    names = (
        "vp_poc_dist_atr",
        "vp_vah_dist_atr",
        "vp_val_dist_atr",
        "vp_va_position",
        "vp_poc_share",
        "vp_va_width_atr",
    )
    out: Columns = {k: np.full(n, np.nan) for k in names}
    if n < window:
        return out
    tp = (h + lo + c) / 3.0
    tp_w = sliding_window_view(tp, window)  # row r covers bars r..r+window-1 -> value at t = r+window-1
    vol_w = sliding_window_view(v, window)
    w_lo = sliding_window_view(lo, window).min(axis=1)
    w_hi = sliding_window_view(h, window).max(axis=1)
    rows = len(w_lo)
    span = w_hi - w_lo
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = (tp_w - w_lo[:, None]) / span[:, None]
    pos = np.clip(np.where(np.isfinite(pos), pos, 0.0), 0.0, 1.0)
    b = np.clip((pos * bins).astype(np.int64), 0, bins - 1)
    weights = np.where(np.isfinite(vol_w) & (vol_w > 0), vol_w, 0.0)
    flat = (np.arange(rows)[:, None] * bins + b).ravel()
    hist = np.bincount(flat, weights=weights.ravel(), minlength=rows * bins).reshape(rows, bins)
    total = hist.sum(axis=1)
    poc = hist.argmax(axis=1)
    # value area: grow from the POC one bin at a time towards the heavier neighbour until `value_area` of volume
    lo_b = poc.copy()
    hi_b = poc.copy()
    acc = hist[np.arange(rows), poc]
    target = value_area * total
    ar = np.arange(rows)
    for _ in range(bins - 1):
        active = acc < target
        if not active.any():
            break
        below = np.where(lo_b > 0, hist[ar, np.maximum(lo_b - 1, 0)], -1.0)
        above = np.where(hi_b < bins - 1, hist[ar, np.minimum(hi_b + 1, bins - 1)], -1.0)
        go_up = active & (above >= below) & (above >= 0)
        go_down = active & ~go_up & (below >= 0)
        hi_b = hi_b + go_up
        lo_b = lo_b - go_down
        acc = acc + np.where(go_up, above, 0.0) + np.where(go_down, below, 0.0)
    width = span / bins
    poc_px = w_lo + (poc + 0.5) * width
    vah_px = w_lo + (hi_b + 1.0) * width
    val_px = w_lo + lo_b * width
    valid = (total > 0) & (span > 0) & np.isfinite(span)
    sl = slice(window - 1, n)
    a = atr[sl]
    cc = c[sl]
    res = {
        "vp_poc_dist_atr": div(cc - poc_px, a),
        "vp_vah_dist_atr": div(cc - vah_px, a),
        "vp_val_dist_atr": div(cc - val_px, a),
        "vp_va_position": div(cc - val_px, vah_px - val_px),
        "vp_poc_share": div(hist[ar, poc], total),
        "vp_va_width_atr": div(vah_px - val_px, a),
    }
    for k, arr in res.items():
        arr = np.where(valid, arr, np.nan)
        out[k][sl] = arr
    return out


def _pivot_levels(x: np.ndarray, k: int, high: bool) -> np.ndarray:
    """Level by CONFIRMATION bar: at t, x[t-k] if it is the extreme of x[t-2k..t] (trailing window), else NaN."""
    n = len(x)
    out = np.full(n, np.nan)
    width = 2 * k + 1
    if n < width:
        return out
    win = sliding_window_view(x, width)
    ext = win.max(axis=1) if high else win.min(axis=1)
    centre = x[k : n - k]
    hit = centre == ext
    out[width - 1 :] = np.where(hit, centre, np.nan)
    return out


def support_resistance_features(df: pd.DataFrame, window: int, k: int, atr: np.ndarray) -> Columns:
    h, lo, c = f64(df["high"]), f64(df["low"]), f64(df["close"])
    n = len(c)
    names = ("sr_res_dist_atr", "sr_sup_dist_atr", "sr_position", "sr_levels_above", "sr_levels_below")
    out: Columns = {name: np.full(n, np.nan) for name in names}
    # pivots i in [t-window+1, t-k] <=> confirmation bars in [t-window+1+k, t]: a trailing window of
    # window-k confirmation bars
    span = window - k
    if span < 1 or n < span:
        return out
    ph = _pivot_levels(h, k, high=True)
    pl = _pivot_levels(lo, k, high=False)
    levels = np.concatenate([sliding_window_view(ph, span), sliding_window_view(pl, span)], axis=1)
    sl = slice(span - 1, n)
    cc = c[sl][:, None]
    with np.errstate(invalid="ignore"):
        above = levels > cc
        below = levels < cc
    res_px = np.where(above, levels, np.inf).min(axis=1)
    sup_px = np.where(below, levels, -np.inf).max(axis=1)
    res_px[~np.isfinite(res_px)] = np.nan
    sup_px[~np.isfinite(sup_px)] = np.nan
    a = atr[sl]
    out["sr_res_dist_atr"][sl] = div(res_px - c[sl], a)
    out["sr_sup_dist_atr"][sl] = div(c[sl] - sup_px, a)
    out["sr_position"][sl] = div(c[sl] - sup_px, res_px - sup_px)
    out["sr_levels_above"][sl] = above.sum(axis=1).astype(np.float64)
    out["sr_levels_below"][sl] = below.sum(axis=1).astype(np.float64)
    # before a full window of history the level counts are not comparable: leave them NaN
    out["sr_levels_above"][: window - 1] = np.nan
    out["sr_levels_below"][: window - 1] = np.nan
    return out


def fibonacci_features(
    df: pd.DataFrame, thresholds: tuple[float, ...], fib_levels: tuple[float, ...], atr: np.ndarray
) -> Columns:
    """Position of the close within the last CONFIRMED zig-zag swing (start -> end pivot), and the distance
    to its retracement levels: level_f = end - f * (end - start)."""
    h, lo, c = f64(df["high"]), f64(df["low"]), f64(df["close"])
    n = len(c)
    out: Columns = {}
    for thr in thresholds:
        tag = "fib_" + threshold_tag(thr)
        piv = zigzag_pivots(h, lo, thr)
        k = last_confirmed(piv, n)
        end = np.full(n, np.nan)
        start = np.full(n, np.nan)
        ok = k >= 1
        end[ok] = piv.price[k[ok]]
        start[ok] = piv.price[k[ok] - 1]
        # 0 at the swing's end pivot, 1 at its start (fraction of the last swing retraced)
        out[f"{tag}_retrace"] = div(end - c, end - start)
        for f in fib_levels:
            level = end - f * (end - start)
            out[f"{tag}_dist_{round(f * 1000)}_atr"] = div(c - level, atr)
    return out
