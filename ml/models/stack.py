"""Stacked ensemble: base direction models + a logistic-regression meta-model fitted on OUT-OF-FOLD predictions.

`fit(X, y)`:
1. the training rows are cut into `n_folds + 1` contiguous, time-ordered blocks; block 0 only ever trains;
2. for each fold k (block k >= 1, rows [s, e)): fresh bases are fitted on rows [0, s - embargo) (their last
   `inner_val_frac` is the bases' early-stopping set, still before s - embargo) and predict rows [s, e) (sequence
   bases get the preceding rows as window context: features only, no labels);
3. the meta-model (LogisticRegression on the bases' logits) is fitted on the out-of-fold predictions ONLY;
4. the bases are refitted on all training rows (early stopping on X_val if given, else on an inner tail).
`predict_proba(X)` = meta(base predictions); NaN where any base is NaN (the first `seq_len - 1` rows when a
sequence base is in the stack).

`fold_log_` records, per fold, the rows the bases were trained/validated on and the rows they predicted;
`oof_pred_` / `oof_rows_` are what the meta-model saw.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.linear_model import LogisticRegression

from ml.models.base import (
    MODEL_JSON,
    DirectionModel,
    ModelFileError,
    StackConfig,
    check_val,
    check_X,
    check_y,
    child_path,
    read_model_json,
)
from ml.models.kinds import BASE_KINDS

EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def _registry() -> Mapping[str, type[DirectionModel]]:
    return BASE_KINDS  # a stack's bases are never stacks


class StackedEnsemble(DirectionModel):
    name: ClassVar[str] = "stack"
    config_cls: ClassVar[type[Any]] = StackConfig
    config: StackConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.bases: list[DirectionModel] = []
        self.coef_: np.ndarray | None = None
        self.intercept_: float | None = None
        self.fold_log_: list[dict[str, Any]] = []
        self.oof_pred_: np.ndarray | None = None
        self.oof_rows_: np.ndarray | None = None

    # -- bases -----------------------------------------------------------------------------------------------
    def _new_base(self, kind: str) -> DirectionModel:
        registry = _registry()
        if kind not in registry:
            raise ValueError(f"unknown base kind {kind!r}; known: {sorted(registry)}")
        cls = registry[kind]
        overrides = dict(self.config.base_configs.get(kind, {}))
        fields = getattr(cls.config_cls, "__dataclass_fields__", {})
        for name, value in (
            ("seed", self.config.seed),
            ("threads", self.config.threads),
            ("n_jobs", self.config.threads),
        ):
            if name in fields:
                overrides.setdefault(name, value)
        return cls(**overrides)

    @property
    def seq_len(self) -> int:
        if self.bases:
            return max(b.seq_len for b in self.bases)
        return max(self._new_base(k).seq_len for k in self.config.base_kinds)

    def fold_bounds(self, n: int) -> list[tuple[int, int]]:
        """[(start, end)] of the K out-of-fold blocks over n training rows (block 0 is train-only)."""
        k = self.config.n_folds
        edges = np.linspace(0, n, k + 2).round().astype(int)
        return [(int(edges[i]), int(edges[i + 1])) for i in range(1, k + 1)]

    def _fit_base(self, kind: str, x: np.ndarray, y: np.ndarray, stop: int) -> tuple[DirectionModel, dict]:
        """Fit a fresh base on rows [0, stop), early stopping on the tail `inner_val_frac` of them."""
        base = self._new_base(kind)
        n_val = int(stop * self.config.inner_val_frac)
        if n_val >= max(base.seq_len, 20):
            tr, va = slice(0, stop - n_val), slice(stop - n_val, stop)
            log = base.fit(x[tr], y[tr], X_val=x[va], y_val=y[va])
            rows = {"train_rows": (0, stop - n_val), "val_rows": (stop - n_val, stop)}
        else:
            log = base.fit(x[:stop], y[:stop])
            rows = {"train_rows": (0, stop), "val_rows": None}
        return base, {"log": log, **rows}

    @staticmethod
    def _predict_rows(base: DirectionModel, x: np.ndarray, start: int, end: int) -> np.ndarray:
        ctx = min(base.seq_len - 1, start)
        return base.predict_proba(x[start - ctx : end])[ctx:]

    # -- fit / predict ----------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> dict[str, Any]:
        cfg = self.config
        x = check_X(X)
        yy = check_y(y, x.shape[0])
        xv, yv = check_val(X_val, y_val, x.shape[1])
        n = x.shape[0]
        folds = self.fold_bounds(n)
        if folds[0][0] - cfg.embargo < cfg.min_train_rows:
            raise ValueError(
                f"{n} rows are too few for {cfg.n_folds} folds with embargo {cfg.embargo} "
                f"(the first fold would train on {folds[0][0] - cfg.embargo} < "
                f"min_train_rows={cfg.min_train_rows} rows)"
            )
        kinds = cfg.base_kinds
        oof = np.full((n, len(kinds)), np.nan)
        self.fold_log_ = []
        for s, e in folds:
            stop = s - cfg.embargo
            entry: dict[str, Any] = {"fold_rows": (s, e), "embargo": cfg.embargo, "bases": {}}
            for j, kind in enumerate(kinds):
                base, info = self._fit_base(kind, x, yy, stop)
                oof[s:e, j] = self._predict_rows(base, x, s, e)
                entry["bases"][kind] = {k: v for k, v in info.items() if k != "log"} | {
                    "best_iteration": info["log"].get("best_iteration")
                }
            self.fold_log_.append(entry)
        rows = np.arange(folds[0][0], n)
        rows = rows[np.isfinite(oof[rows]).all(axis=1)]
        if len(np.unique(yy[rows])) < 2:
            raise ValueError("out-of-fold labels hold a single class; the meta-model cannot be fitted")
        self.oof_rows_, self.oof_pred_ = rows, oof[rows]
        meta = LogisticRegression(C=cfg.meta_C, max_iter=1000, random_state=cfg.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a non-converged meta-model is a bug here, not noise
            meta.fit(_logit(self.oof_pred_), yy[rows].astype(int))
        self.coef_ = np.asarray(meta.coef_[0], dtype=np.float64)
        self.intercept_ = float(meta.intercept_[0])

        # refit the bases on every training row
        self.bases, base_logs = [], {}
        for kind in kinds:
            if xv is not None and yv is not None:
                base = self._new_base(kind)
                base_logs[kind] = base.fit(x, yy, X_val=xv, y_val=yv)
            else:
                base, info = self._fit_base(kind, x, yy, n)
                base_logs[kind] = info["log"]
            self.bases.append(base)
        self.n_features = x.shape[1]
        return {
            "epochs": 1,
            "best_iteration": None,
            "folds": self.fold_log_,
            "n_oof_rows": len(rows),
            "meta_coef": self.coef_.tolist(),
            "meta_intercept": self.intercept_,
            "bases": base_logs,
        }

    def base_predictions(self, X: Any) -> np.ndarray:
        x = check_X(X, n_features=self._require_fitted())
        return (
            np.column_stack([b.predict_proba(x) for b in self.bases])
            if x.shape[0]
            else np.zeros((0, len(self.bases)))
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        preds = self.base_predictions(X)
        assert self.coef_ is not None and self.intercept_ is not None
        out = np.full(preds.shape[0], np.nan)
        ok = np.isfinite(preds).all(axis=1)
        z = _logit(preds[ok]) @ self.coef_ + self.intercept_
        out[ok] = 1.0 / (1.0 + np.exp(-z))
        return out

    # -- persistence -----------------------------------------------------------------------------------------
    def _save_state(self, directory: Path) -> dict[str, Any]:
        assert self.coef_ is not None
        subdirs = []
        for j, base in enumerate(self.bases):
            sub = f"base_{j}_{base.name}"
            base.save(directory / sub)
            subdirs.append(sub)
        return {"bases": subdirs, "meta_coef": self.coef_.tolist(), "meta_intercept": self.intercept_}

    def _load_state(self, directory: Path, state: Mapping[str, Any]) -> None:
        registry = _registry()
        where = directory / MODEL_JSON
        subs = state.get("bases")
        if not isinstance(subs, list) or not subs:
            raise ModelFileError(f"{where}: state.bases must be a non-empty list of directory names")
        bases = []
        for sub in subs:
            path = child_path(directory, sub, what="state.bases entry")
            kind = read_model_json(path)["kind"]
            if kind not in registry or kind == self.name:
                known = sorted(set(registry) - {self.name})
                raise ModelFileError(f"{path}: {kind!r} is not a base model kind {known}")
            bases.append(registry[kind].load(path))
        coef, intercept = state.get("meta_coef"), state.get("meta_intercept")
        if not (
            isinstance(coef, list)
            and len(coef) == len(bases)
            and all(isinstance(c, int | float) and not isinstance(c, bool) for c in coef)
        ):
            raise ModelFileError(f"{where}: state.meta_coef must be {len(bases)} numbers")
        if isinstance(intercept, bool) or not isinstance(intercept, int | float):
            raise ModelFileError(f"{where}: state.meta_intercept must be a number, got {intercept!r}")
        self.bases = bases
        self.coef_ = np.asarray(coef, dtype=np.float64)
        self.intercept_ = float(intercept)
