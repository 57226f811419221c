"""IR-drop solve and array-physics throughput: 256×256 and 1024×1024 arrays, pulses, memory.

Physics only (``CrossbarModel``, no wire protocol): RRAM defaults (``xbarlab.sim.devices.RRAM``),
1 % stuck cells, 0.35 Ω per wire segment, seed 2.

* IR drop, 256×256 forward MVM. ``exact``: the sparse-LU nodal solve (``ir_solver="exact"``:
  factorised once per conductance state, then one solve per MVM plus the non-ohmic fixed point);
  ``auto`` (default): the line-by-line CG solver of :mod:`xbarlab.sim.ir_drop` (factorisation
  of the line systems ~1 ms, then a few preconditioned CG iterations per MVM). First call after a
  state change (one pulse, then an MVM) and MVMs at a fixed state with fresh random inputs, medians.
  ``error_vs_exact``: max |I_auto − I_exact| over max |I_exact| (read noise off, several inputs).
* The reduced model, ``ir_solver="transfer"`` (the default up to 128 drive lines): a transfer matrix per
  conductance state learned from the linear solves of the MVMs themselves (:mod:`xbarlab.sim.transfer`),
  the cells' non-ohmic excess added at the ideal cell voltages. MVM time while it learns (one linear CG
  per new input direction), for a repeated input, and once complete (after 256 independent inputs: one
  product); its error against the exact non-linear solve (``mvm256_transfer_error_vs_exact``) is why
  ``auto`` does not use it on 256×256.
* Pulses, 256×256: an outer-product update of 10 slots (trains ±1 with probability 0.3 per line
  and slot) and a batch of 10 000 single-cell pulses at random cells, each against the
  pulse-by-pulse loop they replace (the same model with ``pulse_sequence`` switched off; bit for
  bit the same result, asserted here).
* 1024×1024, in a child process so its peak RSS is its own: model build, forward and transpose MVM
  with IR drop (CG iterations reported), an outer-product update, 10 000 pulses, peak RSS.

Timing figures are wall times on a shared 2-core machine, medians, with the reference timed in the
same run; ``*_cpu_ms`` are the same calls' CPU time (the process's own work: less sensitive to other
users' load, which inflates wall times on a shared machine).

Usage: ``python benchmarks/ir_drop.py [--quick]``; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from xbarlab.sim.array import CrossbarModel
from xbarlab.sim.devices import make_device

SEED = 2
R_WIRE = 0.35


CPU: list[tuple[str, float]] = []  # (what, CPU seconds) of every timed call, for the *_cpu_ms figures


def timed(fn: Any, *args: Any, what: str = "") -> float:
    """Wall time (s) of one call ``fn(*args)``; its CPU time is kept in ``CPU`` under ``what``."""
    c, t = time.process_time(), time.perf_counter()
    fn(*args)
    wall = time.perf_counter() - t
    CPU.append((what, time.process_time() - c))
    return wall


def ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 2)


def cpu_ms(what: str) -> float:
    """Median CPU time (ms) of the calls timed as ``what``: the process's own work, whatever the machine's load."""
    return ms([c for w, c in CPU if w == what])


def trains(rng: np.random.Generator, n: int, slots: int = 10, p: float = 0.3) -> np.ndarray:
    return rng.choice([-1, 0, 1], size=(n, slots), p=[p / 2, 1 - p, p / 2]).astype(np.int8)


def ir_drop_256(reps: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    exact = CrossbarModel(256, 256, make_device("rram", read_noise=0.0), seed=SEED, wire_resistance=R_WIRE,
                          ir_solver="exact")
    auto = CrossbarModel(256, 256, make_device("rram", read_noise=0.0), seed=SEED, wire_resistance=R_WIRE)
    inputs = [rng.uniform(-0.2, 0.2, 256) for _ in range(reps)]
    exact_first = timed(exact.column_currents, inputs[0])
    exact_fixed = [timed(exact.column_currents, v, what="exact") for v in inputs[1:]]
    auto_fixed, errors, iterations = [], [], []
    auto.column_currents(inputs[0])
    for v in inputs:
        ref = exact.column_currents(v)
        c, t = time.process_time(), time.perf_counter()
        got = auto.column_currents(v)
        auto_fixed.append(time.perf_counter() - t)
        CPU.append(("auto", time.process_time() - c))
        iterations.append(auto._cache["Lfwd"][0].iterations)
        errors.append(float(np.max(np.abs(got - ref)) / np.max(np.abs(ref))))
    auto_first = []
    for k in range(reps):  # a pulse changes the state: the next MVM refactorises and solves from scratch
        auto.apply_pulses(np.array([k]), np.array([k]), 1.2, 100e-9)
        auto_first.append(timed(auto.column_currents, inputs[0], what="auto_first"))
    g = exact.conductance_map()
    ideal = [timed(lambda: g.T @ inputs[0]) for _ in range(50)]
    transfer = transfer_256(exact, inputs)
    return {
        **transfer,
        "mvm256_exact_first_call_ms": round(exact_first * 1e3, 1),
        "mvm256_exact_fixed_state_ms": ms(exact_fixed),
        "mvm256_ir_drop_ms": ms(auto_fixed),
        "mvm256_ir_drop_first_call_ms": ms(auto_first),
        "mvm256_exact_fixed_state_cpu_ms": cpu_ms("exact"),
        "mvm256_ir_drop_cpu_ms": cpu_ms("auto"),
        "mvm256_ir_drop_first_call_cpu_ms": cpu_ms("auto_first"),
        "mvm256_cg_iterations": int(statistics.median(iterations)),
        "mvm256_error_vs_exact": float(f"{max(errors):.2e}"),
        "mvm256_ideal_us": round(statistics.median(ideal) * 1e6, 2),
    }


def transfer_256(exact: CrossbarModel, inputs: list[np.ndarray]) -> dict[str, Any]:
    """The reduced model (``ir_solver="transfer"``): a transfer matrix learned from the MVMs' own linear solves,
    the non-ohmic excess at the ideal cell voltages. Times while it learns (one linear CG per new input
    direction), for a repeated input, and once the matrix is complete (after 256 independent inputs);
    error against the exact non-linear solve at the same inputs."""
    rng = np.random.default_rng(11)
    model = CrossbarModel(256, 256, make_device("rram", read_noise=0.0), seed=SEED, wire_resistance=R_WIRE,
                          ir_solver="transfer")
    learning, errors = [], []
    for v in inputs:
        learning.append(timed(model.column_currents, v, what="transfer_learning"))
        ref = exact.column_currents(v)
        errors.append(float(np.max(np.abs(model.column_currents(v) - ref)) / np.max(np.abs(ref))))
    repeated = [timed(model.column_currents, inputs[0], what="transfer_repeated") for _ in range(20)]
    while model._cache["Tfwd"][2].matrix is None:  # teach it the remaining directions
        model.column_currents(rng.uniform(-0.2, 0.2, 256))
    complete = [timed(model.column_currents, rng.uniform(-0.2, 0.2, 256), what="transfer_complete")
                for _ in range(20)]
    return {
        "mvm256_transfer_learning_ms": ms(learning),
        "mvm256_transfer_repeated_input_ms": ms(repeated),
        "mvm256_transfer_complete_ms": ms(complete),
        "mvm256_transfer_learning_cpu_ms": cpu_ms("transfer_learning"),
        "mvm256_transfer_complete_cpu_ms": cpu_ms("transfer_complete"),
        "mvm256_transfer_error_vs_exact": float(f"{max(errors):.2e}"),
    }


def pulses_256(reps: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    fast = CrossbarModel(256, 256, make_device("rram"), seed=SEED, wire_resistance=R_WIRE)
    loop = CrossbarModel(256, 256, make_device("rram"), seed=SEED, wire_resistance=R_WIRE)
    loop.device.pulse_sequence = lambda *a, **k: False  # the pulse-by-pulse reference
    out: dict[str, list[float]] = {"outer": [], "outer_loop": [], "cells": [], "cells_loop": []}
    events = []
    for _ in range(reps):
        rt, ct = trains(rng, 256), trains(rng, 256)
        events.append(int((np.abs(rt).sum(axis=0) * np.abs(ct).sum(axis=0)).sum()))
        out["outer"].append(timed(fast.outer_product_update, rt, ct, 1.2, 100e-9, what="outer"))
        out["outer_loop"].append(timed(loop.outer_product_update, rt, ct, 1.2, 100e-9, what="outer_loop"))
        r, c = rng.integers(0, 256, 10_000), rng.integers(0, 256, 10_000)
        a = rng.choice([-1.2, 1.2], 10_000)
        out["cells"].append(timed(fast.apply_pulses, r, c, a, 100e-9, what="cells"))
        out["cells_loop"].append(timed(loop.apply_pulses, r, c, a, 100e-9, what="cells_loop"))
    if not np.array_equal(fast.conductance_map(), loop.conductance_map()):
        raise SystemExit("vectorised pulses differ from the pulse-by-pulse loop")
    return {
        "outer_product256_ms": ms(out["outer"]),
        "outer_product256_loop_ms": ms(out["outer_loop"]),
        "outer_product256_pulses": int(statistics.median(events)),
        "pulses10k_ms": ms(out["cells"]),
        "pulses10k_loop_ms": ms(out["cells_loop"]),
        **{f"{k}_cpu_ms": cpu_ms(w) for k, w in (("outer_product256", "outer"), ("outer_product256_loop", "outer_loop"),
                                                  ("pulses10k", "cells"), ("pulses10k_loop", "cells_loop"))},
        "pulses_bit_identical_to_loop": True,
    }


def child_1024(quick: bool) -> None:
    """``--child-1024``: the 1024×1024 bench in this process; prints one JSON line."""
    rng = np.random.default_rng(3)
    res: dict[str, Any] = {}
    t = time.perf_counter()
    m = CrossbarModel(1024, 1024, make_device("rram"), seed=SEED, wire_resistance=R_WIRE)
    res["build_s"] = round(time.perf_counter() - t, 2)
    v = rng.uniform(-0.2, 0.2, 1024)
    res["mvm_first_s"] = round(timed(m.column_currents, v, what="mvm"), 2)
    res["mvm_first_cpu_s"] = round(CPU[-1][1], 2)
    res["mvm_cg_iterations"] = m._cache["Lfwd"][0].iterations
    if not quick:
        res["mvm_fixed_state_s"] = round(timed(m.column_currents, rng.uniform(-0.2, 0.2, 1024)), 2)
        res["transpose_first_s"] = round(timed(m.row_currents, v), 2)
    rt, ct = trains(rng, 1024), trains(rng, 1024)
    res["outer_product_ms"] = round(timed(m.outer_product_update, rt, ct, 1.2, 100e-9) * 1e3, 1)
    r, c = rng.integers(0, 1024, 10_000), rng.integers(0, 1024, 10_000)
    res["pulses10k_ms"] = round(timed(m.apply_pulses, r, c, 1.2, 100e-9) * 1e3, 1)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions; one 1024x1024 MVM")
    ap.add_argument("--child-1024", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_1024:
        child_1024(args.quick)
        return
    reps = 5 if args.quick else 15
    out: dict[str, Any] = {}
    out.update(ir_drop_256(reps))
    print(f"256x256 MVM with IR drop: {out['mvm256_ir_drop_ms']} ms at a fixed state, "
          f"{out['mvm256_ir_drop_first_call_ms']} ms after a state change (exact LU: "
          f"{out['mvm256_exact_fixed_state_ms']} ms, first {out['mvm256_exact_first_call_ms']} ms); "
          f"error vs exact {out['mvm256_error_vs_exact']}")
    print(f"256x256 reduced model (ir_solver='transfer'): {out['mvm256_transfer_learning_ms']} ms while it "
          f"learns, {out['mvm256_transfer_complete_ms']} ms once complete; "
          f"error vs exact {out['mvm256_transfer_error_vs_exact']}")
    out.update(pulses_256(reps))
    print(f"256x256 outer product ({out['outer_product256_pulses']} pulses): {out['outer_product256_ms']} ms "
          f"(loop {out['outer_product256_loop_ms']} ms); 10k pulses {out['pulses10k_ms']} ms "
          f"(loop {out['pulses10k_loop_ms']} ms)")
    argv = [sys.executable, __file__, "--child-1024"] + (["--quick"] if args.quick else [])
    child = subprocess.run(argv, capture_output=True, text=True, check=True)
    big = json.loads(child.stdout.strip().splitlines()[-1])
    out.update({f"array1024_{k}": v for k, v in big.items()})
    print(f"1024x1024: MVM {big['mvm_first_s']} s ({big['mvm_cg_iterations']} CG iterations), "
          f"peak RSS {big['peak_rss_mb']} MB")
    out["device"] = f"rram defaults, 1% stuck, seed {SEED}, {R_WIRE} ohm per wire segment"
    out["repetitions"] = reps
    print(json.dumps(out))


if __name__ == "__main__":
    main()
