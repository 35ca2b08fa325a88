"""`LocalHistory`: the local peer's history, from its store, live from its events."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from inspector.core.ditto import Ditto
from inspector.core.events import DocumentCollected, DocumentStatesChanged, HistoryPruned, SmallPeerInfoEvent
from inspector.core.series import SeriesBuckets
from inspector.core.store import Marker, TimelineRow
from inspector.history.source import (
    HistoryChange,
    HistoryRow,
    RowsAppended,
    RowsChanged,
    RowsRemoved,
    Unsubscribe,
)

__all__ = ["LocalHistory"]


def _row(row: TimelineRow) -> HistoryRow:
    return HistoryRow(
        row.seq,
        row.ts_ms,
        row.size,
        row.metadata_hash,
        row.device_available,
        row.ditto_total,
        row.replication,
    )


class LocalHistory:
    """A `HistorySource` over a `Ditto`'s own history: indices are its store's seqs.

    Collected documents arrive as `RowsAppended` with their row (built from the
    event, nothing re-read), retention as `RowsRemoved`, Big Peer acknowledgements
    and drops as `RowsChanged`.
    """

    def __init__(self, ditto: Ditto) -> None:
        self._ditto = ditto
        self._store = ditto.store
        self._listeners: list[Callable[[HistoryChange], None]] = []
        self._subscription = ditto.small_peer_info.observe(self._on_event)

    @property
    def title(self) -> str:
        return self._ditto.device_name

    @property
    def has_replication(self) -> bool:
        return True

    def close(self) -> None:
        """Stop following the peer."""
        self._subscription.cancel()
        self._listeners.clear()

    async def bounds(self) -> tuple[int, int]:
        return await self._store.bounds()

    async def rows(self, first: int, last: int) -> list[HistoryRow]:
        return [_row(row) for row in await self._store.timeline_rows(first, last)]

    async def document(self, index: int) -> bytes | None:
        return await self._store.document(index)

    async def documents(self, first: int, last: int) -> list[tuple[int, bytes]]:
        return await self._store.documents(first, last)

    async def search(self, needle: str, limit: int, newer_than: int = 0) -> tuple[list[int], tuple[int, int]]:
        return await self._store.search(needle, limit, newer_than)

    async def index_at_or_before(self, ts_ms: int) -> int | None:
        return await self._store.seq_at_or_before(ts_ms)

    async def time_bounds(self) -> tuple[int, int] | None:
        return await self._store.time_bounds()

    async def numeric_paths(self) -> list[str]:
        return await self._store.numeric_paths()

    async def series(
        self,
        paths: Sequence[str],
        first_ms: int,
        last_ms: int,
        buckets: int,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, SeriesBuckets]:
        return await self._store.series(paths, first_ms, last_ms, buckets, progress)

    async def markers(self, first_ms: int, last_ms: int) -> list[Marker]:
        return await self._store.markers(first_ms, last_ms)

    def subscribe(self, listener: Callable[[HistoryChange], None]) -> Unsubscribe:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _on_event(self, event: SmallPeerInfoEvent) -> None:
        change: HistoryChange
        if isinstance(event, DocumentCollected):
            row = HistoryRow(
                event.seq,
                event.ts_ms,
                event.size,
                event.metadata.hash,
                event.numbers.get("device_disk_usage.device_available"),
                event.numbers.get("device_disk_usage.ditto_total"),
                event.replication,
                event.numbers,
            )
            change = RowsAppended(event.seq, (row,))
        elif isinstance(event, HistoryPruned):
            change = RowsRemoved(event.oldest_seq)
        elif isinstance(event, DocumentStatesChanged):
            change = RowsChanged(event.seqs, event.state)
        else:
            return
        for listener in list(self._listeners):
            listener(change)

    async def timestamps(self, indices: Sequence[int]) -> dict[int, int]:
        return await self._store.timestamps(indices)

    async def marker_columns(self, first_ms: int, last_ms: int, buckets: int) -> list[tuple[str, int, int]]:
        return await self._store.marker_columns(first_ms, last_ms, buckets)
