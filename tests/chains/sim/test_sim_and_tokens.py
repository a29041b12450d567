"""chains.sim.fork (pyrevm fork) and chains.sim.tokens (token screen) on the real devnet."""

from __future__ import annotations

import pytest

from chains.devnet.artifacts import load
from chains.sim.fork import ForkSim, SimError, decode_revert
from chains.sim.tokens import screen_tokens
from tests.fixtures.devnet import Devnet


def _holders(devnet: Devnet) -> dict[str, str]:
    out: dict[str, str] = {}
    for pool in devnet.book.pools:
        out.setdefault(pool.token0, pool.address)
        out.setdefault(pool.token1, pool.address)
    return out


def test_screen_flags_fee_on_transfer_and_reverting_tokens(devnet: Devnet) -> None:
    verdicts = screen_tokens(devnet.node.http_url, "latest", _holders(devnet))
    by_kind = {t.address: t.kind for t in devnet.book.tokens.values()}
    assert set(verdicts) == set(by_kind)
    for token, v in verdicts.items():
        expected = {"fee_on_transfer": "fee_on_transfer", "reverting": "reverting"}.get(by_kind[token], "ok")
        assert v.verdict == expected, (devnet.book.token_by_address(token).symbol, v)
    assert "paused" in verdicts[devnet.book.token("PAUSE").address].detail


def test_screen_leaves_the_chain_untouched(devnet: Devnet) -> None:
    pool = devnet.book.pools[0]
    before = devnet.balance(pool.token0, pool.address)
    screen_tokens(devnet.node.http_url, "latest", {pool.token0: pool.address})
    assert devnet.balance(pool.token0, pool.address) == before


def test_call_reverts_are_results_and_state_is_reverted(devnet: Devnet) -> None:
    sim = ForkSim(devnet.node.http_url, "latest")
    erc = load("MintableERC20")
    trader = devnet.book.traders[0]
    usdc = devnet.book.token("USDC").address
    to = "0x000000000000000000000000000000000000dEaD"
    bal = sim.erc20_balance(usdc, trader)
    assert bal == devnet.balance(usdc, trader) > 0
    ok = sim.call(trader, usdc, bytes.fromhex(erc.encode_call("transfer", to, 5)[2:]))
    assert ok.success and ok.gas_used > 21_000 and len(ok.logs) == 1
    assert sim.erc20_balance(usdc, to) == 0  # reverted after the call
    bad = sim.call(trader, usdc, bytes.fromhex(erc.encode_call("transfer", to, bal + 1)[2:]))
    assert not bad.success and "exceeds balance" in bad.reason and bad.gas_used > 21_000
    kept = sim.call(trader, usdc, bytes.fromhex(erc.encode_call("transfer", to, 7)[2:]), commit=True)
    assert kept.success and sim.erc20_balance(usdc, to) == 7
    with pytest.raises(SimError):
        sim.view(usdc, bytes.fromhex("deadbeef"))


def test_decode_revert_forms() -> None:
    assert decode_revert(b"") == "reverted without data"
    assert decode_revert(bytes.fromhex("4e487b71") + (17).to_bytes(32, "big")) == "Panic(0x11)"
    assert decode_revert(bytes.fromhex("12345678")) == "0x12345678"


def test_fork_of_unreachable_rpc_is_a_clear_error() -> None:
    with pytest.raises(SimError, match="cannot fork"):
        ForkSim("http://127.0.0.1:9/", 1)


def test_views_do_not_warm_later_calls(devnet: Devnet) -> None:
    """A read before a simulated tx must not make the tx cheaper (pyrevm keeps warm slots across calls)."""
    erc = load("MintableERC20")
    trader = devnet.book.traders[1]
    usdc = devnet.book.token("USDC").address
    data = bytes.fromhex(erc.encode_call("transfer", "0x000000000000000000000000000000000000bEEF", 3)[2:])
    clean = ForkSim(devnet.node.http_url, "latest").call(trader, usdc, data)
    sim = ForkSim(devnet.node.http_url, "latest")
    sim.erc20_balance(usdc, trader)
    sim.erc20_balance(usdc, "0x000000000000000000000000000000000000bEEF")
    sim.call(trader, usdc, data)  # a reverted call before it must not warm anything either
    after = sim.call(trader, usdc, data)
    assert after.gas_used == clean.gas_used
