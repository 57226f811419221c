"""Calibration tab: read-path calibration, characterization and write-verify programming.

Which routines exist comes from the registered step types (``xbarlab.calibration`` adds
them); each runs with a generated parameter form. Live values (yield, pulses) come from
the routine's progress reports; plots come from the streams it wrote to the log.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtWidgets import QComboBox, QGridLayout, QLabel, QStackedWidget, QWidget

import xbarlab.experiments.catalog  # noqa: F401 - registers every built-in step type
from xbarlab.calibration.writeverify import DONE, SKIPPED, STUCK
from xbarlab.experiments.base import STEP_TYPES, Progress
from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel, side_panel
from xbarlab.gui.plots import label_axis, pen, plot_widget, with_export
from xbarlab.logbook import LogReader

PREFERRED = ("write_verify", "read_calibration", "device_fit", "range_map", "forming", "residual_program",
             "drift_compensation", "pulse_response")


def calibration_kinds() -> list[str]:

    kinds = [k for k, c in STEP_TYPES.items() if c.category == "calibration"]
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
        lw = side_panel(self.choice, self.stack, self.live, width=400)
        grid = QGridLayout(self)
        grid.addWidget(lw, 0, 0, 2, 1)
        self.main_box = with_export(self.main_plot, "calibration result")
        self.hist_box = with_export(self.hist, "calibration histogram")
        grid.addWidget(self.main_box, 0, 1)
        grid.addWidget(self.hist_box, 1, 1)
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
        self.main_plot.setLogMode(x=False, y=False)
        streams = {name: reader.stream(run_id, name) for name in reader.stream_names(run_id)}
        records = reader.calibrations(run_id)
        if "response" in streams and "device_model" in records:
            self._plot_device_fit(streams["response"].data, records["device_model"][1])
        elif "targets" in streams and "achieved" in streams:
            self._plot_write_verify(streams)
        else:
            for name, stream in streams.items():
                self._plot_stream(name, stream)
        texts = []
        for rid, (kind, _data, meta) in records.items():
            summary = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in meta.items()
                                if not isinstance(v, (list, dict)))
            texts.append(f"{rid} ({kind}): {summary}")
        described = getattr(result, "describe", None)
        if callable(described):
            texts.insert(0, described())
        self.live.setText("\n".join(texts + [f"run {run_id}"]))

    def _plot_device_fit(self, response: np.ndarray, model: dict[str, Any]) -> None:
        """Measured pulse responses of a few cells with the fitted soft-bounds model drawn through them."""
        g = np.asarray(response)  # (cycles, 2N + 1, cells)
        cycles, steps, cells = g.shape
        n = (steps - 1) // 2
        x = np.arange(cycles * steps)
        for c in range(min(cells, 3)):
            trace = g[:, :, c].ravel()
            self.main_plot.plot(x, trace, pen=None, symbol="o", symbolSize=4,
                                symbolBrush=pg.mkBrush(pen(c).color()), name=f"cell {c}: measured")
            k_up, k_dn = float(model["k_up"][c]), float(model["k_down"][c])
            g_lo, g_hi = float(model["g_lo"][c]), float(model["g_hi"][c])
            if not np.isfinite([k_up, k_dn, g_lo, g_hi]).all():
                continue
            fitted = []
            for cyc in range(cycles):  # g' = (1 − k)·g + k·g_bound, from each cycle's first read
                v = g[cyc, 0, c]
                fitted.append(v)
                for k in range(2 * n):
                    v = (1 - k_up) * v + k_up * g_hi if k < n else (1 - k_dn) * v + k_dn * g_lo
                    fitted.append(v)
            self.main_plot.plot(x, np.asarray(fitted), pen=pen(c, 1.5), name=f"cell {c}: fitted model")
        self.main_plot.setTitle("Pulse response (SET then RESET pulses) and fitted device model")
        label_axis(self.main_plot, "bottom", "pulse number")
        label_axis(self.main_plot, "left", "conductance", "S")

    def _plot_write_verify(self, streams: dict[str, Any]) -> None:
        t = streams["targets"].data[-1].ravel()
        a = streams["achieved"].data[-1].ravel()

        status = streams["status"].data[-1].ravel() if "status" in streams else np.full(t.shape, DONE)
        groups = ((status == DONE, "settled (verify accepted)", "o", "#1f77b4"),
                  ((status == STUCK) | (status == SKIPPED), "stuck (reported, not pulsed further)", "x", "#d62728"),
                  ((status != DONE) & (status != STUCK) & (status != SKIPPED), "not reached", "t", "#ff7f0e"))
        for mask, label, symbol, colour in groups:
            if mask.any():
                self.main_plot.plot(t[mask], a[mask], pen=None, symbol=symbol, symbolSize=4 if symbol == "o" else 8,
                                    symbolPen=pg.mkPen(colour), symbolBrush=pg.mkBrush(colour),
                                    name=f"{label}: {int(mask.sum())}")
        lim = (float(np.min(t)), float(np.max(t)))
        self.main_plot.plot(lim, lim, pen=pg.mkPen("#888888", style=2), name="target")
        self.main_plot.setTitle("Write-verify: achieved vs. target conductance")
        label_axis(self.main_plot, "bottom", "target", "S")
        label_axis(self.main_plot, "left", "achieved", "S")
        if "error_histogram" in streams:
            h = streams["error_histogram"].data
            edges, counts = h[:, 0], h[:, 1]
            width = float(np.median(np.diff(edges))) if len(edges) > 1 else 1.0
            self.hist.addItem(pg.BarGraphItem(x0=edges, x1=edges + width, height=counts,
                                              brush=pg.mkBrush(pen(0).color())))
            label_axis(self.hist, "bottom", "error (units of the tolerance)")
        else:
            self._histogram(a - t, "achieved − target", units="S")

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
            self.main_plot.setTitle("Pulse response")
            label_axis(self.main_plot, "bottom", "pulse number")
            label_axis(self.main_plot, "left", "conductance", "S")
            return
        x_col = 0
        ys = [j for j in range(1, len(cols)) if cols[j] not in ("row", "col", "scale", "factor", "stuck")]
        if cols[0] == "time":
            self.main_plot.setLogMode(x=True, y=False)
        for k, j in enumerate(ys[:3]):
            self.main_plot.plot(s.data[:, x_col], s.data[:, j], pen=pen(k), symbol="o", symbolSize=5,
                                name=f"{cols[j]}")
        self.main_plot.setTitle(name.replace("_", " "))
        label_axis(self.main_plot, "bottom", cols[0], units[0] if units[0] not in ("", "1") else None)
        if ys:
            label_axis(self.main_plot, "left", ", ".join(cols[j] for j in ys[:3]))

    def _histogram(self, values: np.ndarray, label: str, units: str | None = None) -> None:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        y, edges = np.histogram(values, bins=40)
        self.hist.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=y, brush=pg.mkBrush(pen(0).color())))
        label_axis(self.hist, "bottom", label, units)
