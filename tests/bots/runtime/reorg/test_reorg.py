"""Acceptance: a 2-block reorg on the devnet leaves pool state, database rows, bundle statuses and nonces equal
to the new canonical chain (SQLite and PostgreSQL); deeper reorgs resync; bad data never stops the watcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bots.metrics import Metrics
from bots.runtime.reorg import ReorgHandler
from bots.store import PnlSnapshot, Store
from chains.abi.blocks import BlockData, fetch_block
from chains.events import Event
from chains.node.rpc import RpcClient
from chains.send.flashbots import InclusionStatus, InclusionTracker
from chains.send.nonces import NonceManager
from chains.state.chain import ChainState, load_initial
from chains.watch.blocks import BlockWatcher, ChainReorg
from tests.bots.runtime.reorg.helpers import (
    Recorder,
    bundle_hash_of,
    chain_rows,
    pools,
    running,
    send,
    send_raw,
    sign,
    tracked,
    v2_swap,
    v3_swap,
)
from tests.fixtures.devnet import Devnet

WETH = 10**18
USDC = 10**6


def _hash_at(dev: Devnet, n: int) -> str:
    return str(dev.node.rpc("eth_getBlockByNumber", [hex(n), False])["hash"])


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


async def test_two_block_reorg_leaves_state_rows_bundles_and_nonces_on_the_new_chain(
    world: Devnet, store_url: str, tmp_path: Path
) -> None:
    dev, book = world, world.book
    node = dev.node
    cid = node.chain_id()
    ours, other, t3, t4 = book.traders[0], book.traders[2], book.traders[3], book.traders[4]
    addresses = tracked(book)
    async with RpcClient(node.http_url) as rpc, await Store.open(store_url, upgrade=True) as store:
        n0 = node.block_number()
        state = await load_initial(rpc, addresses, n0, journal_depth=8)
        nonce_before = int(await rpc.request("eth_getTransactionCount", [ours, "latest"]), 16)

        # Bundles built on block n0: A (our V2 swap) lands in n0+1, B (another account's V3 swap) in n0+2.
        raw_b = sign(node, v3_swap(book, other, "WETH", "USDC", 3000, 3 * WETH))
        h_a = send(node, v2_swap(book, ours, "WETH", "USDC", 2 * WETH))
        h_b = send_raw(node, raw_b)
        assert node.block_number() == n0 + 2
        bundle_a, bundle_b = bundle_hash_of(h_a), bundle_hash_of(h_b)
        bundle_of = {h_a: bundle_a, h_b: bundle_b}

        recorder = Recorder(store, cid, book, bundle_of)
        nonces = NonceManager(rpc, cid)
        metrics = Metrics(process_collectors=False)
        handler = ReorgHandler(store, cid, nonces=nonces, accounts=[ours], metrics=metrics)
        tracker = InclusionTracker(rpc, [h_a], [n0 + 1])
        handler.track(bundle_a, tracker)
        watcher = BlockWatcher(rpc, state, chain_id=cid, poll_interval=0.02)
        watcher.add_block_listener(recorder)
        watcher.add_block_listener(handler.on_block)
        watcher.add_reorg_listener(handler.on_reorg)
        seen: list[ChainReorg] = []

        async def on_reorg(r: ChainReorg) -> None:
            seen.append(r)

        watcher.add_reorg_listener(on_reorg)
        async with running(watcher):
            await watcher.wait_for(lambda w: w.head_number == n0 + 2)
            old = [(n, _hash_at(dev, n)) for n in (n0 + 1, n0 + 2)]
            for b, n in ((bundle_a, n0 + 1), (bundle_b, n0 + 2)):
                await store.record_bundle(
                    chain_id=cid,
                    block_number=n0,
                    block_hash=_hash_at(dev, n0),
                    bundle_hash=b,
                    target_block=n,
                    bot="arb",
                    status="submitted",
                    tx_count=1,
                    expected_profit=10**15,
                    tip=10**14,
                )
                await store.set_bundle_status(
                    chain_id=cid,
                    bundle_hash=b,
                    status="included",
                    included_block_number=n,
                    included_block_hash=_hash_at(dev, n),
                )
                await store.record_pnl(
                    chain_id=cid,
                    block_number=n,
                    block_hash=_hash_at(dev, n),
                    bot="arb",
                    token=book.token("WETH").address,
                    realized=10**15,
                    gas_spent=10**14,
                    net=9 * 10**14,
                )
            assert (await tracker.poll())[n0 + 1].status is InclusionStatus.LANDED
            assert await nonces.reserve(ours) == nonce_before + 1  # the manager counts from the chain
            await nonces.bundle_landed(ours, nonce_before)
            assert await nonces.tentative(ours) == nonce_before + 2  # after our reserved public nonce
            before_reorg = pools(watcher.state)

            # The new branch: different swaps (t3 sells USDC on V2, t4 buys on the 500 tier), B again, not A.
            node.rpc(
                "anvil_reorg",
                [
                    2,
                    [
                        [v2_swap(book, t3, "USDC", "WETH", 5_000 * USDC), 0],
                        [raw_b, 0],
                        [v3_swap(book, t4, "WETH", "USDC", 500, WETH), 1],
                    ],
                ],
            )
            new_head = _hash_at(dev, n0 + 2)
            assert new_head != old[1][1]
            await watcher.wait_for(lambda w: w.head_number == n0 + 2 and w.head_hash == new_head and w.reorgs)

        # --- the reorg as announced
        assert len(seen) == 1
        r = seen[0]
        assert (r.common_ancestor, r.common_ancestor_hash) == (n0, _hash_at(dev, n0))
        assert list(zip(r.orphaned_numbers, r.orphaned_hashes, strict=True)) == old
        assert (r.new_head, r.new_head_hash, r.resynced) == (n0 + 2, new_head, False)

        # --- pool state equals a fresh load of the new chain (and the reorg did change it)
        fresh = await load_initial(rpc, addresses, n0 + 2)
        assert pools(watcher.state) == pools(fresh)
        assert pools(fresh)["v2"] != before_reorg["v2"] and pools(fresh)["v3"] != before_reorg["v3"]

        # --- database rows equal a fresh recording of the canonical chain
        async with await Store.open(
            f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}", upgrade=True
        ) as fresh_store:
            again = Recorder(fresh_store, cid, book, bundle_of)
            for n in (n0 + 1, n0 + 2):
                await again(await fetch_block(rpc, n))
            expected = await chain_rows(fresh_store)
        got = await chain_rows(store)
        assert got == expected
        assert len(got["trades"]) >= 3 and len(got["blocks"]) == 2

        # --- bundles: A orphaned, B landed again in the new block n0+1; their PnL removed
        new_first = _hash_at(dev, n0 + 1)
        assert await store.bundle_status(cid, bundle_a) == ("orphaned", None, None)
        assert await store.bundle_status(cid, bundle_b) == ("included", n0 + 1, new_first)
        assert handler.relanded == {bundle_b: (n0 + 1, new_first)}
        assert await store.total(PnlSnapshot.net) == 0
        assert (await store.counts())["pnl_snapshots"] == 0
        inclusion = handler.inclusions[bundle_a][n0 + 1]
        assert (inclusion.status, inclusion.orphaned_hash) == (InclusionStatus.ORPHANED, old[0][1])
        (outcome,) = handler.outcomes
        assert [b.bundle_hash for b in outcome.rollback.orphaned_bundles] == [bundle_a, bundle_b]
        assert [b.tx_hashes for b in outcome.rollback.orphaned_bundles] == [(h_a,), (h_b,)]
        assert outcome.rollback.deleted["pnl_snapshots"] == 2 and outcome.rollback.deleted["blocks"] == 2

        # --- nonces equal the chain's: A's nonce is free again
        chain_nonce = int(await rpc.request("eth_getTransactionCount", [ours, "pending"]), 16)
        assert chain_nonce == nonce_before
        assert handler.outcomes[0].nonces == {ours: nonce_before}
        assert await nonces.tentative(ours) == nonce_before
        assert await nonces.reserve(ours) == nonce_before

        # --- metrics
        assert metrics.value("mevsuite_reorgs_total", {"chain_id": str(cid)}) == 1
        reg = watcher.metrics.registry
        labels = {"chain_id": str(cid)}
        assert reg.get_sample_value("mevsuite_block_watcher_reorg_depth_blocks_count", labels) == 1
        assert reg.get_sample_value("mevsuite_block_watcher_reorg_depth_blocks_sum", labels) == 2
        assert reg.get_sample_value("mevsuite_block_watcher_blocks_applied_total", labels) == 4
        assert reg.get_sample_value("mevsuite_block_watcher_apply_seconds_count", labels) == 4


async def test_a_reorg_deeper_than_the_journal_or_the_history_resyncs(world: Devnet) -> None:
    dev, book = world, world.book
    node = dev.node
    addresses = tracked(book)
    traders = book.traders
    async with RpcClient(node.http_url) as rpc:
        n0 = node.block_number()
        resyncs: list[int] = []

        async def resync(n: int) -> ChainState:
            resyncs.append(n)
            return await load_initial(rpc, addresses, n, journal_depth=1)

        state = await load_initial(rpc, addresses, n0, journal_depth=1)
        watcher = BlockWatcher(rpc, state, resync=resync, poll_interval=0.02, chain_id=7)
        async with running(watcher):
            send(node, v2_swap(book, traders[5], "WETH", "USDC", WETH))
            send(node, v3_swap(book, traders[6], "WETH", "USDC", 3000, WETH))
            await watcher.wait_for(lambda w: w.head_number == n0 + 2)
            node.rpc("anvil_reorg", [2, [[v3_swap(book, traders[7], "USDC", "WETH", 500, 4_000 * USDC), 1]]])
            head = _hash_at(dev, n0 + 2)
            await watcher.wait_for(lambda w: w.head_hash == head)
        assert resyncs == [
            n0
        ]  # the ancestor was known (hash history), the journal holds 1 block: reload there
        assert watcher.reorgs[-1].resynced and watcher.reorgs[-1].common_ancestor == n0
        assert pools(watcher.state) == pools(await load_initial(rpc, addresses, n0 + 2))

        # History of one block: the ancestor cannot be found -> resync at the new head.
        watcher2 = BlockWatcher(
            rpc,
            await load_initial(rpc, addresses, n0 + 2, journal_depth=1),
            resync=resync,
            poll_interval=0.02,
            history_depth=1,
            chain_id=8,
        )
        async with running(watcher2):
            send(node, v2_swap(book, traders[8], "USDC", "WETH", 3_000 * USDC))
            await watcher2.wait_for(lambda w: w.head_number == n0 + 3)
            node.rpc("anvil_reorg", [2, [[v2_swap(book, traders[9], "WETH", "USDC", 3 * WETH), 0]]])
            head = _hash_at(dev, n0 + 3)
            await watcher2.wait_for(lambda w: w.head_hash == head)
        r = watcher2.reorgs[-1]
        assert (r.common_ancestor, r.resynced, r.new_head) == (None, True, n0 + 3)
        assert resyncs == [n0, n0 + 3]
        assert pools(watcher2.state) == pools(await load_initial(rpc, addresses, n0 + 3))
        reg = watcher.metrics.registry
        assert (
            reg.get_sample_value(
                "mevsuite_block_watcher_resyncs_total", {"chain_id": "7", "reason": "beyond_journal"}
            )
            == 1
        )
        assert (
            watcher2.metrics.registry.get_sample_value(
                "mevsuite_block_watcher_resyncs_total", {"chain_id": "8", "reason": "beyond_history"}
            )
            == 1
        )


class FaultyRpc:
    """The real client, with injected faults: a dropped request, and two malformed answers for one block."""

    def __init__(self, rpc: RpcClient, bad_block: int) -> None:
        self.rpc, self.bad_block = rpc, bad_block
        self.drops, self.corruptions = 1, 2

    async def request(self, method: str, params: Any = None) -> Any:
        if self.drops:
            self.drops -= 1
            raise ConnectionResetError("injected: connection dropped")
        return await self.rpc.request(method, params)

    async def batch(self, calls: Any) -> list[Any]:
        out = await self.rpc.batch(calls)
        is_fetch = len(calls) == 2 and calls[1][0] == "eth_getBlockReceipts"
        if is_fetch and calls[0][1][0] == hex(self.bad_block) and self.corruptions:
            self.corruptions -= 1
            block, receipts = out
            if self.corruptions == 1:
                return [block, receipts[:-1]]  # a receipt missing
            bad = [{**rc, "logs": [{**lg, "data": "0x12"} for lg in rc["logs"]]} for rc in receipts]
            return [block, bad]  # logs cut short
        return out


async def test_malformed_data_and_dropped_requests_are_counted_and_retried(world: Devnet) -> None:
    dev, book = world, world.book
    node = dev.node
    addresses = tracked(book)
    async with RpcClient(node.http_url) as rpc:
        n0 = node.block_number()
        send(node, v2_swap(book, book.traders[10], "WETH", "USDC", WETH))
        send(node, v3_swap(book, book.traders[11], "WETH", "USDC", 3000, WETH))

        async def heads() -> AsyncIterator[dict[str, Any]]:
            yield {"number": "0xnothex", "hash": "0x00"}
            yield {"hash": _hash_at(dev, n0 + 1)}
            yield {"number": hex(n0 + 1), "hash": _hash_at(dev, n0 + 1)}
            # the stream ends: the watcher polls instead

        applied: list[BlockData] = []

        async def on_block(data: BlockData) -> None:
            applied.append(data)

        faulty = FaultyRpc(rpc, n0 + 1)
        state = await load_initial(rpc, addresses, n0)
        watcher = BlockWatcher(
            faulty, state, heads=heads(), poll_interval=0.02, backoff_initial=0.01, chain_id=9
        )
        watcher.add_block_listener(on_block)
        async with running(watcher):
            await watcher.wait_for(lambda w: w.head_number == n0 + 2)
        assert [d.block.number for d in applied] == [n0 + 1, n0 + 2]
        assert watcher.error_count("head") == 2
        assert watcher.error_count("malformed_block") == 2
        assert watcher.error_count("head_stream") == 1
        assert watcher.error_count("rpc") == 1  # the dropped head poll
        assert pools(watcher.state) == pools(await load_initial(rpc, addresses, n0 + 2))


async def test_a_rollback_to_a_shorter_chain_then_a_new_block(world: Devnet) -> None:
    dev, book = world, world.book
    node = dev.node
    addresses = tracked(book)
    async with RpcClient(node.http_url) as rpc:
        n0 = node.block_number()
        published: list[tuple[str, Event]] = []

        class ListPublisher:
            async def publish(self, topic: str, event: Event) -> None:
                published.append((topic, event))

        watcher = BlockWatcher(
            rpc, await load_initial(rpc, addresses, n0), poll_interval=0.02, publisher=ListPublisher()
        )
        async with running(watcher):
            send(node, v2_swap(book, book.traders[12], "WETH", "USDC", WETH))
            send(node, v2_swap(book, book.traders[13], "WETH", "USDC", WETH))
            await watcher.wait_for(lambda w: w.head_number == n0 + 2)
            dropped = watcher.head_hash
            node.rpc("anvil_rollback", [1])  # the chain is one block shorter, nothing replaces the block yet
            await watcher.wait_for(lambda w: w.head_number == n0 + 1)
            (r,) = watcher.reorgs
            assert (r.common_ancestor, r.orphaned_numbers, r.orphaned_hashes, r.new_head) == (
                n0 + 1,
                (n0 + 2,),
                (dropped,),
                n0 + 1,
            )
            assert pools(watcher.state) == pools(await load_initial(rpc, addresses, n0 + 1))
            send(node, v3_swap(book, book.traders[14], "WETH", "USDC", 3000, WETH))
            await watcher.wait_for(lambda w: w.head_number == n0 + 2)
        assert watcher.head_hash != dropped
        assert pools(watcher.state) == pools(await load_initial(rpc, addresses, n0 + 2))
        assert watcher.error_count("malformed_block") == 0
        # "block applied" (NewBlock after the whole block) and the reorg, in chain order, on their topics
        assert [(t, e.KIND, getattr(e, "number", None)) for t, e in published] == [
            ("chain.blocks", "new_block", n0 + 1),
            ("chain.blocks", "new_block", n0 + 2),
            ("chain.reorgs", "chain_reorg", None),
            ("chain.blocks", "new_block", n0 + 2),
        ]
        assert Event.from_json(r.to_json()) == r


async def test_follows_a_new_heads_subscription_through_a_reorg(world: Devnet) -> None:
    subscribe = pytest.importorskip("chains.node.subscribe")
    dev, book = world, world.book
    node = dev.node
    addresses = tracked(book)
    async with RpcClient(node.http_url) as rpc, subscribe.WsSubscription(node.ws_url, "newHeads") as heads:
        n0 = node.block_number()
        watcher = BlockWatcher(rpc, await load_initial(rpc, addresses, n0), heads=heads, poll_interval=60)
        async with running(watcher):
            send(node, v2_swap(book, book.traders[15], "WETH", "USDC", WETH))
            send(node, v3_swap(book, book.traders[16], "WETH", "USDC", 500, WETH))
            await watcher.wait_for(lambda w: w.head_number == n0 + 2)
            node.rpc("anvil_reorg", [1, [[v2_swap(book, book.traders[17], "USDC", "WETH", 2_000 * USDC), 0]]])
            head = _hash_at(dev, n0 + 2)
            send(
                node, v3_swap(book, book.traders[18], "WETH", "USDC", 3000, WETH)
            )  # a new head after the reorg
            await watcher.wait_for(lambda w: w.head_number == n0 + 3)
        assert [(r.common_ancestor, r.depth) for r in watcher.reorgs] == [(n0 + 1, 1)]
        assert watcher.state.block_number == n0 + 3 and _hash_at(dev, n0 + 2) == head
        assert pools(watcher.state) == pools(await load_initial(rpc, addresses, n0 + 3))
        assert (
            watcher.error_count("head_stream") == 0
        )  # heads came from the subscription (polling every 60 s)
