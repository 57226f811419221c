"""Linear systems on the array: mixed-precision iterative refinement with analog inner solves.

Le Gallo et al., "Mixed-precision in-memory computing", Nature Electronics 1, 246 (2018): the
matrix is programmed once into the array; an inner solver (CG for symmetric positive-definite
systems, GMRES otherwise, or the one-step closed-loop circuit of Sun et al. 2019) computes a
low-precision correction with its matrix–vector products on the array, and a float64 outer loop
on the host updates the solution and recomputes the residual exactly. The final accuracy is
set by the float64 arithmetic; the array does the O(n²) work.

Optionally the diagonal stays digital (``digital_diagonal``): the array holds only the
off-diagonal part, whose smaller range maps onto the same conductance window with a smaller
weight step, and the host adds d⊙x (n multiply-adds) to every product.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.experiments.analog import (
    ENCODINGS,
    ArrayMatrix,
    InputEncoding,
    Region,
    WeightMapping,
    autorange,
    choose_mapping,
    fit_problems,
)
from xbarlab.experiments.base import Estimate, Experiment, Param, PlotSpec, register
from xbarlab.experiments.cli_options import add_param_options, format_value, params_from_args
from xbarlab.experiments.closed_loop import ClosedLoopExperiment, ClosedLoopSolver
from xbarlab.experiments.param_groups import CONDUCTANCE_WINDOW, MVM_INPUT, PLACEMENT, PROGRAMMING
from xbarlab.experiments.programming import defect_correction, program_weights
from xbarlab.experiments.solvers import InnerResult, RefinementStep, cg, gmres, iterative_refinement
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
from xbarlab.experiments.systems import load_system, spd_matrix  # noqa: F401 - spd_matrix: its older import path
from xbarlab.experiments.update_rules import PulseSpec
from xbarlab.instruments.interfaces import CrossbarArray

INNER_SOLVERS = ("cg", "gmres", "closed_loop")


class OffsetDiagonalOperator:
    """An array operator for A − diag(d) plus the digital diagonal: y = op(x) + d⊙x."""

    def __init__(self, op: ArrayMatrix, diagonal: np.ndarray) -> None:
        self.op = op
        self.d = np.asarray(diagonal, dtype=float)

    @property
    def shape(self) -> tuple[int, int]:
        return self.op.shape

    @property
    def mvms(self) -> int:
        return self.op.mvms

    def matvec(self, x: np.ndarray) -> np.ndarray:
        return self.op.matvec(x) + self.d * x


@dataclass
class LinearSolveResult:
    """Outcome of a refinement run."""

    x: np.ndarray
    converged: bool
    relative_residual: float
    outer_iterations: int
    analog_mvms: int  # physical MVM commands (or closed-loop solves) on the array
    residuals: np.ndarray  # relative residual after each outer iteration
    stop_reason: str
    inner: str
    first_inner_rel_error: float  # ‖z₁ − A⁻¹b‖/‖A⁻¹b‖ of the first (purely analog) inner solve
    programming: dict[str, Any] = field(default_factory=dict)
    instrument_time: float = 0.0  # s
    history: list[RefinementStep] = field(default_factory=list)


_LIMITS = {"v_in": "max_mvm_voltage", "pulse_amplitude": "max_pulse_amplitude"}


@register
class LinearSolveExperiment(Experiment):
    """Mixed-precision iterative refinement with the inner solver's products on the array."""

    kind = "linear_solve"
    revision = 2  # 2: programs with write-verify of revision 2 (1: older logs)
    title = "Linear system: mixed-precision iterative refinement on the array"
    plots = (PlotSpec("refinement", "iteration", ("relative_residual",), "1", "1", "refinement"),)
    params_spec = (
        Param("matrix", str, "spd", help="'spd' (random SPD) or a .npy / .npz (A, b) file"),
        Param("n", int, 64, min=1, help="size of the random SPD system"),
        Param("condition", float, 100.0, min=1.0, help="condition number of the random SPD system"),
        Param("inner", str, "cg", choices=INNER_SOLVERS, help="inner solver"),
        Param("inner_tol", float, 0.1, min=1e-6, max=0.99, help="inner relative residual target"),
        Param("inner_maxiter", int, 8, min=1, max=10000, help="inner iterations per outer step"),
        Param("tol", float, 1e-10, min=1e-16, max=0.5, help="outer relative residual target"),
        Param("max_outer", int, 60, min=1, max=10000),
        Param("digital_diagonal", bool, False, help="keep the diagonal digital; the array holds the rest"),
        Param("absolute", bool, True, help="closed-loop inner solver: program true conductances (SMU reference)"),
        Param("defect_correction", bool, True, help="correct failed devices digitally (sparse; MVM solvers)"),
        Param("layout", str, "auto", choices=("auto", "differential", "offset")),
        Param("encoding", str, "amplitude", choices=ENCODINGS),
        Param("bits", int, 8, min=1, max=16),
        *MVM_INPUT(),
        Param("repeats", int, 1, min=1, max=1000, help="MVMs averaged per product"),
        *CONDUCTANCE_WINDOW(),
        *PROGRAMMING(tolerance=0.005),
        *PLACEMENT(),
    )

    def __init__(self, *args: Any, closed_loop: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: a closed-loop solver (``closed_loop.ClosedLoopSolver``) for ``inner = "closed_loop"``;
        #: built from the board's feedback mode when None
        self.closed_loop = closed_loop

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = []
        if params["g_min"] >= params["g_max"]:
            problems.append(f"{where}.g_min = {params['g_min']:g} S must be below g_max = {params['g_max']:g} S")
        problems += board_limit_problems(params, station_config, where, _LIMITS)
        if params["matrix"] == "spd":  # a matrix file's size is known once it is read
            layout = params["layout"]
            if params["inner"] == "closed_loop" and layout == "auto":
                layout = "differential"
            problems += fit_problems(array_shape(station_config), params["n"], params["n"], params["row0"],
                                     params["col0"], layout, where)
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        t = bench_timing(station_config)
        n = params["n"]  # a matrix file's size is not known before it is read
        # residual reduction per outer step, as measured on the simulated RRAM array (~0.1 at κ = 10, ~0.3 at 100)
        rho = min(0.5, 0.1 * math.sqrt(params["condition"] / 10.0))
        outer = min(params["max_outer"], max(1, math.ceil(math.log(params["tol"]) / math.log(rho))))
        cells = n * 2 * n if params["inner"] == "closed_loop" or 2 * n <= t.cols - params["col0"] else n * n
        planes = {"amplitude": 1, "bit_serial": params["bits"], "pulse_width": 2 ** params["bits"] - 1}
        if params["inner"] == "closed_loop":
            ops = int(1.5 * outer) + 1  # one settle per correction, some ranging retries, the auto-zero
            op_time = t.closed_loop
            detail = f"~{outer} outer iterations, ~{ops} closed-loop operations"
        else:
            ops = outer * params["inner_maxiter"] * params["repeats"] * planes[params["encoding"]]
            op_time = t.mvm
            detail = f"~{outer} outer iterations, ~{ops} MVMs"
        time = t.write_verify(cells, params["tolerance"], rows=n) + ops * op_time + 20 * t.mvm
        if params["inner"] == "closed_loop" and params["absolute"]:
            time += t.read_calibration
        return Estimate(operations=ops, instrument_time=time, detail=detail + f", write-verify of {cells} cells")

    # -- steps -------------------------------------------------------------------------------------------
    def _program(self, board: CrossbarArray, a_array: np.ndarray) -> tuple[ArrayMatrix, WeightMapping, dict[str, Any]]:
        p = self.params
        n = a_array.shape[0]
        if p["inner"] == "closed_loop" and not np.allclose(a_array, a_array.T, rtol=1e-12, atol=0.0):
            # the block is programmed for forward MVMs (rows = inputs); its op-amp rows would solve A^T x = r
            raise ConfigError(f"{self.kind}: the closed-loop inner solver needs a symmetric matrix "
                              "(this block is programmed for forward MVMs, so the circuit would solve A^T x = r)")
        rows, cols = board.shape
        w_max = float(np.max(np.abs(a_array))) or 1.0
        layout = p["layout"]
        if p["inner"] == "closed_loop" and layout == "auto":
            layout = "differential"
        mapping = choose_mapping(n, n, cols - p["col0"], p["g_min"], p["g_max"], w_max, layout)
        region = Region(p["row0"], p["col0"], n, mapping.columns(n))
        region.check_within((rows, cols), f"{self.kind}: matrix region")
        arr_rows = np.arange(region.row0, region.row0 + n)
        arr_cols = np.arange(region.col0, region.col0 + mapping.columns(n))
        self.report(0, 1, f"programming the {n}x{n} matrix ({mapping.layout} layout, write-verify)")
        outcome = program_weights(
            self.station, board, arr_rows, arr_cols, mapping, a_array,
            pulse=PulseSpec(p["pulse_amplitude"], p["pulse_width"]),
            tolerance=p["tolerance"] * (p["g_max"] - p["g_min"]),
            checkpoint=self.checkpoint, absolute=p["inner"] == "closed_loop" and p["absolute"],
        )
        correction = defect_correction(mapping, outcome, a_array) if p["defect_correction"] else None
        stored = mapping.to_weights(outcome.achieved) + (correction if correction is not None else 0.0)
        # ‖A_array + correction − A‖₂/‖A‖₂ as read back (the MVMs see the array through the same TIAs)
        summary = {**outcome.summary(), "layout": mapping.layout, "w_max": w_max,
                   "matrix_error_rel": float(np.linalg.norm(stored - a_array, 2) / np.linalg.norm(a_array, 2)),
                   "corrected_entries": int(np.count_nonzero(correction)) if correction is not None else 0}
        self.recorder.add_calibration(
            f"{self.kind}-programming", "write_verify",
            {"targets": outcome.targets, "achieved": outcome.achieved, "within": outcome.within.astype(np.int8)},
            summary,
        )
        self.commit("programmed", **{k: v for k, v in summary.items() if not isinstance(v, str)})
        enc = InputEncoding(p["encoding"], p["v_in"], p["bits"])
        op = ArrayMatrix(board, region, mapping, n, n, encoding=enc, repeats=p["repeats"], correction=correction)
        return op, mapping, summary

    def execute(self) -> LinearSolveResult:
        p = self.params
        board = self.station.require_board()
        t0 = instrument_time(self.station)
        a, b = load_system(p["matrix"], p["n"], p["condition"], p["seed"])
        n = a.shape[0]
        if p["v_in"] > board_limit(board, "max_mvm_voltage", p["v_in"]):
            raise ConfigError(f"{self.kind}: v_in = {p['v_in']:g} V exceeds the board's max_mvm_voltage")
        diag = np.diag(a).copy() if p["digital_diagonal"] else np.zeros(n)
        a_array = a - np.diag(diag)
        self.checkpoint()
        op, mapping, prog = self._program(board, a_array)
        g_sum = float(np.max(np.sum(mapping.to_conductance(a_array), axis=0)))
        stream = self.recorder.stream(
            "refinement",
            columns=["iteration", "residual_norm", "relative_residual", "inner_iterations", "inner_mvms",
                     "correction_norm"],
            units=["1", "1", "1", "1", "1", "1"],
        )
        x_true = np.linalg.solve(a, b)
        first_err: list[float] = []

        with tia_range(self.station, board, 1.2 * g_sum * p["v_in"]):
            autorange(board, [op], station_defaults(self.station)[0])
            op.measure_offsets()
            operator: Any = OffsetDiagonalOperator(op, diag) if p["digital_diagonal"] else op
            inner_fn = self._inner_solver(operator, board, op, mapping, diag)

            def inner(r: np.ndarray) -> InnerResult:
                self.checkpoint()
                res = inner_fn(r)
                if not first_err:  # the first correction solves A·z = b/scale: compare with numpy
                    z = res.x * float(np.max(np.abs(b)))
                    first_err.append(float(np.linalg.norm(z - x_true) / np.linalg.norm(x_true)))
                return res

            def on_step(step: RefinementStep, x: np.ndarray) -> None:
                stream.append(np.array([[step.iteration, step.residual_norm, step.relative_residual,
                                         step.inner_iterations, step.inner_mvms, step.correction_norm]]))
                self.commit(f"outer-{step.iteration}", relative_residual=step.relative_residual,
                            inner_mvms=step.inner_mvms)
                self.report(step.iteration, p["max_outer"], f"outer {step.iteration}: relative residual "
                            f"{step.relative_residual:.3e}", relative_residual=step.relative_residual)
                self.checkpoint()

            res = iterative_refinement(a, b, inner, tol=p["tol"], max_outer=p["max_outer"], on_step=on_step)
        mvms = op.mvms if p["inner"] != "closed_loop" else res.inner_mvms
        self.report(res.outer_iterations, res.outer_iterations, res.stop_reason)
        return LinearSolveResult(
            x=res.x, converged=res.converged, relative_residual=res.relative_residual,
            outer_iterations=res.outer_iterations, analog_mvms=mvms, residuals=res.residuals,
            stop_reason=res.stop_reason, inner=p["inner"], first_inner_rel_error=first_err[0] if first_err else 1.0,
            programming=prog, instrument_time=instrument_time(self.station) - t0, history=res.history,
        )

    def _inner_solver(
        self, operator: Any, board: CrossbarArray, op: ArrayMatrix, mapping: WeightMapping, diag: np.ndarray
    ) -> Any:
        p = self.params
        if p["inner"] == "cg":
            return lambda r: cg(operator, r, tol=p["inner_tol"], maxiter=p["inner_maxiter"])
        if p["inner"] == "gmres":
            return lambda r: gmres(operator, r, tol=p["inner_tol"], maxiter=p["inner_maxiter"])
        if np.any(diag):
            raise ConfigError(f"{self.kind}: the closed-loop inner solver needs the whole matrix on the array "
                              "(digital_diagonal = false)")

        solver = self.closed_loop or ClosedLoopSolver.from_board(board)
        solver.bind(op.region, mapping)
        return solver.inner_solver


# -- command line -------------------------------------------------------------------------------------------
#: options of ``xbarlab solve`` that ``--one-step`` / ``--eigenvector`` pass to the closed-loop experiment
_CLOSED_LOOP_ARGS = ("matrix", "n", "condition", "seed")


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``xbarlab solve``; the handler is ``cli_main``."""
    p = subparsers.add_parser("solve", help="solve A·x = b on the array (mixed-precision iterative refinement)")
    add_run_arguments(p)
    add_param_options(p, LinearSolveExperiment.params_spec, short={"n": "-n"})

    own = ", ".join(f"{s.name} {format_value(s.default)}" for s in ClosedLoopExperiment.params_spec
                    if s.name in _CLOSED_LOOP_ARGS)
    p.add_argument("--one-step", action="store_true",
                   help=f"only the one-step closed-loop solve (feedback mode); takes --{', --'.join(_CLOSED_LOOP_ARGS)}"
                   f" with the closed_loop_solve defaults ({own}) (default: off)")
    p.add_argument("--eigenvector", action="store_true",
                   help="principal eigenvector in the feedback mode, arguments as --one-step (default: off)")
    p.set_defaults(handler=cli_main)
    return p


def cli_main(args: argparse.Namespace) -> int:
    if args.one_step or args.eigenvector:

        mode = "eigenvector" if args.eigenvector else "solve"
        given = params_from_args(args, LinearSolveExperiment.params_spec)
        c = run_cli_experiment(ClosedLoopExperiment, args, {"mode": mode, **{k: v for k, v in given.items()
                                                                             if k in _CLOSED_LOOP_ARGS}})
        if mode == "solve":
            print(f"one-step closed-loop solve: median relative error {c.median_rel_error:.3%} "
                  f"({c.operations} operations, circuit time {c.settle_time * 1e6:.1f} us)")
        else:
            print(f"eigenvector: overlap with numpy {c.eigen_overlap:.5f}, eigenvalue error "
                  f"{c.eigenvalue_rel_error:.3%}")
        return 0

    params = params_from_args(args, LinearSolveExperiment.params_spec)
    r = run_cli_experiment(LinearSolveExperiment, args, params)
    for k, res in enumerate(r.residuals, 1):
        print(f"  outer {k:3d}: relative residual {res:.3e}")
    print(f"{'converged' if r.converged else 'not converged'}: relative residual {r.relative_residual:.3e} after "
          f"{r.outer_iterations} outer iterations, {r.analog_mvms} analog operations ({r.stop_reason})")
    print(f"first analog inner solve: relative error {r.first_inner_rel_error:.3%}; "
          f"instrument time {r.instrument_time:.2f} s")
    return 0 if r.converged else 1
