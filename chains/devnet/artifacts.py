"""Compiled contracts from the npm packages: load waffle/hardhat artifacts, link libraries, encode calls.

The devnet deploys the *real* bytecode shipped in ``node_modules`` (Uniswap V2/V3, Aave V3, WETH9,
OpenZeppelin), never a recompiled copy, so init-code hashes and behaviour match mainnet. Two artifact
formats occur:

* waffle (``@uniswap/v2-*/build/X.json``): ``abi`` and ``bytecode`` as hex *without* ``0x``;
* hardhat (``@uniswap/v3-*``, ``@aave/core-v3``, ``@openzeppelin/contracts``): ``bytecode`` with ``0x`` and
  ``linkReferences`` ``{source: {Library: [{start, length}]}}`` giving the byte offsets of the 20-byte
  placeholders that must be replaced by deployed library addresses.

A tiny ABI layer (:meth:`Artifact.encode_call`, :meth:`Artifact.decode_output`) sits on eth-abi so the
deployer needs no web3 contract objects (fewer round trips, simpler types).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chains.node.anvil import project_root

__all__ = [
    "Artifact",
    "ArtifactError",
    "create2_address",
    "create_address",
    "load",
    "node_modules",
]


class ArtifactError(RuntimeError):
    """An artifact is missing, malformed, or cannot be linked/encoded."""


def node_modules() -> Path:
    """The ``node_modules`` folder holding the npm packages (``$MEVSUITE_NODE_MODULES`` overrides)."""
    env = os.environ.get("MEVSUITE_NODE_MODULES")
    if env:
        return Path(env)
    for base in (project_root(), Path.cwd()):
        cand = base / "node_modules"
        if (cand / "@uniswap").is_dir():
            return cand
    raise ArtifactError(
        "node_modules with @uniswap/* not found; run `make setup` (npm ci) or set MEVSUITE_NODE_MODULES"
    )


# Short names -> paths inside node_modules, so callers say load("UniswapV3Pool") instead of a long path.
_AAVE = "@aave/core-v3/artifacts/contracts/"
_V3C = "@uniswap/v3-core/artifacts/contracts/"
_V3P = "@uniswap/v3-periphery/artifacts/contracts/"
KNOWN: dict[str, str] = {
    "UniswapV2Factory": "@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "@uniswap/v2-core/build/UniswapV2Pair.json",
    "UniswapV2Router02": "@uniswap/v2-periphery/build/UniswapV2Router02.json",
    "WETH9": "@uniswap/v2-periphery/build/WETH9.json",
    "DeflatingERC20": "@uniswap/v2-periphery/build/DeflatingERC20.json",
    "UniswapV3Factory": _V3C + "UniswapV3Factory.sol/UniswapV3Factory.json",
    "UniswapV3Pool": _V3C + "UniswapV3Pool.sol/UniswapV3Pool.json",
    "SwapRouter": _V3P + "SwapRouter.sol/SwapRouter.json",
    "QuoterV2": _V3P + "lens/QuoterV2.sol/QuoterV2.json",
    "TickLens": _V3P + "lens/TickLens.sol/TickLens.json",
    "NonfungiblePositionManager": _V3P + "NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
    "ERC20PresetMinterPauser": "@openzeppelin/contracts/build/contracts/ERC20PresetMinterPauser.json",
    "MintableERC20": _AAVE + "mocks/tokens/MintableERC20.sol/MintableERC20.json",
    "PriceOracle": _AAVE + "mocks/oracle/PriceOracle.sol/PriceOracle.json",
    "PoolAddressesProvider": _AAVE
    + "protocol/configuration/PoolAddressesProvider.sol/PoolAddressesProvider.json",
    "ACLManager": _AAVE + "protocol/configuration/ACLManager.sol/ACLManager.json",
    "Pool": _AAVE + "protocol/pool/Pool.sol/Pool.json",
    "PoolConfigurator": _AAVE + "protocol/pool/PoolConfigurator.sol/PoolConfigurator.json",
    "DefaultReserveInterestRateStrategy": _AAVE
    + "protocol/pool/DefaultReserveInterestRateStrategy.sol/DefaultReserveInterestRateStrategy.json",
    "AToken": _AAVE + "protocol/tokenization/AToken.sol/AToken.json",
    "StableDebtToken": _AAVE + "protocol/tokenization/StableDebtToken.sol/StableDebtToken.json",
    "VariableDebtToken": _AAVE + "protocol/tokenization/VariableDebtToken.sol/VariableDebtToken.json",
    "AaveProtocolDataProvider": _AAVE + "misc/AaveProtocolDataProvider.sol/AaveProtocolDataProvider.json",
}


def _canonical_type(param: dict[str, Any]) -> str:
    """The ABI type string of one input/output, expanding tuples: ``(address,uint256)[]``."""
    typ = str(param["type"])
    if typ.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){typ[len('tuple') :]}"
    return typ


def _checksum(param: dict[str, Any], value: Any) -> Any:
    """Checksum decoded addresses (eth-abi returns them lower-case), through arrays and tuples."""
    typ = str(param["type"])
    if typ.endswith("]"):
        inner = {**param, "type": typ[: typ.rindex("[")]}
        return [_checksum(inner, v) for v in value]
    if typ == "address":
        return to_checksum_address(value)
    if typ == "tuple":
        return tuple(_checksum(c, v) for c, v in zip(param["components"], value, strict=True))
    return value


def _normalize(value: Any) -> Any:
    """eth-abi wants bytes for addresses-as-hex only when typed bytes; tuples for structs; keep ints."""
    if isinstance(value, dict):
        raise ArtifactError("pass struct arguments as tuples in ABI order, not dicts")
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_normalize(v) for v in value)
    return value


@dataclass(frozen=True)
class Artifact:
    """One contract: ABI, creation bytecode (hex with ``0x``) and where its library placeholders sit."""

    name: str
    path: Path
    abi: list[dict[str, Any]]
    bytecode: str
    link_references: dict[str, dict[str, list[dict[str, int]]]] = field(default_factory=dict)

    # ------------------------------------------------------------------ bytecode
    @property
    def needs_linking(self) -> bool:
        return bool(self.link_references)

    def libraries(self) -> list[tuple[str, str]]:
        """``(source_path, library_name)`` of every library this bytecode links, in a stable order."""
        return sorted((src, lib) for src, libs in self.link_references.items() for lib in libs)

    def linked(self, addresses: dict[str, str]) -> str:
        """Creation code with each placeholder replaced by ``addresses[library_name]`` (hex, ``0x``)."""
        code = self.bytecode
        for src, libs in self.link_references.items():
            for lib, refs in libs.items():
                addr = addresses.get(lib) or addresses.get(f"{src}:{lib}")
                if addr is None:
                    raise ArtifactError(f"{self.name}: library {src}:{lib} has no address")
                hexaddr = addr.lower().removeprefix("0x")
                if len(hexaddr) != 40:
                    raise ArtifactError(f"{self.name}: bad address {addr!r} for {lib}")
                for ref in refs:
                    # Offsets are in bytes of the code; in the hex string each byte is 2 chars after "0x".
                    pos = 2 + 2 * ref["start"]
                    code = code[:pos] + hexaddr + code[pos + 2 * ref["length"] :]
        if "__" in code:
            raise ArtifactError(f"{self.name}: unresolved library placeholder left in bytecode")
        return code

    def init_code(self, *args: Any, libraries: dict[str, str] | None = None) -> str:
        """Creation code plus ABI-encoded constructor arguments (hex, ``0x``)."""
        code = self.linked(libraries or {}) if self.needs_linking else self.bytecode
        if code in ("0x", ""):
            raise ArtifactError(f"{self.name} is abstract or an interface (no bytecode)")
        ctor = next((e for e in self.abi if e.get("type") == "constructor"), None)
        inputs = ctor["inputs"] if ctor else []
        if len(inputs) != len(args):
            raise ArtifactError(f"{self.name} constructor takes {len(inputs)} args, got {len(args)}")
        if not inputs:
            return code
        types = [_canonical_type(i) for i in inputs]
        return code + abi_encode(types, [_normalize(a) for a in args]).hex()

    def init_code_hash(self) -> str:
        """keccak256 of the creation code without constructor args (what CREATE2 factories commit to)."""
        return "0x" + keccak(hexstr=self.bytecode).hex()

    # ------------------------------------------------------------------ ABI
    def _function(self, name: str, nargs: int | None) -> dict[str, Any]:
        """The ABI entry for ``name`` (``"mint"`` or a full signature ``"mint(address,uint256)"``)."""
        if "(" in name:
            for e in self.abi:
                if e.get("type") == "function" and self.signature(e) == name:
                    return e
            raise ArtifactError(f"{self.name} has no function {name}")
        cands = [e for e in self.abi if e.get("type") == "function" and e.get("name") == name]
        if nargs is not None and len(cands) > 1:
            cands = [e for e in cands if len(e["inputs"]) == nargs]
        if len(cands) != 1:
            raise ArtifactError(f"{self.name}.{name}: {len(cands)} candidates (use the full signature)")
        return cands[0]

    @staticmethod
    def signature(entry: dict[str, Any]) -> str:
        return f"{entry['name']}({','.join(_canonical_type(i) for i in entry['inputs'])})"

    def selector(self, name: str, nargs: int | None = None) -> str:
        return "0x" + keccak(text=self.signature(self._function(name, nargs)))[:4].hex()

    def encode_call(self, name: str, *args: Any) -> str:
        """Calldata (hex, ``0x``) for ``name(*args)``; structs are tuples in ABI order."""
        entry = self._function(name, len(args))
        types = [_canonical_type(i) for i in entry["inputs"]]
        if len(types) != len(args):
            raise ArtifactError(f"{self.name}.{name} takes {len(types)} args, got {len(args)}")
        sel = keccak(text=self.signature(entry))[:4]
        return "0x" + (sel + abi_encode(types, [_normalize(a) for a in args])).hex()

    def decode_output(self, name: str, data: str | bytes, nargs: int | None = None) -> tuple[Any, ...]:
        """Decode the return data of ``name`` into a tuple (addresses checksummed)."""
        entry = self._function(name, nargs)
        raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else data
        types = [_canonical_type(o) for o in entry["outputs"]]
        values = abi_decode(types, raw)
        return tuple(_checksum(o, v) for o, v in zip(entry["outputs"], values, strict=True))

    def event_topic(self, name: str) -> str:
        for e in self.abi:
            if e.get("type") == "event" and e.get("name") == name:
                sig = f"{name}({','.join(_canonical_type(i) for i in e['inputs'])})"
                return "0x" + keccak(text=sig).hex()
        raise ArtifactError(f"{self.name} has no event {name}")


def _parse(name: str, path: Path) -> Artifact:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"artifact {name} not found at {path} (is node_modules installed?)") from None
    code = raw.get("bytecode", "")
    if isinstance(code, dict):  # some toolchains nest {"object": ...}
        code = code.get("object", "")
    code = str(code)
    if not code.startswith("0x"):
        code = "0x" + code
    return Artifact(
        name=name,
        path=path,
        abi=list(raw["abi"]),
        bytecode=code,
        link_references=dict(raw.get("linkReferences") or {}),
    )


@cache
def load(name: str) -> Artifact:
    """Load an artifact by short name (see ``KNOWN``) or by a path relative to ``node_modules``."""
    rel = KNOWN.get(name, name)
    return _parse(Path(rel).stem, node_modules() / rel)


@cache
def load_library(package_artifacts: str, source: str, lib: str) -> Artifact:
    """A linked library's artifact: hardhat keeps it at ``<artifacts>/<source>/<Lib>.json``."""
    return _parse(lib, node_modules() / package_artifacts / source / f"{lib}.json")


# ---------------------------------------------------------------------- addresses
def _rlp_bytes(b: bytes) -> bytes:
    if len(b) == 1 and b[0] < 0x80:
        return b
    if len(b) <= 55:
        return bytes([0x80 + len(b)]) + b
    ln = len(b).to_bytes((len(b).bit_length() + 7) // 8, "big")
    return bytes([0xB7 + len(ln)]) + ln + b


def create_address(sender: str, nonce: int) -> str:
    """The address a CREATE from ``sender`` at ``nonce`` deploys to: keccak(rlp([sender, nonce]))[12:]."""
    nonce_bytes = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big") if nonce else b""
    payload = _rlp_bytes(bytes.fromhex(sender.removeprefix("0x"))) + _rlp_bytes(nonce_bytes)
    if len(payload) > 55:  # cannot happen for (20-byte address, nonce < 2**64) but keep RLP honest
        raise ArtifactError("RLP list too long")
    return to_checksum_address(keccak(bytes([0xC0 + len(payload)]) + payload)[12:])


def create2_address(deployer: str, salt: bytes, init_code_hash: str) -> str:
    """EIP-1014: keccak(0xff ++ deployer ++ salt ++ init_code_hash)[12:]."""
    data = (
        b"\xff"
        + bytes.fromhex(deployer.removeprefix("0x"))
        + salt
        + bytes.fromhex(init_code_hash.removeprefix("0x"))
    )
    return to_checksum_address(keccak(data)[12:])
