"""The history plot as SVG, written from what the plot shows (not through QSvgGenerator).

Why not pyqtgraph's `SVGExporter` or Qt's `QSvgGenerator`: with this Qt (6.10+),
pyqtgraph's exporter fails on the closed paths Qt now writes (``... Z``, pyqtgraph
issue #3495), and `QSvgGenerator` writes coordinates with six significant digits in
the curves' own space, where x is a Unix time (``1.7e+09``): every point of a day
would land on one of a few columns. So the SVG is written here, in pixels:

* the axes (lines, ticks, grid and labels) from the axis items' own drawing specs;
* each visible curve as a polyline, mapped through its view box at full precision
  and clipped to the plot area;
* the markers, the filter's shade and the cursor as they are drawn on screen;
* the legend.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QTransform

from inspector.gui.plot_items import FLAG, TICK, FilterShade, LegendRow, MarkerItem, tick_pen

__all__ = ["plot_svg"]


def _colour(colour: QColor) -> dict[str, str]:
    return {"value": colour.name(QColor.NameFormat.HexRgb), "opacity": f"{colour.alphaF():.3g}"}


def _stroke(colour: QColor, width: float = 1.0, dash: bool = False) -> dict[str, str]:
    c = _colour(colour)
    attributes = {
        "stroke": c["value"],
        "stroke-opacity": c["opacity"],
        "stroke-width": f"{max(width, 1.0):.3g}",
        "fill": "none",
    }
    if dash:
        attributes["stroke-dasharray"] = "4 3"
    return attributes


def _fill(colour: QColor) -> dict[str, str]:
    c = _colour(colour)
    return {"fill": c["value"], "fill-opacity": c["opacity"], "stroke": "none"}


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _points(xs: Iterable[float], ys: Iterable[float]) -> str:
    """An SVG ``points`` list."""
    return " ".join(f"{_number(x)},{_number(y)}" for x, y in zip(xs, ys, strict=True))


class _Writer:
    def __init__(self, area: QRectF, font: QFont, dpi: float) -> None:
        self.origin = area.topLeft()
        self.dpi = dpi
        self.root = ET.Element(
            "svg",
            {
                "xmlns": "http://www.w3.org/2000/svg",
                "version": "1.1",
                "width": _number(area.width()),
                "height": _number(area.height()),
                "viewBox": f"0 0 {_number(area.width())} {_number(area.height())}",
            },
        )
        self.defs = ET.SubElement(self.root, "defs")
        self.font = font
        self._clips = 0

    def point(self, point: QPointF) -> tuple[float, float]:
        return point.x() - self.origin.x(), point.y() - self.origin.y()

    def box(self, rect: QRectF) -> dict[str, str]:
        """The position and size attributes of a ``rect`` element for ``rect`` (scene coordinates)."""
        x, y = self.point(rect.topLeft())
        return {
            "x": _number(x),
            "y": _number(y),
            "width": _number(rect.width()),
            "height": _number(rect.height()),
        }

    def clip(self, rect: QRectF) -> str:
        self._clips += 1
        name = f"area{self._clips}"
        ET.SubElement(ET.SubElement(self.defs, "clipPath", {"id": name}), "rect", self.box(rect))
        return f"url(#{name})"

    def line(self, parent: ET.Element, a: QPointF, b: QPointF, attributes: dict[str, str]) -> None:
        (x1, y1), (x2, y2) = self.point(a), self.point(b)
        ET.SubElement(
            parent,
            "line",
            {"x1": _number(x1), "y1": _number(y1), "x2": _number(x2), "y2": _number(y2), **attributes},
        )

    def rect(self, parent: ET.Element, rect: QRectF, attributes: dict[str, str]) -> None:
        ET.SubElement(parent, "rect", {**self.box(rect), **attributes})

    def text(
        self,
        parent: ET.Element,
        rect: QRectF,
        flags: int,
        text: str,
        colour: QColor,
        font: QFont | None = None,
    ) -> None:
        """Text laid out in ``rect`` (scene coordinates) as Qt's ``drawText(rect, flags, text)`` would."""
        font = font or self.font
        metrics = QFontMetricsF(font)
        size = font.pixelSize() if font.pixelSize() > 0 else font.pointSizeF() * self.dpi / 72
        if flags & Qt.AlignmentFlag.AlignRight:
            anchor, x = "end", rect.right()
        elif flags & Qt.AlignmentFlag.AlignHCenter:
            anchor, x = "middle", rect.center().x()
        else:
            anchor, x = "start", rect.left()
        ascent, descent = metrics.ascent(), metrics.descent()
        if flags & Qt.AlignmentFlag.AlignTop:
            y = rect.top() + ascent
        elif flags & Qt.AlignmentFlag.AlignBottom:
            y = rect.bottom() - descent
        else:
            y = rect.center().y() + (ascent - descent) / 2
        sx, sy = self.point(QPointF(x, y))
        element = ET.SubElement(
            parent,
            "text",
            {
                "x": _number(sx),
                "y": _number(sy),
                "text-anchor": anchor,
                "font-family": font.family(),
                "font-size": _number(size if size > 0 else 12),
                **_fill(colour),
            },
        )
        element.text = text


def _scene_points(transform: QTransform, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Data points through a view box's (affine) data-to-scene transform, in float64."""
    sx = transform.m11() * x + transform.m21() * y + transform.m31()
    sy = transform.m12() * x + transform.m22() * y + transform.m32()
    return sx, sy


def _axes(writer: _Writer, plot_item: pg.PlotItem, group: ET.Element) -> None:
    image = QImage(1, 1, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        for name in ("left", "right", "bottom"):
            axis = plot_item.getAxis(name)
            if not axis.isVisible():
                continue
            painter.setFont(writer.font)
            axis_spec, tick_specs, text_specs = axis.generateDrawSpecs(painter)
            to_scene = axis.sceneTransform()
            for pen, a, b in [axis_spec, *tick_specs]:
                writer.line(
                    group,
                    to_scene.map(QPointF(a)),
                    to_scene.map(QPointF(b)),
                    _stroke(pen.color(), pen.widthF()),
                )
            colour = axis.textPen().color()
            for rect, flags, text in text_specs:
                writer.text(group, to_scene.mapRect(QRectF(rect)), int(flags), text, colour)
    finally:
        painter.end()


def _box(writer: _Writer, box: pg.ViewBox, group: ET.Element) -> None:
    area = box.sceneBoundingRect()
    inner = ET.SubElement(group, "g", {"clip-path": writer.clip(area)})
    transform = box.childGroup.sceneTransform()
    (left, right), _ = box.viewRange()
    items = sorted(box.childGroup.childItems(), key=lambda item: item.zValue())
    for item in items:
        if not item.isVisible():
            continue
        if isinstance(item, pg.PlotDataItem):
            x, y = item.getData()
            if x is None or not len(x):
                continue
            lo = max(0, int(np.searchsorted(x, left)) - 1)
            hi = min(len(x), int(np.searchsorted(x, right)) + 1)
            sx, sy = _scene_points(transform, np.asarray(x[lo:hi], float), np.asarray(y[lo:hi], float))
            sx, sy = sx - writer.origin.x(), sy - writer.origin.y()
            pen = pg.mkPen(item.opts["pen"])
            points = _points(sx, sy)
            ET.SubElement(
                inner,
                "polyline",
                {"points": points, "stroke-linejoin": "round", **_stroke(pen.color(), pen.widthF())},
            ).set("data-name", item.name() or "")
        elif isinstance(item, FilterShade):
            for x0, x1 in item.dim_spans():
                a = transform.map(QPointF(x0, 0)).x()
                b = transform.map(QPointF(x1, 0)).x()
                writer.rect(inner, QRectF(a, area.top(), b - a, area.height()), _fill(item.colour))
        elif isinstance(item, MarkerItem):
            columns = item.columns()
            crowded = item.crowded(columns)
            for kind, xs in columns.items():
                colour = item.colours[kind]
                faint = QColor(colour)
                faint.setAlpha(110)
                for x in xs.tolist():
                    sx = transform.map(QPointF(x, 0)).x()
                    foot = QPointF(sx, area.bottom())
                    if crowded:
                        pen = tick_pen(colour)
                        writer.line(
                            inner, foot, QPointF(sx, area.bottom() - TICK), _stroke(pen.color(), pen.widthF())
                        )
                        continue
                    writer.line(inner, QPointF(sx, area.top()), foot, _stroke(faint, dash=True))
                    fx, fy = writer.point(foot)
                    flag = _points([fx - FLAG, fx + FLAG, fx], [fy, fy, fy - 2 * FLAG])
                    ET.SubElement(inner, "polygon", {"points": flag, **_fill(colour)})
        elif isinstance(item, pg.InfiniteLine) and item.angle == 90:
            sx = transform.map(QPointF(item.value(), 0)).x()
            writer.line(
                inner,
                QPointF(sx, area.top()),
                QPointF(sx, area.bottom()),
                _stroke(item.pen.color(), item.pen.widthF()),
            )


def _legend(writer: _Writer, legend: LegendRow, group: ET.Element) -> None:
    if not legend.isVisible():
        return
    to_scene = legend.sceneTransform()
    for line, text, name, pen in legend.layout_for(legend.size().width()):
        writer.line(
            group, to_scene.map(line.p1()), to_scene.map(line.p2()), _stroke(pen.color(), pen.widthF())
        )
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        writer.text(group, to_scene.mapRect(text), flags, name, legend.text_colour, legend.font)


def plot_svg(plot: pg.PlotWidget, boxes: Sequence[pg.ViewBox], legend: LegendRow | None = None) -> bytes:
    """The visible part of ``plot`` as an SVG document (UTF-8): ``boxes`` drawn in order, then ``legend``."""
    area = plot.mapToScene(plot.viewport().rect()).boundingRect()
    writer = _Writer(area, plot.font(), plot.logicalDpiY())
    writer.rect(writer.root, area, _fill(plot.backgroundBrush().color()))
    axes = ET.SubElement(writer.root, "g", {"id": "axes"})
    _axes(writer, plot.getPlotItem(), axes)
    data = ET.SubElement(writer.root, "g", {"id": "data"})
    for box in boxes:
        _box(writer, box, data)
    if legend is not None:
        _legend(writer, legend, ET.SubElement(writer.root, "g", {"id": "legend"}))
    return bytes(ET.tostring(writer.root, encoding="utf-8", xml_declaration=True))
