"""The metadata editor: JSON text, validated as the user types, applied on request.

Validation is the core's own `inspector.core.metadata.validate`, run on the editor's
text after each edit once typing pauses (a single-shot timer restarted by every
edit). An error is marked where it is, with a wave underline laid over the text as
an *extra selection*: the document itself is never reformatted, so validation adds
no undo steps and never re-triggers ``textChanged``.

What the peer holds is compared by compact encoding, so re-indenting the text is not
a change: Apply is enabled only for a valid value that differs from the peer's.
The editor follows metadata changed elsewhere (another window, the API) while it
holds no unsaved edits; with unsaved edits it keeps them and says so.

Nothing here may freeze the window (SPEC §4, and the budget of 16 ms on the UI
thread): a change from elsewhere is taken up after the setter has returned and
loaded a slice of lines per turn of the event loop (`ProgressiveText`); only the
lines on screen are coloured; a text longer than `OFFLOAD_CHARS` is validated on a
worker thread; a paste of more than `PASTE_LIMIT` characters is refused with its
size (the validator would refuse it anyway), and a pasted line longer than
`LONG_PASTE_LINE` characters is pretty-printed when it is valid JSON (the value is
the same; Qt needs half a second to lay out and paint a megabyte on one line) or
refused with the reason when it is not.

A one-line paste of a megabyte is work in Python before Qt sees any of it: parsing it
takes orjson 7-9 ms, pretty-printing and re-encoding it 2-4 ms, and splitting the
result into its 72,000 lines to find the longest took 6-7 ms (done twice, it held the
window 27 ms in one turn). So the parse and the pretty-printing each take a turn of the
event loop of their own, lines are measured by a C-speed search rather than split, and
the result goes in through `ProgressiveText` (the replaced text out and the new text in
a slice per turn, then the validation in a turn of its own).
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import orjson
from PySide6.QtCore import QEvent, QMimeData, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QFontDatabase,
    QKeySequence,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from inspector.core.errors import DittoClosedError, MetadataValidationError, MetadataValidationReason
from inspector.core.events import MetadataValue
from inspector.core.metadata import (
    MAX_METADATA_DEPTH,
    MAX_METADATA_SIZE_BYTES,
    ValidatedMetadata,
    validate,
)
from inspector.core.small_peer_info import SmallPeerInfo
from inspector.gui.formatting import format_bytes, indented_json
from inspector.gui.highlighting import JsonHighlighter, follow_palette, is_dark_palette
from inspector.gui.tasks import TaskSet
from inspector.gui.text_loading import ProgressiveText, exact_text

__all__ = [
    "LONG_PASTE_LINE",
    "OFFLOAD_CHARS",
    "PASTE_LIMIT",
    "VALIDATION_DELAY_MS",
    "MetadataEditorPanel",
    "MetadataTextEdit",
    "describe_error",
    "pretty_json",
]

VALIDATION_DELAY_MS = 120
"""Pause in typing after which the text is validated (validation itself takes ~1 ms at 128 KiB)."""

_R = MetadataValidationReason
# What the wave underline covers from the error position: a word or number, a string, or one character.
_ERROR_TOKEN = re.compile(r'[\w.+\-]+|"(?:[^"\\]|\\.)*"?|.')
_LIMIT = format_bytes(MAX_METADATA_SIZE_BYTES)
PASTE_LIMIT = 2 * 1024 * 1024
"""Longest text (characters) the editor takes in one paste: 16x the metadata limit."""
LONG_PASTE_LINE = 64 * 1024
"""A pasted line longer than this is pretty-printed (valid JSON) or refused (not JSON)."""
_LONG_LINE = re.compile(f"\n[^\n]{{{LONG_PASTE_LINE + 1}}}")
OFFLOAD_CHARS = 1024 * 1024
"""Texts longer than this are validated on a worker thread (shorter ones take a few ms)."""

Outcome = ValidatedMetadata | MetadataValidationError


def _outcome(text: str) -> Outcome:
    try:
        return validate(text)
    except MetadataValidationError as error:
        return error


def _has_long_line(text: str) -> bool:
    """Whether a line of ``text`` (lines end at ``\\n``) is longer than `LONG_PASTE_LINE` characters.

    A regular expression anchored on line ends runs at C speed, about 1.7 ms for 1.5 MB
    of pretty JSON: ``max(map(len, text.splitlines()))`` takes 6-7 ms, making a string
    per line.
    """
    first_end = text.find("\n", 0, LONG_PASTE_LINE + 1)
    if first_end < 0:
        return len(text) > LONG_PASTE_LINE
    return _LONG_LINE.search(text, first_end) is not None


def _qt_line_ends(text: str) -> str:
    """``text`` with its line ends as the editor will hold them (all ``\\n``).

    ``\\r\\n``, a lone ``\\r`` and U+2029 become ``\\n``: Qt starts a new line at each of
    them anyway. Made ``\\n`` first, a paste's lines are measured and sliced as the editor
    will show them (a paste of short lines ending in ``\\r`` is not one long line).
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\u2029" in text:
        text = text.replace("\u2029", "\n")
    return text


def pretty_json(encoded: bytes | str) -> str:
    """JSON text indented by two spaces (keys in their order), for people to read and edit."""
    return indented_json(orjson.loads(encoded))


def describe_error(error: MetadataValidationError) -> str:
    """One line for the status label: what is wrong, where (line:column) and which limit."""
    where = f" at line {error.line}:{error.column}" if error.line is not None else ""
    if error.reason is _R.INVALID_JSON:
        detail = error.message.split(": ", 1)[-1]
        return f"invalid JSON{where} — {detail}"
    if error.reason is _R.NOT_AN_OBJECT:
        return f"not an object{where} — metadata must be a JSON object {{…}}"
    if error.reason is _R.DEPTH_LIMIT_EXCEEDED:
        depth = (
            f"depth {error.depth} of {MAX_METADATA_DEPTH}"
            if error.depth
            else f"deeper than {MAX_METADATA_DEPTH}"
        )
        path = error.path if error.path is None or len(error.path) <= 60 else error.path[:57] + "…"
        return f"too deep{where} — {depth}" + (f" at {path}" if path else "")
    if error.reason is _R.SIZE_LIMIT_EXCEEDED:
        # Exact bytes: near the limit, rounded units would read "128 KiB of 128 KiB".
        limit = f"must be under {MAX_METADATA_SIZE_BYTES:,} B ({_LIMIT})"
        if error.size is None:
            return f"too large — {limit}"
        size = f"at least {format_bytes(error.size)}" if error.size_is_lower_bound else f"{error.size:,} B"
        return f"too large — {size} as compact JSON, {limit}"
    return f"not representable as JSON{where} — {error.message}"


class MetadataTextEdit(QPlainTextEdit):
    """The editor itself: long texts go in a slice at a time; pastes it cannot show are refused.

    A paste with a line longer than `LONG_PASTE_LINE` characters goes in pretty-printed
    when it is valid JSON, in stages of a turn of the event loop each: the parse, then
    the pretty-printing (and the checks on its result), then `ProgressiveText`'s slices.
    It is refused, with the reason, when it is not JSON, or when it is metadata too large
    anyway with a single value still longer than that line once pretty-printed. The
    editor is read-only from the paste until the text is in or refused.
    """

    pasteRefused = Signal(str)
    """Why a paste was refused, in a sentence."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.progressive = ProgressiveText(self)
        self._pending_paste: _LongLinePaste | None = None
        self._paste_stage = QTimer(self)
        self._paste_stage.setSingleShot(True)
        self._paste_stage.setInterval(0)
        self._paste_stage.timeout.connect(self._paste_long_line)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if not source.hasText():
            super().insertFromMimeData(source)
            return
        text = _qt_line_ends(source.text())
        if len(text) > PASTE_LIMIT:
            self.pasteRefused.emit(
                f"Not pasted: the clipboard holds {format_bytes(len(text))} of text "
                f"({len(text):,} characters); the editor takes at most {format_bytes(PASTE_LIMIT)}, "
                f"and metadata must be under {_LIMIT} as compact JSON."
            )
            return
        if not _has_long_line(text):
            self.progressive.insert(text, self.textCursor())
            return
        self._pending_paste = _LongLinePaste(text, QTextCursor(self.textCursor()))
        self.setReadOnly(True)
        self._paste_stage.start()

    @property
    def pasting(self) -> bool:
        """Whether a paste is still going in (the editor is read-only meanwhile)."""
        return self._pending_paste is not None or self.progressive.loading

    def cancel_paste(self) -> None:
        """Drop a long-line paste not yet pretty-printed (the window is closing)."""
        self._paste_stage.stop()
        if self._pending_paste is not None:
            self._end_paste()

    def _paste_long_line(self) -> None:
        paste = self._pending_paste
        if paste is None:
            return
        if not paste.parsed:
            # Parsing a megabyte takes ~8 ms: this turn does nothing else.
            try:
                paste.value = orjson.loads(paste.text)
            except orjson.JSONDecodeError as error:
                self._end_paste()
                self.pasteRefused.emit(
                    f"Not pasted: the clipboard holds a line of {format_bytes(len(paste.text))} that is "
                    f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
                    "a line that long cannot be edited here. Fix it or pretty-print it first."
                )
                return
            paste.parsed = True
            self._paste_stage.start()
            return
        self._end_paste()
        value = paste.value
        pretty = indented_json(value)
        compact = len(orjson.dumps(value))
        if compact >= MAX_METADATA_SIZE_BYTES and _has_long_line(pretty):
            # One value too long for a line of the editor, in metadata too large anyway.
            self.pasteRefused.emit(
                f"Not pasted: the clipboard holds {compact:,} bytes of JSON (compact) with a single "
                f"value longer than {format_bytes(LONG_PASTE_LINE)}; metadata must be under "
                f"{MAX_METADATA_SIZE_BYTES:,} bytes, and a line that long cannot be edited here."
            )
            return
        self.progressive.insert(pretty, paste.cursor)

    def _end_paste(self) -> None:
        self._pending_paste = None
        self.setReadOnly(False)


class _LongLinePaste:
    """A paste with a line too long for the editor, on its way to being pretty-printed."""

    __slots__ = ("cursor", "parsed", "text", "value")

    def __init__(self, text: str, cursor: QTextCursor) -> None:
        self.text = text
        self.cursor = cursor
        self.parsed = False
        self.value: object = None


class MetadataEditorPanel(QWidget):
    """``metadataEditor``, ``metadataStatus``, ``applyMetadataButton``, and the Revert and Format actions."""

    message = Signal(str)
    """A passing note for the window's status bar (applied, followed an outside change...)."""

    def __init__(
        self, small_peer_info: SmallPeerInfo, tasks: TaskSet | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("metadataPanel")
        self._small_peer_info = small_peer_info
        self._tasks = tasks
        self._revision = 0  # counts edits: a validation answers for the revision it read
        self._validating: int | None = None  # the revision being validated on the worker thread
        self._executor: ThreadPoolExecutor | None = None
        self._incoming: MetadataValue | None = None
        self._peer_encoded: bytes = small_peer_info.metadata_json_string.encode("utf-8")
        self._baseline: bytes = self._peer_encoded  # what the editor was last loaded with or applied
        self._valid: ValidatedMetadata | None = None
        self._error: MetadataValidationError | None = None

        title = QLabel("M&etadata")  # Alt+E: Alt+M opens the Metadata menu
        title.setObjectName("panelTitle")
        hint = QLabel(
            f"A JSON object carried by every document · under {_LIMIT}, up to {MAX_METADATA_DEPTH} levels"
        )
        hint.setObjectName("panelHint")
        hint.setWordWrap(True)

        self.editor = MetadataTextEdit()
        self.editor.setObjectName("metadataEditor")
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setTabStopDistance(self.editor.fontMetrics().horizontalAdvance("  "))
        self.editor.setAccessibleName("Metadata JSON")
        title.setBuddy(self.editor)
        self.highlighter = JsonHighlighter(self.editor.document())
        self.highlighter.follow_view(self.editor)
        self._text = self.editor.progressive
        self._text.finished.connect(self._loaded)

        self.status = QLabel()
        self.status.setObjectName("metadataStatus")
        self.status.setAccessibleName("Metadata validation")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setWordWrap(True)  # an error message can be long: it wraps rather than clips
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.notice = QLabel()
        self.notice.setObjectName("metadataNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()

        self.apply_action = QAction("&Apply Metadata", self)
        self.apply_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Save))
        self.apply_action.setToolTip("Give the peer this metadata; the next document carries it")
        self.revert_action = QAction("&Revert Metadata", self)
        self.revert_action.setToolTip("Discard the edits and show the peer's metadata")
        self.format_action = QAction("&Format Metadata", self)
        self.format_action.setShortcut(QKeySequence("Ctrl+Shift+F"))
        self.format_action.setToolTip("Pretty-print the JSON (the value stays the same)")
        for action in (self.apply_action, self.revert_action, self.format_action):
            self.addAction(action)  # shortcuts work wherever the focus is in the window
        self.apply_action.triggered.connect(self.apply)
        self.revert_action.triggered.connect(self.revert)
        self.format_action.triggered.connect(self.format_text)

        self.format_button = QPushButton("Format")
        self.format_button.setObjectName("formatMetadataButton")
        self.revert_button = QPushButton("Revert")
        self.revert_button.setObjectName("revertMetadataButton")
        self.apply_button = QPushButton("Apply")
        self.apply_button.setObjectName("applyMetadataButton")
        self.apply_button.setDefault(True)
        for button, action in (
            (self.format_button, self.format_action),
            (self.revert_button, self.revert_action),
            (self.apply_button, self.apply_action),
        ):
            button.setToolTip(
                f"{action.toolTip()} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                if not action.shortcut().isEmpty()
                else action.toolTip()
            )
            button.clicked.connect(action.trigger)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(VALIDATION_DELAY_MS)
        self._debounce.timeout.connect(self.validate_now)
        self.editor.textChanged.connect(self._on_text_changed)
        self.editor.pasteRefused.connect(lambda reason: self._set_notice(reason, "error"))
        self._follow = QTimer(self)
        self._follow.setSingleShot(True)
        self._follow.setInterval(0)
        self._follow.timeout.connect(self._take_up_incoming)

        buttons = QHBoxLayout()
        buttons.addWidget(self.format_button)
        buttons.addStretch(1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.notice)
        layout.addLayout(buttons)

        self._load(self._peer_encoded)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # getattr: the event also arrives while __init__ builds the panel, before the highlighter.
        follow_palette(event, getattr(self, "highlighter", None), self.palette())

    # --- state --------------------------------------------------------------------------------------

    @property
    def validated(self) -> ValidatedMetadata | None:
        """The editor's value as last validated, or None while it is invalid."""
        return self._valid

    @property
    def error(self) -> MetadataValidationError | None:
        return self._error

    @property
    def loading(self) -> bool:
        """Whether a text is still being put into the editor (it is read-only meanwhile)."""
        return self._text.loading

    @property
    def busy(self) -> bool:
        """Whether the panel still has work queued: an outside change, a load, a validation."""
        return (
            self._follow.isActive()
            or self.editor.pasting
            or self._text.loading
            or self._validating is not None
        )

    def has_unsaved_edits(self) -> bool:
        """Whether the text holds a value other than the one it was loaded with (or is invalid)."""
        self._ensure_validated()
        return self._valid is None or self._valid.encoded != self._baseline

    def shutdown(self) -> None:
        """Stop pending work (the window is closing)."""
        self._debounce.stop()
        self._follow.stop()
        self.editor.cancel_paste()
        self._text.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _on_text_changed(self) -> None:
        self._revision += 1
        if self._text.loading:
            self._update_actions()  # a paste started: its text is validated once it is all in
        else:
            self._debounce.start()

    # --- validation ---------------------------------------------------------------------------------

    def validate_now(self) -> None:
        """Validate the editor's text and show the outcome (the debounce timer calls this).

        A text longer than `OFFLOAD_CHARS` is validated on a worker thread (when the
        panel has a task set to run it); the status says "validating…" meanwhile.
        """
        self._debounce.stop()
        text = exact_text(self.editor)
        if len(text) > OFFLOAD_CHARS and self._tasks is not None:
            self._validating = self._revision
            self._set_status("validating…", "pending", f"{len(text):,} characters")
            self._tasks.spawn(self._validate_elsewhere(text, self._revision), "metadata: validate")
            return
        self._validating = None
        self._show(_outcome(text))

    def _ensure_validated(self) -> None:
        """Make `validated` current (an action needs the answer now, however long the text)."""
        if self._debounce.isActive() or self._validating is not None:
            self._debounce.stop()
            self._validating = None
            self._show(_outcome(exact_text(self.editor)))

    async def _validate_elsewhere(self, text: str, revision: int) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="inspector-validate")
        outcome = await asyncio.get_running_loop().run_in_executor(self._executor, _outcome, text)
        if self._validating == revision == self._revision:
            self._validating = None
            self._show(outcome)

    def _show(self, outcome: Outcome) -> None:
        if isinstance(outcome, MetadataValidationError):
            exc = outcome
            self._valid, self._error = None, exc
            self._set_status(describe_error(exc), "error", exc.message)
            self._mark_error(exc)
        else:
            valid = outcome
            self._valid, self._error = valid, None
            size = format_bytes(valid.size)
            self._set_status(
                f"valid · {size} of {_LIMIT} · depth {valid.depth} of {MAX_METADATA_DEPTH}",
                "valid",
                f"{valid.size:,} bytes as compact JSON (the limit is under {MAX_METADATA_SIZE_BYTES:,})",
            )
            if self.editor.extraSelections():
                self.editor.setExtraSelections([])
        self._update_actions()

    def _set_status(self, text: str, state: str, tooltip: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(tooltip)
        if self.status.property("state") != state:
            self.status.setProperty("state", state)
            self.status.style().unpolish(self.status)
            self.status.style().polish(self.status)

    def _mark_error(self, error: MetadataValidationError) -> None:
        selections: list[QTextEdit.ExtraSelection] = []
        if error.line is not None and error.column is not None:
            document = self.editor.document()
            block = document.findBlockByNumber(error.line - 1)
            if not block.isValid():
                block = document.lastBlock()
            text = block.text()
            column = min(max(error.column - 1, 0), len(text))
            if column == len(text) and column > 0:
                column -= 1  # past the end of the line: mark its last character
            token = _ERROR_TOKEN.match(text, column)
            end = token.end() if token else column + 1
            start = len(text[:column].encode("utf-16-le")) // 2
            length = len(text[column:end].encode("utf-16-le")) // 2
            red = QColor("#e5484d")

            line = QTextEdit.ExtraSelection()
            line.format.setBackground(
                QColor(red.red(), red.green(), red.blue(), 40 if is_dark_palette() else 22)
            )
            line.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            line.cursor = QTextCursor(block)
            selections.append(line)

            spot = QTextEdit.ExtraSelection()
            spot.format.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
            spot.format.setUnderlineColor(red)
            spot.cursor = QTextCursor(block)
            spot.cursor.setPosition(block.position() + start)
            spot.cursor.setPosition(block.position() + start + length, QTextCursor.MoveMode.KeepAnchor)
            selections.append(spot)
        self.editor.setExtraSelections(selections)

    def _update_actions(self) -> None:
        valid = None if self._text.loading else self._valid  # a text going in: nothing to act on yet
        differs = not self._text.loading and (valid is None or valid.encoded != self._peer_encoded)
        self.apply_action.setEnabled(valid is not None and differs)
        self.apply_button.setEnabled(valid is not None and differs)
        self.revert_action.setEnabled(differs)
        self.revert_button.setEnabled(differs)
        self.format_action.setEnabled(valid is not None)
        self.format_button.setEnabled(valid is not None)

    def _set_notice(self, text: str | None, kind: str = "warning") -> None:
        if not text:
            self.notice.clear()
            self.notice.hide()
            return
        self.notice.setText(text)
        self.notice.setProperty("kind", kind)
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)
        self.notice.show()

    # --- actions ------------------------------------------------------------------------------------

    def apply(self) -> None:
        """Give the editor's value to the peer (Apply, Ctrl+S)."""
        if self._text.loading:
            return
        self._ensure_validated()
        valid = self._valid
        if valid is None or valid.encoded == self._peer_encoded:
            return
        try:
            self._small_peer_info.metadata_json_string = valid.encoded.decode("utf-8")
        except (MetadataValidationError, DittoClosedError) as exc:
            self._set_notice(f"Could not apply the metadata: {exc}", "error")
            return
        self._peer_encoded = self._baseline = valid.encoded
        self._set_notice(None)
        self._update_actions()
        self.message.emit("Metadata applied: the next document carries it.")

    def revert(self) -> None:
        """Show the peer's metadata again, dropping the edits (undoable)."""
        if self._text.loading:
            return
        self._replace_text(pretty_json(self._peer_encoded))
        self._baseline = self._peer_encoded
        self._set_notice(None)
        self._update_actions()

    def format_text(self) -> None:
        """Pretty-print the editor's JSON in place (undoable); the value does not change."""
        if self._text.loading:
            return
        self._ensure_validated()
        if self._valid is None:
            return
        text = pretty_json(self._valid.encoded)
        if text != exact_text(self.editor):
            self._replace_text(text)

    def _replace_text(self, text: str) -> None:
        # Through a cursor, in one edit block, so that Undo brings the previous text back.
        line = self.editor.textCursor().blockNumber()
        cursor = QTextCursor(self.editor.document())
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(text)
        cursor.endEditBlock()
        block = self.editor.document().findBlockByNumber(line)
        if block.isValid():
            self.editor.setTextCursor(QTextCursor(block))
        self._ensure_validated()
        self.validate_now()

    def _load(self, encoded: bytes) -> None:
        """Show ``encoded`` (the peer's), a slice at a time when long; read-only until it is all in.

        Until it is all in there is nothing to validate, apply, revert or format: the
        partial text is not the user's, and Apply must not send the old value back.
        """
        self._baseline = encoded
        self._debounce.stop()
        self._validating = None
        self._valid = self._error = None
        self.editor.setExtraSelections([])
        self.editor.setReadOnly(True)
        self._set_status("loading…", "pending", "")
        self._text.load(pretty_json(encoded))
        self._update_actions()

    def _loaded(self) -> None:
        self.editor.setReadOnly(False)
        self._debounce.stop()
        self.validate_now()

    # --- the peer -----------------------------------------------------------------------------------

    def on_metadata_changed(self, metadata: MetadataValue) -> None:
        """The peer's metadata changed (here or elsewhere): follow it unless there are unsaved edits.

        Taken up on the next turn of the event loop: the setter that changed it does not wait.
        """
        self._incoming = metadata
        self._follow.start()

    def _take_up_incoming(self) -> None:
        metadata, self._incoming = self._incoming, None
        if metadata is None:
            return
        new = metadata.encoded
        pasting = self.editor.pasting
        interrupted = self._text.loading and not pasting
        if interrupted:
            self._text.cancel()  # a newer value replaces the one being loaded: the text is partial
            dirty = False
        elif pasting:
            dirty = True  # a paste still going in is the user's edit: it goes on, and is kept
        else:
            self._ensure_validated()
            dirty = self._valid is None or self._valid.encoded != self._baseline
        self._peer_encoded = new
        if not (interrupted or pasting) and self._valid is not None and self._valid.encoded == new:
            self._baseline = new  # the editor already shows it (our own Apply, or the same edit)
            self._set_notice(None)
        elif not dirty:
            self._load(new)
            self._set_notice(None)
            self.message.emit("The metadata was changed elsewhere: the editor shows the new value.")
        else:
            self._set_notice(
                "The metadata was changed elsewhere. Your unsaved edits are kept: "
                "Apply replaces it with them, Revert shows the new value."
            )
        self._update_actions()
