"""A whole :class:`~chains.state.chain.ChainState` as a JSON document, and a digest of part of it.

Two processes that follow one chain (the hub and a bot, docs/bus.md) must hold the same state at every block. This
module gives them a shared yardstick:

* :func:`state_snapshot` / :func:`state_from_snapshot` — the whole state (head block, every followed pool, the Aave
  market) as a JSON-safe document (``"format": "mevsuite.chain-state"``, ``"version": 1``) and back. A pool's fields
  are its kind's pool-state document fields (:attr:`chains.amm.registry.PoolProtocol.to_doc` / ``from_doc``, every
  integer a decimal string), so a kind registered through :mod:`chains.amm.registry` needs no code here. A pool
  state that carries its own ``address`` / ``token0`` / ``token1`` (a V2 pair) keeps them next to its fields; the
  journal is not part of the document (a state rebuilt from it rolls back no further than its head block).
* :func:`state_digest` — the sha256 (hex) of a canonical serialisation of some pools (and, by default, the Aave
  market): for each address, sorted and lower-cased, its kind and the same fields as the snapshot (or a marker
  that it is not followed); JSON with sorted keys, no whitespace, ASCII. The same state gives the same digest in
  every process and on every Python version; a change of one wei in one of the pools changes it; pools not named
  do not enter it. The Aave market, when the state tracks one, enters every digest whole (``include_aave``):
  its event handlers do not report what they touched.

The document and the digest share one serialisation (:func:`pool_fields`, :func:`aave_document`), so a bot whose
digest matches the hub's holds what the hub would write in a snapshot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from chains.amm.registry import PoolDocError, protocol
from chains.state.chain import (
    AaveState,
    ChainState,
    EModeCategory,
    ReserveState,
    StableDebt,
    StateError,
)

__all__ = [
    "DIGEST_VERSION",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "StateSnapshotError",
    "aave_document",
    "aave_from_document",
    "pool_fields",
    "state_digest",
    "state_from_snapshot",
    "state_snapshot",
]

SNAPSHOT_FORMAT = "mevsuite.chain-state"
SNAPSHOT_VERSION = 1
DIGEST_VERSION = 1
_IDENTITY = (
    "address",
    "token0",
    "token1",
)  # fields a pool state may carry besides its kind's document fields


class StateSnapshotError(ValueError):
    """A chain-state document is malformed (shape, kind, field range) or names a kind not registered here."""


# ---------------------------------------------------------------------------------------------- pools
def pool_fields(kind: str, pool: Any) -> dict[str, Any]:
    """The kind's document fields of ``pool`` (``to_doc``) plus the identity fields the state carries itself."""
    fields: dict[str, Any] = {k: v for k in _IDENTITY if isinstance(v := getattr(pool, k, None), str) and v}
    fields.update(protocol(kind).to_doc(pool))
    return fields


# ---------------------------------------------------------------------------------------------- Aave
def _pairs(d: Mapping[tuple[str, str], Any], value: Any) -> list[list[Any]]:
    return [[a, u, value(v)] for (a, u), v in sorted(d.items())]


def aave_document(aave: AaveState) -> dict[str, Any]:
    """The tracked Aave market as JSON-safe data: every map sorted, every integer a decimal string, every entry
    kept as it is (a zero balance or a cleared flag that the events wrote stays an entry)."""
    return {
        "pool": aave.pool,
        "oracle": aave.oracle,
        "configurator": aave.configurator,
        "reserves": [
            {
                k: (str(v) if isinstance(v, int) else v)
                for k, v in (
                    ("asset", r.asset),
                    ("id", r.id),
                    ("decimals", r.decimals),
                    ("ltv", r.ltv),
                    ("liquidation_threshold", r.liquidation_threshold),
                    ("liquidation_bonus", r.liquidation_bonus),
                    ("emode_category", r.emode_category),
                    ("a_token", r.a_token),
                    ("stable_debt_token", r.stable_debt_token),
                    ("variable_debt_token", r.variable_debt_token),
                    ("liquidity_index", r.liquidity_index),
                    ("variable_borrow_index", r.variable_borrow_index),
                    ("liquidity_rate", r.liquidity_rate),
                    ("variable_borrow_rate", r.variable_borrow_rate),
                    ("stable_borrow_rate", r.stable_borrow_rate),
                    ("last_update_timestamp", r.last_update_timestamp),
                )
            }
            for _, r in sorted(aave.reserves.items())
        ],
        "prices": {a: str(p) for a, p in sorted(aave.prices.items())},
        "emode_categories": {
            str(i): {
                "ltv": str(c.ltv),
                "liquidation_threshold": str(c.liquidation_threshold),
                "liquidation_bonus": str(c.liquidation_bonus),
                "price_source": c.price_source,
            }
            for i, c in sorted(aave.emode_categories.items())
        },
        "a_scaled": _pairs(aave.a_scaled, str),
        "v_scaled": _pairs(aave.v_scaled, str),
        "stable": _pairs(aave.stable, lambda s: [str(s.principal), str(s.rate), str(s.last_updated)]),
        "collateral": _pairs(aave.collateral, bool),
        "borrowing": _pairs(aave.borrowing, bool),
        "user_emode": {u: str(c) for u, c in sorted(aave.user_emode.items())},
        "stale": dict(sorted(aave.stale.items())),
    }


def _int(raw: Any, where: str) -> int:
    if not isinstance(raw, str) or not raw.lstrip("-").isdecimal() or len(raw) > 80:
        raise StateSnapshotError(f"chain-state document: {where} must be a decimal integer string")
    return int(raw)


def _str(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise StateSnapshotError(f"chain-state document: {where} must be a string")
    return raw


def _obj(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise StateSnapshotError(f"chain-state document: {where} must be an object")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise StateSnapshotError(f"chain-state document: {where} must be a list")
    return raw


def _keyed(raw: Any, where: str, value: Any) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for i, e in enumerate(_list(raw, where)):
        if not isinstance(e, list) or len(e) != 3:
            raise StateSnapshotError(f"chain-state document: {where}[{i}] must be [asset, user, value]")
        out[(_str(e[0], f"{where}[{i}]"), _str(e[1], f"{where}[{i}]"))] = value(e[2], f"{where}[{i}]")
    return out


def _bool(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise StateSnapshotError(f"chain-state document: {where} must be true or false")
    return raw


def _stable(raw: Any, where: str) -> StableDebt:
    if not isinstance(raw, list) or len(raw) != 3:
        raise StateSnapshotError(f"chain-state document: {where} must be [principal, rate, last_updated]")
    return StableDebt(*(_int(x, where) for x in raw))


_RESERVE_STRS = {"asset", "a_token", "stable_debt_token", "variable_debt_token"}


def aave_from_document(doc: Mapping[str, Any]) -> AaveState:
    """The inverse of :func:`aave_document` (:class:`StateSnapshotError` if it is malformed)."""
    doc = _obj(doc, "aave")
    aave = AaveState(
        pool=_str(doc.get("pool"), "aave.pool"),
        oracle=_str(doc.get("oracle"), "aave.oracle"),
        configurator=_str(doc.get("configurator"), "aave.configurator"),
    )
    for i, r in enumerate(_list(doc.get("reserves"), "aave.reserves")):
        r = _obj(r, f"aave.reserves[{i}]")
        kw: dict[str, Any] = {}
        for name in ReserveState.__dataclass_fields__:
            where = f"aave.reserves[{i}].{name}"
            kw[name] = _str(r.get(name), where) if name in _RESERVE_STRS else _int(r.get(name), where)
        reserve = ReserveState(**kw)
        aave.reserves[reserve.asset] = reserve
    aave.prices = {a: _int(p, f"aave.prices.{a}") for a, p in _obj(doc.get("prices"), "aave.prices").items()}
    for key, c in _obj(doc.get("emode_categories"), "aave.emode_categories").items():
        where = f"aave.emode_categories.{key}"
        c = _obj(c, where)
        aave.emode_categories[_int(key, where)] = EModeCategory(
            _int(c.get("ltv"), where),
            _int(c.get("liquidation_threshold"), where),
            _int(c.get("liquidation_bonus"), where),
            _str(c.get("price_source"), where),
        )
    aave.a_scaled = _keyed(doc.get("a_scaled"), "aave.a_scaled", _int)
    aave.v_scaled = _keyed(doc.get("v_scaled"), "aave.v_scaled", _int)
    aave.stable = _keyed(doc.get("stable"), "aave.stable", _stable)
    aave.collateral = _keyed(doc.get("collateral"), "aave.collateral", _bool)
    aave.borrowing = _keyed(doc.get("borrowing"), "aave.borrowing", _bool)
    aave.user_emode = {
        u: _int(c, f"aave.user_emode.{u}") for u, c in _obj(doc.get("user_emode"), "aave.user_emode").items()
    }
    aave.stale = {u: _str(why, f"aave.stale.{u}") for u, why in _obj(doc.get("stale"), "aave.stale").items()}
    return aave


# ---------------------------------------------------------------------------------------------- the whole state
def state_snapshot(state: ChainState) -> dict[str, Any]:
    """The whole state as a JSON-safe document: head block (number, hash, timestamp as decimal strings), every
    followed pool (kind, lower-case address, :func:`pool_fields`), sorted by kind then address, and the Aave
    market (:func:`aave_document`, or ``None``)."""
    if state.block_number is None or state.block_hash is None:
        raise StateError("the state has no head block: there is nothing to snapshot")
    return {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "block": {
            "number": str(state.block_number),
            "hash": state.block_hash,
            "timestamp": None if state.timestamp is None else str(state.timestamp),
        },
        "pools": [
            {"kind": str(kind), "address": address, "fields": pool_fields(kind, pool)}
            for kind in sorted(state.pools)
            for address, pool in sorted(state.pools[kind].items())
        ],
        "aave": None if state.aave is None else aave_document(state.aave),
    }


def state_from_snapshot(doc: Mapping[str, Any], *, journal_depth: int = 64) -> ChainState:
    """A :class:`ChainState` equal to the one :func:`state_snapshot` wrote ``doc`` from, at its head block, with an
    empty journal.  :class:`StateSnapshotError` if the document is malformed or names a kind not registered in this
    process."""
    doc = _obj(doc, "the top level")
    if doc.get("format") != SNAPSHOT_FORMAT:
        raise StateSnapshotError(f"chain-state document: format is {doc.get('format')!r:.60}")
    if doc.get("version") != SNAPSHOT_VERSION:
        raise StateSnapshotError(
            f"chain-state document: version {doc.get('version')!r:.20} is not supported (this reader: "
            f"{SNAPSHOT_VERSION})"
        )
    block = _obj(doc.get("block"), "block")
    state = ChainState(journal_depth=journal_depth)
    for i, entry in enumerate(_list(doc.get("pools"), "pools")):
        where = f"pools[{i}]"
        entry = _obj(entry, where)
        kind, address = (
            _str(entry.get("kind"), f"{where}.kind"),
            _str(entry.get("address"), f"{where}.address"),
        )
        if kind not in state.pools:
            raise StateSnapshotError(
                f"chain-state document: {where}: pool kind {kind!r:.40} is not registered here"
            )
        try:
            pool = protocol(kind).from_doc(_obj(entry.get("fields"), f"{where}.fields"))
            state.add_pool(kind, address, pool)
        except (PoolDocError, StateError, KeyError, TypeError, ValueError) as exc:
            raise StateSnapshotError(f"chain-state document: {where} ({address:.42}): {exc}") from None
    if doc.get("aave") is not None:
        state.set_aave(aave_from_document(doc["aave"]))
    ts = block.get("timestamp")
    state.set_head(
        _int(block.get("number"), "block.number"),
        _str(block.get("hash"), "block.hash"),
        None if ts is None else _int(ts, "block.timestamp"),
    )
    return state


# ---------------------------------------------------------------------------------------------- the digest
def state_digest(state: ChainState, pools: Iterable[str], *, include_aave: bool = True) -> str:
    """sha256 (64 hex digits) of the canonical form of ``pools``' states (and of the Aave market when the state
    tracks one and ``include_aave``); see the module docstring."""
    entries: list[dict[str, Any]] = []
    for address in sorted({a.lower() for a in pools}):
        kind = state.kind_of(address)
        if kind is None:
            entries.append({"address": address, "kind": None})
        else:
            entries.append(
                {
                    "address": address,
                    "kind": str(kind),
                    "fields": pool_fields(kind, state.pools[kind][address]),
                }
            )
    body = {
        "digest": DIGEST_VERSION,
        "pools": entries,
        "aave": aave_document(state.aave) if include_aave and state.aave is not None else None,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
