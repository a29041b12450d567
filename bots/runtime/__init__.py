"""The bot runtime: Collector -> Strategy -> Executor engine, the bus, reorg handling."""
