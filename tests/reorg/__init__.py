"""Block watcher and reorg handling on a real anvil (anvil_reorg / anvil_rollback)."""
