"""What a peer tells its observers, typed per kind, carrying what a listener needs.

Events are delivered on the event loop's thread (`SmallPeerInfo.observe`,
``async for event in small_peer_info.events()``). A view never has to read back
what it was just told: a collected document arrives with its seq, time, size,
compact JSON body and numeric fields; retention says which seqs are gone; the
schedule says when the next collection is due.

The metadata of a peer is a `MetadataValue`: its compact encoding, parsed and
hashed at most once however many documents carry it, so a collection does no work
proportional to unchanged metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Any

import orjson

from inspector.core.errors import PersistenceError

if TYPE_CHECKING:
    from inspector.core.replication import ReplicationStatus

__all__ = [
    "CollectionChanged",
    "DocumentCollected",
    "DocumentStatesChanged",
    "EventHub",
    "HistoryPruned",
    "MetadataChanged",
    "MetadataValue",
    "PersistenceChanged",
    "Replication",
    "ReplicationChanged",
    "ScheduleChanged",
    "SmallPeerInfoEvent",
    "SmallPeerInfoSyncScope",
    "Subscription",
    "SyncScopeChanged",
    "metadata_hash",
]


class SmallPeerInfoSyncScope(str, Enum):
    """Which kind of peers small peer info replicates to."""

    BIG_PEER_ONLY = "BigPeerOnly"
    """Replicate collected documents to the Big Peer."""
    LOCAL_PEER_ONLY = "LocalPeerOnly"
    """Keep them on this device (the default)."""


class Replication(IntEnum):
    """Where a stored document stands with the Big Peer."""

    LOCAL_ONLY = -1
    """Collected under LocalPeerOnly: never leaves the device (stored as NULL)."""
    QUEUED = 0
    ACKNOWLEDGED = 1
    DROPPED = 2
    """Queued, then dropped: the queue overflowed or the scope went back to LocalPeerOnly."""


log = logging.getLogger(__name__)


def metadata_hash(encoded: bytes) -> bytes:
    """The 16-byte content address of a compact metadata encoding."""
    return hashlib.blake2b(encoded, digest_size=16).digest()


class MetadataValue:
    """An accepted metadata value: its compact UTF-8 JSON, and what is derived from it, each once.

    Immutable. The parsed value is never handed out (callers get fresh copies from
    `copy`), so one instance can be shared by the peer, the store thread and every
    event that carries it.
    """

    __slots__ = ("_hash", "_lowered", "_text", "encoded")

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded
        self._hash: bytes | None = None
        self._text: str | None = None
        self._lowered: bytes | None = None

    @property
    def hash(self) -> bytes:
        if self._hash is None:
            self._hash = metadata_hash(self.encoded)
        return self._hash

    @property
    def text(self) -> str:
        """The compact JSON as text."""
        if self._text is None:
            self._text = self.encoded.decode("utf-8")
        return self._text

    @property
    def lowered(self) -> bytes:
        """The encoding with ASCII letters lowered (what a case-insensitive filter searches)."""
        if self._lowered is None:
            self._lowered = self.encoded.lower()
        return self._lowered

    @property
    def size(self) -> int:
        return len(self.encoded)

    def copy(self) -> dict[str, Any]:
        """A fresh parsed copy (mutating it changes nothing)."""
        value: dict[str, Any] = orjson.loads(self.encoded)
        return value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetadataValue) and other.encoded == self.encoded

    def __hash__(self) -> int:
        return hash(self.encoded)

    def __repr__(self) -> str:
        return f"<MetadataValue {len(self.encoded):,} bytes>"


EMPTY_METADATA = MetadataValue(b"{}")


@dataclass(frozen=True, slots=True)
class CollectionChanged:
    """Collection was switched on or off."""

    enabled: bool


@dataclass(frozen=True, slots=True)
class MetadataChanged:
    """The peer's metadata is now ``metadata``."""

    metadata: MetadataValue


@dataclass(frozen=True, slots=True)
class SyncScopeChanged:
    """The sync scope is now ``scope``."""

    scope: SmallPeerInfoSyncScope


@dataclass(frozen=True, slots=True)
class ScheduleChanged:
    """When the newest document was collected, and when the next collection is due (Unix seconds)."""

    last_collected_at: float | None
    next_collection_at: float | None


@dataclass(frozen=True, slots=True)
class HistoryPruned:
    """Retention removed every stored document below ``oldest_seq``."""

    oldest_seq: int


@dataclass(frozen=True, slots=True)
class DocumentStatesChanged:
    """Stored documents ``seqs`` now stand as ``state`` with the Big Peer."""

    seqs: tuple[int, ...]
    state: Replication


@dataclass(frozen=True, slots=True)
class ReplicationChanged:
    """Replication to the Big Peer changed: connection, queue, drops or the last error."""

    status: ReplicationStatus


@dataclass(frozen=True, slots=True)
class PersistenceChanged:
    """A write cannot land (``error``), or, with ``error=None``, every pending write has landed again."""

    error: PersistenceError | None


class DocumentCollected:
    """A document was collected and stored as ``seq``.

    ``body`` is its compact JSON without ``metadata``; ``metadata`` the value it
    carries (shared, not copied); ``size`` the bytes of the whole compact document;
    ``numbers`` its numeric fields by path (``device_disk_usage.device_available``).
    `document` decodes the whole document on first use.
    """

    __slots__ = (
        "_document",
        "body",
        "metadata",
        "metadata_changed",
        "numbers",
        "replication",
        "seq",
        "size",
        "ts_ms",
    )

    def __init__(
        self,
        seq: int,
        ts_ms: int,
        body: bytes,
        metadata: MetadataValue,
        *,
        size: int,
        replication: Replication,
        numbers: Mapping[str, float],
        metadata_changed: bool,
    ) -> None:
        self.seq = seq
        self.ts_ms = ts_ms
        self.body = body
        self.metadata = metadata
        self.size = size
        self.replication = replication
        self.numbers = numbers
        self.metadata_changed = metadata_changed
        self._document: dict[str, Any] | None = None

    @property
    def document(self) -> dict[str, Any]:
        """The whole document, metadata included (decoded once; treat it as read-only)."""
        if self._document is None:
            document: dict[str, Any] = orjson.loads(self.body)
            document["metadata"] = self.metadata.copy()
            self._document = document
        return self._document

    @property
    def encoded(self) -> bytes:
        """The whole document as compact JSON (``metadata`` last)."""
        return join_document(self.body, self.metadata.encoded)

    def __repr__(self) -> str:
        return f"<DocumentCollected #{self.seq} {self.size:,} bytes>"


def join_document(body: bytes, metadata: bytes) -> bytes:
    """The compact JSON of a document from its body (without metadata) and its metadata's encoding."""
    if body == b"{}":
        return b'{"metadata":' + metadata + b"}"
    return body[:-1] + b',"metadata":' + metadata + b"}"


METADATA_JOIN_BYTES = len(b',"metadata":')
"""What joining adds to the body and metadata lengths."""


SmallPeerInfoEvent = (
    CollectionChanged
    | MetadataChanged
    | SyncScopeChanged
    | ScheduleChanged
    | DocumentCollected
    | HistoryPruned
    | DocumentStatesChanged
    | ReplicationChanged
    | PersistenceChanged
)


class Subscription:
    """Returned by `EventHub.observe`; `cancel()` stops the callbacks."""

    def __init__(self, hub: EventHub, callback: Callable[[SmallPeerInfoEvent], None]) -> None:
        self._hub = hub
        self._callback = callback

    def cancel(self) -> None:
        self._hub.forget(self._callback)


class EventHub:
    """Delivers a peer's events to its observers, on the event loop's thread, in order."""

    def __init__(self) -> None:
        self._observers: list[Callable[[SmallPeerInfoEvent], None]] = []
        self._queues: list[asyncio.Queue[SmallPeerInfoEvent | None]] = []

    def observe(self, callback: Callable[[SmallPeerInfoEvent], None]) -> Subscription:
        self._observers.append(callback)
        return Subscription(self, callback)

    def forget(self, callback: Callable[[SmallPeerInfoEvent], None]) -> None:
        with contextlib.suppress(ValueError):
            self._observers.remove(callback)

    def emit(self, event: SmallPeerInfoEvent) -> None:
        for callback in list(self._observers):
            try:
                callback(event)
            except Exception:
                log.exception("a small peer info observer failed on %r", event)

    async def events(self) -> AsyncIterator[SmallPeerInfoEvent]:
        """The events as an async iterator; it ends when the hub is closed."""
        queue: asyncio.Queue[SmallPeerInfoEvent | None] = asyncio.Queue()
        self._queues.append(queue)
        subscription = self.observe(queue.put_nowait)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            subscription.cancel()
            with contextlib.suppress(ValueError):
                self._queues.remove(queue)

    def close(self) -> None:
        """End every `events` iterator."""
        for queue in list(self._queues):
            queue.put_nowait(None)
