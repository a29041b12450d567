"""ml.registry: a model directory is data, never code.

Classes come from fixed tables (model kind -> class, one preprocessor class), never from a name written in
meta.json / preprocessor.json; every name read from a model directory must stay inside it; malformed files,
``LATEST`` included, are one-line RegistryErrors — in the library, through ``mevsuite ml evaluate`` and in the
``ml serve`` hot reload (which keeps serving the previous version).

A crafted directory names a module whose import and whose ``load`` write marker files: the markers must never
appear.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

pytest.importorskip("xgboost")

from ml.evaluate import evaluate_main
from ml.features import CausalPreprocessor, FeatureConfig, build_features
from ml.models import XGBModel
from ml.registry import (
    ModelRegistry,
    RegistryError,
    register_model_kind,
    resolve_model_dir,
    transform_features,
    unregister_model_kind,
)
from ml.serve import RegistryProviderFactory, make_app
from tests.ml.test_serve import candles, get, metric_samples, poll_health, running
from tests.ml.test_train import make_csv

_SCRIPT = Path(sys.executable).with_name("mevsuite")
MEVSUITE: list[str] = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "bots.app.cli"]
XGB_CLASS = "ml.models.gbdt:XGBModel"
PRE_CLASS = "ml.features.preprocess:CausalPreprocessor"

BTC = candles(n=400, seed=1)


# -- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, loadable version (XGBoost, 5 trees, on the real features of 400 candles): ``<root>/v0001``."""
    root = tmp_path_factory.mktemp("good")
    fcfg = FeatureConfig(patterns=False)
    feats = build_features(BTC, config=fcfg)
    pre = CausalPreprocessor().fit(feats)
    X = transform_features(pre, feats)
    y = (np.random.default_rng(0).random(len(X)) > 0.5).astype(int)
    model = XGBModel(n_estimators=5, n_jobs=1)
    model.fit(X, y)
    meta = {
        "horizon": 1,
        "target": {"venue": "test", "symbol": "BTC/USDT", "timeframe_seconds": 3600.0},
        "others": {},
        "warmup_rows": 200,
        "feature_config": fcfg.to_dict(),
        "feature_columns": list(feats.columns),
        "models": {"xgboost": {}},
        "evaluation_defaults": {"band": 0.05, "short": True},
    }
    ModelRegistry(root).publish(models={"xgboost": model}, preprocessor=pre, meta=meta, version="v0001")
    return root / "v0001"


class Evil:
    """A module on sys.path whose import, and whose class's load/from_dict, leave marker files."""

    def __init__(self, directory: Path) -> None:
        self.name = f"evil_payload_{uuid.uuid4().hex[:8]}"  # fresh per test: never already imported
        self.imported = directory / "imported.marker"
        self.called = directory / "called.marker"
        (directory / f"{self.name}.py").write_text(
            "import pathlib\n"
            f"pathlib.Path({str(self.imported)!r}).write_text('imported')\n"
            "class Evil:\n"
            "    @classmethod\n"
            "    def load(cls, directory):\n"
            f"        pathlib.Path({str(self.called)!r}).write_text('load')\n"
            "        return cls()\n"
            "    @classmethod\n"
            "    def from_dict(cls, state):\n"
            f"        pathlib.Path({str(self.called)!r}).write_text('from_dict')\n"
            "        return cls()\n"
        )

    @property
    def target(self) -> str:
        return f"{self.name}:Evil"

    def assert_untouched(self) -> None:
        assert not self.imported.exists(), "the crafted module was imported"
        assert not self.called.exists(), "the crafted class was called"


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Evil:
    payload = tmp_path / "payload"
    payload.mkdir()
    monkeypatch.syspath_prepend(str(payload))
    return Evil(payload)


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def write(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj))


def crafted(
    good: Path, root: Path, edit: Callable[[Path], object] | None = None, version: str = "v0002"
) -> Path:
    """A copy of the good version as ``root/version``, changed by ``edit(version_dir)``."""
    target = root / version
    shutil.copytree(good, target)
    if edit is not None:
        edit(target)
    return target


def edit_meta(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        meta = read(d / "meta.json")
        change(meta)
        write(d / "meta.json", meta)

    return apply


def refused(path: Path, match: str) -> str:
    reg, version = resolve_model_dir(path)
    with pytest.raises(RegistryError, match=match) as err:
        reg.load(version)
    message = str(err.value)
    assert "\n" not in message
    return message


# -- classes only from the fixed tables --------------------------------------------------------------------------


def test_the_good_version_loads_and_predicts(good: Path, tmp_path: Path) -> None:
    loaded = ModelRegistry(good.parent).load()
    assert loaded.kinds == ["xgboost"] and type(loaded.models["xgboost"]) is XGBModel
    assert type(loaded.preprocessor) is CausalPreprocessor
    assert np.isfinite(loaded.predict_proba(BTC)["mean"].iloc[-5:]).all()
    # the recorded class is informational: without it the kind table decides
    d = crafted(good, tmp_path, edit_meta(lambda m: m["models"]["xgboost"].pop("class")))
    assert type(ModelRegistry(tmp_path).load(d.name).models["xgboost"]) is XGBModel


@pytest.mark.parametrize("target", ["EVIL", "os:system", "subprocess:Popen", "ml.models.gbdt:LGBMModel"])
def test_meta_model_class_outside_the_table_is_refused(
    good: Path, tmp_path: Path, evil: Evil, target: str
) -> None:
    target = evil.target if target == "EVIL" else target
    d = crafted(good, tmp_path, edit_meta(lambda m: m["models"]["xgboost"].update({"class": target})))
    message = refused(d, "models.xgboost.class names")
    assert f"names {target!r}, expected {XGB_CLASS}" in message and str(d) in message
    evil.assert_untouched()


def test_unknown_model_kind_is_refused(good: Path, tmp_path: Path, evil: Evil) -> None:
    def change(meta: dict[str, Any]) -> None:
        meta["models"]["evil"] = {"class": evil.target, "dir": "models/xgboost"}
        meta["model_kinds"] = ["evil"]

    d = crafted(good, tmp_path, edit_meta(change))
    refused(d, "names model kind 'evil', which is not a known kind")
    evil.assert_untouched()


@pytest.mark.parametrize(
    "target", ["EVIL", "os:system", "subprocess:Popen", "ml.features.config:FeatureConfig"]
)
def test_preprocessor_class_outside_the_table_is_refused(
    good: Path, tmp_path: Path, evil: Evil, target: str
) -> None:
    target = evil.target if target == "EVIL" else target

    def change(d: Path) -> None:
        path = d / "preprocessor" / "preprocessor.json"
        write(path, {**read(path), "class": target})

    d = crafted(good, tmp_path, change)
    message = refused(d, "preprocessor/preprocessor.json class names")
    assert f"names {target!r}, expected {PRE_CLASS}" in message
    evil.assert_untouched()


def test_publish_and_load_only_table_kinds(good: Path, tmp_path: Path) -> None:
    class Tiny:
        seq_len = 1

        def save(self, directory: Path) -> None:
            (Path(directory) / "tiny.json").write_text("{}")

        @classmethod
        def load(cls, directory: Path) -> Tiny:
            return cls()

    loaded = ModelRegistry(good.parent).load()
    reg = ModelRegistry(tmp_path / "reg")
    meta = {k: v for k, v in loaded.meta.items() if k not in ("models", "model_kinds", "version")}
    with pytest.raises(RegistryError, match="cannot publish model kind 'tiny'"):
        reg.publish(models={"tiny": Tiny()}, preprocessor=loaded.preprocessor, meta=meta)
    with pytest.raises(RegistryError, match=re.escape(f"expected {XGB_CLASS}")):
        reg.publish(models={"xgboost": Tiny()}, preprocessor=loaded.preprocessor, meta=meta)
    with pytest.raises(RegistryError, match="cannot publish a"):
        reg.publish(models={"xgboost": loaded.models["xgboost"]}, preprocessor=object(), meta=meta)
    with pytest.raises(ValueError, match="built in"):
        register_model_kind("xgboost", Tiny)
    register_model_kind("tiny", Tiny)  # code, not a model directory, extends the table
    try:
        version = reg.publish(models={"tiny": Tiny()}, preprocessor=loaded.preprocessor, meta=meta)
        assert type(reg.load(version).models["tiny"]) is Tiny
    finally:
        unregister_model_kind("tiny")
    with pytest.raises(RegistryError, match="not a known kind"):
        reg.load(version)


# -- names read from a model directory stay inside it ------------------------------------------------------------


@pytest.mark.parametrize(
    "where", ["../outside", "ABS", "a/b", "models/../models/xgboost", "models/lightgbm", 7]
)
def test_model_dir_must_be_the_kinds_plain_directory(good: Path, tmp_path: Path, where: Any) -> None:
    outside = tmp_path / "outside"  # a loadable model at every target: only the check can stop the load
    shutil.copytree(good / "models" / "xgboost", outside)
    named = str(outside) if where == "ABS" else where

    def change(d: Path) -> None:
        if named == "a/b":
            shutil.copytree(d / "models" / "xgboost", d / "a" / "b")
        if named == "models/lightgbm":
            shutil.copytree(d / "models" / "xgboost", d / "models" / "lightgbm")
        edit_meta(lambda m: m["models"]["xgboost"].update({"dir": named}))(d)

    d = crafted(good, tmp_path, change)
    message = refused(d, "models.xgboost.dir .* is not a plain name under models/")
    assert "expected 'models/xgboost'" in message


@pytest.mark.parametrize("name", ["../../../outside.json", "ABS", "sub/xgboost.json", "..", ""])
def test_model_file_name_must_be_plain(good: Path, tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside.json"
    shutil.copy(
        good / "models" / "xgboost" / "xgboost.json", outside
    )  # a valid model file: old code loads it
    named = str(outside) if name == "ABS" else name

    def change(d: Path) -> None:
        (d / "models" / "xgboost" / "sub").mkdir()
        shutil.copy(outside, d / "models" / "xgboost" / "sub" / "xgboost.json")
        path = d / "models" / "xgboost" / "model.json"
        meta = read(path)
        meta["state"]["model_file"] = named
        write(path, meta)

    d = crafted(good, tmp_path, change)
    message = refused(d, "cannot load model 'xgboost'")
    assert "is not a plain file name" in message


def test_symlinks_leading_out_are_refused(good: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(good / "models" / "xgboost", outside)

    def link_file(d: Path) -> None:
        (d / "models" / "xgboost" / "xgboost.json").unlink()
        (d / "models" / "xgboost" / "xgboost.json").symlink_to(outside / "xgboost.json")

    def link_dir(d: Path) -> None:
        shutil.rmtree(d / "models" / "xgboost")
        (d / "models" / "xgboost").symlink_to(outside, target_is_directory=True)

    assert "leads out of the directory" in refused(crafted(good, tmp_path, link_file, "v0002"), "cannot load")
    refused(crafted(good, tmp_path, link_dir, "v0003"), "models/xgboost/ leads out of the model directory")


@pytest.mark.parametrize("pointer", ["../../x", "/etc", "v0001/models", "v 1", "x" * 300, "\u00e9t\u00e9"])
def test_malformed_latest_pointer_is_refused(good: Path, tmp_path: Path, pointer: str) -> None:
    root = tmp_path / "a" / "b" / "reg"
    shutil.copytree(good, root / "v0001")
    shutil.copytree(good, tmp_path / "x")  # root/../../x/meta.json exists
    (root / "LATEST").write_text(pointer + "\n", encoding="utf-8")
    reg = ModelRegistry(root)
    with pytest.raises(RegistryError, match=r"LATEST holds .* which is not a version id"):
        reg.latest()
    with pytest.raises(RegistryError, match="not a version id"):
        resolve_model_dir(root)
    with pytest.raises(RegistryError, match="not a version id"):
        reg.load()
    (root / "LATEST").write_text("v0001\n")
    assert reg.latest() == "v0001"


# -- malformed / wrongly typed files are RegistryErrors ----------------------------------------------------------


@pytest.mark.parametrize(
    "file",
    ["meta.json", "preprocessor/preprocessor.json", "preprocessor/state.json", "models/xgboost/model.json"],
)
@pytest.mark.parametrize(
    "body", ['{"horizon": 1, "tar', "[1, 2]", "null", '"text"', "[" * 50_000, "\xff\xfe"]
)
def test_malformed_json_is_a_registry_error(good: Path, tmp_path: Path, file: str, body: str) -> None:
    d = crafted(good, tmp_path, lambda d: (d / file).write_bytes(body.encode("latin-1")))
    message = refused(d, ".")
    assert file.rsplit("/", 1)[-1] in message


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(models=[]),
        lambda m: m.update(models={"xgboost": "x"}),
        lambda m: m.update(model_kinds="xgboost"),
        lambda m: m.update(model_kinds=[1]),
        lambda m: m.update(model_kinds=[], models={}),
        lambda m: m.update(horizon="1"),
        lambda m: m.pop("horizon"),
        lambda m: m.update(target="BTC"),
        lambda m: m.update(feature_columns="close"),
        lambda m: m.update(feature_config=[]),
        lambda m: m.update(feature_config={"no_such_key": 1}),
        lambda m: m.update(others={"eth": "ETH/USDT"}),
        lambda m: m.update(training_ranges=[{"venue": "x", "symbol": "BTC/USDT"}]),
        lambda m: m["models"]["xgboost"].update({"class": ["x"]}),
    ],
)
def test_wrongly_typed_meta_is_a_registry_error(good: Path, tmp_path: Path, change: Any) -> None:
    refused(crafted(good, tmp_path, edit_meta(change)), "meta.json")


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(n_features="127"),
        lambda m: m.update(config=[]),
        lambda m: m.update(config={"n_estimators": "many"}),
        lambda m: m.update(state={"best_iteration": "4"}),
        lambda m: m.update(state=[]),
        lambda m: m.update(kind="lightgbm"),
    ],
)
def test_wrongly_typed_model_json_is_a_registry_error(good: Path, tmp_path: Path, change: Any) -> None:
    def apply(d: Path) -> None:
        path = d / "models" / "xgboost" / "model.json"
        meta = read(path)
        change(meta)
        write(path, meta)

    refused(crafted(good, tmp_path, apply), "cannot load model 'xgboost'")


# -- the CLI and the service -------------------------------------------------------------------------------------


def test_evaluate_main_prints_one_error_line(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = make_csv(tmp_path / "Binance_BTCUSDT_1h_2025.csv", start="2025-01-01", n=300)
    d = crafted(good, tmp_path, edit_meta(lambda m: m["models"]["xgboost"].update({"class": "os:system"})))
    assert evaluate_main(str(csv), str(d)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model directory ") and err.count("\n") == 1 and "'os:system'" in err


def test_cli_evaluate_refuses_a_crafted_model_directory(good: Path, tmp_path: Path, evil: Evil) -> None:
    csv = make_csv(tmp_path / "Binance_BTCUSDT_1h_2025.csv", start="2025-01-01", n=300)
    d = crafted(good, tmp_path, edit_meta(lambda m: m["models"]["xgboost"].update({"class": evil.target})))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEVSUITE")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(evil.imported.parent), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [*MEVSUITE, "ml", "evaluate", "--data", str(csv), "--model", str(d)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: model directory "), result.stderr
    assert f"models.xgboost.class names '{evil.target}', expected {XGB_CLASS}" in lines[0]
    evil.assert_untouched()


async def test_serve_hot_reload_refuses_crafted_versions_and_keeps_serving(
    good: Path, tmp_path: Path, evil: Evil, caplog: pytest.LogCaptureFixture
) -> None:
    from ml.serve import InMemoryCandleSource

    root = tmp_path / "reg"
    shutil.copytree(good, root / "v0001")
    reg = ModelRegistry(root)
    reg.set_latest("v0001")
    src = InMemoryCandleSource({"BTC/USDT": BTC})
    app = make_app(RegistryProviderFactory(root, src), src, reload_interval=0.05)
    caplog.set_level(logging.WARNING, logger="ml.serve")
    async with running(app) as base, aiohttp.ClientSession() as s:
        health = await poll_health(s, base, lambda b: b["status"] == "ok")
        assert health["model_version"] == "v0001"

        # a crafted new version: refused (never imported), counted, logged; v0001 keeps serving
        crafted(good, root, edit_meta(lambda m: m["models"]["xgboost"].update({"class": evil.target})))
        reg.set_latest("v0002")
        health = await poll_health(s, base, lambda b: "v0002" in (b["last_reload_error"] or ""))
        assert health["status"] == "degraded" and health["model_version"] == "v0001"
        assert "RegistryError" in health["last_reload_error"] and evil.target in health["last_reload_error"]
        status, body = await get(s, f"{base}/signal?symbol=BTC/USDT")
        assert status == 200 and body["model_version"] == "v0001"
        m = metric_samples((await get(s, f"{base}/metrics"))[1])
        assert m[("mevsuite_ml_model_reload_failures_total", ())] == 1
        assert any(
            "v0002" in r.getMessage() and "still serving version v0001" in r.getMessage()
            for r in caplog.records
        )

        # a malformed LATEST: the check fails, v0001 keeps serving
        (root / "LATEST").write_text("../../x\n")
        health = await poll_health(s, base, lambda b: "not a version id" in (b["last_reload_error"] or ""))
        assert health["model_version"] == "v0001"
        status, body = await get(s, f"{base}/signal?symbol=BTC/USDT")
        assert status == 200 and body["model_version"] == "v0001"
    evil.assert_untouched()
