"""The timeline: rows as documents are collected, its columns, laziness, retention, the filter."""

import re
import time

import orjson
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QHeaderView
from stored_history import collected, document_body, store_documents

from inspector import HistoryRetention
from inspector.core.clock import ManualClock
from inspector.gui.formatting import format_bytes
from inspector.gui.tasks import TaskSet
from inspector.gui.timeline import INDEX_ROLE, LOADING, Column, TimelineModel
from inspector.history import LocalHistory
from inspector.history.timeline import PAGE_SIZE

TIME_TEXT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d · (just now|\d+ s ago)")


def cell(window, row, column):
    model = window.timeline_model
    return model.data(model.index(row, column))


def column_texts(window, column):
    return [cell(window, row, column) for row in range(window.timeline_model.rowCount())]


def wait_loaded(qtbot, window):
    model = window.timeline_model
    qtbot.waitUntil(lambda: all(cell(window, r, Column.TIME) != LOADING for r in range(model.rowCount())))


def collect(run, ditto, count=1):
    for _ in range(count):
        run(ditto.small_peer_info.collect_now())


def test_is_empty_for_a_new_peer(window):
    assert window.timeline_view.objectName() == "timelineView"
    assert window.timeline_view.model() is window.timeline_model
    assert window.timeline_model.rowCount() == 0
    assert window.status_bar.document_count_label.text() == "No documents yet"


def test_shows_the_columns(window):
    model = window.timeline_model
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers == ["Collected", "Size", "Change since previous", "Big Peer"]


def test_rows_appear_as_documents_are_collected_newest_on_top(window, ditto, qtbot, run):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    collect(run, ditto, 2)

    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 3)
    wait_loaded(qtbot, window)
    newest_first = run(ditto.small_peer_info.history(limit=3))
    tips = [
        window.timeline_model.data(window.timeline_model.index(r, 0), Qt.ItemDataRole.ToolTipRole)
        for r in range(3)
    ]
    assert tips == [
        f"Document #{3 - r}, last_updated_at {doc['last_updated_at']}" for r, doc in enumerate(newest_first)
    ]
    assert window.status_bar.document_count_label.text() == "3 documents"


def test_rows_show_time_size_change_and_replication(window, ditto, qtbot, run):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    ditto.small_peer_info.metadata = {"site": "lab"}
    collect(run, ditto)
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 2)
    wait_loaded(qtbot, window)

    assert all(TIME_TEXT.fullmatch(text) for text in column_texts(window, Column.TIME))
    sizes = [len(orjson.dumps(doc)) for doc in run(ditto.small_peer_info.history(limit=2))]
    assert column_texts(window, Column.SIZE) == [format_bytes(size) for size in sizes]
    newest_change, first_change = column_texts(window, Column.CHANGE)
    assert "metadata" in newest_change.split(" · ")
    assert first_change == "first document"
    assert column_texts(window, Column.REPLICATION) == ["local only", "local only"]


def test_change_column_names_disk_and_store_changes(window, ditto, run, qtbot):
    now = int(time.time() * 1000)
    bodies = {
        now - 2000: document_body(ditto, now - 2000, available=10 * 2**30, ditto_total=2**20),
        now - 1000: document_body(
            ditto, now - 1000, available=10 * 2**30 - 3 * 2**20, ditto_total=2**20 + 300 * 1024
        ),
    }
    run(ditto.store.import_documents([collected(ditto, ts, body) for ts, body in bodies.items()]))
    window.timeline_panel.timeline.refresh()
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 2)
    wait_loaded(qtbot, window)

    assert cell(window, 0, Column.CHANGE) == "disk free −3 MiB · store +300 KiB"


def test_documents_arriving_together_are_inserted_in_one_batch(ditto, run, qtbot):
    tasks = TaskSet()
    history = LocalHistory(ditto)
    # A long batching delay makes "together" certain however slow the machine is.
    model = TimelineModel(history, tasks, ditto.clock, flush_delay=30.0)
    model.start()
    qtbot.waitUntil(lambda: model.timeline.loaded)
    inserted = []
    model.rowsInserted.connect(lambda parent, first, last: inserted.append((first, last)))
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: ditto.small_peer_info.last_collected_at is not None)
    for _ in range(4):
        run(ditto.small_peer_info.collect_now())
    assert model.rowCount() == 0  # still gathering the batch

    model.timeline.flush()
    assert model.rowCount() == 5
    assert inserted == [(0, 4)]
    model.shutdown()
    history.close()
    run(tasks.wait_cancelled())


def test_a_row_loading_shows_a_placeholder_then_its_data(ditto, run, qtbot):
    store_documents(ditto, run, 3)
    tasks = TaskSet()
    history = LocalHistory(ditto)
    model = TimelineModel(history, tasks, ditto.clock)
    model.start()
    qtbot.waitUntil(lambda: model.rowCount() == 3)

    assert model.data(model.index(0, Column.TIME)) == LOADING
    assert model.data(model.index(0, Column.SIZE)) == ""
    assert model.data(model.index(0, 0), INDEX_ROLE) == 3
    with qtbot.waitSignal(model.dataChanged):
        pass
    assert TIME_TEXT.fullmatch(model.data(model.index(0, Column.TIME)))
    model.shutdown()
    history.close()
    run(tasks.wait_cancelled())


def test_reads_only_the_pages_it_shows(ditto, run, make_window, qtbot):
    store_documents(ditto, run, 5_000)

    window = make_window()
    model = window.timeline_model
    assert model.rowCount() == 5_000
    qtbot.waitUntil(lambda: model.timeline.is_row_loaded(0))
    assert model.timeline.cached_row_count <= 2 * (PAGE_SIZE + 1)

    window.timeline_view.scrollToBottom()
    qtbot.waitUntil(lambda: model.timeline.is_row_loaded(4_999))
    assert cell(window, 4_999, Column.CHANGE) == "first document"
    assert model.timeline.cached_row_count <= 4 * (PAGE_SIZE + 1)
    assert window.status_bar.document_count_label.text() == "5,000 documents"


def test_rows_have_uniform_heights_and_fixed_column_widths(window):
    rows = window.timeline_view.verticalHeader()
    assert rows.sectionResizeMode(0) == QHeaderView.ResizeMode.Fixed
    header = window.timeline_view.horizontalHeader()
    assert all(
        header.sectionResizeMode(c) == QHeaderView.ResizeMode.Interactive for c in range(header.count())
    )


def test_rows_deleted_by_retention_leave_the_bottom(make_ditto, make_window, tmp_path, qtbot, run):
    peer = make_ditto(tmp_path / "bounded", history_retention=HistoryRetention(max_documents=3))
    window = make_window(peer)
    peer.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    collect(run, peer, 4)

    qtbot.waitUntil(lambda: window.status_bar.document_count_label.text() == "3 documents")
    assert window.timeline_model.rowCount() == 3
    assert [window.timeline_panel.timeline.index_at(r) for r in range(3)] == [5, 4, 3]
    wait_loaded(qtbot, window)
    assert cell(window, 2, Column.CHANGE) == "—"  # its predecessor is gone


def test_relative_times_move_on(make_window, ditto, qtbot):
    clock = ManualClock(time.time())
    window = make_window(clock=clock)
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    wait_loaded(qtbot, window)

    clock.advance(150)
    window.timeline_model.refresh_times()

    assert cell(window, 0, Column.TIME).endswith(" · 2 min ago")


def test_model_passes_qt_model_tester(ditto, run, make_window, qtmodeltester, qtbot):
    store_documents(ditto, run, 300)
    window = make_window()
    model = window.timeline_model

    qtmodeltester.check(model)  # with rows still loading
    qtbot.waitUntil(lambda: model.timeline.is_row_loaded(0))
    window.timeline_view.scrollToBottom()
    qtbot.waitUntil(lambda: model.timeline.is_row_loaded(299))
    qtmodeltester.check(model)
    qtmodeltester.check(model, force_py=True)


def test_model_stays_consistent_through_inserts_filtering_and_retention(
    make_ditto, make_window, tmp_path, qtmodeltester, qtbot, run
):
    peer = make_ditto(tmp_path / "bounded", history_retention=HistoryRetention(max_documents=4))
    window = make_window(peer)
    model = window.timeline_model
    qtmodeltester.check(model, force_py=True)  # the Python tester stays connected and checks every change
    peer.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: model.rowCount() == 1)
    collect(run, peer, 5)
    qtbot.waitUntil(lambda: window.status_bar.document_count_label.text() == "4 documents")
    model.timeline.set_filter("test-device")
    qtbot.waitUntil(lambda: model.timeline.match_count == 4)
    collect(run, peer, 1)
    qtbot.waitUntil(lambda: model.timeline.total_count == 4 and model.timeline.index_at(0) == 7)
    model.timeline.set_filter("")
    assert model.rowCount() == 4


def filter_timeline(qtbot, window, text):
    qtbot.keyClicks(window.timeline_panel.filter_edit, text)
    qtbot.waitUntil(
        lambda: (
            window.timeline_panel.timeline.filter_text == text
            and not window.timeline_panel.timeline.searching
        )
    )


def with_metadata(run, ditto, *values):
    for value in values:
        ditto.small_peer_info.metadata = value
        collect(run, ditto)


def test_filter_shows_only_documents_containing_the_text(window, ditto, qtbot, run):
    assert window.timeline_panel.filter_edit.objectName() == "timelineFilter"
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    with_metadata(run, ditto, {"site": "alpha"}, {"site": "beta"}, {"site": "alpha"})
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 4)

    filter_timeline(qtbot, window, "beta")

    assert window.timeline_model.rowCount() == 1
    assert window.timeline_panel.timeline.index_at(0) == 3
    assert window.timeline_panel.filter_status.text() == "1 match"
    assert window.status_bar.document_count_label.text() == "4 documents"


def test_filter_ignores_ascii_case(window, ditto, qtbot, run):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    with_metadata(run, ditto, {"site": "Alpha"})

    filter_timeline(qtbot, window, "ALPHA")

    assert window.timeline_model.rowCount() == 1
    assert window.timeline_panel.filter_status.text() == "1 match"


def test_clearing_the_filter_shows_every_document(window, ditto, qtbot, run):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    with_metadata(run, ditto, {"site": "alpha"}, {"site": "beta"})
    filter_timeline(qtbot, window, "beta")

    window.timeline_panel.filter_edit.clear()

    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 3)
    assert window.timeline_panel.filter_status.text() == ""


def test_filter_with_no_match_shows_no_rows(window, ditto, qtbot, run):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)

    filter_timeline(qtbot, window, "no-such-text")

    assert window.timeline_model.rowCount() == 0
    assert window.timeline_panel.filter_status.text() == "0 matches"


def test_new_documents_appear_under_the_filter_only_if_they_match(window, ditto, qtbot, run):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    filter_timeline(qtbot, window, "gamma")
    assert window.timeline_model.rowCount() == 0

    with_metadata(run, ditto, {"tag": "gamma"}, {"tag": "delta"}, {"tag": "GAMMA ray"})

    qtbot.waitUntil(lambda: window.status_bar.document_count_label.text() == "4 documents")
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 2)
    assert [window.timeline_panel.timeline.index_at(r) for r in range(2)] == [4, 2]
    assert window.timeline_panel.filter_status.text() == "2 matches"


def test_selection_stays_on_its_document_as_rows_arrive(window, ditto, qtbot, run):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    window.timeline_view.selectRow(0)

    collect(run, ditto)
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 2)

    current = window.timeline_view.currentIndex()
    assert current.row() == 1
    assert current.data(INDEX_ROLE) == 1
    assert window.document_panel.index == 1


def test_selection_survives_filtering(window, ditto, qtbot, run):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    with_metadata(run, ditto, {"tag": "keep"}, {"tag": "other"})
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 3)
    window.timeline_view.selectRow(1)  # seq 2, tagged "keep"

    filter_timeline(qtbot, window, "keep")

    assert window.timeline_view.currentIndex().data(INDEX_ROLE) == 2
    assert window.document_panel.index == 2


def test_rows_are_flat(ditto, run, make_window):
    store_documents(ditto, run, 2)
    model = make_window().timeline_model
    first = model.index(0, 0)
    assert first.isValid()
    assert model.rowCount(first) == 0
    assert model.columnCount(first) == 0
    assert first.parent() == QModelIndex()


def test_small_disk_and_store_changes_are_not_news():
    from inspector.core.events import Replication
    from inspector.gui.timeline import describe_change
    from inspector.history import HistoryRow

    previous = HistoryRow(1, 0, 800, b"m", 10 * 2**30, 2**20, Replication.LOCAL_ONLY)
    row = HistoryRow(2, 2000, 800, b"m", 10 * 2**30 - 8192, 2**20 + 16 * 1024, Replication.LOCAL_ONLY)
    assert describe_change(row, previous) == "no change"
    assert describe_change(row, None) == "first document"


def test_an_empty_timeline_says_what_to_do(window, ditto, qtbot, run):
    view = window.timeline_view
    assert (
        view.placeholder_text()
        == "No documents yet.\nTurn collection on to collect one now, then one every 1 h."
    )

    filter_timeline(qtbot, window, "nothing")
    assert view.placeholder_text() == "No document contains “nothing”."
