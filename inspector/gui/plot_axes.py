"""The plot's value axes: which unit a field has, and ticks that read in that unit.

A field holds bytes when it is one of the document's disk figures or its name ends
in ``bytes`` (``process.memory_rss_bytes``, ``metadata.cache_bytes``); every other
number is a plain number. Bytes are labelled in binary units (``48.5 GiB``) on
round steps *of that unit* (a narrow range far from zero counts in the step's unit:
``51,200 MiB``, ``51,201 MiB``); plain numbers get thousands as ``k``/``M``/``G``. The
values on the axis are the field's own: only the labels are scaled.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from pyqtgraph.graphicsItems.DateAxisItem import (
    DAY_SPACING,
    MONTH_DAY_ZOOM_LEVEL,
    MONTH_SPACING,
    TickSpec,
    ZoomLevel,
    makeMStepper,
    makeSStepper,
)

__all__ = ["BYTES", "NUMBER", "TimeAxis", "UnitAxis", "binary_unit", "tick_labels", "unit_of"]

BYTES = "bytes"
NUMBER = "number"

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_DECIMAL = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def unit_of(path: str) -> str:
    """`BYTES` for disk figures and ``*bytes`` fields, `NUMBER` for anything else."""
    leaf = path.rsplit(".", 1)[-1].lower()
    return BYTES if path.startswith("device_disk_usage.") or leaf.endswith("bytes") else NUMBER


def binary_unit(magnitude: float) -> tuple[float, str]:
    """The largest binary unit that ``magnitude`` reaches: ``(1024**3, "GiB")`` for 50e9."""
    power = 0
    magnitude = abs(magnitude)
    while magnitude >= 1024 and power < len(_BINARY) - 1:
        magnitude /= 1024
        power += 1
    return 1024.0**power, _BINARY[power]


def _decimal_unit(magnitude: float) -> tuple[float, str]:
    for factor, suffix in _DECIMAL:
        if abs(magnitude) >= 10 * factor:
            return factor, suffix
    return 1.0, ""


def _places(step: float) -> int:
    """Decimals needed to tell values ``step`` apart (``0.25`` -> 2, ``5`` -> 0)."""
    if step <= 0 or not math.isfinite(step):
        return 0
    return max(0, min(6, math.ceil(-math.log10(step) - 1e-9)))


def tick_labels(values: Sequence[float], spacing: float, magnitude: float, unit: str) -> list[str]:
    """Labels of ticks ``spacing`` apart on an axis whose values reach ``magnitude``."""
    if unit == BYTES:
        scale, suffix = binary_unit(magnitude)
        if _places(spacing / scale) > 2:  # a narrow range far from zero: count in the step's unit
            scale, suffix = binary_unit(spacing * 100)
    else:
        scale, suffix = _decimal_unit(magnitude)
    places = _places(spacing / scale)
    separator = " " if unit == BYTES else ""
    labels = []
    for value in values:
        scaled = value / scale
        if abs(scaled) < 0.5 * 10**-places:
            scaled = 0.0  # no "-0.0"
        labels.append(f"{scaled:,.{places}f}{separator}{suffix}")
    return labels


class UnitAxis(pg.AxisItem):  # type: ignore[misc]  # pyqtgraph is untyped
    """A value axis labelled in its unit (`BYTES` or `NUMBER`, see `set_unit`)."""

    def __init__(self, orientation: str, **kwargs: Any) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)  # the labels carry the unit; no "(x1e9)" beside them
        self._unit = NUMBER

    @property
    def unit(self) -> str:
        return self._unit

    def set_unit(self, unit: str) -> None:
        if unit != self._unit:
            self._unit = unit
            self.picture = None  # pyqtgraph's cached drawing of the axis
            self.update()

    def _magnitude(self) -> float:
        low, high = self.range
        return float(max(abs(low), abs(high)))

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:
        if self._unit != BYTES or not maxVal > minVal:
            return list(super().tickSpacing(minVal, maxVal, size))
        # Round steps of the binary unit (0.5 GiB, 2 GiB...), not of bytes (536870912...).
        scale, _ = binary_unit(max(abs(minVal), abs(maxVal)))
        levels = super().tickSpacing(minVal / scale, maxVal / scale, size)
        return [(spacing * scale, offset * scale) for spacing, offset in levels]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return tick_labels(values, spacing, self._magnitude(), self._unit)


# Same width as pyqtgraph's "99 Mar" example, so as many labels fit.
_MONTH_DAY = ZoomLevel(
    [
        TickSpec(MONTH_SPACING, makeMStepper(1), "%b"),
        TickSpec(DAY_SPACING, makeSStepper(DAY_SPACING), "%b %d", autoSkip=[1, 5]),
    ],
    "99 Mar",
)


class TimeAxis(pg.DateAxisItem):  # type: ignore[misc]  # pyqtgraph is untyped
    """`pyqtgraph.DateAxisItem` (x in Unix seconds, local time) whose day labels name the month."""

    zoomLevels: OrderedDict[float, Any]  # the tick formats by widest spacing (pyqtgraph's, in order)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zoomLevels = OrderedDict(
            (spacing, _MONTH_DAY if level is MONTH_DAY_ZOOM_LEVEL else level)
            for spacing, level in self.zoomLevels.items()
        )
