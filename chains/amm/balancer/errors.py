"""``BAL#`` error codes of Balancer V2 (``solidity-utils/contracts/helpers/BalancerErrors.sol``), the ones the
math libraries raise."""

from __future__ import annotations

__all__ = [
    "ADD_OVERFLOW",
    "DIV_INTERNAL",
    "INVALID_EXPONENT",
    "MAX_IN_RATIO",
    "MAX_OUT_RATIO",
    "MUL_OVERFLOW",
    "OUT_OF_BOUNDS",
    "PRODUCT_OUT_OF_BOUNDS",
    "SUB_OVERFLOW",
    "X_OUT_OF_BOUNDS",
    "Y_OUT_OF_BOUNDS",
    "ZERO_DIVISION",
    "ZERO_INVARIANT",
    "BalancerError",
]

ADD_OVERFLOW = 0
SUB_OVERFLOW = 1
MUL_OVERFLOW = 3
ZERO_DIVISION = 4
DIV_INTERNAL = 5
X_OUT_OF_BOUNDS = 6
Y_OUT_OF_BOUNDS = 7
PRODUCT_OUT_OF_BOUNDS = 8
INVALID_EXPONENT = 9
OUT_OF_BOUNDS = 100
MAX_IN_RATIO = 304
MAX_OUT_RATIO = 305
ZERO_INVARIANT = 311

_NAMES = {
    ADD_OVERFLOW: "ADD_OVERFLOW",
    SUB_OVERFLOW: "SUB_OVERFLOW",
    MUL_OVERFLOW: "MUL_OVERFLOW",
    ZERO_DIVISION: "ZERO_DIVISION",
    DIV_INTERNAL: "DIV_INTERNAL",
    X_OUT_OF_BOUNDS: "X_OUT_OF_BOUNDS",
    Y_OUT_OF_BOUNDS: "Y_OUT_OF_BOUNDS",
    PRODUCT_OUT_OF_BOUNDS: "PRODUCT_OUT_OF_BOUNDS",
    INVALID_EXPONENT: "INVALID_EXPONENT",
    OUT_OF_BOUNDS: "OUT_OF_BOUNDS",
    MAX_IN_RATIO: "MAX_IN_RATIO",
    MAX_OUT_RATIO: "MAX_OUT_RATIO",
    ZERO_INVARIANT: "ZERO_INVARIANT",
}


class BalancerError(ArithmeticError):
    """A Balancer revert: ``code`` is the number, ``reason`` the on-chain revert string ``BAL#NNN``."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.reason = f"BAL#{code:03d}"
        self.name = _NAMES.get(code, "UNKNOWN")
        super().__init__(f"{self.reason} {self.name}")


def require(condition: bool, code: int) -> None:
    """``_require(condition, code)``."""
    if not condition:
        raise BalancerError(code)
