"""Benchmark: the one-step showcase problems of Sun et al. (PNAS 2019) on the simulated feedback-mode board.

On a simulated RRAM 1T1R array (default device, wire resistance and stuck cells of
``sim_station_text``; op-amps of ``OpAmpSpec``: 1 MHz GBW, 0.2 mV offsets, 14-bit output ADC),
each over several seeds (station seed = device variation, problem seed):

* Schrödinger: lowest 3 states of a harmonic well (depth 100 ħ²/(mL²)) on an n-point grid, by
  the eigenvector mode with shift and deflation; overlap with numpy's eigenvectors and relative
  error of the energy measured from the loop threshold;
* PageRank: a seeded web graph, eigenvector mode on the Google matrix (α = 0.85), Kendall's tau
  and top-10 agreement with the digital PageRank; also the solve-mode form (I − αS)·r = (1 − α)/n;
* inverse: an SPD matrix (condition 5) by one-step solves of the unit right-hand sides.

Usage: ``python benchmarks/one_step.py [--quick]``; the last line is one JSON object
(means with standard deviations over the seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from xbarlab.errors import InstrumentError
from xbarlab.experiments.one_step import OneStepExperiment
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "runs": 0}
    return {"mean": float(np.mean(a)), "std": float(np.std(a)), "min": float(np.min(a)), "max": float(np.max(a)),
            "runs": int(a.size)}


REFUSED: list[str] = []


def run(rows: int, cols: int, seed: int, params: dict[str, Any]) -> Any:
    """The result, or None when the bench refused (e.g. a programmed block the solve mode cannot settle on)."""
    with Station.from_text(sim_station_text(rows=rows, cols=cols, seed=seed)) as station:
        try:
            return OneStepExperiment(station, {**params, "seed": seed}).run()
        except InstrumentError as exc:
            REFUSED.append(f"seed {seed} {params['problem']} {params.get('circuit', '')}: {exc.message}")
            print(f"seed {seed}: refused: {exc.message}", file=sys.stderr)
            return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller problems and 3 seeds, for a run under a minute")
    args = ap.parse_args(argv)
    n_psi, n_pr, n_inv = (8, 12, 6) if args.quick else (16, 24, 12)
    seeds = [11, 12, 13] if args.quick else [11, 12, 13, 14, 15]
    size = max(n_psi, n_pr, n_inv)
    t_wall = time.perf_counter()
    overlaps, energy_err, taus, top10, taus_solve, top10_solve, pr_eig_err, inv_err = [], [], [], [], [], [], [], []
    settle: dict[str, list[float]] = {"schrodinger": [], "pagerank": [], "pagerank_solve": [], "inverse": []}
    for seed in seeds:
        s = run(size, 2 * size, seed, {"problem": "schrodinger", "n": n_psi, "states": 3, "potential": "harmonic"})
        if s is not None:
            overlaps.append(s.overlaps.tolist())
            energy_err.append(s.energy_rel_errors.tolist())
            settle["schrodinger"] += s.settle_times
        p = run(size, 2 * size, seed, {"problem": "pagerank", "n": n_pr, "circuit": "eigenvector"})
        if p is not None:
            taus.append(p.kendall_tau)
            top10.append(p.top10)
            pr_eig_err.append(p.eigenvalue_rel_error)
            settle["pagerank"] += p.settle_times
        q = run(size, 2 * size, seed, {"problem": "pagerank", "n": n_pr, "circuit": "solve"})
        if q is not None:
            taus_solve.append(q.kendall_tau)
            top10_solve.append(q.top10)
            settle["pagerank_solve"] += q.settle_times
        i = run(size, 2 * size, seed, {"problem": "inverse", "n": n_inv, "condition": 5.0})
        if i is not None:
            inv_err.append(i.inverse_rel_error)
            settle["inverse"] += i.settle_times
        print(f"seed {seed}: " + "; ".join(
            ([f"overlaps {np.round(s.overlaps, 4).tolist()}, energy errors {np.round(s.energy_rel_errors, 4).tolist()}"]
             if s is not None else []) + ([f"PageRank tau {p.kendall_tau:.3f}, top-10 {p.top10:.0%}"] if p else [])
            + ([f"solve-form tau {q.kendall_tau:.3f}"] if q else [])
            + ([f"inverse error {i.inverse_rel_error:.3%}"] if i else [])), file=sys.stderr)
    ov, ee = np.array(overlaps).reshape(-1, 3), np.array(energy_err).reshape(-1, 3)
    out = {
        "quick": args.quick, "seeds": seeds, "schrodinger_n": n_psi, "pagerank_pages": n_pr, "inverse_n": n_inv,
        "potential": "harmonic", "depth": 100.0, "damping": 0.85, "inverse_condition": 5.0,
        "schrodinger_overlap": [stats(ov[:, k].tolist()) for k in range(3)],
        "schrodinger_energy_rel_error": [stats(ee[:, k].tolist()) for k in range(3)],
        "pagerank_kendall_tau": stats(taus), "pagerank_top10": stats(top10),
        "pagerank_eigenvalue_rel_error": stats(pr_eig_err),
        "pagerank_solve_form_kendall_tau": stats(taus_solve), "pagerank_solve_form_top10": stats(top10_solve),
        "inverse_rel_error": stats(inv_err),
        "settle_time_s": {k: stats(v) for k, v in settle.items()},
        "refused": REFUSED,
        "wall_s": round(time.perf_counter() - t_wall, 1),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
