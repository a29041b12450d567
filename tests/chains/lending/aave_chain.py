"""Test helper: read an Aave V3 user's state from a chain (pyrevm or anvil) into the pure math's inputs.

``call(to, calldata_hex) -> bytes`` abstracts the backend, so the pyrevm and the anvil differential tests read
state through the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chains.addressbook import AddressBook
from chains.devnet.artifacts import load
from chains.lending.aave_v3 import ReserveState, UserReserve

Call = Callable[[str, str], bytes]


def _dec(artifact: str, fn: str, out: bytes, nargs: int | None = None) -> tuple[object, ...]:
    return load(artifact).decode_output(fn, "0x" + out.hex(), nargs)


def view(call: Call, to: str, artifact: str, fn: str, *args: object) -> tuple[object, ...]:
    return _dec(artifact, fn, call(to, load(artifact).encode_call(fn, *args)), len(args))


def _bits(x: int, lo: int, n: int) -> int:
    return (x >> lo) & ((1 << n) - 1)


@dataclass
class ChainReserve:
    state: ReserveState
    a_token: str
    variable_debt_token: str
    stable_debt_token: str
    reserve_id: int


def read_reserves(call: Call, book: AddressBook) -> list[ChainReserve]:
    """All reserves in the pool's reserve-list order, with the oracle's current prices."""
    pool, oracle = book.aave.pool, book.aave.oracle
    (assets,) = view(call, pool, "Pool", "getReservesList")
    out = []
    for asset in assets:  # type: ignore[attr-defined]
        (rd,) = view(call, pool, "Pool", "getReserveData", asset)
        cfg, li, lr, vbi, vbr, _sbr, ts, rid, a_tok, s_tok, v_tok = rd[:11]  # type: ignore[index]
        cfg = cfg[0] if isinstance(cfg, tuple | list) else cfg
        (price,) = view(call, oracle, "PriceOracle", "getAssetPrice", asset)
        state = ReserveState(
            asset=asset,
            decimals=_bits(cfg, 48, 8),
            ltv=_bits(cfg, 0, 16),
            liquidation_threshold=_bits(cfg, 16, 16),
            liquidation_bonus=_bits(cfg, 32, 16),
            liquidation_protocol_fee=_bits(cfg, 152, 16),
            liquidity_index=li,
            variable_borrow_index=vbi,
            current_liquidity_rate=lr,
            current_variable_borrow_rate=vbr,
            last_update_timestamp=ts,
            price=int(price),  # type: ignore[call-overload]
            active=bool(_bits(cfg, 56, 1)),
            paused=bool(_bits(cfg, 60, 1)),
            emode_category=_bits(cfg, 168, 8),
        )
        out.append(ChainReserve(state, a_tok, v_tok, s_tok, rid))
    return out


def read_positions(
    call: Call, book: AddressBook, reserves: list[ChainReserve], user: str
) -> dict[str, UserReserve]:
    (ucfg,) = view(call, book.aave.pool, "Pool", "getUserConfiguration", user)
    bitmap = ucfg[0] if isinstance(ucfg, tuple | list) else ucfg
    positions = {}
    for r in reserves:
        borrowing = bool(_bits(bitmap, 2 * r.reserve_id, 1))  # type: ignore[arg-type]
        collateral = bool(_bits(bitmap, 2 * r.reserve_id + 1, 1))  # type: ignore[arg-type]
        (sa,) = view(call, r.a_token, "AToken", "scaledBalanceOf", user)
        (sv,) = view(call, r.variable_debt_token, "VariableDebtToken", "scaledBalanceOf", user)
        (st,) = view(call, r.stable_debt_token, "StableDebtToken", "balanceOf", user)
        if borrowing and sv == 0 and st == 0:
            raise AssertionError("borrowing flag without debt")
        positions[r.state.asset] = UserReserve(int(sa), int(sv), int(st), collateral)  # type: ignore[call-overload]
    return positions


def user_flags(call: Call, book: AddressBook, reserve_id: int, user: str) -> tuple[bool, bool]:
    """(borrowing, using as collateral) bits of the user's configuration for one reserve."""
    (ucfg,) = view(call, book.aave.pool, "Pool", "getUserConfiguration", user)
    bitmap = int(ucfg[0] if isinstance(ucfg, tuple | list) else ucfg)  # type: ignore[call-overload]
    return bool(_bits(bitmap, 2 * reserve_id, 1)), bool(_bits(bitmap, 2 * reserve_id + 1, 1))


def revert_reason(output_hex: str) -> str:
    """``Error(string)`` → the string; ``Panic(uint256)`` → ``panic:0x..``; else the raw hex."""
    data = bytes.fromhex(output_hex.removeprefix("0x"))
    if data[:4] == bytes.fromhex("08c379a0"):
        n = int.from_bytes(data[36:68], "big")
        return data[68 : 68 + n].decode()
    if data[:4] == bytes.fromhex("4e487b71"):
        return f"panic:0x{int.from_bytes(data[4:36], 'big'):02x}"
    return "0x" + data.hex()
