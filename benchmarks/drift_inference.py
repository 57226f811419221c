"""Benchmark: inference accuracy under PCM drift, with and without global drift compensation.

A 64–16–10 MLP is trained in float64 on scikit-learn's digits, programmed by write-verify into
differential PCM pairs of a simulated 64×64 1T1R array (device = "pcm": drift ν ≈ 0.05, 1/f
read noise, programming noise after Nandakumar et al. 2019), and tested on the array 1 s, 1 h
and 1 day after programming. Compensation: one scale factor per layer from a fixed
calibration batch (Joshi et al., Nat. Commun. 2020). Weights whose devices missed the write-verify
tolerance are corrected digitally (that part does not drift); ``analog_only_*`` repeats the run
without that correction, so every weight is on the array.

Wires: ``--wire-resistance`` (Ω per segment) defaults to 0 here. PCM conductance changes with
time, so the simulator re-solves its IR-drop network (seconds on 64×64) for every MVM; with
the PCM window (≤ 20 µS) IR drop is ~1 % of a column current, small next to drift. The JSON
records the value used.

Usage: ``python benchmarks/drift_inference.py [--quick] [--wire-resistance OHM]``; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from linear_solve import device_parameters

from xbarlab.experiments.drift_inference import DriftInferenceExperiment
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text

TIMES = {"1s": 1.0, "1h": 3600.0, "1d": 86400.0}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="half the data set, fewer training epochs")
    ap.add_argument("--wire-resistance", type=float, default=0.0, help="Ω per wire segment (default 0: see above)")
    args = ap.parse_args(argv)
    seed = 2026
    text = sim_station_text(rows=64, cols=64, device="pcm", seed=seed, wire_resistance=args.wire_resistance,
                            name="PCM drift bench")
    params = {"times": list(TIMES.values()), "seed": seed, "hidden": 16,
              "epochs": 8 if args.quick else 20, "limit": 900 if args.quick else 0}
    t_wall = time.perf_counter()
    with Station.from_text(text) as station:
        out: dict[str, Any] = {"device": device_parameters(station), "wire_resistance_ohm": args.wire_resistance}
        r = DriftInferenceExperiment(station, params).run()
    with Station.from_text(text) as station:  # the same without digital correction: every weight analog
        pure = DriftInferenceExperiment(station, {**params, "defect_correction": False}).run()
    out["float_acc"] = r.float_accuracy
    for (label, _), pt in zip(TIMES.items(), r.points, strict=True):
        out[f"acc_{label}"] = pt.accuracy
        out[f"acc_{label}_compensated"] = pt.accuracy_compensated
        out[f"scales_{label}"] = [float(s) for s in pt.scales]
        out[f"t_{label}_s"] = pt.time
    for (label, _), pt in zip(TIMES.items(), pure.points, strict=True):
        out[f"analog_only_acc_{label}"] = pt.accuracy
        out[f"analog_only_acc_{label}_compensated"] = pt.accuracy_compensated
    out["programming"] = r.programming
    out["corrected_weight_fraction"] = {k: v["corrected_fraction"] for k, v in r.programming.items()}
    out["device_yield"] = {k: v["yield"] for k, v in r.programming.items()}
    out["wall_s"] = time.perf_counter() - t_wall
    return out


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
