"""Where the resource files are: icons, style sheets, the ``.desktop`` file (no Qt needed to find them).

A built wheel carries the top-level ``resources/`` directory as ``inspector/resources``;
an editable install (or a source checkout) does not, and reads the directory next to
the package instead. Either way the files are found through `importlib.resources`,
never through a generated ``rc`` module.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import inspector

__all__ = ["APP_ICON", "DESKTOP_FILE", "STYLE_SHEET", "resource", "resource_directory"]

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
