"""Logbook tab: open a log (also while a campaign is writing it: followed live), list runs, plot any stream
with a column picker and a second y axis, compare a run with another, export, replay offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
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
from xbarlab.gui.plots import PALETTE, Heatmap, label_axis, plot_widget, with_export
from xbarlab.gui.widgets import ElidedLabel
from xbarlab.logbook import LogReader
from xbarlab.logbook.replay import replay
from xbarlab.runs.step import PlotSpec, declared_plot


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
        self.open_button, self.current_button = open_button, current
        self.watch = QCheckBox("follow (refresh every 2 s)")
        self.watch.setChecked(True)
        self.replay_button = QPushButton("Replay selected run offline")
        self.replay_button.clicked.connect(self.replay_selected)
        self.replay_bar = QProgressBar()
        self.replay_bar.setRange(0, 1)
        self.label = ElidedLabel("no log open")
        self.runs = QTableWidget(0, 5)
        self.runs.setHorizontalHeaderLabels(["run", "kind", "status", "started (UTC)", "steps"])
        self.runs.horizontalHeader().setStretchLastSection(True)
        self.runs.itemSelectionChanged.connect(self._selected)
        self.meta = QTextEdit()
        self.meta.setReadOnly(True)
        self.stream_choice = QComboBox()
        self.stream_choice.currentIndexChanged.connect(self._plot_stream)
        self.compare_choice = QComboBox()
        self.compare_choice.setToolTip("overlay the same stream of another run (dashed)")
        self.compare_choice.currentIndexChanged.connect(lambda _i: self._draw())
        self.plot = plot_widget("Stream", "row number", "")
        pi = self.plot.getPlotItem()
        self.right_vb = pg.ViewBox()  # the second y axis
        pi.scene().addItem(self.right_vb)
        pi.getAxis("right").linkToView(self.right_vb)
        self.right_vb.setXLink(pi)
        pi.vb.sigResized.connect(lambda: self.right_vb.setGeometry(pi.vb.sceneBoundingRect()))
        self.image = Heatmap("Stream (last row)", "value")
        self.x_choice = QComboBox()
        self.x_choice.setToolTip("x axis: a column or the row number")
        self.x_choice.currentIndexChanged.connect(lambda _i: self._draw())
        self.y_list = QListWidget()
        self.y_list.setToolTip("columns on the left axis")
        self.y_list.setMaximumHeight(90)
        self.y_list.itemChanged.connect(lambda _item: self._draw())
        self.right_choice = QComboBox()
        for combo in (self.x_choice, self.right_choice):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.right_choice.setToolTip("one column on the right axis (its own scale)")
        self.right_choice.currentIndexChanged.connect(lambda _i: self._draw())
        self._columns_key: tuple[Any, ...] | None = None
        self.columns_box = QWidget()
        picker = QGridLayout(self.columns_box)
        picker.setContentsMargins(0, 0, 0, 0)
        picker.addWidget(QLabel("x:"), 0, 0)
        picker.addWidget(self.x_choice, 0, 1)
        picker.addWidget(QLabel("right axis:"), 1, 0)
        picker.addWidget(self.right_choice, 1, 1)
        picker.addWidget(QLabel("left axis:"), 0, 2)
        picker.addWidget(self.y_list, 0, 3, 2, 1)
        picker.setColumnStretch(3, 1)

        top = QHBoxLayout()
        for w in (open_button, current, self.watch, self.replay_button):
            top.addWidget(w)
        top.addWidget(self.replay_bar)
        top.addWidget(self.label, 1)
        right = QVBoxLayout()
        choose = QHBoxLayout()
        choose.addWidget(QLabel("stream:"))
        choose.addWidget(self.stream_choice, 1)
        choose.addWidget(QLabel("compare with:"))
        choose.addWidget(self.compare_choice, 1)
        right.addLayout(choose)
        right.addWidget(self.columns_box)
        self.plot_box = with_export(self.plot, "logbook stream")
        self.image_box = with_export(self.image, "logbook frame")
        self.image_box.hide()
        self.showing_image = False
        right.addWidget(self.plot_box, 1)
        right.addWidget(self.image_box, 1)
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
        self._selected_steps = -1
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
        self._fill_compare(runs)
        running = [r for r in runs if r["status"] == "running"]
        live = (f"; {running[-1]['run_id']} running: {running[-1]['steps']} steps committed" if running else "")
        self.label.setText(f"{self.path}: {len(runs)} runs{live}")
        info = next((r for r in runs if r["run_id"] == selected), None)
        if info is not None and (info["status"] == "running" or info["steps"] != self._selected_steps):
            self._selected_steps = info["steps"]  # the selected run is being written: follow it
            self._refresh_streams(selected)

    def _fill_compare(self, runs: list[dict[str, Any]]) -> None:
        ids = [r["run_id"] for r in runs]
        if ids == [self.compare_choice.itemData(k) for k in range(1, self.compare_choice.count())]:
            return
        current = self.compare_choice.currentData()
        self.compare_choice.blockSignals(True)
        self.compare_choice.clear()
        self.compare_choice.addItem("no other run", None)
        for r in runs:
            self.compare_choice.addItem(f"{r['run_id']} ({r['kind']}, {r['status']})", r["run_id"])
        self.compare_choice.setCurrentIndex(max(self.compare_choice.findData(current), 0))
        self.compare_choice.blockSignals(False)

    def compare_with(self, run_id: str | None) -> bool:
        """Overlay the same stream of ``run_id`` (dashed); None: no comparison."""
        index = self.compare_choice.findData(run_id) if run_id else 0
        if index < 0:
            return False
        self.compare_choice.setCurrentIndex(index)
        self._draw()
        return True

    def _refresh_streams(self, rid: str | None) -> None:
        if rid is None or self.reader is None:
            return
        names = self._stream_names(rid)
        current = self.stream_choice.currentText()
        if names != [self.stream_choice.itemText(k) for k in range(self.stream_choice.count())]:
            self.stream_choice.blockSignals(True)
            self.stream_choice.clear()
            self.stream_choice.addItems(names)
            if current in names:
                self.stream_choice.setCurrentText(current)
            self.stream_choice.blockSignals(False)
        self._plot_stream()

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
        self._selected_steps = info["steps"]
        self.stream_choice.blockSignals(True)
        self.stream_choice.clear()
        self.stream_choice.addItems(self._stream_names(rid))
        self.stream_choice.blockSignals(False)
        self._plot_stream()

    def _plot_stream(self) -> None:
        """Plot the chosen stream: an image for 2-D frames, else the picked columns (left axis), one column on
        the right axis, and the same stream of a second run to compare (dashed)."""
        rid, name = self.selected_run(), self.stream_choice.currentText()
        if self.reader is None or rid is None or not name:
            return
        try:
            s = self.reader.stream(rid, name)
        except XbarlabError as exc:
            self.label.setText(str(exc))
            return
        data = s.data
        if data.ndim >= 3 or (data.ndim == 2 and not s.columns and data.shape[1] > 16):
            self._clear_plot()
            self.showing_image = True
            self.plot_box.hide()
            self.columns_box.hide()
            self.image_box.show()
            self.image.plot.setTitle(f"{name} (last of {len(data)} rows)")
            self.image.set_units(name, _si(str(s.units)))
            if len(data):
                self.image.set_data(data[-1] if data.ndim >= 3 else data)
            return
        self.showing_image = False
        self.image_box.hide()
        self.plot_box.show()
        self.columns_box.show()
        self._set_columns(s, declared_plot(self.reader.run(rid)["kind"], name))
        self._draw()

    def _columns_of(self, s: Any) -> tuple[list[str], list[str]]:
        data = s.data
        width = 1 if data.ndim == 1 else data.shape[1]
        cols = list(s.columns) if s.columns else ([s.name] if width == 1 else [str(j) for j in range(width)])
        units = s.units if isinstance(s.units, list) else [s.units] * len(cols)
        return cols, [str(u) for u in units]

    def _set_columns(self, s: Any, spec: PlotSpec | None = None) -> None:
        """Offer the stream's columns: x (or row number), y columns to tick, one for the right axis.

        Default: the step's declared plot of this stream (``Experiment.plots``); a stream without one (a
        step type this xbarlab does not know) shows the first column as x and every other column."""
        cols, _units = self._columns_of(s)
        key = (s.name, tuple(cols), spec)
        if key == self._columns_key:
            return
        self._columns_key = key
        if spec is not None and spec.x in cols and all(y in cols for y in spec.y):
            x_default, same, other = cols.index(spec.x), [cols.index(y) for y in spec.y], []
        else:  # x = the first column; ticked = the columns on the scale of the first y column (within 100×),
            # the first column far off that scale on the right axis
            data = s.data.reshape(len(s.data), -1) if s.data.ndim == 1 else s.data
            x_default = 0 if len(cols) > 1 else -1
            ys = [j for j in range(len(cols)) if j != x_default]
            scale = [float(np.nanmax(np.abs(data[:, j]))) if len(data) else 0.0 for j in range(len(cols))]
            ref = scale[ys[0]] if ys else 0.0
            same = [j for j in ys if ref == 0 or 0.01 <= (scale[j] or ref) / ref <= 100]
            other = [j for j in ys if j not in same]
        for w in (self.x_choice, self.right_choice, self.y_list):
            w.blockSignals(True)
        self.x_choice.clear()
        self.x_choice.addItem("row number", -1)
        for j, c in enumerate(cols):
            self.x_choice.addItem(c, j)
        self.x_choice.setCurrentIndex(self.x_choice.findData(x_default))
        self.y_list.clear()
        for j, c in enumerate(cols):
            item = QListWidgetItem(c)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if j in same else Qt.Unchecked)
            item.setData(Qt.UserRole, j)
            self.y_list.addItem(item)
        self.right_choice.clear()
        self.right_choice.addItem("none", -1)
        for j, c in enumerate(cols):
            self.right_choice.addItem(c, j)
        self.right_choice.setCurrentIndex(self.right_choice.findData(other[0] if other else -1))
        for w in (self.x_choice, self.right_choice, self.y_list):
            w.blockSignals(False)

    def picked_columns(self) -> tuple[int, list[int], int]:
        """(x column or -1 for the row number, left-axis columns, right-axis column or -1)."""
        left = [int(self.y_list.item(k).data(Qt.UserRole)) for k in range(self.y_list.count())
                if self.y_list.item(k).checkState() == Qt.Checked]
        return int(self.x_choice.currentData() if self.x_choice.currentData() is not None else -1), left, int(
            self.right_choice.currentData() if self.right_choice.currentData() is not None else -1)

    def pick(self, left: list[str], right: str | None = None, x: str | None = None) -> None:
        """Choose the plotted columns by name (as ticking them in the picker does)."""
        self.y_list.blockSignals(True)
        for k in range(self.y_list.count()):
            item = self.y_list.item(k)
            item.setCheckState(Qt.Checked if item.text() in left else Qt.Unchecked)
        self.y_list.blockSignals(False)
        if x is not None:
            self.x_choice.setCurrentIndex(max(self.x_choice.findText(x), 0))
        self.right_choice.setCurrentIndex(max(self.right_choice.findText(right), 0) if right else 0)
        self._draw()

    def _clear_plot(self) -> None:
        self.plot.clear()
        for item in list(self.right_vb.addedItems):
            self.right_vb.removeItem(item)
        legend = self.plot.getPlotItem().legend
        if legend is not None:
            legend.clear()

    def _draw(self) -> None:
        rid, name = self.selected_run(), self.stream_choice.currentText()
        if self.reader is None or rid is None or not name or self.showing_image:
            return
        runs = [(rid, 0)]
        other = self.compare_choice.currentData()
        if other and other != rid and name in self._stream_names(other):
            runs.append((other, 1))
        self._clear_plot()
        pi = self.plot.getPlotItem()
        x_col, left, right = self.picked_columns()
        for run, style in runs:
            s = self.reader.stream(run, name)
            cols, units = self._columns_of(s)
            data = s.data.reshape(len(s.data), -1) if s.data.ndim == 1 else s.data
            if data.shape[1] != len(cols):
                continue
            x = data[:, x_col] if 0 <= x_col < len(cols) else np.arange(len(data), dtype=float)
            tag = "" if len(runs) == 1 else f"{run}: "
            dash = {"style": Qt.DashLine} if style else {}
            for j in left:
                pi.plot(x, data[:, j], pen=pg.mkPen(PALETTE[j % len(PALETTE)], width=2, **dash), symbol="o",
                        symbolSize=4, symbolBrush=PALETTE[j % len(PALETTE)], name=f"{tag}{cols[j]}{_u(units[j])}")
            if 0 <= right < len(cols):
                item = pg.PlotDataItem(x, data[:, right], pen=pg.mkPen("#444444", width=2,
                                                                         **({"style": Qt.DashLine} if style else {})),
                                       symbol="s", symbolSize=4, symbolBrush="#444444")
                self.right_vb.addItem(item)
                if pi.legend is not None:
                    pi.legend.addItem(item, f"{tag}{cols[right]}{_u(units[right])} (right axis)")
        s = self.reader.stream(rid, name)
        cols, units = self._columns_of(s)
        spec = declared_plot(self.reader.run(rid)["kind"], name)
        title = f"{name}: {spec.title}" if spec is not None and spec.title else name
        self.plot.setTitle(title if len(runs) == 1 else f"{title}: {rid} (solid) vs. {runs[1][0]} (dashed)")
        declared_x = spec is not None and 0 <= x_col < len(cols) and cols[x_col] == spec.x
        pi.setLogMode(x=bool(declared_x and spec.log_x and len(s.data) and np.all(s.data[:, x_col] > 0)), y=False)
        if 0 <= x_col < len(cols):
            label_axis(pi, "bottom", cols[x_col], _si(units[x_col]))
        else:
            label_axis(pi, "bottom", "row number")
        shared = {units[j] for j in left}
        label_axis(pi, "left", ", ".join(cols[j] for j in left) or "-",
                   _si(shared.pop()) if len(shared) == 1 else None)
        if 0 <= right < len(cols):
            pi.showAxis("right")
            label_axis(pi, "right", cols[right], _si(units[right]))
            self.right_vb.enableAutoRange()
        else:
            pi.hideAxis("right")

    def _stream_names(self, run_id: str) -> list[str]:
        try:
            return self.reader.stream_names(run_id) if self.reader is not None else []
        except XbarlabError:
            return []

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


def _u(units: str) -> str:
    return f" [{units}]" if units and units != "1" else ""


def _si(units: str) -> str | None:
    """Units an axis may prefix (V, A, S, s, Ω); dimensionless or other units: None."""
    return units if units in ("V", "A", "S", "s", "Ω", "W", "Hz") else None
