"""Differential test: chains.amm.uniswap_v2 against the real Uniswap V2 bytecode on the devnet.

Random pairs (fresh tokens, reserves log-uniform over 1e4..1e30 on each side, so prices span 26 orders of
magnitude) are created through the real factory and seeded through the real pair's ``mint``.  For each pair,
random amounts in both directions are compared with Router02's ``getAmountsOut``/``getAmountsIn`` and with
real swaps (``swapExactTokensForTokens`` / ``swapTokensForExactTokens`` run as ``eth_call`` from a funded
trader: the pair's own ``swap`` with its K check executes), and one wei more than our output must make the
router revert — every comparison equal to the wei.
"""

from __future__ import annotations

import random
from typing import Any

from chains.amm.uniswap_v2 import InsufficientLiquidityError, get_amount_in, get_amount_out
from chains.devnet.artifacts import load
from chains.node.rpc import RpcClient, RpcError
from tests.fixtures.devnet import Devnet

PAIRS = 12
AMOUNTS_PER_PAIR = 48  # x 2 directions x (amount out + amount in) quotes, plus real swaps below
REAL_SWAPS_PER_PAIR = 8
DEADLINE = 1 << 40

ERC20 = load("MintableERC20")
ROUTER = load("UniswapV2Router02")


def _log_uniform(rnd: random.Random, lo_exp: int, hi_exp: int) -> int:
    return int(10 ** rnd.uniform(lo_exp, hi_exp))


async def _create_pair(dev: Devnet, rpc: RpcClient, rnd: random.Random, who: str, idx: int) -> dict[str, Any]:
    factory = dev.book.v2["uniswap"].factory
    tokens = []
    for side in range(2):
        receipt = dev.node.rpc(
            "eth_sendTransaction",
            [
                {
                    "from": who,
                    "data": ERC20.init_code(f"Diff{idx}{side}", f"D{idx}{side}", 18),
                    "gas": hex(3_000_000),
                }
            ],
        )
        rc = await _receipt(rpc, receipt)
        tokens.append(rc["contractAddress"])
    r0, r1 = _log_uniform(rnd, 4, 30), _log_uniform(rnd, 4, 30)
    dev.transact(who, factory, "UniswapV2Factory", "createPair", tokens[0], tokens[1])
    pair = dev.call(factory, "UniswapV2Factory", "getPair", tokens[0], tokens[1])[0]
    token0 = dev.call(pair, "UniswapV2Pair", "token0")[0]
    t0, t1 = (tokens[0], tokens[1]) if token0.lower() == tokens[0].lower() else (tokens[1], tokens[0])
    dev.transact(who, t0, "MintableERC20", "mint(address,uint256)", pair, r0)
    dev.transact(who, t1, "MintableERC20", "mint(address,uint256)", pair, r1)
    assert dev.transact(who, pair, "UniswapV2Pair", "mint", who)["status"] == "0x1"
    reserves = dev.call(pair, "UniswapV2Pair", "getReserves")
    assert (reserves[0], reserves[1]) == (r0, r1)
    router = dev.book.v2["uniswap"].router
    for t in (t0, t1):  # the trader's funds for real swaps: plenty, and approved
        dev.transact(who, t, "MintableERC20", "mint(address,uint256)", who, 1 << 120)
        dev.transact(who, t, "MintableERC20", "approve", router, (1 << 256) - 1)
    return {"pair": pair, "t0": t0, "t1": t1, "r0": r0, "r1": r1}


async def _receipt(rpc: RpcClient, tx_hash: str) -> dict[str, Any]:
    for _ in range(5000):
        rc = await rpc.request("eth_getTransactionReceipt", [tx_hash])
        if rc is not None:
            return dict(rc)
    raise AssertionError(f"no receipt for {tx_hash}")


async def test_v2_pairs_equal_router_and_real_swaps_to_the_wei(devnet_state: Devnet) -> None:
    dev = devnet_state
    rnd = random.Random(20261125)
    who = dev.node.accounts()[5]
    router = dev.book.v2["uniswap"].router
    compared = swaps = reverts = 0
    async with RpcClient([dev.node.http_url], timeout=60) as rpc:
        for idx in range(PAIRS):
            p = await _create_pair(dev, rpc, rnd, who, idx)
            calls: list[tuple[str, list[Any]]] = []
            expect: list[tuple[str, int | None]] = []
            for _ in range(AMOUNTS_PER_PAIR):
                for zero_for_one in (True, False):
                    rin, rout = (p["r0"], p["r1"]) if zero_for_one else (p["r1"], p["r0"])
                    path = [p["t0"], p["t1"]] if zero_for_one else [p["t1"], p["t0"]]
                    amount_in = max(1, int(rin * 10 ** rnd.uniform(-9, 0.7)))
                    calls.append(
                        (
                            "eth_call",
                            [
                                {"to": router, "data": ROUTER.encode_call("getAmountsOut", amount_in, path)},
                                "latest",
                            ],
                        )
                    )
                    expect.append(("out", get_amount_out(amount_in, rin, rout)))
                    amount_out = max(1, int(rout * 10 ** rnd.uniform(-9, -1e-9)))
                    calls.append(
                        (
                            "eth_call",
                            [
                                {"to": router, "data": ROUTER.encode_call("getAmountsIn", amount_out, path)},
                                "latest",
                            ],
                        )
                    )
                    try:
                        expect.append(("in", get_amount_in(amount_out, rin, rout)))
                    except InsufficientLiquidityError:
                        expect.append(("in", None))
            results = await rpc.batch(calls, return_exceptions=True)
            for (kind, want), res in zip(expect, results, strict=True):
                if want is None:
                    assert isinstance(res, RpcError), res
                    reverts += 1
                    continue
                assert not isinstance(res, RpcError), res
                amounts = ROUTER.decode_output("getAmountsOut" if kind == "out" else "getAmountsIn", res)[0]
                assert (amounts[-1] if kind == "out" else amounts[0]) == want
                compared += 1
            # Real swaps through the pair (eth_call: the pair's swap and K check run; nothing is mined).
            for _ in range(REAL_SWAPS_PER_PAIR):
                zero_for_one = rnd.random() < 0.5
                rin, rout = (p["r0"], p["r1"]) if zero_for_one else (p["r1"], p["r0"])
                path = [p["t0"], p["t1"]] if zero_for_one else [p["t1"], p["t0"]]
                amount_in = max(1, int(rin * 10 ** rnd.uniform(-6, -0.5)))
                ours = get_amount_out(amount_in, rin, rout)
                data = ROUTER.encode_call("swapExactTokensForTokens", amount_in, ours, path, who, DEADLINE)
                res = await rpc.request("eth_call", [{"from": who, "to": router, "data": data}, "latest"])
                assert ROUTER.decode_output("swapExactTokensForTokens", res)[0][-1] == ours
                swaps += 1
                one_more = ROUTER.encode_call(
                    "swapExactTokensForTokens", amount_in, ours + 1, path, who, DEADLINE
                )
                try:
                    await rpc.request("eth_call", [{"from": who, "to": router, "data": one_more}, "latest"])
                except RpcError as exc:
                    assert "INSUFFICIENT_OUTPUT_AMOUNT" in str(exc.message) + str(exc.data)
                    reverts += 1
                else:
                    raise AssertionError("one wei more than our quote did not revert")
                if ours < rout - 1:
                    want_out = ours + 1
                    need = get_amount_in(want_out, rin, rout)
                    data = ROUTER.encode_call("swapTokensForExactTokens", want_out, need, path, who, DEADLINE)
                    res = await rpc.request("eth_call", [{"from": who, "to": router, "data": data}, "latest"])
                    assert ROUTER.decode_output("swapTokensForExactTokens", res)[0][0] == need
                    swaps += 1
    print(f"V2 differential: {compared} router quotes, {swaps} real swaps, {reverts} reverts — all equal")
    assert compared >= PAIRS * AMOUNTS_PER_PAIR * 3
    assert swaps >= PAIRS * REAL_SWAPS_PER_PAIR and reverts >= PAIRS * REAL_SWAPS_PER_PAIR
