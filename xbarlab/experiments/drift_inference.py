"""Inference under conductance drift: train digitally, program the array, test over time.

The network (same MLP as :mod:`xbarlab.experiments.training`) is trained in float64, its
weights are programmed into differential pairs by write-verify, and the test accuracy is
measured on the array (forward MVMs) at a list of times after programming (default 1 s,
1 h, 1 day), with and without global drift compensation.

Global drift compensation (Joshi et al., "Accurate deep neural network inference using
computational phase-change memory", Nat. Commun. 11, 2473 (2020)): right after programming,
a fixed calibration batch is applied to every layer and the summed |output| recorded; at time
t the same batch is applied again and every output of that layer is scaled by the ratio
(reference / now). One scalar per layer, a handful of MVMs per evaluation, no weight re-reads.
On PCM, g(t) = g₀·(t/t₀)^−ν with ν ≈ 0.05 (Nandakumar et al. 2019) loses ~35 % of its conductance
over a day; the scalar compensation removes the mean decay, not the device-to-device spread of ν.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.experiments.analog import ArrayMatrix, InputEncoding, Region, WeightMapping, autorange
from xbarlab.experiments.base import Estimate, Experiment, Param, PlotSpec, register
from xbarlab.experiments.cli_options import add_param_options, params_from_args
from xbarlab.experiments.datasets import dataset_shape, dataset_size, load_dataset
from xbarlab.experiments.networks import MLP, FloatLayer, init_weights
from xbarlab.experiments.param_groups import CONDUCTANCE_WINDOW, MVM_INPUT, PLACEMENT, PROGRAMMING
from xbarlab.experiments.programming import defect_correction, program_weights
from xbarlab.experiments.support import (
    add_run_arguments,
    bench_timing,
    instrument_time,
    run_cli_experiment,
    station_defaults,
    tia_range,
    wait,
)
from xbarlab.experiments.training import plan_layout
from xbarlab.experiments.update_rules import PulseSpec


class ScaledMatrixLayer:
    """Inference-only layer: ``scale`` × the analog product of an :class:`ArrayMatrix`, plus its
    digital defect correction unscaled (the digital part does not drift, so compensation must not touch it)."""

    def __init__(self, matrix: ArrayMatrix) -> None:
        self.matrix = matrix
        self.n_out, self.n_in = matrix.shape
        self.scale = 1.0

    def analog(self, x: np.ndarray) -> np.ndarray:
        """The array's part of W·x (the digital correction removed again; it was added exactly)."""
        y = self.matrix.matvec(x)
        c = self.matrix.correction
        return y - c @ x if c is not None else y

    def forward(self, x: np.ndarray) -> np.ndarray:
        c = self.matrix.correction
        y = self.scale * self.analog(x)
        return y + c @ x if c is not None else y

    def backward(self, d: np.ndarray) -> np.ndarray:
        raise ConfigError("inference layers have no backward pass")

    def update(self, x: np.ndarray, d: np.ndarray, lr: float) -> int:
        raise ConfigError("inference layers are not trained")

    def weights(self) -> np.ndarray:
        raise ConfigError("inference layers do not read their weights")


@dataclass
class DriftPoint:
    time: float  # s after the end of programming
    accuracy: float  # without compensation
    accuracy_compensated: float
    scales: list[float]  # compensation factor per layer


@dataclass
class DriftResult:
    float_accuracy: float
    points: list[DriftPoint] = field(default_factory=list)
    programming: dict[str, Any] = field(default_factory=dict)
    instrument_time: float = 0.0

    def table(self) -> str:
        corrected = ", ".join(f"{k} {v['yield']:.1%} of devices within tolerance, {v['corrected_fraction']:.1%} of "
                              "weights corrected digitally" for k, v in self.programming.items())
        lines = [f"float baseline: {self.float_accuracy:.2%}", f"write-verify: {corrected}",
                 f"{'t / s':>10} {'raw':>8} {'compensated':>12}"]
        for pt in self.points:
            lines.append(f"{pt.time:>10.4g} {pt.accuracy:>8.2%} {pt.accuracy_compensated:>12.2%}")
        return "\n".join(lines)


@register
class DriftInferenceExperiment(Experiment):
    """Test accuracy of a digitally trained network on the array, over time since programming."""

    kind = "drift_inference"
    revision = 2  # 2: programs with write-verify of revision 2 (1: older logs)
    title = "Inference accuracy under drift, with and without global drift compensation"
    plots = (PlotSpec("drift", "time", ("accuracy", "accuracy_compensated"), "s", "1", "accuracy after programming",
                      log_x=True),)
    params_spec = (
        Param("dataset", str, "digits", help="'digits' or a .npz file with arrays X and y"),
        Param("hidden", int, 16, min=1, max=4096),
        Param("epochs", int, 15, min=1, max=10000, help="epochs of float training"),
        Param("lr", float, 0.1, min=1e-6, max=10.0),
        Param("limit", int, 0, min=0, help="use only this many samples (0 = all)"),
        Param("times", list, [1.0, 3600.0, 86400.0], "s", "evaluation times after programming"),
        Param("calibration_vectors", int, 16, min=1, max=10000, help="inputs in the compensation batch"),
        *CONDUCTANCE_WINDOW(g_min=0.5e-6, g_max=20e-6),  # a PCM window
        *PROGRAMMING.take("tolerance", tolerance=0.03),  # PCM programming noise is ~1-4 % of the window
        Param("defect_correction", bool, True,
              help="correct weights whose devices missed the tolerance digitally (the corrected part does not drift)"),
        *PROGRAMMING.take("pulse_amplitude", "pulse_width"),
        *MVM_INPUT(),
        *PLACEMENT(),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = []
        times = params["times"]
        if not times or any(not isinstance(t, (int, float)) or t < 0 for t in times):
            problems.append(f"{where}.times: expected a non-empty list of times >= 0 s, got {times!r}")
        elif list(times) != sorted(times):
            problems.append(f"{where}.times: must be increasing, got {times!r}")
        if params["g_min"] >= params["g_max"]:
            problems.append(f"{where}.g_min = {params['g_min']:g} S must be below g_max = {params['g_max']:g} S")
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        t = bench_timing(station_config)
        features, classes = dataset_shape(params["dataset"])
        total = dataset_size(params["dataset"])
        samples = min(params["limit"], total) if params["limit"] else total
        n_test = int(round(0.2 * samples))
        cells = features * 2 * params["hidden"] + params["hidden"] * 2 * classes
        per_time = 2 * n_test * 2 + 2 * params["calibration_vectors"] * 2 + 2 * 20  # raw + compensated, calibration
        mvms = len(params["times"]) * per_time + 2 * params["calibration_vectors"]
        wait_s = float(max(params["times"] or [0.0]))
        time = (t.write_verify_layers([features, params["hidden"], classes], params["tolerance"])
                + mvms * t.mvm + wait_s)
        return Estimate(operations=mvms, instrument_time=time,
                        detail=f"write-verify of {cells} cells, {mvms} MVMs; waits until t = {wait_s:g} s")

    def execute(self) -> DriftResult:
        p = self.params
        problems = self.check(p, None, self.kind)
        if problems:
            raise ConfigError("; ".join(problems))
        board = self.station.require_board()
        ds = load_dataset(p["dataset"], seed=p["seed"], limit=p["limit"] or None)
        sizes = [ds.features, p["hidden"], ds.classes]

        # 1. digital training
        self.report(0, 3, "training the float network")
        net = MLP([FloatLayer(w) for w in init_weights(sizes, seed=p["seed"])])
        rng = np.random.default_rng(p["seed"] + 1)
        for _ in range(p["epochs"]):
            self.checkpoint()
            for i in rng.permutation(len(ds.y_train)):
                net.train_sample(ds.x_train[i], int(ds.y_train[i]), p["lr"])
        _, float_acc = net.evaluate(ds.x_test, ds.y_test)
        result = DriftResult(float_acc)
        self.commit("float-trained", test_acc=float_acc)

        # 2. program
        t0 = instrument_time(self.station)
        regions = plan_layout(sizes, "mixed_precision", tuple(board.shape), row0=p["row0"], col0=p["col0"])
        pulses = PulseSpec(p["pulse_amplitude"], p["pulse_width"])
        matrices: list[ArrayMatrix] = []
        for k, (layer, (region,)) in enumerate(zip(net.layers, regions, strict=True)):
            self.checkpoint()
            w = layer.weights()
            w_max = float(np.max(np.abs(w))) or 1.0
            mapping = WeightMapping(p["g_min"], p["g_max"], w_max, "differential")
            self.report(1, 3, f"programming layer {k + 1} ({w.shape[0]}x{w.shape[1]})")
            m = ArrayMatrix(board, Region(region.row0, region.col0, region.rows, region.cols), mapping,
                            w.shape[0], w.shape[1], encoding=InputEncoding("amplitude", p["v_in"]))
            outcome = program_weights(self.station, board, m.rows, m.cols, mapping, w, pulse=pulses,
                                      tolerance=p["tolerance"] * (p["g_max"] - p["g_min"]), checkpoint=self.checkpoint)
            result.programming[f"layer{k}"] = outcome.summary()
            nz = m.set_correction(defect_correction(mapping, outcome, w)) if p["defect_correction"] else 0
            result.programming[f"layer{k}"]["corrected_entries"] = nz
            result.programming[f"layer{k}"]["corrected_fraction"] = nz / w.size
            self.recorder.add_calibration(f"drift-programming-layer{k}", "write_verify",
                                          {"targets": outcome.targets, "achieved": outcome.achieved},
                                          outcome.summary())
            matrices.append(m)
        t_programmed = instrument_time(self.station)
        self.commit("programmed", **{f"{k}_yield": v["yield"] for k, v in result.programming.items()})

        # 3. evaluate over time
        layers = [ScaledMatrixLayer(m) for m in matrices]
        analog = MLP(layers, [b.copy() for b in net.biases])
        cal_x = ds.x_train[rng.choice(len(ds.y_train), size=min(p["calibration_vectors"], len(ds.y_train)),
                                      replace=False)]
        stream = self.recorder.stream("drift", columns=["time", "accuracy", "accuracy_compensated"],
                                      units=["s", "1", "1"])
        full_scale = 1.2 * max(sizes[:-1]) * p["g_max"] * p["v_in"]
        reference: list[float] | None = None
        with tia_range(self.station, board, full_scale):
            read_v = station_defaults(self.station)[0]
            autorange(board, matrices, read_v)
            for m in matrices:
                m.measure_offsets()
            reference = self._calibration_sums(net, layers, cal_x)
            for j, t_target in enumerate(float(t) for t in p["times"]):
                self.checkpoint()
                elapsed = instrument_time(self.station) - t_programmed
                if t_target > elapsed:
                    self.report(2, 3, f"waiting until t = {t_target:g} s after programming")
                    wait(self.station, t_target - elapsed, self.checkpoint)
                t_now = instrument_time(self.station) - t_programmed
                autorange(board, matrices, read_v)  # conductances decayed: keep the ADC resolution
                for m in matrices:
                    m.measure_offsets()
                for layer in layers:
                    layer.scale = 1.0
                _, acc_raw = analog.evaluate(ds.x_test, ds.y_test)
                sums = self._calibration_sums(net, layers, cal_x)
                scales = [ref / now if now > 0 else 1.0 for ref, now in zip(reference, sums, strict=True)]
                for layer, s in zip(layers, scales, strict=True):
                    layer.scale = s
                _, acc_comp = analog.evaluate(ds.x_test, ds.y_test)
                point = DriftPoint(t_now, acc_raw, acc_comp, scales)
                result.points.append(point)
                stream.append(np.array([[t_now, acc_raw, acc_comp]]))
                self.commit(f"t-{j}", time=t_now, accuracy=acc_raw, accuracy_compensated=acc_comp,
                            scales=[float(s) for s in scales])
                self.report(j + 1, len(p["times"]), f"t = {t_now:.4g} s: {acc_raw:.2%} raw, {acc_comp:.2%} "
                            "compensated", accuracy=acc_raw, accuracy_compensated=acc_comp)
        result.instrument_time = instrument_time(self.station) - t0
        return result

    @staticmethod
    def _calibration_sums(net: MLP, layers: list[ScaledMatrixLayer], cal_x: np.ndarray) -> list[float]:
        """Σ|analog output| of every layer for the calibration batch; layer inputs from the float network."""
        sums = [0.0] * len(layers)
        for x in cal_x:
            acts, _ = net.forward(x)  # digital activations: the reference inputs do not drift
            for k, layer in enumerate(layers):
                sums[k] += float(np.sum(np.abs(layer.analog(acts[k]))))
        return sums


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``xbarlab drift``; the handler is ``cli_main``."""
    p = subparsers.add_parser("drift", help="inference accuracy over time after programming (drift)")
    add_run_arguments(p)
    add_param_options(p, DriftInferenceExperiment.params_spec)
    p.set_defaults(handler=cli_main)
    return p


def cli_main(args: argparse.Namespace) -> int:
    result = run_cli_experiment(DriftInferenceExperiment, args,
                                params_from_args(args, DriftInferenceExperiment.params_spec))
    print(result.table())
    return 0
