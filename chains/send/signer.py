"""Transaction and message signing with keys that never leave this object.

* **Where keys come from.** This module only loads what it is given: :class:`Signer` takes a raw key,
  :meth:`Signer.from_keystore` decrypts an encrypted JSON keystore (eth-account ``Account.decrypt``),
  :meth:`Signer.from_env` / :meth:`Signer.from_keystore_env` read the variables they are told to (scripts and
  tests; ``from_env`` defaults to ``MEV_PRIVATE_KEY`` for them).  The bots never read ``MEV_*`` variables: their
  keys come from the configuration's ``[signer]`` section through :func:`bots.app.keys.signer_from_config`
  (docs/keys-and-modes.md), which refuses to fall back to a public key when a configured one is unusable.
* **Keys are not logged.** ``repr``/``str`` show only the address, pickling/copying is refused, and errors
  about a malformed key never quote it. The raw key is held only inside a coincurve ``PrivateKey``.
* **Fast path.** :meth:`Signer.sign_eip1559` RLP-encodes the EIP-1559 (type 2) payload with a small encoder,
  hashes it with keccak and signs with coincurve's ``sign_recoverable`` (RFC 6979, low-s), producing exactly the
  bytes eth-account's ``sign_transaction`` produces (~5x faster). :meth:`Signer.sign_message_eip191` does the
  same for ``encode_defunct(text=...)`` personal messages, the Flashbots ``X-Flashbots-Signature`` scheme
  (:meth:`Signer.flashbots_signature`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from coincurve import PrivateKey
from eth_hash.auto import keccak

from chains import wirejson

__all__ = [
    "KeyLoadError",
    "SignedTx",
    "Signer",
    "encode_eip1559_unsigned",
    "rlp_encode",
]

KEYSTORE_MAX_BYTES = 1 << 20  # an encrypted keystore is ~0.5 kB
ENV_PRIVATE_KEY = "MEV_PRIVATE_KEY"  # from_env's default, for scripts and tests only (the bots never read it)

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class KeyLoadError(ValueError):
    """A key could not be loaded. The message never contains key material."""


# ---------------------------------------------------------------------------------------------------- RLP
RlpItem = bytes | Sequence["RlpItem"]


def _length_prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes((offset + length,))
    lb = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(lb),)) + lb


def rlp_encode(item: RlpItem) -> bytes:
    """RLP of a byte string or a (nested) list of them (integers must already be minimal big-endian bytes)."""
    if isinstance(item, bytes | bytearray):
        if len(item) == 1 and item[0] < 0x80:
            return bytes(item)
        return _length_prefix(len(item), 0x80) + bytes(item)
    body = b"".join([rlp_encode(x) for x in item])
    return _length_prefix(len(body), 0xC0) + body


def _int_bytes(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative integer in transaction")
    return value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""


def _as_int(tx: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = tx.get(name, default)
    if value is None:
        raise ValueError(f"transaction field {name!r} is required")
    if isinstance(value, bool):
        raise TypeError(f"transaction field {name!r} must be an int, not bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16) if value[:2].lower() == "0x" else int(value)
    raise TypeError(f"transaction field {name!r} must be an int or hex string")


def _as_bytes(value: Any, name: str) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        h = value[2:] if value[:2].lower() == "0x" else value
        return bytes.fromhex(h)
    raise TypeError(f"transaction field {name!r} must be bytes or a hex string")


def _address(value: Any, name: str) -> bytes:
    raw = _as_bytes(value, name)
    if len(raw) != 20:
        raise ValueError(f"transaction field {name!r} must be a 20-byte address")
    return raw


def _access_list(value: Any) -> list[list[Any]]:
    out: list[list[Any]] = []
    for entry in value or ():
        if isinstance(entry, Mapping):
            addr, keys = entry["address"], entry.get("storageKeys", ())
        else:
            addr, keys = entry
        slots = []
        for k in keys:
            kb = _as_bytes(k, "storageKeys")
            if len(kb) != 32:
                raise ValueError("access-list storage keys must be 32 bytes")
            slots.append(kb)
        out.append([_address(addr, "accessList.address"), slots])
    return out


def encode_eip1559_unsigned(tx: Mapping[str, Any]) -> list[Any]:
    """The nine payload fields of a type 2 transaction, ready for RLP (signature fields are appended later)."""
    tx_type = tx.get("type")
    if tx_type is not None and _as_int(tx, "type") != 2:
        raise ValueError("sign_eip1559 only signs type 2 transactions")
    if "gasPrice" in tx:
        raise ValueError("an EIP-1559 transaction has maxFeePerGas/maxPriorityFeePerGas, not gasPrice")
    to = tx.get("to")
    return [
        _int_bytes(_as_int(tx, "chainId")),
        _int_bytes(_as_int(tx, "nonce")),
        _int_bytes(_as_int(tx, "maxPriorityFeePerGas")),
        _int_bytes(_as_int(tx, "maxFeePerGas")),
        _int_bytes(_as_int(tx, "gas")),
        _address(to, "to") if to not in (None, "", b"") else b"",
        _int_bytes(_as_int(tx, "value", 0)),
        _as_bytes(tx.get("data", tx.get("input")), "data"),
        _access_list(tx.get("accessList")),
    ]


# ---------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction: ``raw_transaction`` is what ``eth_sendRawTransaction`` takes."""

    raw_transaction: bytes
    hash: bytes
    r: int
    s: int
    v: int  # y-parity (0/1) for typed transactions

    @property
    def raw_hex(self) -> str:
        return "0x" + self.raw_transaction.hex()

    @property
    def hash_hex(self) -> str:
        return "0x" + self.hash.hex()


def _checksum(addr20: bytes) -> str:
    hexaddr = addr20.hex()
    digest = keccak(hexaddr.encode()).hex()
    return "0x" + "".join(
        c.upper() if int(d, 16) >= 8 else c for c, d in zip(hexaddr, digest[:40], strict=True)
    )


# ---------------------------------------------------------------------------------------------------- signer
class Signer:
    """One account's private key, usable only to sign. ``repr`` shows just the address."""

    __slots__ = ("__key", "address", "address_bytes")

    def __init__(self, private_key: bytes | str) -> None:
        try:
            raw = (
                _as_bytes(private_key, "private_key") if isinstance(private_key, str) else bytes(private_key)
            )
        except (ValueError, TypeError):
            raise KeyLoadError("private key is not valid hex") from None
        if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < _SECP256K1_N:
            raise KeyLoadError("private key must be 32 bytes in the secp256k1 range")
        self.__key = PrivateKey(raw)
        pub = self.__key.public_key.format(compressed=False)[1:]
        self.address_bytes: bytes = keccak(pub)[12:]
        self.address: str = _checksum(self.address_bytes)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_env(cls, var: str = ENV_PRIVATE_KEY, environ: Mapping[str, str] | None = None) -> Signer:
        env = os.environ if environ is None else environ
        value = env.get(var)
        if not value:
            raise KeyLoadError(f"environment variable {var} is not set")
        return cls(value.strip())

    @classmethod
    def from_keystore(cls, path: str | os.PathLike[str], password: str) -> Signer:
        """Decrypt a keystore; :class:`KeyLoadError` (never showing the password) if it cannot be read or opened."""
        from eth_account import Account

        try:
            keyfile = wirejson.load_file(path, max_bytes=KEYSTORE_MAX_BYTES)
        except OSError as exc:
            raise KeyLoadError(
                f"cannot read keystore {os.fspath(path)}: {exc.strerror or type(exc).__name__}"
            ) from None
        except ValueError:
            keyfile = None
        if not isinstance(keyfile, dict) or "crypto" not in {str(k).lower() for k in keyfile}:
            raise KeyLoadError(f"keystore {os.fspath(path)} is not an encrypted JSON keystore")
        try:
            raw = bytes(Account.decrypt(keyfile, password))
        except Exception:  # wrong password (MAC mismatch), unsupported KDF, damaged file ...
            raise KeyLoadError(
                f"cannot decrypt keystore {os.fspath(path)}: wrong password or damaged keystore"
            ) from None
        return cls(raw)

    @classmethod
    def from_keystore_env(
        cls, path_var: str, password_var: str, environ: Mapping[str, str] | None = None
    ) -> Signer:
        """:meth:`from_keystore` with the path and the password read from the variables named."""
        env = os.environ if environ is None else environ
        path = env.get(path_var)
        if not path:
            raise KeyLoadError(f"environment variable {path_var} is not set")
        password = env.get(password_var)
        if password is None:
            raise KeyLoadError(f"environment variable {password_var} is not set")
        return cls.from_keystore(path, password)

    # ------------------------------------------------------------------ no leaks
    def __repr__(self) -> str:
        return f"Signer(address={self.address})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("Signer holds a private key and cannot be pickled or copied")

    def __copy__(self) -> NoReturn:
        self.__reduce__()

    def __deepcopy__(self, memo: Any) -> NoReturn:
        self.__reduce__()

    # ------------------------------------------------------------------ signing
    def sign_hash(self, digest: bytes) -> tuple[int, int, int]:
        """(y_parity, r, s) of a 32-byte digest (RFC 6979 nonce, low-s), as eth-keys' coincurve backend does."""
        if len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        sig = self.__key.sign_recoverable(digest, hasher=None)
        return sig[64], int.from_bytes(sig[0:32], "big"), int.from_bytes(sig[32:64], "big")

    def sign_eip1559(self, tx: Mapping[str, Any]) -> SignedTx:
        """Sign a type 2 transaction (fields as eth-account takes them: ints or hex strings, ``data``/``accessList``)."""
        frm = tx.get("from")
        if frm is not None and _as_bytes(frm, "from") != self.address_bytes:
            raise ValueError("transaction 'from' does not match this signer")
        fields = encode_eip1559_unsigned(tx)
        y, r, s = self.sign_hash(keccak(b"\x02" + rlp_encode(fields)))
        fields += [_int_bytes(y), _int_bytes(r), _int_bytes(s)]
        raw = b"\x02" + rlp_encode(fields)
        return SignedTx(raw, keccak(raw), r, s, y)

    sign_transaction = sign_eip1559

    def sign_message_eip191(self, message: str | bytes) -> bytes:
        """65-byte ``r || s || v`` (v = 27/28) over ``"\\x19Ethereum Signed Message:\\n" + len + message``.

        Equal to ``Account.sign_message(encode_defunct(text=message)).signature`` (bytes: ``primitive=``).
        """
        body = message.encode() if isinstance(message, str) else bytes(message)
        digest = keccak(b"\x19Ethereum Signed Message:\n" + str(len(body)).encode() + body)
        sig = self.__key.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes((sig[64] + 27,))

    def flashbots_signature(self, body: str | bytes) -> str:
        """``X-Flashbots-Signature`` value: ``address:0x<sig>`` over the 0x-prefixed keccak hex of the JSON body."""
        raw = body.encode() if isinstance(body, str) else body
        sig = self.sign_message_eip191("0x" + keccak(raw).hex())
        return f"{self.address}:0x{sig.hex()}"
