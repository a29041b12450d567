"""Zig-zag swings for Elliott-style structure, emitted at the bar where each pivot is CONFIRMED.

A pivot high at bar i (the highest high since the last pivot low) is only known once price has fallen the
threshold below it: at the first bar j > i with low[j] <= high[i] * (1 - threshold). Features at t use only
pivots with confirmation bar <= t; the pivot's own bar index / price (both in the past at j) are then usable.
A bar that extends the current extreme never confirms a reversal in the same bar (intrabar order unknown),
so j > i always.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.features._common import Columns, div, f64, log


@dataclass(frozen=True)
class Pivots:
    """Confirmed zig-zag pivots in confirmation order (which is also pivot order)."""

    bar: np.ndarray  # int64 index of the pivot bar (where the extreme occurred)
    confirmed: np.ndarray  # int64 index of the bar that confirmed it (> bar)
    price: np.ndarray  # float64 extreme price
    kind: np.ndarray  # int8: +1 pivot high, -1 pivot low


def zigzag_pivots(high: np.ndarray, low: np.ndarray, threshold: float) -> Pivots:
    """Threshold zig-zag on high/low; a single forward pass (state at t depends on bars <= t only)."""
    high = f64(high)
    low = f64(low)
    n = len(high)
    bars: list[int] = []
    confirmed: list[int] = []
    prices: list[float] = []
    kinds: list[int] = []

    def emit(bar: int, conf: int, price: float, kind: int) -> None:
        bars.append(bar)
        confirmed.append(conf)
        prices.append(price)
        kinds.append(kind)

    up_mult = 1.0 + threshold
    down_mult = 1.0 - threshold
    direction = 0  # 0 = not started, +1 = swinging up (tracking a high), -1 = swinging down (tracking a low)
    hi_px, hi_i, lo_px, lo_i = np.nan, -1, np.nan, -1
    ext_px, ext_i = np.nan, -1
    for t in range(n):
        h = high[t]
        lw = low[t]
        if not (h == h and lw == lw):  # NaN bar: skip
            continue
        if direction == 0:
            new_hi = hi_i < 0 or h > hi_px
            new_lo = lo_i < 0 or lw < lo_px
            if new_hi:
                hi_px, hi_i = h, t
            if new_lo:
                lo_px, lo_i = lw, t
            # confirm the more recent extreme first; a bar extending an extreme cannot confirm it
            if not new_hi and lw <= hi_px * down_mult and (hi_i >= lo_i or h < lo_px * up_mult):
                emit(hi_i, t, hi_px, 1)
                direction, ext_px, ext_i = -1, lw, t
            elif not new_hi and h >= lo_px * up_mult and lo_i < t:
                emit(lo_i, t, lo_px, -1)
                direction, ext_px, ext_i = 1, h, t
        elif direction == 1:
            if h > ext_px:
                ext_px, ext_i = h, t
            elif lw <= ext_px * down_mult:
                emit(ext_i, t, ext_px, 1)
                direction, ext_px, ext_i = -1, lw, t
        else:
            if lw < ext_px:
                ext_px, ext_i = lw, t
            elif h >= ext_px * up_mult:
                emit(ext_i, t, ext_px, -1)
                direction, ext_px, ext_i = 1, h, t
    return Pivots(
        bar=np.asarray(bars, dtype=np.int64),
        confirmed=np.asarray(confirmed, dtype=np.int64),
        price=np.asarray(prices, dtype=np.float64),
        kind=np.asarray(kinds, dtype=np.int8),
    )


def threshold_tag(threshold: float) -> str:
    """0.02 -> 'zz2', 0.025 -> 'zz2p5' (column prefix per threshold)."""
    return "zz" + f"{threshold * 100:g}".replace(".", "p")


def _trend_count(price: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Signed length of the current run of same-direction structure at each confirmed pivot.

    A pivot extends an up-structure if it is higher than the previous pivot of the same kind (higher high /
    higher low), a down-structure if lower. The run counts consecutive such swings (Elliott-style wave count):
    +k after k swings of higher highs/lows, -k for lower ones, 0 when the structure breaks."""
    m = len(price)
    out = np.zeros(m)
    run = 0
    for k in range(m):
        if k < 2:
            out[k] = 0.0
            continue
        step = 1 if price[k] > price[k - 2] else (-1 if price[k] < price[k - 2] else 0)
        if step == 0:
            run = 0
        elif run == 0 or np.sign(run) == step:
            run += step
        else:
            run = step
        out[k] = run
    return out


def last_confirmed(piv: Pivots, n: int) -> np.ndarray:
    """For each bar t, the position (index into `piv`) of the last pivot confirmed at or before t (-1: none)."""
    if not len(piv.confirmed):
        return np.full(n, -1, dtype=np.int64)
    return np.searchsorted(piv.confirmed, np.arange(n), side="right").astype(np.int64) - 1


def swing_features(df: pd.DataFrame, thresholds: tuple[float, ...], count_window: int) -> Columns:
    h, lo, c = f64(df["high"]), f64(df["low"]), f64(df["close"])
    n = len(c)
    t_idx = np.arange(n, dtype=np.float64)
    out: Columns = {}
    for thr in thresholds:
        tag = threshold_tag(thr)
        piv = zigzag_pivots(h, lo, thr)
        k = last_confirmed(piv, n)
        have = k >= 0
        kk = np.where(have, k, 0)
        m = len(piv.bar)

        def at(
            values: np.ndarray, lag: int, kk: np.ndarray = kk, have: np.ndarray = have, m: int = m
        ) -> np.ndarray:
            """values[k - lag] where that pivot exists, else NaN."""
            res = np.full(n, np.nan)
            idx = kk - lag
            ok = have & (idx >= 0) & (m > 0)
            if m:
                res[ok] = values[idx[ok]]
            return res

        p_bar = at(piv.bar.astype(np.float64), 0)
        p_conf = at(piv.confirmed.astype(np.float64), 0)
        p_px0, p_px1, p_px2 = at(piv.price, 0), at(piv.price, 1), at(piv.price, 2)
        p_kind = at(piv.kind.astype(np.float64), 0)
        swing1 = log(div(p_px0, p_px1))  # last completed swing, signed log size
        swing2 = log(div(p_px1, p_px2))  # the one before
        out[f"{tag}_bars_since_pivot"] = t_idx - p_bar
        out[f"{tag}_bars_since_confirm"] = t_idx - p_conf
        out[f"{tag}_last_dir"] = -p_kind  # +1: the last pivot was a low, so the current swing is up
        out[f"{tag}_last_swing"] = swing1
        out[f"{tag}_prev_swing"] = swing2
        out[f"{tag}_swing_ratio"] = div(np.abs(swing1), np.abs(swing2))
        out[f"{tag}_last_swing_bars"] = p_bar - at(piv.bar.astype(np.float64), 1)
        move = log(div(c, p_px0))  # the unconfirmed swing in progress since the last confirmed pivot
        out[f"{tag}_current_move"] = move
        out[f"{tag}_current_vs_last"] = div(move, np.abs(swing1))
        out[f"{tag}_trend_count"] = at(_trend_count(piv.price, piv.kind), 0)
        # swings confirmed within the trailing window (including t)
        conf_count = np.zeros(n)
        if m:
            np.add.at(conf_count, piv.confirmed, 1.0)
        cum = np.cumsum(conf_count)
        lagged = (
            np.concatenate([np.zeros(count_window), cum[:-count_window]]) if n > count_window else np.zeros(n)
        )
        out[f"{tag}_swings_{count_window}"] = cum - lagged[:n]
    return out
