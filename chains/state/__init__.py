"""Chain state from events (pools, Aave accounts) with its journal; snapshots; pool discovery."""
