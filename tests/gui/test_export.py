"""File → Export: the history as JSON Lines (all, or what the filter keeps), the plot as PNG and SVG."""

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
from PySide6.QtGui import QImage
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QFileDialog, QPushButton
from stored_history import store_documents
from test_plot import plotted, store_history

from inspector.gui import export


def lines(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def wait_finished(qtbot, window, task):
    qtbot.waitUntil(task.done, timeout=20_000)
    assert task.exception() is None


def file_menu_actions(window):
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    export_menu = next(a.menu() for a in file_menu.actions() if a.text() == "&Export")
    return {a.text(): a for a in export_menu.actions() if a.text()}


def test_the_history_exports_as_one_compact_document_per_line_oldest_first(
    ditto, run, make_window, qtbot, tmp_path
):
    store_documents(ditto, run, 1234, metadata=b'{"site":"lab","note":"line\\nbreak"}')
    window = make_window()
    path = tmp_path / "history.jsonl"

    wait_finished(qtbot, window, window.export.export_history(path))

    raw = path.read_bytes().splitlines()
    assert len(raw) == 1234
    assert all(line == orjson.dumps(orjson.loads(line)) for line in raw)  # compact, one per line
    newest_first = run(ditto.small_peer_info.history(limit=2000))
    assert lines(path) == newest_first[::-1]
    assert window.status_bar.currentMessage() == f"Exported 1,234 documents to {path}."
    assert not path.with_name("history.jsonl.part").exists()


def test_a_filtered_export_holds_what_the_filter_keeps(ditto, run, make_window, qtbot, tmp_path):
    kept = {i for i in range(60) if i % 7 == 0 or 30 <= i < 34}
    store_history(ditto, run, 60, metadata=lambda i: {"tag": "needle" if i in kept else "hay"})
    window = make_window()
    assert not window.export.filtered_action.isEnabled()
    window.timeline_panel.filter_edit.setText("needle")
    window.timeline_panel.apply_filter()
    qtbot.waitUntil(lambda: window.timeline_panel.timeline.matches is not None)
    assert window.export.filtered_action.isEnabled()
    path = tmp_path / "filtered.jsonl"

    wait_finished(qtbot, window, window.export.export_history(path, filtered=True))

    exported = lines(path)
    assert [d["metadata"]["tag"] for d in exported] == ["needle"] * 13
    everything = run(ditto.small_peer_info.history(limit=100))[::-1]
    assert exported == [d for d in everything if d["metadata"]["tag"] == "needle"]


def test_cancelling_an_export_leaves_no_file(ditto, run, make_window, qtbot, tmp_path, monkeypatch):
    store_documents(ditto, run, 300)
    window = make_window()
    gate = asyncio.Event()
    documents = window.history.documents
    pages = []

    async def slow_documents(first, last):  # the second page waits until the test lets it go
        pages.append(first)
        if len(pages) > 1:
            await gate.wait()
        return await documents(first, last)

    monkeypatch.setattr(window.history, "documents", slow_documents)
    monkeypatch.setattr(export, "PAGE", 100)
    path = tmp_path / "cancelled.jsonl"
    task = window.export.export_history(path)
    qtbot.waitUntil(lambda: len(pages) == 2)
    assert path.with_name("cancelled.jsonl.part").exists()

    dialog = window.findChild(export.QProgressDialog)
    assert not dialog.isModal()  # the window stays usable while it exports
    dialog.findChild(QPushButton).click()  # Cancel

    qtbot.waitUntil(task.done)
    assert task.cancelled()
    assert not path.exists() and not path.with_name("cancelled.jsonl.part").exists()
    assert window.status_bar.currentMessage() == "Export cancelled: nothing was written."


def test_the_plot_exports_as_png_and_svg(ditto, run, make_window, qtbot, tmp_path):
    store_history(ditto, run, 50, metadata=lambda i: {"battery": {"level": 90 - i // 10}})
    window = make_window()
    panel = plotted(qtbot, window)
    panel.add_series("metadata.battery.level")
    panel = plotted(qtbot, window, 2)
    window.timeline_panel.select_index(25)
    qtbot.waitUntil(panel.cursor_line.isVisible)

    assert window.export.export_plot(tmp_path / "plot.png")
    image = QImage(str(tmp_path / "plot.png"))
    assert not image.isNull() and image.width() >= panel.plot.width() - 2

    assert window.export.export_plot(tmp_path / "plot.svg")
    svg = tmp_path / "plot.svg"
    assert QSvgRenderer(str(svg)).isValid()
    root = ET.parse(svg).getroot()
    polylines = root.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert [p.get("data-name") for p in polylines] == panel.series
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "metadata.battery.level (right axis)" in texts
    assert any(text and text.endswith("GiB") for text in texts)  # the bytes axis' labels
    # Points are pixels, not Unix seconds: each document of the 50 keeps its own column.
    width = float(root.get("width"))
    xs = [float(p.split(",")[0]) for p in polylines[0].get("points").split()]
    assert len(set(xs)) == 50 and all(0 <= x <= width for x in xs)


def test_the_file_menu_asks_where_without_blocking(window, qtbot):
    actions = file_menu_actions(window)
    assert list(actions) == [
        "&History as JSON Lines…",
        "&Filtered History as JSON Lines…",
        "Plot as &PNG…",
        "Plot as &SVG…",
    ]

    actions["Plot as &SVG…"].trigger()

    dialog = window.findChild(QFileDialog)
    qtbot.waitUntil(dialog.isVisible)
    assert dialog.acceptMode() == QFileDialog.AcceptMode.AcceptSave
    assert dialog.defaultSuffix() == "svg"
    assert dialog.directory().absolutePath() == str(Path.home())  # no Documents folder here
    assert dialog.selectedFiles()[0].endswith("test-device-plot.svg")
    dialog.reject()
