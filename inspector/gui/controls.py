"""The peer's two switches in the window: collection on/off, and the sync scope.

Both are honest in both directions (SPEC §4): any change of the toggle's checked
state or of the combo's current item (mouse, keyboard, accessibility tools,
automation calling ``setChecked`` / ``setCurrentIndex``) is a request to the peer;
the widget shows the peer's state once it is applied, and goes back with a message
if the request fails. A change made to the peer elsewhere arrives through the
bridge and is shown under a `QSignalBlocker`, so it is never sent back.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QHideEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from inspector.core.clock import Clock
from inspector.core.errors import DittoClosedError
from inspector.core.events import SmallPeerInfoSyncScope
from inspector.gui.bridge import PeerBridge
from inspector.gui.formatting import format_countdown, format_interval, format_relative
from inspector.gui.tasks import TaskSet

__all__ = ["SCOPE_LABELS", "CollectionControls", "SyncScopeControl"]

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
COUNTDOWN_MS = 1000


class CollectionControls(QWidget):
    """``collectionToggle``, the interval, *Collect now* and the last/next collection countdown."""

    message = Signal(str)

    def __init__(
        self, bridge: PeerBridge, tasks: TaskSet, clock: Clock, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("collectionControls")
        self._small_peer_info = bridge.small_peer_info
        self._tasks = tasks
        self._clock = clock
        self._collecting = False
        self._failure: str | None = None  # why the last Collect now failed, until a document is collected
        self._last: float | None = self._small_peer_info.last_collected_at
        self._next: float | None = self._small_peer_info.next_collection_at

        self.toggle = QPushButton()

        self.toggle.setObjectName("collectionToggle")
        self.toggle.setCheckable(True)
        self.toggle.setAccessibleName("Collect small peer info")
        self.toggle.setToolTip("Collect small peer info: one document at once, then one every interval")
        self.toggle.toggled.connect(self._request)
        self.interval_label = QLabel(format_interval(self._small_peer_info.interval))
        self.interval_label.setObjectName("collectionInterval")
        self.interval_label.setToolTip("Time between two collections (set with --interval)")
        self.toggle_action = QAction("&Collect Small Peer Info", self)
        self.toggle_action.setCheckable(True)
        self.toggle_action.toggled.connect(self.toggle.setChecked)
        self.collect_now_action = QAction("Collect &Now", self)
        self.collect_now_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        self.collect_now_action.setToolTip("Collect one document right away")
        self.collect_now_action.triggered.connect(self.collect_now)
        self.collect_now_button = QPushButton("Collect &now")
        self.collect_now_button.setObjectName("collectNowButton")
        self.collect_now_button.setToolTip(self.collect_now_action.toolTip())
        self.collect_now_button.clicked.connect(self.collect_now_action.trigger)
        self.schedule_label = QLabel()
        self.schedule_label.setObjectName("collectionSchedule")
        self.schedule_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._countdown = QTimer(self)
        self._countdown.setInterval(COUNTDOWN_MS)
        self._countdown.timeout.connect(self.update_schedule)

        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.toggle)
        row.addWidget(self.interval_label)
        row.addWidget(self.collect_now_button)
        row.addSpacing(8)
        row.addWidget(self.schedule_label, 1)

        bridge.collectionChanged.connect(self._show)
        bridge.scheduleChanged.connect(self._on_schedule)
        self._show(self._small_peer_info.is_enabled)

    def shutdown(self) -> None:
        self._countdown.stop()

    def _request(self, checked: bool) -> None:
        try:
            self._small_peer_info.is_enabled = checked
        except DittoClosedError:
            self._show(not checked)  # nothing changed: show the peer's state again
            return
        self._show(self._small_peer_info.is_enabled)

    def _show(self, enabled: bool) -> None:
        for widget in (self.toggle, self.toggle_action):
            if widget.isChecked() != enabled:
                with QSignalBlocker(widget):
                    widget.setChecked(enabled)
        self.toggle.setText("Collection on" if enabled else "Collection off")
        can_collect = enabled and not self._collecting
        self.collect_now_button.setEnabled(can_collect)
        self.collect_now_action.setEnabled(can_collect)
        if not enabled:
            self._next = None
        self.update_schedule()

    def _on_schedule(self, last: float | None, due: float | None) -> None:
        if last != self._last:
            self._failure = None  # a document was collected since
        self._last, self._next = last, due
        self.update_schedule()

    def collect_now(self) -> None:
        """Collect one document right away (while collection is on)."""
        if self._collecting or not self.toggle.isChecked():
            return
        self._collecting = True
        self._show(True)
        self._tasks.spawn(self._collect_now(), "window: collect now")

    async def _collect_now(self) -> None:
        self._failure = None
        try:
            document = await self._small_peer_info.collect_now()
        except DittoClosedError:
            raise  # the window is closing: nothing to say
        except Exception as error:  # a damaged or full database: said beside the button, never a traceback
            self._failure = f"Could not collect: {error}"
            self.message.emit(self._failure)
            return
        finally:
            self._collecting = False
            self._show(self.toggle.isChecked())
        if document is not None:
            self.message.emit(f"Collected a document at {document['last_updated_at']}.")

    def update_schedule(self) -> None:
        enabled = self.toggle.isChecked()
        now = self._clock.time()
        last, due = self._last, self._next
        text = f"Last collected {format_relative(last, now)}" if last is not None else "Nothing collected yet"
        if not enabled:
            text += " · collection is off"
        elif due is None or due <= now:
            text += " · collecting now…"
        else:
            text += f" · next in {format_countdown(due - now)}"
        if self._failure is not None:
            text += f" · {self._failure}"
        self.schedule_label.setText(text)
        self.schedule_label.setToolTip(self._failure or "")
        # The countdown only ticks while there is something to count down to (and "3 s ago" to move).
        if (enabled or last is not None) and self.isVisible():
            if not self._countdown.isActive():
                self._countdown.start()
        else:
            self._countdown.stop()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.update_schedule()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._countdown.stop()


class SyncScopeControl(QWidget):
    """``syncScopeCombo`` with its label, and the message shown when a change fails."""

    message = Signal(str)

    def __init__(self, bridge: PeerBridge, tasks: TaskSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("syncScopeControl")
        self._small_peer_info = bridge.small_peer_info
        self._tasks = tasks
        self._scope: SmallPeerInfoSyncScope | None = None
        self._in_flight = False

        self.combo = QComboBox()

        self.combo.setObjectName("syncScopeCombo")
        self.combo.setAccessibleName("Sync scope")
        self.combo.setAccessibleDescription("Where collected documents may go")
        for scope, (label, tip) in SCOPE_LABELS.items():
            self.combo.addItem(label, scope.value)
            self.combo.setItemData(self.combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.combo.setEnabled(False)  # until the peer's scope is read
        self.combo.currentIndexChanged.connect(self._on_index_changed)
        caption = QLabel("Sync &scope:")
        caption.setBuddy(self.combo)
        self.error_label = QLabel()
        self.error_label.setObjectName("syncScopeMessage")
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(caption)
        row.addWidget(self.combo)
        bridge.syncScopeChanged.connect(self._on_peer_scope)

    def start(self) -> None:
        self._tasks.spawn(self._load(), "window: read the sync scope")

    async def _load(self) -> None:
        scope = await self._small_peer_info.get_sync_scope()
        if self._scope is None:  # an event may have told us first
            self._scope = scope
        self._show(self._scope)
        self.combo.setEnabled(True)

    @property
    def loaded(self) -> bool:
        return self._scope is not None

    def _show(self, scope: SmallPeerInfoSyncScope) -> None:
        with QSignalBlocker(self.combo):
            self.combo.setCurrentIndex(self.combo.findData(scope.value))
        self.combo.setToolTip(SCOPE_LABELS[scope][1])

    def _on_peer_scope(self, value: str) -> None:
        self._scope = SmallPeerInfoSyncScope(value)
        if not self._in_flight:
            self._show(self._scope)

    def _on_index_changed(self, index: int) -> None:
        value = self.combo.itemData(index)
        if self._scope is None or self._in_flight:
            if self._scope is not None:
                self._show(self._scope)  # one request at a time: this one is refused
            return
        if value == self._scope.value:
            return
        self._in_flight = True
        self.combo.setEnabled(False)
        self.error_label.hide()
        self._tasks.spawn(self._set(value), "window: set the sync scope")

    async def _set(self, value: str) -> None:
        try:
            await self._small_peer_info.set_sync_scope(value)
        except Exception as exc:  # any failure: go back and say so; the peer is unchanged
            if self._scope is not None:
                self._show(self._scope)
            self.error_label.setText(f"Could not change the sync scope: {exc}")
            self.error_label.show()
            self.message.emit("The sync scope was not changed.")
        else:
            self._scope = SmallPeerInfoSyncScope(value)
            self._show(self._scope)
            self.message.emit(f"Sync scope: {SCOPE_LABELS[self._scope][0]}.")
        finally:
            self._in_flight = False
            self.combo.setEnabled(True)
