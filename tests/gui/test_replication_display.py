"""What the window shows of replication: the timeline's Big Peer column and the status bar."""

import json
import urllib.request

import pytest
from big_peer_harness import ADMIN_TOKEN, DEVICE_TOKEN, start_big_peer

from inspector.gui.tasks import TaskSet
from inspector.gui.timeline import Column, TimelineModel
from inspector.history import LocalHistory

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


@pytest.fixture
def big_peer(tmp_path):
    """The real Big Peer service, as a process on 127.0.0.1."""
    service = start_big_peer(tmp_path / "big-peer-data", tmp_path / "big-peer.log")
    yield service
    assert service.stop() == 0, service.log()


def stored_on_big_peer(service, peer_key):
    request = urllib.request.Request(
        f"{service.url}/api/v1/devices/{peer_key}/history",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["documents"]


def replication_cells(window):
    model = window.timeline_model
    return [model.data(model.index(row, Column.REPLICATION)) for row in range(model.rowCount())]


def enable_big_peer_scope(window, ditto, qtbot, run):
    run(ditto.small_peer_info.set_sync_scope("BigPeerOnly"))
    ditto.small_peer_info.is_enabled = True
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() >= 1)


def test_documents_wait_in_the_queue_while_the_big_peer_is_unreachable(
    make_ditto, make_window, tmp_path, qtbot, run
):
    peer = make_ditto(tmp_path / "offline", big_peer_url=UNREACHABLE, big_peer_token="t")
    window = make_window(peer)

    enable_big_peer_scope(window, peer, qtbot, run)

    qtbot.waitUntil(lambda: window.status_bar.replication_label.text() == "Big Peer: offline · 1 queued")
    assert (
        "Last error: Cannot reach the Big Peer at http://127.0.0.1:9"
        in window.status_bar.replication_label.toolTip()
    )
    qtbot.waitUntil(lambda: replication_cells(window) == ["queued"])


def test_documents_collected_under_the_local_scope_stay_local(make_ditto, make_window, tmp_path, qtbot):
    peer = make_ditto(tmp_path / "local", big_peer_url=UNREACHABLE, big_peer_token="t")
    window = make_window(peer)

    peer.small_peer_info.is_enabled = True

    qtbot.waitUntil(lambda: replication_cells(window) == ["local only"])
    assert window.status_bar.replication_label.text().startswith("Big Peer: ")
    assert "queued" not in window.status_bar.replication_label.text()


def test_switching_to_the_local_scope_drops_the_queue(make_ditto, make_window, tmp_path, qtbot, run):
    peer = make_ditto(tmp_path / "dropping", big_peer_url=UNREACHABLE, big_peer_token="t")
    window = make_window(peer)
    enable_big_peer_scope(window, peer, qtbot, run)
    qtbot.waitUntil(lambda: replication_cells(window) == ["queued"])

    run(peer.small_peer_info.set_sync_scope("LocalPeerOnly"))

    qtbot.waitUntil(lambda: replication_cells(window) == ["dropped"])
    assert "queued" not in window.status_bar.replication_label.text()


def test_acknowledged_documents_show_as_sent(make_ditto, make_window, tmp_path, qtbot, run, big_peer):
    peer = make_ditto(tmp_path / "online", big_peer_url=big_peer.url, big_peer_token=DEVICE_TOKEN)
    window = make_window(peer)

    enable_big_peer_scope(window, peer, qtbot, run)

    qtbot.waitUntil(lambda: replication_cells(window) == ["sent"])
    qtbot.waitUntil(lambda: window.status_bar.replication_label.text() == "Big Peer: connected")
    assert stored_on_big_peer(big_peer, peer.peer_key)[0]["_id"] == peer.peer_key
    assert (
        "1 document acknowledged since the peer opened"
        in window.status_bar.replication_label.toolTip().splitlines()
    )


def test_a_row_acknowledged_before_it_is_shown_says_sent(make_ditto, tmp_path, qtbot, run, big_peer):
    """The Big Peer answers in milliseconds; rows wait to be inserted together (here for 30 s).

    The acknowledgement arrived while the row still waited, and was lost: every row of a
    live, connected peer said "queued" for good.
    """
    peer = make_ditto(tmp_path / "fast", big_peer_url=big_peer.url, big_peer_token=DEVICE_TOKEN)
    tasks = TaskSet()
    history = LocalHistory(peer)
    model = TimelineModel(history, tasks, peer.clock, flush_delay=30.0)
    model.start()
    qtbot.waitUntil(lambda: model.timeline.loaded)

    def shown(row: int) -> str:
        return model.data(model.index(row, Column.REPLICATION))

    peer.small_peer_info.is_enabled = True  # a first document, kept here: its page is read
    qtbot.waitUntil(lambda: peer.small_peer_info.last_collected_at is not None)
    model.timeline.flush()
    qtbot.waitUntil(lambda: shown(0) == "local only")
    run(peer.small_peer_info.set_sync_scope("BigPeerOnly"))
    run(peer.small_peer_info.collect_now())
    # Sharing collects a document at once, collect_now another: both acknowledged while waiting.
    qtbot.waitUntil(lambda: peer.replication_status.acknowledged == 2)
    assert model.rowCount() == 1

    model.timeline.flush()

    assert [shown(row) for row in range(3)] == ["sent", "sent", "local only"]
    model.shutdown()
    history.close()
    run(tasks.wait_cancelled())
