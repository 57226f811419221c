"""Benchmark: training a 64–16–10 MLP on scikit-learn's digits on the simulated array.

Rules (same architecture, split, seeds and learning rate):

* ``float``: numpy baseline;
* ``sgd``: stochastic outer-product pulses (Gokmen & Vlasov 2016);
* ``mixed_precision``: digital accumulation, pulses when the accumulator passes the device step
  (Nandakumar et al. 2020);
* ``tiki_taka``: two arrays A and C per layer, as two disjoint column bands of the physical array
  (Gokmen & Haensch 2020);
* ``asymmetric_sgd`` / ``asymmetric_sgd_zero_shift`` / ``asymmetric_tiki_taka``: the same on a strongly
  asymmetric setting: RRAM whose SET steps are 2.3x its RESET steps (``ASYMMETRIC``, station
  ``[sim.device]`` table) and one device per weight (``update = "single_device"``: G⁻ is a fixed
  reference). ``sgd_zero_shift`` is plain SGD with the standard remedy: G⁻ programmed to the symmetry
  point of its G⁺, measured on the bench (Kim et al. 2019/2020), so Tiki-Taka is compared with it.
  With push-pull pairs the imbalance cancels at the weight level (see ``update_rules``), so a pair is
  not a strongly asymmetric weight whatever the devices do.

Seeds: ``--seeds N`` runs N seeds (default 5; ``--quick``: 1); seed k uses station seed and run seed
2026 + k (device draws, data split, initial weights, pulse trains). Each rule reports the mean and
standard deviation of the final test accuracy over the seeds, and every seed's value.

Array: a simulated 64×128 RRAM 1T1R crossbar (64 inputs on rows; differential column pairs;
Tiki-Taka needs 2 × (32 + 20) = 104 columns). Device physics as in the simulator's defaults
(soft bounds, 30 % cycle-to-cycle and device-to-device spread, up/down asymmetry 0.259, 0.5 %
read noise, 1 % stuck cells), periphery noise and ADC included.

Wires: ``--wire-resistance`` (Ω per segment) defaults to 0 here. The simulator solves the
IR-drop network exactly through a transfer matrix per conductance state; training changes the
state after every sample, and recomputing that matrix costs seconds on 64×128, i.e. hours per
epoch. Ideal wires leave out IR drop (on this array with the RRAM window, ~8 % column-current
error for all rows driven); the JSON records the value used. ``--wire-resistance 0.35`` runs
the full physics when time allows.

Usage: ``python benchmarks/train_digits.py [--quick]``; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from linear_solve import device_parameters

from xbarlab.experiments.training import TrainExperiment
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text

SEED = 2026  # first seed; seed k of a run is SEED + k
#: strongly asymmetric RRAM (``[sim.device]`` overrides): the nominal SET step is 1.4x and the RESET step
#: 0.6x the mean step (SET/RESET step ratio 2.33, against 1.35 for the default Gong-2018 preset), on top of
#: the soft bounds every RRAM device has
ASYMMETRIC: dict[str, Any] = {"step_ratio": 1.4 / 0.6}


def asymmetric_device() -> dict[str, Any]:
    """Device parameters of the strongly asymmetric setting (SET steps much larger than RESET steps)."""
    return dict(ASYMMETRIC)


def run_rule(rule: str, params: dict[str, Any], device_params: dict[str, Any] | None,
             wire_resistance: float = 0.0) -> tuple[Any, dict]:
    if rule == "float":
        return TrainExperiment(None, {**params, "rule": "float"}).run(), {}
    text = sim_station_text(rows=64, cols=128, device="rram", seed=params["seed"], device_params=device_params or None,
                            wire_resistance=wire_resistance, name="training bench")
    with Station.from_text(text) as station:
        dev = device_parameters(station)
        return TrainExperiment(station, {**params, "rule": rule}).run(), dev


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="600 samples, 2 epochs, 1 seed")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5; --quick: 1)")
    ap.add_argument("--rules", nargs="*", default=None, help="subset of rules to run (JSON keys without _acc)")
    ap.add_argument("--wire-resistance", type=float, default=0.0, help="Ω per wire segment (default 0: see above)")
    args = ap.parse_args(argv)
    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 5)
    if n_seeds < 1:
        ap.error("--seeds must be >= 1")
    seeds = [SEED + k for k in range(n_seeds)]
    common = {"hidden": 16, "epochs": 2 if args.quick else 8, "limit": 600 if args.quick else 0, "lr": 0.1}
    single = {"update": "single_device"}
    plan = [
        ("float_acc", "float", None, {}),
        ("sgd_acc", "sgd", None, {}),
        ("mixed_precision_acc", "mixed_precision", None, {}),
        ("tiki_taka_acc", "tiki_taka", None, {}),
        ("asymmetric_sgd_acc", "sgd", asymmetric_device(), single),
        ("asymmetric_sgd_zero_shift_acc", "sgd_zero_shift", asymmetric_device(), single),
        ("asymmetric_tiki_taka_acc", "tiki_taka", asymmetric_device(), single),
    ]
    out: dict[str, Any] = {"params": common, "seeds": seeds, "asymmetric_overrides": {**asymmetric_device(), **single},
                           "wire_resistance_ohm": args.wire_resistance}
    t_wall = time.perf_counter()
    for key, rule, dev, extra in plan:
        name = key.removesuffix("_acc")
        if args.rules and name not in args.rules:
            continue
        t = time.perf_counter()
        accs, histories, steps = [], [], []
        for seed in seeds:
            result, device = run_rule(rule, {**common, **extra, "seed": seed}, dev, args.wire_resistance)
            accs.append(float(result.test_acc))
            histories.append([
                {"epoch": e.epoch, "train_loss": round(e.train_loss, 4), "train_acc": round(e.train_acc, 4),
                 "test_acc": round(e.test_acc, 4), "pulses": e.pulses, "instrument_time_s": round(e.instrument_time, 3)}
                for e in result.history
            ])
            if device:
                out.setdefault("device_asymmetric" if dev else "device", device)
                steps.append(result.device_step)
            print(f"{name} seed {seed}: test accuracy {accs[-1]:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
        out[key] = float(np.mean(accs))
        out[f"{name}_std"] = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
        out[f"{name}_per_seed"] = accs
        out[f"{name}_history"] = histories
        if steps:
            out[f"{name}_device_step"] = steps
        out[f"{name}_wall_s"] = time.perf_counter() - t
    out["wall_s"] = time.perf_counter() - t_wall
    if "float_acc" in out and "mixed_precision_acc" in out:
        out["mixed_precision_gap_points"] = 100 * (out["float_acc"] - out["mixed_precision_acc"])
    if "asymmetric_sgd_zero_shift_acc" in out and "asymmetric_tiki_taka_acc" in out:
        out["tiki_taka_beats_zero_shift_sgd_asymmetric"] = bool(
            out["asymmetric_tiki_taka_acc"] > out["asymmetric_sgd_zero_shift_acc"])
    if "asymmetric_sgd_acc" in out and "asymmetric_sgd_zero_shift_acc" in out:
        out["zero_shift_gain_points"] = 100 * (out["asymmetric_sgd_zero_shift_acc"] - out["asymmetric_sgd_acc"])
    return out


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
