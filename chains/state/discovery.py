"""Pool discovery from factory logs (``PairCreated`` / ``PoolCreated``), resumable through a checkpoint file.

For fork mode and for any chain where no pool file is given: scan each factory's creation events from
``from_block`` to the head in chunks of ``chunk`` blocks (halved on a "too many results"/range error, so
public RPC limits are respected), and record every pool with its tokens and fee.  After each chunk the
checkpoint (JSON: the last scanned block per factory plus the pools found so far) is written atomically, so
an interrupted scan resumes where it stopped and a later run only scans the new blocks.

    pools = await discover_pools(rpc, [Factory("uniswap_v2", addr, PoolKind.V2), Factory("uniswap_v3", addr3, PoolKind.V3)],
                                 checkpoint="pools.checkpoint.json", on_progress=print)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from chains import wirejson
from chains.kinds import PoolKind
from chains.node.rpc import RpcClient, RpcError

__all__ = [
    "PAIR_CREATED",
    "POOL_CREATED",
    "DiscoveredPool",
    "DiscoveryError",
    "Factory",
    "discover_pools",
    "read_checkpoint",
]

PAIR_CREATED = "0x0d3648bd0f6ba80134a33ba9275ac585d9d315f0ad8355cddefde31afa28d0e9"
POOL_CREATED = "0x783cca1c0412dd0d695e784568c96da2e9c22ff989357a2e8b1d9b2b4e6b7118"
CHECKPOINT_FORMAT = "mevsuite.pool-discovery"


class DiscoveryError(RuntimeError):
    """A scan cannot go on (malformed logs, an RPC that refuses even one-block ranges, a bad checkpoint)."""


@dataclass(frozen=True, slots=True)
class Factory:
    name: str
    address: str
    kind: PoolKind  # V2 (PairCreated) or V3 (PoolCreated)
    fee_bps: int = 30  # v2 pairs: the venue's fee; v3 pools carry their own


@dataclass(frozen=True, slots=True)
class DiscoveredPool:
    factory: str  # the Factory.name
    kind: PoolKind
    address: str
    token0: str
    token1: str
    fee: int  # v2: bps; v3: hundredths of a bip
    tick_spacing: int
    block: int


def _addr_topic(topic: str) -> str:
    return str(to_checksum_address("0x" + topic[-40:]))


def _parse(f: Factory, log: dict[str, Any]) -> DiscoveredPool:
    try:
        topics = log["topics"]
        data = bytes.fromhex(log["data"][2:])
        block = int(log["blockNumber"], 16)
        t0, t1 = _addr_topic(topics[1]), _addr_topic(topics[2])
        if f.kind == PoolKind.V2:
            return DiscoveredPool(
                f.name,
                PoolKind.V2,
                str(to_checksum_address("0x" + data[12:32].hex())),
                t0,
                t1,
                f.fee_bps,
                0,
                block,
            )
        fee = int(topics[3], 16)
        spacing = int.from_bytes(data[0:32], "big", signed=True)
        return DiscoveredPool(
            f.name,
            PoolKind.V3,
            str(to_checksum_address("0x" + data[44:64].hex())),
            t0,
            t1,
            fee,
            spacing,
            block,
        )
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise DiscoveryError(f"malformed {f.name} creation log {str(log)[:200]}: {exc}") from exc


CHECKPOINT_MAX_BYTES = 256 << 20


def read_checkpoint(path: Path | None) -> tuple[dict[str, int], dict[str, DiscoveredPool]]:
    """The scanned blocks and found pools of a checkpoint (nothing if `path` is None or missing);
    :class:`DiscoveryError` (one line) if the file is not a usable checkpoint."""
    if path is None or not path.exists():
        return {}, {}
    try:
        doc = wirejson.load_file(path, max_bytes=CHECKPOINT_MAX_BYTES)
    except (OSError, ValueError) as exc:
        raise DiscoveryError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise DiscoveryError(f"{path} is not a pool-discovery checkpoint")
    scanned, pools = doc.get("scanned"), doc.get("pools")
    if not isinstance(scanned, dict) or not all(type(v) is int and v >= 0 for v in scanned.values()):
        raise DiscoveryError(f"checkpoint {path}: 'scanned' must map factory names to block numbers")
    if not isinstance(pools, list):
        raise DiscoveryError(f"checkpoint {path}: 'pools' must be a list")
    found: dict[str, DiscoveredPool] = {}
    for i, p in enumerate(pools):
        try:
            pool = _checked_pool(p)
        except ValueError as exc:
            raise DiscoveryError(f"checkpoint {path}: pools[{i}]: {exc}") from None
        found[pool.address] = pool
    return dict(scanned), found


def _checked_pool(p: Any) -> DiscoveredPool:
    if not isinstance(p, dict) or set(p) != set(DiscoveredPool.__dataclass_fields__):
        raise ValueError(f"expected an object with the keys {', '.join(DiscoveredPool.__dataclass_fields__)}")
    for key in ("factory", "address", "token0", "token1"):
        if not isinstance(p[key], str):
            raise ValueError(f"{key}: expected a string")
    for key in ("fee", "tick_spacing", "block"):
        if type(p[key]) is not int:
            raise ValueError(f"{key}: expected an integer")
    if p["kind"] not in (PoolKind.V2, PoolKind.V3):
        raise ValueError(f"kind {str(p['kind'])[:20]!r} is not v2/v3")
    addrs = {k: str(to_checksum_address(p[k])) for k in ("address", "token0", "token1")}
    return DiscoveredPool(**{**p, **addrs, "kind": PoolKind(p["kind"])})


def _save(path: Path | None, scanned: dict[str, int], pools: dict[str, DiscoveredPool]) -> None:
    if path is None:
        return
    doc = {
        "format": CHECKPOINT_FORMAT,
        "scanned": scanned,
        "pools": [asdict(p) for p in sorted(pools.values(), key=lambda p: (p.block, p.address))],
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


async def discover_pools(
    rpc: RpcClient,
    factories: Sequence[Factory],
    *,
    from_block: int = 0,
    to_block: int | None = None,
    chunk: int = 10_000,
    checkpoint: str | Path | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> list[DiscoveredPool]:
    """Every pool the ``factories`` created in ``[from_block, to_block]`` (default: head), oldest first."""
    path = Path(checkpoint) if checkpoint is not None else None
    scanned, pools = read_checkpoint(path)
    head = int(await rpc.request("eth_blockNumber", []), 16) if to_block is None else to_block
    say = on_progress or (lambda _m: None)
    for f in factories:
        topic = PAIR_CREATED if f.kind == PoolKind.V2 else POOL_CREATED
        start = max(from_block, scanned.get(f.address, from_block - 1) + 1)
        step = max(1, chunk)
        while start <= head:
            end = min(head, start + step - 1)
            try:
                logs = await rpc.request(
                    "eth_getLogs",
                    [{"address": f.address, "topics": [topic], "fromBlock": hex(start), "toBlock": hex(end)}],
                )
            except RpcError as exc:
                if step == 1:
                    raise DiscoveryError(f"{f.name}: eth_getLogs refuses even block {start}: {exc}") from exc
                step = max(1, step // 2)  # "query returned more than N results" / "range too large"
                continue
            if not isinstance(logs, list):
                raise DiscoveryError(f"{f.name}: eth_getLogs returned {type(logs).__name__}, not a list")
            for log in logs:
                p = _parse(f, log)
                pools[p.address] = p
            scanned[f.address] = end
            _save(path, scanned, pools)
            say(f"{f.name}: scanned to block {end} of {head}, {len(pools)} pools")
            start = end + 1
    return sorted(pools.values(), key=lambda p: (p.block, p.address))
