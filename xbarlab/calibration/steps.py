"""Campaign step types of the calibration layer (``@register`` experiments).

* ``read_calibration`` — column TIA/ADC gain and offset against the SMU (record ``read_path``)
* ``range_map`` — device characterisation (read noise, SET/RESET thresholds and kinetics, up/down
  ratio, with 1σ; record ``device_characterization``) and per-cell range and stuck map (record ``range_map``)
* ``device_fit`` — pulse-response curves and soft-bounds fit with uncertainties (record ``device_model``)
* ``forming`` — SMU I–V sweep / forming of one cell with compliance
* ``write_verify`` — program uniform random targets over the usable range, report yield/pulses/time
* ``residual_program`` — multi-array residual programming, MVM error with 1, 2, 3 arrays
* ``drift_compensation`` — PCM MVM error from 1 s to 1 day with and without global compensation

Every step that corrects reads with a read-path calibration either takes the newest
``read_path`` record of the logbook it writes to (``calibration = "auto"``, noted with
``recorder.use_calibration``) or measures one and logs it (``"measure"``, or when none exists,
or when the newest is older than ``max_calibration_age`` s of instrument time: the read path's
gain and offset drift with time and temperature, so a calibration goes stale).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from xbarlab.calibration.characterize import RECORD_KIND as CHAR_KIND
from xbarlab.calibration.device import fit_pulse_response, form_cell, pulse_response
from xbarlab.calibration.drift import drift_study
from xbarlab.calibration.pipeline import prepare, program_matrix, station_read_voltage
from xbarlab.calibration.readpath import RECORD_KIND, ReadCalibration, calibrate_read_path
from xbarlab.calibration.residual import program_residual
from xbarlab.errors import ConfigError
from xbarlab.experiments.base import Estimate, Experiment, Param, PlotSpec, register
from xbarlab.experiments.param_groups import PROGRAMMING, READ_CALIBRATION
from xbarlab.experiments.support import array_shape, bench_timing, board_limit_problems, instrument_time


def _board_problems(station_config: Any, where: str, smu: bool = True) -> list[str]:
    if station_config.board_name() is None:
        return [f"{where}: the station has no crossbar board"]
    if smu and not any(i.spec.kind == "smu" and i.board_port is not None for i in station_config.instruments.values()):
        return [f"{where}: calibration needs an SMU cabled to a board port (board_port) as the reference"]
    return []


def _shape(station_config: Any) -> tuple[int, int]:
    """(rows, cols) for estimates: the station file's array, else the 64x64 estimates assume."""
    t = bench_timing(station_config)
    return t.rows, t.cols


def _read_cal_time(station_config: Any) -> float:
    return bench_timing(station_config).read_calibration




class _CalStep(Experiment):
    """Shared helpers: find or measure the read calibration, log records."""

    category = "calibration"

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        """Every calibration step needs a board (steps with more constraints extend this)."""
        return _board_problems(station_config, where)

    def read_calibration(self, full_scale: float | None = None) -> ReadCalibration:
        """The newest logged ``read_path`` record (noted as used), or a new measurement (logged)."""

        if self.params.get("calibration", "auto") == "auto":
            found = self._find_logged(RECORD_KIND)
            if found is not None:

                ref, data, meta = found
                cal = ReadCalibration.from_record(data, meta, ref)
                limit = float(self.params.get("max_calibration_age", 0.0))
                age = cal.age(instrument_time(self.station))
                stale = limit > 0 and not age <= limit  # unknown age (NaN) counts as stale when a limit is set
                if stale:
                    self.report(0, 1, f"read-path calibration {ref} is {age:.0f} s old (limit {limit:g} s): "
                                "measuring it again")
                elif cal.gain.size == self.station.require_board().shape[1]:
                    self.recorder.use_calibration(ref)
                    return cal

        v = station_read_voltage(self.station)
        fs = full_scale or 1.3 * float(self.params.get("g_max_expected", 150e-6)) * abs(v)
        cal = calibrate_read_path(self.station, self.station.require_board(), full_scale=fs,
                                  checkpoint=self.checkpoint)
        self.log_read_calibration(cal)
        return cal

    def log_read_calibration(self, cal: ReadCalibration) -> None:
        data, meta = cal.to_record()
        self.recorder.add_calibration("read_path", RECORD_KIND, data, meta)
        s = self.recorder.stream("read_path", columns=["column", "gain", "offset_frac"], units=["1", "1", "1"])
        s.append(np.column_stack([np.arange(cal.gain.size), cal.gain, cal.offset_frac]))

    def _find_logged(self, kind: str) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        """The newest calibration record of ``kind`` the recorder offers (the log's, memory's, or in replay the
        one the recorded run applied)."""
        return self.recorder.latest_calibration(kind)

    def prepared(self) -> Any:

        cal = self.read_calibration()
        self.checkpoint()
        prep = prepare(self.station, read_cal=cal, g_max_expected=float(self.params.get("g_max_expected", 150e-6)),
                       checkpoint=self.checkpoint)
        self.log_characterization(prep)
        return prep

    def log_characterization(self, prep: Any) -> None:
        """The range map and the device characterisation (thresholds, kinetics, read noise, with 1σ)
        as calibration records, and the characterisation's pulse observations as a stream."""

        data, meta = prep.bounds.to_record()
        self.recorder.add_calibration("range_map", "range_map", data, meta)
        ch = prep.characterization
        if ch is not None:
            data, meta = ch.to_record()
            self.recorder.add_calibration("device_characterization", CHAR_KIND, data, meta)
            obs = np.asarray(ch.observations, dtype=float)
            s = self.recorder.stream("characterization", columns=["direction", "amplitude", "width", "k", "headroom",
                                                                   "cell", "significant"],
                                     units=["1", "V", "s", "1", "S", "1", "1"])
            if obs.size:
                s.append(obs)


@register
class ReadCalibrationStep(_CalStep):
    """Column TIA/ADC gain and offset against the SMU; residual read error before and after."""

    kind = "read_calibration"
    title = "Read-path calibration against the SMU"
    plots = (PlotSpec("read_path", "column", ("gain",), "1", "1", "read-path gain per column"),)
    params_spec = (
        Param("cells_per_column", int, 3, min=1, max=16, help="reference cells per column"),
        Param("reads", int, 8, min=1, max=256, help="board reads averaged per reference cell"),
        *READ_CALIBRATION.take("g_max_expected"),
    )

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        rows, cols = _shape(station_config)
        return Estimate(cols * (params["cells_per_column"] + 1), _read_cal_time(station_config),
                        f"{cols} columns x {params['cells_per_column'] + 1} SMU-referenced cells")

    def execute(self) -> ReadCalibration:

        self.report(0, 1, "read-path calibration")
        v = station_read_voltage(self.station)
        cal = calibrate_read_path(self.station, self.station.require_board(),
                                  full_scale=1.3 * self.params["g_max_expected"] * abs(v),
                                  cells_per_column=self.params["cells_per_column"], reads=self.params["reads"],
                                  checkpoint=self.checkpoint)
        self.log_read_calibration(cal)
        self.commit("read_path", residual_before=cal.residual_before, residual_after=cal.residual_after,
                    chord_factor=cal.chord_factor)
        self.report(1, 1, f"read error {cal.residual_before:.4f} -> {cal.residual_after:.4f}")
        return cal


@register
class RangeMapStep(_CalStep):
    """Every cell to both ends of its range: per-cell range, stuck map, usable range."""

    kind = "range_map"
    title = "Range and stuck-cell map"
    revision = 2  # 2: bounds ramp unmoved cells to the cap, measured-model characterisation (1: older logs)
    plots = (PlotSpec("characterization", "amplitude", ("k",), "V", "1", "switching kinetics"),)
    params_spec = READ_CALIBRATION()

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        rows, cols = _shape(station_config)
        t = bench_timing(station_config)
        return Estimate(4 * rows * cols, 4 * rows * cols * t.pulse + 4 * rows * cols * 20e-6, "2 SET + 2 RESET a cell")

    def execute(self) -> Any:
        self.report(0, 1, "range map")
        prep = self.prepared()
        b = prep.bounds
        s = self.recorder.stream("range_map", columns=["row", "col", "g_lo", "g_hi", "stuck"],
                                 units=["1", "1", "S", "S", "1"])
        rr, cc = np.meshgrid(b.rows, b.cols, indexing="ij")
        s.append(np.column_stack([rr.ravel(), cc.ravel(), b.g_lo.ravel(), b.g_hi.ravel(), b.stuck.ravel()]))
        lo, hi = b.usable_range()
        self.commit("range_map", stuck_off=int(np.sum(b.stuck == 1)), stuck_on=int(np.sum(b.stuck == 2)),
                    usable_low_S=lo, usable_high_S=hi)
        self.report(1, 1, f"{int(np.sum(b.stuck != 0))} stuck cells, usable {lo:.3g}..{hi:.3g} S")
        return b


@register
class DeviceFitStep(_CalStep):
    """Pulse-response curves on a set of cells and a soft-bounds device fit with uncertainties."""

    kind = "device_fit"
    title = "Pulse response and device-model fit"
    revision = 2  # 2: the fit starts from the measured characterisation (1: older logs)
    params_spec = (
        *READ_CALIBRATION.take("calibration", "max_calibration_age"),
        Param("cells", int, 32, min=2, max=100000, help="cells measured (random, live)"),
        Param("pulses", int, 30, min=2, max=10000, help="pulses per direction"),
        Param("amplitude", float, 1.3, "V", "pulse amplitude (both polarities)", min=0.01),
        Param("width", float, 1e-6, "s", "pulse width", min=1e-9),
        Param("cycles", int, 3, min=1, max=1000, help="potentiate/depress cycles"),
        Param("seed", int, 0, help="cell selection"),
        *READ_CALIBRATION.take("g_max_expected"),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = _board_problems(station_config, where) + board_limit_problems(
            params, station_config, where, {"amplitude": "max_pulse_amplitude"})
        shape = array_shape(station_config)
        if shape is not None and params["cells"] > shape[0] * shape[1]:
            problems.append(f"{where}.cells = {params['cells']} is more than the {shape[0]}x{shape[1]} array's "
                            f"{shape[0] * shape[1]} cells")
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        n = 2 * params["pulses"] * params["cycles"]
        return Estimate(n * params["cells"], n * (params["cells"] * 150e-6 + 2e-3), "one batch + read per pulse")

    def execute(self) -> Any:

        p = self.params
        cal = self.read_calibration()

        prep = prepare(self.station, read_cal=cal, g_max_expected=p["g_max_expected"], checkpoint=self.checkpoint)
        self.log_characterization(prep)
        live = np.argwhere(prep.bounds.stuck == 0)
        rng = np.random.default_rng(p["seed"])
        if p["cells"] > len(live):
            raise ConfigError(f"{self.kind}: cells = {p['cells']} but the array has only {len(live)} live cells "
                              f"({prep.bounds.stuck.size - len(live)} stuck)")
        pick = live[rng.choice(len(live), size=p["cells"], replace=False)]
        self.report(0, 1, f"pulse response of {len(pick)} cells")
        resp = pulse_response(prep.board, pick[:, 0], pick[:, 1], pulses=p["pulses"], amplitude=p["amplitude"],
                              width=p["width"], cycles=p["cycles"], reader=prep.reader(), checkpoint=self.checkpoint)
        s = self.recorder.stream("response", shape=resp.g.shape[1:], units="S")
        s.append(resp.g)
        fit = fit_pulse_response(resp)
        data, meta = fit.to_record()
        self.recorder.add_calibration("device_model", "device_model", data, meta)
        self.commit("device_fit", **{k: float(v) for k, v in fit.values.items()},
                    **{f"{k}_err": float(v) for k, v in fit.errors.items()})
        self.report(1, 1, f"dw_up {fit.values['dw_up']:.4g}±{fit.errors['dw_up']:.2g}")
        return fit


@register
class FormingStep(_CalStep):
    """I–V sweep and forming of one cell through the SMU, with current compliance."""

    kind = "forming"
    title = "Forming / I-V sweep of a cell with compliance"
    plots = (PlotSpec("iv", "voltage", ("current",), "V", "A", "forming I-V"),)
    params_spec = (
        Param("row", int, 0, min=0, help="cell row"),
        Param("col", int, 0, min=0, help="cell column"),
        Param("v_max", float, 3.0, "V", "largest forming voltage", min=0.01),
        Param("points", int, 31, min=2, max=2500, help="sweep points"),
        Param("compliance", float, 100e-6, "A", "current compliance", min=1e-12),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = _board_problems(station_config, where)
        for inst in station_config.instruments.values():
            if inst.spec.kind == "smu" and inst.board_port is not None:
                if params["v_max"] > inst.limits.max_voltage:
                    problems.append(f"{where}.v_max = {params['v_max']:g} V exceeds {inst.name}'s max_voltage")
                if params["compliance"] > inst.limits.max_current:
                    problems.append(f"{where}.compliance exceeds {inst.name}'s max_current")
                break
        rows, cols = array_shape(station_config) or (0, 0)  # (0, 0): the file does not say; the board checks
        if rows and (params["row"] >= rows or params["col"] >= cols):
            problems.append(f"{where}: cell ({params['row']}, {params['col']}) is outside the {rows}x{cols} array")
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        return Estimate(params["points"] + 2, (params["points"] + 2) * 0.021)

    def execute(self) -> Any:

        p = self.params
        self.report(0, 1, f"forming cell ({p['row']}, {p['col']})")
        res = form_cell(self.station, p["row"], p["col"], v_max=p["v_max"], points=p["points"],
                        compliance=p["compliance"])
        s = self.recorder.stream("iv", columns=["voltage", "current", "compliance"], units=["V", "A", "1"])
        s.append(np.column_stack([res.curve.voltage, res.curve.current, res.curve.compliance.astype(float)]))
        self.commit("forming", formed=res.formed, forming_voltage=res.voltage, g_before=res.g_before,
                    g_after=res.g_after)
        self.report(1, 1, "formed" if res.formed else "not formed")
        return res


@register
class WriteVerifyStep(_CalStep):
    """Write-verify of uniform random targets over the usable range (calibrated reads)."""

    kind = "write_verify"
    title = "Write-verify programming of a target matrix"
    revision = 2  # 2: measured-model prior, escalating corrections, two-stage final reads (1: older logs)
    plots = (PlotSpec("error_histogram", "edge_low_tol", ("count",), "1", "1", "final error / tolerance"),)
    params_spec = (
        *READ_CALIBRATION.take("calibration", "max_calibration_age"),
        *PROGRAMMING.take("tolerance"),
        Param("max_pulses", int, 100, min=1, max=100000, help="pulse budget per cell"),
        Param("reader", str, "cells", help="verify reads: cells (READ_CELLS) | array (READ_ALL rows)",
              choices=("cells", "array")),
        Param("seed", int, 0, help="target matrix"),
        *READ_CALIBRATION.take("g_max_expected"),
    )

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        rows, cols = _shape(station_config)
        t = bench_timing(station_config)
        cells = rows * cols
        return Estimate(cells * 12, cells * (8 * t.pulse + 30 * 20e-6) + 4 * cells * t.pulse,
                        "range map + ~8 pulses and ~30 cell reads a cell")

    def execute(self) -> Any:
        p = self.params
        self.report(0, 2, "calibration and range map")
        prep = self.prepared()
        lo, hi = prep.usable_range()
        b = prep.bounds
        targets = np.random.default_rng(p["seed"]).uniform(lo, hi, b.g_lo.shape)
        self.report(1, 2, "write-verify")

        live = max(int(np.sum(b.stuck == 0)), 1)

        def round_done(rounds: int, active: int) -> None:  # live progress (cells settled) for bars and the GUI
            self.report(1, 2, f"write-verify round {rounds}: {active} cells still active",
                        round=rounds, active=active, settled_fraction=1.0 - active / live)

        rep = program_matrix(self.station, prep, targets, tolerance=p["tolerance"] * (hi - lo),
                             max_pulses=p["max_pulses"], checkpoint=self.checkpoint, progress=round_done)
        shape = targets.shape
        for name, arr, unit in (("targets", targets, "S"), ("achieved", rep.achieved, "S"),
                                ("pulses", rep.pulses.astype(float), "1"), ("status", rep.status.astype(float), "1")):
            self.recorder.stream(name, shape=shape, units=unit).append(arr[np.newaxis])
        s = rep.summary()
        counts = s.pop("error_hist_counts")
        edges = s.pop("error_hist_edges_tol")
        self.recorder.stream("error_histogram", columns=["edge_low_tol", "count"], units=["1", "1"]).append(
            np.column_stack([edges[:-1], counts]))
        self.commit("write_verify", **s)
        self.report(2, 2, rep.describe())
        return rep


@register
class ResidualProgramStep(_CalStep):
    """Multi-array residual programming (Song et al. 2024) on disjoint column blocks of one array."""

    kind = "residual_program"
    revision = 2  # 2: programs with write-verify of revision 2 (1: older logs)
    title = "Residual programming over several arrays"
    plots = (PlotSpec("error_vs_arrays", "arrays", ("rel_error",), "1", "1", "MVM error vs arrays"),)
    params_spec = (
        *READ_CALIBRATION.take("calibration", "max_calibration_age"),
        Param("n", int, 16, min=2, max=4096, help="matrix size n x n"),
        Param("arrays", int, 3, min=1, max=8, help="blocks of 2n columns, side by side"),
        Param("vectors", int, 32, min=1, max=100000, help="test inputs"),
        Param("repeats", int, 8, min=1, max=1024, help="MVMs averaged per product"),
        Param("mvm_passes", int, 2, min=0, max=10, help="MVM-path re-targeting passes per block"),
        Param("reader", str, "cells", help="verify reads: cells (READ_CELLS) | array (READ_ALL rows)",
              choices=("cells", "array")),
        Param("seed", int, 0, help="matrix and inputs"),
        *READ_CALIBRATION.take("g_max_expected"),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = _board_problems(station_config, where)
        rows, cols = array_shape(station_config) or (0, 0)  # (0, 0): the file does not say; the board checks
        if rows and (params["n"] > rows or 2 * params["n"] * params["arrays"] > cols):
            problems.append(f"{where}: {params['arrays']} blocks of {params['n']}x{2 * params['n']} do not fit the "
                            f"{rows}x{cols} array")
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        t = bench_timing(station_config)
        n, k = params["n"], params["arrays"]
        mvms = k * (params["mvm_passes"] + 1) * 4 * n * params["repeats"] + params["vectors"] * params["repeats"] * k
        cells = 2 * n * n * k * (params["mvm_passes"] + 1)
        return Estimate(mvms + cells, mvms * t.mvm + cells * (8 * t.pulse + 30 * 20e-6))

    def execute(self) -> Any:

        p = self.params
        prep = self.prepared()
        rng = np.random.default_rng(p["seed"])
        n = p["n"]
        w = rng.uniform(-1, 1, (n, n))
        x = rng.uniform(-1, 1, (p["vectors"], n))
        self.report(0, 1, f"residual programming on {p['arrays']} arrays")
        res = program_residual(self.station, prep, w, col0s=[2 * n * k for k in range(p["arrays"])], test_inputs=x,
                               repeats=p["repeats"], mvm_passes=p["mvm_passes"], reader=p["reader"],
                               checkpoint=self.checkpoint)
        self.recorder.stream("error_vs_arrays", columns=["arrays", "rel_error", "rel_error_at_stage", "scale"],
                             units=["1", "1", "1", "1"]).append(
            np.column_stack([np.arange(1, p["arrays"] + 1), res.errors, res.stage_errors, res.scales]))
        s = res.summary()
        self.commit("residual", errors=res.errors, stage_errors=res.stage_errors, scales=res.scales,
                    first_write_verify_only=res.first_write_verify_only, digital_corrections=s["digital_corrections"])
        self.report(1, 1, "errors " + ", ".join(f"{e:.4f}" for e in res.errors))
        return res


@register
class DriftCompensationStep(_CalStep):
    """PCM: MVM error vs time after programming (simulated clock), with and without global compensation."""

    kind = "drift_compensation"
    revision = 2  # 2: programs with write-verify of revision 2 (1: older logs)
    title = "PCM drift: MVM error vs time with global drift compensation"
    plots = (PlotSpec("drift", "time", ("rel_error_raw", "rel_error_compensated"), "s", "1",
                      "MVM error after programming", log_x=True),)
    params_spec = (
        *READ_CALIBRATION.take("calibration", "max_calibration_age"),
        Param("n", int, 16, min=2, max=4096, help="matrix size n x n (2n columns)"),
        Param("times", list, [1.0, 10.0, 100.0, 1000.0, 10000.0, 86400.0], "s", "times after programming"),
        Param("vectors", int, 16, min=1, max=100000, help="test inputs"),
        Param("repeats", int, 8, min=1, max=1024, help="MVMs averaged per product"),
        *PROGRAMMING.take("tolerance", tolerance=0.03),  # PCM programming noise is ~1-4 % of the window
        Param("seed", int, 0, help="matrix and inputs"),
        *READ_CALIBRATION.take("g_max_expected", g_max_expected=30e-6),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = _board_problems(station_config, where)
        times = params["times"]
        if not times or any(not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0 for t in times):
            problems.append(f"{where}.times: expected a non-empty list of positive times (s)")
        elif list(times) != sorted(times):
            problems.append(f"{where}.times: times must increase")
        rows, cols = array_shape(station_config) or (0, 0)  # (0, 0): the file does not say; the board checks
        if rows and (params["n"] > rows or 2 * params["n"] > cols):
            problems.append(f"{where}: a {params['n']}x{2 * params['n']} block does not fit the {rows}x{cols} array")
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        t = bench_timing(station_config)
        m = len(params["times"]) * (params["vectors"] + 1) * params["repeats"]
        return Estimate(m, m * t.mvm + float(max(params["times"], default=0.0)), "includes the waiting time")

    def execute(self) -> Any:

        p = self.params
        prep = self.prepared()
        rng = np.random.default_rng(p["seed"])
        w = rng.uniform(-1, 1, (p["n"], p["n"]))
        x = rng.uniform(-1, 1, (p["vectors"], p["n"]))
        self.report(0, 1, "programming and drift study")
        res = drift_study(self.station, prep, w, x, times=tuple(float(t) for t in p["times"]),
                          tolerance_frac=p["tolerance"], repeats=p["repeats"], checkpoint=self.checkpoint)
        self.recorder.stream("drift", columns=["time", "rel_error_raw", "rel_error_compensated", "factor"],
                             units=["s", "1", "1", "1"]).append(res.rows())
        self.commit("drift", raw=res.raw, compensated=res.compensated, times=res.times)
        self.report(1, 1, f"1 day: {res.raw[-1]:.3f} raw, {res.compensated[-1]:.3f} compensated")
        return res
