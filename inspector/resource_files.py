"""Where the resource files are: icons, style sheets, the ``.desktop`` file (no Qt needed to find them).

A built wheel carries the top-level ``resources/`` directory as ``inspector/resources``;
an editable install (or a source checkout) does not, and reads the directory next to
the package instead. Either way the files are found through `importlib.resources`,
never through a generated ``rc`` module.
"""

from __future__ import annotations

from importlib.abc import Traversable
from pathlib import Path

import inspector

__all__ = ["APP_ICON", "DESKTOP_FILE", "STYLE_SHEET", "resource", "resource_directory"]

APP_ICON = "small-peer-inspector.svg"
STYLE_SHEET = "inspector.qss"
DESKTOP_FILE = "small-peer-inspector.desktop"


def resource_directory() -> Traversable:
    """The directory holding the resource files (inside the package once installed from a wheel)."""
    package = Path(inspector.__file__).resolve().parent
    if (package / "resources").is_dir():  # an installed wheel, unzipped: the usual case, and fast
        return package / "resources"
    if (package.parent / "resources").is_dir():  # an editable install or a source checkout
        return package.parent / "resources"
    from importlib import resources  # a zipped install: only importlib.resources can read it

    return resources.files(inspector).joinpath("resources")


def resource(name: str) -> Traversable:
    """One resource file, by name; FileNotFoundError if it is missing."""
    path = resource_directory().joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(f"resource {name!r} is missing from {resource_directory()}")
    return path
