"""Test helpers on a devnet: deploy + fund an executor, skew pools with real router swaps, read pool states, and
predict a plan's exact profit with chains/amm (used by test_executor.py and bench/bench_executor.py)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Sequence
from typing import Any

from chains.addressbook import AddressBook, PoolInfo
from chains.amm.uniswap_v2 import get_amount_out
from chains.amm.uniswap_v3.pool import TickInfo, V3PoolState, quote_exact_input
from chains.node.anvil import AnvilNode
from chains.send.executor import (
    ArbPlan,
    Funding,
    FundingMode,
    Hop,
    aave_flash_premium,
    deploy_executor,
    v2_flash_repay,
    v3_flash_fee,
)
from chains.state.snapshot import read_v2_pair, read_v3_pool


def find_pool(book: AddressBook, venue: str, a: str, b: str, fee: int | None = None) -> PoolInfo:
    """The devnet pool of ``venue`` between tokens ``a`` and ``b`` (symbols), V3 by fee."""
    ta, tb = book.token(a).address.lower(), book.token(b).address.lower()
    for p in book.pools:
        if (
            p.venue == venue
            and {p.token0.lower(), p.token1.lower()} == {ta, tb}
            and (fee is None or p.fee == fee)
        ):
            return p
    raise LookupError(f"no {venue} pool {a}/{b} fee={fee} on the devnet")


def hop(pool: PoolInfo, token_in: str, token_out: str, **kw: Any) -> Hop:
    return Hop(
        pool.address,
        pool.kind,
        token_in,
        token_out,
        pool.fee,
        zero_for_one=pool.token0.lower() == token_in.lower(),
        **kw,
    )


class SyncRpc:
    """The async ``request``/``batch`` interface chains.state.snapshot's readers want, over one plain HTTP batch."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _post(self, body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        req = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return sorted(json.loads(resp.read()), key=lambda r: int(r["id"]))

    async def request(self, method: str, params: Any = None) -> Any:
        return (await self.batch([(method, params or [])]))[0]

    async def batch(self, calls: Sequence[tuple[str, Any]], *, return_exceptions: bool = False) -> list[Any]:
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        replies = await asyncio.to_thread(self._post, body)
        out: list[Any] = []
        for r in replies:
            if "error" in r:
                if not return_exceptions:
                    raise RuntimeError(r["error"])
                out.append(RuntimeError(r["error"]))
            else:
                out.append(r["result"])
        return out


def send(
    node: AnvilNode, sender: str, to: str, data: bytes | str, value: int = 0, gas: int = 3_000_000
) -> dict[str, Any]:
    hexdata = data if isinstance(data, str) else "0x" + data.hex()
    tx_hash = node.rpc(
        "eth_sendTransaction",
        [{"from": sender, "to": to, "data": hexdata, "value": hex(value), "gas": hex(gas)}],
    )
    for _ in range(5000):
        receipt = node.rpc("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return dict(receipt)
    raise TimeoutError(tx_hash)


def call(node: AnvilNode, to: str, data: bytes | str, sender: str | None = None) -> str:
    hexdata = data if isinstance(data, str) else "0x" + data.hex()
    tx: dict[str, Any] = {"to": to, "data": hexdata}
    if sender:
        tx["from"] = sender
    return str(node.rpc("eth_call", [tx, "latest"]))


def sel(signature: str) -> bytes:
    from eth_utils.crypto import keccak

    return keccak(text=signature)[:4]


def abi(signature: str, types: list[str], args: list[Any]) -> bytes:
    from eth_abi.abi import encode

    return sel(signature) + encode(types, args)


def balance_of(node: AnvilNode, token: str, who: str) -> int:
    return int(call(node, token, abi("balanceOf(address)", ["address"], [who])), 16)


def setup_executor(node: AnvilNode, book: AddressBook, owner: str, weth_funds: int) -> str:
    """Deploy an executor owned by ``owner``, give it ``weth_funds`` WETH, and turn on Aave flash loans of WETH
    (the devnet lists reserves with flash loans off, Aave's default)."""
    executor = deploy_executor(node, owner, weth=book.weth, aave_pool=book.aave.pool)
    if weth_funds:
        assert send(node, owner, book.weth, sel("deposit()"), value=weth_funds)["status"] == "0x1"
        data = abi("transfer(address,uint256)", ["address", "uint256"], [executor, weth_funds])
        assert send(node, owner, book.weth, data)["status"] == "0x1"
    data = abi("setReserveFlashLoaning(address,bool)", ["address", "bool"], [book.weth, True])
    assert send(node, book.deployer, book.aave.pool_configurator, data)["status"] == "0x1"
    return executor


def skew_v3(node: AnvilNode, book: AddressBook, pool: PoolInfo, token_in: str, amount_in: int) -> None:
    """A trader's real SwapRouter.exactInputSingle swap of ``amount_in`` of ``token_in`` on ``pool``."""
    trader = book.traders[0]
    token_out = pool.token1 if pool.token0.lower() == token_in.lower() else pool.token0
    data = abi(
        "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))",
        ["(address,address,uint24,address,uint256,uint256,uint256,uint160)"],
        [(token_in, token_out, pool.fee, trader, 2**40, amount_in, 0, 0)],
    )
    assert send(node, trader, book.v3.swap_router, data)["status"] == "0x1"


def skew_v2(
    node: AnvilNode, book: AddressBook, venue: str, token_in: str, token_out: str, amount_in: int
) -> None:
    """A trader's real Router02.swapExactTokensForTokens swap."""
    trader = book.traders[0]
    data = abi(
        "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [amount_in, 0, [token_in, token_out], trader, 2**40],
    )
    assert send(node, trader, book.v2[venue].router, data)["status"] == "0x1"


def predict_profit(node: AnvilNode, plan: ArbPlan, aave_pool: str) -> tuple[int, list[int]]:
    """The plan's profit in the start token, and each hop's output, from the pools' current state and the exact
    integer math of chains/amm (no eth_call of the route)."""

    async def states() -> list[Any]:
        rpc = SyncRpc(node.http_url)
        block = node.block_number()
        out: list[Any] = []
        for h in plan.hops:
            out.append(
                await (
                    read_v3_pool(rpc, h.pool, block) if h.kind == "v3" else read_v2_pair(rpc, h.pool, block)
                )
            )
        return out

    amount = plan.amount_in
    outs: list[int] = []
    for h, st in zip(plan.hops, asyncio.run(states()), strict=True):
        if h.kind == "v2":
            rin, rout = (st.reserve0, st.reserve1) if h.zero_for_one else (st.reserve1, st.reserve0)
            amount = h.amount_out if h.amount_out is not None else get_amount_out(amount, rin, rout, h.fee)
        else:
            pool = V3PoolState(
                st.fee,
                st.tick_spacing,
                st.sqrt_price_x96,
                st.tick,
                st.liquidity,
                {t: TickInfo(g, n) for t, (g, n) in st.ticks.items()},
                dict(st.bitmap),
            )
            res = quote_exact_input(pool, h.zero_for_one, amount, h.sqrt_price_limit_x96 or None)
            amount = -(res.amount1 if h.zero_for_one else res.amount0)
        outs.append(amount)
    return amount - plan.amount_in - loan_fee(node, plan, aave_pool), outs


def loan_fee(node: AnvilNode, plan: ArbPlan, aave_pool: str) -> int:
    mode, amount = plan.funding.mode, plan.amount_in
    if mode is FundingMode.V2_FLASH_SWAP:
        assert plan.funding.fee_bps is not None
        return v2_flash_repay(amount, plan.funding.fee_bps) - amount
    if mode is FundingMode.V3_FLASH:
        assert plan.funding.lender is not None
        return v3_flash_fee(amount, int(call(node, plan.funding.lender, sel("fee()")), 16))
    if mode is FundingMode.AAVE_FLASH_LOAN:
        return aave_flash_premium(amount, int(call(node, aave_pool, sel("FLASHLOAN_PREMIUM_TOTAL()")), 16))
    return 0


def funding(book: AddressBook, mode: FundingMode) -> Funding:
    """The devnet lender of WETH for each mode (a pool no test route uses)."""
    if mode is FundingMode.V2_FLASH_SWAP:
        p = find_pool(book, "uniswap", "WETH", "USDT")
        return Funding(mode, p.address, start_is_token1=p.token1.lower() == book.weth.lower(), fee_bps=p.fee)
    if mode is FundingMode.V3_FLASH:
        p = find_pool(book, "uniswap_v3", "WETH", "USDT", 500)
    else:
        return Funding(mode)
    return Funding(mode, p.address, start_is_token1=p.token1.lower() == book.weth.lower())
