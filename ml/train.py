"""Training pipeline: walk-forward validation with an embargo, early stopping on the tail of each training window,
final refit on the whole training range, and publication to the :class:`~ml.registry.ModelRegistry`.

Walk-forward layout (rows are the labelled, post-warm-up rows in time order)::

    |<------------- train window ------------->|<-h->|<-embargo->|<-- test fold k -->|
    |<------- fit ------->|<-h->|<--- tail --->|     |           |                   |

- test folds are contiguous, never overlap and end at the last labelled row; the train window expands;
- between the last train row and the test fold there are ``horizon + embargo`` rows: the last ``horizon`` rows of
  the window are dropped because their labels look ``horizon`` bars ahead (into the gap / test period), then
  ``embargo`` (>= horizon) more rows absorb feature autocorrelation;
- early stopping uses the TAIL of the train window (never a test fold); the fit rows end ``horizon`` rows
  before the tail so no fit label looks into it;
- hyper-parameters come from :class:`TrainConfig` only; nothing is tuned on test folds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import sys
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.registry import ModelRegistry, RegistryError, RunSink, file_sha256, transform_features
from ml.stats import classification_metrics

__all__ = [
    "DEFAULT_MODELS",
    "NET_KINDS",
    "Fold",
    "TrainConfig",
    "train",
    "train_main",
    "walk_forward_splits",
]

DEFAULT_MODELS: tuple[str, ...] = ("xgboost", "lightgbm", "stack", "lstm", "transformer")
NET_KINDS = frozenset({"lstm", "transformer"})
GBDT_KINDS = frozenset({"xgboost", "lightgbm", "stack"})
# the compute budget for the sequence nets
MAX_NET_FOLDS = 3
MAX_NET_SEQ_LEN = 64
MAX_NET_EPOCHS = 5


# -- walk-forward splits ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    """Row ranges (half-open ``[start, stop)``) of one walk-forward fold."""

    index: int
    train_start: int
    train_stop: int  # the window after dropping its last `horizon` rows
    fit_stop: int  # fit rows: [train_start, fit_stop)
    val_start: int  # early-stopping tail: [val_start, train_stop)
    test_start: int
    test_stop: int

    @property
    def train(self) -> range:
        return range(self.train_start, self.train_stop)

    @property
    def fit(self) -> range:
        return range(self.train_start, self.fit_stop)

    @property
    def val(self) -> range:
        return range(self.val_start, self.train_stop)

    @property
    def test(self) -> range:
        return range(self.test_start, self.test_stop)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def tail_split(
    train_start: int, train_stop: int, *, val_frac: float, horizon: int, min_val: int = 1
) -> tuple[int, int]:
    """``(fit_stop, val_start)`` of a train window: the tail ``val_frac`` of the window is the early-stopping
    set, and ``horizon`` rows before it are dropped from the fit rows (their labels look into the tail)."""
    n = train_stop - train_start
    n_val = max(min_val, round(n * val_frac))
    val_start = train_stop - n_val
    fit_stop = val_start - horizon
    if fit_stop - train_start < 1 or n_val < 1:
        raise ValueError(
            f"train window of {n} rows is too small for a tail of {n_val} rows + {horizon} purged"
        )
    return fit_stop, val_start


def walk_forward_splits(
    n_rows: int,
    *,
    n_folds: int,
    test_size: int,
    min_train: int,
    embargo: int,
    horizon: int = 1,
    val_frac: float = 0.15,
) -> list[Fold]:
    """Expanding-window walk-forward folds over ``n_rows`` labelled rows (see module doc).

    The ``n_folds`` test folds of ``test_size`` rows are the last ``n_folds * test_size`` rows. Fold ``k`` trains
    on ``[0, test_start - embargo - horizon)`` which must hold at least ``min_train`` rows. ``embargo`` must be at
    least ``horizon``. Raises ``ValueError`` when the rows do not fit.
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    if embargo < horizon:
        raise ValueError(f"embargo ({embargo}) must be at least the label horizon ({horizon})")
    if n_folds < 1 or test_size < 1 or min_train < 2:
        raise ValueError("need n_folds >= 1, test_size >= 1 and min_train >= 2")
    if not 0.0 < val_frac < 1.0:
        raise ValueError("val_frac must be in (0, 1)")
    first_test = n_rows - n_folds * test_size
    if first_test - embargo - horizon < min_train:
        raise ValueError(
            f"{n_rows} rows cannot hold {n_folds} test folds of {test_size} rows after at least {min_train} train "
            f"rows + {horizon} dropped + {embargo} embargo rows"
        )
    folds = []
    for k in range(n_folds):
        test_start = first_test + k * test_size
        train_stop = test_start - embargo - horizon
        fit_stop, val_start = tail_split(0, train_stop, val_frac=val_frac, horizon=horizon)
        folds.append(Fold(k, 0, train_stop, fit_stop, val_start, test_start, test_start + test_size))
    return folds


# -- configuration ----------------------------------------------------------------------------------------------


_INT_KEYS = {"horizon", "folds", "net_folds", "seed", "threads"}
_OPTIONAL_INT_KEYS = {"test_size", "min_train", "embargo"}
_NUMBER_KEYS = {"val_frac", "fee_bps", "slippage_bps", "band"}


def _check_train_value(key: str, value: Any) -> None:
    """A training-config value of the wrong type is a one-line ``ValueError`` naming the key."""
    is_int = type(value) is int
    ok = {
        "models": isinstance(value, list) and all(isinstance(m, str) for m in value),
        "until": value is None or isinstance(value, str),
        "features": isinstance(value, Mapping),
        "model_params": isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values()),
        "short": isinstance(value, bool),
    }.get(key)
    if ok is None:
        if key in _INT_KEYS:
            ok = is_int
        elif key in _OPTIONAL_INT_KEYS:
            ok = value is None or is_int
        elif key in _NUMBER_KEYS:
            ok = (is_int or type(value) is float) and math.isfinite(value)
        else:
            ok = True
    if not ok:
        raise ValueError(
            f"training config: {key} has the wrong type ({type(value).__name__}: {str(value)[:40]!r})"
        )


@dataclass
class TrainConfig:
    """Everything training needs; loadable from a dict / a TOML section (``[ml.train]``)."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    horizon: int = 1
    folds: int = 5  # walk-forward folds for the GBDT kinds (xgboost, lightgbm, stack)
    net_folds: int = 3  # the LAST folds used for lstm/transformer (budget: <= 3)
    test_size: int | None = None  # rows per test fold (None: split the rows after min_train evenly)
    min_train: int | None = None  # rows of the first train window (None: 40% of the rows)
    embargo: int | None = None  # gap rows (None: = horizon); must be >= horizon
    val_frac: float = 0.15  # early-stopping tail of each train window
    seed: int = 0
    threads: int = 2
    until: str | None = None  # drop bars that open after this time (inclusive upper bound, UTC)
    features: dict[str, Any] = field(default_factory=dict)  # FeatureConfig overrides
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> make_model kwargs
    # evaluation settings recorded with the model (the evaluate CLI can override them)
    fee_bps: float = 10.0
    slippage_bps: float = 5.0
    band: float = 0.0
    short: bool = True

    def __post_init__(self) -> None:
        self.models = list(self.models)
        unknown = [m for m in self.models if m not in DEFAULT_MODELS]
        if unknown or not self.models:
            raise ValueError(f"unknown model kinds {unknown}; choose from {list(DEFAULT_MODELS)}")
        if self.horizon < 1:
            raise ValueError("horizon must be >= 1")
        if self.embargo is not None and self.embargo < self.horizon:
            raise ValueError(f"embargo ({self.embargo}) must be >= horizon ({self.horizon})")
        if self.folds < 1 or not 1 <= self.net_folds <= MAX_NET_FOLDS:
            raise ValueError(f"folds must be >= 1 and net_folds in [1, {MAX_NET_FOLDS}]")
        if not 0.0 < self.val_frac < 0.5:
            raise ValueError("val_frac must be in (0, 0.5)")
        for kind in NET_KINDS:
            p = self.model_params.get(kind, {})
            if int(p.get("seq_len", 1)) > MAX_NET_SEQ_LEN or int(p.get("max_epochs", 1)) > MAX_NET_EPOCHS:
                raise ValueError(
                    f"{kind}: the budget is seq_len <= {MAX_NET_SEQ_LEN} and max_epochs <= {MAX_NET_EPOCHS}"
                )
        bad = set(self.model_params) - set(DEFAULT_MODELS)
        if bad:
            raise ValueError(f"model_params for unknown kinds {sorted(bad)}")
        if self.until is not None:
            _parse_until(self.until)

    @property
    def effective_embargo(self) -> int:
        return self.horizon if self.embargo is None else self.embargo

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}; known: {sorted(names)}")
        for key, value in data.items():
            _check_train_value(key, value)
        return cls(**{k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()})

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], section: str = "ml.train") -> TrainConfig:
        """Read ``[ml.train]`` (dotted ``section``) of a TOML file; a file without it gives the defaults, except
        a file whose top level is itself a training config."""
        try:
            with open(path, "rb") as fh:
                raw = fh.read(1 << 20)
            doc = tomllib.loads(raw.decode("utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read training config {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ValueError(f"training config {path}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"training config {path}: invalid TOML: {exc}") from None
        except RecursionError:
            raise ValueError(f"training config {path}: invalid TOML: values nested too deeply") from None
        node: Any = doc
        for part in section.split("."):
            if not isinstance(node, Mapping) or part not in node:
                node = None
                break
            node = node[part]
        if node is None:
            names = {f.name for f in dataclasses.fields(cls)}
            node = {k: v for k, v in doc.items() if k in names} if set(doc) <= names else {}
        return cls.from_dict(node)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def params_for(self, kind: str) -> dict[str, Any]:
        """``make_model`` kwargs of ``kind``: seed/threads from the config, then the kind's overrides."""
        params: dict[str, Any] = {"seed": self.seed}
        if kind in NET_KINDS:
            params["threads"] = self.threads
        elif kind == "stack":
            params["threads"] = self.threads
            params["embargo"] = self.effective_embargo
        else:
            params["n_jobs"] = self.threads
        params.update(self.model_params.get(kind, {}))
        if kind in NET_KINDS:  # the budget also binds the model defaults
            params.setdefault("seq_len", MAX_NET_SEQ_LEN)
            params.setdefault("max_epochs", MAX_NET_EPOCHS)
        return params


def _parse_until(until: str | pd.Timestamp) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(until)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--until {until!r} is not a date/time") from exc
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if isinstance(until, str) and len(until.strip()) <= 10:  # a bare date: include the whole day
        ts = ts + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return ts


# -- data preparation -------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    target: pd.DataFrame
    others: dict[str, pd.DataFrame]
    features: pd.DataFrame  # the labelled, post-warm-up rows
    labels: np.ndarray  # int 0/1, aligned with features
    warmup_rows: int
    sources: list[dict[str, Any]]


def asset_key(df: pd.DataFrame) -> str:
    """Key of an "other" asset in ``build_features(others=...)``: its symbol (venue-qualified on a clash)."""
    return str(df.attrs.get("symbol") or Path(str(df.attrs.get("source", "asset"))).name)


def load_inputs(
    paths: Sequence[str | os.PathLike[str]], until: str | None = None
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[dict[str, Any]]]:
    """Load the target (first path) and the other assets, cut at ``until``; returns their range records."""
    from ml.data import load_ohlcv

    if not paths:
        raise ValueError("no data files given")
    cut = _parse_until(until) if until else None
    frames = []
    for p in paths:
        df = load_ohlcv(Path(p))
        if cut is not None:
            attrs = dict(df.attrs)
            df = df.loc[df.index <= cut]
            df.attrs.update(attrs)
            if len(df) == 0:
                raise ValueError(f"{p}: no bars on or before --until {until}")
        frames.append(df)
    target = frames[0]
    others: dict[str, pd.DataFrame] = {}
    sources = [_source_record(paths[0], target, "target", None)]
    for p, df in zip(paths[1:], frames[1:], strict=True):
        # bars after the target's last bar are never seen by a training row
        attrs = dict(df.attrs)
        df = df.loc[df.index <= target.index[-1]]
        df.attrs.update(attrs)
        key = asset_key(df)
        if key in others or key == asset_key(target):
            key = f"{df.attrs.get('venue', 'venue')}_{key}"
        if key in others:
            raise ValueError(f"{p}: the same venue+symbol was given twice")
        others[key] = df
        sources.append(_source_record(p, df, "other", key))
    return target, others, sources


def _source_record(
    path: str | os.PathLike[str], df: pd.DataFrame, role: str, key: str | None
) -> dict[str, Any]:
    tf = pd.Timedelta(df.attrs.get("timeframe")) if df.attrs.get("timeframe") is not None else None
    return {
        "role": role,
        "key": key,
        "venue": str(df.attrs.get("venue", "")),
        "symbol": str(df.attrs.get("symbol", "")),
        "first": df.index[0].isoformat() if len(df) else None,
        "last": df.index[-1].isoformat() if len(df) else None,
        "timeframe_seconds": tf.total_seconds() if tf is not None else None,
        "rows": len(df),
        "path": str(Path(path).resolve()),
        "sha256": file_sha256(path),
    }


def warmup_rows(features: pd.DataFrame, *, max_nan_frac: float = 0.0) -> int:
    """First row from which every later row has at most ``max_nan_frac`` NaN features (the warm-up length).
    Columns that are NaN on more than half of the rows (e.g. a feature family without its input) are ignored."""
    if features.shape[1] == 0:
        return 0
    mostly = features.isna().mean() <= 0.5
    f = features.loc[:, mostly] if mostly.any() else features
    bad = f.isna().mean(axis=1).to_numpy() > max_nan_frac
    # the warm-up is the leading run of incomplete rows; isolated gaps later on are imputed
    return int(np.argmin(bad)) if not bad.all() else len(bad)


def build_dataset(
    target: pd.DataFrame, others: Mapping[str, pd.DataFrame], feature_config: Any, horizon: int
) -> tuple[pd.DataFrame, np.ndarray, int]:
    from ml.features import build_features
    from ml.labels import direction_labels

    feats = build_features(target, config=feature_config, others=dict(others) or None)
    labels = direction_labels(target, horizon=horizon)
    start = warmup_rows(feats)
    stop = len(target) - horizon
    if stop - start < 50:
        raise ValueError(f"only {max(stop - start, 0)} labelled rows after a feature warm-up of {start} bars")
    y = labels.iloc[start:stop].to_numpy(dtype=np.float64)
    if not np.isfinite(y).all():
        raise ValueError("labels contain NaN inside the training range")
    return feats.iloc[start:stop], y.astype(np.int64), start


# -- training ---------------------------------------------------------------------------------------------------


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, leave=False, dynamic_ncols=True)


def _fit_preprocessor(feats: pd.DataFrame) -> Any:
    from ml.features.preprocess import CausalPreprocessor

    pre = CausalPreprocessor()
    pre.fit(feats)
    return pre


def _fit_predict(
    kind: str, config: TrainConfig, X: np.ndarray, y: np.ndarray, fold: Fold
) -> tuple[Any, dict[str, Any], np.ndarray | None]:
    """Fit ``kind`` on ``fold.fit`` with early stopping on ``fold.val``; predict ``fold.test`` (if any), giving a
    sequence model the rows before the test fold as window context (features only — no labels)."""
    from ml.models import make_model

    model = make_model(kind, **config.params_for(kind))
    fs, fe = fold.train_start, fold.fit_stop
    log = model.fit(
        X[fs:fe],
        y[fs:fe],
        X_val=X[fold.val_start : fold.train_stop],
        y_val=y[fold.val_start : fold.train_stop],
    )
    if fold.test_stop <= fold.test_start:
        return model, dict(log or {}), None
    ctx = max(int(getattr(model, "seq_len", 1)) - 1, 0)
    lo = max(fold.test_start - ctx, 0)
    p = np.asarray(model.predict_proba(X[lo : fold.test_stop]), dtype=np.float64)[fold.test_start - lo :]
    return model, dict(log or {}), p


def _auto_layout(n: int, config: TrainConfig) -> tuple[int, int]:
    h, emb = config.horizon, config.effective_embargo
    min_train = config.min_train or max(int(0.4 * n), 50)
    test_size = config.test_size or (n - min_train - emb - h) // config.folds
    if test_size < 1:
        raise ValueError(
            f"{n} labelled rows are too few for {config.folds} folds after {min_train} train rows"
        )
    return min_train, test_size


def _log_summary(log: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-friendly scalars of a training log (long loss curves are kept as lists)."""
    out: dict[str, Any] = {}
    for k, v in log.items():
        if isinstance(v, int | float | str | bool) or v is None:
            out[k] = v
        elif isinstance(v, np.integer | np.floating):
            out[k] = v.item()
        elif isinstance(v, list | tuple) and len(v) <= 1000 and all(isinstance(x, int | float) for x in v):
            out[k] = list(v)
    return out


def train(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    sink: RunSink | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Walk-forward evaluate every configured model kind, refit on the whole range, publish a registry version.

    ``paths[0]`` is the target asset; the other files feed cross-asset features. Returns a summary with
    ``version``, ``path``, ``meta`` and ``oof`` (out-of-fold metrics per kind).
    """
    from ml.features import FeatureConfig

    config = config or TrainConfig()
    started = dt.datetime.now(dt.UTC)
    run_id = uuid.uuid4().hex
    registry = ModelRegistry(out_dir)
    base_record = {
        "run_id": run_id,
        "model": "direction:" + "+".join(config.models),
        "started_at": started,
        "params": config.to_dict(),
        "version": None,
        "metrics": None,
        "artifact_uri": None,
        "finished_at": None,
    }
    if sink is not None:
        sink.record_run({**base_record, "status": "running"})
    try:
        result = _train(paths, registry, config, FeatureConfig.from_dict(config.features), progress)
    except BaseException as exc:
        if sink is not None:
            sink.record_run(
                {
                    **base_record,
                    "status": "failed",
                    "finished_at": dt.datetime.now(dt.UTC),
                    "metrics": {"error": f"{type(exc).__name__}: {exc}"},
                }
            )
        raise
    if sink is not None:
        sink.record_run(
            {
                **base_record,
                "status": "succeeded",
                "finished_at": dt.datetime.now(dt.UTC),
                "version": result["version"],
                "metrics": result["oof"],
                "artifact_uri": str(Path(result["path"]).resolve()),
            }
        )
    result["run_id"] = run_id
    return result


def _train(
    paths: Sequence[str | os.PathLike[str]],
    registry: ModelRegistry,
    config: TrainConfig,
    fcfg: Any,
    progress: bool,
) -> dict[str, Any]:
    target, others, sources = load_inputs(paths, config.until)
    feats, y, warm = build_dataset(target, others, fcfg, config.horizon)
    n = len(y)
    min_train, test_size = _auto_layout(n, config)
    folds = walk_forward_splits(
        n,
        n_folds=config.folds,
        test_size=test_size,
        min_train=min_train,
        embargo=config.effective_embargo,
        horizon=config.horizon,
        val_frac=config.val_frac,
    )
    net_folds = folds[-min(config.net_folds, len(folds)) :]
    steps = sum(len(net_folds) if k in NET_KINDS else len(folds) for k in config.models) + len(config.models)
    oof: dict[str, dict[str, Any]] = {}
    per_fold: dict[str, list[dict[str, Any]]] = {k: [] for k in config.models}
    preds: dict[str, np.ndarray] = {k: np.full(n, np.nan) for k in config.models}
    with _progress(steps, progress, "walk-forward") as bar:
        for fold in folds:
            pre = _fit_preprocessor(feats.iloc[fold.train_start : fold.train_stop])
            X = transform_features(pre, feats.iloc[: fold.test_stop])
            for kind in config.models:
                if kind in NET_KINDS and fold not in net_folds:
                    continue
                bar.set_postfix_str(f"fold {fold.index + 1}/{len(folds)} {kind}")
                _, log, p = _fit_predict(kind, config, X, y, fold)
                assert p is not None
                preds[kind][fold.test_start : fold.test_stop] = p
                m = classification_metrics(y[fold.test_start : fold.test_stop], p)
                per_fold[kind].append({"fold": fold.index, **m, "log": _log_summary(log)})
                bar.update(1)
        for kind in config.models:
            m = classification_metrics(y, preds[kind])
            m["folds_used"] = [f["fold"] for f in per_fold[kind]]
            oof[kind] = m
        # final refit on the whole training range, early stopping on its tail
        final = Fold(-1, 0, n, *tail_split(0, n, val_frac=config.val_frac, horizon=config.horizon), n, n)
        pre = _fit_preprocessor(feats.iloc[:n])
        X = transform_features(pre, feats)
        models: dict[str, Any] = {}
        final_logs: dict[str, Any] = {}
        for kind in config.models:
            bar.set_postfix_str(f"final {kind}")
            models[kind], log, _ = _fit_predict(kind, config, X, y, final)
            final_logs[kind] = _log_summary(log)
            bar.update(1)

    tf = pd.Timedelta(target.attrs.get("timeframe")) if target.attrs.get("timeframe") is not None else None
    meta: dict[str, Any] = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "horizon": config.horizon,
        "target": {
            "venue": target.attrs.get("venue"),
            "symbol": target.attrs.get("symbol"),
            "timeframe_seconds": tf.total_seconds() if tf is not None else None,
        },
        "others": {
            s["key"]: {"venue": s["venue"], "symbol": s["symbol"]} for s in sources if s["role"] == "other"
        },
        "training_ranges": sources,
        "data_files": [{"path": s["path"], "sha256": s["sha256"]} for s in sources],
        "labelled_range": {
            "first": feats.index[0].isoformat(),
            "last": feats.index[-1].isoformat(),
            "rows": n,
        },
        "warmup_rows": warm,
        "feature_config": fcfg.to_dict(),
        "feature_columns": list(feats.columns),
        "models": {
            k: {
                "params": config.params_for(k),
                "oof": oof[k],
                "folds": per_fold[k],
                "final_fit": final_logs[k],
            }
            for k in config.models
        },
        "walk_forward": {
            "folds": [f.as_dict() for f in folds],
            "net_folds": [f.index for f in net_folds],
            "embargo": config.effective_embargo,
            "horizon": config.horizon,
            "test_size": test_size,
            "min_train": min_train,
            "val_frac": config.val_frac,
            "final": final.as_dict(),
        },
        "evaluation_defaults": {
            "fee_bps": config.fee_bps,
            "slippage_bps": config.slippage_bps,
            "band": config.band,
            "short": config.short,
        },
        "train_config": config.to_dict(),
    }
    version = registry.publish(models=models, preprocessor=pre, meta=meta)
    return {
        "version": version,
        "path": str(registry.root / version),
        "oof": oof,
        "meta": registry.meta(version),
    }


# -- CLI --------------------------------------------------------------------------------------------------------


def train_main(
    data: list[str],
    out: str,
    config_path: str | None = None,
    models: list[str] | None = None,
    until: str | None = None,
    *,
    progress: bool = True,
    sink: RunSink | None = None,
) -> int:
    """``mevsuite ml train --data CSV [--data CSV ...] --out MODEL_DIR [--config TOML] [--models a,b]
    [--until DATE]``. Prints a summary; user errors are one line on stderr with exit status 2."""
    from ml.data import DataError

    try:
        cfg = TrainConfig.from_toml(config_path) if config_path else TrainConfig()
        overrides: dict[str, Any] = {}
        if models:
            overrides["models"] = [m.strip() for part in models for m in part.split(",") if m.strip()]
        if until:
            overrides["until"] = until
        if overrides:
            cfg = TrainConfig.from_dict({**cfg.to_dict(), **overrides})
        result = train(data, out, cfg, sink=sink, progress=progress)
    except (DataError, ValueError, FileNotFoundError, tomllib.TOMLDecodeError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"trained version {result['version']} -> {result['path']}")
    for kind, m in result["oof"].items():
        print(
            f"  {kind:12s} walk-forward OOF: accuracy {_fmt(m['accuracy'])} (majority {_fmt(m['majority_rate'])})"
            f"  AUC {_fmt(m['auc'])}  Brier {_fmt(m['brier'])}  n={m['n']}"
        )
    return 0


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4f}"
