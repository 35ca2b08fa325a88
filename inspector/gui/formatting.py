"""How the window writes sizes, durations and times.

Sizes use binary units (KiB, MiB) everywhere, because the metadata limit is
128 KiB = 131072 bytes; they are rounded *down* so a value just under a limit never
reads as the limit itself. Negative numbers use a real minus sign (U+2212).

Times never raise: a Big Peer stores any well-formed ``last_updated_at``, year 1 and
year 9999 included, and Python's local time cannot hold every one of them (year 1
anywhere, 9999-12-31 east of UTC). Such a moment is written in UTC and says so
(``0001-01-01 00:00:00 UTC``); one no calendar holds reads `OUT_OF_RANGE`. Every
time the window shows goes through here: an exception while Qt paints a cell ends
the process under qasync.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

__all__ = [
    "OUT_OF_RANGE",
    "format_bytes",
    "format_countdown",
    "format_interval",
    "format_local_time",
    "format_relative",
    "format_signed_bytes",
    "format_span",
    "indented_json",
]

OUT_OF_RANGE = "(a time out of range)"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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


def _local_datetime(then: float) -> datetime | None:
    """``then`` (Unix seconds) in the machine's local time zone, or None where it cannot be held there."""
    try:
        return datetime.fromtimestamp(then)
    except (ValueError, OverflowError, OSError):
        return None


def _utc_datetime(then: float) -> datetime | None:
    try:
        return _EPOCH + timedelta(seconds=then)
    except (ValueError, OverflowError):  # NaN, or beyond year 9999
        return None


def format_local_time(then: float) -> str:
    """A moment in local time: ``2026-11-26 06:38:12`` (never raises: see the module doc)."""
    m, zone = _local_datetime(then), ""
    if m is None:
        m, zone = _utc_datetime(then), " UTC"
        if m is None:
            return OUT_OF_RANGE
    # Not strftime: its %Y writes year 1 as "1", and the fixed width is what slices of it rely on.
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d} {m.hour:02d}:{m.minute:02d}:{m.second:02d}{zone}"


def format_span(first_s: float, last_s: float) -> str:
    """A time range in local time, the date said once when it is one day: ``Nov 22, 10:51 – 16:06``."""
    first, last = _local_datetime(first_s), _local_datetime(last_s)
    zone = ""
    if first is None or last is None:  # an end local time cannot hold: both ends in UTC, saying so
        first, last, zone = _utc_datetime(first_s), _utc_datetime(last_s), " UTC"
        if first is None or last is None:
            return OUT_OF_RANGE
    if first.date() == last.date():
        return f"{_day(first)}, {_clock(first)} – {_clock(last)}{zone}"
    years = first.year != last.year
    return f"{_day(first, years)}, {_clock(first)} – {_day(last, years)}, {_clock(last)}{zone}"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clock(moment: datetime) -> str:
    return f"{moment.hour:02d}:{moment.minute:02d}"


def _day(moment: datetime, year: bool = False) -> str:
    return f"{_MONTHS[moment.month - 1]} {moment.day}" + (f" {moment.year}" if year else "")


def indented_json(value: Any) -> str:
    """JSON text indented by two spaces (keys in their order), for people to read and edit.

    U+2028 and U+2029 in strings are written as their escapes: a text editor shows them
    as line breaks, and Qt turns U+2029 into one, which would put a raw line end inside a
    string (invalid JSON). The escapes stand for the same value.
    """
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode("utf-8")
    if "\u2028" in text:
        text = text.replace("\u2028", "\\u2028")
    if "\u2029" in text:
        text = text.replace("\u2029", "\\u2029")
    return text
