"""`BigPeerStorage` in one SQLite database file (WAL): the Big Peer's default storage.

Schema (``PRAGMA user_version``):

1. ``documents`` (every stored document; ``seq`` grows with each) and a
   ``devices`` table pointing at each device's newest document.
2. ``device_summaries`` (each device's fleet summary and counts, kept by ``ingest``
   in its transaction; replaces ``devices``), ``device_search`` (the text ``q``
   searches), ``nonces`` (the replay guard), ``counters`` (devices and nonces, so
   no read counts a table) and ``meta`` (the database id). The migration fills the
   summaries from the documents of a version 1 database.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import orjson

from inspector.big_peer.fleet import (
    DeviceSummary,
    FleetKey,
    FleetPage,
    FleetQuery,
    FleetSort,
    render_summary,
    search_form,
    summarize,
    timestamp_ms,
)
from inspector.big_peer.replay import (
    DEFAULT_MAX_NONCES,
    REPLAY_WINDOW_MS,
    NonceClaim,
    NonceGuardFullError,
    ReplayedNonceError,
)
from inspector.big_peer.storage import IngestResult, Versioned, is_unicode
from inspector.core.database import SQLiteWorker

__all__ = ["DATABASE_FILE", "SQLiteStorage"]

DATABASE_FILE = "big_peer.sqlite3"

_SCHEMA_V1 = """
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

_SCHEMA_V2 = (
    """
    CREATE TABLE device_summaries (
        peer_key TEXT PRIMARY KEY,
        device_name TEXT NOT NULL,
        last_updated_at TEXT NOT NULL,
        received_at_ms INTEGER NOT NULL,
        document_count INTEGER NOT NULL,
        interval_ms INTEGER,
        newest_seq INTEGER NOT NULL,
        change_seq INTEGER NOT NULL,
        fields TEXT NOT NULL
    )""",
    "CREATE INDEX device_summaries_by_name ON device_summaries (device_name, peer_key)",
    "CREATE INDEX device_summaries_by_time ON device_summaries (last_updated_at DESC, peer_key)",
    """
    CREATE TABLE device_search (
        peer_key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        metadata TEXT NOT NULL
    ) WITHOUT ROWID""",
    """
    CREATE TABLE nonces (
        peer_key TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        PRIMARY KEY (peer_key, nonce)
    ) WITHOUT ROWID""",
    "CREATE INDEX nonces_by_expiry ON nonces (expires_at_ms)",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)

_INSERT_DOCUMENT = """
INSERT INTO documents (peer_key, last_updated_at, received_at_ms, body) VALUES (?, ?, ?, ?)
ON CONFLICT (peer_key, last_updated_at) DO NOTHING
"""
_NEWEST_TWO = (
    "SELECT seq, last_updated_at FROM documents WHERE peer_key = ? ORDER BY last_updated_at DESC LIMIT 2"
)
_SUMMARY_STATE = "SELECT newest_seq, document_count FROM device_summaries WHERE peer_key = ?"
_UPSERT_SUMMARY = """
INSERT INTO device_summaries (
    peer_key, device_name, last_updated_at, received_at_ms, document_count, interval_ms, newest_seq,
    change_seq, fields
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (peer_key) DO UPDATE SET
    device_name = excluded.device_name, last_updated_at = excluded.last_updated_at,
    received_at_ms = excluded.received_at_ms, document_count = excluded.document_count,
    interval_ms = excluded.interval_ms, newest_seq = excluded.newest_seq,
    change_seq = excluded.change_seq, fields = excluded.fields
"""
# An older document arrived late: the summary stays, the counts move.
_COUNT_LATE_DOCUMENTS = """
UPDATE device_summaries SET document_count = document_count + ?, interval_ms = ?, change_seq = ?
WHERE peer_key = ?
"""
_UPSERT_SEARCH = """
INSERT INTO device_search (peer_key, name, key, metadata) VALUES (?, ?, ?, ?)
ON CONFLICT (peer_key) DO UPDATE SET name = excluded.name, metadata = excluded.metadata
"""
_ADD_TO_COUNTER = "UPDATE counters SET value = value + ? WHERE name = ? RETURNING value"
_PRUNE_NONCES = "DELETE FROM nonces WHERE expires_at_ms < ?"
_INSERT_NONCE = """
INSERT INTO nonces (peer_key, nonce, expires_at_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING
"""

_GLOBAL_VERSION = "SELECT coalesce(max(seq), 0) FROM documents"
_DEVICE_VERSION = "SELECT change_seq FROM device_summaries WHERE peer_key = ?"
_SELECT_DEVICES = """
SELECT d.body FROM device_summaries AS s JOIN documents AS d ON d.seq = s.newest_seq
ORDER BY s.last_updated_at DESC, s.peer_key
"""
_SELECT_LATEST = """
SELECT s.change_seq, d.body FROM device_summaries AS s JOIN documents AS d ON d.seq = s.newest_seq
WHERE s.peer_key = ?
"""
_SELECT_HISTORY = """
SELECT body FROM documents WHERE peer_key = ? AND last_updated_at < ?
ORDER BY last_updated_at DESC LIMIT ?
"""
_MATCH = "(instr(f.name, :text) > 0 OR instr(f.key, :text) > 0 OR instr(f.metadata, :text) > 0)"
_COUNT_MATCHES = f"SELECT count(*) FROM device_search AS f WHERE {_MATCH}"

# Sorts after every fixed-width timestamp, so "before nothing" needs no second query.
_AFTER_ALL_TIMESTAMPS = "~"
_COUNTER_DEVICES = "devices"
_COUNTER_NONCES = "nonces"

_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class _DeviceDocuments:
    """The documents of one device in a batch, with their compact JSON."""

    peer_key: str
    documents: list[Mapping[str, Any]]
    bodies: list[str]


class _Plan(Enum):
    """How a fleet page is found."""

    IN_ORDER = "in order"
    """Walk the summaries in the page's order (an index), stopping after a page of them."""
    MATCHES_FIRST = "matches first"
    """Find every device ``q`` matches, then order just those: for matches too sparse to walk to."""


# Up to this many matches of `q`, finding them all and sorting them beats walking the order
# to them (measured over 100,000 devices: a rare text took 265 ms in order, 45 ms this way).
_MATCHES_FIRST_UP_TO = 20_000


@cache
def _fleet_statement(sort: FleetSort, after: bool, plan: _Plan | None) -> str:
    """The page query of one shape of `FleetQuery` (``plan`` None: no ``q``)."""
    order_column = "s.device_name" if sort is FleetSort.DEVICE_NAME else "s.last_updated_at"
    conditions = []
    if after and sort is FleetSort.DEVICE_NAME:
        conditions.append("(s.device_name, s.peer_key) > (:value, :peer_key)")
    elif after:
        # Newest first but ties by peer key ascending: no row value compares both ways at once.
        conditions.append(
            "s.last_updated_at <= :value AND (s.last_updated_at < :value OR s.peer_key > :peer_key)"
        )
    # CROSS JOIN fixes the outer loop: the summaries walked in index order (a page stops
    # after `limit` matches), or the search text scanned once (then only matches are sorted).
    if plan is None:
        source = "device_summaries AS s"
    else:
        conditions.append(_MATCH)
        source = (
            "device_summaries AS s CROSS JOIN device_search AS f ON f.peer_key = s.peer_key"
            if plan is _Plan.IN_ORDER
            else "device_search AS f CROSS JOIN device_summaries AS s ON s.peer_key = f.peer_key"
        )
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    direction = "ASC" if sort is FleetSort.DEVICE_NAME else "DESC"
    return (
        f"SELECT s.peer_key, {order_column}, s.fields, s.received_at_ms, s.document_count, s.interval_ms "
        f"FROM {source} {where} ORDER BY {order_column} {direction}, s.peer_key LIMIT :limit"
    )


class SQLiteStorage(SQLiteWorker):
    """`BigPeerStorage` in one SQLite database file (WAL).

    One worker thread owns the connection and runs every call in order, so the
    event loop never waits on disk and no two calls interleave. Commits use
    ``synchronous=FULL``: a write acknowledged to a device (which then drops it
    from its outbox) survives a power cut, not only a crash of the service.
    Several processes may open one file: writes take SQLite's write lock
    (``BEGIN IMMEDIATE``) and reads run in a transaction of their own.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock_ms: Callable[[], int] | None = None,
        max_nonces: int = DEFAULT_MAX_NONCES,
    ) -> None:
        """Prefer `SQLiteStorage.open`, which also creates or migrates the schema."""
        super().__init__(
            path,
            migrations=(_SCHEMA_V1, _migrate_to_v2),
            synchronous="FULL",
            thread_name="big-peer-sqlite",
            what="The Big Peer database",
        )
        self._clock_ms = clock_ms or _now_ms
        self._max_nonces = max_nonces
        self._database_id = ""

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock_ms: Callable[[], int] | None = None,
        max_nonces: int = DEFAULT_MAX_NONCES,
    ) -> SQLiteStorage:
        """Open (creating or migrating if needed) the database at ``path``; its directory must exist."""
        storage = cls(path, clock_ms=clock_ms, max_nonces=max_nonces)
        await storage.open_async()
        storage._database_id = await storage._call(storage._read_database_id)
        return storage

    @property
    def database_id(self) -> str:
        return self._database_id

    async def ingest(
        self, documents: Sequence[Mapping[str, Any]], claim: NonceClaim | None = None
    ) -> IngestResult:
        by_device: dict[str, list[Mapping[str, Any]]] = {}
        for document in documents:
            by_device.setdefault(document["_id"], []).append(document)
        # Encoded here, on the caller's side of the queue, so the write lock is held for SQL only.
        groups = [
            _DeviceDocuments(peer_key, group, [orjson.dumps(d).decode() for d in group])
            for peer_key, group in by_device.items()
        ]
        return await self._call(self._ingest, groups, claim)

    async def version(self, peer_key: str | None = None) -> int | None:
        if peer_key is not None and not is_unicode(peer_key):
            return None
        return await self._call(self._version, peer_key)

    async def devices(self) -> Versioned[list[str]]:
        return await self._call(self._devices)

    async def latest(self, peer_key: str) -> Versioned[str] | None:
        if not is_unicode(peer_key):
            return None
        return await self._call(self._latest, peer_key)

    async def history(
        self, peer_key: str, limit: int, before: str | None = None
    ) -> Versioned[list[str]] | None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not is_unicode(peer_key):
            return None
        return await self._call(self._history, peer_key, limit, before)

    async def fleet(self, query: FleetQuery) -> Versioned[FleetPage]:
        return await self._call(self._fleet, query)

    # Everything below runs on the worker thread.

    def _read_database_id(self) -> str:
        return str(self._conn.execute("SELECT value FROM meta WHERE name = 'database_id'").fetchone()[0])

    def _ingest(self, groups: list[_DeviceDocuments], claim: NonceClaim | None) -> IngestResult:
        now_ms = self._clock_ms()
        connection = self._conn
        connection.execute("BEGIN IMMEDIATE")
        try:
            if claim is not None:
                self._spend(claim, now_ms)
            accepted = sum(self._store(group, now_ms) for group in groups)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        total = sum(len(group.documents) for group in groups)
        return IngestResult(accepted=accepted, duplicates=total - accepted)

    def _spend(self, claim: NonceClaim, now_ms: int) -> None:
        connection = self._conn
        pruned = connection.execute(_PRUNE_NONCES, (now_ms,)).rowcount
        if (
            connection.execute(_INSERT_NONCE, (claim.peer_key, claim.nonce, claim.expires_at_ms)).rowcount
            == 0
        ):
            raise ReplayedNonceError(
                "this signed write was already received (its nonce is spent); sign every attempt afresh"
            )
        (kept,) = connection.execute(_ADD_TO_COUNTER, (1 - pruned, _COUNTER_NONCES)).fetchone()
        if kept > self._max_nonces:
            raise NonceGuardFullError(
                f"more than {self._max_nonces} signed writes arrived within "
                f"{REPLAY_WINDOW_MS // 60_000} minutes; retry later"
            )

    def _store(self, group: _DeviceDocuments, now_ms: int) -> int:
        """Store one device's documents and bring its summary up to date; how many were new."""
        connection = self._conn
        peer_key, documents = group.peer_key, group.documents
        accepted = connection.executemany(
            _INSERT_DOCUMENT,
            [
                (peer_key, d["last_updated_at"], now_ms, body)
                for d, body in zip(documents, group.bodies, strict=True)
            ],
        ).rowcount
        if accepted == 0:
            return 0
        # Every insert took max(seq) + 1, and this call inserted last: the device's new version.
        (version,) = connection.execute("SELECT last_insert_rowid()").fetchone()
        newest = connection.execute(_NEWEST_TWO, (peer_key,)).fetchall()
        interval_ms = _interval_ms(newest)
        state = connection.execute(_SUMMARY_STATE, (peer_key,)).fetchone()
        count = accepted + (state[1] if state is not None else 0)
        newest_seq, newest_at = newest[0]
        if state is not None and state[0] == newest_seq:
            connection.execute(_COUNT_LATE_DOCUMENTS, (accepted, interval_ms, version, peer_key))
            return accepted
        # The newest document is one of these (the first of them with its timestamp was stored).
        document = next(d for d in documents if d["last_updated_at"] == newest_at)
        _write_summary(connection, summarize(document), now_ms, count, interval_ms, newest_seq, version)
        if state is None:
            connection.execute(_ADD_TO_COUNTER, (1, _COUNTER_DEVICES))
        return accepted

    def _version(self, peer_key: str | None) -> int | None:
        if peer_key is None:
            return int(self._conn.execute(_GLOBAL_VERSION).fetchone()[0])
        row = self._conn.execute(_DEVICE_VERSION, (peer_key,)).fetchone()
        return None if row is None else int(row[0])

    def _snapshot(self, read: Callable[[sqlite3.Connection], _R]) -> _R:
        """``read`` in one read transaction: its statements see one state of the database."""
        connection = self._conn
        connection.execute("BEGIN")
        try:
            return read(connection)
        finally:
            connection.execute("COMMIT")

    def _devices(self) -> Versioned[list[str]]:
        def read(connection: sqlite3.Connection) -> Versioned[list[str]]:
            version = connection.execute(_GLOBAL_VERSION).fetchone()[0]
            return Versioned(version, [body for (body,) in connection.execute(_SELECT_DEVICES)])

        return self._snapshot(read)

    def _latest(self, peer_key: str) -> Versioned[str] | None:
        row = self._conn.execute(_SELECT_LATEST, (peer_key,)).fetchone()
        return None if row is None else Versioned(row[0], row[1])

    def _history(self, peer_key: str, limit: int, before: str | None) -> Versioned[list[str]] | None:
        def read(connection: sqlite3.Connection) -> Versioned[list[str]] | None:
            found = connection.execute(_DEVICE_VERSION, (peer_key,)).fetchone()
            if found is None:
                return None
            since = _AFTER_ALL_TIMESTAMPS if before is None else before
            bodies = connection.execute(_SELECT_HISTORY, (peer_key, since, limit)).fetchall()
            return Versioned(found[0], [body for (body,) in bodies])

        return self._snapshot(read)

    def _fleet(self, query: FleetQuery) -> Versioned[FleetPage]:
        text = search_form(query.text)
        parameters: dict[str, Any] = {"limit": query.limit + 1, "text": text}
        if query.after is not None:
            parameters.update(value=query.after.value, peer_key=query.after.peer_key)

        def read(connection: sqlite3.Connection) -> tuple[int, int, list[tuple[Any, ...]]]:
            version = connection.execute(_GLOBAL_VERSION).fetchone()[0]
            plan = None
            if text:
                total = connection.execute(_COUNT_MATCHES, {"text": text}).fetchone()[0]
                plan = _Plan.MATCHES_FIRST if total <= _MATCHES_FIRST_UP_TO else _Plan.IN_ORDER
            else:
                total = connection.execute(
                    "SELECT value FROM counters WHERE name = ?", (_COUNTER_DEVICES,)
                ).fetchone()[0]
            statement = _fleet_statement(query.sort, query.after is not None, plan)
            return version, total, connection.execute(statement, parameters).fetchall()

        version, total, rows = self._snapshot(read)
        page = rows[: query.limit]
        summaries = [
            render_summary(fields, received_at_ms=received, document_count=count, interval_ms=interval)
            for _, _, fields, received, count, interval in page
        ]
        following = None
        if len(rows) > query.limit:
            peer_key, value = page[-1][0], page[-1][1]
            following = FleetKey(query.sort, value, peer_key)
        return Versioned(version, FleetPage(summaries, following, total))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _interval_ms(newest: list[tuple[int, str]]) -> int | None:
    if len(newest) < 2:
        return None
    return timestamp_ms(newest[0][1]) - timestamp_ms(newest[1][1])


def _write_summary(
    connection: sqlite3.Connection,
    summary: DeviceSummary,
    received_at_ms: int,
    count: int,
    interval_ms: int | None,
    newest_seq: int,
    version: int,
) -> None:
    connection.execute(
        _UPSERT_SUMMARY,
        (
            summary.peer_key,
            summary.device_name,
            summary.last_updated_at,
            received_at_ms,
            count,
            interval_ms,
            newest_seq,
            version,
            summary.fields,
        ),
    )
    connection.execute(
        _UPSERT_SEARCH, (summary.peer_key, summary.search_name, summary.search_key, summary.search_metadata)
    )


def _migrate_to_v2(connection: sqlite3.Connection) -> None:
    """Device summaries, search text, the replay guard and counters; filled from the documents."""
    for statement in _SCHEMA_V2:
        connection.execute(statement)
    connection.execute("INSERT INTO meta (name, value) VALUES ('database_id', ?)", (uuid.uuid4().hex,))
    devices = connection.execute(
        "SELECT peer_key, count(*), max(seq) FROM documents GROUP BY peer_key"
    ).fetchall()
    for peer_key, count, version in devices:
        newest = connection.execute(_NEWEST_TWO, (peer_key,)).fetchall()
        newest_seq = newest[0][0]
        received_at_ms, body = connection.execute(
            "SELECT received_at_ms, body FROM documents WHERE seq = ?", (newest_seq,)
        ).fetchone()
        summary = summarize(orjson.loads(body))
        _write_summary(connection, summary, received_at_ms, count, _interval_ms(newest), newest_seq, version)
    connection.executemany(
        "INSERT INTO counters (name, value) VALUES (?, ?)",
        [(_COUNTER_DEVICES, len(devices)), (_COUNTER_NONCES, 0)],
    )
    connection.execute("DROP TABLE devices")
