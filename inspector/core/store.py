"""The peer's SQLite store: settings, the current documents, the history of collections.

One database file (WAL) in the persistence directory. One worker thread owns the
connection and runs every statement in submission order, so the asyncio loop (the
GUI's, under qasync) never waits on the disk: async callers await the worker,
synchronous setters hand it their write and return (write-behind, in order;
`close()` waits for every write).

History rows keep the document without its metadata plus the hash of the metadata,
whose compact JSON is stored once in ``blobs`` (content-addressed): unchanged
metadata costs 16 bytes per collection, not 128 KiB. ``seq`` numbers the rows
without gaps (retention only ever removes the oldest), so row *i* of a newest-first
timeline is ``max_seq - i`` and the window's model can read any screen directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

import orjson

from inspector.core.database import SQLiteWorker
from inspector.core.errors import DittoClosedError

__all__ = ["DATABASE_FILE", "HistoryRetention", "Replication", "Store", "TimelineRow"]

log = logging.getLogger(__name__)

DATABASE_FILE = "peer.sqlite3"
SMALL_PEER_INFO_COLLECTION = "__small_peer_info"
T = TypeVar("T")

_SCHEMA = """
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


@dataclass(frozen=True, slots=True)
class HistoryRetention:
    """How much history a peer keeps: the newest ``max_documents``, none older than ``max_age_seconds``."""

    max_documents: int = 100_000
    max_age_seconds: float = 30 * 24 * 3600.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_documents, int) or self.max_documents < 1:
            raise ValueError("max_documents must be a positive integer")
        if not self.max_age_seconds > 0:
            raise ValueError("max_age_seconds must be positive")


class Replication(IntEnum):
    """Where a stored document stands with the Big Peer."""

    LOCAL_ONLY = -1
    """Collected under LocalPeerOnly: never leaves the device (stored as NULL)."""
    QUEUED = 0
    ACKNOWLEDGED = 1
    DROPPED = 2
    """Queued, then dropped: the queue overflowed or the scope went back to LocalPeerOnly."""


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """What the timeline shows of one stored document, without decoding it."""

    seq: int
    ts_ms: int
    size: int
    metadata_hash: bytes
    device_available: int | None
    ditto_total: int | None
    replication: Replication


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _join(body: bytes, metadata: bytes) -> dict[str, Any]:
    doc = orjson.loads(body)
    doc["metadata"] = orjson.loads(metadata)
    return doc


class Store(SQLiteWorker):
    """The peer's database. Public API: `find_by_id`; the rest serves the peer and the window."""

    def __init__(self, directory: Path, retention: HistoryRetention) -> None:
        # NORMAL: a power cut may lose the last collections, never corrupt the database.
        super().__init__(
            directory / DATABASE_FILE,
            migrations=(_SCHEMA,),
            synchronous="NORMAL",
            thread_name="inspector-store",
            what="The peer's database",
        )
        self._retention = retention
        self._blob_cache: tuple[bytes, bytes] | None = None  # (metadata bytes, hash) last inserted
        self._gc_due = False
        self._lock = threading.Lock()
        self._pending_settings: dict[str, bytes] = {}
        self.open_blocking()

    # --- running work on the store's thread ------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the store thread and wait for it (start-up only: it blocks)."""
        return self._call_blocking(fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.closed:
            raise DittoClosedError("the store")
        return await self._call(fn, *args)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue a write without waiting; failures are logged."""
        future = self._submit(fn, *args)
        future.add_done_callback(self._log_write_failure)
        return future

    def _log_write_failure(self, future: Future[Any]) -> None:
        exc = future.exception()
        if exc is not None:
            log.error("writing to %s failed: %s", self.path, exc, exc_info=exc)

    # --- on the store thread ---------------------------------------------------------------------

    def load_settings(self) -> dict[str, bytes]:
        return dict(self._conn.execute("SELECT key, value FROM settings"))

    def save_setting(self, key: str, value: bytes) -> None:
        self._conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def save_setting_later(self, key: str, value: bytes) -> None:
        """Queue a settings write; writes of one key still pending coalesce into the newest value."""
        with self._lock:
            queued = key in self._pending_settings
            self._pending_settings[key] = value
        if not queued:
            self.submit(self._flush_setting, key)

    def _flush_setting(self, key: str) -> None:
        with self._lock:
            value = self._pending_settings.pop(key)
        self.save_setting(key, value)

    def last_ts(self) -> int:
        row = self._conn.execute("SELECT max(ts) FROM history").fetchone()
        return row[0] or 0

    def insert_collected(
        self,
        doc_id: str,
        ts_ms: int,
        body: bytes,
        metadata: bytes,
        queue_for_big_peer: bool,
        queue_bound: int = 0,
    ) -> int:
        """Store one collected document as the current one and in the history; returns its seq.

        With ``queue_for_big_peer`` it is also put in the outbox, in the same transaction;
        past ``queue_bound`` queued documents the oldest are dropped and counted.
        """
        cached = self._blob_cache
        metadata_hash = cached[1] if cached is not None and cached[0] is metadata else _hash(metadata)
        size = len(body) + len(metadata) + len(b',"metadata":')
        conn = self._conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            if cached is None or cached[1] != metadata_hash:
                conn.execute(
                    "INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", (metadata_hash, metadata)
                )
            seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM history").fetchone()[0]
            conn.execute(
                "INSERT INTO history (seq, ts, body, metadata_hash, size, replication) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (seq, ts_ms, body, metadata_hash, size, Replication.QUEUED if queue_for_big_peer else None),
            )
            conn.execute(
                "INSERT INTO documents (collection, id, body, metadata_hash) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (collection, id) DO UPDATE SET body = excluded.body, "
                "metadata_hash = excluded.metadata_hash",
                (SMALL_PEER_INFO_COLLECTION, doc_id, body, metadata_hash),
            )
            if queue_for_big_peer:
                conn.execute("INSERT INTO outbox (seq) VALUES (?)", (seq,))
                if queue_bound:
                    self._bound_outbox(queue_bound)
            self._prune(seq, ts_ms)
        self._blob_cache = (metadata, metadata_hash)
        return seq

    def _bound_outbox(self, bound: int) -> None:
        excess = self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0] - bound
        if excess > 0:
            self._drop_from_outbox("WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,))
            self._count_dropped(excess)

    def _count_dropped(self, count: int) -> None:
        self._conn.execute(
            "INSERT INTO settings (key, value) VALUES ('outbox_dropped', ?) ON CONFLICT (key) "
            "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT)",
            (str(count), count),
        )

    def _drop_from_outbox(self, where: str, args: tuple[Any, ...] = ()) -> int:
        self._conn.execute(
            f"UPDATE history SET replication = {int(Replication.DROPPED)} "
            f"WHERE seq IN (SELECT seq FROM outbox {where})",
            args,
        )
        return self._conn.execute(f"DELETE FROM outbox {where}", args).rowcount

    # --- the outbox (replication to the Big Peer) ------------------------------------------------

    def outbox_batch(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest queued documents as ``(seq, compact JSON)``, in order."""
        rows = self._conn.execute(
            "SELECT o.seq, h.body, b.data FROM outbox o JOIN history h ON h.seq = o.seq "
            "JOIN blobs b ON b.hash = h.metadata_hash ORDER BY o.seq LIMIT ?",
            (limit,),
        ).fetchall()
        # Splice the stored metadata back in without decoding either part.
        return [(seq, body[:-1] + b',"metadata":' + metadata + b"}") for seq, body, metadata in rows]

    def acknowledge(self, seqs: list[int]) -> None:
        marks = ",".join("?" * len(seqs))
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", seqs)
            self._conn.execute(
                f"UPDATE history SET replication = {int(Replication.ACKNOWLEDGED)} WHERE seq IN ({marks})",
                seqs,
            )

    def save_local_scope(self, value: bytes) -> None:
        """Save the LocalPeerOnly scope and drop the whole queue, in one transaction."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self.save_setting("sync_scope", value)
            self._drop_from_outbox("")

    def drop_outbox(self, seqs: list[int] | None = None) -> int:
        """Drop queued documents (all of them, or ``seqs``); they will never be sent."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            if seqs is None:
                return self._drop_from_outbox("")
            return self._drop_from_outbox(f"WHERE seq IN ({','.join('?' * len(seqs))})", tuple(seqs))

    def outbox_state(self) -> tuple[int, int]:
        """(queued documents, documents dropped because the queue was full, ever)."""
        queued = self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        row = self._conn.execute("SELECT value FROM settings WHERE key = 'outbox_dropped'").fetchone()
        return queued, int(row[0]) if row else 0

    def _prune(self, newest_seq: int, now_ms: int) -> None:
        oldest_kept = newest_seq - self._retention.max_documents + 1
        cutoff_ms = now_ms - int(self._retention.max_age_seconds * 1000)
        row = self._conn.execute("SELECT seq FROM history WHERE ts >= ? ORDER BY ts LIMIT 1", (cutoff_ms,))
        first_young = row.fetchone()
        if first_young is not None:
            oldest_kept = max(oldest_kept, first_young[0])
        deleted = self._conn.execute("DELETE FROM history WHERE seq < ?", (oldest_kept,)).rowcount
        if deleted:
            expired = self._conn.execute("DELETE FROM outbox WHERE seq < ?", (oldest_kept,)).rowcount
            if expired:  # queued documents that aged out of the history before they could be sent
                self._count_dropped(expired)
            self._gc_due = True
        if self._gc_due and newest_seq % 64 == 0:
            self._collect_garbage()

    def _collect_garbage(self) -> None:
        self._conn.execute(
            "DELETE FROM blobs WHERE hash NOT IN (SELECT metadata_hash FROM history) "
            "AND hash NOT IN (SELECT metadata_hash FROM documents WHERE metadata_hash IS NOT NULL)"
        )
        self._gc_due = False

    def find_by_id_sync(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT d.body, b.data FROM documents d LEFT JOIN blobs b ON b.hash = d.metadata_hash "
            "WHERE d.collection = ? AND d.id = ?",
            (collection, doc_id),
        ).fetchone()
        if row is None:
            return None
        return _join(row[0], row[1]) if row[1] is not None else orjson.loads(row[0])

    async def find_by_id(self, collection: str, id: str) -> dict[str, Any] | None:
        """The current document ``id`` of ``collection``, or None."""
        if not isinstance(collection, str) or not isinstance(id, str):
            raise TypeError("collection and id must be strings")
        return await self.run(self.find_by_id_sync, collection, id)

    # --- history ---------------------------------------------------------------------------------

    def history(self, limit: int, before_ts: int | None) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT h.body, b.data FROM history h JOIN blobs b ON b.hash = h.metadata_hash "
            "WHERE h.ts < ? ORDER BY h.ts DESC LIMIT ?",
            (before_ts if before_ts is not None else 2**62, limit),
        ).fetchall()
        return self._documents(rows)

    @staticmethod
    def _documents(rows: Iterable[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        return [_join(body, metadata) for body, metadata in rows]

    def bounds(self) -> tuple[int, int]:
        """(oldest seq, newest seq) of the stored history; (0, 0) when empty."""
        # Two subqueries: each is one index seek, where min() and max() together scan the table.
        row = self._conn.execute(
            "SELECT (SELECT min(seq) FROM history), (SELECT max(seq) FROM history)"
        ).fetchone()
        return (row[0], row[1]) if row[0] is not None else (0, 0)

    def timeline_rows(self, first_seq: int, last_seq: int) -> list[TimelineRow]:
        """Rows with ``first_seq <= seq <= last_seq``, newest first."""
        rows = self._conn.execute(
            "SELECT h.seq, h.ts, h.size, h.metadata_hash, "
            "json_extract(h.body, '$.device_disk_usage.device_available'), "
            "json_extract(h.body, '$.device_disk_usage.ditto_total'), "
            "h.replication FROM history h WHERE h.seq BETWEEN ? AND ? ORDER BY h.seq DESC",
            (first_seq, last_seq),
        ).fetchall()
        return [
            TimelineRow(
                seq, ts, size, mh, avail, total, Replication.LOCAL_ONLY if rep is None else Replication(rep)
            )
            for seq, ts, size, mh, avail, total, rep in rows
        ]

    def document_by_seq(self, seq: int) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT h.body, b.data FROM history h JOIN blobs b ON b.hash = h.metadata_hash WHERE h.seq = ?",
            (seq,),
        ).fetchone()
        return _join(*row) if row else None

    def search(self, needle: str, limit: int) -> list[int]:
        """Seqs (newest first) of documents whose JSON text (metadata included) contains ``needle``."""
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._conn.execute(
            "SELECT seq FROM history WHERE CAST(body AS TEXT) LIKE ?1 ESCAPE '\\' "
            "OR metadata_hash IN (SELECT hash FROM blobs WHERE CAST(data AS TEXT) LIKE ?1 ESCAPE '\\') "
            "ORDER BY seq DESC LIMIT ?2",
            (pattern, limit),
        ).fetchall()
        return [r[0] for r in rows]

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (and truncate the log)."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def database_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total
