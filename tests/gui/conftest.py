"""The window's tests: a real `MainWindow` over a real `Ditto` in ``tmp_path``, on qasync's loop.

How the loop is set up: one `qasync.QEventLoop(qapp, already_running=True)` for the
session (a fresh loop per test does not work with qasync), marked as the thread's
*running* loop only while a GUI test runs, so the core's async tests (pytest-asyncio,
each on its own loop) run before or after these in any order. While a test runs,
Qt's event processing, e.g. `qtbot.waitUntil`, drives the asyncio tasks: tests stay
synchronous and `run(coro)` awaits a coroutine by waiting until its task is done.

After each test the loop must hold no pending task and no QTimer may still be active:
the window, the peer and every task they started are closed in the fixtures' teardown.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
import qasync
import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from inspector import Ditto
from inspector.gui import MainWindow

INTERVAL = 3600.0
"""Collection interval of the test peers: one document on enabling, then only what a test collects."""

# Qt's offscreen platform (the suite's, see tests/conftest.py) warns whenever a top-level
# window is shown: it cannot pass size hints to a window manager it does not have.
OFFSCREEN_ONLY_WARNINGS = ["This plugin does not support propagateSizeHints"]


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.qt_log_ignore(*OFFSCREEN_ONLY_WARNINGS))


@pytest.fixture(scope="session")
def _qasync_loop(qapp):
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.events._set_running_loop(None)  # `qloop` marks it running for each GUI test only
    yield loop
    loop.stop()
    loop.close()


def _drain(loop, seconds):
    """Let tasks that were just cancelled finish, by processing Qt events for a moment."""
    deadline = time.monotonic() + seconds
    while any(not task.done() for task in asyncio.all_tasks(loop)) and time.monotonic() < deadline:
        QCoreApplication.processEvents()


@pytest.fixture
def qloop(_qasync_loop):
    """qasync's loop, running for the duration of the test; fails the test if it leaves tasks."""
    asyncio.events._set_running_loop(_qasync_loop)
    try:
        yield _qasync_loop
        _drain(_qasync_loop, 2.0)
        leftover = [task for task in asyncio.all_tasks(_qasync_loop) if not task.done()]
        for task in leftover:
            task.cancel()
        _drain(_qasync_loop, 2.0)
        if leftover:
            pytest.fail(f"the test left asyncio tasks running: {leftover}")
    finally:
        asyncio.events._set_running_loop(None)


@pytest.fixture(autouse=True)
def _no_running_timers(monkeypatch):
    """Fail a test that leaves a QTimer running (napari's rule): its owner was not shut down."""
    started = []
    original = QTimer.start

    def start(timer, *args):
        started.append(timer)
        return original(timer, *args)

    monkeypatch.setattr(QTimer, "start", start)
    yield
    monkeypatch.undo()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    candidates = list(started)
    if QApplication.instance() is not None:
        for widget in QApplication.topLevelWidgets():
            candidates.extend(widget.findChildren(QTimer))
    running = [t for t in candidates if shiboken6.isValid(t) and t.isActive()]
    for timer in running:
        timer.stop()
    if running:
        names = sorted(
            {f"{t.parent().__class__.__name__ if t.parent() else None}/{t.objectName()}" for t in running}
        )
        pytest.fail(f"the test left QTimers running (owner/name): {names}")


@pytest.fixture
def time_zone():
    """``time_zone(name)``: the process's local time zone for the test (TZ and tzset)."""
    before = os.environ.get("TZ")

    def set_zone(name):
        os.environ["TZ"] = name
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def run(qloop, qtbot):
    """``run(coro)``: await a coroutine (or future) on qasync's loop, returning its result."""

    def run(awaitable, timeout=10_000):
        task = asyncio.ensure_future(awaitable, loop=qloop)
        try:
            qtbot.waitUntil(task.done, timeout=timeout)
        except BaseException:
            task.cancel()
            raise
        return task.result()

    return run


@pytest.fixture
def peer_dir(tmp_path):
    return tmp_path / "peer"


@pytest.fixture
def make_ditto(qloop, run, peer_dir):
    """``make_ditto(**options)``: a peer in ``tmp_path``, closed after the test."""
    peers = []

    def make(directory=None, **options):
        options.setdefault("device_name", "test-device")
        options.setdefault("small_peer_info_interval", INTERVAL)
        peer = Ditto(directory or peer_dir, **options)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        run(peer.close())


@pytest.fixture
def ditto(make_ditto):
    return make_ditto()


@pytest.fixture
def settings_path(tmp_path):
    """Where the window's QSettings live in a test (never the user's real configuration)."""
    return tmp_path / "settings" / "window.ini"


@pytest.fixture
def make_window(qtbot, run, settings_path, ditto):
    """``make_window(peer=ditto)``: a shown `MainWindow`, its first reads done; closed after the test."""
    windows = []

    def make(peer=None, **options):
        window = MainWindow(
            peer or ditto, QSettings(str(settings_path), QSettings.Format.IniFormat), **options
        )
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        qtbot.waitUntil(lambda: window.timeline_panel.timeline.loaded and window.scope_combo.isEnabled())
        return window

    yield make
    for window in windows:
        window.close()
        run(window.wait_closed())
        window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture
def window(make_window):
    return make_window()
