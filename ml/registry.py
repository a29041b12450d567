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

A model directory is DATA, never code: the class of each model comes from a fixed kind table
(:func:`model_kinds`: ``ml.models.MODEL_KINDS`` plus kinds registered in-process with
:func:`register_model_kind`), the preprocessor's from a fixed table too; the ``class`` recorded in the JSON is
only checked against the table (anything else is refused). Every name read from the directory's JSON (``LATEST``,
``models.<kind>.dir``, the models' own file names) must be a plain name that stays inside the directory, and any
malformed or wrongly typed file is a one-line :class:`RegistryError`.

Nothing here imports ``bots/``: run records go through a :class:`RunSink` that the bots layer wires to its
store (``Store.record_model_run(**record)``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
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

from chains import wirejson  # bounded JSON (a stdlib-only leaf module)

MAX_JSON_BYTES = 64 << 20  # a meta.json / preprocessor state is kB to a few MB

__all__ = [
    "LoadedModel",
    "ModelRegistry",
    "RegistryError",
    "RunSink",
    "file_sha256",
    "model_kinds",
    "register_model_kind",
    "resolve_model_dir",
    "unregister_model_kind",
]

META = "meta.json"
LATEST = "LATEST"
PREPROCESSOR_DIR = "preprocessor"
PREPROCESSOR_JSON = "preprocessor.json"
PREPROCESSOR_STATE = "state.json"
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # used with fullmatch
_KIND_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LATEST_MAX_BYTES = 256


class RegistryError(LookupError):
    """A missing or malformed version / registry (a model directory that is refused)."""


# -- the class tables: the only place model / preprocessor classes come from -----------------------------------

_EXTRA_KINDS: dict[str, type] = {}


def _builtin_kinds() -> dict[str, type]:
    from ml.models import MODEL_KINDS  # lstm, transformer, xgboost, lightgbm, stack

    return dict(MODEL_KINDS)


def model_kinds() -> dict[str, type]:
    """Model kind -> class: ``ml.models.MODEL_KINDS`` plus the kinds registered in this process."""
    return {**_builtin_kinds(), **_EXTRA_KINDS}


def register_model_kind(kind: str, cls: type) -> None:
    """Add ``kind`` -> ``cls`` to THIS process's kind table (tests, in-process extensions). Code decides what
    is loadable; a model directory can only name a kind of the table. ``cls`` needs ``load(directory)`` (a
    classmethod) and instances with ``save(directory)`` and ``predict_proba(X)``. A built-in kind cannot be
    replaced."""
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise ValueError(f"invalid model kind {kind!r} (lower-case letters, digits, '_' and '-')")
    if kind in _builtin_kinds():
        raise ValueError(f"model kind {kind!r} is built in and cannot be replaced")
    if not isinstance(cls, type) or not callable(getattr(cls, "load", None)):
        raise ValueError(f"{cls!r} is not a class with a load(directory) method")
    _EXTRA_KINDS[kind] = cls


def unregister_model_kind(kind: str) -> None:
    """Remove a kind added with :func:`register_model_kind` (no-op if absent)."""
    _EXTRA_KINDS.pop(kind, None)


def _preprocessor_classes() -> dict[str, type]:
    """Class path (as recorded in ``preprocessor.json``) -> class: the only loadable preprocessors."""
    from ml.features.preprocess import CausalPreprocessor

    return {_class_path(CausalPreprocessor): CausalPreprocessor}


def _describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (bounded): error messages of this module stay on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _inside(base: Path, path: Path, where: str, label: str) -> Path:
    """``path`` if it resolves (symlinks followed) strictly inside ``base``; else a RegistryError."""
    root, real = base.resolve(), path.resolve()
    if real == root or not real.is_relative_to(root):
        raise RegistryError(f"{where}: {label} leads out of the model directory (symlink to {real})")
    return path


def _read_json_object(path: Path, where: str, label: str) -> dict[str, Any]:
    try:
        data = wirejson.load_file(path, max_bytes=MAX_JSON_BYTES)
    except FileNotFoundError:
        raise RegistryError(f"{where}: {label} is missing") from None
    except OSError as exc:
        raise RegistryError(f"{where}: cannot read {label}: {_describe(exc)}") from None
    except ValueError as exc:
        raise RegistryError(f"{where}: {label} is not valid JSON ({_describe(exc)})") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{where}: {label} must hold a JSON object, not {type(data).__name__}")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# meta.json fields that loading and serving use: key -> (check, description, required)
_META_FIELDS: dict[str, tuple[Any, str, bool]] = {
    "horizon": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", True),
    "target": (
        lambda v: isinstance(v, dict) and isinstance(v.get("symbol"), str | None) and "symbol" in v,
        "an object with a symbol",
        True,
    ),
    "feature_config": (lambda v: isinstance(v, dict), "an object", True),
    "feature_columns": (
        lambda v: isinstance(v, list) and bool(v) and all(isinstance(c, str) for c in v),
        "a non-empty list of strings",
        True,
    ),
    "models": (lambda v: isinstance(v, dict), "an object", True),
    "model_kinds": (
        lambda v: isinstance(v, list) and all(isinstance(k, str) for k in v),
        "a list of strings",
        False,
    ),
    "warmup_rows": (lambda v: _is_int(v) and v >= 0, "an integer >= 0", False),
    "others": (
        lambda v: isinstance(v, dict) and all(isinstance(o, dict) and "symbol" in o for o in v.values()),
        "an object of {venue, symbol} objects",
        False,
    ),
    "evaluation_defaults": (lambda v: isinstance(v, dict), "an object", False),
    "training_ranges": (
        lambda v: (
            isinstance(v, list)
            and all(
                isinstance(r, dict) and isinstance(r.get("first"), str) and isinstance(r.get("last"), str)
                for r in v
            )
        ),
        "a list of {first, last, ...} objects",
        False,
    ),
}


def _check_meta(meta: dict[str, Any], where: str) -> None:
    for key, (ok, what, required) in _META_FIELDS.items():
        if key not in meta or (meta[key] is None and not required):
            if required:
                raise RegistryError(f"{where}: meta.json has no {key!r}")
            continue
        if not ok(meta[key]):
            raise RegistryError(f"{where}: meta.json {key} must be {what}, got {str(meta[key])[:60]!r}")


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
    if _class_path(pre) not in _preprocessor_classes():
        raise RegistryError(
            f"cannot publish a {_class_path(pre)} preprocessor: only {sorted(_preprocessor_classes())} can be loaded"
        )
    directory.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"class": _class_path(pre)}
    if hasattr(pre, "save"):
        pre.save(directory)
        info["format"] = "save"
    elif hasattr(pre, "to_dict"):
        dump_json(pre.to_dict(), directory / PREPROCESSOR_STATE)
        info["format"] = "to_dict"
    elif hasattr(pre, "state_dict"):
        dump_json(pre.state_dict(), directory / PREPROCESSOR_STATE)
        info["format"] = "state_dict"
    else:
        raise RegistryError(f"cannot persist a {type(pre).__name__}: it has no save/to_dict/state_dict")
    dump_json(info, directory / PREPROCESSOR_JSON)


def _load_preprocessor(base: Path, where: str) -> Any:
    """The fitted preprocessor of the version at ``base``: its class from the fixed table only."""
    directory = _inside(base, base / PREPROCESSOR_DIR, where, f"{PREPROCESSOR_DIR}/")
    label = f"{PREPROCESSOR_DIR}/{PREPROCESSOR_JSON}"
    info = _read_json_object(_inside(base, directory / PREPROCESSOR_JSON, where, label), where, label)
    table = _preprocessor_classes()
    named = info.get("class")
    if not isinstance(named, str) or named not in table:
        raise RegistryError(
            f"{where}: {label} class names {str(named)[:120]!r}, expected {' or '.join(sorted(table))}"
        )
    cls: Any = table[named]
    fmt = info.get("format")
    loaders = {"to_dict": "from_dict", "state_dict": "from_state_dict", "save": "load"}
    if fmt not in loaders or not hasattr(cls, loaders[str(fmt)]):
        raise RegistryError(f"{where}: {label} format {str(fmt)[:40]!r} is not supported by {named}")
    try:
        if fmt == "save":
            return cls.load(directory)
        state_label = f"{PREPROCESSOR_DIR}/{PREPROCESSOR_STATE}"
        state = _read_json_object(
            _inside(base, directory / PREPROCESSOR_STATE, where, state_label), where, state_label
        )
        return getattr(cls, loaders[str(fmt)])(state)
    except RegistryError:
        raise
    except Exception as exc:  # the state is data: any failure to rebuild from it is a refused directory
        raise RegistryError(f"{where}: cannot load the preprocessor: {_describe(exc)}") from exc


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
        """The version ``LATEST`` points to (``None`` when nothing is published). A pointer that does not hold
        a version id (``_VERSION_RE``: a plain name) is a :class:`RegistryError`."""
        pointer = self.root / LATEST
        if not pointer.is_file():
            return None
        try:
            with open(pointer, "rb") as fh:
                raw = fh.read(_LATEST_MAX_BYTES + 1)
        except OSError as exc:
            raise RegistryError(f"registry {self.root}: cannot read {LATEST}: {_describe(exc)}") from None
        try:
            version = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            version = None
        if (
            version is None
            or len(raw) > _LATEST_MAX_BYTES
            or (version and not _VERSION_RE.fullmatch(version))
        ):
            shown = raw[:60].decode("utf-8", "replace")
            raise RegistryError(f"registry {self.root}: {LATEST} holds {shown!r}, which is not a version id")
        return version if version and (self.root / version / META).is_file() else None

    def path(self, version: str) -> Path:
        if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
            raise RegistryError(f"invalid version id {str(version)[:60]!r}")
        p = self.root / version
        if not (p / META).is_file():
            raise RegistryError(f"version {version!r} not found under {self.root}")
        return p

    def meta(self, version: str | None = None) -> dict[str, Any]:
        version = version or self._latest_or_raise()
        base = self.path(version)
        where = f"model directory {base}"
        return _read_json_object(_inside(base, base / META, where, META), where, META)

    def load(self, version: str | None = None) -> LoadedModel:
        """Load ``version`` (the latest when ``None``): models, preprocessor, feature config and meta.

        Classes come from the fixed tables only (:func:`model_kinds`, the preprocessor table); a model
        directory that names anything else, names a path outside itself or holds malformed JSON is refused
        with a one-line :class:`RegistryError`."""
        from ml.features import FeatureConfig

        version = version or self._latest_or_raise()
        base = self.path(version)
        where = f"model directory {base}"
        meta = self.meta(version)
        _check_meta(meta, where)
        table = model_kinds()
        kinds = meta.get("model_kinds") or list(meta["models"])
        if not kinds:
            raise RegistryError(f"{where}: meta.json lists no model kinds")
        models: dict[str, Any] = {}
        for kind in kinds:
            cls = table.get(kind)
            if cls is None:
                raise RegistryError(
                    f"{where}: meta.json names model kind {kind[:60]!r}, which is not a known kind {sorted(table)}"
                )
            info = meta["models"].get(kind)
            if not isinstance(info, dict):
                raise RegistryError(f"{where}: meta.json models.{kind} must be an object")
            expected = _class_path(cls)
            named = info.get("class", expected)  # informational; must match the table when present
            if named != expected:
                raise RegistryError(
                    f"{where}: meta.json models.{kind}.class names {str(named)[:120]!r}, expected {expected}"
                )
            want_dir = f"models/{kind}"
            named_dir = info.get("dir", want_dir)
            if named_dir != want_dir:
                raise RegistryError(
                    f"{where}: meta.json models.{kind}.dir {str(named_dir)[:120]!r} is not a plain name under "
                    f"models/ (expected {want_dir!r})"
                )
            directory = _inside(base, base / "models" / kind, where, f"{want_dir}/")
            try:
                models[kind] = cls.load(directory)  # type: ignore[attr-defined]
            except (
                Exception
            ) as exc:  # the files are data: any failure to rebuild from them refuses the version
                raise RegistryError(f"{where}: cannot load model {kind!r}: {_describe(exc)}") from exc
        pre = _load_preprocessor(base, where)
        try:
            fcfg = FeatureConfig.from_dict(meta["feature_config"])
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"{where}: meta.json feature_config: {_describe(exc)}") from exc
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
        table = model_kinds()
        for kind, model in models.items():
            if kind not in table:
                raise RegistryError(
                    f"cannot publish model kind {kind!r}: not a loadable kind {sorted(table)} (see register_model_kind)"
                )
            if type(model) is not table[kind]:
                raise RegistryError(
                    f"cannot publish model kind {kind!r}: it is a {_class_path(model)}, "
                    f"expected {_class_path(table[kind])}"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        version = version or self.new_version()
        if not _VERSION_RE.fullmatch(version) or (self.root / version).exists():
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
