"""The window's status bar: who this peer is, how many documents it keeps, where the Big Peer stands.

Everything here follows events (the bridge's signals, the timeline's counts); nothing
polls. The Big Peer label's tooltip is written when it is shown, so "3 min ago" is
always current.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QLabel, QMessageBox, QStatusBar, QToolButton, QWidget

from inspector.core.clock import Clock
from inspector.core.ditto import Ditto
from inspector.core.errors import PersistenceError
from inspector.core.replication import ConnectionState, ReplicationStatus
from inspector.gui.bridge import PeerBridge
from inspector.gui.formatting import format_relative

__all__ = ["REPLICATION_STATES", "PeerStatusBar", "describe_replication"]

MESSAGE_MS = 5000

REPLICATION_STATES = {
    ConnectionState.NOT_CONFIGURED: (
        "not configured",
        "No Big Peer URL was given: nothing leaves this device.",
    ),
    ConnectionState.IDLE: ("idle", "A Big Peer is configured; nothing was exchanged with it yet."),
    ConnectionState.CONNECTED: ("connected", "The Big Peer stored the last batch sent to it."),
    ConnectionState.OFFLINE: ("offline", "The Big Peer cannot be reached; queued documents wait."),
    ConnectionState.FAILING: ("failing", "The Big Peer answers but did not store the last batch."),
    ConnectionState.UNAUTHORIZED: ("unauthorized", "The Big Peer refuses this device token."),
}


def describe_replication(status: ReplicationStatus, url: str | None, now: float) -> tuple[str, str]:
    """The status bar's text and tooltip for a replication status."""
    label, meaning = REPLICATION_STATES.get(status.state, (str(status.state.value), ""))
    text = f"Big Peer: {label}"
    if status.sending:
        plural = "s" if status.sending != 1 else ""
        text += f" · sending {status.sending:,} document{plural}…"
    if status.queue_length:
        text += f" · {status.queue_length:,} queued"
    if status.dropped:
        text += f" · {status.dropped:,} dropped"
    tip = [meaning]
    if url:
        tip.append(f"URL: {url}")
    if status.acknowledged:
        plural = "s" if status.acknowledged != 1 else ""
        tip.append(f"{status.acknowledged:,} document{plural} acknowledged since the peer opened")
    if status.last_acknowledged_at:
        tip.append(f"Last acknowledgement {format_relative(status.last_acknowledged_at, now)}")
    if status.last_error:
        tip.append(f"Last error: {status.last_error}")
    return text, "\n".join(tip)


class PeerStatusBar(QStatusBar):
    """Peer key (with Copy), device name, document count, Big Peer state, and storage problems."""

    def __init__(self, ditto: Ditto, bridge: PeerBridge, clock: Clock, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statusBar")
        self._ditto = ditto
        self._clock = clock
        self._status = ditto.replication_status
        self._told: PersistenceError | None = None

        caption = QLabel("Peer key:")
        caption.setObjectName("statusCaption")
        self.peer_key_label = QLabel(ditto.peer_key)
        self.peer_key_label.setObjectName("peerKeyLabel")
        self.peer_key_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.peer_key_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.peer_key_label.setToolTip("This peer's key: its identity, as the Big Peer knows it")
        self.peer_key_label.setAccessibleName("Peer key")
        self.copy_peer_key_button = QToolButton()
        self.copy_peer_key_button.setObjectName("copyPeerKeyButton")
        self.copy_peer_key_button.setText("Copy")
        self.copy_peer_key_button.setToolTip("Copy the peer key to the clipboard")
        self.copy_peer_key_button.setAccessibleName("Copy the peer key")
        self.device_name_label = QLabel(f"Device: {ditto.device_name}")
        self.device_name_label.setObjectName("deviceNameLabel")
        self.device_name_label.setToolTip(f"Persistence directory: {ditto.persistence_directory}")
        self.document_count_label = QLabel("Reading the history…")
        self.document_count_label.setObjectName("documentCountLabel")
        self.replication_label = QLabel()
        self.replication_label.setObjectName("replicationStatusLabel")
        self.replication_label.installEventFilter(self)
        self.storage_label = QLabel()
        self.storage_label.setObjectName("storageProblemLabel")
        self.storage_label.setProperty("state", "error")
        self.storage_label.hide()
        # Long texts are cut rather than forcing the window wider than a small screen.
        for label in (self.peer_key_label, self.device_name_label, self.replication_label):
            label.setMinimumWidth(60)
        for widget in (
            self.storage_label,
            caption,
            self.peer_key_label,
            self.copy_peer_key_button,
            self.device_name_label,
            self.document_count_label,
            self.replication_label,
        ):
            self.addPermanentWidget(widget)
        bridge.replicationChanged.connect(self.show_replication)
        bridge.persistenceChanged.connect(self.show_persistence)
        self.show_replication(self._status)
        if ditto.persistence_problem is not None:
            self.show_persistence(ditto.persistence_problem)

    def show_message(self, text: str) -> None:
        self.showMessage(text, MESSAGE_MS)

    def show_count(self, loaded: bool, total: int) -> None:
        if not loaded:
            self.document_count_label.setText("Reading the history…")
        else:
            plural = "s" if total != 1 else ""
            self.document_count_label.setText(
                "No documents yet" if total == 0 else f"{total:,} document{plural}"
            )

    def show_replication(self, status: ReplicationStatus) -> None:
        self._status = status
        text, tip = describe_replication(status, self._ditto.big_peer_url, self._clock.time())
        self.replication_label.setText(text)
        self.replication_label.setToolTip(tip)
        state = status.state.value
        if self.replication_label.property("state") != state:
            self.replication_label.setProperty("state", state)
            self.replication_label.style().unpolish(self.replication_label)
            self.replication_label.style().polish(self.replication_label)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.replication_label and event.type() == QEvent.Type.ToolTip:
            self.replication_label.setToolTip(
                describe_replication(self._status, self._ditto.big_peer_url, self._clock.time())[1]
            )
        return super().eventFilter(watched, event)

    def show_persistence(self, error: PersistenceError | None) -> None:
        """A storage problem: a label while it lasts, and a dialog the first time it is seen."""
        if error is None:
            self.storage_label.hide()
            self.show_message("The peer's database is writable again: every pending change was saved.")
            return
        self.storage_label.setText("Storage problem")
        self.storage_label.setToolTip(str(error))
        self.storage_label.show()
        if self._told is None or self._told.problem is not error.problem:
            self._told = error
            box = QMessageBox(QMessageBox.Icon.Warning, "Storage problem", str(error), parent=self.window())
            box.setObjectName("storageProblemDialog")
            box.open()  # not exec(): a nested loop must not run inside the asyncio loop's callbacks
