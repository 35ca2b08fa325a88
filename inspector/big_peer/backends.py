"""Which storage a Big Peer runs on: SQLite in ``--data`` by default, PostgreSQL with ``--database``."""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit, urlunsplit

from inspector.big_peer.config import BigPeerConfig
from inspector.big_peer.sqlite_storage import DATABASE_FILE, SQLiteStorage
from inspector.big_peer.storage import BigPeerStorage

__all__ = ["StorageOpenError", "describe_database", "open_storage"]


class StorageOpenError(Exception):
    """The database could not be opened (or created, or migrated); the message says which and why."""


def describe_database(config: BigPeerConfig) -> str:
    """Where the service keeps its data, for the log: a path, or the URL without its password."""
    if config.database_url is None:
        return str(config.data_dir / DATABASE_FILE)
    return redact_url(config.database_url)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


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
