"""Differential tests: chains.amm.uniswap_v3 against the real Uniswap V3 bytecode on the devnet.

Each hypothesis example creates a fresh pool (random fee tier and price) on the session devnet, mints 1-8
random concentrated positions through the NonfungiblePositionManager and burns part of some, and then:

* rebuilds the pool's state from the Mint/Burn events with ``update_position`` (amounts and the NPM's
  liquidity checked against the events) and compares it with the chain: slot0, liquidity, every touched
  tick's gross/net liquidity and every bitmap word;
* compares ``swap`` with QuoterV2 (``quoteExactInputSingle``/``quoteExactOutputSingle``) for many random
  amounts, both directions, with and without price limits, including reverts (``SPL``, ``AS``, and the
  quoter's own refusals) — simulated in pyrevm forked from the anvil, then a few as ``eth_call`` on the
  anvil itself;
* sends real swaps through the SwapRouter and checks the pool's Swap event against ``swap`` to the wei,
  following the pool with ``apply_swap``.

Every example runs between ``evm_snapshot``/``evm_revert``, so the same tokens and fee tiers are reused.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st
from pyrevm import EVM

from chains.amm.uniswap_v3.errors import LOError, UniswapV3Revert
from chains.amm.uniswap_v3.liquidity_amounts import get_liquidity_for_amounts
from chains.amm.uniswap_v3.pool import (
    SwapResult,
    TickInfo,
    V3PoolState,
    apply_swap,
    swap,
    update_position,
)
from chains.amm.uniswap_v3.sqrt_price_math import get_amount0_delta, get_amount1_delta
from chains.amm.uniswap_v3.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
)
from chains.devnet.artifacts import load
from tests.fixtures.devnet import Devnet

SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}
MAX_UINT = (1 << 256) - 1
DEADLINE = 1 << 40
QUOTE_GAS = 1_000_000_000  # a swap walking empty bitmap words to the price limit costs ~5k gas per word
QUOTES_PER_EXAMPLE = 48  # pyrevm comparisons against QuoterV2 per pool
ETH_CALLS_PER_EXAMPLE = 3  # the same through anvil's eth_call
REAL_SWAPS_PER_EXAMPLE = 2

POOL = load("UniswapV3Pool")
QUOTER = load("QuoterV2")
NPM = load("NonfungiblePositionManager")
ROUTER = load("SwapRouter")
TOPIC_MINT = POOL.event_topic("Mint")
TOPIC_BURN = POOL.event_topic("Burn")
TOPIC_SWAP = POOL.event_topic("Swap")
TOPIC_INCREASE = NPM.event_topic("IncreaseLiquidity")
_REVERT_OUTPUT = re.compile(r"output: 0x([0-9a-fA-F]*)")


@dataclass
class Counts:
    pyrevm: int = 0
    eth_call: int = 0
    real_swaps: int = 0
    reverts: int = 0
    crossed_10: int = 0
    states: int = 0
    extra: dict[str, int] = field(default_factory=dict)


COUNTS = Counts()
TOUCHED: set[int] = set()  # ticks minted on in the current example (cleared ones included)


def state_touched(state: V3PoolState) -> set[int]:
    return set(TOUCHED)


@dataclass
class Lab:
    devnet: Devnet
    token0: str
    token1: str
    owner: str

    def send(self, to: str | None, data: str, gas: int = 3_000_000) -> dict[str, Any]:
        tx: dict[str, Any] = {"from": self.owner, "data": data, "gas": hex(gas)}
        if to is not None:
            tx["to"] = to
        node = self.devnet.node
        receipt: dict[str, Any] | None = None
        tx_hash = node.rpc("eth_sendTransaction", [tx])
        deadline = time.monotonic() + 30  # automine answers before the receipt is queryable: poll
        while receipt is None and time.monotonic() < deadline:
            receipt = node.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is None:
                time.sleep(0.001)
        assert receipt is not None, f"no receipt for {tx_hash}"
        return receipt


@pytest.fixture(scope="module")
def lab(devnet: Devnet) -> Iterator[Lab]:
    """Two fresh 18-decimal tokens, plenty of both for the deployer, approved to the NPM and SwapRouter."""
    node = devnet.node
    automine = node.automine()
    node.set_automine(True)
    snap = node.snapshot()
    owner = devnet.book.deployer
    try:
        tmp = Lab(devnet, "", "", owner)
        erc20 = load("MintableERC20")
        addrs = []
        for sym in ("V3A", "V3B"):
            r = tmp.send(None, erc20.init_code(f"Diff {sym}", sym, 18), gas=5_000_000)
            assert r["status"] == "0x1"
            addrs.append(r["contractAddress"])
        t0, t1 = sorted(addrs, key=lambda a: int(a, 16))
        for t in (t0, t1):
            tmp.send(t, erc20.encode_call("mint(address,uint256)", owner, 1 << 200))
            for spender in (devnet.book.v3.position_manager, devnet.book.v3.swap_router):
                tmp.send(t, erc20.encode_call("approve", spender, MAX_UINT))
        yield Lab(devnet, t0, t1, owner)
    finally:
        node.revert(snap)
        node.set_automine(automine)


# --------------------------------------------------------------------------- helpers
def _word(data: str, i: int) -> int:
    return int(data[2 + 64 * i : 2 + 64 * (i + 1)], 16)


def _int24_topic(topic: str) -> int:
    v = int(topic, 16) & 0xFFFFFF
    return v - (1 << 24) if v >= 1 << 23 else v


def _signed(v: int) -> int:
    return v - (1 << 256) if v >= 1 << 255 else v


def _revert_reason(output: bytes) -> str:
    if output[:4] == bytes.fromhex("08c379a0"):
        return str(abi_decode(["string"], output[4:])[0])
    return "0x" + output.hex()


def _pool_address(devnet: Devnet, lab: Lab, fee: int) -> str:
    out = devnet.call(devnet.book.v3.factory, "UniswapV3Factory", "getPool", lab.token0, lab.token1, fee)
    return str(out[0])


@dataclass
class Request:
    zero_for_one: bool
    exact_in: bool
    amount: int
    limit: int | None


def _expected(state: V3PoolState, req: Request) -> tuple[str, Any]:
    """What the quoter must answer: ("ok", (amount, sqrt_after)) or ("revert", reason)."""
    try:
        r = swap(
            state,
            zero_for_one=req.zero_for_one,
            amount_specified=req.amount if req.exact_in else -req.amount,
            sqrt_price_limit_x96=req.limit,
        )
    except UniswapV3Revert as e:
        return "revert", e.reason
    if r.amount0 <= 0 and r.amount1 <= 0:
        return "revert", "Unexpected error"  # QuoterV2's callback refuses swaps with nothing paid in
    if req.exact_in:
        return "ok", (-(r.amount1 if req.zero_for_one else r.amount0), r.sqrt_price_x96, r)
    received = -(r.amount1 if req.zero_for_one else r.amount0)
    if req.limit is None and received != req.amount:
        return "revert", "Unexpected error"  # QuoterV2: require(amountReceived == amountOut) without a limit
    return "ok", (r.amount0 if req.zero_for_one else r.amount1, r.sqrt_price_x96, r)


def _quote_calldata(lab: Lab, fee: int, req: Request) -> bytes:
    t_in, t_out = (lab.token0, lab.token1) if req.zero_for_one else (lab.token1, lab.token0)
    fn = "quoteExactInputSingle" if req.exact_in else "quoteExactOutputSingle"
    data = QUOTER.encode_call(fn, (t_in, t_out, req.amount, fee, req.limit or 0))
    return bytes.fromhex(data[2:])


def _check(expected: tuple[str, Any], got: tuple[str, Any], req: Request) -> None:
    if expected[0] == "revert" or got[0] == "revert":
        assert got == expected, req
        COUNTS.reverts += 1
        return
    amount, sqrt_after, r = expected[1]
    assert got[1][:2] == (amount, sqrt_after), (req, r)
    if r.ticks_crossed >= 10:
        COUNTS.crossed_10 += 1


def _decode_quote(out: bytes, exact_in: bool) -> tuple[str, Any]:
    fn = "quoteExactInputSingle" if exact_in else "quoteExactOutputSingle"
    amount, sqrt_after, _crossed, _gas = QUOTER.decode_output(fn, out)
    return "ok", (amount, sqrt_after)


def _random_limit(rng: random.Random, state: V3PoolState, zero_for_one: bool) -> int | None:
    roll = rng.random()
    if roll < 0.55:
        return None
    if roll < 0.6:  # on or past the wrong side: SPL
        wrong = state.sqrt_price_x96 + (1 if zero_for_one else -1) * rng.randint(1, 1 << 80)
        # a limit of 0 means "no limit" to the periphery: keep wrong-side limits in [1, 2**160)
        wrong = max(1, min((1 << 160) - 1, wrong))
        return rng.choice([state.sqrt_price_x96, MIN_SQRT_RATIO if zero_for_one else MAX_SQRT_RATIO, wrong])
    # somewhere ahead in the swap's direction, a few to thousands of ticks away, not on a tick
    ticks = rng.choice([1, 10, 100, 1000, 20000])
    target_tick = state.tick + (-1 if zero_for_one else 1) * rng.randint(1, ticks)
    target_tick = max(MIN_TICK + 1, min(MAX_TICK - 1, target_tick))
    limit = get_sqrt_ratio_at_tick(target_tick) + rng.randint(0, 1 << 40)
    return max(MIN_SQRT_RATIO + 1, min(MAX_SQRT_RATIO - 1, limit))


def _random_request(rng: random.Random, state: V3PoolState) -> Request:
    zero_for_one = rng.random() < 0.5
    # amounts from 1 wei up to ~100x the largest liquidity: within a tick, across ticks, beyond the pool
    digits = max([len(str(t.liquidity_gross)) for t in state.ticks.values()] + [4]) + 2
    amount = 0 if rng.random() < 0.01 else rng.randrange(1, 10 ** rng.randint(1, digits))
    return Request(zero_for_one, rng.random() < 0.5, amount, _random_limit(rng, state, zero_for_one))


# --------------------------------------------------------------------------- pool set-up
positions_strategy = st.lists(
    st.tuples(
        st.one_of(
            st.integers(-40, 40), st.integers(-3000, 3000)
        ),  # centre offset from the price, in spacings
        st.one_of(st.integers(1, 40), st.integers(1, 1500)),  # half width in tick spacings
        st.integers(4, 33),  # log10 of the liquidity (drawn below it)
        st.integers(0, 3),  # 0: burn part of it, 1: burn all of it, else keep
    ),
    min_size=1,
    max_size=8,
)


def _build_pool(
    lab: Lab, fee: int, sqrt_price: int, positions: list[tuple[int, int, int, int]], rng: random.Random
) -> tuple[str, V3PoolState]:
    devnet = lab.devnet
    book = devnet.book
    spacing = SPACING[fee]
    r = lab.send(
        book.v3.factory,
        load("UniswapV3Factory").encode_call("createPool", lab.token0, lab.token1, fee),
        gas=6_000_000,
    )
    assert r["status"] == "0x1"
    pool = _pool_address(devnet, lab, fee)
    assert lab.send(pool, POOL.encode_call("initialize", sqrt_price), gas=300_000)["status"] == "0x1"
    state = V3PoolState.initialized(fee, spacing, sqrt_price)
    lo_usable = -(-MIN_TICK // spacing) * spacing
    hi_usable = (MAX_TICK // spacing) * spacing
    minted: list[tuple[int, int, int, int]] = []  # token id, lower, upper, liquidity
    for centre, half, mag, _burn in positions:
        mid = (state.tick // spacing + centre) * spacing
        lower = max(lo_usable, mid - half * spacing)
        upper = min(hi_usable, mid + half * spacing)
        if lower >= upper:
            continue
        want = rng.randrange(10 ** (mag - 1), 10**mag)
        sa, sb = get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)
        p = state.sqrt_price_x96
        a0 = get_amount0_delta(max(p, sa), sb, want, True) + 1 if p < sb else 0
        a1 = get_amount1_delta(sa, min(p, sb), want, True) + 1 if p > sa else 0
        liq = get_liquidity_for_amounts(p, sa, sb, a0, a1)  # what the NPM will mint
        if liq == 0:
            continue
        params = (lab.token0, lab.token1, fee, lower, upper, a0, a1, 0, 0, lab.owner, DEADLINE)
        rec = lab.send(book.v3.position_manager, NPM.encode_call("mint", params), gas=2_000_000)
        try:
            update_position(state.copy(), lower, upper, liq)
        except LOError:  # over maxLiquidityPerTick: the pool must refuse it too
            assert rec["status"] == "0x0"
            COUNTS.extra["LO"] = COUNTS.extra.get("LO", 0) + 1
            continue
        assert rec["status"] == "0x1", (lower, upper, a0, a1, liq)
        TOUCHED.update((lower, upper))
        token_id = 0
        for log in rec["logs"]:
            if log["topics"][0] == TOPIC_MINT and log["address"].lower() == pool.lower():
                assert (_int24_topic(log["topics"][2]), _int24_topic(log["topics"][3])) == (lower, upper)
                amount, paid0, paid1 = _word(log["data"], 1), _word(log["data"], 2), _word(log["data"], 3)
                assert amount == liq
                assert update_position(state, lower, upper, amount) == (paid0, paid1)
            elif log["topics"][0] == TOPIC_INCREASE:
                token_id = int(log["topics"][1], 16)
        minted.append((token_id, lower, upper, liq))
    for (token_id, lower, upper, liq), (_c, _h, _m, burn) in zip(minted, positions, strict=False):
        if burn > 1:
            continue
        amount = liq if burn == 1 else rng.randint(1, liq)
        params2 = (token_id, amount, 0, 0, DEADLINE)
        rec = lab.send(book.v3.position_manager, NPM.encode_call("decreaseLiquidity", params2), gas=2_000_000)
        assert rec["status"] == "0x1"
        (log,) = [lg for lg in rec["logs"] if lg["topics"][0] == TOPIC_BURN]
        assert (_int24_topic(log["topics"][2]), _int24_topic(log["topics"][3]), _word(log["data"], 0)) == (
            lower,
            upper,
            amount,
        )
        assert update_position(state, lower, upper, -amount) == (
            -_word(log["data"], 1),
            -_word(log["data"], 2),
        )
    return pool, state


def _static(evm: EVM, lab: Lab, to: str, art: Any, fn: str, *args: Any) -> tuple[Any, ...]:
    out = evm.message_call(lab.owner, to, bytes.fromhex(art.encode_call(fn, *args)[2:]), is_static=True)
    return tuple(art.decode_output(fn, out, len(args)))


def _compare_with_chain(evm: EVM, lab: Lab, pool: str, state: V3PoolState, touched: set[int]) -> None:
    slot0 = _static(evm, lab, pool, POOL, "slot0")
    assert (slot0[0], slot0[1]) == (state.sqrt_price_x96, state.tick)
    assert _static(evm, lab, pool, POOL, "liquidity")[0] == state.liquidity
    for t in touched:
        info = _static(evm, lab, pool, POOL, "ticks", t)
        ours = state.ticks.get(t, TickInfo(0, 0))
        assert (info[0], info[1]) == (ours.liquidity_gross, ours.liquidity_net), t
        assert info[7] == (t in state.ticks)
    for w in {(t // state.tick_spacing) >> 8 for t in touched}:
        assert _static(evm, lab, pool, POOL, "tickBitmap", w)[0] == state.bitmap.get(w, 0), w
    COUNTS.states += 1


_BITMAP_SLOT = (
    6  # UniswapV3Pool storage: slot0, feeGrowthGlobal0/1, protocolFees, liquidity, ticks, tickBitmap
)


def _prefill_empty_words(evm: EVM, pool: str, state: V3PoolState, touched: set[int]) -> None:
    """Seed the fork's cache with the bitmap words no mint ever wrote (zero on a fresh pool), so that a swap
    walking thousands of empty words does not fetch each one from the anvil; written words still come from
    the chain."""
    written = {(t // state.tick_spacing) >> 8 for t in touched}

    def slot(w: int) -> int:
        return int.from_bytes(
            keccak((w % (1 << 256)).to_bytes(32, "big") + _BITMAP_SLOT.to_bytes(32, "big")), "big"
        )

    for w in written:  # the layout is right: a written word read raw equals the pool's tickBitmap(w)
        assert evm.storage(pool, slot(w)) == state.bitmap.get(w, 0)
    lo = (MIN_TICK // state.tick_spacing) >> 8
    hi = (MAX_TICK // state.tick_spacing) >> 8
    for w in range(lo, hi + 1):
        if w not in written:
            evm.insert_account_storage(pool, slot(w), 0)


def _quote_pyrevm(evm: EVM, lab: Lab, fee: int, req: Request) -> tuple[str, Any]:
    try:
        out = evm.message_call(
            lab.owner, lab.devnet.book.v3.quoter_v2, _quote_calldata(lab, fee, req), gas=QUOTE_GAS
        )
    except RuntimeError as e:
        m = _REVERT_OUTPUT.search(str(e))
        assert m is not None, str(e)
        return "revert", _revert_reason(bytes.fromhex(m.group(1)))
    return _decode_quote(out, req.exact_in)


def _quote_eth_call(lab: Lab, fee: int, req: Request) -> tuple[str, Any]:
    from chains.node.anvil import RpcCallError

    data = "0x" + _quote_calldata(lab, fee, req).hex()
    try:
        out = lab.devnet.node.rpc(
            "eth_call", [{"to": lab.devnet.book.v3.quoter_v2, "data": data, "gas": hex(30_000_000)}, "latest"]
        )
    except RpcCallError as e:
        err = e.error if isinstance(e.error, dict) else {}
        data_hex = err.get("data")
        assert isinstance(data_hex, str), e  # a revert, with its return data
        return "revert", _revert_reason(bytes.fromhex(data_hex.removeprefix("0x")))
    return _decode_quote(bytes.fromhex(out[2:]), req.exact_in)


def _words_walked(state: V3PoolState, expected: tuple[str, Any]) -> int:
    if expected[0] == "revert":
        return 0
    r: SwapResult = expected[1][2]
    return abs(r.tick // state.tick_spacing - state.tick // state.tick_spacing) // 256 + 1


def _affordable_request(rng: random.Random, state: V3PoolState) -> tuple[Request, tuple[str, Any]]:
    """A random request whose swap walks few enough bitmap words to fit anvil's 30M block gas limit."""
    while True:
        req = _random_request(rng, state)
        expected = _expected(state, req)
        if _words_walked(state, expected) <= 300:
            return req, expected


def _real_swap(lab: Lab, pool: str, fee: int, state: V3PoolState, rng: random.Random) -> None:
    """A SwapRouter swap on the anvil; its Swap event must equal ``swap`` on our state."""
    zero_for_one = rng.random() < 0.5
    exact_in = rng.random() < 0.5
    limit = _random_limit(rng, state, zero_for_one)
    if limit is not None and not (
        MIN_SQRT_RATIO < limit < state.sqrt_price_x96
        if zero_for_one
        else state.sqrt_price_x96 < limit < MAX_SQRT_RATIO
    ):
        limit = None
    req = Request(zero_for_one, exact_in, rng.randrange(1, 10 ** rng.randint(2, 30)), limit)
    kind, val = expected = _expected(state, req)
    if kind == "revert" or _words_walked(state, expected) > 300:
        return
    ours: SwapResult = val[2]
    t_in, t_out = (lab.token0, lab.token1) if zero_for_one else (lab.token1, lab.token0)
    if exact_in:
        params = (t_in, t_out, fee, lab.owner, DEADLINE, req.amount, 0, limit or 0)
        data = ROUTER.encode_call("exactInputSingle", params)
    else:
        params = (t_in, t_out, fee, lab.owner, DEADLINE, req.amount, MAX_UINT, limit or 0)
        data = ROUTER.encode_call("exactOutputSingle", params)
    rec = lab.send(lab.devnet.book.v3.swap_router, data, gas=25_000_000)
    assert rec["status"] == "0x1", req
    (log,) = [lg for lg in rec["logs"] if lg["topics"][0] == TOPIC_SWAP]
    d = log["data"]
    event = (_signed(_word(d, 0)), _signed(_word(d, 1)), _word(d, 2), _word(d, 3), _signed(_word(d, 4)))
    assert event == (ours.amount0, ours.amount1, ours.sqrt_price_x96, ours.liquidity, ours.tick), req
    apply_swap(state, ours.sqrt_price_x96, ours.tick, ours.liquidity)
    COUNTS.real_swaps += 1


# --------------------------------------------------------------------------- the test
@given(
    fee=st.sampled_from(sorted(SPACING)),
    start_tick=st.one_of(st.integers(-5000, 5000), st.integers(-400_000, 400_000)),
    price_offset=st.integers(0, (1 << 64) - 1),
    positions=positions_strategy,
    seed=st.integers(0, 2**32 - 1),
)
def test_pool_matches_real_bytecode(
    lab: Lab,
    fee: int,
    start_tick: int,
    price_offset: int,
    positions: list[tuple[int, int, int, int]],
    seed: int,
) -> None:
    rng = random.Random(seed)
    TOUCHED.clear()
    node = lab.devnet.node
    snap = node.snapshot()
    try:
        sqrt_price = min(get_sqrt_ratio_at_tick(start_tick) + price_offset % (1 << 60), MAX_SQRT_RATIO - 1)
        pool, state = _build_pool(lab, fee, sqrt_price, positions, rng)
        evm = EVM(fork_url=node.http_url, fork_block="latest", spec_id="CANCUN")
        touched = set(state.ticks) | state_touched(state)
        _compare_with_chain(evm, lab, pool, state, touched)
        _prefill_empty_words(evm, pool, state, touched)

        before = state.copy()
        for _ in range(QUOTES_PER_EXAMPLE):
            req = _random_request(rng, state)
            _check(_expected(state, req), _quote_pyrevm(evm, lab, fee, req), req)
            COUNTS.pyrevm += 1
        assert state == before  # quoting never mutates
        for _ in range(ETH_CALLS_PER_EXAMPLE):
            req, expected = _affordable_request(rng, state)
            _check(expected, _quote_eth_call(lab, fee, req), req)
            COUNTS.eth_call += 1
        for _ in range(REAL_SWAPS_PER_EXAMPLE):
            _real_swap(lab, pool, fee, state, rng)
        evm_after = EVM(fork_url=node.http_url, fork_block="latest", spec_id="CANCUN")
        _compare_with_chain(evm_after, lab, pool, state, touched)
    finally:
        node.revert(snap)


def test_dense_pool_matches_real_bytecode(lab: Lab) -> None:
    """One pool per fee tier with 40 overlapping narrow positions: quotes crossing tens of initialized ticks
    and several bitmap words (the property test caps positions at 8)."""
    node = lab.devnet.node
    for fee in sorted(SPACING):
        rng = random.Random(fee)
        TOUCHED.clear()
        snap = node.snapshot()
        try:
            positions = [
                (rng.randint(-300, 300), rng.randint(1, 60), rng.randint(15, 24), 2) for _ in range(40)
            ]
            pool, state = _build_pool(
                lab, fee, get_sqrt_ratio_at_tick(rng.randint(-1000, 1000)), positions, rng
            )
            evm = EVM(fork_url=node.http_url, fork_block="latest", spec_id="CANCUN")
            _compare_with_chain(evm, lab, pool, state, set(TOUCHED))
            _prefill_empty_words(evm, pool, state, set(TOUCHED))
            for _ in range(150):
                req = _random_request(rng, state)
                _check(_expected(state, req), _quote_pyrevm(evm, lab, fee, req), req)
                COUNTS.pyrevm += 1
            for _ in range(5):
                _real_swap(lab, pool, fee, state, rng)
        finally:
            node.revert(snap)


def test_report_counts() -> None:
    """Runs after the property test in this module: print what was compared (visible with ``-s``/``-rP``)."""
    print(
        f"\nV3 differential: {COUNTS.pyrevm} pyrevm QuoterV2 comparisons, {COUNTS.eth_call} eth_call quotes, "
        f"{COUNTS.real_swaps} real swaps, {COUNTS.reverts} matching reverts, {COUNTS.crossed_10} quotes "
        f"crossing >= 10 initialized ticks, {COUNTS.states} full pool states compared"
    )
