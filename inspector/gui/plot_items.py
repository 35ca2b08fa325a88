"""What the history plot draws besides its curves, and how a curve is built from min/max buckets.

* `min_max_polyline`: one `SeriesBuckets` as a polyline that visits each bucket's
  minimum and maximum, so a spike inside a pixel column is drawn whatever the zoom.
* `MarkerItem`: metadata changes and Big Peer connection events as lines across the
  plot with a flag on the time axis; hovering one tells what happened.
* `FilterShade`: dims the stretches of time where no document matches the
  timeline's filter.
* `LegendRow`: the curves' names and colours, above the plot.

Both overlays draw at most one line or rectangle per pixel column, however many
markers or matches the range holds, and say what they draw in data coordinates
(`MarkerItem.columns`, `FilterShade.dim_spans`) so an exporter draws the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy

from inspector.gui.formatting import format_local_time
from inspector.history.source import Marker, SeriesBuckets

__all__ = [
    "CROWDED_PIXELS",
    "FLAG",
    "MARKER_KINDS",
    "TICK",
    "FilterShade",
    "LegendRow",
    "MarkerItem",
    "describe_marker",
    "describe_markers",
    "min_max_polyline",
    "tick_pen",
]

MARKER_KINDS = ("metadata", "connected", "disconnected", "error")
_MARKER_LABELS = {
    "metadata": "Metadata changed",
    "connected": "Connected to the Big Peer",
    "disconnected": "Disconnected from the Big Peer",
    "error": "Big Peer error",
}
HOVER_PIXELS = 4
"""How close (in pixels) the pointer must come to a marker for its tooltip."""
TOOLTIP_LINES = 8
FLAG = 5
"""Half the width of a marker's flag on the time axis (pixels)."""
CROWDED_PIXELS = 8
"""Fewer pixels than this per marker line: markers become ticks on the time axis."""
TICK = 6
"""The height of a crowded marker's tick (pixels)."""

FloatArray = npt.NDArray[np.float64]


def min_max_polyline(buckets: SeriesBuckets) -> tuple[FloatArray, FloatArray]:
    """``(x in Unix seconds, y)`` through each bucket's extremes, in time order.

    A bucket of one document is one point (its value); a bucket of several is two:
    at its first and last document's time, its minimum and maximum, in the order
    that leads towards the next bucket, so a steady trend draws as a line and a
    spike as a vertical stroke. The y values are stored values, never averages.
    """
    count = len(buckets)
    if count == 0:
        return np.empty(0), np.empty(0)
    low, high = buckets.minimum, buckets.maximum
    middle = (low + high) / 2
    falling = np.zeros(count, dtype=bool)
    falling[:-1] = middle[1:] < middle[:-1]
    if count > 1:
        falling[-1] = falling[-2]
    x = np.empty(2 * count)
    y = np.empty(2 * count)
    x[0::2] = buckets.t_first / 1000.0
    x[1::2] = buckets.t_last / 1000.0
    y[0::2] = np.where(falling, high, low)
    y[1::2] = np.where(falling, low, high)
    keep = np.ones(2 * count, dtype=bool)
    keep[1::2] = ~((buckets.count == 1) | ((buckets.t_first == buckets.t_last) & (low == high)))
    return x[keep], y[keep]


def describe_marker(marker: Marker) -> str:
    """One line of a marker's tooltip: when, what, and the detail (what changed, the error)."""
    label = _MARKER_LABELS.get(marker.kind, marker.kind)
    detail = f" — {marker.detail}" if marker.detail else ""
    return f"{format_local_time(marker.ts_ms / 1000)}  {label}{detail}"


def describe_markers(markers: Sequence[Marker]) -> str:
    """A tooltip for ``markers``: one line each, the first `TOOLTIP_LINES` of them."""
    lines = [describe_marker(marker) for marker in markers[:TOOLTIP_LINES]]
    if len(markers) > TOOLTIP_LINES:
        lines.append(f"and {len(markers) - TOOLTIP_LINES:,} more")
    return "\n".join(lines)


class _ViewOverlay(pg.GraphicsObject):  # type: ignore[misc]  # pyqtgraph is untyped
    """An item that covers whatever part of its view box is visible."""

    def __init__(self) -> None:
        super().__init__()
        self._bounds = QRectF()

    def viewRangeChanged(self) -> None:
        self._invalidate()

    def viewTransformChanged(self) -> None:
        super().viewTransformChanged()  # drops pyqtgraph's cached view rect
        self._invalidate()

    def _invalidate(self) -> None:
        self.prepareGeometryChange()
        self._bounds = QRectF()
        self.update()

    def boundingRect(self) -> QRectF:
        if self._bounds.isEmpty():
            rect = self.viewRect()
            self._bounds = QRectF(rect) if rect is not None else QRectF()
        return self._bounds

    def _view(self) -> tuple[float, float, float, QRectF] | None:
        """(left, right, data units per pixel, view rect), or None before the item is shown."""
        rect = self.viewRect()
        pixel = self.pixelWidth() if rect is not None else 0.0
        if rect is None or not pixel or rect.width() <= 0:
            return None
        return rect.left(), rect.right(), pixel, rect


class MarkerItem(_ViewOverlay):
    """Markers of a time range, as the source folds them per pixel column (see the module doc).

    ``colours`` maps each kind to its colour. Hovering a marker calls ``hovered(first, last)``
    with the time (Unix seconds) it covers, for whoever reads the details; `show_details`
    then sets the tooltip, if the pointer is still there.
    """

    def __init__(self) -> None:
        super().__init__()
        self._x: FloatArray = np.empty(0)
        self._kinds: npt.NDArray[np.str_] = np.empty(0, dtype=str)
        self._counts: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._hovering: tuple[float, float] | None = None
        self.colours: dict[str, QColor] = {kind: QColor("#8250df") for kind in MARKER_KINDS}
        self.hovered: Callable[[float, float], None] | None = None
        self.setAcceptHoverEvents(True)
        self.setZValue(5)

    @property
    def count(self) -> int:
        """How many markers the columns stand for."""
        return int(self._counts.sum())

    def set_columns(self, columns: Sequence[tuple[str, int, int]]) -> None:
        """``(kind, first ts in ms, count)`` per column, in time order (`HistorySource.marker_columns`)."""
        self._x = np.array([ts / 1000.0 for _, ts, _ in columns], dtype=np.float64)
        self._kinds = np.array([kind for kind, _, _ in columns], dtype=str)
        self._counts = np.array([count for _, _, count in columns], dtype=np.int64)
        self.update()

    def set_colours(self, colours: dict[str, QColor]) -> None:
        self.colours = dict(colours)
        self.update()

    def columns(self) -> dict[str, FloatArray]:
        """Where to draw lines, by kind: one x per pixel column that holds markers of that kind, in view."""
        view = self._view()
        if view is None or not len(self._x):
            return {}
        left, right, pixel, _ = view
        lo, hi = np.searchsorted(self._x, [left, right])
        xs, kinds = self._x[lo:hi], self._kinds[lo:hi]
        out = {}
        for kind in MARKER_KINDS:
            chosen = xs[kinds == kind]
            if len(chosen):
                out[kind] = left + np.unique(np.round((chosen - left) / pixel)) * pixel
        return out

    def crowded(self, columns: dict[str, FloatArray]) -> bool:
        """Whether markers stand so close that full-height lines and flags would hide the curves.

        Then each is a short tick on the time axis instead.
        """
        view = self._view()
        if view is None:
            return False
        left, right, pixel, _ = view
        return sum(len(xs) for xs in columns.values()) * CROWDED_PIXELS > (right - left) / pixel

    def near(self, x: float, pixels: float = HOVER_PIXELS) -> tuple[float, float] | None:
        """The time span (Unix seconds) within ``pixels`` of ``x``, if a marker is in it."""
        view = self._view()
        if view is None or not len(self._x):
            return None
        reach = view[2] * pixels
        lo, hi = np.searchsorted(self._x, [x - reach, x + reach])
        return (x - reach, x + reach) if hi > lo else None

    def hoverEvent(self, event: Any) -> None:
        span = None if event.isExit() else self.near(event.pos().x())
        if span is None:
            self._hovering = None
            self.setToolTip("")
        elif self._hovering is None or not self._hovering[0] <= event.pos().x() <= self._hovering[1]:
            self._hovering = span
            if self.hovered is not None:
                self.hovered(*span)

    def show_details(self, span: tuple[float, float], markers: Sequence[Marker]) -> None:
        """The markers of ``span`` (what `hovered` asked for) as the tooltip, if still hovered."""
        if span == self._hovering:
            self.setToolTip(describe_markers(markers))

    def paint(self, painter: QPainter, *args: Any) -> None:
        view = self._view()
        columns = self.columns()
        if view is None or not columns:
            return
        crowded = self.crowded(columns)
        rect = view[3]
        # In device pixels, so flags and ticks keep their size at any zoom; data y grows upwards,
        # so the view's top() is its lowest value, drawn at the bottom.
        transform = painter.transform()
        painter.resetTransform()
        bottom = transform.map(QPointF(rect.left(), rect.top())).y()
        top = transform.map(QPointF(rect.left(), rect.bottom())).y()
        for kind, xs in columns.items():
            pixels = transform.m11() * xs + transform.m21() * rect.top() + transform.m31()
            colour = self.colours[kind]
            if crowded:  # up to one tick per pixel column: one path, built from arrays
                painter.setPen(tick_pen(colour))
                painter.drawPath(_segments(pixels, bottom, bottom - TICK))
                continue
            faint = QColor(colour)
            faint.setAlpha(110)
            painter.setPen(QPen(faint, 1, Qt.PenStyle.DashLine))
            painter.drawPath(_segments(pixels, top, bottom))
            flags = QPainterPath()
            for x in pixels.tolist():
                flags.addPolygon(
                    QPolygonF(
                        [QPointF(x - FLAG, bottom), QPointF(x + FLAG, bottom), QPointF(x, bottom - 2 * FLAG)]
                    )
                )
            painter.fillPath(flags, QBrush(colour))


def tick_pen(colour: QColor) -> QPen:
    """The pen of a crowded marker's tick: thin and half-transparent, so dense ticks read as a density."""
    faint = QColor(colour)
    faint.setAlpha(150)
    return QPen(faint, 1)


def _segments(xs: FloatArray, y0: float, y1: float) -> QPainterPath:
    """Vertical segments from ``y0`` to ``y1`` at each of ``xs``, as one path."""
    x = np.repeat(xs, 2)
    y = np.tile(np.array([y0, y1]), len(xs))
    path: QPainterPath = pg.arrayToQPath(x, y, connect="pairs")
    return path


class FilterShade(_ViewOverlay):
    """Dims the time where no document matches the filter (``set_matches(None)``: no filter)."""

    def __init__(self) -> None:
        super().__init__()
        self._starts: FloatArray | None = None
        self._ends: FloatArray = np.empty(0)
        self.colour = QColor(255, 255, 255, 170)
        self.setZValue(4)

    @property
    def active(self) -> bool:
        return self._starts is not None

    def set_matches(self, spans_s: Sequence[tuple[float, float]] | None) -> None:
        """Time spans (Unix seconds, in order) holding only matching documents; None clears the shade.

        A span is one matching document (start == end) or a run of consecutive ones.
        """
        if spans_s is None:
            self._starts = None
        else:
            pairs = np.asarray(spans_s, dtype=np.float64).reshape(-1, 2)
            self._starts, self._ends = pairs[:, 0], pairs[:, 1]
        self.update()

    def set_colour(self, colour: QColor) -> None:
        self.colour = QColor(colour)
        self.update()

    def dim_spans(self) -> list[tuple[float, float]]:
        """``(x0, x1)`` of the visible time without a match (a match lights its pixel and both beside it)."""
        view = self._view()
        if self._starts is None or view is None:
            return []
        left, right, pixel, _ = view
        width = max(1, int(np.ceil((right - left) / pixel)))
        visible = (self._ends >= left - pixel) & (self._starts <= right + pixel)
        first = np.floor((self._starts[visible] - left) / pixel).astype(np.int64)
        last = np.floor((self._ends[visible] - left) / pixel).astype(np.int64)
        # Column c is lit[c + 1] (columns -1 and width lie just outside the view); a span lights
        # its columns and one more on each side: lit[first .. last + 2].
        coverage = np.zeros(width + 4, dtype=np.int64)
        np.add.at(coverage, np.clip(first, 0, width + 1), 1)
        np.add.at(coverage, np.clip(last, -1, width) + 3, -1)
        lit = np.cumsum(coverage)[: width + 2] > 0
        dark = ~lit[1:-1]
        edges = np.flatnonzero(np.diff(np.concatenate(([0], dark.astype(np.int8), [0]))))
        return [
            (left + float(start) * pixel, min(right, left + float(end) * pixel))
            for start, end in zip(edges[0::2], edges[1::2], strict=True)
        ]

    def paint(self, painter: QPainter, *args: Any) -> None:
        view = self._view()
        if view is None:
            return
        rect = view[3]
        for x0, x1 in self.dim_spans():
            painter.fillRect(QRectF(x0, rect.top(), x1 - x0, rect.height()), self.colour)


class LegendRow(pg.GraphicsWidget):  # type: ignore[misc]  # pyqtgraph is untyped
    """The curves' names, each after a sample of its line, flowing in rows across the plot's width.

    Drawn with plain text and lines (pyqtgraph's legend lays out HTML on every change:
    tens of milliseconds per entry); `height_for` tells the height a width needs.
    """

    SAMPLE = 22.0
    GAP = 6.0
    SPACING = 18.0
    PADDING = 4.0

    def __init__(self, point_size: float = 9.0) -> None:
        super().__init__()
        self._entries: list[tuple[str, QPen]] = []
        self.font = QFont()
        self.font.setPointSizeF(point_size)
        self._metrics = QFontMetricsF(self.font)
        self.text_colour = QColor("#000000")
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)  # never widens the plot

    @property
    def entries(self) -> list[tuple[str, QPen]]:
        return list(self._entries)

    def set_entries(self, entries: Sequence[tuple[str, QPen]]) -> None:
        self._entries = list(entries)
        self.update()

    def set_text_colour(self, colour: QColor) -> None:
        self.text_colour = QColor(colour)
        self.update()

    def layout_for(self, width: float) -> list[tuple[QLineF, QRectF, str, QPen]]:
        """Where each entry goes in a row ``width`` wide: its sample line, its text's rectangle."""
        line_height = self._metrics.height() + 2
        x, y = self.PADDING, self.PADDING
        placed = []
        for name, pen in self._entries:
            text_width = self._metrics.horizontalAdvance(name) + 2
            needed = self.SAMPLE + self.GAP + text_width
            if x > self.PADDING and x + needed > width - self.PADDING:
                x, y = self.PADDING, y + line_height
            middle = y + line_height / 2
            placed.append(
                (
                    QLineF(x, middle, x + self.SAMPLE, middle),
                    QRectF(x + self.SAMPLE + self.GAP, y, text_width, line_height),
                    name,
                    pen,
                )
            )
            x += needed + self.SPACING
        return placed

    def height_for(self, width: float) -> float:
        """The height the entries take in a row ``width`` wide (0 without entries)."""
        placed = self.layout_for(width)
        return placed[-1][1].bottom() + self.PADDING if placed else 0.0

    def paint(self, painter: QPainter, *args: Any) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setFont(self.font)
        for line, text, name, pen in self.layout_for(self.size().width()):
            painter.setPen(pen)
            painter.drawLine(line)
            painter.setPen(self.text_colour)
            painter.drawText(text, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), name)
