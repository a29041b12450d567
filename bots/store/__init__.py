"""Storage of the bots: SQLAlchemy 2 models, exact 256-bit amounts, Alembic migrations, a small repository.

SQLite (``mevsuite.db`` in the current directory, WAL) by default, PostgreSQL via ``MEVSUITE_DB_URL`` or the
``db.url`` config key.  Typical use::

    store = await Store.open(config.db.url, upgrade=True, metrics=metrics)
    await store.record_block(chain_id=1, number=n, hash=h, parent_hash=p, timestamp=ts)
    await store.record_evaluation(bot="dex_arb", chain_id=1, block_number=n, block_hash=h,
                                  status="evaluated", duration_ms=3.2, opportunities=2)
    ...
    await store.rollback_reorg(chain_id=1, first_orphaned=first_replaced)   # on a reorg
    # (bots.runtime.reorg.ReorgHandler does this when wired to chains.watch.blocks.BlockWatcher)
"""

from bots.store.crud import delete_from_block, insert_ignore, sum_amount, upsert
from bots.store.engine import (
    DEFAULT_URL,
    DatabaseUnavailableError,
    connect,
    create_engine,
    mask_url,
    resolve_url,
)
from bots.store.migrate import check_async, upgrade, upgrade_async
from bots.store.models import (
    Base,
    Block,
    Bundle,
    Evaluation,
    Fill,
    ModelRun,
    Opportunity,
    PnlSnapshot,
    Signal,
    Trade,
    Transaction,
)
from bots.store.repository import (
    EVALUATION_STATUSES,
    SIGNAL_VALUES,
    EvaluationRecord,
    OrphanedBundle,
    Reason,
    ReorgRollback,
    SignalRecord,
    Store,
)
from bots.store.types import ExactDecimal, Int256, Uint256, UTCDateTime

__all__ = [
    "DEFAULT_URL",
    "EVALUATION_STATUSES",
    "SIGNAL_VALUES",
    "Base",
    "Block",
    "Bundle",
    "DatabaseUnavailableError",
    "Evaluation",
    "EvaluationRecord",
    "ExactDecimal",
    "Fill",
    "Int256",
    "ModelRun",
    "Opportunity",
    "OrphanedBundle",
    "PnlSnapshot",
    "Reason",
    "ReorgRollback",
    "Signal",
    "SignalRecord",
    "Store",
    "Trade",
    "Transaction",
    "UTCDateTime",
    "Uint256",
    "check_async",
    "connect",
    "create_engine",
    "delete_from_block",
    "insert_ignore",
    "mask_url",
    "resolve_url",
    "sum_amount",
    "upgrade",
    "upgrade_async",
    "upsert",
]
