"""`FleetWindow`: the device dashboard of a Big Peer (read-only).

The device table (``fleetDeviceTable``, a `FleetModel` the Big Peer filters, sorts
and pages) on the left; the selected device's history on the right, in the same
widgets as the inspector window — ``historyPlot``, ``timelineView``,
``documentView`` — over a `BigPeerHistory` (a `DeviceHistoryView`, made anew for
each device so nothing of one device's history is ever shown as another's).
``fleetFilter`` is the fleet query's ``q``; ``fleetStatus`` says how many devices
are shown of how many match, and how the Big Peer answers: a refused token, an
unreachable, failing or slow Big Peer is a sentence there, the window keeps what it
showed and carries on polling, so it recovers by itself.

Everything goes through one `BigPeerClient` (one aiohttp session) per window, on
the running asyncio loop (qasync's in the app). Idle, the window costs the Big Peer
one conditional fleet read every `POLL_INTERVAL` seconds plus, with a device
selected, one conditional history read every `inspector.history.remote.POLL_INTERVAL`:
0.8 requests a second, most of them answered ``304`` when nothing changed.

File → Export writes the device table as CSV (every device the filter keeps, read
page by page, not only the rows loaded) and the selected device's history as JSON
Lines (`ExportController`).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import (
    QByteArray,
    QItemSelection,
    QPoint,
    QSettings,
    QSignalBlocker,
    QStandardPaths,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from inspector._version import __version__
from inspector.core.clock import SYSTEM_CLOCK, Clock
from inspector.gui.document_view import DocumentPanel
from inspector.gui.export import ExportController
from inspector.gui.failures import describe_failure
from inspector.gui.fleet_model import (
    POLL_INTERVAL,
    SORTS,
    Column,
    FleetModel,
    device_status,
    format_metadata_value,
    metadata_value,
)
from inspector.gui.formatting import format_local_time
from inspector.gui.highlighting import is_dark_palette
from inspector.gui.plot import HistoryPlotPanel
from inspector.gui.tasks import TaskSet
from inspector.gui.theme import ThemeController
from inspector.gui.timeline import TimelinePanel
from inspector.history.remote import (
    DEFAULT_TIMEOUT,
    MAX_PAGE,
    BigPeerClient,
    BigPeerError,
    BigPeerHistory,
    FleetDevice,
)

__all__ = ["CSV_FIELDS", "DeviceHistoryView", "FleetWindow", "describe_failure", "write_fleet_csv"]

TICK_MS = 1000
"""How often "3 s ago" and the online badges move on."""
FILTER_DELAY_MS = 300
"""The filter asks the Big Peer once typing pauses this long."""
METADATA_COLUMNS_KEY = "fleet/metadataColumns"
MESSAGE_MS = 6000

CSV_FIELDS = (
    "peer_key",
    "device_name",
    "ditto_sdk_platform",
    "ditto_sdk_language",
    "ditto_sdk_version",
    "last_updated_at",
    "received_at",
    "status",
    "interval_seconds",
    "device_available",
    "document_count",
)
"""The CSV's fixed columns, in order; then one ``metadata.PATH`` column per metadata column shown."""


def _csv_row(device: FleetDevice, now: float, metadata_columns: Sequence[str]) -> list[str]:
    fields = device.fields
    row = [
        device.peer_key,
        device.device_name or "",
        device.sdk_platform or "",
        device.sdk_language or "",
        device.sdk_version or "",
        device.last_updated_at,
        str(fields.get("received_at") or ""),
        "online" if device_status(device, now)[0] else "stale",
        "" if device.interval_seconds is None else repr(device.interval_seconds),
        "" if device.device_available is None else f"{device.device_available:.0f}",
        str(device.document_count),
    ]
    for path in metadata_columns:
        row.append(format_metadata_value(metadata_value(device, path)))
    return row


async def write_fleet_csv(
    client: BigPeerClient,
    path: Path,
    *,
    query: str,
    sort: str,
    metadata_columns: Sequence[str],
    now: Callable[[], float],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write every device matching ``query`` in ``sort`` order as CSV (UTF-8, a header row); how many.

    Read from the Big Peer page by page (never only what a view loaded). Written to
    ``NAME.part`` and renamed when complete: a failed export leaves nothing behind.
    """
    part = path.with_name(path.name + ".part")
    written = 0
    try:
        with part.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow([*CSV_FIELDS, *(f"metadata.{p}" for p in metadata_columns)])
            after: str | None = None
            seen: set[str] = set()
            while True:
                page = await client.fleet(limit=MAX_PAGE, after=after, q=query, sort=sort)
                assert page is not None
                moment = now()
                for device in page.devices:
                    if device.peer_key not in seen:  # a device that reported between pages moves
                        seen.add(device.peer_key)
                        writer.writerow(_csv_row(device, moment, metadata_columns))
                        written += 1
                if progress is not None:
                    progress(written, page.total)
                if page.next is None:
                    break
                after = page.next
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return written


class DeviceHistoryView(QWidget):
    """One device's history at the Big Peer: plot, timeline and document, read-only.

    Owns its `BigPeerHistory` and its tasks; `shutdown` then ``await wait_closed()``.
    """

    message = Signal(str)

    def __init__(
        self,
        client: BigPeerClient,
        device: FleetDevice,
        clock: Clock,
        settings: QSettings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("fleetDeviceView")
        self.device = device
        self.tasks = TaskSet(report=self.message.emit)
        self.history = BigPeerHistory(client, device.peer_key, title=device.title, summary=device)
        self.timeline_panel = TimelinePanel(self.history, self.tasks, clock, self._empty_text)
        self.timeline_panel.filter_edit.setPlaceholderText(
            f"Filter: text in the JSON of the newest {self.history.window_size:,} documents (Ctrl+F)"
        )
        self.document_panel = DocumentPanel(self.history, self.tasks)
        # A long title must not hold the document wide: the timeline beside it keeps its share.
        self.document_panel.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.plot_panel = HistoryPlotPanel(self.history, self.tasks, settings)
        self.plot_panel.link_timeline(self.timeline_panel)
        self.export = ExportController(self.history, self.tasks, self, self.timeline_panel, self.plot_panel)
        self.timeline_panel.currentIndexChanged.connect(self.document_panel.show_index)
        self.timeline_panel.model.countsChanged.connect(self._select_newest_once)
        self.document_panel.message.connect(self.message)
        self.export.message.connect(self.message)
        self._selected_once = False

        self.title = QLabel()
        self.title.setObjectName("fleetDeviceTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_key = QToolButton()
        self.copy_key.setObjectName("fleetCopyPeerKey")
        self.copy_key.setText("Copy peer key")
        self.copy_key.setAccessibleName("Copy the device's peer key")
        self.copy_key.clicked.connect(self.copy_peer_key)
        self.show_device(device)

        self.lower_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.lower_splitter.setObjectName("fleetHistorySplitter")
        self.lower_splitter.addWidget(self.timeline_panel)
        self.lower_splitter.addWidget(self.document_panel)
        self.lower_splitter.setChildrenCollapsible(False)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("fleetPlotSplitter")
        self.splitter.addWidget(self.plot_panel)
        self.splitter.addWidget(self.lower_splitter)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(1, 1)

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.copy_key)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.splitter, 1)

    def show_device(self, device: FleetDevice) -> None:
        """Show the newest summary of the device in the title."""
        self.device = device
        parts = [p for p in (device.sdk_platform, device.sdk_version and f"SDK {device.sdk_version}") if p]
        parts.append(f"{device.document_count:,} documents")
        self.title.setText(f"<b>{_escape(device.title)}</b> · " + " · ".join(_escape(p) for p in parts))
        self.title.setToolTip(f"Peer key: {device.peer_key}")

    def _empty_text(self) -> str:
        return "The Big Peer holds no document of this device."

    def _select_newest_once(self) -> None:
        """Show the newest document as soon as the timeline knows it (once: then the user chooses)."""
        timeline = self.timeline_panel.timeline
        if not self._selected_once and timeline.loaded and timeline.row_count:
            self._selected_once = True
            self.timeline_panel.select_index(timeline.index_at(0))

    def copy_peer_key(self) -> None:
        QGuiApplication.clipboard().setText(self.device.peer_key)
        self.message.emit("Copied the peer key to the clipboard.")

    def start(self) -> None:
        self.timeline_panel.start()
        self.plot_panel.start()

    def shutdown(self) -> None:
        self.timeline_panel.shutdown()
        self.plot_panel.shutdown()
        self.history.close()
        self.tasks.cancel()

    async def wait_closed(self) -> None:
        await self.tasks.wait_cancelled()
        await self.history.wait_closed()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class FleetWindow(QMainWindow):
    """The device dashboard of the Big Peer at ``big_peer_url`` (SPEC §5 names its widgets).

    ``settings`` keeps geometry, splitters and the metadata columns (never the
    token); by default the application's `QSettings`. Closing the window stops
    its work and emits `closed`; ``await wait_closed()`` then waits until its
    tasks have ended and its connections are closed.
    """

    closed = Signal()
    deviceChanged = Signal(str)
    """The device whose history is shown (its peer key)."""

    def __init__(
        self,
        big_peer_url: str,
        admin_token: str,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
        *,
        clock: Clock | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        page_size: int | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("fleetWindow")
        self.big_peer_url = big_peer_url.rstrip("/")
        self.setWindowTitle(f"Fleet — {self.big_peer_url} — Small Peer Inspector")
        self._settings = settings if settings is not None else QSettings()
        self._clock = clock or SYSTEM_CLOCK
        self._tasks = TaskSet(report=self.show_message)
        self._closing = False
        self.client = BigPeerClient(self.big_peer_url, admin_token, timeout=timeout)
        saved_columns = self._settings.value(METADATA_COLUMNS_KEY)
        columns: list[str] = []
        if isinstance(saved_columns, str):
            try:
                loaded = json.loads(saved_columns)
            except ValueError:
                loaded = []
            columns = [c for c in loaded if isinstance(c, str)] if isinstance(loaded, list) else []
        options = {"page_size": page_size} if page_size else {}
        self.model = FleetModel(
            self.client,
            self._tasks,
            self._clock,
            self,
            poll_interval=poll_interval,
            metadata_columns=columns,
            **options,
        )
        self.device_view: DeviceHistoryView | None = None
        self._columns_fitted = False
        self._closing_views: list[DeviceHistoryView] = []
        self.theme = ThemeController(self._settings, self)

        self._build_table_panel()
        self._build_layout()
        self._build_menus()
        self.model.stateChanged.connect(self._update_status)
        self.model.refreshed.connect(self._on_refreshed)
        self.model.modelReset.connect(self._restore_selection)

        self._tick = QTimer(self)
        self._tick.setObjectName("fleetTick")
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._on_tick)
        self._restore_settings()
        self._update_status()
        self.model.start()
        self._tick.start()

    # --- building ------------------------------------------------------------------------------

    def _build_table_panel(self) -> None:
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("fleetFilter")
        self.filter_edit.setPlaceholderText("Filter devices: text in the name, peer key or metadata (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAccessibleName("Fleet filter")
        self.filter_edit.setAccessibleDescription(
            "Shows only the devices whose name, peer key or metadata JSON contain this text"
        )
        self._filter_timer = QTimer(self)
        self._filter_timer.setObjectName("fleetFilterDelay")
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self.apply_filter)
        self.filter_edit.textChanged.connect(lambda _text: self._filter_timer.start())
        self.filter_edit.returnPressed.connect(self.apply_filter)

        self.add_column_button = QPushButton("Add &Column…")
        self.add_column_button.setObjectName("fleetAddColumn")
        self.add_column_button.setToolTip("Show a metadata key (like site or battery.level) as a column")
        self.add_column_button.setAccessibleName("Add a metadata column")
        self.add_column_button.clicked.connect(lambda _checked=False: self.ask_metadata_column())

        table = self.table = QTableView()
        table.setObjectName("fleetDeviceTable")
        table.setAccessibleName("Devices at the Big Peer")
        table.setModel(self.model)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setWordWrap(False)
        table.setShowGrid(False)
        table.setAlternatingRowColors(True)
        table.setCornerButtonEnabled(False)
        table.setTextElideMode(Qt.TextElideMode.ElideRight)
        table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        metrics = table.fontMetrics()
        rows = table.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # uniform rows: any count costs nothing
        rows.setDefaultSectionSize(metrics.height() + 8)
        header = table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)  # never ResizeToContents
        header.setStretchLastSection(True)
        header.setSectionsMovable(False)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._header_menu)
        self._size_columns()
        # The indicator first, then sorting on: enabling it asks the model for that order.
        header.setSortIndicator(Column.NAME, Qt.SortOrder.AscendingOrder)
        table.setSortingEnabled(True)
        header.sortIndicatorChanged.connect(self._keep_sort_indicator)
        # The selection, not the current index: focusing the table moves the current index to its
        # first row (for the keyboard) without selecting it, and must not switch devices.
        table.selectionModel().selectionChanged.connect(self._on_selection)

        self.status_label = QLabel()
        self.status_label.setObjectName("fleetStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.table_panel = QWidget()
        self.table_panel.setObjectName("fleetTablePanel")
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.add_column_button)
        column = QVBoxLayout(self.table_panel)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(self.status_label)
        column.addWidget(table, 1)

    def _size_columns(self) -> None:
        metrics = self.table.fontMetrics()
        header = self.table.horizontalHeader()
        samples = {
            Column.NAME: "warehouse-scanner-04",
            Column.PLATFORM: "Platform",
            Column.SDK: "SDK version",
            Column.LAST_SEEN: "59 min ago · 05:38:12",
            Column.STATUS: "● online ",
            Column.DISK: "Disk available",
        }
        for column, sample in samples.items():
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 20)

    def _build_layout(self) -> None:
        self.placeholder = QLabel("Select a device to see its history.")
        self.placeholder.setObjectName("fleetDevicePlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setEnabled(False)
        self.main_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.main_splitter.setObjectName("fleetSplitter")
        self.main_splitter.addWidget(self.table_panel)
        self.main_splitter.addWidget(self.placeholder)
        self.main_splitter.setChildrenCollapsible(False)
        self.main_splitter.setStretchFactor(1, 1)
        central = QWidget()
        central.setObjectName("central")
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 6, 8, 4)
        layout.addWidget(self.main_splitter, 1)
        self.setCentralWidget(central)

    def _build_menus(self) -> None:
        from inspector.gui.big_peer_dialog import FleetLauncher  # the dialog opens fleet windows too

        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        self.launcher = FleetLauncher(self._settings, self)
        file_menu.addAction(self.launcher.action)
        file_menu.addSeparator()
        export = file_menu.addMenu("&Export")
        self.csv_action = export.addAction("Device &Table as CSV…")
        self.csv_action.setToolTip("Every device the filter keeps, with the columns shown")
        self.csv_action.triggered.connect(lambda _checked=False: self.ask_csv())
        export.addSeparator()
        self.history_action = export.addAction("Device &History as JSON Lines…")
        self.history_action.triggered.connect(lambda _checked=False: self._device_export("history"))
        self.filtered_action = export.addAction("&Filtered Device History as JSON Lines…")
        self.filtered_action.triggered.connect(lambda _checked=False: self._device_export("filtered"))
        self.png_action = export.addAction("Plot as &PNG…")
        self.png_action.triggered.connect(lambda _checked=False: self._device_export(".png"))
        self.svg_action = export.addAction("Plot as &SVG…")
        self.svg_action.triggered.connect(lambda _checked=False: self._device_export(".svg"))
        file_menu.addSeparator()
        close = file_menu.addAction("&Close Window")
        close.setShortcut(QKeySequence(QKeySequence.StandardKey.Close))
        close.triggered.connect(self.close)

        view = menus.addMenu("&View")
        find = view.addAction("&Filter Devices")
        find.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
        find.triggered.connect(self.focus_filter)
        add = view.addAction("&Add Metadata Column…")
        add.triggered.connect(lambda _checked=False: self.ask_metadata_column())
        self.remove_columns_menu = view.addMenu("&Remove Metadata Column")
        self.remove_columns_menu.aboutToShow.connect(self._fill_remove_menu)
        refresh = view.addAction("&Refresh Now")
        refresh.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        refresh.triggered.connect(self.model.poll_now)
        view.addSeparator()
        theme = view.addMenu("&Theme")
        theme.addActions(list(self.theme.actions.values()))

        help_menu = menus.addMenu("&Help")
        about = help_menu.addAction("&About Small Peer Inspector")
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self._about)
        self._update_export_actions()

    # --- the table -----------------------------------------------------------------------------

    @property
    def timeline_panel(self) -> TimelinePanel | None:
        return self.device_view.timeline_panel if self.device_view is not None else None

    @property
    def document_panel(self) -> DocumentPanel | None:
        return self.device_view.document_panel if self.device_view is not None else None

    @property
    def plot_panel(self) -> HistoryPlotPanel | None:
        return self.device_view.plot_panel if self.device_view is not None else None

    @property
    def selected_peer_key(self) -> str | None:
        return self.device_view.device.peer_key if self.device_view is not None else None

    def focus_filter(self) -> None:
        self.filter_edit.setFocus()
        self.filter_edit.selectAll()

    def apply_filter(self) -> None:
        """Ask the Big Peer for the devices matching the filter now."""
        self._filter_timer.stop()
        self.model.set_query(self.filter_edit.text())

    def _keep_sort_indicator(self, _column: int, _order: Qt.SortOrder) -> None:
        """The header shows the order the Big Peer gives, whatever was clicked."""
        column = self.model.sort_column
        _, order = SORTS[column]
        header = self.table.horizontalHeader()
        if header.sortIndicatorSection() != column or header.sortIndicatorOrder() != order:
            with QSignalBlocker(header):
                header.setSortIndicator(column, order)
            header.viewport().update()

    def select_device(self, peer_key: str) -> bool:
        """Select the row of ``peer_key`` (False if no loaded row shows it)."""
        row = self.model.row_of(peer_key)
        if row is None:
            return False
        index = self.model.index(row, 0)
        selection = self.table.selectionModel()
        flags = selection.SelectionFlag.ClearAndSelect | selection.SelectionFlag.Rows
        selection.setCurrentIndex(index, flags)
        self.table.scrollTo(index)
        return True

    def _on_selection(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return  # a new query cleared the selection: keep showing the device
        device = self.model.device(rows[0].row())
        if device is not None and device.peer_key != self.selected_peer_key:
            self._show_device(device)

    def _restore_selection(self) -> None:
        if self.selected_peer_key is not None:
            self.select_device(self.selected_peer_key)

    def _show_device(self, device: FleetDevice) -> None:
        old = self.device_view
        view = DeviceHistoryView(self.client, device, self._clock, self._settings)
        view.message.connect(self.show_message)
        self.device_view = view
        if old is not None:
            sizes = (old.splitter.sizes(), old.lower_splitter.sizes())
            self.main_splitter.replaceWidget(1, view)
            view.splitter.setSizes(sizes[0])
            view.lower_splitter.setSizes(sizes[1])
            self._retire(old)
        else:
            self.main_splitter.replaceWidget(1, view)
            self.placeholder.hide()
            self._restore_device_splitters(view)
        view.start()
        self._update_export_actions()
        self.deviceChanged.emit(device.peer_key)

    def _retire(self, view: DeviceHistoryView) -> None:
        view.shutdown()
        view.hide()
        view.setParent(None)
        self._closing_views.append(view)
        self._tasks.spawn(self._close_view(view), "fleet: close a device view")

    async def _close_view(self, view: DeviceHistoryView) -> None:
        try:
            await view.wait_closed()
        finally:
            if view in self._closing_views:
                self._closing_views.remove(view)
            view.deleteLater()

    def _on_refreshed(self) -> None:
        if not self._columns_fitted and self.model.rowCount():
            self._columns_fitted = True  # saved metadata columns, sized to what the first page holds
            for offset in range(len(self.model.metadata_columns)):
                self._fit_metadata_column(len(Column) + offset)
        if self.device_view is not None:
            row = self.model.row_of(self.device_view.device.peer_key)
            device = self.model.device(row) if row is not None else None
            if device is not None:
                self.device_view.show_device(device)
        self._update_export_actions()

    def _on_tick(self) -> None:
        if self.isVisible():
            self.model.refresh_times()
            if self.device_view is not None:
                self.device_view.timeline_panel.model.refresh_times()
            if self.model.error is not None:
                self._update_status()

    def _update_status(self) -> None:
        model = self.model
        shown = model.rowCount()
        parts = []
        if model.total is not None:
            matching = f"{model.total:,} device{'s' if model.total != 1 else ''}"
            if model.query:
                matching += f" matching “{model.query}”"
            parts.append(f"Showing {shown:,} of {matching}")
        error = model.error
        if error is not None:
            text = describe_failure(error)
            if model.last_success is not None:
                text += f" · showing what was read at {format_local_time(model.last_success)[11:]}; retrying"
            else:
                text += " · retrying"
            parts.append(text)
            state = "error"
        elif not model.loaded:
            parts.append(f"Reading the fleet of {self.big_peer_url}…")
            state = "loading"
        else:
            parts.append(f"{self.big_peer_url}: up to date")
            state = "ok"
        self.status_label.setText(" · ".join(parts))
        self.status_label.setToolTip(str(error) if error is not None else "")
        if self.status_label.property("state") != state:
            self.status_label.setProperty("state", state)
            self._style_status(state)

    def _style_status(self, state: str) -> None:
        if state == "error":
            colour = "#ff7b72" if is_dark_palette(self.palette()) else "#cf222e"
            self.status_label.setStyleSheet(
                f"QLabel#fleetStatus {{ color: {colour}; background-color: rgba(229, 72, 77, 0.12);"
                " border: 1px solid rgba(229, 72, 77, 0.45); border-radius: 4px; padding: 3px 6px; }"
            )
        else:
            self.status_label.setStyleSheet(
                "QLabel#fleetStatus { color: palette(placeholder-text); padding: 3px 0; }"
            )

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, MESSAGE_MS)

    # --- metadata columns ----------------------------------------------------------------------

    def add_metadata_column(self, path: str) -> None:
        """Show the metadata at ``path`` (``site``, ``battery.level``) as a column; kept in the settings."""
        path = path.strip().removeprefix("metadata.").strip(".")
        if path and path not in self.model.metadata_columns:
            self._set_metadata_columns([*self.model.metadata_columns, path])

    def remove_metadata_column(self, path: str) -> None:
        self._set_metadata_columns([p for p in self.model.metadata_columns if p != path])

    def _set_metadata_columns(self, paths: list[str]) -> None:
        header = self.table.horizontalHeader()
        widths = {p: header.sectionSize(len(Column) + i) for i, p in enumerate(self.model.metadata_columns)}
        self.model.set_metadata_columns(paths)
        self._settings.setValue(METADATA_COLUMNS_KEY, json.dumps(self.model.metadata_columns))
        for offset, path in enumerate(self.model.metadata_columns):
            if path in widths:
                header.resizeSection(len(Column) + offset, widths[path])
            else:
                self._fit_metadata_column(len(Column) + offset)
        self._restore_selection()
        added = [p for p in self.model.metadata_columns if p not in widths]
        if added and self.model.rowCount():  # show the new column, which may be past the right edge
            column = len(Column) + self.model.metadata_columns.index(added[-1])
            self.table.scrollTo(self.model.index(max(0, self.table.rowAt(0)), column))

    def _fit_metadata_column(self, column: int) -> None:
        """Size a metadata column to its header and the values of the loaded rows (once, not live)."""
        metrics = self.table.fontMetrics()
        texts = [str(self.model.headerData(column, Qt.Orientation.Horizontal) or "")]
        texts += [
            str(self.model.index(row, column).data() or "") for row in range(min(200, self.model.rowCount()))
        ]
        width = max(metrics.horizontalAdvance(text) for text in texts) + 20
        self.table.horizontalHeader().resizeSection(column, max(60, min(240, width)))

    def known_metadata_paths(self) -> list[str]:
        """Dotted paths of the leaves of the loaded devices' metadata (what a column can show)."""
        found: dict[str, None] = {}
        for device in self.model.devices:
            stack: list[tuple[str, object]] = [("", device.metadata)]
            while stack and len(found) < 500:
                prefix, value = stack.pop()
                if isinstance(value, dict) and value and len(prefix) < 200:
                    stack.extend((f"{prefix}.{k}" if prefix else k, v) for k, v in value.items())
                elif prefix:
                    found.setdefault(prefix)
        return sorted(found)

    def ask_metadata_column(self) -> QInputDialog:
        """Ask which metadata key to show as a column (non-modal; never exec())."""
        dialog = QInputDialog(self)
        dialog.setObjectName("fleetAddColumnDialog")
        dialog.setWindowTitle("Add a Metadata Column")
        dialog.setLabelText("Metadata key (a dotted path into the metadata, like site or battery.level):")
        dialog.setInputMode(QInputDialog.InputMode.TextInput)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        paths = self.known_metadata_paths()
        edit = dialog.findChild(QLineEdit)
        if edit is not None and paths:
            completer = QCompleter(paths, dialog)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            edit.setCompleter(completer)
        dialog.textValueSelected.connect(self.add_metadata_column)
        dialog.open()
        return dialog

    def _header_menu(self, position: QPoint) -> None:
        header = self.table.horizontalHeader()
        section = header.logicalIndexAt(position)
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        path = self.model.metadata_path(section)
        if path is not None:
            remove = menu.addAction(f"Remove Column “{path}”")
            remove.triggered.connect(lambda _checked=False, p=path: self.remove_metadata_column(p))
        add = menu.addAction("Add Metadata Column…")
        add.triggered.connect(lambda _checked=False: self.ask_metadata_column())
        menu.popup(header.mapToGlobal(position))

    def _fill_remove_menu(self) -> None:
        menu = self.remove_columns_menu
        menu.clear()
        for path in self.model.metadata_columns:
            action = menu.addAction(path)
            action.triggered.connect(lambda _checked=False, p=path: self.remove_metadata_column(p))
        if not self.model.metadata_columns:
            menu.addAction("(no metadata column)").setEnabled(False)

    # --- export --------------------------------------------------------------------------------

    def _update_export_actions(self) -> None:
        has_device = self.device_view is not None
        for action in (self.history_action, self.png_action, self.svg_action):
            action.setEnabled(has_device)
        self.filtered_action.setEnabled(
            self.device_view is not None and self.device_view.timeline_panel.timeline.matches is not None
        )

    def _device_export(self, what: str) -> None:
        if self.device_view is None:
            return
        export = self.device_view.export
        if what in (".png", ".svg"):
            export.ask_plot(what)
        else:
            export.ask_history(filtered=what == "filtered")

    def ask_csv(self) -> QFileDialog:
        """Ask where to write the device table as CSV (non-modal)."""
        documents = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation))
        folder = documents if documents.is_dir() else Path.home()
        dialog = QFileDialog(self, "Export the Device Table as CSV", str(folder / "fleet.csv"), "CSV (*.csv)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("csv")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda selected: self.export_csv(Path(selected)))
        dialog.open()
        return dialog

    def export_csv(self, path: Path) -> asyncio.Task[None] | None:
        """Start writing every device the filter keeps to ``path`` as CSV; the task."""
        return self._tasks.spawn(self._export_csv(path), "fleet: export CSV")

    async def _export_csv(self, path: Path) -> None:
        def progress(done: int, total: int) -> None:
            self.show_message(f"Exporting {done:,} of {total:,} devices…")

        try:
            count = await write_fleet_csv(
                self.client,
                path,
                query=self.model.query,
                sort=self.model.sort_order_name,
                metadata_columns=self.model.metadata_columns,
                now=lambda: self._clock.time() + self.client.server_offset,
                progress=progress,
            )
        except BigPeerError as error:
            self.show_message(f"Could not export the devices: {describe_failure(error)}")
            return
        except OSError as error:
            self.show_message(f"Could not export the devices to {path}: {error.strerror or error}")
            return
        self.show_message(f"Exported {count:,} devices to {path}.")

    # --- settings and closing ------------------------------------------------------------------

    def _about(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("About Small Peer Inspector")
        box.setText(f"<b>Small Peer Inspector</b> {__version__}")
        box.setInformativeText(f"The devices of the Big Peer at {self.big_peer_url}, read-only.")
        box.open()

    def _restore_settings(self) -> None:
        settings = self._settings
        geometry = settings.value("fleet/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            screen = self.screen().availableGeometry()
            self.resize(min(1500, int(screen.width() * 0.92)), min(900, int(screen.height() * 0.9)))
        saved = settings.value("fleet/splitter")
        if not (isinstance(saved, QByteArray) and self.main_splitter.restoreState(saved)):
            self.main_splitter.setSizes([850, 710])

    def _restore_device_splitters(self, view: DeviceHistoryView) -> None:
        for key, splitter, sizes in (
            ("fleet/plotSplitter", view.splitter, [330, 520]),
            ("fleet/historySplitter", view.lower_splitter, [330, 400]),
        ):
            saved = self._settings.value(key)
            if not (isinstance(saved, QByteArray) and splitter.restoreState(saved)):
                splitter.setSizes(sizes)

    def _save_settings(self) -> None:
        settings = self._settings
        settings.setValue("fleet/geometry", self.saveGeometry())
        settings.setValue("fleet/splitter", self.main_splitter.saveState())
        if self.device_view is not None:
            settings.setValue("fleet/plotSplitter", self.device_view.splitter.saveState())
            settings.setValue("fleet/historySplitter", self.device_view.lower_splitter.saveState())
        settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing:
            self._closing = True
            self._save_settings()
            self._tick.stop()
            self._filter_timer.stop()
            self.model.shutdown()
            self.launcher.close_all()
            if self.device_view is not None:
                self.device_view.shutdown()
            self._tasks.cancel()
            self.closed.emit()
        super().closeEvent(event)

    async def wait_closed(self) -> None:
        """After the window closed: wait until its work has ended and its connections are closed."""
        await self._tasks.wait_cancelled()
        if self.device_view is not None:
            await self.device_view.wait_closed()
        for view in list(self._closing_views):
            await view.wait_closed()
        await self.launcher.wait_closed()
        await self.client.close()
