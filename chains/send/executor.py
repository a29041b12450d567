"""The Python side of ``contracts/src/ArbExecutor.sol``: plans, calldata, deployment and transactions.

An :class:`ArbPlan` is one cycle of :class:`Hop` s (pools of the kinds whose registered entry has an executor hop
encoding, :attr:`chains.amm.registry.PoolProtocol.hop`: Uniswap V2 pairs and V3 pools) started with ``amount_in`` of
the first hop's input token, funded as :class:`Funding` says (own balance, a V2 flash swap, a V3 ``flash`` or an
Aave V3 ``flashLoanSimple``), with a ``min_profit`` the contract enforces (it reverts with
``InsufficientProfit``) and an optional coinbase tip. :func:`encode_plan` packs it into the compact byte format
of ``docs/executor.md``; :func:`encode_execute` prefixes the ``execute(bytes)`` call. The tip is paid out of the
start token's profit (unwrapped WETH, so a tipping plan must start with WETH) and counted against ``min_profit``;
a V2 flash swap repays the lender pair's own fee, carried in the plan (``Funding.fee_bps``)::

    from chains.send.executor import ArbPlan, Funding, FundingMode, Hop, deploy_executor, build_execute_tx

    executor = deploy_executor(node, owner, weth=book.weth, aave_pool=book.aave.pool)
    plan = ArbPlan(hops=(Hop(pair_a, PoolKind.V2, weth, usdc, 30, zero_for_one=True),
                         Hop(pool_b, PoolKind.V3, usdc, weth, 500, zero_for_one=False)),
                   amount_in=10**18, funding=Funding(FundingMode.AAVE_FLASH_LOAN), min_profit=1)
    tx = build_execute_tx(executor, plan, sender=owner, nonce=n, chain_id=31337, gas=600_000,
                          max_fee_per_gas=..., max_priority_fee_per_gas=...)

The exact repayment each lender asks (:func:`v2_flash_repay`, :func:`v3_flash_fee`, :func:`aave_flash_premium`) is
here too, so a caller predicts the profit to the wei. Bad plans raise :class:`PlanError` (a ``ValueError``) and
count in ``mevsuite_executor_plan_errors_total{reason}`` on the registry passed in. The committed artifact
``chains/data/ArbExecutor.json`` is rebuilt with ``python -m chains.send.executor export`` (runs ``forge build``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry, Counter

from chains.amm.registry import HopEncoding, HopParamError, protocol, protocols
from chains.kinds import PoolKind
from chains.node.anvil import AnvilNode, project_root

__all__ = [
    "ARTIFACT_PATH",
    "ERROR_SELECTORS",
    "EXECUTE_SELECTOR",
    "ArbPlan",
    "ExecutorArtifact",
    "ExecutorError",
    "Funding",
    "FundingMode",
    "Hop",
    "PlanError",
    "aave_flash_premium",
    "build_execute_tx",
    "decode_plan",
    "decode_revert",
    "deploy_executor",
    "encode_execute",
    "encode_plan",
    "export_artifact",
    "forge_binary",
    "load_artifact",
    "v2_flash_repay",
    "v3_flash_fee",
    "wait_receipt",
]

ARTIFACT_PATH = Path(__file__).resolve().parents[1] / "data" / "ArbExecutor.json"  # chains/data/
CONTRACTS_DIR = project_root() / "contracts"

UINT128_MAX = 2**128 - 1
UINT160_MAX = 2**160 - 1
MAX_HOPS = 255
HEADER_LEN = 70  # mode u8 | hops u8 | start token 20 | amountIn u128 | minProfit u128 | tipWei u128
LENDER_LEN = 20
LENDER_FEE_LEN = 2  # V2 flash swap only: the lender pair's fee in bps, u16
HOP_HEAD_LEN = 41  # flags u8 | pool 20 | tokenOut 20, then the kind's parameter (HopEncoding.param_bytes)
AMOUNT_LEN = 16
FLAG_KIND = 1  # the flags' kind bit: HopEncoding.flag (0 = V2, 1 = V3)
FLAG_ZERO_FOR_ONE = 2
FLAG_AMOUNT = 4
MODE_TOKEN1 = 0x80

EXECUTE_SELECTOR = keccak(text="execute(bytes)")[:4]

# Custom errors of ArbExecutor (selector -> signature), for readable reverts.
_ERRORS = [
    "NotOwner(address)",
    "UnexpectedCaller(address,address)",
    "BadInitiator(address)",
    "InsufficientProfit(int256,uint256)",
    "BadPlan(uint256)",
    "RouteNotCycle(address,address)",
    "HopOutputTooLow(uint256,uint256,uint256)",
    "CallbackMissing(address)",
    "OverPayment(uint256,uint256)",
    "TransferFailed(address,address,uint256)",
    "TipFailed(uint256)",
    "BadPoolDelta(address,int256,int256)",
    "ShortPaid(uint256,uint256,uint256)",
    "TipNotInWeth(address)",
    "NotPendingOwner(address)",
    "ZeroAddress()",
    "NotAContract(address)",
]
ERROR_SELECTORS: dict[bytes, str] = {keccak(text=sig)[:4]: sig for sig in _ERRORS}


class ExecutorError(RuntimeError):
    """Deployment or artifact problems (missing artifact, forge failure, failed deployment)."""


class PlanError(ValueError):
    """A plan the contract would reject or misread: say what is wrong, before anything is sent."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class FundingMode(IntEnum):
    """Where the start amount comes from (the low 4 bits of the plan's first byte)."""

    OWN_BALANCE = 0
    V2_FLASH_SWAP = 1
    V3_FLASH = 2
    AAVE_FLASH_LOAN = 3


@dataclass(frozen=True, slots=True)
class Hop:
    """One swap of the cycle.

    ``fee``: V2 fee in bps (30 on Uniswap/Sushi; the contract uses it to price the hop from ``getReserves``);
    V3 fee in pips (500, 3000 ...; informational, the pool knows its fee). ``amount_out``: V2 — the exact output
    to ask the pair for (the contract then skips ``getReserves``; the pair reverts ``K`` if it is too much);
    V3 — the minimum output of this hop (else ``HopOutputTooLow``). ``sqrt_price_limit_x96`` (V3): 0 = none.
    """

    pool: str
    kind: PoolKind  # a kind whose registered entry has a hop encoding
    token_in: str
    token_out: str
    fee: int
    zero_for_one: bool
    amount_out: int | None = None
    sqrt_price_limit_x96: int = 0


@dataclass(frozen=True, slots=True)
class Funding:
    """``lender`` is the V2 pair / V3 pool lending the start token (modes V2_FLASH_SWAP, V3_FLASH; it must not
    be a pool of the route: it is locked during its callback); ``start_is_token1`` says which of its tokens the
    start token is. ``fee_bps`` (V2_FLASH_SWAP only, required there): the lender pair's swap fee in bps (30 on
    Uniswap V2 and Sushiswap, other forks differ) — the executor repays ``ceil(amount·10000/(10000−fee))``
    (:func:`v2_flash_repay`). Aave's pool is fixed at deployment."""

    mode: FundingMode
    lender: str | None = None
    start_is_token1: bool = False
    fee_bps: int | None = None


@dataclass(frozen=True, slots=True)
class ArbPlan:
    """``min_profit``: the least growth of the start token's balance after the loan and its fee are repaid and
    after ``tip_wei`` (else ``InsufficientProfit``). ``tip_wei`` goes to ``block.coinbase``, unwrapped from WETH
    out of that profit: a plan with a tip must start with WETH (else ``TipNotInWeth``)."""

    hops: tuple[Hop, ...]
    amount_in: int
    funding: Funding = Funding(FundingMode.OWN_BALANCE)
    min_profit: int = 0
    tip_wei: int = 0

    @property
    def start_token(self) -> str:
        return self.hops[0].token_in


# ------------------------------------------------------------------------------------------------ metrics
@dataclass(slots=True)
class _Metrics:
    plan_errors: Counter


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()


def _metrics(registry: CollectorRegistry | None) -> _Metrics:
    if registry is not None and registry in _METRICS:
        return _METRICS[registry]
    m = _Metrics(
        plan_errors=Counter(
            "mevsuite_executor_plan_errors_total",
            "Executor plans rejected before encoding, by reason",
            ["reason"],
            registry=registry,
        )
    )
    if registry is not None:
        _METRICS[registry] = m
    return m


def _fail(registry: CollectorRegistry | None, reason: str, message: str) -> PlanError:
    _metrics(registry).plan_errors.labels(reason=reason).inc()
    return PlanError(reason, message)


# ------------------------------------------------------------------------------------------------ encoding
def _addr_bytes(value: str, what: str, registry: CollectorRegistry | None) -> bytes:
    if not isinstance(value, str) or not is_address(value):
        raise _fail(registry, "bad_address", f"{what} is not an address: {value!r:.60}")
    return bytes.fromhex(value[2:])


def _uint(value: object, bits: int, what: str, registry: CollectorRegistry | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise _fail(registry, "bad_amount", f"{what} must be an integer in [0, 2**{bits}), not {value!r:.60}")
    return value


def encode_plan(plan: ArbPlan, *, registry: CollectorRegistry | None = None) -> bytes:
    """Pack ``plan`` into the contract's byte format (docs/executor.md), checking everything the contract
    would otherwise revert on or misread: a cycle of chained tokens, amounts in range, a lender when needed."""
    hops = plan.hops
    if not hops or len(hops) > MAX_HOPS:
        raise _fail(registry, "bad_route", f"a plan needs 1..{MAX_HOPS} hops, not {len(hops)}")
    if _uint(plan.amount_in, 128, "amount_in", registry) == 0:
        raise _fail(registry, "bad_amount", "amount_in must be positive")
    mode = plan.funding.mode
    if not isinstance(mode, FundingMode):
        raise _fail(registry, "bad_funding", f"unknown funding mode {mode!r}")
    start = _addr_bytes(plan.start_token, "start token", registry)
    mode_byte = int(mode)
    lender = b""
    if mode in (FundingMode.V2_FLASH_SWAP, FundingMode.V3_FLASH):
        if plan.funding.lender is None:
            raise _fail(registry, "bad_funding", f"funding mode {mode.name} needs a lender (pair or pool)")
        lender = _addr_bytes(plan.funding.lender, "lender", registry)
        if any(h.pool.lower() == plan.funding.lender.lower() for h in hops):
            raise _fail(
                registry, "bad_funding", "the lender cannot also be a pool of the route (it is locked)"
            )
        if plan.funding.start_is_token1:
            mode_byte |= MODE_TOKEN1
        if mode is FundingMode.V2_FLASH_SWAP:
            fee = plan.funding.fee_bps
            if not isinstance(fee, int) or isinstance(fee, bool) or not 0 <= fee < 10_000:
                raise _fail(
                    registry,
                    "bad_fee",
                    f"a V2 flash swap needs the lender pair's fee in bps [0, 10000) "
                    f"(Funding.fee_bps), not {fee!r}",
                )
            lender += fee.to_bytes(LENDER_FEE_LEN, "big")
    out = bytearray([mode_byte, len(hops)])
    out += start
    out += plan.amount_in.to_bytes(16, "big")
    out += _uint(plan.min_profit, 128, "min_profit", registry).to_bytes(16, "big")
    out += _uint(plan.tip_wei, 128, "tip_wei", registry).to_bytes(16, "big")
    out += lender
    token = plan.start_token.lower()
    for i, h in enumerate(hops):
        if h.token_in.lower() != token:
            raise _fail(
                registry,
                "bad_route",
                f"hop {i} starts with {h.token_in}, but the previous hop ends with {token}",
            )
        enc = _hop_encoding(h.kind)
        if enc is None:
            sendable = ", ".join(repr(str(p.kind)) for p in protocols() if p.hop is not None)
            raise _fail(registry, "bad_route", f"hop {i}: kind must be one of {sendable}, not {h.kind!r}")
        flags = enc.flag | (FLAG_ZERO_FOR_ONE if h.zero_for_one else 0)
        if h.amount_out is not None:
            flags |= FLAG_AMOUNT
        out.append(flags)
        out += _addr_bytes(h.pool, f"hop {i} pool", registry)
        out += _addr_bytes(h.token_out, f"hop {i} token_out", registry)
        try:
            out += enc.encode(h.fee, h.sqrt_price_limit_x96).to_bytes(enc.param_bytes, "big")
        except HopParamError as exc:
            raise _fail(registry, exc.reason, f"hop {i}: {exc}") from None
        if h.amount_out is not None:
            out += _uint(h.amount_out, 128, f"hop {i} amount_out", registry).to_bytes(16, "big")
        token = h.token_out.lower()
    if token != plan.start_token.lower():
        raise _fail(
            registry, "bad_route", f"the route ends with {token}, not the start token {plan.start_token}"
        )
    return bytes(out)


def _hop_encoding(kind: str) -> HopEncoding | None:
    """The executor's encoding of a hop through ``kind`` (``None``: unknown kind, or one the contract cannot swap)."""
    try:
        return protocol(kind).hop
    except (KeyError, TypeError):  # TypeError: not even a name (unhashable)
        return None


def _hop_kind(flags: int) -> tuple[PoolKind, HopEncoding]:
    """The kind a hop's flags byte names, with its encoding."""
    for p in protocols():
        if p.hop is not None and p.hop.flag == flags & FLAG_KIND:
            return PoolKind(p.kind), p.hop
    raise PlanError("bad_plan", f"no pool kind has the hop flags {flags & FLAG_KIND}")


def encode_execute(plan: ArbPlan, *, registry: CollectorRegistry | None = None) -> bytes:
    """Calldata of ``execute(bytes plan)``."""
    return EXECUTE_SELECTOR + abi_encode(["bytes"], [encode_plan(plan, registry=registry)])


def _cs(b: bytes) -> str:
    return str(to_checksum_address("0x" + b.hex()))


def decode_plan(data: bytes) -> ArbPlan:
    """Inverse of :func:`encode_plan` (for logs, tests and forensics). Raises :class:`PlanError`."""
    if len(data) < HEADER_LEN:
        raise PlanError("bad_plan", f"a plan is at least {HEADER_LEN} bytes, got {len(data)}")
    mode_byte, n = data[0], data[1]
    try:
        mode = FundingMode(mode_byte & 0x0F)
    except ValueError:
        raise PlanError("bad_funding", f"unknown funding mode {mode_byte & 0x0F}") from None
    start = _cs(data[2:22])
    amount_in = int.from_bytes(data[22:38], "big")
    min_profit = int.from_bytes(data[38:54], "big")
    tip = int.from_bytes(data[54:70], "big")
    off = HEADER_LEN
    funding = Funding(mode)
    if mode in (FundingMode.V2_FLASH_SWAP, FundingMode.V3_FLASH):
        lender = _cs(data[off : off + 20])
        off += LENDER_LEN
        fee_bps: int | None = None
        if mode is FundingMode.V2_FLASH_SWAP:
            if len(data) < off + LENDER_FEE_LEN:
                raise PlanError("bad_plan", "plan truncated in the lender's fee")
            fee_bps = int.from_bytes(data[off : off + LENDER_FEE_LEN], "big")
            off += LENDER_FEE_LEN
        funding = Funding(mode, lender, bool(mode_byte & MODE_TOKEN1), fee_bps)
    hops: list[Hop] = []
    token = start
    for i in range(n):
        if len(data) < off + HOP_HEAD_LEN:
            raise PlanError("bad_plan", f"plan truncated in hop {i}")
        flags = data[off]
        kind, enc = _hop_kind(flags)
        pool, token_out = _cs(data[off + 1 : off + 21]), _cs(data[off + 21 : off + 41])
        end = off + HOP_HEAD_LEN + enc.param_bytes
        fee, limit = enc.decode(int.from_bytes(data[off + HOP_HEAD_LEN : end], "big"))
        amount: int | None = None
        if flags & FLAG_AMOUNT:
            amount = int.from_bytes(data[end : end + AMOUNT_LEN], "big")
            end += AMOUNT_LEN
        if len(data) < end:
            raise PlanError("bad_plan", f"plan truncated in hop {i}")
        hops.append(Hop(pool, kind, token, token_out, fee, bool(flags & FLAG_ZERO_FOR_ONE), amount, limit))
        token, off = token_out, end
    return ArbPlan(tuple(hops), amount_in, funding, min_profit, tip)


def decode_revert(data: str | bytes) -> str:
    """A readable form of the executor's revert data, e.g. ``InsufficientProfit(-12, 1)``."""
    from eth_abi.abi import decode as abi_decode

    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
    sig = ERROR_SELECTORS.get(raw[:4])
    if sig is None:
        return "0x" + raw.hex()
    types = sig[sig.index("(") + 1 : -1].split(",")
    args = abi_decode(types, raw[4:])
    return f"{sig[: sig.index('(')]}({', '.join(str(a) for a in args)})"


# ------------------------------------------------------------------------------------------------ lenders' fees
def v2_flash_repay(amount: int, fee_bps: int) -> int:
    """What the executor pays a V2 pair with a ``fee_bps`` swap fee back for borrowing ``amount`` (same token):
    ``ceil(amount*10000/(10000-fee_bps))``, the least the pair's K check accepts (``ceil(amount*1000/997)`` at
    Uniswap's 30 bps)."""
    if not 0 <= fee_bps < 10_000:
        raise ValueError(f"a V2 fee is in bps [0, 10000), not {fee_bps}")
    keep = 10_000 - fee_bps
    return (amount * 10_000 + keep - 1) // keep


def v3_flash_fee(amount: int, fee_pips: int) -> int:
    """``UniswapV3Pool.flash`` fee: ``mulDivRoundingUp(amount, fee, 1e6)``."""
    return -(-amount * fee_pips // 1_000_000)


def aave_flash_premium(amount: int, premium_bps: int) -> int:
    """Aave V3 ``flashLoanSimple`` premium: ``amount.percentMul(premiumTotal)`` (half-up rounding)."""
    return (amount * premium_bps + 5_000) // 10_000


# ------------------------------------------------------------------------------------------------ artifact
@dataclass(frozen=True, slots=True)
class ExecutorArtifact:
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code
    deployed_bytecode: str
    compiler: dict[str, Any]

    def init_code(self, owner: str, weth: str, aave_pool: str) -> str:
        args = abi_encode(["address", "address", "address"], [owner, weth, aave_pool])
        return self.bytecode + args.hex()


@cache
def load_artifact(path: Path = ARTIFACT_PATH) -> ExecutorArtifact:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExecutorError(f"cannot read the executor artifact {path}: {exc}") from exc
    return ExecutorArtifact(doc["abi"], doc["bytecode"], doc["deployedBytecode"], doc["compiler"])


def forge_binary() -> Path:
    """forge from ``$MEVSUITE_FORGE`` or node_modules (npm ``@foundry-rs/forge``)."""
    env = os.environ.get("MEVSUITE_FORGE")
    cand = (
        Path(env)
        if env
        else project_root() / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
    )
    if not cand.is_file():
        raise ExecutorError(f"forge not found at {cand}; run `make setup` (npm ci) or set MEVSUITE_FORGE")
    return cand


def _compiler_settings() -> dict[str, Any]:
    text = (CONTRACTS_DIR / "foundry.toml").read_text()
    import tomllib

    prof = tomllib.loads(text)["profile"]["default"]
    keys = ("evm_version", "optimizer", "optimizer_runs", "via_ir", "bytecode_hash", "cbor_metadata")
    return {
        "solc": "0.8.37+commit.f401782d (npm solcjs, via contracts/solc-shim.js)",
        **{k: prof[k] for k in keys},
    }


def export_artifact(
    out_dir: Path | None = None, dest: Path | None = None, *, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Run ``forge build`` (into ``out_dir``/``cache_dir``, fresh temp dirs by default, never the source tree)
    and return the artifact document; write it to ``dest`` when given (``python -m chains.send.executor export``
    writes ``chains/data/ArbExecutor.json``)."""
    with tempfile.TemporaryDirectory(prefix="mevsuite-forge-") as tmp:
        out = out_dir or Path(tmp) / "out"
        cache_path = cache_dir or Path(tmp) / "cache"
        proc = subprocess.run(
            [str(forge_binary()), "build", "--out", str(out), "--cache-path", str(cache_path)],
            cwd=CONTRACTS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise ExecutorError(f"forge build failed:\n{proc.stdout}\n{proc.stderr}")
        built = json.loads((out / "ArbExecutor.sol" / "ArbExecutor.json").read_text())
    doc = {
        "contractName": "ArbExecutor",
        "source": "contracts/src/ArbExecutor.sol",
        "compiler": _compiler_settings(),
        "abi": built["abi"],
        "bytecode": built["bytecode"]["object"],
        "deployedBytecode": built["deployedBytecode"]["object"],
    }
    if dest is not None:
        dest.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


# ------------------------------------------------------------------------------------------------ chain
def _node(rpc: AnvilNode | str) -> AnvilNode:
    return rpc if isinstance(rpc, AnvilNode) else AnvilNode.attach(rpc)


def wait_receipt(node: AnvilNode, tx_hash: str, timeout: float = 10.0) -> dict[str, Any]:
    """The receipt of ``tx_hash`` on a node that mines (anvil may answer a send before the block is queryable)."""
    deadline = time.monotonic() + timeout
    while True:
        receipt: dict[str, Any] | None = node.rpc("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        if time.monotonic() > deadline:
            raise ExecutorError(f"no receipt for {tx_hash} after {timeout} s (is the node mining?)")
        time.sleep(0.002)


def deploy_executor(
    rpc: AnvilNode | str,
    owner: str,
    *,
    weth: str,
    aave_pool: str | None = None,
    sender: str | None = None,
    gas: int = 3_000_000,
) -> str:
    """Deploy the committed artifact from the unlocked account ``sender`` (default: ``owner``) on a dev node
    that mines (automine or someone mining); returns the contract address. ``aave_pool=None`` disables
    Aave funding. For a real chain, sign :meth:`ExecutorArtifact.init_code` yourself."""
    node = _node(rpc)
    for what, value in (("owner", owner), ("weth", weth), ("aave_pool", aave_pool or "0x" + "00" * 20)):
        if not is_address(value):
            raise ExecutorError(f"{what} is not an address: {value!r}")
    code = load_artifact().init_code(owner, weth, aave_pool or "0x" + "00" * 20)
    tx_hash = node.rpc("eth_sendTransaction", [{"from": sender or owner, "data": code, "gas": hex(gas)}])
    receipt = wait_receipt(node, str(tx_hash))
    if int(receipt["status"], 16) != 1 or not receipt.get("contractAddress"):
        raise ExecutorError(f"executor deployment failed: {receipt}")
    return str(to_checksum_address(receipt["contractAddress"]))


def build_execute_tx(
    executor: str,
    plan: ArbPlan,
    *,
    sender: str,
    nonce: int,
    chain_id: int,
    gas: int,
    max_fee_per_gas: int,
    max_priority_fee_per_gas: int,
    value: int = 0,
    registry: CollectorRegistry | None = None,
) -> dict[str, Any]:
    """The unsigned EIP-1559 transaction calling ``execute(plan)`` (ints, ``0x`` data), ready for a signer."""
    if not is_address(executor) or not is_address(sender):
        raise _fail(registry, "bad_address", f"executor/sender must be addresses: {executor!r}, {sender!r}")
    return {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "from": str(to_checksum_address(sender)),
        "to": str(to_checksum_address(executor)),
        "value": value,
        "gas": gas,
        "maxFeePerGas": max_fee_per_gas,
        "maxPriorityFeePerGas": max_priority_fee_per_gas,
        "data": "0x" + encode_execute(plan, registry=registry).hex(),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["export"]:
        print(
            "usage: python -m chains.send.executor export   # forge build + write chains/data/ArbExecutor.json",
            file=sys.stderr,
        )
        return 2
    doc = export_artifact(dest=ARTIFACT_PATH)
    print(f"wrote {ARTIFACT_PATH} ({(len(doc['bytecode']) - 2) // 2} bytes of init code)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
