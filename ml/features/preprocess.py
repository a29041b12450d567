"""`CausalPreprocessor`: imputer + scaler + outlier clip, fitted on a training window only.

fit(X_train) learns, per column: the median (imputation value), a centre and a scale (robust: median and
IQR / 1.349; standard: mean and std). transform(X) is row-wise: +-inf -> NaN -> median, (x - centre) / scale,
clipped to +-clip, so the output is finite. No statistic ever comes from rows outside the fit window, and a
row's output depends only on that row. State round-trips through `to_dict()` / `from_dict()` (plain lists,
JSON-safe) for the model registry.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

_IQR_TO_STD = 1.3489795003921634  # IQR of a standard normal

Scaler = Literal["robust", "standard"]


class CausalPreprocessor:
    def __init__(self, *, scaler: Scaler = "robust", clip: float | None = 5.0) -> None:
        if scaler not in ("robust", "standard"):
            raise ValueError(f"CausalPreprocessor: unknown scaler {scaler!r}")
        if clip is not None and not clip > 0:
            raise ValueError("CausalPreprocessor: clip must be > 0 or None")
        self.scaler: Scaler = scaler
        self.clip = None if clip is None else float(clip)
        self.columns: list[str] = []
        self.medians = np.zeros(0)
        self.centers = np.zeros(0)
        self.scales = np.ones(0)
        self.fitted = False

    # -- fit / transform -------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame) -> CausalPreprocessor:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("CausalPreprocessor.fit: expected a DataFrame (named feature columns)")
        if len(X) == 0:
            raise ValueError("CausalPreprocessor.fit: empty training window")
        if not X.columns.is_unique:
            raise ValueError("CausalPreprocessor.fit: duplicate column names")
        data = self._clean(X)
        med = data.median(skipna=True).to_numpy(dtype=np.float64)
        med = np.where(np.isfinite(med), med, 0.0)  # an all-NaN training column imputes to 0
        filled = data.fillna(pd.Series(med, index=data.columns))
        if self.scaler == "robust":
            q = filled.quantile([0.25, 0.75]).to_numpy(dtype=np.float64)
            centre = med.copy()
            scale = (q[1] - q[0]) / _IQR_TO_STD
            std = filled.std(ddof=0).to_numpy(dtype=np.float64)
            scale = np.where(scale > 0, scale, std)  # (near-)constant IQR: fall back to the std
        else:
            centre = filled.mean().to_numpy(dtype=np.float64)
            scale = filled.std(ddof=0).to_numpy(dtype=np.float64)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        centre = np.where(np.isfinite(centre), centre, 0.0)
        self.columns = [str(c) for c in X.columns]
        self.medians, self.centers, self.scales = med, centre, scale
        self.fitted = True
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Same index, the fitted columns in fitted order (extra columns dropped), finite float64."""
        return pd.DataFrame(self._transform(X), index=X.index, columns=self.columns)

    def transform_array(self, X: pd.DataFrame) -> np.ndarray:
        """float32 `[n_rows, n_features]` as the models expect."""
        out: np.ndarray = self._transform(X).astype(np.float32)
        return out

    def fit_transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.fit(X).transform(X)

    def _transform(self, X: pd.DataFrame) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError("CausalPreprocessor: call fit() first")
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"CausalPreprocessor.transform: missing columns {missing[:10]}")
        values: np.ndarray = self._clean(X[self.columns]).to_numpy(dtype=np.float64, copy=True)
        nan = np.isnan(values)
        values[nan] = np.broadcast_to(self.medians, values.shape)[nan]
        with np.errstate(over="ignore", invalid="ignore"):
            values = (values - self.centers) / self.scales
        big = self.clip if self.clip is not None else float(np.finfo(np.float32).max)
        np.nan_to_num(values, copy=False, nan=0.0, posinf=big, neginf=-big)  # overflow of absurd inputs
        if self.clip is not None:
            np.clip(values, -self.clip, self.clip, out=values)
        return values

    @staticmethod
    def _clean(X: pd.DataFrame) -> pd.DataFrame:
        data = X.astype(np.float64)
        return data.mask(~np.isfinite(data.to_numpy()))

    # -- state -----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if not self.fitted:
            raise RuntimeError("CausalPreprocessor: not fitted")
        return {
            "version": 1,
            "scaler": self.scaler,
            "clip": self.clip,
            "columns": list(self.columns),
            "medians": [float(x) for x in self.medians],
            "centers": [float(x) for x in self.centers],
            "scales": [float(x) for x in self.scales],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CausalPreprocessor:
        if state.get("version") != 1:
            raise ValueError(f"CausalPreprocessor.from_dict: unsupported version {state.get('version')!r}")
        obj = cls(scaler=state["scaler"], clip=state["clip"])
        cols = [str(c) for c in state["columns"]]
        arrays = [np.asarray(state[k], dtype=np.float64) for k in ("medians", "centers", "scales")]
        if any(len(a) != len(cols) for a in arrays):
            raise ValueError("CausalPreprocessor.from_dict: length mismatch between columns and statistics")
        obj.columns = cols
        obj.medians, obj.centers, obj.scales = arrays
        obj.fitted = True
        return obj
