"""Data files shipped with chains (the compiled ArbExecutor artifact)."""
