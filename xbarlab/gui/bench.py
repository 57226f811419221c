"""Bench tab: station file, connect/disconnect, instruments with identity and state, safety limits."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from PyQt5.QtWidgets import (
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
from xbarlab.instruments.config import load_station
from xbarlab.instruments.station import embedded_station_path


class BenchTab(QWidget):
    def __init__(self, controller: BenchController, station: str | None, log_folder: str) -> None:
        super().__init__()
        self.controller = controller
        self.station_edit = QLineEdit(station or "")
        self.station_edit.setPlaceholderText("embedded simulated bench (leave empty) or a station .toml file")
        browse = QPushButton("Open station file...")
        browse.clicked.connect(self._browse_station)
        self.log_edit = QLineEdit(log_folder)
        browse_log = QPushButton("Log folder...")
        browse_log.clicked.connect(self._browse_log)
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self._connect)
        self.disconnect_button = QPushButton("Disconnect")
        self.disconnect_button.clicked.connect(controller.disconnect_bench)
        self.refresh_button = QPushButton("Refresh output states")
        self.refresh_button.clicked.connect(self.refresh_states)
        self.state = QLabel("not connected")

        row1 = QHBoxLayout()
        row1.addWidget(QLabel("Station:"))
        row1.addWidget(self.station_edit, 1)
        row1.addWidget(browse)
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
        self._show_config()

    def station_source(self) -> str | None:
        text = self.station_edit.text().strip()
        return text or None

    def _browse_station(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Station file", "", "Station files (*.toml)")
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
            return False
        self.instruments.setRowCount(len(cfg.instruments))
        self.limits.setRowCount(len(cfg.instruments))
        for k, inst in enumerate(cfg.instruments.values()):
            addr = inst.address + (f" (channel {inst.channel})" if inst.channel else "")
            for c, text in enumerate([inst.name, inst.driver, addr, "", "not connected"]):
                self.instruments.setItem(k, c, QTableWidgetItem(text))
            limits = ", ".join(f"{key} = {val:g}" for key, val in asdict(inst.limits).items())
            self.limits.setItem(k, 0, QTableWidgetItem(inst.name))
            self.limits.setItem(k, 1, QTableWidgetItem(limits))
        self.instruments.resizeColumnsToContents()
        self.limits.resizeColumnToContents(0)  # the limits column stretches and wraps
        self.limits.resizeRowsToContents()
        return True

    def _on_connected(self, identities: dict) -> None:
        self.state.setText(f"connected; logging to {self.controller.log_path}")
        for k in range(self.instruments.rowCount()):
            name = self.instruments.item(k, 0).text()
            self.instruments.setItem(k, 3, QTableWidgetItem(identities.get(name, "")))
            self.instruments.setItem(k, 4, QTableWidgetItem("connected"))
        self.instruments.resizeColumnsToContents()
        self.refresh_states()

    def _on_disconnected(self) -> None:
        self.state.setText("disconnected: outputs off, log closed")
        for k in range(self.instruments.rowCount()):
            self.instruments.setItem(k, 4, QTableWidgetItem("not connected"))

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
                    self.instruments.setItem(k, 4, QTableWidgetItem("connected"))
                continue
            try:
                state = "output ON" if smu.output_enabled() else "output off"
            except XbarlabError as exc:
                state = f"error: {exc}"
            self.instruments.setItem(k, 4, QTableWidgetItem(state))
