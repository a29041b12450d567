"""Router calldata decoding: every supported selector, checked against calldata encoded by eth_abi.

Pure tests (no node): hand-written cases for each function incl. multicall and exact-output path reversal,
hypothesis round trips (random params -> eth_abi.encode -> our decoder), and garbage/truncated calldata that
must raise :class:`CalldataError` and nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from chains.devnet.artifacts import load
from chains.watch.mempool import CalldataError, SwapCall, decode_router_call, selectors

A, B, C, D = ("0x" + c * 40 for c in "abcd")
TO = "0x" + "12" * 20
U256 = 2**256 - 1


def call(sig: str, *args: Any) -> bytes:
    types = sig[sig.index("(") + 1 : -1]
    return keccak(text=sig)[:4] + encode(_split(types), list(args))


def _split(types: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in types:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    return [*out, cur] if cur else out


def v3path(tokens: list[str], fees: list[int]) -> bytes:
    out = bytes.fromhex(tokens[0][2:])
    for fee, tok in zip(fees, tokens[1:], strict=True):
        out += fee.to_bytes(3, "big") + bytes.fromhex(tok[2:])
    return out


def one(kind: Any, data: bytes, value: int = 0) -> SwapCall:
    (swap,) = decode_router_call(kind, data, value)
    return swap


# ------------------------------------------------------------------------------------- selectors = deployed ABI


@pytest.mark.parametrize(
    ("artifact", "kind"),
    [("UniswapV2Router02", "uniswap_v2_router02"), ("SwapRouter", "uniswap_v3_swap_router")],
)
def test_selectors_match_the_deployed_router_abi(artifact: str, kind: Any) -> None:
    art = load(artifact)
    for sel, sig in selectors(kind).items():
        assert art.selector(sig) == sel
    assert len(selectors(kind)) == (9 if kind == "uniswap_v2_router02" else 5)


# ------------------------------------------------------------------------------------------------ V2 Router02

V2_AB = [  # (function, exact_input)
    ("swapExactTokensForTokens", True), ("swapTokensForExactTokens", False), ("swapTokensForExactETH", False),
    ("swapExactTokensForETH", True), ("swapExactTokensForTokensSupportingFeeOnTransferTokens", True),
    ("swapExactTokensForETHSupportingFeeOnTransferTokens", True),
]  # fmt: skip


@pytest.mark.parametrize(("fn", "exact_input"), V2_AB)
def test_v2_token_in_functions(fn: str, exact_input: bool) -> None:
    data = call(f"{fn}(uint256,uint256,address[],address,uint256)", 1000, 900, [A, B, C], TO, 1_700_000_000)
    s = one("uniswap_v2_router02", data)
    assert (s.method, s.protocol, s.path, s.fees, s.exact_input) == (
        fn,
        "uniswap_v2",
        (A, B, C),
        (),
        exact_input,
    )
    assert s.recipient == TO and s.deadline == 1_700_000_000
    if exact_input:
        assert (s.amount_in, s.amount_out_min, s.amount_out, s.amount_in_max) == (1000, 900, None, None)
    else:  # V2 paths are in swap direction even for exact output
        assert (s.amount_in, s.amount_out_min, s.amount_out, s.amount_in_max) == (None, None, 1000, 900)


@pytest.mark.parametrize(
    ("fn", "exact_input"),
    [
        ("swapExactETHForTokens", True),
        ("swapETHForExactTokens", False),
        ("swapExactETHForTokensSupportingFeeOnTransferTokens", True),
    ],
)
def test_v2_eth_in_functions_take_the_input_from_value(fn: str, exact_input: bool) -> None:
    data = call(f"{fn}(uint256,address[],address,uint256)", 777, [A, B], TO, 5)
    s = one("uniswap_v2_router02", data, value=10**18)
    assert (s.method, s.path, s.recipient, s.deadline) == (fn, (A, B), TO, 5)
    if exact_input:
        assert (s.amount_in, s.amount_out_min, s.amount_out, s.amount_in_max) == (10**18, 777, None, None)
    else:
        assert (s.amount_in, s.amount_out_min, s.amount_out, s.amount_in_max) == (None, None, 777, 10**18)


# ------------------------------------------------------------------------------------------ V3 SwapRouter

SINGLE = "(address,address,uint24,address,uint256,uint256,uint256,uint160)"
PATHED = "(bytes,address,uint256,uint256,uint256)"


def test_v3_exact_input_single() -> None:
    s = one("uniswap_v3_swap_router", call(f"exactInputSingle({SINGLE})", (A, B, 500, TO, 99, 10**20, 5, 0)))
    assert (s.protocol, s.path, s.fees, s.exact_input, s.amount_in, s.amount_out_min) == (
        "uniswap_v3",
        (A, B),
        (500,),
        True,
        10**20,
        5,
    )
    assert (s.deadline, s.recipient, s.amount_out, s.amount_in_max) == (99, TO, None, None)


def test_v3_exact_output_single() -> None:
    s = one(
        "uniswap_v3_swap_router", call(f"exactOutputSingle({SINGLE})", (A, B, 3000, TO, 99, 40, 50, 2**159))
    )
    assert (s.path, s.fees, s.exact_input, s.amount_out, s.amount_in_max, s.amount_in) == (
        (A, B),
        (3000,),
        False,
        40,
        50,
        None,
    )


def test_v3_exact_input_multihop() -> None:
    data = call(f"exactInput({PATHED})", (v3path([A, B, C], [500, 3000]), TO, 99, 1000, 1))
    s = one("uniswap_v3_swap_router", data)
    assert (s.method, s.path, s.fees, s.amount_in, s.amount_out_min, s.deadline) == (
        "exactInput",
        (A, B, C),
        (500, 3000),
        1000,
        1,
        99,
    )


def test_v3_exact_output_path_is_reversed_with_its_fees() -> None:
    # exactOutput encodes tokenOut first: C <-10000- B <-500- A means the user pays A and receives C
    data = call(f"exactOutput({PATHED})", (v3path([C, B, A], [10000, 500]), TO, 99, 1000, 2000))
    s = one("uniswap_v3_swap_router", data)
    assert (s.path, s.fees, s.exact_input, s.amount_out, s.amount_in_max) == (
        (A, B, C),
        (500, 10000),
        False,
        1000,
        2000,
    )


def test_v3_multicall_decodes_every_swap_and_skips_helpers() -> None:
    unwrap = call("unwrapWETH9(uint256,address)", 1, TO)
    swap1 = call(f"exactInput({PATHED})", (v3path([A, B], [500]), TO, 7, 10, 1))
    swap2 = call(f"exactOutput({PATHED})", (v3path([D, C, B], [100, 3000]), TO, 8, 20, 30))
    data = call("multicall(bytes[])", [swap1, unwrap, swap2])
    s1, s2 = decode_router_call("uniswap_v3_swap_router", data, 5)
    assert (s1.method, s1.path, s1.amount_in, s1.deadline) == ("multicall/exactInput", (A, B), 10, 7)
    assert (s2.method, s2.path, s2.fees, s2.amount_out, s2.deadline) == (
        "multicall/exactOutput",
        (B, C, D),
        (3000, 100),
        20,
        8,
    )


# ------------------------------------------------------------------------------------------ SwapRouter02

SINGLE02 = "(address,address,uint24,address,uint256,uint256,uint160)"
PATHED02 = "(bytes,address,uint256,uint256)"


def test_swaprouter02_multicall_with_deadline_hands_it_to_every_swap() -> None:
    inner = [
        call(f"exactInputSingle({SINGLE02})", (A, B, 500, TO, 10, 9, 0)),
        call(f"exactOutputSingle({SINGLE02})", (B, C, 100, TO, 11, 12, 0)),
        call(f"exactInput({PATHED02})", (v3path([A, B, C], [500, 100]), TO, 13, 14)),
        call(f"exactOutput({PATHED02})", (v3path([C, B], [100]), TO, 15, 16)),
        call("swapExactTokensForTokens(uint256,uint256,address[],address)", 17, 18, [A, D], TO),
        call("swapTokensForExactTokens(uint256,uint256,address[],address)", 19, 20, [D, A], TO),
    ]
    swaps = decode_router_call("uniswap_v3_swap_router02", call("multicall(uint256,bytes[])", 1234, inner))
    assert [s.deadline for s in swaps] == [1234] * 6
    assert [(s.protocol, s.path, s.exact_input) for s in swaps] == [
        ("uniswap_v3", (A, B), True),
        ("uniswap_v3", (B, C), False),
        ("uniswap_v3", (A, B, C), True),
        ("uniswap_v3", (B, C), False),
        ("uniswap_v2", (A, D), True),
        ("uniswap_v2", (D, A), False),
    ]
    assert [(s.amount_in, s.amount_out_min, s.amount_out, s.amount_in_max) for s in swaps] == [
        (10, 9, None, None),
        (None, None, 11, 12),
        (13, 14, None, None),
        (None, None, 15, 16),
        (17, 18, None, None),
        (None, None, 19, 20),
    ]


def test_swaprouter02_without_multicall_deadline_has_none() -> None:
    s = one("uniswap_v3_swap_router02", call(f"exactInputSingle({SINGLE02})", (A, B, 500, TO, 10, 9, 0)))
    assert s.deadline is None
    (s,) = decode_router_call(
        "uniswap_v3_swap_router02",
        call(
            "multicall(bytes32,bytes[])",
            b"\x01" * 32,
            [call(f"exactInputSingle({SINGLE02})", (A, B, 500, TO, 10, 9, 0))],
        ),
    )
    assert (s.deadline, s.method) == (None, "multicall/exactInputSingle")


# ------------------------------------------------------------------------------------------ hypothesis round trips

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
u256 = st.integers(0, U256)
fee = st.integers(0, 2**24 - 1)


@given(
    fn=st.sampled_from(V2_AB),
    a=u256,
    b=u256,
    path=st.lists(addresses, min_size=0, max_size=6),
    to=addresses,
    dl=u256,
)
def test_v2_round_trip(fn: tuple[str, bool], a: int, b: int, path: list[str], to: str, dl: int) -> None:
    name, exact_input = fn
    s = one(
        "uniswap_v2_router02", call(f"{name}(uint256,uint256,address[],address,uint256)", a, b, path, to, dl)
    )
    assert (s.path, s.recipient, s.deadline) == (tuple(path), to, dl)
    assert ((s.amount_in, s.amount_out_min) if exact_input else (s.amount_out, s.amount_in_max)) == (a, b)


@given(
    exact_input=st.booleans(),
    t=st.tuples(addresses, addresses, fee, addresses, u256, u256, u256, st.integers(0, 2**160 - 1)),
)
def test_v3_single_round_trip(exact_input: bool, t: tuple[Any, ...]) -> None:
    name = "exactInputSingle" if exact_input else "exactOutputSingle"
    s = one("uniswap_v3_swap_router", call(f"{name}({SINGLE})", t))
    assert (s.path, s.fees, s.recipient, s.deadline) == ((t[0], t[1]), (t[2],), t[3], t[4])
    assert ((s.amount_in, s.amount_out_min) if exact_input else (s.amount_out, s.amount_in_max)) == (
        t[5],
        t[6],
    )


@given(
    exact_input=st.booleans(),
    hops=st.lists(st.tuples(fee, addresses), min_size=1, max_size=4),
    first=addresses,
    to=addresses,
    dl=u256,
    x=u256,
    y=u256,
)
def test_v3_path_round_trip(
    exact_input: bool, hops: list[tuple[int, str]], first: str, to: str, dl: int, x: int, y: int
) -> None:
    tokens, fees = [first] + [t for _, t in hops], [f for f, _ in hops]
    name = "exactInput" if exact_input else "exactOutput"
    s = one("uniswap_v3_swap_router", call(f"{name}({PATHED})", (v3path(tokens, fees), to, dl, x, y)))
    if exact_input:
        assert (s.path, s.fees, s.amount_in, s.amount_out_min) == (tuple(tokens), tuple(fees), x, y)
    else:
        assert (s.path, s.fees, s.amount_out, s.amount_in_max) == (
            tuple(tokens[::-1]),
            tuple(fees[::-1]),
            x,
            y,
        )
    assert (s.recipient, s.deadline) == (to, dl)


# ------------------------------------------------------------------------------------------ garbage in


VALID = [
    ("uniswap_v2_router02", call("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
                                 1, 2, [A, B], TO, 3)),
    ("uniswap_v2_router02", call("swapExactETHForTokens(uint256,address[],address,uint256)", 1, [A, B], TO, 3)),
    ("uniswap_v3_swap_router", call(f"exactInputSingle({SINGLE})", (A, B, 500, TO, 99, 1, 5, 0))),
    ("uniswap_v3_swap_router", call(f"exactOutput({PATHED})", (v3path([C, B, A], [100, 500]), TO, 99, 1, 2))),
    ("uniswap_v3_swap_router", call("multicall(bytes[])", [call(f"exactInput({PATHED})",
                                                                 (v3path([A, B], [500]), TO, 7, 10, 1))])),
    ("uniswap_v3_swap_router02", call("multicall(uint256,bytes[])", 5, [call(f"exactInput({PATHED02})",
                                                                            (v3path([A, B], [500]), TO, 10, 1))])),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "data"), VALID)
def test_every_truncation_is_a_calldata_error(kind: Any, data: bytes) -> None:
    assert decode_router_call(kind, data)  # the full call decodes
    for n in range(len(data)):
        with pytest.raises(CalldataError) as info:
            decode_router_call(kind, data[:n])
        assert info.value.reason in ("bad_calldata", "unknown_selector")


@given(case=st.sampled_from(VALID), data=st.data())
def test_mutated_calldata_never_raises_anything_but_calldata_error(
    case: tuple[Any, bytes], data: Any
) -> None:
    kind, raw = case
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 6))):
        buf[data.draw(st.integers(4, len(buf) - 1))] = data.draw(st.integers(0, 255))
    try:
        decode_router_call(kind, bytes(buf))
    except CalldataError:
        pass


@given(
    junk=st.binary(max_size=400),
    kind=st.sampled_from(["uniswap_v2_router02", "uniswap_v3_swap_router", "uniswap_v3_swap_router02"]),
)
def test_random_bytes_after_a_real_selector(junk: bytes, kind: Any) -> None:
    for sel in selectors(kind):
        try:
            decode_router_call(kind, bytes.fromhex(sel[2:]) + junk)
        except CalldataError:
            pass


@pytest.mark.parametrize(("kind", "data", "reason"), [
    ("uniswap_v2_router02", b"", "bad_calldata"),
    ("uniswap_v2_router02", b"\x38\xed\x17", "bad_calldata"),
    ("uniswap_v2_router02", bytes.fromhex("a9059cbb") + bytes(64), "unknown_selector"),  # ERC20 transfer
    ("uniswap_v3_swap_router", call("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
                                    1, 2, [A, B], TO, 3), "unknown_selector"),  # a V2 call sent to the V3 router
    ("uniswap_v3_swap_router", call("multicall(bytes[])", [call("refundETH()")]), "no_swap"),
    ("uniswap_v3_swap_router", call("multicall(bytes[])", [call("multicall(bytes[])", [call("multicall(bytes[])", [
        call(f"exactInputSingle({SINGLE})", (A, B, 500, TO, 99, 1, 5, 0))])])]), "bad_calldata"),  # too deep
    ("uniswap_v3_swap_router", call(f"exactInput({PATHED})", (b"\x01" * 42, TO, 1, 1, 1)), "bad_calldata"),
    ("uniswap_v3_swap_router", keccak(text=f"exactInputSingle({SINGLE})")[:4] + encode(
        ["(address,address,uint256,address,uint256,uint256,uint256,uint160)"], [(A, B, 2**24, TO, 99, 1, 5, 0)]),
     "bad_calldata"),  # the fee word overflows uint24
    ("uniswap_v2_router02", call("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
                                 1, 2, [A, B], TO, 3)[:4 + 96] + b"\xff" * 32 + bytes(32 * 5), "bad_calldata"),
])  # fmt: skip
def test_bad_calldata_reasons(kind: Any, data: bytes, reason: str) -> None:
    with pytest.raises(CalldataError) as info:
        decode_router_call(kind, data)
    assert info.value.reason == reason


def test_unknown_router_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown router kind"):
        decode_router_call("sushi_xswap", b"\x00" * 4)  # type: ignore[arg-type]
