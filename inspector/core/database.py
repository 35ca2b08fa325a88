"""One SQLite database owned by one worker thread: the peer's store and the Big Peer's both sit on it.

`SQLiteWorker` opens the file (WAL, a busy timeout, ``synchronous`` as asked),
applies its versioned migrations, and runs every function handed to it on its own
thread, in submission order, so an asyncio loop (the window's, under qasync) never
waits on the disk and no two statements interleave. Subclasses expose typed
questions (``async def timeline_rows(...)``) and keep `_call` to themselves.

Every ``sqlite3`` failure leaves it as a `PersistenceError` that names the file and
says what to do (`classify`); a database found damaged while running is reported
once to ``on_failure`` and then keeps being refused the same way, without retrying
in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from inspector.core.errors import PersistenceError, PersistenceProblem

__all__ = ["Migration", "SQLiteWorker", "StorageClosedError", "classify"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_P = ParamSpec("_P")

Migration = Callable[[sqlite3.Connection], None] | str
"""One step of a schema: SQL text (a script) or a function of the connection; run in one transaction."""

_OPEN_ATTEMPTS = 5
# Primary result codes (the low byte of an extended code).
_SQLITE_PERM = 3
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

_ADVICE = {
    PersistenceProblem.NOT_A_DATABASE: (
        "is not a database of this program",
        "Move it aside (the next start creates a new one) or choose another directory.",
    ),
    PersistenceProblem.DAMAGED: (
        "is damaged",
        "Move it aside (the next start creates a new one), or restore it from a backup.",
    ),
    PersistenceProblem.CANNOT_OPEN: (
        "cannot be opened",
        "Check that it is a file (not a directory) you can read and write, or move it aside.",
    ),
    PersistenceProblem.READ_ONLY: (
        "cannot be written",
        "Fix its permissions (and those of its directory) so this user can write to them.",
    ),
    PersistenceProblem.DISK_FULL: (
        "cannot be written because the disk is full",
        "Free some space on that disk.",
    ),
    PersistenceProblem.IO_ERROR: (
        "cannot be read or written",
        "Check the disk; move the file aside if the error persists.",
    ),
}
_ERRNO = {
    PersistenceProblem.READ_ONLY: errno.EACCES,
    PersistenceProblem.DISK_FULL: errno.ENOSPC,
    PersistenceProblem.IO_ERROR: errno.EIO,
    PersistenceProblem.CANNOT_OPEN: errno.ENOENT,
}


class StorageClosedError(RuntimeError):
    """The worker was closed; no further calls are served."""


def classify(path: Path, exc: BaseException, *, what: str = "The database") -> PersistenceError | None:
    """The `PersistenceError` a ``sqlite3`` (or OS) failure means for the file ``path``; None if none."""
    if isinstance(exc, PersistenceError):
        return exc
    problem: PersistenceProblem | None = None
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        text = str(exc).lower()
        if code == _SQLITE_NOTADB or "file is not a database" in text:
            problem = PersistenceProblem.NOT_A_DATABASE
        elif code == _SQLITE_CORRUPT or "malformed" in text:
            problem = PersistenceProblem.DAMAGED
        elif code == _SQLITE_FULL or "disk is full" in text:
            problem = PersistenceProblem.DISK_FULL
        elif code in (_SQLITE_READONLY, _SQLITE_PERM) or "readonly" in text:
            problem = PersistenceProblem.READ_ONLY
        elif code == _SQLITE_CANTOPEN or "unable to open" in text:
            problem = PersistenceProblem.CANNOT_OPEN
        elif code == _SQLITE_IOERR or "i/o error" in text:
            problem = PersistenceProblem.IO_ERROR
    elif isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            problem = PersistenceProblem.DISK_FULL
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            problem = PersistenceProblem.READ_ONLY
        elif exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
            problem = PersistenceProblem.CANNOT_OPEN
        else:
            problem = PersistenceProblem.IO_ERROR
    if problem is None:
        return None
    state, advice = _ADVICE[problem]
    detail = str(exc).rstrip(".")
    error = PersistenceError(path, problem, f"{what} {path} {state}: {detail}. {advice}")
    error.errno = _ERRNO.get(problem)
    return error


class SQLiteWorker:
    """One SQLite connection on one worker thread (see the module doc).

    ``migrations[i]`` brings the schema from version ``i`` to ``i + 1``
    (``PRAGMA user_version``); a database of a newer version than
    ``len(migrations)`` is refused, untouched. ``check`` sees the connection
    before anything is written (to refuse a file that is not ours, say).
    """

    def __init__(
        self,
        path: Path,
        *,
        migrations: Sequence[Migration],
        synchronous: str = "NORMAL",
        thread_name: str = "sqlite",
        what: str = "The database",
        check: Callable[[sqlite3.Connection], None] | None = None,
        on_failure: Callable[[PersistenceError], None] | None = None,
        closed_error: Callable[[], Exception] | None = None,
    ) -> None:
        self.path = path
        self._migrations = tuple(migrations)
        self._synchronous = synchronous
        self._what = what
        self._check = check
        self.on_failure = on_failure
        """Told once (on the worker thread) when the database turns out damaged while running."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._closed_error = closed_error or (lambda: StorageClosedError(f"{what} {path} is closed"))
        self._damaged: PersistenceError | None = None
        self._failure_lock = threading.Lock()

    @property
    def schema_version(self) -> int:
        return len(self._migrations)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def damaged(self) -> PersistenceError | None:
        """The error that showed the database damaged while running, or None."""
        return self._damaged

    # --- life cycle ------------------------------------------------------------------------------

    def open_blocking(self) -> None:
        """Open the database and migrate it, blocking until done (start-up); raises `PersistenceError`."""
        try:
            self._executor.submit(self._guarded, self._open).result()
        except BaseException:
            self._closed = True
            self._executor.shutdown(wait=True)
            raise

    async def open_async(self) -> None:
        """`open_blocking` without blocking the running loop."""
        try:
            await asyncio.wrap_future(self._executor.submit(self._guarded, self._open))
        except BaseException:
            self._closed = True
            self._executor.shutdown(wait=False)
            raise

    async def close(self) -> None:
        """Finish the calls already made, then close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wrap_future(self._executor.submit(self._close_connection))
        finally:
            self._executor.shutdown(wait=False)

    def close_blocking(self) -> None:
        """`close` for a caller outside any event loop."""
        if self._closed:
            return
        self._closed = True
        try:
            self._executor.submit(self._close_connection).result()
        finally:
            self._executor.shutdown(wait=True)

    # --- running work (for subclasses) -----------------------------------------------------------

    async def _call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn`` on the worker thread and await its result."""
        return await asyncio.wrap_future(self._submit(fn, *args, **kwargs))

    def _call_blocking(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn`` on the worker thread and wait (start-up only: it blocks the caller)."""
        return self._submit(fn, *args, **kwargs).result()

    def _submit(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """Queue ``fn`` without waiting (write-behind); the caller watches the future."""
        if self._closed:
            raise self._closed_error()
        return self._executor.submit(self._guarded, functools.partial(fn, *args, **kwargs))

    @property
    def _conn(self) -> sqlite3.Connection:
        """The connection (on the worker thread only)."""
        if self._connection is None:
            raise self._closed_error()
        return self._connection

    # --- on the worker thread --------------------------------------------------------------------

    def _guarded(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except (sqlite3.Error, OSError) as exc:
            error = classify(self.path, exc, what=self._what)
            if error is None:
                raise
            if error.problem in (PersistenceProblem.DAMAGED, PersistenceProblem.NOT_A_DATABASE):
                self._report_damage(error)
            raise error from exc

    def _report_damage(self, error: PersistenceError) -> None:
        with self._failure_lock:
            if self._damaged is not None or self._connection is None:
                return  # told already, or failing to open (the caller gets the error itself)
            self._damaged = error
        log.error("%s", error)
        if self.on_failure is not None:
            try:
                self.on_failure(error)
            except Exception:
                log.exception("reporting a damaged database failed")

    def _open(self) -> None:
        if self.path.is_dir():
            raise PersistenceError(
                self.path,
                PersistenceProblem.CANNOT_OPEN,
                f"{self._what} {self.path} is a directory, not a database file. "
                "Move it aside (the next start creates a new database) or choose another directory.",
            )
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Before anything that may wait for another process's lock (WAL switch, migration).
            connection.execute("PRAGMA busy_timeout = 5000")
            if self._check is not None:
                self._check(connection)
            # Reading the header fails at once for a file that is not a database at all.
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > len(self._migrations):
                raise PersistenceError(
                    self.path,
                    PersistenceProblem.NEWER_VERSION,
                    f"{self._what} {self.path} was written by a newer version of this program "
                    f"(schema {version}; this one knows {len(self._migrations)}). "
                    "Upgrade the program, or choose another directory.",
                )
            self._prepare(connection, version)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _prepare(self, connection: sqlite3.Connection, version: int) -> None:
        """Switch to WAL and bring the schema from ``version`` to the newest, again if a lock was refused.

        Openers of one new file (Big Peer workers starting together) wait for each other's
        locks, but SQLite refuses one of two at once, busy timeout or not, where waiting
        would deadlock: two switching the file to WAL together (seen once in a full CI run),
        or two upgrading to the write lock. The refused one tries again after a moment;
        each migration step re-reads the version under the lock, so trying again never
        repeats a step another process made.
        """
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                if connection.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                    raise sqlite3.OperationalError("unable to open database file (no write-ahead log)")
                connection.execute(f"PRAGMA synchronous = {self._synchronous}")
                for target in range(version + 1, len(self._migrations) + 1):
                    self._migrate(connection, target, self._migrations[target - 1])
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == _OPEN_ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))

    @staticmethod
    def _migrate(connection: sqlite3.Connection, target: int, step: Migration) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Another process opening the same new file may have migrated while this one
            # waited for the write lock: then there is nothing left to do.
            if connection.execute("PRAGMA user_version").fetchone()[0] >= target:
                connection.execute("COMMIT")
                return
            if isinstance(step, str):
                for statement in _statements(step):
                    connection.execute(statement)
            else:
                step(connection)
            connection.execute(f"PRAGMA user_version = {int(target)}")
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have rolled back already
                connection.execute("ROLLBACK")
            raise

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):  # a damaged or full database still closes
                connection.execute("PRAGMA optimize")
            connection.close()


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (``executescript`` would commit our transaction)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements
