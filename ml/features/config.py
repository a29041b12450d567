"""`FeatureConfig`: every window / threshold the feature builder uses (frozen, serialisable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class FeatureConfig:
    """Windows are in bars. Defaults are tuned for hourly bars but work on any timeframe."""

    # technical
    return_horizons: tuple[int, ...] = (1, 3, 6, 12, 24, 72)
    vol_windows: tuple[int, ...] = (12, 24, 72)
    rsi_periods: tuple[int, ...] = (7, 14, 28)
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    bb_period: int = 20
    bb_std: float = 2.0
    atr_period: int = 14
    adx_period: int = 14
    stoch_k: int = 14
    stoch_smooth: int = 3
    stoch_d: int = 3
    mfi_period: int = 14
    cci_period: int = 20
    willr_period: int = 14
    obv_window: int = 24
    ma_periods: tuple[int, ...] = (10, 20, 50, 100, 200)
    zscore_windows: tuple[int, ...] = (24, 96)
    calendar: bool = True
    # candlestick patterns (all of TA-Lib's Pattern Recognition group)
    patterns: bool = True
    # volume profile over a trailing window
    profile_window: int = 168
    profile_bins: int = 24
    value_area: float = 0.70
    # support / resistance from rolling pivots (a pivot needs `pivot_width` bars on each side)
    sr_window: int = 168
    pivot_width: int = 3
    # zig-zag swings (fractional reversal thresholds) + Fibonacci of the last confirmed swing
    zigzag_thresholds: tuple[float, ...] = (0.02, 0.05)
    zigzag_count_window: int = 168
    fib_levels: tuple[float, ...] = (0.382, 0.5, 0.618)
    # microstructure (trades), rolling windows in bars
    micro_windows: tuple[int, ...] = (6, 24)
    # cross-asset rolling correlation / beta windows and return horizons
    cross_windows: tuple[int, ...] = (24, 168)
    cross_horizons: tuple[int, ...] = (1, 24)
    # on-chain rolling windows
    onchain_windows: tuple[int, ...] = (24, 168)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # accept lists (e.g. from JSON) but store tuples: hashable + frozen
                object.__setattr__(self, f.name, tuple(value))
        positive_ints = [
            *self.return_horizons,
            *self.vol_windows,
            *self.rsi_periods,
            *self.ma_periods,
            *self.zscore_windows,
            *self.micro_windows,
            *self.cross_windows,
            *self.cross_horizons,
            *self.onchain_windows,
            self.macd_fast,
            self.macd_slow,
            self.macd_signal,
            self.bb_period,
            self.atr_period,
            self.adx_period,
            self.stoch_k,
            self.stoch_smooth,
            self.stoch_d,
            self.mfi_period,
            self.cci_period,
            self.willr_period,
            self.obv_window,
            self.profile_window,
            self.profile_bins,
            self.sr_window,
            self.pivot_width,
            self.zigzag_count_window,
        ]
        if any(int(v) != v or v < 1 for v in positive_ints):
            raise ValueError("FeatureConfig: windows / periods / horizons must be positive integers")
        if self.macd_fast >= self.macd_slow:
            raise ValueError("FeatureConfig: macd_fast must be < macd_slow")
        if not 0.0 < self.value_area <= 1.0:
            raise ValueError("FeatureConfig: value_area must be in (0, 1]")
        if any(not 0.0 < t < 1.0 for t in self.zigzag_thresholds):
            raise ValueError("FeatureConfig: zigzag_thresholds must be fractions in (0, 1)")
        if len(set(self.zigzag_thresholds)) != len(self.zigzag_thresholds):
            raise ValueError("FeatureConfig: zigzag_thresholds must be unique")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists) for the model registry's meta.json."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"FeatureConfig.from_dict: unknown keys {sorted(unknown)}")
        return cls(**data)
