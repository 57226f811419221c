"""One-step tab: the showcase problems of Sun et al. (PNAS 2019) on the closed-loop board.

Choose the problem (Schrödinger eigenstates in a chosen well, PageRank of a seeded web graph, a
matrix inverse), its size and potential, press Run; the tab draws what the circuit found next to
numpy's answer: wavefunctions over the well, offset by their energies (ħ²/(m·L²), box length 1),
the PageRank scores in digital rank order, or the entries of the array's inverse against numpy's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QGridLayout, QLabel, QWidget

from xbarlab.experiments.base import Progress
from xbarlab.experiments.one_step import summary
from xbarlab.experiments.one_step_problems import potential
from xbarlab.experiments.systems import load_system
from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel, side_panel
from xbarlab.gui.plots import label_axis, pen, plot_widget, with_export

#: axis labels (bottom, left) per problem
AXES = {
    "schrodinger": ("x (box length 1)", "energy (ħ²/(m·L²)); ψ offset by its energy"),
    "pagerank": ("page (in digital rank order)", "PageRank score (sums to 1)"),
    "inverse": ("numpy A⁻¹ entry (1)", "array A⁻¹ entry (1)"),
}


class OneStepTab(QWidget):
    def __init__(self, controller: BenchController) -> None:
        super().__init__()
        self.panel = RunPanel(controller, "one_step", title="Run one-step",
                              overrides={"n": 8, "states": 2},
                              only=("problem", "n", "potential", "depth", "states", "damping", "circuit", "matrix",
                                    "condition", "seed"))
        self._params: dict[str, Any] = {}  # of the run being drawn (the form may change meanwhile)
        self.last_result: Any = None
        self.panel.set_action(self.run)
        self.panel.queue_start = self._start_queued
        self.plot = plot_widget("One-step result", *AXES["schrodinger"])
        self.plot.getPlotItem().legend.setOffset((-10, -10))  # bottom right, away from the levels
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextSelectableByMouse)
        grid = QGridLayout(self)
        grid.addWidget(side_panel(self.panel, width=380), 0, 0, 2, 1)
        grid.addWidget(with_export(self.plot, "one-step result"), 0, 1)
        grid.addWidget(self.result, 1, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(0, 1)
        self.panel.progressed.connect(self._live)
        self.panel.finished.connect(self._done)
        self.panel.failed.connect(lambda message, aborted: self.result.setText(
            "aborted at a safe point" if aborted else f"failed: {message}"))

    def run(self) -> bool:
        """The Run button: remember the parameters this run draws with, then start it."""
        self._params = self.panel.form.values()[0]
        return self.panel.start()

    def _start_queued(self, params: dict[str, Any]) -> bool:
        self._params = {**self.panel.form.values()[0], **params}
        return self.panel.start_with(params)

    def _live(self, p: Progress) -> None:
        self.result.setText(p.message)

    def _axes(self, problem: str, title: str) -> None:
        item = self.plot.getPlotItem()
        item.clear()
        legend = item.legend
        if legend is not None:
            legend.clear()
        item.setTitle(title)
        bottom, left = AXES[problem]
        label_axis(self.plot, "bottom", bottom)
        label_axis(self.plot, "left", left)

    def _done(self, res: Any, run_id: str) -> None:
        params = self._params or self.panel.form.values()[0]
        self.last_result = res
        if res.problem == "schrodinger":
            self._schrodinger(res, params)
        elif res.problem == "pagerank":
            self._pagerank(res)
        else:
            self._inverse(res, params)
        self.result.setText(summary(res).replace("\n", "; ") + f" (run {run_id})")

    def _schrodinger(self, res: Any, params: dict[str, Any]) -> None:
        self._axes("schrodinger", f"Schrödinger, {params['potential']} well: {len(res.x)} grid points")
        x = np.asarray(res.x)
        spacing = float(np.max(np.diff(res.energies_exact))) if len(res.energies_exact) > 1 else 1.0
        v = potential(params["potential"], x, params["depth"])
        top = float(np.max(res.energies_exact)) + max(1.5 * spacing, 0.1 * float(np.ptp(v)))
        bottom = min(float(np.min(v)), float(np.min(res.energies_exact)))
        # wavefunctions drawn with an amplitude of 12 % of the energy range shown (levels may lie close together)
        scale = 0.12 * (top - bottom) / max(float(np.max(np.abs(res.wavefunctions_exact))), 1e-12)
        self.plot.plot(x, np.minimum(v, top), pen=pg.mkPen("#9e9e9e", width=1.5), name="V(x)")
        for k, (psi, ref) in enumerate(zip(res.wavefunctions, res.wavefunctions_exact, strict=True)):
            self.plot.plot(x, res.energies[k] + scale * np.asarray(psi), pen=pen(k), symbol="o", symbolSize=6,
                           symbolBrush=pen(k).color(), name=f"state {k}, array (E = {res.energies[k]:.2f})")
            self.plot.plot(x, res.energies_exact[k] + scale * np.asarray(ref),
                           pen=pg.mkPen(pen(k).color(), width=1.5, style=Qt.DashLine),
                           name=f"state {k}, numpy (E = {res.energies_exact[k]:.2f})")
        self.plot.getPlotItem().setYRange(bottom, top + 0.15 * (top - bottom))

    def _pagerank(self, res: Any) -> None:
        self._axes("pagerank", f"PageRank of {res.n} pages: Kendall τ {res.kendall_tau:.3f}, "
                               f"top-10 {res.top10:.0%}")
        order = np.argsort(-np.asarray(res.scores_exact))
        idx = np.arange(len(order), dtype=float)
        self.plot.addItem(pg.BarGraphItem(x=idx - 0.2, height=np.asarray(res.scores_exact)[order], width=0.4,
                                          brush=pg.mkBrush(pen(0).color()), name="digital PageRank"))
        self.plot.addItem(pg.BarGraphItem(x=idx + 0.2, height=np.asarray(res.scores)[order], width=0.4,
                                          brush=pg.mkBrush(pen(1).color()), name="array"))
        # markers too, so the values are data items (CSV export, tests) and the legend names both
        self.plot.plot(idx - 0.2, np.asarray(res.scores_exact)[order], pen=None, symbol="t", symbolSize=7,
                       symbolBrush=pen(0).color(), name="digital PageRank")
        self.plot.plot(idx + 0.2, np.asarray(res.scores)[order], pen=None, symbol="o", symbolSize=6,
                       symbolBrush=pen(1).color(), name="array")

    def _inverse(self, res: Any, params: dict[str, Any]) -> None:
        self._axes("inverse", f"{res.n}x{res.n} inverse: relative error {res.inverse_rel_error:.2%}")
        a, _ = load_system(params["matrix"], params["n"], params["condition"], params["seed"])
        exact = np.linalg.inv(a).ravel()
        got = np.asarray(res.inverse).ravel()
        lo, hi = float(min(exact.min(), got.min())), float(max(exact.max(), got.max()))
        self.plot.plot([lo, hi], [lo, hi], pen=pg.mkPen("#9e9e9e", width=1.5, style=Qt.DashLine), name="equal")
        self.plot.plot(exact, got, pen=None, symbol="o", symbolSize=6, symbolBrush=pen(0).color(),
                       name="entries")
