"""The inspector window (PySide6, wired to the core's asyncio loop with qasync).

`MainWindow(ditto)` is the window; `inspector.gui.app.run` starts the whole
application (what ``small-peer-inspector`` and ``python -m inspector`` do).
"""

from inspector.gui.main_window import MainWindow

__all__ = ["MainWindow"]
