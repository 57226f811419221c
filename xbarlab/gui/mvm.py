"""MVM tab: program a matrix (random or from a file), run forward/transpose MVMs, error statistics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtWidgets import QGridLayout, QLabel, QWidget

from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel, side_panel
from xbarlab.gui.plots import pen, plot_widget


class MvmTab(QWidget):
    def __init__(self, controller: BenchController) -> None:
        super().__init__()
        self.panel = RunPanel(controller, "mvm", title="Program and run MVMs",
                              overrides={"n_in": 16, "n_out": 16, "vectors": 20},
                              only=("matrix", "n_in", "n_out", "v_in", "direction", "encoding", "vectors",
                                    "tolerance", "seed"))
        self.scatter = plot_widget("MVM outputs: measured vs. expected (W·x)", "expected", "measured")
        self.errors = plot_widget("Relative error per input vector", "input magnitude (max|x|, 1 = full scale)",
                                  "‖y − Wx‖ / ‖Wx‖")
        self.stats = QLabel("Enter a matrix file (.npy) or 'random', then run.")
        self.stats.setWordWrap(True)
        lw = side_panel(self.panel, self.stats, width=380)
        grid = QGridLayout(self)
        grid.addWidget(lw, 0, 0, 2, 1)
        grid.addWidget(self.scatter, 0, 1)
        grid.addWidget(self.errors, 1, 1)
        grid.setColumnStretch(1, 1)
        self.panel.finished.connect(self.show_result)

    def run(self) -> bool:
        return self.panel.start()

    def show_result(self, result: Any, run_id: str) -> None:
        self.scatter.clear()
        lim = max((float(np.max(np.abs(c.outputs))) for c in result.cases if c.outputs.size), default=1.0)
        self.scatter.plot([-lim, lim], [-lim, lim], pen=pg.mkPen("#888888", style=2), name="ideal")
        for k, case in enumerate(result.cases):
            out = np.asarray(case.outputs)
            self.scatter.plot(out[:, 0], out[:, 1], pen=None, symbol="o", symbolSize=4,
                              symbolBrush=pg.mkBrush(pen(k).color()), name=f"{case.direction} {case.v_in:g} V")
        self.errors.clear()
        lines = []
        for k, case in enumerate(result.cases):
            self.errors.plot(case.input_magnitude, case.rel_error, pen=None, symbol="o", symbolSize=5,
                             symbolBrush=pg.mkBrush(pen(k).color()), name=f"{case.direction} {case.v_in:g} V")
            lines.append(f"{case.n_out}x{case.n_in} {case.direction} at {case.v_in:g} V: median relative error "
                         f"{case.median_rel_error:.2%} ({case.effective_bits:.1f} bits)")
        prog_info = result.programming
        lines.append(f"write-verify: yield {prog_info.get('yield', float('nan')):.1%}, "
                     f"{prog_info.get('pulses', 0)} pulses; {result.mvms} MVMs; "
                     f"instrument time {result.instrument_time:.3f} s; run {run_id}")
        self.stats.setText("\n".join(lines))
