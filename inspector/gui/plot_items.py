"""What the history plot draws besides its curves, and how a curve is built from min/max buckets.

* `min_max_polyline`: one `SeriesBuckets` as a polyline that visits each bucket's
  minimum and maximum, so a spike inside a pixel column is drawn whatever the zoom.
* `MarkerItem`: metadata changes and Big Peer connection events as lines across the
  plot with a flag on the time axis; hovering one tells what happened.
* `FilterShade`: dims the stretches of time where no document matches the
  timeline's filter.

Both overlays draw at most one line or rectangle per pixel column, however many
markers or matches the range holds, and say what they draw in data coordinates
(`MarkerItem.columns`, `FilterShade.dim_spans`) so an exporter draws the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPolygonF

from inspector.gui.formatting import format_local_time
from inspector.history.source import Marker, SeriesBuckets

__all__ = [
    "MARKER_KINDS",
    "FilterShade",
    "MarkerItem",
    "describe_marker",
    "min_max_polyline",
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
_FLAG = 5  # half-width of a marker's flag on the time axis, in pixels

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
    """Markers of a time range (see the module doc); ``colours`` maps each kind to its colour."""

    def __init__(self) -> None:
        super().__init__()
        self._markers: list[Marker] = []
        self._x: FloatArray = np.empty(0)
        self._kinds: npt.NDArray[np.str_] = np.empty(0, dtype=str)
        self.colours: dict[str, QColor] = {kind: QColor("#8250df") for kind in MARKER_KINDS}
        self.setAcceptHoverEvents(True)
        self.setZValue(5)

    @property
    def markers(self) -> list[Marker]:
        return list(self._markers)

    def set_markers(self, markers: Sequence[Marker]) -> None:
        self._markers = sorted(markers, key=lambda marker: marker.ts_ms)
        self._x = np.array([m.ts_ms / 1000.0 for m in self._markers], dtype=np.float64)
        self._kinds = np.array([m.kind for m in self._markers], dtype=str)
        self.setToolTip("")
        self.update()

    def set_colours(self, colours: dict[str, QColor]) -> None:
        self.colours = dict(colours)
        self.update()

    def columns(self) -> list[tuple[float, str]]:
        """``(x, kind)`` of the lines to draw: one per pixel column and kind, in the visible range."""
        view = self._view()
        if view is None or not len(self._x):
            return []
        left, right, pixel, _ = view
        lo, hi = np.searchsorted(self._x, [left, right])
        xs, kinds = self._x[lo:hi], self._kinds[lo:hi]
        out: list[tuple[float, str]] = []
        for kind in MARKER_KINDS:
            chosen = xs[kinds == kind]
            if len(chosen):
                for column in np.unique(np.round((chosen - left) / pixel)):
                    out.append((left + float(column) * pixel, kind))
        return out

    def markers_near(self, x: float, pixels: float = HOVER_PIXELS) -> list[Marker]:
        """The markers within ``pixels`` of time ``x`` (Unix seconds)."""
        view = self._view()
        if view is None or not len(self._x):
            return []
        reach = view[2] * pixels
        lo, hi = np.searchsorted(self._x, [x - reach, x + reach])
        return self._markers[int(lo) : int(hi)]

    def tooltip_at(self, x: float) -> str:
        """What hovering time ``x`` says (empty where no marker is near)."""
        near = self.markers_near(x)
        lines = [describe_marker(marker) for marker in near[:TOOLTIP_LINES]]
        if len(near) > TOOLTIP_LINES:
            lines.append(f"and {len(near) - TOOLTIP_LINES} more")
        return "\n".join(lines)

    def hoverEvent(self, event: Any) -> None:
        self.setToolTip("" if event.isExit() else self.tooltip_at(event.pos().x()))

    def paint(self, painter: QPainter, *args: Any) -> None:
        view = self._view()
        columns = self.columns()
        if view is None or not columns:
            return
        _, _, _, rect = view
        top, bottom = rect.bottom(), rect.top()  # data y grows upwards: the view's "bottom" is its top
        for kind in MARKER_KINDS:
            lines = [QLineF(x, bottom, x, top) for x, k in columns if k == kind]
            if lines:
                colour = QColor(self.colours[kind])
                colour.setAlpha(110)
                pen = QPen(colour, 1, Qt.PenStyle.DashLine)
                pen.setCosmetic(True)
                painter.setPen(pen)
                painter.drawLines(lines)
        # Flags on the time axis, in device pixels: the same size at any zoom.
        transform = painter.transform()
        painter.resetTransform()
        painter.setPen(Qt.PenStyle.NoPen)
        for x, kind in columns:
            foot = transform.map(QPointF(x, bottom))
            painter.setBrush(QBrush(self.colours[kind]))
            painter.drawPolygon(
                QPolygonF(
                    [
                        QPointF(foot.x() - _FLAG, foot.y()),
                        QPointF(foot.x() + _FLAG, foot.y()),
                        QPointF(foot.x(), foot.y() - 2 * _FLAG),
                    ]
                )
            )


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
