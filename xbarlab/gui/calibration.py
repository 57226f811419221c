"""Calibration tab: read-path calibration, characterization and write-verify programming.

Which routines exist comes from the registered step types (``xbarlab.calibration`` adds
them); each runs with a generated parameter form. Live values (yield, pulses) come from
the routine's progress reports; plots come from the streams it wrote to the log.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtWidgets import QComboBox, QGridLayout, QLabel, QStackedWidget, QVBoxLayout, QWidget

from xbarlab.experiments.base import STEP_TYPES, Progress
from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel
from xbarlab.gui.plots import pen, plot_widget
from xbarlab.logbook import LogReader

PREFERRED = ("read_calibration", "characterize", "pulse_response", "program", "write_verify", "stuck_map")


def calibration_kinds() -> list[str]:
    import xbarlab.experiments.catalog  # noqa: F401

    kinds = [k for k, c in STEP_TYPES.items() if c.__module__.startswith("xbarlab.calibration")]
    kinds += [k for k in ("pulse_response",) if k in STEP_TYPES and k not in kinds]
    return sorted(kinds, key=lambda k: (PREFERRED.index(k) if k in PREFERRED else len(PREFERRED), k))


class CalibrationTab(QWidget):
    def __init__(self, controller: BenchController) -> None:
        super().__init__()
        self.controller = controller
        self.choice = QComboBox()
        self.stack = QStackedWidget()
        self.panels: dict[str, RunPanel] = {}
        for kind in calibration_kinds():
            overrides = {"row": 10, "col": 10, "pulses": 30, "cycles": 2} if kind == "pulse_response" else None
            panel = RunPanel(controller, kind, title=f"Run {kind}", overrides=overrides)
            panel.progressed.connect(self._live)
            panel.finished.connect(self._done)
            self.panels[kind] = panel
            self.choice.addItem(f"{kind}: {panel.cls.title}", kind)
            self.stack.addWidget(panel)
        self.choice.currentIndexChanged.connect(self.stack.setCurrentIndex)
        self.live = QLabel("")
        self.live.setWordWrap(True)
        self.main_plot = plot_widget("Result", "", "")
        self.hist = plot_widget("Error histogram", "error", "cells")
        left = QVBoxLayout()
        left.addWidget(self.choice)
        left.addWidget(self.stack)
        left.addWidget(self.live)
        lw = QWidget()
        lw.setLayout(left)
        lw.setMaximumWidth(400)
        grid = QGridLayout(self)
        grid.addWidget(lw, 0, 0, 2, 1)
        grid.addWidget(self.main_plot, 0, 1)
        grid.addWidget(self.hist, 1, 1)
        grid.setColumnStretch(1, 1)

    def select(self, kind: str) -> bool:
        index = self.choice.findData(kind)
        if index < 0:
            return False
        self.choice.setCurrentIndex(index)
        return True

    def run(self, kind: str | None = None) -> bool:
        if kind is not None and not self.select(kind):
            return False
        kind = self.choice.currentData()
        return kind is not None and self.panels[kind].start()

    def _live(self, p: Progress) -> None:
        shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in p.values.items())
        self.live.setText(f"{p.message}\n{shown}" if shown else p.message)

    def _done(self, result: Any, run_id: str) -> None:
        path = self.controller.log_path
        if path is None:
            return
        reader = LogReader(path)
        self.main_plot.clear()
        self.hist.clear()
        for name in reader.stream_names(run_id):
            self._plot_stream(name, reader.stream(run_id, name))
        for rid, (kind, data, meta) in reader.calibrations(run_id).items():
            self._plot_record(data)
            summary = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in meta.items()
                                if not isinstance(v, (list, dict)))
            self.live.setText(f"{rid} ({kind}): {summary}\nrun {run_id}")

    def _plot_stream(self, name: str, s: Any) -> None:
        if s.data.ndim != 2 or not s.columns:
            return
        cols = list(s.columns)
        units = s.units if isinstance(s.units, list) else [s.units] * len(cols)
        if "conductance" in cols:  # pulse-response style: G against pulse number, SET and RESET coloured
            g = s.data[:, cols.index("conductance")]
            x = np.arange(len(g))
            amp = s.data[:, cols.index("amplitude")] if "amplitude" in cols else np.ones_like(g)
            for k, (mask, label) in enumerate(((amp > 0, "potentiation"), (amp <= 0, "depression"))):
                if mask.any():
                    self.main_plot.plot(x[mask], g[mask], pen=None, symbol="o", symbolSize=4,
                                        symbolBrush=pg.mkBrush(pen(k).color()), name=f"{name}: {label}")
            for j, c in enumerate(cols):
                if c.startswith("fit"):
                    self.main_plot.plot(x, s.data[:, j], pen=pen(2), name=f"{name}: {c}")
            self.main_plot.setLabel("bottom", "pulse number")
            self.main_plot.setLabel("left", "conductance", units="S")
            return
        for j, c in enumerate(cols):
            if c in ("error", "abs_error", "rel_error"):
                self._histogram(s.data[:, j], f"{c} [{units[j]}]")
        y = len(cols) - 1
        self.main_plot.plot(s.data[:, 0], s.data[:, y], pen=pen(0), symbol="o", symbolSize=4,
                            name=f"{name}: {cols[y]}")
        self.main_plot.setLabel("bottom", cols[0], units=units[0] if units[0] not in ("", "1") else None)
        self.main_plot.setLabel("left", cols[y], units=units[y] if units[y] not in ("", "1") else None)

    def _plot_record(self, data: dict[str, Any]) -> None:
        if "targets" in data and "achieved" in data:
            err = np.asarray(data["achieved"], float) - np.asarray(data["targets"], float)
            self._histogram(err.ravel(), "achieved − target", units="S")
        for key in ("error", "errors", "residual_error"):
            if key in data:
                self._histogram(np.asarray(data[key], float).ravel(), key)

    def _histogram(self, values: np.ndarray, label: str, units: str | None = None) -> None:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        y, edges = np.histogram(values, bins=40)
        self.hist.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=y, brush=pg.mkBrush(pen(0).color())))
        self.hist.setLabel("bottom", label, units=units)
