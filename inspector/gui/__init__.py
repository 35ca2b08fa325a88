"""The inspector window (PySide6, wired to the core's asyncio loop with qasync).

`MainWindow(ditto)` is the window; `FleetWindow(big_peer_url, admin_token)` is the
device dashboard of a Big Peer; `inspector.gui.app.run` starts the whole
application (what ``small-peer-inspector`` and ``python -m inspector`` do). The
windows' modules load on first use, so the app can paint before it has imported them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspector.gui.fleet_window import FleetWindow
    from inspector.gui.main_window import MainWindow

__all__ = ["FleetWindow", "MainWindow"]


def __getattr__(name: str) -> Any:
    if name == "MainWindow":
        from inspector.gui.main_window import MainWindow

        return MainWindow
    if name == "FleetWindow":
        from inspector.gui.fleet_window import FleetWindow

        return FleetWindow
    raise AttributeError(f"module 'inspector.gui' has no attribute {name!r}")
