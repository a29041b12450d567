"""The ``oracle`` traffic actor: a random walk on the Aave ``PriceOracle`` (``setAssetPrice``; USD with 8
decimals) sent from the oracle's owner (``AddressBook.deployer``) into the mempool, plus explicit moves
(:meth:`OracleActor.set_price`, :meth:`OracleActor.shock`, e.g. to make a borrower liquidatable).

Registered with ``main_stream=True``: its draws are the generator's historical ones, in the same order.
"""

from __future__ import annotations

import math

from chains.devnet.actors import (
    ActorContext,
    OracleMove,
    TrafficActor,
    TrafficRecord,
    poisson,
    register_actor,
)
from chains.devnet.artifacts import load

__all__ = ["OracleActor"]


@register_actor("oracle", main_stream=True)
class OracleActor(TrafficActor):
    """Poisson(``oracle_moves_per_block``) random-walk moves per step: log return ~ N(0, volatility)."""

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        self.assets = [(sym, r.asset) for sym, r in ctx.book.aave.reserves.items()]
        self.moves: list[OracleMove] = []
        self._oracle = load("PriceOracle")

    async def step(self) -> list[TrafficRecord]:
        return [
            await self.random_oracle_move()
            for _ in range(poisson(self.ctx.rng, self.ctx.config.oracle_moves_per_block))
        ]

    def rate_per_second(self) -> float:
        return self.ctx.config.oracle_moves_per_second

    async def act(self) -> list[TrafficRecord]:
        return [await self.random_oracle_move()]

    def asset(self, asset: str) -> tuple[str, str]:
        """(symbol, address) of a reserve given by symbol or address."""
        for sym, addr in self.assets:
            if asset.lower() in (sym.lower(), addr.lower()):
                return sym, addr
        raise KeyError(f"{asset} is not an Aave reserve of this devnet")

    async def oracle_price(self, asset: str) -> int:
        _, addr = self.asset(asset)
        book = self.ctx.book
        out = await self.ctx._call(
            "eth_call",
            [{"to": book.aave.oracle, "data": self._oracle.encode_call("getAssetPrice", addr)}, "latest"],
        )
        return int(self._oracle.decode_output("getAssetPrice", out)[0])

    async def set_price(self, asset: str, price: int, *, shock: bool = False) -> OracleMove:
        """Send ``setAssetPrice(asset, price)`` from the oracle's owner (the deployer) into the mempool."""
        if price <= 0:
            raise ValueError("an oracle price must be positive")
        sym, addr = self.asset(asset)
        old = await self.oracle_price(addr)
        book, stats = self.ctx.book, self.ctx.stats
        data = self._oracle.encode_call("setAssetPrice", addr, price)
        tx = {"from": book.deployer, "to": book.aave.oracle, "data": data, "gas": hex(100_000)}
        tx_hash = str(await self.ctx._call("eth_sendTransaction", [tx]))
        move = OracleMove(
            tx_hash=tx_hash, asset=addr, symbol=sym, old_price=old, new_price=price, shock=shock
        )
        self.moves.append(move)
        stats.oracle_moves += 1
        stats.oracle_shocks += int(shock)
        return move

    async def shock(self, asset: str, pct: float) -> OracleMove:
        """Move ``asset``'s oracle price by ``pct`` (−0.25 = down 25 %) from its latest on-chain value."""
        if pct <= -1:
            raise ValueError("a shock cannot take the price to zero or below")
        old = await self.oracle_price(asset)
        return await self.set_price(asset, max(1, round(old * (1 + pct))), shock=True)

    async def random_oracle_move(self) -> OracleMove:
        """One random-walk step on a random reserve: log return ~ N(0, volatility)."""
        cfg, rng = self.ctx.config, self.ctx.rng
        sym, addr = rng.choice(self.assets)
        vol = cfg.stable_volatility if sym in cfg.stables else cfg.oracle_volatility
        ret = rng.gauss(0.0, vol)
        old = await self.oracle_price(addr)
        return await self.set_price(addr, max(1, round(old * math.exp(ret))))
