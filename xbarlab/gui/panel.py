"""A run panel: parameter form, Run button, progress bar and status line for one experiment type."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from xbarlab.experiments.base import Progress
from xbarlab.gui.controller import BenchController
from xbarlab.gui.forms import ParamForm
from xbarlab.session import experiment_class


class RunPanel(QWidget):
    """Runs ``kind`` with the form's values; re-emits the controller's signals for this kind only."""

    progressed = pyqtSignal(object)  # Progress
    finished = pyqtSignal(object, str)  # result, run id
    failed = pyqtSignal(str, bool)  # message, aborted

    def __init__(self, controller: BenchController, kind: str, *, title: str = "Run",
                 overrides: dict[str, Any] | None = None, only: tuple[str, ...] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.kind = kind
        self.cls = experiment_class(kind)
        self.form = ParamForm(self.cls, overrides, only)
        self.button = QPushButton(title)
        self.button.clicked.connect(self.start)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status = QLabel(self.cls.title)
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        layout.addWidget(self.button)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._mine = False
        controller.progress.connect(self._on_progress)
        controller.run_finished.connect(self._on_finished)
        controller.run_failed.connect(self._on_failed)
        controller.busy_changed.connect(lambda busy: self.button.setEnabled(not busy))

    def start(self, extra: dict[str, Any] | None = None) -> bool:
        params, problems = self.form.values()
        if problems:
            self.status.setText("Fix the parameters first:\n" + "\n".join(problems))
            return False
        params.update(extra or {})
        self._mine = self.controller.run(self.kind, params)
        if self._mine:
            self.bar.setRange(0, 0)  # busy until the first progress report
            self.status.setText(f"running {self.kind} ...")
        return self._mine

    def _on_progress(self, kind: str, p: Progress) -> None:
        if not self._mine or kind != self.kind:
            return
        self.bar.setRange(0, max(p.total, 1))
        self.bar.setValue(min(p.done, max(p.total, 1)))
        self.status.setText(p.message)
        self.progressed.emit(p)

    def _on_finished(self, kind: str, result: Any, run_id: str) -> None:
        if not self._mine or kind != self.kind:
            return
        self._mine = False
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.status.setText(f"completed: run {run_id}")
        self.finished.emit(result, run_id)

    def _on_failed(self, kind: str, message: str, aborted: bool) -> None:
        if not self._mine or kind != self.kind:
            return
        self._mine = False
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status.setText(("aborted: " if aborted else "failed: ") + message)
        self.failed.emit(message, aborted)


def side_panel(*widgets: QWidget, width: int = 380) -> QWidget:
    """The controls column at the left of a tab: ``widgets`` stacked, at most ``width`` px wide."""
    column = QWidget()
    layout = QVBoxLayout(column)
    for w in widgets:
        layout.addWidget(w)
    column.setMaximumWidth(width)
    return column
