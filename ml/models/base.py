"""The `DirectionModel` contract (docs/ml-contracts.md) and the config dataclasses of every model kind.

Every model:
- `fit(X, y, *, X_val=None, y_val=None) -> dict` (training log), X float32 `[n_rows, n_features]` in time order,
  already imputed + scaled; y int 0/1; `X_val/y_val` is the early-stopping set (the tail of the training window);
- `predict_proba(X) -> float64 [n_rows]`, P(up) per row; sequence models (`seq_len > 1`) build each row's window
  from the preceding rows of the SAME array and return NaN for the first `seq_len - 1` rows;
- `save(directory)` / `load(directory)` round-trip to identical predictions (a `model.json` with the kind, the
  config and the number of features, plus the kind's own weight files; no pickle);
- a saved directory is DATA: every file name read from its JSON must be a plain name inside the directory
  (`child_path`), malformed JSON is a `ModelFileError` (a ValueError), weights load with `weights_only=True`;
- seeds fixed by `config.seed`, `config.threads` (torch / n_jobs), `config.device` (torch, "cpu" default).
"""

from __future__ import annotations

import dataclasses
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from chains import wirejson  # bounded JSON (a stdlib-only leaf module)

MAX_JSON_BYTES = 64 << 20  # a model.json is a few kB

FORMAT_VERSION = 1
MODEL_JSON = "model.json"


# --------------------------------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class NetConfig:
    """Shared settings of the sequence nets (LSTM, Transformer)."""

    seq_len: int = 64
    batch_size: int = 64
    max_epochs: int = 5
    patience: int = 2  # epochs without a val-loss improvement before stopping (needs X_val)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    deterministic: bool = True  # torch.use_deterministic_algorithms during fit/predict
    val_context: bool = True  # X_val follows X in time: prepend X's last seq_len-1 rows as window context
    predict_batch_size: int = 1024

    def __post_init__(self) -> None:
        if not 1 <= self.seq_len <= 512:
            raise ValueError(f"seq_len must be in [1, 512], got {self.seq_len}")
        for name in ("batch_size", "max_epochs", "threads", "predict_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patience < 0:
            raise ValueError("patience must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


@dataclass(frozen=True)
class LSTMConfig(NetConfig):
    hidden: int = 64
    num_layers: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden < 1 or self.num_layers < 1:
            raise ValueError("hidden and num_layers must be >= 1")


@dataclass(frozen=True)
class TransformerConfig(NetConfig):
    d_model: int = 32
    n_heads: int = 4
    num_layers: int = 2
    ff_dim: int = 64
    causal_mask: bool = True  # causal self-attention inside the window (the output is the last token anyway)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if self.num_layers < 1 or self.ff_dim < 1:
            raise ValueError("num_layers and ff_dim must be >= 1")


@dataclass(frozen=True)
class GBDTConfig:
    """Shared gradient-boosting settings (XGBoost, LightGBM)."""

    n_estimators: int = 400
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 50  # used only when X_val is given
    n_jobs: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_estimators < 1 or self.n_jobs < 1 or self.early_stopping_rounds < 1:
            raise ValueError("n_estimators, n_jobs and early_stopping_rounds must be >= 1")
        if not (0 < self.subsample <= 1 and 0 < self.colsample <= 1):
            raise ValueError("subsample and colsample must be in (0, 1]")


@dataclass(frozen=True)
class XGBConfig(GBDTConfig):
    max_depth: int = 4
    min_child_weight: float = 5.0
    max_bin: int = 256


@dataclass(frozen=True)
class LGBMConfig(GBDTConfig):
    num_leaves: int = 15
    max_depth: int = 5
    min_child_samples: int = 50


@dataclass(frozen=True)
class StackConfig:
    """Stacked ensemble: base models + logistic-regression meta-model on out-of-fold predictions.

    Inside `fit`, the training rows are cut into `n_folds + 1` time-ordered blocks; block 0 only trains. For each
    later block (fold) [s, e) the bases are fitted on rows [0, s - embargo) (the tail `inner_val_frac` of those rows
    is their early-stopping set) and predict the fold; the meta-model is fitted on these out-of-fold predictions
    only; then the bases are refitted on all training rows (early stopping on X_val if given, else on an inner tail).
    """

    base_kinds: tuple[str, ...] = ("xgboost", "lightgbm")
    base_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # kind -> config overrides
    n_folds: int = 4
    embargo: int = (
        5  # rows dropped between a base's training rows and the fold it predicts (>= label horizon)
    )
    inner_val_frac: float = 0.2
    min_train_rows: int = 100
    meta_C: float = 1.0
    seed: int = 0
    threads: int = 2  # default `threads` / `n_jobs` of the bases (base_configs override it)

    def __post_init__(self) -> None:
        if not self.base_kinds:
            raise ValueError("base_kinds must not be empty")
        if "stack" in self.base_kinds:
            raise ValueError("a stack cannot contain a stack")
        if self.n_folds < 2:
            raise ValueError("n_folds must be >= 2")
        if self.embargo < 0:
            raise ValueError("embargo must be >= 0")
        if not 0.0 <= self.inner_val_frac < 0.9:
            raise ValueError("inner_val_frac must be in [0, 0.9)")
        object.__setattr__(self, "base_kinds", tuple(self.base_kinds))
        object.__setattr__(self, "base_configs", {k: dict(v) for k, v in self.base_configs.items()})


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(cls: type[Any], data: Mapping[str, Any]) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


# --------------------------------------------------------------------------------------------------- helpers
def check_X(X: Any, *, n_features: int | None = None, what: str = "X") -> np.ndarray:
    """float32, C-contiguous, 2-D, finite."""
    arr = np.ascontiguousarray(X, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D [n_rows, n_features], got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{what} has {arr.shape[1]} features, the model was fitted on {n_features}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or inf (impute + scale before the model)")
    return arr


def check_y(y: Any, n_rows: int, *, what: str = "y") -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n_rows,):
        raise ValueError(f"{what} must have shape ({n_rows},), got {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{what} must contain only 0/1 labels")
    return arr.astype(np.float32)


def check_val(X_val: Any, y_val: Any, n_features: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    if (X_val is None) != (y_val is None):
        raise ValueError("give both X_val and y_val, or neither")
    if X_val is None:
        return None, None
    xv = check_X(X_val, n_features=n_features, what="X_val")
    yv = check_y(y_val, xv.shape[0], what="y_val")
    return xv, yv


# --------------------------------------------------------------------------------------------------- contract
class DirectionModel(ABC):
    """Next-period direction classifier. See the module docstring for the contract."""

    name: ClassVar[str]
    config_cls: ClassVar[type[Any]]

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        if config is None:
            config = self.config_cls(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        if not isinstance(config, self.config_cls):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_cls.__name__}, got {type(config).__name__}"
            )
        self.config = config
        self.n_features: int | None = None

    @property
    def seq_len(self) -> int:
        return 1

    @property
    def fitted(self) -> bool:
        return self.n_features is not None

    def _require_fitted(self) -> int:
        if self.n_features is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        return self.n_features

    @abstractmethod
    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> dict[str, Any]: ...

    @abstractmethod
    def predict_proba(self, X: Any) -> np.ndarray: ...

    # -- persistence ---------------------------------------------------------------------------------------
    @abstractmethod
    def _save_state(self, directory: Path) -> dict[str, Any]:
        """Write weight files into `directory`; return extra JSON-able state for model.json."""

    @abstractmethod
    def _load_state(self, directory: Path, state: Mapping[str, Any]) -> None: ...

    def save(self, directory: Path | str) -> None:
        n_features = self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = self._save_state(directory)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": self.name,
            "n_features": n_features,
            "config": config_to_dict(self.config),
            "state": state,
        }
        (directory / MODEL_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, directory: Path | str) -> Self:
        directory = Path(directory)
        if cls is DirectionModel:  # DirectionModel.load(dir): whatever kind is saved there
            return _kind_class(directory, read_model_json(directory)["kind"]).load(directory)  # type: ignore[return-value]
        meta = read_model_json(directory)
        if meta["kind"] != cls.name:
            raise ValueError(f"{directory} holds a {meta['kind']!r} model, not {cls.name!r}")
        try:
            config = config_from_dict(cls.config_cls, meta["config"])
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{directory / MODEL_JSON}: bad config: {exc}") from exc
        model = cls(config)
        model.n_features = meta["n_features"]
        model._load_state(directory, meta["state"])
        return model


# --------------------------------------------------------------------------------------------------- files
class ModelFileError(ValueError):
    """A saved model directory that is malformed, or whose JSON names a file outside the directory."""


def check_inside(directory: Path | str, path: Path | str, *, what: str) -> Path:
    """``path`` if it resolves (symlinks followed) strictly inside ``directory``; else a ModelFileError."""
    root = Path(directory).resolve()
    real = Path(path).resolve()
    if real == root or not real.is_relative_to(root):
        raise ModelFileError(f"{directory}: {what} {Path(path).name!r} leads out of the directory (symlink)")
    return Path(path)


def child_path(directory: Path | str, name: Any, *, what: str) -> Path:
    """``directory / name`` for a file name read from a model's JSON: it must be a plain name (a string, not
    empty, no path separator, not ``.``/``..``, hence not absolute) and must not be a symlink leading out of
    ``directory``."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or (os.altsep is not None and os.altsep in name)
    ):
        raise ModelFileError(f"{directory}: {what} {name!r} is not a plain file name")
    return check_inside(directory, Path(directory) / name, what=what)


def _kind_class(directory: Path, kind: Any) -> type[DirectionModel]:
    """The class of ``kind`` among this package's models (``ml.models.*``; imported with the package), found
    without importing the package's table (which imports this module)."""
    todo, seen = list(DirectionModel.__subclasses__()), []
    while todo:
        sub = todo.pop()
        seen.append(sub)
        todo.extend(sub.__subclasses__())
    for sub in seen:
        if sub.__module__.startswith("ml.models.") and getattr(sub, "name", None) == kind:
            return sub
    raise ModelFileError(f"{directory}: unknown model kind {str(kind)[:40]!r}")


def read_json_object(path: Path | str) -> dict[str, Any]:
    """A JSON object from ``path`` (a file of a model directory); malformed content is a ModelFileError."""
    path = Path(path)
    try:
        data = wirejson.load_file(path, max_bytes=MAX_JSON_BYTES)
    except ValueError as exc:
        raise ModelFileError(f"{path}: not valid JSON ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_model_json(directory: Path) -> dict[str, Any]:
    """``model.json`` of a saved model, checked: format version, ``kind`` (str), ``n_features`` (int >= 1),
    ``config`` and ``state`` (objects; ``state`` may be missing)."""
    path = Path(directory) / MODEL_JSON
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (not a saved model directory)")
    check_inside(directory, path, what="file")
    meta = read_json_object(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported format_version {meta.get('format_version')!r}")
    n_features = meta.get("n_features")
    if not isinstance(meta.get("kind"), str):
        raise ModelFileError(f"{path}: 'kind' must be a string, got {meta.get('kind')!r}")
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ModelFileError(f"{path}: 'n_features' must be an integer >= 1, got {n_features!r}")
    meta.setdefault("state", {})
    if meta["state"] is None:
        meta["state"] = {}
    for key in ("config", "state"):
        if not isinstance(meta.get(key), dict):
            raise ModelFileError(f"{path}: {key!r} must be an object, got {type(meta.get(key)).__name__}")
    return meta


def state_int(state: Mapping[str, Any], key: str, directory: Path) -> int:
    """An integer field of a model's ``state`` (model.json)."""
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelFileError(f"{directory / MODEL_JSON}: state.{key} must be an integer, got {value!r}")
    return value
