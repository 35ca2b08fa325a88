"""The inspector window (PySide6, wired to the core's asyncio loop with qasync).

`MainWindow(ditto)` is the window; `inspector.gui.app.run` starts the whole
application (what ``small-peer-inspector`` and ``python -m inspector`` do).
"""

# First, before any other Qt call: see refcount_guard for the PySide6 6.12.0 bug it contains.
from inspector.gui import refcount_guard  # noqa: F401  # isort: skip
from inspector.gui.main_window import MainWindow

__all__ = ["MainWindow"]
