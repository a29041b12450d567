"""Pluggable traffic actors: the registry, a test-only actor next to the built-in ones, and determinism."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chains.devnet.actors import (
    ActorContext,
    OracleMove,
    SwapRecord,
    TrafficActor,
    TrafficConfig,
    TrafficRecord,
    UnknownTrafficActor,
    hex_int,
    register_actor,
    registered_actors,
    unregister_actor,
)
from chains.devnet.builder import BlockBuilder
from chains.devnet.traffic import TrafficGenerator

TEST_ACTOR = "eth_transfers_test"
STEP_CFG = TrafficConfig(swaps_per_block=6, oracle_moves_per_block=2, loose_fraction=0.5)

# What the default actors send with STEP_CFG, seed 99, on the seed-7 devnet, over 3 steps (a block mined after
# each): recorded with the pre-actor TrafficGenerator (git show <before issue 11>:chains/devnet/traffic.py) and
# reproduced by the actor runner. Swaps: (trader index, venue, method, amount_in, amount_out_min, loose);
# oracle moves: (symbol, new price). If the devnet world itself changes (chains/devnet/world.py, deploy.py),
# regenerate it with `_default_traffic`; if only the traffic code changed, this must not move.
GOLDEN: list[list[tuple[Any, ...]]] = [
    [
        (11, "uniswap", "swapExactTokensForTokens", 7511304284416109445120, 5112538566, True),
        (11, "uniswap", "swapExactTokensForTokens", 8866587393428219232256, 6008602497, True),
        ("LINK", 750786092),
    ],
    [
        (10, "uniswap_v3", "exactInput", 6536594416, 15509361, True),
        (16, "uniswap_v3", "exactInputSingle", 671720574457454336, 867633946, True),
        (15, "uniswap_v3", "exactInputSingle", 62111155, 23261449414771410, True),
        (1, "uniswap", "swapExactTokensForTokens", 1180625756141636288512, 1048944092, False),
        (3, "sushiswap", "swapExactTokensForTokens", 4210368094567899070464, 1547711512764690655, True),
        (13, "uniswap_v3", "exactInputSingle", 3097351588817817088, 5696005206, False),
        ("DAI", 99907674),
        ("DAI", 99983652),
        ("DAI", 99955476),
    ],
    [
        (2, "sushiswap", "swapExactTokensForTokens", 2253385224856617615360, 1527176788, True),
        (13, "uniswap", "swapExactTokensForTokens", 528808626, 523450911, False),
        (7, "uniswap_v3", "exactInputSingle", 2548767249902555648, 4688223228623376470343, False),
        (4, "sushiswap", "swapExactTokensForTokens", 1100838427758990464, 4802329, True),
        (6, "uniswap_v3", "exactInputSingle", 1367622733, 957238172039175914683, True),
        (2, "uniswap_v3", "exactInputSingle", 16422465, 3366407238, True),
        ("USDC", 100065215),
        ("WBTC", 3011112032200),
    ],
]


@dataclass(frozen=True, slots=True)
class Transfer:
    tx_hash: str
    value: int


class EthTransferActor(TrafficActor):
    """A test-only actor: one plain ETH transfer per step (random value from its own stream)."""

    def __init__(self, ctx: ActorContext, sender: str, to: str) -> None:
        super().__init__(ctx)
        self.sender, self.to = sender, to
        self.sent: list[Transfer] = []
        self._unsettled: list[Transfer] = []

    async def step(self) -> list[TrafficRecord]:
        value = self.ctx.rng.randint(1, 10**15)
        tx = {"from": self.sender, "to": self.to, "value": hex(value), "gas": hex(21_000)}
        rec = Transfer(str(await self.ctx._call("eth_sendTransaction", [tx])), value)
        self.sent.append(rec)
        self._unsettled.append(rec)
        return [rec]

    async def settle(self) -> list[tuple[TrafficRecord, bool]]:
        if not self._unsettled:
            return []
        receipts = await self.ctx._batch(
            [("eth_getTransactionReceipt", [r.tx_hash]) for r in self._unsettled]
        )
        done: list[tuple[TrafficRecord, bool]] = [
            (r, hex_int(rc["status"]) == 1) for r, rc in zip(self._unsettled, receipts, strict=True) if rc
        ]
        self._unsettled = [r for r, rc in zip(self._unsettled, receipts, strict=True) if not rc]
        return done


@pytest.fixture
def transfer_actor(devnet: Any) -> Iterator[tuple[str, str]]:
    """Register the test actor (sender: dev account 7, untouched by the world) for one test."""
    sender, to = devnet.node.accounts()[7], devnet.node.accounts()[8]
    register_actor(TEST_ACTOR)(lambda ctx: EthTransferActor(ctx, sender, to))
    try:
        yield sender, to
    finally:
        unregister_actor(TEST_ACTOR)


@pytest.fixture
async def builder(devnet_state: Any) -> AsyncIterator[BlockBuilder]:
    devnet_state.node.set_automine(False)  # the devnet fixture restores it
    async with BlockBuilder(devnet_state.node, interval_s=0.1, block_time_s=12) as b:
        yield b


def _summary(dev: Any, swaps: list[SwapRecord], moves: list[OracleMove]) -> list[tuple[Any, ...]]:
    traders = [t.lower() for t in dev.book.traders]
    return [
        (traders.index(s.trader.lower()), s.venue, s.method, s.amount_in, s.amount_out_min, s.loose)
        for s in swaps
    ] + [(m.symbol, m.new_price) for m in moves]


async def _default_traffic(
    dev: Any, builder: BlockBuilder, cfg: TrafficConfig, steps: int = 3
) -> tuple[list[list[tuple[Any, ...]]], TrafficGenerator]:
    """Run ``steps`` steps (a block mined after each) from a snapshot, then put the chain back."""
    snap = dev.node.snapshot()
    out: list[list[tuple[Any, ...]]] = []
    try:
        async with TrafficGenerator(dev.node, dev.book, cfg, seed=99) as tg:
            for _ in range(steps):
                swaps, moves = await tg.step()
                out.append(_summary(dev, swaps, moves))
                await builder.build_block()
            await tg.settle()
        return out, tg
    finally:
        dev.node.drop_all_transactions()
        dev.node.revert(snap)


def test_the_built_in_actors_are_registered_and_the_default() -> None:
    assert {"swappers", "oracle"} <= set(registered_actors())
    assert TrafficConfig().actors == ("swappers", "oracle")


def test_unknown_or_duplicate_actor_names_are_clear_errors(devnet: Any) -> None:
    with pytest.raises(UnknownTrafficActor, match=r"unknown traffic actor 'nobody' \(registered: .*oracle"):
        TrafficGenerator(devnet.node, devnet.book, TrafficConfig(actors=("swappers", "nobody")))
    with pytest.raises(ValueError, match="distinct"):
        TrafficConfig(actors=("oracle", "oracle"))
    with pytest.raises(ValueError, match="already registered"):
        register_actor("oracle")(lambda ctx: EthTransferActor(ctx, "0x0", "0x0"))


async def test_only_the_configured_actors_run(devnet_state: Any) -> None:
    dev = devnet_state
    dev.node.set_automine(False)
    cfg = TrafficConfig(swaps_per_block=4, oracle_moves_per_block=3, actors=("oracle",))
    async with TrafficGenerator(dev.node, dev.book, cfg, seed=1) as tg:
        for _ in range(3):
            swaps, _moves = await tg.step()
            assert swaps == []
        assert tg.stats.oracle_moves > 0 and tg.stats.total_sent == 0 and tg.swaps == []
        assert set(tg.actors) == {"oracle"}
        with pytest.raises(LookupError, match="'swappers' is not configured"):
            await tg.send_swap()


async def test_default_actors_send_the_golden_transactions(devnet_state: Any, builder: BlockBuilder) -> None:
    got, tg = await _default_traffic(devnet_state, builder, STEP_CFG)
    assert got == GOLDEN
    assert tg.stats.records_by_actor == {"swappers": tg.stats.total_sent, "oracle": tg.stats.oracle_moves}


async def test_a_test_actor_runs_alongside_the_defaults_without_changing_them(
    devnet_state: Any, builder: BlockBuilder, transfer_actor: tuple[str, str]
) -> None:
    dev = devnet_state
    sender, to = transfer_actor
    alone, _ = await _default_traffic(dev, builder, STEP_CFG)
    cfg = TrafficConfig(
        swaps_per_block=6,
        oracle_moves_per_block=2,
        loose_fraction=0.5,
        actors=("swappers", "oracle", TEST_ACTOR),
    )
    assert cfg.actors[-1] == TEST_ACTOR
    to_before = dev.node.get_balance(to)
    async with TrafficGenerator(dev.node, dev.book, cfg, seed=99) as tg:
        together: list[list[tuple[Any, ...]]] = []
        for _ in range(3):
            swaps, moves = await tg.step()
            together.append(_summary(dev, swaps, moves))
            assert [type(r) for r in tg.last_step[TEST_ACTOR]] == [Transfer]
            await builder.build_block()
        settled = await tg.settle()
        actor = tg.actor(TEST_ACTOR)
        assert isinstance(actor, EthTransferActor)
    # the defaults draw from the main stream, the test actor from its own: the defaults send exactly the same
    assert together == alone
    assert len(actor.sent) == 3 and tg.stats.records_by_actor[TEST_ACTOR] == 3
    for rec in actor.sent:
        rc = dev.node.rpc("eth_getTransactionReceipt", [rec.tx_hash])
        assert rc is not None and rc["status"] == "0x1" and rc["from"].lower() == sender.lower()
    assert dev.node.get_balance(to) - to_before == sum(r.value for r in actor.sent)
    assert (
        sum(isinstance(r, Transfer) for r, _ in settled) == 1
    )  # the last one; earlier ones settled in step()
