"""The bot's `evaluations` rows and `opportunities.reason` on the devnet: one evaluation per block it evaluates
(duration, opportunities found), a reason code for every opportunity not sent (dry-run) or not landed, none for
landed ones -- and realized = simulated to the wei still."""

from __future__ import annotations

import asyncio
from pathlib import Path

from eth_account import Account
from sqlalchemy import select

from bots.app.config import Config
from bots.app.devnet import Devnet, builder_heads, setup_devnet_executor
from bots.dex_arb.bot import DexArbSettings
from bots.dex_arb.runner import DexArbRunner, chain_from_book
from bots.store import Opportunity, Reason, Store
from chains.devnet.relay import DEVNET_BUILDER_COINBASE
from chains.node.anvil import DEV_MNEMONIC
from chains.send.flashbots import bundle_replacement_uuid
from chains.send.signer import Signer

Account.enable_unaudited_hdwallet_features()

NOT_SENT = {"rejected", "simulated", "not_landed", "failed", "orphaned"}


async def _opportunities(store: Store) -> list[Opportunity]:
    async with store.session() as session:
        return list((await session.execute(select(Opportunity).order_by(Opportunity.id))).scalars())


async def _check_evaluations(
    store: Store, runner: DexArbRunner, dev: Devnet, chain_id: int, blocks: list[int]
) -> None:
    """One `evaluated` row per evaluated block, on the chain's hash, counting the opportunities found there."""
    assert runner.bot is not None
    evals = await store.evaluations(chain_id, bot="dex_arb")
    assert [e.block_number for e in evals] == blocks
    opps = [o for o in await _opportunities(store) if o.kind == "cycle"]
    for e in evals:
        assert e.status == "evaluated" and e.reason is None and e.duration_ms > 0
        assert e.opportunities == sum(o.block_number == e.block_number for o in opps)
        assert e.block_hash == dev.node.rpc("eth_getBlockByNumber", [hex(e.block_number), False])["hash"]
    assert sum(e.opportunities for e in evals) == runner.bot.stats.found


def test_evaluations_and_reasons_dry_run_and_live(tmp_path: Path) -> None:
    async def go() -> None:
        dev = await Devnet.start(Config(), seed=11, block_time=0, relay=True)
        runners: list[DexArbRunner] = []
        stores: list[Store] = []
        task: asyncio.Task[None] | None = None
        try:
            signer = Signer(bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/36").key))
            book = dev.book
            cid = book.chain_id
            executor = await asyncio.to_thread(
                setup_devnet_executor, dev.node, signer.address, book.weth, fund_wei=1000 * 10**18
            )
            assert dev.relay is not None
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

            async def runner_for(live: bool, db: str) -> tuple[DexArbRunner, Store]:
                store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / db}", upgrade=True)
                runner = DexArbRunner(
                    chain_from_book(book, dev.node.http_url),
                    signer,
                    executor,
                    relay_url=dev.relay.url if dev.relay else None,
                    settings=DexArbSettings(live=live),
                    store=store,
                    coinbase=DEVNET_BUILDER_COINBASE,
                    heads=builder_heads(dev.builder),
                )
                runners.append(runner)
                stores.append(store)
                return runner, store

            # 1. Dry-run: the bot evaluates the head it starts on first, after a swap that opened arbitrages.
            head = await swap_and_build(0)
            dry, dry_store = await runner_for(False, "dry.db")
            await dry.start()
            dry_task = asyncio.create_task(dry.run())
            await dry.wait_processed(head)
            dry.stop()
            await dry_task
            await _check_evaluations(dry_store, dry, dev, cid, [head])
            rows = await _opportunities(dry_store)
            assert rows and any(o.status == "simulated" for o in rows)
            for o in rows:
                assert o.status in ("simulated", "rejected"), o.status
                assert (
                    o.reason == Reason.DRY_RUN if o.status == "simulated" else o.reason in Reason.OPPORTUNITY
                )
            await dry.close()

            # 2. Live: blocks built with the bundles (landed), then one block mined without them (not landed).
            live, store = await runner_for(True, "live.db")
            await live.start()
            assert live.bot is not None
            task = asyncio.create_task(live.run())
            blocks = [dev.node.block_number()]
            for i in range(1, 4):
                blocks.append(await swap_and_build(i))
                await live.wait_processed(blocks[-1])
            st = live.bot.stats
            assert (
                st.landed_txs >= 1
                and st.mismatches == []
                and st.realized_profit_wei == st.simulated_profit_wei
            )
            pending = sum(len(v) for v in live.bot.pending.values())
            assert pending >= 1  # a bundle is out for the next block ...
            rec = await dev.traffic.send_swap(pool=plain[5], usd_size=250_000, loose=True, multihop=False)
            assert rec is not None
            await asyncio.to_thread(dev.node.mine)  # ... which is mined without it (not by the builder)
            blocks.append(blocks[-1] + 1)
            blocks.append((await dev.builder.build_block()).number)
            await live.wait_processed(blocks[-1])
            task.cancel()

            await _check_evaluations(store, live, dev, cid, blocks)
            rows = await _opportunities(store)
            by_status: dict[str, int] = {}
            for o in rows:
                by_status[o.status] = by_status.get(o.status, 0) + 1
                if o.status == "landed":
                    assert o.reason is None and o.realized_profit == o.simulated_profit
                elif o.status == "submitted":
                    assert o.reason is None  # still in flight (its target block is not settled yet)
                else:
                    assert o.status in NOT_SENT and o.reason in Reason.OPPORTUNITY, (o.status, o.reason)
                if o.status == "not_landed":
                    assert o.reason == Reason.NOT_LANDED
                if o.status == "simulated":
                    assert o.reason == Reason.SEND_FAILED
            assert by_status.get("landed", 0) == st.landed_txs
            assert by_status.get("not_landed", 0) >= 1, by_status
            # Deterministic bundle identity: the bot's bundle for block N carries uuid5(bot, chain id, N), so a
            # re-sent bundle for the same block replaces the earlier one at the relay.
            sent = [r for r in dev.relay.received(method="eth_sendBundle") if r.accepted]
            assert sent and all(r.target_block is not None for r in sent)
            for r in sent:
                assert r.replacement_uuid == bundle_replacement_uuid("dex_arb", cid, r.target_block), r
        finally:
            if task is not None:
                task.cancel()
            for r in runners:
                r.stop()
                await r.close()
            for s in stores:
                await s.close()
            await dev.close()

    asyncio.run(go())
