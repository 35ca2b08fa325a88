"""The window's resource files: the application icon, the style sheet, the ``.desktop`` file.

A built wheel carries the top-level ``resources/`` directory as ``inspector/resources``;
an editable install (or a source checkout) does not, and reads the directory next to
the package instead. Either way the files are found through `importlib.resources`,
never through a generated ``rc`` module.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from PySide6.QtGui import QIcon, QPixmap

import inspector

__all__ = [
    "APP_ICON",
    "DESKTOP_FILE",
    "STYLE_SHEET",
    "app_icon",
    "resource",
    "resource_directory",
    "style_sheet",
]

APP_ICON = "small-peer-inspector.svg"
STYLE_SHEET = "inspector.qss"
DESKTOP_FILE = "small-peer-inspector.desktop"


def resource_directory() -> Traversable:
    """The directory holding the resource files (inside the package once installed from a wheel)."""
    packaged = resources.files(inspector).joinpath("resources")
    if packaged.is_dir():
        return packaged
    # Editable install or source checkout: the resources/ beside the package directory.
    return Path(inspector.__file__).resolve().parent.parent / "resources"


def resource(name: str) -> Traversable:
    """One resource file, by name; FileNotFoundError if it is missing."""
    path = resource_directory().joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(f"resource {name!r} is missing from {resource_directory()}")
    return path


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
