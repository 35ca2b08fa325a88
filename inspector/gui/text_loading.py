"""Putting long texts into a `QPlainTextEdit` without freezing the window.

``setPlainText`` of 170 KB of pretty JSON takes Qt 20-30 ms on this kind of
machine (and a 2 MB single line close to a second), all on the UI thread. A
`ProgressiveText` loads a long text a slice of lines at a time, one slice per
turn of the event loop, so the window keeps painting and the asyncio tasks keep
running in between; the undo history is off while it loads, as with
``setPlainText``.

Slices end at line ends. Qt lays a block (a line) out anew whenever it changes, so a
line is never cut in two: one longer than a slice goes in whole, in a slice of its own
(Qt lays out 64 K characters on one line in about 12 ms, a megabyte in a quarter of a
second: callers keep lines that long out, see `LONG_PASTE_LINE` in the metadata editor).
A selection that an insertion replaces is removed a slice at a time too, from its end
(removing 280 KB of pretty JSON at once takes Qt 8-17 ms), and `finished` comes in a
turn of its own, so what its listeners do (read and validate the whole text) does not
add to the last slice.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

__all__ = ["REMOVE_SLICE_CHARS", "SLICE_CHARS", "ProgressiveText", "exact_text"]

SLICE_CHARS = 12 * 1024
"""About 3 ms of Qt's work per slice."""
REMOVE_SLICE_CHARS = 4 * SLICE_CHARS
"""Characters of a replaced selection removed per turn: about 2 ms of Qt's work (removing is cheap)."""


def exact_text(editor: QPlainTextEdit) -> str:
    """The editor's text character for character, lines ending in ``\n``.

    ``toPlainText()`` is not: it turns every no-break space (U+00A0) into a space and a
    line separator (U+2028) into a line end, so JSON holding either in a string would be
    validated and applied changed (or, for U+2028, refused as a control character in a
    string). The raw text keeps both; only its paragraph separators are the line ends.
    """
    return editor.document().toRawText().replace("\u2029", "\n")


class ProgressiveText(QObject):
    """Loads text into one editor, or inserts it at a place, a slice at a time (see the module doc)."""

    finished = Signal()
    """The whole text is in the editor."""

    def __init__(
        self, editor: QPlainTextEdit, slice_chars: int = SLICE_CHARS, remove_chars: int = REMOVE_SLICE_CHARS
    ) -> None:
        super().__init__(editor)
        self._editor = editor
        self._slice = slice_chars
        self._remove_slice = remove_chars
        self._text = ""
        self._offset = 0
        self._cursor: QTextCursor | None = None  # inserting at a place (a paste) rather than loading
        self._remove_from = self._remove_to = 0  # the part of the replaced selection still to remove
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

        At once when both the text and the selection are short, or the text is one line
        (it would go in whole anyway). Otherwise the editor is read-only until the whole
        text is in: the selection is removed first, a slice at a time from its end.
        """
        self.cancel()
        selected = cursor.selectionEnd() - cursor.selectionStart()
        if selected <= self._remove_slice and (len(text) <= self._slice or "\n" not in text):
            cursor.insertText(text)
            self.finished.emit()
            return
        self._text, self._offset, self._cursor = text, 0, cursor
        self._remove_from, self._remove_to = cursor.selectionStart(), cursor.selectionEnd()
        self._loading = True
        self._editor.setReadOnly(True)
        # Opens the insertion's edit block: every removal and slice joins it, one undo step in all.
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
        self._remove_from = self._remove_to = 0

    def _cut(self, start: int) -> int:
        """Where the slice starting at ``start`` ends: after its last line end, or its line's end."""
        text = self._text
        end = start + self._slice
        if end >= len(text):
            return len(text)
        newline = text.rfind("\n", start, end)
        if newline < 0:
            newline = text.find("\n", end)  # a line longer than a slice: whole, on its own
            if newline < 0:
                return len(text)
        return newline + 1

    def _removal_start(self) -> int:
        """Where the next piece of the selection to remove starts: a line's start, or the selection's."""
        start = self._remove_to - self._remove_slice
        if start <= self._remove_from:
            return self._remove_from
        # Whole lines, for the same reason as slices: a line cut in two is laid out again.
        return max(self._remove_from, self._editor.document().findBlock(start).position())

    def _step(self) -> None:
        cursor = self._cursor
        if cursor is not None and self._remove_to > self._remove_from:
            start = self._removal_start()
            cursor.joinPreviousEditBlock()
            cursor.setPosition(start)
            cursor.setPosition(self._remove_to, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            cursor.endEditBlock()
            self._remove_to = start
            self._timer.start()
            return
        if self._offset >= len(self._text):
            self._finish()
            return
        end = self._cut(self._offset)
        piece = self._text[self._offset : end]
        if cursor is not None:
            cursor.joinPreviousEditBlock()  # every slice joins the one undo step of the paste
            cursor.insertText(piece)
            cursor.endEditBlock()
        else:
            cursor = QTextCursor(self._editor.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(piece)
        self._offset = end
        self._timer.start()  # the next slice, or `finished` in a turn of its own

    def _finish(self) -> None:
        self._text = ""
        self._loading = False
        if self._cursor is not None:
            self._cursor = None
            self._editor.setReadOnly(False)
        else:
            self._editor.document().setUndoRedoEnabled(True)
        self.finished.emit()
