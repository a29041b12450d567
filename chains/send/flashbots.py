"""Flashbots-style relay client: signed JSON-RPC to one or several builders, and bundle inclusion tracking.

* **Authentication.** Every request carries ``X-Flashbots-Signature: <checksummed address>:<0x signature>``,
  the EIP-191 ``personal_sign`` of the 66-character TEXT ``"0x" + hex(keccak256(body))`` over the exact body
  bytes sent (:func:`flashbots_signature`; :func:`recover_signature_header` is the relay side).  Signing goes
  through :class:`chains.send.signer.Signer` (coincurve, ~50 µs) -- checked against eth-account and the upstream
  vectors in the tests.
* **Fan-out.** :meth:`FlashbotsClient.send_bundle` signs one body and posts it to every configured builder
  URL concurrently; each builder gets its own :class:`BuilderResult` (ok / bundle hash / error / latency), so
  one slow or failing builder never delays or hides the others.
* **Errors, timeouts, retries.** A JSON-RPC error object (any HTTP status) or a 4xx answer raises
  :class:`RelayError` (``code``, ``message``, ``data``, ``http_status``) and is NEVER retried.  Transport
  failures (refused, reset, bad JSON, HTTP 5xx without a JSON-RPC error) and per-attempt timeouts are
  retried ``retries`` times with exponential backoff and jitter, then raise :class:`RelayTransportError` /
  :class:`RelayTimeoutError`.  Every attempt is bounded by ``timeout``: a hanging relay is a timeout error.
* **Hostile replies.** A reply is read up to ``max_reply_bytes`` and parsed with :func:`chains.wirejson.loads`
  (nesting depth ``max_json_depth``), so no builder can exhaust memory or crash the process with deeply nested
  JSON.  A reply over either limit raises :class:`RelayBadReplyError` at once (not retried); one that is not
  JSON-RPC is retried and raises it after the last attempt.  Both count as outcome ``bad_reply``.
* **Inclusion.** :class:`InclusionTracker` polls an RPC node (anything with ``async request(method, params)``,
  e.g. :class:`chains.node.rpc.RpcClient`) for the bundle's receipts and reports, per target block, landed / not
  landed / reverted / orphaned / pending.
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import aiohttp
from coincurve import PublicKey
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry, Counter, Histogram

from chains.promreg import per_registry
from chains.send.signer import Signer
from chains.wirejson import DEFAULT_MAX_DEPTH, WireJsonError, read_capped
from chains.wirejson import loads as wire_loads

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_TXS",
    "MAX_REPLY_BYTES",
    "MEV_SHARE_HINTS",
    "BlockInclusion",
    "BuilderResult",
    "BundleStatsV2",
    "CallBundleResult",
    "CallBundleTxResult",
    "FlashbotsClient",
    "FlashbotsError",
    "InclusionStatus",
    "InclusionTracker",
    "RelayBadReplyError",
    "RelayError",
    "RelayTimeoutError",
    "RelayTransportError",
    "bundle_hash",
    "bundle_replacement_uuid",
    "flashbots_signature",
    "personal_sign_text_hash",
    "recover_signature_header",
    "validate_mev_bundle",
]

MAX_BUNDLE_TXS = 100
MAX_BUNDLE_BYTES = 300_000
MAX_REPLY_BYTES = 8 * 2**20  # a relay's answer (an eth_callBundle of 100 txs is well under 1 MiB)
MEV_SHARE_HINTS = frozenset(
    {"calldata", "contract_address", "logs", "function_selector", "hash", "tx_hash", "full"}
)
_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_HEX_RE = re.compile(r"^0x([0-9a-fA-F]{2})*$")


# ---------------------------------------------------------------------------------------------------- errors
class FlashbotsError(Exception):
    """Base class of everything this module raises about a relay request."""


class RelayError(FlashbotsError):
    """The relay ANSWERED with an error: a JSON-RPC error object, or an HTTP 4xx (e.g. 403 bad signature).

    Never retried.  ``code`` is the JSON-RPC code, or ``-http_status`` when the body had none.
    """

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        *,
        http_status: int | None = None,
        method: str | None = None,
        builder: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(
            f"{builder or 'relay'}: {method or 'request'} failed: [{code}] {message}"
            + (f" (HTTP {http_status})" if http_status and http_status != 200 else "")
        )
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status
        self.method = method
        self.builder = builder
        self.attempts = attempts


class RelayTransportError(FlashbotsError, ConnectionError):
    """No usable answer after all attempts (connection refused/reset, HTTP 5xx, malformed reply)."""

    def __init__(self, description: str, *, attempts: int, builder: str | None = None) -> None:
        super().__init__(f"{builder or 'relay'}: {description} (after {attempts} attempt(s))")
        self.description = description
        self.attempts = attempts
        self.builder = builder


class RelayTimeoutError(RelayTransportError, TimeoutError):
    """Every attempt timed out (the relay accepted the connection but did not answer in time)."""


class RelayBadReplyError(RelayTransportError):
    """The relay's reply was refused: ``reason`` ``"too_large"`` / ``"too_deep"`` (over the client's limits; not
    retried) or ``"malformed"`` (not a JSON-RPC reply, after every attempt)."""

    def __init__(self, description: str, *, reason: str, attempts: int, builder: str | None = None) -> None:
        super().__init__(description, attempts=attempts, builder=builder)
        self.reason = reason


# ---------------------------------------------------------------------------------------------------- signing
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def personal_sign_text_hash(text: bytes) -> bytes:
    """EIP-191 version 0x45 hash of ``text`` (``keccak("\\x19Ethereum Signed Message:\\n" + len + text)``)."""
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(text)).encode() + text)


def _body_text(body: bytes) -> bytes:
    return b"0x" + keccak(body).hex().encode()  # the 0x prefix is part of the signed TEXT


def flashbots_signature(body: bytes, private_key: bytes | str) -> str:
    """The ``X-Flashbots-Signature`` header value for ``body`` (exact bytes) signed by ``private_key``."""
    return Signer(private_key).flashbots_signature(body)


def recover_signature_header(body: bytes, header: str | None) -> str | None:
    """Relay-side check: the checksummed address that signed ``body`` if ``header`` is a valid signature by
    the address it claims, else ``None`` (missing / malformed header, wrong signature, body mismatch)."""
    if not header or header.count(":") != 1:
        return None
    claimed, sig_hex = header.split(":")
    if not is_address(claimed) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", sig_hex):
        return None
    sig = bytes.fromhex(sig_hex[2:])
    r, s_, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if v >= 27:
        v -= 27
    if v not in (0, 1) or not (0 < r < _SECP256K1_N and 0 < s_ < _SECP256K1_N):
        return None
    try:  # coincurve: ~50 µs, against ~350 µs through eth-account (this is on the relay's accept path)
        pub = PublicKey.from_signature_and_message(
            sig[:64] + bytes([v]), personal_sign_text_hash(_body_text(body)), hasher=None
        )
    except Exception:  # not a point on the curve: not a signature
        return None
    recovered = to_checksum_address(keccak(pub.format(compressed=False)[1:])[12:])
    return recovered if recovered.lower() == claimed.lower() else None


def bundle_hash(txs: Iterable[bytes | str]) -> str:
    """Flashbots' bundle hash: keccak256 of the concatenated tx hashes."""
    return "0x" + keccak(b"".join(keccak(_raw_bytes(t)) for t in txs)).hex()


# A fixed namespace: the same (bot, chain, target block) gives the same UUID on every machine and every run.
BUNDLE_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/mevsuite/mevsuite#replacementUuid")


def bundle_replacement_uuid(bot: str, chain_id: int, target_block: int) -> str:
    """The ``replacementUuid`` of ``bot``'s bundle for ``target_block`` on ``chain_id``: ``uuid5`` of the three, so a
    bundle re-sent for the same block (a better plan, a retry, a restarted process) replaces the earlier one at the
    relay instead of competing with it.  Relays key replacements by (signing key, UUID)."""
    if not bot or chain_id <= 0 or target_block < 0:
        raise ValueError("bundle_replacement_uuid needs a bot name, a chain id and a block number")
    return str(uuid.uuid5(BUNDLE_UUID_NAMESPACE, f"{bot}/{chain_id}/{target_block}"))


# ---------------------------------------------------------------------------------------------------- helpers
def _raw_bytes(tx: bytes | str) -> bytes:
    if isinstance(tx, bytes | bytearray):
        return bytes(tx)
    if not isinstance(tx, str) or not _HEX_RE.fullmatch(tx if tx.startswith("0x") else "0x" + tx):
        raise ValueError(f"not a hex-encoded raw transaction: {tx!r:.40}")
    return bytes.fromhex(tx[2:] if tx.startswith("0x") else tx)


def _normalize_txs(txs: Sequence[bytes | str]) -> list[str]:
    if isinstance(txs, bytes | str):
        raise TypeError("txs must be a list of raw transactions")
    raws = [_raw_bytes(t) for t in txs]
    if not raws or any(not r for r in raws):
        raise ValueError("a bundle needs at least one non-empty transaction")
    if len(raws) > MAX_BUNDLE_TXS:
        raise ValueError(f"a bundle holds at most {MAX_BUNDLE_TXS} transactions (got {len(raws)})")
    if sum(len(r) for r in raws) > MAX_BUNDLE_BYTES:
        raise ValueError(f"a bundle holds at most {MAX_BUNDLE_BYTES} bytes of transactions")
    return ["0x" + r.hex() for r in raws]


def _block_hex(n: int | str) -> str:
    if isinstance(n, bool):
        raise TypeError("block number must be an int")
    if isinstance(n, int):
        if n < 0:
            raise ValueError("block number must be >= 0")
        return hex(n)
    if re.fullmatch(r"0x[0-9a-fA-F]+", n):
        return hex(int(n, 16))
    raise ValueError(f"not a block number: {n!r}")


def _hash(h: str | bytes) -> str:
    s = "0x" + bytes(h).hex() if isinstance(h, bytes | bytearray) else h
    if not _HASH_RE.fullmatch(s):
        raise ValueError(f"not a 32-byte hash: {h!r}")
    return s.lower()


def _to_int(v: Any) -> int:
    """Relays mix decimal strings, hex strings and numbers."""
    if isinstance(v, bool):
        raise TypeError("bool is not a quantity")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        return int(v, 16) if v.lower().startswith("0x") else int(v)
    raise TypeError(f"not a quantity: {v!r}")


def _opt_int(v: Any) -> int | None:
    return None if v is None else _to_int(v)


# ---------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class BuilderResult:
    """One builder's answer to a fanned-out request."""

    builder: str
    ok: bool
    bundle_hash: str | None  # from the builder's reply (None on error, or if it answered ``null``)
    result: Any  # the raw JSON-RPC ``result``
    error: FlashbotsError | None
    latency: float  # seconds from the first attempt to the final answer/error
    attempts: int


@dataclass(frozen=True, slots=True)
class CallBundleTxResult:
    tx_hash: str
    gas_used: int
    gas_price: int | None
    gas_fees: int | None
    coinbase_diff: int | None
    eth_sent_to_coinbase: int | None
    from_address: str | None
    to_address: str | None
    value: bytes | None  # return data of a successful tx
    error: str | None  # e.g. "execution reverted"
    revert: str | None  # revert reason / data as the relay reports it

    @property
    def reverted(self) -> bool:
        return self.error is not None or self.revert is not None

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> CallBundleTxResult:
        value = d.get("value")
        return cls(
            tx_hash=str(d["txHash"]).lower(),
            gas_used=_to_int(d.get("gasUsed", 0)),
            gas_price=_opt_int(d.get("gasPrice")),
            gas_fees=_opt_int(d.get("gasFees")),
            coinbase_diff=_opt_int(d.get("coinbaseDiff")),
            eth_sent_to_coinbase=_opt_int(d.get("ethSentToCoinbase")),
            from_address=d.get("fromAddress"),
            to_address=d.get("toAddress"),
            value=bytes.fromhex(value[2:]) if isinstance(value, str) and value.startswith("0x") else None,
            error=d.get("error") or None,
            revert=d.get("revert") or None,
        )


@dataclass(frozen=True, slots=True)
class CallBundleResult:
    bundle_hash: str | None
    bundle_gas_price: int
    coinbase_diff: int
    eth_sent_to_coinbase: int
    gas_fees: int
    state_block_number: int | None
    total_gas_used: int
    results: tuple[CallBundleTxResult, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def reverted(self) -> tuple[CallBundleTxResult, ...]:
        return tuple(r for r in self.results if r.reverted)

    @property
    def first_revert(self) -> CallBundleTxResult | None:
        return next((r for r in self.results if r.reverted), None)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> CallBundleResult:
        results = tuple(CallBundleTxResult.parse(r) for r in d.get("results") or ())
        return cls(
            bundle_hash=d.get("bundleHash"),
            bundle_gas_price=_to_int(d.get("bundleGasPrice", 0)),
            coinbase_diff=_to_int(d.get("coinbaseDiff", 0)),
            eth_sent_to_coinbase=_to_int(d.get("ethSentToCoinbase", 0)),
            gas_fees=_to_int(d.get("gasFees", 0)),
            state_block_number=_opt_int(d.get("stateBlockNumber")),
            total_gas_used=_to_int(d.get("totalGasUsed", sum(r.gas_used for r in results))),
            results=results,
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class BundleStatsV2:
    """``flashbots_getBundleStatsV2``: timestamps stay ISO strings as the relay sends them."""

    is_high_priority: bool
    is_simulated: bool
    simulated_at: str | None
    received_at: str | None
    considered_by_builders_at: tuple[tuple[str, str], ...]  # (builder pubkey, timestamp)
    sealed_by_builders_at: tuple[tuple[str, str], ...]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> BundleStatsV2:
        def pairs(key: str) -> tuple[tuple[str, str], ...]:
            return tuple((str(x.get("pubkey", "")), str(x.get("timestamp", ""))) for x in d.get(key) or ())

        return cls(
            is_high_priority=bool(d.get("isHighPriority", False)),
            is_simulated=bool(d.get("isSimulated", False)),
            simulated_at=d.get("simulatedAt"),
            received_at=d.get("receivedAt"),
            considered_by_builders_at=pairs("consideredByBuildersAt"),
            sealed_by_builders_at=pairs("sealedByBuildersAt"),
            raw=d,
        )


# ---------------------------------------------------------------------------------------------------- mev-share
def validate_mev_bundle(bundle: Mapping[str, Any], *, _depth: int = 0) -> dict[str, Any]:
    """Check an ``mev_sendBundle`` params object against the MEV-Share spec and return a normalised copy
    (raw tx bytes → hex, block numbers → hex).  Raises ``ValueError`` on anything a relay would reject."""
    if _depth > 3:
        raise ValueError("mev bundle nesting too deep")
    unknown = set(bundle) - {"version", "inclusion", "body", "validity", "privacy", "metadata"}
    if unknown:
        raise ValueError(f"unknown mev_sendBundle fields: {sorted(unknown)}")
    out: dict[str, Any] = {"version": bundle.get("version", "v0.1")}
    if out["version"] != "v0.1":
        raise ValueError(f"unsupported mev_sendBundle version {out['version']!r}")
    inc = bundle.get("inclusion")
    if not isinstance(inc, Mapping) or "block" not in inc:
        raise ValueError("inclusion.block is required")
    inclusion = {"block": _field(_block_hex, inc["block"], "inclusion.block")}
    if inc.get("maxBlock") is not None:
        inclusion["maxBlock"] = _field(_block_hex, inc["maxBlock"], "inclusion.maxBlock")
        if int(inclusion["maxBlock"], 16) < int(inclusion["block"], 16):
            raise ValueError("inclusion.maxBlock is before inclusion.block")
    out["inclusion"] = inclusion
    body = bundle.get("body")
    if not isinstance(body, Sequence) or isinstance(body, str | bytes) or not body:
        raise ValueError("body must be a non-empty list")
    items: list[dict[str, Any]] = []
    has_hash = False
    for i, item in enumerate(body):
        if not isinstance(item, Mapping):
            raise ValueError(f"body[{i}] must be an object")
        keys = set(item)
        if keys == {"hash"}:
            items.append({"hash": _field(_hash, item["hash"], f"body[{i}].hash")})
            has_hash = True
        elif keys in ({"tx"}, {"tx", "canRevert"}):
            can_revert = item.get("canRevert", False)
            if not isinstance(can_revert, bool):
                raise ValueError(f"body[{i}].canRevert must be a bool")
            raw = _field(_raw_bytes, item["tx"], f"body[{i}].tx")
            if not raw:
                raise ValueError(f"body[{i}].tx is empty")
            items.append({"tx": "0x" + raw.hex(), "canRevert": can_revert})
        elif keys == {"bundle"}:
            items.append({"bundle": validate_mev_bundle(item["bundle"], _depth=_depth + 1)})
        else:
            raise ValueError(f"body[{i}] must be exactly one of {{hash}}, {{tx, canRevert}}, {{bundle}}")
    out["body"] = items
    validity = bundle.get("validity")
    if validity is not None:
        out["validity"] = _validate_validity(validity, len(items))
    privacy = bundle.get("privacy")
    if privacy is not None:
        if has_hash:
            raise ValueError("bundles with {hash} body items may not set privacy")
        out["privacy"] = _validate_privacy(privacy)
    if bundle.get("metadata") is not None:
        if not isinstance(bundle["metadata"], Mapping):
            raise ValueError("metadata must be an object")
        out["metadata"] = dict(bundle["metadata"])
    return out


def _field(parse: Any, value: Any, where: str) -> Any:
    """``parse(value)``, with a failure reported as ``ValueError("<where>: ...")`` (the field named)."""
    try:
        return parse(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _list_of(value: Any, where: str, what: str) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ValueError(f"{where} must be a list of {what}")
    return value


def _percent(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100:
        raise ValueError(f"{where}.percent must be an integer in 0..100")
    return v


def _validate_validity(validity: Any, n_body: int) -> dict[str, Any]:
    if not isinstance(validity, Mapping) or set(validity) - {"refund", "refundConfig"}:
        raise ValueError("validity may only hold refund and refundConfig")
    out: dict[str, Any] = {}
    refund: list[dict[str, Any]] = []
    for j, r in enumerate(_list_of(validity.get("refund") or (), "validity.refund", "{bodyIdx, percent}")):
        if not isinstance(r, Mapping):
            raise ValueError(f"validity.refund[{j}] must be an object {{bodyIdx, percent}}")
        idx = r.get("bodyIdx")
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < n_body:
            raise ValueError(f"validity.refund[{j}].bodyIdx must index the body (0..{n_body - 1})")
        refund.append({"bodyIdx": idx, "percent": _percent(r.get("percent"), f"validity.refund[{j}]")})
    if sum(r["percent"] for r in refund) > 100:
        raise ValueError("validity.refund percents add up to more than 100")
    config: list[dict[str, Any]] = []
    for j, c in enumerate(
        _list_of(validity.get("refundConfig") or (), "validity.refundConfig", "{address, percent}")
    ):
        if not isinstance(c, Mapping):
            raise ValueError(f"validity.refundConfig[{j}] must be an object {{address, percent}}")
        addr = c.get("address")
        if not isinstance(addr, str) or not is_address(addr):
            raise ValueError(f"validity.refundConfig[{j}].address is not an address")
        config.append(
            {
                "address": to_checksum_address(addr),
                "percent": _percent(c.get("percent"), f"validity.refundConfig[{j}]"),
            }
        )
    if sum(c["percent"] for c in config) > 100:
        raise ValueError("validity.refundConfig percents add up to more than 100")
    if "refund" in validity:
        out["refund"] = refund
    if "refundConfig" in validity:
        out["refundConfig"] = config
    return out


def _validate_privacy(privacy: Any) -> dict[str, Any]:
    if not isinstance(privacy, Mapping) or set(privacy) - {"hints", "builders"}:
        raise ValueError("privacy may only hold hints and builders")
    out: dict[str, Any] = {}
    if privacy.get("hints") is not None:
        hints = list(_list_of(privacy["hints"], "privacy.hints", "hint names"))
        bad = [h for h in hints if not isinstance(h, str) or h not in MEV_SHARE_HINTS]
        if bad:
            raise ValueError(f"unknown privacy hints {bad} (allowed: {sorted(MEV_SHARE_HINTS)})")
        out["hints"] = hints
    if privacy.get("builders") is not None:
        builders = list(_list_of(privacy["builders"], "privacy.builders", "builder names"))
        if not all(isinstance(b, str) and len(b) > 0 for b in builders):
            raise ValueError("privacy.builders must be builder names")
        out["builders"] = builders
    return out


# ---------------------------------------------------------------------------------------------------- client
class _ClientMetrics:
    """Relay-client metric families, created once per registry (several clients may share one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "mevsuite_relay_client_requests_total",
            "Signed requests to relays/builders by outcome (ok, relay_error, timeout, transport, bad_reply)",
            ["builder", "method", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "mevsuite_relay_client_latency_seconds",
            "Time from the first attempt to the final answer or error",
            ["builder", "method"],
            registry=registry,
        )

    @classmethod
    def on(cls, registry: CollectorRegistry) -> _ClientMetrics:
        return per_registry(registry, f"{__name__}.{cls.__name__}", cls)


class FlashbotsClient:
    """Signed JSON-RPC to one relay or several builders (``builders``: name → URL, in priority order).

    Single-endpoint methods (:meth:`call_bundle`, :meth:`send_mev_bundle`, :meth:`get_bundle_stats_v2`) use
    the first builder unless ``builder=`` names another.  Use as ``async with FlashbotsClient(...)`` or call
    :meth:`close`.  Replies are read up to ``max_reply_bytes`` and parsed to at most ``max_json_depth`` levels.
    """

    def __init__(
        self,
        signer_key: bytes | str | Signer,
        builders: Mapping[str, str],
        *,
        timeout: float = 2.0,
        retries: int = 2,
        backoff: float = 0.05,
        backoff_max: float = 1.0,
        registry: CollectorRegistry | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        max_json_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        if not builders:
            raise ValueError("FlashbotsClient needs at least one builder URL")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("timeout must be > 0, retries and backoff >= 0")
        if max_reply_bytes < 1 or max_json_depth < 1:
            raise ValueError("max_reply_bytes and max_json_depth must be >= 1")
        self.max_reply_bytes = max_reply_bytes
        self.max_json_depth = max_json_depth
        # One key holder for the whole project: chains.send.signer.Signer (hides the key, signs at coincurve speed).
        self._signer = signer_key if isinstance(signer_key, Signer) else Signer(signer_key)
        self.builders: dict[str, str] = dict(builders)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._session: aiohttp.ClientSession | None = None
        self._ids = 0
        self._metrics = _ClientMetrics.on(registry) if registry is not None else None

    @property
    def address(self) -> str:
        """The signer (reputation) address."""
        return self._signer.address

    def signature_header(self, body: bytes) -> str:
        """``X-Flashbots-Signature`` value for exactly these body bytes."""
        return self._signer.flashbots_signature(body)

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300), trust_env=False
            )
        return self._session

    # ------------------------------------------------------------------ transport
    def encode(self, method: str, params: list[Any]) -> bytes:
        """The exact body bytes sent (compact JSON); the signature covers these bytes."""
        self._ids += 1
        return json.dumps(
            {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}, separators=(",", ":")
        ).encode()

    def _pick(self, builders: Iterable[str] | None) -> dict[str, str]:
        if builders is None:
            return self.builders
        picked = {}
        for name in builders:
            if name not in self.builders:
                raise KeyError(f"unknown builder {name!r} (configured: {sorted(self.builders)})")
            picked[name] = self.builders[name]
        if not picked:
            raise ValueError("no builders selected")
        return picked

    def _one(self, builder: str | None) -> tuple[str, str]:
        name = builder if builder is not None else next(iter(self.builders))
        return name, self._pick([name])[name]

    async def _post(
        self, name: str, url: str, method: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[Any, int]:
        """:meth:`_post_retrying`, counted in the metrics (outcome: ok / relay_error / timeout / transport /
        bad_reply)."""
        if self._metrics is None:
            return await self._post_retrying(name, url, method, body, headers)
        t0 = time.perf_counter()
        outcome = "ok"
        try:
            return await self._post_retrying(name, url, method, body, headers)
        except RelayTimeoutError:
            outcome = "timeout"
            raise
        except RelayError:
            outcome = "relay_error"
            raise
        except RelayBadReplyError:
            outcome = "bad_reply"
            raise
        except FlashbotsError:
            outcome = "transport"
            raise
        finally:
            self._metrics.requests.labels(builder=name, method=method, outcome=outcome).inc()
            self._metrics.latency.labels(builder=name, method=method).observe(time.perf_counter() - t0)

    async def _post_retrying(
        self, name: str, url: str, method: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[Any, int]:
        """POST with retries; returns (result, attempts).  RelayError is raised at once, never retried."""
        last: str = ""
        timed_out = bad_reply = False
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
            try:
                async with asyncio.timeout(self.timeout):
                    async with self._http().post(url, data=body, headers=headers) as resp:
                        status = resp.status
                        raw = await read_capped(resp, self.max_reply_bytes)
            except TimeoutError:
                last, timed_out, bad_reply = f"no answer within {self.timeout:g} s", True, False
                continue
            except WireJsonError as exc:  # a reply over the size limit: the same again on a retry
                raise RelayBadReplyError(
                    f"reply refused: {exc}", reason=exc.reason, attempts=attempt + 1, builder=name
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                last, timed_out, bad_reply = f"{type(exc).__name__}: {exc}", False, False
                continue
            text = raw.decode("utf-8", "replace")
            reply: Any = None
            parse_error: WireJsonError | None = None
            try:
                reply = (
                    wire_loads(raw, max_bytes=self.max_reply_bytes, max_depth=self.max_json_depth)
                    if raw.strip()
                    else None
                )
            except WireJsonError as exc:
                if exc.reason != "malformed":  # too deep: refused at once, never retried
                    raise RelayBadReplyError(
                        f"reply refused: {exc}", reason=exc.reason, attempts=attempt + 1, builder=name
                    ) from None
                parse_error = exc
            err = reply.get("error") if isinstance(reply, dict) else None
            if err is not None:  # the relay answered: never retry
                if isinstance(err, Mapping):
                    code = err.get("code")
                    raise RelayError(
                        code if isinstance(code, int) else -status,
                        str(err.get("message", err)),
                        err.get("data"),
                        http_status=status,
                        method=method,
                        builder=name,
                        attempts=attempt + 1,
                    )
                raise RelayError(
                    -status, str(err), http_status=status, method=method, builder=name, attempts=attempt + 1
                )
            if 400 <= status < 500:
                raise RelayError(
                    -status,
                    text.strip()[:500] or f"HTTP {status}",
                    http_status=status,
                    method=method,
                    builder=name,
                    attempts=attempt + 1,
                )
            if status >= 500:
                last, timed_out, bad_reply = f"HTTP {status}: {text.strip()[:200]}", False, False
                continue
            if not isinstance(reply, dict) or "result" not in reply:
                why = f"{parse_error}" if parse_error is not None else "not a JSON-RPC reply"
                last, timed_out, bad_reply = (
                    f"malformed reply (HTTP {status}, {why}): {text[:200]!r}",
                    False,
                    True,
                )
                continue
            return reply["result"], attempt + 1
        if bad_reply:
            raise RelayBadReplyError(last, reason="malformed", attempts=self.retries + 1, builder=name)
        cls = RelayTimeoutError if timed_out else RelayTransportError
        raise cls(last, attempts=self.retries + 1, builder=name)

    async def _fan_out(
        self, method: str, params: list[Any], targets: Mapping[str, str]
    ) -> dict[str, BuilderResult]:
        body = self.encode(method, params)
        headers = {"Content-Type": "application/json", "X-Flashbots-Signature": self.signature_header(body)}

        async def one(name: str, url: str) -> BuilderResult:
            t0 = time.perf_counter()
            try:
                result, attempts = await self._post(name, url, method, body, headers)
            except FlashbotsError as exc:
                attempts = getattr(exc, "attempts", 1)
                return BuilderResult(name, False, None, None, exc, time.perf_counter() - t0, attempts)
            bhash = result.get("bundleHash") if isinstance(result, Mapping) else None
            return BuilderResult(name, True, bhash, result, None, time.perf_counter() - t0, attempts)

        done = await asyncio.gather(*(one(n, u) for n, u in targets.items()))
        return {r.builder: r for r in done}

    async def request(self, method: str, params: list[Any], *, builder: str | None = None) -> Any:
        """One signed JSON-RPC request to one builder; returns ``result`` or raises."""
        name, url = self._one(builder)
        body = self.encode(method, params)
        headers = {"Content-Type": "application/json", "X-Flashbots-Signature": self.signature_header(body)}
        result, _ = await self._post(name, url, method, body, headers)
        return result

    # ------------------------------------------------------------------ methods
    async def send_bundle(
        self,
        txs: Sequence[bytes | str],
        block_number: int,
        *,
        min_timestamp: int | None = None,
        max_timestamp: int | None = None,
        reverting_tx_hashes: Iterable[str | bytes] = (),
        replacement_uuid: str | None = None,
        builders: Iterable[str] | None = None,
        share_with: Sequence[str] = (),
    ) -> dict[str, BuilderResult]:
        """``eth_sendBundle`` fanned out concurrently to ``builders`` (configured names; default all).

        ``share_with`` fills the request's own ``builders`` field (builder names a relay forwards to).
        """
        params = self.bundle_params(
            txs,
            block_number,
            min_timestamp=min_timestamp,
            max_timestamp=max_timestamp,
            reverting_tx_hashes=reverting_tx_hashes,
            replacement_uuid=replacement_uuid,
            share_with=share_with,
        )
        return await self._fan_out("eth_sendBundle", [params], self._pick(builders))

    @staticmethod
    def bundle_params(
        txs: Sequence[bytes | str],
        block_number: int,
        *,
        min_timestamp: int | None = None,
        max_timestamp: int | None = None,
        reverting_tx_hashes: Iterable[str | bytes] = (),
        replacement_uuid: str | None = None,
        share_with: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The ``eth_sendBundle`` params object (validated)."""
        params: dict[str, Any] = {"txs": _normalize_txs(txs), "blockNumber": _block_hex(block_number)}
        for key, ts in (("minTimestamp", min_timestamp), ("maxTimestamp", max_timestamp)):
            if ts is not None:
                if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
                    raise ValueError(f"{key} must be a non-negative int (seconds)")
                params[key] = ts
        if min_timestamp is not None and max_timestamp is not None and max_timestamp < min_timestamp:
            raise ValueError("maxTimestamp is before minTimestamp")
        reverting = [_hash(h) for h in reverting_tx_hashes]
        if reverting:
            params["revertingTxHashes"] = reverting
        if replacement_uuid is not None:
            params["replacementUuid"] = str(uuid.UUID(replacement_uuid))
        if share_with:
            params["builders"] = list(share_with)
        return params

    async def call_bundle(
        self,
        txs: Sequence[bytes | str],
        block_number: int,
        state_block_number: int | str = "latest",
        timestamp: int | None = None,
        *,
        builder: str | None = None,
    ) -> CallBundleResult:
        """``eth_callBundle``: simulate ``txs`` as block ``block_number`` on top of ``state_block_number``."""
        state = (
            state_block_number
            if isinstance(state_block_number, str) and not state_block_number.startswith("0x")
            else _block_hex(state_block_number)
        )
        params: dict[str, Any] = {
            "txs": _normalize_txs(txs),
            "blockNumber": _block_hex(block_number),
            "stateBlockNumber": state,
        }
        if timestamp is not None:
            params["timestamp"] = timestamp
        result = await self.request("eth_callBundle", [params], builder=builder)
        if not isinstance(result, Mapping):
            raise RelayError(
                -32603, f"unexpected eth_callBundle result {result!r:.200}", method="eth_callBundle"
            )
        return CallBundleResult.parse(result)

    async def send_mev_bundle(self, bundle: Mapping[str, Any], *, builder: str | None = None) -> str:
        """``mev_sendBundle`` (MEV-Share); ``bundle`` is the params object, validated first.  → bundle hash."""
        result = await self.request("mev_sendBundle", [validate_mev_bundle(bundle)], builder=builder)
        if not isinstance(result, Mapping) or not isinstance(result.get("bundleHash"), str):
            raise RelayError(
                -32603, f"unexpected mev_sendBundle result {result!r:.200}", method="mev_sendBundle"
            )
        return str(result["bundleHash"])

    async def cancel_bundle(
        self, replacement_uuid: str, *, builders: Iterable[str] | None = None
    ) -> dict[str, BuilderResult]:
        """``eth_cancelBundle`` fanned out to ``builders`` (default all)."""
        params = [{"replacementUuid": str(uuid.UUID(replacement_uuid))}]
        return await self._fan_out("eth_cancelBundle", params, self._pick(builders))

    async def get_bundle_stats_v2(
        self, bundle_hash: str, block_number: int, *, builder: str | None = None
    ) -> BundleStatsV2:
        params = [{"bundleHash": _hash(bundle_hash), "blockNumber": _block_hex(block_number)}]
        result = await self.request("flashbots_getBundleStatsV2", params, builder=builder)
        if not isinstance(result, Mapping):
            raise RelayError(
                -32603, f"unexpected stats result {result!r:.200}", method="flashbots_getBundleStatsV2"
            )
        return BundleStatsV2.parse(result)


# ---------------------------------------------------------------------------------------------------- inclusion
class _Rpc(Protocol):
    async def request(self, method: str, params: Any = None) -> Any: ...


class InclusionStatus(enum.StrEnum):
    PENDING = "pending"  # the target block is not mined yet
    LANDED = "landed"  # every bundle tx is in this (canonical) block and none reverted illegally
    REVERTED = "reverted"  # the txs are in this block but one not allowed to revert has status 0
    NOT_LANDED = "not_landed"  # the block is mined without the bundle (or with only part of it)
    ORPHANED = "orphaned"  # it landed in this block number, but that block was replaced by a reorg


@dataclass(frozen=True, slots=True)
class BlockInclusion:
    block_number: int
    status: InclusionStatus
    block_hash: str | None  # the canonical block's hash (None while pending)
    included: tuple[str, ...]  # bundle txs found in the canonical block
    reverted: tuple[str, ...]  # bundle txs with status 0 that were not allowed to revert
    orphaned_hash: str | None = None  # the replaced block's hash, for ORPHANED


class InclusionTracker:
    """Per target block: did the bundle land?  Stateful across :meth:`poll` calls, so a block seen holding
    the bundle and later replaced (reorg, or ``evm_revert`` on a devnet) is reported ``ORPHANED`` even when
    the node no longer returns the stale receipt."""

    def __init__(
        self,
        rpc: _Rpc,
        tx_hashes: Sequence[str | bytes],
        target_blocks: Iterable[int],
        *,
        reverting_tx_hashes: Iterable[str | bytes] = (),
    ) -> None:
        self.rpc = rpc
        self.tx_hashes = tuple(_hash(h) for h in tx_hashes)
        if not self.tx_hashes:
            raise ValueError("no tx hashes to track")
        self.target_blocks = tuple(sorted(set(target_blocks)))
        if not self.target_blocks:
            raise ValueError("no target blocks")
        self.reverting = frozenset(_hash(h) for h in reverting_tx_hashes)
        self._seen: dict[int, str] = {}  # block number -> hash of a block once seen holding the bundle

    async def _canonical_hash(self, number: int) -> str | None:
        block = await self.rpc.request("eth_getBlockByNumber", [hex(number), False])
        return str(block["hash"]).lower() if block else None

    async def poll(self) -> dict[int, BlockInclusion]:
        head = _to_int(await self.rpc.request("eth_blockNumber", []))
        receipts = await asyncio.gather(
            *(self.rpc.request("eth_getTransactionReceipt", [h]) for h in self.tx_hashes)
        )
        numbers = set(self.target_blocks) | {_to_int(r["blockNumber"]) for r in receipts if r}
        numbers = {n for n in numbers if n <= head}
        canon_list = await asyncio.gather(*(self._canonical_hash(n) for n in sorted(numbers)))
        canon = dict(zip(sorted(numbers), canon_list, strict=True))
        out: dict[int, BlockInclusion] = {}
        for n in self.target_blocks:
            if n > head or canon.get(n) is None:
                out[n] = BlockInclusion(n, InclusionStatus.PENDING, None, (), ())
                continue
            bhash = canon[n]
            included, bad = [], []
            for h, r in zip(self.tx_hashes, receipts, strict=True):
                if r and _to_int(r["blockNumber"]) == n and str(r["blockHash"]).lower() == bhash:
                    included.append(h)
                    if _to_int(r.get("status", 1)) == 0 and h not in self.reverting:
                        bad.append(h)
            if len(included) == len(self.tx_hashes):
                self._seen[n] = str(bhash)
                status = InclusionStatus.REVERTED if bad else InclusionStatus.LANDED
                out[n] = BlockInclusion(n, status, bhash, tuple(included), tuple(bad))
                continue
            stale = self._seen.get(n)
            if stale is None:  # a node that still serves receipts of a replaced block
                stale = next(
                    (
                        str(r["blockHash"]).lower()
                        for r in receipts
                        if r and _to_int(r["blockNumber"]) == n and str(r["blockHash"]).lower() != bhash
                    ),
                    None,
                )
            if stale is not None and stale != bhash:
                out[n] = BlockInclusion(
                    n, InclusionStatus.ORPHANED, bhash, tuple(included), tuple(bad), stale
                )
            else:
                out[n] = BlockInclusion(n, InclusionStatus.NOT_LANDED, bhash, tuple(included), tuple(bad))
        return out

    async def wait(
        self,
        *,
        poll_interval: float = 0.5,
        timeout: float = 60.0,  # noqa: ASYNC109
    ) -> dict[int, BlockInclusion]:
        """Poll until no target block is pending (or ``timeout`` passes; the last poll is returned)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = await self.poll()
            if (
                all(b.status is not InclusionStatus.PENDING for b in result.values())
                or loop.time() >= deadline
            ):
                return result
            await asyncio.sleep(min(poll_interval, max(0.0, deadline - loop.time())))
