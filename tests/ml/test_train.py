"""ml.train + ml.registry: walk-forward splits with embargo, config, tiny end-to-end training, registry round
trip and the run-record sink."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.registry import ModelRegistry, RegistryError
from ml.train import Fold, TrainConfig, tail_split, train, train_main, walk_forward_splits

# -- helpers shared with test_evaluate ---------------------------------------------------------------------------


def make_csv(
    path: Path,
    *,
    start: str = "2022-01-01",
    n: int = 1500,
    seed: int = 0,
    freq: str = "1h",
    drift: float = 0.0,
    vol: float = 0.01,
) -> Path:
    """A random-walk OHLCV file in the Binance export layout (ms epochs); symbol/venue come from the name."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    wick = np.abs(rng.normal(0, vol / 2, (2, n))) * close
    frame = pd.DataFrame(
        {
            "timestamp": idx.asi8 // 1_000_000,
            "open": open_,
            "high": np.maximum(open_, close) + wick[0],
            "low": np.minimum(open_, close) - wick[1],
            "close": close,
            "volume": rng.uniform(10, 100, n),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def tiny_config(**overrides: Any) -> TrainConfig:
    cfg: dict[str, Any] = {
        "models": ["xgboost", "lstm"],
        "folds": 2,
        "net_folds": 1,
        "features": {
            "patterns": False,
            "ma_periods": [10, 20, 50],
            "profile_window": 48,
            "sr_window": 48,
            "zigzag_count_window": 48,
            "cross_windows": [24, 48],
            "onchain_windows": [24],
        },
        "model_params": {
            "xgboost": {"n_estimators": 40, "early_stopping_rounds": 10},
            "lightgbm": {"n_estimators": 40, "early_stopping_rounds": 10},
            "stack": {
                "n_folds": 2,
                "base_configs": {"xgboost": {"n_estimators": 20}, "lightgbm": {"n_estimators": 20}},
            },
            "lstm": {"hidden": 8, "num_layers": 1, "seq_len": 8, "max_epochs": 1, "batch_size": 128},
            "transformer": {
                "d_model": 8,
                "n_heads": 2,
                "ff_dim": 8,
                "num_layers": 1,
                "seq_len": 8,
                "max_epochs": 1,
                "batch_size": 128,
            },
        },
    }
    cfg.update(overrides)
    return TrainConfig.from_dict(cfg)


class ListSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record_run(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("train")
    target = make_csv(base / "Binance_BTCUSDT_1h_2022.csv", seed=1)
    other = make_csv(base / "Binance_ETHUSDT_1h_2022.csv", seed=2)
    sink = ListSink()
    result = train([target, other], base / "models", tiny_config(), sink=sink, progress=False)
    return {"base": base, "target": target, "other": other, "sink": sink, "result": result}


# -- walk-forward splits -----------------------------------------------------------------------------------------


def _check_folds(
    folds: list[Fold], n: int, n_folds: int, test_size: int, min_train: int, embargo: int, h: int
) -> None:
    assert len(folds) == n_folds
    assert folds[-1].test_stop == n
    prev_test_stop = None
    prev_train_stop = -1
    for f in folds:
        assert f.test_stop - f.test_start == test_size
        # test folds are contiguous and never overlap
        if prev_test_stop is not None:
            assert f.test_start == prev_test_stop
        prev_test_stop = f.test_stop
        # train data never overlaps ANY test data at or after this fold, and respects horizon + embargo
        assert f.train_start == 0
        assert f.train_stop + h + embargo == f.test_start
        assert set(f.train).isdisjoint(range(f.test_start, n))
        assert max(f.train) + h < f.test_start - embargo  # the last train label never reaches the gap
        assert f.train_stop - f.train_start >= min_train
        # expanding window
        assert f.train_stop > prev_train_stop
        prev_train_stop = f.train_stop
        # the early-stopping tail lies inside the train window, before the embargo, after purged fit rows
        assert f.train_start < f.fit_stop
        assert f.fit_stop + h == f.val_start
        assert f.val_start < f.train_stop <= f.test_start - embargo - h
        assert set(f.val) <= set(f.train)
        assert set(f.val).isdisjoint(f.fit)
        assert max(f.fit) + h < f.val_start


@given(
    n_folds=st.integers(1, 8),
    test_size=st.integers(1, 200),
    min_train=st.integers(50, 500),
    horizon=st.integers(1, 12),
    extra_embargo=st.integers(0, 30),
    slack=st.integers(0, 300),
    val_frac=st.floats(0.05, 0.4),
)
def test_walk_forward_property(
    n_folds: int,
    test_size: int,
    min_train: int,
    horizon: int,
    extra_embargo: int,
    slack: int,
    val_frac: float,
) -> None:
    embargo = horizon + extra_embargo
    n = min_train + embargo + horizon + n_folds * test_size + slack
    folds = walk_forward_splits(
        n,
        n_folds=n_folds,
        test_size=test_size,
        min_train=min_train,
        embargo=embargo,
        horizon=horizon,
        val_frac=val_frac,
    )
    _check_folds(folds, n, n_folds, test_size, min_train, embargo, horizon)


def test_walk_forward_rejects_bad_layouts() -> None:
    with pytest.raises(ValueError, match="embargo"):
        walk_forward_splits(1000, n_folds=3, test_size=100, min_train=200, embargo=0, horizon=1)
    with pytest.raises(ValueError, match="embargo"):
        walk_forward_splits(1000, n_folds=3, test_size=100, min_train=200, embargo=3, horizon=5)
    with pytest.raises(ValueError, match="cannot hold"):
        walk_forward_splits(500, n_folds=5, test_size=100, min_train=200, embargo=1, horizon=1)
    with pytest.raises(ValueError):
        tail_split(0, 3, val_frac=0.5, horizon=2)


def test_walk_forward_example() -> None:
    folds = walk_forward_splits(
        1000, n_folds=3, test_size=100, min_train=500, embargo=5, horizon=2, val_frac=0.1
    )
    assert [(f.test_start, f.test_stop) for f in folds] == [(700, 800), (800, 900), (900, 1000)]
    assert [f.train_stop for f in folds] == [693, 793, 893]
    assert (folds[0].fit_stop, folds[0].val_start) == (622, 624)


# -- config ------------------------------------------------------------------------------------------------------


def test_train_config_defaults_and_validation(tmp_path: Path) -> None:
    cfg = TrainConfig()
    assert cfg.models == ["xgboost", "lightgbm", "stack", "lstm", "transformer"]
    assert cfg.horizon == 1 and cfg.effective_embargo == 1 and cfg.folds == 5 and cfg.net_folds == 3
    assert cfg.fee_bps == 10.0
    assert cfg.params_for("lstm")["seq_len"] <= 64 and cfg.params_for("lstm")["max_epochs"] <= 5
    assert cfg.params_for("stack")["embargo"] == 1
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"modles": ["xgboost"]})
    with pytest.raises(ValueError, match="budget"):
        TrainConfig(model_params={"lstm": {"seq_len": 128}})
    with pytest.raises(ValueError):
        TrainConfig(net_folds=4)
    with pytest.raises(ValueError, match="embargo"):
        TrainConfig(horizon=3, embargo=2)
    toml = tmp_path / "mevsuite.toml"
    toml.write_text(
        '[ml.train]\nmodels = ["xgboost"]\nhorizon = 2\nfolds = 4\n'
        "[ml.train.model_params.xgboost]\nn_estimators = 77\n"
    )
    cfg = TrainConfig.from_toml(toml)
    assert cfg.models == ["xgboost"] and cfg.horizon == 2 and cfg.effective_embargo == 2
    assert cfg.params_for("xgboost")["n_estimators"] == 77
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


# -- training, registry, sink ------------------------------------------------------------------------------------


def test_registry_round_trip_same_predictions(trained: dict[str, Any]) -> None:
    from ml.data import load_ohlcv

    result = trained["result"]
    reg = ModelRegistry(trained["base"] / "models")
    assert reg.latest() == result["version"] == reg.versions()[-1]
    assert (reg.root / "LATEST").read_text().strip() == result["version"]
    loaded = reg.load(reg.latest())
    assert loaded.kinds == ["xgboost", "lstm"]
    df = load_ohlcv(trained["target"])
    others = {"ETH/USDT": load_ohlcv(trained["other"])}
    p1 = loaded.predict_proba(df, others=others)
    p2 = reg.load(result["version"]).predict_proba(df, others=others)
    pd.testing.assert_frame_equal(p1, p2)
    assert p1["xgboost"].notna().all() and p1["lstm"].iloc[7:].notna().all()
    assert ((p1["xgboost"] > 0) & (p1["xgboost"] < 1)).all()
    # the saved models reproduce the in-memory final models' predictions: refit is deterministic (seeded)
    with pytest.raises(RegistryError):
        reg.load("nope")


def test_meta_contents(trained: dict[str, Any]) -> None:
    meta = json.loads((Path(trained["result"]["path"]) / "meta.json").read_text())
    ranges = {(r["venue"], r["symbol"]): r for r in meta["training_ranges"]}
    assert set(ranges) == {("binance", "BTC/USDT"), ("binance", "ETH/USDT")}
    btc = ranges[("binance", "BTC/USDT")]
    assert pd.Timestamp(btc["first"]) == pd.Timestamp("2022-01-01", tz="UTC")
    assert pd.Timestamp(btc["last"]) == pd.Timestamp("2022-01-01", tz="UTC") + pd.Timedelta(hours=1499)
    assert len(btc["sha256"]) == 64
    assert meta["horizon"] == 1 and meta["created_at"]
    for kind in ("xgboost", "lstm"):
        oof = meta["models"][kind]["oof"]
        assert {"accuracy", "auc", "brier", "majority_rate", "n"} <= set(oof)
    assert meta["models"]["lstm"]["oof"]["folds_used"] == [1]  # nets: only the last fold (budget)
    assert meta["models"]["xgboost"]["oof"]["folds_used"] == [0, 1]
    assert meta["feature_config"]["patterns"] is False
    assert (Path(trained["result"]["path"]) / "preprocessor" / "state.json").is_file()
    # every walk-forward fold respects the embargo, and the final refit's tail lies inside the range
    wf = meta["walk_forward"]
    for f in wf["folds"]:
        assert f["train_stop"] + wf["horizon"] + wf["embargo"] <= f["test_start"]
        assert f["val_start"] < f["train_stop"]
    assert wf["final"]["train_stop"] == meta["labelled_range"]["rows"]


def test_random_walk_oof_auc_is_chance(trained: dict[str, Any]) -> None:
    """Random-walk prices carry no signal: the out-of-fold AUC stays within 0.5 +- its CI."""
    oof = trained["result"]["oof"]["xgboost"]
    lo, hi = oof["auc_ci95"]
    half = (hi - lo) / 2
    assert abs(oof["auc"] - 0.5) <= half


def test_sink_receives_run_records(trained: dict[str, Any]) -> None:
    records = trained["sink"].records
    assert [r["status"] for r in records] == ["running", "succeeded"]
    final = records[-1]
    assert final["run_id"] == records[0]["run_id"] == trained["result"]["run_id"]
    assert final["version"] == trained["result"]["version"]
    assert final["finished_at"] >= final["started_at"] and final["started_at"].tzinfo is not None
    assert set(final["metrics"]) == {"xgboost", "lstm"}
    assert Path(final["artifact_uri"]).is_dir()
    assert set(final) == {
        "run_id",
        "model",
        "status",
        "started_at",
        "version",
        "finished_at",
        "params",
        "metrics",
        "artifact_uri",
    }


def test_failed_run_is_recorded(tmp_path: Path) -> None:
    sink = ListSink()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError):
        train([bad], tmp_path / "m", tiny_config(), sink=sink, progress=False)
    assert [r["status"] for r in sink.records] == ["running", "failed"]
    assert ModelRegistry(tmp_path / "m").latest() is None


def test_until_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_csv(tmp_path / "Binance_BTCUSDT_1h_x.csv", n=1400, seed=4)
    toml = tmp_path / "cfg.toml"
    toml.write_text(
        "[ml.train]\nfolds = 2\n[ml.train.features]\npatterns = false\n"
        "[ml.train.model_params.xgboost]\nn_estimators = 20\n"
    )
    rc = train_main([str(data)], str(tmp_path / "reg"), str(toml), ["xgboost"], "2022-02-20")
    assert rc == 0
    out = capsys.readouterr().out
    assert "trained version" in out and "xgboost" in out
    meta = ModelRegistry(tmp_path / "reg").meta()
    assert pd.Timestamp(meta["training_ranges"][0]["last"]) == pd.Timestamp("2022-02-20 23:00", tz="UTC")
    assert train_main([str(tmp_path / "missing.csv")], str(tmp_path / "reg"), None, ["xgboost"], None) == 2
    assert "error:" in capsys.readouterr().err
    assert train_main([str(data)], str(tmp_path / "reg"), None, ["nope"], None) == 2
