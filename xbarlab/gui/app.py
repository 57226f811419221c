"""The main window: tabs, an always-visible Abort (Esc), a status bar; settings persist with QSettings."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QSettings, Qt, QTimer
from PyQt5.QtGui import QCloseEvent, QKeySequence
from PyQt5.QtWidgets import QLabel, QMainWindow, QMenu, QMessageBox, QPushButton, QShortcut, QTabWidget, QToolBar

from xbarlab import __version__
from xbarlab.gui.array import ArrayTab
from xbarlab.gui.bench import BenchTab
from xbarlab.gui.calibration import CalibrationTab
from xbarlab.gui.controller import BenchController
from xbarlab.gui.logbook import LogbookTab
from xbarlab.gui.mvm import MvmTab
from xbarlab.gui.one_step import OneStepTab
from xbarlab.gui.queue import QueueTab
from xbarlab.gui.solve import SolveTab
from xbarlab.gui.training import TrainingTab
from xbarlab.gui.widgets import ElidedLabel

TABS = ("bench", "array", "calibration", "mvm", "solve", "onestep", "training", "logbook", "queue")
_LABELS = {"mvm": "MVM", "onestep": "One-step"}


class MainWindow(QMainWindow):
    def __init__(self, station: str | None = None, log_folder: str | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("xbarlab", "xbarlab-gui")
        self.setWindowTitle(f"xbarlab {__version__} — crossbar lab")
        station = station if station is not None else (self.settings.value("station", "") or None)
        default_logs = str(Path(tempfile.gettempdir()) / "xbarlab-logs")
        folder = log_folder or str(self.settings.value("log_folder", default_logs))
        self.controller = BenchController(self)

        self.tabs = QTabWidget()
        self.bench = BenchTab(self.controller, station, folder, self.settings)
        self.array = ArrayTab(self.controller)
        self.calibration = CalibrationTab(self.controller)
        self.mvm = MvmTab(self.controller)
        self.solve = SolveTab(self.controller)
        self.onestep = OneStepTab(self.controller)
        self.training = TrainingTab(self.controller)
        self.logbook = LogbookTab(self.controller, folder)
        self.queue = QueueTab(self.controller, lambda text: self.confirm(text))
        for name, tab in zip(TABS, (self.bench, self.array, self.calibration, self.mvm, self.solve, self.onestep,
                                    self.training, self.logbook, self.queue), strict=True):
            self.tabs.addTab(tab, _LABELS.get(name, name.capitalize()))
        self.setCentralWidget(self.tabs)

        # the Abort bar cannot be hidden, moved or floated (no toolbar context menu: createPopupMenu)
        bar = QToolBar("Safety")
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.toggleViewAction().setEnabled(False)
        bar.toggleViewAction().setVisible(False)
        bar.setContextMenuPolicy(Qt.PreventContextMenu)
        self.abort_button = QPushButton("ABORT — outputs off   [Esc]")
        self.abort_button.setToolTip("stop the running experiment at its next safe point, every output off (Esc)")
        self.abort_button.setStyleSheet("QPushButton { background: #c62828; color: white; font-weight: bold; "
                                        "padding: 6px 18px; }")
        self.abort_button.clicked.connect(self.controller.abort)
        bar.addWidget(self.abort_button)
        self.addToolBar(Qt.TopToolBarArea, bar)
        self.safety_bar = bar
        self.abort_shortcut = QShortcut(QKeySequence(Qt.Key_Escape), self)
        self.abort_shortcut.setContext(Qt.WindowShortcut)  # not while a dialog of its own has the keyboard
        self.abort_shortcut.activated.connect(self.controller.abort)

        self.conn_label = QLabel("not connected")
        self.clock_label = QLabel("sim clock: -")
        self.log_label = ElidedLabel("log: -", min_width=380)
        self.log_label.setFixedWidth(380)  # a long log path is elided in the middle, never widens the window
        self.msg_label = ElidedLabel("", mode=Qt.ElideRight)
        sb = self.statusBar()
        for w in (self.conn_label, self.clock_label, self.log_label):
            sb.addPermanentWidget(w)
        sb.addWidget(self.msg_label, 1)

        c = self.controller
        c.connected.connect(self._on_connected)
        c.disconnected.connect(self._on_disconnected)
        c.message.connect(self.msg_label.setText)
        c.progress.connect(lambda _k, _p: self._update_clock())
        c.busy_changed.connect(self._on_busy)
        c.run_failed.connect(lambda kind, msg, aborted: self.msg_label.setText(
            f"{kind} {'aborted at a safe point (outputs off)' if aborted else 'failed: ' + msg.splitlines()[0]}"))
        c.connect_failed.connect(lambda _msg: self._on_disconnected())
        c.run_finished.connect(lambda kind, _r, rid: self.msg_label.setText(f"{kind} completed (run {rid})"))
        self.tabs.currentChanged.connect(lambda i: self.settings.setValue("tab", i))
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 720)
        self.tabs.setCurrentIndex(int(self.settings.value("tab", 0) or 0))
        self.clock = QTimer(self)
        self.clock.timeout.connect(self._update_clock)
        self.clock.start(500)

    # -- connection --------------------------------------------------------------------------------
    def connect_bench(self) -> None:
        self.bench._connect()

    def _on_connected(self, identities: dict) -> None:
        self.conn_label.setText(f"connected: {len(identities)} instruments")
        self.log_label.setText(f"log: {self.controller.log_path}")
        self.settings.setValue("station", self.bench.station_source() or "")
        self.bench.remember_station()
        self.settings.setValue("log_folder", self.bench.log_edit.text())
        if self.controller.log_path is not None:
            self.logbook.open(self.controller.log_path)

    def _on_disconnected(self) -> None:
        self.conn_label.setText("not connected")
        self.log_label.setText("log: -")

    def _on_busy(self, busy: bool) -> None:
        self.conn_label.setText(("running ... " if busy else "") + (
            "connected" if self.controller.session is not None else "not connected"))
        self._update_clock()

    def _update_clock(self) -> None:
        t = self.controller.sim_time()
        self.clock_label.setText("sim clock: -" if t is None else f"sim clock: {t:.4f} s")

    # -- closing -------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        """A running experiment is aborted at a safe point, outputs go off and the log is closed."""
        self.settings.setValue("geometry", self.saveGeometry())
        self.controller.shutdown()
        event.accept()

    def createPopupMenu(self) -> QMenu | None:  # noqa: N802 - Qt override
        """No toolbar context menu: the Abort bar must not be hidden."""
        return None

    def confirm(self, text: str) -> bool:
        return QMessageBox.question(self, "xbarlab", text) == QMessageBox.Yes

    def tab(self, name: str) -> Any:
        if name not in TABS:
            raise ValueError(f"unknown tab {name!r}; expected one of {', '.join(TABS)}")
        return getattr(self, name)
