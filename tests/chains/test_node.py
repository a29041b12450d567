"""chains.node: anvil lifecycle and control calls against a real anvil."""

from __future__ import annotations

import pytest

from chains.node import AnvilNode, AnvilNotFoundError, NodeStartError


def test_start_binds_free_port_and_stops(anvil: AnvilNode) -> None:
    assert anvil.port > 0 and anvil.running
    assert anvil.chain_id() == 31337
    other = AnvilNode.start()
    try:
        assert other.port != anvil.port
    finally:
        other.stop()
    assert not other.running


def test_snapshot_revert_mine_balance(anvil_nomine: AnvilNode) -> None:
    n = anvil_nomine
    assert n.automine() is False
    who = "0x00000000000000000000000000000000DeaDBeef"
    snap = n.snapshot()
    n.set_balance(who, 12345)
    n.mine(3)
    assert n.block_number() == 3
    assert n.get_balance(who) == 12345
    assert n.revert(snap)
    assert n.block_number() == 0
    assert n.get_balance(who) == 0


def test_storage_code_and_state_dump(anvil: AnvilNode) -> None:
    addr = "0x1111111111111111111111111111111111111111"
    n = anvil
    n.set_code(addr, "0x6001600055")
    n.set_storage_at(addr, 7, 2**255 + 9)
    assert n.get_storage_at(addr, 7) == 2**255 + 9
    blob = n.dump_state()
    fresh = AnvilNode.start()
    try:
        assert fresh.get_storage_at(addr, 7) == 0
        assert fresh.load_state(blob)
        assert fresh.get_storage_at(addr, 7) == 2**255 + 9
        assert fresh.rpc("eth_getCode", [addr, "latest"]) == "0x6001600055"
    finally:
        fresh.stop()


def test_missing_binary_is_a_clear_error(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEVSUITE_ANVIL", "/nonexistent/anvil")
    with pytest.raises(AnvilNotFoundError, match="MEVSUITE_ANVIL"):
        AnvilNode.start()


def test_bad_flags_fail_loudly() -> None:
    with pytest.raises(NodeStartError, match="did not start"):
        AnvilNode.start(extra_args=["--no-such-flag"])
