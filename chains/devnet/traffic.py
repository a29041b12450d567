"""Simulated users for the devnet: a runner of traffic actors (swaps into the mempool, private order flow,
Aave oracle moves, ...), each registered by name (:mod:`chains.devnet.actors`).

Every action is a real transaction sent with ``eth_sendTransaction`` from an unlocked dev account
(``AddressBook.traders`` for swaps, ``AddressBook.deployer`` for the oracle), so it waits in anvil's mempool
(``--no-mining`` / automine off) until the block builder mines it — exactly what mempool watchers, backrunners
and sandwichers see on mainnet.  anvil assigns nonces itself, counting the sender's pending txs, so several
swaps of one trader in one block get consecutive nonces.

:class:`TrafficGenerator` creates the actors named in ``TrafficConfig.actors`` (default ``("swappers",
"oracle")``) and runs them in that order:

* ``swappers`` (:mod:`chains.devnet.actor_swappers`): Uniswap V2 / V3 router swaps with real quotes, tight or
  loose slippage, and, with ``private_fraction > 0`` and a ``relay_url``, private order flow to the local relay
  (:mod:`chains.devnet.relay`).
* ``oracle`` (:mod:`chains.devnet.actor_oracle`): a random walk on the Aave ``PriceOracle``, plus
  :meth:`TrafficGenerator.shock` / :meth:`TrafficGenerator.set_price` for explicit moves.

Everything random comes from ``random.Random`` seeded with ``seed``: the same seed on the same chain state
with the same actors sends the same transactions (the built-in actors share one stream in a fixed order, any
other actor has its own).  RPC goes through :class:`chains.devnet.builder.AsyncJsonRpc` (one seam,
``_call``/``_batch``), an adapter on the project's :class:`chains.node.rpc.RpcClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, TypeVar

from chains.addressbook import AddressBook, PoolInfo
from chains.devnet.actor_oracle import OracleActor
from chains.devnet.actor_swappers import SwappersActor
from chains.devnet.actors import (
    ActorContext,
    OracleMove,
    SwapRecord,
    TrafficActor,
    TrafficConfig,
    TrafficRecord,
    TrafficStats,
    actor_entry,
)
from chains.devnet.builder import AsyncJsonRpc
from chains.node.anvil import AnvilNode, RpcCallError

__all__ = ["TrafficGenerator"]

log = logging.getLogger(__name__)

A = TypeVar("A", bound=TrafficActor)


class TrafficGenerator:
    """Drives simulated users: :meth:`step` runs every configured actor once (one block's worth of swaps,
    oracle moves, ...); :meth:`run` sends actions continuously at the actors' rates until :meth:`stop`."""

    def __init__(
        self,
        node: AnvilNode | str,
        book: AddressBook,
        config: TrafficConfig | None = None,
        *,
        seed: int = 0,
        traders: list[str] | None = None,
        relay_url: str | None = None,
        relay_auth_key: bytes | None = None,
    ) -> None:
        url = node.http_url if isinstance(node, AnvilNode) else node
        self.book = book
        self.config = config or TrafficConfig()
        self.seed = seed
        # the main stream: the built-in actors and run()'s scheduling draw from it, in a fixed order
        self.rng = random.Random(f"mevsuite-traffic:{seed}")
        trader_list = list(traders if traders is not None else book.traders)
        if not trader_list:
            raise ValueError("the address book has no traders")
        entries = [actor_entry(name) for name in self.config.actors]  # unknown names fail before anything
        self.stats = TrafficStats()
        self.last_step: dict[str, list[TrafficRecord]] = {}  # records of the latest step(), by actor
        self._rpc = AsyncJsonRpc(url)
        self._stop = asyncio.Event()
        self.actors: dict[str, TrafficActor] = {}
        for entry in entries:
            rng = self.rng if entry.main_stream else random.Random(f"mevsuite-traffic:{seed}:{entry.name}")
            ctx = ActorContext(
                name=entry.name,
                rpc=self,
                book=book,
                config=self.config,
                rng=rng,
                stats=self.stats,
                seed=seed,
                traders=list(trader_list),
                relay_url=relay_url,
                relay_auth_key=relay_auth_key,
                peers=self.actors,
            )
            self.actors[entry.name] = entry.factory(ctx)

    # ------------------------------------------------------------------ RPC seam
    async def _call(self, method: str, params: list[Any] | None = None) -> Any:
        return await self._rpc.call(method, params)

    async def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        return await self._rpc.batch(calls)

    async def aclose(self) -> None:
        self.stop()
        await self._rpc.aclose()
        for actor in self.actors.values():
            await actor.aclose()

    async def __aenter__(self) -> TrafficGenerator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ actors
    def actor(self, name: str) -> TrafficActor:
        """The configured actor registered as ``name``."""
        try:
            return self.actors[name]
        except KeyError:
            raise LookupError(
                f"the traffic actor {name!r} is not configured (TrafficConfig.actors={self.config.actors})"
            ) from None

    def _typed(self, name: str, kind: type[A]) -> A:
        actor = self.actor(name)
        if not isinstance(actor, kind):
            raise TypeError(f"the traffic actor {name!r} is a {type(actor).__name__}, not a {kind.__name__}")
        return actor

    @property
    def swappers(self) -> SwappersActor:
        return self._typed("swappers", SwappersActor)

    @property
    def oracle(self) -> OracleActor:
        return self._typed("oracle", OracleActor)

    # ------------------------------------------------------------------ one block's worth
    async def step(self) -> tuple[list[SwapRecord], list[OracleMove]]:
        """Settle, then run every configured actor's step() in order. Returns the swaps and oracle moves sent
        (every actor's records, by actor, are in :attr:`last_step`)."""
        await self.settle()
        swaps: list[SwapRecord] = []
        moves: list[OracleMove] = []
        self.last_step = {}
        for name, actor in self.actors.items():
            actor.ctx.new_round()
            recs = await actor.step()
            self.last_step[name] = recs
            self.stats.records_by_actor[name] += len(recs)
            swaps.extend(r for r in recs if isinstance(r, SwapRecord))
            moves.extend(r for r in recs if isinstance(r, OracleMove))
        return swaps, moves

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run the actors as Poisson processes at their per-second rates (``rate_per_second()``; for the
        built-ins ``swaps_per_second`` and ``oracle_moves_per_second``) until stop()."""
        self._stop.clear()
        rated = [(a, r) for a in self.actors.values() if (r := a.rate_per_second()) > 0]
        rate = sum(r for _, r in rated)
        if rate <= 0:
            await self._stop.wait()
            return
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.rng.expovariate(rate))
            if self._stop.is_set():
                break
            try:
                u, acc, chosen = self.rng.random(), 0.0, rated[-1][0]
                for actor, r in rated[:-1]:
                    acc += r
                    if u < acc / rate:
                        chosen = actor
                        break
                chosen.ctx.new_round()
                recs = await chosen.act()
                self.stats.records_by_actor[chosen.name] += len(recs)
                await self.settle()
            except (RpcCallError, OSError) as exc:
                self.stats.send_errors += 1
                log.warning("traffic: %s", exc)

    async def settle(self) -> list[tuple[Any, bool]]:
        """Look up receipts of what the actors sent earlier; returns (record, ok) for the newly mined ones
        (with the default actors: the swaps)."""
        done: list[tuple[Any, bool]] = []
        for actor in self.actors.values():
            done.extend(await actor.settle())
        return done

    # ------------------------------------------------------------------ the built-in actors' API
    @property
    def swaps(self) -> list[SwapRecord]:
        return self.swappers.swaps if "swappers" in self.actors else []

    @property
    def oracle_moves(self) -> list[OracleMove]:
        return self.oracle.moves if "oracle" in self.actors else []

    @property
    def traders(self) -> list[str]:
        return self.swappers.traders

    @property
    def private_traders(self) -> list[str]:
        return self.swappers.private_traders

    @property
    def pools(self) -> list[PoolInfo]:
        return self.swappers.pools

    async def send_swap(
        self,
        *,
        venue: str | None = None,
        loose: bool | None = None,
        trader: str | None = None,
        pool: PoolInfo | None = None,
        zero_for_one: bool | None = None,
        usd_size: float | None = None,
        multihop: bool | None = None,
        private: bool | None = None,
    ) -> SwapRecord | None:
        """One swap from the ``swappers`` actor (see :meth:`SwappersActor.send_swap`)."""
        return await self.swappers.send_swap(
            venue=venue,
            loose=loose,
            trader=trader,
            pool=pool,
            zero_for_one=zero_for_one,
            usd_size=usd_size,
            multihop=multihop,
            private=private,
        )

    async def oracle_price(self, asset: str) -> int:
        return await self.oracle.oracle_price(asset)

    async def set_price(self, asset: str, price: int, *, shock: bool = False) -> OracleMove:
        """Send ``setAssetPrice(asset, price)`` from the oracle's owner (the deployer) into the mempool."""
        return await self.oracle.set_price(asset, price, shock=shock)

    async def shock(self, asset: str, pct: float) -> OracleMove:
        """Move ``asset``'s oracle price by ``pct`` (−0.25 = down 25 %) from its latest on-chain value."""
        return await self.oracle.shock(asset, pct)

    async def random_oracle_move(self) -> OracleMove:
        return await self.oracle.random_oracle_move()
