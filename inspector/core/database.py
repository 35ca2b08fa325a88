"""Opening the SQLite databases of the peer and of the Big Peer the same way."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

__all__ = ["open_database"]


def open_database(
    path: Path, schema: str, *, synchronous: str, check: Callable[[sqlite3.Connection], None] | None = None
) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL, ``synchronous`` and a busy timeout, ``schema`` applied.

    ``check`` sees the connection before anything is written (to refuse a database
    from a newer version, say); whatever fails closes the connection again. The
    connection belongs to the one worker thread that opened it.
    """
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        if check is not None:
            check(connection)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        connection.execute("PRAGMA busy_timeout = 5000")
        connection.executescript(schema)
    except BaseException:
        connection.close()
        raise
    return connection
