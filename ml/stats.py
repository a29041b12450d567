"""Statistics for honest model evaluation: classification metrics, Sharpe/drawdown, a block bootstrap of the
Sharpe difference between two strategies, and the Holm step-down correction.

Conventions
- Probabilities are P(up) in [0, 1]; labels are 0/1. Rows with a NaN probability or label are ignored.
- Returns are simple per-bar returns; the Sharpe ratio is ``mean / std * sqrt(periods_per_year)`` with the
  sample standard deviation (ddof=1) and a zero risk-free rate; a constant series has Sharpe 0.
- Crypto trades around the clock: a year is 365 days of bars (:func:`periods_per_year`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

__all__ = [
    "BootstrapResult",
    "accuracy",
    "auc_ci_hanley_mcneil",
    "auc_se_hanley_mcneil",
    "bars_per_day",
    "block_bootstrap_indices",
    "bootstrap_sharpe_diff",
    "brier",
    "classification_metrics",
    "holm",
    "holm_reject",
    "majority_rate",
    "max_drawdown",
    "periods_per_year",
    "roc_auc",
    "sharpe",
    "sharpe_matrix",
]

YEAR = pd.Timedelta(days=365)
DAY = pd.Timedelta(days=1)


# -- classification --------------------------------------------------------------------------------------------


def _clean(
    y: np.ndarray | pd.Series | Sequence[float], p: np.ndarray | pd.Series | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"labels and probabilities differ in length: {y_arr.size} vs {p_arr.size}")
    keep = np.isfinite(y_arr) & np.isfinite(p_arr)
    y_arr, p_arr = y_arr[keep], p_arr[keep]
    if y_arr.size and not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1")
    return y_arr.astype(np.int64), p_arr


def accuracy(y: object, p: object, threshold: float = 0.5) -> float:
    """Share of rows where ``p > threshold`` matches ``y == 1`` (NaN if no rows)."""
    y_arr, p_arr = _clean(y, p)  # type: ignore[arg-type]
    if y_arr.size == 0:
        return float("nan")
    return float(np.mean((p_arr > threshold).astype(np.int64) == y_arr))


def majority_rate(y: object) -> float:
    """Accuracy of always predicting the more frequent class (the bar a direction model must clear)."""
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    y_arr = y_arr[np.isfinite(y_arr)]
    if y_arr.size == 0:
        return float("nan")
    up = float(np.mean(y_arr))
    return max(up, 1.0 - up)


def roc_auc(y: object, p: object) -> float:
    """ROC AUC via the Mann-Whitney rank statistic (ties count one half); NaN if one class is absent."""
    y_arr, p_arr = _clean(y, p)  # type: ignore[arg-type]
    n_pos = int(y_arr.sum())
    n_neg = int(y_arr.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _sps.rankdata(p_arr)
    return float((ranks[y_arr == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def brier(y: object, p: object) -> float:
    """Mean squared error of the probability against the 0/1 outcome (0.25 for a constant 0.5)."""
    y_arr, p_arr = _clean(y, p)  # type: ignore[arg-type]
    if y_arr.size == 0:
        return float("nan")
    return float(np.mean((p_arr - y_arr) ** 2))


def auc_se_hanley_mcneil(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC (Hanley & McNeil, 1982)."""
    if n_pos <= 0 or n_neg <= 0 or not math.isfinite(auc):
        return float("nan")
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    return float(math.sqrt(max(var, 0.0)))


def auc_ci_hanley_mcneil(auc: float, n_pos: int, n_neg: int, *, level: float = 0.95) -> tuple[float, float]:
    """Normal-approximation confidence interval of an AUC with the Hanley-McNeil standard error."""
    se = auc_se_hanley_mcneil(auc, n_pos, n_neg)
    z = float(_sps.norm.ppf(0.5 + level / 2.0))
    return (max(0.0, auc - z * se), min(1.0, auc + z * se))


def classification_metrics(y: object, p: object) -> dict[str, float | int | list[float]]:
    """Accuracy, majority-class rate, ROC AUC (+ Hanley-McNeil 95% CI), Brier score and the row count."""
    y_arr, p_arr = _clean(y, p)  # type: ignore[arg-type]
    n_pos = int(y_arr.sum())
    n_neg = int(y_arr.size - n_pos)
    auc = roc_auc(y_arr, p_arr)
    acc = accuracy(y_arr, p_arr)
    maj = majority_rate(y_arr)
    # one-sided binomial z of the accuracy against the majority-class rate
    z = float("nan")
    if y_arr.size and 0.0 < maj < 1.0:
        z = (acc - maj) / math.sqrt(maj * (1.0 - maj) / y_arr.size)
    return {
        "n": int(y_arr.size),
        "accuracy": acc,
        "majority_rate": maj,
        "accuracy_z_vs_majority": z,
        "auc": auc,
        "auc_ci95": list(auc_ci_hanley_mcneil(auc, n_pos, n_neg)),
        "brier": brier(y_arr, p_arr),
    }


# -- returns ---------------------------------------------------------------------------------------------------


def periods_per_year(timeframe: pd.Timedelta | str | float) -> float:
    """Bars per 365-day year for a bar size (a ``Timedelta``, a pandas offset string, or seconds)."""
    td = _as_timedelta(timeframe)
    return float(YEAR / td)


def bars_per_day(timeframe: pd.Timedelta | str | float) -> int:
    """Number of bars covering at least one day (1 for daily or longer bars)."""
    td = _as_timedelta(timeframe)
    return max(1, math.ceil(DAY / td))


def _as_timedelta(timeframe: pd.Timedelta | str | float) -> pd.Timedelta:
    if isinstance(timeframe, int | float) and not isinstance(timeframe, bool):
        td = pd.Timedelta(seconds=float(timeframe))
    else:
        td = pd.Timedelta(timeframe)
    if td <= pd.Timedelta(0):
        raise ValueError(f"bar size must be positive, got {timeframe!r}")
    return td


def sharpe(returns: object, periods_per_year: float) -> float:
    """Annualised Sharpe ratio of per-bar returns (0 for a constant series, NaN for fewer than 2 bars)."""
    r = np.asarray(returns, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    if r.size < 2:
        return float("nan")
    sd = float(np.std(r, ddof=1))
    if sd <= 1e-15:
        return 0.0
    return float(np.mean(r) / sd * math.sqrt(periods_per_year))


def sharpe_matrix(returns: np.ndarray, periods_per_year: float) -> np.ndarray:
    """Row-wise annualised Sharpe of a 2-D ``[n_series, n_bars]`` array (0 where a row is constant)."""
    r = np.asarray(returns, dtype=np.float64)
    mean = r.mean(axis=1)
    sd = r.std(axis=1, ddof=1)
    out = np.zeros_like(mean)
    ok = sd > 1e-15
    out[ok] = mean[ok] / sd[ok] * math.sqrt(periods_per_year)
    return out


def max_drawdown(equity: object) -> float:
    """Largest peak-to-trough loss of an equity curve as a negative fraction (0 if it never falls)."""
    e = np.asarray(equity, dtype=np.float64).ravel()
    if e.size == 0:
        return 0.0
    peak = np.maximum.accumulate(e)
    return float(np.min(e / peak - 1.0))


# -- block bootstrap -------------------------------------------------------------------------------------------


def block_bootstrap_indices(
    n: int, block_len: int, n_boot: int, seed: int | np.random.Generator
) -> np.ndarray:
    """``[n_boot, n]`` indices of a circular moving-block bootstrap (blocks of ``block_len`` consecutive bars,
    wrapping at the end). Reproducible for a given integer seed."""
    if n < 1 or n_boot < 1:
        raise ValueError("need n >= 1 and n_boot >= 1")
    if block_len < 1:
        raise ValueError("block_len must be >= 1")
    block_len = min(block_len, n)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_blocks = math.ceil(n / block_len)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block_len)[None, None, :]) % n
    return idx.reshape(n_boot, n_blocks * block_len)[:, :n]


@dataclass(frozen=True)
class BootstrapResult:
    """Sharpe difference (a − b), its bootstrap CI and the one-sided p-value of H0: difference <= 0."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_boot: int
    block_len: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "sharpe_diff": self.diff,
            "ci95_low": self.ci_low,
            "ci95_high": self.ci_high,
            "p_value": self.p_value,
            "n_boot": self.n_boot,
            "block_bars": self.block_len,
        }


def bootstrap_sharpe_diff(
    a: object,
    b: object,
    *,
    periods_per_year: float,
    block_len: int,
    n_boot: int = 2000,
    seed: int = 0,
    chunk: int = 250,
    b_sharpe: float | None = None,
) -> BootstrapResult:
    """Paired circular block bootstrap of ``Sharpe(a) - Sharpe(b)``.

    ``a`` is one return series ``[n]``; ``b`` is either ``[n]`` (a fixed baseline) or ``[k, n]`` (a random
    baseline such as a coin flip: replicate ``i`` pairs with row ``i % k``, so the coin's own randomness is in
    the distribution; ``b_sharpe`` may give the baseline's Sharpe from more seeds than the rows passed). Both series are resampled with the SAME block indices. The p-value is one-sided with the
    bootstrap distribution re-centred on zero (H0: a does not beat b):
    ``p = (1 + #{d*_i - mean(d*) >= d}) / (n_boot + 1)``.
    """
    ra = np.asarray(a, dtype=np.float64).ravel()
    rb = np.asarray(b, dtype=np.float64)
    rb2 = rb[None, :] if rb.ndim == 1 else rb
    if rb2.shape[1] != ra.size:
        raise ValueError(f"series differ in length: {ra.size} vs {rb2.shape[1]}")
    if not (np.isfinite(ra).all() and np.isfinite(rb2).all()):
        raise ValueError("returns must be finite")
    if b_sharpe is None:
        b_sharpe = float(np.mean(sharpe_matrix(rb2, periods_per_year)))
    observed = sharpe(ra, periods_per_year) - b_sharpe
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    k = rb2.shape[0]
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = block_bootstrap_indices(ra.size, block_len, stop - start, rng)
        rows = np.arange(start, stop) % k
        sa = sharpe_matrix(ra[idx], periods_per_year)
        sb = sharpe_matrix(np.take_along_axis(rb2[rows], idx, axis=1), periods_per_year)
        diffs[start:stop] = sa - sb
    centred = diffs - diffs.mean()
    p = (1.0 + float(np.sum(centred >= observed))) / (n_boot + 1.0)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return BootstrapResult(
        float(observed), float(lo), float(hi), float(p), int(n_boot), int(min(block_len, ra.size))
    )


# -- multiple comparisons --------------------------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in the input order (monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    if np.isnan(p).any():
        raise ValueError("p-values must not be NaN")
    order = np.argsort(p, kind="stable")
    adj_sorted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adj = np.empty(m)
    adj[order] = np.minimum(adj_sorted, 1.0)
    return [float(x) for x in adj]


def holm_reject(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Which null hypotheses Holm rejects at family-wise level ``alpha``."""
    return [a <= alpha for a in holm(p_values)]
