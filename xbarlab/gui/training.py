"""Training tab: update rule and hyper-parameters, live loss/accuracy against the float baseline,
pulse counts per epoch and the conductance map of the trained block. On a PCM station: update
``set_only`` or rule ``pcm_3t1c`` (F, transfer interval, polarity inversion)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtWidgets import QCheckBox, QGridLayout, QLabel, QWidget

from xbarlab.experiments.base import Progress
from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel, side_panel
from xbarlab.gui.plots import Heatmap, pen, plot_widget, with_export


def _preload() -> None:
    """Import the dataset library here, on the UI thread at start-up: imported by the worker mid-run, its
    extension modules would hold the interpreter lock long enough to stall the UI."""
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:  # .npz datasets still work
        pass


class TrainingTab(QWidget):
    def __init__(self, controller: BenchController) -> None:
        super().__init__()
        _preload()
        self.controller = controller
        self.panel = RunPanel(controller, "train", title="Train",
                              overrides={"epochs": 2, "limit": 150, "hidden": 8},
                              only=("rule", "update", "dataset", "hidden", "epochs", "lr", "lr_decay", "limit",
                                    "max_pulses", "gamma", "significance", "cap_transfer_every", "polarity_inversion",
                                    "seed"))
        self.panel.set_action(self.run)  # the Train button: baseline first when ticked, then the rule
        self.panel.queue_start = self._start_queued
        self.baseline = QCheckBox("also train the float baseline first (same data split)")
        self.baseline.setChecked(True)
        self.acc = plot_widget("Test accuracy", "epoch", "accuracy", integer_x=True)
        self.acc.getPlotItem().legend.setOffset((-10, -10))  # bottom right: accuracy curves rise to the top
        self.loss = plot_widget("Training loss", "epoch", "cross-entropy (nat)", integer_x=True)
        self.pulses = plot_widget("Pulses applied", "epoch", "pulses", integer_x=True)
        self.weights = Heatmap("Conductance of the array after training", "G (µS)", scale=1e6)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        lw = side_panel(self.panel, self.baseline, self.info, width=380)
        grid = QGridLayout(self)
        grid.addWidget(lw, 0, 0, 2, 1)
        self.exports = {}
        for name, w, r, c in (("accuracy", self.acc, 0, 1), ("loss", self.loss, 0, 2), ("pulses", self.pulses, 1, 1),
                              ("trained conductance", self.weights, 1, 2)):
            box = with_export(w, name)
            self.exports[name] = box.export
            grid.addWidget(box, r, c)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        self.curves: dict[str, dict[str, Any]] = {}
        self._rule = ""
        self._pending_rule: str | None = None
        self.panel.progressed.connect(self._live)
        self.panel.finished.connect(self._done)
        self.panel.failed.connect(self._failed)
        self.map_reader = RunPanel(controller, "array_read", title="read", queueable=False)
        self.map_reader.finished.connect(lambda g, _rid: self.weights.set_data(np.asarray(g)))

    def run(self) -> bool:
        """The Train button: the float baseline first when ticked (same split), then the chosen rule."""
        params, problems = self.panel.form.values()
        if problems:
            return self.panel.start()  # shows the problems
        rule = params["rule"]
        for w in (self.acc, self.loss, self.pulses):
            w.clear()
        self.curves.clear()
        if self.baseline.isChecked() and rule != "float":
            self._pending_rule = rule
            return self._start("float")
        self._pending_rule = None
        return self._start(rule)

    def _start(self, rule: str, params: dict[str, Any] | None = None) -> bool:
        self._rule = rule
        k = len(self.curves)
        style = {"pen": pen(k), "symbol": "o", "symbolSize": 6, "name": rule}
        self.curves[rule] = {"acc": self.acc.plot([], [], **style), "loss": self.loss.plot([], [], **style),
                             "epochs": [], "test_acc": [], "loss_v": []}
        if params is not None:
            return self.panel.start_with({**params, "rule": rule})
        return self.panel.start({"rule": rule})

    def _start_queued(self, params: dict[str, Any]) -> bool:
        """A queued training run (its parameters as queued; no baseline): fresh curves, then the run."""
        for w in (self.acc, self.loss, self.pulses):
            w.clear()
        self.curves.clear()
        self._pending_rule = None
        return self._start(params["rule"], params)

    def _live(self, p: Progress) -> None:
        c = self.curves.get(self._rule)
        if c is None:
            return
        if "test_acc" in p.values:  # end of an epoch
            c["epochs"].append(len(c["epochs"]) + 1)
            c["test_acc"].append(float(p.values["test_acc"]))
            c["loss_v"].append(float(p.values.get("loss", np.nan)))
            c["acc"].setData(c["epochs"], c["test_acc"])
            c["loss"].setData(c["epochs"], c["loss_v"])
        self.info.setText(f"{self._rule}: {p.message}")

    def _failed(self, message: str, aborted: bool) -> None:
        self._pending_rule = None  # an aborted or failed baseline does not start the rule
        self.info.setText(f"{self._rule}: {'aborted at a safe point' if aborted else 'failed: ' + message}")

    def _done(self, result: Any, run_id: str) -> None:
        hist = result.history
        c = self.curves.get(result.rule)
        if c is not None and hist:
            epochs = [h.epoch for h in hist]
            c["acc"].setData(epochs, [h.test_acc for h in hist])
            c["loss"].setData(epochs, [h.train_loss for h in hist])
        if result.rule != "float" and hist:
            bars = pg.BarGraphItem(x=[h.epoch for h in hist], height=[h.pulses for h in hist], width=0.6,
                                   brush=pg.mkBrush(pen(1).color()))
            self.pulses.addItem(bars)
        text = (f"{result.rule}: test accuracy {result.test_acc:.1%} after {len(hist)} epochs, "
                f"{result.total_pulses} pulses, instrument time {result.instrument_time:.2f} s (run {run_id})")
        counters = getattr(result, "counters", {}) or {}
        if counters.get("transfers") or counters.get("refreshes"):
            text += (f"; {counters['transfers']} capacitor transfers, {counters['refreshes']} PCM refreshes, "
                     f"{counters['cap_steps']} charge steps")
        self.info.setText(text)
        if self._pending_rule is not None:
            rule, self._pending_rule = self._pending_rule, None
            self._start(rule)
        elif result.rule != "float":
            self.map_reader.start()
