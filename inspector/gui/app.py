"""Starting the inspector: the application, the peer, qasync's loop, and a clean shutdown.

The peer is opened before the event loop starts, so a directory that is locked or
unreadable becomes a message and exit status 1 instead of a traceback; ``async with
ditto`` then starts its background work on qasync's loop and closes it once the
window has closed and the window's own tasks have ended. Ctrl+C and SIGTERM close
the window the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from inspector._version import __version__
from inspector.core.ditto import Ditto, default_persistence_directory
from inspector.core.errors import PersistenceDirectoryLockedError, PersistenceError
from inspector.desktop import missing_xcb_packages, uses_xcb, xcb_fix
from inspector.gui.main_window import MainWindow
from inspector.gui.resources import app_icon, style_sheet

__all__ = ["APP_ID", "Options", "configure_application", "display_problem", "open_peer", "run", "serve"]

APP_ID = "small-peer-inspector"
"""Application and organisation name (QSettings file), desktop file name."""
EXIT_STARTUP_FAILED = 1


@dataclass(frozen=True)
class Options:
    """What the command line asks for."""

    directory: Path | None = None
    interval: float = 300.0
    big_peer_url: str | None = None
    big_peer_token: str | None = None
    device_name: str | None = None


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


def open_peer(options: Options) -> Ditto:
    """Open the peer's directory, or raise `StartupError` with a message for people."""
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
        raise StartupError(
            "The peer's directory is in use", f"{exc}\n\nOr start with another directory: --dir PATH."
        ) from None
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
        QMessageBox.critical(None, error.title, error.message)
    return EXIT_STARTUP_FAILED


async def serve(ditto: Ditto, settings: QSettings | None = None) -> int:
    """Show the window over ``ditto`` until it closes, then close the peer cleanly."""
    loop = asyncio.get_running_loop()
    async with ditto:  # starts the peer's background work on this loop; closes the peer on exit
        window = MainWindow(ditto, settings)
        closed = loop.create_future()

        def on_closed() -> None:
            if not closed.done():
                closed.set_result(None)

        window.closed.connect(on_closed)
        signals = _handle_signals(loop, window.close)
        window.show()
        try:
            await closed
        finally:
            for number in signals:
                loop.remove_signal_handler(number)
            window.close()  # when cancelled rather than closed
            await window.wait_closed()
            window.deleteLater()
    return 0


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
    try:
        ditto = open_peer(options)
    except StartupError as exc:
        return report_startup_error(exc)
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        return runner.run(serve(ditto))
