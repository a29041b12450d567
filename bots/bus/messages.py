"""The hub's messages on the bus: versioned, self-describing JSON, one class per kind (docs/bus.md, "Messages").

Every message is a JSON object with the envelope ``schema`` (:data:`SCHEMA`), ``kind``, ``chain_id`` and ``seq``
(JSON integers), then its own fields.  Integers inside a message (block numbers, amounts, gas) are decimal strings,
so any JSON reader keeps a uint256 exact; events keep the field names of their :mod:`chains.events` classes.

``seq`` is the hub's per-chain sequence number, contiguous over the messages that change a bot's state
(:class:`BlockMessage`, :class:`ReorgMessage`): the first is ``1`` after a snapshot at ``0``.  A bot applies them in
``seq`` order; a gap means it missed one and must re-snapshot (JetStream's own stream sequence is not contiguous for
a filtered consumer).  A :class:`StateSnapshot` (an object-store blob, too large for one message) is the state after
message ``seq``; a :class:`SnapshotAnnouncement` says where one is, and takes no ``seq`` of its own.

:func:`decode` refuses anything else with one exception, :class:`MalformedMessage`: not bounded JSON
(:func:`chains.wirejson.loads`), an unknown kind, a schema version other than this reader's, a missing or
mistyped field, an event its class rejects (the text starts with the reason: ``json``, ``kind``, ``schema``,
``shape``).  It is the transport's own exception (:class:`bots.bus.client.MalformedMessage`): a handler that raises
it gets the message terminated (``term()``) and counted.  :func:`msg_id` is the outbox's ``Nats-Msg-Id``: the same message published twice is stored once.

This module is pure data (no I/O, no ``bots.runtime``): the hub (:mod:`bots.hub.hub`) encodes, the bot side
(:mod:`bots.runtime.bus_collector`) decodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from bots.bus.client import MalformedMessage
from chains import wirejson
from chains.abi.blocks import BlockData
from chains.abi.decode import LogDecodeError, decode_swap_log
from chains.events import Event, MinedTransaction, NewBlock, PoolSwap
from chains.watch.blocks import ChainReorg

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_SNAPSHOT_BYTES",
    "SCHEMA",
    "BlockMessage",
    "MalformedMessage",
    "Message",
    "ReorgMessage",
    "SnapshotAnnouncement",
    "StateSnapshot",
    "decode",
    "decode_snapshot",
    "msg_id",
]

SCHEMA = 1
MAX_MESSAGE_BYTES = (
    16 << 20
)  # a block's logs are the largest message (the transport chunks above its max payload)
MAX_SNAPSHOT_BYTES = 512 << 20  # a whole chain state (every V3 tick of every pool)
_MAX_ENVELOPE_INT = 2**53 - 1
_E = TypeVar("_E", bound=Event)

_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_WORD = re.compile(r"0x[0-9a-f]{64}")
_HEX = re.compile(r"0x(?:[0-9a-f]{2})*")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"-?[0-9]{1,80}")


def msg_id(kind: str, chain_id: int, seq: int) -> str:
    """The outbox's ``Nats-Msg-Id`` of a message: deterministic per (chain, kind, seq), so a re-send is dropped by
    the stream's duplicate window.  (A hub that restarts continues ``seq`` from the stream's last message, or its
    first messages would be taken for duplicates.)"""
    return f"mevsuite:{chain_id}:{kind}:{seq}"


# ---------------------------------------------------------------------------------------------- wire helpers
def _bad(message: str, reason: str = "shape") -> MalformedMessage:
    """The one refusal; ``reason`` (json, kind, schema, shape) leads the message text."""
    return MalformedMessage(f"{reason}: {message}")


def _ints_to_str(value: Any) -> Any:
    """An event dict with every integer as a decimal string (``Event.from_dict`` reads both forms)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return [_ints_to_str(v) for v in value]
    if isinstance(value, dict):
        return {k: _ints_to_str(v) for k, v in value.items()}
    return value


def _no_numbers(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int | float):
        raise _bad(f"{where}: integers are decimal strings on the bus, not JSON numbers")
    if isinstance(value, list):
        for v in value:
            _no_numbers(v, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_numbers(v, f"{where}.{k}")


def _event_dict(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = _ints_to_str(event.to_dict())
    return out


def _event(cls: type[_E], raw: Any, where: str) -> _E:
    if not isinstance(raw, dict):
        raise _bad(f"{where} must be an object")
    _no_numbers(raw, where)
    try:
        return cls.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(f"{where}: {exc}") from None


def _field(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise _bad(f"{where}: missing field {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _bad(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _envelope_int(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = _field(doc, key, int, where)
    if not 0 <= value <= _MAX_ENVELOPE_INT:
        raise _bad(f"{where}: {key} {value} is out of range")
    out: int = value
    return out


def _digest(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(doc, key, str, where)
    if _DIGEST.fullmatch(value) is None:
        raise _bad(f"{where}: {key} is not 64 lower-case hex digits")
    out: str = value
    return out


def _addresses(raw: Any, where: str) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(a, str) and _ADDRESS.fullmatch(a) for a in raw):
        raise _bad(f"{where} must be a list of lower-case 0x addresses")
    return frozenset(raw)


def _log(raw: Any, where: str) -> dict[str, Any]:
    """A raw log as the node returns it (what ``ChainState.apply_block`` takes), checked, kept verbatim."""
    if not isinstance(raw, dict):
        raise _bad(f"{where} must be an object")
    address, topics, data = raw.get("address"), raw.get("topics"), raw.get("data")
    if not isinstance(address, str) or _ADDRESS.fullmatch(address) is None:
        raise _bad(f"{where}.address is not a lower-case 0x address")
    if (
        not isinstance(topics, list)
        or len(topics) > 4
        or not all(isinstance(t, str) and _WORD.fullmatch(t) for t in topics)
    ):
        raise _bad(f"{where}.topics must be at most 4 lower-case 32-byte 0x words")
    if not isinstance(data, str) or _HEX.fullmatch(data) is None:
        raise _bad(f"{where}.data is not lower-case 0x hex")
    for k, v in raw.items():
        if k not in ("topics",) and not (v is None or isinstance(v, str | bool)):
            raise _bad(f"{where}.{k} must be a string (node hex), a boolean or null")
    return raw


# ---------------------------------------------------------------------------------------------- messages
@dataclass(frozen=True, slots=True)
class BlockMessage:
    """One applied block: everything a bot needs to rebuild the hub's :class:`~chains.abi.blocks.BlockData` and
    apply it to its own state with the same ``ChainState`` code, and the digest to check the result against.

    ``changed``: the followed pools the block changed (the hub's ``ChainState.last_changed``); ``digest``:
    :func:`chains.state.digest.state_digest` over them after the block."""

    KIND: ClassVar[str] = "block"
    chain_id: int
    seq: int
    block: NewBlock
    transactions: tuple[MinedTransaction, ...]
    logs: tuple[dict[str, Any], ...]
    changed: frozenset[str]
    digest: str
    swaps: tuple[PoolSwap, ...] = ()  # not on the wire: decoded from ``logs`` as ``parse_block`` does

    @classmethod
    def of(
        cls, chain_id: int, seq: int, data: BlockData, changed: frozenset[str], digest: str
    ) -> BlockMessage:
        return cls(
            chain_id, seq, data.block, data.transactions, data.logs, frozenset(changed), digest, data.swaps
        )

    def block_data(self) -> BlockData:
        """The :class:`BlockData` the hub applied."""
        return BlockData(self.block, self.transactions, self.swaps, self.logs)

    def to_doc(self) -> dict[str, Any]:
        return {
            **_envelope(self),
            "block": _event_dict(self.block),
            "transactions": [_event_dict(t) for t in self.transactions],
            "logs": list(self.logs),
            "changed": sorted(self.changed),
            "digest": self.digest,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> BlockMessage:
        where = "block message"
        chain_id, seq = _envelope_int(doc, "chain_id", where), _envelope_int(doc, "seq", where)
        block = _event(NewBlock, doc.get("block"), f"{where}: block")
        txs = _field(doc, "transactions", list, where)
        transactions = tuple(
            _event(MinedTransaction, t, f"{where}: transactions[{i}]") for i, t in enumerate(txs)
        )
        for t in transactions:
            if t.block_number != block.number or t.block_hash != block.hash:
                raise _bad(f"{where}: transaction {t.hash} is not of block {block.number}")
        logs = tuple(_log(lg, f"{where}: logs[{i}]") for i, lg in enumerate(_field(doc, "logs", list, where)))
        changed = _addresses(doc.get("changed"), f"{where}: changed")
        swaps: list[PoolSwap] = []
        for i, lg in enumerate(logs):
            try:
                swap = decode_swap_log(lg)
            except (LogDecodeError, KeyError, TypeError, ValueError) as exc:
                raise _bad(f"{where}: logs[{i}]: {exc}") from None
            if swap is not None:
                swaps.append(swap)
        digest = _digest(doc, "digest", where)
        return cls(chain_id, seq, block, transactions, logs, changed, digest, tuple(swaps))

    def encode(self) -> bytes:
        return _dumps(self.to_doc())

    def msg_id(self) -> str:
        return msg_id(self.KIND, self.chain_id, self.seq)


@dataclass(frozen=True, slots=True)
class ReorgMessage:
    """The hub's watcher replaced blocks: ``reorg`` is its :class:`~chains.watch.blocks.ChainReorg`.  Unless
    ``reorg.resynced``, a bot rolls its state back to ``reorg.common_ancestor`` (``ChainState.rollback_to``) and
    checks ``digest`` over ``changed`` (the pools the rollback restored); a resynced reorg is followed by a
    snapshot at this ``seq``."""

    KIND: ClassVar[str] = "reorg"
    chain_id: int
    seq: int
    reorg: ChainReorg
    changed: frozenset[str]
    digest: str

    def to_doc(self) -> dict[str, Any]:
        return {
            **_envelope(self),
            "reorg": _event_dict(self.reorg),
            "changed": sorted(self.changed),
            "digest": self.digest,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ReorgMessage:
        where = "reorg message"
        return cls(
            _envelope_int(doc, "chain_id", where),
            _envelope_int(doc, "seq", where),
            _event(ChainReorg, doc.get("reorg"), f"{where}: reorg"),
            _addresses(doc.get("changed"), f"{where}: changed"),
            _digest(doc, "digest", where),
        )

    def encode(self) -> bytes:
        return _dumps(self.to_doc())

    def msg_id(self) -> str:
        return msg_id(self.KIND, self.chain_id, self.seq)


@dataclass(frozen=True, slots=True)
class SnapshotAnnouncement:
    """A full state snapshot (:class:`StateSnapshot`) was stored as object ``name``: the state after message ``seq``,
    at block ``block_number`` / ``block_hash``, whose :func:`~chains.state.digest.state_digest` over every pool is
    ``digest``; ``size`` is the object's length in bytes."""

    KIND: ClassVar[str] = "snapshot"
    chain_id: int
    seq: int
    name: str
    block_number: int
    block_hash: str
    digest: str
    size: int

    def to_doc(self) -> dict[str, Any]:
        return {
            **_envelope(self),
            "name": self.name,
            "block_number": str(self.block_number),
            "block_hash": self.block_hash,
            "digest": self.digest,
            "size": str(self.size),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> SnapshotAnnouncement:
        where = "snapshot announcement"
        name = _field(doc, "name", str, where)
        if not 0 < len(name) <= 255:
            raise _bad(f"{where}: name must be 1 to 255 characters")
        block_hash = _field(doc, "block_hash", str, where)
        if _WORD.fullmatch(block_hash) is None:
            raise _bad(f"{where}: block_hash is not a lower-case 32-byte 0x word")
        return cls(
            _envelope_int(doc, "chain_id", where),
            _envelope_int(doc, "seq", where),
            name,
            _decimal(doc, "block_number", where),
            block_hash,
            _digest(doc, "digest", where),
            _decimal(doc, "size", where),
        )

    def encode(self) -> bytes:
        return _dumps(self.to_doc())

    def msg_id(self) -> str:
        return msg_id(self.KIND, self.chain_id, self.seq)


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The whole state after message ``seq`` (an object-store blob, not a stream message): ``state`` is a
    :func:`chains.state.digest.state_snapshot` document, ``digest`` its state digest over every pool, ``block`` the
    :class:`BlockMessage` of its head block (``seq`` and ``digest`` as of the snapshot) when the hub has it, so a
    bot starting from the snapshot can evaluate that block first."""

    KIND: ClassVar[str] = "state_snapshot"
    chain_id: int
    seq: int
    state: Mapping[str, Any]
    digest: str
    block: BlockMessage | None

    def to_doc(self) -> dict[str, Any]:
        return {
            **_envelope(self),
            "state": dict(self.state),
            "digest": self.digest,
            "block": None if self.block is None else self.block.to_doc(),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> StateSnapshot:
        where = "state snapshot"
        state = _field(doc, "state", dict, where)
        raw_block = doc.get("block")
        block = None
        if raw_block is not None:
            if not isinstance(raw_block, dict):
                raise _bad(f"{where}: block must be an object or null")
            _check_envelope(raw_block, BlockMessage.KIND)
            block = BlockMessage.from_doc(raw_block)
        return cls(
            _envelope_int(doc, "chain_id", where),
            _envelope_int(doc, "seq", where),
            state,
            _digest(doc, "digest", where),
            block,
        )

    def encode(self) -> bytes:
        return _dumps(self.to_doc())


Message = BlockMessage | ReorgMessage | SnapshotAnnouncement
_KINDS: dict[str, Any] = {c.KIND: c for c in (BlockMessage, ReorgMessage, SnapshotAnnouncement)}


def _envelope(m: BlockMessage | ReorgMessage | SnapshotAnnouncement | StateSnapshot) -> dict[str, Any]:
    return {"schema": SCHEMA, "kind": m.KIND, "chain_id": m.chain_id, "seq": m.seq}


def _decimal(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = _field(doc, key, str, where)
    if _DECIMAL.fullmatch(value) is None or value.startswith("-"):
        raise _bad(f"{where}: {key} is not a non-negative decimal integer string")
    return int(value)


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _check_envelope(doc: Any, *kinds: str) -> str:
    if not isinstance(doc, dict):
        raise _bad("a message is a JSON object")
    schema = doc.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise _bad(f"schema is {schema!r:.40}, not an integer", "schema")
    if schema != SCHEMA:
        raise _bad(f"schema version {schema} is not supported (this reader: {SCHEMA})", "schema")
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise _bad(f"unknown message kind {kind!r:.40}", "kind")
    return kind


def _load(data: bytes | bytearray | str, max_bytes: int) -> Any:
    try:
        return wirejson.loads(data, max_bytes=max_bytes)
    except wirejson.WireJsonError as exc:
        raise _bad(f"not a message ({exc.reason}): {exc}", "json") from None
    except (ValueError, UnicodeDecodeError) as exc:  # pragma: no cover - wirejson reports its own
        raise _bad(f"not a message: {exc}", "json") from None


def decode(data: bytes | bytearray | str) -> Message:
    """The message ``data`` encodes; :class:`MalformedMessage` for anything else (see the module docstring)."""
    doc = _load(data, MAX_MESSAGE_BYTES)
    kind = _check_envelope(doc, *_KINDS)
    message: Message = _KINDS[kind].from_doc(doc)
    return message


def decode_snapshot(data: bytes | bytearray | str) -> StateSnapshot:
    """The :class:`StateSnapshot` in an object-store blob; :class:`MalformedMessage` if it is not one."""
    doc = _load(data, MAX_SNAPSHOT_BYTES)
    _check_envelope(doc, StateSnapshot.KIND)
    return StateSnapshot.from_doc(doc)
