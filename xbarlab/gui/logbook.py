"""Logbook tab: open a log (also while it is being written), list runs, plot any stream, replay offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PyQt5.QtCore import QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from xbarlab.errors import XbarlabError
from xbarlab.gui.controller import BenchController, JobThread
from xbarlab.gui.plots import Heatmap, pen, plot_widget
from xbarlab.logbook import LogReader
from xbarlab.logbook.replay import replay


class LogbookTab(QWidget):
    replay_progress = pyqtSignal(int, int, str)  # done, total, message (emitted from the replay thread)

    def __init__(self, controller: BenchController, folder: str = "") -> None:
        super().__init__()
        self.controller = controller
        self.folder = folder
        self.path: Path | None = None
        self.reader: LogReader | None = None
        open_button = QPushButton("Open log...")
        open_button.clicked.connect(self._browse)
        current = QPushButton("This session's log")
        current.clicked.connect(lambda: self.open(self.controller.log_path) if self.controller.log_path else None)
        self.watch = QCheckBox("follow (refresh every 2 s)")
        self.watch.setChecked(True)
        self.replay_button = QPushButton("Replay selected run offline")
        self.replay_button.clicked.connect(self.replay_selected)
        self.replay_bar = QProgressBar()
        self.replay_bar.setRange(0, 1)
        self.label = QLabel("no log open")
        self.runs = QTableWidget(0, 5)
        self.runs.setHorizontalHeaderLabels(["run", "kind", "status", "started (UTC)", "steps"])
        self.runs.horizontalHeader().setStretchLastSection(True)
        self.runs.itemSelectionChanged.connect(self._selected)
        self.meta = QTextEdit()
        self.meta.setReadOnly(True)
        self.stream_choice = QComboBox()
        self.stream_choice.currentIndexChanged.connect(self._plot_stream)
        self.plot = plot_widget("Stream", "row", "")
        self.image = Heatmap("Stream (last row)", "value")
        self.image.hide()

        top = QHBoxLayout()
        for w in (open_button, current, self.watch, self.replay_button):
            top.addWidget(w)
        top.addWidget(self.replay_bar)
        top.addWidget(self.label, 1)
        right = QVBoxLayout()
        right.addWidget(self.stream_choice)
        right.addWidget(self.plot, 1)
        right.addWidget(self.image, 1)
        grid = QGridLayout(self)
        grid.addLayout(top, 0, 0, 1, 2)
        grid.addWidget(self.runs, 1, 0)
        grid.addWidget(self.meta, 2, 0)
        grid.addLayout(right, 1, 1, 2, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(2000)
        self._replay_thread: JobThread | None = None
        self.last_report: Any = None
        self.replay_progress.connect(self._on_replay_progress)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open log", self.folder, "xbarlab logs (*.h5)")
        if path:
            self.open(path)

    def open(self, path: str | Path) -> bool:
        try:
            self.reader = LogReader(path)
        except XbarlabError as exc:
            self.label.setText(str(exc))
            return False
        self.path = Path(path)
        self.refresh(force=True)
        return True

    def refresh(self, force: bool = False) -> None:
        if self.reader is None or not (force or (self.watch.isChecked() and self.isVisible())):
            return
        try:
            runs = self.reader.runs()
        except XbarlabError as exc:
            self.label.setText(str(exc))
            return
        selected = self.selected_run()
        self.runs.blockSignals(True)
        self.runs.setRowCount(len(runs))
        for k, r in enumerate(runs):
            for c, text in enumerate([r["run_id"], r["kind"], r["status"], r["start_time"][:19], str(r["steps"])]):
                self.runs.setItem(k, c, QTableWidgetItem(text))
            if r["run_id"] == selected:
                self.runs.selectRow(k)
        self.runs.blockSignals(False)
        self.runs.resizeColumnsToContents()
        self.label.setText(f"{self.path}: {len(runs)} runs")

    def selected_run(self) -> str | None:
        rows = self.runs.selectionModel().selectedRows() if self.runs.selectionModel() else []
        if not rows:
            return None
        item = self.runs.item(rows[0].row(), 0)
        return item.text() if item else None

    def select_run(self, run_id: str) -> bool:
        for k in range(self.runs.rowCount()):
            if self.runs.item(k, 0).text() == run_id:
                self.runs.selectRow(k)
                return True
        return False

    def _selected(self) -> None:
        rid = self.selected_run()
        if rid is None or self.reader is None:
            return
        info = self.reader.run(rid)
        lines = [f"run {rid} [{info['kind']}] {info['status']}",
                 f"started {info['start_time']}  ended {info['end_time'] or '-'}",
                 f"software {info['software_version']}", "parameters:"]
        lines += [f"  {k} = {v}" for k, v in info["params"].items()]
        lines += ["instruments:"] + [f"  {k}: {v}" for k, v in info["instruments"].items()]
        if info["calibrations_used"]:
            lines.append("calibrations used: " + ", ".join(info["calibrations_used"]))
        if info["error"]:
            lines.append(f"error: {info['error']}")
        self.meta.setPlainText("\n".join(lines))
        self.stream_choice.blockSignals(True)
        self.stream_choice.clear()
        self.stream_choice.addItems(self.reader.stream_names(rid))
        self.stream_choice.blockSignals(False)
        self._plot_stream()

    def _plot_stream(self) -> None:
        rid, name = self.selected_run(), self.stream_choice.currentText()
        if self.reader is None or rid is None or not name:
            return
        s = self.reader.stream(rid, name)
        self.plot.clear()
        data = s.data
        if data.ndim >= 3 or (data.ndim == 2 and not s.columns and data.shape[1] > 16):
            self.plot.hide()
            self.image.show()
            self.image.plot.setTitle(f"{name} (last of {len(data)} rows)")
            self.image.set_units(str(s.units))
            self.image.set_data(data[-1] if data.ndim >= 3 else data)
            return
        self.image.hide()
        self.plot.show()
        self.plot.setTitle(f"{name}")
        if data.ndim == 1:
            self.plot.plot(np.arange(len(data)), data, pen=pen(0), name=f"{name} [{s.units}]")
            return
        cols = s.columns or [str(j) for j in range(data.shape[1])]
        units = s.units if isinstance(s.units, list) else [s.units] * len(cols)
        x = data[:, 0] if len(cols) > 1 else np.arange(len(data))
        self.plot.setLabel("bottom", f"{cols[0]} [{units[0]}]" if len(cols) > 1 else "row")
        for j in range(1 if len(cols) > 1 else 0, len(cols)):
            self.plot.plot(x, data[:, j], pen=pen(j), symbol="o", symbolSize=4, name=f"{cols[j]} [{units[j]}]")

    def replay_selected(self) -> bool:
        if self.path is None:
            self.label.setText("open a log first")
            return False
        rid = self.selected_run()
        path = self.path
        self.replay_bar.setRange(0, 0)

        def job() -> Any:
            return replay(path, rid, progress=lambda p: self.replay_progress.emit(p.done, p.total, p.message))

        thread = JobThread(job, self)
        thread.done.connect(self._replayed)
        thread.failed.connect(lambda msg, _a: self._replay_failed(msg))
        self._replay_thread = thread
        self.label.setText(f"replaying {rid or 'every run'} from the transcript ...")
        thread.start()
        return True

    def _on_replay_progress(self, done: int, total: int, message: str) -> None:
        self.replay_bar.setRange(0, max(total, 1))
        self.replay_bar.setValue(done)
        self.label.setText(message)

    def _replayed(self, report: Any) -> None:
        self.last_report = report
        self.replay_bar.setRange(0, 1)
        self.replay_bar.setValue(1)
        self.meta.setPlainText(report.text() + "\n\nevery recorded stream reproduced bit for bit")
        self.label.setText("replay: reproduced bit for bit")

    def _replay_failed(self, message: str) -> None:
        self.replay_bar.setRange(0, 1)
        self.replay_bar.setValue(0)
        self.meta.setPlainText(f"replay stopped:\n{message}")
        self.label.setText("replay diverged (see details)")
