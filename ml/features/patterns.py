"""All of TA-Lib's candlestick patterns (the "Pattern Recognition" group, 61 functions).

TA-Lib returns +-100 (bullish / bearish; +-200 for the confirmed Hikkake variants) at the bar that completes
the pattern, using that bar and earlier ones (plus trailing candle-size averages), so it is causal. Values are
mapped to sign(value) -> -1 / 0 / 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from ml.features._common import Columns, f64


def pattern_names() -> list[str]:
    """TA-Lib pattern function names, e.g. ["CDL2CROWS", ...] (stable order)."""
    groups = talib.get_function_groups()  # type: ignore[no-untyped-call]
    return [str(name) for name in groups["Pattern Recognition"]]


def pattern_column(func_name: str) -> str:
    return "cdl_" + func_name.removeprefix("CDL").lower()


def pattern_features(df: pd.DataFrame) -> Columns:
    o, h, lo, c = (f64(df[k]) for k in ("open", "high", "low", "close"))
    out: Columns = {}
    for name in pattern_names():
        raw = np.asarray(getattr(talib, name)(o, h, lo, c), dtype=np.float64)
        out[pattern_column(name)] = np.sign(raw / 100.0)
    return out
