"""Basic measurement steps: an SMU I–V sweep of one cell and a whole-array read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from xbarlab.errors import InstrumentError
from xbarlab.experiments.base import Estimate, Experiment, Param, PlotSpec, register
from xbarlab.experiments.support import array_shape, board_limit_problems
from xbarlab.instruments.safety import BoardLimits, SmuLimits

_LINE_FREQUENCY = 50.0  # Hz, for instrument-time estimates
_SMU_OVERHEAD = 1e-3  # s per reading, command and settling overhead (estimate)


def _routable_smu(station_config: Any, name: str) -> str | None:
    """The SMU to use: ``name`` or the first SMU cabled to a board port."""
    if name:
        return name
    for inst in station_config.instruments.values():
        if inst.spec.kind == "smu" and inst.board_port is not None:
            return inst.name
    return None


@dataclass(frozen=True)
class IVResult:
    cell: tuple[int, int]
    voltage: np.ndarray  # V
    current: np.ndarray  # A
    compliance: np.ndarray  # bool per point, if the instrument reports it


@register
class IVSweep(Experiment):
    """Staircase I–V sweep of one cell through an SMU routed by the board."""

    kind = "iv_sweep"
    title = "I–V sweep of a cell through the SMU"
    category = "measurement"
    plots = (PlotSpec("iv", "voltage", ("current",), "V", "A", "I-V sweep"),)
    params_spec = (
        Param("smu", str, "", help="SMU name; empty = the first SMU cabled to the board"),
        Param("row", int, 0, min=0, help="cell row"),
        Param("col", int, 0, min=0, help="cell column"),
        Param("start", float, -0.2, "V", "first voltage"),
        Param("stop", float, 0.2, "V", "last voltage"),
        Param("points", int, 21, min=2, max=2500, help="number of points"),
        Param("compliance", float, 100e-6, "A", "current compliance", min=1e-12),
        Param("nplc", float, 1.0, "PLC", "integration time", min=0.01, max=10.0),
        Param("return_sweep", bool, False, help="also sweep back from stop to start (hysteresis loop)"),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = []
        name = _routable_smu(station_config, params["smu"])
        inst = station_config.instruments.get(name) if name else None
        if inst is None or inst.spec.kind != "smu":
            return [f"{where}.smu: no SMU {params['smu']!r} in the station (or none cabled to the board)"]
        if inst.board_port is None:
            problems.append(f"{where}.smu: {name} is not cabled to a board port (board_port unset)")
        lim = inst.limits
        assert isinstance(lim, SmuLimits)
        for key in ("start", "stop"):
            if abs(params[key]) > lim.max_voltage:
                problems.append(
                    f"{where}.{key} = {params[key]:g} V exceeds {name}'s limit max_voltage = {lim.max_voltage:g} V"
                )
        if params["compliance"] > lim.max_current:
            problems.append(
                f"{where}.compliance = {params['compliance']:g} A exceeds {name}'s limit "
                f"max_current = {lim.max_current:g} A"
            )
        rows, cols = _array_shape(station_config)
        if rows and params["row"] >= rows:
            problems.append(f"{where}.row = {params['row']} is outside the array (rows 0..{rows - 1})")
        if cols and params["col"] >= cols:
            problems.append(f"{where}.col = {params['col']} is outside the array (columns 0..{cols - 1})")
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        per_point = params["nplc"] / _LINE_FREQUENCY + _SMU_OVERHEAD
        points = params["points"] * (2 if params.get("return_sweep") else 1)
        return Estimate(operations=points, instrument_time=points * per_point)

    def execute(self) -> IVResult:
        p = self.params
        name = _routable_smu(self.station.config, p["smu"])
        smu = self.station.smu(name)
        port = self.station.board_port(name)
        board = self.station.require_board()
        self.checkpoint()
        self.report(0, 1, f"I-V sweep of cell ({p['row']}, {p['col']})")
        board.route_smu(port, p["row"], p["col"])
        try:
            smu.set_nplc(p["nplc"])
            sweeps = [smu.sweep_voltage(p["start"], p["stop"], p["points"], p["compliance"])]
            if p["return_sweep"]:  # up and back: the same staircase reversed, the cell still routed
                self.checkpoint()
                sweeps.append(smu.sweep_voltage(p["stop"], p["start"], p["points"], p["compliance"]))
        finally:
            smu.set_output(False)
            board.unroute_smu(port)
        v = np.concatenate([np.asarray(sw.voltage, dtype=float) for sw in sweeps])
        i = np.concatenate([np.asarray(sw.current, dtype=float) for sw in sweeps])
        comp = np.concatenate([_compliance(sw) for sw in sweeps])
        stream = self.recorder.stream("iv", columns=["voltage", "current", "compliance"], units=["V", "A", "1"])
        stream.append(np.column_stack([v, i, comp.astype(float)]))
        self.commit("iv", cell=[p["row"], p["col"]], smu=name, points=int(v.size))
        self.report(1, 1, "done")
        return IVResult((p["row"], p["col"]), v, i, comp)


def _compliance(sweep: Any) -> np.ndarray:
    """Per-point compliance flags of a sweep (all False when the instrument reports none)."""
    comp = np.asarray(sweep.compliance, dtype=bool)
    return comp if comp.size == np.asarray(sweep.voltage).size else np.zeros(np.asarray(sweep.voltage).size, bool)


def _array_shape(station_config: Any) -> tuple[int, int]:
    """(rows, cols) the station file states; (0, 0) when it states none (then only the board knows)."""
    return array_shape(station_config) or (0, 0)


@register
class ArrayRead(Experiment):
    """Whole-array conductance map at a read voltage, optionally repeated."""

    kind = "array_read"
    title = "Whole-array read (conductance map)"
    category = "measurement"
    params_spec = (
        Param("read_voltage", float, 0.0, "V", "read voltage; 0 = the station default", min=0.0),
        Param("repeats", int, 1, min=1, max=100000, help="number of reads"),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        board = station_config.board_name()
        if board is None:
            return [f"{where}: the station has no crossbar board"]
        return board_limit_problems(params, station_config, where, {"read_voltage": "max_read_voltage"})

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        rows, cols = _array_shape(station_config)
        cells = max(rows * cols, 1)
        return Estimate(operations=params["repeats"], instrument_time=params["repeats"] * cells * 10e-6)

    def execute(self) -> np.ndarray:
        p = self.params
        board = self.station.require_board()
        cfg = self.station.config
        v_read = p["read_voltage"] or cfg.read_voltage
        board.configure(v_read, cfg.tia_range)
        rows, cols = board.shape
        stream = self.recorder.stream("conductance", shape=(rows, cols), units="S")
        last = np.zeros((rows, cols))
        try:
            for k in range(p["repeats"]):
                self.checkpoint()
                last = board.read_all()
                stream.append(last[np.newaxis])
                self.commit(f"read-{k}", read_voltage=v_read)
                self.report(k + 1, p["repeats"], f"read {k + 1}/{p['repeats']}")
        finally:
            if v_read != cfg.read_voltage:
                board.configure(cfg.read_voltage, cfg.tia_range)
        return last


@register
class PulseResponse(Experiment):
    """Pulse-response curve: N potentiating then N depressing pulses, reading after each, repeated cycles."""

    kind = "pulse_response"
    title = "Pulse-response curve of one cell"
    category = "calibration"  # listed with the calibration steps (device characterisation)
    plots = (PlotSpec("response", "pulse", ("conductance",), "1", "S", "pulse response"),)
    params_spec = (
        Param("row", int, 0, min=0, help="cell row"),
        Param("col", int, 0, min=0, help="cell column"),
        Param("pulses", int, 20, min=1, max=10000, help="pulses per direction"),
        Param("set_amplitude", float, 1.2, "V", "potentiating pulse amplitude", min=0.0),
        Param("reset_amplitude", float, -1.2, "V", "depressing pulse amplitude", max=0.0),
        Param("width", float, 1e-6, "s", "pulse width", min=1e-9),
        Param("cycles", int, 1, min=1, max=1000, help="potentiate/depress cycles"),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        board = station_config.board_name()
        if board is None:
            return [f"{where}: the station has no crossbar board"]
        lim = station_config.instruments[board].limits
        assert isinstance(lim, BoardLimits)
        problems = board_limit_problems(params, station_config, where, {
            "set_amplitude": "max_pulse_amplitude", "reset_amplitude": "max_pulse_amplitude"})
        if not lim.min_pulse_width <= params["width"] <= lim.max_pulse_width:
            problems.append(f"{where}.width = {params['width']:g} s is outside the board limits "
                            f"[{lim.min_pulse_width:g}, {lim.max_pulse_width:g}] s")
        rows, cols = _array_shape(station_config)
        if rows and (params["row"] >= rows or params["col"] >= cols):
            problems.append(f"{where}: cell ({params['row']}, {params['col']}) is outside the {rows}x{cols} array")
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        n = 2 * params["pulses"] * params["cycles"]
        return Estimate(operations=2 * n, instrument_time=n * (params["width"] + 2e-3))

    def execute(self) -> np.ndarray:
        p = self.params
        board = self.station.require_board()
        stream = self.recorder.stream("response", columns=["cycle", "pulse", "amplitude", "conductance"],
                                      units=["1", "1", "V", "S"])
        rows = []
        total = p["cycles"]
        for cycle in range(total):
            self.checkpoint()
            block = []
            for k in range(2 * p["pulses"]):
                amp = p["set_amplitude"] if k < p["pulses"] else p["reset_amplitude"]
                board.pulse_cell(p["row"], p["col"], amp, p["width"])
                block.append([cycle, k, amp, board.read_cell(p["row"], p["col"])])
            stream.append(np.asarray(block))
            rows += block
            self.commit(f"cycle-{cycle}")
            self.report(cycle + 1, total, f"cycle {cycle + 1}/{total}")
        return np.asarray(rows)


@register
class SafeState(Experiment):
    """Every SMU output off, board lines grounded, SMUs unrouted (the GUI's Abort when idle)."""

    kind = "safe_state"
    title = "Safe state: outputs off"
    category = "bench"
    params_spec = ()

    def execute(self) -> list[str]:
        problems = self.station.safe_state()
        self.commit("safe_state", problems=problems)
        if problems:  # never reported as "outputs off": the run fails and says what is not safe
            raise InstrumentError("station", 0, "safe state NOT reached: " + "; ".join(problems))
        return problems
