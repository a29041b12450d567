"""Lending-protocol math (pure, integer, no I/O) and the small readers that feed it.

* :mod:`chains.lending.aave_v3` — Aave V3 health factor, interest indexes and liquidation amounts, with
  versioned rule sets (v3.0 as deployed by the npm ``@aave/core-v3`` 1.19.3 market, v3.3 as on mainnet).
* :mod:`chains.state.aave_reader` — reads what the math needs from a node (the pool revision).
"""
