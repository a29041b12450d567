"""Bad input files never cause a traceback: every CLI file input gets random, truncated and hostile documents.

For each input (``run dex-arb --book / --pools / --checkpoint``, ``quote --state``, ``--config``, ``ml train
--ml-config``, ``ml evaluate --model``) a seeded generator derives malformed files from a valid one: truncations,
random JSON values, a value of the wrong JSON type at a random place, random bytes, non-UTF-8, an empty file and
100,000 nested brackets (which would overflow the C stack of a plain ``json.loads`` once ``py_ecc`` has raised the
recursion limit).  The command must fail with a non-zero exit and one line on stderr — never a traceback.

The CLI runs in-process (click's runner), so the many cases stay fast; every file is validated before anything
is started (no anvil for a bad ``--book``).
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import eth_account  # noqa: F401  (imports py_ecc, which raises the recursion limit to 100,000: as in the real CLI)
import pytest
from click.testing import CliRunner, Result

from bots.app.cli import main
from tests.chains.state.test_snapshot import V2_DOC
from tests.fixtures.devnet import Devnet

SEED = 20261207
CASES_PER_KIND = 12  # per mutation kind and input; the long profile is `make test-long` territory
UNREACHABLE = "http://127.0.0.1:9/"  # never contacted: a bad file must be refused before the fork starts

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


# -- the generator ------------------------------------------------------------------------------------------------
def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "str", "null", "bool", "float", "bigint"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-(10**6), 10**6)
    if kind == "bigint":
        return rng.choice([2**256, -(2**255), 10**40])
    if kind == "float":
        return rng.choice([0.5, -1e300, 1e-9, 3.25])
    if kind == "str":
        return rng.choice(
            ["", "0x", "0x" + "ab" * 20, "v2", "uniswap_v3", "\u00e9\u2603", "1e6", "../x", "a" * 300]
        )
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(["a", "pools", "kind", "format", "x y"]): _random_json(rng, depth + 1)
        for _ in range(rng.randint(0, 3))
    }


def _category(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copy


def bad_documents(valid: Any, rng: random.Random, *, typed: bool = True) -> Iterator[tuple[str, bytes]]:
    """(case name, file bytes): malformed variants of the JSON document ``valid``.

    ``typed``: also put a value of another JSON type at a random place (only for inputs whose every value has one
    type — a pool file's ``fee`` may be a number or a decimal string)."""
    raw = json.dumps(valid, indent=1).encode()
    yield "empty", b""
    yield "deep-array", DEEP_ARRAY
    yield "deep-object", DEEP_OBJECT
    yield "not-utf8", b"\xff\xfe\x00" + raw[:40]
    yield "nul-bytes", b"\x00" * 64
    yield "huge-number", b"1" + b"0" * 5_000
    for i in range(CASES_PER_KIND):
        yield f"bytes-{i}", bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    for i in range(CASES_PER_KIND):
        cut = rng.randint(1, len(raw) - 1)
        yield f"truncated-{i}@{cut}", raw[:cut]
    for i in range(CASES_PER_KIND):
        value = _random_json(rng)
        if value == valid or (isinstance(value, list) and not value):
            continue  # an empty list is a valid (empty) pool file
        yield f"random-{i}", json.dumps(value).encode()
    if typed:
        paths = list(_paths(valid))
        for i in range(CASES_PER_KIND):
            path = rng.choice(paths)
            node: Any = valid
            for part in path:
                node = node[part]
            old = node
            new = _random_json(rng)
            while _category(new) == _category(old):
                new = _random_json(rng)
            yield (
                f"wrong-type-{i}@{'.'.join(map(str, path))}",
                json.dumps(_replaced(valid, path, new)).encode(),
            )


# -- running the CLI in-process -----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _private_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))  # no reputation key in the real home


def cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, args, env={"MEVSUITE_DB_URL": None, **(env or {})}, catch_exceptions=True)


def assert_one_line_error(result: Result, case: str, *, mentions: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{case}: raised {result.exception!r}\n{result.stderr[-2000:]}"
    )
    assert result.exit_code != 0, f"{case}: exit 0\n{result.stdout[-500:]}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (
        f"{case}: stderr is not one error line: {lines[:5]}"
    )
    assert mentions in lines[0], f"{case}: {lines[0]!r} does not mention {mentions!r}"
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def book_doc(devnet: Devnet) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(devnet.book.to_json())
    # keep the document small: a few pools and tokens are as good as forty for malformed variants
    doc["pools"] = doc["pools"][:3]
    return doc


def test_bad_address_books(book_doc: dict[str, Any], tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "book.json"
    for case, data in bad_documents(book_doc, rng):
        path.write_bytes(data)
        r = cli(["run", "dex-arb", "--fork-url", UNREACHABLE, "--book", str(path)])
        assert_one_line_error(r, case, mentions="address book")


def test_bad_pool_files(book_doc: dict[str, Any], tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    valid = [{k: p[k] for k in ("address", "kind", "token0", "token1", "fee")} for p in book_doc["pools"]]
    path = tmp_path / "pools.json"
    for case, data in bad_documents(valid, rng, typed=False):
        path.write_bytes(data)
        r = cli(
            ["run", "dex-arb", "--fork-url", UNREACHABLE, "--pools", str(path), "--weth", book_doc["weth"]]
        )
        assert_one_line_error(r, case, mentions="pools file")
    for field, value in [
        ("fee", True),
        ("fee", -1),
        ("fee", [30]),
        ("kind", "v4"),
        ("address", "0x12"),
        ("token0", None),
        ("token1", 5),
    ]:
        path.write_text(json.dumps([{**valid[0], field: value}]))
        r = cli(
            ["run", "dex-arb", "--fork-url", UNREACHABLE, "--pools", str(path), "--weth", book_doc["weth"]]
        )
        assert_one_line_error(r, f"{field}={value!r}", mentions="pools file")


def test_bad_discovery_checkpoints(book_doc: dict[str, Any], tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    pool = book_doc["pools"][0]
    valid = {
        "format": "mevsuite.discovery-checkpoint",
        "scanned": {"uniswap": 12},
        "pools": [
            {
                "factory": "uniswap",
                "kind": "v2",
                "address": pool["address"],
                "token0": pool["token0"],
                "token1": pool["token1"],
                "fee": 30,
                "tick_spacing": 0,
                "block": 3,
            }
        ],
    }
    from chains.state.discovery import CHECKPOINT_FORMAT

    valid["format"] = CHECKPOINT_FORMAT
    path = tmp_path / "ck.json"
    factory = book_doc["v2"]["uniswap"]["factory"]
    for case, data in bad_documents(valid, rng):
        path.write_bytes(data)
        r = cli(
            [
                "run",
                "dex-arb",
                "--fork-url",
                UNREACHABLE,
                "--weth",
                book_doc["weth"],
                "--checkpoint",
                str(path),
                "--v2-factory",
                f"uniswap={factory}",
            ]
        )
        assert_one_line_error(r, case, mentions="checkpoint")


V2_STATE = V2_DOC  # a valid V2 pool-state document (the snapshot tests' own)


def test_bad_state_files(tmp_path: Path) -> None:
    """``quote`` answers errors as one JSON line on stdout (its documented contract) with exit 1."""
    rng = random.Random(SEED + 3)
    path = tmp_path / "state.json"
    for case, data in bad_documents(V2_STATE, rng):
        if case.startswith("wrong-type") and case.endswith("@block_hash"):
            continue  # block_hash is informational: any value is accepted
        path.write_bytes(data)
        r = cli(["quote", "--state", str(path), "--amount-in", "1000", "--token-in", "0"])
        assert r.exception is None or isinstance(r.exception, SystemExit), f"{case}: {r.exception!r}"
        assert r.exit_code == 1, f"{case}: exit {r.exit_code}: {r.stdout[-300:]}"
        lines = r.stdout.strip().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["error"]["type"] == "SnapshotError", (case, lines[:3])
        assert "Traceback" not in r.stdout + r.stderr


EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "mevsuite.example.toml"


def _bad_tomls(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    text = EXAMPLE_CONFIG.read_text()
    lines = text.splitlines()
    settings = [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
    yield "not-utf8", b"\xff\xfe[chain]\n"
    yield "deep-array", b"x = " + b"[" * 100_000 + b"]" * 100_000
    yield "deep-table", b"x = " + b"{a = " * 2_000 + b"1" + b"}" * 2_000
    yield "unknown-key", text.encode() + b"\n[bot]\nnmae = 'x'\n"
    for i in range(CASES_PER_KIND):
        yield f"bytes-{i}", bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
    for i in range(CASES_PER_KIND):
        n = rng.choice(settings)
        key, _, value = lines[n].partition("=")
        cut = rng.randint(0, max(len(value.strip()) - 1, 0))
        yield (
            f"truncated-{i}@{key.strip()}",
            "\n".join([*lines[:n], f"{key}= {value.strip()[:cut]}"]).encode(),
        )
    for i in range(CASES_PER_KIND):
        n = rng.choice(settings)
        key, _, value = lines[n].partition("=")
        wrong = rng.choice(
            ['"abc"', "[1, 2]", "{ x = 1 }", "-5", "1e999", "2026-12-07", '"' + "a" * 200 + '"']
        )
        yield (
            f"wrong-{i}@{key.strip()}={wrong[:20]}",
            "\n".join([*lines[:n], f"{key}= {wrong}", *lines[n + 1 :]]).encode(),
        )


def test_bad_config_files(tmp_path: Path) -> None:
    """A malformed config is one ``config error`` line and exit 2; a variant that happens to be valid runs."""
    from bots.app.config import ConfigError, load_config

    rng = random.Random(SEED + 4)
    path = tmp_path / "mevsuite.toml"
    refused = 0
    for case, data in _bad_tomls(rng):
        path.write_bytes(data)
        try:
            load_config(path, env={})
            valid = True
        except ConfigError:
            valid = False
        db = tmp_path / "fuzz.db"
        r = cli(["--config", str(path), "db", "upgrade", "--url", f"sqlite+aiosqlite:///{db}"])
        if valid:
            assert r.exit_code == 0, f"{case}: a valid config failed: {r.stderr[-500:]}"
            continue
        refused += 1
        assert_one_line_error(r, case, mentions="config error")
        assert r.exit_code == 2
    assert refused >= 2 * CASES_PER_KIND  # the generator really produces malformed files


def test_bad_training_configs(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[2] / "ml" / "data" / "ohlcv" / "Bitstamp_BTCUSD_1h_excerpt.csv"
    rng = random.Random(SEED + 5)
    path = tmp_path / "train.toml"
    cases = [
        ("deep", b"x = " + b"[" * 100_000),
        ("not-utf8", b"\xff\xfe"),
        ("unknown", b"modles = ['xgboost']\n"),
        ("type", b"models = 5\n"),
    ]
    cases += [(f"bytes-{i}", bytes(rng.randrange(256) for _ in range(80))) for i in range(4)]
    for case, content in cases:
        path.write_bytes(content)
        r = cli(
            [
                "ml",
                "train",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "models"),
                "--ml-config",
                str(path),
                "--no-progress",
            ],
            env={"MEVSUITE__DB__URL": f"sqlite+aiosqlite:///{tmp_path / 'ml.db'}"},
        )
        assert_one_line_error(r, case, mentions="")
        assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir()), case


def test_bad_model_directories(tmp_path: Path) -> None:
    """``ml evaluate --model``: a registry whose files are malformed is refused with one line."""
    data = Path(__file__).resolve().parents[2] / "ml" / "data" / "ohlcv" / "Bitstamp_BTCUSD_1h_excerpt.csv"
    rng = random.Random(SEED + 6)
    root = tmp_path / "models"
    version = "20260101T000000Z-000000"
    meta = {
        "version": version,
        "models": {"xgboost": {"class": "ml.models.gbdt:XGBoostModel", "dir": "xgboost"}},
        "model_kinds": ["xgboost"],
        "feature_config": {},
        "horizon": 1,
    }
    cases = list(bad_documents(meta, rng, typed=False))
    cases += [
        (
            "dir-escape",
            json.dumps(
                {
                    **meta,
                    "models": {
                        "xgboost": {
                            **meta["models"]["xgboost"],  # type: ignore[dict-item]
                            "dir": "../../etc",
                        }
                    },
                }
            ).encode(),
        ),
        (
            "class-escape",
            json.dumps({**meta, "models": {"xgboost": {"class": "os:system", "dir": "x"}}}).encode(),
        ),
    ]
    for case, content in cases:
        shutil.rmtree(root, ignore_errors=True)
        (root / version).mkdir(parents=True)
        (root / "LATEST").write_text(version)
        (root / version / "meta.json").write_bytes(content)
        r = cli(["ml", "evaluate", "--data", str(data), "--model", str(root)])
        assert_one_line_error(r, case, mentions="")
    for case, content in [
        ("latest-escape", b"../../etc"),
        ("latest-binary", b"\xff\x00"),
        ("latest-empty", b""),
    ]:
        (root / "LATEST").write_bytes(content)
        r = cli(["ml", "evaluate", "--data", str(data), "--model", str(root)])
        assert_one_line_error(r, case, mentions="")
