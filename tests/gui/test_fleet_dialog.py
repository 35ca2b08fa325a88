"""File → Open Big Peer… (the token kept in a keyring, never in the settings) and ``--fleet URL``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import keyring
import keyring.errors
import pytest
import test_fleet_window
from big_peer_harness import ADMIN_TOKEN, start_big_peer
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from inspector.gui.big_peer_dialog import KEYRING_SERVICE, RECENT_KEY, BigPeerDialog, stored_token
from inspector.history.remote import USER_AGENT

URL = "http://127.0.0.1:9"

# The window tests' fixtures: the in-memory keyring (autouse: no test touches a real one), settings.
memory_keyring = test_fleet_window.memory_keyring
settings = test_fleet_window.settings


def open_button(dialog):
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Open)


def test_remember_keeps_the_token_in_the_keyring_never_in_the_settings(
    qtbot, qloop, settings, memory_keyring
):
    dialog = BigPeerDialog(settings)
    qtbot.addWidget(dialog)
    chosen = []
    dialog.connectRequested.connect(lambda url, token: chosen.append((url, token)))
    assert dialog.remember.isEnabled()
    assert "system keyring" in dialog.note.text() and "never in the settings" in dialog.note.text()
    assert not open_button(dialog).isEnabled()

    dialog.url_combo.setEditText(URL + "/")
    dialog.token_edit.setText("s3cret-admin")
    dialog.remember.setChecked(True)
    open_button(dialog).click()

    qtbot.waitUntil(lambda: bool(chosen))  # once the keyring kept it, on its own thread
    assert chosen == [(URL, "s3cret-admin")]
    assert memory_keyring.passwords == {(KEYRING_SERVICE, URL): "s3cret-admin"}
    settings.sync()
    with open(settings.fileName(), encoding="utf-8") as saved:
        text = saved.read()
    assert "s3cret-admin" not in text
    assert URL in text  # the address is remembered, for the next time

    # Next time the URL brings its token back; unchecking "remember" forgets it.
    again = BigPeerDialog(settings)
    qtbot.addWidget(again)
    assert again.url == URL
    qtbot.waitUntil(lambda: again.token_edit.text() == "s3cret-admin")
    assert again.remember.isChecked()
    again.url_combo.setEditText("http://127.0.0.1:10")
    assert again.token_edit.text() == ""  # another Big Peer never gets this one's token
    again.url_combo.setEditText(URL)
    again.look_up_token()  # the URL is committed (Return, or leaving the field)
    qtbot.waitUntil(lambda: again.token_edit.text() == "s3cret-admin")
    again.remember.setChecked(False)
    open_button(again).click()
    qtbot.waitUntil(lambda: not again.isVisible() and not again.busy)
    assert memory_keyring.passwords == {}
    assert stored_token(URL) is None


def test_without_a_working_keyring_remember_is_disabled_and_says_why(qtbot, settings):
    keyring.set_keyring(fail.Keyring())  # what a headless machine has: the fixture restores it after

    dialog = BigPeerDialog(settings)
    qtbot.addWidget(dialog)

    assert not dialog.remember.isEnabled()
    assert "no system keyring is available here" in dialog.note.text()
    assert "never written to the settings file" in dialog.note.text()
    dialog.url_combo.setEditText(URL)
    dialog.token_edit.setText("t")
    chosen = []
    dialog.connectRequested.connect(lambda url, token: chosen.append(url))
    open_button(dialog).click()
    assert chosen == [URL]


def test_the_inspector_window_opens_a_fleet_window(window, qtbot, run, memory_keyring, tmp_path):
    service = start_big_peer(tmp_path / "data", tmp_path / "service.log")
    try:
        actions = [a for menu in window.menuBar().actions() for a in menu.menu().actions()]
        assert any(a.text() == "Open &Big Peer…" for a in actions)
        dialog = window.fleet_launcher.open_dialog()
        qtbot.waitUntil(dialog.isVisible)
        dialog.url_combo.setEditText(service.url)
        dialog.token_edit.setText(ADMIN_TOKEN)
        open_button(dialog).click()

        qtbot.waitUntil(lambda: len(window.fleet_launcher.windows) == 1)
        fleet = window.fleet_launcher.windows[0]
        assert fleet.objectName() == "fleetWindow"
        qtbot.waitUntil(lambda: fleet.model.loaded)
        assert "up to date" in fleet.status_label.text()
        fleet.close()
        qtbot.waitUntil(lambda: not window.fleet_launcher.windows)
    finally:
        assert service.stop() == 0


def test_fleet_command_line_opens_the_fleet_window(tmp_path):
    service = start_big_peer(tmp_path / "data", tmp_path / "service.log", ["--access-log"])
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTOR_")}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        INSPECTOR_ADMIN_TOKEN=ADMIN_TOKEN,
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",  # never the machine's keyring
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
    )
    app = subprocess.Popen(
        [sys.executable, "-m", "inspector", "--fleet", service.url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while 'GET /api/v1/fleet?limit=100&sort=device_name HTTP/1.1" 200' not in service.log():
            assert app.poll() is None, app.communicate()
            assert time.monotonic() < deadline, service.log()
            time.sleep(0.05)
        assert USER_AGENT in service.log()
        app.send_signal(signal.SIGTERM)  # closes the window the way closing it does
        _, stderr = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
        assert service.stop() == 0
    assert app.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_fleet_without_a_token_is_a_message_and_exit_status_1(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTOR_")}
    env.update(QT_QPA_PLATFORM="offscreen", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "--fleet", URL],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "No admin token for the Big Peer" in result.stderr
    assert "INSPECTOR_ADMIN_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argument", ["ftp://x", "127.0.0.1:8765"])
def test_fleet_needs_an_http_url(argument):
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "--fleet", argument],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "must be an http:// or https:// URL" in result.stderr


def test_help_names_the_fleet_option_and_its_token_variable():
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert "--fleet URL" in result.stdout
    assert "INSPECTOR_ADMIN_TOKEN" in result.stdout


class SlowKeyring(test_fleet_window.MemoryKeyring):
    """A keyring that takes its time, as a Secret Service round trip does; it notes each call's thread."""

    def __init__(self, fail_writes=False):
        super().__init__()
        self.calls = []
        self.fail_writes = fail_writes

    def _call(self, name):
        self.calls.append((name, threading.current_thread()))
        time.sleep(0.05)
        if self.fail_writes and name != "get":
            raise keyring.errors.PasswordSetError("the collection is locked")

    def get_password(self, service, username):
        self._call("get")
        return super().get_password(service, username)

    def set_password(self, service, username, password):
        self._call("set")
        super().set_password(service, username, password)

    def delete_password(self, service, username):
        self._call("delete")
        super().delete_password(service, username)


@pytest.fixture
def slow_keyring(memory_keyring):
    backend = SlowKeyring()
    keyring.set_keyring(backend)  # memory_keyring's teardown puts the previous one back
    return backend


def keyring_calls(backend):
    """The calls made, by name; each made off the UI thread (the test fails otherwise)."""
    assert all(thread is not threading.main_thread() for _, thread in backend.calls)
    return [name for name, _ in backend.calls]


def test_typing_a_url_asks_the_keyring_once_it_is_committed_and_off_the_ui_thread(
    qtbot, qloop, settings, slow_keyring
):
    slow_keyring.passwords[(KEYRING_SERVICE, URL)] = "remembered"
    dialog = BigPeerDialog(settings)
    qtbot.addWidget(dialog)
    dialog.show()
    line = dialog.url_combo.lineEdit()

    qtbot.keyClicks(line, URL)
    assert slow_keyring.calls == []  # no lookup per keystroke
    qtbot.keyClick(line, Qt.Key.Key_Return)  # committed

    qtbot.waitUntil(lambda: dialog.token_edit.text() == "remembered")
    assert dialog.remember.isChecked()
    assert keyring_calls(slow_keyring) == ["get"]

    dialog.remember.setChecked(False)  # forget it, on accepting
    chosen = []
    dialog.connectRequested.connect(lambda url, token: chosen.append((url, token)))
    open_button(dialog).click()
    qtbot.waitUntil(lambda: bool(chosen))
    assert chosen == [(URL, "remembered")]
    assert slow_keyring.passwords == {}
    assert keyring_calls(slow_keyring) == ["get", "get", "delete"]


def test_choosing_a_recent_url_fills_in_its_remembered_token(qtbot, qloop, settings, slow_keyring):
    other = "http://127.0.0.1:10"
    settings.setValue(RECENT_KEY, json.dumps([other, URL]))
    slow_keyring.passwords[(KEYRING_SERVICE, URL)] = "remembered"
    dialog = BigPeerDialog(settings)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: not dialog.busy)  # the first recent URL's lookup: nothing remembered
    assert dialog.url == other and dialog.token_edit.text() == ""

    dialog.url_combo.setFocus()
    qtbot.keyClick(dialog.url_combo, Qt.Key.Key_Down)  # the next recent URL, chosen with the keyboard

    assert dialog.url == URL
    qtbot.waitUntil(lambda: dialog.token_edit.text() == "remembered")
    assert dialog.remember.isChecked()
    assert keyring_calls(slow_keyring) == ["get", "get"]


def test_a_keyring_that_refuses_is_a_sentence_in_the_dialog(qtbot, qloop, settings, memory_keyring):
    keyring.set_keyring(SlowKeyring(fail_writes=True))
    dialog = BigPeerDialog(settings)
    qtbot.addWidget(dialog)
    dialog.show()
    chosen = []
    dialog.connectRequested.connect(lambda url, token: chosen.append(url))
    dialog.url_combo.setEditText(URL)
    dialog.token_edit.setText("s3cret-admin")
    dialog.remember.setChecked(True)

    open_button(dialog).click()

    qtbot.waitUntil(lambda: "refused to keep the token" in dialog.note.text())
    assert "the collection is locked" in dialog.note.text()
    assert dialog.isVisible() and chosen == []  # still open: uncheck Remember, or try again
    assert open_button(dialog).isEnabled()
