"""File → Export: the history as JSON Lines, and the plot as PNG or SVG.

The history is written one compact document per line, oldest first (a log reads
forwards), read page by page from the `HistorySource` so no export holds the
history in memory: all of it, or the documents the timeline's filter keeps (its
matches, at most `inspector.history.timeline.SEARCH_LIMIT`). The export runs as a
task on the event loop; a non-modal progress dialog shows how far it got and its
Cancel stops it. It writes ``NAME.part`` and renames it when complete, so a
cancelled or failed export leaves no half-written file under the chosen name.

File dialogs open with ``open()`` (never ``exec()``, which would nest an event loop
inside the asyncio loop); tests call `ExportController.export_history` and
`ExportController.export_plot` with a path instead.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QStandardPaths, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu, QProgressDialog, QWidget

from inspector.gui.failures import describe_failure
from inspector.gui.tasks import TaskSet
from inspector.history.remote import BigPeerError
from inspector.history.source import HistorySource

if TYPE_CHECKING:
    from inspector.gui.plot import HistoryPlotPanel
    from inspector.gui.timeline import TimelinePanel

__all__ = ["PAGE", "ExportController", "write_json_lines"]

PAGE = 500
"""Documents read from the source at once."""
PROGRESS_AFTER_MS = 400
"""The progress dialog shows only for exports expected to take longer than this."""
SPARSE_READ = 4
"""Read a span of indices for a filtered export while it holds at least 1 match in this many."""

Progress = Callable[[int, int], None]


def _spans(indices: Sequence[int]) -> Iterator[tuple[int, int, set[int]]]:
    """Sorted ``indices`` as ``(first, last, members)`` spans worth one read each."""
    position = 0
    while position < len(indices):
        first = indices[position]
        members = {first}
        position += 1
        while position < len(indices):
            candidate = indices[position]
            span = candidate - first + 1
            if span > PAGE or span > SPARSE_READ * (len(members) + 1):
                break
            members.add(candidate)
            position += 1
        yield first, max(members), members


async def write_json_lines(
    source: HistorySource, path: Path, indices: Sequence[int] | None = None, progress: Progress | None = None
) -> int:
    """Write the history (or only documents ``indices``) to ``path``, oldest first; returns how many.

    ``progress(done, total)`` is called after each page. Documents that retention
    removed while exporting are skipped. On failure or cancellation nothing is
    left at ``path`` (nor at ``path.part``).
    """
    part = path.with_name(path.name + ".part")
    written = 0
    try:
        with part.open("wb") as out:
            if indices is None:
                oldest, newest = await source.bounds()
                total = newest - oldest + 1 if newest else 0
                for first in range(oldest, newest + 1, PAGE) if newest else ():
                    last = min(newest, first + PAGE - 1)
                    page = await source.documents(first, last)
                    out.write(b"".join(document + b"\n" for _, document in reversed(page)))
                    written += len(page)
                    if progress is not None:
                        progress(last - oldest + 1, total)
            else:
                wanted = sorted(set(indices))
                done = 0
                for first, last, members in _spans(wanted):
                    page = await source.documents(first, last)
                    kept = [document for index, document in reversed(page) if index in members]
                    out.write(b"".join(document + b"\n" for document in kept))
                    written += len(kept)
                    done += len(members)
                    if progress is not None:
                        progress(done, len(wanted))
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return written


def _file_name(title: str, suffix: str) -> str:
    stem = re.sub(r"[^\w.-]+", "-", title).strip("-.") or "device"
    return f"{stem}{suffix}"


class ExportController(QObject):
    """The File → Export actions of a window over ``source`` (and its timeline and plot)."""

    message = Signal(str)
    """What happened, for the status bar."""
    finished = Signal(str)
    """An export completed: the path written."""

    def __init__(
        self,
        source: HistorySource,
        tasks: TaskSet,
        window: QWidget,
        timeline: TimelinePanel,
        plot: HistoryPlotPanel | None,
    ) -> None:
        super().__init__(window)
        self._source = source
        self._tasks = tasks
        self._window = window
        self._timeline = timeline
        self._plot = plot
        self._last_folder: Path | None = None
        self.history_action = QAction("&History as JSON Lines…", self)
        self.history_action.triggered.connect(lambda _checked=False: self.ask_history(filtered=False))
        self.filtered_action = QAction("&Filtered History as JSON Lines…", self)
        self.filtered_action.setToolTip("Only the documents the timeline's filter keeps")
        self.filtered_action.triggered.connect(lambda _checked=False: self.ask_history(filtered=True))
        self.png_action = QAction("Plot as &PNG…", self)
        self.png_action.triggered.connect(lambda _checked=False: self.ask_plot(".png"))
        self.svg_action = QAction("Plot as &SVG…", self)
        self.svg_action.triggered.connect(lambda _checked=False: self.ask_plot(".svg"))
        for action in (self.png_action, self.svg_action):
            action.setEnabled(plot is not None)
        timeline.model.countsChanged.connect(self._update_actions)
        self._update_actions()

    def menu(self, parent: QWidget) -> QMenu:
        """The File → Export submenu."""
        menu = QMenu("&Export", parent)
        menu.addActions([self.history_action, self.filtered_action])
        menu.addSeparator()
        menu.addActions([self.png_action, self.svg_action])
        return menu

    def _update_actions(self) -> None:
        self.filtered_action.setEnabled(self._timeline.timeline.matches is not None)

    # --- asking where ----------------------------------------------------------------------------

    def _ask(
        self, caption: str, name: str, name_filter: str, chosen: Callable[[Path], object]
    ) -> QFileDialog:
        dialog = QFileDialog(self._window, caption, str(self._folder() / name), name_filter)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(Path(name).suffix.lstrip("."))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda selected: self._chosen(Path(selected), chosen))
        dialog.open()  # not exec(): see the module doc
        return dialog

    def _folder(self) -> Path:
        """Where the next dialog opens: the last export's folder, else Documents, else home."""
        if self._last_folder is not None and self._last_folder.is_dir():
            return self._last_folder
        documents = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation))
        return documents if documents.is_dir() else Path.home()

    def _chosen(self, path: Path, then: Callable[[Path], object]) -> None:
        self._last_folder = path.parent
        then(path)

    def ask_history(self, *, filtered: bool) -> QFileDialog:
        """Ask where to write the history (``filtered``: what the timeline's filter keeps)."""
        what = "Filtered History" if filtered else "History"
        return self._ask(
            f"Export {what} as JSON Lines",
            _file_name(self._source.title, "-history.jsonl"),
            "JSON Lines (*.jsonl);;All files (*)",
            lambda path: self.export_history(path, filtered=filtered),
        )

    def ask_plot(self, suffix: str) -> QFileDialog:
        """Ask where to write the plot as PNG (``.png``) or SVG (``.svg``)."""
        kind = "SVG" if suffix == ".svg" else "PNG"
        return self._ask(
            f"Export the Plot as {kind}",
            _file_name(self._source.title, f"-plot{suffix}"),
            f"{kind} image (*{suffix});;All files (*)",
            self.export_plot,
        )

    # --- writing -------------------------------------------------------------------------------

    def export_plot(self, path: Path) -> bool:
        """Write the plot as shown (PNG, or SVG for a ``.svg`` path); False, and a message, on failure."""
        if self._plot is None:
            return False
        try:
            self._plot.save_image(path)
        except OSError as error:
            self.message.emit(f"Could not export the plot to {path}: {error.strerror or error}")
            return False
        self.message.emit(f"Exported the plot to {path}.")
        self.finished.emit(str(path))
        return True

    def export_history(self, path: Path, *, filtered: bool = False) -> asyncio.Task[None] | None:
        """Start writing the history to ``path`` as JSON Lines; the task (None: nothing to write)."""
        indices: list[int] | None = None
        if filtered:
            matches = self._timeline.timeline.matches
            if matches is None:
                self.message.emit("No filter is set: nothing to export as filtered history.")
                return None
            indices = list(matches)
        dialog = QProgressDialog("Exporting the history…", "Cancel", 0, 1000, self._window)
        dialog.setWindowTitle("Export")
        # Non-modal: a modal progress dialog runs Qt's event loop inside setValue, under a running task.
        dialog.setWindowModality(Qt.WindowModality.NonModal)
        dialog.setMinimumDuration(PROGRESS_AFTER_MS)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        task = self._tasks.spawn(self._export(path, indices, dialog), "export: history")
        if task is None:
            dialog.deleteLater()
            return None
        dialog.canceled.connect(task.cancel)
        return task

    async def _export(self, path: Path, indices: list[int] | None, dialog: QProgressDialog) -> None:
        def progress(done: int, total: int) -> None:
            dialog.setLabelText(f"Exporting {done:,} of {total:,} documents…")
            dialog.setValue(round(1000 * done / total) if total else 1000)

        try:
            count = await write_json_lines(self._source, path, indices, progress)
        except asyncio.CancelledError:
            self.message.emit("Export cancelled: nothing was written.")
            raise
        except OSError as error:
            self.message.emit(f"Could not export the history to {path}: {error.strerror or error}")
            return
        except BigPeerError as error:  # the Big Peer went away, or refused, while reading the history
            self.message.emit(f"Could not export the history: {describe_failure(error)}")
            return
        finally:
            dialog.reset()
            dialog.hide()
            dialog.deleteLater()
        self.message.emit(f"Exported {count:,} document{'' if count == 1 else 's'} to {path}.")
        self.finished.emit(str(path))
