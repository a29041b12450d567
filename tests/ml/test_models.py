"""ml/models: every DirectionModel kind on a tiny synthetic dataset with a planted signal.

Contract checks: probabilities in [0, 1] with the NaN prefix of sequence models, save/load round trip, seeded
determinism, causality of the nets, the stack's out-of-fold discipline, and a null (shuffled-label) AUC test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")
pytest.importorskip("sklearn")

from sklearn.metrics import roc_auc_score

import ml.models.stack as stack_mod
from ml.models import (
    MODEL_KINDS,
    DirectionModel,
    LGBMModel,
    LSTMModel,
    StackConfig,
    StackedEnsemble,
    TransformerModel,
    XGBModel,
    load_model,
    make_model,
)
from ml.models.base import check_X
from ml.models.kinds import BASE_KINDS

N_ROWS, N_FEATURES = 2400, 6
TRAIN, VAL = 1600, 300  # rows [0, 1600) train, [1600, 1900) early stopping, [1900, 2400) test

TINY: dict[str, dict[str, Any]] = {
    # threads=1: tiny nets gain nothing from a second thread, and OpenMP barriers crawl on a busy machine
    "lstm": {"hidden": 16, "num_layers": 2, "seq_len": 16, "max_epochs": 2, "threads": 1},
    "transformer": {
        "d_model": 16,
        "n_heads": 4,
        "ff_dim": 32,
        "num_layers": 2,
        "seq_len": 16,
        "max_epochs": 2,
        "threads": 1,
    },
    "xgboost": {"n_estimators": 150, "n_jobs": 1},
    "lightgbm": {"n_estimators": 150, "n_jobs": 1},
    "stack": {
        "n_folds": 3,
        "threads": 1,
        "base_configs": {"xgboost": {"n_estimators": 80}, "lightgbm": {"n_estimators": 80}},
    },
}
KINDS = list(TINY)
NETS = ["lstm", "transformer"]


def make_data(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Features N(0, 1); P(up) from a weak planted signal on the current and the previous row."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N_ROWS, N_FEATURES)).astype(np.float32)
    prev = np.concatenate([[0.0], X[:-1, 1]])
    z = 0.7 * X[:, 0] + 0.4 * prev + 0.3 * X[:, 2] * X[:, 3] + rng.standard_normal(N_ROWS)
    return X, (z > 0).astype(np.int64)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_data()


def split(X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return {"X": X[:TRAIN], "y": y[:TRAIN], "X_val": X[TRAIN : TRAIN + VAL], "y_val": y[TRAIN : TRAIN + VAL]}


def fit_kind(kind: str, X: np.ndarray, y: np.ndarray, **extra: Any) -> tuple[DirectionModel, dict[str, Any]]:
    model = make_model(kind, **{**TINY[kind], **extra})
    s = split(X, y)
    log = model.fit(s["X"], s["y"], X_val=s["X_val"], y_val=s["y_val"])
    return model, log


@pytest.fixture(scope="module")
def fitted(data: tuple[np.ndarray, np.ndarray]) -> dict[str, tuple[DirectionModel, dict[str, Any]]]:
    X, y = data
    return {kind: fit_kind(kind, X, y) for kind in KINDS}


def test_registry_and_make_model() -> None:
    assert MODEL_KINDS == {
        "lstm": LSTMModel,
        "transformer": TransformerModel,
        "xgboost": XGBModel,
        "lightgbm": LGBMModel,
        "stack": StackedEnsemble,
    }
    for kind, cls in MODEL_KINDS.items():
        assert cls.name == kind
        assert isinstance(make_model(kind), cls)
    assert make_model("lstm").seq_len == 64 and make_model("xgboost").seq_len == 1
    assert make_model("lstm", seq_len=8).config.hidden == 64
    with pytest.raises(ValueError, match="unknown model kind"):
        make_model("svm")
    with pytest.raises(ValueError, match="multiple of n_heads"):
        make_model("transformer", d_model=30, n_heads=4)


@pytest.mark.parametrize("kind", KINDS)
def test_fit_log_and_probabilities(
    kind: str, data: tuple[np.ndarray, np.ndarray], fitted: dict[str, tuple[DirectionModel, dict[str, Any]]]
) -> None:
    X, _ = data
    model, log = fitted[kind]
    assert {"epochs", "best_iteration"} <= set(log)
    p = model.predict_proba(X[TRAIN + VAL :])
    assert p.dtype == np.float64 and p.shape == (N_ROWS - TRAIN - VAL,)
    k = model.seq_len - 1
    assert np.isnan(p[:k]).all()
    assert np.isfinite(p[k:]).all() and ((p[k:] >= 0) & (p[k:] <= 1)).all()
    assert p[k:].std() > 0  # not a constant
    short = model.predict_proba(X[:k])  # fewer rows than a window: all NaN (tabular: empty)
    assert short.shape == (k,) and np.isnan(short).all()


@pytest.mark.parametrize("kind", NETS)
def test_nets_training_log_and_early_stopping(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    model, log = fit_kind(kind, X, y, max_epochs=3, patience=1, lr=0.05)  # a big lr overfits: stops early
    assert log["epochs"] == len(log["train_loss"]) == len(log["val_loss"]) <= 3
    assert 1 <= log["best_epoch"] <= log["epochs"]
    assert log["val_loss"][log["best_epoch"] - 1] == min(log["val_loss"])
    assert all(math.isfinite(v) for v in log["train_loss"])
    assert log["n_windows"] == TRAIN - model.seq_len + 1


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm", "stack"])
def test_planted_signal_out_of_sample_auc(
    kind: str, data: tuple[np.ndarray, np.ndarray], fitted: dict[str, tuple[DirectionModel, dict[str, Any]]]
) -> None:
    X, y = data
    model, log = fitted[kind]
    p = model.predict_proba(X[TRAIN + VAL :])
    assert roc_auc_score(y[TRAIN + VAL :], p) > 0.6
    if kind != "stack":
        assert 0 <= log["best_iteration"] < log["epochs"] <= TINY[kind]["n_estimators"]


@pytest.mark.parametrize("kind", NETS)
def test_nets_learn_something(
    kind: str, data: tuple[np.ndarray, np.ndarray], fitted: dict[str, tuple[DirectionModel, dict[str, Any]]]
) -> None:
    X, y = data
    model, _ = fitted[kind]
    ctx = model.seq_len - 1  # prepend context rows, drop their outputs (the contract's caller pattern)
    p = model.predict_proba(X[TRAIN + VAL - ctx :])[ctx:]
    assert np.isfinite(p).all()
    assert roc_auc_score(y[TRAIN + VAL :], p) > 0.55


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(
    kind: str,
    tmp_path: Path,
    data: tuple[np.ndarray, np.ndarray],
    fitted: dict[str, tuple[DirectionModel, dict[str, Any]]],
) -> None:
    X, _ = data
    model, _ = fitted[kind]
    model.save(tmp_path / kind)
    assert (tmp_path / kind / "model.json").exists()
    loads = (
        load_model(tmp_path / kind),
        type(model).load(tmp_path / kind),
        DirectionModel.load(tmp_path / kind),
    )
    for loaded in loads:
        assert type(loaded) is type(model) and loaded.config == model.config
        assert loaded.seq_len == model.seq_len
        np.testing.assert_array_equal(loaded.predict_proba(X[TRAIN:]), model.predict_proba(X[TRAIN:]))
    other = next(c for k, c in MODEL_KINDS.items() if k != kind)
    with pytest.raises(ValueError, match="holds a"):
        other.load(tmp_path / kind)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_identical_predictions(
    kind: str, data: tuple[np.ndarray, np.ndarray], fitted: dict[str, tuple[DirectionModel, dict[str, Any]]]
) -> None:
    X, y = data
    model, _ = fitted[kind]
    again, _ = fit_kind(kind, X, y)
    np.testing.assert_array_equal(again.predict_proba(X[TRAIN:]), model.predict_proba(X[TRAIN:]))


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_gbdt_two_threads_deterministic(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    preds = []
    for _ in range(2):
        model = make_model(kind, n_estimators=30, n_jobs=2)
        model.fit(X[:800], y[:800], X_val=X[800:1000], y_val=y[800:1000])
        preds.append(model.predict_proba(X[1000:1200]))
    np.testing.assert_array_equal(preds[0], preds[1])


@pytest.mark.parametrize("kind", NETS)
def test_other_seed_other_net(
    kind: str, data: tuple[np.ndarray, np.ndarray], fitted: dict[str, tuple[DirectionModel, dict[str, Any]]]
) -> None:
    X, y = data
    model, _ = fitted[kind]
    other, _ = fit_kind(kind, X, y, seed=1)
    a, b = model.predict_proba(X[TRAIN:]), other.predict_proba(X[TRAIN:])
    assert not np.allclose(a[15:], b[15:])


@pytest.mark.parametrize("kind", NETS)
def test_nets_are_causal(
    kind: str, data: tuple[np.ndarray, np.ndarray], fitted: dict[str, tuple[DirectionModel, dict[str, Any]]]
) -> None:
    X, _ = data
    model, _ = fitted[kind]
    rng = np.random.default_rng(3)
    Xe = X[TRAIN : TRAIN + 200].copy()
    base = model.predict_proba(Xe)
    for t in (15, 40, 120, 198):
        changed = Xe.copy()
        changed[t + 1 :] = rng.standard_normal(changed[t + 1 :].shape) * 3
        p = model.predict_proba(changed)
        np.testing.assert_array_equal(p[: t + 1], base[: t + 1])  # rows <= t never see rows > t
        assert not np.allclose(p[t + 1 :], base[t + 1 :])  # ... while the later rows do move
        # the prefix alone (a different batch) gives the same values up to float rounding
        np.testing.assert_allclose(model.predict_proba(Xe[: t + 1]), base[: t + 1], rtol=0, atol=1e-6)
    # and row t does depend on the window rows t - seq_len + 1 .. t
    bumped = Xe.copy()
    bumped[100 - model.seq_len + 1] += 5
    p = model.predict_proba(bumped)
    assert p[100] != base[100]
    np.testing.assert_array_equal(p[: 100 - model.seq_len + 1], base[: 100 - model.seq_len + 1])
    np.testing.assert_array_equal(p[100 + model.seq_len :], base[100 + model.seq_len :])


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    return math.sqrt(
        (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    )


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_shuffled_labels_auc_is_chance(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    y_null = np.random.default_rng(11).permutation(y)
    model, _ = fit_kind(kind, X, y_null)
    y_test = y_null[TRAIN + VAL :]
    auc = roc_auc_score(y_test, model.predict_proba(X[TRAIN + VAL :]))
    se = hanley_mcneil_se(0.5, int(y_test.sum()), int((1 - y_test).sum()))
    assert abs(auc - 0.5) < 3 * se, (auc, se)


def test_input_validation(fitted: dict[str, tuple[DirectionModel, dict[str, Any]]]) -> None:
    bad = np.zeros((50, N_FEATURES), dtype=np.float32)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_X(bad)
    for kind in ("xgboost", "lstm"):
        model, _ = fitted[kind]
        with pytest.raises(ValueError, match="features"):
            model.predict_proba(np.zeros((50, N_FEATURES + 1), dtype=np.float32))
    with pytest.raises(RuntimeError, match="not fitted"):
        make_model("lightgbm").predict_proba(np.zeros((5, N_FEATURES)))
    with pytest.raises(ValueError, match="0/1"):
        make_model("xgboost").fit(np.zeros((20, 2)), np.full(20, 2))
    with pytest.raises(ValueError, match="both X_val and y_val"):
        make_model("xgboost").fit(np.zeros((20, 2)), np.zeros(20), X_val=np.zeros((5, 2)))


# ------------------------------------------------------------------------------------------- stack OOF discipline
@dataclass(frozen=True)
class SpyConfig:
    seed: int = 0
    seq_len: int = 1


class SpyModel(DirectionModel):
    """Reads the row number from feature 0; answers 0.01 for rows it was trained on (an in-sample marker) and a
    value in [0.6, 0.9] for any other row; logs every fit and predict."""

    name: ClassVar[str] = "spy"
    config_cls: ClassVar[type[Any]] = SpyConfig
    events: ClassVar[list[dict[str, Any]]] = []

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> dict[str, Any]:
        rows = set(np.asarray(X)[:, 0].astype(int).tolist())
        val = set() if X_val is None else set(np.asarray(X_val)[:, 0].astype(int).tolist())
        self.seen = rows | val
        self.n_features = np.asarray(X).shape[1]
        self.serial = len(self.events)  # unique per fit (id() is reused once a fold's models are freed)
        self.events.append({"op": "fit", "model": self.serial, "rows": rows, "val": val})
        return {"epochs": 1, "best_iteration": 0}

    def predict_proba(self, X: Any) -> np.ndarray:
        x = np.asarray(X)
        rows = x[:, 0].astype(int)
        out = 0.6 + 0.3 / (1 + np.exp(-x[:, 1]))
        out[np.isin(rows, list(self.seen))] = 0.01
        out[: self.seq_len - 1] = np.nan
        self.events.append(
            {
                "op": "predict",
                "model": self.serial,
                "rows": rows[self.seq_len - 1 :].tolist(),
                "seen": set(self.seen),
            }
        )
        return out

    def _save_state(self, directory: Path) -> dict[str, Any]:
        return {"seen": sorted(self.seen)}

    def _load_state(self, directory: Path, state: Any) -> None:
        self.seen = set(state["seen"])
        self.serial = -1


class SeqSpyModel(SpyModel):
    name: ClassVar[str] = "seqspy"


def test_stack_meta_sees_only_out_of_fold_predictions(
    monkeypatch: pytest.MonkeyPatch, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = data
    X = X.copy()
    X[:, 0] = np.arange(N_ROWS)  # row ids (exact in float32)
    monkeypatch.setitem(BASE_KINDS, "spy", SpyModel)  # the kinds a stack may combine
    monkeypatch.setitem(BASE_KINDS, "seqspy", SeqSpyModel)
    meta_inputs: list[np.ndarray] = []

    class RecordingLR(stack_mod.LogisticRegression):  # type: ignore[misc]
        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
            meta_inputs.append(np.array(X))
            return super().fit(X, y, sample_weight=sample_weight)

    monkeypatch.setattr(stack_mod, "LogisticRegression", RecordingLR)
    SpyModel.events = []
    embargo = 7
    cfg = StackConfig(
        base_kinds=("spy", "seqspy"), base_configs={"seqspy": {"seq_len": 8}}, n_folds=4, embargo=embargo
    )
    model = StackedEnsemble(cfg)
    s = split(X, y)
    model.fit(s["X"], s["y"], X_val=s["X_val"], y_val=s["y_val"])
    events = SpyModel.events
    by_model: dict[int, dict[str, Any]] = {}
    oof_predicts = []
    for ev in events:
        if ev["op"] == "fit":
            by_model[ev["model"]] = ev
        else:
            oof_predicts.append(ev)
    folds = model.fold_bounds(TRAIN)
    assert len(oof_predicts) == 2 * len(folds)  # fit makes no other prediction
    for ev in oof_predicts:
        fit_ev = by_model[ev["model"]]
        trained = fit_ev["rows"] | fit_ev["val"]
        assert ev["rows"], "a fold predicted nothing"
        # every OOF row is predicted by bases whose training rows all precede the fold minus the embargo
        assert max(trained) < min(ev["rows"]) - embargo
        fold = next((s_, e_) for s_, e_ in folds if s_ == min(ev["rows"]))
        assert ev["rows"] == list(range(*fold))
        assert max(trained) == fold[0] - embargo - 1  # ... and they use all of them
    # the meta-model saw exactly the OOF predictions, none of them in-sample (in-sample answers are 0.01)
    assert len(meta_inputs) == 1
    assert model.oof_pred_ is not None and model.oof_rows_ is not None
    assert (model.oof_pred_ >= 0.6).all()
    np.testing.assert_array_equal(meta_inputs[0], stack_mod._logit(model.oof_pred_))
    assert model.oof_rows_[0] == folds[0][0] and model.oof_rows_[-1] == TRAIN - 1
    # the final bases are refitted on all training rows (X_val for early stopping)
    finals = [by_model[b.serial] for b in model.bases]  # type: ignore[attr-defined]
    assert all(f["rows"] == set(range(TRAIN)) and f["val"] == set(range(TRAIN, TRAIN + VAL)) for f in finals)
    assert model.seq_len == 8
    p = model.predict_proba(X[TRAIN + VAL :])
    assert np.isnan(p[:7]).all() and np.isfinite(p[7:]).all()


def test_stack_fold_log_respects_embargo(fitted: dict[str, tuple[DirectionModel, dict[str, Any]]]) -> None:
    model, log = fitted["stack"]
    assert isinstance(model, StackedEnsemble)
    assert len(log["folds"]) == 3 and log["n_oof_rows"] == TRAIN - model.fold_bounds(TRAIN)[0][0]
    for fold in model.fold_log_:
        start = fold["fold_rows"][0]
        for info in fold["bases"].values():
            last = (info["val_rows"] or info["train_rows"])[1]
            assert last == start - fold["embargo"]
    with pytest.raises(ValueError, match="too few"):
        StackedEnsemble(n_folds=4).fit(np.zeros((200, 3)), np.arange(200) % 2)


def test_stack_with_a_sequence_base(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    model = StackedEnsemble(
        base_kinds=("xgboost", "lstm"),
        n_folds=2,
        threads=1,
        base_configs={
            "xgboost": {"n_estimators": 40},
            "lstm": {"hidden": 8, "num_layers": 1, "seq_len": 8, "max_epochs": 1},
        },
    )
    log = model.fit(X[:900], y[:900], X_val=X[900:1100], y_val=y[900:1100])
    assert model.seq_len == 8 and [
        b.config.threads if b.name == "lstm" else b.config.n_jobs for b in model.bases
    ] == [1, 1]
    assert log["n_oof_rows"] == 900 - model.fold_bounds(900)[0][0]  # fold starts have window context
    p = model.predict_proba(X[1100:1300])
    assert np.isnan(p[:7]).all() and np.isfinite(p[7:]).all() and ((p[7:] > 0) & (p[7:] < 1)).all()
    model.save(tmp_path / "s")
    np.testing.assert_array_equal(load_model(tmp_path / "s").predict_proba(X[1100:1300]), p)
