"""The DEX arbitrage bot."""
