"""pyqtgraph set-up shared by the tabs."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

pg.setConfigOptions(antialias=True, background="w", foreground="k", imageAxisOrder="row-major")

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def plot_widget(title: str, x_label: str, y_label: str, *, log_y: bool = False, x_units: str | None = None,
                y_units: str | None = None) -> pg.PlotWidget:
    """A plot with grid and legend; with ``*_units`` (SI, e.g. "V", "A") the axis picks the prefix (mV, µA)."""
    w = pg.PlotWidget(title=title)
    w.setLabel("bottom", x_label, units=x_units)
    w.setLabel("left", y_label, units=y_units)
    w.showGrid(x=True, y=True, alpha=0.3)
    w.addLegend(offset=(-10, 10))
    if x_units is None:  # plain numbers: no "(x0.001)" scaling
        w.getAxis("bottom").enableAutoSIPrefix(False)
    if y_units is None:
        w.getAxis("left").enableAutoSIPrefix(False)
    if log_y:
        w.setLogMode(y=True)
    return w


def pen(k: int, width: float = 2.0) -> pg.mkPen:
    return pg.mkPen(PALETTE[k % len(PALETTE)], width=width)


class Heatmap(pg.GraphicsLayoutWidget):
    """An image with axes, a colour bar with units, and optional markers (e.g. stuck cells)."""

    def __init__(self, title: str, units: str, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
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
        self.data: np.ndarray | None = None

    def set_units(self, units: str) -> None:
        self.bar.setLabel("right", units)

    def set_data(self, data: np.ndarray, marks: np.ndarray | None = None) -> None:
        self.data = np.asarray(data, dtype=float)
        shown = self.data * self.scale
        self.image.setImage(shown)
        lo, hi = float(np.nanmin(shown)), float(np.nanmax(shown))
        self.bar.setLevels((lo, hi if hi > lo else lo + 1e-12))
        if marks is not None and len(marks):
            self.markers.setData(x=marks[:, 1] + 0.5, y=marks[:, 0] + 0.5)
        else:
            self.markers.setData(x=[], y=[])
