"""The inspector and the Linux desktop: the system libraries a window needs, and the menu entry.

Both run before Qt is imported: Qt's X11 plugin aborts the process (SIGABRT, with a
message most people never read) when one of its ``libxcb-*`` libraries is missing,
so the launcher checks them first and prints the one line that fixes it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from inspector.resource_files import APP_ICON, DESKTOP_FILE, resource

__all__ = ["XCB_LIBRARIES", "install_desktop_entry", "missing_xcb_packages", "xcb_fix"]

XCB_LIBRARIES: dict[str, str] = {
    # soname: the Debian/Ubuntu package that ships it (Qt 6.5+'s xcb plugin needs them all).
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
}


def uses_xcb(environ: Mapping[str, str] | None = None) -> bool:
    """Whether Qt would open the window through X11 (xcb) here."""
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    platform = environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.startswith("xcb")
    # Qt prefers Wayland when a Wayland session is running, X11 otherwise.
    return bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def missing_xcb_packages(libraries: Mapping[str, str] = XCB_LIBRARIES) -> list[str]:
    """The packages whose library cannot be loaded (empty when the window can open)."""
    import ctypes

    missing = []
    for soname, package in libraries.items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(package)
    return missing


def xcb_fix(missing: list[str]) -> str:
    """The message for people: what is missing and the command that installs it."""
    return (
        "Qt needs system libraries to open a window on X11, and these are missing: "
        f"{', '.join(missing)}.\nOn Debian or Ubuntu: sudo apt-get install {' '.join(missing)}"
    )


def install_desktop_entry(data_home: Path | None = None, executable: str | None = None) -> list[Path]:
    """Put the launcher in the desktop's application menu (XDG), icon included; returns the files written.

    ``data_home`` defaults to ``$XDG_DATA_HOME`` (``~/.local/share``); ``Exec`` points at
    ``executable`` (default: the ``small-peer-inspector`` this Python runs), so the
    entry starts this installation even when it is not on the menu's PATH.
    """
    import shutil
    import subprocess

    home = data_home or Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    applications = home / "applications"
    icons = home / "icons" / "hicolor" / "scalable" / "apps"
    applications.mkdir(parents=True, exist_ok=True)
    icons.mkdir(parents=True, exist_ok=True)
    command = executable or _launcher()
    entry = resource(DESKTOP_FILE).read_text(encoding="utf-8")
    lines = [f"Exec={_quote(command)}" if line.startswith("Exec=") else line for line in entry.splitlines()]
    desktop = applications / DESKTOP_FILE
    desktop.write_text("\n".join(lines) + "\n", encoding="utf-8")
    icon = icons / APP_ICON
    icon.write_bytes(resource(APP_ICON).read_bytes())
    if shutil.which("update-desktop-database"):  # refreshes the menu's cache where there is one
        subprocess.run(["update-desktop-database", str(applications)], check=False, capture_output=True)
    return [desktop, icon]


def _launcher() -> str:
    import shutil

    script = Path(sys.executable).with_name("small-peer-inspector")
    return str(script) if script.exists() else shutil.which("small-peer-inspector") or "small-peer-inspector"


def _quote(command: str) -> str:
    # The desktop entry spec: arguments with spaces or reserved characters are double-quoted.
    if any(c in command for c in " \t\n\"'\\><~|&;$*?#()`"):
        escaped = command.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
        return f'"{escaped}"'
    return command
