"""Helpers of the reorg tests: swaps as transactions, a block recorder, a watcher running in a task."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from eth_utils.crypto import keccak

from bots.store import Block, Store, Trade, Transaction
from chains.abi.blocks import BlockData
from chains.addressbook import AddressBook
from chains.devnet.artifacts import load
from chains.node.anvil import AnvilNode
from chains.state.chain import ChainState, StateAddresses
from chains.watch.blocks import BlockWatcher
from tests.chains.state.helpers import v3_tuple

DEADLINE = 2**40
GAS = 400_000


def v2_swap(book: AddressBook, trader: str, t_in: str, t_out: str, amount_in: int) -> dict[str, Any]:
    """A tx request: ``swapExactTokensForTokens`` on the "uniswap" V2 router."""
    data = load("UniswapV2Router02").encode_call(
        "swapExactTokensForTokens",
        amount_in,
        0,
        [book.token(t_in).address, book.token(t_out).address],
        trader,
        DEADLINE,
    )
    return {"from": trader, "to": book.v2["uniswap"].router, "data": data, "gas": hex(GAS)}


def v3_swap(
    book: AddressBook, trader: str, t_in: str, t_out: str, fee: int, amount_in: int
) -> dict[str, Any]:
    """A tx request: ``exactInputSingle`` on the V3 SwapRouter."""
    data = load("SwapRouter").encode_call(
        "exactInputSingle",
        (book.token(t_in).address, book.token(t_out).address, fee, trader, DEADLINE, amount_in, 0, 0),
    )
    return {"from": trader, "to": book.v3.swap_router, "data": data, "gas": hex(GAS)}


def mined(node: AnvilNode, tx_hash: str) -> str:
    """Wait for the receipt (automine answers before it is queryable); asserts the tx succeeded."""
    deadline = time.monotonic() + 10
    while (rc := node.rpc("eth_getTransactionReceipt", [tx_hash])) is None:
        assert time.monotonic() < deadline, f"no receipt for {tx_hash}"
        time.sleep(0.002)
    assert rc["status"] == "0x1", rc
    return tx_hash


def send(node: AnvilNode, tx: dict[str, Any]) -> str:
    """Send with automine on (one block per tx); waits until mined, asserts the tx succeeded."""
    return mined(node, str(node.rpc("eth_sendTransaction", [tx])))


def send_raw(node: AnvilNode, raw: str) -> str:
    """``eth_sendRawTransaction`` with automine on; waits until mined."""
    return mined(node, str(node.rpc("eth_sendRawTransaction", [raw])))


def sign(node: AnvilNode, tx: dict[str, Any]) -> str:
    """Sign a tx request of an unlocked account (anvil's ``eth_signTransaction``): the raw tx, 0x-hex."""
    base_fee = int(node.rpc("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    full = {
        **tx,
        "nonce": node.rpc("eth_getTransactionCount", [tx["from"], "pending"]),
        "maxFeePerGas": hex(4 * base_fee + 10**9),
        "maxPriorityFeePerGas": hex(10**9),
        "chainId": hex(node.chain_id()),
        "type": "0x2",
    }
    return str(node.rpc("eth_signTransaction", [full]))


def bundle_hash_of(*tx_hashes: str) -> str:
    """The Flashbots bundle hash: keccak256 of the concatenated tx hashes."""
    return "0x" + keccak(b"".join(bytes.fromhex(h[2:]) for h in tx_hashes)).hex()


def tracked(dev_book: AddressBook) -> StateAddresses:
    """The pools the tests follow: WETH/USDC on both V2 venues and on the 500 / 3000 V3 tiers."""
    weth, usdc = dev_book.token("WETH").address.lower(), dev_book.token("USDC").address.lower()
    v2 = {
        p.address: p.fee
        for p in dev_book.pools
        if p.kind == "v2" and {p.token0.lower(), p.token1.lower()} == {weth, usdc}
    }
    return StateAddresses(v2_pairs=v2, v3_pools=[pool_of_book(dev_book, 500), pool_of_book(dev_book, 3000)])


def pool_of_book(book: AddressBook, fee: int) -> str:
    """The WETH/USDC V3 pool of fee tier ``fee``."""
    pair = {book.token("WETH").address.lower(), book.token("USDC").address.lower()}
    for p in book.pools:
        if p.kind == "v3" and p.fee == fee and {p.token0.lower(), p.token1.lower()} == pair:
            return p.address
    raise LookupError(fee)


def pools(state: ChainState) -> dict[str, Any]:
    """The pool part of a state, comparable: V2 reserves and the whole V3 state."""
    return {
        "v2": {a: (p.reserve0, p.reserve1) for a, p in state.v2.items()},
        "v3": {a: v3_tuple(p) for a, p in state.v3.items()},
        "head": (state.block_number, state.block_hash),
    }


class Recorder:
    """Writes a block's rows (transactions, trades, then the block) -- what the recording bot writes."""

    def __init__(
        self, store: Store, chain_id: int, book: AddressBook, bundle_of: Mapping[str, str] | None = None
    ) -> None:
        self.store, self.chain_id = store, chain_id
        self.tokens = {p.address.lower(): (p.token0, p.token1) for p in book.pools}
        self.bundle_of = bundle_of if bundle_of is not None else {}

    async def __call__(self, data: BlockData) -> None:
        s, cid = self.store, self.chain_id
        async with s.session() as session:
            for t in data.transactions:
                await s.record_transaction(
                    chain_id=cid,
                    block_number=t.block_number,
                    block_hash=t.block_hash,
                    tx_index=t.tx_index,
                    tx_hash=t.hash,
                    sender=t.sender,
                    to=t.to,
                    nonce=t.nonce,
                    value=t.value,
                    gas_used=t.gas_used,
                    effective_gas_price=t.effective_gas_price,
                    success=t.success,
                    bundle_hash=self.bundle_of.get(t.hash),
                    session=session,
                )
            for w in data.swaps:
                t0, t1 = self.tokens[w.pool.lower()]
                t_in, t_out, a_in, a_out = (
                    (t0, t1, w.amount0, -w.amount1) if w.amount0 > 0 else (t1, t0, w.amount1, -w.amount0)
                )
                await s.record_trade(
                    chain_id=cid,
                    block_number=w.block_number,
                    block_hash=w.block_hash,
                    log_index=w.log_index,
                    tx_index=w.tx_index,
                    tx_hash=w.tx_hash,
                    pool=w.pool,
                    token_in=t_in,
                    token_out=t_out,
                    amount_in=a_in,
                    amount_out=a_out,
                    session=session,
                )
            b = data.block
            await s.record_block(
                chain_id=cid,
                number=b.number,
                hash=b.hash,
                parent_hash=b.parent_hash,
                timestamp=b.timestamp,
                session=session,
            )


async def chain_rows(store: Store) -> dict[str, set[tuple[Any, ...]]]:
    """The chain-derived rows of the store, without ids and recording times."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    skip = {"id", "recorded_at"}
    async with store.sessionmaker() as session:
        for model in (Block, Transaction, Trade):
            rows = (await session.execute(model.__table__.select())).mappings().all()  # type: ignore[attr-defined]
            out[model.__tablename__] = {
                tuple(sorted((k, v) for k, v in r.items() if k not in skip)) for r in rows
            }
    return out


@contextlib.asynccontextmanager
async def running(watcher: BlockWatcher) -> AsyncIterator[BlockWatcher]:
    """Run the watcher in a task for the ``async with`` body; stop it (and make sure it stopped) afterwards."""
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher
    finally:
        watcher.stop()
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
