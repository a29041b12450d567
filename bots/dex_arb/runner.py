"""Assemble and run the DEX arbitrage bot against any node: the devnet, a fork of it, or a fork of any RPC.

:class:`DexArbRunner` wires the parts: pool states loaded at the head (:func:`chains.state.chain.load_initial`), a
token screen (:mod:`chains.sim.tokens`: fee-on-transfer and reverting tokens are excluded from the graph), the
route finder over the remaining pools, the :class:`chains.watch.blocks.BlockWatcher` that applies each block, the
bot's engine (collectors, strategy, executors: :mod:`bots.dex_arb.bot`), the reorg handler, and the relay client.  Pools come from an :class:`ArbChain` (built from an
address book, a pool file, or factory-log discovery: :func:`chain_from_book`, :func:`read_pools_file`,
:func:`chain_from_discovery`).  Deploying and funding the executor on a dev node is
:func:`bots.app.devnet.setup_devnet_executor`.

**Bus mode** (``bus=`` a connected :class:`bots.bus.BusClient`): no watcher and no ``load_initial``; the state and
the blocks come from the hub's messages through a :class:`bots.runtime.bus_collector.BusBlockCollector`
(:func:`bots.runtime.bus_source.bus_block_collector`, a durable consumer), so the bot makes no log, receipt or block
RPC call.  The node is still used for the token screen and the simulations (pyrevm forks), ``eth_simulateV1`` and
nonces, and for sending (docs/dex-arb.md, "Bus mode").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from analytics.routing import GasModel, RouteFinder, RoutePool, route_kind
from bots.bus.client import BusClient, Subscription
from bots.dex_arb.bot import DexArbBot, DexArbSettings
from bots.dex_arb.record import DexArbRecorder
from bots.dex_arb.simulate import CycleSimulator
from bots.dex_arb.strategy import DexArbStrategy
from bots.metrics import Metrics
from bots.runtime.bus_collector import BusBlockCollector
from bots.runtime.bus_source import bus_block_collector
from bots.runtime.collectors import BlockCollector, PendingSwapCollector
from bots.runtime.engine import Collector, Engine
from bots.runtime.reorg import ReorgHandler
from bots.runtime.risk import RiskGate
from bots.runtime.send import Sender
from bots.store import Store
from chains.addressbook import AddressBook
from chains.kinds import PoolKind
from chains.node.rpc import RpcClient
from chains.send.flashbots import FlashbotsClient
from chains.send.signer import Signer
from chains.sim.tokens import TokenVerdict, screen_tokens
from chains.state.chain import ChainState, StateAddresses, load_initial
from chains.state.discovery import Factory, discover_pools
from chains.watch.blocks import BlockWatcher
from chains.watch.mempool import RouterKind, routers_for_book
from chains.wirejson import load_file

log = logging.getLogger(__name__)

__all__ = [
    "ArbChain",
    "ArbPool",
    "DexArbRunner",
    "chain_from_book",
    "chain_from_discovery",
    "read_pools_file",
]

# Measured on the devnet (docs/executor.md, `make bench`): own-balance mode, before refunds.
EXECUTOR_GAS = GasModel(overhead=21_000 + 35_000, per_hop={"v2": 77_000, "v3": 87_000})


@dataclass(frozen=True, slots=True)
class ArbPool:
    address: str
    kind: PoolKind  # v2 or v3: the pools the executor trades through
    token0: str
    token1: str
    fee: int  # v2: bps; v3: hundredths of a bip


@dataclass
class ArbChain:
    rpc_url: str
    chain_id: int
    weth: str
    pools: list[ArbPool]
    ws_url: str | None = None
    routers: dict[str, RouterKind] = field(default_factory=dict)  # router address -> kind (pending-swap feed)


def chain_from_book(book: AddressBook, rpc_url: str | None = None) -> ArbChain:
    pools = [ArbPool(p.address, p.kind, p.token0, p.token1, p.fee) for p in book.pools]
    ws = book.ws_url if rpc_url is None or rpc_url == book.rpc_url else rpc_url.replace("http", "ws", 1)
    return ArbChain(rpc_url or book.rpc_url, book.chain_id, book.weth, pools, ws, routers_for_book(book))


POOLS_FILE_MAX_BYTES = 64 << 20
_POOL_KINDS = {"v2": PoolKind.V2, "v3": PoolKind.V3, "uniswap_v2": PoolKind.V2, "uniswap_v3": PoolKind.V3}


def read_pools_file(path: str | Path) -> list[ArbPool]:
    """The pools of a JSON pool file: a list (or ``{"pools": [...]}``) of pool-state documents (``mevsuite pool
    snapshot``, docs/pool-state-format.md) or of ``{"address", "kind": "v2"|"v3", "token0", "token1", "fee"}``
    objects (``fee``: bps for v2, default 30; hundredths of a bip for v3; ``fee_bps`` is accepted too).

    Any problem is a ``ValueError`` whose ``str()`` is one line naming the file and the pool."""
    try:
        doc = load_file(path, max_bytes=POOLS_FILE_MAX_BYTES)
    except OSError as exc:
        raise ValueError(f"pools file {path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"pools file {path}: not valid JSON: {exc}") from None
    items = doc if isinstance(doc, list) else doc.get("pools") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError(f'pools file {path}: expected a list of pools (or {{"pools": [...]}})')
    pools: list[ArbPool] = []
    for i, it in enumerate(items):
        try:
            pools.append(_pool_entry(it))
        except ValueError as exc:
            raise ValueError(f"pools file {path}: pool #{i} is not usable: {exc}") from None
    return pools


def _pool_entry(it: Any) -> ArbPool:
    if not isinstance(it, dict):
        raise ValueError("expected an object")
    raw_kind = it.get("kind")
    kind = _POOL_KINDS.get(raw_kind) if isinstance(raw_kind, str) else None
    if kind is None:
        raise ValueError(f"kind {str(it.get('kind'))[:40]!r} is not v2/v3 (or uniswap_v2/uniswap_v3)")
    addrs = []
    for key in ("address", "token0", "token1"):
        value = it.get(key)
        if not (isinstance(value, str) and len(value) == 42 and value[:2] in ("0x", "0X")):
            raise ValueError(f"{key}: not an address: {str(value)[:60]!r}")
        try:
            addrs.append(to_checksum_address(value))
        except ValueError:
            raise ValueError(f"{key}: not an address: {value[:60]!r}") from None
    raw_fee = it.get("fee_bps", it.get("fee", 30))
    if isinstance(raw_fee, str) and raw_fee.isdecimal():
        raw_fee = int(raw_fee)  # pool-state documents write integers as decimal strings
    if type(raw_fee) is not int or not 0 <= raw_fee < 1_000_000:
        raise ValueError(f"fee: not a fee: {str(raw_fee)[:40]!r}")
    return ArbPool(addrs[0], kind, addrs[1], addrs[2], raw_fee)


async def chain_from_discovery(
    rpc_url: str,
    chain_id: int,
    weth: str,
    factories: Sequence[Factory],
    *,
    checkpoint: str | Path | None = None,
    from_block: int = 0,
) -> ArbChain:
    async with RpcClient(rpc_url) as rpc:
        found = await discover_pools(
            rpc,
            factories,
            checkpoint=checkpoint,
            from_block=from_block,
            on_progress=lambda m: log.info("discovery: %s", m),
        )
    pools = [ArbPool(p.address, p.kind, p.token0, p.token1, p.fee) for p in found]
    return ArbChain(rpc_url, chain_id, to_checksum_address(weth), pools)


@dataclass
class DexArbRunner:
    """The bot on a node.  ``await start()``, then ``await run()`` (until :meth:`stop`), then ``await close()``.

    ``run()`` runs the bot's :class:`bots.runtime.engine.Engine`: the block collector (and, with
    ``pending_swaps``, the pending-swap collector), :class:`~bots.dex_arb.strategy.DexArbStrategy`, and the
    executors simulate → (risk gate) → sign + send → store.

    With ``bus`` the block collector is a :class:`~bots.runtime.bus_collector.BusBlockCollector` on the durable
    consumer ``durable`` (default ``<bot>-<chain id>``); ``start()`` waits up to ``snapshot_timeout`` seconds for the
    hub's first snapshot and starts on its head block.  Every pool of ``chain`` must be one the hub follows.
    """

    chain: ArbChain
    signer: Signer
    executor: str
    relay_url: str | None = None
    relay_auth: Signer | None = None  # the Flashbots reputation key (default: a fresh random one per run)
    settings: DexArbSettings = field(default_factory=DexArbSettings)
    store: Store | None = None
    metrics: Metrics | None = None
    coinbase: str | None = None
    max_hops: int = 3
    top_k: int = 40  # cycles re-checked with the exact math per block
    poll_interval: float = 0.05
    gas: GasModel = EXECUTOR_GAS
    heads: AsyncIterable[dict[str, Any]] | None = None  # block headers to follow (default: poll the node)
    pending_swaps: bool = False  # watch the mempool (chain.ws_url, chain.routers) and backrun pending swaps
    risk: RiskGate | None = None  # the risk gate every bundle passes before it is signed and sent
    bus: BusClient | None = None  # bus mode: blocks and state from the hub's messages (no watcher)
    durable: str | None = None  # bus mode: the blocks consumer's name (default "<bot>-<chain id>")
    snapshot_timeout: float = 60.0  # bus mode: seconds start() waits for the hub's first snapshot

    rpc: RpcClient | None = None
    watcher: BlockWatcher | None = None
    bot: DexArbBot | None = None
    relay: FlashbotsClient | None = None
    engine: Engine | None = None
    blocks: BlockCollector | BusBlockCollector | None = None
    verdicts: dict[str, TokenVerdict] = field(default_factory=dict)
    excluded: set[str] = field(default_factory=set)
    start_block: int = -1  # the head the bot started on (evaluated first)

    async def start(self) -> None:
        self.rpc = RpcClient([self.chain.rpc_url])
        registry = self.metrics.registry if self.metrics else None
        bus_blocks: BusBlockCollector | None = None
        if self.bus is not None:
            bus_blocks = await bus_block_collector(
                self.bus,
                self.chain.chain_id,
                durable=self.durable or f"{self.settings.bot}-{self.chain.chain_id}",
                registry=registry,
            )
            self.blocks = bus_blocks  # close() stops its consumer, even if start() fails below
            state = await bus_blocks.load(self.snapshot_timeout)
            self._check_followed(state)
            assert state.block_number is not None
            head = self.start_block = state.block_number
        else:
            head = self.start_block = int(await self.rpc.request("eth_blockNumber", []), 16)
            state = await load_initial(self.rpc, self._addresses(), head)
        holders: dict[str, str] = {}
        for p in self.chain.pools:
            holders.setdefault(p.token0, p.address)
            holders.setdefault(p.token1, p.address)
        self.verdicts = await asyncio.to_thread(screen_tokens, self.chain.rpc_url, head, holders)
        self.excluded = {t for t, v in self.verdicts.items() if not v.ok}
        for t in sorted(self.excluded):
            log.info(
                "dex_arb: token %s excluded: %s (%s)", t, self.verdicts[t].verdict, self.verdicts[t].detail
            )
        s = self.settings
        if self.relay_url:
            # Without a configured reputation key (bots.app.keys.reputation_signer): a fresh random one for this run.
            self.relay = FlashbotsClient(
                self.relay_auth or Signer(secrets.token_bytes(32)),
                {"relay": self.relay_url},
                timeout=5.0,
                retries=1,
            )
        sender = Sender(self.signer, live=s.live, send_mode=s.send_mode, relay=self.relay, rpc=self.rpc)
        bot = self.bot = DexArbBot(
            rpc=self.rpc,
            rpc_url=self.chain.rpc_url,
            finder=self._finder(state),
            state=state,
            executor=self.executor,
            owner=self.signer.address,
            weth=self.chain.weth,
            chain_id=self.chain.chain_id,
            settings=s,
            store=self.store,
            metrics=self.metrics,
            coinbase=self.coinbase,
        )
        if bus_blocks is not None:
            self.blocks = bus_blocks  # emits the snapshot's head block first
        else:
            self.watcher = BlockWatcher(
                self.rpc,
                state,
                resync=self._resync,
                chain_id=self.chain.chain_id,
                registry=registry,
                poll_interval=self.poll_interval,
                heads=self.heads,
            )
            # The start block is evaluated first, so an opportunity that is already open is bundled at once.
            self.blocks = BlockCollector(self.watcher, emit_start_block=True)
        collectors: list[Collector] = [self.blocks]
        if self.pending_swaps:
            if not self.chain.ws_url or not self.chain.routers:
                raise ValueError("pending swaps need the chain's websocket URL and its router addresses")
            collectors.append(
                PendingSwapCollector(self.chain.routers, ws_url=self.chain.ws_url, registry=registry)
            )
        reorgs = (
            ReorgHandler(self.store, self.chain.chain_id, metrics=self.metrics)
            if self.store is not None
            else None
        )
        self.engine = Engine(
            collectors,
            [DexArbStrategy(bot, self._finder)],
            [CycleSimulator(bot), sender, DexArbRecorder(bot, reorgs=reorgs, risk=self.risk)],
            name=s.bot,
            observer=self.metrics,
            risk=self.risk,
        )

    def _addresses(self) -> StateAddresses:
        return StateAddresses(
            v2_pairs={p.address: p.fee for p in self.chain.pools if p.kind == "v2"},
            v3_pools=[p.address for p in self.chain.pools if p.kind == "v3"],
        )

    def _check_followed(self, state: ChainState) -> None:
        """Bus mode: the hub's state must hold every pool the bot trades (it may hold more)."""
        followed = {a.lower() for pools in state.pools.values() for a in pools}
        missing = sorted(p.address for p in self.chain.pools if p.address.lower() not in followed)
        if missing:
            raise ValueError(
                f"the hub does not follow {len(missing)} of the bot's {len(self.chain.pools)} pools "
                f"(e.g. {', '.join(missing[:3])}): give the hub the same pools"
            )

    def _route_pools(self, state: ChainState) -> list[RoutePool]:
        """Adapters (by reference) for the bot's pools in ``state``; a hub's state may follow more pools and kinds
        (Curve, Aave ...) than the bot trades.  In direct mode ``state`` holds exactly the bot's pools."""
        mine = {p.address.lower(): p for p in self.chain.pools}
        out: list[RoutePool] = []
        for kind, pools in state.pools.items():
            for address, pool in pools.items():
                p = mine.get(address.lower())
                if p is None:
                    continue
                from_state = route_kind(kind).from_state
                if from_state is None:
                    raise ValueError(f"the route finder cannot wrap a chain-state pool of kind {kind!r}")
                out.append(from_state(address, pool, (p.token0, p.token1) if kind == "v3" else None))
        return out

    def _finder(self, state: ChainState) -> RouteFinder:
        return RouteFinder(
            self._route_pools(state),
            base_tokens=[self.chain.weth],
            max_hops=self.max_hops,
            excluded_tokens=self.excluded,
            gas=self.gas,
            top_k=self.top_k,
            registry=self.metrics.registry if self.metrics else None,
        )

    async def _resync(self, block: int) -> ChainState:
        assert self.rpc is not None
        return await load_initial(self.rpc, self._addresses(), block)

    @property
    def processed(self) -> int:
        """The last block the bot is done with (evaluated, simulated, sent and recorded); -1 before the first."""
        return self.blocks.done_block if self.blocks is not None else -1

    async def wait_processed(self, number: int, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Wait until the bot is done with block ``number`` (``TimeoutError`` after ``timeout`` seconds)."""
        assert self.blocks is not None, "call start() first"
        await self.blocks.wait_done(number, timeout)

    async def run(self) -> dict[str, Any]:
        """Run the engine until :meth:`stop`; returns its final health snapshot."""
        assert self.engine is not None, "call start() first"
        return await self.engine.run()

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    async def close(self) -> None:
        self.stop()
        if isinstance(self.blocks, BusBlockCollector) and isinstance(self.blocks.source, Subscription):
            with contextlib.suppress(Exception):
                await self.blocks.source.close()  # unsettled messages go back to the stream at once
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.close()
        if self.rpc is not None:
            with contextlib.suppress(Exception):
                await self.rpc.close()
