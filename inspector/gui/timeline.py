"""The timeline: one row per collected document, newest on top, read lazily from the store.

`TimelineModel` never holds the history. The store numbers its rows with ``seq``
without gaps, so row *i* of the newest-first timeline is ``newest - i``: the model
keeps only the bounds, and reads the rows a view shows in pages of `PAGE_SIZE`
seqs (on the store's thread), with an LRU cache of pages. A row whose page is not
loaded yet shows `LOADING`; the page is requested, and ``dataChanged`` repaints the
rows when it arrives.

Collected documents arrive as events; they are applied in batches (one
``beginInsertRows`` per batch, flushed by a timer) after re-reading the bounds, which
also removes the rows retention deleted at the bottom.

The filter searches document content on the store's thread (``store.search``) and
keeps the matching seqs, newest first, inside the model (a proxy model over a live
million-row model is far slower). New documents are matched in Python the way the
store matches them: in their compact JSON, ASCII letters case-insensitively (SQLite's
``LIKE``).
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable
from enum import IntEnum
from typing import Any

import orjson
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QTableView, QWidget

from inspector.core.collector import format_timestamp
from inspector.core.store import Replication, Store, TimelineRow
from inspector.gui.formatting import format_bytes, format_local_time, format_relative, format_signed_bytes
from inspector.gui.tasks import TaskSet

__all__ = [
    "LOADING",
    "PAGE_SIZE",
    "SEARCH_LIMIT",
    "SEQ_ROLE",
    "Column",
    "TimelineModel",
    "TimelineView",
    "describe_change",
    "matches_filter",
]

PAGE_SIZE = 128
"""Seqs read from the store at once (a screen is about 40 rows)."""
MAX_CACHED_PAGES = 128
SEARCH_LIMIT = 50_000
"""Most matches a filter keeps (newest first); the filter status says when it was reached."""
FLUSH_DELAY_MS = 100
"""Collected documents arriving within this time are inserted as one batch."""
DISK_CHANGE_THRESHOLD = 1024 * 1024
"""Smaller changes of the device's free space are noise, not news."""
STORE_CHANGE_THRESHOLD = 256 * 1024
"""The peer's own directory grows by a WAL page or two per collection: only larger changes are news."""
LOADING = "…"
SEQ_ROLE = Qt.ItemDataRole.UserRole + 1
"""The row's seq (available before its page is loaded)."""

_Index = QModelIndex | QPersistentModelIndex
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class Column(IntEnum):
    TIME = 0
    SIZE = 1
    CHANGE = 2
    REPLICATION = 3


_HEADERS = {
    Column.TIME: "Collected",
    Column.SIZE: "Size",
    Column.CHANGE: "Change since previous",
    Column.REPLICATION: "Big Peer",
}
_HEADER_TIPS = {
    Column.TIME: "When the document was collected (local time)",
    Column.SIZE: "Size of the document as compact JSON, metadata included",
    Column.CHANGE: "What differs from the document collected before it",
    Column.REPLICATION: "Where the document stands with the Big Peer",
}
_REPLICATION = {
    Replication.LOCAL_ONLY: (
        "local only",
        "Collected while the sync scope was “Local peer only”: it stays here",
    ),
    Replication.QUEUED: ("queued", "Waiting to be sent to the Big Peer"),
    Replication.ACKNOWLEDGED: ("sent", "The Big Peer acknowledged it"),
    Replication.DROPPED: ("dropped", "Never sent: the queue overflowed or the scope went back to local"),
}


def describe_change(row: TimelineRow, previous: TimelineRow | None) -> str:
    """What changed since the previous document: ``metadata``, ``disk free −3 MiB``, ``store +1 MiB``."""
    if previous is None:
        return "first document"
    changes = []
    if row.metadata_hash != previous.metadata_hash:
        changes.append("metadata")
    if row.device_available is not None and previous.device_available is not None:
        delta = row.device_available - previous.device_available
        if abs(delta) >= DISK_CHANGE_THRESHOLD:
            changes.append(f"disk free {format_signed_bytes(delta)}")
    if row.ditto_total is not None and previous.ditto_total is not None:
        delta = row.ditto_total - previous.ditto_total
        if abs(delta) >= STORE_CHANGE_THRESHOLD:
            changes.append(f"store {format_signed_bytes(delta)}")
    return " · ".join(changes) if changes else "no change"


def matches_filter(document: dict[str, Any], needle: str) -> bool:
    """Whether the store's search would find ``needle`` in this document (see the module doc)."""
    needle = needle.translate(_ASCII_LOWER)
    body = {key: value for key, value in document.items() if key != "metadata"}
    if needle in orjson.dumps(body).decode("utf-8").translate(_ASCII_LOWER):
        return True
    return "metadata" in document and needle in orjson.dumps(document["metadata"]).decode("utf-8").translate(
        _ASCII_LOWER
    )


def _read_pages(store: Store, pages: Iterable[int]) -> dict[int, dict[int, TimelineRow]]:
    """On the store thread: each page's rows by seq, with the row before the page's first."""
    out = {}
    for page in pages:
        first = page * PAGE_SIZE
        rows = store.timeline_rows(first - 1, first + PAGE_SIZE - 1)
        out[page] = {row.seq: row for row in rows}
    return out


def _search(store: Store, needle: str, limit: int) -> tuple[list[int], tuple[int, int]]:
    """On the store thread: the matches and the bounds they were taken against (one snapshot)."""
    return store.search(needle, limit), store.bounds()


class _Page:
    __slots__ = ("newest", "rows", "stale")

    def __init__(self, rows: dict[int, TimelineRow], newest: int) -> None:
        self.rows = rows
        self.newest = newest  # the history's newest seq when read: seqs above it were not there yet
        self.stale = False  # shown, but to be read again (replication states moved)


class TimelineModel(QAbstractTableModel):
    """The collected documents of one peer, newest first (see the module doc)."""

    countsChanged = Signal()
    """The number of documents or of matches changed."""
    searchingChanged = Signal(bool)

    def __init__(self, store: Store, tasks: TaskSet, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._tasks = tasks
        self._oldest = 1
        self._newest = 0  # empty while newest < oldest
        self._known = False  # bounds read at least once
        self._filter = ""
        self._matches: list[int] | None = None  # seqs, newest first, while a filter is set
        self._matches_truncated = False
        self._pending_matches: list[int] = []  # seqs of new documents that match the filter
        self._search_version = 0
        self._searching = False
        self._pages: OrderedDict[int, _Page] = OrderedDict()
        self._wanted: set[int] = set()
        self._loading: set[int] = set()
        self._refresh_running = False
        self._refresh_again = False
        self._now = time.time()
        self.pages_read = 0  # for tests and benchmarks: how much was read from the store

        self._fetch_timer = QTimer(self)
        self._fetch_timer.setSingleShot(True)
        self._fetch_timer.setInterval(0)
        self._fetch_timer.timeout.connect(self._start_fetch)
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_DELAY_MS)
        self._flush_timer.timeout.connect(self.refresh)

    # --- what the window asks -----------------------------------------------------------------------

    @property
    def total_count(self) -> int:
        """Documents in the stored history."""
        return max(0, self._newest - self._oldest + 1)

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def match_count(self) -> int | None:
        """Matches of the filter (None without a filter)."""
        return None if self._matches is None else len(self._matches)

    @property
    def matches_truncated(self) -> bool:
        """Whether the search stopped at `SEARCH_LIMIT` matches."""
        return self._matches_truncated

    @property
    def searching(self) -> bool:
        return self._searching

    @property
    def loaded(self) -> bool:
        """Whether the bounds were read (the first refresh ended)."""
        return self._known

    @property
    def cached_row_count(self) -> int:
        return sum(len(page.rows) for page in self._pages.values())

    def seq_at(self, row: int) -> int:
        """The seq shown on ``row``."""
        if self._matches is not None:
            return self._matches[row]
        return self._newest - row

    def row_of(self, seq: int) -> int | None:
        """The row showing ``seq``, or None."""
        if self._matches is not None:
            # _matches is in descending order: search its negation.
            negated_index = bisect_left(_Descending(self._matches), -seq)
            if negated_index < len(self._matches) and self._matches[negated_index] == seq:
                return negated_index
            return None
        if self._oldest <= seq <= self._newest:
            return self._newest - seq
        return None

    def row_data(self, row: int) -> TimelineRow | None:
        """The loaded row (None while its page is loading)."""
        found = self._lookup(self.seq_at(row))
        return None if found is None else found[0]

    def is_row_loaded(self, row: int) -> bool:
        return self._lookup(self.seq_at(row), request=False) is not None

    def shutdown(self) -> None:
        """Stop the timers (the window is closing); its TaskSet cancels the reads."""
        self._fetch_timer.stop()
        self._flush_timer.stop()

    # --- Qt's model interface -----------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        if self._matches is not None:
            return len(self._matches)
        return max(0, self._newest - self._oldest + 1)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(Column):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[Column(section)]
        if role == Qt.ItemDataRole.ToolTipRole:
            return _HEADER_TIPS[Column(section)]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in _ROLES:
            return None
        row = index.row()
        if not 0 <= row < self.rowCount():
            return None
        column = Column(index.column())
        seq = self.seq_at(row)
        if role == SEQ_ROLE:
            return seq
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column == Column.SIZE:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        found = self._lookup(seq)
        if found is None:
            if role == Qt.ItemDataRole.DisplayRole:
                return LOADING if column == Column.TIME else ""
            return None
        item, previous = found
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(column, item, previous)
        return self._tooltip(column, item)

    def _display(self, column: Column, item: TimelineRow, previous: TimelineRow | None) -> str:
        if column == Column.TIME:
            moment = item.ts_ms / 1000
            return f"{format_local_time(moment)} · {format_relative(moment, self._now)}"
        if column == Column.SIZE:
            return format_bytes(item.size)
        if column == Column.CHANGE:
            if previous is None and item.seq > 1:
                return "—"  # the previous document is no longer kept
            return describe_change(item, previous)
        return _REPLICATION[item.replication][0]

    def _tooltip(self, column: Column, item: TimelineRow) -> str:
        if column == Column.TIME:
            return f"Document #{item.seq}, last_updated_at {format_timestamp(item.ts_ms)}"
        if column == Column.SIZE:
            return f"{item.size:,} bytes"
        if column == Column.REPLICATION:
            return _REPLICATION[item.replication][1]
        return ""

    # --- pages --------------------------------------------------------------------------------------

    def _lookup(self, seq: int, request: bool = True) -> tuple[TimelineRow, TimelineRow | None] | None:
        number = seq // PAGE_SIZE
        page = self._pages.get(number)
        if page is None or seq not in page.rows:
            if page is not None and seq <= page.newest:
                return None  # deleted by retention: the next refresh removes the row
            if request:
                self._request(number)
            return None
        self._pages.move_to_end(number)
        if page.stale and request:
            self._request(number)
        return page.rows[seq], page.rows.get(seq - 1)  # a page is read with the row before it

    def _request(self, page: int) -> None:
        if page in self._loading or page in self._wanted:
            return
        self._wanted.add(page)
        if not self._fetch_timer.isActive():
            self._fetch_timer.start()

    def _start_fetch(self) -> None:
        pages = sorted(self._wanted - self._loading)
        self._wanted.clear()
        if pages:
            self._loading.update(pages)
            self._tasks.spawn(self._fetch(pages), "timeline: read rows")

    async def _fetch(self, pages: list[int]) -> None:
        try:
            newest_before = self._newest
            result = await self._store.run(_read_pages, self._store, pages)
        finally:
            self._loading.difference_update(pages)
        self.pages_read += len(result)
        for number, rows in result.items():
            self._pages[number] = _Page(rows, max(newest_before, max(rows, default=0)))
            self._pages.move_to_end(number)
        while len(self._pages) > MAX_CACHED_PAGES:
            self._pages.popitem(last=False)
        self._emit_pages_changed(pages)

    def _rows_of_seqs(self, low: int, high: int) -> tuple[int, int] | None:
        """The (top, bottom) rows showing seqs ``low..high``, or None."""
        if self._matches is None:
            low, high = max(low, self._oldest), min(high, self._newest)
            return (self._newest - high, self._newest - low) if low <= high else None
        negated = _Descending(self._matches)
        top, bottom = bisect_left(negated, -high), bisect_right(negated, -low) - 1
        return (top, bottom) if top <= bottom else None

    def _emit_pages_changed(self, pages: list[int]) -> None:
        spans = [self._rows_of_seqs(number * PAGE_SIZE, (number + 1) * PAGE_SIZE - 1) for number in pages]
        rows = [row for span in spans if span is not None for row in span]
        if rows:
            self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), len(Column) - 1))

    def mark_replication_changed(self) -> None:
        """Replication states of stored documents moved: read the shown pages again."""
        for page in self._pages.values():
            page.stale = True
        if self.rowCount():
            self.dataChanged.emit(
                self.index(0, Column.REPLICATION), self.index(self.rowCount() - 1, Column.REPLICATION)
            )

    def refresh_times(self, now: float | None = None) -> None:
        """Move "3 min ago" forward: repaint the time column."""
        self._now = time.time() if now is None else now
        if self.rowCount():
            self.dataChanged.emit(
                self.index(0, Column.TIME),
                self.index(self.rowCount() - 1, Column.TIME),
                [Qt.ItemDataRole.DisplayRole],
            )

    # --- new documents and retention ----------------------------------------------------------------

    def on_document_collected(self, seq: int, document: dict[str, Any]) -> None:
        """A document was stored: insert it with the next batch."""
        if self._filter and matches_filter(document, self._filter):
            self._pending_matches.append(seq)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def refresh(self) -> None:
        """Re-read the bounds: insert new rows at the top, drop the ones retention deleted."""
        if self._refresh_running:
            self._refresh_again = True
            return
        self._refresh_running = True
        self._tasks.spawn(self._refresh(), "timeline: refresh")

    async def _refresh(self) -> None:
        try:
            while True:
                self._refresh_again = False
                oldest, newest = await self._store.run(self._store.bounds)
                self._apply_bounds(oldest, newest)
                if not self._refresh_again:
                    break
        finally:
            self._refresh_running = False

    def _apply_bounds(self, oldest: int, newest: int) -> None:
        if newest == 0:  # empty history
            oldest, newest = 1, 0
        first_time = not self._known
        self._known = True
        if first_time or newest < self._newest:
            # First read, or a history that went backwards (never in practice): start over.
            self.beginResetModel()
            self._oldest, self._newest = oldest, newest
            self._pages.clear()
            self.endResetModel()
            self.countsChanged.emit()
            return
        changed = False
        if newest > self._newest:
            changed = True
            if self._matches is None:
                empty = self._newest < self._oldest
                self.beginInsertRows(QModelIndex(), 0, newest - (oldest if empty else self._newest + 1))
                self._newest = newest
                if empty:
                    self._oldest = oldest
                self.endInsertRows()
            else:
                new = sorted((s for s in self._pending_matches if self._newest < s <= newest), reverse=True)
                self._pending_matches = [s for s in self._pending_matches if s > newest]
                self._newest = newest
                if new:
                    self.beginInsertRows(QModelIndex(), 0, len(new) - 1)
                    self._matches[:0] = new
                    self.endInsertRows()
        if oldest > self._oldest:
            changed = True
            if self._matches is None:
                gone = min(oldest, self._newest + 1) - self._oldest
                count = self.rowCount()
                self.beginRemoveRows(QModelIndex(), count - gone, count - 1)
                self._oldest = oldest
                self.endRemoveRows()
            else:
                self._oldest = oldest
                keep = bisect_left(_Descending(self._matches), -oldest + 1)
                if keep < len(self._matches):
                    self.beginRemoveRows(QModelIndex(), keep, len(self._matches) - 1)
                    del self._matches[keep:]
                    self.endRemoveRows()
            for number in [n for n in self._pages if (n + 1) * PAGE_SIZE <= oldest - 1]:
                del self._pages[number]
        if changed:
            self.countsChanged.emit()

    # --- the filter ---------------------------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Show only documents whose JSON contains ``text`` (ASCII case-insensitively); "" shows all."""
        text = text.strip()
        if text == self._filter:
            return
        self._filter = text
        self._search_version += 1
        self._pending_matches.clear()
        if not text:
            self._set_searching(False)
            if self._matches is not None:
                self.beginResetModel()
                self._matches = None
                self._matches_truncated = False
                self.endResetModel()
                self.countsChanged.emit()
            return
        self._set_searching(True)
        self._tasks.spawn(self._search(text, self._search_version), "timeline: search")

    async def _search(self, needle: str, version: int) -> None:
        try:
            seqs, (oldest, newest) = await self._store.run(_search, self._store, needle, SEARCH_LIMIT)
        finally:
            if version == self._search_version:
                self._set_searching(False)
        if version != self._search_version:
            return  # a newer filter replaced this one
        # The matches and bounds are one snapshot; documents stored since are pending and
        # matched, and the next refresh inserts them.
        moved_on = newest < self._newest
        self.beginResetModel()
        self._oldest, self._newest = (oldest, newest) if newest else (1, 0)
        self._known = True
        self._pending_matches = [s for s in self._pending_matches if s > newest]
        self._matches = seqs
        self._matches_truncated = len(seqs) >= SEARCH_LIMIT
        self.endResetModel()
        self.countsChanged.emit()
        if moved_on or self._pending_matches:
            self.refresh()

    def _set_searching(self, searching: bool) -> None:
        if searching != self._searching:
            self._searching = searching
            self.searchingChanged.emit(searching)


_ROLES = frozenset(
    {Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.TextAlignmentRole, SEQ_ROLE}
)


class _Descending:
    """A read-only view of a descending list as its negation, ascending, for `bisect`."""

    __slots__ = ("_items",)

    def __init__(self, items: list[int]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> int:
        return -self._items[index]


class TimelineView(QTableView):
    """The timeline's table; while it has no rows it says why, in the middle of its viewport."""

    def __init__(self, parent: QWidget | None = None, **properties: Any) -> None:
        super().__init__(parent, **properties)
        self._placeholder = ""

    def placeholder_text(self) -> str:
        return self._placeholder

    def set_placeholder_text(self, text: str) -> None:
        if text != self._placeholder:
            self._placeholder = text
            self.viewport().update()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        model = self.model()
        if self._placeholder and model is not None and model.rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            area = self.viewport().rect().adjusted(24, 24, -24, -24)
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            painter.end()
