"""The fixed table of base model kinds (kind name -> class): what a stack may combine.

``ml.models.MODEL_KINDS`` is this table plus the stack itself.  Model directories name a kind, never a class
(docs/ml.md, "Model directories are data").
"""

from __future__ import annotations

from ml.models.base import DirectionModel
from ml.models.gbdt import LGBMModel, XGBModel
from ml.models.nets import LSTMModel, TransformerModel

__all__ = ["BASE_KINDS"]

BASE_KINDS: dict[str, type[DirectionModel]] = {
    "lstm": LSTMModel,
    "transformer": TransformerModel,
    "xgboost": XGBModel,
    "lightgbm": LGBMModel,
}
