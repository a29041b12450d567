"""chains.send.signer: fast EIP-1559 / EIP-191 signing equals eth-account byte for byte; keys never shown."""

from __future__ import annotations

import copy
import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from chains.send.signer import KeyLoadError, Signer, rlp_encode

VECTORS = json.loads((Path(__file__).parents[2] / "data" / "eth_account_tx_vectors.json").read_text())
# anvil's first dev key (the well-known "test test ... junk" mnemonic); test-only.
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@pytest.mark.parametrize(
    "case", VECTORS["signed_eip1559"], ids=lambda c: f"nonce{c['nonce']}-al{'accessList' in c}"
)
def test_signed_vectors(case: dict[str, Any]) -> None:
    fields = {k: v for k, v in case.items() if k not in ("key", "signed")}
    signer = Signer(case["key"])
    out = signer.sign_eip1559(fields)
    assert out.raw_hex == case["signed"]
    ref = Account.sign_transaction(fields, case["key"])
    assert out.raw_transaction == bytes(ref.raw_transaction)
    assert out.hash == bytes(ref.hash)
    assert (out.r, out.s, out.v) == (ref.r, ref.s, ref.v)


@pytest.mark.parametrize("case", VECTORS["typed_eip1559"], ids=lambda c: c["expected_hash"][:10])
def test_typed_encoding_vectors(case: dict[str, Any]) -> None:
    from chains.send.signer import encode_eip1559_unsigned

    tx = case["transaction"]
    fields = encode_eip1559_unsigned({k: v for k, v in tx.items() if k not in ("v", "r", "s")})
    # upstream's expected_hash is TypedTransaction.hash(): the signing hash of the unsigned payload
    assert "0x" + keccak(b"\x02" + rlp_encode(fields)).hex() == case["expected_hash"]
    sig = [int(tx[k], 16) for k in ("v", "r", "s")]
    fields += [x.to_bytes((x.bit_length() + 7) // 8, "big") for x in sig]
    raw = b"\x02" + rlp_encode(fields)
    assert "0x" + raw.hex() == case["expected_raw_transaction"]


def test_vector_count() -> None:
    assert len(VECTORS["signed_eip1559"]) == 2 and len(VECTORS["typed_eip1559"]) == 3


_u256 = st.integers(0, 2**256 - 1)
_addr = st.binary(min_size=20, max_size=20)
_tx = st.fixed_dictionaries(
    {
        "chainId": st.integers(1, 2**64 - 1),
        "nonce": st.integers(0, 2**64 - 2),
        "maxPriorityFeePerGas": _u256,
        "maxFeePerGas": _u256,
        "gas": st.integers(0, 2**64 - 1),
        "value": _u256,
        "data": st.binary(max_size=300),
    },
    optional={
        "to": _addr.map(to_checksum_address),
        "accessList": st.lists(
            st.fixed_dictionaries(
                {
                    "address": _addr.map(lambda b: "0x" + b.hex()),
                    "storageKeys": st.lists(
                        st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()), max_size=3
                    ),
                }
            ),
            max_size=3,
        ),
    },
)


@given(tx=_tx, key=st.integers(1, 2**256 - 2**129))
def test_property_equals_eth_account(tx: dict[str, Any], key: int) -> None:
    keyhex = "0x" + key.to_bytes(32, "big").hex()
    tx = dict(tx, maxFeePerGas=max(tx["maxFeePerGas"], tx["maxPriorityFeePerGas"]))
    ours = Signer(keyhex).sign_eip1559(tx)
    ref = Account.sign_transaction(dict(tx, type=2), keyhex)
    assert ours.raw_transaction == bytes(ref.raw_transaction)
    assert ours.hash == bytes(ref.hash)


@given(item=st.recursive(st.binary(max_size=80), lambda c: st.lists(c, max_size=5), max_leaves=20))
def test_rlp_encoder_matches_pyrlp(item: Any) -> None:
    assert rlp_encode(item) == rlp.encode(item)


@given(text=st.text(max_size=200))
def test_eip191_equals_eth_account(text: str) -> None:
    ours = Signer(DEV_KEY).sign_message_eip191(text)
    assert ours == bytes(Account.sign_message(encode_defunct(text=text), DEV_KEY).signature)


def test_flashbots_signature_format() -> None:
    body = '{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[]}'
    header = Signer(DEV_KEY).flashbots_signature(body)
    addr, sig = header.split(":")
    assert addr == DEV_ADDR
    msg = encode_defunct(text="0x" + keccak(body.encode()).hex())
    assert Account.recover_message(msg, signature=bytes.fromhex(sig[2:])) == DEV_ADDR


def test_from_env_and_no_key_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEV_PRIVATE_KEY", DEV_KEY)
    s = Signer.from_env()
    assert s.address == DEV_ADDR
    assert not hasattr(Signer, "from_environment")  # the bots' keys come from the config (bots.app.keys)
    keybody = DEV_KEY[2:]
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr(vars(s)) if hasattr(s, "__dict__") else ""):
        assert keybody not in text.lower()
    assert repr(s) == f"Signer(address={DEV_ADDR})"
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        copy.deepcopy(s)
    bad = "0x" + "zz" * 32
    with pytest.raises(KeyLoadError) as exc:
        Signer(bad)
    assert "zz" not in str(exc.value)
    with pytest.raises(KeyLoadError):
        Signer.from_env(environ={})


def test_from_keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keystore = Account.encrypt(DEV_KEY, "hunter2", kdf="scrypt", iterations=2)  # cheap KDF for the test
    path = tmp_path / "key.json"
    path.write_text(json.dumps(keystore))
    assert Signer.from_keystore(path, "hunter2").address == DEV_ADDR
    monkeypatch.setenv("KS_PATH", str(path))
    monkeypatch.setenv("KS_PASSWORD", "hunter2")
    assert Signer.from_keystore_env("KS_PATH", "KS_PASSWORD").address == DEV_ADDR
    with pytest.raises(KeyLoadError) as exc:
        Signer.from_keystore(path, "wrong-pw-7c1e")
    assert DEV_KEY[2:] not in str(exc.value) and "wrong-pw-7c1e" not in str(exc.value)
    assert "wrong password" in str(exc.value)
    with pytest.raises(KeyLoadError, match="cannot read keystore"):
        Signer.from_keystore(tmp_path / "missing.json", "hunter2")


def test_rejects_non_type2_and_wrong_from() -> None:
    s = Signer(DEV_KEY)
    base = {
        "chainId": 1,
        "nonce": 0,
        "gas": 21000,
        "maxFeePerGas": 2,
        "maxPriorityFeePerGas": 1,
        "to": DEV_ADDR,
    }
    with pytest.raises(ValueError):
        s.sign_eip1559(dict(base, type=1))
    with pytest.raises(ValueError):
        s.sign_eip1559(dict(base, gasPrice=1))
    with pytest.raises(ValueError):
        s.sign_eip1559(dict(base, **{"from": "0x" + "00" * 20}))
    assert s.sign_eip1559(dict(base, **{"from": DEV_ADDR})).raw_transaction


def test_speed_report(capsys: pytest.CaptureFixture[str]) -> None:
    s = Signer(DEV_KEY)
    tx = {
        "chainId": 1,
        "nonce": 7,
        "gas": 200_000,
        "maxFeePerGas": 30 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "to": DEV_ADDR,
        "value": 10**18,
        "data": "0x" + "ab" * 68,
        "type": 2,
    }
    n = 300

    def per_call(fn: Any) -> float:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1e6

    fast = per_call(lambda: s.sign_eip1559(tx))
    ref = per_call(lambda: Account.sign_transaction(tx, DEV_KEY))
    fast_m = per_call(lambda: s.sign_message_eip191("0x" + "cd" * 32))
    ref_m = per_call(lambda: Account.sign_message(encode_defunct(text="0x" + "cd" * 32), DEV_KEY))
    with capsys.disabled():
        print(
            f"\n[signer] EIP-1559 tx: fast {fast:.0f} us vs eth-account {ref:.0f} us; "
            f"EIP-191 msg: fast {fast_m:.0f} us vs eth-account {ref_m:.0f} us"
        )
