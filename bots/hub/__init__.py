"""The hub: one process per chain that follows the chain once and publishes blocks, reorgs and state snapshots on
the bus for independent bot processes (:mod:`bots.hub.hub`, docs/bus.md)."""

from bots.hub.hub import Hub, MessageSink, snapshot_name

__all__ = ["Hub", "MessageSink", "snapshot_name"]
