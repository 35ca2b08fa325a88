"""The timeline: one row per collected document, newest on top, read lazily from a history source.

`TimelineModel` adapts a Qt-free `inspector.history.timeline.Timeline` (which pages,
caches and filters) to Qt's item model: it owns no rows, it translates. The
`TimelinePanel` is the filter box, its status and the view.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

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
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from inspector.core.clock import Clock
from inspector.core.events import Replication
from inspector.core.timestamps import format_timestamp
from inspector.gui.formatting import format_bytes, format_local_time, format_relative, format_signed_bytes
from inspector.gui.tasks import TaskSet
from inspector.history.source import HistoryRow, HistorySource
from inspector.history.timeline import FLUSH_DELAY, Timeline

__all__ = [
    "INDEX_ROLE",
    "LOADING",
    "Column",
    "TimelineModel",
    "TimelinePanel",
    "TimelineView",
    "describe_change",
]

DISK_CHANGE_THRESHOLD = 1024 * 1024
"""Smaller changes of the device's free space are noise, not news."""
STORE_CHANGE_THRESHOLD = 256 * 1024
"""The peer's own directory grows by a WAL page or two per collection: only larger changes are news."""
FILTER_DELAY_MS = 250
LOADING = "…"
UNREADABLE = "cannot be read"
INDEX_ROLE = Qt.ItemDataRole.UserRole + 1
"""The row's history index (available before its page is loaded)."""
TIME_ROLE = Qt.ItemDataRole.UserRole + 2
"""The row's ``last_updated_at`` in ms (None while loading)."""

_Index = QModelIndex | QPersistentModelIndex


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
_ROLES = frozenset(
    {
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.ToolTipRole,
        Qt.ItemDataRole.TextAlignmentRole,
        INDEX_ROLE,
        TIME_ROLE,
    }
)


def describe_change(row: HistoryRow, previous: HistoryRow | None) -> str:
    """What changed since the previous document: ``metadata``, ``disk free −3 MiB``, ``store +1 MiB``."""
    if previous is None:
        return "first document"
    changes = []
    if row.metadata_key != previous.metadata_key:
        changes.append("metadata")
    if row.device_available is not None and previous.device_available is not None:
        delta = int(row.device_available - previous.device_available)
        if abs(delta) >= DISK_CHANGE_THRESHOLD:
            changes.append(f"disk free {format_signed_bytes(delta)}")
    if row.ditto_total is not None and previous.ditto_total is not None:
        delta = int(row.ditto_total - previous.ditto_total)
        if abs(delta) >= STORE_CHANGE_THRESHOLD:
            changes.append(f"store {format_signed_bytes(delta)}")
    return " · ".join(changes) if changes else "no change"


class TimelineModel(QAbstractTableModel):
    """The rows of a `Timeline`, for a Qt view (see the module doc)."""

    countsChanged = Signal()
    """The number of documents or of matches changed."""
    searchingChanged = Signal(bool)
    readFailed = Signal(object)
    """A read of the history failed (the error), or reads work again (None)."""

    def __init__(
        self,
        source: HistorySource,
        tasks: TaskSet,
        clock: Clock,
        parent: QObject | None = None,
        *,
        flush_delay: float = FLUSH_DELAY,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._now = clock.time()
        self._replication_column = source.has_replication
        self.timeline = Timeline(source, tasks.spawn, self, flush_delay=flush_delay)

    # --- the timeline's listener ---------------------------------------------------------------

    def about_to_insert(self, first: int, last: int) -> None:
        self.beginInsertRows(QModelIndex(), first, last)

    def inserted(self) -> None:
        self.endInsertRows()

    def about_to_remove(self, first: int, last: int) -> None:
        self.beginRemoveRows(QModelIndex(), first, last)

    def removed(self) -> None:
        self.endRemoveRows()

    def about_to_reset(self) -> None:
        self.beginResetModel()

    def reset(self) -> None:
        self.endResetModel()

    def changed(self, first: int, last: int) -> None:
        self.dataChanged.emit(self.index(first, 0), self.index(last, self.columnCount() - 1))

    def counts_changed(self) -> None:
        self.countsChanged.emit()

    def searching_changed(self, searching: bool) -> None:
        self.searchingChanged.emit(searching)

    def failed(self, error: Exception | None) -> None:
        self.readFailed.emit(error)
        if self.rowCount():
            self.changed(0, self.rowCount() - 1)

    # --- for the window ------------------------------------------------------------------------

    def start(self) -> None:
        self.timeline.start()

    def shutdown(self) -> None:
        self.timeline.close()

    def refresh_times(self) -> None:
        """Move "3 min ago" forward: repaint the time column."""
        self._now = self._clock.time()
        if self.rowCount():
            self.dataChanged.emit(
                self.index(0, Column.TIME),
                self.index(self.rowCount() - 1, Column.TIME),
                [Qt.ItemDataRole.DisplayRole],
            )

    # --- Qt's model interface ------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self.timeline.row_count

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        return len(Column) if self._replication_column else len(Column) - 1

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < self.columnCount():
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
        if not 0 <= row < self.rowCount() or not 0 <= index.column() < self.columnCount():
            return None
        column = Column(index.column())
        if role == INDEX_ROLE:
            return self.timeline.index_at(row)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column == Column.SIZE:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        found = self.timeline.row(row)
        if found is None:
            if self.timeline.is_row_unreadable(row):
                if role == Qt.ItemDataRole.DisplayRole:
                    return UNREADABLE if column == Column.TIME else ""
                return str(self.timeline.error or "") if role == Qt.ItemDataRole.ToolTipRole else None
            if role == Qt.ItemDataRole.DisplayRole:
                return LOADING if column == Column.TIME else ""
            return None
        item, previous = found
        if role == TIME_ROLE:
            return item.ts_ms
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(column, item, previous)
        return self._tooltip(column, item)

    def _display(self, column: Column, item: HistoryRow, previous: HistoryRow | None) -> str:
        if column == Column.TIME:
            moment = item.ts_ms / 1000
            return f"{format_local_time(moment)} · {format_relative(moment, self._now)}"
        if column == Column.SIZE:
            return format_bytes(item.size)
        if column == Column.CHANGE:
            if previous is None and self.timeline.is_previous_gone(item):
                return "—"  # the previous document is no longer kept
            return describe_change(item, previous)
        return _REPLICATION[item.replication][0] if item.replication is not None else ""

    def _tooltip(self, column: Column, item: HistoryRow) -> str:
        if column == Column.TIME:
            return f"Document #{item.index}, last_updated_at {format_timestamp(item.ts_ms)}"
        if column == Column.SIZE:
            return f"{item.size:,} bytes"
        if column == Column.REPLICATION and item.replication is not None:
            return _REPLICATION[item.replication][1]
        return ""


class TimelineView(QTableView):
    """The timeline's table; while it has no rows it says why, in the middle of its viewport."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
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


class TimelinePanel(QWidget):
    """``timelineFilter``, its status, and ``timelineView`` over a history source.

    ``currentIndexChanged(index)`` says which history index the user selected.
    ``empty_text`` says what an empty, unfiltered timeline should tell the user.
    """

    currentIndexChanged = Signal(int)

    def __init__(
        self,
        source: HistorySource,
        tasks: TaskSet,
        clock: Clock,
        empty_text: Callable[[], str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("timelinePanel")
        self._empty_text = empty_text
        self._selected: int | None = None
        self.model = TimelineModel(source, tasks, clock, self)
        self.model.countsChanged.connect(self.update_status)
        self.model.searchingChanged.connect(lambda _searching: self.update_status())
        self.model.readFailed.connect(lambda _error: self.update_status())

        title = QLabel("&Timeline")
        title.setObjectName("panelTitle")
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("timelineFilter")
        self.filter_edit.setPlaceholderText("Filter: text anywhere in a document's JSON (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAccessibleName("Timeline filter")
        self.filter_edit.setAccessibleDescription(
            "Shows only the documents whose JSON contains this text, metadata included"
        )
        self.filter_status = QLabel()
        self.filter_status.setObjectName("timelineFilterStatus")
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self.apply_filter)
        self.filter_edit.textChanged.connect(lambda _text: self._filter_timer.start())
        self.filter_edit.returnPressed.connect(self.apply_filter)

        view = self.view = TimelineView()
        view.setObjectName("timelineView")
        title.setBuddy(view)
        view.setAccessibleName("Timeline of collected documents")
        view.setModel(self.model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setWordWrap(False)
        view.setShowGrid(False)
        view.setAlternatingRowColors(True)
        view.setCornerButtonEnabled(False)
        view.setTextElideMode(Qt.TextElideMode.ElideRight)
        view.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        metrics = view.fontMetrics()
        rows = view.verticalHeader()
        rows.hide()
        # Uniform row heights: a million rows cost nothing to lay out.
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(metrics.height() + 8)
        header = view.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)  # never ResizeToContents
        header.setStretchLastSection(True)
        widths = {
            Column.TIME: "2026-11-26 05:38:12 · 59 min ago",
            Column.SIZE: "999.9 KiB",
            Column.CHANGE: "metadata · disk free −999.9 MiB",
        }
        for column, sample in widths.items():
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 28)
        view.selectionModel().currentRowChanged.connect(self._on_current_row)
        # After setModel: the selection model clears itself on reset first, then we reselect.
        self.model.modelReset.connect(self._restore_selection)

        top = QHBoxLayout()
        top.addWidget(title)
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.filter_status)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(view, 1)

    @property
    def timeline(self) -> Timeline:
        return self.model.timeline

    def start(self) -> None:
        self.model.start()
        self.update_status()

    def shutdown(self) -> None:
        self._filter_timer.stop()
        self.model.shutdown()

    def apply_filter(self) -> None:
        self._filter_timer.stop()
        self.timeline.set_filter(self.filter_edit.text())
        self.update_status()

    def focus_filter(self) -> None:
        self.filter_edit.setFocus()
        self.filter_edit.selectAll()

    def select_index(self, index: int) -> bool:
        """Select the row of history ``index`` (scrolling to it); False if no row shows it."""
        row = self.timeline.row_of(index)
        if row is None:
            return False
        model_index = self.model.index(row, 0)
        selection = self.view.selectionModel()
        selection.setCurrentIndex(
            model_index,
            selection.SelectionFlag.ClearAndSelect | selection.SelectionFlag.Rows,
        )
        self.view.scrollTo(model_index)
        return True

    @property
    def selected_index(self) -> int | None:
        return self._selected

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():  # a reset clears the selection: keep what was selected
            self._selected = current.data(INDEX_ROLE)
            if self._selected is not None:
                self.currentIndexChanged.emit(self._selected)

    def _restore_selection(self) -> None:
        if self._selected is not None:
            self.select_index(self._selected)

    def update_status(self) -> None:
        timeline = self.timeline
        if timeline.error is not None:
            self.filter_status.setText("the history cannot be read")
            self.filter_status.setToolTip(str(timeline.error))
        elif timeline.searching:
            self.filter_status.setText("Searching…")
        elif timeline.match_count is None:
            self.filter_status.setText("")
        elif timeline.matches_truncated:
            self.filter_status.setText(f"first {timeline.match_count:,} matches")
        else:
            count = timeline.match_count
            self.filter_status.setText(f"{count:,} match" + ("es" if count != 1 else ""))
        if timeline.error is not None and not timeline.loaded:
            text = f"The history cannot be read.\n{timeline.error}"
        elif not timeline.loaded:
            text = "Reading the history…"
        elif timeline.searching:
            text = "Searching the documents…"
        elif timeline.match_count is not None:
            text = f"No document contains “{timeline.filter_text}”."
        else:
            text = self._empty_text()
        self.view.set_placeholder_text(text)
