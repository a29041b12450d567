"""``UnsafeMath`` (v3-core): division rounding up, no zero check (the EVM returns 0 on division by zero)."""

from __future__ import annotations

__all__ = ["div_rounding_up"]


def div_rounding_up(x: int, y: int) -> int:
    """``x / y`` rounded up; like the EVM's ``div``, a zero divisor gives 0."""
    if y == 0:
        return 0
    return -(-x // y)
