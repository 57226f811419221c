"""Queue tab: runs added from any tab ("Add to queue", parameters as they were then) run one after another.

Abort stops the current run at its safe point (outputs off) and asks whether to go on with the rest;
a failed run stops the queue (the rest stay queued). Every run is logged like a run started by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from xbarlab.gui.controller import BenchController
from xbarlab.gui.panel import RunPanel


@dataclass
class QueuedRun:
    panel: RunPanel
    params: dict[str, Any]
    status: str = "queued"
    run_id: str = ""
    changed: dict[str, Any] = field(default_factory=dict)  # parameters that differ from the defaults

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.changed.items()) or "defaults"


class QueueTab(QWidget):
    def __init__(self, controller: BenchController, confirm: Callable[[str], bool]) -> None:
        super().__init__()
        self.controller = controller
        self.confirm = confirm
        self.entries: list[QueuedRun] = []
        self.current: QueuedRun | None = None
        self.active = False
        self._ready = False
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["experiment", "parameters (changed from defaults)", "status", "run"])
        header = self.table.horizontalHeader()
        for c, mode in enumerate((QHeaderView.ResizeToContents, QHeaderView.Stretch, QHeaderView.ResizeToContents,
                                  QHeaderView.ResizeToContents)):
            header.setSectionResizeMode(c, mode)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.start_button = QPushButton("Start queue")
        self.start_button.clicked.connect(self.start)
        self.remove_button = QPushButton("Remove selected")
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.clicked.connect(self.clear_finished)
        self.state = QLabel("Add runs with \"Add to queue\" on any tab; they run one after another. "
                            "Abort stops the current run and asks about the rest.")
        self.state.setWordWrap(True)
        buttons = QHBoxLayout()
        for w in (self.start_button, self.remove_button, self.clear_button):
            buttons.addWidget(w)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.state)
        layout.addWidget(self.table, 1)
        controller.enqueue.connect(self.add)
        controller.run_finished.connect(self._finished)
        controller.run_failed.connect(self._failed)
        controller.busy_changed.connect(lambda busy: None if busy else self._advance())

    # -- editing the queue ---------------------------------------------------------------------------
    def add(self, panel: RunPanel) -> bool:
        """Queue ``panel``'s experiment with the form's current (checked) parameters."""
        params, problems = panel.form.values()
        if problems:
            self.state.setText(f"not queued: fix {panel.kind}'s parameters first: {problems[0]}")
            return False
        defaults = {p.name: p.default for p in panel.cls.params_spec}
        changed = {k: v for k, v in params.items() if v != defaults.get(k)}
        self.entries.append(QueuedRun(panel, dict(params), changed=changed))
        self.state.setText(f"queued {panel.kind} ({len(self.pending())} waiting)")
        self._show()
        return True

    def pending(self) -> list[QueuedRun]:
        return [e for e in self.entries if e.status == "queued"]

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        for r in rows:
            if self.entries[r] is not self.current:
                del self.entries[r]
        self._show()

    def clear_finished(self) -> None:
        self.entries = [e for e in self.entries if e.status in ("queued", "running")]
        self._show()

    # -- running -------------------------------------------------------------------------------------
    def start(self) -> bool:
        if not self.pending():
            self.state.setText("the queue is empty")
            return False
        if self.controller.session is None:
            self.state.setText("connect a station first (Bench tab)")
            return False
        self.active = True
        self._ready = True
        self._advance()
        return True

    def _advance(self) -> None:
        if not (self.active and self._ready) or self.controller.busy:
            return
        waiting = self.pending()
        if not waiting:
            self.active = False
            self.state.setText("queue finished")
            self._show()
            return
        entry = waiting[0]
        self._ready = False
        self.current = entry
        entry.status = "running"
        if not entry.panel.queue_start(dict(entry.params)):
            entry.status = "queued"
            self.current = None
            self.active = False
            self.state.setText("queue stopped: the run could not start (see the status bar)")
        else:
            entry.run_id = self.controller.current_run_id or ""
            self.state.setText(f"running {entry.panel.kind} ({len(self.pending())} more queued)")
        self._show()

    def _finished(self, _kind: str, _result: Any, run_id: str) -> None:
        entry = self.current
        if entry is None or run_id != entry.run_id:
            return
        entry.status = "completed"
        self.current = None
        self._ready = True
        self._show()
        QTimer.singleShot(0, self._advance)

    def _failed(self, _kind: str, message: str, aborted: bool) -> None:
        entry = self.current
        if entry is None or self.controller.current_run_id != entry.run_id:
            return
        entry.status = "aborted" if aborted else "failed"
        self.current = None
        rest = len(self.pending())
        if aborted and rest and self.confirm(f"The queued run was aborted. Run the {rest} remaining queued "
                                             f"run(s)?"):
            self._ready = True
            QTimer.singleShot(0, self._advance)
        else:
            self.active = False
            why = "aborted" if aborted else f"failed: {message.splitlines()[0] if message else ''}"
            self.state.setText(f"queue stopped ({entry.panel.kind} {why}); {rest} run(s) still queued")
        self._show()

    def _show(self) -> None:
        self.table.setRowCount(len(self.entries))
        for k, e in enumerate(self.entries):
            for c, text in enumerate((e.panel.kind, e.describe(), e.status, e.run_id)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(k, c, item)
        self.start_button.setEnabled(bool(self.pending()) and not self.active)
