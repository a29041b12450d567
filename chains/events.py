"""Typed events that flow from the chain watchers to the bots, and the publish/subscribe seam they travel over.

Every event is a frozen, slotted dataclass whose fields are declared with small annotated aliases
(:data:`Address`, :data:`Hash32`, :data:`Uint256`, :data:`Int256` ...).  One generic ``__post_init__`` reads those
annotations and enforces them, so a class body doubles as its schema:

* addresses are normalised to EIP-55 checksum form; a malformed address (or a mixed-case one whose checksum is
  wrong, which is almost always a typo) raises :class:`ValueError`;
* hashes are normalised to lowercase ``0x`` + 64 hex digits;
* amounts are Python ``int`` only -- ``float``, ``bool`` and ``Decimal`` raise :class:`TypeError` (exact to the
  wei: a float amount would already have lost precision), and every integer is range-checked against the
  Solidity type it mirrors (``uint256``, ``int24`` ...).

:meth:`Event.to_dict` / :meth:`Event.from_dict` give a compact JSON-safe form for the NATS bus messages: integers
stay JSON numbers while they are exact in every JSON reader (``|x| <= 2**53 - 1``) and become decimal strings
beyond that, bytes become ``0x``-hex, tuples become lists; a ``"kind"`` key names the event class.

Topics are dotted lowercase names ``<domain>.<stream>[.<scope>...]`` (e.g. ``chain.blocks`` or, per chain,
``chain.blocks.1``); each event class names its default topic in ``TOPIC``.  The bus itself lives on floor 4
(``bots/runtime/bus.py``); this floor only defines the :class:`Publisher` / :class:`Subscriber` protocols so that the
watchers in ``chains/`` can publish without importing ``bots/``.
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    Protocol,
    Self,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    runtime_checkable,
)

from eth_utils.address import to_checksum_address

from chains import wirejson

MAX_EVENT_BYTES = 16 << 20  # one serialised event (a block's logs are the largest)

__all__ = [
    "ALL_TOPICS",
    "TOPIC_NEW_BLOCKS",
    "TOPIC_ORACLE_PRICES",
    "TOPIC_ORACLE_UPDATES",
    "TOPIC_PENDING_SWAPS",
    "TOPIC_PENDING_TXS",
    "TOPIC_POOL_SWAPS",
    "TOPIC_WHALE_TRANSFERS",
    "Address",
    "AnyEvent",
    "Event",
    "EventSubscription",
    "Hash32",
    "Int24",
    "Int256",
    "LocalEvent",
    "MinedTransaction",
    "NewBlock",
    "OraclePriceUpdate",
    "OracleUpdate",
    "PendingSwap",
    "PendingTransaction",
    "PoolSwap",
    "Publisher",
    "Subscriber",
    "SwapProtocol",
    "Uint8",
    "Uint24",
    "Uint64",
    "Uint128",
    "Uint160",
    "Uint256",
    "WhaleTransfer",
    "event_class",
    "is_valid_topic",
    "register_event",
    "validate_topic",
]

# --------------------------------------------------------------------------------------------------- topics

TOPIC_NEW_BLOCKS = "chain.blocks"
TOPIC_PENDING_TXS = "mempool.txs"
TOPIC_PENDING_SWAPS = "mempool.swaps"
TOPIC_POOL_SWAPS = "dex.swaps"
TOPIC_ORACLE_PRICES = "oracle.prices"
TOPIC_MINED_TXS = "chain.txs"
TOPIC_ORACLE_UPDATES = "oracle.updates"
TOPIC_WHALE_TRANSFERS = "chain.whales"
ALL_TOPICS: tuple[str, ...] = (
    TOPIC_NEW_BLOCKS,
    TOPIC_PENDING_TXS,
    TOPIC_PENDING_SWAPS,
    TOPIC_POOL_SWAPS,
    TOPIC_ORACLE_PRICES,
    TOPIC_MINED_TXS,
    TOPIC_ORACLE_UPDATES,
    TOPIC_WHALE_TRANSFERS,
)

# Dotted lowercase segments: safe as a Redis key suffix, a Prometheus label value and a file name alike.
_TOPIC_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


def is_valid_topic(topic: object) -> bool:
    """True if ``topic`` follows the naming convention ``<domain>.<stream>[.<scope>...]``."""
    return isinstance(topic, str) and len(topic) <= 200 and _TOPIC_RE.fullmatch(topic) is not None


def validate_topic(topic: str) -> str:
    """Return ``topic`` unchanged, or raise :class:`ValueError` explaining the naming convention."""
    if not is_valid_topic(topic):
        raise ValueError(
            f"invalid topic {topic!r}: expected dotted lowercase segments '<domain>.<stream>[.<scope>...]' "
            "of [a-z0-9_], e.g. 'chain.blocks' or 'dex.swaps.1'"
        )
    return topic


# ------------------------------------------------------------------------------------- field annotations


@dataclass(frozen=True, slots=True)
class _IntRange:
    """Annotation marker: an exact integer within the range of a Solidity integer type."""

    label: str
    lo: int
    hi: int


class _AddressMarker:
    """Annotation marker: a 20-byte address, normalised to EIP-55."""


class _HashMarker:
    """Annotation marker: a 32-byte hash, normalised to lowercase 0x-hex."""


_ADDRESS = _AddressMarker()
_HASH32 = _HashMarker()

Address = Annotated[str, _ADDRESS]
Hash32 = Annotated[str, _HASH32]
Uint8 = Annotated[int, _IntRange("uint8", 0, 2**8 - 1)]
Uint24 = Annotated[int, _IntRange("uint24", 0, 2**24 - 1)]
Uint64 = Annotated[int, _IntRange("uint64", 0, 2**64 - 1)]
Uint128 = Annotated[int, _IntRange("uint128", 0, 2**128 - 1)]
Uint160 = Annotated[int, _IntRange("uint160", 0, 2**160 - 1)]
Uint256 = Annotated[int, _IntRange("uint256", 0, 2**256 - 1)]
Int24 = Annotated[int, _IntRange("int24", -(2**23), 2**23 - 1)]
Int256 = Annotated[int, _IntRange("int256", -(2**255), 2**255 - 1)]

SwapProtocol = Literal["uniswap_v2", "uniswap_v3"]
TxStatus = Literal["pending", "mined"]
WhaleKind = Literal["eth_transfer", "erc20_transfer", "swap"]

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_HASH_RE = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_DEC_RE = re.compile(r"-?[0-9]+")
# Integers up to this magnitude are exact as IEEE doubles, i.e. in every JSON reader (JavaScript included).
_JSON_SAFE_INT = 2**53 - 1


@lru_cache(maxsize=65536)
def _checksum(value: str) -> str:
    # Cached: the same pools, tokens and routers recur in almost every event, and keccak is the costly part.
    body = value[2:]
    checksummed = to_checksum_address(value)
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise ValueError(f"address {value!r} has an invalid EIP-55 checksum (expected {checksummed})")
    return str(checksummed)


def _where(cls: type, name: str) -> str:
    return f"{cls.__name__}.{name}"


def _check_address(cls: type, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{_where(cls, name)}: address must be a str, got {type(value).__name__}")
    if _ADDRESS_RE.fullmatch(value) is None:
        raise ValueError(
            f"{_where(cls, name)}: malformed address {value!r}: expected '0x' followed by 40 hex digits"
        )
    try:
        return _checksum(value)
    except ValueError as exc:
        raise ValueError(f"{_where(cls, name)}: {exc}") from None


def _check_hash(cls: type, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{_where(cls, name)}: hash must be a 0x-hex str, got {type(value).__name__}")
    if _HASH_RE.fullmatch(value) is None:
        raise ValueError(
            f"{_where(cls, name)}: malformed hash {value!r}: expected '0x' followed by 64 hex digits"
        )
    return value.lower()


def _check_int(cls: type, name: str, value: Any, rng: _IntRange | None) -> int:
    # `type(...) is int` on purpose: bool is an int subclass, and IntEnum-like subclasses do not belong in amounts.
    if type(value) is not int:
        raise TypeError(
            f"{_where(cls, name)}: expected an int, got {type(value).__name__} {value!r} "
            "(amounts are exact integers; floats, bools and Decimals are rejected)"
        )
    if rng is not None and not rng.lo <= value <= rng.hi:
        raise ValueError(f"{_where(cls, name)}: {value} is out of range for {rng.label}")
    return value


# A field check takes (class, field name, value) and returns the normalised value.
_Check = Callable[[type, str, Any], Any]


def _build_check(hint: Any) -> _Check:
    """Turn one resolved field annotation into a validator/normaliser."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        for marker in meta:
            if isinstance(marker, _AddressMarker):
                return _check_address
            if isinstance(marker, _HashMarker):
                return _check_hash
            if isinstance(marker, _IntRange):
                rng = marker
                return lambda cls, name, value: _check_int(cls, name, value, rng)
        return _build_check(base)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union annotation {hint!r}")
        inner = _build_check(args[0])
        return lambda cls, name, value: None if value is None else inner(cls, name, value)
    if origin is tuple:
        targs = get_args(hint)
        if len(targs) != 2 or targs[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple annotation {hint!r}: use tuple[X, ...]")
        item = _build_check(targs[0])

        def check_tuple(cls: type, name: str, value: Any) -> tuple[Any, ...]:
            if not isinstance(value, (tuple, list)):
                raise TypeError(f"{_where(cls, name)}: expected a tuple, got {type(value).__name__}")
            return tuple(item(cls, f"{name}[{i}]", v) for i, v in enumerate(value))

        return check_tuple
    if origin is Literal:
        allowed = get_args(hint)

        def check_literal(cls: type, name: str, value: Any) -> Any:
            if value not in allowed:
                raise ValueError(f"{_where(cls, name)}: {value!r} is not one of {allowed}")
            return value

        return check_literal
    if hint is int:
        return lambda cls, name, value: _check_int(cls, name, value, None)
    if hint is bool:

        def check_bool(cls: type, name: str, value: Any) -> bool:
            if type(value) is not bool:
                raise TypeError(f"{_where(cls, name)}: expected a bool, got {type(value).__name__}")
            return value

        return check_bool
    if hint is bytes:

        def check_bytes(cls: type, name: str, value: Any) -> bytes:
            if isinstance(value, (bytearray, memoryview)):
                return bytes(value)  # frozen events must be hashable, so mutable buffers are copied
            if not isinstance(value, bytes):
                raise TypeError(f"{_where(cls, name)}: expected bytes, got {type(value).__name__}")
            return bytes(value)

        return check_bytes
    if hint is float:

        def check_float(cls: type, name: str, value: Any) -> float:
            if type(value) not in (int, float):
                raise TypeError(f"{_where(cls, name)}: expected a float, got {type(value).__name__}")
            if not math.isfinite(value):
                raise ValueError(f"{_where(cls, name)}: expected a finite number, got {value!r}")
            return float(value)

        return check_float
    if hint is str:

        def check_str(cls: type, name: str, value: Any) -> str:
            if not isinstance(value, str):
                raise TypeError(f"{_where(cls, name)}: expected a str, got {type(value).__name__}")
            return value

        return check_str
    raise TypeError(f"unsupported event field annotation {hint!r}")


# -------------------------------------------------------------------------------------------- (de)coding


def _encode(value: Any) -> Any:
    if type(value) is int:
        return value if -_JSON_SAFE_INT <= value <= _JSON_SAFE_INT else str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value  # str, bool, float, None: JSON-native


_Decode = Callable[[Any], Any]


def _build_decode(hint: Any) -> _Decode:
    """The inverse of :func:`_encode` for one field; the constructor's checks then validate the result."""
    origin = get_origin(hint)
    if origin is Annotated:
        return _build_decode(get_args(hint)[0])
    if origin in (Union, types.UnionType):
        (arg,) = [a for a in get_args(hint) if a is not type(None)]
        inner = _build_decode(arg)
        return lambda v: None if v is None else inner(v)
    if origin is tuple:
        item = _build_decode(get_args(hint)[0])
        return lambda v: tuple(item(x) for x in v) if isinstance(v, (list, tuple)) else v
    if hint is int:

        def decode_int(v: Any) -> Any:
            if isinstance(v, str):
                if _DEC_RE.fullmatch(v) is None:
                    raise ValueError(f"expected a decimal integer string, got {v!r}")
                return int(v)
            return v  # ints pass; anything else is left for the type check to reject

        return decode_int
    if hint is bytes:

        def decode_bytes(v: Any) -> Any:
            if isinstance(v, str):
                if _HEX_RE.fullmatch(v) is None:
                    raise ValueError(f"expected 0x-hex bytes, got {v!r}")
                return bytes.fromhex(v[2:])
            return v

        return decode_bytes
    return lambda v: v


@dataclass(frozen=True, slots=True)
class _Schema:
    names: tuple[str, ...]
    checks: tuple[_Check, ...]
    decoders: Mapping[str, _Decode]


_SCHEMAS: dict[type, _Schema] = {}
_REGISTRY: dict[str, type[Event]] = {}


def _schema(cls: type) -> _Schema:
    schema = _SCHEMAS.get(cls)
    if schema is None:
        hints = get_type_hints(cls, include_extras=True)
        names = tuple(f.name for f in fields(cls))
        schema = _Schema(
            names=names,
            checks=tuple(_build_check(hints[n]) for n in names),
            decoders={n: _build_decode(hints[n]) for n in names},
        )
        _SCHEMAS[cls] = schema
    return schema


# ------------------------------------------------------------------------------------------------ events

E = TypeVar("E", bound="Event")


def register_event(cls: type[E]) -> type[E]:
    """Class decorator: register an event class under its ``KIND`` so :meth:`Event.from_dict` can find it.

    Apply it *outside* ``@dataclass`` (``slots=True`` replaces the class object).  Bots on higher floors register
    their own events (e.g. CEX trades) the same way.
    """
    kind = cls.KIND
    if not kind or not isinstance(kind, str):
        raise TypeError(f"{cls.__name__} must define a non-empty KIND class variable")
    if "kind" in {f.name for f in fields(cls)}:
        raise TypeError(f"{cls.__name__}: a field may not be named 'kind' (reserved by the serialised form)")
    existing = _REGISTRY.get(kind)
    if existing is not None and existing is not cls:
        raise ValueError(f"event kind {kind!r} is already registered by {existing.__qualname__}")
    if cls.TOPIC:
        validate_topic(cls.TOPIC)
    _schema(cls)  # resolve the annotations now, so a bad one fails at import rather than on the first event
    _REGISTRY[kind] = cls
    return cls


def event_class(kind: str) -> type[Event]:
    """The registered event class for ``kind``; :class:`KeyError` if unknown."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown event kind {kind!r}; registered: {sorted(_REGISTRY)}") from None


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all bus events: immutable, validated on construction, serialisable.

    Subclasses declare ``KIND`` (the serialised type name), ``TOPIC`` (their default topic), fields with the
    annotated aliases of this module, and optionally ``_validate`` for rules spanning several fields.
    """

    KIND: ClassVar[str] = ""
    TOPIC: ClassVar[str] = ""

    def __post_init__(self) -> None:
        cls = type(self)
        schema = _schema(cls)
        for name, check in zip(schema.names, schema.checks, strict=True):
            value = getattr(self, name)
            normalised = check(cls, name, value)
            if normalised is not value:
                # Frozen dataclass: normalising (checksumming, lowercasing, list -> tuple) must bypass __setattr__.
                object.__setattr__(self, name, normalised)
        self._validate()

    def _validate(self) -> None:
        """Cross-field rules; raise :class:`ValueError`.  Field types and ranges are already checked."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: ``kind`` plus every field (big ints as decimal strings, bytes as 0x-hex)."""
        out: dict[str, Any] = {"kind": self.KIND}
        for name in _schema(type(self)).names:
            out[name] = _encode(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild an event from :meth:`to_dict` output.  On :class:`Event` itself it dispatches on ``kind``."""
        kind = data.get("kind")
        if not isinstance(kind, str):
            raise ValueError("serialised event has no 'kind'")
        target = event_class(kind)
        if not issubclass(target, cls):
            raise ValueError(
                f"serialised event of kind {kind!r} is a {target.__name__}, not a {cls.__name__}"
            )
        schema = _schema(target)
        unknown = set(data) - set(schema.names) - {"kind"}
        if unknown:
            raise ValueError(f"{target.__name__}: unknown field(s) {sorted(unknown)}")
        missing = set(schema.names) - set(data)
        kwargs = {name: schema.decoders[name](data[name]) for name in schema.names if name in data}
        try:
            event = target(**kwargs)
        except TypeError:
            if missing:
                raise ValueError(f"{target.__name__}: missing field(s) {sorted(missing)}") from None
            raise
        return event

    def to_json(self) -> str:
        """Compact JSON of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Inverse of :meth:`to_json`."""
        data = wirejson.loads(text, max_bytes=MAX_EVENT_BYTES)
        if not isinstance(data, dict):
            raise ValueError("serialised event must be a JSON object")
        return cls.from_dict(data)


@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class NewBlock(Event):
    """A new chain head (``newHeads``), emitted once the block's logs have been applied to local state."""

    KIND: ClassVar[str] = "new_block"
    TOPIC: ClassVar[str] = TOPIC_NEW_BLOCKS

    number: Uint64
    hash: Hash32
    parent_hash: Hash32
    timestamp: Uint64
    base_fee_per_gas: Uint256
    gas_used: Uint64
    gas_limit: Uint64

    def _validate(self) -> None:
        if self.gas_used > self.gas_limit:
            raise ValueError(f"NewBlock: gas_used {self.gas_used} exceeds gas_limit {self.gas_limit}")


@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class PendingTransaction(Event):
    """A transaction seen in the mempool.

    Legacy and EIP-2930 transactions carry their ``gasPrice`` in both fee fields, which is exactly how EIP-1559
    prices them (effective tip = ``gasPrice - baseFee``).  ``seen_at`` is wall-clock unix seconds
    (``time.time()``) so that it stays comparable across processes.
    """

    KIND: ClassVar[str] = "pending_tx"
    TOPIC: ClassVar[str] = TOPIC_PENDING_TXS

    hash: Hash32
    sender: Address
    to: Address | None  # None: contract creation
    nonce: Uint64
    value: Uint256
    gas: Uint64
    max_fee_per_gas: Uint256
    max_priority_fee_per_gas: Uint256
    input: bytes
    seen_at: float

    def _validate(self) -> None:
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise ValueError(
                f"PendingTransaction {self.hash}: max_priority_fee_per_gas {self.max_priority_fee_per_gas} "
                f"exceeds max_fee_per_gas {self.max_fee_per_gas}"
            )
        if self.seen_at < 0:
            raise ValueError(f"PendingTransaction {self.hash}: negative seen_at {self.seen_at}")


@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class MinedTransaction(Event):
    """A transaction included in a block, with its receipt's outcome (``success`` is receipt status 1)."""

    KIND: ClassVar[str] = "mined_tx"
    TOPIC: ClassVar[str] = TOPIC_MINED_TXS

    block_number: Uint64
    block_hash: Hash32
    tx_index: Uint64
    hash: Hash32
    sender: Address
    to: Address | None  # None: contract creation
    nonce: Uint64
    value: Uint256
    gas_used: Uint64
    effective_gas_price: Uint256
    success: bool

    @property
    def position(self) -> tuple[int, int]:
        """(block number, tx index)."""
        return (self.block_number, self.tx_index)


@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSwap(Event):
    """A decoded Uniswap V2 or V3 ``Swap`` log.

    ``amount0`` / ``amount1`` are signed deltas of the pool's balances (the V3 convention): positive means the pool
    received the token.  For V2 they are derived as ``amountXIn - amountXOut``, and the four raw amounts are kept
    too; V3 carries the post-swap ``sqrt_price_x96``, ``liquidity`` and ``tick``.  Use :meth:`v2` / :meth:`v3`
    to build one without restating the protocol-specific rules.
    """

    KIND: ClassVar[str] = "pool_swap"
    TOPIC: ClassVar[str] = TOPIC_POOL_SWAPS

    block_number: Uint64
    block_hash: Hash32
    tx_hash: Hash32
    tx_index: Uint64
    log_index: Uint64
    pool: Address
    protocol: SwapProtocol
    sender: Address
    recipient: Address
    amount0: Int256
    amount1: Int256
    # Uniswap V3 only
    sqrt_price_x96: Uint160 | None = None
    liquidity: Uint128 | None = None
    tick: Int24 | None = None
    # Uniswap V2 only
    amount0_in: Uint256 | None = None
    amount1_in: Uint256 | None = None
    amount0_out: Uint256 | None = None
    amount1_out: Uint256 | None = None

    def _validate(self) -> None:
        v3 = (self.sqrt_price_x96, self.liquidity, self.tick)
        v2 = (self.amount0_in, self.amount1_in, self.amount0_out, self.amount1_out)
        where = f"PoolSwap {self.tx_hash}#{self.log_index}"
        if self.protocol == "uniswap_v3":
            if any(v is None for v in v3) or any(v is not None for v in v2):
                raise ValueError(
                    f"{where}: a uniswap_v3 swap needs sqrt_price_x96/liquidity/tick and no V2 amounts"
                )
        else:
            if any(v is None for v in v2) or any(v is not None for v in v3):
                raise ValueError(f"{where}: a uniswap_v2 swap needs the four in/out amounts and no V3 fields")
            a0_in, a1_in, a0_out, a1_out = v2
            assert a0_in is not None and a1_in is not None and a0_out is not None and a1_out is not None
            if self.amount0 != a0_in - a0_out or self.amount1 != a1_in - a1_out:
                raise ValueError(f"{where}: amount0/amount1 must equal amountIn - amountOut for uniswap_v2")

    @property
    def position(self) -> tuple[int, int]:
        """(block number, log index): the order in which swaps happened on chain."""
        return (self.block_number, self.log_index)

    @classmethod
    def v2(
        cls,
        *,
        block_number: int,
        block_hash: str,
        tx_hash: str,
        tx_index: int,
        log_index: int,
        pool: str,
        sender: str,
        recipient: str,
        amount0_in: int,
        amount1_in: int,
        amount0_out: int,
        amount1_out: int,
    ) -> PoolSwap:
        """A V2 ``Swap(sender, amount0In, amount1In, amount0Out, amount1Out, to)`` with the signed deltas derived."""
        for name, v in (
            ("amount0_in", amount0_in),
            ("amount1_in", amount1_in),
            ("amount0_out", amount0_out),
            ("amount1_out", amount1_out),
        ):
            _check_int(cls, name, v, None)  # before the subtraction, so a float cannot sneak through it
        return cls(
            block_number=block_number,
            block_hash=block_hash,
            tx_hash=tx_hash,
            tx_index=tx_index,
            log_index=log_index,
            pool=pool,
            protocol="uniswap_v2",
            sender=sender,
            recipient=recipient,
            amount0=amount0_in - amount0_out,
            amount1=amount1_in - amount1_out,
            amount0_in=amount0_in,
            amount1_in=amount1_in,
            amount0_out=amount0_out,
            amount1_out=amount1_out,
        )

    @classmethod
    def v3(
        cls,
        *,
        block_number: int,
        block_hash: str,
        tx_hash: str,
        tx_index: int,
        log_index: int,
        pool: str,
        sender: str,
        recipient: str,
        amount0: int,
        amount1: int,
        sqrt_price_x96: int,
        liquidity: int,
        tick: int,
    ) -> PoolSwap:
        """A V3 ``Swap(sender, recipient, amount0, amount1, sqrtPriceX96, liquidity, tick)``."""
        return cls(
            block_number=block_number,
            block_hash=block_hash,
            tx_hash=tx_hash,
            tx_index=tx_index,
            log_index=log_index,
            pool=pool,
            protocol="uniswap_v3",
            sender=sender,
            recipient=recipient,
            amount0=amount0,
            amount1=amount1,
            sqrt_price_x96=sqrt_price_x96,
            liquidity=liquidity,
            tick=tick,
        )


@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class OraclePriceUpdate(Event):
    """A new oracle price for ``asset``: ``price / 10**decimals`` units of the oracle's base currency."""

    KIND: ClassVar[str] = "oracle_price"
    TOPIC: ClassVar[str] = TOPIC_ORACLE_PRICES

    asset: Address
    price: Uint256
    decimals: Uint8
    block_number: Uint64
    block_hash: Hash32
    tx_hash: Hash32
    tx_index: Uint64
    log_index: Uint64

    @property
    def position(self) -> tuple[int, int]:
        """(block number, log index)."""
        return (self.block_number, self.log_index)


@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class PendingSwap(Event):
    """A router swap call decoded from a pending transaction.

    ``path`` is always in swap direction (token in first), even for V3 exact-output calls whose encoded path is
    reversed; ``fees`` holds the V3 pool fee of each hop (``len(path) - 1`` entries) and is empty for V2.
    Exact-input swaps set ``amount_in`` and ``amount_out_min``; exact-output swaps set ``amount_out`` and
    ``amount_in_max``.  ``deadline`` is None when the call carries none (SwapRouter02 without multicall deadline).

    The mempool watcher also fills what a backrunner or sandwicher needs without a second lookup: ``method``
    (the router function, e.g. ``"swapExactETHForTokens"``, or ``"multicall/exactInput"`` inside a multicall),
    the tx's ``value`` (for ETH-in calls it *is* the input: ``amount_in`` or ``amount_in_max``), its ``nonce``
    and fee caps (legacy txs: ``gasPrice`` in both), and ``seen_at`` (wall-clock unix seconds of arrival).
    They default to empty so that other producers may leave them out.
    """

    KIND: ClassVar[str] = "pending_swap"
    TOPIC: ClassVar[str] = TOPIC_PENDING_SWAPS

    tx_hash: Hash32
    sender: Address
    router: Address
    protocol: SwapProtocol
    path: tuple[Address, ...]
    fees: tuple[Uint24, ...] = ()
    exact_input: bool
    amount_in: Uint256 | None = None
    amount_out_min: Uint256 | None = None
    amount_out: Uint256 | None = None
    amount_in_max: Uint256 | None = None
    deadline: Uint256 | None = None
    recipient: Address | None = None
    method: str = ""
    value: Uint256 = 0
    nonce: Uint64 | None = None
    max_fee_per_gas: Uint256 | None = None
    max_priority_fee_per_gas: Uint256 | None = None
    seen_at: float = 0.0

    def _validate(self) -> None:
        where = f"PendingSwap {self.tx_hash}"
        if len(self.path) < 2:
            raise ValueError(f"{where}: path needs at least two tokens, got {len(self.path)}")
        for a, b in zip(self.path, self.path[1:], strict=False):
            if a == b:
                raise ValueError(f"{where}: path repeats token {a} in consecutive hops")
        hops = len(self.path) - 1
        if self.protocol == "uniswap_v3" and len(self.fees) != hops:
            raise ValueError(
                f"{where}: a uniswap_v3 path of {hops} hop(s) needs {hops} fee(s), got {len(self.fees)}"
            )
        if self.protocol == "uniswap_v2" and self.fees:
            raise ValueError(f"{where}: uniswap_v2 swaps have no per-hop fees")
        if self.exact_input:
            if self.amount_in is None or self.amount_out_min is None:
                raise ValueError(f"{where}: exact-input swaps need amount_in and amount_out_min")
            if self.amount_out is not None or self.amount_in_max is not None:
                raise ValueError(f"{where}: exact-input swaps take no amount_out / amount_in_max")
        else:
            if self.amount_out is None or self.amount_in_max is None:
                raise ValueError(f"{where}: exact-output swaps need amount_out and amount_in_max")
            if self.amount_in is not None or self.amount_out_min is not None:
                raise ValueError(f"{where}: exact-output swaps take no amount_in / amount_out_min")

    @property
    def token_in(self) -> str:
        """The token the sender pays."""
        return self.path[0]

    @property
    def token_out(self) -> str:
        """The token the sender receives."""
        return self.path[-1]


def _check_status(where: str, status: str, block_number: int | None, block_hash: str | None) -> None:
    if status == "mined" and (block_number is None or block_hash is None):
        raise ValueError(f"{where}: a mined event needs block_number and block_hash")
    if status == "pending" and (block_number is not None or block_hash is not None):
        raise ValueError(f"{where}: a pending event has no block (block_number/block_hash must be None)")


@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class OracleUpdate(Event):
    """A transaction that updates a price source: ``status`` "pending" (seen in the mempool, e.g. the devnet's
    oracle mover or a Chainlink aggregator's ``transmit``) or "mined" (in ``block_number``).

    ``source`` is the contract the transaction calls (the oracle, or an aggregator behind a proxy); ``assets``
    the assets whose price it moves, when known.  ``price`` / ``decimals`` are set only when the update states
    its price plainly (``setAssetPrice``); otherwise — adapters, capped feeds, ``transmit`` reports — the new
    price is learned by simulating the transaction and reading the oracle, never by decoding the report.
    """

    KIND: ClassVar[str] = "oracle_update"
    TOPIC: ClassVar[str] = TOPIC_ORACLE_UPDATES

    status: TxStatus
    tx_hash: Hash32
    sender: Address
    source: Address
    assets: tuple[Address, ...] = ()
    price: Uint256 | None = None
    decimals: Uint8 | None = None
    block_number: Uint64 | None = None
    block_hash: Hash32 | None = None
    seen_at: float = 0.0

    def _validate(self) -> None:
        where = f"OracleUpdate {self.tx_hash}"
        _check_status(where, self.status, self.block_number, self.block_hash)
        if (self.price is None) != (self.decimals is None):
            raise ValueError(f"{where}: price and decimals come together")
        if self.price is not None and len(self.assets) != 1:
            raise ValueError(f"{where}: a stated price belongs to exactly one asset, got {len(self.assets)}")


@register_event
@dataclass(frozen=True, slots=True, kw_only=True)
class WhaleTransfer(Event):
    """A transfer or swap at least as large as the producer's size threshold for its token: an ETH transfer
    (``token`` None, ``amount`` in wei), an ERC-20 ``Transfer`` (``amount`` in the token's raw units) or a swap
    (``token`` the input token, ``amount`` its input amount), pending or mined.

    ``threshold`` is the threshold that was crossed (same units as ``amount``), so consumers can tell how big
    "big" was; ``log_index`` is set for mined ERC-20 transfers and swaps.
    """

    KIND: ClassVar[str] = "whale_transfer"
    TOPIC: ClassVar[str] = TOPIC_WHALE_TRANSFERS

    whale_kind: WhaleKind
    status: TxStatus
    tx_hash: Hash32
    sender: Address
    recipient: Address | None = None
    token: Address | None = None
    amount: Uint256
    threshold: Uint256
    block_number: Uint64 | None = None
    block_hash: Hash32 | None = None
    log_index: Uint64 | None = None

    def _validate(self) -> None:
        where = f"WhaleTransfer {self.tx_hash}"
        _check_status(where, self.status, self.block_number, self.block_hash)
        if (self.whale_kind == "eth_transfer") != (self.token is None):
            raise ValueError(f"{where}: only an ETH transfer has no token")
        if self.amount < self.threshold:
            raise ValueError(f"{where}: amount {self.amount} is below the threshold {self.threshold}")
        if self.log_index is not None and self.status != "mined":
            raise ValueError(f"{where}: a log index belongs to a mined event")


# --------------------------------------------------------------------------------------- bus protocols


class LocalEvent:
    """Base of events that only travel inside one process: they carry Python objects (a block's decoded data, the
    pools it changed) instead of a wire schema.  The in-process bus carries them; a bus that serialises refuses
    them.  Subclasses set ``TOPIC`` like :class:`Event` does."""

    __slots__ = ()
    TOPIC: ClassVar[str] = ""


#: What a bus carries: a serialisable :class:`Event` or an in-process :class:`LocalEvent`.
AnyEvent = Event | LocalEvent


@runtime_checkable
class Publisher(Protocol):
    """Anything events can be published to: the in-process bus, a test recorder."""

    async def publish(self, topic: str, event: AnyEvent) -> None:
        """Deliver ``event`` to every current subscriber of ``topic`` (a no-op when there are none)."""
        ...


class EventSubscription(Protocol):
    """One consumer's view of a topic: an async iterator of events that ends once the subscription is closed."""

    @property
    def topic(self) -> str:
        """The topic this subscription reads."""
        ...

    def __aiter__(self) -> AsyncIterator[AnyEvent]: ...

    async def get(self) -> AnyEvent:
        """The next event; waits while none is queued."""
        ...

    async def close(self, *, discard: bool = False) -> int:
        """Stop receiving.  Iteration ends after the queued events, or at once with ``discard``.

        Returns the number of queued events discarded.
        """
        ...


class Subscriber(Protocol):
    """The subscribing side of a bus."""

    def subscribe(self, topic: str) -> EventSubscription:
        """Start receiving events published to ``topic`` from now on."""
        ...
