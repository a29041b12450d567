"""Benchmarks: every `bench/bench_*.py` exposes `run() -> list[dict]`; `python -m bench` prints them as tables."""
