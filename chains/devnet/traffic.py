"""Simulated users for the devnet: swaps through the real routers into the mempool, and Aave oracle moves.

Every action is a real transaction sent with ``eth_sendTransaction`` from an unlocked dev account
(``AddressBook.traders`` for swaps, ``AddressBook.deployer`` for the oracle), so it waits in anvil's mempool
(``--no-mining`` / automine off) until the block builder mines it — exactly what mempool watchers, backrunners
and sandwichers see on mainnet.  anvil assigns nonces itself, counting the sender's pending txs, so several
swaps of one trader in one block get consecutive nonces.

* Swaps: Uniswap V2 ``UniswapV2Router02`` on both venues (``swapExactTokensForTokens``,
  ``swapExactETHForTokens``, ``swapExactTokensForETH``) and Uniswap V3 ``SwapRouter`` (``exactInputSingle``,
  two-hop ``exactInput``).  Sizes are log-normal in USD (``TokenInfo.usd_price``), capped by a fraction of the
  trader's balance.  ``amountOutMin`` comes from a real quote (``getAmountsOut`` / ``QuoterV2``) at the latest
  block: tight (``tight_slippage_bps`` below the quote) or, for a ``loose_fraction`` of swaps, ``loose_slippage``
  below it — the backrunnable / sandwichable victims.
* Private order flow: with ``private_fraction > 0`` and a ``relay_url`` (the local relay,
  :mod:`chains.devnet.relay`), that share of swaps is signed by the node (``eth_signTransaction``) and sent to the
  relay with ``eth_sendPrivateTransaction`` (hints ``private_hints``) instead of the mempool: it never enters the
  public pool, searchers see only the MEV-Share hint, and the builder includes it (backrun or alone).  Private
  swaps come from their own traders (the last ``private_fraction`` share of ``traders``, at least one), each with
  at most one private swap outstanding, so public and private nonces never collide.
* Oracle: a random walk on the Aave ``PriceOracle`` (``setAssetPrice``; USD with 8 decimals), plus
  :meth:`TrafficGenerator.shock` for an explicit move (e.g. to make a borrower liquidatable).

Everything random comes from ``random.Random`` seeded with ``seed``: the same seed on the same chain state
sends the same transactions.  RPC goes through :class:`chains.devnet.builder.AsyncJsonRpc` (one seam,
``_call``/``_batch``), an adapter on the project's :class:`chains.node.rpc.RpcClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from eth_utils.crypto import keccak

from chains.addressbook import AddressBook, PoolInfo, TokenInfo
from chains.devnet.artifacts import load
from chains.devnet.builder import AsyncJsonRpc
from chains.node.anvil import AnvilNode, RpcCallError
from chains.send.flashbots import FlashbotsClient, FlashbotsError

__all__ = [
    "OracleMove",
    "SwapRecord",
    "TrafficConfig",
    "TrafficGenerator",
    "TrafficStats",
]

log = logging.getLogger(__name__)

SwapMethod = Literal[
    "swapExactTokensForTokens",
    "swapExactETHForTokens",
    "swapExactTokensForETH",
    "exactInputSingle",
    "exactInput",
]
V3_VENUE = "uniswap_v3"
GWEI = 10**9


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

    def __post_init__(self) -> None:
        if not 0 <= self.loose_fraction <= 1 or not 0 < self.loose_slippage < 1:
            raise ValueError("loose_fraction must be in [0, 1] and loose_slippage in (0, 1)")
        if not 0 < self.max_balance_fraction <= 1:
            raise ValueError("max_balance_fraction must be in (0, 1]")
        if not 0 <= self.private_fraction <= 1 or self.private_max_blocks < 1:
            raise ValueError("private_fraction must be in [0, 1] and private_max_blocks >= 1")


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

    @property
    def total_sent(self) -> int:
        return sum(self.swaps_sent.values())


def _u(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


class TrafficGenerator:
    """Drives simulated users: :meth:`step` sends one block's worth of swaps and oracle moves; :meth:`run` sends
    them continuously at the configured rates until :meth:`stop`."""

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
        self.rng = random.Random(f"mevsuite-traffic:{seed}")
        self.traders = list(traders if traders is not None else book.traders)
        if not self.traders:
            raise ValueError("the address book has no traders")
        self.stats = TrafficStats()
        if self.config.private_fraction > 0 and not relay_url:
            raise ValueError("private_fraction > 0 needs the relay's relay_url")
        self.private_traders: list[str] = []
        if self.config.private_fraction > 0:
            k = max(1, round(len(self.traders) * self.config.private_fraction))
            self.private_traders = self.traders[-k:]
            if len(self.traders) > k:
                self.traders = self.traders[:-k]
        self._private_pending: dict[str, SwapRecord] = {}  # trader -> its outstanding private swap
        # the searcher-style identity our users sign relay requests with (not a funded account)
        auth = relay_auth_key or keccak(f"mevsuite-traffic-relay:{seed}".encode())
        self._relay = (
            FlashbotsClient(auth, {"relay": relay_url}, timeout=10.0, retries=1) if relay_url else None
        )
        self.swaps: list[SwapRecord] = []
        self.oracle_moves: list[OracleMove] = []
        self._unsettled: dict[str, SwapRecord] = {}
        self._rpc = AsyncJsonRpc(url)
        self._stop = asyncio.Event()
        ok_tokens = {t.address.lower() for t in book.tokens.values() if t.kind in self.config.token_kinds}
        self.pools: list[PoolInfo] = [
            p for p in book.pools if p.token0.lower() in ok_tokens and p.token1.lower() in ok_tokens
        ]
        self._by_venue: dict[str, list[PoolInfo]] = {}
        for p in self.pools:
            self._by_venue.setdefault(p.venue, []).append(p)
        self._venues = [(v, w) for v, w in self.config.venue_weights if self._by_venue.get(v) and w > 0]
        if not self._venues:
            raise ValueError("no pools for the configured venues")
        self._oracle_assets = [(sym, r.asset) for sym, r in book.aave.reserves.items()]
        self._v2router = load("UniswapV2Router02")
        self._swaprouter = load("SwapRouter")
        self._quoter = load("QuoterV2")
        self._erc20 = load("MintableERC20")
        self._oracle = load("PriceOracle")

    # ------------------------------------------------------------------ RPC seam
    async def _call(self, method: str, params: list[Any] | None = None) -> Any:
        return await self._rpc.call(method, params)

    async def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        return await self._rpc.batch(calls)

    async def aclose(self) -> None:
        self.stop()
        await self._rpc.aclose()
        if self._relay is not None:
            await self._relay.close()

    async def __aenter__(self) -> TrafficGenerator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ one block's worth
    async def step(self) -> tuple[list[SwapRecord], list[OracleMove]]:
        """Send Poisson(swaps_per_block) swaps and Poisson(oracle_moves_per_block) oracle moves, then settle."""
        await self.settle()
        swaps: list[SwapRecord] = []
        for _ in range(self._poisson(self.config.swaps_per_block)):
            rec = await self.send_swap()
            if rec is not None:
                swaps.append(rec)
        moves = [
            await self.random_oracle_move() for _ in range(self._poisson(self.config.oracle_moves_per_block))
        ]
        return swaps, moves

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Send swaps and oracle moves as Poisson processes at the configured per-second rates until stop()."""
        self._stop.clear()
        rate = self.config.swaps_per_second + self.config.oracle_moves_per_second
        if rate <= 0:
            await self._stop.wait()
            return
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.rng.expovariate(rate))
            if self._stop.is_set():
                break
            try:
                if self.rng.random() < self.config.swaps_per_second / rate:
                    await self.send_swap()
                else:
                    await self.random_oracle_move()
                await self.settle()
            except (RpcCallError, OSError) as exc:
                self.stats.send_errors += 1
                log.warning("traffic: %s", exc)

    # ------------------------------------------------------------------ swaps
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
        """Send one swap into the mempool (or, ``private``, to the relay); every unspecified choice is drawn
        from the generator's RNG.

        Returns None (and counts a skip) when the trader has nothing to sell or no quote exists."""
        cfg, rng = self.config, self.rng
        if private is None:
            private = cfg.private_fraction > 0 and rng.random() < cfg.private_fraction
        if private:
            if self._relay is None:
                raise ValueError("private swaps need the relay's relay_url")
            free = [t for t in (self.private_traders or self.traders) if t not in self._private_pending]
            if trader is None:
                if not free:  # every private trader has a swap outstanding: this one goes public
                    private = False
                else:
                    trader = rng.choice(free)
        if pool is not None:
            venue = pool.venue
        elif venue is None:
            venue = rng.choices([v for v, _ in self._venues], [w for _, w in self._venues])[0]
        if pool is None:
            pool = rng.choice(self._by_venue[venue])
        trader = trader or rng.choice(self.traders)
        if zero_for_one is None:
            zero_for_one = rng.random() < 0.5
        if loose is None:
            loose = rng.random() < cfg.loose_fraction
        if usd_size is None:
            usd_size = max(
                cfg.size_usd_min, rng.lognormvariate(math.log(cfg.size_usd_median), cfg.size_usd_sigma)
            )
        tip = int(rng.uniform(*cfg.priority_fee_gwei) * GWEI)
        use_eth = rng.random() < cfg.eth_fraction
        hop2 = rng.random() < cfg.multihop_fraction if multihop is None else multihop

        t_in, t_out = (pool.token0, pool.token1) if zero_for_one else (pool.token1, pool.token0)
        path: list[str] = [t_in, t_out]
        fees: list[int] = []
        if venue == V3_VENUE:
            fees = [pool.fee]
            if hop2:
                nxt = [
                    p
                    for p in self._by_venue[V3_VENUE]
                    if p is not pool
                    and t_out.lower() in (p.token0.lower(), p.token1.lower())
                    and t_in.lower() not in (p.token0.lower(), p.token1.lower())
                ]
                if nxt:
                    p2 = rng.choice(nxt)
                    path.append(p2.token1 if p2.token0.lower() == t_out.lower() else p2.token0)
                    fees.append(p2.fee)
        weth = self.book.weth.lower()
        eth_in = venue != V3_VENUE and use_eth and t_in.lower() == weth
        eth_out = venue != V3_VENUE and use_eth and t_out.lower() == weth

        tok_in = self.book.token_by_address(t_in)
        head = await self._call("eth_getBlockByNumber", ["latest", False])
        block_no, now = _u(head["number"]), _u(head["timestamp"])
        base_fee = _u(head.get("baseFeePerGas") or 0)
        if eth_in:
            balance = _u(await self._call("eth_getBalance", [trader, "latest"])) - 10**18  # keep gas money
        else:
            balance = await self._balance_of(tok_in, trader)
        amount_in = self._size_to_amount(tok_in, usd_size)
        amount_in = min(amount_in, int(max(balance, 0) * cfg.max_balance_fraction))
        if amount_in <= 0:
            self.stats.swaps_skipped += 1
            return None
        quote = await self._quote(venue, path, fees, amount_in)
        if quote is None or quote <= 0:
            self.stats.swaps_skipped += 1
            return None
        slip_num = round(cfg.loose_slippage * 10_000) if loose else cfg.tight_slippage_bps
        amount_out_min = quote * (10_000 - slip_num) // 10_000
        deadline = now + cfg.deadline_s

        value = 0
        router = self.book.v3.swap_router if venue == V3_VENUE else self.book.v2[venue].router
        method: SwapMethod
        if venue == V3_VENUE:
            if len(path) == 2:
                method = "exactInputSingle"
                data = self._swaprouter.encode_call(
                    "exactInputSingle", (t_in, t_out, fees[0], trader, deadline, amount_in, amount_out_min, 0)
                )
            else:
                method = "exactInput"
                data = self._swaprouter.encode_call(
                    "exactInput", (_v3_path(path, fees), trader, deadline, amount_in, amount_out_min)
                )
            gas = 250_000 * (len(path) - 1) + 100_000
        elif eth_in:
            method, value = "swapExactETHForTokens", amount_in
            data = self._v2router.encode_call(method, amount_out_min, path, trader, deadline)
            gas = 250_000
        else:
            method = "swapExactTokensForETH" if eth_out else "swapExactTokensForTokens"
            data = self._v2router.encode_call(method, amount_in, amount_out_min, path, trader, deadline)
            gas = 250_000
        tx = {
            "from": trader,
            "to": router,
            "data": data,
            "value": hex(value),
            "gas": hex(gas),
            "maxPriorityFeePerGas": hex(tip),
            "maxFeePerGas": hex(2 * base_fee + tip),
        }
        try:
            if private:
                tx_hash = await self._send_private(tx, block_no)
            else:
                tx_hash = str(await self._call("eth_sendTransaction", [tx]))
        except (RpcCallError, FlashbotsError) as exc:
            self.stats.send_errors += 1
            log.warning("traffic: swap not accepted: %s", exc)
            return None
        rec = SwapRecord(
            tx_hash=tx_hash,
            trader=trader,
            venue=venue,
            method=method,
            path=tuple(path),
            fees=tuple(fees),
            amount_in=amount_in,
            quote=quote,
            amount_out_min=amount_out_min,
            loose=loose,
            usd_size=usd_size,
            sent_at_block=block_no,
            private=bool(private),
        )
        if private:
            self._private_pending[trader] = rec
            self.stats.private_swaps += 1
        self.swaps.append(rec)
        self._unsettled[tx_hash] = rec
        self.stats.swaps_sent[venue] += 1
        self.stats.swaps_by_method[method] += 1
        self.stats.loose_swaps += int(loose)
        return rec

    async def _send_private(self, tx: dict[str, Any], block_no: int) -> str:
        """Have the node sign ``tx`` (its sender is unlocked) and hand it to the relay as private order flow."""
        assert self._relay is not None
        nonce = await self._call("eth_getTransactionCount", [tx["from"], "latest"])
        chain_id = await self._call("eth_chainId")
        signed = await self._call(
            "eth_signTransaction", [{**tx, "nonce": nonce, "chainId": chain_id, "type": "0x2"}]
        )
        raw = signed if isinstance(signed, str) else signed["raw"]
        params = {
            "tx": raw,
            "maxBlockNumber": hex(block_no + self.config.private_max_blocks),
            "preferences": {"privacy": {"hints": list(self.config.private_hints)}},
        }
        return str(await self._relay.request("eth_sendPrivateTransaction", [params]))

    async def _balance_of(self, token: TokenInfo, owner: str) -> int:
        out = await self._call(
            "eth_call", [{"to": token.address, "data": self._erc20.encode_call("balanceOf", owner)}, "latest"]
        )
        return int(self._erc20.decode_output("balanceOf", out)[0])

    @staticmethod
    def _size_to_amount(token: TokenInfo, usd: float) -> int:
        if token.usd_price <= 0:
            return 0
        return int(usd / token.usd_price * 10**token.decimals)

    async def _quote(self, venue: str, path: list[str], fees: list[int], amount_in: int) -> int | None:
        """Expected output at the latest block: Router02.getAmountsOut or QuoterV2 (eth_call)."""
        try:
            if venue != V3_VENUE:
                data = self._v2router.encode_call("getAmountsOut", amount_in, path)
                out = await self._call(
                    "eth_call", [{"to": self.book.v2[venue].router, "data": data}, "latest"]
                )
                return int(self._v2router.decode_output("getAmountsOut", out)[0][-1])
            if len(path) == 2:
                data = self._quoter.encode_call(
                    "quoteExactInputSingle", (path[0], path[1], amount_in, fees[0], 0)
                )
                out = await self._call("eth_call", [{"to": self.book.v3.quoter_v2, "data": data}, "latest"])
                return int(self._quoter.decode_output("quoteExactInputSingle", out)[0])
            data = self._quoter.encode_call("quoteExactInput", _v3_path(path, fees), amount_in)
            out = await self._call("eth_call", [{"to": self.book.v3.quoter_v2, "data": data}, "latest"])
            return int(self._quoter.decode_output("quoteExactInput", out)[0])
        except RpcCallError as exc:  # e.g. the swap would exhaust the pool
            log.debug("traffic: no quote on %s for %s: %s", venue, path, exc)
            return None

    async def settle(self) -> list[tuple[SwapRecord, bool]]:
        """Look up receipts of swaps sent earlier; count the mined and reverted ones. Returns (swap, ok) pairs."""
        if not self._unsettled:
            return []
        recs = list(self._unsettled.values())
        receipts = await self._batch([("eth_getTransactionReceipt", [r.tx_hash]) for r in recs])
        done: list[tuple[SwapRecord, bool]] = []
        head: int | None = None
        for rec, rc in zip(recs, receipts, strict=True):
            if not isinstance(rc, dict):
                if rec.private:  # a private swap nobody mined within its window is gone for good
                    if head is None:
                        head = _u(await self._call("eth_blockNumber"))
                    if head > rec.sent_at_block + self.config.private_max_blocks:
                        del self._unsettled[rec.tx_hash]
                        self._private_pending.pop(rec.trader, None)
                        self.stats.private_expired += 1
                continue
            if rec.private:
                self._private_pending.pop(rec.trader, None)
            ok = _u(rc["status"]) == 1
            del self._unsettled[rec.tx_hash]
            self.stats.swaps_mined += 1
            if not ok:
                self.stats.swaps_reverted += 1
                self.stats.reverted_by_venue[rec.venue] += 1
            done.append((rec, ok))
        return done

    # ------------------------------------------------------------------ oracle
    def _asset(self, asset: str) -> tuple[str, str]:
        """(symbol, address) of a reserve given by symbol or address."""
        for sym, addr in self._oracle_assets:
            if asset.lower() in (sym.lower(), addr.lower()):
                return sym, addr
        raise KeyError(f"{asset} is not an Aave reserve of this devnet")

    async def oracle_price(self, asset: str) -> int:
        _, addr = self._asset(asset)
        out = await self._call(
            "eth_call",
            [
                {"to": self.book.aave.oracle, "data": self._oracle.encode_call("getAssetPrice", addr)},
                "latest",
            ],
        )
        return int(self._oracle.decode_output("getAssetPrice", out)[0])

    async def set_price(self, asset: str, price: int, *, shock: bool = False) -> OracleMove:
        """Send ``setAssetPrice(asset, price)`` from the oracle's owner (the deployer) into the mempool."""
        if price <= 0:
            raise ValueError("an oracle price must be positive")
        sym, addr = self._asset(asset)
        old = await self.oracle_price(addr)
        data = self._oracle.encode_call("setAssetPrice", addr, price)
        tx_hash = str(
            await self._call(
                "eth_sendTransaction",
                [
                    {
                        "from": self.book.deployer,
                        "to": self.book.aave.oracle,
                        "data": data,
                        "gas": hex(100_000),
                    }
                ],
            )
        )
        move = OracleMove(
            tx_hash=tx_hash, asset=addr, symbol=sym, old_price=old, new_price=price, shock=shock
        )
        self.oracle_moves.append(move)
        self.stats.oracle_moves += 1
        self.stats.oracle_shocks += int(shock)
        return move

    async def shock(self, asset: str, pct: float) -> OracleMove:
        """Move ``asset``'s oracle price by ``pct`` (−0.25 = down 25 %) from its latest on-chain value."""
        if pct <= -1:
            raise ValueError("a shock cannot take the price to zero or below")
        old = await self.oracle_price(asset)
        return await self.set_price(asset, max(1, round(old * (1 + pct))), shock=True)

    async def random_oracle_move(self) -> OracleMove:
        """One random-walk step on a random reserve: log return ~ N(0, volatility)."""
        sym, addr = self.rng.choice(self._oracle_assets)
        vol = self.config.stable_volatility if sym in self.config.stables else self.config.oracle_volatility
        ret = self.rng.gauss(0.0, vol)
        old = await self.oracle_price(addr)
        return await self.set_price(addr, max(1, round(old * math.exp(ret))))

    # ------------------------------------------------------------------ helpers
    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        # Knuth; lam is small (a few per block)
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1


def _v3_path(tokens: list[str], fees: list[int]) -> bytes:
    out = bytes.fromhex(tokens[0][2:])
    for fee, tok in zip(fees, tokens[1:], strict=True):
        out += fee.to_bytes(3, "big") + bytes.fromhex(tok[2:])
    return out
