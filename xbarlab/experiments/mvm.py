"""MVM experiment: program a signed matrix, run forward/transpose MVMs, compare with the digital product.

Steps: choose the layout (differential pairs if the columns fit, else one column per output
with a digital reference), program the conductances by write-verify, measure the output
offsets, then for every input range ``v_in`` and matrix size apply random input vectors
(inputs in [−1, 1] map onto ±v_in, so small vectors use small voltages) and record:

* relative error ‖y − W·x‖/‖W·x‖ per vector, against the target W and against the weights
  actually programmed (read back), which separates programming error from MVM error;
* per-output RMS error (in units of W);
* error vs. input magnitude (vectors are drawn with magnitudes spread over a decade and a half).

Sizes are leading sub-blocks of the programmed matrix (an n×n sub-block of a random matrix is
a random matrix), so a size sweep programs the array once. Li et al. (Nature Electronics 1,
52 (2018)) report 5–8-bit output precision on 128×64 1T1R arrays for comparison.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.experiments.analog import (
    ENCODINGS,
    ArrayMatrix,
    InputEncoding,
    Region,
    autorange,
    choose_mapping,
    fit_problems,
)
from xbarlab.experiments.base import Estimate, Experiment, Param, PlotSpec, register
from xbarlab.experiments.cli_options import add_param_options, params_from_args
from xbarlab.experiments.param_groups import CONDUCTANCE_WINDOW, MVM_INPUT, PLACEMENT, PROGRAMMING
from xbarlab.experiments.programming import ProgrammingOutcome, defect_correction, program_weights
from xbarlab.experiments.support import (
    add_run_arguments,
    array_shape,
    bench_timing,
    board_limit,
    board_limit_problems,
    instrument_time,
    run_cli_experiment,
    station_defaults,
    tia_range,
)
from xbarlab.experiments.update_rules import PulseSpec

DIRECTIONS = ("forward", "transpose", "both")


@dataclass
class MvmCase:
    """Statistics of one (size, input range, direction) combination."""

    n_out: int
    n_in: int
    v_in: float  # V
    direction: str
    rel_error: np.ndarray  # per vector, against the target matrix
    rel_error_programmed: np.ndarray  # per vector, against the read-back matrix
    input_magnitude: np.ndarray  # max|x| per vector (1 = full scale)
    per_output_rmse: np.ndarray  # RMS error per output line, units of W
    outputs: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))  # (expected W·x, measured) per output

    @property
    def median_rel_error(self) -> float:
        return float(np.median(self.rel_error))

    @property
    def effective_bits(self) -> float:
        """log2(1/median relative error): output precision in bits."""
        e = self.median_rel_error
        return float(np.log2(1.0 / e)) if e > 0 else float("inf")

    def error_vs_magnitude(self, bins: int = 4) -> list[tuple[float, float, float]]:
        """[(low, high, median relative error)] over log-spaced magnitude bins."""
        edges = np.geomspace(max(self.input_magnitude.min(), 1e-6), self.input_magnitude.max() * 1.0001, bins + 1)
        out = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            sel = (self.input_magnitude >= lo) & (self.input_magnitude < hi)
            if sel.any():
                out.append((float(lo), float(hi), float(np.median(self.rel_error[sel]))))
        return out


@dataclass
class MvmResult:
    matrix: np.ndarray
    programmed: np.ndarray  # weights read back after programming (+ digital defect correction)
    programming: dict[str, Any]
    layout: str
    cases: list[MvmCase] = field(default_factory=list)
    mvms: int = 0
    instrument_time: float = 0.0  # s

    def table(self) -> str:
        lines = [f"{'size':>9} {'v_in/V':>7} {'dir':>9} {'median err':>11} {'bits':>5} {'err vs prog':>11}"]
        for c in self.cases:
            lines.append(
                f"{c.n_out:>4}x{c.n_in:<4} {c.v_in:>7.3f} {c.direction:>9} {c.median_rel_error:>11.4f} "
                f"{c.effective_bits:>5.1f} {float(np.median(c.rel_error_programmed)):>11.4f}"
            )
        return "\n".join(lines)


def _load_matrix(spec: str, n_out: int, n_in: int, rng: np.random.Generator) -> np.ndarray:
    if spec == "random":
        return rng.uniform(-1.0, 1.0, size=(n_out, n_in))
    path = Path(spec)
    if path.suffix != ".npy" or not path.is_file():
        raise ConfigError(f"matrix {spec!r}: expected 'random' or an existing .npy file")
    w = np.load(path, allow_pickle=False)
    if w.ndim != 2 or not np.all(np.isfinite(w)):
        raise ConfigError(f"matrix {spec!r}: expected a finite 2-D array, got shape {w.shape}")
    return np.asarray(w, dtype=float)


@register
class MvmExperiment(Experiment):
    """Forward/transpose MVM accuracy of a programmed signed matrix."""

    kind = "mvm"
    revision = 2  # 2: programs with write-verify of revision 2 (1: older logs)
    title = "MVM accuracy against the digital product"
    plots = (PlotSpec("mvm_vectors", "input_magnitude", ("rel_error",), "1", "1", "relative error vs input"),)
    params_spec = (
        Param("n_in", int, 32, min=1, help="matrix inputs (array rows)"),
        Param("n_out", int, 16, min=1, help="matrix outputs"),
        Param("sizes", list, [], help="square sizes to sweep (sub-blocks); empty = n_out x n_in only"),
        *MVM_INPUT(),
        Param("v_ins", list, [], "V", "input full scales to sweep; empty = v_in only"),
        Param("encoding", str, "amplitude", choices=ENCODINGS, help="input encoding"),
        Param("bits", int, 6, min=1, max=16, help="bits of bit-serial / pulse-width codes"),
        Param("direction", str, "both", choices=DIRECTIONS),
        Param("vectors", int, 40, min=1, max=100000, help="random input vectors per case"),
        Param("matrix", str, "random", help="'random' (uniform in [-1, 1]) or a .npy file"),
        Param("layout", str, "auto", choices=("auto", "differential", "offset")),
        *CONDUCTANCE_WINDOW(),
        *PROGRAMMING(),
        Param("defect_correction", bool, True, help="correct failed devices digitally (sparse)"),
        Param("tia_range", float, 0.0, "A", "TIA full scale; 0 = autorange on the programmed matrix", min=0.0),
        *PLACEMENT(),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = []
        if params["g_min"] >= params["g_max"]:
            problems.append(f"{where}.g_min = {params['g_min']:g} S must be below g_max = {params['g_max']:g} S")
        for v in [params["v_in"], *params["v_ins"]]:
            if not isinstance(v, (int, float)) or v <= 0:
                problems.append(f"{where}.v_ins: expected positive voltages, got {v!r}")
        for s in params["sizes"]:
            if not isinstance(s, int) or s < 1 or s > min(params["n_in"], params["n_out"]):
                problems.append(f"{where}.sizes: {s!r} must be an integer within 1..min(n_in, n_out)")
        board = station_config.board_name()
        if board is not None:
            lim = station_config.instruments[board].limits
            for v in [params["v_in"], *params["v_ins"]]:
                if isinstance(v, (int, float)) and v > lim.max_mvm_voltage:
                    problems.append(f"{where}: input range {v:g} V exceeds the board limit max_mvm_voltage = "
                                    f"{lim.max_mvm_voltage:g} V")
        problems += board_limit_problems(params, station_config, where, {"pulse_amplitude": "max_pulse_amplitude"})
        if params["matrix"] == "random":  # a matrix file's shape is known once it is read
            problems += fit_problems(array_shape(station_config), params["n_out"], params["n_in"], params["row0"],
                                     params["col0"], params["layout"], where)
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        t = bench_timing(station_config)
        n_in, n_out = params["n_in"], params["n_out"]
        columns = 2 * n_out if params["layout"] == "differential" or (
            params["layout"] == "auto" and 2 * n_out <= t.cols - params["col0"]) else n_out
        cases = max(1, len(params["sizes"])) * max(1, len(params["v_ins"]))
        dirs = 2 if params["direction"] == "both" else 1
        levels = 2 ** params["bits"] - 1
        mean_mag = float(np.mean(np.geomspace(0.03, 1.0, params["vectors"])))
        planes = {"amplitude": 1.0, "bit_serial": float(params["bits"]),
                  "pulse_width": max(1.0, levels * mean_mag)}[params["encoding"]]
        vector_mvms = int(round(cases * dirs * params["vectors"] * planes))
        calibration = cases * dirs * (12 + 8)  # autorange probes and offsets per case
        if params["direction"] != "forward":
            calibration += cases * columns  # one-hot transpose gain calibration
        mvms = vector_mvms + calibration
        time = t.write_verify(n_in * columns, params["tolerance"], rows=n_in) + mvms * t.mvm
        return Estimate(operations=mvms, instrument_time=time,
                        detail=f"write-verify of {n_in * columns} cells, {vector_mvms} MVMs + {calibration} "
                               "calibration")

    def execute(self) -> MvmResult:
        p = self.params
        board = self.station.require_board()
        rng = np.random.default_rng(p["seed"])
        t0 = instrument_time(self.station)
        w = _load_matrix(p["matrix"], p["n_out"], p["n_in"], rng)
        n_out, n_in = w.shape
        w_max = float(np.max(np.abs(w))) or 1.0
        rows, cols = board.shape
        mapping = choose_mapping(n_out, n_in, cols - p["col0"], p["g_min"], p["g_max"], w_max, p["layout"])
        region = Region(p["row0"], p["col0"], n_in, mapping.columns(n_out))
        region.check_within((rows, cols), "mvm: matrix region")
        v_list = [float(v) for v in (p["v_ins"] or [p["v_in"]])]
        v_top = max(v_list)
        if v_top > board_limit(board, "max_mvm_voltage", v_top):
            raise ConfigError(f"mvm: input range {v_top:g} V exceeds the board's max_mvm_voltage")

        # progress: one unit per cell settled by write-verify, then one per input vector (a stable total)
        sizes = [int(s) for s in p["sizes"]] or [0]
        dirs = ["forward", "transpose"] if p["direction"] == "both" else [p["direction"]]
        combos = [(v, s, d) for v in v_list for s in sizes for d in dirs]
        cells = n_in * mapping.columns(n_out)
        self._total = cells + len(combos) * p["vectors"]
        settled = 0

        def wv_progress(rnd: int, active: int) -> None:
            nonlocal settled
            settled = max(settled, cells - active)
            self.report(settled, self._total, f"write-verify round {rnd}: {settled}/{cells} cells settled",
                        cells_settled=settled, write_verify_round=rnd)

        # 1. program
        self.checkpoint()
        self.report(0, self._total, f"programming the matrix: write-verify of {cells} cells")
        arr_rows = np.arange(region.row0, region.row0 + n_in)
        arr_cols = np.arange(region.col0, region.col0 + mapping.columns(n_out))
        outcome: ProgrammingOutcome = program_weights(
            self.station, board, arr_rows, arr_cols, mapping, w,
            pulse=PulseSpec(p["pulse_amplitude"], p["pulse_width"]),
            tolerance=p["tolerance"] * (p["g_max"] - p["g_min"]),
            checkpoint=self.checkpoint, progress=wv_progress,
        )
        correction = defect_correction(mapping, outcome, w) if p["defect_correction"] else None
        # what the operator computes: the programmed weights plus the digital correction of defects
        programmed = mapping.to_weights(outcome.achieved) + (correction if correction is not None else 0.0)
        self.recorder.add_calibration(
            "mvm-programming", "write_verify",
            {"targets": outcome.targets, "achieved": outcome.achieved, "within": outcome.within.astype(np.int8)},
            {**outcome.summary(), "layout": mapping.layout, "row0": region.row0, "col0": region.col0},
        )
        self.commit("programmed", **outcome.summary())

        # 2. MVMs
        self._units_done = cells
        self.report(cells, self._total, f"programmed ({outcome.summary().get('yield', float('nan')):.1%} yield); "
                    "calibrating the read-out")
        stream = self.recorder.stream(
            "mvm_vectors",
            columns=["case", "n_out", "n_in", "v_in", "transpose", "input_magnitude", "rel_error",
                     "rel_error_programmed"],
            units=["1", "1", "1", "V", "1", "1", "1", "1"],
        )
        result = MvmResult(w, programmed, outcome.summary(), mapping.layout)
        g_sum = float(np.max(np.sum(outcome.achieved, axis=0)))
        total_mvms = 0
        for k, (v_in, size, direction) in enumerate(combos):
            self.checkpoint()
            n_o, n_i = (size, size) if size else (n_out, n_in)
            enc = InputEncoding(p["encoding"], v_in, p["bits"])
            full_scale = p["tia_range"] or 1.2 * max(g_sum * v_in, 1e-9)
            with tia_range(self.station, board, full_scale):
                op = ArrayMatrix(board, region, mapping, n_out, n_in, encoding=enc, full_scale=1.0,
                                 correction=correction)
                if not p["tia_range"]:
                    autorange(board, [op], station_defaults(self.station)[0])
                op.measure_offsets()
                if direction == "transpose":
                    row_g, col_g = op.calibrate_transpose(outcome.achieved)
                    self.recorder.add_calibration(f"mvm-transpose-gains-{k}", "transpose_gains",
                                                  {"row_gain": row_g, "col_gain": col_g}, {"v_in": v_in})
                case = self._run_case(op, w, programmed, n_o, n_i, v_in, direction, rng)
            total_mvms += op.mvms
            result.cases.append(case)
            rows_out = np.column_stack([
                np.full(len(case.rel_error), k), np.full(len(case.rel_error), n_o), np.full(len(case.rel_error), n_i),
                np.full(len(case.rel_error), v_in), np.full(len(case.rel_error), direction == "transpose"),
                case.input_magnitude, case.rel_error, case.rel_error_programmed,
            ]).astype(float)
            stream.append(rows_out)
            self.recorder.stream(f"per_output_rmse/{k}", shape=(len(case.per_output_rmse),), units="1").append(
                case.per_output_rmse[np.newaxis]
            )
            self.recorder.stream(f"outputs/{k}", columns=["expected", "measured"], units=["1", "1"]).append(
                case.outputs)
            self.commit(f"case-{k}", n_out=n_o, n_in=n_i, v_in=v_in, direction=direction,
                        median_rel_error=case.median_rel_error, effective_bits=case.effective_bits)
            self.report(self._units_done, self._total, f"case {k + 1}/{len(combos)}, {n_o}x{n_i} at {v_in:g} V "
                        f"{direction}: median error {case.median_rel_error:.3%}",
                        median_rel_error=case.median_rel_error)
        result.mvms = total_mvms
        result.instrument_time = instrument_time(self.station) - t0
        return result

    def _run_case(
        self, op: ArrayMatrix, w: np.ndarray, programmed: np.ndarray, n_o: int, n_i: int, v_in: float,
        direction: str, rng: np.random.Generator,
    ) -> MvmCase:
        n = self.params["vectors"]
        transpose = direction == "transpose"
        length = n_o if transpose else n_i
        mags = np.geomspace(0.03, 1.0, n)
        errs, errs_p, out_err, pairs = np.empty(n), np.empty(n), [], []
        for t in range(n):
            self.checkpoint()
            x = rng.uniform(-1.0, 1.0, length)
            x *= mags[t] / np.max(np.abs(x))
            if transpose:
                full = np.zeros(op.n_out)
                full[:n_o] = x
                y = op.rmatvec(full)[:n_i]
                ref, ref_p = w[:n_o, :n_i].T @ x, programmed[:n_o, :n_i].T @ x
            else:
                full = np.zeros(op.n_in)
                full[:n_i] = x
                y = op.matvec(full)[:n_o]
                ref, ref_p = w[:n_o, :n_i] @ x, programmed[:n_o, :n_i] @ x
            scale = float(np.linalg.norm(ref)) or 1.0
            errs[t] = float(np.linalg.norm(y - ref)) / scale
            errs_p[t] = float(np.linalg.norm(y - ref_p)) / (float(np.linalg.norm(ref_p)) or 1.0)
            out_err.append(y - ref)
            pairs.append(np.column_stack([ref, y]))
            self._units_done += 1
            if t < n - 1:  # the last vector is reported with the case's result
                self.report(self._units_done, self._total,
                            f"{n_o}x{n_i} {direction} at {v_in:g} V: vector {t + 1}/{n}")
        rmse = np.sqrt(np.mean(np.square(out_err), axis=0))
        return MvmCase(n_o, n_i, v_in, direction, errs, errs_p, mags, rmse, np.concatenate(pairs))


# -- command line -------------------------------------------------------------------------------------
def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``xbarlab mvm`` on an argparse subparsers object; the handler is ``cli_main``."""
    p = subparsers.add_parser("mvm", help="MVM accuracy of a programmed matrix against the digital product")
    add_run_arguments(p)
    add_param_options(p, MvmExperiment.params_spec, many=("v_in",))  # --v-in 0.1 0.2: sweep input ranges
    p.set_defaults(handler=cli_main)
    return p


def cli_main(args: argparse.Namespace) -> int:
    params = params_from_args(args, MvmExperiment.params_spec)
    if "v_in" in params:
        v_ins = params.pop("v_in")
        params["v_in"] = v_ins[0]
        if len(v_ins) > 1:
            params["v_ins"] = list(v_ins)
    result = run_cli_experiment(MvmExperiment, args, params)
    print(result.table())
    print("median relative error vs input magnitude (max|x|, 1 = full scale):")
    for c in result.cases:
        bins = "  ".join(f"[{lo:.2f},{hi:.2f}) {e:.4f}" for lo, hi, e in c.error_vs_magnitude(3))
        print(f"  {c.n_out}x{c.n_in} {c.v_in:g} V {c.direction:<9} {bins}")
    print(f"write-verify: yield {result.programming['yield']:.1%}, {result.mvms} MVMs, "
          f"{result.instrument_time:.2f} s instrument time")
    return 0
