"""Time to show the first screen of the timeline over 1,000,000 stored documents (target: < 1 s).

Run by hand (headless by default; filling the store takes a minute the first time):

    .venv/bin/python tests/benchmarks/bench_gui_timeline.py [--documents 1000000] [--keep DIR]

The history is written straight into the peer's SQLite store with ``executemany`` on
the store's thread (collecting a million documents would take days), with realistic
document bodies. The measured span runs from constructing the real `MainWindow`
to the moment every row of the first screen shows its data (not the loading
placeholder) and the window has painted: the window's construction, the bounds, the
page read on the store's thread, the view. The baseline, measured in the same run,
is the same over an empty store. Also reported: jumping to the middle of the
history, and a filter over all of it (a full scan in SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import orjson
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from inspector import Ditto, HistoryRetention
from inspector.core.timestamps import format_timestamp
from inspector.gui import MainWindow
from inspector.gui.app import configure_application
from inspector.gui.timeline import Column

TARGET_S = 1.0
RETENTION = HistoryRetention(max_documents=10_000_000, max_age_seconds=100 * 365 * 86400.0)
BATCH = 50_000


def _fill(store, peer_key: str, device_name: str, count: int) -> None:
    """On the store thread: ``count`` history rows, 10 s apart, ending now (bench-only SQL)."""
    conn = store._conn  # the benchmark writes rows directly; the app never does
    metadata = orjson.dumps({"site": "bench", "rack": 7, "tags": ["a", "b"]})
    metadata_hash = hashlib.blake2b(metadata, digest_size=16).digest()
    first = int(time.time() * 1000) - count * 10_000
    with conn:
        conn.execute("BEGIN")
        conn.execute("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", (metadata_hash, metadata))
        for start in range(0, count, BATCH):
            rows = []
            for seq in range(start + 1, min(count, start + BATCH) + 1):
                ts = first + seq * 10_000
                body = orjson.dumps(
                    {
                        "_id": peer_key,
                        "device_name": device_name,
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
                        "process": {
                            "pid": 4242,
                            "uptime_seconds": seq * 10.0,
                            "memory_rss_bytes": 120_000_000,
                            "cpu_count": 8,
                        },
                    }
                )
                rows.append((seq, ts, body, metadata_hash, len(body) + len(metadata) + 12))
            conn.executemany(
                "INSERT INTO history (seq, ts, body, metadata_hash, size, replication) "
                "VALUES (?, ?, ?, ?, ?, NULL)",
                rows,
            )


async def _until(predicate, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the timeline did not show its rows in time")
        await asyncio.sleep(0)


def _visible_rows(window: MainWindow) -> range:
    view = window.timeline_view
    height = view.verticalHeader().defaultSectionSize()
    count = min(window.timeline_model.rowCount(), view.viewport().height() // height + 1)
    return range(count)


async def first_screen(directory: Path, settings: Path) -> tuple[float, MainWindow, Ditto]:
    """Seconds from constructing the window to its painted first screen of loaded rows."""
    ditto = Ditto(
        directory, device_name="bench", small_peer_info_interval=3600.0, history_retention=RETENTION
    )
    start = time.perf_counter()
    window = MainWindow(ditto, QSettings(str(settings), QSettings.Format.IniFormat))
    window.show()
    model = window.timeline_model
    await _until(lambda: model.loaded)
    await _until(lambda: all(model.is_row_loaded(row) for row in _visible_rows(window)))
    window.repaint()
    return time.perf_counter() - start, window, ditto


async def close(window: MainWindow, ditto: Ditto) -> None:
    window.close()
    await window.wait_closed()
    await ditto.close()


async def measure(count: int, keep: Path | None) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    try:
        big = keep or scratch / "big"
        fresh = not (big / "peer.sqlite3").exists()
        ditto = Ditto(big, device_name="bench", small_peer_info_interval=3600.0, history_retention=RETENTION)
        _oldest, newest = await ditto.store.run(ditto.store.bounds)
        if fresh or newest != count:
            if newest:
                raise SystemExit(f"{big} holds {newest:,} documents, not {count:,}: choose another --keep")
            started = time.perf_counter()
            await ditto.store.run(_fill, ditto.store, ditto.peer_key, ditto.device_name, count)
            print(f"filled the store with {count:,} documents in {time.perf_counter() - started:.1f} s")
        await ditto.close()

        baseline, window, empty = await first_screen(scratch / "empty", scratch / "empty.ini")
        await close(window, empty)
        seconds, window, ditto = await first_screen(big, scratch / "big.ini")
        model = window.timeline_model
        first_row = model.data(model.index(0, Column.TIME))
        print(f"first screen, empty store:          {baseline * 1000:8.1f} ms")
        print(
            f"first screen, {count:,} documents: {seconds * 1000:8.1f} ms "
            f"({len(_visible_rows(window))} rows, {model.pages_read} page(s) read, "
            f"{model.cached_row_count} rows cached); top row: {first_row}"
        )

        middle = model.rowCount() // 2
        started = time.perf_counter()
        window.timeline_view.scrollTo(model.index(middle, 0))
        await _until(lambda: model.is_row_loaded(middle))
        window.repaint()
        print(f"jump to the middle and show it:     {(time.perf_counter() - started) * 1000:8.1f} ms")

        started = time.perf_counter()
        model.set_filter("2026")  # a year in last_updated_at: matches past the search limit quickly
        await _until(lambda: not model.searching and model.match_count is not None)
        print(
            f"filter '2026':                      {(time.perf_counter() - started) * 1000:8.1f} ms "
            f"({model.match_count:,} matches kept)"
        )
        started = time.perf_counter()
        model.set_filter("no such text anywhere")  # the worst case: every document is scanned
        await _until(lambda: not model.searching and model.match_count is not None)
        print(f"filter with no match (full scan):   {(time.perf_counter() - started) * 1000:8.1f} ms")
        await close(window, ditto)

        ratio = seconds / baseline
        verdict = "meets" if seconds < TARGET_S else "MISSES"
        print(
            f"first screen over {count:,} documents = {seconds * 1000:.0f} ms = {ratio:.2f}x the same window "
            f"over an empty store ({baseline * 1000:.0f} ms); {verdict} the {TARGET_S:.0f} s target."
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="a directory to keep the filled store in, for the next run")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    configure_application(app)
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        runner.run(measure(args.documents, args.keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
