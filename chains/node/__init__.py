"""Talking to nodes: anvil as a subprocess, the JSON-RPC client (failover, batching), subscriptions."""
