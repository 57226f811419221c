"""One-step closed-loop solve and eigenvector (Sun et al., PNAS 116, 4123 (2019)).

The board's feedback mode puts the array in the feedback path of operational amplifiers: in
*solve* mode the op-amp outputs settle to V with A_G·V = −g_in·U (A_G = G⁺ − G⁻ of the
programmed block, U the input voltages, g_in the board's input conductance); in *eigenvector*
mode a loop with feedback conductance g_λ amplifies the eigenvector whose eigenvalue exceeds
g_λ until the outputs saturate. The host side here:

* :class:`ClosedLoopSolver` maps a right-hand side onto input voltages with automatic ranging
  (no output at a rail, outputs using a good part of the range) and converts the output
  voltages back to x; it is also an inner solver for the refinement loop of
  :mod:`xbarlab.experiments.linear_solve` (one closed-loop operation per correction);
* :class:`ClosedLoopExperiment` (campaign step ``closed_loop_solve``) programs a matrix and
  reports accuracy against numpy for either mode.

The feedback mode is a board capability beyond :class:`~xbarlab.instruments.interfaces.CrossbarArray`:
the object passed as ``closed_loop`` (or the board itself) must offer
``closed_loop_solve(inputs, *, row0, col0, layout)`` and
``closed_loop_eigen(g_lambda, n, *, row0, col0, layout)``, each returning an object with
``voltages`` (V), ``saturated``, ``settle_time`` (s), ``stable`` and ``input_conductance`` (S).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError, InstrumentError
from xbarlab.experiments.analog import ArrayMatrix, InputEncoding, Region, WeightMapping, autorange, fit_problems
from xbarlab.experiments.base import Estimate, Experiment, Param, PlotSpec, register
from xbarlab.experiments.param_groups import CONDUCTANCE_WINDOW, PLACEMENT, PROGRAMMING
from xbarlab.experiments.programming import program_weights
from xbarlab.experiments.solvers import InnerResult
from xbarlab.experiments.support import (
    array_shape,
    bench_timing,
    board_limit,
    instrument_time,
    station_defaults,
    tia_range,
)
from xbarlab.experiments.systems import load_system
from xbarlab.experiments.update_rules import PulseSpec
from xbarlab.instruments.interfaces import ClosedLoop, CrossbarArray, require

MODES = ("solve", "eigenvector")


class ClosedLoopSolver:
    """Host side of a feedback-mode board: ranging, unit conversion, inner-solver adapter."""

    def __init__(self, device: ClosedLoop | object, *, max_input: float = 0.2) -> None:
        """``device``: a feedback-mode board or circuit (a CapabilityError names one without it)."""
        self.device = require(device, ClosedLoop)
        self.max_input = float(max_input)  # V, largest input voltage we apply
        self.region: Region | None = None
        self.mapping: WeightMapping | None = None
        self.fraction = 1.0  # of max_input used for the last solve (ranging memory)
        self.zero: np.ndarray | None = None  # V, outputs with zero input (offsets), subtracted when known
        self.operations = 0
        self.settle_time = 0.0  # s, accumulated
        self.retries = 0

    @classmethod
    def from_board(cls, board: CrossbarArray) -> ClosedLoopSolver:
        """Use the board's own feedback mode (its driver must offer the closed-loop commands)."""
        return cls(board, max_input=board_limit(board, "max_mvm_voltage", 0.2))

    def bind(self, region: Region, mapping: WeightMapping, *, auto_zero: bool = True) -> None:
        """The block holding the matrix and its weight ↔ conductance mapping (differential only).

        ``auto_zero``: settle once with all inputs at 0 V and subtract those outputs from every
        later solve (the response to the op-amp and inverter offsets; the circuit is linear, so
        it superposes). One extra operation.
        """
        if mapping.layout != "differential":
            raise ConfigError("the closed-loop circuit needs the differential layout (column pairs)")
        self.region, self.mapping = region, mapping
        self.zero = None
        if auto_zero:
            reading = self.device.closed_loop_solve(np.zeros(region.rows), **self._where())
            self.operations += 1
            self.settle_time += float(reading.settle_time)
            if reading.stable and not np.any(reading.saturated):
                self.zero = np.asarray(reading.voltages, dtype=float)

    def _where(self) -> dict[str, Any]:
        if self.region is None or self.mapping is None:
            raise ConfigError("ClosedLoopSolver: bind() a programmed region first")
        return {"row0": self.region.row0, "col0": self.region.col0, "layout": "differential"}

    def solve(self, b: np.ndarray) -> tuple[np.ndarray, Any]:
        """x ≈ A⁻¹·b in one closed-loop operation (plus ranging retries). Returns (x, reading)."""
        where = self._where()
        assert self.mapping is not None
        b = np.asarray(b, dtype=float)
        peak = float(np.max(np.abs(b)))
        if peak == 0.0:
            return np.zeros_like(b), None
        reading = None
        for _attempt in range(10):
            c = self.max_input * self.fraction / peak  # U = −c·b
            reading = self.device.closed_loop_solve(-c * b, **where)
            self.operations += 1
            self.settle_time += float(reading.settle_time)
            if not reading.stable:
                raise InstrumentError("closed-loop", 0, "the feedback circuit is unstable for this matrix "
                                      "(D⁻¹A has eigenvalues with non-positive real part)")
            v = np.asarray(reading.voltages, dtype=float)
            if self.zero is not None:
                v = v - self.zero
            if np.any(reading.saturated):
                self.fraction *= 0.3
                self.retries += 1
                continue
            peak_v = float(np.max(np.abs(v)))
            rail_guess = self._rail(reading)
            if peak_v < 0.3 * rail_guess and self.fraction < 1.0:
                self.fraction = min(1.0, self.fraction * 0.6 * rail_guess / max(peak_v, 1e-12))
                self.retries += 1
                continue
            return v * self.mapping.unit / (float(reading.input_conductance) * c), reading
        assert reading is not None
        raise InstrumentError("closed-loop", 0, "could not range the closed-loop solve (outputs at the rails)")

    @staticmethod
    def _rail(reading: Any) -> float:
        return float(reading.rail) or 0.5

    def inner_solver(self, r: np.ndarray) -> InnerResult:
        """Refinement inner solver: one closed-loop solve per correction."""
        before = self.operations
        x, _ = self.solve(r)
        return InnerResult(x, 1, self.operations - before, True, float("nan"))

    def eigenvector(self, g_lambda: float, n: int) -> tuple[np.ndarray, Any]:
        """(unit-norm output vector, reading) of the eigenvector mode at feedback conductance g_λ (S)."""
        reading = self.device.closed_loop_eigen(g_lambda, n, **self._where())
        self.operations += 1
        self.settle_time += float(reading.settle_time)
        v = np.asarray(reading.voltages, dtype=float)
        norm = float(np.linalg.norm(v))
        return (v / norm if norm > 0 else v), reading


def arnoldi_largest(
    matvec: Any, n: int, *, steps: int = 20, seed: int = 0, checkpoint: Any = None
) -> float:
    """Largest real part among the Ritz values of ``steps`` Arnoldi iterations (one product each)."""
    rng = np.random.default_rng(seed)
    q = np.zeros((steps + 1, n))
    h = np.zeros((steps + 1, steps))
    q[0] = rng.normal(size=n)
    q[0] /= np.linalg.norm(q[0])
    k_done = 0
    for k in range(steps):
        if checkpoint is not None:
            checkpoint()
        w = np.asarray(matvec(q[k]), dtype=float)
        for _ in range(2):  # twice is enough (Kahan): keeps the basis orthogonal despite noisy products
            coeffs = q[: k + 1] @ w
            w = w - coeffs @ q[: k + 1]
            h[: k + 1, k] += coeffs
        h[k + 1, k] = float(np.linalg.norm(w))
        k_done = k + 1
        if h[k + 1, k] <= 1e-12 * float(np.abs(h[: k + 1, k]).max() or 1.0):
            break
        q[k + 1] = w / h[k + 1, k]
    ritz = np.linalg.eigvals(h[:k_done, :k_done])
    return float(np.max(ritz.real))


@dataclass
class ClosedLoopResult:
    mode: str
    n: int
    rel_errors: np.ndarray  # solve: ‖x − x_numpy‖/‖x_numpy‖ per right-hand side
    eigen_overlap: float = float("nan")  # |v·e₁| with numpy's principal eigenvector
    eigenvalue_rel_error: float = float("nan")  # |λ measured on the bench (MVM of the found vector) − λ₁|/|λ₁|
    settle_time: float = 0.0  # s, circuit time of all operations
    operations: int = 0
    programming: dict[str, Any] = field(default_factory=dict)
    instrument_time: float = 0.0

    @property
    def median_rel_error(self) -> float:
        return float(np.median(self.rel_errors)) if self.rel_errors.size else float("nan")


@register
class ClosedLoopExperiment(Experiment):
    """One-step solve of A·x = b, or the principal eigenvector, with the array in op-amp feedback."""

    kind = "closed_loop_solve"
    revision = 2  # 2: programs A^T (op-amp rows collect A·V), write-verify of revision 2 (1: older logs)
    title = "One-step closed-loop solve / eigenvector (Sun et al. 2019)"
    plots = (PlotSpec("closed_loop_solve", "rhs", ("rel_error",), "1", "1", "relative error per right-hand side"),
             PlotSpec("closed_loop_eigen", "g_lambda", ("overlap",), "S", "1", "eigenvector overlap"))
    params_spec = (
        Param("mode", str, "solve", choices=MODES),
        Param("matrix", str, "spd", help="'spd' (random SPD) or a .npy / .npz (A, b) file"),
        Param("n", int, 16, min=1),
        Param("condition", float, 10.0, min=1.0),
        Param("rhs", int, 10, min=1, max=100000, help="right-hand sides to solve (solve mode)"),
        Param("absolute", bool, True, help="program true conductances (SMU-referenced read gains)"),
        Param("margin", float, 0.97, min=0.5, max=0.999, help="g_lambda = margin * estimated largest eigenvalue"),
        *CONDUCTANCE_WINDOW(),
        *PROGRAMMING(tolerance=0.005),
        *PLACEMENT(),
    )

    def __init__(self, *args: Any, closed_loop: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed_loop = closed_loop

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        if params["matrix"] != "spd":  # a matrix file's size is known once it is read
            return []
        return fit_problems(array_shape(station_config), params["n"], params["n"], params["row0"], params["col0"],
                            "differential", where)

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        t = bench_timing(station_config)
        n = params["n"]
        op_time = t.closed_loop
        if params["mode"] == "solve":
            ops, mvms = int(1.5 * params["rhs"]) + 1, 0
        else:
            ops, mvms = 4, min(n, 20) + 20  # Arnoldi products on the array + calibration, then the eigen mode
        time = t.write_verify(2 * n * n, params["tolerance"], rows=n) + ops * op_time + mvms * t.mvm
        if params["absolute"]:
            time += t.read_calibration
        return Estimate(operations=ops + mvms, instrument_time=time,
                        detail=f"write-verify of {2 * n * n} cells, {ops} closed-loop operations, {mvms} MVMs")

    def execute(self) -> ClosedLoopResult:
        p = self.params
        board = self.station.require_board()
        t0 = instrument_time(self.station)
        a, b0 = load_system(p["matrix"], p["n"], p["condition"], p["seed"])
        n = a.shape[0]
        rows, cols = board.shape
        w_max = float(np.max(np.abs(a))) or 1.0
        mapping = WeightMapping(p["g_min"], p["g_max"], w_max, "differential")
        region = Region(p["row0"], p["col0"], n, 2 * n)
        region.check_within((rows, cols), f"{self.kind}: matrix region")
        solver = self.closed_loop if self.closed_loop is not None else ClosedLoopSolver.from_board(board)
        if not isinstance(solver, ClosedLoopSolver):
            solver = ClosedLoopSolver(solver, max_input=board_limit(board, "max_mvm_voltage", 0.2))
        self.checkpoint()
        self.report(0, 2, f"programming the {n}x{n} matrix (write-verify)")
        # the mapping stores W (outputs x inputs) as rows = inputs; op-amp row i must collect sum_j A_ij V_j,
        # so the weights programmed are A^T (invisible for symmetric A, wrong by ~30 % for a triangular one)
        outcome = program_weights(
            self.station, board, np.arange(region.row0, region.row0 + n), np.arange(region.col0, region.col0 + 2 * n),
            mapping, a.T, pulse=PulseSpec(p["pulse_amplitude"], p["pulse_width"]),
            tolerance=p["tolerance"] * (p["g_max"] - p["g_min"]), checkpoint=self.checkpoint, absolute=p["absolute"],
        )
        self.recorder.add_calibration(f"{self.kind}-programming", "write_verify",
                                      {"targets": outcome.targets, "achieved": outcome.achieved}, outcome.summary())
        self.commit("programmed", **outcome.summary())
        solver.bind(region, mapping)
        result = ClosedLoopResult(p["mode"], n, np.zeros(0), programming=outcome.summary())
        rng = np.random.default_rng(p["seed"] + 7)
        if p["mode"] == "solve":
            stream = self.recorder.stream("closed_loop_solve", columns=["rhs", "rel_error", "settle_time"],
                                          units=["1", "1", "s"])
            errs = []
            for k in range(p["rhs"]):
                self.checkpoint()
                b = b0 if k == 0 else rng.normal(size=n)
                x_ref = np.linalg.solve(a, b)
                x, reading = solver.solve(b)
                err = float(np.linalg.norm(x - x_ref) / np.linalg.norm(x_ref))
                errs.append(err)
                stream.append(np.array([[k, err, float(reading.settle_time) if reading is not None else 0.0]]))
                self.report(k + 1, p["rhs"], f"rhs {k + 1}: relative error {err:.3%}", rel_error=err)
            result.rel_errors = np.array(errs)
            self.commit("solved", median_rel_error=result.median_rel_error)
        else:
            self._eigen(board, a, mapping, region, solver, result)
        result.settle_time, result.operations = solver.settle_time, solver.operations
        result.instrument_time = instrument_time(self.station) - t0
        return result

    def _eigen(
        self, board: CrossbarArray, a: np.ndarray, mapping: WeightMapping, region: Region, solver: ClosedLoopSolver,
        result: ClosedLoopResult,
    ) -> None:
        n = a.shape[0]
        lam, vec = np.linalg.eigh(0.5 * (a + a.T))
        e1, lam1 = vec[:, -1], float(lam[-1])
        # largest eigenvalue from an Arnoldi run with its products on the same block (analog MVMs)
        v_in = min(0.2, board_limit(board, "max_mvm_voltage", 0.2))
        g_sum = float(np.max(np.sum(mapping.to_conductance(a), axis=0)))
        with tia_range(self.station, board, 1.2 * g_sum * v_in):
            op = ArrayMatrix(board, region, mapping, n, n, encoding=InputEncoding("amplitude", v_in))
            autorange(board, [op], station_defaults(self.station)[0])
            op.measure_offsets()
            lam_est = arnoldi_largest(op.matvec, n, steps=min(n, 20), seed=self.params["seed"],
                                      checkpoint=self.checkpoint)
        stream = self.recorder.stream("closed_loop_eigen", columns=["g_lambda", "overlap", "settled"],
                                      units=["S", "1", "1"])
        margin = self.params["margin"]
        out, reading = np.zeros(n), None
        for _attempt in range(4):
            self.checkpoint()
            g_lambda = margin * lam_est * mapping.unit
            out, reading = solver.eigenvector(g_lambda, n)
            overlap = float(abs(out @ e1))
            stream.append(np.array([[g_lambda, overlap, float(bool(reading.stable))]]))
            if reading.stable:
                break
            margin *= 0.95  # nothing grew: the estimate was high; lower the feedback conductance
        result.eigen_overlap = float(abs(out @ e1))
        # the eigenvalue as the bench measures it: the found vector through an analog MVM of the same block,
        # λ = vᵀ(A v)_measured / vᵀv (the Rayleigh quotient with the exact matrix is kept only as a reference)
        norm2 = float(out @ out)
        if norm2 > 0:
            with tia_range(self.station, board, 1.2 * g_sum * v_in):
                av = np.asarray(op.matvec(out), dtype=float)
            lam_measured = float(out @ av) / norm2
        else:
            lam_measured = float("nan")
        rayleigh_exact = float(out @ a @ out) / norm2 if norm2 > 0 else float("nan")
        result.eigenvalue_rel_error = abs(lam_measured - lam1) / abs(lam1)
        result.rel_errors = np.array([float(np.linalg.norm(np.sign(out @ e1) * out - e1))])
        self.commit("eigenvector", overlap=result.eigen_overlap, eigenvalue_rel_error=result.eigenvalue_rel_error,
                    lambda_estimate=lam_est, lambda_measured=lam_measured, lambda_exact=lam1,
                    rayleigh_with_exact_matrix=rayleigh_exact)
        self.report(1, 1, f"eigenvector overlap {result.eigen_overlap:.4f}")
