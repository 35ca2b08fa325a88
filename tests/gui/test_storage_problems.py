"""The window and a database that goes bad: said once, in words, and the rest keeps working."""

import contextlib
import random

from PySide6.QtWidgets import QLabel, QMessageBox
from pytestqt.exceptions import TimeoutError as WaitTimeout
from stored_history import store_documents

from inspector.core.store import DATABASE_FILE


def damage(path, start, end):
    """Overwrite pages from ``start`` to ``end`` (fractions of the file) with garbage."""
    size = path.stat().st_size
    first, last = int(size * start) // 4096 * 4096, int(size * end) // 4096 * 4096
    with open(path, "r+b") as file:
        file.seek(first)
        file.write(random.Random(7).randbytes(last - first))


def test_a_database_damaged_while_open_is_told_once_without_tracebacks(
    make_ditto, make_window, run, qtbot, tmp_path
):
    directory = tmp_path / "damaged"
    peer = make_ditto(directory)
    store_documents(peer, run, 3000, metadata=b'{"padding": "' + b"p" * 3000 + b'"}')
    run(peer.store.checkpoint())
    run(peer.close())
    peer = make_ditto(directory)
    window = make_window(peer)  # the first screen is read; then the disk goes bad under it
    damage(directory / DATABASE_FILE, 0.3, 0.6)
    # Scroll into the damaged third of the file until a read meets the damage (rows whose
    # pages SQLite still holds from before the damage read fine, so one place may not do).
    rows = window.timeline_model.rowCount()
    for fraction in (0.5, 0.4, 0.6, 0.45, 0.55, 0.35, 0.65):
        middle = window.timeline_model.index(int(rows * fraction), 0)
        window.timeline_panel.view.scrollTo(middle)
        with contextlib.suppress(WaitTimeout):
            qtbot.waitUntil(lambda: window.timeline_panel.timeline.error is not None, timeout=4_000)
            break
    assert window.timeline_panel.timeline.error is not None
    assert window.timeline_panel.filter_status.text() == "the history cannot be read"
    qtbot.waitUntil(lambda: window.status_bar.storage_label.isVisible(), timeout=30_000)
    dialogs = [d for d in window.findChildren(QMessageBox) if d.objectName() == "storageProblemDialog"]
    assert len(dialogs) == 1
    assert "is damaged" in dialogs[0].text() and "Move it aside" in dialogs[0].text()
    assert window.status_bar.storage_label.text() == "Storage problem"
    # Scrolling over more unreadable pages asks nothing again and tells nothing again.
    reads = window.timeline_panel.timeline.pages_read
    window.timeline_panel.view.scrollToTop()
    window.timeline_panel.view.scrollTo(middle)
    qtbot.wait(50)
    assert window.timeline_panel.timeline.pages_read == reads
    assert len([d for d in window.findChildren(QMessageBox) if d.objectName() == "storageProblemDialog"]) == 1
    # What still works, works: the switches.
    peer.small_peer_info.is_enabled = False
    assert isinstance(window.status_bar.storage_label, QLabel)
