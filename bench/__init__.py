"""Benchmarks: every `bench/bench_*.py` exposes `run() -> list[dict]`; `python -m bench` prints them as tables."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank ``q`` quantile (0..1) of ``values``: the sample at rank ``round(q * (n - 1))``."""
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]
