"""Benchmark: equilibrium propagation on scikit-learn's digits — board, float reference, backprop.

Network 64–H–10 (H = 32 hidden neurons by default) as a nonlinear resistive network
(docs/experiments.md, "Equilibrium propagation"): inputs ±x on the rows of tile 0, diode-pair
neurons with bidirectional amplifiers (gain 40, rail 0.5 V), outputs as node voltages; same data
split and seed per run for the three trainings:

* ``backprop_acc``: scikit-learn ``MLPClassifier`` with the same layer sizes, tanh hidden units,
  plain SGD (mini-batches of 32, learning rate 0.05, no momentum), inputs in [−1, 1], as many epochs
  as the float EP reference (``--float-epochs``, 20); ``backprop_60_epochs_acc`` the same with 60
  epochs. The goals are judged against the better of the two;
* ``float_eqprop_acc``: the float EP reference (ideal ohmic devices, the same settling equations);
* ``board_eqprop_acc``: EP on the simulated board: a 256×64 RRAM 1T1R array with the simulator's
  default device physics (soft bounds, SET/RESET asymmetry, 30 % cycle-to-cycle and device-to-device
  spread, 0.5 % read noise, 1 % stuck cells), the board's 18-bit node ADC and input DAC, updates as
  pulse pairs on the differential pairs (the ±x rows of a column) through the measured device step,
  6 epochs (``--epochs``; each board epoch costs minutes of instrument time).

Wires: the board's equilibrium mode does not model wire resistance (docs/board-protocol.md §5.11);
the array is built with 0 Ω wires so that the device-step reads (READ_ALL) agree with it.

Each accuracy is reported per seed with mean and standard deviation (``--seeds``, default 3);
``settling_time_s`` is the mean settling time per sample of the free and nudged phases (board),
``pulses`` and ``instrument_time_s`` the mean per board run. Usage:
``python benchmarks/eqprop.py [--quick]``; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Any

import numpy as np

from xbarlab.experiments.datasets import load_dataset
from xbarlab.experiments.eqprop import EquilibriumTrainExperiment
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text


def backprop(seed: int, hidden: int, epochs: int, limit: int) -> float:
    """Test accuracy of an MLP of the same sizes trained by backprop (SGD) on the same split."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    ds = load_dataset("digits", seed=seed, limit=limit or None)
    mlp = MLPClassifier((hidden,), activation="tanh", solver="sgd", learning_rate_init=0.05, batch_size=32,
                        momentum=0.0, max_iter=epochs, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(2 * ds.x_train - 1, ds.y_train)
    return float(mlp.score(2 * ds.x_test - 1, ds.y_test))


#: the board runs the experiment's defaults (beta = 10 mS: its hidden nodes then move by ~1 mV between the two
#: nudged phases, above the ~0.3 mV spread of the devices' read noise; mini-batches of 32; differential pulse pairs
#: from a host accumulator); the float reference, without noise or pulses, learns faster with more, smaller updates
#: and a gentler nudge (its learning rates decay by 0.9 per epoch over its 20 epochs)
BOARD: dict[str, Any] = {}
FLOAT = {"beta": 1e-3, "batch": 8, "lr_decay": 0.9}


def _epoch_line(tag: str):
    """A progress callback that prints each finished epoch to stderr (a long run shows where it is)."""

    def show(progress: Any) -> None:
        if "test_acc" in progress.values:
            print(f"{tag} {progress.message} (train {progress.values['train_acc']:.2%})", file=sys.stderr, flush=True)

    return show


def _summary(values: list[float]) -> dict[str, Any]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": [round(v, 4) for v in values]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="one seed, one epoch (EP needs ~100 updates before it learns: all samples; ~1-3 min)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--epochs", type=int, default=None, help="board EP epochs (default 6; --quick: 1)")
    ap.add_argument("--float-epochs", type=int, default=None,
                    help="float EP epochs, and backprop's at equal epochs (default 20; --quick: 2)")
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--board-param", action="append", default=[], metavar="NAME=VALUE",
                    help="override a parameter of the board runs (repeatable), e.g. lr_hidden=8e-6")
    ap.add_argument("--skip", nargs="*", default=(), choices=("backprop", "float", "board"))
    args = ap.parse_args(argv)
    board = dict(BOARD)
    types = {p.name: p.type for p in EquilibriumTrainExperiment.params_spec}
    for item in args.board_param:
        name, _, value = item.partition("=")
        if name not in types or not value:
            ap.error(f"--board-param {item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(types))}")
        board[name] = types[name](value) if types[name] is not bool else value.lower() in ("1", "true", "yes")
    hidden = args.hidden or 32
    epochs = args.epochs or (1 if args.quick else 6)
    float_epochs = args.float_epochs or (2 if args.quick else 20)
    limit = 0
    if args.quick:
        args.seeds = 1
    common = {"hidden": hidden, "epochs": epochs, "limit": limit}
    out: dict[str, Any] = {"params": {**common, **{p.name: p.default for p in EquilibriumTrainExperiment.params_spec
                                                   if p.name not in common and p.name not in ("rule", "seed")}},
                           "board_overrides": board, "float_overrides": FLOAT,
                           "array": "256x64 RRAM 1T1R, simulator defaults, 0 ohm wires"}
    acc: dict[str, list[float]] = {"backprop": [], "backprop60": [], "float": [], "board": []}
    settle_free, settle_nudged, pulses, inst = [], [], [], []
    t_wall = time.perf_counter()
    out["seeds"] = list(range(args.first_seed, args.first_seed + args.seeds))
    for seed in out["seeds"]:
        if "backprop" not in args.skip:
            acc["backprop"].append(backprop(seed, hidden, float_epochs, limit))
            acc["backprop60"].append(backprop(seed, hidden, 60, limit))
        if "float" not in args.skip:
            r = EquilibriumTrainExperiment(None, {**common, **FLOAT, "epochs": float_epochs, "rule": "float",
                                                  "seed": seed}, progress=_epoch_line(f"float seed {seed}:")).run()
            acc["float"].append(r.test_acc)
            out.setdefault("float_eqprop_history", []).append([round(e.test_acc, 4) for e in r.history])
        if "board" not in args.skip:
            text = sim_station_text(256, 64, seed=1000 + seed, wire_resistance=0.0, name="eqprop bench")
            with Station.from_text(text) as station:
                r = EquilibriumTrainExperiment(station, {**common, **board, "rule": "board", "seed": seed},
                                               progress=_epoch_line(f"board seed {seed}:")).run()
            acc["board"].append(r.test_acc)
            out.setdefault("board_eqprop_history", []).append([round(e.test_acc, 4) for e in r.history])
            out.setdefault("device_step", []).append(r.device_step)
            settle_free.append(float(np.mean([e.settle_free for e in r.history])))
            settle_nudged.append(float(np.mean([e.settle_nudged for e in r.history])))
            pulses.append(r.total_pulses)
            inst.append(r.instrument_time)
    out["float_epochs"] = float_epochs
    for key, name in (("backprop", "backprop_acc"), ("backprop60", "backprop_60_epochs_acc"),
                      ("float", "float_eqprop_acc"), ("board", "board_eqprop_acc")):
        if acc[key]:
            out[name] = _summary(acc[key])
    if settle_free:
        out["settling_time_s"] = {"free": float(np.mean(settle_free)), "nudged": float(np.mean(settle_nudged))}
        out["pulses"] = float(np.mean(pulses))
        out["instrument_time_s"] = float(np.mean(inst))
    if acc["backprop"]:  # the goals are judged against the stronger backprop: equal epochs or 60 epochs
        best = max(out["backprop_acc"]["mean"], out["backprop_60_epochs_acc"]["mean"])
        for key, name, goal in (("float", "float", 1.0), ("board", "board", 3.0)):
            if acc[key]:
                gap = 100 * (best - out[f"{name}_eqprop_acc"]["mean"])
                out[f"{name}_gap_points"] = gap
                out[f"{name}_goal_met"] = bool(gap <= goal)
    out["wall_s"] = time.perf_counter() - t_wall
    return out


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
