"""Where the Big Peer keeps small peer info: the storage interface and its SQLite implementation.

The HTTP handlers only see `BigPeerStorage`; every SQL statement lives in this
module, so a PostgreSQL backend can be added later as another implementation of
the same protocol.

Documents are identified by ``(_id, last_updated_at)``: ingesting a document
that is already stored changes nothing and counts as a duplicate (the first
stored version wins), so a retried batch never creates duplicates. The
``last_updated_at`` values are fixed-width ISO-8601 UTC texts, so ordering them
as text orders them in time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from inspector.core.database import SQLiteWorker, StorageClosedError

__all__ = [
    "DATABASE_FILE",
    "BigPeerStorage",
    "IngestResult",
    "SQLiteStorage",
    "StorageClosedError",
]

DATABASE_FILE = "big_peer.sqlite3"

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one `BigPeerStorage.ingest` call did."""

    accepted: int
    """Documents stored by this call."""
    duplicates: int
    """Documents that were already stored (or repeated within the call); nothing changed for them."""


class BigPeerStorage(Protocol):
    """The Big Peer's document store.

    Documents handed to `ingest` are already validated: each is a JSON object with
    a string ``_id`` (the peer key) and a fixed-width ``last_updated_at``.
    """

    async def ingest(self, documents: Sequence[Mapping[str, Any]]) -> IngestResult:
        """Store the documents atomically (all or none), ignoring those already stored."""
        ...

    async def devices(self) -> list[dict[str, Any]]:
        """The latest document of every device, most recently updated first."""
        ...

    async def latest(self, peer_key: str) -> dict[str, Any] | None:
        """The latest document of one device, or None for a device never seen."""
        ...

    async def history(
        self, peer_key: str, limit: int, before: str | None = None
    ) -> list[dict[str, Any]] | None:
        """Up to ``limit`` documents of one device, newest first, older than ``before`` if given.

        None for a device never seen (an empty list means the device is known but
        nothing is older than ``before``).
        """
        ...

    async def close(self) -> None:
        """Finish the calls already made, then release the store. Idempotent."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY,
    peer_key TEXT NOT NULL,
    last_updated_at TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (peer_key, last_updated_at)
);
CREATE TABLE IF NOT EXISTS devices (
    peer_key TEXT PRIMARY KEY,
    last_updated_at TEXT NOT NULL,
    last_received_at_ms INTEGER NOT NULL
);
"""
_MIGRATIONS = (_SCHEMA,)

_INSERT_DOCUMENT = """
INSERT INTO documents (peer_key, last_updated_at, received_at_ms, body) VALUES (?, ?, ?, ?)
ON CONFLICT (peer_key, last_updated_at) DO NOTHING
"""

# The devices row points at the newest document by its unique key, so reading the
# latest document of every device is one index lookup per device.
_UPSERT_DEVICE = """
INSERT INTO devices (peer_key, last_updated_at, last_received_at_ms) VALUES (?, ?, ?)
ON CONFLICT (peer_key) DO UPDATE SET
    last_updated_at = max(devices.last_updated_at, excluded.last_updated_at),
    last_received_at_ms = excluded.last_received_at_ms
"""

_SELECT_DEVICES = """
SELECT d.body FROM devices AS v
JOIN documents AS d ON d.peer_key = v.peer_key AND d.last_updated_at = v.last_updated_at
ORDER BY v.last_updated_at DESC, v.peer_key
"""

_SELECT_LATEST = """
SELECT d.body FROM devices AS v
JOIN documents AS d ON d.peer_key = v.peer_key AND d.last_updated_at = v.last_updated_at
WHERE v.peer_key = ?
"""

_SELECT_HISTORY = """
SELECT body FROM documents WHERE peer_key = ? AND last_updated_at < ?
ORDER BY last_updated_at DESC LIMIT ?
"""

# Sorts after every fixed-width timestamp, so "before nothing" needs no second query.
_AFTER_ALL_TIMESTAMPS = "~"


class SQLiteStorage(SQLiteWorker):
    """`BigPeerStorage` in one SQLite database file (WAL).

    One worker thread owns the connection and runs every call in order, so the
    event loop never waits on disk and no two calls interleave. Commits use
    ``synchronous=FULL``: a write acknowledged to a device (which then drops it
    from its outbox) survives a power cut, not only a crash of the service.
    """

    def __init__(self, path: Path) -> None:
        """Prefer `SQLiteStorage.open`, which also creates the schema."""
        super().__init__(
            path,
            migrations=_MIGRATIONS,
            synchronous="FULL",
            thread_name="big-peer-sqlite",
            what="The Big Peer database",
        )

    @classmethod
    async def open(cls, path: Path) -> SQLiteStorage:
        """Open (creating if needed) the database at ``path``; its directory must exist."""
        storage = cls(path)
        await storage.open_async()
        return storage

    async def ingest(self, documents: Sequence[Mapping[str, Any]]) -> IngestResult:
        return await self._call(self._ingest, documents)

    async def devices(self) -> list[dict[str, Any]]:
        return await self._call(self._select_all, _SELECT_DEVICES, ())

    async def latest(self, peer_key: str) -> dict[str, Any] | None:
        found = await self._call(self._select_all, _SELECT_LATEST, (peer_key,))
        return found[0] if found else None

    async def history(
        self, peer_key: str, limit: int, before: str | None = None
    ) -> list[dict[str, Any]] | None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        return await self._call(self._history, peer_key, limit, before)

    # Everything below runs on the worker thread.

    def _ingest(self, documents: Sequence[Mapping[str, Any]]) -> IngestResult:
        received_at_ms = int(time.time() * 1000)
        rows = [
            (document["_id"], document["last_updated_at"], received_at_ms, orjson.dumps(document).decode())
            for document in documents
        ]
        connection = self._conn
        connection.execute("BEGIN IMMEDIATE")
        try:
            accepted = connection.executemany(_INSERT_DOCUMENT, rows).rowcount
            newest: dict[str, str] = {}
            for peer_key, last_updated_at, _, _ in rows:
                if last_updated_at > newest.get(peer_key, ""):
                    newest[peer_key] = last_updated_at
            connection.executemany(_UPSERT_DEVICE, [(key, at, received_at_ms) for key, at in newest.items()])
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return IngestResult(accepted=accepted, duplicates=len(rows) - accepted)

    def _select_all(self, query: str, parameters: tuple[Any, ...]) -> list[dict[str, Any]]:
        rows = self._conn.execute(query, parameters).fetchall()
        return [orjson.loads(body) for (body,) in rows]

    def _history(self, peer_key: str, limit: int, before: str | None) -> list[dict[str, Any]] | None:
        connection = self._conn
        if connection.execute("SELECT 1 FROM devices WHERE peer_key = ?", (peer_key,)).fetchone() is None:
            return None
        return self._select_all(
            _SELECT_HISTORY, (peer_key, _AFTER_ALL_TIMESTAMPS if before is None else before, limit)
        )
