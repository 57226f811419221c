"""Solve tab: mixed-precision refinement (residual per outer iteration, log scale) and the one-step solve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QGridLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from xbarlab.experiments.base import Progress
from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel, side_panel
from xbarlab.gui.plots import pen, plot_widget, with_export


class SolveTab(QWidget):
    def __init__(self, controller: BenchController) -> None:
        super().__init__()
        self.refine = RunPanel(controller, "linear_solve", title="Solve by refinement",
                               overrides={"n": 16, "condition": 20.0},
                               only=("matrix", "n", "condition", "inner", "tol", "max_outer", "seed"))
        self.one_step = RunPanel(controller, "closed_loop_solve", title="One-step closed-loop solve",
                                 overrides={"n": 8, "rhs": 5}, only=("mode", "n", "condition", "rhs", "seed"))
        self.refine.set_action(self.run)
        self.refine.queue_start = lambda params: self._keep_previous() or self.refine.start_with(params)
        self.plot = plot_widget("Mixed-precision refinement", "outer iteration", "relative residual ‖b − Ax‖/‖b‖",
                                log_y=True, integer_x=True)
        self.curve = self.plot.plot([], [], pen=pen(0), symbol="o", symbolSize=6, name="this run")
        self.previous: pg.PlotDataItem | None = None  # the last run's curve, grey, once there is one
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.one_step_result = QLabel("")
        self.one_step_result.setWordWrap(True)
        g1, g2 = QGroupBox("Iterative refinement (Le Gallo 2018)"), QGroupBox("One-step solve (Sun 2019)")
        QVBoxLayout(g1).addWidget(self.refine)
        QVBoxLayout(g2).addWidget(self.one_step)
        lw = side_panel(g1, g2, width=380)
        grid = QGridLayout(self)
        grid.addWidget(lw, 0, 0, 2, 1)
        self.plot_box = with_export(self.plot, "refinement residual")
        grid.addWidget(self.plot_box, 0, 1)
        results = QVBoxLayout()
        results.addWidget(self.result)
        results.addWidget(self.one_step_result)
        grid.addLayout(results, 1, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(0, 1)
        self._points: list[tuple[int, float]] = []
        self.refine.progressed.connect(self._live)
        self.refine.finished.connect(self._refined)
        self.one_step.finished.connect(self._one_step)

    def run(self) -> bool:
        """The Solve button: the last run's curve moves to "previous run" (grey), the new one draws live."""
        c = self.refine.controller
        if not self.refine.form.check() or c.session is None or c.busy:
            return self.refine.start()  # says why it cannot start
        self._keep_previous()
        return self.refine.start()

    def _keep_previous(self) -> None:
        """The last run's curve becomes the grey "previous run"; the live curve starts empty."""
        x, y = self.curve.getOriginalDataset()
        if x is not None and len(x):
            if self.previous is None:
                self.previous = self.plot.plot([], [], pen=pg.mkPen("#9e9e9e", width=1.5, style=Qt.DashLine),
                                               symbol="t", symbolSize=5, symbolBrush="#9e9e9e", symbolPen="#9e9e9e",
                                               name="previous run")
            self.previous.setData(x, y)
        self._points = []
        self.curve.setData([], [])

    def _live(self, p: Progress) -> None:
        r = p.values.get("relative_residual")
        if r is not None and p.done > 0:
            self._points.append((p.done, float(r)))
            x, y = zip(*self._points, strict=True)
            self.curve.setData(list(x), list(y))

    def _refined(self, res: Any, run_id: str) -> None:
        residuals = np.asarray(res.residuals, dtype=float)
        self.curve.setData(np.arange(1, len(residuals) + 1), residuals)
        self.result.setText(
            f"refinement ({res.inner} inner solver): relative residual {res.relative_residual:.2e} after "
            f"{res.outer_iterations} outer iterations, {res.analog_mvms} analog operations; first purely analog "
            f"inner solve off by {res.first_inner_rel_error:.2%}; {res.stop_reason}; run {run_id}")

    def _one_step(self, res: Any, run_id: str) -> None:
        if res.mode == "eigenvector":
            text = f"one-step eigenvector: overlap with numpy {res.eigen_overlap:.4f}"
        else:
            text = (f"one-step solve of {len(res.rel_errors)} right-hand sides: median relative error "
                    f"{res.median_rel_error:.2%} against numpy")
        self.one_step_result.setText(f"{text}; circuit settling {res.settle_time * 1e6:.2f} µs in total; run {run_id}")
