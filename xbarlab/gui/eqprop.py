"""Equilibrium-propagation training in the Training tab: parameters, test accuracy per epoch, and the free
and nudged output voltages of a probe sample per epoch (how far the nudge pulls each output)."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from xbarlab.experiments.base import Progress
from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel
from xbarlab.gui.plots import pen, plot_widget, with_export


class EqpropSection(QWidget):
    """A RunPanel for ``equilibrium_train`` with its two live plots."""

    def __init__(self, controller: BenchController) -> None:
        super().__init__()
        self.panel = RunPanel(controller, "equilibrium_train", title="Train by equilibrium propagation",
                              overrides={"epochs": 2, "limit": 150, "hidden": 8},
                              only=("rule", "dataset", "hidden", "epochs", "batch", "beta", "centered", "limit",
                                    "seed"))
        self.acc = plot_widget("Equilibrium propagation: test accuracy", "epoch", "accuracy", integer_x=True)
        self.outputs = plot_widget("Output voltages of a probe sample (solid: free, dashed: nudged)", "epoch",
                                   "V", integer_x=True)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.acc_curve = self.acc.plot([], [], pen=pen(0), symbol="o", symbolSize=6)
        self.epochs: list[int] = []
        self.test_acc: list[float] = []
        self.free: list[list[float]] = []
        self.nudged: list[list[float]] = []
        self.output_curves: list[tuple[Any, Any]] = []
        side = QVBoxLayout()
        side.addWidget(self.panel)
        side.addWidget(self.info)
        row = QHBoxLayout(self)
        row.addLayout(side, 0)
        for w, name in ((self.acc, "eqprop accuracy"), (self.outputs, "eqprop outputs")):
            row.addWidget(with_export(w, name), 1)
        self.panel.set_action(self.run)
        self.panel.progressed.connect(self._live)
        self.panel.finished.connect(self._done)
        self.panel.failed.connect(lambda message, aborted: self.info.setText(
            "aborted at a safe point" if aborted else f"failed: {message}"))

    def run(self) -> bool:
        """The button: fresh curves, then the run."""
        self.epochs.clear()
        self.test_acc.clear()
        self.free.clear()
        self.nudged.clear()
        self.outputs.clear()
        self.output_curves.clear()
        self.acc_curve.setData([], [])
        return self.panel.start()

    def _live(self, p: Progress) -> None:
        self.info.setText(p.message)
        if "test_acc" not in p.values or "free" not in p.values:
            return
        self.epochs.append(len(self.epochs) + 1)
        self.test_acc.append(float(p.values["test_acc"]))
        self.free.append([float(v) for v in p.values["free"]])
        self.nudged.append([float(v) for v in p.values["nudged"]])
        self.acc_curve.setData(self.epochs, self.test_acc)
        if not self.output_curves:
            for k in range(len(self.free[0])):
                solid = self.outputs.plot([], [], pen=pen(k), symbol="o", symbolSize=4)
                dashed_pen = pen(k)
                dashed_pen.setStyle(Qt.DashLine)
                dashed = self.outputs.plot([], [], pen=dashed_pen)
                self.output_curves.append((solid, dashed))
        for k, (solid, dashed) in enumerate(self.output_curves):
            solid.setData(self.epochs, [f[k] for f in self.free])
            dashed.setData(self.epochs, [n[k] for n in self.nudged])

    def _done(self, result: Any, run_id: str) -> None:
        self.info.setText(f"equilibrium propagation ({result.rule}): test accuracy {result.test_acc:.1%} after "
                          f"{len(result.history)} epochs, {result.total_pulses} pulses, instrument time "
                          f"{result.instrument_time:.2f} s (run {run_id})")
