"""The bots-level reorg handler: keeps the database, bundle statuses and nonces on the canonical chain.

Wire it to a :class:`chains.watch.blocks.BlockWatcher` (which rolls the pool/lending state back and replays the new
branch)::

    handler = ReorgHandler(store, chain_id, nonces=nonce_manager, accounts=[our_address])
    watcher.add_reorg_listener(handler.on_reorg)
    watcher.add_block_listener(handler.on_block)

On a :class:`~chains.watch.blocks.ChainReorg` (called after the state is rolled back, before the new branch is
replayed) it

1. in one database transaction (:meth:`bots.store.Store.rollback_reorg`): marks every bundle that had landed in a
   replaced block ``orphaned`` (inclusion cleared), deletes every chain-derived row of the replaced blocks
   (blocks, evaluations, transactions, trades, opportunities, bundles built there, PnL snapshots -- so the
   orphaned bundles' PnL goes); the handled reorgs are kept in :attr:`ReorgHandler.outcomes` and logged;
2. polls the :class:`chains.send.flashbots.InclusionTracker` registered for each orphaned bundle (:meth:`track`), so
   the tracker sees the canonical block and reports the replaced one as ``ORPHANED``; the answers are kept in
   :attr:`inclusions`;
3. resyncs the nonces of the configured accounts with the new chain (:meth:`resync_nonces`): the nonce manager's
   counters, floor and in-flight bundle nonce are forgotten -- the next reservation re-reads the chain's pending
   nonce and the next bundle uses the chain's mined nonce -- while the raw transactions we sent at nonces the
   chain has not mined yet stay recorded, so ``NonceManager.fill_gaps`` can still resend them.

Then, as the new branch is replayed (:meth:`on_block`), an orphaned bundle whose transactions ALL appear in one
new canonical block is marked ``included`` there again ("re-landed").  The re-landed bundle's PnL is the bot's to
record again: the handler does not invent amounts.  A deep reorg whose common ancestor is unknown
(``common_ancestor is None``: the watcher resynced at the new head) deletes from the oldest replaced block the
watcher knew.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bots.store import OrphanedBundle, ReorgRollback, Store
from chains.abi.blocks import BlockData
from chains.send.flashbots import BlockInclusion, InclusionTracker
from chains.send.nonces import NonceManager
from chains.watch.blocks import ChainReorg

__all__ = ["ReorgHandler", "ReorgOutcome", "RollBackReorg"]


@dataclass(frozen=True, slots=True)
class RollBackReorg:
    """The action every bot's strategy returns for a ``ChainReorged`` event: its store executor hands ``reorg`` to
    :meth:`ReorgHandler.on_reorg` (the replaced blocks' rows go, landed bundles there are orphaned)."""

    reorg: ChainReorg


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReorgOutcome:
    """What one :meth:`ReorgHandler.on_reorg` did (also kept in ``handler.outcomes``)."""

    reorg: ChainReorg
    rollback: ReorgRollback
    nonces: Mapping[str, int]  # account -> the chain's pending nonce after the resync


class ReorgHandler:
    """Reorg listener (and block listener) for the bots; see the module docstring."""

    def __init__(
        self,
        store: Store,
        chain_id: int,
        *,
        nonces: NonceManager | None = None,
        accounts: Iterable[str] = (),
        metrics: Any = None,
    ) -> None:
        self.store = store
        self.chain_id = chain_id
        self.nonces = nonces
        self.accounts = [a for a in accounts]
        self.metrics = metrics  # a bots.metrics.Metrics: reorgs are counted in mevsuite_reorgs_total
        self.trackers: dict[str, InclusionTracker] = {}
        self.inclusions: dict[str, dict[int, BlockInclusion]] = {}
        self.awaiting: dict[
            str, OrphanedBundle
        ] = {}  # orphaned bundles that may land again on the new branch
        self.relanded: dict[str, tuple[int, str]] = {}
        self.outcomes: list[ReorgOutcome] = []

    def track(self, bundle_hash: str, tracker: InclusionTracker) -> None:
        """Register the inclusion tracker of a submitted bundle (told on a reorg that orphans it)."""
        self.trackers[bundle_hash.lower()] = tracker

    async def on_reorg(self, reorg: ChainReorg) -> None:
        """Roll the database back, notify trackers, resync nonces (see the module docstring)."""
        first = reorg.first_orphaned
        if first is None:
            return
        rollback = await self.store.rollback_reorg(self.chain_id, first)
        for bundle in rollback.orphaned_bundles:
            if bundle.tx_hashes:
                self.awaiting[bundle.bundle_hash] = bundle
            self.relanded.pop(bundle.bundle_hash, None)
            tracker = self.trackers.get(bundle.bundle_hash)
            if tracker is not None:
                try:
                    self.inclusions[bundle.bundle_hash] = await tracker.poll()
                except Exception:
                    log.exception(
                        "reorg: polling the inclusion tracker of bundle %s failed", bundle.bundle_hash
                    )
        nonces = await self.resync_nonces()
        if self.metrics is not None:
            self.metrics.reorgs_total.labels(chain_id=str(self.chain_id)).inc()
        log.warning(
            "reorg after block %s: %d block(s) replaced, %d row(s) deleted, bundles orphaned: %s",
            reorg.common_ancestor,
            reorg.depth,
            rollback.rows_deleted,
            [b.bundle_hash for b in rollback.orphaned_bundles],
        )
        self.outcomes.append(ReorgOutcome(reorg, rollback, nonces))

    async def on_block(self, data: BlockData) -> None:
        """On each applied block of the (new) canonical chain: re-land orphaned bundles found in it."""
        if not self.awaiting:
            return
        in_block = {tx.hash for tx in data.transactions}
        for bundle_hash, bundle in list(self.awaiting.items()):
            if all(h in in_block for h in bundle.tx_hashes):
                await self.store.set_bundle_status(
                    chain_id=self.chain_id,
                    bundle_hash=bundle_hash,
                    status="included",
                    included_block_number=data.block.number,
                    included_block_hash=data.block.hash,
                )
                self.relanded[bundle_hash] = (data.block.number, data.block.hash)
                del self.awaiting[bundle_hash]
                log.info("reorg: bundle %s landed again in block %d", bundle_hash, data.block.number)

    async def resync_nonces(self) -> dict[str, int]:
        """Put every configured account's nonce state back on the canonical chain; returns the pending nonces."""
        out: dict[str, int] = {}
        manager = self.nonces
        if manager is None:
            return out
        for account in self.accounts:
            key = manager.key(account)
            records = await manager.store.records(key)
            await manager.clear(account)
            mined = await manager.chain_nonce(account, "latest")
            for nonce, payload in records.items():
                if nonce >= mined:  # sent by us, not mined on the new chain: keep it for fill_gaps
                    await manager.store.record(key, nonce, payload)
            out[account] = await manager.chain_nonce(account, "pending")
        return out
