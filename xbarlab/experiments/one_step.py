"""One-step showcase problems on the closed-loop board (Sun et al., PNAS 116, 4123 (2019)).

Campaign step ``one_step`` with ``problem`` =

* ``schrodinger``: the lowest ``states`` eigenstates of a discretised 1-D Hamiltonian. The array
  holds M = c·I − H (the ground state is M's dominant eigenvector); the eigenvector mode finds it;
  its eigenvalue is MEASURED by an analog MVM of the found vector (μ = v·(Mv)_measured / v·v), the
  energy is c − μ. Each further state deflates the measured states out
  (M_k = M − Σ μ_j·v_j·v_jᵀ, with the measured μ_j and v_j) and reprograms the block.
* ``pagerank``: the dominant eigenvector of the Google matrix of a seeded web graph, ranked and
  compared with the digital PageRank (Kendall's tau, top-10 agreement); eigenvalue measured likewise.
* ``inverse``: A⁻¹ column by column, one closed-loop solve of each unit right-hand side. The
  solve-mode stability condition (eigenvalues of D⁻¹·A_G with positive real parts) is checked from
  the target conductances and the board's reported g_in before programming, and from the read-back
  conductances before the first solve; a matrix the circuit cannot solve stably is refused with one
  message.

Every estimate of λ for the feedback conductance g_λ comes from analog MVMs on the same block
(Arnoldi), never from the exact matrix; the exact matrix is used only to score the answers.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from xbarlab.errors import ConfigError, InstrumentError
from xbarlab.experiments.analog import ArrayMatrix, InputEncoding, Region, WeightMapping, autorange, fit_problems
from xbarlab.experiments.base import Estimate, Experiment, Param, PlotSpec, register
from xbarlab.experiments.cli_options import add_param_options, params_from_args
from xbarlab.experiments.closed_loop import ClosedLoopSolver, arnoldi_largest
from xbarlab.experiments.one_step_plot import plot_result
from xbarlab.experiments.one_step_problems import (
    POTENTIALS,
    closed_loop_stability,
    digital_pagerank,
    google_matrix,
    hamiltonian,
    pagerank_system,
    shifted_for_ground_state,
    top_k_agreement,
    web_graph,
)
from xbarlab.experiments.param_groups import CONDUCTANCE_WINDOW, PLACEMENT, PROGRAMMING
from xbarlab.experiments.programming import program_weights
from xbarlab.experiments.support import (
    add_run_arguments,
    array_shape,
    bench_timing,
    board_limit,
    instrument_time,
    run_cli_experiment,
    station_defaults,
    tia_range,
)
from xbarlab.experiments.systems import load_system
from xbarlab.experiments.update_rules import PulseSpec
from xbarlab.instruments.interfaces import ClosedLoop, CrossbarArray, require

PROBLEMS = ("schrodinger", "pagerank", "inverse")
PAGERANK_CIRCUITS = ("solve", "eigenvector")


@dataclass
class EigenOutcome:
    """One eigenvector-mode run: the unit vector, its measured eigenvalue (weight units) and the circuit's figures."""

    vector: np.ndarray
    eigenvalue: float  # measured: the loop threshold g_λ* over the mapping's S per weight unit
    rayleigh: float  # measured cross-check: v·(Mv)_analog / v·v from analog MVMs
    lambda_estimate: float  # from Arnoldi on analog MVMs, brackets the threshold
    g_lambda: float  # S, of the run that gave the vector
    settle_time: float  # s


@dataclass
class OneStepResult:
    problem: str
    n: int
    overlaps: np.ndarray = field(default_factory=lambda: np.zeros(0))  # |v·e| per state (schrodinger, pagerank)
    energies: np.ndarray = field(default_factory=lambda: np.zeros(0))  # measured (schrodinger)
    energies_exact: np.ndarray = field(default_factory=lambda: np.zeros(0))
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))  # grid (schrodinger)
    wavefunctions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # states × n, analog
    wavefunctions_exact: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    eigenvalue_rel_error: float = float("nan")  # pagerank: |μ − 1|
    kendall_tau: float = float("nan")
    top10: float = float("nan")
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # pagerank, analog (sums to 1)
    scores_exact: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inverse: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    inverse_rel_error: float = float("nan")  # ‖X − A⁻¹‖_F / ‖A⁻¹‖_F
    stability_margin: float = float("nan")  # min Re eig(D⁻¹A_G) of the programmed block
    settle_times: list[float] = field(default_factory=list)  # s, per closed-loop operation that answered
    operations: int = 0
    instrument_time: float = 0.0
    programming: list[dict[str, Any]] = field(default_factory=list)

    @property
    def energy_rel_errors(self) -> np.ndarray:
        return np.abs(self.energies - self.energies_exact) / np.abs(self.energies_exact)


def input_conductance(board: CrossbarArray) -> float:
    """g_in (S) the board reports for its closed-loop inputs (CLOSED_LOOP_INFO)."""
    return float(require(board, ClosedLoop).closed_loop_info().input_conductance)


def line_conductance(g: np.ndarray) -> float:
    """Largest total conductance (S) on one row or column: sets the TIA range for MVMs either way."""
    return float(max(np.max(g.sum(axis=0)), np.max(g.sum(axis=1))))


def stability_problem(a: np.ndarray, conductances: np.ndarray, g_in: float) -> tuple[float, str]:
    """(margin, message): margin = min Re eig(D⁻¹A_G); message is empty when the solve mode is stable."""
    a_g = conductances[:, 0::2] - conductances[:, 1::2]
    margin = closed_loop_stability(a_g, conductances.sum(axis=1), g_in)
    if margin > 0:
        return margin, ""
    return margin, (f"the closed-loop circuit cannot solve this {a.shape[0]}x{a.shape[0]} matrix stably: D^-1 A_G has "
                    f"an eigenvalue with real part {margin:.3g} (needs all > 0; the op-amps would run to "
                    f"the rails). A negative definite A can be inverted as -(-A)^-1")


@register
class OneStepExperiment(Experiment):
    """Schrödinger eigenstates, PageRank or a matrix inverse in one step each on the feedback-mode board."""

    kind = "one_step"
    title = "One-step Schrödinger / PageRank / matrix inverse (Sun et al. 2019)"
    plots = (PlotSpec("wavefunctions", "x", ("psi", "psi_exact"), "1", "1", "wavefunctions"),
             PlotSpec("pagerank", "page", ("score", "score_digital"), "1", "1", "PageRank scores"),
             PlotSpec("inverse_columns", "column", ("rel_error",), "1", "1", "relative error per column"),
             PlotSpec("eigen_runs", "g_lambda", ("grew",), "S", "1", "loop threshold bisection"))
    params_spec = (
        Param("problem", str, "schrodinger", choices=PROBLEMS),
        Param("n", int, 8, min=3, help="grid points (schrodinger), pages (pagerank) or matrix size (inverse)"),
        Param("potential", str, "harmonic", choices=POTENTIALS, help="schrodinger: the well"),
        Param("depth", float, 100.0, min=0.0, help="schrodinger: potential depth in units of hbar^2/(m L^2)"),
        Param("states", int, 3, min=1, max=16, help="schrodinger: lowest states to find"),
        Param("damping", float, 0.85, min=0.01, max=0.99, help="pagerank: damping factor alpha"),
        Param("circuit", str, "eigenvector", choices=PAGERANK_CIRCUITS,
              help="pagerank: 'solve' ((I - alpha S) r = (1 - alpha)/n in solve mode) or 'eigenvector' "
                   "(eigenvector mode on the Google matrix)"),
        Param("matrix", str, "spd", help="inverse: 'spd' (random SPD) or a .npy / .npz (A) file"),
        Param("condition", float, 5.0, min=1.0, help="inverse: condition number of the random SPD matrix"),
        Param("absolute", bool, True, help="program true conductances (SMU-referenced read gains)"),
        Param("margin", float, 0.99, min=0.5, max=0.9999,
              help="eigenvector run at g_lambda = margin * the measured loop threshold"),
        Param("bisections", int, 10, min=1, max=30, help="eigenvector-mode runs that bisect the loop threshold"),
        *CONDUCTANCE_WINDOW(),
        *PROGRAMMING(tolerance=0.005),
        *PLACEMENT(),
    )

    def __init__(self, *args: Any, closed_loop: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed_loop = closed_loop

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = []
        if params["problem"] == "schrodinger" and params["states"] > params["n"]:
            problems.append(f"{where}: states = {params['states']} exceeds the {params['n']} grid points")
        if params["problem"] == "inverse" and params["matrix"] != "spd":
            return problems
        return problems + fit_problems(array_shape(station_config), params["n"], params["n"], params["row0"],
                                       params["col0"], "differential", where)

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        t = bench_timing(station_config)
        n = params["n"]
        programs = params["states"] if params["problem"] == "schrodinger" else 1
        if params["problem"] == "inverse":
            ops, mvms = int(1.5 * n) + 1, 0
        else:
            ops, mvms = programs * (params["bisections"] + 4), programs * (min(n, 20) + 24)
        time = programs * t.write_verify(2 * n * n, params["tolerance"], rows=n) + ops * t.closed_loop + mvms * t.mvm
        if params["absolute"]:
            time += programs * t.read_calibration  # each programming calibrates the read path again
        return Estimate(operations=ops + mvms, instrument_time=time,
                        detail=f"{programs} write-verify of {2 * n * n} cells, {ops} closed-loop operations, "
                               f"{mvms} MVMs")

    # -- shared steps ------------------------------------------------------------------------------------------
    def _solver(self, board: CrossbarArray) -> ClosedLoopSolver:
        solver = self.closed_loop if self.closed_loop is not None else ClosedLoopSolver.from_board(board)
        if not isinstance(solver, ClosedLoopSolver):
            solver = ClosedLoopSolver(solver, max_input=board_limit(board, "max_mvm_voltage", 0.2))
        return solver

    def _program(self, board: CrossbarArray, a: np.ndarray, label: str) -> tuple[Region, WeightMapping, Any]:
        """Write-verify the circuit matrix A: op-amp i's row holds A[i, :], so the MVM weights are W = Aᵀ."""
        p = self.params
        n = a.shape[0]
        mapping = WeightMapping(p["g_min"], p["g_max"], float(np.max(np.abs(a))) or 1.0, "differential")
        region = Region(p["row0"], p["col0"], n, 2 * n)
        region.check_within(tuple(board.shape), f"{self.kind}: matrix region")
        outcome = program_weights(
            self.station, board, np.arange(region.row0, region.row0 + n), np.arange(region.col0, region.col0 + 2 * n),
            mapping, a.T, pulse=PulseSpec(p["pulse_amplitude"], p["pulse_width"]),
            tolerance=p["tolerance"] * (p["g_max"] - p["g_min"]), checkpoint=self.checkpoint, absolute=p["absolute"],
        )
        self.recorder.add_calibration(f"{self.kind}-{label}-programming", "write_verify",
                                      {"targets": outcome.targets, "achieved": outcome.achieved}, outcome.summary())
        self.commit(f"programmed-{label}", **outcome.summary())
        return region, mapping, outcome

    def _eigen(self, board: CrossbarArray, solver: ClosedLoopSolver, a: np.ndarray, label: str,
               result: OneStepResult) -> EigenOutcome:
        """Program ``a``, estimate λ_max by analog Arnoldi, run the eigenvector mode, measure its eigenvalue."""
        n = a.shape[0]
        region, mapping, outcome = self._program(board, a, label)
        result.programming.append(outcome.summary())
        self._programs += 1
        solver.bind(region, mapping, auto_zero=False)
        with self._measured_block(board, region, mapping, a) as op:
            lam_est = arnoldi_largest(op.matvec, n, steps=min(n, 20), seed=self.params["seed"],
                                      checkpoint=self.checkpoint)
            threshold = self._loop_threshold(solver, n, lam_est * mapping.unit, label)
            g_lambda = self.params["margin"] * threshold
            out, reading = self._eigen_run(solver, g_lambda, n)
            if not reading.stable or not np.any(out):
                raise InstrumentError("closed-loop", 0, f"{label}: the eigenvector mode did not settle on a mode "
                                      f"at g_lambda = {g_lambda:.4g} S")
            result.settle_times.append(float(reading.settle_time))
            products = [np.asarray(op.rmatvec(out), dtype=float) for _ in range(2)]  # A·v = Wᵀ·v
        rayleigh = float(out @ np.mean(products, axis=0)) / float(out @ out)
        return EigenOutcome(out, threshold / mapping.unit, rayleigh, lam_est, g_lambda, float(reading.settle_time))

    def _eigen_run(self, solver: ClosedLoopSolver, g_lambda: float, n: int) -> tuple[np.ndarray, Any]:
        """One eigenvector-mode operation, logged (stream ``eigen_runs``)."""
        out, reading = solver.eigenvector(g_lambda, n)
        if self._runs is not None:
            self._runs.append(np.array([[self._programs - 1, g_lambda, float(bool(reading.stable)),
                                         float(reading.settle_time)]]))
        return out, reading

    def _loop_threshold(self, solver: ClosedLoopSolver, n: int, g_guess: float, label: str) -> float:
        """The feedback conductance g_λ (S) at which the eigenvector loop just sustains: λ_max of the
        block as the circuit sees it, by bisection between a g_λ where a mode grows and one where none does."""
        grows, quiet = None, None
        g = g_guess
        for _ in range(12):  # bracket
            self.checkpoint()
            if self._eigen_run(solver, g, n)[1].stable:
                grows = g
                if quiet is not None:
                    break
                g *= 1.05
            else:
                quiet = g
                if grows is not None:
                    break
                g *= 0.9
        if grows is None or quiet is None:
            raise InstrumentError("closed-loop", 0, f"{label}: could not bracket the loop threshold of the "
                                  f"eigenvector mode near g_lambda = {g_guess:.4g} S")
        for _ in range(self.params["bisections"]):
            self.checkpoint()
            mid = 0.5 * (grows + quiet)
            if self._eigen_run(solver, mid, n)[1].stable:
                grows = mid
            else:
                quiet = mid
        return 0.5 * (grows + quiet)

    # -- problems ----------------------------------------------------------------------------------------------
    def execute(self) -> OneStepResult:
        p = self.params
        board = self.station.require_board()
        t0 = instrument_time(self.station)
        solver = self._solver(board)
        result = OneStepResult(p["problem"], p["n"])
        self._runs = self.recorder.stream("eigen_runs", columns=["program", "g_lambda", "grew", "settle_time"],
                                          units=["1", "S", "1", "s"]) if p["problem"] != "inverse" else None
        self._programs = 0
        self.checkpoint()
        getattr(self, f"_{p['problem']}")(board, solver, result)
        result.operations = solver.operations
        result.instrument_time = instrument_time(self.station) - t0
        return result

    def _schrodinger(self, board: CrossbarArray, solver: ClosedLoopSolver, result: OneStepResult) -> None:
        p = self.params
        h, x = hamiltonian(p["n"], p["potential"], p["depth"])
        m, c = shifted_for_ground_state(h)
        energies, vectors = np.linalg.eigh(h)
        stream = self.recorder.stream("schrodinger_states", columns=[
            "state", "energy", "energy_exact", "energy_mvm", "overlap", "eigenvalue", "lambda_estimate", "g_lambda",
            "settle_time"], units=["1", "1", "1", "1", "1", "1", "1", "S", "s"])
        waves = self.recorder.stream("wavefunctions", columns=["state", "x", "psi", "psi_exact"],
                                     units=["1", "1", "1", "1"])
        found: list[EigenOutcome] = []
        overlaps, measured, psi, psi_exact = [], [], [], []
        for k in range(p["states"]):
            self.report(k, p["states"], f"state {k}: programming c*I - H" + (" deflated" if k else ""))
            deflated = m - sum((f.eigenvalue * np.outer(f.vector, f.vector) for f in found), np.zeros_like(m))
            eig = self._eigen(board, solver, deflated, f"state{k}", result)
            found.append(eig)
            exact = vectors[:, k] * np.sign(vectors[int(np.argmax(np.abs(vectors[:, k]))), k])  # largest lobe up
            v = eig.vector * (1.0 if eig.vector @ exact >= 0 else -1.0)
            overlap = float(abs(v @ exact))
            energy = c - eig.eigenvalue
            overlaps.append(overlap)
            measured.append(energy)
            psi.append(v)
            psi_exact.append(exact)
            stream.append(np.array([[k, energy, energies[k], c - eig.rayleigh, overlap, eig.eigenvalue,
                                     eig.lambda_estimate, eig.g_lambda, eig.settle_time]]))
            waves.append(np.column_stack([np.full(p["n"], k), x, v, exact]))
            self.commit(f"state-{k}", overlap=overlap, energy=energy, energy_exact=float(energies[k]))
            self.report(k + 1, p["states"], f"state {k}: overlap {overlap:.4f}, energy {energy:.3f} "
                        f"(exact {energies[k]:.3f})", overlap=overlap)
        result.overlaps, result.energies = np.array(overlaps), np.array(measured)
        result.energies_exact = energies[: p["states"]].copy()
        result.x, result.wavefunctions, result.wavefunctions_exact = x, np.array(psi), np.array(psi_exact)

    def _pagerank(self, board: CrossbarArray, solver: ClosedLoopSolver, result: OneStepResult) -> None:
        p = self.params
        g = google_matrix(web_graph(p["n"], p["seed"]), p["damping"])
        reference = digital_pagerank(g)
        if p["circuit"] == "eigenvector":
            self.report(0, 1, f"programming the Google matrix of a {p['n']}-page web graph")
            eig = self._eigen(board, solver, g, "google", result)
            v, eigenvalue, settle = eig.vector, eig.eigenvalue, eig.settle_time
        else:
            a, b = pagerank_system(g, p["damping"])
            self.report(0, 1, f"programming I - alpha*S of a {p['n']}-page web graph")
            region, mapping, outcome = self._program(board, a, "pagerank")
            result.programming.append(outcome.summary())
            self._check_programmed(board, a, outcome, mapping)
            solver.bind(region, mapping)
            v, reading = solver.solve(b)
            settle = float(reading.settle_time)
            result.settle_times.append(settle)
            eigenvalue = self._measured_google_eigenvalue(board, region, mapping, a, v, p["damping"])
        v = v * (1.0 if v.sum() >= 0 else -1.0)
        scores = v / v.sum()
        result.scores, result.scores_exact = scores, reference
        result.overlaps = np.array([abs(v @ reference) / np.linalg.norm(reference) / np.linalg.norm(v)])
        result.eigenvalue_rel_error = abs(eigenvalue - 1.0)
        result.kendall_tau = float(kendalltau(scores, reference).statistic)
        result.top10 = top_k_agreement(scores, reference, 10)
        stream = self.recorder.stream("pagerank", columns=["page", "score", "score_digital"], units=["1", "1", "1"])
        stream.append(np.column_stack([np.arange(p["n"]), scores, reference]))
        self.commit("pagerank", kendall_tau=result.kendall_tau, top10=result.top10, eigenvalue=eigenvalue,
                    settle_time=settle)
        self.report(1, 1, f"Kendall tau {result.kendall_tau:.3f}, top-10 agreement {result.top10:.0%}",
                    kendall_tau=result.kendall_tau)

    def _measured_google_eigenvalue(self, board: CrossbarArray, region: Region, mapping: WeightMapping, a: np.ndarray,
                                    r: np.ndarray, damping: float) -> float:
        """λ = r·(G·r)/r·r with G·r = r − (A·r)_measured + (1 − α)/n·Σr, A·r by an analog MVM of the block."""
        n = a.shape[0]
        with self._measured_block(board, region, mapping, a) as op:
            ar = np.mean([np.asarray(op.rmatvec(r), dtype=float) for _ in range(2)], axis=0)
        gr = r - ar + (1.0 - damping) / n * float(r.sum())
        return float(r @ gr) / float(r @ r)

    @contextmanager
    def _measured_block(self, board: CrossbarArray, region: Region, mapping: WeightMapping,
                        a: np.ndarray) -> Iterator[ArrayMatrix]:
        """The programmed n × n block of ``a`` as an analog operator for open-loop MVMs: inputs up to 0.2 V
        (or max_mvm_voltage), the TIA range set for the block's largest line current (restored afterwards),
        the ADC autoranged and the column offsets measured."""
        n = a.shape[0]
        v_in = min(0.2, board_limit(board, "max_mvm_voltage", 0.2))
        g_sum = line_conductance(mapping.to_conductance(a.T))
        with tia_range(self.station, board, 1.2 * g_sum * v_in):
            op = ArrayMatrix(board, region, mapping, n, n, encoding=InputEncoding("amplitude", v_in))
            autorange(board, [op], station_defaults(self.station)[0])
            op.measure_offsets()
            yield op

    def _check_programmed(self, board: CrossbarArray, a: np.ndarray, outcome: Any, mapping: WeightMapping) -> float:
        """Solve-mode stability of the block as programmed (read-back conductances); refuse before any solve."""
        margin, problem = stability_problem(a, np.asarray(outcome.achieved, dtype=float), input_conductance(board))
        if problem:
            raise InstrumentError("closed-loop", 0, f"after programming, {problem}")
        return margin

    def _inverse(self, board: CrossbarArray, solver: ClosedLoopSolver, result: OneStepResult) -> None:
        p = self.params
        a, _ = load_system(p["matrix"], p["n"], p["condition"], p["seed"])
        n = a.shape[0]
        result.n = n
        g_in = input_conductance(board)
        mapping = WeightMapping(p["g_min"], p["g_max"], float(np.max(np.abs(a))) or 1.0, "differential")
        _, problem = stability_problem(a, mapping.to_conductance(a.T), g_in)
        if problem:
            raise ConfigError(f"{self.kind}: {problem}")
        self.report(0, n, f"programming the {n}x{n} matrix (write-verify)")
        region, mapping, outcome = self._program(board, a, "matrix")
        result.programming.append(outcome.summary())
        margin = result.stability_margin = self._check_programmed(board, a, outcome, mapping)
        solver.bind(region, mapping)
        stream = self.recorder.stream("inverse_columns", columns=["column", "rel_error", "settle_time"],
                                      units=["1", "1", "s"])
        exact = np.linalg.inv(a)
        cols = []
        for k in range(n):
            self.checkpoint()
            x, reading = solver.solve(np.eye(n)[:, k])
            err = float(np.linalg.norm(x - exact[:, k]) / np.linalg.norm(exact[:, k]))
            result.settle_times.append(float(reading.settle_time))
            cols.append(x)
            stream.append(np.array([[k, err, float(reading.settle_time)]]))
            self.report(k + 1, n, f"column {k + 1}: relative error {err:.3%}", rel_error=err)
        result.inverse = np.column_stack(cols)
        result.inverse_rel_error = float(np.linalg.norm(result.inverse - exact) / np.linalg.norm(exact))
        self.commit("inverse", rel_error=result.inverse_rel_error, stability_margin=margin)


# -- command line -------------------------------------------------------------------------------------------
def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``xbarlab onestep``; the handler is ``cli_main``."""
    p = subparsers.add_parser("onestep", help="one-step Schrödinger eigenstates, PageRank or matrix inverse "
                              "on the closed-loop board (Sun et al. 2019)")
    add_run_arguments(p)
    add_param_options(p, OneStepExperiment.params_spec, short={"n": "-n"})
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="draw the wavefunctions (schrodinger), scores (pagerank) or the inverse into a PNG "
                        "(needs matplotlib) (default: none)")
    p.set_defaults(handler=cli_main)
    return p


def cli_main(args: argparse.Namespace) -> int:
    params = params_from_args(args, OneStepExperiment.params_spec)
    if args.plot is not None and not Path(args.plot).resolve().parent.is_dir():
        raise ConfigError(f"--plot {args.plot}: the folder does not exist")
    r = run_cli_experiment(OneStepExperiment, args, params)
    print(summary(r))
    if args.plot is not None:

        values = {s.name: s.default for s in OneStepExperiment.params_spec}
        print(plot_result(r, {**values, **params}, args.plot))
    return 0


def summary(r: OneStepResult) -> str:
    """Human-readable lines of a result."""
    settle = f"settling {np.mean(r.settle_times) * 1e6:.1f} us per operation" if r.settle_times else ""
    if r.problem == "schrodinger":
        lines = [f"state {k}: overlap {o:.4f}, energy {e:.3f} (numpy {e0:.3f}, error {abs(e - e0) / abs(e0):.2%})"
                 for k, (o, e, e0) in enumerate(zip(r.overlaps, r.energies, r.energies_exact, strict=True))]
    elif r.problem == "pagerank":
        lines = [f"PageRank of {r.n} pages: Kendall tau {r.kendall_tau:.3f}, top-10 agreement {r.top10:.0%}, "
                 f"measured eigenvalue error {r.eigenvalue_rel_error:.2%}"]
    else:
        lines = [f"{r.n}x{r.n} inverse: relative error {r.inverse_rel_error:.3%} "
                 f"(stability margin {r.stability_margin:.3g})"]
    return "\n".join([*lines, f"{settle}; {r.operations} closed-loop operations, "
                      f"instrument time {r.instrument_time:.2f} s"])
