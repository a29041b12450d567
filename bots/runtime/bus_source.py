"""A bot process's block collector on the bus: :class:`~bots.runtime.bus_collector.BusBlockCollector` wired to NATS.

:func:`bus_block_collector` connects the two inputs the collector takes (docs/bus.md, "Re-snapshots"):

* ``source`` -- a durable, ordered JetStream consumer on the chain's blocks subject
  (``chain_subjects(chain_id).blocks``): a restarted process resumes after its last acknowledged message, and the
  collector acknowledges a message only once the engine is done with its event;
* ``load_snapshot(need)`` -- :func:`snapshot_loader`: the latest announcement on the chain's snapshot subject
  (``BusClient.last_message``); if its ``seq >= need``, the object it names (``BusClient.get_object``), else
  ``None`` (the collector retries on the next message).

So a bot process gets its pool and Aave state from the hub's messages only: no log, receipt or block RPC.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from bots.bus.client import BusClient, MalformedMessage
from bots.bus.messages import SnapshotAnnouncement, decode
from bots.bus.subjects import chain_subjects
from bots.runtime.bus_collector import BusBlockCollector, SnapshotLoader

__all__ = ["bus_block_collector", "snapshot_loader"]

log = logging.getLogger(__name__)


def snapshot_loader(client: BusClient, chain_id: int) -> SnapshotLoader:
    """``load_snapshot(need)`` for :class:`BusBlockCollector`: the bytes of the hub's latest snapshot object if its
    announcement's ``seq >= need``; ``None`` while there is none (no announcement yet, an older one, an unreadable
    one, or an object already gone)."""
    subject = chain_subjects(chain_id).snapshot

    async def load(need: int) -> bytes | None:
        stored = await client.last_message(subject)
        if stored is None:
            return None
        try:
            note = decode(stored.data)
        except MalformedMessage as exc:
            log.warning("bus source: the snapshot announcement on %s is unreadable: %s", subject, exc)
            return None
        if not isinstance(note, SnapshotAnnouncement) or note.chain_id != chain_id:
            log.warning("bus source: %s carries %r, not this chain's snapshot announcement", subject, note)
            return None
        if note.seq < need:
            return None
        try:
            # The object may have been replaced by a newer snapshot since: its seq is only higher.
            return await client.get_object(note.name)
        except KeyError:
            log.warning("bus source: snapshot object %s (seq %d) is gone", note.name, note.seq)
            return None

    return load


async def bus_block_collector(
    client: BusClient,
    chain_id: int,
    *,
    durable: str,
    registry: CollectorRegistry | None = None,
    emit_start_block: bool = True,
    ack_wait: float = 60.0,
    journal_depth: int = 64,
) -> BusBlockCollector:
    """A :class:`BusBlockCollector` on ``client``: the durable consumer ``durable`` (letters, digits, ``-``, ``_``;
    one per bot and chain, e.g. ``dex-arb-31337``) on the chain's blocks subject, and :func:`snapshot_loader`.

    The consumer is created (or resumed) here; closing the client, or ``collector.source.close()``, stops it.
    ``ack_wait``: seconds the engine may spend on one block before the server redelivers its message (a
    redelivery of a message the collector already applied is skipped as a duplicate).
    """
    source = await client.subscribe(
        chain_subjects(chain_id).blocks, durable=durable, ordered=True, ack_wait=ack_wait
    )
    return BusBlockCollector(
        source,
        snapshot_loader(client, chain_id),
        chain_id=chain_id,
        emit_start_block=emit_start_block,
        registry=registry,
        journal_depth=journal_depth,
    )
