"""Traffic actors: the pieces :class:`chains.devnet.traffic.TrafficGenerator` runs, registered by name.

An actor is one kind of simulated user (the swappers, the oracle's random walk, later borrowers, whales, ...).
It subclasses :class:`TrafficActor` and registers a factory under a name with :func:`register_actor`; the
generator creates the actors named in ``TrafficConfig.actors`` (in that order), each with its own
:class:`ActorContext`, and every step calls each actor's :meth:`TrafficActor.step` in that order.

This module also holds the vocabulary the actors share: :class:`TrafficConfig`, the records they return
(:class:`SwapRecord`, :class:`OracleMove`, or any object with a ``tx_hash``) and :class:`TrafficStats`.

Determinism: the built-in actors (``swappers``, ``oracle``) are registered with ``main_stream=True`` and draw
from the generator's one ``random.Random(f"mevsuite-traffic:{seed}")`` in today's order; every other actor gets
its own stream ``random.Random(f"mevsuite-traffic:{seed}:{name}")``, so adding an actor never changes what the
built-in ones send. See docs/devnet.md, "Traffic actors".
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from chains.addressbook import AddressBook

__all__ = [
    "DEFAULT_ACTORS",
    "GWEI",
    "V3_VENUE",
    "ActorContext",
    "ActorEntry",
    "OracleMove",
    "RpcSeam",
    "SwapMethod",
    "SwapRecord",
    "TrafficActor",
    "TrafficConfig",
    "TrafficRecord",
    "TrafficStats",
    "UnknownTrafficActor",
    "actor_entry",
    "hex_int",
    "poisson",
    "register_actor",
    "registered_actors",
    "unregister_actor",
]

SwapMethod = Literal[
    "swapExactTokensForTokens",
    "swapExactETHForTokens",
    "swapExactTokensForETH",
    "exactInputSingle",
    "exactInput",
]
V3_VENUE = "uniswap_v3"
GWEI = 10**9
DEFAULT_ACTORS: tuple[str, ...] = ("swappers", "oracle")  # today's set, in today's order


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    swaps_per_block: float = 4.0  # mean (Poisson) of swaps sent by one step()
    swaps_per_second: float = 4.0  # rate of run()
    size_usd_median: float = 3_000.0  # log-normal swap size in USD ...
    size_usd_sigma: float = 1.2  # ... and its log standard deviation
    size_usd_min: float = 10.0
    max_balance_fraction: float = 0.25  # never swap more than this share of the trader's balance
    loose_fraction: float = 0.25  # share of swaps with loose slippage (victims)
    loose_slippage: float = 0.30  # loose: amountOutMin = quote * (1 - loose_slippage)
    tight_slippage_bps: int = 50  # others: amountOutMin = quote * (1 - bps / 10_000)
    venue_weights: tuple[tuple[str, float], ...] = (("uniswap", 0.35), ("sushiswap", 0.15), (V3_VENUE, 0.5))
    eth_fraction: float = 0.3  # V2 swaps touching WETH that use native ETH instead
    multihop_fraction: float = 0.15  # V3 swaps routed over two pools with exactInput
    priority_fee_gwei: tuple[float, float] = (0.5, 3.0)  # uniform range of users' tips
    deadline_s: int = 3_600  # router deadline, relative to the latest block's timestamp
    oracle_moves_per_block: float = 0.5  # mean (Poisson) of random-walk oracle moves per step()
    oracle_moves_per_second: float = 0.5
    oracle_volatility: float = 0.01  # std of the log return of one move (volatile assets)
    stable_volatility: float = 0.0005  # ... of stablecoins
    stables: frozenset[str] = frozenset({"USDC", "USDT", "DAI"})
    token_kinds: frozenset[str] = frozenset(
        {"standard", "weth"}
    )  # fee-on-transfer / reverting tokens left out
    private_fraction: float = 0.0  # share of swaps sent to the relay as private order flow (needs relay_url)
    private_hints: tuple[str, ...] = ("hash", "contract_address", "function_selector", "logs")
    private_max_blocks: int = 25  # a private swap's maxBlockNumber = latest block + this
    actors: tuple[str, ...] = DEFAULT_ACTORS  # registered actor names, run in this order every step

    def __post_init__(self) -> None:
        if not 0 <= self.loose_fraction <= 1 or not 0 < self.loose_slippage < 1:
            raise ValueError("loose_fraction must be in [0, 1] and loose_slippage in (0, 1)")
        if not 0 < self.max_balance_fraction <= 1:
            raise ValueError("max_balance_fraction must be in (0, 1]")
        if not 0 <= self.private_fraction <= 1 or self.private_max_blocks < 1:
            raise ValueError("private_fraction must be in [0, 1] and private_max_blocks >= 1")
        if isinstance(self.actors, str) or len(set(self.actors)) != len(self.actors):
            raise ValueError(f"actors must be a tuple of distinct actor names, got {self.actors!r}")


@dataclass(frozen=True, slots=True)
class SwapRecord:
    tx_hash: str
    trader: str
    venue: str  # "uniswap" | "sushiswap" | "uniswap_v3"
    method: SwapMethod
    path: tuple[str, ...]  # token addresses, in order
    fees: tuple[int, ...]  # v3 fee tier of each hop (empty for v2)
    amount_in: int
    quote: int  # expected amount out at the latest block
    amount_out_min: int
    loose: bool
    usd_size: float
    sent_at_block: int  # the latest block when sent (it can be mined in the next one at the earliest)
    private: bool = False  # sent to the relay as private order flow (never in the public mempool)


@dataclass(frozen=True, slots=True)
class OracleMove:
    tx_hash: str
    asset: str
    symbol: str
    old_price: int
    new_price: int
    shock: bool


@dataclass(slots=True)
class TrafficStats:
    swaps_sent: Counter[str] = field(default_factory=Counter)  # by venue
    swaps_by_method: Counter[str] = field(default_factory=Counter)
    loose_swaps: int = 0
    swaps_skipped: int = 0  # no balance / no quote (pool empty, route impossible)
    send_errors: int = 0
    swaps_mined: int = 0
    swaps_reverted: int = 0
    reverted_by_venue: Counter[str] = field(default_factory=Counter)
    oracle_moves: int = 0
    oracle_shocks: int = 0
    private_swaps: int = 0  # accepted by the relay
    private_expired: int = 0  # not mined within private_max_blocks (+1)
    records_by_actor: Counter[str] = field(default_factory=Counter)  # records returned by step()/run()

    @property
    def total_sent(self) -> int:
        return sum(self.swaps_sent.values())


class TrafficRecord(Protocol):
    """What an actor returns for each transaction it sent: anything with its hash."""

    @property
    def tx_hash(self) -> str: ...


class RpcSeam(Protocol):
    """The generator's one RPC seam (``_call``/``_batch``), which every actor's context goes through."""

    async def _call(self, method: str, params: list[Any] | None = None) -> Any: ...

    async def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]: ...


def hex_int(value: Any) -> int:
    """A JSON-RPC quantity (``"0x1a"``) or an int, as an int."""
    return int(value, 16) if isinstance(value, str) else int(value)


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson(lam) draw (Knuth; lam is small, a few per block). Draws nothing when lam <= 0."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class ActorContext:
    """What an actor gets from the generator: the RPC seam, the address book, the config, its random stream,
    the shared stats, the generator's traders / relay settings, the other actors, and the latest block."""

    def __init__(
        self,
        *,
        name: str,
        rpc: RpcSeam,
        book: AddressBook,
        config: TrafficConfig,
        rng: random.Random,
        stats: TrafficStats,
        seed: int,
        traders: list[str],
        relay_url: str | None = None,
        relay_auth_key: bytes | None = None,
        peers: Mapping[str, TrafficActor] | None = None,
    ) -> None:
        self.name = name
        self.book = book
        self.config = config
        self.rng = rng
        self.stats = stats
        self.seed = seed
        self.traders = traders
        self.relay_url = relay_url
        self.relay_auth_key = relay_auth_key
        self.peers: Mapping[str, TrafficActor] = peers if peers is not None else {}
        self._rpc = rpc
        self._block: int | None = None

    async def _call(self, method: str, params: list[Any] | None = None) -> Any:
        return await self._rpc._call(method, params)

    async def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        return await self._rpc._batch(calls)

    async def block_number(self) -> int:
        """The latest block number, read once per step (or per run() action) on first use."""
        if self._block is None:
            self._block = hex_int(await self._call("eth_blockNumber"))
        return self._block

    def new_round(self) -> None:
        """Called by the generator before each step()/act(): forget the cached block number."""
        self._block = None

    def peer(self, name: str) -> TrafficActor:
        """Another configured actor of the same generator (e.g. the ``oracle`` for a liquidation scenario)."""
        try:
            return self.peers[name]
        except KeyError:
            raise LookupError(
                f"the traffic actor {name!r} is not configured (actors: {tuple(self.peers)})"
            ) from None


class TrafficActor(ABC):
    """One kind of simulated user. Created once per generator by its registered factory with its
    :class:`ActorContext` (kept as ``self.ctx``); then:

    * :meth:`step` — send one block's worth of transactions, return their records (``TrafficGenerator.step``);
    * :meth:`rate_per_second` / :meth:`act` — for ``TrafficGenerator.run``: the actor's Poisson rate and one
      action (an actor with rate 0, the default, takes no part in ``run()``);
    * :meth:`settle` — look up receipts of what it sent, return ``(record, ok)`` for the mined ones;
    * :meth:`aclose` — release what it opened.

    Every random choice must come from ``self.ctx.rng`` and every RPC go through ``self.ctx._call`` /
    ``self.ctx._batch``.
    """

    def __init__(self, ctx: ActorContext) -> None:
        self.ctx = ctx

    @property
    def name(self) -> str:
        return self.ctx.name

    @abstractmethod
    async def step(self) -> list[TrafficRecord]:
        """Send one block's worth of transactions."""

    def rate_per_second(self) -> float:
        return 0.0

    async def act(self) -> list[TrafficRecord]:
        """One action of ``run()`` (chosen with probability rate / total rate)."""
        return []

    async def settle(self) -> list[tuple[TrafficRecord, bool]]:
        return []

    async def aclose(self) -> None:
        return None


ActorFactory = Callable[[ActorContext], TrafficActor]
F = TypeVar("F", bound=ActorFactory)


@dataclass(frozen=True, slots=True)
class ActorEntry:
    name: str
    factory: ActorFactory
    main_stream: bool  # draws from the generator's main random stream (the built-in actors only)


_REGISTRY: dict[str, ActorEntry] = {}


class UnknownTrafficActor(ValueError):
    """``TrafficConfig.actors`` names an actor nobody registered."""


def register_actor(name: str, *, main_stream: bool = False, replace: bool = False) -> Callable[[F], F]:
    """Class (or factory) decorator: make ``name`` available in ``TrafficConfig.actors``.

    ``main_stream=True`` shares the generator's main random stream; it exists for the built-in actors, whose
    draws must stay in the order the published figures depend on. New actors get their own stream.
    Registering a taken name is an error unless ``replace``."""
    if not name or not isinstance(name, str):
        raise ValueError("an actor name must be a non-empty string")

    def decorate(factory: F) -> F:
        old = _REGISTRY.get(name)
        if old is not None and old.factory is not factory and not replace:
            raise ValueError(f"a traffic actor named {name!r} is already registered ({old.factory!r})")
        _REGISTRY[name] = ActorEntry(name, factory, main_stream)
        return factory

    return decorate


def unregister_actor(name: str) -> None:
    """Remove ``name`` from the registry (tests); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def registered_actors() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def actor_entry(name: str) -> ActorEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(registered_actors()) or "none"
        raise UnknownTrafficActor(
            f"unknown traffic actor {name!r} (registered: {known}); register it with "
            f"@register_actor({name!r}) before creating the TrafficGenerator"
        ) from None
