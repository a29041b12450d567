"""The independent oracle for the DEX arbitrage bot: every cycle over every pool, by brute force.

Deliberately independent of ``analytics.routing``: it reads each pool's state straight from the chain
(``chains.state.snapshot.read_v2_pair`` / ``read_v3_pool`` at the block), enumerates every simple cycle from WETH of
2..``max_hops`` hops by nested loops over the pool list (both directions, each pool at most once), and sizes
each cycle with an integer ternary search on the exact profit function (``chains.amm`` math only), refined by
a scan around the optimum.  It shares nothing with the route finder but the per-pool exact math.

An opportunity is "above gas cost" when ``profit - gas(route) * base_fee > 0`` with the executor's measured gas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chains.addressbook import AddressBook, PoolInfo
from chains.amm.uniswap_v2 import get_amount_out
from chains.amm.uniswap_v3.errors import UniswapV3Revert
from chains.amm.uniswap_v3.pool import TickInfo, V3PoolState, quote_exact_input
from chains.kinds import PoolKind
from chains.state.snapshot import read_v2_pair, read_v3_pool


@dataclass(frozen=True)
class Leg:
    pool: str
    token_in: str
    token_out: str


@dataclass(frozen=True)
class OracleOpportunity:
    legs: tuple[Leg, ...]
    amount_in: int
    profit: int  # gross, WETH wei
    gas: int
    net: int  # profit - gas * base_fee

    @property
    def pools(self) -> frozenset[str]:
        return frozenset(leg.pool for leg in self.legs)


class _Pools:
    def __init__(self, infos: Sequence[PoolInfo], v2: dict[str, tuple[int, int]], v3: dict[str, V3PoolState]):
        self.info = {p.address: p for p in infos}
        self.v2 = v2
        self.v3 = v3

    def out(self, pool: str, token_in: str, amount: int) -> int | None:
        p = self.info[pool]
        zfo = token_in == p.token0
        if p.kind == PoolKind.V2:
            r0, r1 = self.v2[pool]
            rin, rout = (r0, r1) if zfo else (r1, r0)
            if rin == 0 or rout == 0:
                return None
            return get_amount_out(amount, rin, rout, p.fee)
        st = self.v3[pool]
        if st.liquidity == 0 and not st.ticks:
            return None
        try:
            res = quote_exact_input(st, zfo, amount)
        except UniswapV3Revert:  # the pool would revert at this size: infeasible
            return None
        used, got = (res.amount0, -res.amount1) if zfo else (res.amount1, -res.amount0)
        if used != amount:  # ran out of liquidity: the executor would revert / strand input
            return None
        return got


async def read_pools(rpc: Any, infos: Sequence[PoolInfo], block: int) -> _Pools:
    v2: dict[str, tuple[int, int]] = {}
    v3: dict[str, V3PoolState] = {}
    for p in infos:
        if p.kind == PoolKind.V2:
            r = await read_v2_pair(rpc, p.address, block)
            v2[p.address] = (r.reserve0, r.reserve1)
        else:
            s = await read_v3_pool(rpc, p.address, block)
            v3[p.address] = V3PoolState(
                s.fee,
                s.tick_spacing,
                s.sqrt_price_x96,
                s.tick,
                s.liquidity,
                {t: TickInfo(g, n) for t, (g, n) in s.ticks.items()},
                dict(s.bitmap),
            )
    return _Pools(infos, v2, v3)


def enumerate_cycles(infos: Sequence[PoolInfo], base: str, max_hops: int = 3) -> list[tuple[Leg, ...]]:
    """Every simple cycle base -> ... -> base of 2..max_hops legs, each pool used at most once."""
    out: list[tuple[Leg, ...]] = []

    def extend(path: list[Leg], token: str, used: set[str]) -> None:
        for p in infos:
            if p.address in used or token not in (p.token0, p.token1):
                continue
            nxt = p.token1 if token == p.token0 else p.token0
            leg = Leg(p.address, token, nxt)
            if nxt == base:
                if len(path) >= 1:
                    out.append((*path, leg))
                continue
            if len(path) + 1 < max_hops and all(nxt != lg.token_in for lg in path):
                extend([*path, leg], nxt, used | {p.address})

    extend([], base, set())
    return out


def _profit(pools: _Pools, legs: Sequence[Leg], x: int) -> int | None:
    amt = x
    for leg in legs:
        got = pools.out(leg.pool, leg.token_in, amt)
        if got is None or got <= 0:
            return None
        amt = got
    return amt - x


PROBE = 10**12  # wei of WETH


def best_size(pools: _Pools, legs: Sequence[Leg], upper: int) -> tuple[int, int]:
    """(amount_in, profit) maximising the exact integer profit on [1, upper]; (0, 0) if never positive."""

    def f(x: int) -> int:
        p = _profit(pools, legs, x)
        return -(1 << 255) if p is None else p

    lo, hi = 1, max(upper, 2)
    if f(min(PROBE, hi)) <= 0:
        # profit(x) is concave with profit(0) = 0: not positive at a tiny size means not positive at any larger
        # one (a cycle profitable only below PROBE wei cannot pay any gas).
        return 0, 0
    while hi - lo > 16:
        m1 = lo + (hi - lo) // 3
        m2 = hi - (hi - lo) // 3
        if f(m1) < f(m2):
            lo = m1 + 1
        else:
            hi = m2 - 1
    best_x, best_p = max(((x, f(x)) for x in range(max(1, lo - 16), hi + 17)), key=lambda t: (t[1], -t[0]))
    return (best_x, best_p) if best_p > 0 else (0, 0)


def opportunities(
    pools: _Pools,
    cycles: Sequence[tuple[Leg, ...]],
    base: str,
    *,
    base_fee: int,
    gas_for: Callable[[tuple[str, ...]], int],
) -> list[OracleOpportunity]:
    """Every cycle with a positive gross profit, best net first; ``gas_for(kinds)`` is the gas of a route whose
    hops are of those pool kinds (``PoolKind.V2``/``V3``)."""
    out: list[OracleOpportunity] = []
    for legs in cycles:
        first = pools.info[legs[0].pool]
        if first.kind == PoolKind.V2:
            r0, r1 = pools.v2[first.address]
            upper = r0 if base == first.token0 else r1
        else:
            upper = 10**24
        x, p = best_size(pools, legs, upper)
        if x == 0:
            continue
        gas = gas_for(tuple(pools.info[leg.pool].kind for leg in legs))
        out.append(OracleOpportunity(tuple(legs), x, p, gas, p - gas * base_fee))
    out.sort(key=lambda o: -o.net)
    return out


def independent_set(opps: Sequence[OracleOpportunity]) -> list[OracleOpportunity]:
    """Greedy: the best net opportunity, then the next best sharing no pool with those taken, ..."""
    taken: list[OracleOpportunity] = []
    used: set[str] = set()
    for o in sorted(opps, key=lambda o: -o.net):
        if o.net > 0 and not (o.pools & used):
            taken.append(o)
            used |= o.pools
    return taken


def tradable_pools(book: AddressBook) -> list[PoolInfo]:
    """Pools whose both tokens are plain ERC20s/WETH (the oracle knows the devnet's token kinds directly)."""
    ok = {t.address for t in book.tokens.values() if t.kind in ("standard", "weth")}
    return [p for p in book.pools if p.token0 in ok and p.token1 in ok]
