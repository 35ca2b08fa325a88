"""The sync scope dropdown: human labels, scope values as item data, changes through the core."""

import sqlite3
import threading

import pytest
from PySide6.QtCore import Qt

from inspector import SmallPeerInfoSyncScope
from inspector.core.store import Store


def choose(qtbot, combo, label):
    """Pick an item by changing the current item, as mouse, keyboard and automation all do."""
    index = combo.findText(label)
    assert index >= 0, label
    combo.setCurrentIndex(index)


def test_offers_both_scopes_with_human_labels_and_scope_values(window):
    combo = window.scope_combo
    assert combo.objectName() == "syncScopeCombo"
    items = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    assert items == [("Local peer only", "LocalPeerOnly"), ("Big Peer only", "BigPeerOnly")]


def test_each_scope_explains_itself_in_a_tooltip(window):
    combo = window.scope_combo
    tips = [combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count())]
    assert "stay on this device" in tips[0]
    assert "sent to the Big Peer" in tips[1]
    assert combo.toolTip() == tips[0]


def test_shows_the_default_scope_of_a_new_peer(window):
    assert window.scope_combo.currentText() == "Local peer only"
    assert window.scope_combo.currentData() == SmallPeerInfoSyncScope.LOCAL_PEER_ONLY.value


def test_choosing_a_scope_sets_it_on_the_peer(window, ditto, run, qtbot):
    choose(qtbot, window.scope_combo, "Big Peer only")

    qtbot.waitUntil(window.scope_combo.isEnabled)
    assert run(ditto.small_peer_info.get_sync_scope()) is SmallPeerInfoSyncScope.BIG_PEER_ONLY
    assert window.scope_combo.currentText() == "Big Peer only"
    assert "sent to the Big Peer" in window.scope_combo.toolTip()
    assert window.statusBar().currentMessage() == "Sync scope: Big Peer only."


def test_combo_is_disabled_while_the_change_is_in_flight(window, ditto, run, qtbot, monkeypatch):
    release = threading.Event()
    save = Store._save_sync_scope

    def slow_save(store, value, drop_queue):
        release.wait(10)  # the store thread holds the write until the test lets it go
        return save(store, value, drop_queue)

    monkeypatch.setattr(Store, "_save_sync_scope", slow_save)
    choose(qtbot, window.scope_combo, "Big Peer only")

    assert not window.scope_combo.isEnabled()
    release.set()
    qtbot.waitUntil(window.scope_combo.isEnabled)
    assert run(ditto.small_peer_info.get_sync_scope()) is SmallPeerInfoSyncScope.BIG_PEER_ONLY


def test_a_failed_change_reverts_the_combo_and_says_why(window, ditto, run, qtbot, monkeypatch):
    def failing_save(store, value, drop_queue):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "_save_sync_scope", failing_save)
    choose(qtbot, window.scope_combo, "Big Peer only")

    qtbot.waitUntil(window.scope_combo.isEnabled)
    assert window.scope_combo.currentText() == "Local peer only"
    assert window.scope_control.error_label.isVisible()
    assert window.scope_control.error_label.text().startswith(
        "Could not change the sync scope: The peer's database "
    )
    assert (
        "cannot be read or written: disk I/O error. Check the disk" in window.scope_control.error_label.text()
    )
    assert run(ditto.small_peer_info.get_sync_scope()) is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY


def test_the_failure_message_goes_away_after_a_successful_change(window, qtbot, monkeypatch):
    def failing_save(store, value, drop_queue):
        raise sqlite3.OperationalError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "_save_sync_scope", failing_save)
        choose(qtbot, window.scope_combo, "Big Peer only")
        qtbot.waitUntil(window.scope_control.error_label.isVisible)

    choose(qtbot, window.scope_combo, "Big Peer only")
    qtbot.waitUntil(
        lambda: window.scope_combo.currentText() == "Big Peer only" and window.scope_combo.isEnabled()
    )
    assert not window.scope_control.error_label.isVisible()


def test_follows_a_scope_changed_elsewhere(window, ditto, run):
    run(ditto.small_peer_info.set_sync_scope("BigPeerOnly"))
    assert window.scope_combo.currentText() == "Big Peer only"

    run(ditto.small_peer_info.set_sync_scope(SmallPeerInfoSyncScope.LOCAL_PEER_ONLY))
    assert window.scope_combo.currentText() == "Local peer only"


@pytest.mark.parametrize("scope", list(SmallPeerInfoSyncScope))
def test_shows_a_reopened_peers_scope(make_ditto, make_window, tmp_path, run, scope):
    first = make_ditto(tmp_path / "reopened")
    run(first.small_peer_info.set_sync_scope(scope))
    run(first.close())

    window = make_window(make_ditto(tmp_path / "reopened"))

    assert window.scope_combo.currentData() == scope.value


def test_setting_the_current_item_from_code_is_a_request_to_the_peer(window, ditto, run, qtbot):
    combo = window.scope_combo

    combo.setCurrentIndex(combo.findData("BigPeerOnly"))  # no mouse: automation, accessibility

    qtbot.waitUntil(combo.isEnabled)
    assert run(ditto.small_peer_info.get_sync_scope()) is SmallPeerInfoSyncScope.BIG_PEER_ONLY
    combo.setCurrentIndex(combo.findData("LocalPeerOnly"))
    qtbot.waitUntil(lambda: combo.isEnabled() and combo.currentData() == "LocalPeerOnly")
    assert run(ditto.small_peer_info.get_sync_scope()) is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY


def test_a_change_made_elsewhere_is_shown_and_not_sent_back(window, ditto, run, qtbot, monkeypatch):
    requests = []
    original = type(ditto.small_peer_info).set_sync_scope

    async def counted(self, scope):
        requests.append(scope)
        await original(self, scope)

    monkeypatch.setattr(type(ditto.small_peer_info), "set_sync_scope", counted)
    run(ditto.small_peer_info.set_sync_scope("BigPeerOnly"))

    assert window.scope_combo.currentData() == "BigPeerOnly"
    assert requests == ["BigPeerOnly"]  # only the test's own: the window did not echo it
