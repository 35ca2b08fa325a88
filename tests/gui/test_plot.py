"""The history plot: what its curves hold, the fields it plots, live updates, markers, the timeline link."""

import asyncio
import json
import sys
import time

import numpy as np
import orjson
import pytest
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtTest import QTest
from stored_history import collected, document_body

from inspector.core.errors import PersistenceError, PersistenceProblem
from inspector.core.store import DATABASE_FILE
from inspector.gui.plot import DEFAULT_SERIES, SETTINGS_KEY
from inspector.gui.plot_axes import BYTES, NUMBER, tick_labels, unit_of
from inspector.history.source import SeriesBuckets

GiB = 2**30
MiB = 2**20
STEP_MS = 60_000


def store_history(ditto, run, count, *, available=None, store=None, metadata=None, step_ms=STEP_MS):
    """``count`` documents ``step_ms`` apart ending a minute ago; values from the given functions of i."""
    first = int(time.time() * 1000) - 60_000 - (count - 1) * step_ms
    documents = []
    for i in range(count):
        ts = first + i * step_ms
        body = document_body(
            ditto,
            ts,
            available=available(i) if available else 50 * GiB - i * MiB,
            ditto_total=store(i) if store else MiB + i * 4096,
        )
        documents.append(collected(ditto, ts, body, orjson.dumps(metadata(i)) if metadata else b"{}"))
    run(ditto.store.import_documents(documents), timeout=60_000)
    return documents


def plotted(qtbot, window, reads=1):
    """Wait until the plot has read (at least ``reads`` times) and is idle."""
    panel = window.plot_panel
    qtbot.waitUntil(lambda: panel.query_count >= reads and not panel.busy)
    return panel


def data(curve):
    x, y = curve.getData()
    return ([], []) if x is None else (list(x), list(y))


def stored(documents, path):
    return [orjson.loads(d.body)["device_disk_usage"][path.split(".")[-1]] for d in documents]


def view_point(panel, x_seconds):
    """Where in the plot's viewport time ``x_seconds`` is, halfway up."""
    box = panel.left_box
    _, (low, high) = box.viewRange()
    scene = box.mapViewToScene(QPointF(x_seconds, (low + high) / 2))
    return panel.plot.mapFromScene(scene)


def test_the_default_curves_hold_the_stored_values(ditto, run, make_window, qtbot):
    documents = store_history(ditto, run, 30, available=lambda i: 40 * GiB + (i % 7) * 3 * MiB)
    window = make_window()
    panel = plotted(qtbot, window)

    assert panel.plot.objectName() == "historyPlot"
    assert panel.series == list(DEFAULT_SERIES)
    assert [curve.name() for curve in panel.curves.values()] == list(DEFAULT_SERIES)
    for path in DEFAULT_SERIES:
        x, y = data(panel.curve(path))
        assert y == stored(documents, path)  # one point per document: values as stored, not rescaled
        assert x == [d.ts_ms / 1000 for d in documents]  # Unix seconds
    assert panel.left_axis.unit == BYTES
    assert not panel.plot_item.getAxis("right").isVisible()


def test_a_spike_in_a_long_history_survives_min_max_per_pixel(ditto, run, make_window, qtbot):
    count, low, high = 6000, 3 * GiB, 90 * GiB
    documents = store_history(
        ditto,
        run,
        count,
        step_ms=10_000,
        available=lambda i: low if i == 2345 else high if i == 4321 else 50 * GiB + (i % 13) * MiB,
    )
    window = make_window()
    panel = plotted(qtbot, window)

    x, y = data(panel.curve("device_disk_usage.device_available"))
    assert len(y) <= 2 * panel.plot.width() < count  # never one point per document
    assert min(y) == low and max(y) == high  # the spikes are there, at their values
    left, right = panel.view_range()
    pixel = (right - left) / panel.left_box.width()
    assert abs(x[y.index(low)] - documents[2345].ts_ms / 1000) <= pixel  # in its pixel column
    assert abs(x[y.index(high)] - documents[4321].ts_ms / 1000) <= pixel
    assert "each pixel column: lowest and highest of" in panel.status.text()


def test_zooming_in_reads_the_range_again_in_full_detail(ditto, run, make_window, qtbot):
    documents = store_history(ditto, run, 6000, step_ms=10_000, available=lambda i: 50 * GiB + (i % 11) * MiB)
    window = make_window()
    panel = plotted(qtbot, window)
    reads = panel.query_count

    first, last = documents[3000].ts_ms / 1000, documents[3040].ts_ms / 1000
    panel.set_view_range(first, last)
    panel = plotted(qtbot, window, reads + 1)

    x, y = data(panel.curve("device_disk_usage.device_available"))
    shown = [(t, v) for t, v in zip(x, y, strict=True) if first <= t <= last]
    assert shown == [
        (d.ts_ms / 1000, orjson.loads(d.body)["device_disk_usage"]["device_available"])
        for d in documents[3000:3041]
    ]


def test_panning_a_little_needs_no_read(ditto, run, make_window, qtbot):
    store_history(ditto, run, 600, step_ms=10_000)
    window = make_window()
    panel = plotted(qtbot, window)
    left, right = panel.view_range()
    panel.set_view_range(left + (right - left) * 3 / 4, right)
    panel = plotted(qtbot, window, 2)
    reads = panel.query_count

    left, right = panel.view_range()
    shift = (right - left) * 0.05  # well inside the 10% read on each side
    panel.set_view_range(left - shift, right - shift)

    assert not panel.needs_read()
    assert panel.query_count == reads


def test_a_new_document_extends_the_plot_without_a_read(ditto, run, make_window, qtbot):
    store_history(ditto, run, 20)
    window = make_window()
    panel = plotted(qtbot, window)
    reads = panel.query_count
    curve = panel.curve("device_disk_usage.device_available")
    before = len(data(curve)[0])

    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: len(data(curve)[0]) == before + 1)

    newest = run(ditto.small_peer_info.history(limit=1))[0]
    x, y = data(curve)
    assert y[-1] == newest["device_disk_usage"]["device_available"]
    assert x[-1] * 1000 == run(ditto.store.time_bounds())[1]
    assert panel.view_range()[1] >= x[-1]  # the view follows the newest document
    assert panel.query_count == reads


def test_fields_are_picked_from_the_numeric_paths_metadata_included(ditto, run, make_window, qtbot):
    documents = store_history(ditto, run, 12, metadata=lambda i: {"battery": {"level": 100 - 5 * (i // 3)}})
    window = make_window()
    panel = plotted(qtbot, window)

    panel.refresh_paths()
    qtbot.waitUntil(lambda: panel.picker.item("metadata.battery.level") is not None)
    offered = [panel.picker.list.item(r).text() for r in range(panel.picker.list.count())]
    assert "device_disk_usage.device_total" in offered
    panel.picker.item("metadata.battery.level").setCheckState(Qt.CheckState.Checked)
    qtbot.waitUntil(lambda: panel.curve("metadata.battery.level") is not None)
    panel = plotted(qtbot, window, 2)

    curve = panel.curve("metadata.battery.level")
    assert curve.name() == "metadata.battery.level"
    x, y = data(curve)
    # Runs of unchanged metadata are read as runs: each value where it starts and where it ends.
    assert sorted(set(y)) == [85, 90, 95, 100]
    points = dict(zip(x, y, strict=True))
    assert all(
        points.get(d.ts_ms / 1000, 100 - 5 * (i // 3)) == 100 - 5 * (i // 3) for i, d in enumerate(documents)
    )
    assert panel.right_axis.isVisible() and panel.right_axis.unit == NUMBER
    assert curve in panel.right_box.addedItems

    panel.picker.item("device_disk_usage.ditto_store").setCheckState(Qt.CheckState.Unchecked)
    assert panel.curve("device_disk_usage.ditto_store") is None
    assert panel.series == ["device_disk_usage.device_available", "metadata.battery.level"]


def test_the_chosen_fields_are_kept_in_the_settings(ditto, run, make_window, settings_path, qtbot):
    store_history(ditto, run, 5)
    first = make_window()
    plotted(qtbot, first)
    first.plot_panel.add_series("process.memory_rss_bytes")
    first.plot_panel.remove_series("device_disk_usage.ditto_store")
    first.close()

    saved = QSettings(str(settings_path), QSettings.Format.IniFormat).value(SETTINGS_KEY)
    assert json.loads(saved) == ["device_disk_usage.device_available", "process.memory_rss_bytes"]
    second = make_window()
    assert second.plot_panel.series == ["device_disk_usage.device_available", "process.memory_rss_bytes"]


def test_selecting_a_document_in_the_timeline_marks_its_time(ditto, run, make_window, qtbot):
    documents = store_history(ditto, run, 10)
    window = make_window()
    panel = plotted(qtbot, window)
    assert not panel.cursor_line.isVisible()

    window.timeline_panel.select_index(4)

    qtbot.waitUntil(panel.cursor_line.isVisible)
    assert panel.cursor_line.value() == documents[3].ts_ms / 1000


def test_clicking_the_plot_selects_the_nearest_document(ditto, run, make_window, qtbot):
    documents = store_history(ditto, run, 10)
    window = make_window()
    panel = plotted(qtbot, window)

    # A fifth of a step after document #7: #7 is the nearest.
    point = view_point(panel, documents[6].ts_ms / 1000 + STEP_MS / 5000)
    QTest.mouseClick(panel.plot.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)

    qtbot.waitUntil(lambda: window.timeline_panel.selected_index == 7)
    assert window.document_panel.index == 7
    qtbot.waitUntil(lambda: panel.cursor_line.value() == documents[6].ts_ms / 1000)


def test_metadata_changes_are_marked_with_what_changed(ditto, run, make_window, qtbot):
    documents = store_history(
        ditto, run, 8, metadata=lambda i: {"site": "lab", "battery": {"level": 80 if i < 5 else 60}}
    )
    window = make_window()
    panel = plotted(qtbot, window)

    assert panel.markers.count == 1
    ((kind, columns),) = panel.markers.columns().items()
    x = documents[5].ts_ms / 1000
    assert kind == "metadata" and len(columns) == 1 and abs(columns[0] - x) < 1

    viewport = panel.plot.viewport()
    QTest.mouseMove(viewport, view_point(panel, x))  # hovering the marker
    qtbot.waitUntil(lambda: "Metadata changed — changed: battery" in panel.markers.toolTip())
    QTest.mouseMove(viewport, view_point(panel, documents[2].ts_ms / 1000))  # away from it
    assert panel.markers.toolTip() == ""


def test_a_timeline_filter_dims_the_time_without_matches(ditto, run, make_window, qtbot):
    documents = store_history(ditto, run, 30, metadata=lambda i: {"tag": "needle" if 10 <= i < 15 else "hay"})
    window = make_window()
    panel = plotted(qtbot, window)
    assert not panel.shade.active

    window.timeline_panel.filter_edit.setText("needle")
    window.timeline_panel.apply_filter()
    qtbot.waitUntil(lambda: panel.shade.active and bool(panel.shade.dim_spans()))

    def dimmed(i):
        t = documents[i].ts_ms / 1000
        return any(x0 <= t <= x1 for x0, x1 in panel.shade.dim_spans())

    assert [i for i in range(30) if not dimmed(i)] == list(range(10, 15))

    window.timeline_panel.filter_edit.clear()
    window.timeline_panel.apply_filter()
    qtbot.waitUntil(lambda: not panel.shade.active)
    assert panel.shade.dim_spans() == []


def test_clicking_under_a_filter_selects_the_nearest_match(ditto, run, make_window, qtbot):
    documents = store_history(ditto, run, 20, metadata=lambda i: {"tag": "needle" if i in (3, 15) else "hay"})
    window = make_window()
    panel = plotted(qtbot, window)
    window.timeline_panel.filter_edit.setText("needle")
    window.timeline_panel.apply_filter()
    qtbot.waitUntil(lambda: window.timeline_panel.timeline.matches == [16, 4])

    QTest.mouseClick(
        panel.plot.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        view_point(panel, documents[12].ts_ms / 1000),
    )

    qtbot.waitUntil(lambda: window.timeline_panel.selected_index == 16)


def test_show_in_timeline_selects_the_newest_document_in_view(ditto, run, make_window, qtbot):
    documents = store_history(ditto, run, 40)
    window = make_window()
    panel = plotted(qtbot, window)
    panel.set_view_range(documents[9].ts_ms / 1000 - 1, documents[19].ts_ms / 1000 + 1)

    panel.timeline_button.click()

    qtbot.waitUntil(lambda: window.timeline_panel.selected_index == 20)
    view = window.timeline_view
    assert view.visualRect(view.currentIndex()).intersects(view.viewport().rect())


def test_an_empty_history_says_so_then_plots_the_first_document(window, ditto, qtbot):
    panel = plotted(qtbot, window, 0)
    assert panel.status.text() == "No documents to plot yet."

    ditto.small_peer_info.is_enabled = True

    curve = panel.curve("device_disk_usage.device_available")
    qtbot.waitUntil(lambda: len(data(curve)[1]) == 1)
    assert panel.status.text() == ""


def test_a_window_can_be_built_without_the_plot(ditto, make_window):
    window = make_window(plot=False)
    assert window.plot_panel is None
    assert window.findChild(type(window), "historyPlot") is None
    assert not window.export.png_action.isEnabled()


def test_bytes_read_in_binary_units_and_numbers_in_thousands():
    assert unit_of("device_disk_usage.ditto_store") == BYTES
    assert unit_of("process.memory_rss_bytes") == BYTES
    assert unit_of("metadata.battery.level") == NUMBER
    assert tick_labels([48 * GiB, 48.5 * GiB, 49 * GiB], GiB / 2, 49 * GiB, BYTES) == [
        "48.0 GiB",
        "48.5 GiB",
        "49.0 GiB",
    ]
    assert tick_labels([0, 512 * 1024], 512 * 1024, 600 * 1024, BYTES) == ["0 KiB", "512 KiB"]
    assert tick_labels([0, 25_000, 50_000], 25_000, 50_000, NUMBER) == ["0k", "25k", "50k"]
    assert tick_labels([0.5, 1.0], 0.5, 1.0, NUMBER) == ["0.5", "1.0"]
    assert tick_labels([50 * GiB, 50 * GiB + MiB], MiB, 50 * GiB, BYTES) == ["51,200 MiB", "51,201 MiB"]


def test_buckets_become_a_polyline_through_each_minimum_and_maximum():
    from inspector.gui.plot_items import min_max_polyline

    buckets = SeriesBuckets(
        "x",
        t_first=np.array([0, 10_000, 20_000]),
        t_last=np.array([0, 15_000, 20_000]),
        minimum=np.array([5.0, 1.0, 4.0]),
        maximum=np.array([5.0, 9.0, 4.0]),
        count=np.array([1, 3, 1]),
    )
    x, y = min_max_polyline(buckets)
    assert list(x) == [0.0, 10.0, 15.0, 20.0]
    # A bucket of one: its point; of many: both extremes, highest first on the way down to 4.
    assert list(y) == [5.0, 9.0, 1.0, 4.0]


def test_the_visible_range_is_said_in_words():
    from datetime import datetime

    from inspector.gui.plot import format_span

    day = datetime(2026, 11, 22, 10, 51).timestamp()
    assert format_span(day, day + 5 * 3600 + 15 * 60) == "Nov 22, 10:51 – 16:06"
    assert format_span(day, day + 3 * 86400) == "Nov 22, 10:51 – Nov 25, 10:51"
    assert format_span(day, day + 60 * 86400) == "Nov 22 2026, 10:51 – Jan 21 2027, 10:51"


def test_a_long_read_shows_how_far_it_got(ditto, run, make_window, qtbot, monkeypatch):
    store_history(ditto, run, 20, metadata=lambda i: {"battery": {"level": i}})
    window = make_window()
    panel = plotted(qtbot, window)
    gate = asyncio.Event()
    series = window.history.series

    async def slow_series(paths, first, last, buckets, progress=None):
        progress(0.4)  # a scan of metadata runs reports as it goes
        await gate.wait()
        return await series(paths, first, last, buckets, progress)

    monkeypatch.setattr(window.history, "series", slow_series)
    panel.add_series("metadata.battery.level")

    qtbot.waitUntil(panel.progress.isVisible)  # after a moment, not at once
    qtbot.waitUntil(lambda: panel.progress.value() == 40)
    gate.set()
    qtbot.waitUntil(lambda: not panel.busy)
    assert not panel.progress.isVisible()


def damaged_database(directory):
    """The error the store raises when its file went bad under a read (what a real one says)."""
    path = directory / DATABASE_FILE
    return PersistenceError(
        path, PersistenceProblem.DAMAGED, f"The database {path} is damaged: move it aside"
    )


def open_fields_menu(window, panel, documents):
    panel.refresh_paths()  # what opening the Fields menu does (aboutToShow)


def show_in_timeline(window, panel, documents):
    panel.timeline_button.click()


def click_the_plot(window, panel, documents):
    point = view_point(panel, documents[3].ts_ms / 1000)
    QTest.mouseClick(panel.plot.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)


def filter_the_timeline(window, panel, documents):
    window.timeline_panel.filter_edit.setText("needle")
    window.timeline_panel.apply_filter()


def move_the_cursor(window, panel, documents):
    panel._on_timeline_current(4)  # a selected row not read yet: the plot reads its time


@pytest.mark.parametrize(
    ("read", "act"),
    [
        ("numeric_paths", open_fields_menu),
        ("index_at_or_before", show_in_timeline),
        ("index_at_or_before", click_the_plot),
        ("timestamps", filter_the_timeline),
        ("timestamps", move_the_cursor),
    ],
)
def test_a_read_that_fails_is_said_in_the_plot_never_a_traceback(
    ditto, peer_dir, run, make_window, qtbot, monkeypatch, read, act
):
    documents = store_history(ditto, run, 10, metadata=lambda i: {"tag": "needle" if i == 3 else "hay"})
    window = make_window()
    panel = plotted(qtbot, window)
    tracebacks = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, tb: tracebacks.append(error))

    async def fail(*args, **kwargs):
        raise damaged_database(peer_dir)

    monkeypatch.setattr(window.history, read, fail)
    act(window, panel, documents)

    qtbot.waitUntil(lambda: panel.failure is not None)
    assert "the history cannot be read: The database" in panel.status.text()
    assert "is damaged" in panel.status.text()
    assert tracebacks == []
