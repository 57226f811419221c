"""Benchmark: the full programming pipeline on simulated devices the controller is not told about.

Each device is drawn at random from a wide family (seeded): RRAM with switching voltage
``v_ref`` 0.7–1.6 V, ``v_scale`` 0.04–0.2 V per e-fold (log-uniform), width exponent
0.3–1.0, cycle-to-cycle spread 0.1–0.6 and read noise 0.2–2 % (log-uniform); PCM and ECRAM
with the same spread of switching kinetics and their literature defaults otherwise. For
each: read-path calibration against the SMU, device characterisation (read noise,
thresholds, kinetics, bounds with a stopping rule; :mod:`xbarlab.calibration.characterize`),
then write-verify of uniform random targets over the usable range to ±1 % of it. Nothing
of the drawn parameters reaches the controller.

Per device: ``yield`` over the live cells from the final averaged read, ``yield_truth`` from the
simulator's true conductances (not available on hardware), mean/max pulses a cell, write-verify
and characterisation instrument time (simulated clock), and the fitted kinetics beside the
drawn ones. Summary: minimum and median over devices. Goal: yield ≥ 0.99 on every device,
mean pulses ≤ 20.
Usage: ``python benchmarks/program_verify_robust.py [--quick] [--devices N] [--size N]``;
last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from xbarlab.calibration import prepare, program_matrix
from xbarlab.calibration.writeverify import SKIPPED
from xbarlab.errors import ConfigError, XbarlabError
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text

#: verify delay (s) for phase-change devices (judgement: PCM is quoted at a fixed read delay after
#: programming, 20 s in Nandakumar 2019; a longer one here so the controller does not assume that t0)
VERIFY_DELAY_S = 30.0
#: looser tolerances (fractions of the usable range) tried on devices verified at a delay (PCM), to show
#: which one the device's programming and read noise allow
LOOSER_TOLERANCES = (0.05, 0.1)
#: spacing (s) of the groups of averaged verify reads on devices verified at a delay: 8 groups 0.2 s apart
#: average away the parts of a 1/f read noise faster than ~1 s, which consecutive reads share (measured
#: on PCM at ±10 % of the range, 12×12 and 16×16: truth yield 0.875 → 0.903 and 0.878 → 0.914), while the
#: cells age by only 1.4 s at the 30 s verify age (drift ≈ 0.3 % of g)
READ_SPACING_S = 0.2


def draw_device(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    """Simulator parameters of one device of ``kind`` drawn from the benchmark's family."""
    p: dict[str, Any] = {
        "v_ref": float(rng.uniform(0.7, 1.6)),
        "v_scale": float(np.exp(rng.uniform(np.log(0.04), np.log(0.2)))),
        "width_exponent": float(rng.uniform(0.3, 1.0)),
    }
    if kind in ("rram", "ecram"):
        p["c2c"] = float(rng.uniform(0.1, 0.6))
        p["read_noise"] = float(np.exp(rng.uniform(np.log(0.002), np.log(0.02))))
    return p


def device_kinds(n: int) -> list[str]:
    """Two thirds RRAM, the rest alternating PCM and ECRAM (at least one of each from 3 devices)."""
    extra = max(n // 3, 2 if n >= 3 else 0)
    kinds = ["rram"] * (n - extra) + ["pcm", "ecram"] * (extra // 2) + (["pcm"] if extra % 2 else [])
    return kinds[:n]


def run_device(kind: str, params: dict[str, Any], size: int, seed: int) -> dict[str, Any]:
    text = sim_station_text(size, size, kind, seed=seed, device_params=params)
    g_expect = 30e-6 if kind == "pcm" else 150e-6
    out: dict[str, Any] = {"kind": kind, "drawn": params, "seed": seed}
    with Station.from_text(text) as st:
        t0 = st.sim_time()
        try:
            prep = prepare(st, g_max_expected=g_expect, seed=seed)
        except ConfigError as exc:
            out.update(error=str(exc), yield_=0.0)
            return out
        t_cal = st.sim_time() - t0
        c = prep.characterization
        lo, hi = prep.usable_range()
        tol = 0.01 * (hi - lo)
        targets = np.random.default_rng(seed + 1).uniform(lo, hi, (size, size))
        # a device with an abrupt (melt-quench) RESET is phase-change memory: its conductance keeps moving
        # after a pulse (programming noise emerging, then drift), so it is verified at a fixed delay
        delay = VERIFY_DELAY_S if c.figures().get("reset_abrupt") else 0.0
        spacing = READ_SPACING_S if delay > 0 else 0.0
        rep = program_matrix(st, prep, targets, tolerance=tol, max_pulses=200, patience=40, verify_delay=delay,
                             wait=st.wait, read_spacing=spacing)
        s = rep.summary()
        model = st.sim.model
        live = model.stuck_mask == 0
        # truth (simulator only): at the verify age for a device verified at a delay, else now
        at_age = getattr(model.device, "conductance_at_age", None)
        if delay > 0 and at_age is not None:
            truth = model._g_flat().copy()
            ok = model._stuck == 0
            truth[ok] = at_age(delay)[ok]
            truth = truth.reshape(size, size)
        else:
            truth = model.conductance_map()
        err_truth = np.abs(truth - targets)[live & (rep.status != SKIPPED)] / (hi - lo)
        out.update({
            "yield": s["yield"],
            "yield_truth": float(np.mean(np.abs(truth - targets)[live] <= tol)),
            "verify_delay_s": delay,
            "read_spacing_s": spacing,
            # the tolerance (fraction of the usable range) that 99 % / 90 % of the live cells meet in truth
            "tolerance_for_99pct_truth": float(np.quantile(err_truth, 0.99)) if err_truth.size else float("nan"),
            "tolerance_for_90pct_truth": float(np.quantile(err_truth, 0.90)) if err_truth.size else float("nan"),
            "live_cells": s["live_cells"],
            "mean_pulses": s["mean_pulses"],
            "max_pulses": s["max_pulses"],
            "unreachable": s["unreachable"],
            "budget_spent": s["budget_spent"],
            "stuck_found": int(np.sum(prep.bounds.stuck != 0)),
            "stuck_true": int(np.sum(~live)),
            "write_verify_time_s": s["sim_time_s"],
            "characterization_time_s": t_cal,
            "characterization_pulses": c.pulses,
            "verify_reads": rep.extra.get("verify_reads"),
            # the read conditions prepare() chose so the SMU reference reads do not move the cells
            "read_conditions": {k: v for k, v in (prep.read_choice.record() if prep.read_choice else {}).items()
                                if k != "read_choice"},
            "usable_range_S": [lo, hi],
            "fitted": {k: v for k, v in c.figures().items()
                       if k in ("read_sigma_rel", "set_v_on", "set_v_scale", "set_v_scale_err", "set_width_exp",
                                "set_width_exp_err", "set_c2c", "reset_v_on", "reset_v_scale", "reset_width_exp",
                                "reset_abrupt", "up_down_ratio", "up_down_ratio_err")},
            "wall_s": s["wall_s"],
        })
        if delay > 0:
            # what tolerance IS reachable: the same cells re-programmed to new targets at looser tolerances
            out["looser"] = []
            for frac in LOOSER_TOLERANCES:
                t2 = np.random.default_rng(seed + 2).uniform(lo, hi, (size, size))
                r2 = program_matrix(st, prep, t2, tolerance=frac * (hi - lo), max_pulses=200, patience=40,
                                    verify_delay=delay, wait=st.wait, read_spacing=spacing)
                s2 = r2.summary()
                tr = model._g_flat().copy()
                tr[model._stuck == 0] = at_age(delay)[model._stuck == 0]
                tr = tr.reshape(size, size)
                out["looser"].append({"tolerance_frac_of_range": frac, "yield": s2["yield"],
                                      "yield_truth": float(np.mean(np.abs(tr - t2)[live] <= frac * (hi - lo))),
                                      "mean_pulses": s2["mean_pulses"], "max_pulses": s2["max_pulses"],
                                      "write_verify_time_s": s2["sim_time_s"]})
    return out


def _device(draw: tuple[str, dict[str, Any], int], size: int) -> dict[str, Any]:
    """One device's result; one that cannot be programmed is a result (its error), not the end of the run."""
    kind, params, seed = draw
    try:
        return run_device(kind, params, size, seed)
    except XbarlabError as exc:
        return {"kind": kind, "drawn": params, "seed": seed, "error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16x16 arrays, 4 devices")
    ap.add_argument("--devices", type=int, default=None, help="devices drawn (default 12; quick 4)")
    ap.add_argument("--size", type=int, default=None, help="array size N x N (default 32; quick 16)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--jobs", type=int, default=1, help="devices run in parallel processes (results identical)")
    args = ap.parse_args(argv)
    n_dev = args.devices or (4 if args.quick else 12)
    size = args.size or (16 if args.quick else 32)
    t_wall = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    draws = [(kind, draw_device(rng, kind), args.seed + 17 * i) for i, kind in enumerate(device_kinds(n_dev))]
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(args.jobs) if args.jobs > 1 else None
    done = pool.map(_device, draws, [size] * n_dev) if pool else (_device(d, size) for d in draws)
    results = []
    for i, r in enumerate(done):  # in device order, each printed as it is ready
        results.append(r)
        drawn = ", ".join(f"{k}={v:.3g}" for k, v in r["drawn"].items())
        kind = r["kind"]
        if "error" in r:
            print(f"device {i} {kind} ({drawn}): FAILED: {r['error']}")
        else:
            print(f"device {i} {kind} ({drawn}): yield {r['yield']:.4f} (truth {r['yield_truth']:.4f}), pulses mean "
                  f"{r['mean_pulses']:.1f} max {r['max_pulses']}, write-verify {r['write_verify_time_s']:.2f} s, "
                  f"characterisation {r['characterization_time_s']:.2f} s instrument")
            for lz in r.get("looser", []):
                print(f"    at ±{lz['tolerance_frac_of_range']:.0%} of range: yield {lz['yield']:.4f} (truth "
                      f"{lz['yield_truth']:.4f}), pulses mean {lz['mean_pulses']:.1f}", flush=True)
    if pool:
        pool.shutdown()
    ok = [r for r in results if "error" not in r]
    ys = [r["yield"] if "error" not in r else 0.0 for r in results]
    yt = [r["yield_truth"] if "error" not in r else 0.0 for r in results]
    mp = [r["mean_pulses"] for r in ok]
    out = {
        "devices": n_dev,
        "array": f"{size}x{size}",
        "tolerance_frac_of_range": 0.01,
        "yield_min": float(np.min(ys)),
        "yield_median": float(np.median(ys)),
        "yield_truth_min": float(np.min(yt)),
        "yield_truth_median": float(np.median(yt)),
        "mean_pulses_max": float(np.max(mp)) if mp else float("nan"),
        "mean_pulses_median": float(np.median(mp)) if mp else float("nan"),
        "max_pulses_max": int(max(r["max_pulses"] for r in ok)) if ok else 0,
        "write_verify_time_s_median": float(np.median([r["write_verify_time_s"] for r in ok])) if ok else 0.0,
        "characterization_time_s_median": float(np.median([r["characterization_time_s"] for r in ok])) if ok else 0.0,
        "failed_devices": n_dev - len(ok),
        "goal_met": bool(len(ok) == n_dev and min(ys) >= 0.99 and max(mp) <= 20),
        "per_device": results,
        "seed": args.seed,
        "quick": bool(args.quick),
        "jobs": args.jobs,
        "total_wall_s": time.perf_counter() - t_wall,
    }
    print(f"yield min {out['yield_min']:.4f} median {out['yield_median']:.4f}; truth min {out['yield_truth_min']:.4f}; "
          f"mean pulses worst {out['mean_pulses_max']:.1f}; goal {'met' if out['goal_met'] else 'NOT met'}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
