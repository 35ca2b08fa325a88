"""The visual history: numeric fields of a device's documents over time (``historyPlot``).

`HistoryPlotPanel` reads a `HistorySource` (never a store), so the same panel shows
the local peer or a device at a Big Peer. What it holds is what it draws: for each
chosen field, the minimum and maximum per pixel column of the visible time range
(plus a margin each side, so a short pan needs no read), as the source bucketed
them (`HistorySource.series`). It never holds the documents themselves.

* Zooming, panning and resizing re-read after `REQUERY_DELAY_MS`, and only when the
  view left what was read or needs a finer (or much coarser) resolution.
* New documents arrive as `RowsAppended` with their numeric fields: the newest point
  is appended without a read, and a view that showed the newest document keeps
  showing it (it grows, or slides when zoomed in). A metadata field repeats its last
  value until the document's metadata differs; then the range is read again.
* Values are plotted as stored. Bytes go on one axis (binary units), other numbers
  on another (`inspector.gui.plot_axes`); each curve is a `PlotDataItem` named by
  its field path.
* Markers show metadata changes and Big Peer connection events; `link_timeline`
  ties the plot to a `TimelinePanel` both ways (the selected document's time is a
  cursor; a click selects the nearest document; the filter dims the time without
  matches; "Show in timeline" selects the newest document in view).

The chosen fields are kept in the window's `QSettings` under `SETTINGS_KEY`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
import shiboken6
from pyqtgraph.exporters import ImageExporter
from PySide6.QtCore import QEvent, QObject, QSettings, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWidgetAction,
)

from inspector.gui.formatting import format_span
from inspector.gui.highlighting import is_dark_palette
from inspector.gui.plot_axes import BYTES, NUMBER, TimeAxis, UnitAxis, unit_of
from inspector.gui.plot_items import MARKER_KINDS, FilterShade, LegendRow, MarkerItem, min_max_polyline
from inspector.gui.plot_svg import plot_svg
from inspector.gui.tasks import TaskSet
from inspector.gui.timeline import TIME_ROLE
from inspector.history.source import (
    HistoryChange,
    HistoryRow,
    HistorySource,
    RowsAppended,
    RowsRemoved,
    SourceReset,
)

if TYPE_CHECKING:
    from inspector.gui.timeline import TimelinePanel

__all__ = [
    "DEFAULT_SERIES",
    "REQUERY_DELAY_MS",
    "SETTINGS_KEY",
    "HistoryPlotPanel",
    "PlotColours",
    "SeriesPicker",
    "format_span",
    "plot_colours",
]

DEFAULT_SERIES = ("device_disk_usage.device_available", "device_disk_usage.ditto_store")
SETTINGS_KEY = "plot/series"
REQUERY_DELAY_MS = 60
"""Zooming, panning and resizing settle for this long before the range is read again."""
MARGIN = 0.1
"""Read this fraction of the visible span beyond each side, so a short pan needs no read."""
MAX_BUCKETS = 8192
COARSEST_READ = 1.5
FINEST_READ = 0.4
"""What was read serves while its buckets are 0.4 to 1.5 pixels wide; then the range is read again."""
MIN_SPAN_S = 60.0
"""The narrowest time range the plot zooms to (seconds)."""
MIN_BYTES_RANGE = 4096.0
"""A flat bytes curve still gets a readable axis (not one that counts single bytes)."""
LEGEND_POINT_SIZE = 9.0
PROGRESS_AFTER_MS = 150
"""A read that lasts this long shows its progress (or that it is busy) in the tool row."""

# (light ground, dark ground): Matplotlib's tab10, and a lighter set that reads on near-black.
_CURVE_COLOURS = (
    ("#1f77b4", "#6cb6ff"),
    ("#e8710a", "#ffa657"),
    ("#2ca02c", "#7ee787"),
    ("#d62728", "#ff7b72"),
    ("#9467bd", "#d2a8ff"),
    ("#17becf", "#56d4dd"),
    ("#8c564b", "#e3b341"),
    ("#e377c2", "#f778ba"),
)
_UNIT_TIPS = {BYTES: "Bytes: read in KiB, MiB, GiB on the bytes axis", NUMBER: "A number"}
_MARKER_COLOURS = {
    "metadata": ("#8250df", "#bc8cff"),
    "connected": ("#1a7f37", "#3fb950"),
    "disconnected": ("#9a6700", "#d29922"),
    "error": ("#cf222e", "#f85149"),
}


@dataclass(frozen=True)
class PlotColours:
    """What the plot paints with, for one palette."""

    background: QColor
    foreground: QColor
    grid_alpha: float
    curves: tuple[QColor, ...]
    markers: dict[str, QColor]
    cursor: QColor
    shade: QColor


def plot_colours(palette: QPalette) -> PlotColours:
    """The plot's colours for ``palette``: its ground and text, and curve colours that read on it."""
    dark = is_dark_palette(palette)
    pick = 1 if dark else 0
    background = palette.color(QPalette.ColorRole.Base)
    shade = QColor(background)
    shade.setAlpha(185)
    cursor = palette.color(QPalette.ColorRole.Text)
    cursor.setAlpha(190)
    return PlotColours(
        background=background,
        foreground=palette.color(QPalette.ColorRole.Text),
        grid_alpha=0.22 if dark else 0.16,
        curves=tuple(QColor(pair[pick]) for pair in _CURVE_COLOURS),
        markers={kind: QColor(_MARKER_COLOURS[kind][pick]) for kind in MARKER_KINDS},
        cursor=cursor,
        shade=shade,
    )


def _load_series(settings: QSettings) -> list[str]:
    saved = settings.value(SETTINGS_KEY)
    if isinstance(saved, str):
        with contextlib.suppress(ValueError):
            paths = json.loads(saved)
            if isinstance(paths, list) and all(isinstance(p, str) for p in paths):
                return list(dict.fromkeys(paths))
    return list(DEFAULT_SERIES)


class SeriesPicker(QWidget):
    """The list of numeric field paths with a check box each, and a filter over it."""

    toggled = Signal(str, bool)
    """A path was checked (True) or unchecked (False) by the user."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("historySeriesPicker")
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("historySeriesFilter")
        self.filter_edit.setPlaceholderText("Filter fields")
        self.filter_edit.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setObjectName("historySeriesList")
        self.list.setAccessibleName("Fields to plot")
        self.list.setMinimumSize(340, 260)
        self.list.setUniformItemSizes(True)
        self.filter_edit.textChanged.connect(self._apply_filter)
        self.list.itemChanged.connect(self._on_item_changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.list)

    def set_paths(self, paths: Sequence[str], chosen: Sequence[str]) -> None:
        """Offer ``paths`` (and any chosen path missing from them), checking those in ``chosen``."""
        chosen_set = set(chosen)
        offered = list(dict.fromkeys([*paths, *chosen]))
        with QSignalBlocker(self.list):
            self.list.clear()
            for path in offered:
                item = QListWidgetItem(path)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if path in chosen_set else Qt.CheckState.Unchecked)
                item.setToolTip(
                    "Bytes: read on the axis in KiB, MiB, GiB" if unit_of(path) == BYTES else "A number"
                )
                self.list.addItem(item)
        self._apply_filter(self.filter_edit.text())

    def item(self, path: str) -> QListWidgetItem | None:
        found = self.list.findItems(path, Qt.MatchFlag.MatchExactly)
        return found[0] if found else None

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for row in range(self.list.count()):
            item = self.list.item(row)
            item.setHidden(bool(needle) and needle not in item.text().lower())

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        self.toggled.emit(item.text(), item.checkState() == Qt.CheckState.Checked)


class HistoryPlotPanel(QWidget):
    """The plot (``historyPlot``, a `pyqtgraph.PlotWidget`) with its tool row, over ``source``.

    ``documentClicked(index)``: the user clicked the plot; ``index`` is the nearest
    document (among the filter's matches when linked to a filtered timeline).
    ``dataChanged``: the curves were redrawn from a read (tests and benchmarks wait on it).
    """

    documentClicked = Signal(int)
    seriesChanged = Signal()
    dataChanged = Signal()

    def __init__(
        self, source: HistorySource, tasks: TaskSet, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("historyPlotPanel")
        self._source = source
        self._tasks = tasks
        self._settings = settings
        self._series = _load_series(settings)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._curve_box: dict[str, pg.ViewBox] = {}
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._oldest_ms: int | None = None
        self._newest_ms: int | None = None
        self._coverage: tuple[float, float, float] | None = None  # first ms, last ms, ms per bucket
        self._per_pixel = 0.0  # documents per pixel column in what was read last
        self._last_metadata_key: bytes | None = None
        self._ready = False
        self._closed = False
        self._query_task: asyncio.Task[None] | None = None
        self._query_again = False
        self._timeline: TimelinePanel | None = None
        self._match_state: tuple[str, int, int] | None = None
        self._match_times: dict[int, int] = {}
        self._match_version = 0
        self._cursor_version = 0
        self.colours = plot_colours(self.palette())
        self.query_count = 0
        self.failure: Exception | None = None
        """Why the last read failed (None once a read succeeds again)."""
        """How many reads of the series were made (for tests and benchmarks)."""

        self._build_plot()
        self._build_tool_row()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self._tool_row)
        layout.addWidget(self.plot, 1)

        self._requery = QTimer(self)
        self._requery.setObjectName("historyPlotRequery")
        self._requery.setSingleShot(True)
        self._requery.setInterval(REQUERY_DELAY_MS)
        self._requery.timeout.connect(self._start_query)
        self._reveal = QTimer(self)
        self._reveal.setObjectName("historyPlotProgressReveal")
        self._reveal.setSingleShot(True)
        self._reveal.setInterval(PROGRESS_AFTER_MS)
        self._reveal.timeout.connect(lambda: self.progress.setVisible(self._query_task is not None))
        self._unsubscribe = source.subscribe(self._on_change)
        self._layout_curves()
        self.apply_palette(self.palette())

    # --- building ------------------------------------------------------------------------------

    def _build_plot(self) -> None:
        self.left_axis = UnitAxis("left")
        self.right_axis = UnitAxis("right")
        self.time_axis = TimeAxis(orientation="bottom")
        self.plot = pg.PlotWidget(
            axisItems={"bottom": self.time_axis, "left": self.left_axis, "right": self.right_axis}
        )
        self.plot.setObjectName("historyPlot")
        self.plot.setAccessibleName("History plot")
        self.plot.setMinimumHeight(120)
        # pyqtgraph's own Export... entry: File → Export replaces it (and its SVG export fails on this Qt).
        self.plot.scene().contextMenu = []
        item = self.plot_item = self.plot.getPlotItem()
        item.hideButtons()
        item.setMenuEnabled(False, enableViewBoxMenu=True)  # no "Plot Options": no log or FFT views
        item.showGrid(x=True, y=True)
        for axis in (self.left_axis, self.right_axis):
            # Grid lines for the labelled steps and the ones between: a third level (every tenth of a
            # step) doubles the plot's paint time and adds nothing readable.
            axis.setStyle(maxTickLevel=1)
        item.showAxis("right")
        # A second unit gets its own box, read on the right axis, sharing the time axis.
        self.left_box: pg.ViewBox = item.getViewBox()
        self.right_box = pg.ViewBox(enableMenu=False)
        self.right_box.setZValue(1)  # above the plot item (and its box): the overlays cover every curve
        self.plot.scene().addItem(self.right_box)
        self.right_axis.linkToView(self.right_box)
        self.right_box.setXLink(self.left_box)
        for box in (self.left_box, self.right_box):
            box.setMouseEnabled(x=True, y=False)
            box.enableAutoRange(axis=pg.ViewBox.YAxis)
            box.setAutoVisible(y=True)
            box.disableAutoRange(axis=pg.ViewBox.XAxis)
        self.left_box.setLimits(minXRange=MIN_SPAN_S)
        self.left_box.sigResized.connect(self._sync_boxes)
        self.left_box.sigXRangeChanged.connect(self._on_view_changed)
        self.left_box.sigResized.connect(self._on_view_changed)
        self.left_box.border = None  # pyqtgraph paints a NoPen border path on every paint otherwise

        # The overlays go in the box drawn last, above every curve.
        self.markers = MarkerItem()
        self.markers.hovered = self._read_marker_details
        self.shade = FilterShade()
        self.cursor_line = pg.InfiniteLine(angle=90, movable=False)
        self.cursor_line.setZValue(10)
        self.cursor_line.setVisible(False)
        for overlay in (self.shade, self.markers, self.cursor_line):
            self.right_box.addItem(overlay, ignoreBounds=True)
        # The legend takes the title's row above the plot: it never hides a curve.
        self.legend = LegendRow(LEGEND_POINT_SIZE)
        layout = item.layout
        layout.removeItem(item.titleLabel)
        item.titleLabel.setVisible(False)
        layout.addItem(self.legend, 0, 1)
        self.plot.scene().sigMouseClicked.connect(self._on_click)

        menu = self.left_box.menu
        menu.addSeparator()
        self.show_in_timeline_action = menu.addAction("Show in Timeline")
        self.show_in_timeline_action.triggered.connect(self.show_in_timeline)
        self.whole_history_action = menu.addAction("Show Whole History")
        self.whole_history_action.triggered.connect(self.show_whole_history)

    def _build_tool_row(self) -> None:
        title = QLabel("History")
        title.setObjectName("panelTitle")
        self.range_label = QLabel()
        self.range_label.setObjectName("historyPlotRange")
        self.status = QLabel()
        self.status.setObjectName("historyPlotStatus")
        self.progress = QProgressBar()
        self.progress.setObjectName("historyPlotProgress")
        self.progress.setRange(0, 100)
        self.progress.setFixedWidth(140)
        self.progress.setTextVisible(True)
        self.progress.setFormat("reading %p%")
        self.progress.setVisible(False)

        self.picker = SeriesPicker()
        self.picker.toggled.connect(self._on_picker_toggled)
        self.series_menu = QMenu(self)
        picker_action = QWidgetAction(self.series_menu)
        picker_action.setDefaultWidget(self.picker)
        self.series_menu.addAction(picker_action)
        self.series_menu.aboutToShow.connect(self.refresh_paths)
        self.series_button = QPushButton("Fields")
        self.series_button.setObjectName("historySeriesButton")
        self.series_button.setToolTip("Choose the numeric fields to plot, metadata fields included")
        self.series_button.setMenu(self.series_menu)

        self.whole_button = QPushButton("Whole History")
        self.whole_button.setObjectName("historyWholeButton")
        self.whole_button.setToolTip("Zoom out to every stored document")
        self.whole_button.clicked.connect(lambda _checked=False: self.show_whole_history())
        self.timeline_button = QPushButton("Show in Timeline")
        self.timeline_button.setObjectName("historyShowInTimelineButton")
        self.timeline_button.setToolTip(
            "Select the newest document of the visible time range in the timeline"
        )
        self.timeline_button.clicked.connect(lambda _checked=False: self.show_in_timeline())
        self.timeline_button.setEnabled(False)

        row = self._tool_row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(title)
        row.addWidget(self.range_label)
        row.addWidget(self.status, 1)
        row.addWidget(self.progress)
        row.addWidget(self.series_button)
        row.addWidget(self.whole_button)
        row.addWidget(self.timeline_button)

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Read the time bounds and the first view (call once the panel is in its window)."""
        self._tasks.spawn(self._load(), "plot: first read")

    def shutdown(self) -> None:
        """Stop following the source and reading (the window is closing)."""
        self._closed = True
        self._requery.stop()
        self._reveal.stop()
        self._unsubscribe()
        self.series_menu.close()
        # pyqtgraph's context menus have no Qt parent: nothing deletes them with the window.
        _delete_here(self.plot_item.ctrlMenu, self.left_box.menu)

    async def _load(self) -> None:
        try:
            bounds = await self._source.time_bounds()
        except Exception as error:  # a damaged file, a lost Big Peer: say so, keep the window
            self._read_failed(error)
            return
        if self._closed:
            return
        self._ready = True
        if bounds is None:
            self._oldest_ms = self._newest_ms = None
            self._update_status()
            return
        self._oldest_ms, self._newest_ms = bounds
        self._show_span(*bounds)
        self._requery.stop()
        await self._query_loop()

    # --- the series ----------------------------------------------------------------------------

    @property
    def series(self) -> list[str]:
        """The field paths plotted, in the order they were chosen."""
        return list(self._series)

    @property
    def curves(self) -> dict[str, pg.PlotDataItem]:
        return dict(self._curves)

    def curve(self, path: str) -> pg.PlotDataItem | None:
        return self._curves.get(path)

    def set_series(self, paths: Sequence[str]) -> None:
        """Plot ``paths`` (numeric field paths) and nothing else; kept in the settings."""
        paths = list(dict.fromkeys(paths))
        if paths == self._series:
            return
        added = [p for p in paths if p not in self._series]
        self._series = paths
        self._settings.setValue(SETTINGS_KEY, json.dumps(paths))
        self._layout_curves()
        with QSignalBlocker(self.picker):
            for path in {*added, *self._curves}:
                item = self.picker.item(path)
                if item is not None:
                    item.setCheckState(Qt.CheckState.Checked if path in paths else Qt.CheckState.Unchecked)
        self.seriesChanged.emit()
        if added:
            self._start_query()

    def add_series(self, path: str) -> None:
        self.set_series([*self._series, path])

    def remove_series(self, path: str) -> None:
        self.set_series([p for p in self._series if p != path])

    def refresh_paths(self) -> None:
        """Fill the picker with the source's numeric field paths (asynchronously)."""
        self.picker.set_paths([], self._series)
        self._spawn_read(self._read_paths(), "plot: read field paths")

    async def _read_paths(self) -> None:
        paths = await self._source.numeric_paths()
        if not self._closed:
            self.picker.set_paths(paths, self._series)

    def _on_picker_toggled(self, path: str, checked: bool) -> None:
        if checked:
            self.add_series(path)
        else:
            self.remove_series(path)

    def _units(self) -> list[str]:
        """The units on the axes: the left one first (bytes when there are any)."""
        units = [u for u in (BYTES, NUMBER) if any(unit_of(p) == u for p in self._series)]
        return units or [BYTES]

    def _layout_curves(self) -> None:
        """One curve per chosen path, in the box of its unit; the legend says which axis reads it."""
        units = self._units()
        self.left_axis.set_unit(units[0])
        self.plot_item.showAxis("right", len(units) > 1)
        if len(units) > 1:
            self.right_axis.set_unit(units[1])
        self.left_box.setLimits(minYRange=MIN_BYTES_RANGE if units[0] == BYTES else None)
        for path in [p for p in self._curves if p not in self._series]:
            curve = self._curves.pop(path)
            self._curve_box.pop(path).removeItem(curve)
            self._data.pop(path, None)
            _delete_here(curve)
        entries = []
        for position, path in enumerate(self._series):
            box = self.left_box if unit_of(path) == units[0] else self.right_box
            curve = self._curves.get(path)
            if curve is None:
                curve = pg.PlotDataItem(name=path, connect="all", skipFiniteCheck=True, antialias=True)
                self._curves[path] = curve
                x, y = self._data.get(path, (np.empty(0), np.empty(0)))
                curve.setData(x, y)
            if self._curve_box.get(path) is not box:
                if path in self._curve_box:
                    self._curve_box[path].removeItem(curve)
                box.addItem(curve)
                self._curve_box[path] = box
            # One pixel: antialiased lines that thin take Qt's fast path (a wider pen costs 3x per paint).
            curve.setPen(pg.mkPen(self.colours.curves[position % len(self.colours.curves)], width=1))
            side = " (right axis)" if len(units) > 1 and box is self.right_box else ""
            entries.append((path + side, curve.opts["pen"]))
        self.legend.set_entries(entries)
        self._fit_legend()

    def _fit_legend(self) -> None:
        """Give the legend the rows its entries need across the plot's width."""
        axes = self.left_axis.width() + (self.right_axis.width() if self.right_axis.isVisible() else 0)
        height = self.legend.height_for(self.plot.viewport().width() - axes)
        self.plot_item.layout.setRowFixedHeight(0, math.ceil(height))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_legend()

    def _sync_boxes(self) -> None:
        self.right_box.setGeometry(self.left_box.sceneBoundingRect())
        self.right_box.linkedViewChanged(self.left_box, self.right_box.XAxis)

    # --- the view ------------------------------------------------------------------------------

    def view_range(self) -> tuple[float, float]:
        """The visible time range, Unix seconds."""
        (left, right), _ = self.left_box.viewRange()
        return float(left), float(right)

    def set_view_range(self, first_s: float, last_s: float) -> None:
        """Show the time range ``first_s..last_s`` (Unix seconds), exactly."""
        self.left_box.setXRange(first_s, last_s, padding=0)

    def _show_span(self, first_ms: int, last_ms: int) -> None:
        """Show a range of documents with a little room on the right for the next one."""
        first, last = first_ms / 1000, last_ms / 1000
        if last - first < MIN_SPAN_S:
            middle = (first + last) / 2
            first, last = middle - MIN_SPAN_S / 2, middle + MIN_SPAN_S / 2
        self.set_view_range(first, last + (last - first) * 0.02)

    def show_whole_history(self) -> None:
        """Zoom out to every stored document."""
        if self._oldest_ms is not None and self._newest_ms is not None:
            self._show_span(self._oldest_ms, self._newest_ms)

    def _pixels(self) -> int:
        return max(50, int(self.left_box.width()))

    def _wanted(self) -> tuple[int, int, int, float]:
        """What to read for the current view: (first ms, last ms, buckets, ms per bucket)."""
        left, right = self.view_range()
        v0, v1 = left * 1000, right * 1000
        resolution = max(1.0, (v1 - v0) / self._pixels())
        margin = (v1 - v0) * MARGIN
        first, last = v0 - margin, v1 + margin
        if self._oldest_ms is not None and self._newest_ms is not None:
            first, last = max(first, self._oldest_ms), min(last, self._newest_ms)
            if last < first:
                first, last = v0, v1
        buckets = min(MAX_BUCKETS, max(1, math.ceil((last - first) / resolution)))
        return math.floor(first), math.ceil(last), buckets, resolution

    def needs_read(self) -> bool:
        """Whether the view shows time or detail that was not read."""
        if self._coverage is None:
            return True
        first, last, resolution = self._coverage
        left, right = self.view_range()
        oldest = self._oldest_ms if self._oldest_ms is not None else -math.inf
        newest = self._newest_ms if self._newest_ms is not None else math.inf
        if (left * 1000 < first and first > oldest) or (right * 1000 > last and last < newest):
            return True
        wanted = max(1.0, (right - left) * 1000 / self._pixels())
        return not FINEST_READ <= resolution / wanted <= COARSEST_READ

    def _on_view_changed(self, *_args: Any) -> None:
        if self._closed:
            return
        # Zoomed into a day, the axis says only hours: the range says which day.
        self.range_label.setText(format_span(*self.view_range()) if self._oldest_ms is not None else "")
        if self._ready and self.needs_read():
            self._requery.start()

    # --- reading -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a read is under way or due (the curves may change)."""
        return not self._ready or self._query_task is not None or self._requery.isActive()

    def refresh_now(self) -> None:
        """Read the view now, without waiting for the debounce (benchmarks, tests)."""
        self._requery.stop()
        self._start_query()

    def _start_query(self) -> None:
        if self._closed or not self._ready:
            return
        if self._query_task is not None:
            self._query_again = True
            return
        self._query_task = self._tasks.spawn(self._query_loop(), "plot: read series")

    async def _query_loop(self) -> None:
        try:
            while not self._closed:
                self._query_again = False
                await self._read()
                if not self._query_again:
                    break
        finally:
            self._query_task = None
            self._reveal.stop()
            self.progress.setVisible(False)

    async def _read(self) -> None:
        first, last, buckets, resolution = self._wanted()
        paths = list(self._series)
        loop = asyncio.get_running_loop()
        self.progress.setRange(0, 0)  # busy, until (and unless) the source reports how far it got
        if not self.progress.isVisible():
            self._reveal.start()

        def progress(fraction: float) -> None:  # on the source's thread
            with contextlib.suppress(RuntimeError):  # the loop closed under a late report
                loop.call_soon_threadsafe(self._show_progress, fraction)

        # Both questions queue at once (the series first): one wait for the two answers, not two.
        marking = asyncio.ensure_future(self._source.marker_columns(first, last, buckets))
        try:
            try:
                series = await self._source.series(paths, first, last, buckets, progress) if paths else {}
            finally:
                markers = await marking
        except Exception as error:  # a damaged file, a lost Big Peer: said once per read asked for
            self._read_failed(error)
            return
        if self._closed:
            return
        self.failure = None
        self.query_count += 1
        per_pixel = 0.0
        for path, buckets_of_path in series.items():
            if path in self._curves:
                self._set_data(path, *min_max_polyline(buckets_of_path))
                if not path.startswith("metadata.") and len(buckets_of_path):
                    # Metadata buckets count runs of unchanged metadata, not documents per pixel.
                    per_pixel = max(per_pixel, float(buckets_of_path.count.sum()) / buckets)
        self._per_pixel = per_pixel
        self.markers.set_columns(markers)
        self._coverage = (first, last, resolution)
        if set(paths) != set(self._series):
            self._query_again = True  # the fields changed while reading
        self._update_status()
        self.dataChanged.emit()

    def _set_data(self, path: str, x: np.ndarray, y: np.ndarray) -> None:
        self._data[path] = (x, y)
        self._curves[path].setData(x, y)

    def _show_progress(self, fraction: float) -> None:
        """How far the source got (0..1); shown once the read has lasted `PROGRESS_AFTER_MS`."""
        if not self._closed and self._query_task is not None:
            self.progress.setRange(0, 100)
            self.progress.setValue(round(min(1.0, fraction) * 100))

    def _spawn_read(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Start a read of the source whose failure the plot says (`_read_failed`), never a traceback."""
        self._tasks.spawn(coro, name, on_error=self._read_failed)

    def _read_failed(self, error: Exception) -> None:
        """A read failed: the plot keeps what it showed and says why (no retry until asked again)."""
        if self._closed:
            return
        self.failure = error
        self.status.setText(f"· the history cannot be read: {error}")
        self.status.setToolTip(str(error))

    def _update_status(self) -> None:
        if self.failure is not None:
            return
        if self._oldest_ms is None:
            self.status.setText("No documents to plot yet.")
        elif self._per_pixel >= 1.5:
            self.status.setText(
                f"· each pixel column: lowest and highest of ~{round(self._per_pixel):,} documents"
            )
        else:
            self.status.setText("")

    def _read_marker_details(self, first_s: float, last_s: float) -> None:
        self._tasks.spawn(self._marker_details((first_s, last_s)), "plot: marker details")

    async def _marker_details(self, span: tuple[float, float]) -> None:
        try:
            markers = await self._source.markers(math.floor(span[0] * 1000), math.ceil(span[1] * 1000))
        except Exception as error:
            self._read_failed(error)
            return
        if not self._closed:
            self.markers.show_details(span, markers)

    # --- live changes --------------------------------------------------------------------------

    def _on_change(self, change: HistoryChange) -> None:
        if self._closed or not self._ready:
            return
        if isinstance(change, RowsAppended):
            if change.rows and all(row.numbers is not None for row in change.rows):
                self._append(sorted(change.rows, key=lambda row: row.index))
            else:
                self._newest_ms = None  # unknown until read again
                self._tasks.spawn(self._load(), "plot: read again")
        elif isinstance(change, RowsRemoved):
            self._spawn_read(self._reread_bounds(), "plot: history shrank")
        elif isinstance(change, SourceReset):
            self._coverage = None
            self._tasks.spawn(self._load(), "plot: read again")

    def _append(self, rows: list[HistoryRow]) -> None:
        previous_newest = self._newest_ms
        rows = [row for row in rows if previous_newest is None or row.ts_ms > previous_newest]
        if not rows:
            return
        newest = rows[-1].ts_ms
        if self._oldest_ms is None:
            self._oldest_ms = rows[0].ts_ms
        self._newest_ms = newest
        metadata_changed = False
        for path in self._series:
            x, y = self._data.get(path, (np.empty(0), np.empty(0)))
            new_x, new_y = [], []
            for row in rows:
                value = self._live_value(path, row, y[-1] if len(y) else None)
                if value is None:
                    metadata_changed |= path.startswith("metadata.")
                    continue
                new_x.append(row.ts_ms / 1000)
                new_y.append(value)
            if new_x:
                self._set_data(path, np.append(x, new_x), np.append(y, new_y))
        for row in rows:
            if self._last_metadata_key is not None and row.metadata_key != self._last_metadata_key:
                metadata_changed = True
            self._last_metadata_key = row.metadata_key
        if self._coverage is not None:
            first, last, resolution = self._coverage
            self._coverage = (first, max(last, newest), resolution)
        self._follow(previous_newest, newest)
        if metadata_changed:
            self._coverage = None  # metadata fields (and the markers) are read again
            self._requery.start()
        self._update_status()

    def _live_value(self, path: str, row: HistoryRow, last: float | None) -> float | None:
        """The value of ``path`` in a new row, or None when it must be read (metadata that changed)."""
        if not path.startswith("metadata."):
            return row.numbers.get(path) if row.numbers is not None else None
        if last is not None and row.metadata_key == self._last_metadata_key:
            return last  # metadata fields are constant while the metadata is
        return None

    def _follow(self, previous_newest: int | None, newest: int) -> None:
        """A view that showed the newest document keeps showing it: it grows, or slides if zoomed in."""
        left, right = self.view_range()
        if previous_newest is None:
            self._show_span(self._oldest_ms or newest, newest)
        elif right * 1000 >= previous_newest and newest / 1000 > right:
            oldest = self._oldest_ms or newest
            if left * 1000 <= oldest:
                self._show_span(oldest, newest)
            else:
                shift = (newest - previous_newest) / 1000
                self.set_view_range(left + shift, right + shift)

    async def _reread_bounds(self) -> None:
        bounds = await self._source.time_bounds()
        if self._closed:
            return
        self._oldest_ms, self._newest_ms = bounds if bounds is not None else (None, None)
        self._coverage = None
        self._start_query()

    # --- the timeline --------------------------------------------------------------------------

    def link_timeline(self, panel: TimelinePanel) -> None:
        """Follow ``panel``'s selection and filter, and select in it what the user clicks."""
        self._timeline = panel
        panel.currentIndexChanged.connect(self._on_timeline_current)
        panel.model.countsChanged.connect(self._on_timeline_matches)
        panel.model.modelReset.connect(self._on_timeline_matches)
        self.documentClicked.connect(panel.select_index)
        self.timeline_button.setEnabled(True)

    def show_time(self, ts_ms: int | None) -> None:
        """Draw the cursor at ``ts_ms`` (None hides it)."""
        self.cursor_line.setVisible(ts_ms is not None)
        if ts_ms is not None:
            self.cursor_line.setValue(ts_ms / 1000)

    def _on_timeline_current(self, index: int) -> None:
        self._cursor_version += 1
        if self._timeline is not None:
            current = self._timeline.view.currentIndex()
            ts_ms = current.data(TIME_ROLE)
            if isinstance(ts_ms, int):
                self.show_time(ts_ms)
                return
        self._spawn_read(self._cursor_at(index, self._cursor_version), "plot: cursor")

    async def _cursor_at(self, index: int, version: int) -> None:
        times = await self._source.timestamps([index])
        if version == self._cursor_version and index in times and not self._closed:
            self.show_time(times[index])

    def _on_timeline_matches(self) -> None:
        timeline = self._timeline.timeline if self._timeline is not None else None
        matches = timeline.matches if timeline is not None else None
        if timeline is None or matches is None:
            self._match_state = None
            self._match_times = {}
            self.shade.set_matches(None)
            return
        state = (timeline.filter_text, id(matches), len(matches))
        if state == self._match_state:
            return
        same_search = self._match_state is not None and self._match_state[:2] == state[:2]
        self._match_state = state
        if not same_search:
            self._match_times = {}
        wanted = [index for index in matches if index not in self._match_times]
        self._match_version += 1
        self._spawn_read(self._read_match_times(wanted, list(matches), self._match_version), "plot: filter")

    async def _read_match_times(self, wanted: list[int], matches: list[int], version: int) -> None:
        if wanted:
            found = await self._source.timestamps(wanted)
            if version != self._match_version or self._closed:
                return
            self._match_times.update(found)
        self.shade.set_matches(_runs(sorted(matches), self._match_times))

    def _matching(self) -> list[int] | None:
        """The timeline filter's matches (newest first), or None without a filter."""
        return self._timeline.timeline.matches if self._timeline is not None else None

    def _on_click(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.double() or not self._ready:
            return
        position = event.scenePos()
        if not self.left_box.sceneBoundingRect().contains(position):
            return
        x = self.left_box.mapSceneToView(position).x()
        self._spawn_read(self._select_nearest(round(x * 1000)), "plot: select the nearest document")

    async def _select_nearest(self, ts_ms: int) -> None:
        index = await self._source.index_at_or_before(ts_ms)
        if index is None:
            return
        candidates = [index, index + 1]
        matches = self._matching()
        if matches is not None:
            candidates = _neighbours(matches, index)
        times = await self._source.timestamps(candidates) if candidates else {}
        if times and not self._closed:
            nearest = min(times, key=lambda i: (abs(times[i] - ts_ms), -i))
            self.documentClicked.emit(nearest)

    def show_in_timeline(self) -> None:
        """Select the newest document of the visible range in the timeline (scrolling to it)."""
        if self._timeline is not None and self._ready:
            left, right = self.view_range()
            self._spawn_read(self._show_in_timeline(left * 1000, right * 1000), "plot: show in timeline")

    async def _show_in_timeline(self, first_ms: float, last_ms: float) -> None:
        index = await self._source.index_at_or_before(math.floor(last_ms))
        if index is None or self._timeline is None:
            return
        matches = self._matching()
        if matches is not None:
            below = [m for m in _neighbours(matches, index) if m <= index]
            if not below:
                return
            index = below[0]
        times = await self._source.timestamps([index])
        if index in times and times[index] >= first_ms and not self._closed and self._timeline is not None:
            self._timeline.select_index(index)

    # --- export --------------------------------------------------------------------------------

    def save_image(self, path: Path) -> None:
        """Write the plot as shown: SVG for a ``.svg`` path, PNG otherwise (OSError if it cannot)."""
        if path.suffix.lower() == ".svg":
            path.write_bytes(plot_svg(self.plot, [self.left_box, self.right_box], self.legend))
            return
        exporter = ImageExporter(self.plot.scene())
        exporter.parameters()["background"] = self.colours.background
        path.unlink(missing_ok=True)
        exporter.export(str(path))
        if not path.is_file():  # QImage.save says only "False"
            raise OSError(f"the image could not be written to {path}")

    # --- looks ---------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange) and hasattr(
            self, "legend"
        ):
            self.apply_palette(self.palette())

    def apply_palette(self, palette: QPalette) -> None:
        """Paint the plot for ``palette``: ground, axes, grid, curves, markers (light or dark)."""
        colours = self.colours = plot_colours(palette)
        self.plot.setBackground(colours.background)
        axis_pen = QColor(colours.foreground)
        axis_pen.setAlpha(150)
        for axis in (self.left_axis, self.right_axis, self.time_axis):
            axis.setPen(pg.mkPen(axis_pen))
            axis.setTextPen(pg.mkPen(colours.foreground))
        self.plot_item.showGrid(x=True, y=True, alpha=colours.grid_alpha)
        self.markers.set_colours(colours.markers)
        self.shade.set_colour(colours.shade)
        self.cursor_line.setPen(pg.mkPen(colours.cursor, width=1.5))
        self.legend.set_text_colour(colours.foreground)
        self._layout_curves()  # curve pens, and legend labels in the new text colour


def _delete_here(*objects: QObject | None) -> None:
    """Delete Qt objects that nothing in Qt owns, soon and on this (the GUI) thread.

    pyqtgraph's items sit in reference cycles, and Python's cycle collector runs on
    whichever thread allocates when it is due, often the store's: Qt objects freed
    there (a menu, its widgets and timers) break Qt's threading rules.
    """
    for thing in objects:
        if thing is not None and shiboken6.isValid(thing):
            thing.deleteLater()


def _runs(indices: list[int], times: dict[int, int]) -> list[tuple[float, float]]:
    """Time spans (Unix seconds) of runs of consecutive ``indices`` (ascending): no other document in them."""
    spans: list[tuple[float, float]] = []
    previous = None
    for index in indices:
        if index not in times:
            continue
        moment = times[index] / 1000
        if previous is not None and index == previous + 1 and spans:
            spans[-1] = (spans[-1][0], moment)
        else:
            spans.append((moment, moment))
        previous = index
    return spans


def _neighbours(matches: Sequence[int], index: int) -> list[int]:
    """The matches (indices, newest first) nearest ``index``: the newest at or below it, the oldest above."""
    negated = -np.asarray(matches, dtype=np.int64)  # ascending
    at_or_below = int(np.searchsorted(negated, -index, side="left"))
    return [int(matches[p]) for p in (at_or_below, at_or_below - 1) if 0 <= p < len(matches)]
