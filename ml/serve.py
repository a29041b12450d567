"""Signal service: the registry's latest model behind ``GET /signal``, ``GET /health`` and ``GET /metrics``.

Seams (all small protocols, so the service is testable without trained models):

- :class:`SignalProvider` — one loaded model version: ``version``, ``symbols`` (empty = any symbol) and
  ``predict(symbol, candles) -> dict`` (``symbol, p_up, signal, as_of, model_version, models``).
  Optional attribute ``lookback: int`` = how many recent candles ``predict`` wants (default: all).
- :class:`ProviderFactory` — where versions come from: ``latest_version()`` (cheap, polled every
  ``reload_interval`` seconds) and ``load(version) -> SignalProvider`` (may be slow, may raise).
  :class:`RegistryProviderFactory` adapts :class:`ml.registry.ModelRegistry`; :class:`StaticProviderFactory`
  serves one fixed provider (tests, benchmarks).
- :class:`CandleSource` — recent candles per symbol: :class:`CsvCandleSource` (files read with
  :func:`ml.data.load_ohlcv`, re-read when they change on disk) and :class:`InMemoryCandleSource`.

:class:`SignalService` is the transport-free core (``await service.signal(symbol)``, ``service.health()``);
:func:`make_app` puts it behind aiohttp and :class:`ml.client.SignalClient` calls it in-process with the same
results as :class:`ml.client.HttpSignalClient` gets over HTTP. Errors are :class:`SignalError` (HTTP status +
JSON body ``{"error", "status", ...}``): 400 missing ``symbol``, 404 unknown symbol, 503 no model loaded yet,
422 not enough candles, 500 prediction failed.

Hot reload: a background task asks the factory for the latest version every ``reload_interval`` seconds (and
at once on :meth:`SignalService.request_reload`, which :func:`serve` wires to SIGHUP) and swaps the provider
atomically when it changed. A version that fails to load is not retried until the latest version changes (or a
forced reload); the previous model keeps serving and ``/health`` shows ``status: degraded`` with the error, which
is also counted (``mevsuite_ml_model_reload_failures_total``) and logged as a warning. A version the registry
refuses (a model directory is data: see ``ml.registry``) is such a failure.

Metrics live on the service's own :class:`~prometheus_client.CollectorRegistry` (``mevsuite_ml_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal as signal_mod
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger(__name__)

__all__ = [
    "SERVICE_KEY",
    "CandleSource",
    "CsvCandleSource",
    "InMemoryCandleSource",
    "MomentumProvider",
    "ProviderFactory",
    "RegistryProvider",
    "RegistryProviderFactory",
    "ServeMetrics",
    "SignalError",
    "SignalProvider",
    "SignalService",
    "StaticProviderFactory",
    "make_app",
    "serve",
    "serve_main",
    "signal_from_p",
]

# 100 µs … 10 s: tabular models answer in well under a millisecond, sequence models in milliseconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


# -- errors and protocols ------------------------------------------------------------------------------------


class SignalError(Exception):
    """A request the service answers with an error: ``status`` (HTTP code) and ``payload`` (the JSON body)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.payload: dict[str, Any] = {"error": message, "status": status, **extra}

    def __repr__(self) -> str:
        return f"SignalError({self.status}, {self.message!r})"


@runtime_checkable
class SignalProvider(Protocol):
    """One loaded model version. ``predict`` is called from a worker thread, one call at a time."""

    version: str
    symbols: set[str]

    def predict(self, symbol: str, candles: pd.DataFrame) -> dict[str, Any]:
        """``{"symbol", "p_up", "signal" (-1/0/1), "as_of" (last bar time), "model_version", "models"}``."""
        ...


class ProviderFactory(Protocol):
    """Source of model versions for hot reload."""

    def latest_version(self) -> str | None:
        """The newest published version (``None`` when there is none yet); cheap, polled often."""
        ...

    def load(self, version: str) -> SignalProvider:
        """Load ``version`` (runs in a worker thread; may raise — the old model keeps serving)."""
        ...


class CandleSource(Protocol):
    """Recent OHLCV candles per symbol (frames shaped like :func:`ml.data.load_ohlcv` output)."""

    def symbols(self) -> set[str]:
        """Symbols with candles."""
        ...

    def recent(self, symbol: str, n: int | None = None) -> pd.DataFrame:
        """The last ``n`` candles (all when ``None``) of ``symbol``; ``KeyError`` for an unknown symbol."""
        ...


def signal_from_p(p_up: float, band: float = 0.05, *, short: bool = True) -> int:
    """The backtest's rule (``ml.backtest.positions_from_proba``): 1 if ``p_up > 0.5 + band``; -1 if
    ``p_up < 0.5 - band`` and ``short``; else 0."""
    if p_up > 0.5 + band:
        return 1
    if short and p_up < 0.5 - band:
        return -1
    return 0


# -- candle sources ------------------------------------------------------------------------------------------


class InMemoryCandleSource:
    """Candles held in memory (tests, benchmarks, or fed by a live collector through :meth:`put`)."""

    def __init__(self, frames: Mapping[str, pd.DataFrame] | None = None) -> None:
        self._frames: dict[str, pd.DataFrame] = dict(frames or {})

    def put(self, symbol: str, frame: pd.DataFrame) -> None:
        """Replace the candles of ``symbol`` (atomic for readers)."""
        self._frames = {**self._frames, symbol: frame}

    def symbols(self) -> set[str]:
        return set(self._frames)

    def recent(self, symbol: str, n: int | None = None) -> pd.DataFrame:
        frame = self._frames[symbol]
        return frame if n is None else frame.tail(n)


def _load_csv(path: Path) -> pd.DataFrame:
    """:func:`ml.data.load_ohlcv` when available, else a minimal reader (timestamp + OHLCV columns)."""
    try:
        from ml.data import load_ohlcv
    except ImportError:
        pass
    else:
        return load_ohlcv(path)
    raw = pd.read_csv(path)
    cols = {c.lower(): c for c in raw.columns}
    ts_col = next((cols[c] for c in ("timestamp", "time", "date", "open_time") if c in cols), None)
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in cols]
    if ts_col is None or missing:
        raise ValueError(f"{path}: needs a timestamp column and open, high, low, close, volume")
    ts = raw[ts_col]
    if pd.api.types.is_numeric_dtype(ts):
        index = pd.to_datetime(ts, unit="ms" if float(ts.iloc[0]) > 1e11 else "s", utc=True)
    else:
        index = pd.to_datetime(ts, utc=True)
    df = pd.DataFrame(
        {c: raw[cols[c]].astype("float64").to_numpy() for c in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex(index, name="timestamp"),
    )
    if "symbol" in cols:
        symbol = str(raw[cols["symbol"]].iloc[0])
    else:
        symbol = path.name.split(".")[0].upper().replace("_", "/").replace("-", "/")
    df.attrs.update(symbol=symbol, source=str(path))
    return df


class CsvCandleSource:
    """Candles from OHLCV CSV files (one symbol per file, named by ``df.attrs["symbol"]``).

    Each file is re-read when its modification time or size changes (so an appending recorder keeps the
    service's candles fresh); a failed re-read keeps the previous candles.
    """

    def __init__(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> None:
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("CsvCandleSource: no data files given")
        self._entries: dict[str, tuple[Path, tuple[float, int], pd.DataFrame]] = {}
        for path in self.paths:
            frame = _load_csv(path)
            symbol = str(frame.attrs.get("symbol") or path.stem)
            if symbol in self._entries:
                raise ValueError(f"{path}: symbol {symbol} already loaded from {self._entries[symbol][0]}")
            self._entries[symbol] = (path, self._stamp(path), frame)
        self.last_error: str | None = None

    @staticmethod
    def _stamp(path: Path) -> tuple[float, int]:
        st = path.stat()
        return (st.st_mtime, st.st_size)

    def symbols(self) -> set[str]:
        return set(self._entries)

    def recent(self, symbol: str, n: int | None = None) -> pd.DataFrame:
        path, stamp, frame = self._entries[symbol]
        try:
            now = self._stamp(path)
            if now != stamp:
                fresh = _load_csv(path)
                self._entries[symbol] = (path, now, fresh)
                frame = fresh
                self.last_error = None
        except (OSError, ValueError) as exc:
            self.last_error = f"{path}: {exc}"
        return frame if n is None else frame.tail(n)


# -- providers -----------------------------------------------------------------------------------------------


class MomentumProvider:
    """Trivial baseline provider: ``p_up = sigmoid(k * return over the last `lookback` bars / volatility)``."""

    def __init__(
        self, version: str = "momentum", symbols: Iterable[str] = (), *, lookback: int = 20, k: float = 1.0,
        threshold: float = 0.05,
    ) -> None:  # fmt: skip
        self.version = version
        self.symbols = set(symbols)
        self.lookback = lookback
        self.k = k
        self.threshold = threshold

    def predict(self, symbol: str, candles: pd.DataFrame) -> dict[str, Any]:
        close = candles["close"].to_numpy(dtype="float64")[-self.lookback :]
        if len(close) < 3:
            raise SignalError(422, f"{symbol}: need at least 3 candles, have {len(close)}")
        rets = np.diff(np.log(close))
        vol = float(rets.std()) or 1e-12
        z = float(rets.sum()) / (vol * math.sqrt(len(rets)))
        p = 1.0 / (1.0 + math.exp(-self.k * z))
        return {
            "symbol": symbol, "p_up": p, "signal": signal_from_p(p, self.threshold),
            "as_of": candles.index[-1], "model_version": self.version, "models": {"momentum": p},
        }  # fmt: skip


class StaticProviderFactory:
    """A factory that always serves one provider (``set_provider`` swaps it: the service reloads on the next check)."""

    def __init__(self, provider: SignalProvider) -> None:
        self.provider = provider

    def set_provider(self, provider: SignalProvider) -> None:
        self.provider = provider

    def latest_version(self) -> str | None:
        return self.provider.version

    def load(self, version: str) -> SignalProvider:
        if version != self.provider.version:
            raise LookupError(f"version {version} is not available (have {self.provider.version})")
        return self.provider


class RegistryProvider:
    """A :class:`SignalProvider` over one version loaded from :class:`ml.registry.ModelRegistry`.

    ``predict`` answers the LAST row of ``LoadedModel.predict_proba`` on the recent candles (computed without
    predicting every row): ``models`` = P(up) per model kind, ``p_up`` = the ``stack`` kind when the version has
    one, else the mean over the kinds (the registry's ``mean`` column).
    ``signal`` follows the rule the version was evaluated with (meta ``evaluation_defaults``: ``band``,
    ``short``; ``signal_band`` in meta overrides the band).

    ``symbols`` is the version's target symbol. A version trained with other assets' features (meta ``others``:
    feature key -> venue/symbol) gets those assets' candles from ``others`` (the service's
    :class:`CandleSource`). ``lookback``: ``max(2 x LoadedModel.lookback, MIN_LOOKBACK)`` bars — the warm-up is
    where features stop being NaN, but EMA-style features (MACD, RSI, ADX, swings) remember further back, so the
    extra history makes the last row's features match the full-history values the model was trained on.
    """

    MIN_LOOKBACK = 1024

    def __init__(self, loaded: Any, *, others: CandleSource | None = None) -> None:
        self.loaded = loaded
        meta: dict[str, Any] = loaded.meta
        self.version = str(loaded.version)
        self.symbols = {str(loaded.symbol)}
        self.other_assets: dict[str, str] = {
            str(key): str(info["symbol"]) for key, info in (meta.get("others") or {}).items()
        }
        self.others = others
        self.lookback = max(2 * int(loaded.lookback), self.MIN_LOOKBACK)
        defaults = meta.get("evaluation_defaults") or {}
        self.band = float(meta.get("signal_band", defaults.get("band", 0.0)))
        self.short = bool(defaults.get("short", True))
        self.kinds = list(loaded.kinds)
        self.context = max((int(getattr(m, "seq_len", 1)) for m in loaded.models.values()), default=1)

    def _others(self) -> dict[str, pd.DataFrame] | None:
        if not self.other_assets:
            return None
        have = self.others.symbols() if self.others is not None else set()
        missing = sorted({s for s in self.other_assets.values() if s not in have})
        if missing or self.others is None:
            raise SignalError(
                503, f"model {self.version} also needs candles of {missing}, which are not loaded"
            )
        return {key: self.others.recent(sym, self.lookback) for key, sym in self.other_assets.items()}

    def predict(self, symbol: str, candles: pd.DataFrame) -> dict[str, Any]:
        # Same numbers as the last row of LoadedModel.predict_proba, without predicting every row: features need
        # the whole lookback (warm-up), but the preprocessor is row-wise and each model only needs its last
        # `seq_len` rows.
        from ml.registry import transform_features

        feats = self.loaded.features(candles, others=self._others())
        X = transform_features(self.loaded.preprocessor, feats.iloc[-self.context :])
        models = {
            kind: float(np.asarray(model.predict_proba(X), dtype=np.float64)[-1])
            for kind, model in self.loaded.models.items()
        }
        p_up = models["stack"] if "stack" in models else float(np.mean(list(models.values())))
        if len(X) < self.context or not all(math.isfinite(v) for v in (p_up, *models.values())):
            raise SignalError(
                422, f"{symbol}: not enough candles for model {self.version} "
                f"(have {len(candles)}, it needs about {self.lookback})",
            )  # fmt: skip
        return {
            "symbol": symbol, "p_up": p_up, "signal": signal_from_p(p_up, self.band, short=self.short),
            "as_of": candles.index[-1], "model_version": self.version, "models": models,
        }  # fmt: skip


class RegistryProviderFactory:
    """:class:`ProviderFactory` over ``ml.registry.ModelRegistry``.

    ``model_dir`` is a registry root (serves its ``LATEST`` version, hot-reloaded) or one version directory
    (has ``meta.json``: that version is pinned). With ``candles``, :meth:`load` also validates the new version by
    predicting on its target symbol's candles before the service swaps it in, so a version that loads but cannot
    predict (missing feature columns, wrong shapes, ...) never replaces a working one.
    """

    def __init__(self, model_dir: str | os.PathLike[str], candles: CandleSource | None = None) -> None:
        from ml.registry import META, ModelRegistry

        path = Path(model_dir)
        if not path.is_dir():
            raise ValueError(f"model directory {path} does not exist")
        self.pinned: str | None = None
        if (path / META).is_file():
            path, self.pinned = path.parent, path.name
        self.root = path
        self.registry = ModelRegistry(path)
        self.candles = candles

    def latest_version(self) -> str | None:
        return self.pinned if self.pinned is not None else self.registry.latest()

    def load(self, version: str) -> RegistryProvider:
        provider = RegistryProvider(self.registry.load(version), others=self.candles)
        if self.candles is not None:
            target = next(iter(provider.symbols))
            if target not in self.candles.symbols():
                raise LookupError(
                    f"model {version} predicts {target}, but the served candles are {sorted(self.candles.symbols())}"
                )
            provider.predict(target, self.candles.recent(target, provider.lookback))
        return provider


# -- the service ---------------------------------------------------------------------------------------------


class ServeMetrics:
    """The service's metrics, on its own registry (never prometheus-client's global one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests_total = Counter(
            "mevsuite_ml_requests_total", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "mevsuite_ml_request_seconds", "HTTP request handling time", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_seconds = Histogram(
            "mevsuite_ml_inference_seconds", "Model inference time per /signal (cache misses only)",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.signals_total = Counter(
            "mevsuite_ml_signals_total", "Signals answered (HTTP and in-process) by outcome", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.model_info = Gauge(
            "mevsuite_ml_model_info", "The model version being served (value 1)", ["version"], registry=r
        )
        self.model_loaded_timestamp = Gauge(
            "mevsuite_ml_model_loaded_timestamp_seconds", "Unix time the served model was loaded", registry=r
        )
        self.reloads_total = Counter(
            "mevsuite_ml_model_reloads_total",
            "Model loads attempted (initial load and hot reloads)",
            registry=r,
        )
        self.reload_failures_total = Counter(
            "mevsuite_ml_model_reload_failures_total",
            "Model loads or latest-version checks that failed (the previous model kept serving)",
            registry=r,
        )


@dataclass(frozen=True)
class _Loaded:
    provider: SignalProvider
    loaded_at: datetime


def _iso(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):  # includes pd.Timestamp
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return str(pd.Timestamp(value).isoformat())
    raise TypeError(f"as_of must be a timestamp, got {type(value).__name__}")


def _finite(name: str, value: Any) -> float:
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} is {out}")
    return out


class SignalService:
    """Transport-free core: the current provider, hot reload, prediction cache, health and metrics.

    ``cache_size`` predictions are kept per (model version, symbol, last candle); 0 disables the cache.
    """

    def __init__(
        self,
        factory: ProviderFactory,
        candles: CandleSource,
        *,
        reload_interval: float = 30.0,
        cache_size: int = 1024,
        metrics: ServeMetrics | None = None,
    ) -> None:
        if reload_interval <= 0:
            raise ValueError("reload_interval must be > 0")
        self.factory = factory
        self.candles = candles
        self.reload_interval = reload_interval
        self.cache_size = cache_size
        self.metrics = metrics if metrics is not None else ServeMetrics()
        self._state: _Loaded | None = None
        self._started = time.monotonic()
        self._started_at = datetime.now(UTC)
        self._last_error: str | None = None
        self._last_check: datetime | None = None
        self._latest_seen: str | None = None
        self._failed_version: str | None = None
        self._cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._infer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ml-infer")
        self._reload_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loaded = asyncio.Event()
        self._force = False
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the reload loop (its first check loads the latest version at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._reload_loop(), name="ml-serve-reload")

    async def stop(self) -> None:
        """Stop the reload loop and the inference worker."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._infer.shutdown(wait=True, cancel_futures=True)

    def request_reload(self) -> None:
        """Check for a new version now, retrying a version that failed before (SIGHUP)."""
        self._force = True
        self._wake.set()

    async def wait_loaded(self) -> str:
        """Wait until some model is loaded (bound it with ``asyncio.timeout``); its version."""
        await self._loaded.wait()
        assert self._state is not None
        return self._state.provider.version

    async def _reload_loop(self) -> None:
        while True:
            force, self._force = self._force, False
            try:
                await self.reload(force=force)
            except Exception as exc:  # never let the reload loop die: report and try again next interval
                self._reload_failed(f"reload failed: {type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.reload_interval)
            self._wake.clear()

    async def reload(self, *, force: bool = False) -> bool:
        """One check: load and swap in the latest version if it differs from the served one; True if swapped."""
        async with self._reload_lock:
            self._last_check = datetime.now(UTC)
            try:
                latest = await asyncio.to_thread(self.factory.latest_version)
            except Exception as exc:
                self._reload_failed(f"latest-version check failed: {type(exc).__name__}: {exc}")
                return False
            self._latest_seen = latest
            current = self._state
            if latest is None or (current is not None and latest == current.provider.version):
                self._last_error = self._failed_version = None  # nothing (new) to load: nothing failing
                return False
            if latest == self._failed_version and not force:
                return False
            self.metrics.reloads_total.inc()
            try:
                provider = await asyncio.to_thread(self.factory.load, latest)
                if not isinstance(provider, SignalProvider):
                    raise TypeError(f"factory.load returned {type(provider).__name__}, not a SignalProvider")
            except Exception as exc:
                self._failed_version = latest
                self._reload_failed(f"loading version {latest} failed: {type(exc).__name__}: {exc}")
                return False
            self._swap(provider)
            return True

    def _reload_failed(self, message: str) -> None:
        """Count, record (``/health``) and log a failed check or load; the served model stays."""
        self.metrics.reload_failures_total.inc()
        if message != self._last_error:  # a pointer that stays broken is logged once, counted every check
            state = self._state
            serving = "no model" if state is None else f"version {state.provider.version}"
            log.warning("ml serve: %s; still serving %s", " ".join(message.split()), serving)
        self._last_error = message

    def _swap(self, provider: SignalProvider) -> None:
        old = self._state
        self._state = _Loaded(provider, datetime.now(UTC))  # one assignment: requests see old or new
        self._cache.clear()
        self._last_error = None
        self._failed_version = None
        self._loaded.set()
        if old is not None and old.provider.version != provider.version:
            with contextlib.suppress(KeyError):
                self.metrics.model_info.remove(old.provider.version)
        self.metrics.model_info.labels(version=provider.version).set(1)
        self.metrics.model_loaded_timestamp.set(self._state.loaded_at.timestamp())

    # -- queries ---------------------------------------------------------------------------------------------

    @property
    def provider(self) -> SignalProvider | None:
        state = self._state
        return None if state is None else state.provider

    @property
    def version(self) -> str | None:
        state = self._state
        return None if state is None else state.provider.version

    def served_symbols(self) -> list[str]:
        """Symbols with candles that the current model covers."""
        state = self._state
        have = self.candles.symbols()
        if state is not None and state.provider.symbols:
            have &= state.provider.symbols
        return sorted(have)

    def health(self) -> dict[str, Any]:
        """Status (``ok`` / ``degraded`` = serving but the last reload failed / ``no_model``) and details."""
        state = self._state
        if state is None:
            status = "no_model"
        else:
            status = "degraded" if self._last_error else "ok"
        return {
            "status": status,
            "model_version": None if state is None else state.provider.version,
            "loaded_at": None if state is None else state.loaded_at.isoformat(),
            "started_at": self._started_at.isoformat(),
            "uptime_s": round(time.monotonic() - self._started, 3),
            "latest_version": self._latest_seen,
            "last_check_at": None if self._last_check is None else self._last_check.isoformat(),
            "last_reload_error": self._last_error,
            "reload_interval_s": self.reload_interval,
            "symbols": self.served_symbols(),
        }

    async def signal(self, symbol: str | None) -> dict[str, Any]:
        """The current model's signal for ``symbol`` (a fresh JSON-ready dict); :class:`SignalError` otherwise."""
        try:
            result = await self._signal(symbol)
        except SignalError as exc:
            self.metrics.signals_total.labels(outcome=str(exc.status)).inc()
            raise
        self.metrics.signals_total.labels(outcome="ok").inc()
        return result

    async def _signal(self, symbol: str | None) -> dict[str, Any]:
        if not symbol:
            raise SignalError(400, "missing query parameter 'symbol'")
        state = self._state
        if state is None:
            raise SignalError(503, "no model loaded yet", last_reload_error=self._last_error)
        provider = state.provider
        if symbol not in self.candles.symbols():
            raise SignalError(404, f"unknown symbol {symbol}", symbols=self.served_symbols())
        if provider.symbols and symbol not in provider.symbols:
            raise SignalError(
                404, f"model {provider.version} does not cover {symbol}", symbols=self.served_symbols()
            )
        try:
            frame = self.candles.recent(symbol, getattr(provider, "lookback", None))
        except KeyError as exc:
            raise SignalError(404, f"unknown symbol {symbol}", symbols=self.served_symbols()) from exc
        if frame.empty:
            raise SignalError(422, f"{symbol}: no candles")
        last = frame.iloc[-1]
        key = (provider.version, symbol, frame.index[-1], len(frame), float(last["close"]),
               float(last["volume"]))  # fmt: skip
        cached = self._cache.get(key) if self.cache_size else None
        if cached is not None:
            self._cache.move_to_end(key)
            return {**cached, "models": dict(cached["models"])}
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            raw = await loop.run_in_executor(self._infer, provider.predict, symbol, frame)
        except SignalError:
            raise
        except Exception as exc:
            raise SignalError(500, f"prediction failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.metrics.inference_seconds.observe(time.perf_counter() - t0)
        result = self._normalise(raw, symbol, provider.version, frame)
        if self.cache_size:
            self._cache[key] = result
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return {**result, "models": dict(result["models"])}

    @staticmethod
    def _normalise(raw: Mapping[str, Any], symbol: str, version: str, frame: pd.DataFrame) -> dict[str, Any]:
        """JSON-native types only, so in-process and HTTP answers are identical dicts."""
        try:
            p_up = _finite("p_up", raw["p_up"])
            sig = int(raw["signal"])
            if sig not in (-1, 0, 1):
                raise ValueError(f"signal is {sig}, not -1/0/1")
            models = {str(k): _finite(f"models[{k}]", v) for k, v in dict(raw.get("models") or {}).items()}
            as_of = _iso(raw.get("as_of", frame.index[-1]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SignalError(500, f"model {version} returned a bad prediction: {exc}") from exc
        return {
            "symbol": symbol, "p_up": p_up, "signal": sig, "as_of": as_of, "model_version": version,
            "models": models,
        }  # fmt: skip


# -- HTTP ----------------------------------------------------------------------------------------------------

SERVICE_KEY: web.AppKey[SignalService] = web.AppKey("ml_signal_service", SignalService)


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _json(payload: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(payload), status=status, content_type="application/json")


@web.middleware
async def _observe(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    route = _route_of(request)
    t0 = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        if status < 400:
            raise
        return _json({"error": exc.reason, "status": status}, status)
    finally:
        service.metrics.requests_total.labels(route=route, status=str(status)).inc()
        service.metrics.request_seconds.labels(route=route).observe(time.perf_counter() - t0)


async def _handle_signal(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    try:
        return _json(await service.signal(request.query.get("symbol")))
    except SignalError as exc:
        return _json(exc.payload, exc.status)


async def _handle_health(request: web.Request) -> web.Response:
    body = request.app[SERVICE_KEY].health()
    return _json(body, 503 if body["status"] == "no_model" else 200)


async def _handle_metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[SERVICE_KEY].metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(
    provider_factory: ProviderFactory,
    candles: CandleSource,
    *,
    reload_interval: float = 30.0,
    cache_size: int = 1024,
    metrics: ServeMetrics | None = None,
) -> web.Application:
    """The aiohttp app; the service (``app[SERVICE_KEY]``) starts with the app and stops on cleanup."""
    service = SignalService(
        provider_factory, candles, reload_interval=reload_interval, cache_size=cache_size, metrics=metrics
    )
    app = web.Application(middlewares=[_observe])
    app[SERVICE_KEY] = service
    app.router.add_get("/signal", _handle_signal)
    app.router.add_get("/health", _handle_health)
    app.router.add_get("/metrics", _handle_metrics)

    async def _start(_: web.Application) -> None:
        await service.start()

    async def _stop(_: web.Application) -> None:
        await service.stop()

    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


async def serve(
    provider_factory: ProviderFactory,
    candles: CandleSource,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    reload_interval: float = 30.0,
    stop: asyncio.Event | None = None,
    out: Any = None,
) -> int:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set); SIGHUP forces a reload check. Exit code."""
    out = out if out is not None else sys.stdout
    app = make_app(provider_factory, candles, reload_interval=reload_interval)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            print(
                f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr, flush=True
            )
            return 2
        addrs = runner.addresses
        bound = addrs[0][1] if addrs else port
        shown = f"[{host}]" if ":" in host else host
        print(f"ml serve: listening on http://{shown}:{bound}", file=out, flush=True)
        stop = stop if stop is not None else asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal_mod.Signals] = []
        for sig, cb in ((signal_mod.SIGINT, stop.set), (signal_mod.SIGTERM, stop.set),
                        (signal_mod.SIGHUP, app[SERVICE_KEY].request_reload)):  # fmt: skip
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, cb)
                installed.append(sig)
        try:
            await stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        print("ml serve: stopped", file=out, flush=True)
        return 0
    finally:
        await runner.cleanup()


def serve_main(
    model_dir: str | os.PathLike[str],
    data: Sequence[str | os.PathLike[str]],
    host: str = "127.0.0.1",
    port: int = 0,
    reload_interval: float = 30.0,
) -> int:
    """``mevsuite ml serve``: the registry at ``model_dir`` over candles from ``data`` CSVs. Exit code; a
    start-up error is one ``error: ...`` line on stderr (exit 2). A version that cannot be loaded (e.g. a model
    directory the registry refuses) does not stop the service: it is logged, counted and shown on ``/health``."""
    from ml.registry import RegistryError

    try:
        candles = CsvCandleSource(list(data))
        factory = RegistryProviderFactory(model_dir, candles)
    except (OSError, ValueError, ImportError, RegistryError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 2
    return asyncio.run(serve(factory, candles, host=host, port=port, reload_interval=reload_interval))
