"""Every subject, stream and bucket name of the mevsuite bus, and the JetStream configuration of each.

One place, so a publisher and its consumers cannot disagree on a name (docs/bus.md has the table)::

    mevsuite.<chain>.blocks     applied blocks and reorgs, in order  stream MEVSUITE_CHAIN_<chain>
    mevsuite.<chain>.gas        gas recommendations                  stream MEVSUITE_CHAIN_<chain>
    mevsuite.<chain>.whales     WhaleTransfer                        stream MEVSUITE_CHAIN_<chain>
    mevsuite.<chain>.oracle     OracleUpdate                         stream MEVSUITE_CHAIN_<chain>
    mevsuite.<chain>.snapshot   snapshot announcements               stream MEVSUITE_CHAIN_<chain>
    mevsuite.<chain>.pending    pending swaps (short max age)        stream MEVSUITE_PENDING_<chain>
    mevsuite.signals            ML signals                           stream MEVSUITE_SIGNALS
    object store  mevsuite-snapshots    snapshot payloads (the default max payload is 1 MB)
    key-value     mevsuite-heartbeats   process heartbeats (entries expire after the bucket's TTL)

``<chain>`` is the decimal chain id.  All streams are limits-based (messages stay until their max age or the
stream's size cap, whoever consumes them), file-stored, with a duplicate window for ``Nats-Msg-Id`` so a
publisher may re-send after a lost ack without storing the message twice.  The pending stream has its own short
max age: a pending swap older than that is worthless, and consumers of it deliver new messages only.

The limits are one frozen :class:`BusLimits` (defaults below); tests shorten them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from nats.js import api

__all__ = [
    "CHAIN_STREAM_PREFIX",
    "DEFAULT_LIMITS",
    "HEARTBEAT_BUCKET",
    "PENDING_STREAM_PREFIX",
    "SIGNALS_STREAM",
    "SIGNALS_SUBJECT",
    "SNAPSHOT_BUCKET",
    "SUBJECT_PREFIX",
    "BusLimits",
    "ChainSubjects",
    "Topic",
    "chain_stream_config",
    "chain_stream_name",
    "chain_subjects",
    "heartbeat_bucket_config",
    "pending_stream_config",
    "pending_stream_name",
    "signals_stream_config",
    "snapshot_bucket_config",
    "stream_for_subject",
    "subject",
]

SUBJECT_PREFIX = "mevsuite"
SIGNALS_SUBJECT = f"{SUBJECT_PREFIX}.signals"
CHAIN_STREAM_PREFIX = "MEVSUITE_CHAIN_"
PENDING_STREAM_PREFIX = "MEVSUITE_PENDING_"
SIGNALS_STREAM = "MEVSUITE_SIGNALS"
SNAPSHOT_BUCKET = "mevsuite-snapshots"
HEARTBEAT_BUCKET = "mevsuite-heartbeats"


class Topic(StrEnum):
    """The per-chain subjects' last token: ``mevsuite.<chain>.<topic>``."""

    BLOCKS = "blocks"  # block and reorg messages: one subject, so one consumer sees them in chain order
    GAS = "gas"
    WHALES = "whales"
    ORACLE = "oracle"
    SNAPSHOT = "snapshot"
    PENDING = "pending"


# Topics kept in MEVSUITE_CHAIN_<chain>; PENDING has its own stream.
CHAIN_TOPICS: tuple[Topic, ...] = (
    Topic.BLOCKS,
    Topic.GAS,
    Topic.WHALES,
    Topic.ORACLE,
    Topic.SNAPSHOT,
)


@dataclass(frozen=True, slots=True)
class BusLimits:
    """Retention and timing of the streams and buckets (seconds; ``None`` = no limit)."""

    chain_max_age: float | None = 24 * 3600.0  # blocks and reorgs, gas ...: a day for late joiners
    pending_max_age: float = 30.0  # a pending swap older than this is worthless
    signals_max_age: float | None = 24 * 3600.0
    duplicate_window: float = 120.0  # Nats-Msg-Id de-duplication: covers an outbox re-send after a lost ack
    heartbeat_ttl: float = 15.0  # a heartbeat entry disappears this long after its last write
    snapshot_ttl: float | None = 24 * 3600.0  # snapshot objects; the hub re-puts the current one
    # Size caps (bytes, oldest discarded first).  None by default: JetStream *reserves* a stream's max_bytes
    # against the server's storage limit (a share of the free disk) when the stream is created, so generous
    # caps on a few chains would refuse the next stream ("insufficient storage resources").  The max ages
    # bound the streams instead.
    chain_max_bytes: int | None = None
    pending_max_bytes: int | None = None
    signals_max_bytes: int | None = None
    snapshot_max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.pending_max_age <= 0 or self.duplicate_window <= 0 or self.heartbeat_ttl <= 0:
            raise ValueError("pending_max_age, duplicate_window and heartbeat_ttl must be positive")


DEFAULT_LIMITS = BusLimits()


def _chain_token(chain_id: int) -> str:
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise ValueError(f"chain id must be a positive integer, not {chain_id!r}")
    return str(chain_id)


def subject(chain_id: int, topic: Topic) -> str:
    """``mevsuite.<chain>.<topic>``."""
    return f"{SUBJECT_PREFIX}.{_chain_token(chain_id)}.{Topic(topic).value}"


@dataclass(frozen=True, slots=True)
class ChainSubjects:
    """The subjects of one chain (``chain_subjects(31337).blocks == "mevsuite.31337.blocks"``)."""

    chain_id: int
    blocks: str
    gas: str
    whales: str
    oracle: str
    snapshot: str
    pending: str


def chain_subjects(chain_id: int) -> ChainSubjects:
    """All subjects of one chain."""
    return ChainSubjects(chain_id, *(subject(chain_id, t) for t in Topic))


def chain_stream_name(chain_id: int) -> str:
    """``MEVSUITE_CHAIN_<chain>``: blocks, reorgs, gas, whales, oracle, snapshot announcements."""
    return f"{CHAIN_STREAM_PREFIX}{_chain_token(chain_id)}"


def pending_stream_name(chain_id: int) -> str:
    """``MEVSUITE_PENDING_<chain>``: pending swaps, short max age."""
    return f"{PENDING_STREAM_PREFIX}{_chain_token(chain_id)}"


def stream_for_subject(subj: str) -> str | None:
    """The stream that stores ``subj``, or ``None`` if the subject is not one of ours."""
    if subj == SIGNALS_SUBJECT:
        return SIGNALS_STREAM
    parts = subj.split(".")
    if len(parts) != 3 or parts[0] != SUBJECT_PREFIX or not parts[1].isdigit() or parts[1].startswith("0"):
        return None
    try:
        topic = Topic(parts[2])
    except ValueError:
        return None
    chain_id = int(parts[1])
    return pending_stream_name(chain_id) if topic is Topic.PENDING else chain_stream_name(chain_id)


def chain_stream_config(chain_id: int, limits: BusLimits = DEFAULT_LIMITS) -> api.StreamConfig:
    """The chain stream: limits-based, file storage, the duplicate window, oldest discarded at the caps."""
    return api.StreamConfig(
        name=chain_stream_name(chain_id),
        description=f"mevsuite chain {chain_id}: blocks, reorgs, gas, whales, oracle, snapshot announcements",
        subjects=[subject(chain_id, t) for t in CHAIN_TOPICS],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=limits.chain_max_age,
        max_bytes=_cap(limits.chain_max_bytes),
        duplicate_window=_window(limits.duplicate_window, limits.chain_max_age),
        num_replicas=1,
    )


def pending_stream_config(chain_id: int, limits: BusLimits = DEFAULT_LIMITS) -> api.StreamConfig:
    """The pending-swap stream: short max age (consumers deliver new messages only)."""
    return api.StreamConfig(
        name=pending_stream_name(chain_id),
        description=f"mevsuite chain {chain_id}: pending swaps (short max age, new-only consumers)",
        subjects=[subject(chain_id, Topic.PENDING)],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=limits.pending_max_age,
        max_bytes=_cap(limits.pending_max_bytes),
        duplicate_window=_window(limits.duplicate_window, limits.pending_max_age),
        num_replicas=1,
    )


def signals_stream_config(limits: BusLimits = DEFAULT_LIMITS) -> api.StreamConfig:
    """The ML signal stream (all chains)."""
    return api.StreamConfig(
        name=SIGNALS_STREAM,
        description="mevsuite ML signals",
        subjects=[SIGNALS_SUBJECT],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=limits.signals_max_age,
        max_bytes=_cap(limits.signals_max_bytes),
        duplicate_window=_window(limits.duplicate_window, limits.signals_max_age),
        num_replicas=1,
    )


def heartbeat_bucket_config(limits: BusLimits = DEFAULT_LIMITS) -> api.KeyValueConfig:
    """The heartbeat bucket: one key per process, the latest value only, gone ``heartbeat_ttl`` after it."""
    return api.KeyValueConfig(
        bucket=HEARTBEAT_BUCKET,
        description="mevsuite process heartbeats",
        history=1,
        ttl=limits.heartbeat_ttl,
        storage=api.StorageType.FILE,
        max_value_size=64 * 1024,
    )


def snapshot_bucket_config(limits: BusLimits = DEFAULT_LIMITS) -> api.ObjectStoreConfig:
    """The snapshot object store (payloads beyond the 1 MB message limit, chunked by the client)."""
    return api.ObjectStoreConfig(
        bucket=SNAPSHOT_BUCKET,
        description="mevsuite state snapshots",
        ttl=limits.snapshot_ttl,
        max_bytes=_cap(limits.snapshot_max_bytes),
        storage=api.StorageType.FILE,
    )


def _cap(max_bytes: int | None) -> int:
    return -1 if max_bytes is None else max_bytes


def _window(window: float, max_age: float | None) -> float:
    # JetStream refuses a duplicate window longer than the stream's max age.
    return window if max_age is None else min(window, max_age)
