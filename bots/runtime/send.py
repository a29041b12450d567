"""The signing + sending executor every on-chain bot shares: :class:`Sender`.

It takes a :class:`bots.runtime.actions.Bundle` whose ``txs`` are unsigned EIP-1559 transaction dicts (nonce,
gas limit and fees already decided by the simulation) or a :class:`bots.runtime.actions.Transaction` (one such
dict), signs them with the bot's :class:`chains.send.signer.Signer`, and -- only when the bot is live -- sends
them.  A transaction goes to the node (``eth_sendRawTransaction``); a bundle goes to the relay as one
``eth_sendBundle`` for ``target_block`` (with the deterministic ``replacementUuid`` of (bot, chain, target block),
so a re-sent bundle replaces the earlier one), or with ``send_mode="public"`` one by one to the node.  A backrun's
``victim_raw`` (the user's signed tx) goes first.

Its follow-up action is a :class:`BundleSent` (or :class:`TransactionSent`) for the bot's store executor: the
signed raws and hashes, the bundle hash and the outcome -- ``submitted`` (a relay/builder or the node accepted it),
``failed`` (live, nothing accepted it) or ``simulated`` (dry-run: signed, never sent).  A relay or node failure
never raises: it is the ``failed`` outcome, logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bots.runtime.actions import Bundle, Transaction
from bots.runtime.engine import Executor
from chains.node.rpc import RpcClient
from chains.send.flashbots import FlashbotsClient, bundle_hash, bundle_replacement_uuid
from chains.send.signer import Signer

__all__ = ["BundleSent", "Sender", "TransactionSent"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BundleSent:
    """What :class:`Sender` did with ``bundle`` (``raws`` and ``tx_hashes`` in bundle order, victim first)."""

    bundle: Bundle
    raws: tuple[str, ...]
    tx_hashes: tuple[str, ...]  # of the bundle's own txs (the victim's excluded), in order
    bundle_hash: str
    sent: bool
    status: Literal["submitted", "failed", "simulated"]
    submit_seconds: float | None = None  # the relay/node round trip (None in dry-run)
    relay: str | None = None  # the first configured builder's name (bundle mode)

    @property
    def own_raws(self) -> tuple[str, ...]:
        """The signed raws of the bundle's own txs (``tx_hashes``' order; the victim's excluded)."""
        return self.raws[len(self.raws) - len(self.tx_hashes) :]


@dataclass(frozen=True, slots=True)
class TransactionSent:
    """What :class:`Sender` did with ``transaction``: its signed raw and hash, and the outcome (as for bundles)."""

    transaction: Transaction
    raw: str
    tx_hash: str
    sent: bool
    status: Literal["submitted", "failed", "simulated"]
    error: str | None = None


class Sender(Executor[Bundle | Transaction]):
    """Signs a :class:`Bundle`'s or a :class:`Transaction`'s transactions and sends them when ``live`` (see the
    module docstring)."""

    name = "send"

    def __init__(
        self,
        signer: Signer,
        *,
        live: bool,
        send_mode: Literal["bundle", "public"] = "bundle",
        relay: FlashbotsClient | None = None,
        rpc: RpcClient | None = None,
    ) -> None:
        if live and send_mode == "bundle" and relay is None:
            raise ValueError("bundle mode needs a relay client (FlashbotsClient)")
        if live and send_mode == "public" and rpc is None:
            raise ValueError("public mode needs an RPC client")
        self.signer = signer
        self.live = live
        self.send_mode = send_mode
        self.relay = relay
        self.rpc = rpc

    def accepts(self, action: object) -> bool:
        return isinstance(action, (Bundle, Transaction))

    def sign(self, txs: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
        """The raw hex and hash of each signed transaction."""
        raws, hashes = [], []
        for tx in txs:
            signed = self.signer.sign_eip1559(dict(tx))
            raws.append(signed.raw_hex)
            hashes.append(signed.hash_hex)
        return raws, hashes

    async def execute(self, action: Bundle | Transaction) -> Sequence[object]:
        if isinstance(action, Transaction):
            return [await self._transaction(action)]
        assert action.target_block is not None, "a bundle needs a target block"
        own_raws, hashes = self.sign(action.txs)
        raws = ([action.victim_raw] if action.victim_raw else []) + own_raws
        bhash = bundle_hash(raws)
        relay_name = next(iter(self.relay.builders)) if self.relay is not None else None
        if not self.live:
            return [
                BundleSent(action, tuple(raws), tuple(hashes), bhash, False, "simulated", relay=relay_name)
            ]
        sent = False
        t0 = time.perf_counter()
        try:
            if self.send_mode == "bundle":
                assert self.relay is not None
                uid = bundle_replacement_uuid(
                    action.replacement_key or action.bot, action.chain_id, action.target_block
                )
                results = await self.relay.send_bundle(raws, action.target_block, replacement_uuid=uid)
                sent = any(r.ok for r in results.values())
                for name, r in results.items():
                    if not r.ok:
                        log.warning("%s: builder %s refused bundle %s: %s", action.bot, name, bhash, r.error)
            else:
                assert self.rpc is not None
                for raw in raws:
                    await self.rpc.request("eth_sendRawTransaction", [raw])
                sent = True
        except Exception as exc:  # a relay/RPC failure must not stop the bot
            log.warning("%s: sending bundle %s failed: %s", action.bot, bhash, exc)
        return [
            BundleSent(
                action,
                tuple(raws),
                tuple(hashes),
                bhash,
                sent,
                "submitted" if sent else "failed",
                submit_seconds=time.perf_counter() - t0,
                relay=relay_name,
            )
        ]

    async def _transaction(self, action: Transaction) -> TransactionSent:
        (raw,), (tx_hash,) = self.sign([action.tx])
        if not self.live:
            return TransactionSent(action, raw, tx_hash, False, "simulated")
        if self.rpc is None:
            raise ValueError("sending a transaction needs an RPC client")
        try:
            await self.rpc.request("eth_sendRawTransaction", [raw], idempotent=False)
        except Exception as exc:  # the node refused it (nonce, fee, funds) or is unreachable
            log.warning("%s: sending transaction %s failed: %s", action.bot, tx_hash, exc)
            return TransactionSent(action, raw, tx_hash, False, "failed", error=str(exc))
        return TransactionSent(action, raw, tx_hash, True, "submitted")
