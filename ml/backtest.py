"""Vectorised backtest of a per-bar trading signal with fees and slippage — strictly no same-bar execution.

Timing (the one rule every strategy here follows, model and baselines alike)
- ``signal[t]`` is decided at the CLOSE of bar ``t`` (it may use everything up to and including that close).
- The trade is executed at the close of the NEXT bar, ``t + delay`` (``delay >= 1``, default 1), so the position
  from ``signal[t]`` is held over the return ``close[t+1] -> close[t+2]`` (and so on until the signal changes).
  A signal that peeks at the ``t -> t+1`` move therefore earns nothing from the peek.
- Bar returns are close-to-close: ``r[k] = close[k] / close[k-1] - 1`` (``r[0] = 0``); ``position[k]`` is the
  position held over ``r[k]``: ``position[k] = signal[k - 1 - delay]`` (0 before the first executable bar).

Costs (charged on the bar whose position was just established, per unit of turnover ``|pos[k] - pos[k-1]|``;
going long -> short is 2 units, i.e. two sides)
- fee: ``fee_bps`` per side — exactly ``fee_bps / 1e4 * turnover``;
- slippage: ``slippage_bps`` per side (fixed) plus ``slippage_range_k * (high - low) / close`` of the execution
  bar (a share of the bar's range; 0 by default).
No closing trade is charged at the end of the sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.stats import max_drawdown, periods_per_year, sharpe

__all__ = [
    "BacktestResult",
    "CostModel",
    "backtest_positions",
    "backtest_signal",
    "bar_returns",
    "coin_flip_returns",
    "momentum_signal",
    "positions_from_proba",
    "signal_to_positions",
]


@dataclass(frozen=True)
class CostModel:
    """Per-side trading costs. ``fee_bps`` and ``slippage_bps`` in basis points of traded notional;
    ``slippage_range_k`` is the share of the execution bar's high-low range (relative to its close) paid."""

    fee_bps: float = 10.0
    slippage_bps: float = 5.0
    slippage_range_k: float = 0.0

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps", "slippage_range_k"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a finite non-negative number")

    def describe(self) -> dict[str, object]:
        return {
            "fee_bps_per_side": self.fee_bps,
            "slippage_bps_per_side": self.slippage_bps,
            "slippage_range_k": self.slippage_range_k,
            "slippage_model": (
                f"{self.slippage_bps:g} bps per side fixed + {self.slippage_range_k:g} x (high-low)/close of the "
                "execution bar"
            ),
            "execution": "signal at the close of bar t, trade at the close of bar t+1 (held over t+1 -> t+2); "
            "no same-bar execution",
            "charged_on": "turnover |position change| (long->short counts two sides); no final liquidation",
        }


@dataclass
class BacktestResult:
    """Per-bar series of one strategy (index = bar timestamps) and summary metrics."""

    positions: pd.Series
    gross: pd.Series
    fees: pd.Series
    slippage: pd.Series
    net: pd.Series
    equity: pd.Series
    turnover: pd.Series
    periods_per_year: float
    metrics: dict[str, float] = field(default_factory=dict)


def bar_returns(close: pd.Series) -> pd.Series:
    """Close-to-close simple returns, 0 on the first bar."""
    c = close.astype(np.float64)
    return (c / c.shift(1) - 1.0).fillna(0.0)


def positions_from_proba(
    proba: pd.Series | np.ndarray, *, band: float = 0.0, short: bool = True
) -> np.ndarray:
    """Rule: +1 if ``p > 0.5 + band``; -1 if ``p < 0.5 - band`` and shorting is allowed, else 0 (flat).
    NaN probabilities give 0."""
    p = np.asarray(proba, dtype=np.float64)
    sig = np.zeros(p.shape)
    with np.errstate(invalid="ignore"):
        sig[p > 0.5 + band] = 1.0
        if short:
            sig[p < 0.5 - band] = -1.0
    return sig


def momentum_signal(close: pd.Series, *, lookback: int, short: bool = True) -> np.ndarray:
    """Sign of the trailing ``lookback``-bar return at each close (0 before enough history)."""
    c = close.astype(np.float64).to_numpy()
    sig = np.zeros(c.size)
    if lookback < 1:
        raise ValueError("lookback must be >= 1")
    if c.size > lookback:
        mom = c[lookback:] / c[:-lookback] - 1.0
        s = np.sign(mom)
        if not short:
            s = np.maximum(s, 0.0)
        sig[lookback:] = s
    return sig


def signal_to_positions(signal: np.ndarray | pd.Series, *, delay: int = 1) -> np.ndarray:
    """``position[k] = signal[k - 1 - delay]`` (0 before) — the shift that forbids same-bar execution."""
    if delay < 1:
        raise ValueError("delay must be >= 1: a signal at the close of bar t cannot trade on bar t's return")
    s = np.nan_to_num(np.asarray(signal, dtype=np.float64), nan=0.0)
    lag = 1 + delay
    pos = np.zeros(s.size)
    if s.size > lag:
        pos[lag:] = s[:-lag]
    return pos


def _costs(
    positions: np.ndarray, bars: pd.DataFrame | None, close: pd.Series, costs: CostModel
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prev = np.concatenate(([0.0], positions[:-1]))
    turnover = np.abs(positions - prev)
    fees = costs.fee_bps / 1e4 * turnover
    slip_rate = np.full(positions.size, costs.slippage_bps / 1e4)
    if costs.slippage_range_k > 0:
        if bars is None:
            raise ValueError("a range-based slippage model needs high/low columns")
        rng = ((bars["high"] - bars["low"]) / bars["close"]).to_numpy(dtype=np.float64)
        # the position held over bar k was established at the close of bar k-1: pay that bar's range
        exec_range = np.concatenate(([rng[0]], rng[:-1]))
        slip_rate = slip_rate + costs.slippage_range_k * exec_range
    return turnover, fees, slip_rate * turnover


def backtest_positions(
    bars: pd.DataFrame | pd.Series,
    positions: np.ndarray,
    *,
    costs: CostModel | None = None,
    timeframe: pd.Timedelta | None = None,
) -> BacktestResult:
    """Backtest already-shifted positions (``positions[k]`` held over ``r[k]``). Prefer :func:`backtest_signal`."""
    costs = costs or CostModel()
    frame = bars.to_frame("close") if isinstance(bars, pd.Series) else bars
    close = frame["close"]
    pos = np.asarray(positions, dtype=np.float64)
    if pos.size != len(close):
        raise ValueError(f"positions ({pos.size}) and bars ({len(close)}) differ in length")
    ohlc = frame if {"high", "low"} <= set(frame.columns) else None
    r = bar_returns(close).to_numpy()
    turnover, fees, slip = _costs(pos, ohlc, close, costs)
    gross = pos * r
    net = gross - fees - slip
    idx = close.index
    equity = np.cumprod(1.0 + net)
    tf = timeframe if timeframe is not None else _infer_timeframe(frame)
    ppy = periods_per_year(tf)
    res = BacktestResult(
        positions=pd.Series(pos, idx),
        gross=pd.Series(gross, idx),
        fees=pd.Series(fees, idx),
        slippage=pd.Series(slip, idx),
        net=pd.Series(net, idx),
        equity=pd.Series(equity, idx),
        turnover=pd.Series(turnover, idx),
        periods_per_year=ppy,
    )
    res.metrics = {
        "sharpe": sharpe(net, ppy),
        "sharpe_gross": sharpe(gross, ppy),
        "total_return": float(equity[-1] - 1.0) if equity.size else 0.0,
        "max_drawdown": max_drawdown(equity),
        "turnover": float(turnover.sum()),
        "fees_paid": float(fees.sum()),
        "slippage_paid": float(slip.sum()),
        "exposure": float(np.mean(np.abs(pos))) if pos.size else 0.0,
    }
    return res


def backtest_signal(
    bars: pd.DataFrame | pd.Series,
    signal: np.ndarray | pd.Series,
    *,
    costs: CostModel | None = None,
    delay: int = 1,
    timeframe: pd.Timedelta | None = None,
) -> BacktestResult:
    """Backtest a per-bar signal in {-1, 0, +1} (fractions allowed) aligned with ``bars`` (see module doc)."""
    return backtest_positions(
        bars, signal_to_positions(signal, delay=delay), costs=costs, timeframe=timeframe
    )


def coin_flip_returns(
    bars: pd.DataFrame | pd.Series,
    *,
    seeds: int,
    flip_rate: float,
    short: bool = True,
    costs: CostModel | None = None,
    delay: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Net returns ``[seeds, n_bars]`` of coin-flip strategies: on each bar, with probability ``flip_rate`` a
    fresh position is drawn uniformly from {-1, +1} ({0, +1} without shorting), otherwise the previous one is
    kept (so the baseline trades about as often as the model it is compared with). Same timing and costs as
    :func:`backtest_signal`."""
    costs = costs or CostModel()
    frame = bars.to_frame("close") if isinstance(bars, pd.Series) else bars
    close = frame["close"]
    n = len(close)
    rng = np.random.default_rng(seed)
    flip_rate = float(np.clip(flip_rate, 1.0 / max(n, 1), 1.0))
    draws = rng.integers(0, 2, size=(seeds, n)).astype(np.float64)
    if short:
        draws = draws * 2.0 - 1.0
    redraw = rng.random((seeds, n)) < flip_rate
    redraw[:, 0] = True
    # forward-fill the drawn positions between redraws
    last = np.where(redraw, np.arange(n)[None, :], 0)
    np.maximum.accumulate(last, axis=1, out=last)
    sig = np.take_along_axis(draws, last, axis=1)
    lag = 1 + delay
    pos = np.zeros_like(sig)
    if n > lag:
        pos[:, lag:] = sig[:, :-lag]
    r = bar_returns(close).to_numpy()
    prev = np.concatenate([np.zeros((seeds, 1)), pos[:, :-1]], axis=1)
    turnover = np.abs(pos - prev)
    rate = np.full(n, (costs.fee_bps + costs.slippage_bps) / 1e4)
    if costs.slippage_range_k > 0:
        rng_bar = ((frame["high"] - frame["low"]) / frame["close"]).to_numpy(dtype=np.float64)
        rate = rate + costs.slippage_range_k * np.concatenate(([rng_bar[0]], rng_bar[:-1]))
    return pos * r[None, :] - turnover * rate[None, :]


def _infer_timeframe(frame: pd.DataFrame) -> pd.Timedelta:
    tf = frame.attrs.get("timeframe")
    if tf is not None:
        return pd.Timedelta(tf)
    if isinstance(frame.index, pd.DatetimeIndex) and len(frame.index) > 1:
        return pd.Timedelta(np.median(np.diff(frame.index.asi8)), unit="ns")
    raise ValueError("cannot infer the bar size: pass timeframe=")
