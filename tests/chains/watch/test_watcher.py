"""The mempool watcher on the real devnet: router swaps sent by the traffic generator into anvil's mempool
(automine off) reach the bus as decoded PendingSwap events before any block; a websocket cut mid-stream (a real
TCP proxy that resets every connection and refuses new ones) loses nothing still pending and publishes nothing
twice; mined txs and duplicates are dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from prometheus_client import CollectorRegistry

from bots.runtime.bus import InProcessBus, Subscription
from chains.addressbook import PoolInfo
from chains.devnet.actors import SwapRecord, TrafficConfig
from chains.devnet.traffic import TrafficGenerator
from chains.events import TOPIC_PENDING_SWAPS, PendingSwap
from chains.node.rpc import RpcClient
from chains.watch.mempool import MempoolWatcher, routers_for_book
from tests.chains.node.proxy import TcpProxy
from tests.fixtures.devnet import Devnet

WAIT = 15.0  # generous upper bound for an event to show up; never asserted as a speed


async def collect(sub: Subscription, n: int) -> list[PendingSwap]:
    out: list[PendingSwap] = []
    async with asyncio.timeout(WAIT):
        while len(out) < n:
            ev = await sub.get()
            assert isinstance(ev, PendingSwap)
            out.append(ev)
    return out


async def eventually(pred: Callable[[], object]) -> None:
    """Wait (bounded by WAIT) until ``pred()`` is true: a state change we cannot await directly."""
    async with asyncio.timeout(WAIT):
        while not pred():  # noqa: ASYNC110 - polling a counter, there is no event to wait on
            await asyncio.sleep(0.01)


async def drain(sub: Subscription) -> list[Any]:
    """Everything queued right now (get() returns at once while depth > 0)."""
    return [await sub.get() for _ in range(sub.depth)]


def weth_pool(dn: Devnet, venue: str) -> PoolInfo:
    return next(
        p
        for p in dn.book.pools
        if p.venue == venue
        and dn.book.weth in (p.token0, p.token1)
        and all(dn.book.token_by_address(t).kind in ("standard", "weth") for t in (p.token0, p.token1))
    )


def rpc_latest(dn: Devnet) -> dict[str, Any]:
    head: dict[str, Any] = dn.node.rpc("eth_getBlockByNumber", ["latest", False])
    return head


def assert_matches(ev: PendingSwap, rec: SwapRecord, dn: Devnet, deadline: int) -> None:
    book = dn.book
    router = book.v3.swap_router if rec.venue == "uniswap_v3" else book.v2[rec.venue].router
    assert ev.tx_hash == rec.tx_hash.lower()
    assert ev.sender == to_checksum_address(rec.trader)
    assert ev.router == to_checksum_address(router)
    assert ev.protocol == ("uniswap_v3" if rec.venue == "uniswap_v3" else "uniswap_v2")
    assert ev.method == rec.method
    assert ev.path == tuple(to_checksum_address(t) for t in rec.path)
    assert ev.fees == rec.fees
    assert ev.exact_input is True
    assert (ev.amount_in, ev.amount_out_min) == (rec.amount_in, rec.amount_out_min)
    assert (ev.amount_out, ev.amount_in_max) == (None, None)
    assert ev.recipient == to_checksum_address(rec.trader)
    assert ev.deadline == deadline
    assert ev.value == (rec.amount_in if rec.method == "swapExactETHForTokens" else 0)


@pytest.mark.parametrize("full_transactions", [True, False], ids=["full-txs", "hashes+batch-fetch"])
async def test_pending_swaps_reach_the_bus_decoded_before_any_block(
    devnet_state: Devnet, full_transactions: bool
) -> None:
    dn = devnet_state
    dn.node.set_automine(False)
    bus = InProcessBus()
    sub = bus.subscribe(TOPIC_PENDING_SWAPS, maxsize=1000)
    registry = CollectorRegistry()
    weth = dn.book.weth
    v2 = weth_pool(dn, "uniswap")
    async with (
        RpcClient(dn.node.http_url) as rpc,
        MempoolWatcher(
            bus,
            routers_for_book(dn.book),
            ws_url=dn.node.ws_url,
            rpc=rpc,
            registry=registry,
            full_transactions=full_transactions,
        ),
        TrafficGenerator(dn.node, dn.book, TrafficConfig(eth_fraction=1.0), seed=11) as gen,
    ):
        head = rpc_latest(dn)
        recs = [
            await gen.send_swap(pool=v2, zero_for_one=v2.token0 == weth, usd_size=500),  # ETH in
            await gen.send_swap(pool=v2, zero_for_one=v2.token1 == weth, usd_size=500),  # ETH out
            await gen.send_swap(pool=weth_pool(dn, "sushiswap"), usd_size=800),
            await gen.send_swap(venue="uniswap_v3", multihop=False, usd_size=900),
            await gen.send_swap(venue="uniswap_v3", multihop=True, usd_size=1200),
        ]
        assert all(r is not None for r in recs)
        records = [r for r in recs if r is not None]
        events = {ev.tx_hash: ev for ev in await collect(sub, len(records))}
        assert int(rpc_latest(dn)["number"], 16) == int(head["number"], 16)  # still no block mined
    assert {r.method for r in records} >= {
        "swapExactETHForTokens",
        "swapExactTokensForETH",
        "exactInputSingle",
    }
    assert any(r.method == "exactInput" and len(r.path) == 3 for r in records)
    deadline = int(head["timestamp"], 16) + gen.config.deadline_s
    for rec in records:
        assert_matches(events[rec.tx_hash.lower()], rec, dn, deadline)
    assert registry.get_sample_value("mevsuite_mempool_swaps_total", {"protocol": "uniswap_v2"}) == 3
    assert registry.get_sample_value("mevsuite_mempool_swaps_total", {"protocol": "uniswap_v3"}) == 2
    assert registry.get_sample_value("mevsuite_mempool_publish_latency_seconds_count") == 5
    assert await drain(sub) == []


async def test_websocket_cut_mid_stream_misses_nothing_and_duplicates_nothing(devnet_state: Devnet) -> None:
    dn = devnet_state
    dn.node.set_automine(False)
    block0 = dn.node.block_number()
    bus = InProcessBus()
    sub = bus.subscribe(TOPIC_PENDING_SWAPS, maxsize=1000)
    registry = CollectorRegistry()
    proxy = TcpProxy("127.0.0.1", dn.node.port)
    await proxy.start()
    sent: list[str] = []

    async def send(gen: TrafficGenerator, n: int) -> None:
        for _ in range(n):
            rec = await gen.send_swap(usd_size=300)
            assert rec is not None
            sent.append(rec.tx_hash.lower())

    try:
        async with (
            RpcClient(dn.node.http_url) as rpc,
            MempoolWatcher(
                bus,
                routers_for_book(dn.book),
                ws_url=proxy.url,
                rpc=rpc,
                registry=registry,
                backoff=0.02,
                backoff_max=0.2,
            ) as watcher,
            TrafficGenerator(dn.node, dn.book, seed=5) as gen,
        ):
            assert watcher.subscription is not None
            await send(gen, 2)
            before = await collect(sub, 2)

            await proxy.cut()  # the socket drops mid-stream; reconnect attempts are refused
            await eventually(lambda: not watcher.subscription or not watcher.subscription.connected)
            await send(gen, 3)  # nobody is listening on the websocket now
            # reconnect attempts are refused by the closed port
            await eventually(
                lambda: registry.get_sample_value(
                    "mevsuite_ws_errors_total",
                    {"subscription": "newPendingTransactions", "reason": "connect"},
                )
            )

            await proxy.start()  # same port again
            during = await collect(sub, 3)  # re-read from txpool_content after the re-subscribe
            await send(gen, 2)
            after = await collect(sub, 2)

            await watcher.resync()  # one more full re-read: everything pending is already known
            late = await drain(sub)
            pending = await rpc.request("txpool_content")
    finally:
        await proxy.close()

    published = [ev.tx_hash for ev in before + during + after + late]
    assert sorted(published) == sorted(sent)  # every swap exactly once, none missed
    assert {ev.tx_hash for ev in during} == set(sent[2:5])
    n_pending = sum(len(v) for v in pending["pending"].values())
    assert n_pending == 7 and dn.node.block_number() == block0  # all of them were still pending
    assert (
        registry.get_sample_value("mevsuite_ws_reconnects_total", {"subscription": "newPendingTransactions"})
        == 1
    )
    assert (
        registry.get_sample_value(
            "mevsuite_ws_errors_total", {"subscription": "newPendingTransactions", "reason": "dropped"}
        )
        == 1
    )
    assert (
        registry.get_sample_value("mevsuite_mempool_swaps_total", {"protocol": "uniswap_v2"})
        + registry.get_sample_value("mevsuite_mempool_swaps_total", {"protocol": "uniswap_v3"})
        == 7
    )
    # start-up read, the re-read after the reconnect, the explicit one
    assert registry.get_sample_value("mevsuite_mempool_resyncs_total") == 3
    assert watcher.stats.duplicates >= 7


async def test_mined_txs_and_duplicates_are_dropped(devnet_state: Devnet) -> None:
    dn = devnet_state
    dn.node.set_automine(False)
    bus = InProcessBus()
    sub = bus.subscribe(TOPIC_PENDING_SWAPS, maxsize=1000)
    registry = CollectorRegistry()
    async with (
        RpcClient(dn.node.http_url) as rpc,
        MempoolWatcher(
            bus, routers_for_book(dn.book), rpc=rpc, mode="poll", poll_interval=0.05, registry=registry
        ) as watcher,
        TrafficGenerator(dn.node, dn.book, seed=9) as gen,
    ):
        rec = await gen.send_swap(venue="uniswap_v3", usd_size=400)
        assert rec is not None
        (ev,) = await collect(sub, 1)  # found by polling txpool_content
        assert ev.tx_hash == rec.tx_hash.lower()
        dn.node.mine()
        mined = await rpc.request("eth_getTransactionByHash", [rec.tx_hash])
        assert mined["blockNumber"] is not None
        # a mined tx that was never seen (the watcher's memory of it forgotten) is still not published
        fresh = MempoolWatcher(bus, routers_for_book(dn.book), rpc=rpc, mode="poll", registry=registry)
        assert await fresh.handle_tx(mined) == 0
        assert registry.get_sample_value("mevsuite_mempool_mined_skipped_total") == 1
        rec2 = await gen.send_swap(venue="uniswap", usd_size=400)
        assert rec2 is not None
        (ev2,) = await collect(sub, 1)
        assert ev2.tx_hash == rec2.tx_hash.lower()
        await eventually(
            lambda: watcher.stats.duplicates >= 3
        )  # later polls see the same pending tx again ...
    assert await drain(sub) == []  # ... and publish it no second time
    assert registry.get_sample_value("mevsuite_mempool_duplicates_total") == watcher.stats.duplicates
