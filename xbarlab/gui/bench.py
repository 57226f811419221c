"""Bench tab: station file (file dialog, recent stations), connect/disconnect, instruments with identity and
state, safety limits."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from PyQt5.QtCore import QSettings, Qt
from PyQt5.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from xbarlab.errors import XbarlabError
from xbarlab.gui.controller import BenchController
from xbarlab.gui.widgets import ElidedLabel
from xbarlab.instruments.config import load_station
from xbarlab.instruments.station import embedded_station_path

RECENT = 8  # stations remembered
COLUMN_MAX = 300  # px; longer identities and addresses are elided (full text in the tooltip)
EMBEDDED = "(embedded simulated bench)"


class BenchTab(QWidget):
    def __init__(self, controller: BenchController, station: str | None, log_folder: str,
                 settings: QSettings | None = None) -> None:
        super().__init__()
        self.controller = controller
        self.settings = settings
        self.station_edit = QLineEdit(station or "")
        self.station_edit.setPlaceholderText("embedded simulated bench (leave empty) or a station .toml file")
        self.station_edit.editingFinished.connect(self._show_config)
        browse = QPushButton("Open station file...")
        browse.clicked.connect(self._browse_station)
        self.browse_button = browse
        self.recent = QComboBox()
        self.recent.setToolTip("recently connected stations")
        self.recent.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.recent.setMinimumContentsLength(26)
        self.recent.activated.connect(self._recent_chosen)
        self._fill_recent()
        self.log_edit = QLineEdit(log_folder)
        browse_log = QPushButton("Log folder...")
        browse_log.clicked.connect(self._browse_log)
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self._connect)
        self.disconnect_button = QPushButton("Disconnect")
        self.disconnect_button.clicked.connect(controller.disconnect_bench)
        self.refresh_button = QPushButton("Refresh output states")
        self.refresh_button.clicked.connect(self.refresh_states)
        self.state = ElidedLabel("not connected", mode=Qt.ElideMiddle)

        row1 = QHBoxLayout()
        row1.addWidget(QLabel("Station:"))
        row1.addWidget(self.station_edit, 1)
        row1.addWidget(browse)
        row1.addWidget(QLabel("Recent:"))
        row1.addWidget(self.recent)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Logs:"))
        row2.addWidget(self.log_edit, 1)
        row2.addWidget(browse_log)
        row3 = QHBoxLayout()
        for w in (self.connect_button, self.disconnect_button, self.refresh_button):
            row3.addWidget(w)
        row3.addWidget(self.state, 1)

        self.instruments = QTableWidget(0, 5)
        self.instruments.setHorizontalHeaderLabels(["name", "driver", "address", "identity", "state"])
        self.instruments.horizontalHeader().setStretchLastSection(True)
        self.instruments.setWordWrap(False)
        self.instruments.setTextElideMode(Qt.ElideMiddle)
        self.limits = QTableWidget(0, 2)
        self.limits.setHorizontalHeaderLabels(["instrument", "safety limits in force"])
        self.limits.horizontalHeader().setStretchLastSection(True)
        self.limits.setWordWrap(True)
        g1 = QGroupBox("Instruments")
        QVBoxLayout(g1).addWidget(self.instruments)
        g2 = QGroupBox("Safety limits (every command is checked against these before anything is sent)")
        QVBoxLayout(g2).addWidget(self.limits)

        layout = QVBoxLayout(self)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addLayout(row3)
        layout.addWidget(g1, 1)
        layout.addWidget(g2, 1)
        controller.connected.connect(self._on_connected)
        controller.disconnected.connect(self._on_disconnected)
        controller.busy_changed.connect(self._on_busy)
        controller.connect_failed.connect(self._on_connect_failed)
        self._show_config()

    def station_source(self) -> str | None:
        text = self.station_edit.text().strip()
        return text or None

    def recent_stations(self) -> list[str]:
        """Recently connected stations, newest first ("" is the embedded simulated bench)."""
        if self.settings is None:
            return []
        value = self.settings.value("recent_stations", []) or []
        return [str(v) for v in ([value] if isinstance(value, str) else value)][:RECENT]

    def remember_station(self) -> None:
        if self.settings is None:
            return
        src = self.station_source() or ""
        recent = [src] + [s for s in self.recent_stations() if s != src]
        self.settings.setValue("recent_stations", recent[:RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent.clear()
        for src in self.recent_stations():
            self.recent.addItem(Path(src).name if src else EMBEDDED, src)
            self.recent.setItemData(self.recent.count() - 1, src or EMBEDDED, Qt.ToolTipRole)

    def _recent_chosen(self, index: int) -> None:
        src = self.recent.itemData(index)
        if src is not None:
            self.station_edit.setText(str(src))
            self._show_config()

    def _browse_station(self) -> None:
        start = str(Path(self.station_source()).parent) if self.station_source() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Station file", start, "Station files (*.toml)")
        if path:
            self.station_edit.setText(path)
            self._show_config()

    def _browse_log(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Log folder", self.log_edit.text())
        if path:
            self.log_edit.setText(path)

    def _connect(self) -> None:
        if not self._show_config():
            return
        self.state.setText("connecting ...")
        self.controller.connect_bench(self.station_source(), self.log_edit.text() or str(Path.cwd()))

    def _show_config(self) -> bool:
        src = self.station_source()
        try:
            cfg = load_station(src or embedded_station_path("sim"))
        except XbarlabError as exc:
            self.state.setText(f"station file problem: {exc}")
            self.controller.set_station_config(None)
            return False
        if self.controller.session is None:
            self.controller.set_station_config(cfg)
        self.instruments.setRowCount(len(cfg.instruments))
        self.limits.setRowCount(len(cfg.instruments))
        for k, inst in enumerate(cfg.instruments.values()):
            addr = inst.address + (f" (channel {inst.channel})" if inst.channel else "")
            for c, text in enumerate([inst.name, inst.driver, addr, "", "not connected"]):
                self.instruments.setItem(k, c, _item(text))
            limits = ", ".join(f"{key} = {val:g}" for key, val in asdict(inst.limits).items())
            self.limits.setItem(k, 0, QTableWidgetItem(inst.name))
            self.limits.setItem(k, 1, QTableWidgetItem(limits))
        self._fit_columns()
        self.limits.resizeColumnToContents(0)  # the limits column stretches and wraps
        self.limits.resizeRowsToContents()
        return True

    def _on_connected(self, identities: dict) -> None:
        self.state.setText(f"connected; logging to {self.controller.log_path}")
        for k in range(self.instruments.rowCount()):
            name = self.instruments.item(k, 0).text()
            self.instruments.setItem(k, 3, _item(identities.get(name, "")))
            self.instruments.setItem(k, 4, _item("connected"))
        self._fit_columns()
        self.refresh_states()

    def _fit_columns(self) -> None:
        """Columns fit their contents up to COLUMN_MAX px (elided beyond; the full text is the tooltip)."""
        self.instruments.resizeColumnsToContents()
        for c in range(self.instruments.columnCount() - 1):
            self.instruments.setColumnWidth(c, min(self.instruments.columnWidth(c), COLUMN_MAX))

    def _on_connect_failed(self, message: str) -> None:
        self.state.setText(f"connect failed: {message.splitlines()[0] if message else 'unknown error'}")
        self.state.setToolTip(message)
        for k in range(self.instruments.rowCount()):
            self.instruments.setItem(k, 3, _item(""))
            self.instruments.setItem(k, 4, _item("not connected"))

    def _on_disconnected(self) -> None:
        self.state.setText("disconnected: outputs off, log closed")
        for k in range(self.instruments.rowCount()):
            self.instruments.setItem(k, 4, _item("not connected"))
        self._show_config()

    def _on_busy(self, busy: bool) -> None:
        self.connect_button.setEnabled(not busy)
        self.refresh_button.setEnabled(not busy)
        if not busy:
            self.refresh_states()

    def refresh_states(self) -> None:
        """SMU output states (queried only while no experiment runs)."""
        session = self.controller.session
        if session is None or self.controller.busy:
            return
        for k in range(self.instruments.rowCount()):
            name = self.instruments.item(k, 0).text()
            smu = session.station.smus.get(name)
            if smu is None:
                if session.station.board is not None and name == session.station.board.name:
                    self.instruments.setItem(k, 4, _item("connected"))
                continue
            try:
                state = "output ON" if smu.output_enabled() else "output off"
            except XbarlabError as exc:
                state = f"error: {exc}"
            self.instruments.setItem(k, 4, _item(state))


def _item(text: str) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setToolTip(text)
    return item
