"""Reading whole blocks: header, transactions with their receipts, and the decoded swap logs.

:func:`fetch_block` is the unit every block consumer works in: one batched round trip
(``eth_getBlockByNumber`` + ``eth_getBlockReceipts``) gives a :class:`BlockData` with typed events, so bots
evaluate after a whole block, never after a single log.  The streaming block watcher with reorg handling
(newHeads, journal rollback) builds on this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_utils.address import to_checksum_address

from chains.decode import LogDecodeError, decode_swap_log
from chains.events import MinedTransaction, NewBlock, PoolSwap

__all__ = ["BlockData", "BlockRpc", "MalformedBlockError", "fetch_block", "parse_block"]


class BlockRpc(Protocol):
    """What :func:`fetch_block` needs of an RPC client (``chains.rpc.RpcClient`` has it)."""

    async def batch(self, calls: Any) -> list[Any]:
        ...


class MalformedBlockError(ValueError):
    """The node's answer for a block does not have the expected shape."""


@dataclass(frozen=True, slots=True)
class BlockData:
    """A mined block as typed events: its header, every transaction's outcome, and the swaps in its logs."""

    block: NewBlock
    transactions: tuple[MinedTransaction, ...]
    swaps: tuple[PoolSwap, ...]
    logs: tuple[dict[str, Any], ...] = field(repr=False, default=())


def _q(obj: dict[str, Any], key: str) -> int:
    try:
        return int(obj[key], 16)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBlockError(f"field {key!r} missing or not a hex quantity: {obj.get(key)!r:.80}") from exc


def parse_block(block: dict[str, Any] | None, receipts: list[dict[str, Any]] | None) -> BlockData:
    """Turn the JSON of a block (with full transactions) and its receipts into :class:`BlockData`."""
    if not isinstance(block, dict):
        raise MalformedBlockError(f"block is {block!r:.80}, not an object (unknown block number?)")
    if not isinstance(receipts, list):
        raise MalformedBlockError(f"receipts are {receipts!r:.80}, not a list")
    txs = block.get("transactions") or []
    if len(txs) != len(receipts):
        raise MalformedBlockError(f"block {block.get('number')} has {len(txs)} txs but {len(receipts)} receipts")
    head = NewBlock(
        number=_q(block, "number"),
        hash=block["hash"],
        parent_hash=block["parentHash"],
        timestamp=_q(block, "timestamp"),
        base_fee_per_gas=_q(block, "baseFeePerGas") if block.get("baseFeePerGas") else 0,
        gas_used=_q(block, "gasUsed"),
        gas_limit=_q(block, "gasLimit"),
    )
    mined: list[MinedTransaction] = []
    swaps: list[PoolSwap] = []
    logs: list[dict[str, Any]] = []
    for tx, rc in zip(txs, receipts, strict=True):
        if not isinstance(tx, dict):
            raise MalformedBlockError("block was fetched without full transactions")
        if rc.get("transactionHash") != tx.get("hash"):
            raise MalformedBlockError(f"receipt {rc.get('transactionHash')} does not match tx {tx.get('hash')}")
        to = tx.get("to")
        mined.append(MinedTransaction(
            block_number=head.number,
            block_hash=head.hash,
            tx_index=_q(tx, "transactionIndex"),
            hash=tx["hash"],
            sender=to_checksum_address(tx["from"]),
            to=to_checksum_address(to) if to else None,
            nonce=_q(tx, "nonce"),
            value=_q(tx, "value"),
            gas_used=_q(rc, "gasUsed"),
            effective_gas_price=_q(rc, "effectiveGasPrice"),
            success=_q(rc, "status") == 1,
        ))
        for log in rc.get("logs") or []:
            logs.append(log)
            try:
                swap = decode_swap_log(log)
            except (LogDecodeError, KeyError, TypeError, ValueError) as exc:
                raise MalformedBlockError(f"block {head.number}: {exc}") from exc
            if swap is not None:
                swaps.append(swap)
    return BlockData(block=head, transactions=tuple(mined), swaps=tuple(swaps), logs=tuple(logs))


async def fetch_block(rpc: BlockRpc, number: int) -> BlockData:
    """Fetch block ``number`` with its receipts in one batched request and decode it."""
    tag = hex(number)
    block, receipts = await rpc.batch([("eth_getBlockByNumber", [tag, True]), ("eth_getBlockReceipts", [tag])])
    return parse_block(block, receipts)
