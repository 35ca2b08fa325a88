"""Where the Big Peer keeps small peer info: the storage interface every backend implements.

The HTTP handlers only see `BigPeerStorage`; all SQL lives in the backends
(`sqlite_storage.SQLiteStorage`, `postgres_storage.PostgresStorage`;
`backends.open_storage` picks one from the configuration). What is shared between
processes serving one database lives in the database itself: the documents, each
device's summary, the replay guard, and the change versions the HTTP layer derives
its ETags from.

Contract of every backend:

* Documents are identified by ``(_id, last_updated_at)``: ingesting a document
  that is already stored changes nothing and counts as a duplicate (the first
  stored version wins), so a retried batch never creates duplicates. The
  ``last_updated_at`` values are fixed-width ISO-8601 UTC texts, so ordering them
  as text orders them in time.
* A stored document is handed back as the compact JSON text of the value that
  was sent (`documents` refused anything it could not store unchanged).
* ``ingest`` is atomic: the nonce claim, the documents and each device's summary
  change together or not at all.
* A *version* is an integer that grows with every stored document: the global
  one with any document, a device's one with that device's documents. Equal
  versions mean the reads they were returned with answer the same; a read
  returns its data and its version from one consistent snapshot. Derived from
  the database (not from the process), so it stays right when several processes
  write one database.
* Reading the fleet, the device list or a version costs what the page costs, not
  what the stored history costs: each device's summary is kept up to date by
  ``ingest`` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from inspector.big_peer.fleet import FleetPage, FleetQuery
from inspector.big_peer.replay import NonceClaim
from inspector.core.database import StorageClosedError

__all__ = [
    "BigPeerStorage",
    "IngestResult",
    "StorageClosedError",
    "StorageUnavailableError",
    "Versioned",
    "is_unicode",
]

_T = TypeVar("_T")


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (no lone surrogate): what a database can hold.

    A request path may decode to anything; a peer key that is not even Unicode was never
    stored, and every backend reads it as an unknown device instead of failing.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class StorageUnavailableError(Exception):
    """The database cannot be reached now (down, restarting, connection lost); nothing was changed.

    The HTTP layer answers ``503`` with ``Retry-After``: a device keeps the batch
    and retries, a dashboard tries again. A backend raises it only when it knows
    the call changed nothing (a write whose commit may have happened is not
    retried blindly: ingestion is idempotent, so the device's retry settles it).
    """


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one `BigPeerStorage.ingest` call did."""

    accepted: int
    """Documents stored by this call."""
    duplicates: int
    """Documents that were already stored (or repeated within the call); nothing changed for them."""


@dataclass(frozen=True, slots=True)
class Versioned(Generic[_T]):
    """A read's answer with the version of the data it was read from."""

    version: int
    value: _T


class BigPeerStorage(Protocol):
    """The Big Peer's document store (see the module doc for the contract).

    Documents handed to `ingest` are already validated by `documents.parse_batch`:
    each is a JSON object with a string ``_id`` (the peer key) and a fixed-width
    ``last_updated_at``.
    """

    @property
    def database_id(self) -> str:
        """An identifier of the database, made when it was created (part of every ETag)."""
        ...

    async def ingest(
        self, documents: Sequence[Mapping[str, Any]], claim: NonceClaim | None = None
    ) -> IngestResult:
        """Store the documents and spend ``claim`` atomically (all or none); stored ones are skipped.

        Raises `replay.ReplayedNonceError` if the claim's nonce was already spent by
        its peer, or `replay.NonceGuardFullError` if too many unexpired nonces are
        kept; either way nothing is stored.
        """
        ...

    async def version(self, peer_key: str | None = None) -> int | None:
        """The global version (``peer_key`` None), or one device's; None for a device never seen."""
        ...

    async def devices(self) -> Versioned[list[str]]:
        """The latest document of every device, most recently updated first (ties by peer key)."""
        ...

    async def latest(self, peer_key: str) -> Versioned[str] | None:
        """The latest document of one device with the device's version, or None for a device never seen."""
        ...

    async def history(
        self, peer_key: str, limit: int, before: str | None = None
    ) -> Versioned[list[str]] | None:
        """Up to ``limit`` documents of one device, newest first, older than ``before`` if given.

        None for a device never seen (an empty list means the device is known but
        nothing is older than ``before``). The version is the device's.
        """
        ...

    async def fleet(self, query: FleetQuery) -> Versioned[FleetPage]:
        """One page of device summaries (`fleet`), with the global version."""
        ...

    async def close(self) -> None:
        """Finish the calls already made, then release the store. Idempotent."""
        ...
