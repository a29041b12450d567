"""Time degenbot 0.3.0's pure-Python pool math on the benchmark's pools. NOT imported by mevsuite.

``bench/bench_amm.py`` runs this script with the python of a throw-away venv that has ``degenbot==0.3.0``
installed (degenbot is not a project dependency), feeds it one JSON document on stdin and parses the one line
starting with ``DEGENBOT_RESULT `` that it prints on stdout.

Input: ``{"rpc_url", "block", "v2": <pool-state doc>, "v3": <pool-state doc>, "cases": [{"name", "pool": "v2"|"v3",
"zero_for_one", "warmup": [amount, ...], "passes": [[amount, ...], ...]}]}`` with every integer as a decimal string
(the documents are ``chains.state.snapshot``'s ``mevsuite.pool-state`` format).

How the pools are built: degenbot 0.3.0's constructors always read the factory, tokens and slot0/reserves through
a registered web3, so they are given one pointing to the SAME devnet anvil, pinned to the snapshot's block
(``state_block``); the V3 pool gets the snapshot's complete tick map (``tick_data`` + ``tick_bitmap``), so it
never fetches ticks.  The state is then checked against the snapshot document and, before any timing, the web3
is replaced by one whose provider raises on every request: the timed quotes are provably offline.

Output: per case the seconds of each timed pass and the quotes of every timed amount (decimal strings, in
order), so the caller can time and check them against its own.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _offline_web3() -> Any:
    from web3 import Web3
    from web3.providers.base import BaseProvider

    class NoNetwork(BaseProvider):
        def make_request(self, method: Any, params: Any) -> Any:
            raise RuntimeError(f"degenbot made an RPC request while quoting: {method}")

        def is_connected(self, show_traceback: bool = False) -> bool:
            return True

    return Web3(NoNetwork())


def _build(job: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    from degenbot.config import connection_manager, set_web3
    from degenbot.uniswap.v2_liquidity_pool import UniswapV2Pool
    from degenbot.uniswap.v3_liquidity_pool import UniswapV3Pool
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(job["rpc_url"], request_kwargs={"timeout": 30}))
    set_web3(w3)
    chain_id = connection_manager.default_chain_id
    block = int(job["block"])
    v2doc, v3doc = job["v2"], job["v3"]

    v2 = UniswapV2Pool(v2doc["address"], state_block=block, verify_address=False, silent=True)
    spacing = int(v3doc["tick_spacing"])
    tick_data: dict[int, dict[str, Any]] = {}
    bitmap: dict[int, int] = {}
    for t in v3doc["ticks"]:
        tick = int(t["tick"])
        tick_data[tick] = {
            "liquidity_net": int(t["liquidity_net"]),
            "liquidity_gross": int(t["liquidity_gross"]),
        }
        compressed = tick // spacing
        bitmap[compressed >> 8] = bitmap.get(compressed >> 8, 0) | (1 << (compressed & 0xFF))
    v3 = UniswapV3Pool(
        v3doc["address"],
        state_block=block,
        tick_data=tick_data,  # type: ignore[arg-type]
        tick_bitmap={w: {"bitmap": b} for w, b in bitmap.items()},  # type: ignore[misc]
        verify_address=False,
        silent=True,
    )

    problems: list[str] = []
    if (v2.reserves_token0, v2.reserves_token1) != (int(v2doc["reserve0"]), int(v2doc["reserve1"])):
        problems.append("v2 reserves differ from the snapshot")
    if (v3.sqrt_price_x96, v3.tick, v3.liquidity) != (
        int(v3doc["sqrt_price_x96"]),
        int(v3doc["tick"]),
        int(v3doc["liquidity"]),
    ):
        problems.append("v3 slot0/liquidity differ from the snapshot")
    if v3.sparse_liquidity_map:
        problems.append("v3 liquidity map is sparse (would fetch ticks)")
    # From here on, any network access raises.
    connection_manager.connections[chain_id] = _offline_web3()
    return v2, v3, problems


def main() -> int:
    job = json.load(sys.stdin)
    out: dict[str, Any] = {"cases": []}
    try:
        import importlib.metadata

        out["version"] = importlib.metadata.version("degenbot")
        t0 = time.perf_counter()
        v2, v3, problems = _build(job)
        out["build_seconds"] = time.perf_counter() - t0
        out["problems"] = problems
    except Exception as exc:  # reported to the caller, which prints it as the "unavailable" reason
        out["error"] = f"building the pools failed: {type(exc).__name__}: {exc}"
        print("DEGENBOT_RESULT " + json.dumps(out), flush=True)
        return 0

    for case in job["cases"]:
        pool = v2 if case["pool"] == "v2" else v3
        token_in = pool.token0 if case["zero_for_one"] else pool.token1
        quote = pool.calculate_tokens_out_from_tokens_in
        res: dict[str, Any] = {"name": case["name"], "pass_seconds": [], "outputs": []}
        try:
            for a in (int(x) for x in case["warmup"]):
                quote(token_in, a)
            for raw in case["passes"]:
                amounts = [int(x) for x in raw]
                t0 = time.perf_counter()
                got = [quote(token_in, a) for a in amounts]
                res["pass_seconds"].append(time.perf_counter() - t0)
                res["n_per_pass"] = len(amounts)
                res["outputs"].extend(str(g) for g in got)
        except Exception as exc:
            res["error"] = f"{type(exc).__name__}: {exc}"
        out["cases"].append(res)
    print("DEGENBOT_RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
