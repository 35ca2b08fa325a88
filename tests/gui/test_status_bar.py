"""The status bar: peer key (copyable), device name, document count, replication state."""

import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from stored_history import store_documents


def test_shows_the_peer_key_as_selectable_text(window, ditto):
    label = window.status_bar.peer_key_label
    assert label.text() == ditto.peer_key
    assert label.isVisible()
    assert label.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse


def test_copy_button_puts_the_peer_key_on_the_clipboard(window, ditto, qtbot):
    QGuiApplication.clipboard().clear()

    qtbot.mouseClick(window.status_bar.copy_peer_key_button, Qt.MouseButton.LeftButton)

    assert QGuiApplication.clipboard().text() == ditto.peer_key
    assert window.statusBar().currentMessage() == "Copied the peer key to the clipboard."


def test_shows_the_device_name(window):
    assert window.status_bar.device_name_label.text() == "Device: test-device"


def test_shows_the_device_name_and_peer_in_the_title(window):
    assert window.windowTitle() == "Small Peer Inspector — test-device"


def test_counts_the_stored_documents(ditto, run, make_window, qtbot):
    store_documents(ditto, run, 1_234)

    window = make_window()

    assert window.status_bar.document_count_label.text() == "1,234 documents"


def test_count_grows_as_documents_are_collected(window, ditto, qtbot, run):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.status_bar.document_count_label.text() == "1 document")
    run(ditto.small_peer_info.collect_now())
    qtbot.waitUntil(lambda: window.status_bar.document_count_label.text() == "2 documents")


def test_shows_the_replication_state(window):
    assert window.status_bar.replication_label.text() == "Big Peer: not configured"
    assert "nothing leaves this device" in window.status_bar.replication_label.toolTip()


def test_the_big_peer_state_says_what_is_in_flight_and_why_it_is_not_connected():
    from inspector.core.replication import ConnectionState, ReplicationStatus
    from inspector.gui.status_bar import describe_replication

    sending = ReplicationStatus(ConnectionState.OFFLINE, queue_length=49, sending=5)
    text, _ = describe_replication(sending, "http://big:8080", now=0.0)
    assert text == "Big Peer: offline · sending 5 documents… · 49 queued"

    refused = ReplicationStatus(
        ConnectionState.UNAUTHORIZED,
        queue_length=49,
        last_error="The Big Peer refuses this device token (401); set the right one and restart.",
    )
    text, tip = describe_replication(refused, "http://big:8080", now=0.0)
    assert text == "Big Peer: unauthorized · 49 queued"
    assert tip.splitlines()[0] == "The Big Peer refuses this device token."
    assert "connected" not in text
    assert "{" not in tip  # sentences, never a raw body


def test_background_work_that_fails_unexpectedly_is_said_in_the_status_bar(window, qtbot, monkeypatch):
    tracebacks = []  # the traceback still goes to sys.excepthook: stderr, for developers
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, tb: tracebacks.append(error))

    async def broken():
        raise RuntimeError("nothing expected this")

    window._tasks.spawn(broken(), "window: a task with a bug")

    qtbot.waitUntil(lambda: len(tracebacks) == 1)
    assert window.status_bar.currentMessage() == (
        "Something went wrong (window: a task with a bug): Nothing expected this"
    )
