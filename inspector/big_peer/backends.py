"""Which storage a Big Peer runs on: SQLite in ``--data`` by default, PostgreSQL with ``--database``."""

from __future__ import annotations

import re
import sqlite3

from inspector.big_peer.config import BigPeerConfig
from inspector.big_peer.sqlite_storage import DATABASE_FILE, SQLiteStorage
from inspector.big_peer.storage import BigPeerStorage

__all__ = ["StorageOpenError", "describe_database", "open_storage", "redact_url"]

# scheme://user:password@ (the password may hold anything but "@" and "/")
_USER_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:@/]*):[^@/]*@", re.IGNORECASE)
# ?password=... or &sslpassword=... (libpq's and asyncpg's query parameters)
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)


class StorageOpenError(Exception):
    """The database could not be opened (or created, or migrated); the message says which and why."""


def describe_database(config: BigPeerConfig) -> str:
    """Where the service keeps its data, for the log: a path, or the URL without its password."""
    if config.database_url is None:
        return str(config.data_dir / DATABASE_FILE)
    return redact_url(config.database_url)


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***``: in the user part and in the query.

    Works on the text, never on a parsed port: asyncpg accepts forms `urllib` cannot parse
    (several hosts, ``host1:5432,host2:5432``), and a description must never fail.
    """
    url = _USER_PASSWORD.sub(r"\1:***@", url, count=1)
    return _QUERY_PASSWORD.sub(r"\1***", url)


async def open_storage(config: BigPeerConfig) -> BigPeerStorage:
    """Open (creating or migrating the schema if needed) the storage the configuration names."""
    where = describe_database(config)
    if config.database_url is not None:
        # Imported here: asyncpg is only loaded by a Big Peer that uses it.
        from inspector.big_peer.postgres_storage import PostgresStorage

        try:
            return await PostgresStorage.open(config.database_url)
        except Exception as exc:
            raise StorageOpenError(f"cannot open the database {where}: {exc}") from exc
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        return await SQLiteStorage.open(config.data_dir / DATABASE_FILE)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        raise StorageOpenError(f"cannot open the database in {config.data_dir}: {exc}") from exc
