"""Benchmark: linear systems on the simulated array.

A 64×64 symmetric positive-definite system with condition number ≈ 100 (random orthogonal
eigenvectors, eigenvalues geometric in [1, 100]) on a simulated 64×128 RRAM 1T1R array (the
matrix as differential column pairs):

* mixed-precision iterative refinement with CG inner solves on the array (Le Gallo et al. 2018);
* the one-step closed-loop solve (Sun et al. 2019) through the board's feedback mode, alone
  (``one_step_rel_error``) and as the refinement's inner solver.

Usage: ``python benchmarks/linear_solve.py [--quick]``; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

import numpy as np

from xbarlab.experiments.closed_loop import ClosedLoopExperiment
from xbarlab.experiments.linear_solve import LinearSolveExperiment
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text


def device_parameters(station: Station) -> dict[str, Any]:
    """The simulated device model and array parameters, for the report."""
    model = station.sim.model
    device = getattr(model, "device", None)
    out: dict[str, Any] = {"model": type(device).__name__}
    if dataclasses.is_dataclass(device):
        out.update({k: v for k, v in dataclasses.asdict(device).items() if isinstance(v, (int, float, str, bool))})
    elif device is not None:
        out.update({k: v for k, v in vars(device).items() if isinstance(v, (int, float, str, bool))})
    for key in ("rows", "cols", "kind", "wire_resistance", "stuck_fraction"):
        if hasattr(model, key):
            out[f"array_{key}"] = getattr(model, key)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller system (32x32), for a run under a minute")
    args = ap.parse_args(argv)
    n = 32 if args.quick else 64
    seed = 2026
    text = sim_station_text(rows=n, cols=2 * n, device="rram", seed=seed, stuck_fraction=0.0)
    out: dict[str, Any] = {"n": n, "condition": 100.0, "seed": seed}
    t_wall = time.perf_counter()

    common = {"n": n, "condition": 100.0, "seed": seed, "tol": 1e-10, "max_outer": 80}
    with Station.from_text(text) as station:
        out["device"] = device_parameters(station)
        r = LinearSolveExperiment(station, {**common, "inner": "cg"}).run()
        out.update({
            "refinement_residual": r.relative_residual,
            "outer_iterations": r.outer_iterations,
            "analog_mvms": r.analog_mvms,
            "refinement_converged": r.converged,
            "refinement_residuals": [float(x) for x in r.residuals],
            "cg_first_inner_rel_error": r.first_inner_rel_error,
            "matrix_programming_rel_error": r.programming.get("matrix_error_rel"),
            "programming_yield": r.programming.get("yield"),
            "refinement_instrument_time_s": r.instrument_time,
            "stop_reason": r.stop_reason,
        })
    with Station.from_text(text) as station:
        one = ClosedLoopExperiment(station, {"n": n, "condition": 100.0, "seed": seed, "rhs": 5}).run()
        out["one_step_rel_error"] = one.median_rel_error
        out["one_step_settle_time_s"] = one.settle_time / max(one.operations, 1)
    with Station.from_text(text) as station:
        cl = LinearSolveExperiment(station, {**common, "inner": "closed_loop"}).run()
        out.update({
            "closed_loop_refinement_residual": cl.relative_residual,
            "closed_loop_outer_iterations": cl.outer_iterations,
            "closed_loop_operations": cl.analog_mvms,
            "closed_loop_first_rel_error": cl.first_inner_rel_error,
        })
    with Station.from_text(sim_station_text(rows=16, cols=32, device="rram", seed=seed, stuck_fraction=0.0)) as st:
        eig = ClosedLoopExperiment(st, {"n": 16, "condition": 10.0, "seed": seed, "mode": "eigenvector"}).run()
        out["eigenvector_overlap_16x16"] = eig.eigen_overlap
        out["eigenvalue_rel_error_16x16"] = eig.eigenvalue_rel_error
    out["wall_s"] = time.perf_counter() - t_wall
    out["goal_residual_1e-10_met"] = bool(out["refinement_residual"] <= 1e-10)
    return out


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    sys.exit(0)
