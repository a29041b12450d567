"""Causal feature engineering for the ML signal service (see docs/ml-contracts.md).

`build_features(df, config=..., others=..., trades=..., onchain=...)` returns raw float64 features on the
bar index of `df`; the row at t uses only data at or before t. Scaling / imputation is fitted later, on the
training window only, by `CausalPreprocessor`.
"""

from ml.features.build import FAMILIES, build_features, feature_family
from ml.features.config import FeatureConfig
from ml.features.onchain import ONCHAIN_COLUMNS, OnchainSource, StaticOnchainSource
from ml.features.patterns import pattern_names
from ml.features.preprocess import CausalPreprocessor
from ml.features.swings import Pivots, zigzag_pivots

__all__ = [
    "FAMILIES",
    "ONCHAIN_COLUMNS",
    "CausalPreprocessor",
    "FeatureConfig",
    "OnchainSource",
    "Pivots",
    "StaticOnchainSource",
    "build_features",
    "feature_family",
    "pattern_names",
    "zigzag_pivots",
]
