"""Acceptance: 100 blocks of devnet traffic (swaps, LP mints/burns, Aave actions, oracle moves, a liquidation),
state fed block by block from fetch_block's logs, then compared with the chain to the wei."""

from __future__ import annotations

import time
from typing import Any

from chains.abi.blocks import fetch_block
from chains.devnet.actors import TrafficConfig
from chains.devnet.builder import BlockBuilder
from chains.devnet.traffic import TrafficGenerator
from chains.node.rpc import RpcClient
from chains.state.chain import ChainState, load_initial
from tests.chains.state.helpers import (
    DEADLINE,
    MAX_UINT,
    T_INCREASE,
    assert_pools_equal_chain,
    pool_of,
    receipt_ok,
    send,
)
from tests.fixtures.devnet import Devnet

BLOCKS = 100
ZERO = "0x" + "0" * 40


class Scenario:
    """Liquidity and Aave actions the traffic generator does not make, sent at fixed blocks of the run."""

    def __init__(self, rpc: RpcClient, dev: Devnet, state: ChainState) -> None:
        self.rpc, self.dev, self.state = rpc, dev, state
        book = dev.book
        self.npm = book.v3.position_manager
        self.pool = book.aave.pool
        self.t1, self.t2 = book.traders[-1], book.traders[-2]
        self.sent: list[str] = []
        self.positions: list[tuple[int, int]] = []  # (tokenId, liquidity)
        self.mint_txs: list[str] = []
        self.liquidated: list[str] = []

    def tok(self, sym: str) -> str:
        return self.dev.book.token(sym).address

    async def tx(self, sender: str, to: str, art: str, fn: str, *args: Any) -> None:
        self.sent.append(await send(self.rpc, sender, to, art, fn, *args))

    async def lp_mint(self, a: str, b: str, fee: int, lo_steps: int, hi_steps: int) -> None:
        p = pool_of(self.dev, a, b, fee)
        ours = self.state.v3[p.address.lower()]
        sp = ours.tick_spacing
        base = ours.tick // sp * sp
        amounts = [
            int(50_000 / t.usd_price * 10**t.decimals)
            for t in map(self.dev.book.token_by_address, (p.token0, p.token1))
        ]
        params = (
            p.token0,
            p.token1,
            fee,
            base + lo_steps * sp,
            base + hi_steps * sp,
            *amounts,
            0,
            0,
            self.dev.book.deployer,
            DEADLINE,
        )
        h = await send(
            self.rpc, self.dev.book.deployer, self.npm, "NonfungiblePositionManager", "mint", params
        )
        self.sent.append(h)
        self.mint_txs.append(h)

    async def collect_positions(self) -> None:
        for h in self.mint_txs:
            rc = await receipt_ok(self.rpc, h)
            inc = [lg for lg in rc["logs"] if lg["topics"][0] == T_INCREASE]
            self.positions.append((int(inc[0]["topics"][1], 16), int(inc[0]["data"][2:66], 16)))
        self.mint_txs.clear()

    async def lp_decrease(self, index: int, fraction_num: int, fraction_den: int) -> None:
        token_id, liq = self.positions[index]
        amount = liq * fraction_num // fraction_den
        self.positions[index] = (token_id, liq - amount)
        await self.tx(
            self.dev.book.deployer,
            self.npm,
            "NonfungiblePositionManager",
            "decreaseLiquidity",
            (token_id, amount, 0, 0, DEADLINE),
        )

    async def before_block(self, i: int, traffic: TrafficGenerator) -> None:
        t1, t2, pool, d = self.t1, self.t2, self.pool, self.dev.book.deployer
        if i == 1:
            for who in (t1, t2):
                for sym in ("WETH", "USDC", "DAI"):
                    await self.tx(who, self.tok(sym), "MintableERC20", "approve", pool, MAX_UINT)
            await self.lp_mint("WETH", "USDC", 3000, -3, 2)  # around the price: new ticks, active liquidity
            await self.lp_mint("WETH", "USDC", 500, 4, 9)  # above the price: out of range
            await self.lp_mint("USDC", "USDT", 100, -2, 1)  # spacing 1
        elif i == 2:
            await self.collect_positions()
            await self.tx(t1, pool, "Pool", "supply", self.tok("WETH"), 50 * 10**18, t1, 0)
            await self.tx(t2, pool, "Pool", "supply", self.tok("USDC"), 100_000 * 10**6, t2, 0)
        elif i == 5:
            await self.tx(t1, pool, "Pool", "borrow", self.tok("USDC"), 20_000 * 10**6, 2, 0, t1)
        elif i == 12:
            await self.tx(t1, pool, "Pool", "repay", self.tok("USDC"), 5_000 * 10**6, 2, t1)
            await self.lp_decrease(0, 1, 3)
        elif i == 20:
            a_weth = self.dev.book.aave.reserves["WETH"].a_token
            await self.tx(t1, a_weth, "AToken", "transfer", t2, 10**18)  # t2 gets WETH collateral enabled
            await self.tx(t2, pool, "Pool", "withdraw", self.tok("USDC"), 10_000 * 10**6, t2)
        elif i == 28:
            await self.tx(t1, pool, "Pool", "repay", self.tok("USDC"), MAX_UINT, 2, t1)  # full: bit cleared
            await self.lp_decrease(0, 1, 1)  # the rest: ticks uninitialized again
            await self.lp_decrease(2, 1, 1)
        elif i == 35:
            await self.tx(t1, pool, "Pool", "borrow", self.tok("DAI"), 10_000 * 10**18, 2, 0, t1)
            await self.tx(t2, pool, "Pool", "setUserUseReserveAsCollateral", self.tok("WETH"), False)
        elif i == 40:
            conf = self.dev.book.aave.pool_configurator
            await self.tx(
                d, conf, "PoolConfigurator", "setEModeCategory", 1, 9000, 9300, 10100, ZERO, "stables"
            )
            for sym in ("USDC", "DAI", "USDT"):
                await self.tx(d, conf, "PoolConfigurator", "setAssetEModeCategory", self.tok(sym), 1)
        elif i == 42:
            await self.tx(t2, pool, "Pool", "setUserEMode", 1)
        elif i == 44:
            await self.tx(t2, pool, "Pool", "borrow", self.tok("DAI"), 50_000 * 10**18, 2, 0, t2)
            await self.tx(
                self.dev.book.deployer,
                self.dev.book.aave.pool_configurator,
                "PoolConfigurator",
                "configureReserveAsCollateral",
                self.tok("WBTC"),
                7000,
                7500,
                10650,
            )
        elif i == 60:
            await traffic.shock("WETH", -0.25)
        elif i == 61:
            b = self.dev.book.aave.borrowers
            # borrower 0: WETH collateral, USDC debt; borrower 1: WETH collateral, DAI debt (aTokens received)
            await self.tx(
                t2, pool, "Pool", "liquidationCall", self.tok("WETH"), self.tok("USDC"), b[0], MAX_UINT, False
            )
            await self.tx(
                t1, pool, "Pool", "liquidationCall", self.tok("WETH"), self.tok("DAI"), b[1], MAX_UINT, True
            )
            self.liquidated += [b[0], b[1]]
        elif i == 75:
            await traffic.shock("WETH", 0.3)


async def test_event_synced_state_equals_the_chain_after_100_blocks(devnet_state: Devnet) -> None:
    dev = devnet_state
    dev.node.set_automine(False)  # devnet_state restores it
    cfg = TrafficConfig(swaps_per_block=4.0, oracle_moves_per_block=0.5, multihop_fraction=0.2)
    t0 = time.monotonic()
    async with (
        RpcClient(dev.node.http_url) as rpc,
        BlockBuilder(dev.node, interval_s=0.1, block_time_s=12) as builder,
        TrafficGenerator(dev.node, dev.book, cfg, seed=17) as traffic,
    ):
        start = dev.node.block_number()
        scenario = Scenario(rpc, dev, ChainState())
        users = [scenario.t1, scenario.t2]
        state = await load_initial(rpc, dev.book, start, users=users)
        scenario.state = state
        t_load = time.monotonic() - t0
        n_logs = 0
        for i in range(BLOCKS):
            await traffic.step()
            await scenario.before_block(i, traffic)
            report = await builder.build_block()
            block = await fetch_block(rpc, report.number)
            state.apply_block_data(block)
            n_logs += len(block.logs)
        await traffic.settle()
        final = start + BLOCKS
        assert state.block_number == final == dev.node.block_number()
        for h in scenario.sent:
            await receipt_ok(rpc, h)  # every scenario action really happened
        assert traffic.stats.swaps_mined > 150 and traffic.stats.oracle_moves > 20

        seen = await assert_pools_equal_chain(rpc, dev, state, final)
        assert seen["ticks"] > 100

        aave = state.aave
        assert aave is not None and not aave.stale
        checked = 0
        for user in [*dev.book.aave.borrowers, *users]:
            on_chain = dev.call(dev.book.aave.pool, "Pool", "getUserAccountData", user, block=final)
            assert state.account_data(user).as_tuple() == tuple(int(x) for x in on_chain), user
            checked += 1
        # the scenario exercised what it meant to
        t1, t2 = scenario.t1.lower(), scenario.t2.lower()
        usdc, weth = dev.book.token("USDC").address.lower(), dev.book.token("WETH").address.lower()
        assert not aave.borrowing.get((usdc, t1)) and aave.borrowing.get(
            (dev.book.token("DAI").address.lower(), t1)
        )
        assert aave.user_emode.get(t2) == 1 and aave.collateral.get((weth, t2)) is False
        for b in scenario.liquidated:
            assert aave.a_scaled.get((weth, b.lower()), 0) < 10**30  # something was seized
        assert any(u.lower() in {a for (_, a) in aave.a_scaled} for u in users)
        assert checked == len(dev.book.aave.borrowers) + 2 and n_logs > 500
        # the liquidator who asked for aTokens holds them as collateral
        assert aave.collateral.get((weth, t1)) is True
    print(f"load {t_load:.1f}s, total {time.monotonic() - t0:.1f}s, logs {n_logs}")
