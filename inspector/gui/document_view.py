"""The document selected in the timeline: pretty-printed JSON, or its diff against the previous one."""

from __future__ import annotations

import difflib
from typing import Any

import orjson
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from inspector.gui.formatting import indented_json
from inspector.gui.highlighting import JsonHighlighter, follow_palette
from inspector.gui.tasks import TaskSet
from inspector.gui.text_loading import ProgressiveText, exact_text
from inspector.history.source import HistorySource

__all__ = ["DIFF_CONTEXT_LINES", "DocumentPanel", "document_diff"]

DIFF_CONTEXT_LINES = 3

_EMPTY_TEXT = "Select a document in the timeline to see it here."


def document_diff(previous: dict[str, Any] | None, document: dict[str, Any], index: int) -> str:
    """A unified diff from the previous document to ``document`` (a note when there is none)."""
    if previous is None:
        return "# No previous document is stored: nothing to compare with.\n" + indented_json(document)
    lines = difflib.unified_diff(
        indented_json(previous).splitlines(),
        indented_json(document).splitlines(),
        fromfile=f"#{index - 1} {previous.get('last_updated_at', '')}",
        tofile=f"#{index} {document.get('last_updated_at', '')}",
        n=DIFF_CONTEXT_LINES,
        lineterm="",
    )
    return "\n".join(lines)


def _decode(encoded: bytes | None) -> dict[str, Any] | None:
    if encoded is None:
        return None
    document: dict[str, Any] = orjson.loads(encoded)
    return document


class DocumentPanel(QWidget):
    """``documentView`` with its title, the diff toggle and the copy button, over a history source."""

    message = Signal(str)
    """A passing note for the window's status bar."""

    def __init__(self, source: HistorySource, tasks: TaskSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("documentPanel")
        self._source = source
        self._tasks = tasks
        self._index: int | None = None  # asked for
        self._shown_index: int | None = None  # on screen
        self._document: dict[str, Any] | None = None
        self._previous: dict[str, Any] | None = None
        self._version = 0

        self.title = QLabel("Document")

        self.title.setObjectName("documentTitle")
        self.diff_toggle = QPushButton("&Diff with previous")
        self.diff_toggle.setObjectName("documentDiffToggle")
        self.diff_toggle.setCheckable(True)
        self.diff_toggle.setToolTip("Show what changed since the document collected before this one")
        self.diff_toggle.setAccessibleName("Diff with the previous document")
        self.copy_button = QPushButton("C&opy")
        self.copy_button.setObjectName("documentCopyButton")
        self.copy_button.setToolTip("Copy what is shown (the JSON, or the diff) to the clipboard")
        self.copy_button.setAccessibleName("Copy the document")
        self.view = QPlainTextEdit()
        self.view.setObjectName("documentView")
        self.view.setReadOnly(True)
        self.view.setTextInteractionFlags(  # read-only, yet scrollable and selectable from the keyboard
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setPlaceholderText(_EMPTY_TEXT)
        self.view.setAccessibleName("Selected document")
        self.highlighter = JsonHighlighter(self.view.document())
        self.highlighter.follow_view(self.view)
        self._text = ProgressiveText(self.view)

        self.diff_toggle.toggled.connect(self._render)
        self.copy_button.clicked.connect(self.copy)

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.diff_toggle)
        header.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        self._render()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # getattr: the event also arrives while __init__ builds the panel, before the highlighter.
        follow_palette(event, getattr(self, "highlighter", None), self.palette())

    @property
    def index(self) -> int | None:
        """The history index of the document asked for (None when nothing is selected)."""
        return self._index

    @property
    def shown_index(self) -> int | None:
        """The index of the document on screen (it lags `index` while a new one is read)."""
        return self._shown_index

    @property
    def document(self) -> dict[str, Any] | None:
        return self._document

    def show_index(self, index: int | None) -> None:
        """Show document ``index`` of the history (read through the source)."""
        self._version += 1
        if index is None:
            self._index, self._document, self._previous = None, None, None
            self._render()
            return
        if index == self._index and self._document is not None:
            return
        self._index = index
        self.title.setText(f"Document #{index} — loading…")
        self._tasks.spawn(self._load(index, self._version), "document: read")

    async def _load(self, index: int, version: int) -> None:
        try:
            document = await self._source.document(index)
            previous = await self._source.document(index - 1) if index > 1 else None
        except Exception as error:  # a damaged file, a lost connection: say so, keep the window working
            if version == self._version:
                self._document = self._previous = None
                self._render()
                self.title.setText(f"Document #{index} cannot be read")
                self._text.load(str(error))
            return
        if version != self._version:
            return  # another selection replaced this one
        self._document, self._previous = _decode(document), _decode(previous)
        self._render()

    def _render(self) -> None:
        document = self._document
        enabled = document is not None
        self._shown_index = self._index if enabled else None
        self.copy_button.setEnabled(enabled)
        self.diff_toggle.setEnabled(enabled)
        if document is None:
            self.title.setText(
                "Document" if self._index is None else f"Document #{self._index} is no longer stored"
            )
            self.highlighter.set_diff(False)
            self._text.cancel()
            self.view.clear()
            return
        diff = self.diff_toggle.isChecked()
        stamp = document.get("last_updated_at", "")
        self.title.setText(
            f"Document #{self._index} · {stamp}" + (" · changes since the previous one" if diff else "")
        )
        self.highlighter.set_diff(diff)
        text = document_diff(self._previous, document, self._index or 0) if diff else indented_json(document)
        self._text.load(text)

    @property
    def loading(self) -> bool:
        """Whether the document is still being put on screen."""
        return self._text.loading

    def shown_text(self) -> str:
        return exact_text(self.view)

    def copy(self) -> None:
        """Put what is shown on the clipboard."""
        if self._document is None:
            return
        QGuiApplication.clipboard().setText(self.shown_text())
        what = "diff" if self.diff_toggle.isChecked() else "document"
        self.message.emit(f"Copied the {what} #{self._index} to the clipboard.")
