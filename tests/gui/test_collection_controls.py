"""The collection toggle, the interval, Collect now, and the last/next collection countdown."""

import re
import sys

import pytest
from PySide6.QtCore import Qt

from inspector.core.clock import ManualClock
from inspector.core.errors import PersistenceError, PersistenceProblem
from inspector.core.small_peer_info import SmallPeerInfo
from inspector.core.store import DATABASE_FILE


def test_toggle_starts_off_for_a_new_peer(window):
    toggle = window.collection_toggle
    assert toggle.objectName() == "collectionToggle"
    assert toggle.isCheckable()
    assert not toggle.isChecked()
    assert toggle.text() == "Collection off"
    assert window.collection_controls.schedule_label.text() == "Nothing collected yet · collection is off"


def test_turning_collection_on_collects_a_document_at_once(window, ditto, qtbot):
    qtbot.mouseClick(window.collection_toggle, Qt.MouseButton.LeftButton)

    assert ditto.small_peer_info.is_enabled
    assert window.collection_toggle.text() == "Collection on"
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)
    qtbot.waitUntil(lambda: "next in" in window.collection_controls.schedule_label.text())
    text = window.collection_controls.schedule_label.text()
    assert re.fullmatch(r"Last collected (just now|1 s ago) · next in (1:00:00|59:5\d)", text), text


def test_turning_collection_off_stops_it(window, ditto, qtbot):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)

    qtbot.mouseClick(window.collection_toggle, Qt.MouseButton.LeftButton)

    assert not ditto.small_peer_info.is_enabled
    assert window.collection_toggle.text() == "Collection off"
    assert window.collection_controls.schedule_label.text().endswith("· collection is off")
    assert not window.collection_controls.collect_now_button.isEnabled()


def test_toggle_follows_the_peer_when_changed_elsewhere(window, ditto):
    ditto.small_peer_info.is_enabled = True
    assert window.collection_toggle.isChecked()
    assert window.collection_controls.toggle_action.isChecked()

    ditto.small_peer_info.is_enabled = False
    assert not window.collection_toggle.isChecked()
    assert window.collection_toggle.text() == "Collection off"


def test_setting_the_toggle_from_code_is_a_request_to_the_peer(window, ditto):
    window.collection_toggle.setChecked(True)  # no mouse: automation, accessibility tools

    assert ditto.small_peer_info.is_enabled
    window.collection_controls.toggle_action.setChecked(False)  # the Peer menu's item
    assert not ditto.small_peer_info.is_enabled
    assert not window.collection_toggle.isChecked()


def test_toggle_shows_a_reopened_peers_setting(make_ditto, make_window, tmp_path, run, qtbot):
    first = make_ditto(tmp_path / "reopened")
    first.small_peer_info.is_enabled = True
    run(first.close())

    window = make_window(make_ditto(tmp_path / "reopened"))

    assert window.collection_toggle.isChecked()


def test_interval_is_shown_beside_the_toggle(make_ditto, make_window, tmp_path):
    window = make_window(make_ditto(tmp_path / "p", small_peer_info_interval=300.0))
    assert window.collection_controls.interval_label.text() == "every 5 min"


def test_collect_now_is_only_offered_while_collection_is_on(window, ditto):
    assert window.collection_controls.collect_now_button.text().replace("&", "") == "Collect now"
    assert not window.collection_controls.collect_now_button.isEnabled()
    assert not window.collection_controls.collect_now_action.isEnabled()

    ditto.small_peer_info.is_enabled = True

    assert window.collection_controls.collect_now_button.isEnabled()


def test_collect_now_adds_a_document(window, ditto, qtbot):
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)

    qtbot.mouseClick(window.collection_controls.collect_now_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 2)
    qtbot.waitUntil(lambda: window.collection_controls.collect_now_button.isEnabled())
    assert window.statusBar().currentMessage().startswith("Collected a document at ")


@pytest.fixture
def clocked(make_ditto, make_window, tmp_path):
    """A peer and its window on one `ManualClock`: the test moves time, nothing sleeps."""
    clock = ManualClock(1_790_000_000.0)
    peer = make_ditto(tmp_path / "clocked", clock=clock)
    return clock, peer, make_window(peer)


def test_countdown_shows_the_time_to_the_next_collection(clocked, qtbot):
    _, peer, window = clocked
    peer.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: peer.small_peer_info.next_collection_at is not None)

    assert window.collection_controls.schedule_label.text() == "Last collected just now · next in 1:00:00"


def test_countdown_moves_as_time_passes(clocked, qtbot):
    clock, peer, window = clocked
    peer.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: "next in" in window.collection_controls.schedule_label.text())

    clock.advance(61)
    window.collection_controls.update_schedule()  # what its one-second timer does

    assert window.collection_controls.schedule_label.text() == "Last collected 1 min ago · next in 58:59"


def test_the_next_collection_happens_when_the_clock_says_so(clocked, qtbot):
    clock, peer, window = clocked
    peer.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)

    clock.advance(3600)

    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 2)
    assert window.collection_controls.schedule_label.text() == "Last collected just now · next in 1:00:00"


def test_collect_now_failing_in_storage_is_said_beside_the_button(
    window, ditto, peer_dir, qtbot, monkeypatch
):
    ditto.small_peer_info.is_enabled = True
    controls = window.collection_controls
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)  # the first collection is done
    qtbot.waitUntil(controls.collect_now_button.isEnabled)
    tracebacks = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, tb: tracebacks.append(error))
    database = peer_dir / DATABASE_FILE
    problem = PersistenceError(database, PersistenceProblem.DISK_FULL, f"The disk holding {database} is full")

    async def fail(self):
        raise problem

    monkeypatch.setattr(SmallPeerInfo, "collect_now", fail)
    controls.collect_now_button.click()

    expected = f"Could not collect: The disk holding {database} is full"
    qtbot.waitUntil(lambda: expected in controls.schedule_label.text())
    assert window.status_bar.currentMessage() == expected
    assert controls.schedule_label.toolTip() == expected
    assert controls.collect_now_button.isEnabled()  # it may be tried again
    assert tracebacks == []
