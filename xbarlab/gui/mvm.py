"""MVM tab: program a matrix (random or from a file), run forward/transpose MVMs; measured vs. expected outputs,
programmed vs. target weights, relative error per input vector, error statistics.

A completed run is drawn from its result; an aborted run is drawn from what it wrote to the log
before the abort (programmed conductances, the cases finished), so nothing measured is hidden.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtWidgets import QGridLayout, QLabel, QWidget

from xbarlab.errors import XbarlabError
from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel, side_panel
from xbarlab.gui.plots import label_axis, pen, plot_widget, with_export
from xbarlab.logbook import LogReader

OUTPUT_AXIS = "W·x (weight units: |W| ≤ 1, |x| ≤ 1)"


class MvmTab(QWidget):
    def __init__(self, controller: BenchController) -> None:
        super().__init__()
        self.controller = controller
        self.panel = RunPanel(controller, "mvm", title="Program and run MVMs",
                              overrides={"n_in": 16, "n_out": 16, "vectors": 20},
                              only=("matrix", "n_in", "n_out", "v_in", "direction", "encoding", "vectors",
                                    "tolerance", "seed"))
        self.scatter = plot_widget("MVM outputs: measured vs. expected", f"expected {OUTPUT_AXIS}",
                                   "measured W·x (weight units)")
        self.programmed = plot_widget("Programmed vs. target weights", "target weight (|W| ≤ 1)",
                                      "programmed weight (read back)")
        self.errors = plot_widget("Relative error per input vector", "input magnitude (max|x|, 1 = full scale)",
                                  "‖y − Wx‖ / ‖Wx‖")
        self.stats = QLabel("Enter a matrix file (.npy) or 'random', then run.")
        self.stats.setWordWrap(True)
        lw = side_panel(self.panel, self.stats, width=380)
        grid = QGridLayout(self)
        grid.addWidget(lw, 0, 0, 2, 1)
        self.exports = {}
        for name, w, r, c, span in (("mvm outputs", self.scatter, 0, 1, 1), ("programmed weights", self.programmed,
                                                                              0, 2, 1),
                                    ("mvm errors", self.errors, 1, 1, 2)):
            box = with_export(w, name)
            self.exports[name] = box.export
            grid.addWidget(box, r, c, 1, span)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        self.panel.finished.connect(self.show_result)
        self.panel.failed.connect(self._failed)

    def run(self) -> bool:
        return self.panel.click()

    def show_result(self, result: Any, run_id: str) -> None:
        cases = [(f"{c.direction} {c.v_in:g} V", np.asarray(c.outputs), np.asarray(c.input_magnitude),
                  np.asarray(c.rel_error)) for c in result.cases]
        self._draw_outputs(cases)
        self._draw_programmed(np.asarray(result.matrix), np.asarray(result.programmed), weights=True)
        lines = [f"{case.n_out}x{case.n_in} {case.direction} at {case.v_in:g} V: median relative error "
                 f"{case.median_rel_error:.2%} ({case.effective_bits:.1f} bits)" for case in result.cases]
        prog_info = result.programming
        lines.append(f"write-verify: yield {prog_info.get('yield', float('nan')):.1%}, "
                     f"{prog_info.get('pulses', 0)} pulses; {result.mvms} MVMs; "
                     f"instrument time {result.instrument_time:.3f} s; run {run_id}")
        self.stats.setText("\n".join(lines))

    def _draw_outputs(self, cases: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        self.scatter.clear()
        self.errors.clear()
        lim = max((float(np.max(np.abs(out))) for _n, out, _m, _e in cases if out.size), default=1.0)
        self.scatter.plot([-lim, lim], [-lim, lim], pen=pg.mkPen("#888888", style=2), name="ideal")
        for k, (name, out, mags, errs) in enumerate(cases):
            brush = pg.mkBrush(pen(k).color())
            if out.size:
                self.scatter.plot(out[:, 0], out[:, 1], pen=None, symbol="o", symbolSize=4, symbolBrush=brush,
                                  name=name)
            if mags.size:
                self.errors.plot(mags, errs, pen=None, symbol="o", symbolSize=5, symbolBrush=brush, name=name)

    def _draw_programmed(self, target: np.ndarray, achieved: np.ndarray, *, weights: bool) -> None:
        self.programmed.clear()
        t, a = target.ravel(), achieved.ravel()
        if not t.size:
            return
        lim = (float(np.min(t)), float(np.max(t)))
        self.programmed.plot(lim, lim, pen=pg.mkPen("#888888", style=2), name="target")
        self.programmed.plot(t, a, pen=None, symbol="o", symbolSize=4, symbolBrush=pg.mkBrush(pen(0).color()),
                             name=f"{t.size} {'weights' if weights else 'devices'}")
        if weights:
            label_axis(self.programmed, "bottom", "target weight (|W| ≤ 1)")
            label_axis(self.programmed, "left", "programmed weight (read back)")
        else:
            label_axis(self.programmed, "bottom", "target conductance", "S")
            label_axis(self.programmed, "left", "achieved conductance", "S")

    def _failed(self, message: str, aborted: bool) -> None:
        """Show what an aborted (or failed) run measured before it stopped, from the log."""
        path, rid = self.controller.log_path, self.controller.current_run_id
        if path is None or rid is None:
            return
        try:
            reader = LogReader(path)
            names = reader.stream_names(rid)
            records = reader.calibrations(rid)
            cases = []
            for name in sorted((n for n in names if n.startswith("outputs/")), key=lambda n: int(n.split("/")[1])):
                k = int(name.split("/")[1])
                out = reader.stream(rid, name).data
                mags = errs = np.empty(0)
                if "mvm_vectors" in names:
                    vec = reader.stream(rid, "mvm_vectors")
                    sel = vec.column("case") == k
                    mags, errs = vec.column("input_magnitude")[sel], vec.column("rel_error")[sel]
                cases.append((f"case {k}", out, mags, errs))
        except XbarlabError as exc:
            self.stats.setText(f"{'aborted' if aborted else 'failed'}: {message}\n(log not readable: {exc})")
            return
        self._draw_outputs(cases)
        prog = records.get("mvm-programming")
        if prog is not None:
            data = prog[1]
            self._draw_programmed(np.asarray(data["targets"]), np.asarray(data["achieved"]), weights=False)
        else:
            self.programmed.clear()
        measured = (f"the programmed matrix and {len(cases)} finished case(s)" if prog is not None
                    else "nothing beyond the write-verify transcript (stopped while programming)")
        self.stats.setText(f"run {rid} {'aborted at a safe point' if aborted else 'failed: ' + message}; "
                           f"shown: {measured}, as logged.")
