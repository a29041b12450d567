"""The protocol registry: what each pool kind does, keyed by its :class:`chains.kinds.PoolKind`.

One :class:`PoolProtocol` per kind holds everything ``chains`` does differently per kind, so no module above
dispatches on ``kind == "v2"``:

* **exact math** — :attr:`PoolProtocol.quote`: an exact-input or exact-output swap against a pool state;
* **state events** — :attr:`PoolProtocol.events`: ``topics[0]`` → handler; :class:`chains.state.chain.ChainState`
  routes a log to the handler of the kind whose pool emitted it, and the handler changes the pool through a
  :class:`PoolJournal` so the block can be rolled back; :attr:`PoolProtocol.copy` detaches a state (previews);
* **pool-state documents** — :attr:`PoolProtocol.doc_kind`, :attr:`PoolProtocol.to_doc` (writer) and
  :attr:`PoolProtocol.from_doc` (reader) of the kind's fields of a ``mevsuite.pool-state`` file
  (:mod:`chains.state.snapshot` writes and checks the common header);
* **executor hop** — :attr:`PoolProtocol.hop`: how ``ArbExecutor`` encodes a hop through the kind, or ``None``
  when the contract cannot swap it (the route finder may still route it; a bot will not send it).

The built-in kinds register themselves from their own package (``chains/amm/uniswap_v2/protocol.py``,
``chains/amm/uniswap_v3/protocol.py``, imported by ``chains/amm/__init__.py``) with an explicit
:func:`register_protocol` call; a test registers a kind of its own the same way and removes it with
:func:`unregister_protocol`.  Registering is done at import time or before the objects that read the registry are
built (a :class:`~chains.state.chain.ChainState` takes the event handlers of the kinds registered when it is
created).  docs/adding-a-pool-kind.md walks through a new kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils.crypto import keccak

__all__ = [
    "EventHandler",
    "HopEncoding",
    "HopParamError",
    "PoolDocError",
    "PoolEventError",
    "PoolJournal",
    "PoolProtocol",
    "QuoteResult",
    "SwapQuoteError",
    "doc_int",
    "event_topic",
    "protocol",
    "protocol_for_doc",
    "protocols",
    "register_protocol",
    "unregister_protocol",
]


# ---------------------------------------------------------------------------------------------- errors
class PoolEventError(ValueError):
    """A log that carries a pool event's topic but not its shape (wrong data length, missing topics)."""


class PoolDocError(ValueError):
    """A pool-state document whose kind-specific fields are missing or out of range."""


class SwapQuoteError(ValueError):
    """The swap cannot be quoted: an argument the kind does not take, or the swap reverts on chain."""


class HopParamError(ValueError):
    """A hop parameter the executor cannot encode; ``reason`` is the plan-error metric's label."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


# ---------------------------------------------------------------------------------------------- state events
class PoolJournal(Protocol):
    """What an event handler changes a pool through, so the block's changes can be undone exactly."""

    def save_fields(self, address: str, pool: Any, fields: tuple[str, ...]) -> None:
        """Before changing ``pool``'s scalar ``fields``: record them (once per block) and mark the pool changed."""

    def save_entry(self, d: dict[Any, Any], key: Any) -> None:
        """Before changing (or adding) ``d[key]`` of a pool's state: record its old value (once per block)."""


def event_topic(signature: str) -> str:
    """``topics[0]`` of an event signature, lower-case ``0x`` hex as nodes return it."""
    return "0x" + keccak(text=signature).hex()


# (journal, the emitting pool's lower-case address, its state, the log's data as 0x-hex, the log's topics)
EventHandler = Callable[[PoolJournal, str, Any, str, Sequence[str]], None]


# ---------------------------------------------------------------------------------------------- exact math
@dataclass(frozen=True, slots=True)
class QuoteResult:
    """One swap against a pool state (raw token units); ``price_after`` is token1 per token0 after the swap as
    ``(numerator, denominator)``.  ``sqrt_price_after`` / ``tick_after``: kinds with a sqrt price only."""

    amount_in: int
    amount_out: int
    price_after: tuple[int, int]
    sqrt_price_after: int | None = None
    tick_after: int | None = None
    ticks_crossed: int = 0


# (state, zero_for_one, amount_in, amount_out, sqrt_price_limit): exactly one amount is given; the limit is None
# unless the caller gives one.  Raises SwapQuoteError when the swap would revert on chain.
Quote = Callable[[Any, bool, int | None, int | None, int | None], QuoteResult]


# ---------------------------------------------------------------------------------------------- executor hop
@dataclass(frozen=True, slots=True)
class HopEncoding:
    """A hop of ``ArbExecutor``'s plan (docs/executor.md): ``flags u8 | pool 20 | tokenOut 20 | param``.

    ``flag`` is the kind's value of the flags byte's kind bits; ``param_bytes`` the length of its parameter;
    ``encode(fee, sqrt_price_limit_x96)`` gives the parameter (:class:`HopParamError` if it is out of range) and
    ``decode(param)`` gives back ``(fee, sqrt_price_limit_x96)``.  The contract decides which kinds exist: a new
    encoding needs a new branch in ``contracts/src/ArbExecutor.sol`` too.
    """

    flag: int
    param_bytes: int
    encode: Callable[[int, int], int]
    decode: Callable[[int], tuple[int, int]]


# ---------------------------------------------------------------------------------------------- the entry
@dataclass(frozen=True, slots=True)
class PoolProtocol:
    """Everything ``chains`` knows about one pool kind (see the module docstring)."""

    kind: str  # a chains.kinds.PoolKind, or a kind defined outside chains (a string)
    state_type: type  # the plain-data pool state ChainState holds and the route finder's adapter wraps
    copy: Callable[[Any], Any]  # a detached copy of a state (ChainState.preview returns these)
    events: Mapping[str, EventHandler]  # topics[0] (lower-case 0x-hex) -> handler
    quote: Quote
    doc_kind: str  # the "kind" of its mevsuite.pool-state documents, e.g. "uniswap_v2"
    to_doc: Callable[[Any], dict[str, Any]]  # the kind's fields, every integer as a decimal string
    from_doc: Callable[[Mapping[str, Any]], Any]  # checked (PoolDocError) state from a document
    hop: HopEncoding | None = None  # None: ArbExecutor cannot swap this kind


_PROTOCOLS: dict[str, PoolProtocol] = {}


def register_protocol(kind: str, entry: PoolProtocol) -> None:
    """Register ``entry`` for ``kind``; a kind (or a document kind) registered twice is a ``ValueError``."""
    if entry.kind != kind:
        raise ValueError(f"protocol entry is for {entry.kind!r}, registered as {kind!r}")
    if kind in _PROTOCOLS:
        raise ValueError(f"pool kind {kind!r} is already registered")
    if any(p.doc_kind == entry.doc_kind for p in _PROTOCOLS.values()):
        raise ValueError(f"pool-state document kind {entry.doc_kind!r} is already registered")
    _PROTOCOLS[kind] = entry


def unregister_protocol(kind: str) -> None:
    """Remove ``kind`` (tests register kinds of their own and remove them afterwards)."""
    del _PROTOCOLS[kind]


def protocol(kind: str) -> PoolProtocol:
    """The entry of ``kind``; ``KeyError`` naming the registered kinds if there is none."""
    try:
        return _PROTOCOLS[kind]
    except KeyError:
        raise KeyError(f"no pool kind {kind!r} is registered (have: {', '.join(_PROTOCOLS)})") from None


def protocols() -> list[PoolProtocol]:
    """Every registered entry, in registration order."""
    return list(_PROTOCOLS.values())


def protocol_for_doc(doc_kind: str) -> PoolProtocol | None:
    """The entry whose pool-state documents have this ``kind`` (``None``: no such kind)."""
    return next((p for p in _PROTOCOLS.values() if p.doc_kind == doc_kind), None)


def doc_int(doc: Mapping[str, Any], key: str, lo: int, hi: int, where: str = "") -> int:
    """``doc[key]``, an integer written as a decimal string, checked to lie in ``[lo, hi]`` (:class:`PoolDocError`)."""
    if key not in doc:
        raise PoolDocError(f"state file: missing field {where}{key!r}")
    raw = doc[key]
    if not isinstance(raw, str):
        raise PoolDocError(
            f"state file: {where}{key!r} must be an integer as a decimal string, not {raw!r:.60}"
        )
    try:
        value = int(raw, 10)
    except ValueError:
        raise PoolDocError(f"state file: {where}{key!r} is not a decimal integer: {raw!r:.60}") from None
    if not lo <= value <= hi:
        raise PoolDocError(f"state file: {where}{key!r} = {value} is outside [{lo}, {hi}]")
    return value
