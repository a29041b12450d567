"""Pure checks: malformed block JSON is a MalformedBlockError (never another exception); ChainReorg's rules."""

from __future__ import annotations

from typing import Any

import pytest

from chains.abi.blocks import MalformedBlockError, parse_block
from chains.watch.blocks import ChainReorg

H = "0x" + "ab" * 32


def _block(**over: Any) -> dict[str, Any]:
    b = {
        "number": "0x5",
        "hash": H,
        "parentHash": "0x" + "cd" * 32,
        "timestamp": "0x10",
        "baseFeePerGas": "0x1",
        "gasUsed": "0x0",
        "gasLimit": "0x1c9c380",
        "transactions": [],
    }
    b.update(over)
    return b


@pytest.mark.parametrize(
    ("block", "receipts", "match"),
    [
        (_block(hash="0x1234"), [], "malformed hash"),
        (_block(parentHash=None), [], "hash must be"),
        (_block(gasUsed="0x2", gasLimit="0x1"), [], "exceeds gas_limit"),
        (_block(number="five"), [], "'number'"),
        (_block(transactions=[{"hash": H}]), [{"transactionHash": H}], "transactionIndex"),
        (
            _block(
                transactions=[
                    {"hash": H, "from": "0x12", "transactionIndex": "0x0", "nonce": "0x0", "value": "0x0"}
                ]
            ),
            [{"transactionHash": H, "gasUsed": "0x1", "effectiveGasPrice": "0x1", "status": "0x1"}],
            "tx",
        ),
        (_block(transactions=["0x" + "11" * 32]), ["x"], "full transactions"),
        (_block(), None, "not a list"),
    ],
)
def test_malformed_blocks_raise_one_error_type(block: Any, receipts: Any, match: str) -> None:
    with pytest.raises(MalformedBlockError, match=match):
        parse_block(block, receipts)


def test_chain_reorg_rules() -> None:
    r = ChainReorg(
        common_ancestor=4,
        common_ancestor_hash=H,
        orphaned_numbers=(5, 6),
        orphaned_hashes=(H, H),
        new_head=6,
        new_head_hash=H,
    )
    assert (r.depth, r.first_orphaned, r.resynced) == (2, 5, False)
    with pytest.raises(ValueError, match="differ in length"):
        ChainReorg(
            common_ancestor=4,
            common_ancestor_hash=H,
            orphaned_numbers=(5,),
            orphaned_hashes=(),
            new_head=5,
            new_head_hash=H,
        )
    with pytest.raises(ValueError, match="not after the common ancestor"):
        ChainReorg(
            common_ancestor=5,
            common_ancestor_hash=H,
            orphaned_numbers=(5,),
            orphaned_hashes=(H,),
            new_head=5,
            new_head_hash=H,
        )
    with pytest.raises(ValueError, match="oldest first"):
        ChainReorg(
            common_ancestor=None,
            common_ancestor_hash=None,
            orphaned_numbers=(6, 5),
            orphaned_hashes=(H, H),
            new_head=6,
            new_head_hash=H,
        )
