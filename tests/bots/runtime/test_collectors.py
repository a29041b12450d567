"""The block collector on a real anvil: the ordering rule (block N+1 is applied to the state only once block N is
done: its strategy call and every action of it, follow-ups included, executed), reorgs delivered before the new
branch, and a failing strategy or a restarted collector losing and repeating no block."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from bots.runtime.collectors import (
    TOPIC_APPLIED_BLOCKS,
    TOPIC_REORGS,
    BlockApplied,
    BlockCollector,
    ChainReorged,
)
from bots.runtime.engine import Backoff, Engine, Executor, Strategy
from chains.events import AnyEvent
from chains.node.anvil import AnvilNode
from chains.node.rpc import RpcClient
from chains.state.chain import ChainState, StateAddresses, load_initial
from chains.watch.blocks import BlockWatcher

SLOW = 0.02  # an executor's slow step: widens the window in which a racing watcher would apply the next block


@dataclass(frozen=True, slots=True)
class Work:
    number: int


@dataclass(frozen=True, slots=True)
class Stored:
    number: int


class Blocks(Strategy[Work]):
    """Logs what it sees (and the state's block while it sees it); one action per applied block."""

    name = "log"
    topics = (TOPIC_APPLIED_BLOCKS, TOPIC_REORGS)

    def __init__(self, fail_on: int | None = None) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.fail_on = fail_on

    async def process_event(self, event: AnyEvent) -> Sequence[Work]:
        if isinstance(event, ChainReorged):
            r = event.reorg
            self.seen.append(("reorged", r.common_ancestor, r.orphaned_numbers, event.state.block_number))
            return []
        assert isinstance(event, BlockApplied)
        self.seen.append(
            ("applied", event.number, event.data.block.hash, event.state.block_number, event.initial)
        )
        if event.number == self.fail_on:
            raise RuntimeError(f"injected: strategy failure on block {event.number}")
        return [Work(event.number)]


class Slow(Executor[Work | Stored]):
    """Records the state's block at the END of a slow step; ``Work`` returns a ``Stored`` follow-up."""

    def __init__(self, name: str, kind: type, watcher: BlockWatcher) -> None:
        self.name, self.kind, self.watcher = name, kind, watcher
        self.done: list[tuple[int, int | None]] = []

    def accepts(self, action: object) -> bool:
        return isinstance(action, self.kind)

    async def execute(self, action: Work | Stored) -> Sequence[object]:
        await asyncio.sleep(SLOW)
        self.done.append((action.number, self.watcher.state.block_number))
        return [Stored(action.number)] if isinstance(action, Work) else []


class FlakyWatcher(BlockWatcher):
    """A watcher whose next ``sync_to`` fails once ``fail_next`` is set (its run() then raises)."""

    fail_next = False

    async def sync_to(self, number: int, block_hash: str | None = None) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("injected: the watcher failed")
        await super().sync_to(number, block_hash)


@dataclass
class Bot:
    engine: Engine
    task: asyncio.Task[dict[str, Any]]
    collector: BlockCollector
    strategy: Blocks
    work: Slow
    store: Slow


@pytest.fixture
async def rpc(anvil: AnvilNode) -> AsyncIterator[RpcClient]:
    async with RpcClient(anvil.http_url) as client:
        yield client


async def start(rpc: RpcClient, at: int, *, fail_on: int | None = None, flaky: bool = False) -> Bot:
    state: ChainState = await load_initial(rpc, StateAddresses(), at)
    watcher = (FlakyWatcher if flaky else BlockWatcher)(rpc, state, poll_interval=0.01)
    collector = BlockCollector(watcher)
    strategy = Blocks(fail_on)
    work, store = Slow("work", Work, watcher), Slow("store", Stored, watcher)
    engine = Engine(
        [collector], [strategy], [work, store], name="collector-test", restart_backoff=Backoff(0.01, 2, 0.05)
    )
    return Bot(engine, asyncio.create_task(engine.run()), collector, strategy, work, store)


async def stop(bot: Bot) -> dict[str, Any]:
    bot.engine.stop()
    return await bot.task


async def test_the_next_block_is_applied_only_once_the_last_one_is_done(
    anvil: AnvilNode, rpc: RpcClient
) -> None:
    n0 = anvil.block_number()
    anvil.mine(4)  # all there before the bot starts: a watcher that did not wait would race ahead
    bot = await start(rpc, n0)
    await bot.collector.wait_done(n0 + 4, timeout=30)
    health = await stop(bot)
    numbers = list(range(n0, n0 + 5))
    # Every stage of block N -- the strategy, the executor, the follow-up's executor -- saw the state at N.
    assert [(s[1], s[3], s[4]) for s in bot.strategy.seen] == [(n, n, n == n0) for n in numbers]
    assert bot.work.done == [(n, n) for n in numbers]
    assert bot.store.done == [(n, n) for n in numbers]
    assert health["executors"]["work"]["executed"] == health["executors"]["store"]["executed"] == 5
    assert bot.collector.done_block == n0 + 4


async def test_a_reorg_comes_before_the_new_branch(anvil: AnvilNode, rpc: RpcClient) -> None:
    n0 = anvil.block_number()
    fork = anvil.snapshot()
    bot = await start(rpc, n0)
    anvil.mine(2)
    await bot.collector.wait_done(n0 + 2, timeout=30)
    old = [anvil.rpc("eth_getBlockByNumber", [hex(n), False])["hash"] for n in (n0 + 1, n0 + 2)]

    assert anvil.revert(fork)
    a, b = anvil.accounts()[:2]
    # A transfer (automine: its own block), so the new n0+1 differs from the old one.
    anvil.rpc("eth_sendTransaction", [{"from": a, "to": b, "value": hex(1)}])
    anvil.mine(2)
    new = [anvil.rpc("eth_getBlockByNumber", [hex(n), False])["hash"] for n in (n0 + 1, n0 + 2, n0 + 3)]
    assert new[:2] != old
    await bot.collector.wait_done(n0 + 3, timeout=30)
    health = await stop(bot)
    assert health["strategies"]["log"]["errors"] == 0
    # The reorg is delivered with the state rolled back to the ancestor, before any block of the new branch.
    assert [s[:4] for s in bot.strategy.seen] == [
        ("applied", n0, anvil.rpc("eth_getBlockByNumber", [hex(n0), False])["hash"], n0),
        ("applied", n0 + 1, old[0], n0 + 1),
        ("applied", n0 + 2, old[1], n0 + 2),
        ("reorged", n0, (n0 + 1, n0 + 2), n0),
        *[("applied", n0 + 1 + i, h, n0 + 1 + i) for i, h in enumerate(new)],
    ]


async def test_a_failing_strategy_and_a_collector_restart_lose_and_repeat_no_block(
    anvil: AnvilNode, rpc: RpcClient
) -> None:
    n0 = anvil.block_number()
    anvil.mine(2)
    bot = await start(rpc, n0, fail_on=n0 + 1, flaky=True)
    await bot.collector.wait_done(n0 + 2, timeout=30)  # the failing strategy call did not stall the blocks
    watcher = bot.collector.watcher
    assert isinstance(watcher, FlakyWatcher)
    watcher.fail_next = True
    anvil.mine(2)  # the watcher fails on the way to them; the engine restarts the collector
    await bot.collector.wait_done(n0 + 4, timeout=30)
    health = await stop(bot)
    assert health["collectors"]["blocks"]["restarts"] == 1
    assert "injected: the watcher failed" in str(health["collectors"]["blocks"]["last_error"])
    assert health["strategies"]["log"]["errors"] == 1
    # Each block reached the strategy exactly once, in order; the failed one produced no action.
    assert [s[1] for s in bot.strategy.seen] == list(range(n0, n0 + 5))
    assert [n for n, _ in bot.store.done] == [n0, n0 + 2, n0 + 3, n0 + 4]
    assert all(n == at for n, at in bot.work.done + bot.store.done)
