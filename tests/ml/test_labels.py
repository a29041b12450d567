"""ml.labels: direction labels and forward returns on a hand-made series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.labels import direction_labels, forward_returns

CLOSE = [1.0, 2.0, 2.0, 1.5, 3.0, 2.5]


def frame(close: list[float]) -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=len(close), freq="h", tz="UTC", name="timestamp")
    c = np.asarray(close)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": np.ones(len(c))}, index=idx)


def as_list(s: pd.Series) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in s.to_numpy()]


def test_direction_labels_hand_made() -> None:
    df = frame(CLOSE)
    y1 = direction_labels(df)
    assert y1.index.equals(df.index) and y1.dtype == np.float64
    # 2>1, 2>2 is flat (0), 1.5<2, 3>1.5, 2.5<3, last: no future
    assert as_list(y1) == [1.0, 0.0, 0.0, 1.0, 0.0, None]
    y2 = direction_labels(df, horizon=2)
    # close[t+2] > close[t]: 2>1, 1.5<2, 3>2, 2.5>1.5, NaN, NaN
    assert as_list(y2) == [1.0, 0.0, 1.0, 1.0, None, None]
    y5 = direction_labels(df, horizon=5)
    assert as_list(y5) == [1.0, None, None, None, None, None]
    assert direction_labels(df, horizon=6).isna().all()
    assert direction_labels(df, horizon=10).isna().all()


@pytest.mark.parametrize("h", [1, 2, 3])
def test_last_horizon_rows_are_nan(h: int) -> None:
    rng = np.random.default_rng(h)
    df = frame(list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 50)))))
    y = direction_labels(df, horizon=h)
    r = forward_returns(df, horizon=h)
    assert y.iloc[-h:].isna().all() and y.iloc[:-h].notna().all()
    assert r.iloc[-h:].isna().all() and r.iloc[:-h].notna().all()
    assert set(y.dropna().unique()) <= {0.0, 1.0}
    assert ((r.iloc[:-h] > 0).astype(float) == y.iloc[:-h]).all()


def test_forward_returns_hand_made() -> None:
    df = frame(CLOSE)
    r1 = forward_returns(df)
    expect = [1.0, 0.0, -0.25, 1.0, -1 / 6, None]
    got = as_list(r1)
    assert got[-1] is None
    assert got[:-1] == pytest.approx(expect[:-1])
    r2 = forward_returns(df, horizon=2, log=True)
    assert as_list(r2)[:4] == pytest.approx([np.log(2.0), np.log(0.75), np.log(1.5), np.log(2.5 / 1.5)])
    assert r2.iloc[-2:].isna().all()
    # a close Series works too and keeps its index
    s = df["close"]
    assert forward_returns(s).equals(r1)
    assert direction_labels(s).equals(direction_labels(df))


def test_bad_inputs() -> None:
    df = frame(CLOSE)
    for h in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            direction_labels(df, horizon=h)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        forward_returns(df.drop(columns=["close"]))
    zero = frame([0.0, 1.0, 2.0])
    assert as_list(forward_returns(zero)) == [None, 1.0, None]  # no inf, no warning
