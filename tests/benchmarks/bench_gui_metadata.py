"""The metadata editor never holds the UI thread: keystrokes, changes from elsewhere, huge pastes.

``python -m tests.benchmarks.bench_gui_metadata [--quick] [--keystrokes N] [--changes N]``

All on the real window (offscreen) over a real peer holding ~127 KiB metadata:

* **Keystroke to feedback** (p95 <= 16 ms): one keystroke typed into
  ``metadataEditor`` (insertion, highlighting, the debounce restart), then the
  validation the debounce runs and the repaint of the status and the editor; half
  keep the JSON valid, half break it. Baseline: ``orjson.loads`` of the same text.
* **Metadata changed through the API while the window is open** (longest UI stall
  <= 16 ms), for three shapes of 127 KiB metadata. A 1 ms QTimer records the
  longest gap of the event loop from the setter call until the editor shows the
  new value. Baseline: the same setter with no window open.
* **Pasting 4 MB of one-line JSON** and **pasting 1 MB of one-line valid JSON**
  (longest stall <= 16 ms until the editor has settled). Baseline: the event
  loop's longest gap over the same time with nothing happening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import orjson
from PySide6.QtCore import QMimeData, QSettings, Qt, QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest

from inspector import MAX_METADATA_SIZE_BYTES, Ditto
from inspector.gui import MainWindow
from inspector.gui.app import settle_startup_objects
from tests.benchmarks.common import Result, main, run_on_qt

BUDGET_MS = 16.0


def racks() -> dict[str, Any]:
    """Nested records, numbers and lists, just under 128 KiB compact."""
    rng = random.Random(7)
    value: dict[str, Any] = {"fleet": "bench", "racks": []}
    while True:
        rack = {
            "id": f"rack-{len(value['racks']):04d}",
            "location": {"site": rng.choice(["paris", "oslo", "lima"]), "row": rng.randrange(40)},
            "sensors": [{"kind": "temp", "celsius": round(rng.uniform(15, 40), 2)} for _ in range(3)],
            "tags": [f"t{rng.randrange(1000)}" for _ in range(4)],
            "online": rng.random() > 0.1,
        }
        value["racks"].append(rack)
        if len(orjson.dumps(value)) > MAX_METADATA_SIZE_BYTES - 600:
            value["racks"].pop()
            return value


def many_keys() -> dict[str, Any]:
    value: dict[str, Any] = {}
    i = 0
    while len(orjson.dumps(value)) < MAX_METADATA_SIZE_BYTES - 800:
        value[f"key{i:05d}"] = {"label": f"éléphant-{i}-ünïcode", "n": i, "ok": True}
        i += 1
    return value


def gps() -> dict[str, Any]:
    rng = random.Random(3)
    track = [[round(rng.uniform(-90, 90), 6), round(rng.uniform(-180, 180), 6)] for _ in range(5200)]
    return {"track": track, "device": "bench"}


SHAPES: dict[str, Callable[[], dict[str, Any]]] = {
    "nested records": racks,
    "many small non-ASCII keys": many_keys,
    "GPS-like number arrays": gps,
}


class GapMeter:
    """The longest gap between ticks of a 1 ms QTimer: how long the UI thread was held."""

    def __init__(self) -> None:
        self._timer = QTimer()
        self._timer.setInterval(1)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0
        self.longest = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now

    def start(self) -> None:
        self.longest = 0.0
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> float:
        self._tick()
        self._timer.stop()
        return self.longest * 1000


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the editor did not settle in time")
        await asyncio.sleep(0.001)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def keystrokes(window: MainWindow, count: int) -> tuple[list[float], list[float]]:
    panel = window.metadata_panel
    editor = panel.editor
    editor.setFocus()
    lines = []
    block = editor.document().firstBlock()
    while block.isValid():
        if '"id": "rack-' in block.text():
            lines.append(block.blockNumber())
        block = block.next()
    rng = random.Random(1)
    feedback, baseline = [], []
    for index in range(count):
        block = editor.document().findBlockByNumber(rng.choice(lines))
        breaking = index % 2 == 1
        cursor = QTextCursor(block)
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)  # after '"rack-0001",'
        if not breaking:
            cursor.movePosition(QTextCursor.MoveOperation.Left, n=2)  # inside the string value
        editor.setTextCursor(cursor)
        editor.ensureCursorVisible()
        await asyncio.sleep(0)
        start = time.perf_counter()
        QTest.keyClick(editor, Qt.Key.Key_BraceRight if breaking else Qt.Key.Key_X)
        panel.validate_now()  # what the debounce timer runs once typing pauses
        panel.status.repaint()
        editor.viewport().repaint()
        feedback.append((time.perf_counter() - start) * 1000)
        assert panel.status.text().startswith("invalid JSON" if breaking else "valid"), panel.status.text()
        current = editor.toPlainText()
        parse_start = time.perf_counter()
        with contextlib.suppress(orjson.JSONDecodeError):
            orjson.loads(current)
        baseline.append((time.perf_counter() - parse_start) * 1000)
        QTest.keyClick(editor, Qt.Key.Key_Backspace)
        panel.validate_now()
    return feedback, baseline


async def outside_changes(
    window: MainWindow, ditto: Ditto, make: Callable[[], dict[str, Any]], n: int
) -> float:
    panel = window.metadata_panel
    meter = GapMeter()
    stalls = []
    value = make()
    for i in range(n):
        value["bench_counter"] = i
        meter.start()
        await asyncio.sleep(0.005)
        ditto.small_peer_info.metadata = value
        await until(lambda: not panel.busy and panel.validated is not None)
        await asyncio.sleep(0.01)
        stalls.append(meter.stop())
    return statistics.median(stalls)


async def setter_alone(directory: Path, make: Callable[[], dict[str, Any]], n: int) -> float:
    value = make()
    times = []
    async with Ditto(directory, small_peer_info_interval=3600.0) as ditto:
        for i in range(n):
            value["bench_counter"] = i
            start = time.perf_counter()
            ditto.small_peer_info.metadata = value
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def paste_stall(window: MainWindow, text: str) -> float:
    panel = window.metadata_panel
    mime = QMimeData()
    mime.setText(text)
    meter = GapMeter()
    meter.start()
    await asyncio.sleep(0.005)
    panel.editor.setFocus()
    panel.editor.selectAll()
    panel.editor.insertFromMimeData(mime)
    await until(lambda: not panel.busy)
    await asyncio.sleep(0.01)
    return meter.stop()


async def idle_stall(seconds: float) -> float:
    meter = GapMeter()
    meter.start()
    await asyncio.sleep(seconds)
    return meter.stop()


async def measure(args: argparse.Namespace) -> list[Result]:
    changes = 3 if args.quick else args.changes
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ditto = Ditto(directory / "peer", device_name="bench", small_peer_info_interval=3600.0)
        async with ditto:
            ditto.small_peer_info.metadata = racks()
            window = MainWindow(ditto, QSettings(str(directory / "w.ini"), QSettings.Format.IniFormat))
            window.show()
            await until(lambda: not window.metadata_panel.busy)
            settle_startup_objects()  # as the app does once its window is up
            feedback, parse = await keystrokes(window, 40 if args.quick else args.keystrokes)
            results.append(
                Result(
                    "metadata editor",
                    "keystroke to feedback, 128 KiB document (p95)",
                    percentile(feedback, 0.95),
                    percentile(parse, 0.95),
                    "orjson.loads of the text (p95)",
                    "ms",
                    max_value=BUDGET_MS,
                )
            )
            for index, (name, make) in enumerate(SHAPES.items()):
                stall = await outside_changes(window, ditto, make, changes)
                alone = await setter_alone(directory / f"alone{index}", make, changes)
                results.append(
                    Result(
                        "metadata changed through the API, window open",
                        f"longest UI stall, {name} (median of {changes})",
                        stall,
                        alone,
                        "the setter alone, no window",
                        "ms",
                        max_value=BUDGET_MS,
                    )
                )
            idle = await idle_stall(0.5)
            huge = '{"blob": "' + "z" * 4_000_000 + '"}'
            one_line = orjson.dumps({f"k{i}": {"v": i, "s": "x" * 40} for i in range(18_000)}).decode()
            for name, text in (
                ("4 MB of one-line JSON (refused)", huge),
                (f"{len(one_line) >> 20} MB of one-line JSON", one_line),
            ):
                results.append(
                    Result(
                        "paste",
                        f"longest UI stall, {name}",
                        await paste_stall(window, text),
                        idle,
                        "the idle loop over 0.5 s",
                        "ms",
                        max_value=BUDGET_MS,
                    )
                )
            window.close()
            await window.wait_closed()
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keystrokes", type=int, default=300)
    parser.add_argument("--changes", type=int, default=7)


def run(args: argparse.Namespace) -> list[Result]:
    return run_on_qt(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main(run, __doc__, add_arguments))
