"""The document selected in the timeline: pretty-printed JSON, or its diff against the previous one."""

from __future__ import annotations

import difflib
from typing import Any

import orjson
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from inspector.core.store import Store
from inspector.gui.highlighting import JsonHighlighter, follow_palette
from inspector.gui.tasks import TaskSet

__all__ = ["DIFF_CONTEXT_LINES", "DocumentPanel", "document_diff"]

DIFF_CONTEXT_LINES = 3

_EMPTY_TEXT = "Select a document in the timeline to see it here."


def _pretty(document: dict[str, Any]) -> str:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode("utf-8")


def document_diff(previous: dict[str, Any] | None, document: dict[str, Any], seq: int) -> str:
    """A unified diff from the previous document to ``document`` (a note when there is none)."""
    if previous is None:
        return "# No previous document is stored: nothing to compare with.\n" + _pretty(document)
    lines = difflib.unified_diff(
        _pretty(previous).splitlines(),
        _pretty(document).splitlines(),
        fromfile=f"#{seq - 1} {previous.get('last_updated_at', '')}",
        tofile=f"#{seq} {document.get('last_updated_at', '')}",
        n=DIFF_CONTEXT_LINES,
        lineterm="",
    )
    return "\n".join(lines)


def _read(store: Store, seq: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    return store.document_by_seq(seq), store.document_by_seq(seq - 1)


class DocumentPanel(QWidget):
    """``documentView`` with its title, the diff toggle and the copy button."""

    message = Signal(str)
    """A passing note for the window's status bar."""

    def __init__(self, store: Store, tasks: TaskSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("documentPanel")
        self._store = store
        self._tasks = tasks
        self._seq: int | None = None  # asked for
        self._shown_seq: int | None = None  # on screen
        self._document: dict[str, Any] | None = None
        self._previous: dict[str, Any] | None = None
        self._version = 0

        self.title = QLabel("Document", objectName="documentTitle")
        self.diff_toggle = QPushButton("Diff with previous", objectName="documentDiffToggle")
        self.diff_toggle.setCheckable(True)
        self.diff_toggle.setToolTip("Show what changed since the document collected before this one")
        self.copy_button = QPushButton("Copy", objectName="documentCopyButton")
        self.copy_button.setToolTip("Copy what is shown (the JSON, or the diff) to the clipboard")
        self.view = QPlainTextEdit(objectName="documentView")
        self.view.setReadOnly(True)
        self.view.setTextInteractionFlags(  # read-only, yet scrollable and selectable from the keyboard
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setPlaceholderText(_EMPTY_TEXT)
        self.view.setAccessibleName("Selected document")
        self.highlighter = JsonHighlighter(self.view.document())

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
    def seq(self) -> int | None:
        """The seq of the document shown (None when nothing is selected)."""
        return self._seq

    @property
    def shown_seq(self) -> int | None:
        """The seq of the document on screen (it lags `seq` while a new one is read)."""
        return self._shown_seq

    @property
    def document(self) -> dict[str, Any] | None:
        return self._document

    def show_seq(self, seq: int | None) -> None:
        """Show the stored document ``seq`` (read on the store's thread)."""
        self._version += 1
        if seq is None:
            self._seq, self._document, self._previous = None, None, None
            self._render()
            return
        if seq == self._seq and self._document is not None:
            return
        self._seq = seq
        self.title.setText(f"Document #{seq} — loading…")
        self._tasks.spawn(self._load(seq, self._version), "document: read")

    async def _load(self, seq: int, version: int) -> None:
        document, previous = await self._store.run(_read, self._store, seq)
        if version != self._version:
            return  # another selection replaced this one
        self._document, self._previous = document, previous
        self._render()

    def _render(self) -> None:
        document = self._document
        enabled = document is not None
        self._shown_seq = self._seq if enabled else None
        self.copy_button.setEnabled(enabled)
        self.diff_toggle.setEnabled(enabled)
        if document is None:
            self.title.setText(
                "Document" if self._seq is None else f"Document #{self._seq} is no longer stored"
            )
            self.highlighter.set_diff(False)
            self.view.clear()
            return
        diff = self.diff_toggle.isChecked()
        stamp = document.get("last_updated_at", "")
        self.title.setText(
            f"Document #{self._seq} · {stamp}" + (" · changes since the previous one" if diff else "")
        )
        self.highlighter.set_diff(diff)
        text = document_diff(self._previous, document, self._seq or 0) if diff else _pretty(document)
        self.view.setPlainText(text)

    def shown_text(self) -> str:
        return self.view.toPlainText()

    def copy(self) -> None:
        """Put what is shown on the clipboard."""
        if self._document is None:
            return
        QGuiApplication.clipboard().setText(self.shown_text())
        what = "diff" if self.diff_toggle.isChecked() else "document"
        self.message.emit(f"Copied the {what} #{self._seq} to the clipboard.")
