"""The risk gate and the kill switch on the devnet, with the DEX arbitrage bot live against the local relay.

* kill switch engaged (from another handle on the same file, as `mevsuite kill-switch on` does): the relay's
  log shows no new bundle while blocks with fresh arbitrages go by, the strategy is paused, the metric says so;
  released, the next arbitrage is sent again;
* a limit (``max_notional_wei``) refuses the bundle before it is signed: its opportunities are recorded as
  ``simulated`` with the gate's reason, and the refusal is counted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from eth_account import Account
from sqlalchemy import select

from bots.app.config import Config
from bots.app.devnet import Devnet, builder_heads, setup_devnet_executor
from bots.dex_arb.bot import DexArbSettings
from bots.dex_arb.runner import DexArbRunner, chain_from_book
from bots.metrics import Metrics
from bots.runtime.risk import KillSwitch, RiskGate, RiskLimits
from bots.store import Opportunity, Reason, Store
from chains.devnet.relay import DEVNET_BUILDER_COINBASE
from chains.node.anvil import DEV_MNEMONIC
from chains.send.signer import Signer

Account.enable_unaudited_hdwallet_features()


def test_kill_switch_stops_every_bundle_and_limits_refuse_before_signing(tmp_path: Path) -> None:
    async def go() -> None:
        dev = await Devnet.start(Config(), seed=12, block_time=0, relay=True)
        runners: list[DexArbRunner] = []
        stores: list[Store] = []
        tasks: list[asyncio.Task[object]] = []
        try:
            signer = Signer(bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/36").key))
            book = dev.book
            relay = dev.relay
            assert relay is not None
            executor = await asyncio.to_thread(
                setup_devnet_executor, dev.node, signer.address, book.weth, fund_wei=1000 * 10**18
            )
            plain = [
                p
                for p in book.pools
                if all(book.token_by_address(t).kind in ("standard", "weth") for t in (p.token0, p.token1))
            ]

            async def swap_and_build(i: int) -> int:
                rec = await dev.traffic.send_swap(
                    pool=plain[(i * 7) % len(plain)], usd_size=250_000, loose=True, multihop=False
                )
                assert rec is not None
                return (await dev.builder.build_block()).number

            def bundles() -> int:
                return len(relay.received(method="eth_sendBundle"))

            async def start(
                gate: RiskGate, live: bool, metrics: Metrics, db: str
            ) -> tuple[DexArbRunner, Store]:
                store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / db}", upgrade=True)
                stores.append(store)
                runner = DexArbRunner(
                    chain_from_book(book, dev.node.http_url),
                    signer,
                    executor,
                    relay_url=relay.url,
                    settings=DexArbSettings(live=live),
                    store=store,
                    metrics=metrics,
                    coinbase=DEVNET_BUILDER_COINBASE,
                    heads=builder_heads(dev.builder),
                    risk=gate,
                )
                runners.append(runner)
                await runner.start()
                tasks.append(asyncio.create_task(runner.run()))
                return runner, store

            # 1. Live, no limits: arbitrages are sent.
            metrics = Metrics()
            gate = RiskGate(
                kill_switch=KillSwitch(tmp_path / "kill", registry=metrics.registry),
                registry=metrics.registry,
            )
            runner, _store = await start(gate, True, metrics, "live.db")
            await runner.wait_processed(dev.node.block_number())
            for i in range(2):
                await runner.wait_processed(await swap_and_build(i))
            before = bundles()
            assert before >= 1

            # 2. Engaged through the file, as the CLI does from another process: nothing more reaches the relay.
            KillSwitch(tmp_path / "kill").engage("test: stop everything")
            await asyncio.sleep(0.3)  # the file is re-read at most every 0.25 s
            assert gate.kill_switch.engaged
            assert metrics.registry.get_sample_value("mevsuite_kill_switch_engaged") == 1
            engine = runner.engine
            assert engine is not None
            for i in range(2, 5):
                await runner.wait_processed(await swap_and_build(i))
            assert bundles() == before
            health = engine.health()
            assert health["paused"] is True and health["paused_events"] >= 3

            # 3. Released: the next arbitrage is sent again.
            KillSwitch(tmp_path / "kill").release()
            await asyncio.sleep(0.3)
            assert not gate.kill_switch.engaged
            for i in range(5, 8):
                await runner.wait_processed(await swap_and_build(i))
                if bundles() > before:
                    break
            assert bundles() > before
            runner.stop()

            # 4. A limit refuses the bundle before it is signed: recorded with the gate's reason, counted.
            metrics2 = Metrics()
            tight = RiskGate(
                {"dex_arb": RiskLimits(max_notional_wei=1)},
                kill_switch=KillSwitch(tmp_path / "kill2"),
                registry=metrics2.registry,
            )
            head = await swap_and_build(8)
            sent_before = bundles()
            limited, store2 = await start(tight, True, metrics2, "limited.db")
            await limited.wait_processed(head)
            assert bundles() == sent_before
            async with store2.session() as session:
                rows = list((await session.execute(select(Opportunity))).scalars())
            refused = [o for o in rows if o.reason == Reason.RISK_NOTIONAL]
            assert refused and all(o.status == "simulated" and o.bundle_hash is None for o in refused)
            assert limited.bot is not None and limited.bot.stats.refused >= 1
            count = metrics2.registry.get_sample_value(
                "mevsuite_risk_refused_total", {"bot": "dex_arb", "reason": "risk_notional"}
            )
            assert count == limited.bot.stats.refused
        finally:
            for r in runners:
                r.stop()
            for t in tasks:
                try:
                    await asyncio.wait_for(t, timeout=10)
                except Exception:
                    t.cancel()
            for r in runners:
                await r.close()
            for s in stores:
                await s.close()
            await dev.close()

    asyncio.run(go())
