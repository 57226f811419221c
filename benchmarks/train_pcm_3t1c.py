"""Benchmark: training on a PCM array — PCM + 3T1C (Ambrogio 2018) vs SET-only PCM SGD vs the float baseline.

Task: a 64–16–10 MLP on scikit-learn's 8×8 digits (all 1797 samples: 1438 train / 359 test), per-sample
SGD, lr 0.1, 2 epochs (float reaches 93.5 ± 1.3 % there over seeds 2026–2030; 95.0 % after 4), over
several seeds (each seed is a different simulated array and a different initialisation/data order).
The array is 64×52: the rows the inputs need and two columns per output of both layers. Rules (same
network, split, seed and learning rate):

* ``float``: numpy baseline;
* ``set_only``: plain PCM SGD as Nandakumar et al. 2020 run it — mixed precision (digital accumulator),
  SET-only updates (G⁺ for up, G⁻ for down), refresh of pairs with a device above 0.9 of the window
  (rule ``mixed_precision``, ``update = "set_only"``);
* ``pcm_3t1c``: W = F·(G⁺ − G⁻) + (g⁺ − g⁻), F = 3, updates as charge steps on the 3T1C capacitors,
  transfer into the PCM pair every ``cap_transfer_every`` samples (by SET pulses; ``transfer_pulses``),
  polarity inversion, refresh of pairs with a device above 0.9 of the window every 100 samples.

Bench: a simulated PCM 1T1R array (drift, 1/f read noise, programming noise, abrupt RESET;
``xbarlab.sim.devices.PCM`` defaults) with a 3T1C cell beside every cell (``xbarlab.sim.cap_cell``
defaults: τ = 10 s leakage, 10 % charge/discharge mismatch per cell, 2 % step noise, nonlinear read
transistor), 1 % stuck cells, periphery noise, ideal wires (IR drop left out, as in train_digits.py).
Conductance window 1–20 µS.

Usage: ``python benchmarks/train_pcm_3t1c.py [--quick] [--seeds N] [--jobs J] [--rules ...]``; the last
line is one JSON object (per run: accuracy, pulses, instrument time, transfers, the transfers'
diagnostics). ``--quick``: 1 seed, 300 samples of the digits pooled 2×2 to 4×4 (16–16–10 on 16×52),
1 epoch. Every PCM run first programs its initial weights by write-verify, which costs minutes of
CPU on the simulator (its 1/f read noise is computed for every cell at every read).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

from xbarlab.errors import XbarlabError

SEED0 = 2026
HIDDEN = 16
RULES = {
    "float": {"rule": "float"},
    "set_only": {"rule": "mixed_precision", "update": "set_only"},
    "pcm_3t1c": {"rule": "pcm_3t1c"},
}


def pooled_digits(pool: int, folder: str) -> str:
    """scikit-learn's digits with ``pool``×``pool`` pixel blocks averaged, saved as an .npz; returns its path."""
    from pathlib import Path

    from sklearn.datasets import load_digits

    d = load_digits()
    side = 8 // pool
    x = d.images.reshape(-1, side, pool, side, pool).mean(axis=(2, 4)).reshape(len(d.target), -1)
    path = Path(folder) / f"digits_pool{pool}.npz"
    np.savez(path, X=x, y=d.target)
    return str(path)


def run_one(rule: str, seed: int, common: dict[str, Any], shape: tuple[int, int]) -> dict[str, Any]:
    """One training run; its figures."""
    from xbarlab.experiments.training import TrainExperiment
    from xbarlab.instruments.station import Station
    from xbarlab.sim.stations import sim_station_text

    params = {**common, **RULES[rule], "seed": seed}
    t = time.perf_counter()
    if rule == "float":
        result = TrainExperiment(None, params).run()
    else:
        text = sim_station_text(rows=shape[0], cols=shape[1], device="pcm", seed=seed, wire_resistance=0.0,
                                cap_cells={}, name="PCM training bench")
        with Station.from_text(text) as station:
            result = TrainExperiment(station, params).run()
    return {
        "rule": rule, "seed": seed, "test_acc": result.test_acc,
        "history": [{"epoch": e.epoch, "train_acc": round(e.train_acc, 4), "test_acc": round(e.test_acc, 4),
                     "pulses": e.pulses, "instrument_time_s": round(e.instrument_time, 2)} for e in result.history],
        "pulses": result.total_pulses, "instrument_time_s": result.instrument_time, **result.counters,
        "initial_yield": {k: v["yield"] for k, v in result.programming.items()},
        "device_step": result.device_step, "wall_s": time.perf_counter() - t,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rule in RULES:
        failed = [r for r in runs if r["rule"] == rule and "failed" in r]
        if failed:
            out[f"{rule}_failed"] = [{"seed": r["seed"], "error": r["failed"]} for r in failed]
        mine = sorted((r for r in runs if r["rule"] == rule and "failed" not in r), key=lambda r: r["seed"])
        if not mine:
            continue
        acc = np.array([r["test_acc"] for r in mine])
        out[f"{rule}_acc_mean"] = float(acc.mean())
        out[f"{rule}_acc_std"] = float(acc.std(ddof=1)) if acc.size > 1 else 0.0
        out[f"{rule}_acc"] = [round(float(a), 4) for a in acc]
        if rule != "float":
            for key in ("pulses", "instrument_time_s", "transfers", "refreshes", "pcm_program_pulses", "cap_steps",
                        "lsp_rms_mean", "cap_railed_mean", "write_error_rms_mean", "pcm_high_mean", "ref_mean_mean",
                        "wall_s"):
                if any(key in r for r in mine):
                    out[f"{rule}_{key.removesuffix('_mean')}_mean"] = float(np.mean([r.get(key, 0) for r in mine]))
    ok = {(r["rule"], r["seed"]): r["test_acc"] for r in runs if "failed" not in r}
    if "float_acc_mean" in out:
        for rule in ("set_only", "pcm_3t1c"):
            # paired: float minus the rule on the seeds where both ran (same split and initialisation)
            gaps = [100 * (ok[("float", s)] - ok[(rule, s)]) for (r, s) in ok if r == rule and ("float", s) in ok]
            if gaps:
                out[f"{rule}_gap_points"] = float(np.mean(gaps))
                out[f"{rule}_gap_points_std"] = float(np.std(gaps, ddof=1)) if len(gaps) > 1 else 0.0
        if "pcm_3t1c_gap_points" in out:
            out["pcm_3t1c_within_1_point_of_float"] = bool(out["pcm_3t1c_gap_points"] <= 1.0)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 300 samples, 1 epoch, 4x4-pooled digits")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5; 1 with --quick)")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    ap.add_argument("--first-seed", type=int, default=SEED0, help=f"first seed (default {SEED0})")
    ap.add_argument("--rules", nargs="*", default=list(RULES), choices=list(RULES))
    ap.add_argument("--limit", type=int, default=0, help="digits samples used, 0 = all 1797 (80 %% train, 20 %% test)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--pool", type=int, default=None, choices=(1, 2),
                    help="pixel pooling of the 8x8 digits (default 1: none; 2 with --quick)")
    ap.add_argument("--significance", type=float, default=3.0, help="F of the PCM + 3T1C rule")
    ap.add_argument("--transfer-every", type=int, default=20, help="samples between capacitor -> PCM transfers")
    args = ap.parse_args(argv)
    seeds = args.seeds or (1 if args.quick else 5)
    pool = args.pool or (2 if args.quick else 1)
    common = {"hidden": HIDDEN, "lr": 0.1, "epochs": 1 if args.quick else args.epochs,
              "limit": 300 if args.quick else args.limit,
              "g_min": 1e-6, "g_max": 20e-6, "significance": args.significance,
              "cap_transfer_every": args.transfer_every}
    # the rows the inputs need, and two columns per output of both layers: nothing the network does not use
    shape = ((8 // pool) ** 2, 2 * (HIDDEN + 10))
    jobs = [(rule, args.first_seed + k) for k in range(seeds) for rule in args.rules]
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        if pool != 1:
            common["dataset"] = pooled_digits(pool, folder)
        runs = []
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {pool.submit(run_one, rule, seed, dict(common), shape): (rule, seed) for rule, seed in jobs}
            for future in as_completed(futures):
                rule, seed = futures[future]
                try:
                    run = future.result()
                except XbarlabError as exc:  # reported, not hidden: the other runs still count
                    run = {"rule": rule, "seed": seed, "failed": f"{type(exc).__name__}: {exc}"}
                runs.append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "history"}, default=str), file=sys.stderr,
                      flush=True)
    common["dataset"] = "digits" if pool == 1 else f"digits pooled {pool}x{pool}"
    out = {"params": common, "array": f"{shape[0]}x{shape[1]}", "seeds": [args.first_seed + k for k in range(seeds)],
           **summarise(runs), "runs": runs,
           "wall_s": time.perf_counter() - t,
           "bench": "PCM 1T1R, [sim.cap_cells] defaults, ideal wires, 1 % stuck cells"}
    return out


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
