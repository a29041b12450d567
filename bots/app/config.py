"""Configuration: one TOML file plus ``MEVSUITE__SECTION__KEY`` environment overrides, validated by pydantic.

Where values come from, lowest precedence first:

1. the defaults below (a devnet on ``127.0.0.1:8545``, SQLite, dry-run);
2. the TOML file — ``--config PATH``, else ``mevsuite.toml`` in the current directory if it exists;
3. the environment: ``MEVSUITE__CHAIN__RPC_URLS=ws://a,ws://b``, ``MEVSUITE__METRICS__PORT=9464`` … (section and
   key case-insensitive; list values as ``a,b`` or a JSON array).

Secrets (every :class:`~pydantic.SecretStr` field: ``signer.private_key``, ``signer.keystore_password``,
``signer.reputation_key``, ``db.password``) are read **only** from the environment, never from the file, and are
masked in ``repr``, ``str`` and ``model_dump_json``.  ``db.url`` may carry a password only when it comes from the
environment (``MEVSUITE__DB__URL``); it is the complete, usable URL but is printed masked
(``postgresql://u:***@h/db``).  So may ``bus.url`` (``MEVSUITE__BUS__URL``: NATS credentials in its user info); it is
printed only redacted (``nats://***@h:4222``).

Any problem — malformed TOML, a wrong type, an unknown key (typos are errors), a secret in the file — raises
:class:`ConfigError` whose ``str()`` is one line naming the key (or file and line) and where the value came
from; the CLI prints it and exits with status 2.  The value itself is echoed only when it cannot hold a secret:
never for a secret or ``db.url``, and RPC URLs only redacted (:func:`chains.node.urls.redact_url`).  Every key is
documented in ``mevsuite.example.toml``.  :meth:`Config.source_of` says where a key's value came from.

We validate with plain pydantic rather than pydantic-settings because the error line must say where a value
came from (``… (got 'abc' from MEVSUITE__METRICS__PORT)``) and pydantic-settings does not keep that.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "BotConfig",
    "BusConfig",
    "ChainConfig",
    "Config",
    "ConfigError",
    "DbConfig",
    "DevnetConfig",
    "MetricsConfig",
    "RiskConfig",
    "RiskLimitsConfig",
    "SignerConfig",
    "default_bus_data_dir",
    "load_config",
]

DEFAULT_CONFIG_FILE = "mevsuite.toml"
MAX_CONFIG_BYTES = 1 << 20
ENV_PREFIX = "MEVSUITE__"


class ConfigError(ValueError):
    """A configuration problem; ``str()`` is one line starting with ``config error:``."""

    def __init__(self, message: str) -> None:
        line = " ".join(message.split())
        super().__init__(line if line.startswith("config error:") else f"config error: {line}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class ChainConfig(_Section):
    """The node(s) the bots talk to."""

    rpc_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8545"], min_length=1)
    ws_url: str | None = None
    chain_id: int | None = Field(default=None, gt=0)  # None: ask the node (eth_chainId)
    request_timeout_s: float = Field(default=10.0, gt=0)  # bounds one attempt of one JSON-RPC call
    connect_timeout_s: float = Field(default=5.0, gt=0)  # bounds one (re)connection
    retries: int = Field(default=3, ge=0, le=100)  # backed-off rounds over all URLs after the first

    @model_validator(mode="before")
    @classmethod
    def _rpc_url_alias(cls, data: Any) -> Any:
        # `rpc_url` (one URL, or a comma list) is accepted as a shorthand for `rpc_urls`.
        if isinstance(data, dict) and "rpc_url" in data:
            data = dict(data)
            single = data.pop("rpc_url")
            if "rpc_urls" in data:
                raise ValueError("give either chain.rpc_url or chain.rpc_urls, not both")
            data["rpc_urls"] = _split_list(single) if isinstance(single, str) else single
        return data

    @field_validator("rpc_urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.match(r"^(https?|wss?)://", url):
                raise ValueError(f"not an http(s):// or ws(s):// URL: {_redacted(url)!r}")
        return urls


def _redacted(url: str) -> str:
    from chains.node.urls import redact_url

    return redact_url(url)


def _url_without_password(url: str) -> tuple[str, str | None]:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url, None
    if parsed.password is None:
        return url, None
    return parsed._replace(password=None).render_as_string(hide_password=False), str(parsed.password)


def _has_userinfo(url: str) -> bool:
    # nats://user:password@host, nats://token@host: both are credentials.
    netloc = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    return "@" in netloc


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class DbConfig(_Section):
    """The database. ``url`` None: ``$MEVSUITE_DB_URL``, else ``sqlite+aiosqlite:///mevsuite.db``.

    ``url`` is the complete URL (password included, usable as is); it is masked in ``repr``, ``str`` and every
    ``model_dump``.  ``password`` (environment only) is put into a URL that has none.
    """

    url: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _merge_password(cls, data: Any) -> Any:
        if not (isinstance(data, dict) and isinstance(data.get("url"), str)):
            return data
        data = dict(data)
        url, in_url = _url_without_password(data["url"])
        given = data.get("password")
        if in_url is not None:
            data.setdefault("password", in_url)
        elif isinstance(given, (str, SecretStr)):
            secret = given.get_secret_value() if isinstance(given, SecretStr) else given
            try:
                data["url"] = make_url(url).set(password=secret).render_as_string(hide_password=False)
            except ArgumentError:
                pass  # reported by the field validator
        return data

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        # The value is never echoed (it may hold a password): say what is wrong instead.
        if url is not None:
            try:
                make_url(url)
            except ArgumentError:
                raise ValueError(
                    "not a database URL: expected dialect[+driver]://[user[:password]@]host[:port]/db "
                    "(e.g. postgresql+psycopg://user@host:5432/db); the value is not shown "
                    "because it may contain a password"
                ) from None
        return url

    @field_serializer("url")
    def _serialize_url(self, url: str | None) -> str | None:
        return None if url is None else _masked(url)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (_masked(value) if name == "url" and isinstance(value, str) else value)

    def sqlalchemy_url(self) -> str | None:
        """The URL to give the engine (same as ``url``); never log it — use ``bots.store.mask_url``."""
        return self.url


class MetricsConfig(_Section):
    """The Prometheus ``/metrics`` endpoint of each process."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)  # 0: a free port, logged at start-up


class DevnetConfig(_Section):
    """The local devnet world and its simulated users (defaults = ``chains.devnet.traffic.TrafficConfig``)."""

    seed: int = 1
    block_time_s: float = Field(default=2.0, ge=0)  # seconds between blocks; 0 = build a block on demand
    accounts: int = Field(default=20, ge=1, le=1000)  # funded simulated users
    swaps_per_second: float = Field(default=4.0, ge=0)  # users' swaps sent to the mempool
    swap_size_usd_median: float = Field(default=3000.0, gt=0)  # log-normal swap size: median, USD ...
    swap_size_usd_sigma: float = Field(default=1.2, ge=0)  # ... and sigma of its log
    loose_slippage_fraction: float = Field(default=0.25, ge=0, le=1)  # share of swaps with loose slippage
    loose_slippage: float = Field(default=0.30, gt=0, lt=1)  # their tolerance: min out = quote * (1 - x)
    tight_slippage_bps: int = Field(default=50, ge=0, le=10_000)  # everyone else's tolerance, bps
    oracle_volatility: float = Field(default=0.01, ge=0)  # std-dev of one oracle log-price move
    oracle_moves_per_second: float = Field(default=0.5, ge=0)  # random-walk oracle moves
    private_swap_fraction: float = Field(
        default=0.1, ge=0, le=1
    )  # share of swaps sent privately to the relay


class BotConfig(_Section):
    """The bot process itself."""

    name: str = Field(default="mevsuite", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    dry_run: bool = (
        True  # live sending needs dry_run = false AND the CLI's --live (bots.app.keys.resolve_mode)
    )


class SignerConfig(_Section):
    """Keys. Only file *paths* may sit in the file; passwords and keys come from the environment.

    ``private_key`` or ``keystore`` + ``keystore_password``: the searcher key (``bots.app.keys.signer_from_config``).
    ``reputation_key`` (or the file ``reputation_key_file``, created with a random key on first use): the
    Flashbots reputation key that signs relay requests (``bots.app.keys.reputation_signer``).
    """

    keystore: Path | None = None
    keystore_password: SecretStr | None = None
    private_key: SecretStr | None = None
    reputation_key: SecretStr | None = None
    reputation_key_file: Path | None = None  # None: $XDG_DATA_HOME/mevsuite/flashbots-reputation.key

    @field_validator("private_key", "reputation_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", value.get_secret_value()):
            raise ValueError("must be 32 bytes of hex (64 hex digits, optional 0x)")
        return value


_INT_TEXT = re.compile(r"[+-]?[0-9]+(_[0-9]+)*")


class RiskLimitsConfig(_Section):
    """One bot's risk limits (``bots.runtime.risk.RiskLimits``, docs/risk.md); unset = no limit.

    Exact integers >= 0; a wei value may be a decimal string (TOML integers stop at 2**63 - 1, about 9.2 ETH):
    ``max_notional_wei = "100000000000000000000"``.  Floats (``1e20``) are refused: amounts are exact.
    """

    max_notional_wei: int | None = None  # the most one action may put at risk
    max_actions_per_block: int | None = None  # admitted actions with the same target block
    max_actions_per_minute: int | None = None  # admitted actions in a sliding 60 s window
    max_daily_loss_wei: int | None = None  # realized loss since 00:00 UTC above this refuses

    @field_validator("*", mode="before")
    @classmethod
    def _exact_int(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            number = int(value.strip().replace("_", ""))
        else:
            raise ValueError(
                "must be an integer (exact; write a big wei value as a decimal string, e.g. "
                '"100000000000000000000")'
            )
        if number < 0:
            raise ValueError("must be >= 0 (unset = no limit)")
        return number


class RiskConfig(_Section):
    """The risk gate and the kill switch (``bots.app.risk.risk_gate_from_config``, docs/risk.md).

    ``default``: the limits of every bot; ``bots``: per-bot tables ``[risk.bots.<bot>]`` whose keys replace the
    default's one by one (a key a bot's table leaves unset keeps the ``default`` value).
    ``kill_switch_file``: the file every process of the installation watches (None: no file, the switch is then
    per process); a relative path is relative to the config file's directory.
    """

    kill_switch_file: Path | None = None
    default: RiskLimitsConfig = Field(default_factory=RiskLimitsConfig)
    bots: dict[str, RiskLimitsConfig] = Field(default_factory=dict)

    @field_validator("kill_switch_file", mode="before")
    @classmethod
    def _non_empty_path(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty (leave it unset for no kill-switch file)")
        return value

    @field_validator("bots")
    @classmethod
    def _bot_names(cls, bots: dict[str, RiskLimitsConfig]) -> dict[str, RiskLimitsConfig]:
        for name in bots:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
                raise ValueError(f"not a bot name: {name[:80]!r} (letters, digits, _ . -)")
        return bots


# The bus's heartbeat TTL (bots.bus.subjects.BusLimits.heartbeat_ttl; a test keeps the two equal): a heartbeat
# interval at or above it would let a live process's entry expire between two writes.
HEARTBEAT_TTL_S = 15.0
_BUS_SCHEMES = ("nats", "tls", "ws", "wss")


def default_bus_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/mevsuite/nats`` (else ``~/.local/share/mevsuite/nats``): the embedded server's storage."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or ""
    root = (
        Path(base)
        if base and Path(base).is_absolute()
        else Path(env.get("HOME") or Path.home()) / ".local/share"
    )
    return root / "mevsuite" / "nats"


class BusConfig(_Section):
    """The NATS JetStream bus between the mevsuite processes (docs/bus.md).

    ``url`` None: the embedded server that ``mevsuite up`` starts (storage in ``data_dir``).  A URL may carry
    credentials (``nats://user:password@host:4222``, ``nats://token@host``): such a URL is read only from the
    environment (``MEVSUITE__BUS__URL``) or the command line, never from the file, and is shown only redacted.
    """

    url: str | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0)  # the first connection; exit 6 after it
    heartbeat_interval_s: float = Field(default=5.0, gt=0)  # each process's heartbeat (expires after 15 s)
    snapshot_every_blocks: int = Field(default=100, ge=1)  # the hub's full state snapshots
    data_dir: Path | None = None  # None: $XDG_DATA_HOME/mevsuite/nats (default_bus_data_dir)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(rf"^({'|'.join(_BUS_SCHEMES)})://[^/?#]", url):
            raise ValueError(f"not a nats://, tls://, ws:// or wss:// URL: {_redacted(url)!r}")
        return url

    @field_validator("heartbeat_interval_s")
    @classmethod
    def _below_ttl(cls, value: float) -> float:
        if value >= HEARTBEAT_TTL_S:
            raise ValueError(
                f"must be below the heartbeat TTL ({HEARTBEAT_TTL_S:g} s), or a live process's entry expires "
                "between two writes"
            )
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _non_empty_dir(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty (leave it unset for the default directory)")
        return value

    @field_serializer("url")
    def _serialize_url(self, url: str | None) -> str | None:
        return None if url is None else _redacted(url)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (_redacted(value) if name == "url" and isinstance(value, str) else value)

    def resolved_data_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        """``data_dir``, else :func:`default_bus_data_dir`."""
        return self.data_dir if self.data_dir is not None else default_bus_data_dir(environ)


class Config(_Section):
    """The whole configuration (see the module docstring for sources and precedence)."""

    chain: ChainConfig = Field(default_factory=ChainConfig)
    db: DbConfig = Field(default_factory=DbConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    devnet: DevnetConfig = Field(default_factory=DevnetConfig)
    bot: BotConfig = Field(default_factory=BotConfig)
    signer: SignerConfig = Field(default_factory=SignerConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    bus: BusConfig = Field(default_factory=BusConfig)

    _source_file: Path | None = PrivateAttr(default=None)
    _sources: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)

    @property
    def source_file(self) -> Path | None:
        """The TOML file this configuration was read from (None: defaults and environment only)."""
        return self._source_file

    def source_of(self, key: str) -> str:
        """Where ``key`` (e.g. ``"bot.dry_run"``) got its value: the environment variable, the file, or
        ``"default"``."""
        return self._sources.get(tuple(key.split(".")), "default")


# Keys that are another key's alias: setting one in a higher layer removes the other from lower layers.
_ALIASES: dict[tuple[str, ...], tuple[str, ...]] = {("chain", "rpc_url"): ("chain", "rpc_urls")}


def _split_list(value: str) -> list[Any]:
    text = value.strip()
    if text.startswith("["):
        loaded = json.loads(text)
        if not isinstance(loaded, list):
            raise ValueError("expected a JSON array")
        return loaded
    return [part.strip() for part in text.split(",") if part.strip()]


def _field_annotation(model: type[BaseModel], path: tuple[str, ...]) -> Any:
    """The annotation of the field at ``path`` below ``model`` (None if the path names no field)."""
    annotation: Any = model
    for name in path:
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        field = annotation.model_fields.get(name)
        if field is None:
            return None
        annotation = field.annotation
    return annotation


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(get_origin(arg) is list for arg in get_args(annotation))


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if _is_secret(annotation):
            out.add((*prefix, name))
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= _secret_paths(annotation, (*prefix, name))
    return out


_SECRETS = _secret_paths(Config)
# Never echoed in an error either, though allowed in the file (a password may hide in a malformed URL).
_NOT_ECHOED = {("db", "url")}
# Echoed only redacted (API keys in the user info, path or query).
_URL_KEYS = {("chain", "rpc_urls"), ("chain", "rpc_url"), ("chain", "ws_url"), ("bus", "url")}


def _env_var(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 10} KiB: not a mevsuite config file")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: values nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        if where:
            raise ConfigError(
                f"{path}, line {where.group(1)}, column {where.group(2)}: invalid TOML: {reason}"
            ) from None
        raise ConfigError(f"{path}: invalid TOML: {reason} (at end of document)") from None


def _env_overrides(env: Mapping[str, str]) -> list[tuple[tuple[str, ...], Any, str]]:
    out: list[tuple[tuple[str, ...], Any, str]] = []
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if not path or any(not part for part in path):
            raise ConfigError(f"{name}: malformed variable name (expected MEVSUITE__SECTION__KEY)")
        value: Any = env[name]
        if _is_list(_field_annotation(Config, _ALIASES.get(path, path))):
            try:
                value = _split_list(value)
            except ValueError as exc:
                raise ConfigError(f"{'.'.join(path)}: not a list: {exc} (from {name})") from None
        out.append((path, value, name))
    return out


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any, source: str) -> None:
    node = data
    for depth, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise ConfigError(f"{where}: is a value, not a section (from {source})")
        node = child
    node[path[-1]] = value


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _walk(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, value in data.items():
        path = (*prefix, str(key))
        paths.append(path)
        if isinstance(value, Mapping):
            paths.extend(_walk(value, path))
    return paths


def _describe(error: ErrorDetails, sources: Mapping[tuple[str, ...], str]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc) or "config"
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = error["msg"].removeprefix("Value error, ")
    source = None
    for length in range(len(loc), 0, -1):
        source = sources.get(loc[:length])
        if source is not None:
            break
    secret = any(loc[: len(path)] == path for path in _SECRETS | _NOT_ECHOED)
    if source is None:
        return f"config error: {key}: {message}"
    value = error.get("input")
    if secret or error["type"] == "extra_forbidden" or isinstance(value, (dict, list)):
        return f"config error: {key}: {message} (from {source})"
    if any(loc[: len(path)] == path for path in _URL_KEYS):
        value = _redacted(value) if isinstance(value, str) else "<not shown>"
    return f"config error: {key}: {message} (got {value!r} from {source})"


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Config:
    """Load and validate the configuration; :class:`ConfigError` (one line) on any problem.

    ``path``: the TOML file (must exist); None looks for ``mevsuite.toml`` in ``cwd`` (default: the current
    directory) and uses defaults if there is none.  ``env``: the environment (default ``os.environ``).
    """
    environ = os.environ if env is None else env
    file: Path | None
    if path is not None:
        file = Path(path)
    else:
        candidate = Path(cwd if cwd is not None else Path.cwd()) / DEFAULT_CONFIG_FILE
        file = candidate if candidate.is_file() else None

    data: dict[str, Any] = _read_file(file) if file is not None else {}
    sources: dict[tuple[str, ...], str] = {p: str(file) for p in _walk(data)}
    for secret in _SECRETS:
        node: Any = data
        for part in secret:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            raise ConfigError(
                f"{'.'.join(secret)}: secrets are read only from the environment; remove it from {file} "
                f"and set {_env_var(secret)}"
            )

    file_db = data.get("db")
    if isinstance(file_db, dict) and isinstance(file_db.get("url"), str):
        if _url_without_password(file_db["url"])[1] is not None:
            raise ConfigError(
                f"db.url: contains a password; secrets are read only from the environment: remove it from {file} "
                f"and set {_env_var(('db', 'password'))} (or the whole URL in {_env_var(('db', 'url'))})"
            )

    file_bus = data.get("bus")
    if isinstance(file_bus, dict) and isinstance(file_bus.get("url"), str) and _has_userinfo(file_bus["url"]):
        raise ConfigError(
            f"bus.url: contains credentials; secrets are read only from the environment: remove them from {file} "
            f"and set the whole URL in {_env_var(('bus', 'url'))} (or pass --bus)"
        )

    for env_path, value, name in _env_overrides(environ):
        other = _ALIASES.get(env_path) or next((a for a, b in _ALIASES.items() if b == env_path), None)
        if other is not None:
            _drop(data, other)
        _set(data, env_path, value, name)
        sources[env_path] = name
        for depth in range(1, len(env_path)):
            sources.setdefault(env_path[:depth], name)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        line = _describe(errors[0], sources)
        if len(errors) > 1:
            line += f" (and {len(errors) - 1} more)"
        raise ConfigError(line) from None
    config._source_file = file
    config._sources = sources
    return config
