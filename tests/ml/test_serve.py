"""ml.serve / ml.client: the service answers with the registry's latest model, hot-reloads, keeps serving the old
model when a new one is broken, answers errors as JSON, exposes Prometheus metrics; in-process and HTTP clients
agree."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from ml.client import HttpSignalClient, SignalClient
from ml.serve import (
    SERVICE_KEY,
    CsvCandleSource,
    InMemoryCandleSource,
    MomentumProvider,
    SignalError,
    SignalService,
    StaticProviderFactory,
    make_app,
    signal_from_p,
)

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 10.0  # bound on every wait for a hot reload (generous: the machine is shared)


def candles(n: int = 200, seed: int = 1, start: str = "2024-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="timestamp")
    df = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * 1.001, "low": np.minimum(open_, close) * 0.999,
         "close": close, "volume": rng.uniform(1, 10, n)},
        index=idx,
    )  # fmt: skip
    return df


def source() -> InMemoryCandleSource:
    return InMemoryCandleSource({"BTC/USDT": candles(seed=1), "ETH/USDT": candles(seed=2)})


# -- a fake registry layout (root/<version>/meta.json), used until / unless ml.registry is exercised ----------


class BiasProvider:
    def __init__(self, version: str, symbols: Iterable[str], bias: float) -> None:
        self.version, self.symbols, self.bias = version, set(symbols), bias
        self.calls = 0

    def predict(self, symbol: str, frame: pd.DataFrame) -> dict[str, Any]:
        self.calls += 1
        r = float(np.log(frame["close"].iloc[-1] / frame["close"].iloc[-2]))
        p = min(max(self.bias + r, 0.0), 1.0)
        return {"symbol": symbol, "p_up": p, "signal": signal_from_p(p), "as_of": frame.index[-1],
                "model_version": self.version, "models": {"xgboost": p, "lstm": self.bias}}  # fmt: skip


class DirFactory:
    """Latest = greatest directory name under root; load reads its meta.json (a broken file fails to load)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def latest_version(self) -> str | None:
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        return names[-1] if names else None

    def load(self, version: str) -> BiasProvider:
        meta = json.loads((self.root / version / "meta.json").read_text())
        return BiasProvider(version, meta["symbols"], float(meta["bias"]))


def publish(root: Path, version: str, bias: float = 0.5, *, broken: bool = False) -> None:
    tmp = root / f".{version}.tmp"
    tmp.mkdir(parents=True)
    body = "{not json" if broken else json.dumps({"symbols": ["BTC/USDT", "ETH/USDT"], "bias": bias})
    (tmp / "meta.json").write_text(body)
    tmp.rename(root / version)  # atomic publish


@asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as resp:
        body = await resp.json(content_type=None) if "json" in resp.content_type else await resp.text()
        return resp.status, body


async def poll_health(session: aiohttp.ClientSession, base: str, pred: Any) -> dict[str, Any]:
    deadline = time.monotonic() + POLL_S
    while True:
        _, body = await get(session, f"{base}/health")
        assert isinstance(body, dict), body
        if pred(body):
            return body
        assert time.monotonic() < deadline, f"health never matched: {body}"
        await asyncio.sleep(0.05)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# -- tests -------------------------------------------------------------------------------------------------------


async def test_serves_latest_version_and_hot_reloads(tmp_path: Path) -> None:
    publish(tmp_path, "v0001", bias=0.2)
    app = make_app(DirFactory(tmp_path), source(), reload_interval=0.05)
    async with running(app) as base, aiohttp.ClientSession() as s:
        health = await poll_health(s, base, lambda b: b["status"] == "ok")
        assert health["model_version"] == "v0001" and health["last_reload_error"] is None
        assert health["symbols"] == ["BTC/USDT", "ETH/USDT"] and health["uptime_s"] >= 0
        status, body = await get(s, f"{base}/signal?symbol=BTC/USDT")
        assert status == 200, body
        assert body["model_version"] == "v0001" and body["symbol"] == "BTC/USDT"
        assert set(body) == {"symbol", "p_up", "signal", "as_of", "model_version", "models"}
        assert body["signal"] == -1 and 0 <= body["p_up"] <= 1 and set(body["models"]) == {"xgboost", "lstm"}
        assert pd.Timestamp(body["as_of"]) == source().recent("BTC/USDT").index[-1]

        publish(tmp_path, "v0002", bias=0.8)
        health = await poll_health(s, base, lambda b: b["model_version"] == "v0002")
        assert health["status"] == "ok" and health["loaded_at"] is not None
        status, body = await get(s, f"{base}/signal?symbol=BTC/USDT")
        assert status == 200 and body["model_version"] == "v0002" and body["signal"] == 1
        metrics = metric_samples((await get(s, f"{base}/metrics"))[1])
        assert metrics[("mevsuite_ml_model_info", (("version", "v0002"),))] == 1
        assert ("mevsuite_ml_model_info", (("version", "v0001"),)) not in metrics
        assert metrics[("mevsuite_ml_model_reloads_total", ())] == 2


async def test_broken_version_keeps_old_model_serving(tmp_path: Path) -> None:
    publish(tmp_path, "v0001", bias=0.3)
    app = make_app(DirFactory(tmp_path), source(), reload_interval=0.05)
    service = app[SERVICE_KEY]
    async with running(app) as base, aiohttp.ClientSession() as s:
        await poll_health(s, base, lambda b: b["model_version"] == "v0001")
        publish(tmp_path, "v0002", broken=True)
        health = await poll_health(s, base, lambda b: b["last_reload_error"] is not None)
        assert health["status"] == "degraded" and health["model_version"] == "v0001"
        assert health["latest_version"] == "v0002"
        assert "v0002" in health["last_reload_error"] and "JSONDecodeError" in health["last_reload_error"]
        status, body = await get(s, f"{base}/signal?symbol=ETH/USDT")
        assert status == 200 and body["model_version"] == "v0001"
        await asyncio.sleep(0.3)  # several reload intervals: the broken version is not retried in a loop
        metrics = metric_samples((await get(s, f"{base}/metrics"))[1])
        assert metrics[("mevsuite_ml_model_reload_failures_total", ())] == 1
        assert metrics[("mevsuite_ml_model_info", (("version", "v0001"),))] == 1

        # fixed in place: only a forced reload (SIGHUP) retries the same version
        (tmp_path / "v0002" / "meta.json").write_text(json.dumps({"symbols": ["ETH/USDT"], "bias": 0.9}))
        service.request_reload()
        health = await poll_health(s, base, lambda b: b["model_version"] == "v0002")
        assert health["status"] == "ok" and health["last_reload_error"] is None
        assert health["symbols"] == ["ETH/USDT"]
        status, body = await get(s, f"{base}/signal?symbol=BTC/USDT")  # not covered by v0002
        assert status == 404 and "does not cover" in body["error"]


async def test_error_responses(tmp_path: Path) -> None:
    app = make_app(DirFactory(tmp_path), source(), reload_interval=0.05)  # empty registry: no model yet
    async with running(app) as base, aiohttp.ClientSession() as s:
        status, body = await get(s, f"{base}/health")
        assert status == 503 and body["status"] == "no_model" and body["model_version"] is None
        status, body = await get(s, f"{base}/signal?symbol=BTC/USDT")
        assert status == 503 and body == {
            "error": "no model loaded yet",
            "status": 503,
            "last_reload_error": None,
        }

        publish(tmp_path, "v0001")
        await poll_health(s, base, lambda b: b["status"] == "ok")
        status, body = await get(s, f"{base}/signal")
        assert status == 400 and body["error"] == "missing query parameter 'symbol'"
        status, body = await get(s, f"{base}/signal?symbol=")
        assert status == 400
        status, body = await get(s, f"{base}/signal?symbol=DOGE/USDT")
        assert status == 404 and body["error"] == "unknown symbol DOGE/USDT"
        assert body["symbols"] == ["BTC/USDT", "ETH/USDT"]
        status, body = await get(s, f"{base}/nope")
        assert status == 404 and body["status"] == 404 and isinstance(body["error"], str)
        async with s.post(f"{base}/signal?symbol=BTC/USDT") as resp:
            assert resp.status == 405 and (await resp.json())["status"] == 405


async def test_bad_predictions_are_500_not_crashes() -> None:
    class Bad:
        version, symbols = "bad", {"BTC/USDT"}

        def __init__(self) -> None:
            self.mode = "nan"

        def predict(self, symbol: str, frame: pd.DataFrame) -> dict[str, Any]:
            if self.mode == "raise":
                raise RuntimeError("boom")
            return {"symbol": symbol, "p_up": math.nan, "signal": 0, "as_of": frame.index[-1], "models": {}}

    bad = Bad()
    service = SignalService(StaticProviderFactory(bad), source(), cache_size=0)
    await service.reload()
    with pytest.raises(SignalError) as err:
        await service.signal("BTC/USDT")
    assert err.value.status == 500 and "p_up is nan" in err.value.message
    bad.mode = "raise"
    with pytest.raises(SignalError) as err:
        await service.signal("BTC/USDT")
    assert err.value.status == 500 and "RuntimeError: boom" in err.value.message
    await service.stop()


async def test_metrics_parse_and_count_requests(tmp_path: Path) -> None:
    publish(tmp_path, "v0001")
    app = make_app(DirFactory(tmp_path), source(), reload_interval=0.05)
    async with running(app) as base, aiohttp.ClientSession() as s:
        await poll_health(s, base, lambda b: b["status"] == "ok")
        for _ in range(3):
            assert (await get(s, f"{base}/signal?symbol=BTC/USDT"))[0] == 200
        assert (await get(s, f"{base}/signal?symbol=ETH/USDT"))[0] == 200
        assert (await get(s, f"{base}/signal?symbol=XRP/USDT"))[0] == 404
        assert (await get(s, f"{base}/signal"))[0] == 400
        assert (await get(s, f"{base}/missing"))[0] == 404
        async with s.get(f"{base}/metrics") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
        m = metric_samples(text)
        req = "mevsuite_ml_requests_total"
        assert m[(req, (("route", "/signal"), ("status", "200")))] == 4
        assert m[(req, (("route", "/signal"), ("status", "404")))] == 1
        assert m[(req, (("route", "/signal"), ("status", "400")))] == 1
        assert m[(req, (("route", "unmatched"), ("status", "404")))] == 1
        assert m[(req, (("route", "/health"), ("status", "200")))] >= 1
        # BTC repeated on the same candles: computed once, then cached
        assert m[("mevsuite_ml_inference_seconds_count", ())] == 2
        assert m[("mevsuite_ml_signals_total", (("outcome", "ok"),))] == 4
        assert m[("mevsuite_ml_model_info", (("version", "v0001"),))] == 1
        assert m[("mevsuite_ml_model_reloads_total", ())] == 1
        assert m[("mevsuite_ml_model_reload_failures_total", ())] == 0
        assert m[("mevsuite_ml_model_loaded_timestamp_seconds", ())] > 1e9


async def test_inprocess_and_http_clients_agree(tmp_path: Path) -> None:
    publish(tmp_path, "v0001", bias=0.55)
    app = make_app(DirFactory(tmp_path), source(), reload_interval=0.05)
    async with running(app) as base, HttpSignalClient(base) as http:
        local = SignalClient(app)
        async with asyncio.timeout(POLL_S):
            await app[SERVICE_KEY].wait_loaded()
        for symbol in ("BTC/USDT", "ETH/USDT"):
            a, b = await local.signal(symbol), await http.signal(symbol)
            assert a == b and json.loads(json.dumps(a)) == a
            assert type(a["p_up"]) is float and type(a["signal"]) is int and type(a["as_of"]) is str
        for bad in ("NOPE/USDT", ""):
            with pytest.raises(SignalError) as e1:
                await local.signal(bad)
            with pytest.raises(SignalError) as e2:
                await http.signal(bad)
            assert (e1.value.status, e1.value.payload) == (e2.value.status, e2.value.payload)
        h1, h2 = await local.health(), await http.health()
        for h in (h1, h2):
            h.pop("uptime_s")
        assert h1 == h2 and h1["model_version"] == "v0001"


async def test_cache_follows_new_candles() -> None:
    provider = BiasProvider("v1", [], 0.5)  # empty symbols: covers any symbol with candles
    src = source()
    service = SignalService(StaticProviderFactory(provider), src)
    assert await service.reload() is True
    first = await service.signal("BTC/USDT")
    first["models"]["xgboost"] = -1.0  # callers get copies
    again = await service.signal("BTC/USDT")
    assert provider.calls == 1 and again["models"]["xgboost"] != -1.0
    src.put("BTC/USDT", candles(n=201, seed=1))
    newer = await service.signal("BTC/USDT")
    assert provider.calls == 2 and newer["as_of"] > first["as_of"]
    await service.stop()


async def test_momentum_provider_and_static_factory_swap() -> None:
    factory = StaticProviderFactory(MomentumProvider("m1", lookback=10))
    service = SignalService(factory, source(), reload_interval=0.05)
    await service.start()
    try:
        async with asyncio.timeout(POLL_S):
            assert await service.wait_loaded() == "m1"
        out = await SignalClient(service).signal("ETH/USDT")
        assert (
            0 < out["p_up"] < 1
            and out["signal"] == signal_from_p(out["p_up"])
            and out["model_version"] == "m1"
        )
        factory.set_provider(MomentumProvider("m2", lookback=10, k=3.0))
        deadline = time.monotonic() + POLL_S
        while service.version != "m2":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert (await service.signal("ETH/USDT"))["model_version"] == "m2"
    finally:
        await service.stop()


def test_signal_from_p() -> None:
    ps = [0.0, 0.44, 0.45, 0.46, 0.5, 0.54, 0.55, 0.56, 1.0]
    assert [signal_from_p(p) for p in ps] == [-1, -1, 0, 0, 0, 0, 0, 1, 1]
    assert signal_from_p(0.6, 0.2) == 0 and signal_from_p(0.1, short=False) == 0
    backtest = pytest.importorskip("ml.backtest")
    for band in (0.0, 0.05):
        for short in (True, False):
            expect = backtest.positions_from_proba(np.array(ps), band=band, short=short)
            assert [signal_from_p(p, band, short=short) for p in ps] == [int(v) for v in expect]


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    out = df.reset_index()
    out["timestamp"] = out["timestamp"].map(lambda t: t.isoformat())
    out.to_csv(path, index=False)
    return path


def test_csv_candle_source_rereads_changed_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "BTC_USDT.csv", candles(n=120))
    src = CsvCandleSource(path)
    (symbol,) = src.symbols()
    assert len(src.recent(symbol)) == 120 and len(src.recent(symbol, 50)) == 50
    assert list(src.recent(symbol).columns) == ["open", "high", "low", "close", "volume"]
    write_csv(path, candles(n=130))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert len(src.recent(symbol)) == 130
    with pytest.raises(KeyError):
        src.recent("NOPE")


# -- the real ml.registry.ModelRegistry (real features + CausalPreprocessor; a tiny deterministic model) -----


class TinyModel:
    """Logistic on the first feature with a fixed bias: a fast, deterministic stand-in for a DirectionModel."""

    name = "tiny"
    seq_len = 1

    def __init__(self, bias: float = 0.0, w: float = 0.1) -> None:
        self.bias, self.w = bias, w

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.bias + self.w * np.asarray(X, dtype=np.float64)[:, 0])))

    def save(self, directory: Path) -> None:
        (Path(directory) / "tiny.json").write_text(json.dumps({"bias": self.bias, "w": self.w}))

    @classmethod
    def load(cls, directory: Path) -> TinyModel:
        return cls(**json.loads((Path(directory) / "tiny.json").read_text()))


class TinySeqModel(TinyModel):
    """A sequence stand-in: P(up) from the mean of the first feature over the last `seq_len` rows (NaN before)."""

    name = "tinyseq"
    seq_len = 5

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        x = pd.Series(np.asarray(X, dtype=np.float64)[:, 0]).rolling(self.seq_len).mean().to_numpy()
        return 1.0 / (1.0 + np.exp(-(self.bias + self.w * x)))


BTC = candles(n=400, seed=1)


def publish_real(
    root: Path,
    version: str,
    bias: float,
    *,
    set_latest: bool = True,
    extra_columns: Iterable[str] = (),
    models: dict[str, Any] | None = None,
) -> None:
    features = pytest.importorskip("ml.features")
    registry = pytest.importorskip("ml.registry")
    for cls in (TinyModel, TinySeqModel):  # model directories are data: the test kinds are registered in code
        registry.register_model_kind(cls.name, cls)
    fcfg = features.FeatureConfig(patterns=False)
    feats = features.build_features(BTC, config=fcfg)
    pre = features.CausalPreprocessor().fit(feats)
    meta = {
        "horizon": 1,
        "target": {"venue": "test", "symbol": "BTC/USDT", "timeframe_seconds": 3600.0},
        "others": {},
        "warmup_rows": 200,
        "feature_config": fcfg.to_dict(),
        "feature_columns": [*feats.columns, *extra_columns],
        "models": {kind: {} for kind in (models or {"tiny": None})},
        "evaluation_defaults": {"band": 0.05, "short": True},
    }
    registry.ModelRegistry(root).publish(
        models=models or {"tiny": TinyModel(bias)},
        preprocessor=pre,
        meta=meta,
        version=version,
        set_latest=set_latest,
    )


async def test_real_registry_latest_hot_reload_and_broken_versions(tmp_path: Path) -> None:
    from ml.registry import ModelRegistry
    from ml.serve import RegistryProviderFactory

    publish_real(tmp_path, "v0001", bias=-3.0)
    src = InMemoryCandleSource({"BTC/USDT": BTC, "ETH/USDT": candles(n=400, seed=2)})
    app = make_app(RegistryProviderFactory(tmp_path, src), src, reload_interval=0.05)
    async with running(app) as base, aiohttp.ClientSession() as s, HttpSignalClient(base, session=s) as http:
        health = await poll_health(s, base, lambda b: b["status"] == "ok")
        assert health["model_version"] == "v0001" and health["symbols"] == ["BTC/USDT"]
        one = await http.signal("BTC/USDT")
        assert one["model_version"] == "v0001" and set(one["models"]) == {"tiny"} and one["signal"] == -1
        assert one["p_up"] == one["models"]["tiny"] < 0.45 and one["as_of"] == BTC.index[-1].isoformat()
        assert one == await SignalClient(app).signal("BTC/USDT")
        with pytest.raises(SignalError) as err:
            await http.signal("ETH/USDT")  # candles, but the model's target is BTC/USDT
        assert err.value.status == 404 and "does not cover ETH/USDT" in err.value.message

        publish_real(tmp_path, "v0002", bias=3.0)
        health = await poll_health(s, base, lambda b: b["model_version"] == "v0002")
        assert health["status"] == "ok" and health["last_reload_error"] is None
        two = await http.signal("BTC/USDT")
        assert two["model_version"] == "v0002" and two["signal"] == 1 and two["p_up"] > 0.55

        # v0003: its model files are damaged -> the load fails, v0002 keeps serving
        publish_real(tmp_path, "v0003", bias=0.0, set_latest=False)
        (tmp_path / "v0003" / "models" / "tiny" / "tiny.json").unlink()
        ModelRegistry(tmp_path).set_latest("v0003")
        health = await poll_health(s, base, lambda b: b["last_reload_error"] is not None)
        assert health["status"] == "degraded" and health["model_version"] == "v0002"
        assert health["latest_version"] == "v0003" and "FileNotFoundError" in health["last_reload_error"]
        assert (await http.signal("BTC/USDT"))["model_version"] == "v0002"

        # v0004 loads but cannot predict (a feature column the builder does not make): rejected before the swap
        publish_real(tmp_path, "v0004", bias=0.0, extra_columns=["no_such_feature"])
        health = await poll_health(s, base, lambda b: "v0004" in (b["last_reload_error"] or ""))
        assert health["model_version"] == "v0002" and "missing" in health["last_reload_error"]
        assert (await http.signal("BTC/USDT"))["model_version"] == "v0002"
        m = metric_samples((await get(s, f"{base}/metrics"))[1])
        assert m[("mevsuite_ml_model_reload_failures_total", ())] == 2
        assert m[("mevsuite_ml_model_reloads_total", ())] == 4


def test_registry_provider_matches_loaded_model_predict_proba(tmp_path: Path) -> None:
    from ml.registry import ModelRegistry
    from ml.serve import RegistryProviderFactory

    models = {"tiny": TinyModel(0.3, w=0.4), "tinyseq": TinySeqModel(-0.2, w=0.7)}
    publish_real(tmp_path, "v0001", 0.0, models=models)
    src = InMemoryCandleSource({"BTC/USDT": BTC})
    provider = RegistryProviderFactory(tmp_path, src).load("v0001")
    assert provider.symbols == {"BTC/USDT"} and provider.context == 5 and provider.lookback == 1024
    publish_real(tmp_path, "v0002", 0.0)
    assert RegistryProviderFactory(tmp_path).latest_version() == "v0002"
    assert RegistryProviderFactory(tmp_path / "v0001").latest_version() == "v0001"  # a version dir is pinned
    out = provider.predict("BTC/USDT", BTC)  # predicts only the last window
    full = ModelRegistry(tmp_path).load("v0001").predict_proba(BTC).iloc[-1]  # every row
    assert out["models"] == pytest.approx({"tiny": full["tiny"], "tinyseq": full["tinyseq"]}, rel=1e-12)
    assert out["p_up"] == pytest.approx(full["mean"], rel=1e-12)
    assert out["signal"] == signal_from_p(out["p_up"], 0.05)
    with pytest.raises(SignalError) as err:
        provider.predict("BTC/USDT", BTC.tail(3))  # shorter than the longest model window
    assert err.value.status == 422


def write_btc_csv(path: Path, df: pd.DataFrame) -> Path:
    write_csv(path, df)
    frame = pd.read_csv(path)
    frame.insert(0, "symbol", "BTC/USDT")
    frame.to_csv(path, index=False)
    return path


def _run_serve(tmp_path: Path, port: int, reload_interval: float = 0.2) -> subprocess.Popen[str]:
    (tmp_path / "models").mkdir(exist_ok=True)
    csv = write_btc_csv(tmp_path / "btc.csv", BTC)
    code = (
        "import sys; from ml.serve import serve_main; from ml.registry import register_model_kind; "
        "from tests.ml.test_serve import TinyModel; register_model_kind('tiny', TinyModel); "
        f"sys.exit(serve_main({str(tmp_path / 'models')!r}, [{str(csv)!r}], '127.0.0.1', {port}, "
        f"{reload_interval}))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def test_serve_main_url_signal_sighup_reload_and_sigterm(tmp_path: Path) -> None:
    publish_real(tmp_path / "models", "v0001", bias=-3.0)
    proc = _run_serve(tmp_path, 0, reload_interval=3600)  # only SIGHUP reloads within the test
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match and int(match.group(1)) > 0, (
            line,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        async with aiohttp.ClientSession() as s, HttpSignalClient(match.group(0), session=s) as client:
            await poll_health(s, match.group(0), lambda b: b["status"] == "ok")
            assert (await client.signal("BTC/USDT"))["model_version"] == "v0001"
            publish_real(tmp_path / "models", "v0002", bias=3.0)
            proc.send_signal(signal.SIGHUP)
            await poll_health(s, match.group(0), lambda b: b["model_version"] == "v0002")
            assert (await client.signal("BTC/USDT"))["signal"] == 1
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(asyncio.to_thread(proc.wait), 10)
        assert rc == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()


async def test_serve_main_fails_loudly_when_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        proc = _run_serve(tmp_path, sock.getsockname()[1])
        try:
            out, err = await asyncio.wait_for(asyncio.to_thread(proc.communicate), 20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 2 and "cannot listen on 127.0.0.1:" in err and "http://" not in out


def test_serve_main_rejects_missing_model_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ml.serve import serve_main

    csv = write_btc_csv(tmp_path / "btc.csv", BTC)
    assert serve_main(tmp_path / "nope", [str(csv)]) == 2
    assert "does not exist" in capsys.readouterr().err
