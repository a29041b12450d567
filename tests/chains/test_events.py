"""Typed events: address/hash normalisation, exact-int rules, immutability and lossless serialisation."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chains.events import (
    ALL_TOPICS,
    Event,
    NewBlock,
    OraclePriceUpdate,
    PendingSwap,
    PendingTransaction,
    PoolSwap,
    Uint256,
    event_class,
    is_valid_topic,
    register_event,
    validate_topic,
)

# Real mainnet addresses (WETH, USDC, the USDC/WETH 0.05% V3 pool, SwapRouter02): their EIP-55 forms are known.
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
ROUTER = "0x68b3465833fb72A70ecDF485E0e4C7bD8665Fc45"
H1 = "0x" + "ab" * 32
H2 = "0x" + "cd" * 32
U256_MAX = 2**256 - 1
U112_MAX = 2**112 - 1
I256_MIN = -(2**255)


def new_block(**overrides: Any) -> NewBlock:
    kw: dict[str, Any] = dict(
        number=19_000_000, hash=H1, parent_hash=H2, timestamp=1_700_000_000,
        base_fee_per_gas=30 * 10**9, gas_used=12_000_000, gas_limit=30_000_000,
    )  # fmt: skip
    kw.update(overrides)
    return NewBlock(**kw)


def pending_tx(**overrides: Any) -> PendingTransaction:
    kw: dict[str, Any] = dict(
        hash=H1, sender=WETH.lower(), to=ROUTER, nonce=7, value=U256_MAX, gas=250_000,
        max_fee_per_gas=50 * 10**9, max_priority_fee_per_gas=2 * 10**9, input=b"\x38\xed\x17\x39" + bytes(64),
        seen_at=1_700_000_000.123456,
    )  # fmt: skip
    kw.update(overrides)
    return PendingTransaction(**kw)


def v3_swap(**overrides: Any) -> PoolSwap:
    kw: dict[str, Any] = dict(
        block_number=19_000_000, block_hash=H1, tx_hash=H2, tx_index=3, log_index=41, pool=POOL,
        sender=ROUTER, recipient=ROUTER, amount0=-(10**12), amount1=5 * 10**17,
        sqrt_price_x96=2**160 - 1, liquidity=2**128 - 1, tick=-(2**23),
    )  # fmt: skip
    kw.update(overrides)
    return PoolSwap.v3(**kw)


def v2_swap() -> PoolSwap:
    # V2 balances are uint112 (the pair's reserves), so that is the largest realistic in/out amount.
    return PoolSwap.v2(
        block_number=1, block_hash=H1, tx_hash=H2, tx_index=0, log_index=0, pool=POOL, sender=ROUTER,
        recipient=WETH, amount0_in=U112_MAX, amount1_in=0, amount0_out=0, amount1_out=123,
    )  # fmt: skip


def pending_swap(**overrides: Any) -> PendingSwap:
    kw: dict[str, Any] = dict(
        tx_hash=H1, sender=WETH, router=ROUTER, protocol="uniswap_v3", path=(USDC, WETH), fees=(500,),
        exact_input=True, amount_in=U256_MAX, amount_out_min=1, deadline=1_700_000_100,
    )  # fmt: skip
    kw.update(overrides)
    return PendingSwap(**kw)


def oracle_update() -> OraclePriceUpdate:
    return OraclePriceUpdate(
        asset=WETH, price=2_000 * 10**8, decimals=8, block_number=5, block_hash=H1, tx_hash=H2, tx_index=0,
        log_index=9,
    )  # fmt: skip


ALL_EVENTS = [new_block, pending_tx, v3_swap, v2_swap, pending_swap, oracle_update]


# ------------------------------------------------------------------------------------------- addresses


@pytest.mark.parametrize("spelling", [WETH.lower(), "0x" + WETH[2:].upper(), WETH])
def test_addresses_are_normalised_to_eip55(spelling: str) -> None:
    assert pending_swap(sender=spelling).sender == WETH


def test_tuple_and_optional_addresses_are_normalised() -> None:
    swap = pending_swap(path=[USDC.lower(), WETH.lower()], recipient=POOL.lower())
    assert swap.path == (USDC, WETH)  # list in, tuple out: the event stays hashable
    assert swap.recipient == POOL
    assert pending_tx(to=None).to is None


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("0x1234", "malformed address"),
        (WETH[2:], "malformed address"),  # no 0x prefix
        ("0x" + "g" * 40, "malformed address"),
        (WETH + "00", "malformed address"),
        # mixed case with a wrong checksum: one flipped hex digit
        (WETH[:-1] + ("3" if WETH[-1] != "3" else "4"), "invalid EIP-55 checksum"),
        ("0xc02aaa39b223FE8D0A0e5C4F27eAD9083C756Cc2", "invalid EIP-55 checksum"),
    ],
)
def test_malformed_addresses_raise_value_error_naming_the_field(bad: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle) as info:
        pending_swap(router=bad)
    assert "PendingSwap.router" in str(info.value)


def test_non_string_address_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"PoolSwap\.pool"):
        v3_swap(pool=bytes.fromhex(POOL[2:]))


def test_hashes_are_lowercased_and_checked() -> None:
    assert new_block(hash="0x" + "AB" * 32).hash == H1
    with pytest.raises(ValueError, match=r"NewBlock\.parent_hash: malformed hash"):
        new_block(parent_hash="0x1234")


# ------------------------------------------------------------------------------------------------ ints


@pytest.mark.parametrize("bad", [1.0, 10.0**18, True, Decimal(5), "5"])
def test_amounts_reject_non_ints(bad: object) -> None:
    with pytest.raises(TypeError, match=r"PendingTransaction\.value: expected an int"):
        pending_tx(value=bad)


def test_v2_constructor_rejects_floats_before_deriving_deltas() -> None:
    with pytest.raises(TypeError, match="amount0_in"):
        PoolSwap.v2(
            block_number=1, block_hash=H1, tx_hash=H2, tx_index=0, log_index=0, pool=POOL, sender=ROUTER,
            recipient=WETH, amount0_in=1.5, amount1_in=0, amount0_out=0, amount1_out=1,  # type: ignore[arg-type]
        )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("value", -1, "uint256"),
        ("value", 2**256, "uint256"),
        ("nonce", 2**64, "uint64"),
        ("gas", -5, "uint64"),
    ],
)
def test_ints_are_range_checked_against_their_solidity_type(field: str, value: int, label: str) -> None:
    with pytest.raises(ValueError, match=f"out of range for {label}"):
        pending_tx(**{field: value})


def test_signed_and_narrow_ranges() -> None:
    assert v3_swap(amount0=I256_MIN, amount1=2**255 - 1).amount0 == I256_MIN
    with pytest.raises(ValueError, match="int256"):
        v3_swap(amount0=I256_MIN - 1)
    with pytest.raises(ValueError, match="int24"):
        v3_swap(tick=2**23)
    with pytest.raises(ValueError, match="uint24"):
        pending_swap(fees=(2**24,))


def test_bytes_and_float_fields() -> None:
    assert pending_tx(input=bytearray(b"\x01")).input == b"\x01"
    with pytest.raises(TypeError, match="input: expected bytes"):
        pending_tx(input="0x01")
    with pytest.raises(ValueError, match="finite"):
        pending_tx(seen_at=float("nan"))


# ----------------------------------------------------------------------------------- cross-field rules


def test_new_block_gas_used_within_limit() -> None:
    with pytest.raises(ValueError, match="exceeds gas_limit"):
        new_block(gas_used=30_000_001)


def test_priority_fee_cannot_exceed_max_fee() -> None:
    with pytest.raises(ValueError, match="max_priority_fee_per_gas"):
        pending_tx(max_priority_fee_per_gas=51 * 10**9)


def test_v2_swap_derives_signed_pool_deltas_and_rejects_inconsistent_ones() -> None:
    swap = v2_swap()
    assert (swap.amount0, swap.amount1) == (U112_MAX, -123)
    with pytest.raises(ValueError, match="amountIn - amountOut"):
        dataclasses.replace(swap, amount1=123)
    with pytest.raises(ValueError, match="no V3 fields"):
        dataclasses.replace(swap, tick=1)
    with pytest.raises(ValueError, match="needs sqrt_price_x96"):
        dataclasses.replace(v3_swap(), tick=None)


def test_pending_swap_rules() -> None:
    assert pending_swap().token_in == USDC and pending_swap().token_out == WETH
    with pytest.raises(ValueError, match="needs 1 fee"):
        pending_swap(fees=())
    with pytest.raises(ValueError, match="no per-hop fees"):
        pending_swap(protocol="uniswap_v2")
    with pytest.raises(ValueError, match="at least two tokens"):
        pending_swap(path=(USDC,), fees=())
    with pytest.raises(ValueError, match="repeats token"):
        pending_swap(path=(USDC, USDC), fees=(500,))
    with pytest.raises(ValueError, match="exact-output swaps need"):
        pending_swap(exact_input=False)
    exact_out = pending_swap(
        exact_input=False, amount_in=None, amount_out_min=None, amount_out=5, amount_in_max=9
    )
    assert exact_out.amount_out == 5
    with pytest.raises(ValueError, match="not one of"):
        pending_swap(protocol="sushiswap")


# ------------------------------------------------------------------------------------------- immutability


def test_events_are_frozen_slotted_and_hashable() -> None:
    block = new_block()
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.number = 1  # type: ignore[misc]
    assert not hasattr(block, "__dict__")
    assert hash(block) == hash(new_block()) and block == new_block()
    assert len({v3_swap(), v3_swap(), v2_swap()}) == 2


# ------------------------------------------------------------------------------------------ serialisation


@pytest.mark.parametrize("make", ALL_EVENTS, ids=lambda f: f.__name__)
def test_round_trip_through_dict_and_json(make: Any) -> None:
    event = make()
    assert Event.from_dict(event.to_dict()) == event
    assert type(event).from_json(event.to_json()) == event
    assert Event.from_json(event.to_json().encode()) == event
    json.loads(event.to_json())  # plain JSON, no custom types


def test_big_ints_become_decimal_strings_and_small_ones_stay_numbers() -> None:
    data = v2_swap().to_dict()
    assert data["kind"] == "pool_swap"
    assert data["amount0"] == str(U112_MAX) and data["amount0_in"] == str(U112_MAX)
    assert data["amount1"] == -123 and data["log_index"] == 0
    assert data["sqrt_price_x96"] is None
    assert pending_tx().to_dict()["value"] == str(U256_MAX)
    swap = v3_swap(amount0=I256_MIN)
    assert swap.to_dict()["amount0"] == str(I256_MIN)
    assert Event.from_json(swap.to_json()) == swap
    # The JSON-safe boundary: exact in every JSON reader.
    assert new_block(number=2**53 - 1).to_dict()["number"] == 2**53 - 1
    assert new_block(number=2**53).to_dict()["number"] == str(2**53)


def test_bytes_serialise_as_0x_hex_and_tuples_as_lists() -> None:
    data = pending_tx(input=b"\xde\xad").to_dict()
    assert data["input"] == "0xdead"
    assert pending_swap().to_dict()["path"] == [USDC, WETH]
    assert PendingTransaction.from_dict(pending_tx(input=b"").to_dict()).input == b""


@given(
    amount0=st.integers(min_value=I256_MIN, max_value=2**255 - 1),
    amount1=st.integers(min_value=I256_MIN, max_value=2**255 - 1),
    liquidity=st.integers(min_value=0, max_value=2**128 - 1),
    tick=st.integers(min_value=-(2**23), max_value=2**23 - 1),
)
def test_round_trip_is_exact_for_any_int256(amount0: int, amount1: int, liquidity: int, tick: int) -> None:
    swap = v3_swap(amount0=amount0, amount1=amount1, liquidity=liquidity, tick=tick)
    assert Event.from_json(swap.to_json()) == swap


@pytest.mark.parametrize(
    ("mutate", "error", "needle"),
    [
        (lambda d: d.update(kind="nope"), KeyError, "unknown event kind"),
        (lambda d: d.pop("kind"), ValueError, "no 'kind'"),
        (lambda d: d.update(extra=1), ValueError, "unknown field"),
        (lambda d: d.pop("gas_limit"), ValueError, "missing field"),
        (lambda d: d.update(base_fee_per_gas=1.5), TypeError, "expected an int"),
        (lambda d: d.update(base_fee_per_gas="1e18"), ValueError, "decimal integer"),
        (lambda d: d.update(base_fee_per_gas="-1"), ValueError, "out of range"),
    ],
)
def test_from_dict_rejects_bad_input(mutate: Any, error: type[Exception], needle: str) -> None:
    data = new_block().to_dict()
    mutate(data)
    with pytest.raises(error, match=needle):
        Event.from_dict(data)


def test_from_dict_on_a_subclass_checks_the_kind() -> None:
    with pytest.raises(ValueError, match="not a PoolSwap"):
        PoolSwap.from_dict(new_block().to_dict())


# ------------------------------------------------------------------------------------ registry, topics


@register_event
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Payout(Event):
    KIND: ClassVar[str] = "test_payout"
    TOPIC: ClassVar[str] = "test.payouts"

    amount: Uint256
    memo: str = ""


def test_higher_floors_can_register_their_own_events() -> None:
    payout = _Payout(amount=U256_MAX, memo="hi")
    assert event_class("test_payout") is _Payout
    assert Event.from_json(payout.to_json()) == payout


def test_duplicate_kinds_and_reserved_field_names_are_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Clash(Event):
        KIND: ClassVar[str] = "new_block"

    with pytest.raises(ValueError, match="already registered"):
        register_event(Clash)

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Reserved(Event):
        KIND: ClassVar[str] = "test_reserved"
        kind: str

    with pytest.raises(TypeError, match="reserved"):
        register_event(Reserved)


def test_topic_convention() -> None:
    assert all(is_valid_topic(t) for t in ALL_TOPICS)
    assert {NewBlock.TOPIC, PendingSwap.TOPIC, PoolSwap.TOPIC} <= set(ALL_TOPICS)
    assert validate_topic("chain.blocks.1") == "chain.blocks.1"
    for bad in ("blocks", "Chain.Blocks", "chain..blocks", "chain.blocks.", "chain blocks", ""):
        with pytest.raises(ValueError, match="invalid topic"):
            validate_topic(bad)


def test_oracle_updates_pending_and_mined() -> None:
    from chains.events import OracleUpdate

    tx, who, src, asset = "0x" + "ab" * 32, "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
    pending = OracleUpdate(status="pending", tx_hash=tx, sender=who, source=src, assets=(asset,), seen_at=1.5)
    mined = OracleUpdate(
        status="mined",
        tx_hash=tx,
        sender=who,
        source=src,
        assets=(asset,),
        price=2 * 10**11,
        decimals=8,
        block_number=9,
        block_hash="0x" + "cd" * 32,
    )
    for event in (pending, mined):
        assert Event.from_json(event.to_json()) == event
    assert pending.TOPIC == "oracle.updates" and pending.price is None
    with pytest.raises(ValueError, match="has no block"):
        OracleUpdate(status="pending", tx_hash=tx, sender=who, source=src, block_number=1, block_hash=tx)
    with pytest.raises(ValueError, match="come together"):
        OracleUpdate(status="pending", tx_hash=tx, sender=who, source=src, assets=(asset,), price=1)
    with pytest.raises(ValueError, match="exactly one asset"):
        OracleUpdate(status="pending", tx_hash=tx, sender=who, source=src, price=1, decimals=8)
