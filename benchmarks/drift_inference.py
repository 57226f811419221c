"""Benchmark: inference accuracy under PCM drift, with and without global drift compensation.

A 64–16–10 MLP is trained in float64 on scikit-learn's digits, programmed by write-verify into
differential PCM pairs of a simulated 64×64 1T1R array (device = "pcm": drift ν ≈ 0.05, 1/f
read noise, programming noise after Nandakumar et al. 2019), and tested on the array 1 s, 1 h
and 1 day after programming. Compensation: one scale factor per layer from a fixed
calibration batch (Joshi et al., Nat. Commun. 2020).

Usage: ``python benchmarks/drift_inference.py [--quick]``; the last line is one JSON object.
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
    args = ap.parse_args(argv)
    seed = 2026
    text = sim_station_text(rows=64, cols=64, device="pcm", seed=seed, name="PCM drift bench")
    params = {"times": list(TIMES.values()), "seed": seed, "hidden": 16,
              "epochs": 8 if args.quick else 20, "limit": 900 if args.quick else 0}
    t_wall = time.perf_counter()
    with Station.from_text(text) as station:
        out: dict[str, Any] = {"device": device_parameters(station)}
        r = DriftInferenceExperiment(station, params).run()
    out["float_acc"] = r.float_accuracy
    for (label, _), pt in zip(TIMES.items(), r.points, strict=True):
        out[f"acc_{label}"] = pt.accuracy
        out[f"acc_{label}_compensated"] = pt.accuracy_compensated
        out[f"scales_{label}"] = [float(s) for s in pt.scales]
        out[f"t_{label}_s"] = pt.time
    out["programming"] = r.programming
    out["wall_s"] = time.perf_counter() - t_wall
    return out


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
