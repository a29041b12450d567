"""Configuration: TOML + MEVSUITE__SECTION__KEY overrides, one-line errors, secrets kept out of sight."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from bots.app.config import DEFAULT_CONFIG_FILE, Config, ConfigError, load_config
from bots.store import mask_url

REPO = Path(__file__).resolve().parents[3]
KEY = "0x" + "ab" * 32


def write(tmp_path: Path, body: str, name: str = DEFAULT_CONFIG_FILE) -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    config = load_config(env={}, cwd=tmp_path)
    assert config == Config()
    assert config.source_file is None
    assert config.bot.dry_run is True
    assert config.metrics.port == 0
    assert config.chain.rpc_urls == ["http://127.0.0.1:8545"]
    assert config.db.url is None  # -> $MEVSUITE_DB_URL or the SQLite default in bots.store


def test_file_in_cwd_then_env_wins(tmp_path: Path) -> None:
    write(
        tmp_path,
        '[metrics]\nport = 9100\nhost = "0.0.0.0"\n[chain]\nrpc_urls = ["http://a:1", "http://b:2"]\n',
    )
    config = load_config(env={}, cwd=tmp_path)
    assert config.source_file == tmp_path / DEFAULT_CONFIG_FILE
    assert (config.metrics.port, config.metrics.host) == (9100, "0.0.0.0")
    assert config.chain.rpc_urls == ["http://a:1", "http://b:2"]

    env = {
        "MEVSUITE__METRICS__PORT": "9200",  # env beats file
        "MEVSUITE__CHAIN__RPC_URL": "wss://x.example",  # the alias replaces the file's list
        "MEVSUITE__BOT__DRY_RUN": "false",
        "MEVSUITE__DEVNET__LOOSE_SLIPPAGE_FRACTION": "0.5",
        "MEVSUITE__DB__URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "OTHER_VAR": "ignored",
    }
    config = load_config(env=env, cwd=tmp_path)
    assert config.metrics.port == 9200
    assert config.metrics.host == "0.0.0.0"  # untouched keys keep the file's value
    assert config.chain.rpc_urls == ["wss://x.example"]
    assert config.bot.dry_run is False
    assert config.devnet.loose_slippage_fraction == 0.5
    assert config.db.url == "postgresql+psycopg://postgres@127.0.0.1:5432/test"

    lists = load_config(env={"MEVSUITE__CHAIN__RPC_URLS": '["ws://a:1", "ws://b:2"]'}, cwd=tmp_path)
    assert lists.chain.rpc_urls == ["ws://a:1", "ws://b:2"]
    commas = load_config(env={"mevsuite__chain__rpc_urls": "ws://a:1, ws://b:2"}, cwd=tmp_path)
    assert commas.chain.rpc_urls == ["ws://a:1", "ws://b:2"]


def test_explicit_path_beats_cwd_and_must_exist(tmp_path: Path) -> None:
    write(tmp_path, "[metrics]\nport = 1\n")
    other = write(tmp_path, "[metrics]\nport = 2\n", "other.toml")
    assert load_config(other, env={}, cwd=tmp_path).metrics.port == 2
    with pytest.raises(ConfigError, match=r"^config error: config file not found: .*missing\.toml$"):
        load_config(tmp_path / "missing.toml", env={})


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[metrics]\nport = 9100\nhost = "127.0.0.1\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config error: {path}, line 3, column")
    assert "invalid TOML" in message


def test_bad_type_from_env_names_key_value_and_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"MEVSUITE__METRICS__PORT": "abc"}, cwd=tmp_path)
    assert str(info.value) == (
        "config error: metrics.port: Input should be a valid integer, unable to parse string as an integer "
        "(got 'abc' from MEVSUITE__METRICS__PORT)"
    )
    with pytest.raises(
        ConfigError, match=r"^config error: metrics\.port: .*65535 .*from MEVSUITE__METRICS__PORT\)$"
    ):
        load_config(env={"MEVSUITE__METRICS__PORT": "70000"}, cwd=tmp_path)


def test_bad_type_from_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[devnet]\nloose_slippage_fraction = 1.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        f"config error: devnet.loose_slippage_fraction: Input should be less than or equal to 1 (got 1.5 from {path})"
    )


@pytest.mark.parametrize(
    ("body", "env", "expected"),
    [
        ("[metrics]\nprot = 1\n", {}, "config error: metrics.prot: unknown key (from {file})"),
        ("[metricz]\nport = 1\n", {}, "config error: metricz: unknown key (from {file})"),
        (
            "",
            {"MEVSUITE__METRICS__PROT": "1"},
            "config error: metrics.prot: unknown key (from MEVSUITE__METRICS__PROT)",
        ),
        ("", {"MEVSUITE__NOPE__X": "1"}, "config error: nope: unknown key (from MEVSUITE__NOPE__X)"),
    ],
)
def test_unknown_keys_are_errors(tmp_path: Path, body: str, env: dict[str, str], expected: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert str(info.value) == expected.format(file=path)


def test_secrets_only_from_env_and_never_shown(tmp_path: Path) -> None:
    env = {
        "MEVSUITE__SIGNER__PRIVATE_KEY": KEY,
        "MEVSUITE__SIGNER__KEYSTORE_PASSWORD": "correct horse battery",
        "MEVSUITE__DB__URL": "postgresql+psycopg://bot:db-s3cret@127.0.0.1:5432/mev",
    }
    config = load_config(env=env, cwd=tmp_path)
    assert config.signer.private_key is not None and config.signer.private_key.get_secret_value() == KEY
    assert config.db.url == "postgresql+psycopg://bot:db-s3cret@127.0.0.1:5432/mev"  # usable as is ...
    assert config.db.password is not None and config.db.password.get_secret_value() == "db-s3cret"
    assert "postgresql+psycopg://bot:***@127.0.0.1:5432/mev" in repr(config.db)  # ... printed masked
    assert mask_url(config.db.url) == "postgresql+psycopg://bot:***@127.0.0.1:5432/mev"
    # A password given apart (environment) goes into a URL from the file that has none.
    apart = load_config(
        write(tmp_path, '[db]\nurl = "postgresql+psycopg://bot@h:5432/mev"\n', "apart.toml"),
        env={"MEVSUITE__DB__PASSWORD": "pw-apart"},
    )
    assert apart.db.url == "postgresql+psycopg://bot:pw-apart@h:5432/mev"
    assert "pw-apart" not in repr(apart) + apart.model_dump_json()
    shown = [
        repr(config),
        str(config),
        config.model_dump_json(),
        repr(config.signer),
        str(config.model_dump()),
    ]
    for text in shown:
        for secret in (KEY, KEY[2:], "correct horse battery", "db-s3cret"):
            assert secret not in text

    # A secret in the file is refused (and the message does not echo it).
    path = write(tmp_path, f'[signer]\nprivate_key = "{KEY}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "MEVSUITE__SIGNER__PRIVATE_KEY" in str(info.value) and KEY not in str(info.value)
    path = write(tmp_path, '[db]\nurl = "postgresql+psycopg://bot:db-s3cret@h/mev"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "MEVSUITE__DB__PASSWORD" in str(info.value) and "db-s3cret" not in str(info.value)

    # An invalid secret is reported without its value.
    with pytest.raises(ConfigError) as info:
        load_config(env={"MEVSUITE__SIGNER__PRIVATE_KEY": "not-a-key-hunter2"}, cwd=tmp_path / "elsewhere")
    assert str(info.value).startswith("config error: signer.private_key: must be 32 bytes of hex")
    assert "hunter2" not in str(info.value)


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _leaf_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_example_file_documents_every_key_and_loads_to_the_defaults() -> None:
    example = REPO / "mevsuite.example.toml"
    config = load_config(example, env={})
    assert config.model_dump() == Config().model_dump()

    text = example.read_text(encoding="utf-8")
    # sections by their dotted name: "chain", "risk", "risk.default" ...
    sections = dict(re.findall(r"^\[([\w.]+)\]\n(.*?)(?=^\[|\Z)", text, flags=re.M | re.S))
    for key in _leaf_keys(Config):
        *section_path, name = key.split(".")
        section = ".".join(section_path)
        assert section in sections, f"[{section}] is not in the example file"
        assert re.search(rf"^#?\s*{name}\b", sections[section], flags=re.M), f"{key} is not documented"
        model: Any = Config
        for part in section_path:
            model = model.model_fields[part].annotation
        field = model.model_fields[name]
        if field.annotation is not None and SecretStr in (
            field.annotation,
            *getattr(field.annotation, "__args__", ()),
        ):
            assert f"MEVSUITE__{section.upper().replace('.', '__')}__{name.upper()}" in sections[section]


def test_url_values_in_errors_are_redacted_or_not_shown(tmp_path: Path) -> None:
    # A malformed db.url may hold a password anywhere: its value is never echoed, the problem is named.
    with pytest.raises(ConfigError) as info:
        load_config(env={"MEVSUITE__DB__URL": "postgresql+psycopg//bot:db-s3cret@h:5432/mev"}, cwd=tmp_path)
    assert "db-s3cret" not in str(info.value)
    assert str(info.value).startswith("config error: db.url: not a database URL")
    assert "MEVSUITE__DB__URL" in str(info.value)
    # An RPC URL is echoed redacted (user info, keys in the path and the query masked).
    with pytest.raises(ConfigError) as info:
        load_config(
            env={"MEVSUITE__CHAIN__RPC_URLS": "ftp://u:pw-s3cret@node.example/v3/0123456789abcdef0123?k=q1"},
            cwd=tmp_path,
        )
    assert "pw-s3cret" not in str(info.value) and "0123456789abcdef0123" not in str(info.value)
    assert "'ftp://***@node.example/v3/***?***'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(
            write(tmp_path, '[chain]\nws_url = ["x"]\nrpc_url = "http://u:pw-s3cret@h/Key123"\n'), env={}
        )
    assert "pw-s3cret" not in str(info.value)


def test_source_of_says_where_a_value_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, "[bot]\ndry_run = false\n[metrics]\nport = 9\n")
    config = load_config(path, env={"MEVSUITE__METRICS__PORT": "10"})
    assert config.source_of("bot.dry_run") == str(path)
    assert config.source_of("metrics.port") == "MEVSUITE__METRICS__PORT"
    assert config.source_of("bot.name") == "default"


# ------------------------------------------------------------------------------------------------- [risk]
def test_risk_section_defaults_file_and_env(tmp_path: Path) -> None:
    from bots.app.config import RiskLimitsConfig

    assert Config().risk.kill_switch_file is None
    assert Config().risk.default == RiskLimitsConfig() and Config().risk.bots == {}
    path = write(
        tmp_path,
        '[risk]\nkill_switch_file = "run/kill-switch"\n'
        '[risk.default]\nmax_actions_per_block = 2\nmax_daily_loss_wei = "1_000000000000000000"\n'
        '[risk.bots.dex_arb]\nmax_notional_wei = "100000000000000000000"\nmax_actions_per_minute = 0\n',
    )
    config = load_config(path, env={})
    risk = config.risk
    assert risk.kill_switch_file == Path("run/kill-switch")
    assert (risk.default.max_actions_per_block, risk.default.max_daily_loss_wei) == (2, 10**18)
    assert risk.default.max_notional_wei is None
    assert risk.bots["dex_arb"].max_notional_wei == 100 * 10**18  # beyond TOML's int64: a decimal string
    assert risk.bots["dex_arb"].max_actions_per_minute == 0
    assert config.source_of("risk.bots.dex_arb.max_notional_wei") == str(path)

    env = {
        "MEVSUITE__RISK__KILL_SWITCH_FILE": "/var/lib/mevsuite/kill-switch",
        "MEVSUITE__RISK__DEFAULT__MAX_NOTIONAL_WEI": "5000000000000000000000",
        "MEVSUITE__RISK__BOTS__DEX_ARB__MAX_ACTIONS_PER_BLOCK": "3",
        "MEVSUITE__RISK__BOTS__BACKRUN__MAX_DAILY_LOSS_WEI": "7",
    }
    config = load_config(path, env=env)
    assert config.risk.kill_switch_file == Path("/var/lib/mevsuite/kill-switch")
    assert config.risk.default.max_notional_wei == 5000 * 10**18
    assert config.risk.bots["dex_arb"].max_actions_per_block == 3
    assert config.risk.bots["dex_arb"].max_notional_wei == 100 * 10**18  # the file's other keys stay
    assert config.risk.bots["backrun"].max_daily_loss_wei == 7
    assert (
        config.source_of("risk.bots.backrun.max_daily_loss_wei")
        == "MEVSUITE__RISK__BOTS__BACKRUN__MAX_DAILY_LOSS_WEI"
    )


@pytest.mark.parametrize(
    ("body", "env", "expected"),
    [
        (
            "[risk.default]\nmax_notional_wei = -5\n",
            {},
            "config error: risk.default.max_notional_wei: must be >= 0 (unset = no limit) (got -5 from {file})",
        ),
        (
            "",
            {"MEVSUITE__RISK__BOTS__DEX_ARB__MAX_DAILY_LOSS_WEI": "-1"},
            "config error: risk.bots.dex_arb.max_daily_loss_wei: must be >= 0 (unset = no limit) "
            "(got '-1' from MEVSUITE__RISK__BOTS__DEX_ARB__MAX_DAILY_LOSS_WEI)",
        ),
        (
            "[risk.default]\nmax_notional_wei = 1e20\n",
            {},
            "config error: risk.default.max_notional_wei: must be an integer (exact; write a big wei value as a "
            'decimal string, e.g. "100000000000000000000") (got 1e+20 from {file})',
        ),
        (
            '[risk.default]\nmax_actions_per_block = "2.5"\n',
            {},
            "config error: risk.default.max_actions_per_block: must be an integer (exact; write a big wei value "
            "as a decimal string, e.g. \"100000000000000000000\") (got '2.5' from {file})",
        ),
        (
            "[risk.default]\nmax_actions_per_block = true\n",
            {},
            "config error: risk.default.max_actions_per_block: must be an integer (exact; write a big wei value "
            'as a decimal string, e.g. "100000000000000000000") (got True from {file})',
        ),
        (
            "[risk.bots.dex_arb]\nmax_notional = 1\n",
            {},
            "config error: risk.bots.dex_arb.max_notional: unknown key (from {file})",
        ),
        (
            '[risk.bots."a b"]\nmax_notional_wei = 1\n',
            {},
            "config error: risk.bots: not a bot name: 'a b' (letters, digits, _ . -) (from {file})",
        ),
        (
            '[risk]\nkill_switch_file = ""\n',
            {},
            "config error: risk.kill_switch_file: must not be empty (leave it unset for no kill-switch file) "
            "(got '' from {file})",
        ),
    ],
    ids=[
        "negative",
        "negative-env",
        "float",
        "decimal-fraction",
        "bool",
        "unknown-key",
        "bot-name",
        "empty-path",
    ],
)
def test_risk_limits_errors_are_one_line_naming_the_key(
    tmp_path: Path, body: str, env: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert str(info.value) == expected.format(file=path)


def test_risk_gate_from_config_merges_bot_tables_over_the_default(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from bots.app.risk import kill_switch_path, risk_gate_from_config
    from bots.runtime.risk import RiskLimits

    (tmp_path / "conf").mkdir()
    path = write(
        tmp_path / "conf",
        '[risk]\nkill_switch_file = "kill-switch"\n'
        "[risk.default]\nmax_actions_per_block = 2\nmax_daily_loss_wei = 100\n"
        "[risk.bots.dex_arb]\nmax_actions_per_block = 5\nmax_notional_wei = 10\n",
    )
    config = load_config(path, env={})
    # a relative path from the file is relative to the file's directory (the CLI and the bots agree)
    assert kill_switch_path(config) == tmp_path / "conf" / "kill-switch"
    registry = CollectorRegistry()
    gate = risk_gate_from_config(config, registry)
    assert gate.limits_for("dex_arb") == RiskLimits(
        max_notional_wei=10, max_actions_per_block=5, max_daily_loss_wei=100
    )
    assert gate.limits_for("anyone") == RiskLimits(max_actions_per_block=2, max_daily_loss_wei=100)
    assert gate.kill_switch.path == tmp_path / "conf" / "kill-switch"
    assert registry.get_sample_value("mevsuite_kill_switch_engaged") == 0.0

    from_env = load_config(env={"MEVSUITE__RISK__KILL_SWITCH_FILE": "ks"}, cwd=tmp_path)
    assert kill_switch_path(from_env) == Path.cwd() / "ks"  # from the environment: the current directory
    assert kill_switch_path(load_config(env={}, cwd=tmp_path)) is None
    assert risk_gate_from_config(load_config(env={}, cwd=tmp_path), None).kill_switch.path is None


def test_bus_section_defaults_file_env_and_credentials(tmp_path: Path) -> None:
    from bots.app.config import HEARTBEAT_TTL_S, default_bus_data_dir
    from bots.bus.subjects import DEFAULT_LIMITS

    assert HEARTBEAT_TTL_S == DEFAULT_LIMITS.heartbeat_ttl  # the interval's bound is the bucket's TTL
    config = load_config(env={"XDG_DATA_HOME": str(tmp_path / "xdg")}, cwd=tmp_path)
    bus = config.bus
    assert bus.url is None  # the embedded server of `mevsuite up`
    assert (bus.connect_timeout_s, bus.heartbeat_interval_s, bus.snapshot_every_blocks) == (5.0, 5.0, 100)
    assert bus.resolved_data_dir({"XDG_DATA_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg/mevsuite/nats"
    assert default_bus_data_dir({"HOME": "/home/u"}) == Path("/home/u/.local/share/mevsuite/nats")

    path = write(
        tmp_path,
        '[bus]\nurl = "nats://10.0.0.5:4222"\nheartbeat_interval_s = 2.5\ndata_dir = "/srv/nats"\n',
    )
    config = load_config(path, env={"MEVSUITE__BUS__SNAPSHOT_EVERY_BLOCKS": "7"})
    assert config.bus.url == "nats://10.0.0.5:4222" and config.bus.heartbeat_interval_s == 2.5
    assert config.bus.resolved_data_dir() == Path("/srv/nats") and config.bus.snapshot_every_blocks == 7
    assert config.source_of("bus.snapshot_every_blocks") == "MEVSUITE__BUS__SNAPSHOT_EVERY_BLOCKS"

    # Credentials: only from the environment, usable as given, shown redacted.
    secret_url = "nats://hub:nats-s3cret@10.0.0.5:4222"
    config = load_config(env={"MEVSUITE__BUS__URL": secret_url}, cwd=tmp_path / "elsewhere")
    assert config.bus.url == secret_url
    for text in (repr(config), str(config), config.model_dump_json(), str(config.model_dump())):
        assert "nats-s3cret" not in text
    assert config.model_dump()["bus"]["url"] == "nats://***@10.0.0.5:4222"
    for body in (f'[bus]\nurl = "{secret_url}"\n', '[bus]\nurl = "nats://T0KEN-s3cret@h:4222"\n'):
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, body), env={})
        assert "MEVSUITE__BUS__URL" in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MEVSUITE__BUS__URL": "http://u:pw-s3cret@h:4222"}, "bus.url: not a nats://"),
        ({"MEVSUITE__BUS__HEARTBEAT_INTERVAL_S": "15"}, "bus.heartbeat_interval_s: must be below"),
        ({"MEVSUITE__BUS__CONNECT_TIMEOUT_S": "0"}, "bus.connect_timeout_s: Input should be greater than 0"),
        ({"MEVSUITE__BUS__SNAPSHOT_EVERY_BLOCKS": "0"}, "bus.snapshot_every_blocks: Input should be greater"),
        ({"MEVSUITE__BUS__DATA_DIR": " "}, "bus.data_dir: must not be empty"),
    ],
)
def test_bus_errors_are_one_line_and_never_show_credentials(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env=env, cwd=tmp_path)
    text = str(info.value)
    assert text.startswith(f"config error: {expected}"), text
    assert "\n" not in text and "s3cret" not in text
