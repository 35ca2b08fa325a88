"""`last_updated_at` text: fixed width, and read back to the same millisecond, over every year."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from inspector.core.timestamps import format_timestamp, parse_timestamp

FIRST_MS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
LAST_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000) + 999


def test_the_first_and_last_representable_moments_keep_the_width():
    assert format_timestamp(FIRST_MS) == "0001-01-01T00:00:00.000Z"
    assert format_timestamp(LAST_MS) == "9999-12-31T23:59:59.999Z"
    assert format_timestamp(-1) == "1969-12-31T23:59:59.999Z"


@given(st.integers(FIRST_MS, LAST_MS))
def test_format_then_parse_is_the_same_millisecond(ts_ms):
    text = format_timestamp(ts_ms)
    assert len(text) == 24
    assert parse_timestamp(text) == ts_ms
