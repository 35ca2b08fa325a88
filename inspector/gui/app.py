"""Starting the inspector: the application, the peer, qasync's loop, and a clean shutdown.

A window appears first, saying which peer is being opened (`OpeningWindow`): it needs
nothing but Qt, so it paints about as soon as a bare Qt window would. Then the rest
is imported, the peer opened — a directory that is locked or unusable becomes a
message and exit status 1 instead of a traceback — and the inspector window takes
its place, at the same geometry. ``async with ditto`` starts the peer's background
work on qasync's loop and closes the peer once the window has closed and the
window's own tasks have ended. Ctrl+C and SIGTERM close the window the same way.

With ``--fleet URL`` (`Options.fleet_url`) no peer is opened: the fleet window of
that Big Peer takes the opening window's place (`serve_fleet`), with the same
start-up and shutdown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

# Only what the first paint needs: touching Qt's namespace (``Qt.…``) costs 15 ms of enums.
from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QVBoxLayout, QWidget

from inspector._version import __version__
from inspector.desktop import missing_xcb_packages, uses_xcb, xcb_fix
from inspector.gui.resources import app_icon, style_sheet

if TYPE_CHECKING:
    import asyncio

    from inspector.core.ditto import Ditto
    from inspector.gui.fleet_window import FleetWindow
    from inspector.gui.main_window import MainWindow

__all__ = [
    "APP_ID",
    "OpeningWindow",
    "Options",
    "configure_application",
    "display_problem",
    "open_peer",
    "run",
    "serve",
    "serve_fleet",
    "settle_startup_objects",
]

APP_ID = "small-peer-inspector"
"""Application and organisation name (QSettings file), desktop file name."""
EXIT_STARTUP_FAILED = 1


class Options(NamedTuple):
    """What the command line asks for."""

    directory: Path | None = None
    interval: float = 300.0
    big_peer_url: str | None = None
    big_peer_token: str | None = None
    device_name: str | None = None
    fleet_url: str | None = None
    """Open the fleet window of this Big Peer instead of a peer."""
    admin_token: str | None = None
    """The Big Peer's admin token for the fleet window."""


class StartupError(Exception):
    """The peer could not be opened; ``title`` and the message say why, for people."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


def display_problem() -> str | None:
    """Why no window could be shown here (no X11/Wayland display), or None."""
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return None  # offscreen, vnc, eglfs...: Qt needs no display server
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display to show the window on (DISPLAY and WAYLAND_DISPLAY are unset); "
        "on a headless machine run it under xvfb-run"
    )


def configure_application(app: QApplication) -> None:
    """Names (for QSettings and the desktop), icon and style sheet."""
    app.setApplicationName(APP_ID)
    app.setOrganizationName(APP_ID)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    app.setStyleSheet(style_sheet())
    # The main coroutine ends the loop after closing the peer; Qt must not quit under it.
    app.setQuitOnLastWindowClosed(False)


class OpeningWindow(QMainWindow):
    """What shows while the peer opens: the window's frame, where the inspector window will be."""

    def __init__(
        self, directory: Path | None, settings: QSettings | None = None, *, fleet_url: str | None = None
    ) -> None:
        super().__init__()
        self.setObjectName("openingWindow")
        self.setWindowTitle("Small Peer Inspector")
        where = f" at {escape(str(directory))}" if directory else ""
        what = f"Opening the peer{where}"
        if fleet_url:
            what = f"Opening the fleet of the Big Peer at {escape(fleet_url)}"
        label = QLabel(f'<p align="center">{what}…</p>')
        central = QWidget()
        column = QVBoxLayout(central)
        column.addStretch(1)
        column.addWidget(label)
        column.addStretch(1)
        self.setCentralWidget(central)
        geometry = (settings or QSettings()).value("fleet/geometry" if fleet_url else "window/geometry")
        if not (isinstance(geometry, QByteArray) and self.restoreGeometry(geometry)):
            screen = self.screen().availableGeometry()
            self.resize(min(1280, int(screen.width() * 0.9)), min(800, int(screen.height() * 0.9)))


def open_peer(options: Options) -> Ditto:
    """Open the peer's directory, or raise `StartupError` with a message for people."""
    from inspector.core.ditto import Ditto, default_persistence_directory
    from inspector.core.errors import PersistenceDirectoryLockedError, PersistenceError

    directory = options.directory or default_persistence_directory()
    try:
        return Ditto(
            directory,
            device_name=options.device_name,
            small_peer_info_interval=options.interval,
            big_peer_url=options.big_peer_url,
            big_peer_token=options.big_peer_token,
        )
    except PersistenceDirectoryLockedError as exc:
        raise StartupError("The peer's directory is in use", f"{exc} (--dir PATH chooses another.)") from None
    except PersistenceError as exc:  # the core's words: the file, what is wrong, what to do
        raise StartupError("Cannot open the peer's directory", str(exc)) from None
    except OSError as exc:
        raise StartupError(
            "Cannot open the peer's directory",
            f"The persistence directory {directory} cannot be used: {exc.strerror or exc}. "
            "Choose another one with --dir PATH.",
        ) from None


def report_startup_error(error: StartupError) -> int:
    """Say why the app cannot start: on stderr, and in a dialog where one can be seen."""
    print(f"{APP_ID}: {error.title}: {error.message}", file=sys.stderr)
    app = QApplication.instance()
    if app is not None and QApplication.platformName() not in ("offscreen", "minimal"):
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, error.title, error.message)
    return EXIT_STARTUP_FAILED


async def serve(ditto: Ditto, settings: QSettings | None = None, opening: QWidget | None = None) -> int:
    """Show the window over ``ditto`` until it closes, then close the peer cleanly.

    ``opening``, the window shown while the peer opened, closes once this one is shown.
    """
    from inspector.gui.main_window import MainWindow

    async with ditto:  # starts the peer's background work on this loop; closes the peer on exit
        await _show_until_closed(MainWindow(ditto, settings), opening)
    return 0


async def serve_fleet(
    url: str, token: str, settings: QSettings | None = None, opening: QWidget | None = None
) -> int:
    """Show the fleet window of the Big Peer at ``url`` until it closes, then end its work cleanly."""
    from inspector.gui.fleet_window import FleetWindow

    await _show_until_closed(FleetWindow(url, token, settings), opening)
    return 0


async def _show_until_closed(window: MainWindow | FleetWindow, opening: QWidget | None) -> None:
    """Show ``window`` (closing ``opening``) until it closes; then wait until its work has ended."""
    import asyncio

    loop = asyncio.get_running_loop()
    closed = loop.create_future()

    def on_closed() -> None:
        if not closed.done():
            closed.set_result(None)

    window.closed.connect(on_closed)
    signals = _handle_signals(loop, window.close)
    window.show()
    if opening is not None:
        opening.close()
    settle_startup_objects()
    try:
        await closed
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
        window.close()  # when cancelled rather than closed
        await window.wait_closed()
        window.deleteLater()


def settle_startup_objects() -> None:
    """Tune the process for a responsive window, once it is up (the app calls this; see below).

    Exempt everything alive once the window is up from the cyclic garbage collector.

    Measured: with ~48,000 tracked objects after start-up (modules, classes, Qt
    wrappers), each full collection held the UI thread 15 ms, and parsing 127 KiB of
    metadata triggers one now and then. Frozen objects are never scanned again;
    what the window creates later still is.
    """
    import gc

    gc.collect()
    gc.freeze()
    # The store's and the validator's threads hold the GIL for up to the switch interval
    # when the UI thread wants it: 5 ms by default, 1 ms here.
    sys.setswitchinterval(0.001)


def _handle_signals(loop: asyncio.AbstractEventLoop, close: Callable[[], object]) -> list[signal.Signals]:
    installed: list[signal.Signals] = []
    for number in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(number, close)
            installed.append(number)
    return installed


def run(options: Options) -> int:
    """The whole application; returns the exit status."""
    if (problem := display_problem()) is not None:
        print(f"{APP_ID}: {problem}", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    if uses_xcb() and (missing := missing_xcb_packages()):
        # Qt would abort the process with its own, easily missed message.
        print(f"{APP_ID}: {xcb_fix(missing)}", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_ID])
    assert isinstance(app, QApplication)
    configure_application(app)
    if options.fleet_url is not None:
        return _run_fleet(app, options.fleet_url, options.admin_token)
    opening = OpeningWindow(options.directory)
    opening.show()
    app.processEvents()  # paint it now: the imports and the peer below take a moment
    try:
        ditto = open_peer(options)
    except StartupError as exc:
        opening.close()
        return report_startup_error(exc)
    import asyncio

    import qasync

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        return runner.run(serve(ditto, opening=opening))


def _run_fleet(app: QApplication, url: str, token: str | None) -> int:
    opening = OpeningWindow(None, fleet_url=url)
    opening.show()
    app.processEvents()
    if not token:
        from inspector.gui.big_peer_dialog import stored_token

        token = stored_token(url)  # remembered with File → Open Big Peer…
    if not token:
        opening.close()
        return report_startup_error(
            StartupError(
                "No admin token for the Big Peer",
                f"Set INSPECTOR_ADMIN_TOKEN to the admin token of {url}, or open it once with "
                "File → Open Big Peer… and let the system keyring remember the token.",
            )
        )
    import asyncio

    import qasync

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        return runner.run(serve_fleet(url, token, opening=opening))
