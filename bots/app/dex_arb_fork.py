"""`mevsuite run dex-arb --fork-url URL`: the DEX arbitrage bot on its own anvil fork of any RPC.

What it starts, in order: anvil forking ``fork_url`` (at ``fork_block`` or the head; no automining), the pool
list (an address book, a pool file, or discovery from factory creation logs with a resumable checkpoint), the
``ArbExecutor`` deployed by the owner account and funded with WETH on the fork, a block builder and the local
Flashbots-compatible relay on the fork (so bundles really land in the fork's blocks), and the bot itself.
It runs for ``blocks`` blocks (or until interrupted) and returns a summary.

Keys and modes (docs/keys-and-modes.md): the owner key is ``[signer]`` of the configuration
(:func:`bots.app.keys.signer_from_config`: ``MEVSUITE__SIGNER__PRIVATE_KEY`` or a keystore; anvil's public dev
account 0 only when no key is configured at all, said in a progress line); the relay requests are signed by the
install's Flashbots reputation key (:func:`bots.app.keys.reputation_signer`).  Both are loaded before anything
starts, so a broken keystore stops the run at once.  The fork runs with its own chain id
(:data:`bots.app.keys.FORK_CHAIN_ID`, set with ``anvil_setChainId``), so nothing signed on it is valid upstream.
Dry-run is the default: opportunities are simulated and recorded, nothing is sent unless ``live`` (which the CLI
sets only when ``bot.dry_run = false`` and ``--live``); ``mevsuite_bot_live{bot="dex_arb"}`` says which.

The fork URL may carry an API key: it is shown only redacted (:func:`chains.node.urls.redact_url`) and is never in
anvil's command line (:class:`chains.node.anvil.AnvilNode`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from bots.app.config import Config
from bots.app.devnet import builder_heads, setup_devnet_executor
from bots.app.keys import KeyChoice, fork_chain_id, reputation_signer, signer_from_config
from bots.app.risk import risk_gate_from_config
from bots.dex_arb.bot import DexArbSettings
from bots.dex_arb.runner import (
    ArbChain,
    ArbPool,
    DexArbRunner,
    chain_from_book,
    chain_from_discovery,
    read_pools_file,
)
from bots.metrics import Metrics, MetricsServer
from bots.store import Store
from chains.addressbook import AddressBook
from chains.devnet.builder import BlockBuilder
from chains.devnet.relay import DEVNET_BUILDER_COINBASE, LocalRelay
from chains.kinds import PoolKind
from chains.node.anvil import AnvilNode
from chains.node.urls import redact_url
from chains.state.discovery import DiscoveryError, Factory, read_checkpoint

log = logging.getLogger(__name__)

BOT = "dex_arb"  # the bot's metric label (DexArbSettings.bot)


class ForkRunError(RuntimeError):
    """The fork run could not start (bad pool source, missing WETH address, ...)."""


@dataclass
class ForkOptions:
    fork_url: str
    fork_block: int | None = None
    book: Path | None = None
    pools: Path | None = None
    weth: str | None = None
    v2_factories: Sequence[tuple[str, str, int]] = ()  # (name, address, fee bps)
    v3_factories: Sequence[str] = ()
    checkpoint: Path | None = None
    live: bool = False
    blocks: int = 10
    block_time: float = 1.0
    fund_wei: int = 100 * 10**18
    db_url: str | None = None
    backrun: bool = False  # also watch the fork's mempool and backrun pending swaps (needs --book: routers)


@dataclass(frozen=True)
class PoolSource:
    """What the pools come from, read and checked: an address book, a pool file's pools, or neither (discovery
    from factory logs, whose checkpoint was checked)."""

    book: AddressBook | None = None
    pools: list[ArbPool] | None = None


def read_sources(opts: ForkOptions) -> PoolSource:
    """Read and check every input file (``--book``, ``--pools``, ``--checkpoint``) and the pool source, once and
    before anything is started: a bad file is one :class:`ForkRunError` line naming it, never a traceback."""
    try:
        if opts.book is not None:
            return PoolSource(book=AddressBook.read(opts.book))
        if opts.weth is None:
            raise ForkRunError("--weth is needed with --pools or factory discovery (or give --book)")
        if opts.pools is not None:
            return PoolSource(pools=read_pools_file(opts.pools))
        if not (opts.v2_factories or opts.v3_factories):
            raise ForkRunError("no pools: give --book, --pools, or --v2-factory/--v3-factory for discovery")
        read_checkpoint(opts.checkpoint)
        return PoolSource()
    except (
        ValueError,
        DiscoveryError,
    ) as exc:  # AddressBookError and the pools file's errors are ValueErrors
        raise ForkRunError(str(exc)) from None


async def _chain(opts: ForkOptions, source: PoolSource, node: AnvilNode, chain_id: int) -> ArbChain:
    if source.book is not None:
        return chain_from_book(source.book, node.http_url)
    assert opts.weth is not None  # read_sources
    if source.pools is not None:
        return ArbChain(node.http_url, chain_id, to_checksum_address(opts.weth), source.pools)
    factories = [Factory(name, addr, PoolKind.V2, fee) for name, addr, fee in opts.v2_factories]
    factories += [Factory(f"v3_{i}", addr, PoolKind.V3) for i, addr in enumerate(opts.v3_factories)]
    return await chain_from_discovery(
        node.http_url, chain_id, opts.weth, factories, checkpoint=opts.checkpoint
    )


async def _until_processed(runner: DexArbRunner, tasks: list[asyncio.Task[Any]], number: int) -> None:
    while runner.processed < number:
        done = [t for t in tasks if t.done()]
        if done:
            raise ForkRunError(f"{done[0].get_name()} stopped: {done[0].exception()!r}")
        with contextlib.suppress(TimeoutError):
            await runner.wait_processed(number, timeout=1.0)


async def run_fork(
    opts: ForkOptions,
    *,
    source: PoolSource | None = None,
    cfg: Config | None = None,
    owner: KeyChoice | None = None,
    reputation: KeyChoice | None = None,
    metrics: Metrics | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the bot on its own fork (see the module docstring).

    ``cfg``: keys (``[signer]``) and ``/metrics`` (``[metrics]``); default: :class:`Config` defaults.  ``owner`` /
    ``reputation``: keys already loaded from it (default: loaded here, before anything starts).  ``metrics``: the
    registry to report to (default: a new one).  ``source``: the pools' source from :func:`read_sources` (default:
    read here, before anything starts)."""
    say = progress or (lambda _m: None)
    source = source if source is not None else read_sources(opts)
    cfg = cfg if cfg is not None else Config()
    key = owner if owner is not None else signer_from_config(cfg.signer, "fork")
    reputation = reputation if reputation is not None else reputation_signer(cfg.signer)
    signer = key.signer
    metrics = metrics if metrics is not None else Metrics()
    metrics.set_mode(BOT, opts.live)
    server: MetricsServer | None = None
    if cfg.metrics.enabled:
        server = metrics.serve(cfg.metrics.host, cfg.metrics.port)
        say(f"metrics {server.url}")
    fork_shown = redact_url(opts.fork_url)
    say(f"forking {fork_shown}" + (f" at block {opts.fork_block}" if opts.fork_block is not None else ""))
    try:
        node = await asyncio.to_thread(
            AnvilNode.start, fork_url=opts.fork_url, fork_block=opts.fork_block, automine=False
        )
    except BaseException:
        if server is not None:
            server.stop()
        raise
    store: Store | None = None
    relay: LocalRelay | None = None
    builder: BlockBuilder | None = None
    runner: DexArbRunner | None = None
    tasks: list[asyncio.Task[Any]] = []
    try:
        upstream_chain_id = node.chain_id()
        chain_id = fork_chain_id(upstream_chain_id)
        node.rpc("anvil_setChainId", [chain_id])  # anvil's --chain-id does not override a fork's id
        if node.chain_id() != chain_id:
            raise ForkRunError(f"the fork did not take chain id {chain_id} (anvil_setChainId)")
        say(f"fork chain id {chain_id} (upstream {upstream_chain_id}): nothing signed here is valid upstream")
        chain = dataclasses.replace(await _chain(opts, source, node, chain_id), chain_id=chain_id)
        say(f"{len(chain.pools)} pools, WETH {chain.weth}")
        if key.dev_key:
            say(
                f"signer: {signer.address} is {key.source}; set MEVSUITE__SIGNER__PRIVATE_KEY or a keystore "
                "to use your own"
            )
        else:
            say(f"signer: {signer.address} from {key.source}")
        say(f"flashbots reputation key: {reputation.signer.address} from {reputation.source}")
        node.rpc("anvil_impersonateAccount", [signer.address])
        executor = await asyncio.to_thread(
            setup_devnet_executor, node, signer.address, chain.weth, fund_wei=opts.fund_wei
        )
        say(f"executor {executor} (owner {signer.address}) funded with {opts.fund_wei} wei of WETH")
        builder = BlockBuilder(
            node, interval_s=max(opts.block_time, 0.05), block_time_s=max(round(opts.block_time), 1)
        )
        relay = LocalRelay(builder)
        await relay.start()
        if opts.db_url is not None:
            store = await Store.open(opts.db_url, upgrade=True, metrics=metrics)
        runner = DexArbRunner(
            chain,
            signer,
            executor,
            relay_url=relay.url,
            relay_auth=reputation.signer,
            settings=DexArbSettings(bot=BOT, live=opts.live),
            store=store,
            metrics=metrics,
            coinbase=DEVNET_BUILDER_COINBASE,
            heads=builder_heads(builder),
            pending_swaps=opts.backrun,
            risk=risk_gate_from_config(cfg, metrics.registry),
        )
        if opts.backrun and not chain.routers:
            raise ForkRunError("--backrun needs router addresses: give --book")
        await runner.start()
        start = runner.start_block
        say(
            f"bot started at block {start} ({'live' if opts.live else 'dry-run'}); "
            f"excluded tokens: {sorted(runner.excluded) or 'none'}"
        )
        tasks = [asyncio.create_task(runner.run(), name="bot")]
        # The bot evaluates the block it starts on first; the builder starts once that is done, so a bundle for an
        # opportunity already open competes for the first block built.
        await _until_processed(runner, tasks, start)
        tasks.append(asyncio.create_task(builder.run(), name="builder"))
        await _until_processed(runner, tasks, start + opts.blocks)
        assert runner.bot is not None
        st = runner.bot.stats
        return {
            "fork_url": fork_shown,
            "chain_id": chain_id,
            "upstream_chain_id": upstream_chain_id,
            "executor": executor,
            "owner": signer.address,
            "owner_key": key.source,
            "reputation_address": reputation.signer.address,
            "pools": len(chain.pools),
            "blocks": runner.processed - start,
            "live": opts.live,
            "relay_bundles_received": len(relay.received(method="eth_sendBundle")),
            "metrics_url": server.url if server is not None else None,
            "excluded_tokens": {t: v.verdict for t, v in runner.verdicts.items() if not v.ok},
            "opportunities_found": st.found,
            "simulated": st.simulated,
            "bundles_submitted": st.submitted_bundles,
            "bundles_landed": st.landed_bundles,
            "txs_landed": st.landed_txs,
            "pending_swaps_seen": st.pending_seen,
            "backrun_bundles": st.backrun_bundles,
            "backrun_bundles_landed": st.backrun_landed,
            "simulated_profit_wei": st.simulated_profit_wei,
            "realized_profit_wei": st.realized_profit_wei,
            "realized_equals_simulated": st.realized_profit_wei == st.simulated_profit_wei
            and not st.mismatches,
            "mismatches": st.mismatches,
            "gas_spent_wei": st.gas_spent_wei,
            "tips_paid_wei": st.tips_paid_wei,
            "latency_ms": st.latency_summary(),
        }
    finally:
        if builder is not None:
            builder.stop()
        if runner is not None:
            runner.stop()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        if runner is not None:
            await runner.close()
        if relay is not None:
            with contextlib.suppress(Exception):
                await relay.stop()
        if builder is not None:
            with contextlib.suppress(Exception):
                await builder.aclose()
        if store is not None:
            await store.close()
        node.stop()
        if server is not None:
            server.stop()
