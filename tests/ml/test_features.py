"""ml.features: causality (look-ahead), zig-zag confirmation timing, patterns, names, coverage, speed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given
from hypothesis import strategies as st

from ml.features import (
    FAMILIES,
    CausalPreprocessor,
    FeatureConfig,
    OnchainSource,
    StaticOnchainSource,
    build_features,
    feature_family,
    pattern_names,
    zigzag_pivots,
)

H = pd.Timedelta(hours=1)
Market = dict[str, Any]


# -- synthetic inputs ---------------------------------------------------------------------------------------------


def synth_ohlcv(
    n: int,
    seed: int = 0,
    *,
    start: str = "2023-01-01",
    freq: str = "h",
    s0: float = 100.0,
    sigma: float = 0.008,
) -> pd.DataFrame:
    """Seeded geometric random walk with consistent OHLC (open = previous close + tiny gap) and volume that
    rises with the absolute return; UTC index named `timestamp` (bar open time)."""
    rng = np.random.default_rng(seed)
    r = rng.standard_t(5, n) * sigma / np.sqrt(5 / 3)
    close = s0 * np.exp(np.cumsum(r))
    prev = np.concatenate([[s0], close[:-1]])
    open_ = prev * np.exp(rng.normal(0.0, sigma / 20, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma / 2, n)))
    volume = rng.lognormal(3.0, 0.4, n) * (1.0 + 60.0 * np.abs(r))
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx)
    df.attrs["timeframe"] = pd.Timedelta(idx.freq)
    return df


def synth_trades(df: pd.DataFrame, seed: int = 1, rate: float = 8.0) -> pd.DataFrame:
    """Poisson number of trades per bar, uniform times inside the bar, prices around the bar's range."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate, len(df))
    bar = np.repeat(np.arange(len(df)), counts)
    tf_ns = pd.Timedelta(df.attrs["timeframe"]).value
    opens = df.index.as_unit("ns").asi8[bar]
    ts = opens + rng.integers(0, tf_ns, len(bar))
    lo, hi = df["low"].to_numpy()[bar], df["high"].to_numpy()[bar]
    price = lo + (hi - lo) * rng.random(len(bar))
    amount = rng.lognormal(-1.0, 1.0, len(bar))
    side = np.where(rng.random(len(bar)) < 0.5, "buy", "sell")
    order = np.argsort(ts, kind="stable")
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(ts[order], utc=True),
            "side": side[order],
            "price": price[order],
            "amount": amount[order],
        }
    )


def synth_onchain(df: pd.DataFrame, seed: int = 2) -> pd.DataFrame:
    """Irregular on-chain observations (every 3-20 minutes) starting a day before the first bar."""
    rng = np.random.default_rng(seed)
    start = df.index[0] - pd.Timedelta(days=1)
    span_s = (df.index[-1] + H - start).total_seconds()
    steps = rng.integers(180, 1200, int(span_s / 180) + 10)
    secs = np.cumsum(steps)
    secs = secs[secs < span_s]
    ts = start + pd.to_timedelta(secs, unit="s")
    fee = np.exp(np.log(20.0) + np.cumsum(rng.normal(0, 0.05, len(secs))))
    return pd.DataFrame(
        {"base_fee_gwei": fee, "gas_used_ratio": rng.uniform(0.2, 1.0, len(secs))},
        index=pd.DatetimeIndex(ts, name="timestamp"),
    )


def synth_others(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`ETH/USDT`: hourly, correlated, starts 30 bars later and misses 3% of bars. `SOL/USDT`: 4-hour bars."""
    n = len(df)
    eth = synth_ohlcv(n, seed=11)
    mix = 0.6 * np.log(df["close"].to_numpy() / 100.0) + 0.4 * np.log(eth["close"].to_numpy() / 100.0)
    eth[["open", "high", "low", "close"]] = (
        eth[["open", "high", "low", "close"]].to_numpy()
        * (np.exp(mix) / eth["close"].to_numpy())[:, None]
        * 20.0
    )
    keep = np.random.default_rng(12).random(n) > 0.03
    keep[:30] = False
    eth = eth[keep]
    eth.attrs["timeframe"] = H
    sol = synth_ohlcv(n // 4 + 2, seed=13, freq="4h", s0=20.0, sigma=0.016)
    return {"ETH/USDT": eth, "SOL/USDT": sol}


@pytest.fixture(scope="module")
def market() -> Market:
    df = synth_ohlcv(1500, seed=0)
    return {"df": df, "others": synth_others(df), "trades": synth_trades(df), "onchain": synth_onchain(df)}


def _build(m: Market, **kw: Any) -> pd.DataFrame:
    return build_features(
        m["df"], others=m["others"], trades=m["trades"], onchain=StaticOnchainSource(m["onchain"]), **kw
    )


# -- look-ahead ---------------------------------------------------------------------------------------------------


def _wild(rng: np.random.Generator, n: int, lo: float = -3.0, hi: float = 6.0) -> np.ndarray:
    return 10.0 ** rng.uniform(lo, hi, n)


def _corrupt(m: Market, t: int, seed: int) -> Market:
    """Every input row after bar t replaced by wild random values (timestamps kept; extra trades added)."""
    rng = np.random.default_rng(seed)
    df: pd.DataFrame = m["df"].copy()
    df.attrs = dict(m["df"].attrs)
    t_open, t_close = df.index[t], df.index[t] + H
    after = np.arange(len(df)) > t
    k = int(after.sum())
    for col in ("open", "high", "low", "close"):
        df.loc[after, col] = _wild(rng, k)
    vol = _wild(rng, k, -2.0, 9.0)
    vol[rng.random(k) < 0.1] = 0.0
    df.loc[after, "volume"] = vol

    others = {}
    for name, o in m["others"].items():
        o2 = o.copy()
        o2.attrs = dict(o.attrs)
        tf = pd.Timedelta(o.attrs["timeframe"])
        # rows not finished by the close of bar t (for same-timeframe assets: open > t)
        bad = (o2.index + tf) > t_close
        for col in ("open", "high", "low", "close", "volume"):
            o2.loc[bad, col] = _wild(rng, int(bad.sum()))
        others[name] = o2

    tr: pd.DataFrame = m["trades"]
    keep = tr[tr["timestamp"] < t_close]
    n_new = int(rng.integers(1, 4 * max(len(tr) - len(keep), 1) + 2))
    end_ns = (df.index[-1] + 2 * H).as_unit("ns").value
    new_ts = rng.integers(t_close.as_unit("ns").value, end_ns, n_new)
    wild_tr = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(np.sort(new_ts), utc=True),
            "side": rng.choice(["buy", "sell", "BUY", "x"], n_new),
            "price": _wild(rng, n_new),
            "amount": _wild(rng, n_new, -4.0, 8.0),
        }
    )
    trades = pd.concat([keep, wild_tr], ignore_index=True)

    oc: pd.DataFrame = m["onchain"].copy()
    late = oc.index > t_open
    oc.loc[late, "base_fee_gwei"] = _wild(rng, int(late.sum()))
    oc.loc[late, "gas_used_ratio"] = rng.uniform(-5, 5, int(late.sum()))
    extra = pd.DataFrame(
        {"base_fee_gwei": _wild(rng, 50), "gas_used_ratio": rng.uniform(0, 9, 50)},
        index=pd.DatetimeIndex(
            t_open + pd.to_timedelta(rng.integers(1, 10**6, 50), unit="s"), name="timestamp"
        ),
    )
    oc = pd.concat([oc, extra])
    return {"df": df, "others": others, "trades": trades, "onchain": oc}


def _assert_identical_upto(a: pd.DataFrame, b: pd.DataFrame, t: int) -> None:
    assert list(a.columns) == list(b.columns)
    x = a.iloc[: t + 1].to_numpy()
    y = b.iloc[: t + 1].to_numpy()
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    same = (nan_x & nan_y) | (~nan_x & ~nan_y & (x.view(np.int64) == y.view(np.int64)))
    bad = [a.columns[j] for j in np.flatnonzero(~same.all(axis=0))]
    assert not bad, f"look-ahead at cut {t}: {len(bad)} column(s) changed at rows <= t: {bad[:20]}"


CUTS = (240, 613, 1001, 1497)


def test_lookahead_every_column_bit_identical(market: Market) -> None:
    base = _build(market)
    assert base.shape[1] > 200
    fams = {feature_family(c) for c in base.columns}
    assert fams == set(FAMILIES.values())  # every family is exercised by this test
    for i, t in enumerate(CUTS):
        wild = _corrupt(market, t, seed=100 + i)
        changed = _build(wild)
        _assert_identical_upto(base, changed, t)
        if t < len(base) - 10:  # the test has teeth: the future rows really changed for most columns
            after_b, after_c = base.iloc[t + 1 :], changed.iloc[t + 1 :]
            differs = [(~np.isclose(after_b[c], after_c[c], equal_nan=True)).any() for c in base.columns]
            assert np.mean(differs) > 0.6

        # through the preprocessor fitted on rows <= t: the transform of rows <= t is unchanged
        pre_a = CausalPreprocessor().fit(base.iloc[: t + 1])
        pre_b = CausalPreprocessor().fit(changed.iloc[: t + 1])
        assert pre_a.to_dict() == pre_b.to_dict()
        xa = pre_a.transform(base).iloc[: t + 1].to_numpy()
        xb = pre_b.transform(changed).iloc[: t + 1].to_numpy()
        assert np.isfinite(xb).all()
        assert (xa.view(np.int64) == xb.view(np.int64)).all()


@pytest.mark.parametrize("t", [300, 999])
def test_truncated_history_gives_the_same_rows(market: Market, t: int) -> None:
    """Building on df[:t+1] (with the FULL others/trades/on-chain) equals the full build's rows <= t."""
    full = _build(market)
    df: pd.DataFrame = market["df"]
    short = df.iloc[: t + 1].copy()
    short.attrs = dict(df.attrs)
    part = build_features(
        short,
        others=market["others"],
        trades=market["trades"],
        onchain=StaticOnchainSource(market["onchain"]),
    )
    _assert_identical_upto(full, part, t)
    assert len(part) == t + 1


# -- zig-zag ------------------------------------------------------------------------------------------------------


def _path_frame(prices: list[float]) -> pd.DataFrame:
    p = np.asarray(prices, dtype=np.float64)
    idx = pd.date_range("2024-01-01", periods=len(p), freq="h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": p, "high": p, "low": p, "close": p, "volume": np.ones(len(p))}, index=idx)


# 100 -> 95 (bar 5) -> 110 (bar 20) -> falling; with a 3% threshold the high of bar 0 is confirmed at bar 3
# (97 <= 97.0), the low of bar 5 at bar 8 (98 >= 97.85), the high of bar 20 at bar 27 (106.5 <= 106.7).
ZZ_PATH = [
    100,
    99,
    98,
    97,
    96,
    95,
    96,
    97,
    98,
    99,
    100,
    101,
    102,
    103,
    104,
    105,
    106,
    107,
    108,
    109,
    110,
    109.5,
    109,
    108.5,
    108,
    107.5,
    107,
    106.5,
    106,
    105.5,
    105,
    104.5,
    104,
    103.5,
    103,
    102.5,
]
PIVOT_BAR, CONFIRM_BAR = 20, 27


def test_zigzag_pivots_are_emitted_at_confirmation() -> None:
    df = _path_frame(ZZ_PATH)
    piv = zigzag_pivots(df["high"].to_numpy(), df["low"].to_numpy(), 0.03)
    assert piv.bar.tolist() == [0, 5, PIVOT_BAR]
    assert piv.confirmed.tolist() == [3, 8, CONFIRM_BAR]
    assert piv.kind.tolist() == [1, -1, 1]
    assert piv.price.tolist() == [100.0, 95.0, 110.0]


def test_zigzag_features_change_at_confirmation_not_before() -> None:
    cfg = FeatureConfig(zigzag_thresholds=(0.03,))
    df = _path_frame(ZZ_PATH)
    f = build_features(df, config=cfg)
    zz = [c for c in f.columns if c.startswith("zz3_")] + [c for c in f.columns if c.startswith("fib_zz3_")]
    assert len(zz) >= 10
    i, j = PIVOT_BAR, CONFIRM_BAR
    # between the pivot bar and the bar before confirmation the last confirmed pivot is still the low of bar 5
    for t in range(i, j):
        assert f["zz3_last_dir"].iloc[t] == 1.0
        assert f["zz3_bars_since_pivot"].iloc[t] == t - 5
        assert f["zz3_last_swing"].iloc[t] == pytest.approx(np.log(95 / 100))
        assert f["fib_zz3_retrace"].iloc[t] == pytest.approx((95 - ZZ_PATH[t]) / (95 - 100))
    # at the confirmation bar everything switches to the new pivot (high of bar 20)
    assert f["zz3_last_dir"].iloc[j] == -1.0
    assert f["zz3_bars_since_pivot"].iloc[j] == j - i
    assert f["zz3_bars_since_confirm"].iloc[j] == 0.0
    assert f["zz3_last_swing"].iloc[j] == pytest.approx(np.log(110 / 95))
    assert f["zz3_prev_swing"].iloc[j] == pytest.approx(np.log(95 / 100))
    assert f["zz3_swing_ratio"].iloc[j] == pytest.approx(np.log(110 / 95) / -np.log(95 / 100))
    assert f["fib_zz3_retrace"].iloc[j] == pytest.approx((110 - 106.5) / 15)
    # the swing-state columns (not the price-relative ones) are constant from the previous confirmation up to
    # j-1 and change exactly at j
    state = [
        "zz3_last_dir",
        "zz3_last_swing",
        "zz3_prev_swing",
        "zz3_swing_ratio",
        "zz3_last_swing_bars",
        "zz3_trend_count",
    ]
    block = f[state].iloc[8:j]
    assert (block.nunique(dropna=False) == 1).all()
    assert any(
        not np.array_equal(f[c].iloc[j - 1 : j].to_numpy(), f[c].iloc[j : j + 1].to_numpy(), equal_nan=True)
        for c in state
    )
    # and nothing before j knows about the future decline: building on rows < j gives the same rows
    g = build_features(df.iloc[:j], config=cfg)
    _assert_identical_upto(f[g.columns], g, j - 1)


@given(
    st.lists(st.floats(-0.04, 0.04), min_size=5, max_size=120),
    st.sampled_from([0.01, 0.02, 0.05]),
    st.integers(1, 119),
)
def test_zigzag_is_causal_and_well_formed(steps: list[float], thr: float, cut: int) -> None:
    c = 100 * np.exp(np.cumsum(steps))
    h, lo = c * 1.003, c * 0.997
    piv = zigzag_pivots(h, lo, thr)
    assert (piv.bar < piv.confirmed).all()
    assert (np.diff(piv.confirmed) > 0).all() and (np.diff(piv.bar) > 0).all()
    assert (piv.kind[1:] != piv.kind[:-1]).all()
    cut = min(cut, len(c))
    part = zigzag_pivots(h[:cut], lo[:cut], thr)
    known = piv.confirmed < cut
    assert part.bar.tolist() == piv.bar[known].tolist()
    assert part.confirmed.tolist() == piv.confirmed[known].tolist()


# -- patterns, names, coverage ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain2000() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = synth_ohlcv(2000, seed=5)
    return df, build_features(df)


def test_all_61_candlestick_patterns(plain2000: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, f = plain2000
    names = talib.get_function_groups()["Pattern Recognition"]  # type: ignore[no-untyped-call]
    assert len(names) == 61 and pattern_names() == list(names)
    cdl = [c for c in f.columns if c.startswith("cdl_")]
    assert len(cdl) == 61
    assert cdl == ["cdl_" + n.removeprefix("CDL").lower() for n in names]
    values = f[cdl].to_numpy()
    assert set(np.unique(values)) <= {-1.0, 0.0, 1.0}
    assert (np.abs(values).sum(axis=0) > 0).sum() >= 20  # plenty of patterns actually fire on the walk


def test_names_unique_stable_and_deterministic(
    plain2000: tuple[pd.DataFrame, pd.DataFrame], market: Market
) -> None:
    df, f = plain2000
    assert f.columns.is_unique
    again = build_features(df)
    assert list(again.columns) == list(f.columns)
    pd.testing.assert_frame_equal(again, f, check_exact=True)
    other = build_features(synth_ohlcv(700, seed=99))
    assert list(other.columns) == list(f.columns)  # names do not depend on the data
    full = _build(market)
    assert full.columns.is_unique
    assert [c for c in full.columns if not c.startswith("x_")] == list(f.columns)
    for c in full.columns:
        feature_family(c)  # every name maps to a family
    assert all(full[c].dtype == np.float64 for c in full.columns)
    assert full.index.equals(market["df"].index)


def test_no_all_nan_columns(plain2000: tuple[pd.DataFrame, pd.DataFrame], market: Market) -> None:
    _, f = plain2000
    assert len(f) == 2000
    absent = [c for c in f.columns if c.startswith(("micro_", "oc_"))]
    assert absent and f[absent].isna().all().all()  # absent inputs: all NaN
    present = [c for c in f.columns if c not in absent]
    all_nan = [c for c in present if f[c].isna().all()]
    assert not all_nan, all_nan
    # the tail is complete (everything has warmed up)
    assert f[present].iloc[-300:].notna().mean().min() > 0.8
    full = _build(market)
    assert not [c for c in full.columns if full[c].isna().all()]
    counts = pd.Series([feature_family(c) for c in full.columns]).value_counts().to_dict()
    print("feature counts per family:", counts, "total", full.shape[1])


def test_speed_20k_rows() -> None:
    df = synth_ohlcv(20_000, seed=7)
    others = {"ETH/USDT": synth_ohlcv(20_000, seed=8)}
    trades = synth_trades(df, rate=5.0)
    oc = StaticOnchainSource(synth_onchain(df))
    build_features(df.iloc[:500])  # warm imports
    t0 = time.perf_counter()
    f = build_features(df)
    t1 = time.perf_counter()
    g = build_features(df, others=others, trades=trades, onchain=oc)
    t2 = time.perf_counter()
    print(
        f"\nbuild_features 20k rows: OHLCV only {t1 - t0:.2f}s ({f.shape[1]} cols); "
        f"+others/trades({len(trades)})/on-chain {t2 - t1:.2f}s ({g.shape[1]} cols)"
    )
    assert len(g) == 20_000


# -- the individual families --------------------------------------------------------------------------------------


def test_microstructure_aggregates_within_the_bar() -> None:
    df = synth_ohlcv(4, seed=3)
    t0 = df.index[0]
    trades = pd.DataFrame(
        {
            "timestamp": [
                t0 - pd.Timedelta(seconds=1),
                t0,
                t0 + pd.Timedelta(minutes=30),
                t0 + H,
                t0 + 3 * H + pd.Timedelta(minutes=59),
                t0 + 4 * H,
            ],
            "side": ["buy", "buy", "sell", "sell", "buy", "buy"],
            "price": [1.0, 100.0, 101.0, 50.0, 10.0, 1.0],
            "amount": [9.0, 1.0, 3.0, 2.0, 4.0, 9.0],
        }
    )
    cfg = FeatureConfig(micro_windows=(2,))
    f = build_features(df, config=cfg, trades=trades)
    # bar 0: buy 1 @100 and sell 3 @101 (the trade 1 s before the first bar is ignored)
    assert f["micro_trade_count"].tolist() == [2.0, 1.0, 0.0, 1.0]  # t0+1h belongs to bar 1; t0+4h to none
    assert f["micro_ofi"].iloc[0] == pytest.approx((1 - 3) / 4)
    assert f["micro_ofi"].iloc[1] == -1.0 and f["micro_ofi"].iloc[2] == 0.0 and f["micro_ofi"].iloc[3] == 1.0
    assert f["micro_avg_trade_size"].iloc[0] == 2.0 and np.isnan(f["micro_avg_trade_size"].iloc[2])
    vwap = (100.0 * 1 + 101.0 * 3) / 4
    assert f["micro_vwap_dist"].iloc[0] == pytest.approx(df["close"].iloc[0] / vwap - 1)
    assert f["micro_intensity_per_min"].iloc[0] == pytest.approx(2 / 60)
    assert f["micro_ofi_2"].iloc[1] == pytest.approx((1 - 3 - 2) / 6)
    assert f["micro_buy_count_frac"].iloc[0] == 0.5
    # numeric sides (ml.data.load_trades style) and a DatetimeIndex work too
    tr2 = trades.assign(side=trades["side"].map({"buy": 1.0, "sell": -1.0})).set_index("timestamp")
    g = build_features(df, config=cfg, trades=tr2)
    pd.testing.assert_frame_equal(f.filter(like="micro_"), g.filter(like="micro_"))


def test_cross_asset_asof_alignment(market: Market) -> None:
    df: pd.DataFrame = market["df"]
    eth: pd.DataFrame = market["others"]["ETH/USDT"]
    f = build_features(df, others={"ETH/USDT": eth})
    assert f["x_eth_usdt_logret_1"].iloc[:31].isna().all()  # no backward fill before ETH's first bar
    aligned = eth["close"].reindex(df.index, method="ffill")
    expect = np.log(aligned / aligned.shift(1))
    np.testing.assert_allclose(f["x_eth_usdt_logret_1"].to_numpy(), expect.to_numpy(), equal_nan=True)
    missing = df.index[40:].difference(eth.index)
    assert len(missing) and (f.loc[missing, "x_eth_usdt_logret_1"] == 0.0).all()  # stale bar: no move
    corr = f["x_eth_usdt_corr_168"].dropna()
    assert len(corr) and corr.between(-1, 1).all() and corr.mean() > 0.3


def test_coarser_other_uses_only_closed_bars() -> None:
    df = synth_ohlcv(48, seed=4)
    four = synth_ohlcv(12, seed=5, freq="4h")
    f = build_features(df, others={"btc4h": four}, config=FeatureConfig(cross_windows=(4,)))
    # the hourly bar at 07:00 closes at 08:00 when the 4h bar 04:00-08:00 has closed too; the row at 06:00
    # (closing 07:00) may only use the 4h bar 00:00-04:00
    lr = f["x_btc4h_logret_1"]
    c4 = four["close"].to_numpy()
    # rows 00:00-02:00 see no closed 4h bar yet (NaN, no backward fill); 03:00 sees 00:00-04:00, so its return
    # needs the previous row's close: NaN; 04:00-06:00 still the same bar: no move
    assert lr.iloc[:4].isna().all()
    assert (lr.iloc[4:7] == 0.0).all()
    assert lr.iloc[7] == pytest.approx(np.log(c4[1] / c4[0]))
    assert lr.iloc[8] == 0.0


def test_onchain_source_asof() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(
        {
            "timestamp": [idx[0] + pd.Timedelta(seconds=1), idx[1], idx[1] + pd.Timedelta(seconds=1)],
            "base_fee_gwei": [10.0, 20.0, 30.0],
            "gas_used_ratio": [0.1, 0.2, 0.3],
        }
    )
    src = StaticOnchainSource(frame)
    assert isinstance(src, OnchainSource)
    out = src.frame(idx)
    assert np.isnan(out["base_fee_gwei"].iloc[0])  # the only earlier row is 1 s AFTER bar 0: not visible
    assert out["base_fee_gwei"].tolist()[1:] == [20.0, 30.0]  # exactly at t is visible
    df = synth_ohlcv(3, seed=1, start="2024-01-01")
    f = build_features(df, onchain=src)
    assert f["oc_base_fee_gwei"].iloc[1] == 20.0 and f["oc_gas_used_ratio"].iloc[2] == 0.3


def test_levels_are_sane(plain2000: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, f = plain2000
    assert (f["sr_res_dist_atr"].dropna() > 0).all() and (f["sr_sup_dist_atr"].dropna() > 0).all()
    assert f["sr_position"].dropna().between(0, 1).all()
    va = f["vp_va_position"].dropna()
    assert va.between(-0.5, 1.5).mean() > 0.5
    assert (f["vp_vah_dist_atr"].dropna() <= f["vp_val_dist_atr"].dropna()).all()
    assert f["vp_poc_share"].dropna().between(0, 1).all()
    for col in ("tech_rsi_14", "tech_mfi", "tech_stoch_k", "tech_adx"):
        assert f[col].dropna().between(0, 1).all()


def test_input_validation() -> None:
    df = synth_ohlcv(50)
    with pytest.raises(ValueError, match="missing OHLCV"):
        build_features(df.drop(columns=["volume"]))
    with pytest.raises(ValueError, match="increasing"):
        build_features(df.iloc[::-1])
    with pytest.raises(ValueError):
        build_features(df.reset_index())
    with pytest.raises(TypeError):
        build_features(df, onchain=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FeatureConfig(macd_fast=30, macd_slow=26)


def test_config_roundtrip() -> None:
    cfg = FeatureConfig(zigzag_thresholds=(0.01, 0.03), ma_periods=(5, 50))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert FeatureConfig.from_dict(d) == cfg
    assert FeatureConfig.from_dict({"bb_period": 30}).bb_period == 30
    with pytest.raises(ValueError):
        FeatureConfig.from_dict({"nope": 1})


# -- preprocessor -------------------------------------------------------------------------------------------------


def test_preprocessor_fit_transform_roundtrip(plain2000: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, f = plain2000
    train = f.iloc[:1200]
    pre = CausalPreprocessor(clip=4.0).fit(train)
    x = pre.transform(f)
    assert list(x.columns) == list(f.columns) and x.index.equals(f.index)
    arr = x.to_numpy()
    assert np.isfinite(arr).all() and np.abs(arr).max() <= 4.0
    assert pre.transform_array(f).dtype == np.float32
    state = json.loads(json.dumps(pre.to_dict(), allow_nan=False))  # JSON-safe, no NaN
    again = CausalPreprocessor.from_dict(state)
    assert (again.transform(f).to_numpy() == arr).all()
    # robust centre: the training median of a well-populated column maps to 0
    col = "tech_ret_1"
    med = train[col].median()
    assert pre.transform(pd.DataFrame({c: [med] for c in f.columns}))[col].iloc[0] == 0.0
    # all-NaN training columns (absent inputs) impute to 0; extra columns are dropped; missing ones are an error
    assert (x[[c for c in f.columns if c.startswith("micro_")]] == 0.0).all().all()
    assert list(pre.transform(f.assign(extra=1.0)).columns) == list(f.columns)
    with pytest.raises(ValueError, match="missing"):
        pre.transform(f.drop(columns=["tech_ret_1"]))
    std = CausalPreprocessor(scaler="standard", clip=None).fit(train)
    z = std.transform(train)["tech_ret_1"]
    assert abs(z.mean()) < 1e-9 and z.std(ddof=0) == pytest.approx(1.0)
    wild = f.iloc[:5].copy()
    wild.iloc[:, :3] = [np.inf, -np.inf, 1e308]
    assert np.isfinite(pre.transform(wild).to_numpy()).all()


# -- real data (when the sample files are there) ------------------------------------------------------------------


def test_real_sample_data() -> None:
    data = pytest.importorskip("ml.data")
    try:
        btc = data.load_ohlcv(data.sample_path("Binance_BTCUSDT_1h_2020-10_2024-12.csv.gz"))
        eth = data.load_ohlcv(data.sample_path("BinanceUSDM_ETHUSDT_1h_mark_2019-12_2022-12.csv.gz"))
        trades = data.load_trades(data.sample_path("XRP_ETH-trades.csv.gz"))
    except (FileNotFoundError, KeyError, ValueError) as exc:  # pragma: no cover - depends on the sample set
        pytest.skip(f"sample data not available: {exc}")
    btc_part = btc.loc["2022-06-01":"2022-09-30"]
    f = build_features(btc_part, others={"ETH/USDT": eth})
    assert f.index.equals(btc_part.index)
    tail = f.iloc[300:]
    complete = [c for c in tail.columns if not c.startswith(("micro_", "oc_"))]
    assert tail[complete].notna().mean().min() > 0.5
    # micro features from real public trades on 5-minute bars built from those trades
    px = trades["price"].resample("5min").ohlc()
    px["close"] = px["close"].ffill()
    px = px.apply(lambda s: s.fillna(px["close"]))
    bars = px.assign(volume=trades["amount"].resample("5min").sum())[
        ["open", "high", "low", "close", "volume"]
    ]
    bars.index.name = "timestamp"
    g = build_features(bars.dropna(), trades=trades)
    assert g["micro_trade_count"].sum() == len(trades)
    assert g["micro_ofi"].notna().all()


def test_families_documented() -> None:
    assert set(FAMILIES.values()) == {
        "technical",
        "calendar",
        "patterns",
        "volume_profile",
        "support_resistance",
        "fibonacci",
        "swings",
        "microstructure",
        "cross_asset",
        "onchain",
    }
    assert Path(__file__).name == "test_features.py"
