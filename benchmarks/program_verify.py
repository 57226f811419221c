"""Benchmark: write-verify programming of a 64×64 array to uniform random targets.

The embedded simulated bench (64×64 HfO₂ 1T1R RRAM, soft bounds: ≈30 % cycle-to-cycle and
device-to-device spread, up/down asymmetry 0.259, 1 % stuck cells, 0.35 Ω wires, 2 %
column TIA gain spread). Steps: read-path calibration against the SMU, range and stuck
map (strong SET/RESET pulses), then write-verify of targets drawn uniformly over the
usable range (the range 99.5 % of the live cells reach) to ±1 % of that range.

``yield`` is over the live cells (not found stuck) from the calibrated final read;
``yield_truth`` compares the simulator's true conductances with the targets over the
truly live cells (a check of the read calibration, not available on hardware).
Usage: ``python benchmarks/program_verify.py [--quick]`` (quick: 32×32); last line one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

import numpy as np

from xbarlab.calibration import prepare, program_matrix
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text


def device_parameters(station: Station) -> dict[str, Any]:
    model = station.sim.model
    out: dict[str, Any] = {"model": type(model.device).__name__}
    out.update({k: v for k, v in dataclasses.asdict(model.device).items()
                if isinstance(v, (int, float, str, bool)) and not k.startswith("_")})
    for key in ("rows", "cols", "kind", "wire_resistance"):
        out[f"array_{key}"] = getattr(model, key)
    out["array_stuck_cells"] = int(np.count_nonzero(model.stuck_mask))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="32x32 array")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    t_wall = time.perf_counter()
    station = (Station.from_text(sim_station_text(32, 32, seed=args.seed)) if args.quick else Station.open(None))
    with station:
        n_rows, n_cols = station.require_board().shape
        t_sim = station.sim_time()
        prep = prepare(station)
        t_prep_sim = station.sim_time() - t_sim
        lo, hi = prep.usable_range()
        tol = 0.01 * (hi - lo)
        targets = np.random.default_rng(args.seed).uniform(lo, hi, (n_rows, n_cols))
        rep = program_matrix(station, prep, targets, tolerance=tol)
        s = rep.summary()
        truth = station.sim.model.conductance_map()
        live = station.sim.model.stuck_mask == 0
        found = prep.bounds.stuck != 0
        out = {
            "array": f"{n_rows}x{n_cols}",
            "yield": s["yield"],
            "yield_truth": float(np.mean(np.abs(truth - targets)[live] <= tol)),
            "tolerance_frac_of_range": 0.01,
            "tolerance_S": tol,
            "usable_range_S": [lo, hi],
            "mean_pulses": s["mean_pulses"],
            "max_pulses": s["max_pulses"],
            "rounds": s["rounds"],
            "sim_time_s": s["sim_time_s"],
            "wall_s": s["wall_s"],
            "calibration_sim_time_s": t_prep_sim,
            "read_error_before": prep.read_cal.residual_before,
            "read_error_after": prep.read_cal.residual_after,
            "chord_factor": prep.read_cal.chord_factor,
            "stuck_found": int(found.sum()),
            "stuck_true": int((~live).sum()),
            "stuck_map_agrees": bool(np.array_equal(found, ~live)),
            "unreachable": s["unreachable"],
            "budget_spent": s["budget_spent"],
            "error_hist_counts": s["error_hist_counts"],
            "error_hist_edges_tol": s["error_hist_edges_tol"],
            "device": device_parameters(station),
            "total_wall_s": time.perf_counter() - t_wall,
            "quick": bool(args.quick),
        }
    print(rep.describe())
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
