"""Gradient-boosted trees for next-period direction: XGBoost (`xgboost-cpu`) and LightGBM, native APIs.

Early stopping on X_val (logloss, `early_stopping_rounds`); prediction uses the best iteration. Without X_val all
`n_estimators` rounds are kept. Saved as the library's own text/JSON model file (no pickle).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from ml.models.base import (
    DirectionModel,
    LGBMConfig,
    XGBConfig,
    check_val,
    check_X,
    check_y,
    child_path,
    state_int,
)


class XGBModel(DirectionModel):
    """XGBoost `binary:logistic`, hist trees (depth 4), subsample/colsample 0.8, lr 0.05, 400 rounds."""

    name: ClassVar[str] = "xgboost"
    config_cls: ClassVar[type[Any]] = XGBConfig
    config: XGBConfig
    MODEL_FILE: ClassVar[str] = "xgboost.json"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.booster: xgb.Booster | None = None
        self.best_iteration: int | None = None

    def params(self) -> dict[str, Any]:
        c = self.config
        return {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "tree_method": "hist",
            "eta": c.learning_rate,
            "max_depth": c.max_depth,
            "min_child_weight": c.min_child_weight,
            "subsample": c.subsample,
            "colsample_bytree": c.colsample,
            "lambda": c.reg_lambda,
            "max_bin": c.max_bin,
            "nthread": c.n_jobs,
            "seed": c.seed,
            "verbosity": 0,
        }

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> dict[str, Any]:
        x = check_X(X)
        yy = check_y(y, x.shape[0])
        xv, yv = check_val(X_val, y_val, x.shape[1])
        t0 = time.perf_counter()
        dtrain = xgb.DMatrix(x, label=yy, nthread=self.config.n_jobs)
        evals = [(dtrain, "train")]
        kwargs: dict[str, Any] = {}
        if xv is not None:
            evals.append((xgb.DMatrix(xv, label=yv, nthread=self.config.n_jobs), "val"))
            kwargs["early_stopping_rounds"] = self.config.early_stopping_rounds
        history: dict[str, Any] = {}
        booster = xgb.train(
            self.params(),
            dtrain,
            num_boost_round=self.config.n_estimators,
            evals=evals,
            evals_result=history,
            verbose_eval=False,
            **kwargs,
        )
        best = int(booster.best_iteration) if xv is not None else booster.num_boosted_rounds() - 1
        self.booster, self.best_iteration, self.n_features = booster, best, x.shape[1]
        return {
            "epochs": booster.num_boosted_rounds(),
            "best_iteration": best,
            "train_loss": [float(v) for v in history["train"]["logloss"]],
            "val_loss": [float(v) for v in history.get("val", {}).get("logloss", [])],
            "fit_seconds": time.perf_counter() - t0,
        }

    def predict_proba(self, X: Any) -> np.ndarray:
        x = check_X(X, n_features=self._require_fitted())
        assert self.booster is not None and self.best_iteration is not None
        if x.shape[0] == 0:
            return np.zeros(0)
        p = self.booster.inplace_predict(x, iteration_range=(0, self.best_iteration + 1))
        return np.asarray(p, dtype=np.float64)

    def _save_state(self, directory: Path) -> dict[str, Any]:
        assert self.booster is not None
        self.booster.save_model(str(directory / self.MODEL_FILE))
        return {"model_file": self.MODEL_FILE, "best_iteration": self.best_iteration}

    def _load_state(self, directory: Path, state: Mapping[str, Any]) -> None:
        path = child_path(directory, state.get("model_file", self.MODEL_FILE), what="state.model_file")
        best = state_int(state, "best_iteration", directory)
        booster = xgb.Booster()
        booster.load_model(str(path))  # XGBoost's own JSON/UBJSON model format: data, not code
        booster.set_param({"nthread": self.config.n_jobs})
        self.booster, self.best_iteration = booster, best


class LGBMModel(DirectionModel):
    """LightGBM binary, 15 leaves (depth <= 5, >= 50 rows per leaf), bagging/feature fraction 0.8, lr 0.05."""

    name: ClassVar[str] = "lightgbm"
    config_cls: ClassVar[type[Any]] = LGBMConfig
    config: LGBMConfig
    MODEL_FILE: ClassVar[str] = "lightgbm.txt"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.booster: lgb.Booster | None = None
        self.best_iteration: int | None = None

    def params(self) -> dict[str, Any]:
        c = self.config
        return {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": c.learning_rate,
            "num_leaves": c.num_leaves,
            "max_depth": c.max_depth,
            "min_data_in_leaf": c.min_child_samples,
            "bagging_fraction": c.subsample,
            "bagging_freq": 1 if c.subsample < 1 else 0,
            "feature_fraction": c.colsample,
            "lambda_l2": c.reg_lambda,
            "num_threads": c.n_jobs,
            "seed": c.seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> dict[str, Any]:
        x = check_X(X)
        yy = check_y(y, x.shape[0])
        xv, yv = check_val(X_val, y_val, x.shape[1])
        t0 = time.perf_counter()
        params = self.params()
        dtrain = lgb.Dataset(x, label=yy, params={"verbose": -1}, free_raw_data=True)
        history: dict[str, Any] = {}
        valid_sets, valid_names = [dtrain], ["train"]
        callbacks: list[Any] = [lgb.record_evaluation(history)]
        if xv is not None:
            valid_sets.append(lgb.Dataset(xv, label=yv, reference=dtrain, params={"verbose": -1}))
            valid_names.append("val")
            callbacks.append(
                lgb.early_stopping(self.config.early_stopping_rounds, first_metric_only=True, verbose=False)
            )
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=self.config.n_estimators,
            valid_sets=valid_sets,
            valid_names=valid_names,
            callbacks=callbacks,
        )
        best = (
            booster.best_iteration
            if (xv is not None and booster.best_iteration > 0)
            else booster.current_iteration()
        )
        self.booster, self.best_iteration, self.n_features = booster, int(best), x.shape[1]
        train_loss = [float(v) for v in history["train"]["binary_logloss"]]
        return {
            "epochs": len(train_loss),
            "best_iteration": int(best),
            "train_loss": train_loss,
            "val_loss": [float(v) for v in history.get("val", {}).get("binary_logloss", [])],
            "fit_seconds": time.perf_counter() - t0,
        }

    def predict_proba(self, X: Any) -> np.ndarray:
        x = check_X(X, n_features=self._require_fitted())
        assert self.booster is not None
        if x.shape[0] == 0:
            return np.zeros(0)
        p = self.booster.predict(x, num_iteration=self.best_iteration, num_threads=self.config.n_jobs)
        return np.asarray(p, dtype=np.float64)

    def _save_state(self, directory: Path) -> dict[str, Any]:
        assert self.booster is not None
        self.booster.save_model(str(directory / self.MODEL_FILE))
        return {"model_file": self.MODEL_FILE, "best_iteration": self.best_iteration}

    def _load_state(self, directory: Path, state: Mapping[str, Any]) -> None:
        path = child_path(directory, state.get("model_file", self.MODEL_FILE), what="state.model_file")
        best = state_int(state, "best_iteration", directory)
        self.booster = lgb.Booster(model_file=str(path))  # LightGBM's text model format: data, not code
        self.best_iteration = best
