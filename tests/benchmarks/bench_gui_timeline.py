"""The timeline over a long history: its first screen, a jump to the middle, a filter over everything.

``python -m tests.benchmarks.bench_gui_timeline [--quick] [--documents N] [--keep DIR]``

The history is written straight into the peer's store with `Store.import_documents`
(collecting a million documents would take days), realistic bodies, one document
every 10 s ending now. The measured span runs from constructing the real
`MainWindow` to the moment every row of the first screen shows its data (not the
loading placeholder) and the window has painted. The baseline is the same over an
empty store; the two are measured in alternation, several times, after one warm-up
window each, so neither carries the first window's one-off costs. Budget: the first
screen over 1,000,000 documents < 1 s. Also reported: the jump to the middle, and
a filter that matches nothing (a full scan in SQLite, off the UI thread).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import orjson
from PySide6.QtCore import QSettings

from inspector import Ditto, HistoryRetention
from inspector.core.events import MetadataValue
from inspector.core.store import CollectedDocument, numeric_leaves
from inspector.core.timestamps import format_timestamp
from inspector.gui import MainWindow
from tests.benchmarks.common import Result, main, run_on_qt

RETENTION = HistoryRetention(max_documents=10_000_000, max_age_seconds=100 * 365 * 86400.0, max_bytes=2**40)
BATCH = 20_000


def body(peer_key: str, seq: int, ts: int) -> bytes:
    return orjson.dumps(
        {
            "_id": peer_key,
            "device_name": "bench",
            "ditto_sdk_language": "Python",
            "ditto_sdk_platform": "Linux",
            "ditto_sdk_version": "0.1.0",
            "last_updated_at": format_timestamp(ts),
            "connections_by_transport": {},
            "big_peer_connection_history": [],
            "device_disk_usage": {
                "device_total": 270_553_174_016,
                "device_available": 85_000_000_000 - seq * 4096,
                "ditto_total": 150_000 + seq * 700,
                "ditto_store": 150_000 + seq * 700,
            },
            "logs_config": {"enabled": True, "minimum_level": "warning"},
            "os": {"name": "Linux", "release": "6.1.0", "version": "#1 SMP", "machine": "x86_64"},
            "python_version": "3.11.7",
            "system_uptime_seconds": 1000.0 + seq * 10,
            "process": {"pid": 4242, "uptime_seconds": seq * 10.0, "memory_rss_bytes": 120_000_000},
        }
    )


async def fill(directory: Path, count: int) -> None:
    async with Ditto(directory, device_name="bench", history_retention=RETENTION) as ditto:
        _, newest = await ditto.store.bounds()
        if newest == count:
            return
        if newest:
            raise SystemExit(f"{directory} holds {newest:,} documents, not {count:,}: choose another --keep")
        metadata = MetadataValue(orjson.dumps({"site": "bench", "rack": 7, "tags": ["a", "b"]}))
        first = int(time.time() * 1000) - count * 10_000
        started = time.perf_counter()
        for start in range(0, count, BATCH):
            documents = []
            for seq in range(start + 1, min(count, start + BATCH) + 1):
                ts = first + seq * 10_000
                encoded = body(ditto.peer_key, seq, ts)
                documents.append(
                    CollectedDocument(
                        ditto.peer_key,
                        ts,
                        encoded,
                        metadata,
                        numeric_leaves(orjson.loads(encoded)),
                        queue=False,
                    )
                )
            await ditto.store.import_documents(documents)
        print(f"filled {count:,} documents in {time.perf_counter() - started:.0f} s", flush=True)


async def until(predicate, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the timeline did not show its rows in time")
        await asyncio.sleep(0)


def visible_rows(window: MainWindow) -> range:
    view = window.timeline_panel.view
    height = view.verticalHeader().defaultSectionSize()
    return range(min(window.timeline_panel.model.rowCount(), view.viewport().height() // height + 1))


async def first_screen(directory: Path, settings: Path) -> tuple[float, MainWindow, Ditto]:
    ditto = Ditto(
        directory, device_name="bench", small_peer_info_interval=3600.0, history_retention=RETENTION
    )
    start = time.perf_counter()
    window = MainWindow(ditto, QSettings(str(settings), QSettings.Format.IniFormat))
    window.show()
    timeline = window.timeline_panel.timeline
    await until(lambda: timeline.loaded)
    await until(lambda: all(timeline.is_row_loaded(row) for row in visible_rows(window)))
    window.repaint()
    return time.perf_counter() - start, window, ditto


async def close(window: MainWindow, ditto: Ditto) -> None:
    window.close()
    await window.wait_closed()
    await ditto.close()


async def measure(count: int, keep: Path | None, repeats: int) -> list[Result]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    try:
        big = keep or scratch / "big"
        await fill(big, count)
        empty_times, big_times = [], []
        for round_ in range(repeats + 1):
            for directory, times in ((scratch / "empty", empty_times), (big, big_times)):
                seconds, window, ditto = await first_screen(directory, scratch / f"{directory.name}.ini")
                if round_:  # round 0 warms both up
                    times.append(seconds)
                if round_ < repeats or directory is not big:
                    await close(window, ditto)
        timeline = window.timeline_panel.timeline
        middle = timeline.row_count // 2
        started = time.perf_counter()
        window.timeline_panel.view.scrollTo(window.timeline_panel.model.index(middle, 0))
        await until(lambda: timeline.is_row_loaded(middle))
        window.repaint()
        jump = time.perf_counter() - started
        started = time.perf_counter()
        timeline.set_filter("no such text anywhere")  # the worst case: every document is scanned
        await until(lambda: not timeline.searching and timeline.match_count is not None, timeout=600)
        scan = time.perf_counter() - started
        await close(window, ditto)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    empty, first = statistics.median(empty_times) * 1000, statistics.median(big_times) * 1000
    return [
        Result(
            "timeline",
            f"first screen over {count:,} documents (median of {repeats})",
            first,
            empty,
            "same window over an empty store",
            "ms",
            max_value=1000.0,
        ),
        Result(
            "timeline",
            "jump to the middle and show it",
            jump * 1000,
            empty,
            "empty store's first screen",
            "ms",
        ),
        Result(
            "timeline",
            "filter matching nothing (full scan, off the UI thread)",
            scan * 1000,
            empty,
            "empty store's first screen",
            "ms",
        ),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="a directory to keep the filled store in, for the next run")
    parser.add_argument("--repeats", type=int, default=5)


def run(args: argparse.Namespace) -> list[Result]:
    count = 20_000 if args.quick else args.documents
    return run_on_qt(lambda: measure(count, args.keep, 2 if args.quick else args.repeats))


if __name__ == "__main__":
    sys.exit(main(run, __doc__, add_arguments))
