"""Direction models (docs/ml-contracts.md) and the DQN trader.

`MODEL_KINDS` maps each kind name to its `DirectionModel` class; `make_model(kind, **config)` builds one with
config overrides; `load_model(directory)` loads any saved model by the kind recorded in its `model.json`
(never a class named by a file: model directories are data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.models.base import (
    DirectionModel,
    GBDTConfig,
    LGBMConfig,
    LSTMConfig,
    ModelFileError,
    NetConfig,
    StackConfig,
    TransformerConfig,
    XGBConfig,
    read_model_json,
)
from ml.models.gbdt import LGBMModel, XGBModel
from ml.models.kinds import BASE_KINDS
from ml.models.nets import LSTMModel, TransformerModel
from ml.models.stack import StackedEnsemble

MODEL_KINDS: dict[str, type[DirectionModel]] = {**BASE_KINDS, "stack": StackedEnsemble}


def make_model(kind: str, **config: Any) -> DirectionModel:
    """A fresh, unfitted model of `kind`; keyword arguments override the kind's config defaults."""
    try:
        cls = MODEL_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}") from None
    return cls(**config)


def load_model(directory: Path | str) -> DirectionModel:
    """Load a model saved with `save(directory)`, whatever its kind."""
    kind = read_model_json(Path(directory))["kind"]
    if kind not in MODEL_KINDS:
        raise ValueError(f"{directory}: unknown model kind {kind!r}")
    return MODEL_KINDS[kind].load(directory)


__all__ = [
    "MODEL_KINDS",
    "DirectionModel",
    "GBDTConfig",
    "LGBMConfig",
    "LGBMModel",
    "LSTMConfig",
    "LSTMModel",
    "ModelFileError",
    "NetConfig",
    "StackConfig",
    "StackedEnsemble",
    "TransformerConfig",
    "TransformerModel",
    "XGBConfig",
    "XGBModel",
    "load_model",
    "make_model",
]
