"""Model registry: trained versions on disk, and the run-record sink.

Layout of ``ModelRegistry(root)``::

    root/
      LATEST                   # the newest published version id (replaced atomically)
      <version>/
        meta.json              # see below
        preprocessor/          # the fitted CausalPreprocessor state
        models/<kind>/         # one directory per model kind (DirectionModel.save)

``meta.json`` holds ``version``, ``created_at`` (ISO UTC), ``horizon``, ``target`` (venue, symbol, timeframe),
``training_ranges`` (one entry PER VENUE+SYMBOL: first/last bar open time, rows, file path and sha256),
``data_files`` (path + sha256), ``feature_config`` (``FeatureConfig.to_dict()``), ``feature_columns``,
``models`` (kind -> class, seq_len, walk-forward out-of-fold metrics: accuracy, AUC, Brier, ...),
``walk_forward`` (fold layout) and ``train_config``.

A version is written to a hidden temporary directory and renamed into place, then ``LATEST`` is replaced with
``os.replace`` — a reader never sees a half-written version or a torn pointer.

Nothing here imports ``bots/``: run records go through a :class:`RunSink` that the bots layer wires to its
store (``Store.record_model_run(**record)``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = [
    "LoadedModel",
    "ModelRegistry",
    "RegistryError",
    "RunSink",
    "file_sha256",
    "resolve_model_dir",
]

META = "meta.json"
LATEST = "LATEST"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RegistryError(LookupError):
    """A missing or malformed version / registry."""


@runtime_checkable
class RunSink(Protocol):
    """Where training runs are recorded. ``record`` has the keys of ``Store.record_model_run``: ``run_id``,
    ``model``, ``status`` ("running" / "succeeded" / "failed"), ``started_at`` and ``finished_at`` (aware UTC
    datetimes), ``version``, ``params``, ``metrics`` (JSON-able dicts) and ``artifact_uri``. The same
    ``run_id`` is recorded again when its status changes (an upsert)."""

    def record_run(self, record: dict[str, Any]) -> None: ...


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _class_path(obj: object) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str) -> Any:
    module, _, qual = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, pd.Timestamp | dt.datetime):
        return o.isoformat()
    if isinstance(o, pd.Timedelta):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, set | tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dump_json(obj: Any, path: Path) -> None:
    """Write JSON atomically (temp file + rename); NaN/inf become null."""
    text = json.dumps(_nan_to_none(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float | np.floating):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, Mapping):
        return {str(k): _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


# -- preprocessor persistence: use whatever the CausalPreprocessor offers ---------------------------------------


def _save_preprocessor(pre: Any, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"class": _class_path(pre)}
    if hasattr(pre, "save"):
        pre.save(directory)
        info["format"] = "save"
    elif hasattr(pre, "to_dict"):
        dump_json(pre.to_dict(), directory / "state.json")
        info["format"] = "to_dict"
    elif hasattr(pre, "state_dict"):
        dump_json(pre.state_dict(), directory / "state.json")
        info["format"] = "state_dict"
    else:
        raise RegistryError(f"cannot persist a {type(pre).__name__}: it has no save/to_dict/state_dict")
    dump_json(info, directory / "preprocessor.json")


def _load_preprocessor(directory: Path) -> Any:
    info = json.loads((directory / "preprocessor.json").read_text(encoding="utf-8"))
    cls = _import_class(info["class"])
    fmt = info["format"]
    if fmt == "save":
        return cls.load(directory)
    state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    if fmt == "to_dict":
        return cls.from_dict(state)
    return cls.from_state_dict(state) if hasattr(cls, "from_state_dict") else cls.from_state(state)


# -- a loaded version -------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """One version loaded from disk: its models, fitted preprocessor, feature config and meta."""

    version: str
    path: Path
    meta: dict[str, Any]
    models: dict[str, Any]
    preprocessor: Any
    feature_config: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def horizon(self) -> int:
        return int(self.meta["horizon"])

    @property
    def kinds(self) -> list[str]:
        return list(self.models)

    @property
    def symbol(self) -> str:
        return str(self.meta["target"]["symbol"])

    @property
    def lookback(self) -> int:
        """Bars of history a prediction needs (feature warm-up + the longest sequence window)."""
        return int(self.meta.get("warmup_rows", 0)) + max(
            (int(getattr(m, "seq_len", 1)) for m in self.models.values()), default=1
        )

    def features(self, df: pd.DataFrame, *, others: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
        """The feature frame of ``df`` in the training column order (missing columns are an error)."""
        from ml.features import build_features

        feats = build_features(df, config=self.feature_config, others=others)
        cols = list(self.meta["feature_columns"])
        missing = [c for c in cols if c not in feats.columns]
        if missing:
            need = [
                f"{r['venue']}:{r['symbol']}"
                for r in self.meta.get("training_ranges", [])
                if r.get("role") == "other"
            ]
            raise RegistryError(
                f"{len(missing)} feature column(s) the model was trained with are missing (e.g. {missing[:3]}); "
                f"the model also used other assets: {need or 'none'} — pass them as `others`"
            )
        return feats[cols]

    def predict_proba(
        self,
        df: pd.DataFrame,
        *,
        others: Mapping[str, pd.DataFrame] | None = None,
        kinds: list[str] | None = None,
    ) -> pd.DataFrame:
        """P(up over the next ``horizon`` bars) per model kind for every row of ``df`` (NaN where a model has
        not enough history), plus ``mean`` over the kinds."""
        feats = self.features(df, others=others)
        X = transform_features(self.preprocessor, feats)
        out = pd.DataFrame(index=df.index)
        for kind in kinds or self.kinds:
            out[kind] = np.asarray(self.models[kind].predict_proba(X), dtype=np.float64)
        out["mean"] = out[list(kinds or self.kinds)].mean(axis=1, skipna=False)
        return out


def transform_features(pre: Any, feats: pd.DataFrame) -> np.ndarray:
    """Apply a fitted preprocessor; always returns a finite float32 ``[n_rows, n_features]`` array."""
    X = pre.transform(feats)
    X = np.asarray(X.to_numpy() if isinstance(X, pd.DataFrame) else X, dtype=np.float32)
    if not np.isfinite(X).all():  # the contract says finite; be defensive
        X = np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)
    return X


# -- the registry -----------------------------------------------------------------------------------------------


class ModelRegistry:
    """Versions of trained direction models under ``root`` (see module doc)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # reading ---------------------------------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Published versions, oldest first (version ids sort by creation time)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / META).is_file()
        )

    def latest(self) -> str | None:
        """The version ``LATEST`` points to (``None`` when nothing is published)."""
        pointer = self.root / LATEST
        if not pointer.is_file():
            return None
        version = pointer.read_text(encoding="utf-8").strip()
        return version if version and (self.root / version / META).is_file() else None

    def path(self, version: str) -> Path:
        if not _VERSION_RE.match(version):
            raise RegistryError(f"invalid version id {version!r}")
        p = self.root / version
        if not (p / META).is_file():
            raise RegistryError(f"version {version!r} not found under {self.root}")
        return p

    def meta(self, version: str | None = None) -> dict[str, Any]:
        version = version or self._latest_or_raise()
        result: dict[str, Any] = json.loads((self.path(version) / META).read_text(encoding="utf-8"))
        return result

    def load(self, version: str | None = None) -> LoadedModel:
        """Load ``version`` (the latest when ``None``): models, preprocessor, feature config and meta."""
        from ml.features import FeatureConfig

        version = version or self._latest_or_raise()
        base = self.path(version)
        meta = self.meta(version)
        models: dict[str, Any] = {}
        for kind in meta.get("model_kinds") or list(meta["models"]):
            info = meta["models"][kind]
            cls = _import_class(info["class"])
            models[kind] = cls.load(base / info["dir"])
        pre = _load_preprocessor(base / "preprocessor")
        fcfg = FeatureConfig.from_dict(meta["feature_config"])
        return LoadedModel(version, base, meta, models, pre, fcfg)

    def _latest_or_raise(self) -> str:
        v = self.latest()
        if v is None:
            raise RegistryError(f"no published model under {self.root}")
        return v

    # writing ---------------------------------------------------------------------------------------------------

    def new_version(self) -> str:
        """A fresh, sortable version id: ``YYYYmmddTHHMMSSffffffZ-<6 hex>``."""
        now = dt.datetime.now(dt.UTC)
        return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]

    def publish(
        self,
        *,
        models: Mapping[str, Any],
        preprocessor: Any,
        meta: dict[str, Any],
        version: str | None = None,
        set_latest: bool = True,
    ) -> str:
        """Write a new version (models, preprocessor state, meta.json) and point ``LATEST`` at it."""
        self.root.mkdir(parents=True, exist_ok=True)
        version = version or self.new_version()
        if not _VERSION_RE.match(version) or (self.root / version).exists():
            raise RegistryError(f"version {version!r} is invalid or already exists")
        tmp = self.root / f".tmp-{version}"
        try:
            tmp.mkdir(parents=True)
            meta = dict(meta)
            meta["version"] = version
            meta.setdefault("created_at", dt.datetime.now(dt.UTC).isoformat())
            model_meta = dict(meta.get("models", {}))
            for kind, model in models.items():
                d = Path("models") / kind
                (tmp / d).mkdir(parents=True)
                model.save(tmp / d)
                entry = dict(model_meta.get(kind, {}))
                entry.update(
                    {
                        "class": _class_path(model),
                        "dir": d.as_posix(),
                        "seq_len": int(getattr(model, "seq_len", 1)),
                    }
                )
                model_meta[kind] = entry
            meta["models"] = model_meta
            meta["model_kinds"] = list(models)
            _save_preprocessor(preprocessor, tmp / "preprocessor")
            dump_json(meta, tmp / META)
            os.replace(tmp, self.root / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if set_latest:
            self.set_latest(version)
        return version

    def set_latest(self, version: str) -> None:
        self.path(version)  # must exist
        tmp = self.root / f".{LATEST}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(version + "\n", encoding="utf-8")
        os.replace(tmp, self.root / LATEST)


def resolve_model_dir(model_dir: str | os.PathLike[str]) -> tuple[ModelRegistry, str]:
    """Accept either a registry root (its latest version) or one version directory."""
    p = Path(model_dir)
    if (p / META).is_file():
        return ModelRegistry(p.parent), p.name
    reg = ModelRegistry(p)
    v = reg.latest()
    if v is None:
        raise RegistryError(
            f"{p} is neither a model version (no {META}) nor a registry with a {LATEST} pointer"
        )
    return reg, v
