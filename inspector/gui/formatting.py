"""How the window writes sizes, durations and times.

Sizes use binary units (KiB, MiB) everywhere, because the metadata limit is
128 KiB = 131072 bytes; they are rounded *down* so a value just under a limit never
reads as the limit itself. Negative numbers use a real minus sign (U+2212).
"""

from __future__ import annotations

import math
import time
from datetime import datetime

__all__ = [
    "format_bytes",
    "format_countdown",
    "format_interval",
    "format_local_time",
    "format_relative",
    "format_signed_bytes",
]

MINUS = "\u2212"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(size: int | float) -> str:
    """``512 B``, ``1.2 KiB``, ``128 KiB``, ``3.4 GiB`` (one decimal, rounded down, ``.0`` dropped)."""
    size = abs(size)
    unit = 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    if unit == 0:
        return f"{int(size)} B"
    tenths = math.floor(size * 10 + 1e-9) / 10
    text = f"{tenths:.1f}".removesuffix(".0")
    return f"{text} {_UNITS[unit]}"


def format_signed_bytes(delta: int) -> str:
    """A change in bytes with its sign: ``+12 KiB``, ``−3 MiB``."""
    return ("+" if delta >= 0 else MINUS) + format_bytes(delta)


def format_interval(seconds: float) -> str:
    """A collection interval: ``every 2 s``, ``every 5 min``, ``every 1 h 30 min``."""
    if seconds < 60:
        return f"every {seconds:g} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"every {minutes} min" + (f" {secs} s" if secs else "")
    hours, minutes = divmod(minutes, 60)
    return f"every {hours} h" + (f" {minutes} min" if minutes else "")


def format_countdown(seconds: float) -> str:
    """Time left, as a clock: ``0:07``, ``4:48``, ``1:02:03`` (never negative)."""
    total = max(0, math.ceil(seconds - 1e-6))
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_relative(then: float, now: float | None = None) -> str:
    """How long ago: ``just now``, ``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago``."""
    elapsed = (time.time() if now is None else now) - then
    if elapsed < 1:
        return "just now"
    if elapsed < 60:
        return f"{int(elapsed)} s ago"
    if elapsed < 3600:
        return f"{int(elapsed // 60)} min ago"
    if elapsed < 86400:
        return f"{int(elapsed // 3600)} h ago"
    return f"{int(elapsed // 86400)} d ago"


def format_local_time(then: float) -> str:
    """A moment in the machine's local time zone: ``2026-11-26 06:38:12``."""
    return datetime.fromtimestamp(then).strftime("%Y-%m-%d %H:%M:%S")
