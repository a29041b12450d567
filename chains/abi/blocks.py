"""Blocks as typed events: one block's JSON and its receipts -> :class:`BlockData`.

:func:`fetch_block` is the unit every block consumer works in: one batched round trip
(``eth_getBlockByNumber`` + ``eth_getBlockReceipts``) gives a :class:`BlockData` with typed events, so bots
evaluate after a whole block, never after a single log.  Decoding only: following the chain (heads, reorgs)
is :mod:`chains.watch.blocks`; applying a block to pool and account state is :mod:`chains.state.chain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_utils.address import to_checksum_address

from chains.abi.decode import LogDecodeError, decode_swap_log
from chains.events import MinedTransaction, NewBlock, PoolSwap

__all__ = ["BlockData", "BlockRpc", "MalformedBlockError", "fetch_block", "hex_quantity", "parse_block"]


class BlockRpc(Protocol):
    """What :func:`fetch_block` needs of an RPC client (``chains.node.rpc.RpcClient`` has it)."""

    async def batch(self, calls: Any) -> list[Any]: ...


class MalformedBlockError(ValueError):
    """The node's answer for a block does not have the expected shape."""


@dataclass(frozen=True, slots=True)
class BlockData:
    """A mined block as typed events: its header, every transaction's outcome, and the swaps in its logs."""

    block: NewBlock
    transactions: tuple[MinedTransaction, ...]
    swaps: tuple[PoolSwap, ...]
    logs: tuple[dict[str, Any], ...] = field(repr=False, default=())


def hex_quantity(obj: dict[str, Any], key: str) -> int:
    """``obj[key]`` as an int from a JSON-RPC hex quantity; :class:`MalformedBlockError` if missing or not hex."""
    try:
        return int(obj[key], 16)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBlockError(
            f"field {key!r} missing or not a hex quantity: {obj.get(key)!r:.80}"
        ) from exc


def parse_block(block: dict[str, Any] | None, receipts: list[dict[str, Any]] | None) -> BlockData:
    """Turn the JSON of a block (with full transactions) and its receipts into :class:`BlockData`.

    Anything malformed (missing fields, bad hex, bad hashes or addresses) raises :class:`MalformedBlockError`.
    """
    if not isinstance(block, dict):
        raise MalformedBlockError(f"block is {block!r:.80}, not an object (unknown block number?)")
    if not isinstance(receipts, list):
        raise MalformedBlockError(f"receipts are {receipts!r:.80}, not a list")
    txs = block.get("transactions") or []
    if not isinstance(txs, list) or len(txs) != len(receipts):
        raise MalformedBlockError(
            f"block {block.get('number')} has {len(txs)} txs but {len(receipts)} receipts"
        )
    try:
        head = NewBlock(
            number=hex_quantity(block, "number"),
            hash=block.get("hash"),  # type: ignore[arg-type]  # validated by NewBlock
            parent_hash=block.get("parentHash"),  # type: ignore[arg-type]
            timestamp=hex_quantity(block, "timestamp"),
            base_fee_per_gas=hex_quantity(block, "baseFeePerGas") if block.get("baseFeePerGas") else 0,
            gas_used=hex_quantity(block, "gasUsed"),
            gas_limit=hex_quantity(block, "gasLimit"),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, MalformedBlockError):
            raise
        raise MalformedBlockError(f"block header: {exc}") from exc
    mined: list[MinedTransaction] = []
    swaps: list[PoolSwap] = []
    logs: list[dict[str, Any]] = []
    for tx, rc in zip(txs, receipts, strict=True):
        if not isinstance(tx, dict) or not isinstance(rc, dict):
            raise MalformedBlockError(
                "block was fetched without full transactions (or a receipt is not an object)"
            )
        if rc.get("transactionHash") != tx.get("hash"):
            raise MalformedBlockError(
                f"receipt {rc.get('transactionHash')} does not match tx {tx.get('hash')}"
            )
        to = tx.get("to")
        try:
            mined.append(
                MinedTransaction(
                    block_number=head.number,
                    block_hash=head.hash,
                    tx_index=hex_quantity(tx, "transactionIndex"),
                    hash=tx["hash"],
                    sender=to_checksum_address(tx["from"]),
                    to=to_checksum_address(to) if to else None,
                    nonce=hex_quantity(tx, "nonce"),
                    value=hex_quantity(tx, "value"),
                    gas_used=hex_quantity(rc, "gasUsed"),
                    effective_gas_price=hex_quantity(rc, "effectiveGasPrice"),
                    success=hex_quantity(rc, "status") == 1,
                )
            )
        except MalformedBlockError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedBlockError(f"block {head.number}: tx {tx.get('hash')!r:.80}: {exc}") from exc
        rc_logs = rc.get("logs") or []
        if not isinstance(rc_logs, list):
            raise MalformedBlockError(f"block {head.number}: logs of tx {tx.get('hash')} are not a list")
        for lg in rc_logs:
            if not isinstance(lg, dict):
                raise MalformedBlockError(
                    f"block {head.number}: a log of tx {tx.get('hash')} is not an object"
                )
            logs.append(lg)
            try:
                swap = decode_swap_log(lg)
            except (LogDecodeError, KeyError, TypeError, ValueError) as exc:
                raise MalformedBlockError(f"block {head.number}: {exc}") from exc
            if swap is not None:
                swaps.append(swap)
    return BlockData(block=head, transactions=tuple(mined), swaps=tuple(swaps), logs=tuple(logs))


async def fetch_block(rpc: BlockRpc, number: int) -> BlockData:
    """Fetch block ``number`` with its receipts in one batched request and decode it."""
    tag = hex(number)
    block, receipts = await rpc.batch(
        [("eth_getBlockByNumber", [tag, True]), ("eth_getBlockReceipts", [tag])]
    )
    return parse_block(block, receipts)
