"""The inspector window (PySide6, wired to the core's asyncio loop with qasync).

`MainWindow(ditto)` is the window; `inspector.gui.app.run` starts the whole
application (what ``small-peer-inspector`` and ``python -m inspector`` do). The
window's module loads on first use, so the app can paint before it has imported it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspector.gui.main_window import MainWindow

__all__ = ["MainWindow"]


def __getattr__(name: str) -> Any:
    if name == "MainWindow":
        from inspector.gui.main_window import MainWindow

        return MainWindow
    raise AttributeError(f"module 'inspector.gui' has no attribute {name!r}")
