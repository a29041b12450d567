"""Run every benchmark module (`bench/bench_*.py`) and print its rows as a table.

Usage: `python -m bench [NAME ...]` (names without the `bench_` prefix; default: all).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main(argv: list[str]) -> int:
    import bench

    wanted = set(argv)
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if wanted:
        names = [n for n in names if n.removeprefix("bench_") in wanted or n in wanted]
    # Piped or captured (CI logs, `make bench > file`): rich would fold wide tables to 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=220)
    for name in names:
        mod = importlib.import_module(f"bench.{name}")
        t0 = time.perf_counter()
        rows: list[dict[str, Any]] = mod.run()
        elapsed = time.perf_counter() - t0
        table = Table(title=f"{name.removeprefix('bench_')}  ({elapsed:.1f} s)")
        cols: list[str] = []
        for row in rows:
            cols.extend(c for c in row if c not in cols)
        for c in cols:
            table.add_column(
                c, justify="right" if rows and isinstance(rows[0].get(c), int | float) else "left"
            )
        for row in rows:
            table.add_row(*(_fmt(row.get(c, "")) for c in cols))
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
