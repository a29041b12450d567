"""Nonce management for one or more accounts, shared across asyncio tasks and processes.

Two modes:

* **COMMITTED** (public transactions: never reuse, never skip).
  ``async with manager.committed(address) as nonce:`` reserves the next nonce atomically; inside the block, send
  with :meth:`NonceManager.send_raw` (or send yourself and call :meth:`NonceManager.record_sent`) so the raw
  transaction is remembered. If the block raises, the nonce is *released* and handed to the next reservation
  (lowest first), so a failed send leaves no hole. After a transaction is dropped from the mempool or a released
  nonce was never reused, :meth:`NonceManager.fill_gaps` finds every nonce between the chain's mined nonce and
  our highest reserved one that the node does not know, and resends the recorded transaction, or (nothing
  recorded, or the resend is refused) cancels it with a 0-value self-transfer paying a higher tip.
* **TENTATIVE** (bundles). :meth:`NonceManager.tentative` returns the nonce the next bundle should use: the
  chain's mined nonce plus our own public transactions still pending (the committed high-water mark), raised to
  the floor left by :meth:`bundle_landed` while the node lags. A bundle that does not land is re-targeted at the
  next block with the *same* nonce; :meth:`bundle_expired` forgets it, so nothing is ever consumed by bundles
  that never land.

State lives in Redis (one key family per ``chain_id`` + address: ``next`` counter, ``free`` sorted set,
``txs`` hash, ``floor``/``inflight``) updated by Lua scripts, so several processes can share an account; the
counter is initialised from the chain's ``pending`` nonce the first time. Without Redis an in-process store with
the same semantics is used (tasks of one process only).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_hash.auto import keccak

from chains.node.rpc import RpcClient, RpcError
from chains.send.signer import Signer

__all__ = [
    "GapReport",
    "MemoryNonceStore",
    "NonceManager",
    "NonceStore",
    "RedisNonceStore",
]

log = logging.getLogger(__name__)

_RESERVE = """
local n = redis.call('GET', KEYS[1])
if not n then
  if tonumber(ARGV[1]) < 0 then return -1 end
  redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
local f = redis.call('ZPOPMIN', KEYS[2])
if #f > 0 then return tonumber(f[1]) end
return redis.call('INCR', KEYS[1]) - 1
"""

_RESYNC = """
local n = tonumber(redis.call('GET', KEYS[1]) or '-1')
local c = tonumber(ARGV[1])
if n < c then redis.call('SET', KEYS[1], c); n = c end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. c)
return n
"""

_FLOOR = """
local f = tonumber(redis.call('GET', KEYS[1]) or '-1')
local v = tonumber(ARGV[1])
if v > f then redis.call('SET', KEYS[1], v, 'EX', ARGV[2]); return v end
return f
"""


class NonceStore(Protocol):
    """Atomic nonce state per key (``chain_id:address``)."""

    async def reserve(self, key: str, init: int | None) -> int | None: ...
    async def release(self, key: str, nonce: int) -> None: ...
    async def take_free(self, key: str, nonce: int) -> bool: ...
    async def free(self, key: str) -> set[int]: ...
    async def peek_next(self, key: str) -> int | None: ...
    async def resync(self, key: str, chain_nonce: int) -> int: ...
    async def record(self, key: str, nonce: int, payload: str) -> None: ...
    async def records(self, key: str) -> dict[int, str]: ...
    async def forget(self, key: str, below: int) -> None: ...
    async def raise_floor(self, key: str, value: int, ttl: int) -> int: ...
    async def floor(self, key: str) -> int | None: ...
    async def set_inflight(self, key: str, nonce: int | None) -> None: ...
    async def inflight(self, key: str) -> int | None: ...
    async def clear(self, key: str) -> None: ...


class MemoryNonceStore:
    """In-process store: every method runs without awaiting, so each is atomic on the event loop."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._free: dict[str, set[int]] = {}
        self._txs: dict[str, dict[int, str]] = {}
        self._floor: dict[str, tuple[int, float]] = {}
        self._inflight: dict[str, int] = {}

    async def reserve(self, key: str, init: int | None) -> int | None:
        if key not in self._next:
            if init is None:
                return None
            self._next[key] = init
        free = self._free.get(key)
        if free:
            n = min(free)
            free.discard(n)
            return n
        n = self._next[key]
        self._next[key] = n + 1
        return n

    async def release(self, key: str, nonce: int) -> None:
        self._free.setdefault(key, set()).add(nonce)

    async def take_free(self, key: str, nonce: int) -> bool:
        free = self._free.get(key, set())
        if nonce in free:
            free.discard(nonce)
            return True
        return False

    async def free(self, key: str) -> set[int]:
        return set(self._free.get(key, ()))

    async def peek_next(self, key: str) -> int | None:
        return self._next.get(key)

    async def resync(self, key: str, chain_nonce: int) -> int:
        n = max(self._next.get(key, -1), chain_nonce)
        self._next[key] = n
        self._free[key] = {x for x in self._free.get(key, ()) if x >= chain_nonce}
        return n

    async def record(self, key: str, nonce: int, payload: str) -> None:
        self._txs.setdefault(key, {})[nonce] = payload

    async def records(self, key: str) -> dict[int, str]:
        return dict(self._txs.get(key, {}))

    async def forget(self, key: str, below: int) -> None:
        txs = self._txs.get(key, {})
        for n in [n for n in txs if n < below]:
            del txs[n]

    async def raise_floor(self, key: str, value: int, ttl: int) -> int:
        cur = await self.floor(key)
        if cur is None or value > cur:
            self._floor[key] = (value, time.monotonic() + ttl)
            return value
        return cur

    async def floor(self, key: str) -> int | None:
        entry = self._floor.get(key)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    async def set_inflight(self, key: str, nonce: int | None) -> None:
        if nonce is None:
            self._inflight.pop(key, None)
        else:
            self._inflight[key] = nonce

    async def inflight(self, key: str) -> int | None:
        return self._inflight.get(key)

    async def clear(self, key: str) -> None:
        for d in (self._next, self._free, self._txs, self._floor, self._inflight):
            d.pop(key, None)


class RedisNonceStore:
    """Redis-backed store (``redis.asyncio.Redis``); shared by every process using the same ``prefix``."""

    def __init__(self, redis: Any, prefix: str = "mevsuite:nonce") -> None:
        self.redis = redis
        self.prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._resync = redis.register_script(_RESYNC)
        self._floor = redis.register_script(_FLOOR)

    def _k(self, key: str, part: str) -> str:
        return f"{self.prefix}:{key}:{part}"

    async def reserve(self, key: str, init: int | None) -> int | None:
        n = int(
            await self._reserve(
                keys=[self._k(key, "next"), self._k(key, "free")], args=[-1 if init is None else init]
            )
        )
        return None if n < 0 else n

    async def release(self, key: str, nonce: int) -> None:
        await self.redis.zadd(self._k(key, "free"), {str(nonce): nonce})

    async def take_free(self, key: str, nonce: int) -> bool:
        return bool(await self.redis.zrem(self._k(key, "free"), str(nonce)))

    async def free(self, key: str) -> set[int]:
        return {int(x) for x in await self.redis.zrange(self._k(key, "free"), 0, -1)}

    async def peek_next(self, key: str) -> int | None:
        v = await self.redis.get(self._k(key, "next"))
        return None if v is None else int(v)

    async def resync(self, key: str, chain_nonce: int) -> int:
        return int(await self._resync(keys=[self._k(key, "next"), self._k(key, "free")], args=[chain_nonce]))

    async def record(self, key: str, nonce: int, payload: str) -> None:
        await self.redis.hset(self._k(key, "txs"), str(nonce), payload)

    async def records(self, key: str) -> dict[int, str]:
        raw = await self.redis.hgetall(self._k(key, "txs"))
        return {int(k): v.decode() if isinstance(v, bytes) else str(v) for k, v in raw.items()}

    async def forget(self, key: str, below: int) -> None:
        old = [k for k in await self.redis.hkeys(self._k(key, "txs")) if int(k) < below]
        if old:
            await self.redis.hdel(self._k(key, "txs"), *old)

    async def raise_floor(self, key: str, value: int, ttl: int) -> int:
        return int(await self._floor(keys=[self._k(key, "floor")], args=[value, ttl]))

    async def floor(self, key: str) -> int | None:
        v = await self.redis.get(self._k(key, "floor"))
        return None if v is None else int(v)

    async def set_inflight(self, key: str, nonce: int | None) -> None:
        if nonce is None:
            await self.redis.delete(self._k(key, "inflight"))
        else:
            await self.redis.set(self._k(key, "inflight"), nonce)

    async def inflight(self, key: str) -> int | None:
        v = await self.redis.get(self._k(key, "inflight"))
        return None if v is None else int(v)

    async def clear(self, key: str) -> None:
        await self.redis.delete(*(self._k(key, p) for p in ("next", "free", "txs", "floor", "inflight")))


@dataclass
class GapReport:
    """What :meth:`NonceManager.fill_gaps` did: nonces resent, cancelled, and still unknown (unrecorded)."""

    chain_nonce: int
    highest: int | None
    resent: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)


def _q(value: int) -> str:
    return hex(value)


class NonceManager:
    """Nonces for the accounts of one chain; see the module docstring for the two modes."""

    def __init__(
        self, rpc: RpcClient, chain_id: int, *, store: NonceStore | None = None, floor_ttl: int = 120
    ) -> None:
        self.rpc = rpc
        self.chain_id = chain_id
        self.store: NonceStore = store if store is not None else MemoryNonceStore()
        self.floor_ttl = floor_ttl
        self._sent: set[tuple[str, int]] = set()

    @classmethod
    async def create(
        cls,
        rpc: RpcClient,
        *,
        redis_url: str | None = None,
        prefix: str = "mevsuite:nonce",
        chain_id: int | None = None,
    ) -> NonceManager:
        """Manager over Redis when ``redis_url`` answers a PING, else over the in-process store."""
        cid = chain_id if chain_id is not None else int(await rpc.request("eth_chainId"), 16)
        store: NonceStore | None = None
        if redis_url:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(redis_url)
            try:
                await client.ping()
                store = RedisNonceStore(client, prefix)
            except Exception as exc:
                log.warning("redis unavailable (%s); nonces are shared in-process only", type(exc).__name__)
                await client.aclose()
        return cls(rpc, cid, store=store)

    def key(self, address: str) -> str:
        return f"{self.chain_id}:{address.lower()}"

    async def chain_nonce(self, address: str, tag: str = "latest") -> int:
        return int(await self.rpc.request("eth_getTransactionCount", [address, tag]), 16)

    # ------------------------------------------------------------------ COMMITTED
    async def reserve(self, address: str) -> int:
        key = self.key(address)
        n = await self.store.reserve(key, None)
        if n is None:
            n = await self.store.reserve(key, await self.chain_nonce(address, "pending"))
            assert n is not None
        return n

    async def release(self, address: str, nonce: int) -> None:
        await self.store.release(self.key(address), nonce)

    @contextlib.asynccontextmanager
    async def committed(self, address: str) -> AsyncIterator[int]:
        """Reserve the next nonce; released for reuse if the block raises (the send failed)."""
        nonce = await self.reserve(address)
        mark = (self.key(address), nonce)
        try:
            yield nonce
        except BaseException:
            if mark not in self._sent:  # a tx that reached the node keeps its nonce
                await self.release(address, nonce)
            raise
        finally:
            self._sent.discard(mark)

    async def record_sent(self, address: str, nonce: int, raw_tx: bytes) -> bytes:
        """Remember a sent type 2 transaction (for :meth:`fill_gaps`); returns its hash."""
        tx_hash = keccak(raw_tx)
        self._sent.add((self.key(address), nonce))
        await self.store.record(
            self.key(address), nonce, json.dumps({"hash": "0x" + tx_hash.hex(), "raw": "0x" + raw_tx.hex()})
        )
        return tx_hash

    async def send_raw(self, address: str, nonce: int, raw_tx: bytes) -> str:
        """``eth_sendRawTransaction`` and record it; errors propagate (so ``committed`` releases the nonce)."""
        tx_hash = str(
            await self.rpc.request("eth_sendRawTransaction", ["0x" + raw_tx.hex()], idempotent=False)
        )
        await self.record_sent(address, nonce, raw_tx)
        return tx_hash

    async def fill_gaps(
        self, signer: Signer, *, cancel_tip: int = 2 * 10**9, bump: float = 1.125, gas: int = 21_000
    ) -> GapReport:
        """Resend or cancel every nonce between the chain's mined nonce and our highest reserved one that the node
        has lost (dropped, never sent, or released and not reused), so later transactions can be mined."""
        address = signer.address
        key = self.key(address)
        chain = await self.chain_nonce(address, "latest")
        nxt = await self.store.resync(key, chain)
        await self.store.forget(key, chain)
        report = GapReport(chain_nonce=chain, highest=nxt - 1 if nxt > chain else None)
        if nxt <= chain:
            return report
        records = await self.store.records(key)
        free = await self.store.free(key)
        window = list(range(chain, nxt))
        known = [n for n in window if n in records and n not in free]
        found: dict[int, Any] = {}
        if known:
            results = await self.rpc.batch(
                [("eth_getTransactionByHash", [json.loads(records[n])["hash"]]) for n in known],
                return_exceptions=True,
            )
            found = dict(zip(known, results, strict=True))
        base_fee: int | None = None
        for n in window:
            rec = json.loads(records[n]) if n in records else None
            if n in free:
                if not await self.store.take_free(key, n):  # someone reserved it meanwhile
                    continue
            elif rec is None:
                report.unknown.append(n)
                continue
            else:
                seen = found.get(n)
                if seen is not None and not isinstance(seen, RpcError):
                    continue  # the node still has it (pending or mined)
                try:
                    await self.rpc.request("eth_sendRawTransaction", [rec["raw"]], idempotent=False)
                    report.resent.append(n)
                    continue
                except RpcError as exc:
                    log.info("resend of nonce %d refused (%s); cancelling", n, exc.message)
            if base_fee is None:
                block = await self.rpc.request("eth_getBlockByNumber", ["latest", False])
                base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
            tip, max_fee = cancel_tip, 2 * base_fee + cancel_tip
            if rec is not None:
                old = _decode_fees(bytes.fromhex(rec["raw"][2:]))
                if old is not None:
                    tip = max(tip, int(old[0] * bump) + 1)
                    max_fee = max(max_fee, int(old[1] * bump) + 1, 2 * base_fee + tip)
            cancel = signer.sign_eip1559(
                {
                    "chainId": self.chain_id,
                    "nonce": n,
                    "to": address,
                    "value": 0,
                    "gas": gas,
                    "maxPriorityFeePerGas": tip,
                    "maxFeePerGas": max(max_fee, tip),
                }
            )
            await self.send_raw(address, n, cancel.raw_transaction)
            report.cancelled.append(n)
        return report

    # ------------------------------------------------------------------ TENTATIVE
    async def tentative(self, address: str) -> int:
        """Nonce for the next bundle: mined nonce + our pending public txs, at least the last landed bundle's + 1.
        Calling it again before the bundle lands or expires returns the same nonce."""
        key = self.key(address)
        chain = await self.chain_nonce(address, "latest")
        candidates = [chain]
        committed_next = await self.store.peek_next(key)
        if committed_next is not None:
            candidates.append(committed_next)
        floor = await self.store.floor(key)
        if floor is not None:
            candidates.append(floor)
        nonce = max(candidates)
        await self.store.set_inflight(key, nonce)
        return nonce

    async def bundle_landed(self, address: str, nonce: int) -> None:
        key = self.key(address)
        await self.store.raise_floor(key, nonce + 1, self.floor_ttl)
        if await self.store.inflight(key) == nonce:
            await self.store.set_inflight(key, None)

    async def bundle_expired(self, address: str, nonce: int) -> None:
        key = self.key(address)
        if await self.store.inflight(key) == nonce:
            await self.store.set_inflight(key, None)

    async def inflight(self, address: str) -> int | None:
        return await self.store.inflight(self.key(address))

    async def clear(self, address: str) -> None:
        """Forget everything about ``address`` (the next reservation re-reads the chain)."""
        await self.store.clear(self.key(address))


def _decode_fees(raw: bytes) -> tuple[int, int] | None:
    """(maxPriorityFeePerGas, maxFeePerGas) of a raw type 2 transaction, None for other types."""
    if not raw or raw[0] != 2:
        return None
    import rlp

    fields = rlp.decode(raw[1:])
    return int.from_bytes(fields[2], "big"), int.from_bytes(fields[3], "big")
