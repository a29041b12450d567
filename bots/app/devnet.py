"""`mevsuite devnet up`: anvil + the deployed world + our block builder + the local Flashbots-compatible relay
(with MEV-Share) + simulated users, until interrupted.

The relay's URL and its MEV-Share hint stream are in the address book (``relay_url``, ``mev_share_url``) and in
the printed summary; with ``devnet up`` a share (``[devnet] private_swap_fraction``) of the users' swaps is private
order flow sent to the relay (hinted on the stream, never in the public mempool).

:class:`Devnet` is also what the demo and the tests use to bring the whole local chain up in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bots.app.config import Config
from chains.addressbook import AddressBook
from chains.devnet.actors import TrafficConfig
from chains.devnet.artifacts import load
from chains.devnet.builder import BlockBuilder, BlockReport
from chains.devnet.deploy import deploy_world
from chains.devnet.relay import LocalRelay
from chains.devnet.traffic import TrafficGenerator
from chains.node.anvil import AnvilNode
from chains.send.executor import deploy_executor, wait_receipt

log = logging.getLogger(__name__)

DEVNET_ACCOUNTS = 40  # 0-9 bots/liquidators, 10-29 simulated traders, 30-39 free (see docs/devnet.md)


class DevnetError(RuntimeError):
    """`mevsuite devnet up` could not complete (the message says which step)."""


def traffic_config(cfg: Config, *, private_fraction: float = 0.0) -> TrafficConfig:
    """The traffic generator's settings from the ``[devnet]`` config section."""
    d = cfg.devnet
    return TrafficConfig(
        private_fraction=private_fraction,
        swaps_per_second=d.swaps_per_second,
        swaps_per_block=max(d.swaps_per_second * max(d.block_time_s, 1.0), 0.0),
        size_usd_median=d.swap_size_usd_median,
        size_usd_sigma=d.swap_size_usd_sigma,
        loose_fraction=d.loose_slippage_fraction,
        loose_slippage=d.loose_slippage,
        tight_slippage_bps=d.tight_slippage_bps,
        oracle_volatility=d.oracle_volatility,
        oracle_moves_per_second=d.oracle_moves_per_second,
        oracle_moves_per_block=d.oracle_moves_per_second * max(d.block_time_s, 1.0),
    )


@dataclass
class Devnet:
    """A running devnet: the node (no automining), its address book, the block builder and the traffic."""

    node: AnvilNode
    book: AddressBook
    builder: BlockBuilder
    traffic: TrafficGenerator
    deploy_seconds: float
    relay: LocalRelay | None = None
    reports: list[BlockReport] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        cfg: Config,
        *,
        seed: int | None = None,
        block_time: float | None = None,
        progress: Callable[[str], None] | None = None,
        relay: bool = True,
        private_fraction: float = 0.0,
    ) -> Devnet:
        """Start anvil, deploy the world, and set up the builder, the local relay (``relay``) and the traffic
        (``private_fraction`` of swaps as private order flow through the relay; needs ``relay``)."""
        seed = cfg.devnet.seed if seed is None else seed
        interval = cfg.devnet.block_time_s if block_time is None else block_time
        say = progress or (lambda _msg: None)
        say("starting anvil")
        node = await asyncio.to_thread(AnvilNode.start, automine=True, accounts=DEVNET_ACCOUNTS)
        local_relay: LocalRelay | None = None
        try:
            t0 = time.perf_counter()
            book = await asyncio.to_thread(deploy_world, node, seed, say)
            deploy_seconds = time.perf_counter() - t0
            # From here on anvil never mines by itself: pending txs wait for our block builder.
            node.set_automine(False)
            builder = BlockBuilder(node, interval_s=max(interval, 0.05), block_time_s=max(round(interval), 1))
            if relay:
                say("starting the local relay")
                local_relay = LocalRelay(builder)
                await local_relay.start()
                book.relay_url, book.mev_share_url = local_relay.url, local_relay.sse_url
            traffic = TrafficGenerator(
                node,
                book,
                traffic_config(cfg, private_fraction=private_fraction if relay else 0.0),
                seed=seed,
                relay_url=book.relay_url or None,
            )
        except BaseException:
            if local_relay is not None:
                await local_relay.stop()
            node.stop()
            raise
        devnet = cls(
            node=node,
            book=book,
            builder=builder,
            traffic=traffic,
            deploy_seconds=deploy_seconds,
            relay=local_relay,
        )
        builder.add_block_listener(devnet.reports.append)
        return devnet

    async def close(self) -> None:
        self.traffic.stop()
        self.builder.stop()
        with contextlib.suppress(Exception):
            await self.traffic.aclose()
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.stop()
        with contextlib.suppress(Exception):
            await self.builder.aclose()
        self.node.stop()


async def run_devnet(
    cfg: Config,
    *,
    seed: int | None,
    out_path: Path,
    block_time: float | None,
    traffic: bool,
    max_blocks: int,
) -> None:
    """Bring the devnet up, print and write the address book, and produce blocks until SIGINT/SIGTERM."""
    say: Callable[[str], None] = lambda msg: print(f"[devnet] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    try:  # fail before starting anvil, not after deploying, if the address book cannot be written there
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DevnetError(f"cannot write the address book to {out_path}: {exc.strerror or exc}") from exc
    # Handle SIGINT/SIGTERM from the start, so a Ctrl-C at any point (even while deploying, or just after the
    # address book appeared) is a clean stop that also stops anvil, never a KeyboardInterrupt traceback.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        devnet = await Devnet.start(
            cfg,
            seed=seed,
            block_time=block_time,
            progress=say,
            private_fraction=cfg.devnet.private_swap_fraction if traffic else 0.0,
        )
        try:
            await _serve(devnet, stop, say, out_path=out_path, traffic=traffic, max_blocks=max_blocks)
        finally:
            await devnet.close()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _serve(
    devnet: Devnet,
    stop: asyncio.Event,
    say: Callable[[str], None],
    *,
    out_path: Path,
    traffic: bool,
    max_blocks: int,
) -> None:
    try:
        devnet.book.write(out_path)
    except OSError as exc:
        raise DevnetError(f"cannot write the address book to {out_path}: {exc.strerror or exc}") from exc
    print(devnet.book.to_json(), flush=True)
    say(f"deployed in {devnet.deploy_seconds:.2f} s; address book written to {out_path}")
    if stop.is_set():
        say("interrupted during start-up: stopping")
        return
    say(f"RPC {devnet.node.http_url}  WebSocket {devnet.node.ws_url}  — Ctrl-C to stop")
    if devnet.relay is not None:
        say(f"relay {devnet.relay.url}  MEV-Share stream {devnet.relay.sse_url}")

    def on_block(report: BlockReport) -> None:
        say(
            f"block {report.number}: {report.tx_count} txs, gas {report.gas_used:,}, "
            f"bundles {len(report.included_bundles)}"
        )
        if max_blocks and len(devnet.reports) >= max_blocks:
            stop.set()

    devnet.builder.add_block_listener(on_block)
    tasks = [asyncio.create_task(devnet.builder.run(), name="builder")]
    if traffic:
        tasks.append(asyncio.create_task(devnet.traffic.run(), name="traffic"))
    waiter = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            failure = None if t is waiter else t.exception()
            if failure is not None:
                log.debug("devnet task %s failed", t.get_name(), exc_info=failure)
                raise DevnetError(
                    f"the devnet's {t.get_name()} stopped: {type(failure).__name__}: {failure} "
                    f"(anvil {'running' if devnet.node.running else 'has exited'})"
                ) from failure
    finally:
        devnet.traffic.stop()
        devnet.builder.stop()
        for t in [*tasks, waiter]:
            t.cancel()
        await asyncio.gather(*tasks, waiter, return_exceptions=True)
    stats: dict[str, Any] = {"blocks": len(devnet.reports), "swaps_sent": devnet.traffic.stats.total_sent}
    say(f"stopped: {json.dumps(stats)}")


# ------------------------------------------------------------------ the arbitrage executor on a dev node
def setup_devnet_executor(
    node: AnvilNode,
    owner: str,
    weth: str,
    *,
    fund_wei: int,
    aave_pool: str | None = None,
    sender: str | None = None,
) -> str:
    """Deploy ``ArbExecutor`` (owner ``owner``, an unlocked dev account) and give it ``fund_wei`` of WETH.

    Mines its own blocks with automine switched on for the duration, then restores the node's mode."""
    automine = node.automine()
    node.set_automine(True)
    try:
        node.rpc("anvil_setBalance", [owner, hex(fund_wei + 1000 * 10**18)])
        executor = deploy_executor(node, owner, weth=weth, aave_pool=aave_pool, sender=sender)
        weth9 = load("WETH9")
        for data, value in (
            (weth9.encode_call("deposit"), fund_wei),
            (weth9.encode_call("transfer", executor, fund_wei), 0),
        ):
            h = node.rpc(
                "eth_sendTransaction",
                [{"from": owner, "to": weth, "data": data, "value": hex(value), "gas": hex(100_000)}],
            )
            receipt = wait_receipt(node, str(h))
            if receipt["status"] != "0x1":
                raise RuntimeError(f"funding the executor failed: {receipt}")
        return executor
    finally:
        node.set_automine(automine)


class BuilderHeads:
    """Heads of the blocks a devnet :class:`BlockBuilder` produces from now on, as a watcher's head stream.

    The builder trial-mines and reverts blocks while it builds one; a watcher polling ``latest`` could catch a
    trial block and take it for a (soon reorged) head.  Following the builder's real blocks avoids that.  The
    listener is registered at once (a block built before iteration starts is not missed), and a cancelled wait
    does not end the stream (a restarted watcher goes on reading it)."""

    def __init__(self, builder: BlockBuilder) -> None:
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        builder.add_block_listener(
            lambda r: self._queue.put_nowait({"number": hex(r.number), "hash": r.hash})
        )

    def __aiter__(self) -> BuilderHeads:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._queue.get()


def builder_heads(builder: BlockBuilder) -> BuilderHeads:
    """:class:`BuilderHeads` of ``builder``."""
    return BuilderHeads(builder)
