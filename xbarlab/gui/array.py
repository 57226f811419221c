"""Array tab: conductance map (whole-array read) with a cursor readout, suspect stuck cells marked; click a
cell to select it and sweep its I–V (hold to overlay sweeps, up and back for hysteresis); the selected cell's
history across the runs of this log."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSplitter, QWidget

from xbarlab.errors import XbarlabError
from xbarlab.gui.controller import BenchController
from xbarlab.gui.history import cell_history
from xbarlab.gui.panel import RunPanel, side_panel
from xbarlab.gui.plots import Heatmap, pen, plot_widget, with_export
from xbarlab.logbook import LogReader

HISTORY_SYMBOLS = {"read": ("o", "whole-array reads"), "iv": ("s", "I–V chord conductance"),
                   "pulse": ("t", "pulse response")}


class ArrayTab(QWidget):
    def __init__(self, controller: BenchController) -> None:
        super().__init__()
        self.controller = controller
        self.read = RunPanel(controller, "array_read", title="Refresh (read whole array)")
        self.iv = RunPanel(controller, "iv_sweep", title="I-V sweep of the selected cell",
                           only=("start", "stop", "points", "compliance", "return_sweep", "row", "col"))
        self.hold = QCheckBox("hold: overlay the next sweeps")
        self.clear_button = QPushButton("Clear I-V plot")
        self.clear_button.clicked.connect(self.clear_iv)
        self.history_button = QPushButton("History of the selected cell")
        self.history_button.clicked.connect(self.show_history)
        self.heatmap = Heatmap("Conductance map", "G (µS)", scale=1e6)
        self.heatmap.image.mouseClickEvent = self._clicked  # type: ignore[method-assign]
        self.iv_plot = plot_widget("I-V of the selected cell", "voltage", "current", x_units="V", y_units="A")
        self.history_plot = plot_widget("Cell history in this log", "measurement (runs in order)", "conductance",
                                        y_units="S", integer_x=True)
        self.info = QLabel("Click a cell of the map to select it and sweep it through the SMU routed by the board.")
        self.info.setWordWrap(True)
        buttons = QWidget()
        row = QHBoxLayout(buttons)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.clear_button)
        row.addWidget(self.history_button)

        lw = side_panel(self.read, self.iv, self.hold, buttons, self.info, width=360)
        self.map_box = with_export(self.heatmap, "conductance map")
        self.iv_box = with_export(self.iv_plot, "cell I-V")
        self.history_box = with_export(self.history_plot, "cell history")
        right = QSplitter(Qt.Vertical)
        right.addWidget(self.iv_box)
        right.addWidget(self.history_box)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.map_box)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(lw)
        layout.addWidget(split, 1)
        self.read.finished.connect(self._on_map)
        self.iv.finished.connect(self._on_iv)
        self._sweeps = 0

    def refresh(self) -> bool:
        return self.read.click()

    @staticmethod
    def suspect_stuck(g: np.ndarray) -> np.ndarray:
        """Cells outside the device's window: below 2 % or above 98 % of the map's range (row, col)."""
        lo, hi = np.percentile(g, [50, 99.5])
        span = max(hi, 1e-12)
        return np.argwhere((g < 0.02 * span) | (g > 1.02 * hi))

    def _on_map(self, result: Any, run_id: str) -> None:
        g = np.asarray(result, dtype=float)
        marks = self.suspect_stuck(g)
        self.heatmap.set_data(g, marks)
        self.info.setText(f"{g.shape[0]}x{g.shape[1]} map from run {run_id}: mean {g.mean() * 1e6:.2f} µS; "
                          f"{len(marks)} suspect stuck/dead cells marked x (outside the device window).")

    def _clicked(self, event: Any) -> None:
        pos = event.pos()
        cell = self.heatmap.cell_at(pos.x(), pos.y())
        if cell is not None:
            self.sweep_cell(*cell)

    def select_cell(self, row: int, col: int) -> None:
        """Select a cell: marker on the map, its row/col in the I–V form."""
        self.heatmap.select(row, col)
        self.iv.form.set_value("row", row)
        self.iv.form.set_value("col", col)

    def sweep_cell(self, row: int, col: int) -> bool:
        self.select_cell(row, col)
        self.info.setText(f"I-V sweep of cell ({row}, {col}) ...")
        return self.iv.click()

    def clear_iv(self) -> None:
        self.iv_plot.clear()
        self._sweeps = 0

    def _on_iv(self, result: Any, run_id: str) -> None:
        v, i = np.asarray(result.voltage), np.asarray(result.current)
        if not self.hold.isChecked():
            self.clear_iv()
        k = self._sweeps
        self._sweeps += 1
        row, col = result.cell
        name = f"({row}, {col}) {run_id.split('@')[0]}"
        points = int(self.iv.form.values()[0]["points"])
        if v.size == 2 * points:  # up and back: the return branch dashed
            self.iv_plot.plot(v[:points], i[:points], pen=pen(k), symbol="o", symbolSize=5,
                              symbolBrush=pen(k).color(), name=f"{name} up")
            self.iv_plot.plot(v[points:], i[points:], pen=pg.mkPen(pen(k).color(), width=2, style=Qt.DashLine),
                              symbol="t", symbolSize=5, symbolBrush=pen(k).color(), name=f"{name} back")
        else:
            self.iv_plot.plot(v, i, pen=pen(k), symbol="o", symbolSize=5, symbolBrush=pen(k).color(), name=name)
        g = float(np.dot(v, i) / max(np.dot(v, v), 1e-30))
        self.info.setText(f"I-V of cell ({row}, {col}): chord conductance {g * 1e6:.2f} µS (run {run_id})")

    def show_history(self) -> bool:
        """Every read, I–V sweep and pulse response of the selected cell in this session's log."""
        cell, path = self.heatmap.selected, self.controller.log_path
        if cell is None or path is None:
            self.info.setText("select a cell on the map first (connected, with a log)" if cell is None
                              else "connect first: the history comes from this session's log")
            return False
        try:
            events = cell_history(LogReader(path), *cell)
        except XbarlabError as exc:
            self.info.setText(f"history: {exc}")
            return False
        self.history_plot.clear()
        self.history_plot.setTitle(f"Cell ({cell[0]}, {cell[1]}): history in this log")
        xs: dict[str, list[float]] = {}
        ys: dict[str, list[float]] = {}
        for n, ev in enumerate(events, start=1):
            x = n + np.linspace(-0.3, 0.3, ev.conductance.size) if ev.conductance.size > 1 else np.array([n])
            xs.setdefault(ev.kind, []).extend(x.tolist())
            ys.setdefault(ev.kind, []).extend(ev.conductance.tolist())
        for k, (kind, (symbol, label)) in enumerate(HISTORY_SYMBOLS.items()):
            if kind in xs:
                self.history_plot.plot(xs[kind], ys[kind], pen=None, symbol=symbol, symbolSize=7,
                                       symbolBrush=pen(k).color(), name=f"{label} ({len(xs[kind])})")
        self.info.setText(f"cell ({cell[0]}, {cell[1]}): {len(events)} runs measured it "
                          f"({sum(ev.conductance.size for ev in events)} values)")
        return bool(events)
