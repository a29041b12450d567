"""ml.evaluate + ml.report: overlap refusal, the look-ahead (peeking) signal, baselines, bootstrap + Holm verdict,
and a tiny end-to-end train -> evaluate producing the JSON and the report files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml.backtest import CostModel
from ml.data import load_ohlcv
from ml.evaluate import OverlapError, check_no_overlap, evaluate, evaluate_main, evaluate_signals
from ml.labels import direction_labels
from ml.stats import sharpe
from ml.train import train
from tests.ml.test_train import make_csv, tiny_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("eval")
    # training: 2022-01-01 .. 2022-03-04 (1500 hourly bars), BTC target + ETH cross-asset input
    target = make_csv(base / "train" / "Binance_BTCUSDT_1h_a.csv", seed=11)
    other = make_csv(base / "train" / "Binance_ETHUSDT_1h_a.csv", seed=12)
    result = train([target, other], base / "models", tiny_config(), progress=False)
    return {"base": base, "dir": base / "models", "result": result}


# -- overlap -----------------------------------------------------------------------------------------------------


def test_refuses_overlapping_csv_on_any_venue(
    model: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    base = model["base"]
    cases = {
        "same venue": make_csv(base / "o1" / "Binance_BTCUSDT_1h_b.csv", start="2022-02-20", n=800),
        "other venue": make_csv(base / "o2" / "Bitstamp_BTCUSD_1h_b.csv", start="2022-03-04 10:00", n=800),
        "other asset": make_csv(base / "o3" / "Kraken_SOLUSD_1h_b.csv", start="2021-12-01", n=800),
    }
    for name, path in cases.items():
        with pytest.raises(OverlapError) as err:
            evaluate(path, model["dir"], seeds=1000, n_boot=100)
        msg = str(err.value)
        assert "2022-01-01T00:00:00+00:00" in msg, name  # the training range ...
        assert pd.Timestamp(load_ohlcv(path).index[0]).isoformat() in msg, name  # ... and the file's range
        assert "overlaps" in msg
    rc = evaluate_main(str(cases["other venue"]), str(model["dir"]), None, None, seeds=1000)
    assert rc != 0
    assert "overlaps the model's training range" in capsys.readouterr().err


def test_overlap_boundaries(model: dict[str, Any]) -> None:
    meta = json.loads((Path(model["result"]["path"]) / "meta.json").read_text())
    last = max(pd.Timestamp(r["last"]) for r in meta["training_ranges"])
    idx = pd.date_range(last + pd.Timedelta(hours=1), periods=10, freq="1h", tz="UTC")
    df = pd.DataFrame({"close": 1.0}, index=idx)
    df.attrs["timeframe"] = pd.Timedelta("1h")
    check_no_overlap(df, meta)  # the first bar after the training range is fine
    df2 = pd.DataFrame({"close": 1.0}, index=idx - pd.Timedelta(hours=1))
    df2.attrs["timeframe"] = pd.Timedelta("1h")
    with pytest.raises(OverlapError):
        check_no_overlap(df2, meta)


# -- the peeking signal ------------------------------------------------------------------------------------------


def _random_bars(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    idx = pd.date_range("2023-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    df = pd.DataFrame(
        {"open": close, "high": close * 1.002, "low": close * 0.998, "close": close, "volume": 1.0}, index=idx
    )
    df.attrs["timeframe"] = pd.Timedelta("1h")
    return df


def test_peeking_signal_is_caught() -> None:
    """A 'model' whose P(up) at t is the sign of the t -> t+1 return: perfect accuracy, but positions are shifted
    so the backtest realises no look-ahead profit, nothing is beaten, and the report flags it."""
    bars = _random_bars(3000, seed=21)
    y = direction_labels(bars, horizon=1)
    p_peek = y.fillna(0.5).to_numpy()  # 1.0 exactly when the NEXT close is higher
    result, series = evaluate_signals(
        bars, {"peek": p_peek}, y, costs=CostModel(fee_bps=10, slippage_bps=5), seeds=1000, n_boot=400, seed=3
    )
    assert result["classification"]["peek"]["accuracy"] == pytest.approx(1.0)
    strat = result["strategies"]["peek"]
    # what same-bar execution would show: trading the t -> t+1 return with the signal of t
    r = bars["close"].pct_change().fillna(0.0).to_numpy()
    sig = np.sign(p_peek - 0.5)
    same_bar = np.concatenate(([0.0], sig[:-1])) * r
    assert sharpe(same_bar, 24 * 365) > 100
    assert abs(strat["sharpe_gross"]) < 3.0  # shifted: no systematic edge
    assert strat["sharpe"] < 0  # and the costs of trading every other bar
    assert not any(c["beats"] for c in result["comparisons"])
    assert any("NOT realised" in w for w in result["warnings"])
    assert any("peek does NOT beat buy_and_hold" in v for v in result["verdict"])
    assert series["equity"]["peek"].iloc[-1] < 1.0


def test_a_real_edge_is_recognised() -> None:
    """Sanity check of the machinery's power: a signal that knows the t+1 -> t+2 move (the one it trades)."""
    bars = _random_bars(3000, seed=22)
    fut = bars["close"].shift(-2) / bars["close"].shift(-1) - 1
    p = np.where(fut.fillna(0) > 0, 0.9, 0.1)
    y = direction_labels(bars, 1)
    result, _ = evaluate_signals(
        bars, {"oracle": p}, y, costs=CostModel(fee_bps=1, slippage_bps=0), seeds=1000, n_boot=300
    )
    assert all(c["beats"] for c in result["comparisons"])
    assert result["beats_all_baselines"]["oracle"] is True
    assert result["coin_flip"]["oracle"]["share_model_beats"] == 1.0


def test_evaluate_signals_validation() -> None:
    bars = _random_bars(500, seed=1)
    y = direction_labels(bars)
    p = np.full(500, 0.6)
    with pytest.raises(ValueError, match="at least a day"):
        evaluate_signals(bars, {"m": p}, y, seeds=1000, block_bars=12)
    with pytest.raises(ValueError, match="1000"):
        evaluate_signals(bars, {"m": p}, y, seeds=100)
    res, _ = evaluate_signals(bars, {"m": p}, y, seeds=1000, n_boot=100, block_bars=48)
    assert res["bootstrap"]["block_bars"] == 48 and res["bootstrap"]["bars_per_day"] == 24
    assert res["costs"]["fee_bps_per_side"] == 10.0
    # a constant long model IS buy and hold: no difference
    assert res["strategies"]["m"]["total_return"] == pytest.approx(
        res["strategies"]["buy_and_hold"]["total_return"]
    )
    assert len(res["comparisons"]) == 3
    assert res["comparisons"][0]["p_holm"] >= res["comparisons"][0]["p_value"]


# -- end to end --------------------------------------------------------------------------------------------------


def test_end_to_end_train_evaluate_report(
    model: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = model["base"]
    test_btc = make_csv(base / "test" / "Binance_BTCUSDT_1h_c.csv", start="2022-04-01", n=900, seed=31)
    test_eth = make_csv(base / "test" / "Binance_ETHUSDT_1h_c.csv", start="2022-04-01", n=900, seed=32)
    with pytest.raises(ValueError, match="ETH/USDT"):
        evaluate(test_btc, model["dir"], seeds=1000, n_boot=100)  # the cross-asset input is required
    json_out = tmp_path / "eval.json"
    report = tmp_path / "report"
    rc = evaluate_main(
        str(test_btc), str(model["dir"]), str(json_out), str(report), others=[str(test_eth)], n_boot=300
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "buy_and_hold" in printed and "Holm" in printed
    res = json.loads(json_out.read_text())
    assert res["model_version"] == model["result"]["version"]
    assert set(res["classification"]) == {"xgboost", "lstm"}
    assert {"buy_and_hold", "momentum", "xgboost", "lstm"} <= set(res["strategies"])
    assert len(res["comparisons"]) == 6
    assert all("p_holm" in c and isinstance(c["beats"], bool) for c in res["comparisons"])
    assert res["costs"]["fee_bps_per_side"] == 10.0 and res["costs"]["slippage_bps_per_side"] == 5.0
    assert res["coin_flip"]["xgboost"]["seeds"] == 1000
    assert res["bootstrap"]["block_bars"] >= 24
    assert res["window"]["bars"] == 900 - res["warmup_bars_skipped"]
    assert pd.Timestamp(res["window"]["first"]) >= pd.Timestamp("2022-04-01", tz="UTC")
    for c in res["comparisons"]:
        assert ("BEATS" if c["beats"] else "does NOT beat") in " ".join(res["verdict"])
    # the report
    for png in res["report"]["png"]:
        data = Path(png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
        import matplotlib.image

        assert matplotlib.image.imread(png).ndim == 3
    text = Path(res["report"]["html"]).read_text()
    acc = res["classification"]["xgboost"]["accuracy"]
    assert f"{acc:.4f}" in text
    for needle in (
        "Sharpe",
        "Holm",
        "buy_and_hold",
        "momentum",
        "Coin-flip",
        "equity.png",
        "calibration.png",
        "fee_bps_per_side",
        "slippage_model",
        "Verdict",
        "does NOT beat",
    ):
        assert needle in text, needle
    assert json.loads(Path(res["report"]["json"]).read_text())["model_version"] == res["model_version"]
