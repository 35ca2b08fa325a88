"""`MainWindow`: the inspector window over one `Ditto`.

The window adapts the peer, it does not own it: whoever made the `Ditto` closes it
(the app does, once the window has closed). Work on the peer runs as asyncio tasks on
the running loop (qasync's in the app) and is cancelled when the window closes; peer
events arrive through ``small_peer_info.observe`` on the same thread.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from PySide6.QtCore import QByteArray, QItemSelectionModel, QModelIndex, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QFontDatabase, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from inspector._version import __version__
from inspector.core.ditto import Ditto
from inspector.core.errors import DittoClosedError
from inspector.core.replication import ConnectionState
from inspector.core.small_peer_info import (
    DocumentCollected,
    ReplicationChanged,
    SettingChanged,
    SmallPeerInfoEvent,
    SmallPeerInfoSyncScope,
)
from inspector.gui.document_view import DocumentPanel
from inspector.gui.formatting import format_countdown, format_interval, format_relative
from inspector.gui.metadata_editor import MetadataEditorPanel
from inspector.gui.tasks import TaskSet
from inspector.gui.timeline import SEQ_ROLE, Column, TimelineModel, TimelineView

__all__ = ["SCOPE_LABELS", "MainWindow"]

SCOPE_LABELS: dict[SmallPeerInfoSyncScope, tuple[str, str]] = {
    SmallPeerInfoSyncScope.LOCAL_PEER_ONLY: (
        "Local peer only",
        "Documents stay on this device: nothing is sent to the Big Peer.",
    ),
    SmallPeerInfoSyncScope.BIG_PEER_ONLY: (
        "Big Peer only",
        "Documents are sent to the Big Peer (the server every device syncs with) "
        "for its device dashboard, and to no other peer.",
    ),
}
FILTER_DELAY_MS = 250
TICK_MS = 1000
MESSAGE_MS = 5000

_REPLICATION_STATES = {
    ConnectionState.NOT_CONFIGURED: (
        "not configured",
        "No Big Peer URL was given: nothing leaves this device.",
    ),
    ConnectionState.CONNECTED: ("connected", "The last exchange with the Big Peer succeeded."),
    ConnectionState.OFFLINE: ("offline", "The Big Peer is unreachable or failing; queued documents wait."),
    ConnectionState.IDLE: ("idle", "A Big Peer is configured; nothing is being sent right now."),
}


class MainWindow(QMainWindow):
    """The inspector window over ``ditto`` (see SPEC §4 for its widgets' object names).

    ``settings`` keeps the window's geometry and splitter positions; by default the
    application's `QSettings`. Closing the window stops its work and emits `closed`;
    ``await wait_closed()`` then waits until its tasks have ended.
    """

    closed = Signal()

    def __init__(
        self, ditto: Ditto, settings: QSettings | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._ditto = ditto
        self._small_peer_info = small_peer_info = ditto.small_peer_info
        self._settings = settings if settings is not None else QSettings()
        self._tasks = TaskSet()
        self._scope: SmallPeerInfoSyncScope | None = None
        self._scope_in_flight = False
        self._collecting = False
        self._closing = False
        self._selected_seq: int | None = None
        self.setObjectName("mainWindow")
        self.setWindowTitle(f"Small Peer Inspector — {ditto.device_name}")

        self._build_controls()
        self.metadata_panel = MetadataEditorPanel(small_peer_info)
        self._build_timeline()
        self.document_panel = DocumentPanel(ditto.store, self._tasks)
        self._build_layout()
        self._build_status_bar()
        self._build_menus()

        self.metadata_panel.message.connect(self._show_message)
        self.document_panel.message.connect(self._show_message)

        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(TICK_MS)
        self._tick_timer.timeout.connect(self._tick)

        self._subscription = small_peer_info.observe(self._on_event)
        self._show_collection_state()
        self._update_replication()
        self._update_counts()
        self._restore_settings()
        self._tasks.spawn(self._load_sync_scope(), "window: read the sync scope")
        self.timeline_model.refresh()
        self._tick_timer.start()

    # --- building -----------------------------------------------------------------------------------

    def _build_controls(self) -> None:
        self.collection_toggle = QPushButton(objectName="collectionToggle")
        self.collection_toggle.setCheckable(True)
        self.collection_toggle.setToolTip(
            "Collect small peer info: one document at once, then one every interval"
        )
        self.collection_toggle.toggled.connect(self._on_toggle)
        self.interval_label = QLabel(
            format_interval(self._small_peer_info.interval), objectName="collectionInterval"
        )
        self.interval_label.setToolTip("Time between two collections (set with --interval)")
        self.collect_now_action = QAction("Collect &Now", self)
        self.collect_now_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        self.collect_now_action.setToolTip("Collect one document right away")
        self.collect_now_action.triggered.connect(self.collect_now)
        self.collect_now_button = QPushButton("Collect now", objectName="collectNowButton")
        self.collect_now_button.setToolTip(self.collect_now_action.toolTip())
        self.collect_now_button.clicked.connect(self.collect_now_action.trigger)
        self.schedule_label = QLabel(objectName="collectionSchedule")
        self.schedule_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.scope_combo = QComboBox(objectName="syncScopeCombo")
        for scope, (label, tip) in SCOPE_LABELS.items():
            self.scope_combo.addItem(label, scope.value)
            self.scope_combo.setItemData(self.scope_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.scope_combo.setEnabled(False)  # until the peer's scope is read
        self.scope_combo.activated.connect(self._on_scope_chosen)
        self.scope_message = QLabel(objectName="syncScopeMessage")
        self.scope_message.setWordWrap(True)
        self.scope_message.hide()

        self.controls = QWidget(objectName="controlBar")
        row = QHBoxLayout(self.controls)
        row.setContentsMargins(8, 6, 8, 6)
        row.addWidget(self.collection_toggle)
        row.addWidget(self.interval_label)
        row.addWidget(self.collect_now_button)
        row.addSpacing(8)
        row.addWidget(self.schedule_label, 1)
        scope_label = QLabel("Sync scope:")
        scope_label.setBuddy(self.scope_combo)
        row.addWidget(scope_label)
        row.addWidget(self.scope_combo)

    def _build_timeline(self) -> None:
        self.timeline_model = TimelineModel(self._ditto.store, self._tasks, self)
        self.timeline_model.countsChanged.connect(self._update_counts)
        self.timeline_model.searchingChanged.connect(lambda _searching: self._update_counts())

        self.filter_edit = QLineEdit(objectName="timelineFilter")
        self.filter_edit.setPlaceholderText("Filter: text anywhere in a document's JSON (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_status = QLabel(objectName="timelineFilterStatus")
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self._apply_filter)
        self.filter_edit.textChanged.connect(lambda _text: self._filter_timer.start())
        self.filter_edit.returnPressed.connect(self._apply_filter)

        view = self.timeline_view = TimelineView(objectName="timelineView")
        view.setModel(self.timeline_model)
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
        self.timeline_model.modelAboutToBeReset.connect(self._remember_selection)
        self.timeline_model.modelReset.connect(self._restore_selection)

    def _build_layout(self) -> None:
        timeline = QWidget(objectName="timelinePanel")
        title = QLabel("Timeline")
        title.setObjectName("panelTitle")
        top = QHBoxLayout()
        top.addWidget(title)
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.filter_status)
        column = QVBoxLayout(timeline)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(self.timeline_view, 1)

        self.timeline_splitter = QSplitter(Qt.Orientation.Vertical, objectName="timelineSplitter")
        self.timeline_splitter.addWidget(timeline)
        self.timeline_splitter.addWidget(self.document_panel)
        self.timeline_splitter.setChildrenCollapsible(False)
        self.main_splitter = QSplitter(Qt.Orientation.Horizontal, objectName="mainSplitter")
        self.main_splitter.addWidget(self.metadata_panel)
        self.main_splitter.addWidget(self.timeline_splitter)
        self.main_splitter.setChildrenCollapsible(False)
        self.main_splitter.setStretchFactor(1, 1)

        central = QWidget(objectName="central")
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.controls)
        scope_row = QHBoxLayout()
        scope_row.setContentsMargins(8, 0, 8, 0)
        scope_row.addWidget(self.scope_message)
        layout.addLayout(scope_row)
        body = QVBoxLayout()
        body.setContentsMargins(8, 4, 8, 4)
        body.addWidget(self.main_splitter)
        layout.addLayout(body, 1)
        self.setCentralWidget(central)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setObjectName("statusBar")
        self.peer_key_label = QLabel(self._ditto.peer_key, objectName="peerKeyLabel")
        self.peer_key_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.peer_key_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.peer_key_label.setToolTip("This peer's key: its identity, as the Big Peer knows it")
        self.copy_peer_key_action = QAction("Copy Peer &Key", self)
        self.copy_peer_key_action.triggered.connect(self.copy_peer_key)
        self.copy_peer_key_button = QToolButton(objectName="copyPeerKeyButton")
        self.copy_peer_key_button.setText("Copy")
        self.copy_peer_key_button.setToolTip("Copy the peer key to the clipboard")
        self.copy_peer_key_button.clicked.connect(self.copy_peer_key)
        self.device_name_label = QLabel(f"Device: {self._ditto.device_name}", objectName="deviceNameLabel")
        self.device_name_label.setToolTip(f"Persistence directory: {self._ditto.persistence_directory}")
        self.document_count_label = QLabel(objectName="documentCountLabel")
        self.replication_label = QLabel(objectName="replicationStatusLabel")
        peer = QLabel("Peer key:")
        peer.setObjectName("statusCaption")
        for widget in (
            peer,
            self.peer_key_label,
            self.copy_peer_key_button,
            self.device_name_label,
            self.document_count_label,
            self.replication_label,
        ):
            bar.addPermanentWidget(widget)

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        quit_action = file_menu.addAction("&Quit")
        quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.close)

        peer_menu = menus.addMenu("&Peer")
        self.collection_action = QAction("&Collect Small Peer Info", self)
        self.collection_action.setCheckable(True)
        self.collection_action.toggled.connect(self.collection_toggle.setChecked)
        peer_menu.addAction(self.collection_action)
        peer_menu.addAction(self.collect_now_action)
        peer_menu.addSeparator()
        peer_menu.addAction(self.copy_peer_key_action)

        metadata_menu = menus.addMenu("&Metadata")
        panel = self.metadata_panel
        metadata_menu.addActions([panel.apply_action, panel.revert_action, panel.format_action])

        view_menu = menus.addMenu("&View")
        find = view_menu.addAction("&Filter Timeline")
        find.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
        find.triggered.connect(lambda: (self.filter_edit.setFocus(), self.filter_edit.selectAll()))
        diff = view_menu.addAction("Show &Diff with Previous Document")
        diff.setCheckable(True)
        diff.setShortcut(QKeySequence("Ctrl+D"))
        diff.toggled.connect(self.document_panel.diff_toggle.setChecked)
        self.document_panel.diff_toggle.toggled.connect(diff.setChecked)
        copy = view_menu.addAction("&Copy Document")
        copy.setShortcut(QKeySequence("Ctrl+Shift+C"))
        copy.triggered.connect(self.document_panel.copy)

        help_menu = menus.addMenu("&Help")
        about = help_menu.addAction("&About Small Peer Inspector")
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self._about)

    # --- collection ---------------------------------------------------------------------------------

    def _on_toggle(self, checked: bool) -> None:
        try:
            if self._small_peer_info.is_enabled != checked:
                self._small_peer_info.is_enabled = checked
        except DittoClosedError:
            return
        self._show_collection_state()

    def _show_collection_state(self) -> None:
        try:
            enabled = self._small_peer_info.is_enabled
        except DittoClosedError:
            return
        for widget in (self.collection_toggle, self.collection_action):
            if widget.isChecked() != enabled:
                widget.blockSignals(True)
                widget.setChecked(enabled)
                widget.blockSignals(False)
        self.collection_toggle.setText("Collection on" if enabled else "Collection off")
        self._update_placeholder()
        can_collect = enabled and not self._collecting
        self.collect_now_button.setEnabled(can_collect)
        self.collect_now_action.setEnabled(can_collect)
        self._update_schedule()

    def collect_now(self) -> None:
        """Collect one document right away (while collection is on)."""
        if self._collecting or self._closing or not self._small_peer_info.is_enabled:
            return
        self._collecting = True
        self._show_collection_state()
        self._tasks.spawn(self._collect_now(), "window: collect now")

    async def _collect_now(self) -> None:
        try:
            document = await self._small_peer_info.collect_now()
        finally:
            self._collecting = False
            if not self._closing:
                self._show_collection_state()
        if document is not None:
            self._show_message(f"Collected a document at {document['last_updated_at']}.")

    def _update_schedule(self) -> None:
        try:
            sp = self._small_peer_info
            enabled, last, due = sp.is_enabled, sp.last_collected_at, sp.next_collection_at
        except DittoClosedError:
            return
        now = time.time()
        text = f"Last collected {format_relative(last, now)}" if last is not None else "Nothing collected yet"
        if not enabled:
            text += " · collection is off"
        elif due is None or due <= now:
            text += " · collecting now…"
        else:
            text += f" · next in {format_countdown(due - now)}"
        self.schedule_label.setText(text)

    # --- sync scope ---------------------------------------------------------------------------------

    async def _load_sync_scope(self) -> None:
        scope = await self._small_peer_info.get_sync_scope()
        if self._scope is None:  # an event may have told us first
            self._scope = scope
        self._select_scope(self._scope)
        self.scope_combo.setEnabled(True)

    def _select_scope(self, scope: SmallPeerInfoSyncScope) -> None:
        self.scope_combo.setCurrentIndex(self.scope_combo.findData(scope.value))
        self.scope_combo.setToolTip(SCOPE_LABELS[scope][1])

    def _on_scope_chosen(self, index: int) -> None:
        value = self.scope_combo.itemData(index)
        if self._scope is None or value == self._scope.value or self._scope_in_flight:
            return
        self._scope_in_flight = True
        self.scope_combo.setEnabled(False)
        self.scope_message.hide()
        self._tasks.spawn(self._set_sync_scope(value), "window: set the sync scope")

    async def _set_sync_scope(self, value: str) -> None:
        try:
            await self._small_peer_info.set_sync_scope(value)
        except Exception as exc:  # any failure: revert and say so; the peer is unchanged
            if self._scope is not None:
                self._select_scope(self._scope)
            self.scope_message.setText(f"Could not change the sync scope: {exc}")
            self.scope_message.show()
            self._show_message("The sync scope was not changed.")
        else:
            self._scope = SmallPeerInfoSyncScope(value)
            self._select_scope(self._scope)
            self._show_message(f"Sync scope: {SCOPE_LABELS[self._scope][0]}.")
        finally:
            self._scope_in_flight = False
            self.scope_combo.setEnabled(True)

    # --- timeline and document ----------------------------------------------------------------------

    def _apply_filter(self) -> None:
        self._filter_timer.stop()
        self.timeline_model.set_filter(self.filter_edit.text())
        self._update_counts()

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():  # a reset clears the selection: keep the document shown
            self._selected_seq = current.data(SEQ_ROLE)
            self.document_panel.show_seq(self._selected_seq)

    def _remember_selection(self) -> None:
        self._selected_seq = self.document_panel.seq

    def _restore_selection(self) -> None:
        if self._selected_seq is None:
            return
        row = self.timeline_model.row_of(self._selected_seq)
        if row is not None:
            index = self.timeline_model.index(row, 0)
            self.timeline_view.selectionModel().setCurrentIndex(
                index,
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )
            self.timeline_view.scrollTo(index)

    def _update_counts(self) -> None:
        model = self.timeline_model
        total = model.total_count
        if not model.loaded:
            self.document_count_label.setText("Reading the history…")
        else:
            self.document_count_label.setText(
                "No documents yet" if total == 0 else f"{total:,} document" + ("s" if total != 1 else "")
            )
        self._update_placeholder()
        if model.searching:
            self.filter_status.setText("Searching…")
        elif model.match_count is None:
            self.filter_status.setText("")
        elif model.matches_truncated:
            self.filter_status.setText(f"first {model.match_count:,} matches")
        else:
            count = model.match_count
            self.filter_status.setText(f"{count:,} match" + ("es" if count != 1 else ""))

    def _update_placeholder(self) -> None:
        """What the empty timeline says: why it is empty and what to do."""
        model = self.timeline_model
        if not model.loaded:
            text = "Reading the history…"
        elif model.searching:
            text = "Searching the documents…"
        elif model.match_count is not None:
            text = f"No document contains “{model.filter_text}”."
        elif self._closing:
            return
        elif self._small_peer_info.is_enabled:
            text = "Collecting the first document…"
        else:
            every = format_interval(self._small_peer_info.interval)
            text = f"No documents yet.\nTurn collection on to collect one now, then one {every}."
        self.timeline_view.set_placeholder_text(text)

    # --- status bar ---------------------------------------------------------------------------------

    def copy_peer_key(self) -> None:
        QGuiApplication.clipboard().setText(self._ditto.peer_key)
        self._show_message("Copied the peer key to the clipboard.")

    def _update_replication(self) -> None:
        status = self._ditto.replication_status
        label, meaning = _REPLICATION_STATES.get(status.state, (str(status.state), ""))
        text = f"Big Peer: {label}"
        if status.queue_length:
            text += f" · {status.queue_length:,} queued"
        if status.dropped:
            text += f" · {status.dropped:,} dropped"
        tip = [meaning]
        if self._ditto.big_peer_url:
            tip.append(f"URL: {self._ditto.big_peer_url}")
        if status.acknowledged:
            plural = "s" if status.acknowledged != 1 else ""
            tip.append(f"{status.acknowledged:,} document{plural} acknowledged since the peer opened")
        if status.last_acknowledged_at:
            tip.append(f"Last acknowledgement {format_relative(status.last_acknowledged_at)}")
        if status.last_error:
            tip.append(f"Last error: {status.last_error}")
        self.replication_label.setText(text)
        self.replication_label.setToolTip("\n".join(tip))
        state = status.state.value
        if self.replication_label.property("state") != state:
            self.replication_label.setProperty("state", state)
            self.replication_label.style().unpolish(self.replication_label)
            self.replication_label.style().polish(self.replication_label)

    def _show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, MESSAGE_MS)

    def _about(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("About Small Peer Inspector")
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        box.setText(f"<b>Small Peer Inspector</b> {__version__}")
        box.setInformativeText(
            "See and steer the small peer info this device reports to the Big Peer.<br><br>"
            f"Peer directory: {self._ditto.persistence_directory}"
        )
        box.open()  # not exec(): a nested loop must not run inside the asyncio loop's callbacks

    # --- peer events --------------------------------------------------------------------------------

    def _on_event(self, event: SmallPeerInfoEvent) -> None:
        if self._closing:
            return
        if isinstance(event, DocumentCollected):
            self.timeline_model.on_document_collected(event.seq, event.document)
            # The collection loop sets the next due time right after this event, in the same step.
            asyncio.get_running_loop().call_soon(self._after_collection)
        elif isinstance(event, SettingChanged):
            self._on_setting_changed(event.name, event.value)
        elif isinstance(event, ReplicationChanged):
            self._update_replication()
            self.timeline_model.mark_replication_changed()

    def _after_collection(self) -> None:
        if not self._closing:
            self._update_schedule()

    def _on_setting_changed(self, name: str, value: Any) -> None:
        if name == "is_enabled":
            self._show_collection_state()
        elif name == "metadata":
            self.metadata_panel.on_metadata_changed(value)
        elif name == "sync_scope":
            self._scope = SmallPeerInfoSyncScope(value)
            if not self._scope_in_flight:
                self._select_scope(self._scope)

    def _tick(self) -> None:
        self._update_schedule()
        self._update_replication()
        if self.isVisible():
            self.timeline_model.refresh_times()

    # --- settings and closing -----------------------------------------------------------------------

    def _restore_settings(self) -> None:
        settings = self._settings
        geometry = settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            screen = self.screen().availableGeometry()
            self.resize(min(1280, int(screen.width() * 0.9)), min(800, int(screen.height() * 0.9)))
        state = settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        for key, splitter, sizes in (
            ("window/mainSplitter", self.main_splitter, [460, 820]),
            ("window/timelineSplitter", self.timeline_splitter, [420, 330]),
        ):
            saved = settings.value(key)
            if not (isinstance(saved, QByteArray) and splitter.restoreState(saved)):
                splitter.setSizes(sizes)
        header = settings.value("timeline/header")
        if isinstance(header, QByteArray):
            self.timeline_view.horizontalHeader().restoreState(header)
        show_diff = settings.value("document/showDiff", False, type=bool)
        self.document_panel.diff_toggle.setChecked(bool(show_diff))

    def _save_settings(self) -> None:
        settings = self._settings
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/mainSplitter", self.main_splitter.saveState())
        settings.setValue("window/timelineSplitter", self.timeline_splitter.saveState())
        settings.setValue("timeline/header", self.timeline_view.horizontalHeader().saveState())
        settings.setValue("document/showDiff", self.document_panel.diff_toggle.isChecked())
        settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing:
            self._closing = True
            self._save_settings()
            self._subscription.cancel()
            self._tick_timer.stop()
            self._filter_timer.stop()
            self.metadata_panel.shutdown()
            self.timeline_model.shutdown()
            self._tasks.cancel()
            self.closed.emit()
        super().closeEvent(event)

    async def wait_closed(self) -> None:
        """After the window closed: wait until the work it started has ended."""
        await self._tasks.wait_cancelled()
