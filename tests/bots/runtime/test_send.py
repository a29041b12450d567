"""bots.runtime.send.Sender on a real anvil, and the engine's risk gate in front of it.

* a Transaction live is signed, sent and mined; in dry-run it is signed and never sent; a refused one is the
  ``failed`` outcome, never an exception;
* a Bundle in public mode is sent tx by tx, in order;
* in the engine, the risk gate refuses what is over a limit before the sender sees it (``Refused`` goes to the
  executor that records), and the kill switch pauses the strategy: no event reaches it, nothing is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bots.runtime.actions import Bundle, Refused, Transaction
from bots.runtime.engine import Collector, Engine, Executor, Strategy
from bots.runtime.risk import KillSwitch, RiskGate, RiskLimits
from bots.runtime.send import BundleSent, Sender, TransactionSent
from chains.events import AnyEvent, LocalEvent
from chains.node.anvil import AnvilNode
from chains.node.rpc import RpcClient
from chains.send.signer import Signer
from tests.bots.runtime.helpers import until

# anvil dev keys #1 and #2 of the well-known "test test ... junk" mnemonic (test-only)
DEV_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def _tx(chain_id: int, nonce: int, value: int = 1) -> dict[str, Any]:
    return {
        "chainId": chain_id,
        "nonce": nonce,
        "to": OTHER,
        "value": value,
        "gas": 21_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
    }


def _transaction(chain_id: int, nonce: int, target: int | None = None, notional: int = 1) -> Transaction:
    return Transaction(
        bot="t",
        chain_id=chain_id,
        target_block=target,
        notional_wei=notional,
        expected_profit_wei=0,
        tx=_tx(chain_id, nonce, notional),
    )


async def test_transactions_live_dry_run_and_refused_by_the_node(anvil: AnvilNode) -> None:
    signer = Signer(DEV_KEY)
    cid = anvil.chain_id()
    async with RpcClient(anvil.http_url) as rpc:
        nonce = int(await rpc.request("eth_getTransactionCount", [signer.address, "latest"]), 16)
        dry = Sender(signer, live=False)
        (out,) = await dry.execute(_transaction(cid, nonce))
        assert isinstance(out, TransactionSent) and out.status == "simulated" and not out.sent
        assert await rpc.request("eth_getTransactionByHash", [out.tx_hash]) is None

        live = Sender(signer, live=True, send_mode="public", rpc=rpc)
        (sent,) = await live.execute(_transaction(cid, nonce, notional=7))
        assert isinstance(sent, TransactionSent) and sent.status == "submitted"
        receipt = None
        while receipt is None:  # automine: the receipt shows up a moment after the send
            receipt = await rpc.request("eth_getTransactionReceipt", [sent.tx_hash])
        assert receipt["status"] == "0x1" and receipt["to"].lower() == OTHER.lower()
        tx = await rpc.request("eth_getTransactionByHash", [sent.tx_hash])
        assert int(tx["value"], 16) == 7 and int(tx["nonce"], 16) == nonce

        (again,) = await live.execute(_transaction(cid, nonce))  # nonce already used: the node refuses it
        assert isinstance(again, TransactionSent) and again.status == "failed" and again.error


async def test_bundle_in_public_mode_is_sent_in_order(anvil: AnvilNode) -> None:
    signer = Signer(DEV_KEY)
    cid = anvil.chain_id()
    with pytest.raises(ValueError, match="relay"):
        Sender(signer, live=True, send_mode="bundle")
    async with RpcClient(anvil.http_url) as rpc:
        nonce = int(await rpc.request("eth_getTransactionCount", [signer.address, "latest"]), 16)
        head = int(await rpc.request("eth_blockNumber", []), 16)
        bundle = Bundle(
            bot="t",
            chain_id=cid,
            target_block=head + 1,
            notional_wei=2,
            expected_profit_wei=0,
            txs=(_tx(cid, nonce), _tx(cid, nonce + 1)),
        )
        (out,) = await Sender(signer, live=True, send_mode="public", rpc=rpc).execute(bundle)
        assert isinstance(out, BundleSent) and out.status == "submitted" and len(out.tx_hashes) == 2
        nonces = []
        for h in out.tx_hashes:
            receipt = None
            while receipt is None:
                receipt = await rpc.request("eth_getTransactionReceipt", [h])
            assert receipt["status"] == "0x1"
            nonces.append(int((await rpc.request("eth_getTransactionByHash", [h]))["nonce"], 16))
        assert nonces == [nonce, nonce + 1]


# ------------------------------------------------------------------------------------------ through the engine


@dataclass(frozen=True, slots=True)
class Go(LocalEvent):
    TOPIC: ClassVar[str] = "test.go"
    n: int


class Feed(Collector):
    """Yields the events put on its queue."""

    restart_on_end = False

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Go] = asyncio.Queue()

    async def events(self) -> AsyncIterator[AnyEvent]:
        while True:
            yield await self.queue.get()


class TwoPerEvent(Strategy[Transaction]):
    """Two transactions per event, for the same target block (the second is over a one-per-block limit)."""

    topics = ("test.go",)

    def __init__(self, chain_id: int, nonce: int) -> None:
        self.chain_id, self.nonce, self.seen = chain_id, nonce, 0

    async def process_event(self, event: AnyEvent) -> Sequence[Transaction]:
        assert isinstance(event, Go)
        self.seen += 1
        out = [_transaction(self.chain_id, self.nonce + i, target=event.n) for i in range(2)]
        self.nonce += 1  # only the first is admitted
        return out


class Outcomes(Executor[object]):
    def __init__(self) -> None:
        self.items: list[object] = []

    def accepts(self, action: object) -> bool:
        return isinstance(action, (TransactionSent, Refused))

    async def execute(self, action: object) -> None:
        self.items.append(action)


async def test_the_gate_refuses_before_the_sender_and_the_kill_switch_pauses(
    anvil: AnvilNode, tmp_path: Path
) -> None:
    signer = Signer(DEV_KEY)
    cid = anvil.chain_id()
    async with RpcClient(anvil.http_url) as rpc:
        nonce = int(await rpc.request("eth_getTransactionCount", [signer.address, "latest"]), 16)
        gate = RiskGate({"t": RiskLimits(max_actions_per_block=1)}, kill_switch=KillSwitch(tmp_path / "kill"))
        feed, strategy, outcomes = Feed(), TwoPerEvent(cid, nonce), Outcomes()
        engine = Engine(
            [feed], [strategy], [Sender(signer, live=True, send_mode="public", rpc=rpc), outcomes], risk=gate
        )
        task = asyncio.create_task(engine.run())
        await engine.wait_started()
        for n in (100, 101):
            feed.queue.put_nowait(Go(n))
        await until(lambda: len(outcomes.items) == 4, "four outcomes")
        sent = [o for o in outcomes.items if isinstance(o, TransactionSent)]
        refused = [o for o in outcomes.items if isinstance(o, Refused)]
        assert [s.status for s in sent] == ["submitted", "submitted"]
        assert [r.reason for r in refused] == ["risk_rate_block", "risk_rate_block"]
        assert [r.action.target_block for r in refused] == [100, 101]

        gate.kill_switch.engage("test")
        feed.queue.put_nowait(Go(102))
        await until(lambda: engine.health()["paused_events"] == 1, "the paused event")
        assert strategy.seen == 2 and len(outcomes.items) == 4  # the strategy never saw it; nothing sent
        gate.kill_switch.release()
        feed.queue.put_nowait(Go(103))
        await until(lambda: len(outcomes.items) == 6, "two more outcomes")
        assert strategy.seen == 3
        engine.stop()
        health = await task
        assert health["refused_actions"] == 3 and health["unrouted_actions"] == 0
        assert int(await rpc.request("eth_getTransactionCount", [signer.address, "latest"]), 16) == nonce + 3
