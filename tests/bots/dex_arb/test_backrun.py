"""Backruns of pending swaps: the user's tx first, then ours, simulated with eth_simulateV1 and landed to the wei."""

from __future__ import annotations

import asyncio

from eth_account import Account

from bots.app.config import Config
from bots.app.devnet import Devnet, builder_heads, setup_devnet_executor
from bots.dex_arb.bot import DexArbSettings
from bots.dex_arb.runner import DexArbRunner, chain_from_book
from chains.devnet.relay import DEVNET_BUILDER_COINBASE
from chains.node.anvil import DEV_MNEMONIC
from chains.send.signer import Signer

Account.enable_unaudited_hdwallet_features()


def test_pending_swaps_are_backrun_never_frontrun() -> None:
    async def go() -> None:
        dev = await Devnet.start(Config(), seed=7, block_time=0, relay=True)
        runner: DexArbRunner | None = None
        task: asyncio.Task[None] | None = None
        try:
            signer = Signer(bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/36").key))
            book = dev.book
            executor = await asyncio.to_thread(
                setup_devnet_executor, dev.node, signer.address, book.weth, fund_wei=1000 * 10**18
            )
            assert dev.relay is not None
            runner = DexArbRunner(
                chain_from_book(book, dev.node.http_url),
                signer,
                executor,
                relay_url=dev.relay.url,
                settings=DexArbSettings(live=True),
                coinbase=DEVNET_BUILDER_COINBASE,
                heads=builder_heads(dev.builder),
                pending_swaps=True,
            )
            await runner.start()
            assert runner.bot is not None
            task = asyncio.create_task(runner.run())
            plain = [
                p
                for p in book.pools
                if all(book.token_by_address(t).kind in ("standard", "weth") for t in (p.token0, p.token1))
            ]
            victims: dict[int, str] = {}
            for i in range(5):
                await runner.wait_processed(dev.node.block_number())
                sent = runner.bot.stats.backrun_bundles
                rec = await dev.traffic.send_swap(
                    pool=plain[(i * 7) % len(plain)], usd_size=200_000, loose=True, multihop=False
                )
                assert rec is not None
                for _ in range(250):  # the backrun is planned from the mempool feed before we build
                    if runner.bot.stats.backrun_bundles > sent:
                        break
                    await asyncio.sleep(0.02)
                report = await dev.builder.build_block()
                victims[report.number] = rec.tx_hash
            await runner.wait_processed(dev.node.block_number())
            st = runner.bot.stats
            assert st.pending_seen >= 5 and st.backrun_landed >= 4, st
            assert st.mismatches == [] and st.realized_profit_wei == st.simulated_profit_wei > 0
            owner = signer.address.lower()
            for b in runner.bot.history:
                if b.victim is None or b.status != "landed":
                    continue
                block = dev.node.rpc("eth_getBlockByNumber", [hex(b.target_block), True])
                order = [(t["hash"], t["from"].lower()) for t in block["transactions"]]
                hashes = [h for h, _ in order]
                assert victims[b.target_block] == b.victim
                vi = hashes.index(b.victim)
                ours = [i for i, (_, frm) in enumerate(order) if frm == owner]
                assert ours and min(ours) == vi + 1 and vi == 0, order  # [user tx, ours...] at the top
        finally:
            if runner is not None:
                runner.stop()
                if task is not None:
                    task.cancel()
                await runner.close()
            await dev.close()

    asyncio.run(go())
