"""Balancer V2 math: exact integer ports of ``FixedPoint``, ``LogExpMath`` and ``WeightedMath``.

One module per Solidity library, function names as in the Solidity sources (snake_case aliases are not
provided on purpose: a reader holds the two side by side).  Every failure raises :class:`BalancerError`
carrying the ``BAL#NNN`` code the contract reverts with.
"""

from chains.amm.balancer.errors import BalancerError

__all__ = ["BalancerError"]
