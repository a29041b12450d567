"""The hub's bus messages: exact round trips (integers beyond 2**64 as decimal strings), deterministic message ids,
and one refusal (MalformedMessage) for anything that is not a message of this schema."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bots.bus.messages import (
    SCHEMA,
    BlockMessage,
    MalformedMessage,
    ReorgMessage,
    SnapshotAnnouncement,
    StateSnapshot,
    decode,
    decode_snapshot,
    msg_id,
)
from chains.abi.blocks import parse_block
from chains.watch.blocks import ChainReorg

BIG = 2**200 + 12345  # a uint256 no double can hold
V2_SWAP = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
SYNC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
PAIR = "0x" + "11" * 20
HASH = "0x" + "ab" * 32
PARENT = "0x" + "cd" * 32
TX = "0x" + "ef" * 32


def _hex(n: int) -> str:
    return hex(n)


def _block_json() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A node's block (full transactions) and receipts: one swap tx with a Sync and a Swap log."""
    logs = [
        {
            "address": PAIR,
            "topics": [SYNC],
            "data": "0x" + f"{BIG % 2**112:064x}{7:064x}",
            "blockHash": HASH,
            "blockNumber": "0x10",
            "transactionHash": TX,
            "transactionIndex": "0x0",
            "logIndex": "0x0",
            "removed": False,
        },
        {
            "address": PAIR,
            "topics": [V2_SWAP, "0x" + "00" * 12 + "22" * 20, "0x" + "00" * 12 + "33" * 20],
            "data": "0x" + f"{BIG:064x}{0:064x}{0:064x}{5:064x}",
            "blockHash": HASH,
            "blockNumber": "0x10",
            "transactionHash": TX,
            "transactionIndex": "0x0",
            "logIndex": "0x1",
            "removed": False,
        },
    ]
    block = {
        "number": "0x10",
        "hash": HASH,
        "parentHash": PARENT,
        "timestamp": "0x65",
        "baseFeePerGas": _hex(BIG),
        "gasUsed": "0x5208",
        "gasLimit": "0x1c9c380",
        "transactions": [
            {
                "hash": TX,
                "from": "0x" + "22" * 20,
                "to": PAIR,
                "nonce": "0x3",
                "value": _hex(BIG),
                "transactionIndex": "0x0",
            }
        ],
    }
    receipts = [
        {
            "transactionHash": TX,
            "gasUsed": "0x5208",
            "effectiveGasPrice": _hex(BIG + 1),
            "status": "0x1",
            "logs": logs,
        }
    ]
    return block, receipts


def _block_message(seq: int = 7) -> BlockMessage:
    data = parse_block(*_block_json())
    return BlockMessage.of(31337, seq, data, frozenset({PAIR}), "0" * 63 + "1")


def test_a_block_message_round_trips_exactly() -> None:
    message = _block_message()
    data = message.encode()
    doc = json.loads(data)
    assert (doc["schema"], doc["kind"], doc["chain_id"], doc["seq"]) == (SCHEMA, "block", 31337, 7)
    # every integer of an event is a decimal string: exact in any JSON reader
    assert doc["block"]["base_fee_per_gas"] == str(BIG) and doc["block"]["number"] == "16"
    assert doc["transactions"][0]["value"] == str(BIG)
    assert doc["transactions"][0]["effective_gas_price"] == str(BIG + 1)
    back = decode(data)
    assert back == message
    assert isinstance(back, BlockMessage)
    rebuilt, original = back.block_data(), parse_block(*_block_json())
    assert rebuilt == original and rebuilt.logs == original.logs
    assert (
        rebuilt.swaps and rebuilt.swaps[0].amount0 == BIG
    )  # swaps decoded from the logs as parse_block does
    assert back.transactions[0].success and back.transactions[0].gas_used == 21000


def test_reorg_and_snapshot_messages_round_trip() -> None:
    reorg = ChainReorg(
        common_ancestor=14,
        common_ancestor_hash=PARENT,
        orphaned_numbers=(15, 16),
        orphaned_hashes=("0x" + "01" * 32, HASH),
        new_head=17,
        new_head_hash="0x" + "02" * 32,
    )
    message = ReorgMessage(31337, 8, reorg, frozenset({PAIR}), "f" * 64)
    assert decode(message.encode()) == message
    note = SnapshotAnnouncement(31337, 8, "chain-31337-state", 2**70, HASH, "e" * 64, 123456)
    assert decode(note.encode()) == note
    snap = StateSnapshot(31337, 8, {"format": "x", "big": str(BIG)}, "d" * 64, _block_message(8))
    assert decode_snapshot(snap.encode()) == snap
    with pytest.raises(MalformedMessage):
        decode(snap.encode())  # a snapshot blob is not a stream message
    with pytest.raises(MalformedMessage):
        decode_snapshot(note.encode())


def test_message_ids_are_deterministic_per_chain_kind_and_seq() -> None:
    assert _block_message(9).msg_id() == _block_message(9).msg_id() == msg_id("block", 31337, 9)
    assert (
        len({msg_id("block", 1, 9), msg_id("block", 1, 10), msg_id("block", 2, 9), msg_id("snapshot", 1, 9)})
        == 4
    )


def _doc() -> dict[str, Any]:
    out: dict[str, Any] = json.loads(_block_message().encode())
    return out


def _bad(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_block_message().encode()[:-7], "json"),  # truncated
        (b"[" * 100_000 + b"]" * 100_000, "json"),  # 100k nested brackets: refused before any recursion
        (b'{"schema": 1, "kind": "block"' + b", " * 10 + b"}", "json"),
        ("\ud800".encode("utf-8", "surrogatepass"), "json"),
        (b"[]", "shape"),
        (_bad({**_doc(), "kind": "mystery"}), "kind"),
        (_bad({**_doc(), "schema": SCHEMA + 1}), "schema"),  # a schema from the future
        (_bad({**_doc(), "schema": "1"}), "schema"),
        (_bad({k: v for k, v in _doc().items() if k != "digest"}), "shape"),
        (_bad({**_doc(), "seq": -1}), "shape"),
        (_bad({**_doc(), "seq": True}), "shape"),
        (_bad({**_doc(), "digest": "XYZ"}), "shape"),
        (_bad({**_doc(), "changed": ["0x" + "AB" * 20]}), "shape"),
        (_bad({**_doc(), "block": {**_doc()["block"], "base_fee_per_gas": BIG}}), "shape"),  # a JSON number
        (_bad({**_doc(), "block": {**_doc()["block"], "hash": "0x12"}}), "shape"),
        (_bad({**_doc(), "block": {**_doc()["block"], "surprise": "1"}}), "shape"),
        (_bad({**_doc(), "transactions": [{**_doc()["transactions"][0], "block_number": "99"}]}), "shape"),
        (_bad({**_doc(), "logs": [{**_doc()["logs"][0], "topics": "0x00"}]}), "shape"),
        (
            _bad({**_doc(), "logs": [{**_doc()["logs"][1], "data": "0x1234"}]}),
            "shape",
        ),  # a swap log cut short
        (_bad({**_doc(), "logs": [{**_doc()["logs"][0], "extra": {"deep": 1}}]}), "shape"),
    ],
)
def test_anything_else_is_refused_with_one_exception(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=f"^{reason}: "):
        decode(data)
