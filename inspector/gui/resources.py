"""The window's resources as Qt objects: the application icon and the style sheet.

Finding the files is `inspector.resource_files`' job (no Qt needed there).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon, QPixmap

from inspector.resource_files import APP_ICON, DESKTOP_FILE, STYLE_SHEET, resource, resource_directory

__all__ = [
    "APP_ICON",
    "DESKTOP_FILE",
    "STYLE_SHEET",
    "app_icon",
    "resource",
    "resource_directory",
    "style_sheet",
]


def style_sheet() -> str:
    """The application's Qt style sheet (written against palette roles: light and dark alike)."""
    return resource(STYLE_SHEET).read_text(encoding="utf-8")


def app_icon() -> QIcon:
    """The application icon, drawn from its SVG at whatever size the platform asks for."""
    source = resource(APP_ICON)
    if isinstance(source, Path):
        return QIcon(str(source))  # QIcon reads files lazily: it needs a path that stays
    pixmap = QPixmap()  # a zipped install: render the SVG bytes once (256 px); QIcon scales down
    pixmap.loadFromData(source.read_bytes(), "SVG")
    return QIcon(pixmap)
