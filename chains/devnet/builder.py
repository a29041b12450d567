"""The devnet's block builder: anvil never mines by itself, this module produces every block.

anvil runs with ``--no-mining --order fifo``: transactions wait in its mempool until a block is mined. Each block
the builder produces holds, in this order,

1. the relay's BUNDLES targeting that block, ranked by bundle effective gas price, each re-simulated on top of the
   bundles placed before it (conflicting or reverting ones are dropped), each atomic and in its own order;
2. the PUBLIC pending transactions, in the FIFO order anvil itself would mine them (a public tx whose sender+nonce
   is taken by an included bundle tx is dropped);

and is then mined with one ``evm_mine`` at a deterministic timestamp (parent timestamp + ``block_time_s``).

How a block with bundles is built (anvil has no ``eth_callBundle``; everything below uses plain anvil RPCs):

* ``S`` = ``evm_snapshot`` of the parent state.  The public pool is read (``txpool_content``; raw bytes via
  ``eth_getRawTransactionByHash``, which anvil answers for pending txs) and one block of only the public txs is
  mined to learn anvil's own FIFO order, then ``evm_revert(S)``.  The pool is then emptied
  (``anvil_dropTransaction`` per hash; the txs are kept client-side).
* Every bundle is simulated in a TRIAL block: ``evm_revert(S)`` + new snapshot, send its raw txs, set the same
  timestamp, ``evm_mine``, read receipts and the coinbase balance.  A trial block has the same number, timestamp and
  base fee as the real block, so results are exact.  Score = (coinbase balance diff - the priority fees of txs that
  are also in the public mempool) / (gas used by the other txs) — the coinbase diff counts priority fees AND direct
  ``block.coinbase.transfer`` payments.
* Re-simulation in rank order: the trial of bundle k contains the kept bundles 1..k-1 and then bundle k, in one
  block.  Bundle k is kept only if every tx of the prefix and of k is mined in that exact order and none of k's
  txs reverts outside ``reverting_tx_hashes``.
* The real block: ``evm_revert(S)`` (no snapshot left behind), send the kept bundles' txs, then the public txs (one
  ordered JSON-RPC batch; anvil keeps batch order, and the builder checks the mined order), one ``evm_mine``.

Transactions that arrive while a block is being built are rescued from the pool (or from a trial block) and sent
after the public txs of the same block, so nothing is lost.  All RPC goes through ``BlockBuilder._call`` /
``_batch`` over :class:`AsyncJsonRpc`, a thin adapter on the project's :class:`chains.node.rpc.RpcClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import aiohttp
from eth_utils.crypto import keccak

from chains.node.anvil import AnvilNode, RpcCallError
from chains.node.rpc import RpcClient, RpcError
from chains.send.flashbots import bundle_hash  # the one definition of Flashbots' bundle hash
from chains.send.gas import next_base_fee

__all__ = [
    "AsyncJsonRpc",
    "BlockBuilder",
    "BlockReport",
    "BuilderError",
    "BuilderStats",
    "Bundle",
    "BundleOutcome",
    "BundleSimulation",
    "BundleStatus",
    "DropReason",
    "Refund",
    "SimulationFailed",
    "TxSimulation",
    "bundle_hash",
]

log = logging.getLogger(__name__)


class BuilderError(RuntimeError):
    """The node did something the builder cannot work around (a snapshot that cannot be reverted ...)."""


class SimulationFailed(RuntimeError):
    """:meth:`BlockBuilder.simulate_bundle` could not run the bundle (a tx rejected or not mined)."""


class DropReason(enum.StrEnum):
    CONFLICT = (
        "conflict"  # valid alone, but not on top of the bundles ranked before it (nonce taken, state changed)
    )
    REVERTED = "reverted"  # a tx reverted that is not in reverting_tx_hashes
    EXPIRED = "expired"  # its target block has passed, or the block timestamp is past max_timestamp
    TOO_EARLY = "too_early"  # the target block's timestamp is before min_timestamp
    SIMULATION_ERROR = (
        "simulation_error"  # rejected by the node or not mined (bad nonce, no funds, gas limit ...)
    )
    REPLACED = "replaced"  # a newer bundle with the same replacement uuid arrived
    CANCELLED = "cancelled"  # cancel_bundle(replacement_uuid)


class BundleStatus(enum.StrEnum):
    PENDING = "pending"
    INCLUDED = "included"
    DROPPED = "dropped"


def _tx_hash(raw: bytes) -> str:
    return "0x" + keccak(raw).hex()


@dataclass(frozen=True, slots=True)
class Refund:
    """MEV-Share refund: ``percent`` of a backrun bundle's refundable value, paid to ``recipient``.

    The refundable value is the bundle's coinbase payment minus the priority fees of its ``user_tx_hashes``
    (the user's own fees are not the backrunner's payment).  The builder pays it with a plain transfer from its
    coinbase at the END of the block that includes the bundle (priority fee 0, max fee = the block's base fee;
    the coinbase also pays that transfer's 21,000 gas), so the recipient receives exactly
    ``value * percent // 100`` wei."""

    recipient: str
    percent: int

    def __post_init__(self) -> None:
        if (
            isinstance(self.percent, bool)
            or not isinstance(self.percent, int)
            or not 0 <= self.percent <= 100
        ):
            raise ValueError("refund percent must be an int in 0..100")
        object.__setattr__(self, "recipient", self.recipient.lower())


@dataclass(frozen=True, slots=True)
class Bundle:
    """A bundle as a searcher (through the local relay) hands it to the builder."""

    txs: tuple[bytes, ...]  # raw signed transactions, in order
    block_number: int  # the one block it targets
    min_timestamp: int | None = None
    max_timestamp: int | None = None
    reverting_tx_hashes: frozenset[str] = frozenset()  # txs allowed to revert ("0x…" hashes, any case)
    replacement_uuid: str | None = None
    signer: str | None = None  # the searcher's identity (relay signature address) for stats
    refunds: tuple[Refund, ...] = ()  # MEV-Share: paid from the coinbase at the end of the including block
    user_tx_hashes: frozenset[str] = (
        frozenset()
    )  # users' txs carried by a backrun (not part of the refund base)
    received_at: float | None = None  # wall-clock time the relay received it (default: submit time)

    def __post_init__(self) -> None:
        if not self.txs:
            raise ValueError("a bundle needs at least one transaction")
        if any(not isinstance(t, bytes | bytearray) or not t for t in self.txs):
            raise ValueError("bundle txs must be non-empty raw bytes")
        object.__setattr__(self, "txs", tuple(bytes(t) for t in self.txs))
        object.__setattr__(
            self, "reverting_tx_hashes", frozenset(h.lower() for h in self.reverting_tx_hashes)
        )
        object.__setattr__(self, "user_tx_hashes", frozenset(h.lower() for h in self.user_tx_hashes))
        if sum(r.percent for r in self.refunds) > 100:
            raise ValueError("refund percents add up to more than 100")

    @property
    def tx_hashes(self) -> tuple[str, ...]:
        return tuple(_tx_hash(raw) for raw in self.txs)

    @property
    def bundle_hash(self) -> str:
        return bundle_hash(self.txs)


@dataclass(frozen=True, slots=True)
class BundleOutcome:
    """What happened to one bundle. ``status`` is final unless PENDING."""

    bundle_hash: str
    status: BundleStatus
    target_block: int
    signer: str | None = None
    replacement_uuid: str | None = None
    tx_hashes: tuple[str, ...] = ()
    block_number: int | None = None  # the block it was included in
    block_hash: str | None = None
    position: int | None = None  # index in the block of its first tx
    reason: DropReason | None = None
    detail: str = ""
    gas_used: int = 0  # from the (standalone) simulation, or the real receipts once included
    coinbase_payment: int = 0  # wei: priority fees + direct coinbase transfers, mempool txs' fees excluded
    effective_gas_price: int = 0  # coinbase_payment // gas used by its non-mempool txs (wei per gas)
    received_at: float | None = None  # wall-clock seconds (time.time()) of submission
    simulated_at: float | None = None  # its first (standalone) trial simulation finished
    considered_at: float | None = None  # a block build took it as eligible
    sealed_at: float | None = None  # the block holding it was mined
    refunds_paid: tuple[tuple[str, int, str], ...] = ()  # (recipient, wei, refund tx hash)


@dataclass(frozen=True, slots=True)
class BlockReport:
    """One produced block, as observers see it."""

    number: int
    hash: str
    timestamp: int
    tx_count: int
    gas_used: int
    included_bundles: tuple[str, ...]  # bundle hashes, in block order
    dropped_bundles: tuple[tuple[str, DropReason], ...]
    n_bundle_txs: int
    n_public_txs: int
    dropped_public_txs: tuple[
        tuple[str, str], ...
    ]  # (hash, why) — conflicts with bundles, rejected on resend
    build_seconds: float


@dataclass(slots=True)
class BuilderStats:
    blocks: int = 0
    bundles_received: int = 0
    bundles_included: int = 0
    bundles_dropped: dict[str, int] = field(default_factory=dict)
    public_txs: int = 0
    public_txs_dropped: int = 0
    rescued_txs: int = 0  # txs that arrived while a block was being built
    order_violations: int = 0  # real blocks whose bundle prefix was not as built (should stay 0)
    errors: int = 0  # failed build_block calls inside run()
    outcomes_lost: int = 0  # outcome queue full
    refunds_paid: int = 0  # MEV-Share refund transfers mined
    refund_failures: int = 0  # refund transfers the node rejected (coinbase without funds ...)
    last_build_seconds: float = 0.0
    max_build_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class TxSimulation:
    """One tx of :meth:`BlockBuilder.simulate_bundle` (the fields of an ``eth_callBundle`` result entry)."""

    tx_hash: str
    from_address: str
    to_address: str | None
    gas_used: int
    gas_fees: int  # priority fees paid to the coinbase: gas_used * (effective gas price - base fee)
    eth_sent_to_coinbase: int  # direct transfers to block.coinbase (successful call frames only)
    success: bool
    output: str  # return data (or revert data) as 0x-hex
    logs: tuple[dict[str, Any], ...] = ()

    @property
    def coinbase_diff(self) -> int:
        return self.gas_fees + self.eth_sent_to_coinbase

    @property
    def gas_price(self) -> int:
        return self.coinbase_diff // self.gas_used if self.gas_used else 0


@dataclass(frozen=True, slots=True)
class BundleSimulation:
    """A bundle mined in a throw-away block on top of the head (``eth_callBundle``'s numbers)."""

    bundle_hash: str
    block_number: int  # the simulated block (head + 1)
    state_block_number: int  # its parent
    timestamp: int
    base_fee: int
    coinbase: str
    coinbase_diff: int  # the coinbase balance change over the whole block (fees + direct payments)
    results: tuple[TxSimulation, ...]

    @property
    def total_gas_used(self) -> int:
        return sum(r.gas_used for r in self.results)

    @property
    def gas_fees(self) -> int:
        return sum(r.gas_fees for r in self.results)

    @property
    def eth_sent_to_coinbase(self) -> int:
        return sum(r.eth_sent_to_coinbase for r in self.results)

    @property
    def bundle_gas_price(self) -> int:
        return self.coinbase_diff // self.total_gas_used if self.total_gas_used else 0


def _sent_to(frame: dict[str, Any], coinbase: str) -> int:
    """Wei moved to ``coinbase`` by a callTracer frame and its children; reverted subtrees move nothing."""
    if frame.get("error"):
        return 0
    own = 0
    if str(frame.get("to") or "").lower() == coinbase and frame.get("type") != "DELEGATECALL":
        own = int(frame.get("value") or "0x0", 16)
    return own + sum(_sent_to(c, coinbase) for c in frame.get("calls") or ())


OutcomeListener = Callable[[BundleOutcome], Awaitable[object] | object]
BlockListener = Callable[[BlockReport], Awaitable[object] | object]


# ---------------------------------------------------------------------------------------------- RPC (swappable)
class AsyncJsonRpc:
    """The builder's and traffic generator's JSON-RPC: :class:`chains.node.rpc.RpcClient` on one endpoint, with errors
    as :class:`RpcCallError` (a batch returns a failed call's error in its slot instead of raising)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        # One retry round: anvil is local; control calls (evm_*, anvil_*) are never retried by the client anyway.
        self._client = RpcClient([url], timeout=timeout_s, retries=1)

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        try:
            return await self._client.request(method, params or [])
        except RpcError as exc:
            raise RpcCallError(method, exc.to_dict()) from exc

    async def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Results in call order; a failed call's slot holds its RpcCallError (not raised)."""
        if not calls:
            return []
        try:
            results = await self._client.batch(list(calls), return_exceptions=True)
        except RpcError as exc:  # the whole batch was refused
            raise RpcCallError("batch", exc.to_dict()) from exc
        return [
            RpcCallError(m, r.to_dict()) if isinstance(r, RpcError) else r
            for (m, _), r in zip(calls, results, strict=True)
        ]

    async def aclose(self) -> None:
        await self._client.close()


# ---------------------------------------------------------------------------------------------- internal records
@dataclass(slots=True)
class _Pending:
    bundle: Bundle
    hash: str
    tx_hashes: tuple[str, ...]
    seq: int
    received_at: float = 0.0
    simulated_at: float | None = None
    considered_at: float | None = None


@dataclass(slots=True)
class _PublicTx:
    hash: str
    sender: str
    nonce: int
    raw: (
        str | None
    )  # None when the tx has no real signature (impersonated sender): resent by eth_sendTransaction
    fields: dict[str, Any]

    def send_call(self) -> tuple[str, list[Any]]:
        if self.raw is not None:
            return ("eth_sendRawTransaction", [self.raw])
        return ("eth_sendTransaction", [_resend_fields(self.fields)])


def _resend_fields(tx: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "from",
        "to",
        "nonce",
        "gas",
        "value",
        "input",
        "maxFeePerGas",
        "maxPriorityFeePerGas",
        "accessList",
        "chainId",
    )
    out = {k: tx[k] for k in keep if tx.get(k) is not None}
    if tx.get("type") in ("0x0", "0x1") or "maxFeePerGas" not in tx:
        out.pop("maxFeePerGas", None)
        out.pop("maxPriorityFeePerGas", None)
        out["gasPrice"] = tx["gasPrice"]
    return out


@dataclass(slots=True)
class _Sim:
    ok: bool
    reason: DropReason | None = None
    detail: str = ""
    gas_used: int = 0
    payment: int = 0
    refundable: int = 0  # payment minus the priority fees of the bundle's user_tx_hashes
    score: Fraction = Fraction(0)
    senders: tuple[tuple[str, int], ...] = ()  # (sender, nonce) of the bundle's txs


@dataclass(slots=True)
class _Ctx:
    """State of one build_block call."""

    number: int
    timestamp: int
    snapshot: str | None
    bundle_txs: set[str]  # hashes of the eligible bundles' txs (found in the pool later: trial leftovers)
    public: dict[str, _PublicTx]  # every public tx taken out of the pool, by hash
    late: list[str]  # hashes of public txs that arrived while we built, in discovery order
    pool_read: bool = False  # the initial pool read is done; later finds are late arrivals
    coinbase: str = ""
    parent_balance: int = 0
    base_fee: int = 0  # of the block being built (learnt from a trial block)


def _err_text(err: RpcCallError) -> str:
    e = err.error
    return str(e.get("message", e)) if isinstance(e, dict) else str(e)


# ---------------------------------------------------------------------------------------------- the builder
class BlockBuilder:
    """Produces the devnet's blocks: ranked, re-simulated, atomic bundles first, then public txs FIFO, then mine.

    ``await build_block()`` makes one block (tests and the demo drive it step by step); ``await run()`` makes one
    every ``interval_s`` until :meth:`stop`.  Bundles come in through :meth:`submit_bundle`; their outcomes are
    kept (:meth:`outcome`), passed to listeners (:meth:`add_outcome_listener`) and to queues
    (:meth:`outcome_queue`).  Block observers: :meth:`add_block_listener`.
    """

    def __init__(
        self,
        node: AnvilNode | str,
        *,
        interval_s: float = 1.0,
        block_time_s: int | None = None,
        coinbase: str | None = None,
        rpc_timeout_s: float = 30.0,
        keep_outcomes: int = 10_000,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        url = node.http_url if isinstance(node, AnvilNode) else node
        self.url = url.replace("ws://", "http://").replace("wss://", "https://")
        self.interval_s = interval_s
        self.block_time_s = block_time_s if block_time_s is not None else max(1, round(interval_s))
        if self.block_time_s < 1:
            raise ValueError("block_time_s must be >= 1")
        self.coinbase = coinbase
        self.stats = BuilderStats()
        self._rpc = AsyncJsonRpc(self.url, rpc_timeout_s)
        # keyed by (bundle hash, target block): the same txs are often resubmitted for several blocks
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._by_uuid: dict[tuple[str | None, str], tuple[str, int]] = {}
        self._outcomes: dict[tuple[str, int], BundleOutcome] = {}
        self._keep_outcomes = keep_outcomes
        self._outcome_listeners: list[OutcomeListener] = []
        self._block_listeners: list[BlockListener] = []
        self._queues: list[asyncio.Queue[BundleOutcome]] = []
        self._undelivered: list[BundleOutcome] = []
        self._seq = itertools.count()
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._coinbase_set = False
        self._head: int | None = None
        self._next_base_fee = 0
        self._pre_build_hooks: list[Callable[[int], Awaitable[object] | object]] = []

    # ------------------------------------------------------------------ RPC seam
    async def _call(self, method: str, params: list[Any] | None = None) -> Any:
        return await self._rpc.call(method, params)

    async def _batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        return await self._rpc.batch(calls)

    async def request(self, method: str, params: list[Any] | None = None) -> Any:
        """One JSON-RPC call to the builder's node (for the relay's reads and set-up; never under the lock)."""
        return await self._call(method, params)

    async def aclose(self) -> None:
        self.stop()
        await self._rpc.aclose()

    async def __aenter__(self) -> BlockBuilder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ bundles in, outcomes out
    def submit_bundle(self, bundle: Bundle) -> str:
        """Queue a bundle for its target block; returns its bundle hash (with the block: the id of its outcome).

        The same txs for the same block while still pending are ignored (idempotent resubmission)."""
        h = bundle.bundle_hash
        key = (h, bundle.block_number)
        self.stats.bundles_received += 1
        if key in self._pending:
            return h
        pend = _Pending(
            bundle=bundle,
            hash=h,
            tx_hashes=bundle.tx_hashes,
            seq=next(self._seq),
            received_at=bundle.received_at if bundle.received_at is not None else time.time(),
        )
        if bundle.replacement_uuid is not None:
            ukey = (bundle.signer, bundle.replacement_uuid)
            old = self._by_uuid.get(ukey)
            if old is not None and old in self._pending:
                self._drop(self._pending.pop(old), DropReason.REPLACED, f"replaced by {h}")
            self._by_uuid[ukey] = key
        if self._head is not None and bundle.block_number <= self._head:
            self._drop(pend, DropReason.EXPIRED, f"target block {bundle.block_number} <= head {self._head}")
        else:
            self._pending[key] = pend
            self._record(self._outcome_of(pend, BundleStatus.PENDING))
        self._flush_nowait()
        return h

    def cancel_bundle(self, replacement_uuid: str, signer: str | None = None) -> bool:
        """Cancel the pending bundle submitted with this replacement uuid (and signer). True if one was pending."""
        key = self._by_uuid.pop((signer, replacement_uuid), None)
        if key is None or key not in self._pending:
            return False
        self._drop(self._pending.pop(key), DropReason.CANCELLED, "cancelled")
        self._flush_nowait()
        return True

    def outcome(self, bundle_hash: str, block_number: int | None = None) -> BundleOutcome | None:
        """The outcome of a bundle hash for its target block (default: the latest target it was sent for)."""
        h = bundle_hash.lower()
        if block_number is not None:
            return self._outcomes.get((h, block_number))
        found = [o for (oh, _), o in self._outcomes.items() if oh == h]
        return max(found, key=lambda o: o.target_block) if found else None

    def outcomes(self) -> list[BundleOutcome]:
        return list(self._outcomes.values())

    def pending_bundles(self) -> list[Bundle]:
        return [p.bundle for p in self._pending.values()]

    def add_outcome_listener(self, listener: OutcomeListener) -> None:
        """Called with every outcome record (PENDING on submit, then the final one); may be a coroutine fn."""
        self._outcome_listeners.append(listener)

    def add_block_listener(self, listener: BlockListener) -> None:
        self._block_listeners.append(listener)

    def add_pre_build_hook(self, hook: Callable[[int], Awaitable[object] | object]) -> None:
        """Called with the number of the block about to be built, before its bundles are chosen (the local relay
        uses it to hand in private transactions that nobody backran).  May submit bundles for that block."""
        self._pre_build_hooks.append(hook)

    def set_coinbase(self, address: str) -> None:
        """Use ``address`` as block.coinbase from the next block on (``anvil_setCoinbase``)."""
        self.coinbase = address
        self._coinbase_set = False

    @property
    def head(self) -> int | None:
        """The latest block number the builder has seen (None before its first build)."""
        return self._head

    def outcome_queue(self, maxsize: int = 10_000) -> asyncio.Queue[BundleOutcome]:
        """A queue receiving every final (INCLUDED / DROPPED) outcome; when full, new ones are counted as lost."""
        q: asyncio.Queue[BundleOutcome] = asyncio.Queue(maxsize)
        self._queues.append(q)
        return q

    def _outcome_of(self, p: _Pending, status: BundleStatus, **kw: Any) -> BundleOutcome:
        b = p.bundle
        return BundleOutcome(
            bundle_hash=p.hash,
            status=status,
            target_block=b.block_number,
            signer=b.signer,
            replacement_uuid=b.replacement_uuid,
            tx_hashes=p.tx_hashes,
            received_at=p.received_at,
            simulated_at=p.simulated_at,
            considered_at=p.considered_at,
            **kw,
        )

    def _drop(self, p: _Pending, reason: DropReason, detail: str, sim: _Sim | None = None) -> BundleOutcome:
        kw: dict[str, Any] = {}
        if sim is not None and sim.gas_used:
            kw = {
                "gas_used": sim.gas_used,
                "coinbase_payment": sim.payment,
                "effective_gas_price": int(sim.score),
            }
        out = self._outcome_of(p, BundleStatus.DROPPED, reason=reason, detail=detail, **kw)
        self.stats.bundles_dropped[reason.value] = self.stats.bundles_dropped.get(reason.value, 0) + 1
        self._record(out)
        return out

    def _record(self, out: BundleOutcome) -> None:
        self._outcomes[(out.bundle_hash, out.target_block)] = out
        while len(self._outcomes) > self._keep_outcomes:
            del self._outcomes[next(iter(self._outcomes))]
        self._undelivered.append(out)

    def _flush_nowait(self) -> None:
        """Deliver outcomes now if we are inside a running loop (submit/cancel are plain methods)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # delivered by the next build_block
        task = loop.create_task(self._deliver())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _deliver(self) -> None:
        items, self._undelivered = self._undelivered, []
        for out in items:
            if out.status != BundleStatus.PENDING:
                for q in self._queues:
                    try:
                        q.put_nowait(out)
                    except asyncio.QueueFull:
                        self.stats.outcomes_lost += 1
            for listener in list(self._outcome_listeners):
                await _notify(listener, out)

    # ------------------------------------------------------------------ the loop
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Build a block every ``interval_s`` (wall clock) until :meth:`stop`. Errors are logged, not raised."""
        self._stop.clear()
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.interval_s
        failures = 0
        while not self._stop.is_set():
            delay = next_at - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    break
            try:
                await self.build_block()
                failures = 0
            except (RpcCallError, BuilderError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                failures += 1
                self.stats.errors += 1
                log.warning("block build failed (%d in a row): %s", failures, exc)
            now = loop.time()
            backoff = min(5.0, self.interval_s * 2 ** min(failures, 6)) if failures else 0.0
            next_at = max(next_at + self.interval_s, now + backoff)

    # ------------------------------------------------------------------ one block
    async def build_block(self) -> BlockReport:
        """Build and mine exactly one block; returns its report (observers are notified before returning)."""
        async with self._lock:
            t0 = time.perf_counter()
            if self._pre_build_hooks:
                head = await self._call("eth_blockNumber")
                for hook in list(self._pre_build_hooks):
                    await _notify(hook, int(head, 16) + 1)
            report, included = await self._build()
            dt = time.perf_counter() - t0
            report = _with_time(report, dt)
            st = self.stats
            st.blocks += 1
            st.last_build_seconds = dt
            st.max_build_seconds = max(st.max_build_seconds, dt)
            st.public_txs += report.n_public_txs
            st.public_txs_dropped += len(report.dropped_public_txs)
            st.bundles_included += len(included)
            log.info(
                "block %d %s: bundles included=%d dropped=%d, public txs=%d (dropped %d), txs=%d gas=%d, %.1f ms",
                report.number,
                report.hash[:10],
                len(report.included_bundles),
                len(report.dropped_bundles),
                report.n_public_txs,
                len(report.dropped_public_txs),
                report.tx_count,
                report.gas_used,
                dt * 1e3,
            )
        await self._deliver()
        for listener in list(self._block_listeners):
            await _notify(listener, report)
        return report

    async def _build(self) -> tuple[BlockReport, list[str]]:
        if self.coinbase and not self._coinbase_set:
            await self._call("anvil_setCoinbase", [self.coinbase])
            self._coinbase_set = True
        parent = await self._call("eth_getBlockByNumber", ["latest", False])
        number = int(parent["number"], 16) + 1
        ts = int(parent["timestamp"], 16) + self.block_time_s
        self._head = number - 1
        self._next_base_fee = _child_base_fee(parent)

        # Which pending bundles are for this block; expired / out-of-window ones are dropped now.
        dropped: list[tuple[str, DropReason]] = []
        eligible: list[_Pending] = []
        for key, p in list(self._pending.items()):
            b, h = p.bundle, p.hash
            if b.block_number > number:
                continue
            del self._pending[key]
            if b.block_number < number:
                self._drop(p, DropReason.EXPIRED, f"target block {b.block_number} < {number}")
            elif b.max_timestamp is not None and ts > b.max_timestamp:
                self._drop(p, DropReason.EXPIRED, f"block timestamp {ts} > max_timestamp {b.max_timestamp}")
            elif b.min_timestamp is not None and ts < b.min_timestamp:
                self._drop(p, DropReason.TOO_EARLY, f"block timestamp {ts} < min_timestamp {b.min_timestamp}")
            else:
                p.considered_at = time.time()
                eligible.append(p)
                continue
            reason = self._outcomes[key].reason
            dropped.append((h, reason if reason is not None else DropReason.EXPIRED))
        eligible.sort(key=lambda p: p.seq)

        if not eligible:
            # Plain block: anvil mines its pool FIFO by itself.
            await self._set_next_block(ts)
            await self._call("evm_mine")
            blk = await self._call("eth_getBlockByNumber", ["latest", False])
            self._head = int(blk["number"], 16)
            return self._report(blk, [], dropped, 0, []), []
        return await self._build_with_bundles(number, ts, eligible, dropped)

    async def _build_with_bundles(
        self,
        number: int,
        ts: int,
        eligible: list[_Pending],
        dropped: list[tuple[str, DropReason]],
    ) -> tuple[BlockReport, list[str]]:
        ctx = _Ctx(number=number, timestamp=ts, snapshot=None, bundle_txs=set(), public={}, late=[])
        for p in eligible:
            ctx.bundle_txs.update(p.tx_hashes)
        ctx.coinbase = str(await self._call("eth_coinbase"))
        ctx.parent_balance = int(await self._call("eth_getBalance", [ctx.coinbase, hex(number - 1)]), 16)

        # 1. the public pool, and anvil's FIFO order of it (one trial block of only the public txs)
        ctx.snapshot = str(await self._call("evm_snapshot"))
        public_order: list[str] = []
        try:
            public_order = await self._public_order(ctx)
            ctx.late = [h for h in ctx.late if h not in public_order]

            # 2. standalone simulation of every eligible bundle → score
            scored: list[tuple[_Pending, _Sim]] = []
            for i, p in enumerate(eligible):
                if i:
                    await self._reset(ctx)
                sim = await self._trial(ctx, [], p)
                p.simulated_at = time.time()
                if sim.ok:
                    scored.append((p, sim))
                else:
                    self._drop(p, sim.reason or DropReason.SIMULATION_ERROR, sim.detail, sim)
                    dropped.append((p.hash, sim.reason or DropReason.SIMULATION_ERROR))
            scored.sort(key=lambda ps: (-ps[1].score, ps[0].seq))

            # 3. re-simulation in rank order on top of the bundles kept so far
            kept: list[tuple[_Pending, _Sim]] = []
            for i, (p, sim) in enumerate(scored):
                if i == 0:
                    kept.append((p, sim))  # its standalone trial IS the simulation on top of nothing
                    continue
                await self._reset(ctx)
                prefix = [tx for q, _ in kept for tx in q.bundle.txs]
                resim = await self._trial(ctx, prefix, p)
                if resim.ok:
                    sim.senders = resim.senders
                    kept.append((p, sim))
                else:
                    why = resim.reason if resim.reason == DropReason.SIMULATION_ERROR else DropReason.CONFLICT
                    self._drop(p, why, resim.detail or "conflicts with a higher-ranked bundle", sim)
                    dropped.append((p.hash, why))

            # 4. the real block
            await self._revert_final(ctx)
            await self._absorb_pool(ctx, drop=True)
            taken = {sn for _, s in kept for sn in s.senders}
            bundle_hashes = {h for p, _ in kept for h in p.tx_hashes}
            public_seq: list[_PublicTx] = []
            dropped_public: list[tuple[str, str]] = []
            for h in [
                *public_order,
                *[h for h in ctx.public if h not in public_order and h not in ctx.late],
                *ctx.late,
            ]:
                tx = ctx.public[h]
                if h in bundle_hashes:
                    continue  # the bundle carries this very tx (a backrun's victim): not a conflict
                if (tx.sender, tx.nonce) in taken:
                    dropped_public.append((h, "conflict: sender+nonce used by an included bundle"))
                    continue
                public_seq.append(tx)
            calls = [("eth_sendRawTransaction", ["0x" + raw.hex()]) for p, _ in kept for raw in p.bundle.txs]
            n_bundle_txs = len(calls)
            calls += [tx.send_call() for tx in public_seq]
            n_before_refunds = len(calls)
            refund_plan = await self._refund_plan(ctx, kept)
            calls += [call for _, _, call in refund_plan]
            results = await self._batch(calls)
            refund_tx: dict[str, list[tuple[str, int, str]]] = {}
            for i, res in enumerate(results):
                if i >= n_before_refunds:
                    bh, (recipient, amount), _ = refund_plan[i - n_before_refunds]
                    if isinstance(res, RpcCallError):
                        self.stats.refund_failures += 1
                        log.error(
                            "refund of %d wei to %s for bundle %s rejected: %s", amount, recipient, bh, res
                        )
                    else:
                        refund_tx.setdefault(bh, []).append((recipient, amount, str(res)))
                    continue
                if isinstance(res, RpcCallError):
                    if i < n_bundle_txs:
                        log.error("bundle tx rejected while building the real block: %s", res)
                    else:
                        dropped_public.append(
                            (public_seq[i - n_bundle_txs].hash, f"rejected: {_err_text(res)}")
                        )
            await self._set_next_block(ts)
            await self._call("evm_mine")
        except BaseException as exc:
            await self._recover(ctx, eligible, public_order, exc)
            raise

        blk = await self._call("eth_getBlockByNumber", ["latest", False])
        self._head = int(blk["number"], 16)
        mined: list[str] = list(blk["transactions"])
        expected = [h for p, _ in kept for h in p.tx_hashes]
        if mined[: len(expected)] != expected:
            self.stats.order_violations += 1
            log.error(
                "block %s: bundle prefix not as built (expected %d bundle txs first)",
                blk["number"],
                len(expected),
            )
        receipts = await self._batch([("eth_getTransactionReceipt", [h]) for h in expected])
        gas_by_tx = {
            h: int(r["gasUsed"], 16)
            for h, r in zip(expected, receipts, strict=True)
            if isinstance(r, dict) and r
        }
        included: list[str] = []
        sealed_at = time.time()
        for p, sim in kept:
            idx = mined.index(p.tx_hashes[0]) if p.tx_hashes[0] in mined else None
            if idx is None or any(h not in gas_by_tx for h in p.tx_hashes):
                self._drop(p, DropReason.SIMULATION_ERROR, "not mined in the real block", sim)
                dropped.append((p.hash, DropReason.SIMULATION_ERROR))
                continue
            self._record(
                self._outcome_of(
                    p,
                    BundleStatus.INCLUDED,
                    block_number=self._head,
                    block_hash=blk["hash"],
                    position=idx,
                    gas_used=sum(gas_by_tx[h] for h in p.tx_hashes),
                    coinbase_payment=sim.payment,
                    effective_gas_price=int(sim.score),
                    sealed_at=sealed_at,
                    refunds_paid=tuple(r for r in refund_tx.get(p.hash, ()) if r[2] in mined),
                )
            )
            included.append(p.hash)
        in_bundles = set(expected) | {r[2] for rs in refund_tx.values() for r in rs}
        self.stats.refunds_paid += sum(1 for rs in refund_tx.values() for r in rs if r[2] in mined)
        n_public = sum(1 for h in mined if h not in in_bundles)
        self.stats.rescued_txs += len(ctx.late)
        return self._report(blk, included, dropped, n_bundle_txs, dropped_public, n_public), included

    async def _recover(
        self, ctx: _Ctx, eligible: list[_Pending], public_order: list[str], exc: BaseException
    ) -> None:
        """A build failed half-way: back to the parent state, public txs back into the pool, bundles dropped."""
        log.error("block %d: build failed (%r); restoring the parent state and the mempool", ctx.number, exc)
        with contextlib.suppress(RpcCallError, aiohttp.ClientError, OSError, asyncio.TimeoutError):
            if ctx.snapshot is not None:
                await self._call("evm_revert", [ctx.snapshot])
                ctx.snapshot = None
            ours = [h for h in ctx.bundle_txs if h not in ctx.public]  # trial leftovers must not go public
            await self._batch([("anvil_dropTransaction", [h]) for h in ours])
            order = [*public_order, *[h for h in ctx.public if h not in public_order]]
            await self._batch([ctx.public[h].send_call() for h in order])
        for p in eligible:
            key = (p.hash, p.bundle.block_number)
            cur = self._outcomes.get(key)
            if cur is None or cur.status == BundleStatus.PENDING:
                self._drop(p, DropReason.SIMULATION_ERROR, f"builder error: {exc!r}")

    def _report(
        self,
        blk: dict[str, Any],
        included: list[str],
        dropped: list[tuple[str, DropReason]],
        n_bundle_txs: int,
        dropped_public: list[tuple[str, str]],
        n_public: int | None = None,
    ) -> BlockReport:
        txs = list(blk["transactions"])
        return BlockReport(
            number=int(blk["number"], 16),
            hash=blk["hash"],
            timestamp=int(blk["timestamp"], 16),
            tx_count=len(txs),
            gas_used=int(blk["gasUsed"], 16),
            included_bundles=tuple(included),
            dropped_bundles=tuple(dropped),
            n_bundle_txs=n_bundle_txs,
            n_public_txs=len(txs) - n_bundle_txs if n_public is None else n_public,
            dropped_public_txs=tuple(dropped_public),
            build_seconds=0.0,
        )

    async def _public_order(self, ctx: _Ctx) -> list[str]:
        """Take the public pool into ``ctx`` and learn anvil's FIFO order of it from one trial block of only the
        public txs (txs that slipped in are rescued); then back to the parent state with an empty pool."""
        public_order: list[str] = []
        first = await self._absorb_pool(ctx, drop=False)
        ctx.pool_read = True
        if first:
            await self._set_next_block(ctx.timestamp)
            await self._call("evm_mine")
            blk = await self._call("eth_getBlockByNumber", ["latest", False])
            public_order = [h for h in blk["transactions"] if h in ctx.public]
            mined_unknown = [h for h in blk["transactions"] if h not in ctx.public]
            await self._rescue_mined(ctx, mined_unknown)
            public_order += [h for h in mined_unknown if h in ctx.public]
        await self._reset(
            ctx
        )  # also takes leftovers (queued / did not fit) and late arrivals out of the pool
        return public_order

    async def _set_next_block(self, timestamp: int) -> None:
        """Timestamp and base fee of the next mined block (trial or real).  The base fee is pinned to the EIP-1559
        value of the real parent: anvil advances its own base-fee tracker on every mined block, trial blocks that
        are later reverted included, so without this the real block's base fee drifts ~12.5 % per trial."""
        await self._batch(
            [
                ("evm_setNextBlockTimestamp", [timestamp]),
                ("anvil_setNextBlockBaseFeePerGas", [hex(self._next_base_fee)]),
            ]
        )

    # ------------------------------------------------------------------ eth_callBundle
    async def simulate_bundle(
        self, txs: Sequence[bytes], *, timestamp: int | None = None
    ) -> BundleSimulation:
        """Mine ``txs`` alone in a throw-away block on top of the head (number head+1, the timestamp the builder's
        next block gets unless ``timestamp`` is given), read the receipts, traces and the coinbase balance, then
        revert: the chain and the public mempool are as before (public txs go back in their FIFO order).  Runs
        under the build lock, so it never interleaves with a block build.  Every tx may revert (reported per tx);
        a tx the node rejects or does not mine raises :class:`SimulationFailed`."""
        bundle = Bundle(txs=tuple(txs), block_number=0)
        hashes = bundle.tx_hashes
        async with self._lock:
            if self.coinbase and not self._coinbase_set:
                await self._call("anvil_setCoinbase", [self.coinbase])
                self._coinbase_set = True
            parent = await self._call("eth_getBlockByNumber", ["latest", False])
            number = int(parent["number"], 16) + 1
            ts = timestamp if timestamp is not None else int(parent["timestamp"], 16) + self.block_time_s
            self._next_base_fee = _child_base_fee(parent)
            ctx = _Ctx(number=number, timestamp=ts, snapshot=None, bundle_txs=set(hashes), public={}, late=[])
            ctx.coinbase = str(await self._call("eth_coinbase")).lower()
            ctx.parent_balance = int(await self._call("eth_getBalance", [ctx.coinbase, hex(number - 1)]), 16)
            ctx.snapshot = str(await self._call("evm_snapshot"))
            public_order: list[str] = []
            try:
                public_order = await self._public_order(ctx)
                pend = _Pending(
                    bundle=Bundle(txs=bundle.txs, block_number=number, reverting_tx_hashes=frozenset(hashes)),
                    hash=bundle.bundle_hash,
                    tx_hashes=hashes,
                    seq=-1,
                )
                sim = await self._trial(ctx, [], pend)
                if not sim.ok:
                    raise SimulationFailed(sim.detail or "bundle could not be simulated")
                calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", ["latest", True])]
                calls += [("eth_getTransactionReceipt", [h]) for h in hashes]
                calls += [("debug_traceTransaction", [h, {"tracer": "callTracer"}]) for h in hashes]
                calls.append(("eth_getBalance", [ctx.coinbase, "latest"]))
                out = await self._batch(calls)
                for item in out:
                    if isinstance(item, RpcCallError):
                        raise item
            finally:
                await self._restore_after_simulation(ctx, public_order)
        blk, n = out[0], len(hashes)
        receipts, traces, balance = out[1 : 1 + n], out[1 + n : 1 + 2 * n], int(out[-1], 16)
        base_fee = int(blk.get("baseFeePerGas") or "0x0", 16)
        results = []
        for h, rc, tr in zip(hashes, receipts, traces, strict=True):
            gas = int(rc["gasUsed"], 16)
            ok = int(rc["status"], 16) == 1
            results.append(
                TxSimulation(
                    tx_hash=h,
                    from_address=str(rc["from"]),
                    to_address=rc.get("to"),
                    gas_used=gas,
                    gas_fees=gas * (int(rc["effectiveGasPrice"], 16) - base_fee),
                    eth_sent_to_coinbase=_sent_to(tr, ctx.coinbase),
                    success=ok,
                    output=str(tr.get("output") or "0x"),
                    logs=tuple(rc.get("logs") or ()),
                )
            )
        return BundleSimulation(
            bundle_hash=bundle.bundle_hash,
            block_number=number,
            state_block_number=number - 1,
            timestamp=ts,
            base_fee=base_fee,
            coinbase=ctx.coinbase,
            coinbase_diff=balance - ctx.parent_balance,
            results=tuple(results),
        )

    async def _restore_after_simulation(self, ctx: _Ctx, public_order: list[str]) -> None:
        """Back to the parent state with the public txs back in the pool, in their FIFO order."""
        if ctx.snapshot is not None:
            snap, ctx.snapshot = ctx.snapshot, None
            if not await self._call("evm_revert", [snap]):
                raise BuilderError(f"evm_revert({snap}) failed: someone else reverted under the builder")
        await self._absorb_pool(ctx, drop=True)  # late arrivals, and any trial leftovers
        ours = [h for h in ctx.bundle_txs if h not in ctx.public]
        if ours:
            await self._batch([("anvil_dropTransaction", [h]) for h in ours])
        order = [
            *public_order,
            *[h for h in ctx.public if h not in public_order and h not in ctx.late],
            *ctx.late,
        ]
        seen: set[str] = set()
        calls = []
        for h in order:
            if h in ctx.public and h not in seen:
                seen.add(h)
                calls.append(ctx.public[h].send_call())
        if calls:
            await self._batch(calls)

    # ------------------------------------------------------------------ helpers of the bundle path
    async def _refund_plan(
        self, ctx: _Ctx, kept: list[tuple[_Pending, _Sim]]
    ) -> list[tuple[str, tuple[str, int], tuple[str, list[Any]]]]:
        """The MEV-Share refund transfers of the kept bundles: (bundle hash, (recipient, wei), send call)."""
        plan: list[tuple[str, tuple[str, int], tuple[str, list[Any]]]] = []
        for p, sim in kept:
            for r in p.bundle.refunds:
                amount = sim.refundable * r.percent // 100
                if amount > 0:
                    tx = {
                        "from": ctx.coinbase,
                        "to": r.recipient,
                        "value": hex(amount),
                        "gas": hex(21_000),
                        "maxFeePerGas": hex(ctx.base_fee),
                        "maxPriorityFeePerGas": "0x0",
                    }
                    plan.append((p.hash, (r.recipient, amount), ("eth_sendTransaction", [tx])))
        if plan:
            if int(ctx.coinbase, 16) == 0:
                self.stats.refund_failures += len(plan)
                log.error("refunds need a builder coinbase (set_coinbase); the zero address cannot pay them")
                return []
            await self._call("anvil_impersonateAccount", [ctx.coinbase])
        return plan

    async def _reset(self, ctx: _Ctx) -> None:
        """Back to the parent state, with a fresh snapshot for the next trial (anvil snapshots are single-use)."""
        assert ctx.snapshot is not None
        if not await self._call("evm_revert", [ctx.snapshot]):
            ctx.snapshot = None
            raise BuilderError(f"evm_revert({ctx.snapshot}) failed: someone else reverted under the builder")
        ctx.snapshot = str(await self._call("evm_snapshot"))
        await self._absorb_pool(ctx, drop=True)

    async def _revert_final(self, ctx: _Ctx) -> None:
        """Back to the parent state for the real block, leaving no snapshot behind."""
        assert ctx.snapshot is not None
        snap, ctx.snapshot = ctx.snapshot, None
        if not await self._call("evm_revert", [snap]):
            raise BuilderError(f"evm_revert({snap}) failed: someone else reverted under the builder")

    async def _absorb_pool(self, ctx: _Ctx, *, drop: bool) -> int:
        """Record every tx in anvil's pool we do not know yet (raw bytes kept client-side); optionally empty it."""
        content = await self._call("txpool_content")
        txs: list[dict[str, Any]] = []
        for part in ("pending", "queued"):
            for by_nonce in (content.get(part) or {}).values():
                txs.extend(sorted(by_nonce.values(), key=lambda t: int(t["nonce"], 16)))
        new = [
            t
            for t in txs
            if t["hash"] not in ctx.public and not (ctx.pool_read and t["hash"] in ctx.bundle_txs)
        ]
        if new:
            raws = await self._batch([("eth_getRawTransactionByHash", [t["hash"]]) for t in new])
            for t, raw in zip(new, raws, strict=True):
                self._remember(ctx, t, raw)
        if drop and txs:
            await self._batch([("anvil_dropTransaction", [t["hash"]]) for t in txs])
        return len(txs)

    def _remember(self, ctx: _Ctx, t: dict[str, Any], raw: Any) -> None:
        h = t["hash"]
        unsigned = int(t.get("r") or "0x0", 16) == 0 and int(t.get("s") or "0x0", 16) == 0
        ctx.public[h] = _PublicTx(
            hash=h,
            sender=str(t["from"]).lower(),
            nonce=int(t["nonce"], 16),
            raw=None if unsigned or not isinstance(raw, str) else raw,
            fields=t,
        )
        if ctx.pool_read and h not in ctx.late:  # arrived after the build started
            ctx.late.append(h)

    async def _rescue_mined(self, ctx: _Ctx, hashes: list[str]) -> None:
        """Txs that slipped into a trial block (sent while we built): keep them before the trial is reverted."""
        hashes = [h for h in hashes if h not in ctx.public and h not in ctx.bundle_txs]
        if not hashes:
            return
        res = await self._batch(
            [("eth_getTransactionByHash", [h]) for h in hashes]
            + [("eth_getRawTransactionByHash", [h]) for h in hashes]
        )
        for i in range(len(hashes)):
            t, raw = res[i], res[len(hashes) + i]
            if isinstance(t, dict):
                self._remember(ctx, t, raw)

    async def _trial(self, ctx: _Ctx, prefix: list[bytes], p: _Pending) -> _Sim:
        """Mine prefix + bundle in a throw-away block at the real block's number/timestamp/base fee; judge it."""
        for _attempt in range(3):
            raws = [*prefix, *p.bundle.txs]
            hashes = [_tx_hash(r) for r in raws]
            res = await self._batch([("eth_sendRawTransaction", ["0x" + r.hex()]) for r in raws])
            for i, r in enumerate(res):
                if isinstance(r, RpcCallError):
                    where = "after the higher-ranked bundles" if prefix else "alone"
                    reason = DropReason.CONFLICT if prefix else DropReason.SIMULATION_ERROR
                    return _Sim(False, reason, f"tx {hashes[i]} rejected {where}: {_err_text(r)}")
            await self._set_next_block(ctx.timestamp)
            await self._call("evm_mine")
            calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", ["latest", True])]
            calls += [("eth_getTransactionReceipt", [h]) for h in hashes[len(prefix) :]]
            calls.append(("eth_getBalance", [ctx.coinbase, "latest"]))
            out = await self._batch(calls)
            blk, receipts, balance = out[0], out[1:-1], out[-1]
            if isinstance(blk, RpcCallError):
                raise blk
            mined = [t["hash"] for t in blk["transactions"]]
            intruders = [h for h in mined if h not in hashes]
            if intruders:  # someone sent a tx between our pool check and evm_mine: rescue it, redo the trial
                await self._rescue_mined(ctx, intruders)
                await self._reset(ctx)
                continue
            if mined != hashes:
                missing = [h for h in hashes if h not in mined]
                reason = DropReason.CONFLICT if prefix else DropReason.SIMULATION_ERROR
                return _Sim(
                    False, reason, f"not mined in order: missing {missing[:3]} (nonce gap/replaced/gas)"
                )
            base_fee = int(blk.get("baseFeePerGas") or "0x0", 16)
            ctx.base_fee = base_fee
            user_fees = 0
            gas_total = 0
            mempool_fees = 0
            mempool_gas = 0
            for h, rc in zip(hashes[len(prefix) :], receipts, strict=True):
                if not isinstance(rc, dict):
                    return _Sim(False, DropReason.SIMULATION_ERROR, f"no receipt for {h}")
                gas = int(rc["gasUsed"], 16)
                gas_total += gas
                if int(rc["status"], 16) != 1 and h not in p.bundle.reverting_tx_hashes:
                    reason = DropReason.CONFLICT if prefix else DropReason.REVERTED
                    return _Sim(
                        False,
                        reason,
                        f"tx {h} reverted" + (" after the higher-ranked bundles" if prefix else ""),
                        gas_used=gas_total,
                    )
                if h in ctx.public:
                    mempool_fees += gas * (int(rc["effectiveGasPrice"], 16) - base_fee)
                    mempool_gas += gas
                elif h in p.bundle.user_tx_hashes:
                    user_fees += gas * (int(rc["effectiveGasPrice"], 16) - base_fee)
            senders = tuple(
                (str(t["from"]).lower(), int(t["nonce"], 16)) for t in blk["transactions"][len(prefix) :]
            )
            if prefix:  # re-simulation: only validity matters, the score is the standalone one
                return _Sim(True, gas_used=gas_total, senders=senders)
            if isinstance(balance, RpcCallError):
                raise balance
            payment = int(balance, 16) - ctx.parent_balance - mempool_fees
            own_gas = gas_total - mempool_gas
            score = Fraction(payment, own_gas) if own_gas > 0 and payment > 0 else Fraction(0)
            return _Sim(
                True,
                gas_used=gas_total,
                payment=payment,
                score=score,
                senders=senders,
                refundable=max(0, payment - user_fees),
            )
        return _Sim(False, DropReason.SIMULATION_ERROR, "the pool kept receiving txs during the trial")


def _with_time(r: BlockReport, dt: float) -> BlockReport:
    return BlockReport(
        number=r.number,
        hash=r.hash,
        timestamp=r.timestamp,
        tx_count=r.tx_count,
        gas_used=r.gas_used,
        included_bundles=r.included_bundles,
        dropped_bundles=r.dropped_bundles,
        n_bundle_txs=r.n_bundle_txs,
        n_public_txs=r.n_public_txs,
        dropped_public_txs=r.dropped_public_txs,
        build_seconds=dt,
    )


def _child_base_fee(parent: dict[str, Any]) -> int:
    return next_base_fee(
        int(parent.get("baseFeePerGas") or "0x0", 16), int(parent["gasUsed"], 16), int(parent["gasLimit"], 16)
    )


async def _notify(listener: Callable[[Any], Awaitable[object] | object], item: Any) -> None:
    try:
        res = listener(item)
        if inspect.isawaitable(res):
            await res
    except Exception:
        log.exception("builder listener %r failed", listener)
