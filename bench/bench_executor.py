"""ArbExecutor gas: base overhead, per V2 hop, per V3 hop, per funding mode — from real runs on a fresh devnet.

Each measurement is the ``gasUsed`` of one ``execute`` transaction (21,000 intrinsic and calldata included) on
the devnet with the real Uniswap V2/V3 and Aave V3 bytecode, after a real swap skewed one pool of the cycle so
that it is profitable; the chain is reverted to a snapshot between measurements. Derived rows:

* per hop: the gas of the hop's call frames in anvil's ``callTracer`` trace (V2: the transfer into the pair when
  the previous hop did not already pay it there, ``getReserves``, ``swap``; V3: ``swap`` with its callback
  payment inside);
* base overhead = total - the hops' frames: 21,000 intrinsic, calldata, ``execute``'s two balance reads, plan
  decoding, and the cold-account surcharges (2,600 per first call to an address) the executor pays as the caller;
* marginal 3rd hop = gas(3 hops) - gas(2 hops) on different pools (it includes a new token's cold accesses);
* a funding mode's overhead = gas(the same 2-hop V2+V3 cycle funded that way) - gas(own balance).

Run: ``python -m bench executor`` (~10 s). docs/executor.md carries a copy of the table.
"""

from __future__ import annotations

from typing import Any

from chains.addressbook import AddressBook
from chains.devnet.deploy import deploy_world
from chains.kinds import PoolKind
from chains.node.anvil import AnvilNode
from chains.send.executor import ArbPlan, FundingMode, encode_execute, encode_plan
from tests.contracts.chainhelp import (
    find_pool,
    funding,
    hop,
    predict_profit,
    send,
    setup_executor,
    skew_v2,
    skew_v3,
)

AMOUNT = 10**18


def _routes(book: AddressBook) -> dict[str, tuple[ArbPlan, Any]]:
    """name -> (own-balance plan, function skewing one of its pools)."""
    w, usdc, dai = book.weth, book.token("USDC").address, book.token("DAI").address

    def plan(*hops: Any) -> ArbPlan:
        return ArbPlan(tuple(hops), AMOUNT, funding(book, FundingMode.OWN_BALANCE), min_profit=1)

    uni, sushi = find_pool(book, "uniswap", "WETH", "USDC"), find_pool(book, "sushiswap", "WETH", "USDC")
    v2_dai_usdc, v2_weth_dai = (
        find_pool(book, "uniswap", "DAI", "USDC"),
        find_pool(book, "uniswap", "WETH", "DAI"),
    )
    v3_500 = find_pool(book, "uniswap_v3", "WETH", "USDC", 500)
    v3_3000 = find_pool(book, "uniswap_v3", "WETH", "USDC", 3000)
    v3_dai_usdc = find_pool(book, "uniswap_v3", "DAI", "USDC", 100)
    v3_dai_weth = find_pool(book, "uniswap_v3", "DAI", "WETH", 3000)
    return {
        "2 V2 hops": (
            plan(hop(uni, w, usdc), hop(sushi, usdc, w)),
            lambda n: skew_v2(n, book, "sushiswap", w, usdc, 40 * 10**18),
        ),
        "3 V2 hops": (
            plan(hop(uni, w, usdc), hop(v2_dai_usdc, usdc, dai), hop(v2_weth_dai, dai, w)),
            lambda n: skew_v2(n, book, "uniswap", w, dai, 60 * 10**18),
        ),
        "2 V3 hops": (
            plan(hop(v3_500, w, usdc), hop(v3_3000, usdc, w)),
            lambda n: skew_v3(n, book, v3_3000, w, 300 * 10**18),
        ),
        "3 V3 hops": (
            plan(hop(v3_500, w, usdc), hop(v3_dai_usdc, usdc, dai), hop(v3_dai_weth, dai, w)),
            lambda n: skew_v3(n, book, v3_dai_weth, w, 100 * 10**18),
        ),
        "V2 + V3": (
            plan(hop(uni, w, usdc), hop(v3_3000, usdc, w)),
            lambda n: skew_v3(n, book, v3_3000, w, 300 * 10**18),
        ),
    }


def _hop_gas(node: AnvilNode, tx_hash: str, executor: str, plan: ArbPlan) -> list[int]:
    """Gas of each hop's call frames, from anvil's callTracer: V2 = the transfer into the pair (when the previous
    hop did not pay it there) + ``getReserves`` + ``swap``; V3 = ``swap`` (its callback payment is inside)."""
    trace = node.rpc("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
    frames = [c for c in trace.get("calls", []) if c["from"].lower() == executor.lower()]
    gas = [0] * len(plan.hops)
    pools = [h.pool.lower() for h in plan.hops]
    for f in frames:
        to, used = f["to"].lower(), int(f["gasUsed"], 16)
        if to in pools:
            gas[pools.index(to)] += used
        elif f["input"][:10] == "0xa9059cbb":  # transfer(to, amount) into a pair: the first V2 hop's input
            dest = "0x" + f["input"][34:74]
            if dest in pools:
                gas[pools.index(dest)] += used
    return gas


def _measure(
    node: AnvilNode, book: AddressBook, owner: str, executor: str, plan: ArbPlan, skew: Any
) -> tuple[int, list[int]]:
    snap = node.snapshot()
    try:
        skew(node)
        profit, _ = predict_profit(node, plan, book.aave.pool)
        if profit <= 0:
            raise RuntimeError(f"the benchmark cycle is not profitable ({profit}); skew more")
        receipt = send(node, owner, executor, encode_execute(plan), gas=3_000_000)
        if receipt["status"] != "0x1":
            raise RuntimeError(f"execute reverted: {receipt}")
        return int(receipt["gasUsed"], 16), _hop_gas(node, str(receipt["transactionHash"]), executor, plan)
    finally:
        node.revert(snap)


def run() -> list[dict[str, Any]]:
    with AnvilNode.start(accounts=40) as node:
        book = deploy_world(node, 7)
        owner = node.accounts()[1]
        executor = setup_executor(node, book, owner, 50 * 10**18)
        routes = _routes(book)
        measured = {name: _measure(node, book, owner, executor, p, s) for name, (p, s) in routes.items()}
        base_plan, base_skew = routes["V2 + V3"]
        modes = {
            mode: _measure(
                node,
                book,
                owner,
                executor,
                ArbPlan(base_plan.hops, AMOUNT, funding(book, mode), min_profit=1),
                base_skew,
            )[0]
            for mode in FundingMode
        }
    rows: list[dict[str, Any]] = []
    v2: list[int] = []
    v3: list[int] = []
    bases: list[int] = []
    for name, (total, hops) in measured.items():
        plan = routes[name][0]
        for h, g in zip(plan.hops, hops, strict=True):
            (v3 if h.kind == PoolKind.V3 else v2).append(g)
        bases.append(total - sum(hops))
        rows.append(
            {
                "what": f"own balance, {name}",
                "gas": total,
                "hop frames": " + ".join(f"{g:,}" for g in hops),
                "base": total - sum(hops),
                "calldata bytes": len(encode_plan(plan)),
            }
        )
    rows += [
        {
            "what": "per V2 hop (mean of the hops above)",
            "gas": sum(v2) // len(v2),
            "hop frames": f"{min(v2):,} .. {max(v2):,}",
        },
        {
            "what": "per V3 hop (mean of the hops above)",
            "gas": sum(v3) // len(v3),
            "hop frames": f"{min(v3):,} .. {max(v3):,}",
        },
        {
            "what": "base overhead (mean of 'base' above)",
            "gas": sum(bases) // len(bases),
            "hop frames": f"{min(bases):,} .. {max(bases):,}",
        },
        {
            "what": "marginal 3rd V2 hop (3 - 2 V2 hops)",
            "gas": measured["3 V2 hops"][0] - measured["2 V2 hops"][0],
        },
        {
            "what": "marginal 3rd V3 hop (3 - 2 V3 hops)",
            "gas": measured["3 V3 hops"][0] - measured["2 V3 hops"][0],
        },
    ]
    own = modes[FundingMode.OWN_BALANCE]
    for mode, g in modes.items():
        rows.append(
            {
                "what": f"V2 + V3 funded by {mode.name.lower()}",
                "gas": g,
                "overhead vs own balance": g - own,
                "calldata bytes": len(encode_plan(ArbPlan(base_plan.hops, AMOUNT, funding(book, mode)))),
            }
        )
    return rows
