"""`mevsuite devnet up`'s in-process devnet starts the local relay, lists it in the address book, and its
traffic generator sends private order flow through it (hinted on the MEV-Share stream, never in the mempool)."""

from __future__ import annotations

import json

import aiohttp

from bots.app.config import Config
from bots.app.devnet import Devnet
from chains.addressbook import AddressBook
from chains.devnet.relay import hint_hash


async def test_devnet_starts_relay_and_private_traffic_lands() -> None:
    devnet = await Devnet.start(Config(), seed=3, block_time=0, private_fraction=1.0)
    try:
        book, relay = devnet.book, devnet.relay
        assert relay is not None and book.relay_url == relay.url and book.mev_share_url == relay.sse_url
        assert book.relay_url.startswith("http://127.0.0.1:") and not book.relay_url.endswith(":0/")
        again = AddressBook.from_dict(json.loads(book.to_json()))
        assert (again.relay_url, again.mev_share_url) == (book.relay_url, book.mev_share_url)
        async with aiohttp.ClientSession() as http, http.get(book.mev_share_url) as stream:
            rec = None
            while rec is None:
                rec = await devnet.traffic.send_swap(usd_size=1_500)
            assert rec.private
            while True:
                line = (await stream.content.readline()).decode()
                if line.startswith("data: "):
                    break
        assert json.loads(line[len("data: ") :])["hash"] == hint_hash(rec.tx_hash)
        assert devnet.node.txpool_content()["pending"] == {}  # not in the public mempool
        report = await devnet.builder.build_block()
        receipt = devnet.node.rpc("eth_getTransactionReceipt", [rec.tx_hash])
        assert receipt is not None and int(receipt["blockNumber"], 16) == report.number
        await devnet.traffic.settle()
        assert devnet.traffic.stats.private_swaps == 1 and devnet.traffic.stats.swaps_mined == 1
        [logged] = relay.received(method="eth_sendPrivateTransaction")
        assert logged.accepted and logged.txs[0] == "0x" + relay.private_tx(rec.tx_hash).raw.hex()  # type: ignore[union-attr]
    finally:
        await devnet.close()
    assert not devnet.node.running
