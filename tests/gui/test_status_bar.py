"""The status bar: peer key (copyable), device name, document count, replication state."""

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
