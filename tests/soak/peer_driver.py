"""A peer (optionally with its window) collecting as fast as it can, reporting RSS and open fds.

``python -m tests.soak.peer_driver DIR --collections N --every K [--change-every M] [--window]``

Prints one JSON line every K collections: ``{"collections": n, "rss": bytes, "fds": n}``.
Collections are driven with ``collect_now`` (the interval's floor, 0.1 s, would make
10,000 collections take 17 minutes); the metadata is about 127 KiB and changes every
M collections (never with M = 0). With ``--window`` the real `MainWindow` is open
(offscreen) and a scripted user selects rows, filters the timeline and edits the
metadata in the editor between collections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import psutil

from inspector import Ditto, HistoryRetention


def metadata(i: int = 0) -> dict[str, Any]:
    rng = random.Random(7)
    value: dict[str, Any] = {"revision": i}
    for k in range(1100):
        value[f"key{k}"] = {"name": "".join(rng.choices("abcdefghijklmnop", k=40)), "n": k, "ok": True}
    return value


def report(collections: int) -> None:
    process = psutil.Process()
    print(
        json.dumps({"collections": collections, "rss": process.memory_info().rss, "fds": process.num_fds()}),
        flush=True,
    )


async def drive(args: argparse.Namespace, user: Any = None) -> None:
    retention = HistoryRetention(max_documents=args.collections + 10, max_bytes=2**34)
    async with Ditto(args.directory, small_peer_info_interval=3600.0, history_retention=retention) as peer:
        sp = peer.small_peer_info
        sp.metadata = metadata()
        sp.is_enabled = True
        if user is not None:
            user.start(peer)
        report(0)
        for n in range(1, args.collections + 1):
            if args.change_every and n % args.change_every == 0:
                sp.metadata = metadata(n)
            await sp.collect_now()
            if user is not None:
                await user.act(n)
            if n % args.every == 0:
                report(n)
        if user is not None:
            await user.stop()


class ScriptedUser:
    """Uses the real window between collections: selects rows, filters, edits metadata."""

    def start(self, peer: Ditto) -> None:
        from PySide6.QtCore import QSettings

        from inspector.gui import MainWindow
        from inspector.gui.app import settle_startup_objects

        settings = QSettings(str(Path(os.environ["SOAK_TMP"]) / "soak.ini"), QSettings.Format.IniFormat)
        self.window = MainWindow(peer, settings)
        self.window.show()
        settle_startup_objects()
        self.rng = random.Random(3)

    async def act(self, n: int) -> None:
        window = self.window
        panel = window.timeline_panel
        if n % 10 == 0:
            rows = panel.model.rowCount()
            if rows:
                panel.view.selectRow(self.rng.randrange(rows))
        if n % 250 == 0:
            panel.filter_edit.setText("revision" if (n // 250) % 2 else "")
            panel.apply_filter()
        if n % 300 == 0:
            editor = window.metadata_panel.editor
            editor.setPlainText(f'{{"edited": {n}, "note": "{"e" * 2000}"}}')
            window.metadata_panel.apply()
        await asyncio.sleep(0)

    async def stop(self) -> None:
        self.window.close()
        await self.window.wait_closed()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--collections", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--change-every", type=int, default=0)
    parser.add_argument("--window", action="store_true")
    args = parser.parse_args()
    if not args.window:
        asyncio.run(drive(args))
        return 0
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtWidgets import QApplication

    from inspector.gui.app import configure_application

    app = QApplication(sys.argv[:1])
    configure_application(app)
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        runner.run(drive(args, ScriptedUser()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
