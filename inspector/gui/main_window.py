"""`MainWindow`: the inspector window over one `Ditto`.

The window composes widgets with one job each — `CollectionControls`,
`SyncScopeControl`, `MetadataEditorPanel`, `TimelinePanel`, `DocumentPanel`,
`PeerStatusBar` — over one `PeerBridge` (the peer's events as Qt signals) and one
`LocalHistory` (the peer's history as a `HistorySource`). It adapts the peer, it
does not own it: whoever made the `Ditto` closes it (the app does, once the window
has closed). Work on the peer runs as asyncio tasks on the running loop (qasync's
in the app) and is cancelled when the window closes.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QMainWindow, QMessageBox, QSplitter, QVBoxLayout, QWidget

from inspector._version import __version__
from inspector.core.clock import Clock
from inspector.core.ditto import Ditto
from inspector.gui.big_peer_dialog import FleetLauncher
from inspector.gui.bridge import PeerBridge
from inspector.gui.controls import CollectionControls, SyncScopeControl
from inspector.gui.document_view import DocumentPanel
from inspector.gui.export import ExportController
from inspector.gui.formatting import format_interval
from inspector.gui.metadata_editor import MetadataEditorPanel
from inspector.gui.plot import HistoryPlotPanel
from inspector.gui.status_bar import PeerStatusBar
from inspector.gui.tasks import TaskSet
from inspector.gui.theme import ThemeController
from inspector.gui.timeline import TimelinePanel
from inspector.history.local import LocalHistory

__all__ = ["MainWindow"]

TICK_MS = 1000
"""How often "3 min ago" in the timeline moves on."""


class MainWindow(QMainWindow):
    """The inspector window over ``ditto`` (see SPEC §4 for its widgets' object names).

    ``settings`` keeps the window's geometry and splitter positions; by default the
    application's `QSettings`. Closing the window stops its work and emits `closed`;
    ``await wait_closed()`` then waits until its tasks have ended. ``plot=False``
    builds it without the history plot (``plot_panel`` is then None).
    """

    closed = Signal()

    def __init__(
        self,
        ditto: Ditto,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
        *,
        clock: Clock | None = None,
        plot: bool = True,
    ) -> None:
        super().__init__(parent)
        self._ditto = ditto
        self._settings = settings if settings is not None else QSettings()
        self._clock = clock or ditto.clock
        self._tasks = TaskSet(report=lambda sentence: self.status_bar.show_message(sentence))
        self._closing = False
        self.setObjectName("mainWindow")
        self.setWindowTitle(f"Small Peer Inspector — {ditto.device_name}")

        self.bridge = PeerBridge(ditto, self)
        self.history = LocalHistory(ditto)
        self.collection_controls = CollectionControls(self.bridge, self._tasks, self._clock)
        self.scope_control = SyncScopeControl(self.bridge, self._tasks)
        self.metadata_panel = MetadataEditorPanel(ditto.small_peer_info, self._tasks)
        self.timeline_panel = TimelinePanel(self.history, self._tasks, self._clock, self._empty_timeline_text)
        self.document_panel = DocumentPanel(self.history, self._tasks)
        self.plot_panel = HistoryPlotPanel(self.history, self._tasks, self._settings) if plot else None
        if self.plot_panel is not None:
            self.plot_panel.link_timeline(self.timeline_panel)
        self.theme = ThemeController(self._settings, self)
        self.export = ExportController(self.history, self._tasks, self, self.timeline_panel, self.plot_panel)
        self.status_bar = PeerStatusBar(ditto, self.bridge, self._clock)
        self.setStatusBar(self.status_bar)
        self._build_layout()
        self._build_menus()

        for source in (
            self.collection_controls,
            self.scope_control,
            self.metadata_panel,
            self.document_panel,
            self.export,
        ):
            source.message.connect(self.status_bar.show_message)
        self.bridge.metadataChanged.connect(self.metadata_panel.on_metadata_changed)
        self.bridge.collectionChanged.connect(lambda _enabled: self.timeline_panel.update_status())
        self.timeline_panel.currentIndexChanged.connect(self.document_panel.show_index)
        self.timeline_panel.model.countsChanged.connect(self._show_count)

        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._on_tick)

        self._restore_settings()
        self.scope_control.start()
        self.timeline_panel.start()
        if self.plot_panel is not None:
            self.plot_panel.start()
        self._tick.start()

    # --- the parts, for tests and automation ---------------------------------------------------

    @property
    def collection_toggle(self) -> QWidget:
        return self.collection_controls.toggle

    @property
    def scope_combo(self) -> QWidget:
        return self.scope_control.combo

    @property
    def timeline_view(self) -> QWidget:
        return self.timeline_panel.view

    @property
    def timeline_model(self) -> object:
        return self.timeline_panel.model

    # --- building ------------------------------------------------------------------------------

    def _build_layout(self) -> None:
        controls = QWidget()
        controls.setObjectName("controlBar")
        row = QHBoxLayout(controls)
        row.setContentsMargins(8, 6, 8, 6)
        row.addWidget(self.collection_controls, 1)
        row.addWidget(self.scope_control)

        self.timeline_splitter = QSplitter(Qt.Orientation.Vertical)

        self.timeline_splitter.setObjectName("timelineSplitter")
        self.timeline_splitter.addWidget(self.timeline_panel)
        self.timeline_splitter.addWidget(self.document_panel)
        self.timeline_splitter.setChildrenCollapsible(False)
        self.main_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.main_splitter.setObjectName("mainSplitter")
        self.main_splitter.addWidget(self.metadata_panel)
        self.main_splitter.addWidget(self.timeline_splitter)
        self.main_splitter.setChildrenCollapsible(False)
        self.main_splitter.setStretchFactor(1, 1)

        central = QWidget()

        central.setObjectName("central")
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(controls)
        message_row = QHBoxLayout()
        message_row.setContentsMargins(8, 0, 8, 0)
        message_row.addWidget(self.scope_control.error_label)
        layout.addLayout(message_row)
        body = QVBoxLayout()
        body.setContentsMargins(8, 4, 8, 4)
        # The plot spans the window above the editor and the timeline: the most pixel columns.
        self.plot_splitter = QSplitter(Qt.Orientation.Vertical)
        self.plot_splitter.setObjectName("plotSplitter")
        if self.plot_panel is not None:
            self.plot_splitter.addWidget(self.plot_panel)
        self.plot_splitter.addWidget(self.main_splitter)
        self.plot_splitter.setChildrenCollapsible(False)
        self.plot_splitter.setStretchFactor(self.plot_splitter.count() - 1, 1)
        body.addWidget(self.plot_splitter)
        layout.addLayout(body, 1)
        self.setCentralWidget(central)

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        self.fleet_launcher = FleetLauncher(self._settings, self)  # File → Open Big Peer…: a fleet window
        file_menu.addAction(self.fleet_launcher.action)
        file_menu.addSeparator()
        file_menu.addMenu(self.export.menu(self))
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit")
        quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.close)

        peer_menu = menus.addMenu("&Peer")
        peer_menu.addAction(self.collection_controls.toggle_action)
        peer_menu.addAction(self.collection_controls.collect_now_action)
        peer_menu.addSeparator()
        self.copy_peer_key_action = peer_menu.addAction("Copy Peer &Key")
        self.copy_peer_key_action.triggered.connect(self.copy_peer_key)
        self.status_bar.copy_peer_key_button.clicked.connect(self.copy_peer_key)

        metadata_menu = menus.addMenu("&Metadata")
        panel = self.metadata_panel
        metadata_menu.addActions([panel.apply_action, panel.revert_action, panel.format_action])

        view_menu = menus.addMenu("&View")
        find = view_menu.addAction("&Filter Timeline")
        find.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
        find.triggered.connect(self.timeline_panel.focus_filter)
        diff = view_menu.addAction("Show &Diff with Previous Document")
        diff.setCheckable(True)
        diff.setShortcut(QKeySequence("Ctrl+D"))
        diff.toggled.connect(self.document_panel.diff_toggle.setChecked)
        self.document_panel.diff_toggle.toggled.connect(diff.setChecked)
        copy = view_menu.addAction("&Copy Document")
        copy.setShortcut(QKeySequence("Ctrl+Shift+C"))
        copy.triggered.connect(self.document_panel.copy)
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("&Theme")
        theme_menu.addActions(list(self.theme.actions.values()))

        help_menu = menus.addMenu("&Help")
        about = help_menu.addAction("&About Small Peer Inspector")
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self._about)

    # --- behaviour -----------------------------------------------------------------------------

    def _empty_timeline_text(self) -> str:
        """What the empty timeline says: why it is empty and what to do."""
        if self._closing or self._ditto.is_closed:
            return ""
        small_peer_info = self._ditto.small_peer_info
        if small_peer_info.is_enabled:
            return "Collecting the first document…"
        every = format_interval(small_peer_info.interval)
        return f"No documents yet.\nTurn collection on to collect one now, then one {every}."

    def _show_count(self) -> None:
        timeline = self.timeline_panel.timeline
        self.status_bar.show_count(timeline.loaded, timeline.total_count)

    def _on_tick(self) -> None:
        if self.isVisible():
            self.timeline_panel.model.refresh_times()

    def copy_peer_key(self) -> None:
        QGuiApplication.clipboard().setText(self._ditto.peer_key)
        self.status_bar.show_message("Copied the peer key to the clipboard.")

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

    # --- settings and closing ------------------------------------------------------------------

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
            ("window/plotSplitter", self.plot_splitter, [360, 540]),
        ):
            saved = settings.value(key)
            if not (isinstance(saved, QByteArray) and splitter.restoreState(saved)):
                splitter.setSizes(sizes)
        header = settings.value("timeline/header")
        if isinstance(header, QByteArray):
            self.timeline_panel.view.horizontalHeader().restoreState(header)
        show_diff = settings.value("document/showDiff", False, type=bool)
        self.document_panel.diff_toggle.setChecked(bool(show_diff))

    def _save_settings(self) -> None:
        settings = self._settings
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/mainSplitter", self.main_splitter.saveState())
        settings.setValue("window/timelineSplitter", self.timeline_splitter.saveState())
        settings.setValue("window/plotSplitter", self.plot_splitter.saveState())
        settings.setValue("timeline/header", self.timeline_panel.view.horizontalHeader().saveState())
        settings.setValue("document/showDiff", self.document_panel.diff_toggle.isChecked())
        settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing:
            self._closing = True
            self._save_settings()
            self.bridge.close()
            self.history.close()
            self._tick.stop()
            self.collection_controls.shutdown()
            self.metadata_panel.shutdown()
            self.timeline_panel.shutdown()
            if self.plot_panel is not None:
                self.plot_panel.shutdown()
            self._tasks.cancel()
            self.fleet_launcher.close_all()
            self.closed.emit()
        super().closeEvent(event)

    async def wait_closed(self) -> None:
        """After the window closed: wait until the work it started has ended."""
        await self._tasks.wait_cancelled()
        await self.fleet_launcher.wait_closed()
