"""The devnet's address book: every deployed contract, token, pool and actor, as JSON.

`mevsuite devnet up` prints it and writes it to a file; bots, the traffic generator and tests read it.
``relay_url`` / ``mev_share_url`` name the local relay (:mod:`chains.devnet.relay`) when one runs.
Addresses are EIP-55 checksummed strings; amounts and parameters are ints.
"""

from __future__ import annotations

import json
import re
import types
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from chains.kinds import PoolKind

TokenKind = Literal["standard", "weth", "fee_on_transfer", "reverting"]

FORMAT_VERSION = 1
MAX_FILE_BYTES = 16 << 20  # an address book is a few kB; a larger file is not one

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# str fields that must hold an address (``tokens``/``reserves`` keys and the rest are names and URLs)
_ADDRESS_FIELDS = frozenset(
    {
        "address",
        "factory",
        "router",
        "swap_router",
        "quoter_v2",
        "position_manager",
        "tick_lens",
        "token0",
        "token1",
        "asset",
        "a_token",
        "variable_debt_token",
        "stable_debt_token",
        "addresses_provider",
        "pool",
        "pool_configurator",
        "acl_manager",
        "oracle",
        "pool_data_provider",
        "deployer",
        "weth",
    }
)


class AddressBookError(ValueError):
    """An address book that cannot be used; ``str()`` is one line naming the file and the offending key."""


@dataclass(slots=True)
class TokenInfo:
    symbol: str
    address: str
    decimals: int
    kind: TokenKind = "standard"
    usd_price: float = 0.0  # the reference price the pools were seeded at (analytics only, never amounts)


@dataclass(slots=True)
class V2Venue:
    name: str  # "uniswap" | "sushiswap"
    factory: str
    router: str
    init_code_hash: str
    fee_bps: int = 30


@dataclass(slots=True)
class V3Deployment:
    factory: str
    swap_router: str
    quoter_v2: str
    position_manager: str
    tick_lens: str
    init_code_hash: str


@dataclass(slots=True)
class PoolInfo:
    venue: str  # "uniswap" | "sushiswap" (v2) | "uniswap_v3"
    kind: PoolKind
    address: str
    token0: str
    token1: str
    fee: int  # v2: fee in bps (30); v3: fee in hundredths of a bip (500, 3000, 10000)
    tick_spacing: int = 0  # v3 only


@dataclass(slots=True)
class AaveReserve:
    symbol: str
    asset: str
    a_token: str
    variable_debt_token: str
    stable_debt_token: str
    decimals: int
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int  # e.g. 10500 = 5 % bonus


@dataclass(slots=True)
class AaveMarket:
    addresses_provider: str
    pool: str
    pool_configurator: str
    acl_manager: str
    oracle: str  # the price oracle we control (setAssetPrice); prices in USD with 8 decimals
    pool_data_provider: str
    reserves: dict[str, AaveReserve] = field(default_factory=dict)
    borrowers: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AddressBook:
    chain_id: int
    rpc_url: str
    ws_url: str
    seed: int
    deployer: str
    weth: str
    tokens: dict[str, TokenInfo]
    v2: dict[str, V2Venue]
    v3: V3Deployment
    pools: list[PoolInfo]
    aave: AaveMarket
    traders: list[str] = field(default_factory=list)  # unlocked dev accounts used by the traffic generator
    deployed_at_block: int = 0
    format_version: int = FORMAT_VERSION
    relay_url: str = ""  # the local Flashbots-compatible relay (JSON-RPC, POST); "" when none runs
    mev_share_url: str = ""  # its MEV-Share hint stream (server-sent events, GET)

    def token(self, symbol: str) -> TokenInfo:
        try:
            return self.tokens[symbol]
        except KeyError:
            raise KeyError(
                f"no token {symbol!r} in the address book (have: {', '.join(self.tokens)})"
            ) from None

    def token_by_address(self, address: str) -> TokenInfo:
        low = address.lower()
        for t in self.tokens.values():
            if t.address.lower() == low:
                return t
        raise KeyError(f"no token at {address}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json() + "\n")
        return p

    @classmethod
    def from_dict(cls, d: Any) -> AddressBook:
        """Build and type-check an address book; :class:`AddressBookError` names the first bad key."""
        if not isinstance(d, dict):
            raise AddressBookError(f"the top level must be a JSON object, not {_json_type(d)}")
        if d.get("format_version") != FORMAT_VERSION:
            raise AddressBookError(
                f"format_version is {d.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        book: AddressBook = _build(cls, d, "")
        return book

    @classmethod
    def read(cls, path: str | Path) -> AddressBook:
        """Read ``path``; any problem (unreadable, not JSON, a missing or mistyped key) is one
        :class:`AddressBookError` line that names the file."""
        from chains.wirejson import load_file

        try:
            doc = load_file(path, max_bytes=MAX_FILE_BYTES)
        except OSError as exc:
            raise AddressBookError(f"address book {path}: cannot read it: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise AddressBookError(f"address book {path}: not valid JSON: {exc}") from None
        try:
            return cls.from_dict(doc)
        except AddressBookError as exc:
            raise AddressBookError(f"address book {path}: {exc}") from None


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "an integer",
        float: "a number",
    }
    return names.get(type(value), type(value).__name__)


def _build(tp: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) checked against the annotation ``tp`` and turned into it (dataclasses built)."""
    here = where or "the top level"
    if is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise AddressBookError(f"{here}: expected an object, got {_json_type(value)}")
        hints = get_type_hints(tp)
        known = {f.name: f for f in fields(tp)}
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise AddressBookError(f"{where + '.' if where else ''}{unknown[0]}: unknown key")
        kwargs: dict[str, Any] = {}
        for name, f in known.items():
            key = f"{where}.{name}" if where else name
            if name not in value:
                if f.default is not MISSING or f.default_factory is not MISSING:
                    continue  # has a default
                raise AddressBookError(f"{key}: missing")
            kwargs[name] = _build(hints[name], value[name], key)
            if name in _ADDRESS_FIELDS and not _ADDRESS.fullmatch(kwargs[name]):
                raise AddressBookError(f"{key}: not an address: {str(value[name])[:60]!r}")
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, Enum):
        members = [m.value for m in tp]
        if value not in members:
            raise AddressBookError(f"{here}: {str(value)[:40]!r} is not one of {', '.join(members)}")
        return tp(value)
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise AddressBookError(
                f"{here}: {str(value)[:40]!r} is not one of {', '.join(map(str, get_args(tp)))}"
            )
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise AddressBookError(f"{here}: expected an object, got {_json_type(value)}")
        _, vt = get_args(tp)
        return {k: _build(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise AddressBookError(f"{here}: expected an array, got {_json_type(value)}")
        (et,) = get_args(tp)
        return [_build(et, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (Union, types.UnionType):
        raise TypeError(f"unions are not used in the address book ({here})")
    if tp is int:
        if type(value) is not int:
            raise AddressBookError(f"{here}: expected an integer, got {_json_type(value)}")
        return value
    if tp is float:
        if type(value) not in (int, float):
            raise AddressBookError(f"{here}: expected a number, got {_json_type(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise AddressBookError(f"{here}: expected a string, got {_json_type(value)}")
        return value
    raise TypeError(f"no JSON check for {tp!r} ({here})")
