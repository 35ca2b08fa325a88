"""The history plot over 1,000,000 stored documents: first paint, zoom and pan, memory, a metadata series.

Run by hand (headless by default; filling the store takes about three minutes, once):

    .venv/bin/python -m tests.benchmarks.bench_gui_plot [--quick] [--documents N] [--keep DIR]

The history is written with `Store.import_documents` (realistic documents 10 s apart,
disk figures that wander, metadata that changes every ``--metadata-every``
documents) and kept in ``--keep DIR`` for the next run. Every measurement has a
baseline from the same run and a budget:

* **first paint**: from constructing the real `MainWindow` (1600 x 1000) to the
  painted window whose timeline shows its first screen and whose plot shows its
  curves; baseline: the same window built without the plot (``plot=False``) over
  the same peer. Budget: at most 300 ms more.
* **zoom/pan re-read**: once a zoom or pan has been drawn with what was read before,
  reading the new range (min/max per pixel column and the markers) and repainting the
  plot with it, for nine zooms and pans over the whole history, each tried three times
  (the median counts, so one moment of contention on the machine is not a range's
  cost); the slowest range counts. Baseline: the bare `series()` call for the same
  ranges. Budget: 50 ms.
* **RSS growth**: the process's resident memory with the plot window open after
  all of the above, against the same process after the windows without the plot.
  Budget: 30 MB more.
* **metadata series**: adding ``metadata.battery.level`` (read by walking the
  metadata runs, with progress) while a QTimer ticks every 5 ms; the longest gap
  between two ticks is the longest stall of the event loop. Baseline: the same
  timer while idle. Budget: 50 ms; the read must report progress.

Exits 1 when a budget is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a file, or with -m

import orjson
import psutil
from PySide6.QtCore import QSettings, QTimer

from inspector import Ditto, HistoryRetention
from inspector.core.events import MetadataValue
from inspector.core.store import CollectedDocument, numeric_leaves
from inspector.core.timestamps import format_timestamp
from inspector.gui import MainWindow
from tests.benchmarks.common import Result, main, run_on_qt

STEP_MS = 10_000
BATCH = 50_000
WINDOW_SIZE = (1600, 1000)
RETENTION = HistoryRetention(
    max_documents=100_000_000, max_age_seconds=100 * 365 * 86400.0, max_bytes=64 * 1024**3
)
METADATA_SERIES = "metadata.battery.level"
MB = 1024 * 1024


# --- the history -------------------------------------------------------------------------------


def open_peer(directory: Path) -> Ditto:
    """A peer over ``directory`` whose retention keeps everything the benchmark stores."""
    return Ditto(
        directory, device_name="bench-device", small_peer_info_interval=3600.0, history_retention=RETENTION
    )


def realistic_documents(
    ditto: Ditto,
    count: int,
    *,
    metadata_every: int,
    end_ms: int | None = None,
    step_ms: int = STEP_MS,
    seed: int = 7,
) -> Iterator[CollectedDocument]:
    """``count`` documents ``step_ms`` apart, the last at ``end_ms`` (now by default)."""
    rng = random.Random(seed)
    end_ms = end_ms if end_ms is not None else int(time.time() * 1000)
    first = end_ms - (count - 1) * step_ms
    available, store = 180 * 2**30, 2 * 2**20
    metadata = MetadataValue(b"{}")
    for i in range(count):
        ts = first + i * step_ms
        if i % metadata_every == 0:
            level = round(100 * (0.55 + 0.45 * math.cos(i / (metadata_every * 12))), 1)
            build = 4100 + i // (metadata_every * 40)
            metadata = MetadataValue(
                orjson.dumps({"site": "lab-3", "battery": {"level": level}, "firmware": {"build": build}})
            )
        available += rng.randint(-3 * 2**20, 2 * 2**20)
        if rng.random() < 0.002:  # a large download, or a clean-up
            available += rng.choice((-1, 1)) * rng.randint(2, 9) * 2**30
        available = min(max(available, 20 * 2**30), 240 * 2**30)
        store += rng.randint(0, 24 * 1024)
        document = {
            "_id": ditto.peer_key,
            "device_name": ditto.device_name,
            "ditto_sdk_language": "Python",
            "ditto_sdk_platform": "Linux",
            "ditto_sdk_version": "0.1.0",
            "last_updated_at": format_timestamp(ts),
            "connections_by_transport": {"WebSocket": 1 if rng.random() < 0.9 else 0},
            "big_peer_connection_history": [],
            "device_disk_usage": {
                "device_total": 256 * 2**30,
                "device_available": available,
                "ditto_total": store + 512 * 1024,
                "ditto_store": store,
            },
            "logs_config": {"enabled": True, "minimum_level": "warning"},
            "system_uptime_seconds": 1000.0 + i * step_ms / 1000,
            "process": {"pid": 4242, "memory_rss_bytes": 110 * 2**20 + rng.randint(0, 30 * 2**20)},
        }
        yield CollectedDocument(
            ditto.peer_key, ts, orjson.dumps(document), metadata, numeric_leaves(document), queue=False
        )


async def fill(
    ditto: Ditto, count: int, *, metadata_every: int, end_ms: int | None = None, step_ms: int = STEP_MS
) -> None:
    """Store ``count`` realistic documents, `BATCH` per transaction (see `realistic_documents`)."""
    batch: list[CollectedDocument] = []
    for document in realistic_documents(
        ditto, count, metadata_every=metadata_every, end_ms=end_ms, step_ms=step_ms
    ):
        batch.append(document)
        if len(batch) == BATCH:
            await ditto.store.import_documents(batch)
            batch = []
    if batch:
        await ditto.store.import_documents(batch)


async def filled_peer(directory: Path, count: int, metadata_every: int) -> Ditto:
    ditto = open_peer(directory)
    _oldest, newest = await ditto.store.bounds()
    if newest == count:
        return ditto
    if newest:
        await ditto.close()
        raise SystemExit(f"{directory} holds {newest:,} documents, not {count:,}: choose another --keep")
    started = time.perf_counter()
    await fill(ditto, count, metadata_every=metadata_every)
    await ditto.store.checkpoint()
    print(f"filled {directory} with {count:,} documents in {time.perf_counter() - started:.0f} s", flush=True)
    return ditto


# --- measuring ---------------------------------------------------------------------------------


async def until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the window did not get there in time")
        await asyncio.sleep(0.001)  # not 0: a busy loop would take the GIL from the store's thread


def first_screen_shown(window: MainWindow) -> bool:
    view, timeline = window.timeline_panel.view, window.timeline_panel.timeline
    rows = min(timeline.row_count, view.viewport().height() // view.verticalHeader().defaultSectionSize() + 1)
    return timeline.loaded and all(timeline.is_row_loaded(row) for row in range(rows))


def plot_drawn(window: MainWindow) -> bool:
    panel = window.plot_panel
    return panel is None or (panel.query_count > 0 and not panel.busy)


async def first_paint(ditto: Ditto, settings: Path, *, plot: bool) -> tuple[float, MainWindow]:
    """Seconds from constructing the window to its first painted screen (timeline rows, plot curves).

    ``settings`` must be a new file: every window starts as on a first start.
    """
    start = time.perf_counter()
    window = MainWindow(ditto, QSettings(str(settings), QSettings.Format.IniFormat), plot=plot)
    window.resize(*WINDOW_SIZE)
    window.show()
    await until(lambda: first_screen_shown(window) and plot_drawn(window))
    window.repaint()
    return time.perf_counter() - start, window


async def close(window: MainWindow) -> None:
    window.close()
    await window.wait_closed()
    window.deleteLater()
    await asyncio.sleep(0.05)


def ranges(first: float, last: float) -> list[tuple[float, float]]:
    """Zooms and pans a user makes over a history from ``first`` to ``last`` (Unix seconds)."""
    span = last - first
    day, hour = 86400.0, 3600.0
    return [
        (first + span * 0.25, first + span * 0.75),  # zoom in on the middle
        (first + span * 0.45, first + span * 0.95),  # pan right
        (first + span * 0.50, first + span * 0.50 + 7 * day),  # a week
        (first + span * 0.50 + 3 * day, first + span * 0.50 + 10 * day),  # pan by half a week
        (first + span * 0.50 + 3 * day, first + span * 0.50 + 3 * day + 6 * hour),  # six hours
        (first + span * 0.30, first + span * 0.30 + 6 * hour),  # jump far back
        (last - day, last),  # the last day
        (first, last),  # everything again
        (first + span * 0.10, first + span * 0.60),  # half of it
    ]


async def zooms(window: MainWindow, tries: int = 3) -> tuple[list[float], list[float]]:
    """(re-read and repaint, bare series()) for each range of `ranges`: the median of ``tries``, seconds.

    The tries go round the ranges in turn, so a moment of contention on the machine (or a
    collection of Python's garbage) lands on one try of a range rather than on all three.
    """
    panel = window.plot_panel
    assert panel is not None
    source = window.history
    bounds = await source.time_bounds()
    assert bounds is not None
    measured, bare = [], []
    painted: list[float] = []

    def paint_now() -> None:  # on dataChanged, synchronously: the new curves on screen
        panel.plot.viewport().repaint()
        painted.append(time.perf_counter())

    panel.dataChanged.connect(paint_now)
    for left, right in ranges(bounds[0] / 1000, bounds[1] / 1000) * tries:
        panel.set_view_range(left, right)
        await asyncio.sleep(0.02)  # the zoom itself is drawn with what was read before (by Qt, as in the app)
        reads = panel.query_count
        start = time.perf_counter()
        panel.refresh_now()  # the debounce is a deliberate wait, not work: it is left out
        await until(lambda reads=reads: panel.query_count > reads and not panel.busy)
        measured.append(painted[-1] - start)
        first, last, buckets, _ = panel._wanted()
        start = time.perf_counter()
        await source.series(panel.series, first, last, buckets)
        bare.append(time.perf_counter() - start)
    panel.dataChanged.disconnect(paint_now)
    count = len(measured) // tries
    return (
        [statistics.median(measured[i::count]) for i in range(count)],
        [statistics.median(bare[i::count]) for i in range(count)],
    )


async def ticking(seconds: float, busy: Callable[[], bool] | None = None) -> list[float]:
    """Gaps between the ticks of a 5 ms QTimer, for ``seconds`` (or while ``busy()``)."""
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    if busy is None:
        await asyncio.sleep(seconds)
    else:
        await until(lambda: not busy(), seconds)
    timer.stop()
    return [b - a for a, b in zip(ticks, ticks[1:], strict=False)] or [0.0]


async def metadata_series(window: MainWindow) -> tuple[float, list[float], list[float], bool]:
    """Add the metadata series over the whole history: (seconds, tick gaps, progress reports, bar shown)."""
    panel = window.plot_panel
    assert panel is not None
    panel.show_whole_history()
    await until(lambda: not panel.busy)
    reports: list[float] = []
    shown = []
    source = window.history
    series = source.series

    async def reporting(paths, first, last, buckets, progress=None):  # type: ignore[no-untyped-def]
        def report(fraction: float) -> None:
            reports.append(fraction)
            if progress is not None:
                progress(fraction)

        return await series(paths, first, last, buckets, report)

    source.series = reporting  # type: ignore[method-assign]
    reads = panel.query_count
    start = time.perf_counter()
    panel.add_series(METADATA_SERIES)

    def reading() -> bool:
        shown.append(panel.progress.isVisible())
        return panel.query_count == reads or panel.busy

    gaps = await ticking(60.0, reading)
    seconds = time.perf_counter() - start
    source.series = series  # type: ignore[method-assign]
    return seconds, gaps, reports, any(shown)


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / MB


async def measure(args: argparse.Namespace) -> list[Result]:
    count = 20_000 if args.quick and args.documents is None else args.documents or 1_000_000
    scratch = Path(tempfile.mkdtemp(prefix="bench-plot-"))
    try:
        directory = args.keep or scratch / "peer"
        ditto = await filled_peer(directory, count, args.metadata_every)
        try:
            return await measure_peer(ditto, scratch, count, args.repeat)
        finally:
            await ditto.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def measure_peer(ditto: Ditto, scratch: Path, count: int, repeat: int) -> list[Result]:
    windows = (scratch / f"window-{n}.ini" for n in range(1000))
    _, warm = await first_paint(ditto, next(windows), plot=True)  # imports, fonts and caches, once
    await close(warm)
    without, with_plot = [], []
    for _ in range(repeat):
        seconds, window = await first_paint(ditto, next(windows), plot=False)
        without.append(seconds)
        await close(window)
    rss_without = rss_mb()
    for attempt in range(repeat):
        seconds, window = await first_paint(ditto, next(windows), plot=True)
        with_plot.append(seconds)
        if attempt < repeat - 1:
            await close(window)
    zoom_times, bare_times = await zooms(window)
    idle = await ticking(1.0)
    metadata_seconds, gaps, reports, bar_shown = await metadata_series(window)
    rss_with = rss_mb()
    panel = window.plot_panel
    assert panel is not None
    points = sum(len(x) for x, _ in (curve.getData() for curve in panel.curves.values()) if x is not None)
    await close(window)

    ms = 1000.0
    docs = f"{count:,} documents"
    results = [
        Result(
            "plot",
            f"first paint with the plot, {docs}",
            statistics.median(with_plot) * ms,
            statistics.median(without) * ms,
            "the window without the plot",
            "ms",
            max_extra=300.0,
            note=f"medians of {repeat}; window {WINDOW_SIZE[0]}x{WINDOW_SIZE[1]}",
        ),
        Result(
            "plot",
            "slowest zoom/pan re-read + repaint (median of 3 tries)",
            max(zoom_times) * ms,
            max(bare_times) * ms,
            "bare series() of the same ranges",
            "ms",
            max_value=50.0,
            note=f"{len(zoom_times)} ranges; the median range {statistics.median(zoom_times) * ms:.1f} ms",
        ),
        Result(
            "plot",
            "RSS with the plot window open",
            rss_with,
            rss_without,
            "after the windows without the plot",
            "MB",
            max_extra=30.0,
            note=f"{points:,} points held by {len(panel.curves)} curves",
        ),
        Result(
            "plot",
            f"longest event-loop stall, {METADATA_SERIES} read",
            max(gaps) * ms,
            max(idle) * ms,
            "the same 5 ms timer while idle",
            "ms",
            max_value=50.0,
            note=(
                f"the read took {metadata_seconds * ms:.0f} ms with {len(reports)} progress reports"
                f"{' (bar shown)' if bar_shown else ''}"
            ),
        ),
    ]
    if not reports:
        results.append(
            Result("plot", "metadata read without progress", 1, 0, "a read with progress", "", max_value=0)
        )
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--documents", type=int, help="documents in the history (1,000,000; --quick: 20,000)")
    parser.add_argument("--keep", type=Path, help="a directory to keep the filled peer in, for the next run")
    parser.add_argument("--metadata-every", type=int, default=100, help="documents between metadata changes")
    parser.add_argument("--repeat", type=int, default=3, help="first paints of each window measured")


def run(args: argparse.Namespace) -> list[Result]:
    return run_on_qt(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main(run, __doc__, add_arguments))
