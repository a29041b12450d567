"""`mevsuite run dex-arb --fork-url URL`: the DEX arbitrage bot on its own anvil fork of any RPC.

What it starts, in order: anvil forking ``fork_url`` (at ``fork_block`` or the head; no automining), the pool
list (an address book, a pool file, or discovery from factory creation logs with a resumable checkpoint), the
``ArbExecutor`` deployed by the owner account and funded with WETH on the fork, a block builder and the local
Flashbots-compatible relay on the fork (so bundles really land in the fork's blocks), and the bot itself.
It runs for ``blocks`` blocks (or until interrupted) and returns a summary.

The owner key comes from the environment (``MEV_PRIVATE_KEY``, or an encrypted keystore via ``MEV_KEYSTORE_PATH``, see
:mod:`chains.signer`); without one it uses anvil's dev account 0, which only exists on dev nodes.  Dry-run is
the default: opportunities are simulated and recorded, nothing is sent unless ``live``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bots.dex_arb import DexArbSettings
from bots.dex_arb_runner import (
    ArbChain,
    DexArbRunner,
    builder_heads,
    chain_from_book,
    chain_from_discovery,
    chain_from_pools_file,
    setup_devnet_executor,
)
from bots.metrics import Metrics
from bots.store import Store
from chains.devnet.addressbook import AddressBook
from chains.devnet.builder import BlockBuilder
from chains.devnet.relay import DEVNET_BUILDER_COINBASE, LocalRelay
from chains.discovery import Factory
from chains.node import AnvilNode
from chains.signer import KeyLoadError, Signer

log = logging.getLogger(__name__)

# anvil's dev account 0 (the well-known test mnemonic): only for dev nodes and forks.
ANVIL_DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


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


def _signer() -> Signer:
    try:
        return Signer.from_environment()
    except KeyLoadError:
        log.warning("no key in the environment: using anvil's dev account 0 (dev nodes and forks only)")
        return Signer(ANVIL_DEV_KEY_0)


async def _chain(opts: ForkOptions, node: AnvilNode, chain_id: int) -> ArbChain:
    if opts.book is not None:
        book = AddressBook.read(opts.book)
        return chain_from_book(book, node.http_url)
    if opts.weth is None:
        raise ForkRunError("--weth is needed with --pools or factory discovery (or give --book)")
    if opts.pools is not None:
        try:
            return chain_from_pools_file(opts.pools, node.http_url, chain_id, opts.weth)
        except ValueError as exc:
            raise ForkRunError(str(exc)) from None
    factories = [Factory(name, addr, "v2", fee) for name, addr, fee in opts.v2_factories]
    factories += [Factory(f"v3_{i}", addr, "v3") for i, addr in enumerate(opts.v3_factories)]
    if not factories:
        raise ForkRunError("no pools: give --book, --pools, or --v2-factory/--v3-factory for discovery")
    return await chain_from_discovery(node.http_url, chain_id, opts.weth, factories, checkpoint=opts.checkpoint)


async def run_fork(opts: ForkOptions, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    say(f"forking {opts.fork_url}" + (f" at block {opts.fork_block}" if opts.fork_block is not None else ""))
    node = await asyncio.to_thread(AnvilNode.start, fork_url=opts.fork_url, fork_block=opts.fork_block,
                                   automine=False)
    store: Store | None = None
    relay: LocalRelay | None = None
    builder: BlockBuilder | None = None
    runner: DexArbRunner | None = None
    tasks: list[asyncio.Task[Any]] = []
    try:
        chain_id = int(node.rpc("eth_chainId"), 16)
        chain = await _chain(opts, node, chain_id)
        say(f"{len(chain.pools)} pools, WETH {chain.weth}")
        signer = _signer()
        node.rpc("anvil_impersonateAccount", [signer.address])
        executor = await asyncio.to_thread(setup_devnet_executor, node, signer.address, chain.weth,
                                           fund_wei=opts.fund_wei)
        say(f"executor {executor} (owner {signer.address}) funded with {opts.fund_wei} wei of WETH")
        builder = BlockBuilder(node, interval_s=max(opts.block_time, 0.05), block_time_s=max(round(opts.block_time), 1))
        relay = LocalRelay(builder)
        await relay.start()
        metrics = Metrics(process_collectors=False)
        if opts.db_url is not None:
            store = await Store.open(opts.db_url, upgrade=True, metrics=metrics)
        runner = DexArbRunner(chain, signer, executor, relay_url=relay.url, settings=DexArbSettings(live=opts.live),
                              store=store, metrics=metrics, coinbase=DEVNET_BUILDER_COINBASE,
                              heads=builder_heads(builder), pending_swaps=opts.backrun)
        if opts.backrun and not chain.routers:
            raise ForkRunError("--backrun needs router addresses: give --book")
        await runner.start()
        start = runner.processed
        say(f"bot started at block {start} ({'live' if opts.live else 'dry-run'}); "
            f"excluded tokens: {sorted(runner.excluded) or 'none'}")
        tasks = [asyncio.create_task(builder.run(), name="builder"), asyncio.create_task(runner.run(), name="bot")]
        while runner.processed < start + opts.blocks:
            done = [t for t in tasks if t.done()]
            if done:
                raise ForkRunError(f"{done[0].get_name()} stopped: {done[0].exception()!r}")
            with contextlib.suppress(TimeoutError):
                await runner.wait_processed(runner.processed + 1, timeout=1.0)
        assert runner.bot is not None
        st = runner.bot.stats
        return {
            "fork_url": opts.fork_url, "chain_id": chain_id, "executor": executor, "pools": len(chain.pools),
            "blocks": runner.processed - start, "live": opts.live,
            "excluded_tokens": {t: v.verdict for t, v in runner.verdicts.items() if not v.ok},
            "opportunities_found": st.found, "simulated": st.simulated, "bundles_submitted": st.submitted_bundles,
            "bundles_landed": st.landed_bundles, "txs_landed": st.landed_txs,
            "pending_swaps_seen": st.pending_seen, "backrun_bundles": st.backrun_bundles,
            "backrun_bundles_landed": st.backrun_landed,
            "simulated_profit_wei": st.simulated_profit_wei, "realized_profit_wei": st.realized_profit_wei,
            "realized_equals_simulated": st.realized_profit_wei == st.simulated_profit_wei and not st.mismatches,
            "mismatches": st.mismatches,
            "gas_spent_wei": st.gas_spent_wei, "tips_paid_wei": st.tips_paid_wei,
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
