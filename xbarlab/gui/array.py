"""Array tab: conductance heatmap (whole-array read), suspect stuck cells marked, click a cell for its I–V."""

from __future__ import annotations

from typing import Any

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QSplitter, QWidget

from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel, side_panel
from xbarlab.gui.plots import Heatmap, pen, plot_widget


class ArrayTab(QWidget):
    def __init__(self, controller: BenchController) -> None:
        super().__init__()
        self.controller = controller
        self.read = RunPanel(controller, "array_read", title="Refresh (read whole array)")
        self.iv = RunPanel(controller, "iv_sweep", title="I-V sweep of the selected cell",
                           only=("start", "stop", "points", "compliance", "row", "col"))
        self.heatmap = Heatmap("Conductance map", "G (µS)", scale=1e6)
        self.heatmap.image.mouseClickEvent = self._clicked  # type: ignore[method-assign]
        self.iv_plot = plot_widget("I-V of the selected cell", "voltage", "current", x_units="V", y_units="A")
        self.info = QLabel("Click a cell of the map to sweep it through the SMU routed by the board.")
        self.info.setWordWrap(True)

        lw = side_panel(self.read, self.iv, self.info, width=360)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.heatmap)
        split.addWidget(self.iv_plot)
        layout = QHBoxLayout(self)
        layout.addWidget(lw)
        layout.addWidget(split, 1)
        self.read.finished.connect(self._on_map)
        self.iv.finished.connect(self._on_iv)

    def refresh(self) -> bool:
        return self.read.start()

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
        if self.heatmap.data is None:
            return
        pos = event.pos()
        row, col = int(pos.y()), int(pos.x())
        rows, cols = self.heatmap.data.shape
        if 0 <= row < rows and 0 <= col < cols:
            self.sweep_cell(row, col)

    def sweep_cell(self, row: int, col: int) -> bool:
        self.iv.form.set_value("row", row)
        self.iv.form.set_value("col", col)
        self.info.setText(f"I-V sweep of cell ({row}, {col}) ...")
        return self.iv.start()

    def _on_iv(self, result: Any, run_id: str) -> None:
        v, i = np.asarray(result.voltage), np.asarray(result.current)
        self.iv_plot.clear()
        self.iv_plot.plot(v, i, pen=pen(0), symbol="o", symbolSize=5, name=f"run {run_id}")
        g = float(np.dot(v, i) / max(np.dot(v, v), 1e-30))
        self.info.setText(f"I-V of the cell: chord conductance {g * 1e6:.2f} µS (run {run_id})")
