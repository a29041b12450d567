"""ml.stats and ml.backtest: metrics, Holm, block bootstrap, AUC under the null, costs and execution timing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.backtest import (
    CostModel,
    backtest_signal,
    coin_flip_returns,
    momentum_signal,
    positions_from_proba,
    signal_to_positions,
)
from ml.stats import (
    accuracy,
    auc_ci_hanley_mcneil,
    bars_per_day,
    block_bootstrap_indices,
    bootstrap_sharpe_diff,
    brier,
    classification_metrics,
    holm,
    holm_reject,
    majority_rate,
    max_drawdown,
    periods_per_year,
    roc_auc,
    sharpe,
)


def _bars(n: int = 2000, seed: int = 0, freq: str = "1h") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    idx = pd.date_range("2022-01-01", periods=n, freq=freq, tz="UTC", name="timestamp")
    spread = np.abs(rng.normal(0, 0.004, n)) * close
    df = pd.DataFrame(
        {"open": close, "high": close + spread, "low": close - spread, "close": close, "volume": 1.0},
        index=idx,
    )
    df.attrs["timeframe"] = pd.Timedelta(freq)
    return df


# -- classification metrics ---------------------------------------------------------------------------------------


def test_basic_metrics() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    assert roc_auc(y, p) == pytest.approx(0.75)  # sklearn's textbook example
    assert accuracy(y, p) == pytest.approx(0.75)
    assert brier(y, p) == pytest.approx(np.mean((p - y) ** 2))
    assert majority_rate([1, 1, 1, 0]) == 0.75
    assert brier([0, 1], [0.5, 0.5]) == 0.25
    # NaN rows are ignored
    assert roc_auc([0, 1, np.nan], [0.2, 0.9, 0.5]) == 1.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_auc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500), 2)  # ties
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))


def test_shuffled_labels_auc_within_its_ci() -> None:
    """A model fitted on labels that carry no information: its out-of-sample AUC lies within 0.5 ± CI."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    X = rng.normal(size=(3000, 5))
    y_true = (X[:, 0] + rng.normal(0, 1, 3000) > 0).astype(int)
    y = rng.permutation(y_true)  # shuffled: the link to X is destroyed
    model = LogisticRegression().fit(X[:2000], y[:2000])
    p = model.predict_proba(X[2000:])[:, 1]
    auc = roc_auc(y[2000:], p)
    n_pos = int(y[2000:].sum())
    lo, hi = auc_ci_hanley_mcneil(0.5, n_pos, 1000 - n_pos)
    assert lo <= auc <= hi
    lo2, hi2 = classification_metrics(y[2000:], p)["auc_ci95"]
    assert lo2 <= 0.5 <= hi2
    # the unshuffled labels are clearly learnable (the check has power)
    p_true = LogisticRegression().fit(X[:2000], y_true[:2000]).predict_proba(X[2000:])[:, 1]
    assert roc_auc(y_true[2000:], p_true) > hi


def test_hanley_mcneil_coverage_under_the_null() -> None:
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(200):
        y = rng.integers(0, 2, 400)
        p = rng.random(400)
        lo, hi = classification_metrics(y, p)["auc_ci95"]
        covered += lo <= 0.5 <= hi
    assert covered >= 180  # nominal 95%


# -- returns -----------------------------------------------------------------------------------------------------


def test_sharpe_drawdown_annualisation() -> None:
    assert periods_per_year("1h") == 365 * 24
    assert periods_per_year(pd.Timedelta(days=1)) == 365
    assert bars_per_day("1h") == 24 and bars_per_day("5min") == 288 and bars_per_day("1D") == 1
    assert bars_per_day("7h") == 4
    r = np.array([0.01, -0.005, 0.02, 0.0])
    assert sharpe(r, 365) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    assert sharpe(np.zeros(10), 365) == 0.0
    assert max_drawdown([1.0, 1.2, 0.9, 1.3, 1.04]) == pytest.approx(-0.25)
    assert max_drawdown([1.0, 1.1, 1.2]) == 0.0


# -- Holm --------------------------------------------------------------------------------------------------------


def test_holm_textbook() -> None:
    # Holm (1979) / the usual textbook example: m = 4, alpha = 0.05
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_reject(p, 0.05) == [True, False, False, True]
    # monotone and capped at one
    assert holm([0.5, 0.6, 0.9]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm([0.001, 0.2, 0.3]) == pytest.approx([0.003, 0.4, 0.4])
    assert holm([]) == []


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
def test_holm_properties(p: list[float]) -> None:
    adj = holm(p)
    assert all(a >= q - 1e-12 for a, q in zip(adj, p, strict=True))
    assert all(a <= 1.0 for a in adj)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(np.asarray(adj)[order]) >= -1e-12)  # order preserved
    assert min(adj) == pytest.approx(min(1.0, len(p) * min(p)))  # the smallest is Bonferroni


# -- block bootstrap ---------------------------------------------------------------------------------------------


def test_block_bootstrap_reproducible_and_blocks_of_a_day() -> None:
    n, block = 500, bars_per_day("1h")
    a = block_bootstrap_indices(n, block, 50, seed=42)
    b = block_bootstrap_indices(n, block, 50, seed=42)
    c = block_bootstrap_indices(n, block, 50, seed=43)
    assert a.shape == (50, n)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # every sample is made of runs of `block` consecutive bars (circular)
    for row in a[:10]:
        runs = row[: (n // block) * block].reshape(-1, block)
        assert np.all((np.diff(runs, axis=1) % n) == 1)
    r1 = np.random.default_rng(0).normal(0.001, 0.01, n)
    r2 = np.random.default_rng(1).normal(0.0, 0.01, n)
    x = bootstrap_sharpe_diff(r1, r2, periods_per_year=8760, block_len=block, n_boot=300, seed=5)
    y = bootstrap_sharpe_diff(r1, r2, periods_per_year=8760, block_len=block, n_boot=300, seed=5)
    assert x == y
    assert x.block_len == 24
    assert x.diff == pytest.approx(sharpe(r1, 8760) - sharpe(r2, 8760))
    assert x.ci_low <= x.diff <= x.ci_high
    assert 0.0 < x.p_value <= 1.0


def test_bootstrap_p_value_behaves() -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(0.0, 0.01, 3000)
    better = base + 0.002  # a clear, constant edge
    same = rng.normal(0.0, 0.01, 3000)
    p_good = bootstrap_sharpe_diff(better, base, periods_per_year=8760, block_len=24, n_boot=500).p_value
    p_bad = bootstrap_sharpe_diff(base, better, periods_per_year=8760, block_len=24, n_boot=500).p_value
    assert p_good < 0.01 and p_bad > 0.9
    # a random baseline matrix (e.g. coin flips) is accepted
    coins = rng.normal(0.0, 0.01, (40, 3000))
    res = bootstrap_sharpe_diff(same, coins, periods_per_year=8760, block_len=24, n_boot=200)
    assert 0.0 < res.p_value <= 1.0


# -- backtest ----------------------------------------------------------------------------------------------------


def test_positions_are_shifted_no_same_bar_execution() -> None:
    sig = np.array([1.0, -1.0, 0.0, 1.0, 1.0])
    # signal at the close of bar t -> traded at the close of t+1 -> earns r[t+2] = close[t+2]/close[t+1]-1
    assert signal_to_positions(sig).tolist() == [0.0, 0.0, 1.0, -1.0, 0.0]
    assert signal_to_positions(sig, delay=2).tolist() == [0.0, 0.0, 0.0, 1.0, -1.0]
    with pytest.raises(ValueError):
        signal_to_positions(sig, delay=0)
    assert positions_from_proba([0.6, 0.4, 0.5, np.nan, 0.52], band=0.05).tolist() == [1, -1, 0, 0, 0]
    assert positions_from_proba([0.6, 0.4], short=False).tolist() == [1, 0]


def test_fees_are_exactly_bps_times_turnover() -> None:
    bars = _bars(500)
    rng = np.random.default_rng(2)
    sig = rng.choice([-1.0, 0.0, 1.0], size=500)
    for fee, slip in [(10.0, 0.0), (7.5, 3.0), (0.0, 0.0)]:
        res = backtest_signal(bars, sig, costs=CostModel(fee_bps=fee, slippage_bps=slip))
        pos = signal_to_positions(sig)
        turnover = np.abs(np.diff(np.concatenate(([0.0], pos))))
        assert res.turnover.to_numpy() == pytest.approx(turnover)
        assert res.fees.sum() == pytest.approx(fee / 1e4 * turnover.sum(), rel=1e-12, abs=1e-15)
        assert res.fees.to_numpy() == pytest.approx(fee / 1e4 * turnover, abs=1e-15)
        assert res.slippage.sum() == pytest.approx(slip / 1e4 * turnover.sum(), abs=1e-15)
        r = bars["close"].pct_change().fillna(0.0).to_numpy()
        assert res.net.to_numpy() == pytest.approx(pos * r - (fee + slip) / 1e4 * turnover, abs=1e-15)
        assert res.equity.iloc[-1] == pytest.approx(np.prod(1 + res.net.to_numpy()))
    # long -> short counts two sides
    res = backtest_signal(
        bars.iloc[:6],
        np.array([1.0, -1.0, -1.0, -1.0, -1.0, -1.0]),
        costs=CostModel(fee_bps=10, slippage_bps=0),
    )
    assert res.turnover.tolist() == [0, 0, 1, 2, 0, 0]
    assert res.fees.sum() == pytest.approx(3 * 10 / 1e4)


def test_range_slippage_uses_the_execution_bar() -> None:
    bars = _bars(50)
    sig = np.zeros(50)
    sig[10] = 1.0  # position from bar 12 (executed at the close of bar 11)
    res = backtest_signal(bars, sig, costs=CostModel(fee_bps=0, slippage_bps=0, slippage_range_k=0.5))
    rng11 = (bars["high"].iloc[11] - bars["low"].iloc[11]) / bars["close"].iloc[11]
    assert res.slippage.iloc[12] == pytest.approx(0.5 * rng11)
    rng12 = (bars["high"].iloc[12] - bars["low"].iloc[12]) / bars["close"].iloc[12]
    assert res.slippage.iloc[13] == pytest.approx(0.5 * rng12)  # closed at the close of bar 12


def test_peeking_signal_earns_nothing_from_the_peek() -> None:
    """A signal at t equal to the sign of the t -> t+1 return (look-ahead) is traded one bar later: no edge."""
    bars = _bars(4000, seed=5)
    r_next = bars["close"].shift(-1) / bars["close"] - 1.0
    peek = np.sign(r_next.fillna(0.0).to_numpy())
    res = backtest_signal(bars, peek, costs=CostModel(fee_bps=0, slippage_bps=0))
    same_bar = np.sign(r_next.fillna(0.0)).shift(1).fillna(0.0).to_numpy() * bars[
        "close"
    ].pct_change().fillna(0.0)
    absurd = sharpe(same_bar.to_numpy(), res.periods_per_year)
    assert absurd > 50  # what same-bar execution would (wrongly) show
    assert abs(res.metrics["sharpe"]) < 2.5  # shifted: a random-walk's worth, no systematic edge


def test_baselines() -> None:
    bars = _bars(300)
    mom = momentum_signal(bars["close"], lookback=5)
    assert (mom[:5] == 0).all() and set(np.unique(mom[5:])) <= {-1.0, 1.0}
    assert mom[5] == np.sign(bars["close"].iloc[5] / bars["close"].iloc[0] - 1)
    flips = coin_flip_returns(bars, seeds=30, flip_rate=0.1, costs=CostModel(), seed=1)
    again = coin_flip_returns(bars, seeds=30, flip_rate=0.1, costs=CostModel(), seed=1)
    assert flips.shape == (30, 300) and np.array_equal(flips, again)
    assert np.all(flips[:, :2] <= 0)  # nothing held over the first two bars (only the entry cost on bar 2)
    # buy and hold: one entry cost, then the market
    res = backtest_signal(bars, np.ones(300), costs=CostModel(fee_bps=10, slippage_bps=5))
    assert res.metrics["turnover"] == 1.0
    c = bars["close"].to_numpy()
    expected = (c[2] / c[1] - 15e-4) * c[-1] / c[2] - 1  # the entry cost is charged on the first bar held
    assert res.metrics["total_return"] == pytest.approx(expected)
