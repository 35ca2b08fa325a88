"""Putting long texts into a `QPlainTextEdit` without freezing the window.

``setPlainText`` of 170 KB of pretty JSON takes Qt 20-30 ms on this kind of
machine (and a 2 MB single line close to a second), all on the UI thread. A
`ProgressiveText` loads a long text a slice of lines at a time, one slice per
turn of the event loop, so the window keeps painting and the asyncio tasks keep
running in between; the undo history is off while it loads, as with
``setPlainText``.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

__all__ = ["SLICE_CHARS", "ProgressiveText"]

SLICE_CHARS = 12 * 1024
"""About 3 ms of Qt's work per slice."""


class ProgressiveText(QObject):
    """Loads text into one editor, or inserts it at a place, a slice at a time (see the module doc)."""

    finished = Signal()
    """The whole text is in the editor."""

    def __init__(self, editor: QPlainTextEdit, slice_chars: int = SLICE_CHARS) -> None:
        super().__init__(editor)
        self._editor = editor
        self._slice = slice_chars
        self._text = ""
        self._offset = 0
        self._cursor: QTextCursor | None = None  # inserting at a place (a paste) rather than loading
        self._removing = False
        # Not the timer's state: it is idle while a slice goes in, and that slice's textChanged
        # (and the load's own clear()) belong to the load as much as the rest.
        self._loading = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._step)

    @property
    def loading(self) -> bool:
        """Whether a text is going in: from `load` or `insert` until `finished` (or `cancel`)."""
        return self._loading

    def load(self, text: str) -> None:
        """Replace the editor's text with ``text`` (at once when short, progressively when long)."""
        self.cancel()
        if len(text) <= self._slice:
            self._editor.setPlainText(text)
            self.finished.emit()
            return
        self._text = text
        self._offset = 0
        self._loading = True
        document = self._editor.document()
        document.setUndoRedoEnabled(False)
        # clear() then slices: setPlainText over 280 KB of old text takes Qt 17 ms, clear() 3 ms.
        document.clear()
        self._timer.start()

    def insert(self, text: str, cursor: QTextCursor) -> None:
        """Insert ``text`` at ``cursor`` (replacing its selection), a slice at a time: one undo step.

        The editor is read-only until the whole text is in.
        """
        self.cancel()
        if len(text) <= self._slice or max(map(len, text.split("\n"))) > self._slice:
            # Short, or one long line: slices of one line would cost Qt its whole layout each time.
            cursor.insertText(text)
            self.finished.emit()
            return
        self._text, self._offset, self._cursor = text, 0, cursor
        self._loading = True
        self._editor.setReadOnly(True)
        self._removing = cursor.hasSelection()  # removing 280 KB takes Qt 7 ms: a turn of its own
        cursor.beginEditBlock()
        cursor.endEditBlock()
        self._timer.start()

    def cancel(self) -> None:
        """Stop loading (what is loaded stays); the undo history is back on."""
        if self._loading:
            self._loading = False
            self._timer.stop()
            if self._cursor is None:
                self._editor.document().setUndoRedoEnabled(True)
            else:
                self._editor.setReadOnly(False)
        self._text = ""
        self._cursor = None

    def _cut(self, start: int) -> int:
        """Where the slice starting at ``start`` ends: at a line's end when there is one near."""
        end = min(len(self._text), start + self._slice)
        if end < len(self._text):
            newline = self._text.rfind("\n", start, end)
            if newline > start:
                end = newline + 1
        return end

    def _step(self) -> None:
        if self._removing and self._cursor is not None:
            self._removing = False
            self._cursor.joinPreviousEditBlock()
            self._cursor.removeSelectedText()
            self._cursor.endEditBlock()
            self._timer.start()
            return
        end = self._cut(self._offset)
        piece = self._text[self._offset : end]
        if self._cursor is not None:
            self._cursor.joinPreviousEditBlock()  # every slice joins the one undo step of the paste
            self._cursor.insertText(piece)
            self._cursor.endEditBlock()
        else:
            cursor = QTextCursor(self._editor.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(piece)
        self._offset = end
        if end < len(self._text):
            self._timer.start()
            return
        self._text = ""
        self._loading = False
        if self._cursor is not None:
            self._cursor = None
            self._editor.setReadOnly(False)
        else:
            self._editor.document().setUndoRedoEnabled(True)
        self.finished.emit()
