"""The peer's SQLite store: settings, the current document, the history of collections.

One database file (WAL) in the persistence directory, owned by one worker thread
(`SQLiteWorker`): the event loop (the window's, under qasync) never waits on the
disk. The store answers typed questions (`timeline_rows`, `series`, `search`...);
its thread is its own business.

How a history stays small and fast to read:

* **Metadata is stored once per distinct value, in content-addressed chunks.** The
  compact JSON is cut at content-defined points (between two members: ``,"``), so
  a value that differs from an earlier one in one field shares every chunk but one
  with it. A history row references its metadata by id; unchanged 127 KiB metadata
  costs nothing per collection, and metadata whose one field changes every
  collection costs about one chunk (about 1 KiB) plus a list of chunk ids.
* **Numeric fields are extracted when a document is stored** (``numbers``: one
  float64 per known field path), and a pyramid of min/max blocks (4, 16, 64...
  consecutive documents each) is kept up to date, so a plot of any range reads
  about as many blocks as it has pixel columns, whatever the history's length.
* **``seq`` numbers the rows without gaps** (retention only removes the oldest), so
  row *i* of a newest-first timeline is ``newest - i``.
* **Retention** keeps the newest ``max_documents``, none older than
  ``max_age_seconds``, and the database's used pages under ``max_bytes``.

Settings are written behind their setters, in order; a write that cannot land (a
full disk) is kept and retried until it lands or the peer closes, and the failure
is reported (`on_write_problem`), so no accepted setting is lost silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import operator
import sqlite3
import threading
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import accumulate, compress, pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from inspector.core.database import SQLiteWorker
from inspector.core.errors import DittoClosedError, PersistenceError, PersistenceProblem
from inspector.core.events import METADATA_JOIN_BYTES, MetadataValue, Replication, join_document
from inspector.core.series import SeriesBuckets, bucketize, empty_series

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DATABASE_FILE",
    "SMALL_PEER_INFO_COLLECTION",
    "CollectedDocument",
    "HistoryRetention",
    "Marker",
    "Store",
    "StoredDocument",
    "StoredSettings",
    "TimelineRow",
]

log = logging.getLogger(__name__)

DATABASE_FILE = "peer.sqlite3"
SMALL_PEER_INFO_COLLECTION = "__small_peer_info"

FANOUT_BITS = 2
"""Each pyramid level aggregates 4 blocks (or documents) of the level below."""
LEVELS = 10
"""4**10: a top-level block spans about a million documents."""
MAX_DOCUMENT_PATHS = 64
"""Numeric field paths of the document (metadata aside) kept per row; later new paths are not plotted."""
MAX_METADATA_NUMBERS = 1024
"""Numeric leaves of the current metadata offered for plotting; a value with more offers its first ones."""
CHUNK_TARGET = 512
"""Average size of a metadata chunk (bytes)."""
_CHUNK_MIN = 256
_CHUNK_MAX = 16 * 1024
_DESCRIBED_MARKERS = 200
"""Metadata markers of one `markers` call that say which keys changed (the rest say "metadata changed")."""
_BYTES_CHECK_EVERY = 16
"""Collections between two checks of the database's size against ``max_bytes``."""

_LEGACY_TABLES = frozenset({"settings", "blobs", "documents", "history", "outbox"})

# Version 1: the layout of the first release (still migrated from, so it stays as it was).
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (hash BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    metadata_hash BLOB,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL UNIQUE,
    body BLOB NOT NULL,
    metadata_hash BLOB NOT NULL,
    size INTEGER NOT NULL,
    replication INTEGER
);
CREATE INDEX IF NOT EXISTS history_by_metadata ON history (metadata_hash);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY);
"""

_SCHEMA_V2 = """
CREATE TABLE chunks (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, data BLOB NOT NULL,
                     refs INTEGER NOT NULL DEFAULT 0);
CREATE TABLE metadata (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, chunk_ids BLOB NOT NULL,
                       size INTEGER NOT NULL, refs INTEGER NOT NULL DEFAULT 0);
CREATE TABLE metadata_paths (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE metadata_numbers (
    metadata_id INTEGER NOT NULL, path_id INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (metadata_id, path_id)
) WITHOUT ROWID;
CREATE TABLE document_paths (slot INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE history_v2 (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL UNIQUE,
    body BLOB NOT NULL,
    metadata_id INTEGER NOT NULL,
    size INTEGER NOT NULL,
    replication INTEGER,
    numbers BLOB
);
CREATE TABLE metadata_runs (seq INTEGER PRIMARY KEY, metadata_id INTEGER NOT NULL);
CREATE TABLE series_blocks (
    level INTEGER NOT NULL, block INTEGER NOT NULL,
    ts_first INTEGER NOT NULL, ts_last INTEGER NOT NULL, count INTEGER NOT NULL,
    mins BLOB NOT NULL, maxs BLOB NOT NULL,
    PRIMARY KEY (level, block)
) WITHOUT ROWID;
CREATE TABLE markers (
    id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    old_metadata INTEGER, new_metadata INTEGER
);
CREATE INDEX markers_by_ts ON markers (ts);
CREATE TABLE documents_v2 (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    metadata_id INTEGER,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class HistoryRetention:
    """How much history a peer keeps.

    The newest ``max_documents``, none older than ``max_age_seconds``, and no more
    than ``max_bytes`` of database pages in use (oldest documents go first).
    """

    max_documents: int = 100_000
    max_age_seconds: float = 30 * 24 * 3600.0
    max_bytes: int = 1024**3

    def __post_init__(self) -> None:
        if isinstance(self.max_documents, bool) or not isinstance(self.max_documents, int):
            raise TypeError("max_documents must be an integer")
        if self.max_documents < 1:
            raise ValueError("max_documents must be a positive integer")
        if isinstance(self.max_age_seconds, bool) or not isinstance(self.max_age_seconds, int | float):
            raise TypeError("max_age_seconds must be a number of seconds")
        if not self.max_age_seconds > 0:
            raise ValueError("max_age_seconds must be positive")
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int):
            raise TypeError("max_bytes must be an integer")
        if self.max_bytes < 1024**2:
            raise ValueError("max_bytes must be at least 1 MiB (1048576)")


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """What the timeline shows of one stored document, without decoding it."""

    seq: int
    ts_ms: int
    size: int
    metadata_hash: bytes
    device_available: float | None
    ditto_total: float | None
    replication: Replication


@dataclass(frozen=True, slots=True)
class StoredSettings:
    """The switches as stored: what a reopened peer starts with."""

    enabled: bool
    metadata: MetadataValue
    sync_scope: str | None
    last_ts: int
    """``ts`` of the newest stored document (0 when there is none)."""


@dataclass(frozen=True, slots=True)
class CollectedDocument:
    """A collected document handed to `Store.insert_collected`."""

    doc_id: str
    ts_ms: int
    body: bytes
    """Compact JSON without ``metadata``."""
    metadata: MetadataValue
    numbers: Mapping[str, float]
    queue: bool
    """Put it in the outbox (the scope is BigPeerOnly and a Big Peer is configured)."""
    queue_bound: int = 0


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """What storing a collected document did."""

    seq: int
    size: int
    metadata_changed: bool
    oldest_seq: int
    """The oldest seq kept after retention ran."""
    pruned: bool
    dropped_from_queue: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Marker:
    """An event on the time axis: a metadata change, or a Big Peer connection event."""

    ts_ms: int
    kind: str
    """``metadata``, ``connected``, ``disconnected`` or ``error``."""
    detail: str


@dataclass
class _OpenBlock:
    block: int
    ts_first: int
    ts_last: int
    count: int
    mins: array[float]
    maxs: array[float]


@dataclass
class _ThreadState:
    """What the store thread remembers between calls (never touched by other threads)."""

    metadata_ids: OrderedDict[bytes, int] = field(default_factory=OrderedDict)
    assembled: OrderedDict[int, bytes] = field(default_factory=OrderedDict)
    slots: dict[str, int] = field(default_factory=dict)
    open_blocks: dict[int, _OpenBlock] = field(default_factory=dict)
    tracked: dict[str, int] | None = None
    last_metadata_id: int | None = None
    inserts: int = 0


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def split_chunks(encoded: bytes) -> list[bytes]:
    """Cut compact JSON into content-defined chunks that concatenate back to it.

    A cut may fall after any comma. Whether it does depends only on the bytes of the
    piece before it (its CRC), so an edit moves at most the cuts around it and every
    other chunk stays the same (chunks are opaque bytes: a cut inside a string is as
    good as any). Splitting, the CRCs and the choice of candidates run at C speed;
    Python only walks the candidates, about one piece in ``mask + 1``.
    """
    if len(encoded) <= _CHUNK_MIN * 2:
        return [encoded]
    pieces = encoded.split(b",")
    count = len(pieces)
    if count == 1:
        return [encoded]
    # One candidate in about `mask + 1` pieces: chunks average CHUNK_TARGET bytes.
    mask = (1 << max(0, round(math.log2(max(1.0, CHUNK_TARGET * count / len(encoded)))))) - 1
    ends = list(accumulate(map(len, pieces)))  # ends[i] + i: the offset of the comma after piece i
    candidates = compress(range(count - 1), map(operator.not_, map(mask.__and__, map(zlib.crc32, pieces))))
    cuts = [0]
    for index in candidates:
        offset = ends[index] + index + 1  # just after the comma
        while offset - cuts[-1] > _CHUNK_MAX:  # no candidate for too long: cut by size
            cuts.append(cuts[-1] + _CHUNK_MAX)
        if offset - cuts[-1] >= _CHUNK_MIN:
            cuts.append(offset)
    while len(encoded) - cuts[-1] > _CHUNK_MAX:
        cuts.append(cuts[-1] + _CHUNK_MAX)
    cuts.append(len(encoded))
    return [encoded[a:b] for a, b in pairwise(cuts) if b > a]


def numeric_leaves(value: Any, prefix: str = "", limit: int = MAX_METADATA_NUMBERS) -> dict[str, float]:
    """Numeric leaves of nested objects by dotted path (``device_disk_usage.ditto_store``).

    Arrays are skipped (their elements have no stable path), booleans are not numbers.
    At most ``limit`` leaves, in document order. Iterative: depth is not a concern.
    """
    found: dict[str, float] = {}
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack and len(found) < limit:
        path, node = stack.pop()
        if type(node) is dict:
            children = [(f"{path}.{key}" if path else key, child) for key, child in node.items()]
            stack.extend(reversed(children))
        elif type(node) in (int, float):
            found[path] = float(node)
    return found


def encode_ids(ids: Sequence[int]) -> bytes:
    """Chunk ids as zigzag deltas in LEB128: a new value mostly lists old chunks in order (1-2 bytes each)."""
    out = bytearray()
    previous = 0
    for chunk_id in ids:
        delta = chunk_id - previous
        previous = chunk_id
        value = (delta << 1) ^ (delta >> 63)
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def decode_ids(data: bytes) -> list[int]:
    ids = []
    previous = shift = value = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        previous += (value >> 1) ^ -(value & 1)
        ids.append(previous)
        shift = value = 0
    return ids


def _pack_chunk(chunk: bytes) -> bytes:
    packed = zlib.compress(chunk, 6)
    return b"z" + packed if len(packed) < len(chunk) else b"r" + chunk


def _unpack_chunk(data: bytes) -> bytes:
    return zlib.decompress(data[1:]) if data[:1] == b"z" else data[1:]


def insert_metadata(conn: sqlite3.Connection, metadata: MetadataValue) -> int:
    """Store a new metadata value as chunks (sharing those already stored); returns its id (refs 0)."""
    chunks = split_chunks(metadata.encoded)
    hashes = [_hash(chunk) for chunk in chunks]
    known: dict[bytes, int] = {}
    unique = list(dict.fromkeys(hashes))
    for offset in range(0, len(unique), 500):
        part = unique[offset : offset + 500]
        known.update(
            conn.execute(f"SELECT hash, id FROM chunks WHERE hash IN ({','.join('?' * len(part))})", part)
        )
    ids = []
    for chunk, key in zip(chunks, hashes, strict=True):
        if key not in known:
            known[key] = (
                conn.execute(
                    "INSERT INTO chunks (hash, data, refs) VALUES (?, ?, 0)", (key, _pack_chunk(chunk))
                ).lastrowid
                or 0
            )
        ids.append(known[key])
    counts: dict[int, int] = {}
    for chunk_id in ids:
        counts[chunk_id] = counts.get(chunk_id, 0) + 1
    conn.executemany("UPDATE chunks SET refs = refs + ? WHERE id = ?", [(n, i) for i, n in counts.items()])
    return (
        conn.execute(
            "INSERT INTO metadata (hash, chunk_ids, size, refs) VALUES (?, ?, ?, 0)",
            (metadata.hash, encode_ids(ids), metadata.size),
        ).lastrowid
        or 0
    )


def assemble_metadata(conn: sqlite3.Connection, metadata_id: int) -> bytes | None:
    """The compact JSON of stored metadata ``metadata_id`` (None if there is no such value)."""
    row = conn.execute("SELECT chunk_ids FROM metadata WHERE id = ?", (metadata_id,)).fetchone()
    if row is None:
        return None
    ids = decode_ids(row[0])
    unique = list(dict.fromkeys(ids))
    data: dict[int, bytes] = {}
    for offset in range(0, len(unique), 500):
        part = unique[offset : offset + 500]
        data.update(
            conn.execute(f"SELECT id, data FROM chunks WHERE id IN ({','.join('?' * len(part))})", part)
        )
    return b"".join(_unpack_chunk(data[chunk_id]) for chunk_id in ids)


def number_at(value: Any, path: str, prefix: str = "") -> float | None:
    """The number at a dotted path of `numeric_leaves` in ``value``, or None.

    Keys may themselves contain dots: at each level the longest key that matches wins.
    """
    if prefix:
        if not path.startswith(prefix + "."):
            return None
        path = path[len(prefix) + 1 :]
    node = value
    rest = path
    while rest:
        if type(node) is not dict:
            return None
        parts = rest.split(".")
        for taken in range(len(parts), 0, -1):
            key = ".".join(parts[:taken])
            if key in node:
                node, rest = node[key], ".".join(parts[taken:])
                break
        else:
            return None
    return float(node) if type(node) in (int, float) else None


class _SettingsWriter:
    """Settings written behind their setters, in order; kept and retried until they land."""

    def __init__(
        self,
        submit: Callable[[Callable[[], None]], object],
        write: Callable[[Mapping[str, bytes | MetadataValue]], None],
        is_closed: Callable[[], bool],
    ) -> None:
        self._submit = submit
        self._write = write
        self._is_closed = is_closed
        self._lock = threading.Lock()
        self._pending: dict[str, bytes | MetadataValue] = {}
        self._scheduled = False
        self._retry: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._delay = 0.5
        self.error: PersistenceError | None = None
        self.on_problem: Callable[[PersistenceError | None], None] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self.error is not None and self._pending:
            self._schedule_retry()

    @property
    def pending(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def save_later(self, key: str, value: bytes | MetadataValue) -> None:
        with self._lock:
            self._pending[key] = value
            if self._scheduled or self.error is not None:
                return  # a flush is queued, or a retry will write it with the rest
            self._scheduled = True
        self._submit(self.flush)

    def flush(self) -> None:
        """On the store thread: write every pending setting in one transaction."""
        with self._lock:
            self._scheduled = False
            batch = dict(self._pending)
        if not batch:
            return
        try:
            self._write(batch)
        except PersistenceError as error:
            self._failed(error)
            return
        with self._lock:
            for key, value in batch.items():
                if self._pending.get(key) is value:
                    del self._pending[key]
            recovered = self.error is not None
            self.error = None
            self._delay = 0.5
        if recovered:
            self._notify(None)

    def _failed(self, error: PersistenceError) -> None:
        first = self.error is None
        self.error = error
        if first:
            log.error("a setting could not be saved; retrying until it lands: %s", error)
        self._notify(error)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: close() makes the last attempt
                self._loop.call_soon_threadsafe(self._schedule_retry)

    def _schedule_retry(self) -> None:
        if self._retry is not None or self._loop is None or self._is_closed():
            return
        delay, self._delay = self._delay, min(self._delay * 2, 10.0)

        def retry() -> None:
            self._retry = None
            if not self._is_closed():
                with self._lock:
                    self._scheduled = True
                with contextlib.suppress(DittoClosedError):
                    self._submit(self.flush)

        self._retry = self._loop.call_later(delay, retry)

    def _notify(self, error: PersistenceError | None) -> None:
        callback, loop = self.on_problem, self._loop
        if callback is None:
            return
        if loop is None:
            callback(error)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, error)

    def cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None


class Store(SQLiteWorker):
    """The peer's database (see the module doc). Public API: `find_by_id`; the rest serves the peer."""

    def __init__(self, directory: Path, retention: HistoryRetention) -> None:
        # NORMAL: a power cut may lose the last collections, never corrupt the database.
        super().__init__(
            directory / DATABASE_FILE,
            migrations=(_SCHEMA_V1, _migrate_to_v2),
            synchronous="NORMAL",
            thread_name="inspector-store",
            what="The peer's database",
            check=_check_is_peer_database,
            closed_error=lambda: DittoClosedError("the store"),
        )
        self.retention = retention
        self._state = _ThreadState()
        self._settings = _SettingsWriter(
            self._submit,
            # On the store thread already: classify failures as every other call does.
            lambda batch: self._guarded(functools.partial(self._write_settings, batch)),
            lambda: self.closed,
        )
        self.open_blocking()

    # --- life cycle and write-behind -------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Retry failed writes on ``loop`` (the peer's)."""
        self._settings.attach(loop)

    def on_write_problem(self, callback: Callable[[PersistenceError | None], None]) -> None:
        """``callback(error)`` when a write cannot land, ``callback(None)`` once all have landed."""
        self._settings.on_problem = callback

    @property
    def write_problem(self) -> PersistenceError | None:
        """Why pending settings have not landed yet, or None."""
        return self._settings.error

    def save_later(self, key: str, value: bytes | MetadataValue) -> None:
        """Save a setting behind the caller (returns at once); writes of one key coalesce."""
        if self.closed:
            raise DittoClosedError()
        self._settings.save_later(key, value)

    async def close(self) -> None:
        """Write what is pending (one last attempt), then close; raise if a setting never landed."""
        if self.closed:
            return
        self._settings.cancel_retry()
        unwritten: PersistenceError | None = None
        if self._settings.pending:
            with contextlib.suppress(PersistenceError):
                await self._call(self._settings.flush)
            if self._settings.pending:
                unwritten = self._settings.error or PersistenceError(
                    self.path, PersistenceProblem.IO_ERROR, f"Settings could not be saved to {self.path}."
                )
        await super().close()
        if unwritten is not None:
            raise PersistenceError(
                unwritten.path,
                unwritten.problem,
                f"Settings changed in this session were never saved: {unwritten.message}",
            )

    # --- start-up ------------------------------------------------------------------------------

    def load_settings(self) -> StoredSettings:
        """The stored switches (blocking: start-up only)."""
        return self._call_blocking(self._load_settings)

    def outbox_state_blocking(self) -> tuple[int, int]:
        return self._call_blocking(self._outbox_state)

    # --- typed questions (async) -----------------------------------------------------------------

    async def save_sync_scope(self, value: str, *, drop_queue: bool) -> tuple[int, ...]:
        """Save the scope; with ``drop_queue`` also drop every queued document, in the same transaction.

        Returns the seqs dropped.
        """
        return await self._call(self._save_sync_scope, value, drop_queue)

    async def insert_collected(self, document: CollectedDocument) -> StoredDocument:
        return await self._call(self._insert_collected, document)

    async def import_documents(self, documents: Sequence[CollectedDocument]) -> list[int]:
        """Store many documents in one transaction (an imported history; tests and benchmarks).

        Like `insert_collected` for each, in order, without events; retention runs once at the end.
        Returns their seqs.
        """
        return await self._call(self._import, list(documents))

    async def outbox_batch(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest queued documents as ``(seq, compact JSON)``, in order."""
        return await self._call(self._outbox_batch, limit)

    async def acknowledge(self, seqs: Sequence[int]) -> tuple[int, ...]:
        """The Big Peer stored ``seqs``: out of the queue. Returns those still queued until now."""
        return await self._call(self._acknowledge, list(seqs))

    async def drop_outbox(self, seqs: Sequence[int] | None = None) -> tuple[int, ...]:
        """Drop queued documents (all, or ``seqs``): they will never be sent. Returns the seqs dropped."""
        return await self._call(self._drop_outbox, None if seqs is None else list(seqs))

    async def outbox_state(self) -> tuple[int, int]:
        """(queued documents, queued documents dropped unsent, ever)."""
        return await self._call(self._outbox_state)

    def record_marker_later(self, ts_ms: int, kind: str, detail: str) -> None:
        """Note an event for the time axis (a Big Peer connection event), without waiting."""
        if self.closed:
            return
        future = self._submit(self._record_marker, ts_ms, kind, detail)
        future.add_done_callback(_log_failure)

    async def find_by_id(self, collection: str, id: str) -> dict[str, Any] | None:
        """The current document ``id`` of ``collection``, or None."""
        if not isinstance(collection, str) or not isinstance(id, str):
            raise TypeError("collection and id must be strings")
        self._check_open()
        encoded = await self._call(self._find_by_id, collection, id)
        return None if encoded is None else _loads(encoded)

    async def history(self, limit: int, before_ts: int | None) -> list[dict[str, Any]]:
        """Up to ``limit`` documents older than ``before_ts`` (all if None), newest first."""
        return [_loads(encoded) for encoded in await self._call(self._history, limit, before_ts)]

    async def bounds(self) -> tuple[int, int]:
        """(oldest seq, newest seq) of the stored history; (0, 0) when empty."""
        return await self._call(self._bounds)

    async def time_bounds(self) -> tuple[int, int] | None:
        """(oldest ts, newest ts) of the stored history in ms, or None when empty."""
        return await self._call(self._time_bounds)

    async def timeline_rows(self, first_seq: int, last_seq: int) -> list[TimelineRow]:
        """Rows with ``first_seq <= seq <= last_seq``, newest first."""
        return await self._call(self._timeline_rows, first_seq, last_seq)

    async def document(self, seq: int) -> bytes | None:
        """The stored document ``seq`` as compact JSON, or None."""
        return await self._call(self._document, seq)

    async def documents(self, first_seq: int, last_seq: int) -> list[tuple[int, bytes]]:
        """``(seq, compact JSON)`` of the documents in the range, newest first."""
        return await self._call(self._documents, first_seq, last_seq)

    async def search(self, needle: str, limit: int, newer_than: int = 0) -> tuple[list[int], tuple[int, int]]:
        """Seqs (newest first, above ``newer_than``) of documents whose JSON contains ``needle``.

        ASCII letters match case-insensitively (as SQLite's ``LIKE``). Returned with the
        bounds they were taken against (one snapshot).
        """
        return await self._call(self._search, needle, limit, newer_than)

    async def seq_at_or_before(self, ts_ms: int) -> int | None:
        """The seq of the newest document collected at or before ``ts_ms`` (or the oldest one)."""
        return await self._call(self._seq_at_or_before, ts_ms)

    async def numeric_paths(self) -> list[str]:
        """Field paths that hold numbers in stored documents, metadata paths (``metadata.…``) included."""
        return await self._call(self._numeric_paths)

    async def series(
        self,
        paths: Sequence[str],
        first_ms: int,
        last_ms: int,
        buckets: int,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, SeriesBuckets]:
        """Min and max of each numeric field per bucket of ``[first_ms, last_ms]`` (see `SeriesBuckets`).

        Document fields read the pyramid (as many blocks as buckets); metadata fields
        walk the runs of unchanged metadata, reporting ``progress`` (0..1) on the way.
        """
        return await self._call(self._series, list(paths), first_ms, last_ms, max(1, buckets), progress)

    async def markers(self, first_ms: int, last_ms: int, limit: int = 10_000) -> list[Marker]:
        return await self._call(self._markers, first_ms, last_ms, limit)

    async def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (and truncate the log)."""
        await self._call(self._checkpoint)

    def database_bytes(self) -> int:
        """Bytes of the database files on disk (the database, its log and its index)."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total

    def _check_open(self) -> None:
        if self.closed:
            raise DittoClosedError("the store")

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction; a rollback also forgets what the thread remembered (ids may be reused)."""
        return _transaction(self._conn, self._forget)

    def _forget(self) -> None:
        self._state = _ThreadState()

    # --- on the store thread: settings ------------------------------------------------------------

    def _load_settings(self) -> StoredSettings:
        rows = dict(self._conn.execute("SELECT key, value FROM settings"))
        metadata_id = rows.get("metadata_id")
        metadata = MetadataValue(b"{}")
        if metadata_id is not None:
            encoded = self._assemble(int(metadata_id))
            if encoded is not None:
                metadata = MetadataValue(encoded)
        scope = rows.get("sync_scope")
        last_ts = self._conn.execute("SELECT max(ts) FROM history").fetchone()[0] or 0
        return StoredSettings(
            enabled=rows.get("is_enabled") in (b"1", "1", 1),
            metadata=metadata,
            sync_scope=bytes(scope).decode("utf-8", "replace") if isinstance(scope, bytes) else scope,
            last_ts=last_ts,
        )

    def _write_settings(self, batch: Mapping[str, bytes | MetadataValue]) -> None:
        conn = self._conn
        with self._transaction():
            for key, value in batch.items():
                if isinstance(value, MetadataValue):
                    new_id = self._metadata_id(value)
                    old = conn.execute("SELECT value FROM settings WHERE key = 'metadata_id'").fetchone()
                    self._put_setting("metadata_id", str(new_id).encode())
                    conn.execute("UPDATE metadata SET refs = refs + 1 WHERE id = ?", (new_id,))
                    if old is not None:
                        self._release_metadata({int(old[0]): 1})
                else:
                    self._put_setting(key, value)

    def _put_setting(self, key: str, value: bytes) -> None:
        self._conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _save_sync_scope(self, value: str, drop_queue: bool) -> tuple[int, ...]:
        with self._transaction():
            self._put_setting("sync_scope", value.encode())
            return self._drop_where("", ()) if drop_queue else ()

    # --- on the store thread: metadata -------------------------------------------------------------

    def _metadata_id(self, metadata: MetadataValue) -> int:
        """The id of ``metadata``, storing it (chunks, numbers) if new. Inside a transaction."""
        state = self._state
        key = metadata.hash
        known = state.metadata_ids.get(key)
        if known is not None:
            state.metadata_ids.move_to_end(key)
            return known
        row = self._conn.execute("SELECT id FROM metadata WHERE hash = ?", (key,)).fetchone()
        if row is not None:
            metadata_id = int(row[0])
        else:
            metadata_id = insert_metadata(self._conn, metadata)
            self._store_metadata_numbers(metadata_id, metadata)
        state.metadata_ids[key] = metadata_id
        if len(state.metadata_ids) > 64:
            state.metadata_ids.popitem(last=False)
        self._remember_assembled(metadata_id, metadata.encoded)
        return metadata_id

    def _tracked_paths(self) -> dict[str, int]:
        """Metadata field paths a plot asked for (their values are kept per stored metadata value)."""
        state = self._state
        if state.tracked is None:
            state.tracked = dict(self._conn.execute("SELECT path, id FROM metadata_paths"))
        return state.tracked

    def _store_metadata_numbers(self, metadata_id: int, metadata: MetadataValue) -> None:
        """Keep the tracked paths' values of a new metadata value (only those: most values have none)."""
        tracked = self._tracked_paths()
        if not tracked:
            return
        value = metadata.copy()
        rows = [
            (metadata_id, path_id, number)
            for path, path_id in tracked.items()
            if (number := number_at(value, path, "metadata")) is not None
        ]
        self._conn.executemany(
            "INSERT OR REPLACE INTO metadata_numbers (metadata_id, path_id, value) VALUES (?, ?, ?)", rows
        )

    def _track(self, path: str, progress: Callable[[float], None] | None) -> int:
        """Start keeping ``path``'s values: extract them from every stored metadata value, once."""
        conn = self._conn
        with self._transaction():
            path_id = conn.execute("INSERT INTO metadata_paths (path) VALUES (?)", (path,)).lastrowid or 0
        ids = [row[0] for row in conn.execute("SELECT id FROM metadata ORDER BY id")]
        for done, offset in enumerate(range(0, len(ids), 100)):
            rows = []
            for metadata_id in ids[offset : offset + 100]:
                encoded = self._assemble(metadata_id)
                number = number_at(orjson.loads(encoded), path, "metadata") if encoded else None
                if number is not None:
                    rows.append((metadata_id, path_id, number))
            with self._transaction():
                conn.executemany(
                    "INSERT OR REPLACE INTO metadata_numbers (metadata_id, path_id, value) VALUES (?, ?, ?)",
                    rows,
                )
            if progress is not None:
                progress(min(1.0, (done + 1) * 100 / max(1, len(ids))) * 0.5)
        self._state.tracked = None
        return path_id

    def _assemble(self, metadata_id: int) -> bytes | None:
        """The compact JSON of stored metadata ``metadata_id``."""
        state = self._state
        cached = state.assembled.get(metadata_id)
        if cached is not None:
            state.assembled.move_to_end(metadata_id)
            return cached
        encoded = assemble_metadata(self._conn, metadata_id)
        if encoded is not None:
            self._remember_assembled(metadata_id, encoded)
        return encoded

    def _remember_assembled(self, metadata_id: int, encoded: bytes) -> None:
        assembled = self._state.assembled
        assembled[metadata_id] = encoded
        assembled.move_to_end(metadata_id)
        while len(assembled) > 4:
            assembled.popitem(last=False)

    def _release_metadata(self, counts: Mapping[int, int]) -> None:
        """Drop ``counts`` references; metadata nothing refers to any more is deleted with its chunks."""
        conn = self._conn
        conn.executemany(
            "UPDATE metadata SET refs = refs - ? WHERE id = ?", [(n, i) for i, n in counts.items()]
        )
        marks = ",".join("?" * len(counts))
        gone = conn.execute(
            f"SELECT id, chunk_ids FROM metadata WHERE refs <= 0 AND id IN ({marks})", list(counts)
        ).fetchall()
        if not gone:
            return
        chunk_counts: dict[int, int] = {}
        for metadata_id, chunk_blob in gone:
            for chunk_id in decode_ids(chunk_blob):
                chunk_counts[chunk_id] = chunk_counts.get(chunk_id, 0) + 1
            self._state.assembled.pop(metadata_id, None)
        gone_ids = [row[0] for row in gone]
        id_marks = ",".join("?" * len(gone_ids))
        conn.execute(f"DELETE FROM metadata WHERE id IN ({id_marks})", gone_ids)
        conn.execute(f"DELETE FROM metadata_numbers WHERE metadata_id IN ({id_marks})", gone_ids)
        conn.executemany(
            "UPDATE chunks SET refs = refs - ? WHERE id = ?", [(n, i) for i, n in chunk_counts.items()]
        )
        conn.execute("DELETE FROM chunks WHERE refs <= 0")
        self._state.metadata_ids = OrderedDict(
            (h, i) for h, i in self._state.metadata_ids.items() if i not in set(gone_ids)
        )

    # --- on the store thread: collection ---------------------------------------------------------

    def _insert_collected(self, document: CollectedDocument) -> StoredDocument:
        with self._transaction():
            seq, size, changed, dropped = self._insert_row(document)
            oldest, pruned = self._prune(seq, document.ts_ms)
        self._state.inserts += 1
        return StoredDocument(seq, size, changed, oldest, pruned, dropped)

    def _import(self, documents: Sequence[CollectedDocument]) -> list[int]:
        seqs = []
        with self._transaction():
            for document in documents:
                seqs.append(self._insert_row(document)[0])
            if seqs:
                self._prune(seqs[-1], documents[-1].ts_ms)
        return seqs

    def _insert_row(self, document: CollectedDocument) -> tuple[int, int, bool, tuple[int, ...]]:
        """Store one document (inside a transaction): (seq, size, metadata changed, seqs dropped)."""
        conn = self._conn
        state = self._state
        metadata_id = self._metadata_id(document.metadata)
        seq = (conn.execute("SELECT max(seq) FROM history").fetchone()[0] or 0) + 1
        size = len(document.body) + METADATA_JOIN_BYTES + document.metadata.size
        numbers = self._numbers_array(document.numbers)
        conn.execute(
            "INSERT INTO history (seq, ts, body, metadata_id, size, replication, numbers) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                document.ts_ms,
                document.body,
                metadata_id,
                size,
                int(Replication.QUEUED) if document.queue else None,
                numbers.tobytes(),
            ),
        )
        conn.execute("UPDATE metadata SET refs = refs + 1 WHERE id = ?", (metadata_id,))
        self._replace_current(document.doc_id, document.body, metadata_id)
        if state.last_metadata_id is None and seq > 1:
            row = conn.execute("SELECT metadata_id FROM history WHERE seq = ?", (seq - 1,)).fetchone()
            state.last_metadata_id = row[0] if row else None
        changed = state.last_metadata_id != metadata_id
        if changed:
            conn.execute("INSERT INTO metadata_runs (seq, metadata_id) VALUES (?, ?)", (seq, metadata_id))
            if state.last_metadata_id is not None:
                # What changed is worked out when the marker is read, not on every change.
                self._conn.execute(
                    "INSERT INTO markers (ts, kind, detail, old_metadata, new_metadata) "
                    "VALUES (?, 'metadata', '', ?, ?)",
                    (document.ts_ms, state.last_metadata_id, metadata_id),
                )
        state.last_metadata_id = metadata_id
        self._add_to_pyramid(seq, document.ts_ms, numbers)
        dropped: tuple[int, ...] = ()
        if document.queue:
            conn.execute("INSERT INTO outbox (seq) VALUES (?)", (seq,))
            if document.queue_bound:
                dropped = self._bound_outbox(document.queue_bound)
        return seq, size, changed and seq > 1, dropped

    def _replace_current(self, doc_id: str, body: bytes, metadata_id: int) -> None:
        conn = self._conn
        old = conn.execute(
            "SELECT metadata_id FROM documents WHERE collection = ? AND id = ?",
            (SMALL_PEER_INFO_COLLECTION, doc_id),
        ).fetchone()
        conn.execute(
            "INSERT INTO documents (collection, id, body, metadata_id) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (collection, id) DO UPDATE SET body = excluded.body, "
            "metadata_id = excluded.metadata_id",
            (SMALL_PEER_INFO_COLLECTION, doc_id, body, metadata_id),
        )
        conn.execute("UPDATE metadata SET refs = refs + 1 WHERE id = ?", (metadata_id,))
        if old is not None and old[0] is not None:
            self._release_metadata({int(old[0]): 1})

    def _metadata_change(self, old_id: int, new_id: int) -> str:
        """What changed, for a marker's tooltip: the top-level keys added, removed and changed."""
        old_text, new_text = self._assemble(old_id), self._assemble(new_id)
        if old_text is None or new_text is None:
            return "metadata changed"
        old, new = orjson.loads(old_text), orjson.loads(new_text)
        added = [k for k in new if k not in old]
        removed = [k for k in old if k not in new]
        changed = [k for k in new if k in old and new[k] != old[k]]
        parts = []
        for label, keys in (("changed", changed), ("added", added), ("removed", removed)):
            if keys:
                shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
                parts.append(f"{label}: {shown}")
        return "; ".join(parts) or "metadata changed"

    def _numbers_array(self, numbers: Mapping[str, float]) -> array[float]:
        slots = self._slots()
        for path in numbers:
            if path not in slots and len(slots) < MAX_DOCUMENT_PATHS:
                slot = len(slots)
                self._conn.execute("INSERT INTO document_paths (slot, path) VALUES (?, ?)", (slot, path))
                slots[path] = slot
        values = array("d", [math.nan]) * len(slots)
        for path, value in numbers.items():
            if (position := slots.get(path)) is not None:
                values[position] = value
        return values

    def _slots(self) -> dict[str, int]:
        state = self._state
        if not state.slots:
            state.slots = {
                path: slot for slot, path in self._conn.execute("SELECT slot, path FROM document_paths")
            }
        return state.slots

    def _add_to_pyramid(self, seq: int, ts_ms: int, numbers: array[float]) -> None:
        conn = self._conn
        for level in range(1, LEVELS + 1):
            block = (seq - 1) >> (FANOUT_BITS * level)
            current = self._state.open_blocks.get(level)
            if current is None or current.block != block:
                current = self._load_block(level, block)
            if current is None:
                current = _OpenBlock(block, ts_ms, ts_ms, 1, array("d", numbers), array("d", numbers))
            else:
                _merge_into(current, ts_ms, ts_ms, 1, numbers, numbers)
            self._state.open_blocks[level] = current
            conn.execute(
                "INSERT OR REPLACE INTO series_blocks (level, block, ts_first, ts_last, count, mins, maxs) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (level, block, current.ts_first, current.ts_last, current.count,
                 current.mins.tobytes(), current.maxs.tobytes()),
            )  # fmt: skip

    def _load_block(self, level: int, block: int) -> _OpenBlock | None:
        row = self._conn.execute(
            "SELECT ts_first, ts_last, count, mins, maxs FROM series_blocks WHERE level = ? AND block = ?",
            (level, block),
        ).fetchone()
        if row is None:
            return None
        mins, maxs = array("d"), array("d")
        mins.frombytes(row[3])
        maxs.frombytes(row[4])
        return _OpenBlock(block, row[0], row[1], row[2], mins, maxs)

    def _rebuild_block(self, level: int, block: int) -> None:
        """Recompute one block from the level below (or the rows), after retention cut into it."""
        conn = self._conn
        shift = FANOUT_BITS * level
        first_seq, last_seq = (block << shift) + 1, (block + 1) << shift
        if level == 1:
            parts: Iterable[tuple[int, int, int, bytes, bytes]] = (
                (ts, ts, 1, numbers, numbers)
                for ts, numbers in conn.execute(
                    "SELECT ts, numbers FROM history WHERE seq BETWEEN ? AND ? ORDER BY seq",
                    (first_seq, last_seq),
                )
            )
        else:
            low = block << FANOUT_BITS
            parts = conn.execute(
                "SELECT ts_first, ts_last, count, mins, maxs FROM series_blocks "
                "WHERE level = ? AND block BETWEEN ? AND ? ORDER BY block",
                (level - 1, low, low + (1 << FANOUT_BITS) - 1),
            ).fetchall()
        rebuilt: _OpenBlock | None = None
        for ts_first, ts_last, count, mins_blob, maxs_blob in parts:
            mins, maxs = array("d"), array("d")
            mins.frombytes(mins_blob or b"")
            maxs.frombytes(maxs_blob or b"")
            if rebuilt is None:
                rebuilt = _OpenBlock(block, ts_first, ts_last, count, mins, maxs)
            else:
                _merge_into(rebuilt, ts_first, ts_last, count, mins, maxs)
        if rebuilt is None:
            conn.execute("DELETE FROM series_blocks WHERE level = ? AND block = ?", (level, block))
            self._state.open_blocks.pop(level, None)
            return
        conn.execute(
            "INSERT OR REPLACE INTO series_blocks (level, block, ts_first, ts_last, count, mins, maxs) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (level, block, rebuilt.ts_first, rebuilt.ts_last, rebuilt.count,
             rebuilt.mins.tobytes(), rebuilt.maxs.tobytes()),
        )  # fmt: skip
        if (open_block := self._state.open_blocks.get(level)) is not None and open_block.block == block:
            self._state.open_blocks[level] = rebuilt

    # --- on the store thread: retention ------------------------------------------------------------

    def _prune(self, newest_seq: int, now_ms: int) -> tuple[int, bool]:
        """Apply the retention bounds; returns (oldest seq kept, whether anything was removed)."""
        conn = self._conn
        retention = self.retention
        oldest = conn.execute("SELECT min(seq) FROM history").fetchone()[0] or newest_seq
        keep_from = max(oldest, newest_seq - retention.max_documents + 1)
        cutoff_ms = now_ms - int(retention.max_age_seconds * 1000)
        young = conn.execute(
            "SELECT seq FROM history WHERE ts >= ? ORDER BY ts LIMIT 1", (cutoff_ms,)
        ).fetchone()
        keep_from = max(keep_from, young[0] if young else newest_seq)
        pruned = False
        if keep_from > oldest:
            self._delete_below(keep_from)
            pruned = True
        if self._state.inserts % _BYTES_CHECK_EVERY == 0:
            while keep_from < newest_seq and self._used_bytes() > retention.max_bytes:
                total = newest_seq - keep_from + 1
                keep_from = min(newest_seq, keep_from + max(1, total // 100))
                self._delete_below(keep_from)
                pruned = True
        return keep_from, pruned

    def _used_bytes(self) -> int:
        conn = self._conn
        pages = (
            conn.execute("PRAGMA page_count").fetchone()[0]
            - conn.execute("PRAGMA freelist_count").fetchone()[0]
        )
        return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])

    def _delete_below(self, keep_from: int) -> None:
        conn = self._conn
        counts = dict(
            conn.execute(
                "SELECT metadata_id, count(*) FROM history WHERE seq < ? GROUP BY metadata_id", (keep_from,)
            ).fetchall()
        )
        oldest_ts = conn.execute("SELECT ts FROM history WHERE seq = ?", (keep_from,)).fetchone()
        conn.execute("DELETE FROM history WHERE seq < ?", (keep_from,))
        expired = conn.execute("DELETE FROM outbox WHERE seq < ?", (keep_from,)).rowcount
        if expired:  # queued documents that aged out of the history before they could be sent
            self._count_dropped(expired)
        # The run covering the new oldest row now starts there.
        covering = conn.execute(
            "SELECT seq, metadata_id FROM metadata_runs WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
            (keep_from,),
        ).fetchone()
        conn.execute("DELETE FROM metadata_runs WHERE seq < ?", (keep_from,))
        if covering is not None and covering[0] < keep_from:
            conn.execute(
                "INSERT OR REPLACE INTO metadata_runs (seq, metadata_id) VALUES (?, ?)",
                (keep_from, covering[1]),
            )
        if oldest_ts is not None:
            conn.execute("DELETE FROM markers WHERE ts < ?", (oldest_ts[0],))
        if counts:
            self._release_metadata(counts)
        for level in range(1, LEVELS + 1):
            shift = FANOUT_BITS * level
            first_block = (keep_from - 1) >> shift
            conn.execute("DELETE FROM series_blocks WHERE level = ? AND block < ?", (level, first_block))
            if (first_block << shift) + 1 < keep_from:
                self._rebuild_block(level, first_block)

    # --- on the store thread: the outbox -----------------------------------------------------------

    def _bound_outbox(self, bound: int) -> tuple[int, ...]:
        excess = self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0] - bound
        if excess <= 0:
            return ()
        dropped = self._drop_where("WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,))
        self._count_dropped(len(dropped))
        return dropped

    def _count_dropped(self, count: int) -> None:
        self._conn.execute(
            "INSERT INTO settings (key, value) VALUES ('outbox_dropped', ?) ON CONFLICT (key) "
            "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT)",
            (str(count), count),
        )

    def _drop_where(self, where: str, args: tuple[Any, ...]) -> tuple[int, ...]:
        seqs = tuple(row[0] for row in self._conn.execute(f"SELECT seq FROM outbox {where}", args))
        if seqs:
            self._conn.execute(
                f"UPDATE history SET replication = {int(Replication.DROPPED)} "
                f"WHERE seq IN (SELECT seq FROM outbox {where})",
                args,
            )
            self._conn.execute(f"DELETE FROM outbox {where}", args)
        return seqs

    def _outbox_batch(self, limit: int) -> list[tuple[int, bytes]]:
        rows = self._conn.execute(
            "SELECT o.seq, h.body, h.metadata_id FROM outbox o JOIN history h ON h.seq = o.seq "
            "ORDER BY o.seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [(seq, join_document(body, self._assemble(mid) or b"{}")) for seq, body, mid in rows]

    def _acknowledge(self, seqs: list[int]) -> tuple[int, ...]:
        marks = ",".join("?" * len(seqs))
        conn = self._conn
        with self._transaction():
            queued = tuple(
                row[0] for row in conn.execute(f"SELECT seq FROM outbox WHERE seq IN ({marks})", seqs)
            )
            # A document the queue bound dropped while its batch was in flight was delivered after
            # all: it is acknowledged, and no longer counts as dropped.
            redeemed = conn.execute(
                f"SELECT count(*) FROM history WHERE seq IN ({marks}) AND replication = ?",
                [*seqs, int(Replication.DROPPED)],
            ).fetchone()[0]
            conn.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", seqs)
            conn.execute(
                f"UPDATE history SET replication = {int(Replication.ACKNOWLEDGED)} WHERE seq IN ({marks})",
                seqs,
            )
            if redeemed:
                self._count_dropped(-redeemed)
        return queued

    def _drop_outbox(self, seqs: list[int] | None) -> tuple[int, ...]:
        with self._transaction():
            if seqs is None:
                return self._drop_where("", ())
            return self._drop_where(f"WHERE seq IN ({','.join('?' * len(seqs))})", tuple(seqs))

    def _outbox_state(self) -> tuple[int, int]:
        queued = self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        row = self._conn.execute("SELECT value FROM settings WHERE key = 'outbox_dropped'").fetchone()
        return queued, int(row[0]) if row else 0

    def _record_marker(self, ts_ms: int, kind: str, detail: str) -> None:
        self._conn.execute("INSERT INTO markers (ts, kind, detail) VALUES (?, ?, ?)", (ts_ms, kind, detail))

    # --- on the store thread: reading ------------------------------------------------------------

    def _find_by_id(self, collection: str, doc_id: str) -> bytes | None:
        row = self._conn.execute(
            "SELECT body, metadata_id FROM documents WHERE collection = ? AND id = ?", (collection, doc_id)
        ).fetchone()
        if row is None:
            return None
        body, metadata_id = row
        return body if metadata_id is None else join_document(body, self._assemble(metadata_id) or b"{}")

    def _history(self, limit: int, before_ts: int | None) -> list[bytes]:
        rows = self._conn.execute(
            "SELECT body, metadata_id FROM history WHERE ts < ? ORDER BY ts DESC LIMIT ?",
            (before_ts if before_ts is not None else 2**62, limit),
        ).fetchall()
        return [join_document(body, self._assemble(mid) or b"{}") for body, mid in rows]

    def _bounds(self) -> tuple[int, int]:
        # Two subqueries: each is one index seek, where min() and max() together scan the table.
        row = self._conn.execute(
            "SELECT (SELECT min(seq) FROM history), (SELECT max(seq) FROM history)"
        ).fetchone()
        return (row[0], row[1]) if row[0] is not None else (0, 0)

    def _time_bounds(self) -> tuple[int, int] | None:
        row = self._conn.execute(
            "SELECT (SELECT ts FROM history ORDER BY seq LIMIT 1), "
            "(SELECT ts FROM history ORDER BY seq DESC LIMIT 1)"
        ).fetchone()
        return None if row[0] is None else (row[0], row[1])

    def _timeline_rows(self, first_seq: int, last_seq: int) -> list[TimelineRow]:
        slots = self._slots()
        available, total = (
            slots.get("device_disk_usage.device_available"),
            slots.get("device_disk_usage.ditto_total"),
        )
        rows = self._conn.execute(
            "SELECT h.seq, h.ts, h.size, m.hash, h.numbers, h.replication FROM history h "
            "JOIN metadata m ON m.id = h.metadata_id WHERE h.seq BETWEEN ? AND ? ORDER BY h.seq DESC",
            (first_seq, last_seq),
        ).fetchall()
        out = []
        for seq, ts, size, metadata_hash, numbers_blob, replication in rows:
            numbers = array("d")
            numbers.frombytes(numbers_blob or b"")
            out.append(
                TimelineRow(
                    seq,
                    ts,
                    size,
                    metadata_hash,
                    _slot_value(numbers, available),
                    _slot_value(numbers, total),
                    Replication.LOCAL_ONLY if replication is None else Replication(replication),
                )
            )
        return out

    def _document(self, seq: int) -> bytes | None:
        row = self._conn.execute("SELECT body, metadata_id FROM history WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else join_document(row[0], self._assemble(row[1]) or b"{}")

    def _documents(self, first_seq: int, last_seq: int) -> list[tuple[int, bytes]]:
        rows = self._conn.execute(
            "SELECT seq, body, metadata_id FROM history WHERE seq BETWEEN ? AND ? ORDER BY seq DESC",
            (first_seq, last_seq),
        ).fetchall()
        return [(seq, join_document(body, self._assemble(mid) or b"{}")) for seq, body, mid in rows]

    def _search(self, needle: str, limit: int, newer_than: int) -> tuple[list[int], tuple[int, int]]:
        """See `search`. Exact on the whole document's text: body, metadata and the seam between them."""
        lowered = needle.encode("utf-8").lower()
        conn = self._conn
        if newer_than:  # a few new documents: only their metadata needs looking at
            candidates = conn.execute("SELECT DISTINCT metadata_id FROM history WHERE seq > ?", (newer_than,))
        else:
            candidates = conn.execute("SELECT id FROM metadata")
        metadata_ids = [row[0] for row in candidates]
        # The whole document reads  body[:-1] + ',"metadata":' + metadata + '}'.
        inside: list[int] = []
        seams: dict[int, list[int]] = {}  # split point k -> metadata ids whose suffix starts with needle[k:]
        splits = [k for k in range(1, len(lowered)) if lowered[k : k + 1] == b","]
        for metadata_id in metadata_ids:
            suffix = b',"metadata":' + (self._assemble_lowered(metadata_id)) + b"}"
            if lowered in suffix:
                inside.append(metadata_id)
            for k in splits:
                if suffix.startswith(lowered[k:]):
                    seams.setdefault(k, []).append(metadata_id)
        clauses = ["CAST(substr(body, 1, length(body) - 1) AS TEXT) LIKE ?1 ESCAPE '\\'"]
        args: list[Any] = [_like_pattern(needle, prefix="%", suffix="%"), limit, newer_than]
        if inside:
            clauses.append(f"metadata_id IN ({','.join(str(i) for i in inside)})")
        for k, ids in seams.items():
            args.append(_like_pattern(lowered[:k].decode("utf-8", "ignore"), prefix="%", suffix="}"))
            clauses.append(
                f"(CAST(body AS TEXT) LIKE ?{len(args)} ESCAPE '\\' "
                f"AND metadata_id IN ({','.join(str(i) for i in ids)}))"
            )
        rows = conn.execute(
            f"SELECT seq FROM history WHERE seq > ?3 AND ({' OR '.join(clauses)}) ORDER BY seq DESC LIMIT ?2",
            args,
        ).fetchall()
        return [row[0] for row in rows], self._bounds()

    def _assemble_lowered(self, metadata_id: int) -> bytes:
        return (self._assemble(metadata_id) or b"{}").lower()

    def _seq_at_or_before(self, ts_ms: int) -> int | None:
        row = self._conn.execute(
            "SELECT seq FROM history WHERE ts <= ? ORDER BY ts DESC LIMIT 1", (ts_ms,)
        ).fetchone()
        if row is None:
            row = self._conn.execute("SELECT min(seq) FROM history").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _numeric_paths(self) -> list[str]:
        document = [path for path, _ in sorted(self._slots().items(), key=lambda item: item[1])]
        current = (
            self._conn.execute("SELECT metadata_id FROM history ORDER BY seq DESC LIMIT 1").fetchone()
            or self._conn.execute(
                "SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'metadata_id'"
            ).fetchone()
        )
        encoded = self._assemble(current[0]) if current else None
        metadata = set(numeric_leaves(orjson.loads(encoded), "metadata")) if encoded else set()
        return document + sorted(metadata | set(self._tracked_paths()))

    def _markers(self, first_ms: int, last_ms: int, limit: int) -> list[Marker]:
        rows = self._conn.execute(
            "SELECT ts, kind, detail, old_metadata, new_metadata FROM markers "
            "WHERE ts BETWEEN ? AND ? ORDER BY ts LIMIT ?",
            (first_ms, last_ms, limit),
        ).fetchall()
        described = 0
        markers = []
        for ts, kind, detail, old, new in rows:
            if kind == "metadata":
                # Saying what changed costs two parses: only for the first markers of a busy range.
                described += 1
                detail = (
                    self._metadata_change(old, new) if described <= _DESCRIBED_MARKERS else "metadata changed"
                )
            markers.append(Marker(ts, kind, detail))
        return markers

    def _series(
        self,
        paths: list[str],
        first_ms: int,
        last_ms: int,
        buckets: int,
        progress: Callable[[float], None] | None,
    ) -> dict[str, SeriesBuckets]:
        import numpy as np  # the plot's dependency, not the peer's start-up's

        conn = self._conn
        span = conn.execute(
            "SELECT (SELECT seq FROM history WHERE ts >= ? ORDER BY ts LIMIT 1), "
            "(SELECT seq FROM history WHERE ts <= ? ORDER BY ts DESC LIMIT 1)",
            (first_ms, last_ms),
        ).fetchone()
        out: dict[str, SeriesBuckets] = {}
        if span[0] is None or span[1] is None or span[0] > span[1]:
            return {path: empty_series(path) for path in paths}
        first_seq, last_seq = span
        slots = self._slots()
        document_paths = [p for p in paths if p in slots]
        if document_paths:
            rows = last_seq - first_seq + 1
            level = 0
            while level < LEVELS and rows >> (FANOUT_BITS * (level + 1)) >= buckets:
                level += 1
            if level == 0:
                data = conn.execute(
                    "SELECT ts, ts, 1, numbers, numbers FROM history WHERE seq BETWEEN ? AND ? ORDER BY seq",
                    (first_seq, last_seq),
                ).fetchall()
            else:
                shift = FANOUT_BITS * level
                data = conn.execute(
                    "SELECT ts_first, ts_last, count, mins, maxs FROM series_blocks "
                    "WHERE level = ? AND block BETWEEN ? AND ? ORDER BY block",
                    (level, (first_seq - 1) >> shift, (last_seq - 1) >> shift),
                ).fetchall()
            width = len(slots)
            t_first = np.fromiter((r[0] for r in data), dtype=np.int64, count=len(data))
            t_last = np.fromiter((r[1] for r in data), dtype=np.int64, count=len(data))
            counts = np.fromiter((r[2] for r in data), dtype=np.int64, count=len(data))
            mins = _matrix([r[3] for r in data], width)
            maxs = _matrix([r[4] for r in data], width)
            for path in document_paths:
                slot = slots[path]
                out[path] = bucketize(
                    path, first_ms, last_ms, buckets, t_first, t_last, counts, mins[:, slot], maxs[:, slot]
                )
        metadata_paths = [p for p in paths if p not in out]
        if metadata_paths:
            out.update(
                self._metadata_series(
                    metadata_paths, first_seq, last_seq, first_ms, last_ms, buckets, progress
                )
            )
        return out

    def _metadata_series(
        self,
        paths: list[str],
        first_seq: int,
        last_seq: int,
        first_ms: int,
        last_ms: int,
        buckets: int,
        progress: Callable[[float], None] | None,
    ) -> dict[str, SeriesBuckets]:
        """Metadata fields are constant between two metadata changes: walk the runs, in pages."""
        import numpy as np

        conn = self._conn
        tracked = self._tracked_paths()
        path_ids = {path: tracked[path] if path in tracked else self._track(path, progress) for path in paths}
        start = conn.execute(
            "SELECT seq FROM metadata_runs WHERE seq <= ? ORDER BY seq DESC LIMIT 1", (first_seq,)
        ).fetchone()
        cursor = start[0] if start else first_seq
        runs: list[tuple[int, int]] = []  # (seq, metadata_id)
        page = 50_000
        while True:
            chunk = conn.execute(
                "SELECT seq, metadata_id FROM metadata_runs WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                (cursor, last_seq, page),
            ).fetchall()
            runs.extend(chunk)
            if progress is not None:
                done = (chunk[-1][0] - first_seq + 1) / max(1, last_seq - first_seq + 1) if chunk else 1.0
                progress(0.5 + 0.5 * min(1.0, done))
            if len(chunk) < page:
                break
            cursor = chunk[-1][0] + 1
        # Each run spans from its first seq (or the range's) to the next run's first seq - 1.
        starts = [max(seq, first_seq) for seq, _ in runs]
        ends = [*(max(seq - 1, first_seq) for seq, _ in runs[1:]), last_seq]
        ts_of = self._timestamps_of(sorted({*starts, *ends}))
        values: dict[int, dict[int, float]] = {}
        ids = sorted({metadata_id for _, metadata_id in runs})
        for offset in range(0, len(ids), 500):
            part = ids[offset : offset + 500]
            for metadata_id, path_id, value in conn.execute(
                f"SELECT metadata_id, path_id, value FROM metadata_numbers WHERE metadata_id IN "
                f"({','.join('?' * len(part))})",
                part,
            ):
                values.setdefault(metadata_id, {})[path_id] = value
        t_first = np.array([ts_of[s] for s in starts], dtype=np.int64)
        t_last = np.array([ts_of[e] for e in ends], dtype=np.int64)
        counts = np.array([e - s + 1 for s, e in zip(starts, ends, strict=True)], dtype=np.int64)
        out = {}
        for path in paths:
            path_id = path_ids.get(path)
            column = np.array(
                [
                    values.get(mid, {}).get(path_id, math.nan) if path_id is not None else math.nan
                    for _, mid in runs
                ],
                dtype=np.float64,
            )
            out[path] = bucketize(path, first_ms, last_ms, buckets, t_first, t_last, counts, column, column)
        return out

    def _timestamps_of(self, seqs: list[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for offset in range(0, len(seqs), 500):
            part = seqs[offset : offset + 500]
            found.update(
                self._conn.execute(
                    f"SELECT seq, ts FROM history WHERE seq IN ({','.join('?' * len(part))})", part
                ).fetchall()
            )
        return found

    def _checkpoint(self) -> None:
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def timestamps(self, seqs: Sequence[int]) -> dict[int, int]:
        """``ts`` (ms) of the stored documents ``seqs``, by seq (seqs no longer kept are left out)."""
        return await self._call(self._timestamps_of, sorted(set(seqs)))

    async def marker_columns(self, first_ms: int, last_ms: int, buckets: int) -> list[tuple[str, int, int]]:
        """The markers of ``[first_ms, last_ms]`` per equal bucket and kind: ``(kind, first ts, count)``.

        At most ``buckets`` rows per kind however many markers the range holds (one per pixel
        column, for a plot); `markers` gives the details of a narrow range.
        """
        return await self._call(self._marker_columns, first_ms, last_ms, max(1, buckets))

    def _marker_columns(self, first_ms: int, last_ms: int, buckets: int) -> list[tuple[str, int, int]]:
        span = max(1, last_ms - first_ms + 1)
        rows = self._conn.execute(
            "SELECT kind, min(ts), count(*) FROM markers WHERE ts BETWEEN ?1 AND ?2 "
            "GROUP BY kind, ((ts - ?1) * ?3) / ?4 ORDER BY 2",
            (first_ms, last_ms, buckets, span),
        ).fetchall()
        return [(kind, int(ts), int(count)) for kind, ts, count in rows]


def _merge_into(
    block: _OpenBlock, ts_first: int, ts_last: int, count: int, mins: Sequence[float], maxs: Sequence[float]
) -> None:
    block.ts_first = min(block.ts_first, ts_first)
    block.ts_last = max(block.ts_last, ts_last)
    block.count += count
    width = max(len(block.mins), len(mins))
    for target, source, pick in ((block.mins, mins, min), (block.maxs, maxs, max)):
        if len(target) < width:
            target.extend([math.nan] * (width - len(target)))
        for i, value in enumerate(source):
            if value == value:  # not NaN
                current = target[i]
                target[i] = value if current != current else pick(current, value)


def _matrix(blobs: list[bytes], width: int) -> npt.NDArray[np.float64]:
    """Rows of float64 numbers (each possibly shorter than ``width``: padded with NaN)."""
    import numpy as np

    width = max(1, width)
    if all(len(blob) == 8 * width for blob in blobs):  # the usual case: one C-speed copy
        return np.frombuffer(b"".join(blobs), dtype=np.float64).reshape(len(blobs), width)
    matrix = np.full((len(blobs), width), np.nan)
    for i, blob in enumerate(blobs):
        row = np.frombuffer(blob or b"", dtype=np.float64)[:width]
        matrix[i, : len(row)] = row
    return matrix


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.warning("a write to the peer's database failed: %s", exc)


def _slot_value(numbers: array[float], slot: int | None) -> float | None:
    if slot is None or slot >= len(numbers):
        return None
    value = numbers[slot]
    return None if value != value else value


def _like_pattern(text: str, *, prefix: str, suffix: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return prefix + escaped + suffix


def _loads(encoded: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(encoded)
    return value


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, on_rollback: Callable[[], None] | None = None) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")  # inside: a COMMIT that fails (a full disk) must roll back too
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have rolled back already
            conn.execute("ROLLBACK")
        if on_rollback is not None:
            on_rollback()
        raise


def _check_is_peer_database(connection: sqlite3.Connection) -> None:
    """Refuse a SQLite file of another program (before anything is written to it)."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version:
        return
    # sqlite_* tables are SQLite's own (PRAGMA optimize writes sqlite_stat1, for one).
    tables = {
        row[0]
        for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not row[0].startswith("sqlite_")
    }
    if tables - _LEGACY_TABLES:
        raise sqlite3.DatabaseError("file is not a database of this program (unknown tables)")


def _migrate_to_v2(conn: sqlite3.Connection) -> None:
    """From the first release's layout: metadata into chunks, numeric fields extracted, the pyramid built."""
    for statement in _SCHEMA_V2.strip().split(";"):
        if statement.strip():
            conn.execute(statement)
    ids: dict[bytes, int] = {}
    state = _MigrationState(conn)
    for old_hash, data in conn.execute("SELECT hash, data FROM blobs").fetchall():
        ids[old_hash] = state.metadata_id(MetadataValue(data))
    settings_metadata = conn.execute("SELECT value FROM settings WHERE key = 'metadata'").fetchone()
    if settings_metadata is not None:
        metadata_id = state.metadata_id(MetadataValue(bytes(settings_metadata[0])))
        conn.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES ('metadata_id', ?)", (str(metadata_id),)
        )
        conn.execute("UPDATE metadata SET refs = refs + 1 WHERE id = ?", (metadata_id,))
        conn.execute("DELETE FROM settings WHERE key = 'metadata'")
    previous: int | None = None
    for seq, ts, body, old_hash, size, replication in conn.execute(
        "SELECT seq, ts, body, metadata_hash, size, replication FROM history ORDER BY seq"
    ).fetchall():
        found = ids.get(old_hash)
        metadata_id = found if found is not None else state.metadata_id(MetadataValue(b"{}"))
        numbers = state.numbers(numeric_leaves(orjson.loads(body)))
        conn.execute(
            "INSERT INTO history_v2 (seq, ts, body, metadata_id, size, replication, numbers) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, ts, body, metadata_id, size, replication, numbers.tobytes()),
        )
        conn.execute("UPDATE metadata SET refs = refs + 1 WHERE id = ?", (metadata_id,))
        if metadata_id != previous:
            conn.execute("INSERT INTO metadata_runs (seq, metadata_id) VALUES (?, ?)", (seq, metadata_id))
            previous = metadata_id
    for collection, doc_id, body, old_hash in conn.execute(
        "SELECT collection, id, body, metadata_hash FROM documents"
    ).fetchall():
        current = ids.get(old_hash) if old_hash is not None else None
        conn.execute(
            "INSERT INTO documents_v2 (collection, id, body, metadata_id) VALUES (?, ?, ?, ?)",
            (collection, doc_id, body, current),
        )
        if current is not None:
            conn.execute("UPDATE metadata SET refs = refs + 1 WHERE id = ?", (current,))
    conn.execute("DROP TABLE history")
    conn.execute("DROP TABLE documents")
    conn.execute("DROP TABLE blobs")
    conn.execute("ALTER TABLE history_v2 RENAME TO history")
    conn.execute("ALTER TABLE documents_v2 RENAME TO documents")
    conn.execute("DELETE FROM metadata WHERE refs <= 0")
    state.build_pyramid()


class _MigrationState:
    """What `_migrate_to_v2` needs of the store's logic, on a bare connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.slots: dict[str, int] = {}

    def metadata_id(self, metadata: MetadataValue) -> int:
        row = self.conn.execute("SELECT id FROM metadata WHERE hash = ?", (metadata.hash,)).fetchone()
        return int(row[0]) if row is not None else insert_metadata(self.conn, metadata)

    def numbers(self, values: Mapping[str, float]) -> array[float]:
        for path in values:
            if path not in self.slots and len(self.slots) < MAX_DOCUMENT_PATHS:
                self.slots[path] = len(self.slots)
                self.conn.execute(
                    "INSERT INTO document_paths (slot, path) VALUES (?, ?)", (self.slots[path], path)
                )
        row = array("d", [math.nan]) * len(self.slots)
        for path, value in values.items():
            if path in self.slots:
                row[self.slots[path]] = value
        return row

    def build_pyramid(self) -> None:
        conn = self.conn
        for level in range(1, LEVELS + 1):
            blocks: dict[int, _OpenBlock] = {}
            if level == 1:
                source: Iterable[tuple[int, int, int, int, bytes, bytes]] = (
                    ((seq - 1) >> FANOUT_BITS, ts, ts, 1, numbers, numbers)
                    for seq, ts, numbers in conn.execute("SELECT seq, ts, numbers FROM history ORDER BY seq")
                )
            else:
                source = (
                    (block >> FANOUT_BITS, a, b, n, mins, maxs)
                    for block, a, b, n, mins, maxs in conn.execute(
                        "SELECT block, ts_first, ts_last, count, mins, maxs FROM series_blocks "
                        "WHERE level = ? ORDER BY block",
                        (level - 1,),
                    ).fetchall()
                )
            for block, ts_first, ts_last, count, mins_blob, maxs_blob in source:
                mins, maxs = array("d"), array("d")
                mins.frombytes(mins_blob or b"")
                maxs.frombytes(maxs_blob or b"")
                if block not in blocks:
                    blocks[block] = _OpenBlock(block, ts_first, ts_last, count, mins, maxs)
                else:
                    _merge_into(blocks[block], ts_first, ts_last, count, mins, maxs)
            conn.executemany(
                "INSERT INTO series_blocks (level, block, ts_first, ts_last, count, mins, maxs) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(level, b.block, b.ts_first, b.ts_last, b.count, b.mins.tobytes(), b.maxs.tobytes())
                 for b in blocks.values()],
            )  # fmt: skip
