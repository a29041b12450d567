"""Whale detection: transfers and swaps at least as large as a per-token size threshold become
:class:`~chains.events.WhaleTransfer` events.

Pure functions over what the watchers already decode, no I/O:

* :func:`mined_whales` — a whole block (:class:`~chains.abi.blocks.BlockData`): ETH moved by a successful
  transaction's ``value``, and ERC-20 ``Transfer`` logs (a swap moves its tokens with such transfers, so a big
  mined swap shows up as its big transfers);
* :func:`pending_whales` — a :class:`~chains.events.PendingSwap` in the mempool (its input amount) or a pending
  ETH transfer.

Thresholds are raw units per token (``WhaleThresholds.tokens``, checksummed addresses) and wei for ETH
(``WhaleThresholds.eth_wei``); a token without a threshold is never a whale (no price guessing on this floor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chains.abi.blocks import BlockData
from chains.events import PendingSwap, PendingTransaction, WhaleTransfer

__all__ = ["ERC20_TRANSFER_TOPIC", "WhaleThresholds", "mined_whales", "pending_whales"]

ERC20_TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()


@dataclass(frozen=True, slots=True)
class WhaleThresholds:
    """Sizes from which a move is a whale's: ``eth_wei`` for ETH (None: never), ``tokens`` per ERC-20."""

    eth_wei: int | None = None
    tokens: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checked = {to_checksum_address(t): int(v) for t, v in self.tokens.items()}
        if any(v <= 0 for v in checked.values()) or (self.eth_wei is not None and self.eth_wei <= 0):
            raise ValueError("whale thresholds must be positive")
        object.__setattr__(self, "tokens", checked)


def _topic_address(topic: str) -> str:
    return str(to_checksum_address("0x" + topic[-40:]))


def mined_whales(block: BlockData, thresholds: WhaleThresholds) -> list[WhaleTransfer]:
    """Every whale move of ``block``, in block order (ETH value before the tx's transfer logs)."""
    head = block.block
    out: list[WhaleTransfer] = []
    by_tx: dict[str, list[WhaleTransfer]] = {}
    for lg in block.logs:
        topics = lg.get("topics") or []
        if len(topics) != 3 or str(topics[0]).lower() != ERC20_TRANSFER_TOPIC:
            continue  # ERC-721 Transfer has 4 topics; anything else is not a fungible transfer
        token = to_checksum_address(lg["address"])
        threshold = thresholds.tokens.get(token)
        data = str(lg.get("data") or "0x")
        if threshold is None or len(data) != 66:
            continue
        amount = int(data, 16)
        if amount < threshold:
            continue
        tx_hash = str(lg["transactionHash"]).lower()
        by_tx.setdefault(tx_hash, []).append(
            WhaleTransfer(
                whale_kind="erc20_transfer",
                status="mined",
                tx_hash=tx_hash,
                sender=_topic_address(topics[1]),
                recipient=_topic_address(topics[2]),
                token=token,
                amount=amount,
                threshold=threshold,
                block_number=head.number,
                block_hash=head.hash,
                log_index=int(lg["logIndex"], 16),
            )
        )
    for tx in block.transactions:
        eth = thresholds.eth_wei
        if eth is not None and tx.success and tx.value >= eth:
            out.append(
                WhaleTransfer(
                    whale_kind="eth_transfer",
                    status="mined",
                    tx_hash=tx.hash,
                    sender=tx.sender,
                    recipient=tx.to,
                    amount=tx.value,
                    threshold=eth,
                    block_number=head.number,
                    block_hash=head.hash,
                )
            )
        out.extend(by_tx.pop(tx.hash, []))
    return out


def pending_whales(
    item: PendingSwap | PendingTransaction, thresholds: WhaleThresholds
) -> list[WhaleTransfer]:
    """The whale moves a pending swap (its input; for an exact-output swap, its maximum input) or a pending
    transaction (its ETH value) would make."""
    if isinstance(item, PendingSwap):
        amount = item.amount_in if item.exact_input else item.amount_in_max
        threshold = thresholds.tokens.get(item.token_in)
        if amount is None or threshold is None or amount < threshold:
            return []
        return [
            WhaleTransfer(
                whale_kind="swap",
                status="pending",
                tx_hash=item.tx_hash,
                sender=item.sender,
                recipient=item.recipient,
                token=item.token_in,
                amount=amount,
                threshold=threshold,
            )
        ]
    eth = thresholds.eth_wei
    if eth is None or item.value < eth:
        return []
    return [
        WhaleTransfer(
            whale_kind="eth_transfer",
            status="pending",
            tx_hash=item.hash,
            sender=item.sender,
            recipient=item.to,
            amount=item.value,
            threshold=eth,
        )
    ]
