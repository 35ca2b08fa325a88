"""The document view: the selected document pretty-printed, its diff with the previous one, copying."""

import orjson
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication


def collected(window, ditto, qtbot, run, *metadata):
    """Collect one document per metadata value; returns the history, newest first."""
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    for value in metadata:
        ditto.small_peer_info.metadata = value
        run(ditto.small_peer_info.collect_now())
    count = 1 + len(metadata)
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == count)
    return run(ditto.small_peer_info.history(limit=count))


def select(window, qtbot, row):
    window.timeline_view.selectRow(row)
    seq = window.timeline_panel.timeline.index_at(row)
    qtbot.waitUntil(lambda: window.document_panel.shown_index == seq)


def test_says_what_to_do_before_a_selection(window):
    panel = window.document_panel
    assert panel.view.objectName() == "documentView"
    assert panel.view.toPlainText() == ""
    assert panel.view.placeholderText() == "Select a document in the timeline to see it here."
    assert not panel.copy_button.isEnabled()
    assert not panel.diff_toggle.isEnabled()


def test_shows_the_selected_document_pretty_printed(window, ditto, qtbot, run):
    _newest, first = collected(window, ditto, qtbot, run, {"site": "lab"})

    select(window, qtbot, 1)

    panel = window.document_panel
    assert panel.view.toPlainText() == orjson.dumps(first, option=orjson.OPT_INDENT_2).decode()
    assert panel.title.text() == f"Document #1 · {first['last_updated_at']}"
    assert '  "device_name": "test-device",' in panel.view.toPlainText().splitlines()


def test_follows_the_selection(window, ditto, qtbot, run):
    newest, _first = collected(window, ditto, qtbot, run, {"site": "lab"})
    select(window, qtbot, 1)

    select(window, qtbot, 0)

    assert orjson.loads(window.document_panel.view.toPlainText()) == newest


def test_diff_shows_what_changed_since_the_previous_document(window, ditto, qtbot, run):
    newest, first = collected(window, ditto, qtbot, run, {"site": "lab"})
    select(window, qtbot, 0)

    qtbot.mouseClick(window.document_panel.diff_toggle, Qt.MouseButton.LeftButton)

    lines = window.document_panel.view.toPlainText().splitlines()
    assert lines[0] == f"--- #1 {first['last_updated_at']}"
    assert lines[1] == f"+++ #2 {newest['last_updated_at']}"
    assert '-  "metadata": {}' in lines
    assert '+  "metadata": {' in lines
    assert '+    "site": "lab"' in lines
    assert f'+  "last_updated_at": "{newest["last_updated_at"]}",' in lines
    assert window.document_panel.title.text().endswith("· changes since the previous one")


def test_diff_of_the_first_document_says_there_is_nothing_to_compare(window, ditto, qtbot, run):
    collected(window, ditto, qtbot, run)
    select(window, qtbot, 0)

    window.document_panel.diff_toggle.setChecked(True)

    assert window.document_panel.view.toPlainText().startswith(
        "# No previous document is stored: nothing to compare with.\n{"
    )


def test_diff_toggle_goes_back_to_the_document(window, ditto, qtbot, run):
    (newest,) = collected(window, ditto, qtbot, run)
    select(window, qtbot, 0)
    window.document_panel.diff_toggle.setChecked(True)

    window.document_panel.diff_toggle.setChecked(False)

    assert orjson.loads(window.document_panel.view.toPlainText()) == newest


def test_copy_puts_the_document_on_the_clipboard(window, ditto, qtbot, run):
    (newest,) = collected(window, ditto, qtbot, run)
    select(window, qtbot, 0)

    qtbot.mouseClick(window.document_panel.copy_button, Qt.MouseButton.LeftButton)

    assert orjson.loads(QGuiApplication.clipboard().text()) == newest
    assert window.statusBar().currentMessage() == "Copied the document #1 to the clipboard."


def test_copy_keeps_no_break_spaces_and_line_separators(window, ditto, qtbot, run):
    # toPlainText() would copy U+00A0 as a space and U+2028 as a line end (then not even JSON).
    newest, _ = collected(window, ditto, qtbot, run, {"name": "a\u00a0b", "note": "x\u2028y"})
    select(window, qtbot, 0)

    qtbot.mouseClick(window.document_panel.copy_button, Qt.MouseButton.LeftButton)

    assert orjson.loads(QGuiApplication.clipboard().text()) == newest


def test_copy_in_diff_mode_copies_the_diff(window, ditto, qtbot, run):
    collected(window, ditto, qtbot, run, {"a": 1})
    select(window, qtbot, 0)
    window.document_panel.diff_toggle.setChecked(True)

    window.document_panel.copy_button.click()

    assert QGuiApplication.clipboard().text() == window.document_panel.view.toPlainText()
    assert QGuiApplication.clipboard().text().startswith("--- #1 ")


def test_document_is_highlighted_as_json(window, ditto, qtbot, run):
    collected(window, ditto, qtbot, run)
    select(window, qtbot, 0)

    panel = window.document_panel
    block = panel.view.document().findBlockByNumber(2)  # '  "device_name": "test-device",'
    colours = {(r.start, r.length): r.format.foreground().color() for r in block.layout().formats()}
    assert colours[(2, 13)] == panel.highlighter.format_for("key").foreground().color()
    assert colours[(17, 13)] == panel.highlighter.format_for("string").foreground().color()
