"""Pool snapshots of the devnet's pools, and offline quotes from the file equal to QuoterV2 / Router02."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chains.amm.uniswap_v3.tick_math import MAX_SQRT_RATIO, MIN_SQRT_RATIO
from chains.node.anvil import RpcCallError
from chains.state.snapshot import QuoteError, SnapshotError, quote_from_state, quote_main, snapshot_main
from tests.chains.state.helpers import pool_of
from tests.fixtures.devnet import Devnet

UINT256 = 2**256


def snap(dev: Devnet, address: str, tmp: Path, capsys: Any, **kw: Any) -> tuple[dict[str, Any], Path]:
    out = tmp / f"{address}.json"
    block = dev.node.block_number()
    assert snapshot_main(address, dev.node.http_url, block, out, **kw) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == str(out) and summary["block"] == str(block)
    return json.loads(out.read_text()), out


def quote_cli(capsys: Any, path: Path, **kw: Any) -> tuple[int, dict[str, Any]]:
    code = quote_main(path, **kw)
    return code, json.loads(capsys.readouterr().out)


def test_v3_snapshot_quotes_equal_quoter_v2(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    dev = devnet
    p = pool_of(dev, "WETH", "USDC", 3000)
    doc, path = snap(dev, p.address, tmp_path, capsys)
    block = int(doc["block"])
    assert (doc["format"], doc["version"], doc["kind"]) == ("mevsuite.pool-state", 1, "uniswap_v3")
    assert all(
        isinstance(doc[k], str) for k in ("fee", "tick_spacing", "sqrt_price_x96", "tick", "liquidity")
    )
    assert (doc["token0"], doc["token1"], doc["fee"], doc["tick_spacing"]) == (
        p.token0,
        p.token1,
        "3000",
        "60",
    )
    assert len(doc["ticks"]) >= 10
    slot0 = dev.call(p.address, "UniswapV3Pool", "slot0", block=block)
    assert (doc["sqrt_price_x96"], doc["tick"]) == (str(slot0[0]), str(slot0[1]))
    quoter = dev.book.v3.quoter_v2
    sqrt = int(doc["sqrt_price_x96"])
    cases = [
        (p.token0, 10**18, None),
        (p.token1, 2_000 * 10**6, None),
        (p.token0, 3_000 * 10**18, None),  # crosses many ticks
        (p.token1, 5_000_000 * 10**6, None),
        (p.token0, 10**21, sqrt * 999 // 1000),  # stopped by the price limit
    ]
    crossed_some = False
    for token_in, amount, limit in cases:
        token_out = p.token1 if token_in == p.token0 else p.token0
        onchain = dev.call(
            quoter,
            "QuoterV2",
            "quoteExactInputSingle",
            (token_in, token_out, amount, 3000, limit or 0),
            block=block,
        )
        ours = quote_from_state(doc, amount_in=amount, token_in=token_in, sqrt_price_limit=limit)
        assert (int(ours["amount_out"]), int(ours["sqrt_price_after"])) == (onchain[0], onchain[1]), (
            token_in,
            amount,
        )
        crossed_some |= int(ours["ticks_crossed"]) > 0
        out = int(ours["amount_out"]) // 3
        onchain_out = dev.call(
            quoter, "QuoterV2", "quoteExactOutputSingle", (token_in, token_out, out, 3000, 0), block=block
        )
        ours_out = quote_from_state(doc, amount_out=out, token_in="0" if token_in == p.token0 else "1")
        assert (int(ours_out["amount_in"]), int(ours_out["sqrt_price_after"])) == (
            onchain_out[0],
            onchain_out[1],
        )
    assert crossed_some
    code, cli = quote_cli(capsys, path, amount_in="1000000000000000000", token_in=p.token0.lower())
    assert (
        code == 0 and cli["amount_out"] == quote_from_state(doc, amount_in=10**18, token_in=0)["amount_out"]
    )
    assert set(cli) >= {
        "amount_in",
        "amount_out",
        "sqrt_price_after",
        "tick_after",
        "ticks_crossed",
        "price_after",
    }

    # reverts on chain -> a JSON error here
    with pytest.raises(RpcCallError):
        dev.call(
            quoter,
            "QuoterV2",
            "quoteExactInputSingle",
            (p.token0, p.token1, 10**18, 3000, sqrt + 1),
            block=block,
        )
    code, err = quote_cli(capsys, path, amount_in=10**18, token_in=0, sqrt_price_limit=sqrt + 1)
    assert code == 1 and err["error"]["type"] == "QuoteError" and "SPL" in err["error"]["message"]
    # an exact output deeper than the pool: QuoterV2 reverts, so do we
    huge = 10**40
    with pytest.raises(RpcCallError):
        dev.call(
            quoter, "QuoterV2", "quoteExactOutputSingle", (p.token0, p.token1, huge, 3000, 0), block=block
        )
    code, err = quote_cli(capsys, path, amount_out=huge, token_in=0)
    assert code == 1 and err["error"]["type"] == "QuoteError"


def test_v3_snapshot_of_a_spacing_1_pool(devnet: Devnet) -> None:
    import asyncio

    from chains.node.rpc import RpcClient
    from chains.state.snapshot import snapshot_pool

    dev = devnet
    p = pool_of(dev, "USDC", "USDT", 100)

    async def go() -> dict[str, Any]:
        async with RpcClient(dev.node.http_url) as rpc:
            return await snapshot_pool(rpc, p.address)

    doc = asyncio.run(go())
    assert doc["tick_spacing"] == "1" and len(doc["ticks"]) >= 8
    block = int(doc["block"])
    amount = 250_000 * 10**6
    onchain = dev.call(
        dev.book.v3.quoter_v2,
        "QuoterV2",
        "quoteExactInputSingle",
        (p.token1, p.token0, amount, 100, 0),
        block=block,
    )
    assert int(quote_from_state(doc, amount_in=amount, token_in=1)["amount_out"]) == onchain[0]


def test_v2_snapshot_quotes_equal_router(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    dev = devnet
    weth, usdc = dev.book.token("WETH").address, dev.book.token("USDC").address
    pair = next(p for p in dev.book.pools if p.venue == "sushiswap" and {p.token0, p.token1} == {weth, usdc})
    doc, path = snap(dev, pair.address, tmp_path, capsys)
    block = int(doc["block"])
    assert doc["kind"] == "uniswap_v2" and doc["fee_bps"] == "30"
    reserves = dev.call(pair.address, "UniswapV2Pair", "getReserves", block=block)
    assert (doc["reserve0"], doc["reserve1"]) == (str(reserves[0]), str(reserves[1]))
    router = dev.book.v2["sushiswap"].router
    for token_in, token_out, amount in ((weth, usdc, 3 * 10**18), (usdc, weth, 12_345 * 10**6)):
        (amounts,) = dev.call(
            router, "UniswapV2Router02", "getAmountsOut", amount, [token_in, token_out], block=block
        )
        code, q = quote_cli(capsys, path, amount_in=amount, token_in=token_in)
        assert code == 0 and (int(q["amount_in"]), int(q["amount_out"])) == (amounts[0], amounts[1])
        want = amounts[1] // 2
        (amounts_in,) = dev.call(
            router, "UniswapV2Router02", "getAmountsIn", want, [token_in, token_out], block=block
        )
        q = quote_from_state(doc, amount_out=want, token_in=token_in)
        assert (int(q["amount_in"]), int(q["amount_out"])) == (amounts_in[0], want)
    # more than the reserve: the router reverts, the quote is a JSON error
    r_weth = int(doc["reserve0"] if pair.token0 == weth else doc["reserve1"])
    with pytest.raises(RpcCallError):
        dev.call(router, "UniswapV2Router02", "getAmountsIn", r_weth, [usdc, weth], block=block)
    code, err = quote_cli(capsys, path, amount_out=r_weth, token_in=usdc)
    assert code == 1 and "INSUFFICIENT_LIQUIDITY" in err["error"]["message"]


def test_snapshot_errors_are_json(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    dev = devnet
    url = dev.node.http_url
    for address, match in (
        ("0x" + "12" * 20, "no contract"),
        (dev.book.token("WETH").address, "neither"),
        ("0x1234", "not an address"),
        ("nonsense", "not an address"),
    ):
        assert snapshot_main(address, url, None, None) == 1
        err = json.loads(capsys.readouterr().out)["error"]
        assert err["type"] == "SnapshotError" and match in err["message"], (address, err)
    assert snapshot_main(dev.book.pools[0].address, url, 10**9, None) == 1
    assert "does not exist" in json.loads(capsys.readouterr().out)["error"]["message"]
    assert snapshot_main(dev.book.pools[0].address, "http://127.0.0.1:1", None, None) == 1
    assert "error" in json.loads(capsys.readouterr().out)
    # without --out the document itself is printed
    assert snapshot_main(dev.book.pools[0].address, url, None, None) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "mevsuite.pool-state"


V2_DOC = {
    "format": "mevsuite.pool-state",
    "version": 1,
    "kind": "uniswap_v2",
    "block": "1",
    "block_hash": "0x",
    "address": "0x" + "11" * 20,
    "token0": "0x" + "aa" * 20,
    "token1": "0x" + "bb" * 20,
    "reserve0": "1000000",
    "reserve1": "2000000",
    "fee_bps": "30",
}
V3_DOC = {
    "format": "mevsuite.pool-state",
    "version": 1,
    "kind": "uniswap_v3",
    "block": "1",
    "block_hash": "0x",
    "address": "0x" + "22" * 20,
    "token0": "0x" + "aa" * 20,
    "token1": "0x" + "bb" * 20,
    "fee": "3000",
    "tick_spacing": "60",
    "sqrt_price_x96": str(2**96),
    "tick": "0",
    "liquidity": "1000000000000",
    "ticks": [
        {"tick": "-600", "liquidity_gross": "1000000000000", "liquidity_net": "1000000000000"},
        {"tick": "600", "liquidity_gross": "1000000000000", "liquidity_net": "-1000000000000"},
    ],
}


def test_offline_quotes_without_a_node() -> None:
    q = quote_from_state(json.dumps(V3_DOC), amount_in=10**6, token_in=0)
    assert int(q["amount_out"]) > 0 and int(q["tick_after"]) < 0
    q = quote_from_state(V3_DOC, amount_in=10**12, token_in=1)  # runs past the last tick: partial fill
    assert int(q["amount_in"]) < 10**12 and int(q["sqrt_price_after"]) == MAX_SQRT_RATIO - 1
    assert quote_from_state(V2_DOC, amount_in=1000, token_in="0x" + "AA" * 20)["amount_out"] == "1992"


BAD_FILES: list[tuple[Any, str]] = [
    ("{not json", "not JSON"),
    ("[]", "JSON object"),
    ({**V2_DOC, "format": "other"}, "format"),
    ({**V2_DOC, "version": 2}, "version 2 is not supported"),
    ({**V2_DOC, "version": "1"}, "version"),
    ({**V2_DOC, "kind": "curve"}, "unknown pool kind"),
    ({k: v for k, v in V2_DOC.items() if k != "reserve0"}, "missing field 'reserve0'"),
    ({**V2_DOC, "reserve0": 1000}, "decimal string"),
    ({**V2_DOC, "reserve0": "1e6"}, "not a decimal integer"),
    ({**V2_DOC, "reserve0": "-5"}, "outside"),
    ({**V2_DOC, "token0": "0x12"}, "not an address"),
    ({**V3_DOC, "ticks": {}}, "must be a list"),
    (
        {**V3_DOC, "ticks": [{"tick": "61", "liquidity_gross": "1", "liquidity_net": "1"}]},
        "multiple of the tick",
    ),
    ({**V3_DOC, "ticks": [V3_DOC["ticks"][0], V3_DOC["ticks"][0]]}, "twice"),  # type: ignore[index]
    ({**V3_DOC, "sqrt_price_x96": "0"}, "outside"),
    ({**V3_DOC, "tick_spacing": "0"}, "outside"),
]


@pytest.mark.parametrize(("doc", "match"), BAD_FILES)
def test_malformed_state_files(doc: Any, match: str, tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(SnapshotError, match=match):
        quote_from_state(doc if isinstance(doc, str) else json.dumps(doc), amount_in=1, token_in=0)
    path = tmp_path / "s.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    code, err = quote_cli(capsys, path, amount_in=1, token_in=0)
    assert code == 1 and err["error"]["type"] == "SnapshotError"


BAD_INPUTS: list[tuple[dict[str, Any], str]] = [
    ({"amount_in": 0}, "positive"),
    ({"amount_in": -5}, "positive"),
    ({"amount_in": "-5"}, "positive"),
    ({"amount_in": UINT256}, "exceeds uint256"),
    ({"amount_in": str(UINT256)}, "exceeds uint256"),
    ({"amount_in": "12abc"}, "not an integer"),
    ({"amount_in": 1.5}, "must be an integer"),
    ({"amount_in": True}, "must be an integer"),
    ({}, "exactly one"),
    ({"amount_in": 5, "amount_out": 5}, "exactly one"),
    ({"amount_in": 5, "token_in": "0x" + "cc" * 20}, "neither token0"),
    ({"amount_in": 5, "token_in": 2}, "0 or 1"),
    ({"amount_in": 5, "token_in": "WETH"}, "neither token0"),
    ({"amount_in": 5, "sqrt_price_limit": 0}, "positive"),
]


@pytest.mark.parametrize(("kw", "match"), BAD_INPUTS)
def test_bad_quote_inputs(kw: dict[str, Any], match: str, tmp_path: Path, capsys: Any) -> None:
    args = {"token_in": 0, **kw}
    for doc in (V2_DOC, V3_DOC):
        with pytest.raises(QuoteError, match=match):
            quote_from_state(doc, **args)
    path = tmp_path / "v3.json"
    path.write_text(json.dumps(V3_DOC))
    code, err = quote_cli(capsys, path, **args)
    assert code == 1 and err["error"]["type"] == "QuoteError" and match in err["error"]["message"]


def test_quote_specific_reverts() -> None:
    with pytest.raises(QuoteError, match="V3 pools only"):
        quote_from_state(V2_DOC, amount_in=5, token_in=0, sqrt_price_limit=2**96)
    with pytest.raises(QuoteError, match="INSUFFICIENT_LIQUIDITY"):
        quote_from_state(V2_DOC, amount_out=2_000_000, token_in=0)
    with pytest.raises(QuoteError, match="SPL"):
        quote_from_state(V3_DOC, amount_in=5, token_in=0, sqrt_price_limit=MIN_SQRT_RATIO)
    with pytest.raises(QuoteError, match="cannot fill"):
        quote_from_state(V3_DOC, amount_out=10**15, token_in=0)
    # with a caller's limit an exact output may be partial (QuoterV2 does the same)
    q = quote_from_state(V3_DOC, amount_out=10**15, token_in=0, sqrt_price_limit=2**96 * 99 // 100)
    assert int(q["amount_out"]) < 10**15
    assert quote_main(Path("/nonexistent/dir/state.json"), amount_in=1) == 1
