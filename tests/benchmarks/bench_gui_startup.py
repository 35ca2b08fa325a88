"""Cold start of the inspector, to the first paint of its window, against a bare QMainWindow.

``python -m tests.benchmarks.bench_gui_startup [--quick] [--runs N]``

Both are started the same way, as a fresh ``python`` process on the offscreen
platform, and timed from the moment the parent spawns the process to the first
paint event of the window (the child reports the wall-clock time of that paint).
The inspector runs its real ``inspector.gui.app.run`` on a peer directory that
already holds a history. Each window reports its own first paint from its
``paintEvent``, the same way for both (an application-wide Python event filter
installed from the start cost the inspector about 30 ms that the bare window did not
pay: it sees every event of every widget); the inspector window's first paint is
caught by such a filter installed after the first paint. The inspector's first paint
is the window saying which peer it opens (`OpeningWindow`); the inspector window
itself follows once the peer is open (reported too). Bytecode is compiled once before
measuring (as after a first start), since this environment sets
``PYTHONDONTWRITEBYTECODE``. Budget: median <= 1.5x the bare window's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.common import Result, main

BARE = """
import sys, time
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
class Window(QMainWindow):
    def paintEvent(self, event):
        print(f"first-paint {time.time()}", flush=True)
        app.quit()
window = Window()
window.resize(1280, 800)
window.show()
app.exec()
"""

INSPECTOR = """
import sys, time
from PySide6.QtCore import QEvent, QObject
from inspector.gui import app
class FirstPaints(QObject):
    # Application-wide, so installed only after the first paint: before it, it would see (and
    # slow down, about 30 ms) every event of every widget the opening window is built from.
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and watched.isWindow() and watched.objectName() == "mainWindow":
            print(f"window-paint {time.time()}", flush=True)
            watched.close()
            app.QApplication.instance().removeEventFilter(self)
        return False
spy = FirstPaints()
class Opening(app.OpeningWindow):
    # Like the bare window: the first paint is reported by the window itself.
    painted = False
    def paintEvent(self, event):
        if not self.painted:
            self.painted = True
            print(f"first-paint {time.time()}", flush=True)
            app.QApplication.instance().installEventFilter(spy)
        super().paintEvent(event)
app.OpeningWindow = Opening
sys.exit(app.run(app.Options(directory=__import__("pathlib").Path(sys.argv[1]))))
"""


def start_to_paint(code: str, *args: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["XDG_CONFIG_HOME"] = tempfile.mkdtemp()  # no saved geometry from earlier runs
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    seen = {
        line.split()[0]: float(line.split()[1]) - started
        for line in result.stdout.splitlines()
        if line.startswith(("first-paint ", "window-paint "))
    }
    if "first-paint" not in seen:
        raise RuntimeError(f"no first paint reported:\n{result.stdout}\n{result.stderr}")
    return seen


async def fill(directory: Path, documents: int) -> None:
    from inspector import Ditto

    async with Ditto(directory, small_peer_info_interval=300) as peer:
        peer.small_peer_info.metadata = {"site": "bench", "rack": 7}
        peer.small_peer_info.is_enabled = True
        for _ in range(documents):
            await peer.small_peer_info.collect_now()
        peer.small_peer_info.is_enabled = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=9, help="starts of each, alternating")


def run(args: argparse.Namespace) -> list[Result]:
    runs = 3 if args.quick else args.runs
    with tempfile.TemporaryDirectory() as tmp:
        peer = Path(tmp) / "peer"
        asyncio.run(fill(peer, 50))
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(Path(__file__).parents[2] / "inspector")]
        )
        start_to_paint(BARE)
        start_to_paint(INSPECTOR, str(peer))  # warm: bytecode, disk cache
        bare, first, full = [], [], []
        for _ in range(runs):  # alternate, so neither gets a quieter moment of the machine
            bare.append(start_to_paint(BARE)["first-paint"])
            seen = start_to_paint(INSPECTOR, str(peer))
            first.append(seen["first-paint"])
            full.append(seen["window-paint"])
    baseline = statistics.median(bare) * 1000
    return [
        Result(
            "cold start",
            "python process to the first paint (median)",
            statistics.median(first) * 1000,
            baseline,
            "bare QMainWindow, same way",
            "ms",
            max_ratio=1.5,
            note=f"inspector runs {[round(s * 1000) for s in first]} ms, "
            f"bare {[round(s * 1000) for s in bare]} ms",
        ),
        Result(
            "cold start",
            "python process to the inspector window's first paint, peer open (median)",
            statistics.median(full) * 1000,
            baseline,
            "bare QMainWindow, same way",
            "ms",
            note="reported: imports, opening the peer and building the window follow the first paint",
        ),
    ]


if __name__ == "__main__":
    sys.exit(main(run, __doc__, add_arguments))
