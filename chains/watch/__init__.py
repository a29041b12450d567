"""Watching the chain: whole blocks with reorgs, the mempool."""
