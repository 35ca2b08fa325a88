"""Times the window writes never raise: a Big Peer stores any well-formed year, 1 to 9999."""

from __future__ import annotations

from datetime import UTC, datetime

import pyqtgraph as pg
import pytest

from inspector.gui.formatting import OUT_OF_RANGE, format_local_time, format_span
from inspector.gui.plot_axes import TimeAxis

YEAR_ONE = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LAST_MOMENT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
ZONES = ["UTC", "Asia/Tokyo", "America/New_York"]


def test_a_moment_local_time_cannot_hold_is_written_in_utc_and_says_so(time_zone):
    time_zone("Asia/Tokyo")  # 9999-12-31 23:59:59 UTC is year 10000 in Tokyo
    assert format_local_time(LAST_MOMENT) == "9999-12-31 23:59:59 UTC"
    # Local time where it can (Tokyo's local mean time then: +9:18:59), the year padded to four digits.
    assert format_local_time(YEAR_ONE + 86400) == "0001-01-02 09:18:59"
    time_zone("UTC")  # Python's local time refuses year 1 in every zone (it probes the day before)
    assert format_local_time(YEAR_ONE) == "0001-01-01 00:00:00 UTC"


@pytest.mark.parametrize("moment", [float("nan"), float("inf"), 1e20, -1e20])
def test_a_moment_no_calendar_holds_says_it_is_out_of_range(moment):
    assert format_local_time(moment) == OUT_OF_RANGE
    assert format_span(moment, 0.0) == OUT_OF_RANGE


@pytest.mark.parametrize("zone", ZONES)
def test_a_range_at_the_ends_of_the_calendar_is_said_in_words(time_zone, zone):
    time_zone(zone)
    assert format_span(YEAR_ONE, YEAR_ONE + 60) == "Jan 1, 00:00 – 00:01 UTC"
    span = format_span(LAST_MOMENT - 3600, LAST_MOMENT)
    assert span == ("Dec 31, 22:59 – 23:59 UTC" if zone == "Asia/Tokyo" else span)
    assert "Dec 31" in span


@pytest.mark.parametrize("zone", ZONES)
def test_time_axis_ticks_at_the_ends_of_the_calendar_do_not_raise(qapp, time_zone, zone):
    """Checked, not changed: pyqtgraph's date axis falls back to bare years by itself."""
    time_zone(zone)
    axis = TimeAxis(orientation="bottom")
    widget = pg.PlotWidget(axisItems={"bottom": axis})
    try:
        for first, last in [
            (YEAR_ONE, YEAR_ONE + 60),
            (YEAR_ONE, YEAR_ONE + 40 * 86400),
            (LAST_MOMENT - 400 * 86400, LAST_MOMENT),
            (YEAR_ONE, LAST_MOMENT),
        ]:
            widget.setXRange(first, last, padding=0)
            widget.grab()  # paints the axis: ticks and their labels
            for spacing, values in axis.tickValues(*axis.range, 600):
                assert all(isinstance(label, str) for label in axis.tickStrings(values, 1, spacing))
    finally:
        widget.close()
        widget.deleteLater()
