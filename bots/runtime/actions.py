"""Typed actions: what a strategy asks the executors to do.

A strategy's ``process_event`` returns actions; the :class:`bots.runtime.engine.Engine` passes every one through
the risk gate (:mod:`bots.runtime.risk`) and then hands it to each executor that ``accepts`` it.  An executor may
return follow-up actions (a simulation executor turns a candidate :class:`Bundle` into a sized one, the sending
executor reports what it sent to the store executor); they take the same path.

Two families:

* :class:`SendAction` -- anything that can spend money or reveal a trade (a :class:`Bundle` for a relay, a
  :class:`Transaction` for the public mempool), ready to sign: a bot's candidates before simulation are its own
  plain actions, so the gate sees what would actually be sent.  They carry what the risk gate needs: the bot, the chain, the
  target block, the notional at risk and the profit expected, all exact integers in the bot's accounting token
  (wei of WETH for the on-chain bots).
* everything else (store writes, metrics): plain frozen dataclasses of the bot's own, never gated.

``Order`` (a CEX order) joins :class:`SendAction` with the CEX bots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Bundle", "Refused", "SendAction", "Transaction"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendAction:
    """Base of every action that sends or spends: the risk gate sees each one before any executor does.

    ``notional_wei``: the most the action can put at risk (a cycle's input amount); ``expected_profit_wei``: the
    profit the strategy expects after gas and tips (may be 0 for a candidate not yet simulated).
    """

    bot: str
    chain_id: int
    target_block: int | None
    notional_wei: int
    expected_profit_wei: int

    def __post_init__(self) -> None:
        for name in ("chain_id", "notional_wei", "expected_profit_wei"):
            if type(getattr(self, name)) is not int:
                raise TypeError(
                    f"{type(self).__name__}.{name} must be an int (exact), not {getattr(self, name)!r}"
                )
        if self.notional_wei < 0:
            raise ValueError(f"{type(self).__name__}.notional_wei must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle(SendAction):
    """Transactions for one target block, all or nothing, through a relay (or the mempool, tx by tx).

    ``txs``: the unsigned EIP-1559 transaction dicts in order (``chainId``, ``nonce``, ``to``, ``value``,
    ``data``, ``gas``, ``maxFeePerGas``, ``maxPriorityFeePerGas``), sized by the bot's simulation;
    :class:`bots.runtime.send.Sender` signs and sends them.  ``victim`` / ``victim_raw``: the pending user
    transaction a backrun follows (hash and signed raw); it always goes first -- we backrun, never front-run.
    ``replacement_key``: who the bundle's ``replacementUuid`` is derived from (default: the bot), so a re-sent
    bundle replaces the earlier one.  ``payload``: the bot's own description of it (for its store executor).
    """

    txs: tuple[Mapping[str, Any], ...]
    victim: str | None = None
    victim_raw: str | None = None
    replacement_key: str | None = None
    payload: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Transaction(SendAction):
    """One unsigned transaction for the public mempool (``payload``: the bot's description of it)."""

    tx: Mapping[str, Any]
    payload: Any = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A :class:`SendAction` the risk gate stopped, with the gate's reason code (``bots.store.Reason``).

    The engine hands it to the executors that accept it (usually the store executor, which records the reason);
    no sending executor ever sees the action itself.
    """

    action: SendAction
    reason: str
