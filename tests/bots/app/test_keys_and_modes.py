"""Keys and modes (docs/keys-and-modes.md): a bot sends only with ``bot.dry_run = false`` AND ``--live``; the
owner key comes from ``[signer]`` (never a silent fallback to a public key); forks run with their own chain id;
the Flashbots reputation key is random per install.

One real fork run of the session devnet with both switches on (the run with ``dry_run = false`` and no
``--live``, and no key configured, is the canary run of tests/bots/app/test_secrets.py); everything else is refused
before anything starts, or is checked in-process.
"""

from __future__ import annotations

import json
import re
import stat
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from bots.app.config import ConfigError, SignerConfig, load_config
from bots.app.keys import (
    ANVIL_DEV_KEY_0,
    FORK_CHAIN_ID,
    fork_chain_id,
    reputation_signer,
    resolve_mode,
    signer_from_config,
)
from tests.bots.app.conftest import assert_one_line_error, run_cli, start_cli, wait_for
from tests.bots.dex_arb.helpers import skew
from tests.fixtures.devnet import Devnet

# anvil's well-known dev accounts 0 and 1 ("test test ... junk"): public, test-only.
DEV_ADDR_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEV_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEV_ADDR_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PASSWORD = "pw-Kx81-never-printed"
DEAD_URL = "http://127.0.0.1:1"  # reached only if a run got past the checks under test (then: exit 4)


def _keystore(tmp_path: Path, key: str = DEV_KEY_1) -> Path:
    path = tmp_path / "keystore.json"
    path.write_text(
        json.dumps(Account.encrypt(key, PASSWORD, kdf="pbkdf2", iterations=2))
    )  # cheap KDF for tests
    return path


def _fork_args(devnet: Devnet, *extra: str) -> list[str]:
    book = (
        devnet.book
    )  # V2 pools only (discovered): fewer state reads, a shorter run; the skew is a V2 arbitrage
    v2 = [
        a
        for name, venue in book.v2.items()
        for a in ("--v2-factory", f"{name}={venue.factory}:{venue.fee_bps}")
    ]
    return [
        "run",
        "dex-arb",
        "--fork-url",
        devnet.node.http_url,
        "--weth",
        book.weth,
        *v2,
        "--blocks",
        "2",
        "--block-time",
        "0.2",
        "--json-summary",
        "summary.json",
        *extra,
    ]


def _scrape_live_gauge(stderr_file: Path, proc: Any) -> float:
    url = wait_for(
        lambda: (
            (m := re.search(r"^metrics (http://\S+/metrics)$", stderr_file.read_text(), re.M)) and m.group(1)
        ),
        "the metrics line",
        proc=proc,
        timeout=30,
    )
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    values = [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "mevsuite_bot_live" and s.labels == {"bot": "dex_arb"}
    ]
    assert len(values) == 1, text
    return values[0]


def _run_in_background(
    args: list[str], cwd: Path, env: dict[str, str], background: list[Any]
) -> tuple[float, dict[str, Any], str]:
    """Run the CLI, scrape its live gauge while it runs; (gauge, summary, stderr)."""
    proc = start_cli(args, cwd=cwd, env=env)
    background.append(proc)
    gauge = _scrape_live_gauge(cwd / "stderr.txt", proc)
    assert proc.wait(90) == 0, (cwd / "stderr.txt").read_text()[-3000:]
    return gauge, json.loads((cwd / "summary.json").read_text()), (cwd / "stderr.txt").read_text()


# ------------------------------------------------------------------------------------------------ the switches
@pytest.mark.parametrize("config", [None, "[bot]\ndry_run = true\n"], ids=["default", "file"])
def test_live_flag_alone_is_refused_before_anything_starts(config: str | None, tmp_path: Path) -> None:
    if config is not None:
        (tmp_path / "mevsuite.toml").write_text(config)
    t0 = time.monotonic()
    r = run_cli(["run", "dex-arb", "--fork-url", DEAD_URL, "--weth", DEV_ADDR_0, "--live"], cwd=tmp_path)
    line = assert_one_line_error(r, 2)
    assert "--live needs bot.dry_run = false" in line and "MEVSUITE__BOT__DRY_RUN=false" in line
    assert ("mevsuite.toml" in line) == (config is not None)
    assert r.stdout == "" and "mode:" not in r.stderr and "forking" not in r.stderr
    assert time.monotonic() - t0 < 20
    assert not (tmp_path / ".local").exists()  # not even the reputation key was touched


def test_both_switches_send_with_the_configured_key_on_the_fork_chain_id(
    devnet_state: Devnet, tmp_path: Path, background: list[Any]
) -> None:
    skew(devnet_state)
    env = {"MEVSUITE__BOT__DRY_RUN": "false", "MEVSUITE__SIGNER__PRIVATE_KEY": DEV_KEY_1}
    gauge, s, err = _run_in_background(_fork_args(devnet_state, "--live"), tmp_path, env, background)
    assert "mode: live (bot.dry_run = false, from MEVSUITE__BOT__DRY_RUN; --live given)" in err.splitlines()
    assert gauge == 1
    assert s["live"] and s["bundles_submitted"] >= 1 and s["relay_bundles_received"] >= 1, s
    # The executor's owner is the configured key, and its bundles land on the fork: anvil accepts only
    # transactions signed for the fork's chain id (31338, not the upstream's 31337).
    assert s["owner"] == DEV_ADDR_1 and s["owner_key"] == "MEVSUITE__SIGNER__PRIVATE_KEY"
    assert s["chain_id"] == FORK_CHAIN_ID and s["upstream_chain_id"] == 31337
    assert s["bundles_landed"] >= 1 and s["realized_equals_simulated"], s
    assert DEV_KEY_1[2:] not in err + json.dumps(s)
    # The relay saw the install's reputation key (created 0600 in XDG_DATA_HOME), not a fixed public one.
    key_file = tmp_path / ".local/share/mevsuite/flashbots-reputation.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert s["reputation_address"] == Account.from_key(key_file.read_text().strip()).address


# ------------------------------------------------------------------------------------------------ broken keys
@pytest.mark.parametrize("case", ["wrong-password", "unreadable", "no-password", "old-variable"])
def test_broken_key_is_exit_2_without_fallback(case: str, tmp_path: Path) -> None:
    path = _keystore(tmp_path)
    env = {
        "MEVSUITE__BOT__DRY_RUN": "false",
        "MEVSUITE__SIGNER__KEYSTORE": str(path),
        "MEVSUITE__SIGNER__KEYSTORE_PASSWORD": PASSWORD,
    }
    expected = {
        "wrong-password": "wrong password",
        "unreadable": "cannot read",
        "no-password": "MEVSUITE__SIGNER__KEYSTORE_PASSWORD is not set",
        "old-variable": "MEV_PRIVATE_KEY is no longer read",
    }[case]
    if case == "wrong-password":
        env["MEVSUITE__SIGNER__KEYSTORE_PASSWORD"] = "not-" + PASSWORD
    elif case == "unreadable":  # (a directory: chmod 0 would not stop root)
        env["MEVSUITE__SIGNER__KEYSTORE"] = str(tmp_path)
    elif case == "no-password":
        del env["MEVSUITE__SIGNER__KEYSTORE_PASSWORD"]
    else:
        env = {"MEV_PRIVATE_KEY": DEV_KEY_1}
    r = run_cli(
        ["-vv", "run", "dex-arb", "--fork-url", DEAD_URL, "--weth", DEV_ADDR_0], cwd=tmp_path, env=env
    )
    line = assert_one_line_error(r, 2)  # not exit 4: it stopped before starting anvil on the dead URL
    assert expected in line, line
    assert PASSWORD not in r.stderr + r.stdout and DEV_KEY_1[2:] not in r.stderr + r.stdout
    assert "dev account 0" not in r.stderr and "forking" not in r.stderr


# ------------------------------------------------------------------------------------------------ in-process
def test_signer_from_config_rules(tmp_path: Path) -> None:
    def cfg(**env: str) -> SignerConfig:
        return load_config(
            env={f"MEVSUITE__SIGNER__{k.upper()}": v for k, v in env.items()}, cwd=tmp_path
        ).signer

    assert signer_from_config(cfg(private_key=DEV_KEY_1), "chain", environ={}).signer.address == DEV_ADDR_1
    ks = _keystore(tmp_path)
    got = signer_from_config(cfg(keystore=str(ks), keystore_password=PASSWORD), "chain", environ={})
    assert got.signer.address == DEV_ADDR_1 and got.source == f"keystore {ks}" and not got.dev_key
    for kind in ("devnet", "fork"):
        dev = signer_from_config(cfg(), kind, environ={})  # type: ignore[arg-type]
        assert dev.dev_key and dev.signer.address == Account.from_key(ANVIL_DEV_KEY_0).address == DEV_ADDR_0
    with pytest.raises(ConfigError, match="no key configured"):
        signer_from_config(cfg(), "chain", environ={})  # a real chain never gets a public key
    with pytest.raises(ConfigError, match="both"):
        signer_from_config(
            cfg(private_key=DEV_KEY_1, keystore=str(ks), keystore_password=PASSWORD), "fork", environ={}
        )
    with pytest.raises(ConfigError, match=r"signer\.keystore is not"):
        signer_from_config(cfg(keystore_password=PASSWORD), "fork", environ={})
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(ConfigError, match="not an encrypted JSON keystore"):
        signer_from_config(
            cfg(keystore=str(tmp_path / "junk.json"), keystore_password=PASSWORD), "fork", environ={}
        )
    assert fork_chain_id(1) == fork_chain_id(31337) == 31338 and fork_chain_id(31338) == 31339


def test_reputation_key_per_install_0600_and_reused(tmp_path: Path) -> None:
    cfg = SignerConfig()
    homes = [tmp_path / "home1", tmp_path / "home2"]
    first = [reputation_signer(cfg, environ={"HOME": str(h)}) for h in homes]
    assert first[0].signer.address != first[1].signer.address
    for home, choice in zip(homes, first, strict=True):
        path = home / ".local/share/mevsuite/flashbots-reputation.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and choice.source == f"new key file {path}"
        again = reputation_signer(cfg, environ={"HOME": str(home)})
        assert again.signer.address == choice.signer.address and again.source == f"key file {path}"
    # XDG_DATA_HOME wins over HOME; a configured path or key wins over both.
    xdg = reputation_signer(cfg, environ={"HOME": str(homes[0]), "XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert (tmp_path / "xdg/mevsuite/flashbots-reputation.key").is_file()
    assert xdg.signer.address != first[0].signer.address
    own = tmp_path / "own.key"
    assert reputation_signer(SignerConfig(reputation_key_file=own)).source == f"new key file {own}"
    configured = load_config(env={"MEVSUITE__SIGNER__REPUTATION_KEY": DEV_KEY_1}, cwd=tmp_path).signer
    assert reputation_signer(configured).signer.address == DEV_ADDR_1
    # A key file others can read is refused, not used.
    own.chmod(0o644)
    with pytest.raises(ConfigError, match="accessible by others"):
        reputation_signer(SignerConfig(reputation_key_file=own))


def test_mode_resolution(tmp_path: Path) -> None:
    default = load_config(env={}, cwd=tmp_path)
    assert resolve_mode(default, False).line == "mode: dry-run (bot.dry_run = true, default; no --live)"
    with pytest.raises(
        ConfigError, match=re.escape("--live needs bot.dry_run = false, but it is true (default)")
    ):
        resolve_mode(default, True)
    off = load_config(env={"MEVSUITE__BOT__DRY_RUN": "false"}, cwd=tmp_path)
    assert not resolve_mode(off, False).live
    assert resolve_mode(off, True).live
