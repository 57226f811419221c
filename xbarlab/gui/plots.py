"""pyqtgraph set-up shared by the tabs: labelled axes with SI prefixes, integer axes, heatmaps, export."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QWidget

pg.setConfigOptions(antialias=True, background="w", foreground="k", imageAxisOrder="row-major")

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def label_axis(plot: Any, side: str, text: str, units: str | None = None) -> None:
    """Label one axis; with SI ``units`` ("V", "A", "S") the axis picks the prefix (mV, µA, µS), without
    units the tick values are shown as they are (no "(x0.001)" scaling)."""
    axis = plot.getAxis(side)
    axis.enableAutoSIPrefix(bool(units))
    plot.setLabel(side, text, units=units or None)


class IntegerAxis(pg.AxisItem):
    """An axis that ticks only at whole numbers (epochs, iterations, pulse numbers)."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:  # noqa: N802,N803 - pyqtgraph API
        levels = [(spacing, [v for v in values if float(v).is_integer()])
                  for spacing, values in super().tickValues(minVal, maxVal, size) if spacing >= 1]
        levels = [(s, v) for s, v in levels if v]
        if not levels:
            lo, hi = math.ceil(minVal), math.floor(maxVal)
            levels = [(1.0, [float(v) for v in range(lo, hi + 1)])] if hi >= lo else []
        return levels


def plot_widget(title: str, x_label: str, y_label: str, *, log_y: bool = False, x_units: str | None = None,
                y_units: str | None = None, integer_x: bool = False) -> pg.PlotWidget:
    """A plot with grid and legend; with ``*_units`` (SI, e.g. "V", "A") the axis picks the prefix (mV, µA);
    ``integer_x``: ticks only at whole numbers (epochs, iterations)."""
    axes = {"bottom": IntegerAxis("bottom")} if integer_x else None
    w = pg.PlotWidget(title=title, axisItems=axes)
    label_axis(w, "bottom", x_label, x_units)
    label_axis(w, "left", y_label, y_units)
    w.showGrid(x=True, y=True, alpha=0.3)
    w.addLegend(offset=(-10, 10))
    if log_y:
        w.setLogMode(y=True)
    return w


def pen(k: int, width: float = 2.0) -> pg.mkPen:
    return pg.mkPen(PALETTE[k % len(PALETTE)], width=width)


def plot_data_csv(widget: Any) -> str:
    """Every curve and bar series of a plot (or the image of a :class:`Heatmap`) as CSV text.

    Curves: ``series, x, y`` rows (x and y as drawn, in SI units); a heatmap: ``row, col, value``.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    if isinstance(widget, Heatmap):
        writer.writerow(["row", "col", widget.units_label])
        if widget.data is not None:
            for (r, c), v in np.ndenumerate(widget.data * widget.scale):
                writer.writerow([r, c, repr(float(v))])
        return out.getvalue()
    item = widget.getPlotItem() if hasattr(widget, "getPlotItem") else widget
    writer.writerow(["series", _axis_text(item, "bottom"), _axis_text(item, "left")])
    for k, curve in enumerate(item.listDataItems()):
        x, y = curve.getOriginalDataset()
        if x is None or y is None:
            continue
        name = curve.name() or f"series {k}"
        for a, b in zip(np.asarray(x, dtype=float), np.asarray(y, dtype=float), strict=False):
            writer.writerow([name, repr(float(a)), repr(float(b))])
    for k, bars in enumerate(i for i in item.items if isinstance(i, pg.BarGraphItem)):
        opts = bars.opts
        x = opts.get("x") if opts.get("x") is not None else opts.get("x0")
        for a, b in zip(np.asarray(x, dtype=float), np.asarray(opts.get("height"), dtype=float), strict=False):
            writer.writerow([f"bars {k}", repr(float(a)), repr(float(b))])
    return out.getvalue()


def _axis_text(item: Any, side: str) -> str:
    axis = item.getAxis(side)
    text = axis.labelText or side
    return f"{text} ({axis.labelUnits})" if axis.labelUnits else text


def save_plot(widget: QWidget, path: str | Path) -> Path:
    """Write a plot's data (``.csv``) or its picture (``.png``) to ``path``."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        path.write_text(plot_data_csv(widget), encoding="utf-8")
    elif path.suffix.lower() == ".png":
        if not widget.grab().save(str(path)):
            raise OSError(f"{path}: could not write the PNG")
    else:
        raise ValueError(f"{path}: expected a .csv or .png file name")
    return path


class ExportButtons(QWidget):
    """Visible "Save PNG" / "Save CSV" buttons for one plot; ``saved`` carries the written path."""

    saved = pyqtSignal(str)

    def __init__(self, widget: QWidget, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.widget = widget
        self.name = name
        self.png = QPushButton("Save PNG…")
        self.csv = QPushButton("Save CSV…")
        self.png.setToolTip(f"save the {name} figure as a PNG")
        self.csv.setToolTip(f"save the data drawn in the {name} plot as CSV (series, x, y in SI units)")
        self.png.clicked.connect(lambda: self._save("png"))
        self.csv.clicked.connect(lambda: self._save("csv"))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addStretch(1)
        layout.addWidget(self.png)
        layout.addWidget(self.csv)

    def _save(self, kind: str) -> None:
        default = f"{self.name.replace(' ', '-')}.{kind}"
        path, _ = QFileDialog.getSaveFileName(self, f"Save {self.name}", default,
                                              "PNG image (*.png)" if kind == "png" else "CSV data (*.csv)")
        if not path:
            return
        if not path.lower().endswith(f".{kind}"):
            path += f".{kind}"
        try:
            save_plot(self.widget, path)
        except OSError as exc:
            self.setToolTip(str(exc))
            return
        self.saved.emit(path)


def with_export(widget: QWidget, name: str) -> QWidget:
    """``widget`` with its export buttons underneath (the buttons are ``result.export``)."""
    box = QWidget()
    layout = pg.QtWidgets.QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(widget, 1)
    box.export = ExportButtons(widget, name)  # type: ignore[attr-defined]
    layout.addWidget(box.export)  # type: ignore[attr-defined]
    return box


class Heatmap(pg.GraphicsLayoutWidget):
    """An image with axes, a colour bar with units, optional markers (e.g. stuck cells), a cursor readout
    (row, col, value) and a marker on the selected cell."""

    def __init__(self, title: str, units: str, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.units_label = units
        self.plot = self.addPlot(title=title)
        self.plot.setLabel("bottom", "column")
        self.plot.setLabel("left", "row")
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.bar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("viridis"), label=units, width=15)
        self.bar.setImageItem(self.image, insert_in=self.plot)
        self.markers = pg.ScatterPlotItem(symbol="x", size=9, pen=pg.mkPen("#ff2020", width=2), brush=None)
        self.plot.addItem(self.markers)
        self.selected_marker = pg.ScatterPlotItem(symbol="s", size=14, pen=pg.mkPen("#ff00ff", width=2.5),
                                                  brush=None, pxMode=True)
        self.plot.addItem(self.selected_marker)
        self.nextRow()
        self.readout = self.addLabel("", justify="left")
        self.data: np.ndarray | None = None
        self.selected: tuple[int, int] | None = None
        self.scene().sigMouseMoved.connect(self._mouse_moved)

    def set_units(self, label: str, units: str | None = None) -> None:
        """The colour bar's one label; with SI ``units`` its ticks take a prefix (e.g. "conductance (µS)")."""
        self.units_label = f"{label} ({units})" if units else label
        self.bar.getAxis("left").setLabel("")  # the label set at construction, replaced (never a second one)
        label_axis(self.bar, "left", label, units)

    def set_data(self, data: np.ndarray, marks: np.ndarray | None = None) -> None:
        self.data = np.asarray(data, dtype=float)
        shown = self.data * self.scale
        self.image.setImage(shown)
        finite = shown[np.isfinite(shown)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self.bar.setLevels((lo, hi if hi > lo else lo + 1e-12))
        if marks is not None and len(marks):
            self.markers.setData(x=marks[:, 1] + 0.5, y=marks[:, 0] + 0.5)
        else:
            self.markers.setData(x=[], y=[])
        if self.selected is not None:
            self.select(*self.selected)

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, col) under image coordinates (x, y), or None outside the data."""
        if self.data is None:
            return None
        row, col = int(math.floor(y)), int(math.floor(x))
        rows, cols = self.data.shape
        return (row, col) if 0 <= row < rows and 0 <= col < cols else None

    def describe(self, row: int, col: int) -> str:
        assert self.data is not None
        return f"row {row}, col {col}: {self.data[row, col] * self.scale:.3f} {self._unit()}"

    def _unit(self) -> str:
        text = self.units_label
        return text[text.find("(") + 1: text.rfind(")")] if "(" in text else text

    def select(self, row: int, col: int) -> None:
        """Mark the selected cell and show its value."""
        self.selected = (row, col)
        self.selected_marker.setData(x=[col + 0.5], y=[row + 0.5])
        if self.data is not None and self.cell_at(col + 0.5, row + 0.5):
            self.readout.setText("selected " + self.describe(row, col))

    def _mouse_moved(self, pos: Any) -> None:
        if self.data is None or not self.plot.sceneBoundingRect().contains(pos):
            return
        p = self.plot.vb.mapSceneToView(pos)
        cell = self.cell_at(p.x(), p.y())
        if cell is not None:
            self.readout.setText("cursor " + self.describe(*cell))
