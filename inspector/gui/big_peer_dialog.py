"""File → Open Big Peer…: the address and admin token of a Big Peer, and the fleet windows opened with them.

The token may be remembered in the system keyring (the ``keyring`` package: Secret
Service, KWallet, macOS Keychain, Windows Credential Locker), under the service
`KEYRING_SERVICE` with the Big Peer's URL as the user name. It is never written to
`QSettings`: only the URLs recently opened are. Where no keyring backend works (a
headless machine, CI), "Remember" is disabled and the dialog says why.

The dialog opens with ``open()`` (never ``exec()``: a nested event loop must not run
inside the asyncio loop) and says what was chosen with `BigPeerDialog.connectRequested`.

A keyring call can take long (a D-Bus round trip; an unlock prompt takes seconds), so
the dialog makes none on the UI thread: each runs on the dialog's own worker thread.
The URL's token is looked up once the URL is committed (Return, leaving the field, a
recent URL chosen) or typing pauses for `LOOKUP_DELAY_MS`, never at every keystroke;
whether a keyring works at all is asked once per dialog. A keyring that fails says
so in the dialog, in a sentence.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from inspector.gui.tasks import TaskSet

if TYPE_CHECKING:
    from inspector.gui.fleet_window import FleetWindow

__all__ = [
    "KEYRING_SERVICE",
    "RECENT_KEY",
    "BigPeerDialog",
    "FleetLauncher",
    "KeyringError",
    "forget_token",
    "keyring_problem",
    "remember_token",
    "stored_token",
]

KEYRING_SERVICE = "small-peer-inspector Big Peer admin token"
"""The keyring's service name for admin tokens (the user name is the Big Peer's URL)."""
RECENT_KEY = "fleet/recentBigPeers"
"""QSettings key of the Big Peer URLs opened recently (URLs only, never tokens)."""
MAX_RECENT = 10
LOOKUP_DELAY_MS = 400
"""Typing in the URL field pauses this long before the keyring is asked for its token."""

T = TypeVar("T")


class KeyringError(Exception):
    """The keyring could not keep or forget a token; the message says why."""


def keyring_problem() -> str | None:
    """Why tokens cannot be remembered here, or None when a keyring backend works."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null

        backend = keyring.get_keyring()
    except Exception as exc:  # a broken backend configuration must not stop the dialog
        return f"the keyring could not start ({exc})"
    if isinstance(backend, fail.Keyring) or (
        isinstance(backend, chainer.ChainerBackend) and not backend.backends
    ):
        return (
            "no system keyring is available here (no Secret Service, KWallet, macOS Keychain "
            "or Windows Credential Locker)"
        )
    if isinstance(backend, null.Keyring):
        return "the keyring is switched off here (its null backend is chosen)"
    return None


def keyring_name() -> str:
    """The keyring backend's name, for people."""
    import keyring

    backend = keyring.get_keyring()
    return str(getattr(backend, "name", type(backend).__name__))


def _read_token(url: str) -> str | None:
    """The token remembered for ``url``, or None; `KeyringError` if the keyring fails."""
    import keyring

    try:
        token = keyring.get_password(KEYRING_SERVICE, url)
    except Exception as exc:  # a locked or failing keyring
        raise KeyringError(f"The keyring could not be read: {exc}") from None
    return token if isinstance(token, str) and token else None


def _keep_token(url: str, token: str) -> None:
    import keyring

    try:
        keyring.set_password(KEYRING_SERVICE, url, token)
    except Exception as exc:
        raise KeyringError(f"The keyring refused to keep the token: {exc}") from None


def _drop_token(url: str) -> bool:
    if _read_token(url) is None:
        return False
    import keyring

    try:
        keyring.delete_password(KEYRING_SERVICE, url)
    except Exception as exc:
        raise KeyringError(f"The keyring refused to forget the token: {exc}") from None
    return True


def stored_token(url: str) -> str | None:
    """The admin token remembered for ``url``, or None (also when no keyring works)."""
    if keyring_problem() is not None:
        return None
    try:
        return _read_token(url)
    except KeyringError:  # as if nothing were remembered
        return None


def remember_token(url: str, token: str) -> None:
    """Keep ``token`` for ``url`` in the system keyring, or raise `KeyringError`."""
    problem = keyring_problem()
    if problem is not None:
        raise KeyringError(f"The token cannot be remembered: {problem}.")
    _keep_token(url, token)


def forget_token(url: str) -> bool:
    """Remove the token remembered for ``url``; whether one was there."""
    if keyring_problem() is not None:
        return False
    return _drop_token(url)


def recent_urls(settings: QSettings) -> list[str]:
    saved = settings.value(RECENT_KEY)
    if isinstance(saved, str):
        try:
            urls = json.loads(saved)
        except ValueError:
            return []
        if isinstance(urls, list):
            return [u for u in urls if isinstance(u, str)][:MAX_RECENT]
    return []


def _normalized(url: str) -> str:
    return url.strip().rstrip("/")


def _valid(url: str) -> bool:
    return url.startswith(("http://", "https://")) and len(url) > len("https://")


class BigPeerDialog(QDialog):
    """Asks for a Big Peer's URL and admin token; `connectRequested(url, token)` when accepted."""

    connectRequested = Signal(str, str)

    def __init__(self, settings: QSettings, parent: QWidget | None = None, *, url: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("bigPeerDialog")
        self.setWindowTitle("Open a Big Peer")
        self._settings = settings
        self._prefilled: str | None = None  # the token shown came from the keyring for this URL
        self._looked_up: str | None = None  # the URL whose token was asked for (or is being)
        self._storing = False
        self.problem = keyring_problem()  # once per dialog: it may ask the system
        self._tasks = TaskSet(report=self._say)
        self._worker: ThreadPoolExecutor | None = None  # the keyring's calls, off the UI thread

        self.url_combo = QComboBox()
        self.url_combo.setObjectName("bigPeerUrl")
        self.url_combo.setEditable(True)
        self.url_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.url_combo.addItems(recent_urls(settings))
        self.url_combo.setAccessibleName("Big Peer URL")
        line = self.url_combo.lineEdit()
        assert line is not None
        line.setPlaceholderText("http://big-peer.example:8080")
        self.token_edit = QLineEdit()
        self.token_edit.setObjectName("bigPeerToken")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setAccessibleName("Admin token")
        self.token_edit.setPlaceholderText("the Big Peer's admin token")
        self.remember = QCheckBox("&Remember the token in the system keyring")
        self.remember.setObjectName("bigPeerRemember")
        self.note = QLabel()
        self.note.setObjectName("bigPeerKeyringNote")
        self.note.setWordWrap(True)
        if self.problem is None:
            self.note.setText(
                f"The token is kept in the system keyring ({keyring_name()}), never in the settings "
                "file. Uncheck the box to forget a remembered token."
            )
        else:
            self.remember.setEnabled(False)
            self.remember.setToolTip(self.problem)
            self.note.setText(
                f"“Remember” is unavailable: {self.problem}. The token is used for this window "
                "only; it is never written to the settings file."
            )

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        url_label = QLabel("Big Peer &URL:")
        url_label.setBuddy(self.url_combo)
        token_label = QLabel("Admin &token:")
        token_label.setBuddy(self.token_edit)
        form.addRow(url_label, self.url_combo)
        form.addRow(token_label, self.token_edit)
        form.addRow("", self.remember)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(520)

        self._lookup = QTimer(self)
        self._lookup.setObjectName("bigPeerTokenLookup")
        self._lookup.setSingleShot(True)
        self._lookup.setInterval(LOOKUP_DELAY_MS)
        self._lookup.timeout.connect(self.look_up_token)
        self.url_combo.editTextChanged.connect(self._on_url_edited)
        line.editingFinished.connect(self.look_up_token)
        self.url_combo.activated.connect(lambda _index: self.look_up_token())
        self.token_edit.textChanged.connect(lambda _text: self._update_buttons())
        if url:
            self.url_combo.setEditText(url)
        self._update_buttons()
        self.look_up_token()  # the URL it opens with is committed already

    @property
    def url(self) -> str:
        return _normalized(self.url_combo.currentText())

    @property
    def busy(self) -> bool:
        """Whether a keyring call is due or under way."""
        return self._lookup.isActive() or len(self._tasks) > 0

    def _on_url_edited(self, _text: str) -> None:
        url = self.url
        if self._prefilled is not None and url != self._prefilled:
            self.token_edit.clear()  # never leave another Big Peer's remembered token in the field
            self._prefilled = None
            self.remember.setChecked(False)
        if url != self._looked_up:
            self._looked_up = None
            if self.problem is None and _valid(url):
                self._lookup.start()  # once typing pauses, unless the URL is committed first
            else:
                self._lookup.stop()
        self._update_buttons()

    def look_up_token(self) -> None:
        """Fill in the token the keyring remembers for the URL (asynchronously; once per URL)."""
        self._lookup.stop()
        url = self.url
        if self.problem is None and _valid(url) and url != self._looked_up:
            self._looked_up = url
            self._tasks.spawn(
                self._fill_in_token(url), "dialog: look up the token", on_error=self._keyring_failed
            )

    async def _fill_in_token(self, url: str) -> None:
        token = await self._in_worker(_read_token, url)
        # Only for the URL still shown, and never over a token the user typed meanwhile.
        if token is None or url != self.url or (self.token_edit.text() and self._prefilled is None):
            return
        self.token_edit.setText(token)
        self._prefilled = url
        self.remember.setChecked(True)

    async def _in_worker(self, call: Callable[..., T], *args: str) -> T:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="inspector-keyring")
        return await asyncio.get_running_loop().run_in_executor(self._worker, call, *args)

    def _keyring_failed(self, error: Exception) -> None:
        self._say(str(error) if isinstance(error, KeyringError) else f"The keyring failed: {error}")

    def _say(self, text: str) -> None:
        self.note.setText(text)

    def _update_buttons(self) -> None:
        button = self.buttons.button(QDialogButtonBox.StandardButton.Open)
        button.setEnabled(_valid(self.url) and bool(self.token_edit.text()) and not self._storing)

    def accept(self) -> None:
        url, token = self.url, self.token_edit.text()
        if not (_valid(url) and token) or self._storing:
            return
        if self.problem is not None:  # no keyring: nothing to keep or forget
            self._open(url, token)
            return
        self._storing = True
        self._update_buttons()
        remember = self.remember.isChecked() and self.remember.isEnabled()
        self._tasks.spawn(self._keep_then_open(url, token, remember), "dialog: keep the token")

    async def _keep_then_open(self, url: str, token: str, remember: bool) -> None:
        try:
            if remember:
                await self._in_worker(_keep_token, url, token)
            else:
                await self._in_worker(_drop_token, url)
        except KeyringError as error:  # said in the dialog, which stays open
            self._say(str(error))
            return
        finally:
            self._storing = False
            self._update_buttons()
        self._open(url, token)

    def _open(self, url: str, token: str) -> None:
        urls = [url, *(u for u in recent_urls(self._settings) if u != url)][:MAX_RECENT]
        self._settings.setValue(RECENT_KEY, json.dumps(urls))
        super().accept()
        self.connectRequested.emit(url, token)

    def done(self, result: int) -> None:
        self._shutdown()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._shutdown()
        super().closeEvent(event)

    def _shutdown(self) -> None:
        """Ask the keyring nothing more (a call under way ends on its own thread)."""
        self._lookup.stop()
        self._tasks.cancel()
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None


class FleetLauncher(QObject):
    """File → Open Big Peer… of a window, and the fleet windows it opened (closed with it)."""

    def __init__(self, settings: QSettings, parent: QWidget) -> None:
        super().__init__(parent)
        self._settings = settings
        self._parent = parent
        self._tasks = TaskSet()
        self.windows: list[FleetWindow] = []
        self.action = QAction("Open &Big Peer…", self)
        self.action.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.action.setToolTip("See the devices of a Big Peer: its fleet dashboard")
        self.action.triggered.connect(lambda _checked=False: self.open_dialog())

    def open_dialog(self, url: str = "") -> BigPeerDialog:
        dialog = BigPeerDialog(self._settings, self._parent, url=url)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.connectRequested.connect(self.open_fleet)
        dialog.open()
        return dialog

    def open_fleet(self, url: str, token: str) -> FleetWindow:
        """Open (and show) a fleet window over ``url``."""
        from inspector.gui.fleet_window import FleetWindow

        window = FleetWindow(url, token, self._settings)
        self.windows.append(window)
        window.closed.connect(lambda: self._tasks.spawn(self._forget(window), "fleet: close a window"))
        window.show()
        return window

    async def _forget(self, window: FleetWindow) -> None:
        await window.wait_closed()
        if window in self.windows:
            self.windows.remove(window)
        window.deleteLater()

    def close_all(self) -> None:
        for window in list(self.windows):
            window.close()

    async def wait_closed(self) -> None:
        """Close the windows opened here and wait until their work has ended."""
        self.close_all()
        for window in list(self.windows):
            await window.wait_closed()
            window.deleteLater()
        self.windows.clear()
        await self._tasks.wait_cancelled()
