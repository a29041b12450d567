"""The ``swappers`` traffic actor: users' swaps through the real routers into the mempool, and private order
flow to the local relay (see :mod:`chains.devnet.traffic` for the whole picture).

* Swaps: Uniswap V2 ``UniswapV2Router02`` on both venues (``swapExactTokensForTokens``,
  ``swapExactETHForTokens``, ``swapExactTokensForETH``) and Uniswap V3 ``SwapRouter`` (``exactInputSingle``,
  two-hop ``exactInput``), sent with ``eth_sendTransaction`` from the unlocked ``AddressBook.traders``.  Sizes
  are log-normal in USD (``TokenInfo.usd_price``), capped by a fraction of the trader's balance.
  ``amountOutMin`` comes from a real quote (``getAmountsOut`` / ``QuoterV2``) at the latest block: tight
  (``tight_slippage_bps`` below the quote) or, for a ``loose_fraction`` of swaps, ``loose_slippage`` below it.
* Private order flow: with ``private_fraction > 0`` and a ``relay_url``, that share of swaps is signed by the
  node (``eth_signTransaction``) and sent to the relay with ``eth_sendPrivateTransaction`` (hints
  ``private_hints``).  Private swaps come from their own traders (the last ``private_fraction`` share of
  ``traders``, at least one), each with at most one private swap outstanding.

Registered with ``main_stream=True``: its draws are the generator's historical ones, in the same order.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from eth_utils.crypto import keccak

from chains.addressbook import PoolInfo, TokenInfo
from chains.devnet.actors import (
    GWEI,
    V3_VENUE,
    ActorContext,
    SwapMethod,
    SwapRecord,
    TrafficActor,
    TrafficRecord,
    hex_int,
    poisson,
    register_actor,
)
from chains.devnet.artifacts import load
from chains.node.anvil import RpcCallError
from chains.send.flashbots import FlashbotsClient, FlashbotsError

__all__ = ["SwappersActor"]

log = logging.getLogger("chains.devnet.traffic")


@register_actor("swappers", main_stream=True)
class SwappersActor(TrafficActor):
    """Poisson(``swaps_per_block``) swaps per step, public or private; settles them from receipts."""

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        cfg, book = ctx.config, ctx.book
        self.traders = list(ctx.traders)
        if not self.traders:
            raise ValueError("the address book has no traders")
        if cfg.private_fraction > 0 and not ctx.relay_url:
            raise ValueError("private_fraction > 0 needs the relay's relay_url")
        self.private_traders: list[str] = []
        if cfg.private_fraction > 0:
            k = max(1, round(len(self.traders) * cfg.private_fraction))
            self.private_traders = self.traders[-k:]
            if len(self.traders) > k:
                self.traders = self.traders[:-k]
        self._private_pending: dict[str, SwapRecord] = {}  # trader -> its outstanding private swap
        # the searcher-style identity our users sign relay requests with (not a funded account)
        auth = ctx.relay_auth_key or keccak(f"mevsuite-traffic-relay:{ctx.seed}".encode())
        self._relay = (
            FlashbotsClient(auth, {"relay": ctx.relay_url}, timeout=10.0, retries=1)
            if ctx.relay_url
            else None
        )
        self.swaps: list[SwapRecord] = []
        self._unsettled: dict[str, SwapRecord] = {}
        ok_tokens = {t.address.lower() for t in book.tokens.values() if t.kind in cfg.token_kinds}
        self.pools: list[PoolInfo] = [
            p for p in book.pools if p.token0.lower() in ok_tokens and p.token1.lower() in ok_tokens
        ]
        self._by_venue: dict[str, list[PoolInfo]] = {}
        for p in self.pools:
            self._by_venue.setdefault(p.venue, []).append(p)
        self._venues = [(v, w) for v, w in cfg.venue_weights if self._by_venue.get(v) and w > 0]
        if not self._venues:
            raise ValueError("no pools for the configured venues")
        self._v2router = load("UniswapV2Router02")
        self._swaprouter = load("SwapRouter")
        self._quoter = load("QuoterV2")
        self._erc20 = load("MintableERC20")

    async def aclose(self) -> None:
        if self._relay is not None:
            await self._relay.close()

    # ------------------------------------------------------------------ the actor protocol
    async def step(self) -> list[TrafficRecord]:
        out: list[TrafficRecord] = []
        for _ in range(poisson(self.ctx.rng, self.ctx.config.swaps_per_block)):
            rec = await self.send_swap()
            if rec is not None:
                out.append(rec)
        return out

    def rate_per_second(self) -> float:
        return self.ctx.config.swaps_per_second

    async def act(self) -> list[TrafficRecord]:
        rec = await self.send_swap()
        return [] if rec is None else [rec]

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
        from the actor's random stream.

        Returns None (and counts a skip) when the trader has nothing to sell or no quote exists."""
        ctx = self.ctx
        cfg, rng, stats, book = ctx.config, ctx.rng, ctx.stats, ctx.book
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
        weth = book.weth.lower()
        eth_in = venue != V3_VENUE and use_eth and t_in.lower() == weth
        eth_out = venue != V3_VENUE and use_eth and t_out.lower() == weth

        tok_in = book.token_by_address(t_in)
        head = await ctx._call("eth_getBlockByNumber", ["latest", False])
        block_no, now = hex_int(head["number"]), hex_int(head["timestamp"])
        base_fee = hex_int(head.get("baseFeePerGas") or 0)
        if eth_in:
            balance = (
                hex_int(await ctx._call("eth_getBalance", [trader, "latest"])) - 10**18
            )  # keep gas money
        else:
            balance = await self._balance_of(tok_in, trader)
        amount_in = self._size_to_amount(tok_in, usd_size)
        amount_in = min(amount_in, int(max(balance, 0) * cfg.max_balance_fraction))
        if amount_in <= 0:
            stats.swaps_skipped += 1
            return None
        quote = await self._quote(venue, path, fees, amount_in)
        if quote is None or quote <= 0:
            stats.swaps_skipped += 1
            return None
        slip_num = round(cfg.loose_slippage * 10_000) if loose else cfg.tight_slippage_bps
        amount_out_min = quote * (10_000 - slip_num) // 10_000
        deadline = now + cfg.deadline_s

        value = 0
        router = book.v3.swap_router if venue == V3_VENUE else book.v2[venue].router
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
                    "exactInput", (v3_path(path, fees), trader, deadline, amount_in, amount_out_min)
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
                tx_hash = str(await ctx._call("eth_sendTransaction", [tx]))
        except (RpcCallError, FlashbotsError) as exc:
            stats.send_errors += 1
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
            stats.private_swaps += 1
        self.swaps.append(rec)
        self._unsettled[tx_hash] = rec
        stats.swaps_sent[venue] += 1
        stats.swaps_by_method[method] += 1
        stats.loose_swaps += int(loose)
        return rec

    async def _send_private(self, tx: dict[str, Any], block_no: int) -> str:
        """Have the node sign ``tx`` (its sender is unlocked) and hand it to the relay as private order flow."""
        assert self._relay is not None
        ctx = self.ctx
        nonce = await ctx._call("eth_getTransactionCount", [tx["from"], "latest"])
        chain_id = await ctx._call("eth_chainId")
        signed = await ctx._call(
            "eth_signTransaction", [{**tx, "nonce": nonce, "chainId": chain_id, "type": "0x2"}]
        )
        raw = signed if isinstance(signed, str) else signed["raw"]
        params = {
            "tx": raw,
            "maxBlockNumber": hex(block_no + ctx.config.private_max_blocks),
            "preferences": {"privacy": {"hints": list(ctx.config.private_hints)}},
        }
        return str(await self._relay.request("eth_sendPrivateTransaction", [params]))

    async def _balance_of(self, token: TokenInfo, owner: str) -> int:
        out = await self.ctx._call(
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
        book, call = self.ctx.book, self.ctx._call
        try:
            if venue != V3_VENUE:
                data = self._v2router.encode_call("getAmountsOut", amount_in, path)
                out = await call("eth_call", [{"to": book.v2[venue].router, "data": data}, "latest"])
                return int(self._v2router.decode_output("getAmountsOut", out)[0][-1])
            if len(path) == 2:
                data = self._quoter.encode_call(
                    "quoteExactInputSingle", (path[0], path[1], amount_in, fees[0], 0)
                )
                out = await call("eth_call", [{"to": book.v3.quoter_v2, "data": data}, "latest"])
                return int(self._quoter.decode_output("quoteExactInputSingle", out)[0])
            data = self._quoter.encode_call("quoteExactInput", v3_path(path, fees), amount_in)
            out = await call("eth_call", [{"to": book.v3.quoter_v2, "data": data}, "latest"])
            return int(self._quoter.decode_output("quoteExactInput", out)[0])
        except RpcCallError as exc:  # e.g. the swap would exhaust the pool
            log.debug("traffic: no quote on %s for %s: %s", venue, path, exc)
            return None

    async def settle(self) -> list[tuple[TrafficRecord, bool]]:
        """Look up receipts of swaps sent earlier; count the mined and reverted ones. Returns (swap, ok) pairs."""
        if not self._unsettled:
            return []
        ctx, stats = self.ctx, self.ctx.stats
        recs = list(self._unsettled.values())
        receipts = await ctx._batch([("eth_getTransactionReceipt", [r.tx_hash]) for r in recs])
        done: list[tuple[TrafficRecord, bool]] = []
        head: int | None = None
        for rec, rc in zip(recs, receipts, strict=True):
            if rec.tx_hash not in self._unsettled:  # a concurrent settle() (e.g. run()'s) took it meanwhile
                continue
            if not isinstance(rc, dict):
                if rec.private:  # a private swap nobody mined within its window is gone for good
                    if head is None:
                        head = hex_int(await ctx._call("eth_blockNumber"))
                    if (
                        rec.tx_hash in self._unsettled
                        and head > rec.sent_at_block + ctx.config.private_max_blocks
                    ):
                        del self._unsettled[rec.tx_hash]
                        self._private_pending.pop(rec.trader, None)
                        stats.private_expired += 1
                continue
            if rec.private:
                self._private_pending.pop(rec.trader, None)
            ok = hex_int(rc["status"]) == 1
            del self._unsettled[rec.tx_hash]
            stats.swaps_mined += 1
            if not ok:
                stats.swaps_reverted += 1
                stats.reverted_by_venue[rec.venue] += 1
            done.append((rec, ok))
        return done


def v3_path(tokens: list[str], fees: list[int]) -> bytes:
    """Uniswap V3's packed path: token, fee (3 bytes), token, ..."""
    out = bytes.fromhex(tokens[0][2:])
    for fee, tok in zip(fees, tokens[1:], strict=True):
        out += fee.to_bytes(3, "big") + bytes.fromhex(tok[2:])
    return out
