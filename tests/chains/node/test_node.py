"""chains.node.anvil: anvil lifecycle and control calls against a real anvil."""

from __future__ import annotations

import pytest

from chains.node.anvil import AnvilNode, AnvilNotFoundError, NodeStartError, RpcCallError


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


def test_missing_binary_is_a_clear_error(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEVSUITE_ANVIL", "/nonexistent/anvil")
    with pytest.raises(AnvilNotFoundError, match="MEVSUITE_ANVIL"):
        AnvilNode.start()


def test_bad_flags_fail_loudly() -> None:
    with pytest.raises(NodeStartError, match="did not start"):
        AnvilNode.start(extra_args=["--no-such-flag"])


def test_impersonate_sends_from_any_address(anvil: AnvilNode) -> None:
    whale = "0x000000000000000000000000000000000000bEEF"
    to = "0x000000000000000000000000000000000000cafE"
    anvil.set_balance(whale, 10**18)
    with pytest.raises(RpcCallError, match=r"No Signer|unknown account|not available|sign"):
        anvil.rpc("eth_sendTransaction", [{"from": whale, "to": to, "value": hex(1000)}])
    anvil.impersonate(whale)
    # Mine explicitly: with automine anvil may answer eth_sendTransaction before the block is queryable.
    anvil.set_automine(False)
    tx = anvil.rpc("eth_sendTransaction", [{"from": whale, "to": to, "value": hex(1000)}])
    anvil.mine()
    assert anvil.rpc("eth_getTransactionReceipt", [tx])["status"] == "0x1"
    assert anvil.get_balance(to) == 1000
    anvil.stop_impersonating(whale)


def test_fork_at_block_sees_that_blocks_state(anvil: AnvilNode) -> None:
    # Real transactions (anvil_setBalance edits the head state in place, not a new block's).
    who = "0x2222222222222222222222222222222222222222"
    sender = anvil.accounts()[0]
    anvil.set_automine(False)
    anvil.rpc("eth_sendTransaction", [{"from": sender, "to": who, "value": hex(5)}])
    anvil.mine()  # block 1: 5
    anvil.rpc("eth_sendTransaction", [{"from": sender, "to": who, "value": hex(2)}])
    anvil.mine()  # block 2: 7
    assert anvil.block_number() == 2
    with AnvilNode.start(fork_url=anvil.http_url, fork_block=1) as fork:
        assert fork.block_number() == 1
        assert fork.get_balance(who) == 5
        assert fork.chain_id() == anvil.chain_id()
    with AnvilNode.start(fork_url=anvil.http_url) as fork_latest:
        assert fork_latest.get_balance(who) == 7


def test_automine_toggle_keeps_txs_pending(anvil: AnvilNode) -> None:
    anvil.set_automine(False)
    sender = anvil.accounts()[0]
    start = anvil.block_number()
    tx = anvil.rpc("eth_sendTransaction", [{"from": sender, "to": sender, "value": "0x1"}])
    assert anvil.block_number() == start
    pending = anvil.txpool_content()["pending"]
    assert any(tx in by_nonce["hash"] for txs in pending.values() for by_nonce in txs.values())
    anvil.mine()
    assert anvil.rpc("eth_getTransactionReceipt", [tx])["blockNumber"] == hex(start + 1)


def test_fork_url_is_not_in_argv_and_its_directory_goes_with_it(anvil: AnvilNode) -> None:
    # The upstream URL reaches anvil through its environment and a private foundry.toml alias, never argv.
    url = anvil.http_url + "/?apikey=NotInArgv123"  # anvil's server answers on / with any query
    with AnvilNode.start(fork_url=url, fork_block=0) as fork:
        assert fork.block_number() == 0 and fork.chain_id() == 31337
        cmdline = open(f"/proc/{fork.pid}/cmdline", "rb").read().decode()
        assert "NotInArgv123" not in cmdline and "--fork-url\0mevsuite_fork\0" in cmdline
        assert "NotInArgv123" not in repr(fork) + "\n".join(fork.log_tail(200))
        assert "fork_url='http://127.0.0.1:" in repr(fork) and "?***'" in repr(fork)
        workdir = fork._workdir
        assert workdir is not None and (workdir.stat().st_mode & 0o777) == 0o700
        # A fork keeps its upstream's chain id unless told over RPC.
        fork.rpc("anvil_setChainId", [31338])
        assert fork.chain_id() == 31338
        fork.reset(fork_url=url)  # over JSON-RPC, not argv
        assert fork.block_number() == anvil.block_number()
    assert not workdir.exists()
