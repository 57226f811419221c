"""A run panel: parameter form, Run button, progress bar and status line for one experiment type.

The Run button calls :attr:`RunPanel.action` (by default :meth:`RunPanel.start`; a tab that
does more around a run, e.g. the Training tab's float baseline, installs its own slot with
:meth:`RunPanel.set_action`), so the button, ``--screenshot`` and the tests take one path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QVBoxLayout, QWidget

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
                 parent: QWidget | None = None, queueable: bool = True) -> None:
        super().__init__(parent)
        self.controller = controller
        self.kind = kind
        self.cls = experiment_class(kind)
        self.form = ParamForm(self.cls, overrides, only, station_config=lambda: controller.station_config)
        self.button = QPushButton(title)
        self.action: Callable[[], Any] = self.start
        self.button.clicked.connect(lambda: self.action())
        self.queue_button = QPushButton("Add to queue")
        self.queue_button.setToolTip("queue this run with these parameters (Queue tab)")
        self.queue_button.clicked.connect(lambda: controller.enqueue.emit(self))
        #: how a queued run of this panel starts (params already checked); tabs may draw around it
        self.queue_start: Callable[[dict[str, Any]], bool] = self.start_with
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status = QLabel(self.cls.title)
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.button, 1)
        if queueable:
            buttons.addWidget(self.queue_button)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._mine = False
        controller.progress.connect(self._on_progress)
        controller.run_finished.connect(self._on_finished)
        controller.run_failed.connect(self._on_failed)
        controller.busy_changed.connect(lambda _busy: self._update_button())
        controller.station_changed.connect(self.form.check)
        self.form.validity_changed.connect(lambda _ok: self._update_button())
        self.form.check()
        self._update_button()

    def set_action(self, action: Callable[[], Any]) -> None:
        """What the Run button does (one code path for the button, ``--screenshot`` and tests)."""
        self.action = action

    def click(self) -> Any:
        """Press the Run button (as a user does)."""
        return self.action()

    def _update_button(self) -> None:
        self.button.setEnabled(self.form.valid and not self.controller.busy)
        self.queue_button.setEnabled(self.form.valid)
        self.button.setToolTip("" if self.form.valid else "fix the parameters marked red first")

    def start(self, extra: dict[str, Any] | None = None) -> bool:
        params, problems = self.form.values()
        if problems:
            self.status.setText("Fix the parameters first:\n" + "\n".join(problems))
            return False
        params.update(extra or {})
        return self.start_with(params)

    def start_with(self, params: dict[str, Any]) -> bool:
        """Run with ``params`` (already resolved, e.g. a queued snapshot of the form)."""
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


def side_panel(*widgets: QWidget, width: int = 380) -> QScrollArea:
    """The controls column at the left of a tab: ``widgets`` stacked, ``width`` px wide, scrolling
    vertically when the window is short (the window fits a 1366×768 screen)."""
    column = QWidget()
    layout = QVBoxLayout(column)
    for w in widgets:
        layout.addWidget(w)
    layout.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(column)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setFixedWidth(width)
    column.setMaximumWidth(width - 14)  # room for the vertical scroll bar
    return scroll
