"""What every history view asks: the `HistorySource` protocol and what it answers with.

A history is a sequence of collected documents of one device, numbered by an
*index* that is stable while the history grows at the new end and shrinks at the
old end (the local peer's ``seq``; a remote device's ordinal). Views (the timeline,
the document view, the plot, the export) read it through a `HistorySource`, never
through a store, so the same widgets show the local peer or any device at a Big
Peer. Everything here is plain asyncio: no Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from inspector.core.events import Replication
from inspector.core.series import SeriesBuckets
from inspector.core.store import Marker

__all__ = [
    "HistoryChange",
    "HistoryRow",
    "HistorySource",
    "Marker",
    "RowsAppended",
    "RowsChanged",
    "RowsRemoved",
    "SeriesBuckets",
    "SourceReset",
    "Unsubscribe",
]


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """What a timeline shows of one document, without decoding it.

    ``metadata_key`` identifies the metadata the document carries (equal keys, equal
    metadata); ``replication`` is None where the source knows nothing of it (a
    device's history at the Big Peer). ``numbers`` are the document's numeric fields,
    present on rows that arrive live (so a plot can extend without a query).
    """

    index: int
    ts_ms: int
    size: int
    metadata_key: bytes
    device_available: float | None
    ditto_total: float | None
    replication: Replication | None = None
    numbers: Mapping[str, float] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class RowsAppended:
    """New documents up to ``newest``; ``rows`` holds those the source already knows (newest first)."""

    newest: int
    rows: tuple[HistoryRow, ...] = ()


@dataclass(frozen=True, slots=True)
class RowsRemoved:
    """Every document below ``oldest`` is gone (retention)."""

    oldest: int


@dataclass(frozen=True, slots=True)
class RowsChanged:
    """Documents ``indices`` now stand as ``replication`` with the Big Peer."""

    indices: tuple[int, ...]
    replication: Replication


@dataclass(frozen=True, slots=True)
class SourceReset:
    """Anything may have changed (a source that reconnected, say): read everything again."""


HistoryChange = RowsAppended | RowsRemoved | RowsChanged | SourceReset
Unsubscribe = Callable[[], None]


class HistorySource(Protocol):
    """One device's history of collected documents, as every view reads it.

    Indices run from ``bounds()[0]`` (oldest) to ``bounds()[1]`` (newest), without
    gaps; ``(0, 0)`` is an empty history. Documents are compact JSON bytes.
    """

    @property
    def title(self) -> str:
        """Whose history this is, for window titles and file names."""
        ...

    @property
    def has_replication(self) -> bool:
        """Whether rows say where they stand with the Big Peer."""
        ...

    async def bounds(self) -> tuple[int, int]:
        """(oldest index, newest index), or (0, 0) when empty."""
        ...

    async def rows(self, first: int, last: int) -> list[HistoryRow]:
        """The rows with ``first <= index <= last``, newest first."""
        ...

    async def document(self, index: int) -> bytes | None:
        """Document ``index`` as compact JSON, or None if it is no longer kept."""
        ...

    async def documents(self, first: int, last: int) -> list[tuple[int, bytes]]:
        """``(index, compact JSON)`` of the documents in the range, newest first (for export)."""
        ...

    async def search(self, needle: str, limit: int, newer_than: int = 0) -> tuple[list[int], tuple[int, int]]:
        """Indices (newest first, above ``newer_than``) of documents whose JSON contains ``needle``.

        ASCII letters match case-insensitively. Returned with the bounds they were
        taken against, one snapshot.
        """
        ...

    async def index_at_or_before(self, ts_ms: int) -> int | None:
        """The newest document collected at or before ``ts_ms`` (the oldest one if none is)."""
        ...

    async def time_bounds(self) -> tuple[int, int] | None:
        """``last_updated_at`` of the oldest and newest documents (ms), or None when empty."""
        ...

    async def numeric_paths(self) -> list[str]:
        """Field paths that hold numbers, metadata paths (``metadata.battery.level``) included."""
        ...

    async def series(
        self,
        paths: Sequence[str],
        first_ms: int,
        last_ms: int,
        buckets: int,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, SeriesBuckets]:
        """Min and max of each field per bucket of the time range: what a plot draws."""
        ...

    async def markers(self, first_ms: int, last_ms: int) -> list[Marker]:
        """Metadata changes and Big Peer connection events in the time range."""
        ...

    def subscribe(self, listener: Callable[[HistoryChange], None]) -> Unsubscribe:
        """Call ``listener`` on the event loop for every change; returns the way to stop."""
        ...

    async def timestamps(self, indices: Sequence[int]) -> dict[int, int]:
        """``last_updated_at`` (ms) of the documents ``indices`` that are still kept, by index.

        What a plot needs to place documents it knows by index (the timeline's
        selection, a filter's matches) on its time axis.
        """
        ...

    async def marker_columns(self, first_ms: int, last_ms: int, buckets: int) -> list[tuple[str, int, int]]:
        """`markers` of the range folded per kind into ``buckets`` equal spans: ``(kind, first ts, count)``.

        In time order; at most ``buckets`` per kind, however many markers the range
        holds: what a plot draws (it asks `markers` for the details of the few it hovers).
        """
        ...
