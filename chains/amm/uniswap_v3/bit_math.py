"""``BitMath`` (v3-core): most and least significant set bit of a uint256, via ``int.bit_length``."""

from __future__ import annotations

__all__ = ["least_significant_bit", "most_significant_bit"]


def most_significant_bit(x: int) -> int:
    """Index of the highest set bit; the contract requires ``x > 0``."""
    if x <= 0:
        raise ValueError("BitMath: x must be > 0")
    return x.bit_length() - 1


def least_significant_bit(x: int) -> int:
    """Index of the lowest set bit; the contract requires ``x > 0``."""
    if x <= 0:
        raise ValueError("BitMath: x must be > 0")
    return (x & -x).bit_length() - 1
