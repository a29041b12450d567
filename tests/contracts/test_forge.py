"""The forge test suites of ``contracts/``, run from pytest, and the committed artifact's freshness.

* ``test_forge_unit``: ``forge test`` on the suites that need no chain: ``ArbExecutorUnit.t.sol`` (ownership,
  guards outside a run, withdrawals, the tip rule) and ``ArbExecutorMockWorld.t.sol`` (mock tokens and V2-style
  pairs with any fee: the V2 flash fee from the plan, lenders and an "Aave pool" calling back the wrong way).
* ``test_forge_fork``: the fork suite against a fork of the session devnet (real Uniswap V2/V3 + Aave bytecode);
  the addresses it needs are passed as ``MEVSUITE_*`` environment variables (``vm.envAddress``). It includes the
  malicious pools (lying about amounts, paying less than they claim, wrong delta signs, re-entering) and the tip
  paid from profit in every funding mode.
* ``test_artifact_is_fresh``: a fresh ``forge build`` gives exactly the committed ``chains/data/ArbExecutor.json``
  (a build in this session's empty temporary dirs, shared with the forge test runs: one compile, not three).

Forge writes its build into a temporary directory (never into the source tree), shared by the two runs.
Any forge failure fails the test with forge's whole output.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chains.send.executor import ARTIFACT_PATH, CONTRACTS_DIR, export_artifact, forge_binary
from tests.contracts.chainhelp import find_pool
from tests.fixtures.devnet import Devnet


@pytest.fixture(scope="module")
def forge_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("forge")
    yield base / "out", base / "cache"


def _forge_test(dirs: tuple[Path, Path], *args: str, env: dict[str, str] | None = None) -> str:
    out, cache = dirs
    cmd = [str(forge_binary()), "test", "-vv", "--out", str(out), "--cache-path", str(cache), *args]
    proc = subprocess.run(
        cmd,
        cwd=CONTRACTS_DIR,
        capture_output=True,
        text=True,
        timeout=170,
        env={**os.environ, **(env or {})},
        check=False,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"forge test failed (exit {proc.returncode}): {' '.join(cmd)}\n{output}", pytrace=False)
    return output


def _passed(output: str) -> int:
    return sum(1 for line in output.splitlines() if line.lstrip().startswith("[PASS]"))


def test_forge_unit(forge_dirs: tuple[Path, Path]) -> None:
    output = _forge_test(forge_dirs, "--no-match-path", "test/fork/*")
    assert _passed(output) == 13 + 8, output
    assert "[FAIL" not in output


def test_forge_fork(forge_dirs: tuple[Path, Path], devnet: Devnet) -> None:
    book = devnet.book
    env = {
        "MEVSUITE_WETH": book.weth,
        "MEVSUITE_USDC": book.token("USDC").address,
        "MEVSUITE_DAI": book.token("DAI").address,
        "MEVSUITE_V2_WETH_USDC": find_pool(book, "uniswap", "WETH", "USDC").address,
        "MEVSUITE_V2_DAI_USDC": find_pool(book, "uniswap", "DAI", "USDC").address,
        "MEVSUITE_V2_WETH_DAI": find_pool(book, "uniswap", "WETH", "DAI").address,
        "MEVSUITE_V3_WETH_USDC_3000": find_pool(book, "uniswap_v3", "WETH", "USDC", 3000).address,
        "MEVSUITE_V3_WETH_USDC_500": find_pool(book, "uniswap_v3", "WETH", "USDC", 500).address,
        "MEVSUITE_V2_LENDER": find_pool(book, "uniswap", "WETH", "USDT").address,
        "MEVSUITE_V3_LENDER": find_pool(book, "uniswap_v3", "WETH", "USDT", 500).address,
        "MEVSUITE_AAVE_POOL": book.aave.pool,
        "MEVSUITE_AAVE_CONFIGURATOR": book.aave.pool_configurator,
        "MEVSUITE_AAVE_ADMIN": book.deployer,
    }
    output = _forge_test(
        forge_dirs, "--fork-url", devnet.node.http_url, "--match-path", "test/fork/*", env=env
    )
    assert _passed(output) == 25, output
    assert "[FAIL" not in output


def test_artifact_is_fresh(forge_dirs: tuple[Path, Path]) -> None:
    """``forge build`` in this session's own (initially empty) build dirs gives the committed artifact."""
    committed = json.loads(ARTIFACT_PATH.read_text())
    fresh = export_artifact(forge_dirs[0], cache_dir=forge_dirs[1])
    assert fresh["bytecode"] == committed["bytecode"], (
        "stale artifact: run `python -m chains.send.executor export`"
    )
    assert fresh["deployedBytecode"] == committed["deployedBytecode"]
    assert fresh["abi"] == committed["abi"]
    assert fresh["compiler"] == committed["compiler"]
