"""The one timestamp format of small peer info: ISO-8601 UTC, fixed width, milliseconds.

``2026-11-26T05:38:12.345Z``: fixed width, so ordering the texts orders the moments
(the Big Peer relies on it).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_timestamp", "parse_timestamp"]


def format_timestamp(ts_ms: int) -> str:
    """ISO-8601 UTC, fixed width with milliseconds: ``2026-11-26T05:38:12.345Z``."""
    seconds, ms = divmod(ts_ms, 1000)
    moment = datetime.fromtimestamp(seconds, UTC)
    # strftime writes years before 1000 with fewer digits; the width is part of the format.
    return f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S.") + f"{ms:03d}Z"


def parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch of a ``last_updated_at`` text (ValueError if it is not one)."""
    if (
        not isinstance(text, str)
        or len(text) != 24
        or not text.isascii()
        or text[19] != "."
        or text[23] != "Z"
        or not text[20:23].isdigit()
    ):
        raise ValueError(f"not a last_updated_at timestamp (like 2026-11-26T05:38:12.345Z): {text!r}")
    try:
        moment = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"not a last_updated_at timestamp (like 2026-11-26T05:38:12.345Z): {text!r}"
        ) from None
    return int(moment.timestamp()) * 1000 + int(text[20:23])
