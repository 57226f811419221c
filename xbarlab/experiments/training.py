"""On-array training of a small MLP (digits or any .npz), with a float baseline.

Forward passes are forward MVMs, backward passes transpose MVMs, updates are pulses
(:mod:`xbarlab.experiments.update_rules`): stochastic outer-product SGD (Gokmen & Vlasov
2016), the same with zero shifting (``sgd_zero_shift``: one device per weight, its reference
device programmed to the device's symmetry point measured on the bench, Kim et al. 2019/2020,
:mod:`xbarlab.experiments.zero_shift`), mixed precision (Nandakumar et al. 2020) or Tiki-Taka
(Gokmen & Haensch 2020). The
``float`` rule trains the same architecture on the same split in numpy, without a station.

Array layout: inputs on rows, outputs as differential column pairs; layer k occupies rows
0..n_in−1 and its own band of columns, left to right from ``col0``. Tiki-Taka needs two
arrays per layer: we use two disjoint column bands of the same physical array (A and C), so a
64-row array with 128 columns holds a 64–16–10 network (2 × (32 + 20) = 104 columns).

Before training: the device step (Δg per SET and RESET pulse) is measured on a sample of the
cells (the weight change per pulse pair, dw_min, sets the pulse probabilities and the
mixed-precision threshold), initial weights are programmed by write-verify (differential pairs
centred in the window), and Tiki-Taka's A blocks are brought to their devices' symmetry point
by alternating pulses (zero shifting, Kim et al. 2019). Per epoch the run logs loss, train
accuracy (running, over the epoch's samples), test loss and accuracy, pulses and instrument time.
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
from xbarlab.experiments.datasets import Dataset, dataset_shape, dataset_size, load_dataset
from xbarlab.experiments.eqprop import cli_train as eqprop_cli_train
from xbarlab.experiments.networks import MLP, FloatLayer, init_weights
from xbarlab.experiments.param_groups import CONDUCTANCE_WINDOW, MVM_INPUT, PLACEMENT, PROGRAMMING
from xbarlab.experiments.pcm_training import PCM_RULE, build_pcm_net, pcm_counters, pcm_update_problems
from xbarlab.experiments.programming import device_kind, measure_device_step, program, program_weights
from xbarlab.experiments.support import (
    add_run_arguments,
    bench_timing,
    board_limit_problems,
    instrument_time,
    run_cli_experiment,
    station_defaults,
    tia_range,
)
from xbarlab.experiments.update_rules import (
    ArrayBlock,
    DeviceStep,
    MixedPrecisionLayer,
    PulseSpec,
    StochasticPulseLayer,
    TikiTakaLayer,
)
from xbarlab.experiments.zero_shift import alternating_trains, measure_symmetry_points
from xbarlab.instruments.interfaces import CrossbarArray

TRAIN_RULES = ("float", "sgd", "sgd_zero_shift", "mixed_precision", "tiki_taka", "pcm_3t1c", "eqprop")
ZERO_SHIFT_RULE = "sgd_zero_shift"


def plan_layout(
    sizes: list[int], rule: str, shape: tuple[int, int], *, row0: int = 0, col0: int = 0
) -> list[list[Region]]:
    """Regions per layer: [main] or, for Tiki-Taka, [A, C]; raises ConfigError if they do not fit."""
    rows, cols = shape
    blocks = 2 if rule == "tiki_taka" else 1
    need_cols = sum(blocks * 2 * n_out for n_out in sizes[1:])
    need_rows = max(sizes[:-1])
    if row0 + need_rows > rows or col0 + need_cols > cols:
        detail = " (Tiki-Taka uses two blocks A and C per layer)" if blocks == 2 else ""
        raise ConfigError(
            f"a {'-'.join(map(str, sizes))} network with rule {rule!r} needs {need_rows} rows x {need_cols} columns "
            f"from row {row0}, column {col0}{detail}; the array is {rows}x{cols}. Use a smaller hidden layer "
            "or a larger array"
        )
    out, c = [], col0
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        regs = []
        for _ in range(blocks):
            regs.append(Region(row0, c, n_in, 2 * n_out))
            c += 2 * n_out
        out.append(regs)
    return out


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float  # running accuracy over the epoch's training samples
    test_loss: float
    test_acc: float
    pulses: int  # device pulses applied in this epoch
    instrument_time: float  # s since the start of training


@dataclass
class TrainResult:
    rule: str
    sizes: list[int]
    history: list[EpochStats] = field(default_factory=list)
    device_step: dict[str, float] = field(default_factory=dict)
    programming: dict[str, Any] = field(default_factory=dict)
    total_pulses: int = 0
    instrument_time: float = 0.0
    counters: dict[str, Any] = field(default_factory=dict)  # PCM rules: transfers, refreshes, charge steps

    @property
    def test_acc(self) -> float:
        return self.history[-1].test_acc if self.history else float("nan")


@register
class TrainExperiment(Experiment):
    """Train an MLP on the array (or in float) and log every epoch."""

    kind = "train"
    revision = 3  # 3: PCM + 3T1C measures the capacitors' range and logs transfer diagnostics; 2: write-verify rev. 2
    title = "On-array training (SGD pulses, mixed precision, Tiki-Taka, PCM + 3T1C) with a float baseline"
    plots = (PlotSpec("epochs", "epoch", ("train_acc", "test_acc"), "1", "1", "accuracy per epoch"),)
    params_spec = (
        Param("rule", str, "mixed_precision", choices=TRAIN_RULES, help="update rule ('float' = numpy baseline)"),
        Param("dataset", str, "digits", help="'digits' or a .npz file with arrays X and y"),
        Param("hidden", int, 16, min=1, max=4096, help="hidden neurons"),
        Param("epochs", int, 5, min=1, max=10000),
        Param("lr", float, 0.05, min=1e-6, max=10.0, help="learning rate"),
        Param("lr_decay", float, 1.0, min=0.01, max=1.0, help="learning rate factor per epoch"),
        Param("limit", int, 0, min=0, help="use only this many samples (0 = all)"),
        Param("test_fraction", float, 0.2, min=0.01, max=0.9),
        Param("w_max_hidden", float, 2.0, min=1e-3, help="weight at full differential swing, hidden layer"),
        Param("w_max_out", float, 3.0, min=1e-3, help="weight at full differential swing, output layer"),
        *CONDUCTANCE_WINDOW(),
        *PROGRAMMING.take("pulse_amplitude", "pulse_width"),
        *MVM_INPUT(),  # of the forward and backward MVMs
        Param("bl", int, 10, min=1, max=1000, help="stochastic pulse train length (slots)"),
        Param("max_pulses", int, 4, min=1, max=1000, help="mixed precision: pulse pairs per weight and update"),
        Param("update", str, "push_pull", choices=("push_pull", "single_device", "set_only"),
              help="push_pull: pulse both devices of a pair; single_device: only G+ (G- a fixed reference); "
                   "set_only: SET pulses only, with refresh (PCM, mixed_precision)"),
        Param("gamma", float, 0.5, min=0.0, max=10.0, help="Tiki-Taka: W = gamma*A + C"),
        Param("transfer_every", int, 2, min=1, help="Tiki-Taka: samples between row transfers A -> C"),
        Param("transfer_lr", float, 0.1, min=1e-6, max=10.0, help="Tiki-Taka: transfer rate"),
        Param("zero_shift_pulses", int, 1000, min=0, max=100000, help="Tiki-Taka: alternating pulse pairs on A"),
        Param("symmetry_rounds", int, 60, min=1, max=1000,
              help="sgd_zero_shift: at most this many rounds of 200 alternating pulse pairs to find each device's "
                   "symmetry point"),
        Param("significance", float, 3.0, min=0.1, max=100.0,
              help="pcm_3t1c: F in W = F*(G+ - G-) + (g+ - g-) (Ambrogio 2018: 3)"),
        Param("cap_transfer_every", int, 20, min=1, help="pcm_3t1c: samples between capacitor -> PCM transfers"),
        Param("polarity_inversion", bool, True, help="pcm_3t1c: invert the sign convention of g at each transfer"),
        Param("transfer_pulses", bool, True,
              help="pcm_3t1c: transfer by SET pulses (stochastically rounded, no RESET); false: by write-verify, "
                   "writing back to the capacitors what it did not realise"),
        Param("refresh_every", int, 100, min=1,
              help="set_only, and pcm_3t1c with transfer_pulses: samples between refresh checks"),
        Param("refresh_level", float, 0.9, min=0.1, max=1.0,
              help="set_only / pcm_3t1c: refresh a pair when a device exceeds this fraction of the window"),
        *PROGRAMMING.take("tolerance", tolerance=0.02),  # of the initial weights
        *PLACEMENT(),
    )

    _matrices: list[ArrayMatrix]

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = []
        if params["rule"] == "eqprop":  # a network of its own (xbarlab.experiments.eqprop)
            return [f"{where}.rule = 'eqprop': use the step type 'equilibrium_train' (xbarlab train --rule eqprop "
                    "runs it)"]
        if params["g_min"] >= params["g_max"]:
            problems.append(f"{where}.g_min = {params['g_min']:g} S must be below g_max = {params['g_max']:g} S")
        if params["rule"] == ZERO_SHIFT_RULE and params["update"] != "single_device":
            problems.append(f"{where}.rule = {ZERO_SHIFT_RULE!r} needs update = 'single_device' (the reference device "
                            f"G- is set to the symmetry point of its G+; with {params['update']!r} both devices move "
                            "and there is no fixed reference)")
        if params["rule"] == ZERO_SHIFT_RULE and getattr(station_config, "device", None) == "pcm":
            problems.append(f"{where}.rule = {ZERO_SHIFT_RULE!r}: PCM has no RESET increments, so no symmetry point; "
                            "use the set_only update or pcm_3t1c")
        problems += pcm_update_problems(params["rule"], params["update"], getattr(station_config, "device", None),
                                        where)
        sim = getattr(station_config, "sim", None)
        if params["rule"] == PCM_RULE and isinstance(sim, dict) and "cap_cells" not in sim:
            problems.append(f"{where}.rule = {PCM_RULE!r} needs a board with a 3T1C capacitor array; this simulated "
                            "station has none (add a [sim.cap_cells] table)")
        if params["rule"] != "float":
            problems += board_limit_problems(params, station_config, where, {
                "pulse_amplitude": "max_pulse_amplitude", "v_in": "max_mvm_voltage"})
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        if params["rule"] == "float":
            return Estimate(operations=0, instrument_time=0.0, detail="numpy baseline, no instrument")
        t = bench_timing(station_config)
        features, classes = dataset_shape(params["dataset"])
        total = dataset_size(params["dataset"])
        samples = min(params["limit"], total) if params["limit"] else total
        n_test = int(round(params["test_fraction"] * samples))
        n_train = samples - n_test
        sizes = [features, params["hidden"], classes]
        layers = len(sizes) - 1
        arrays = 2 if params["rule"] == "tiki_taka" else 1
        cells = sum(n_in * 2 * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True))
        # programming, then the device step (3 reads, 20 pulses on 64 cells)
        setup = t.write_verify_layers(sizes, params["tolerance"]) + 3 * t.read_all + 64 * 20 * t.pulse
        if arrays == 2:
            setup += layers * 2 * params["zero_shift_pulses"] * t.slot
        if params["rule"] == ZERO_SHIFT_RULE:  # rounds of 200 pulse pairs and a read each, at most
            setup += layers * params["symmetry_rounds"] * (400 * t.slot + t.read_all)
        if params["rule"] == PCM_RULE:
            arrays = 2  # the PCM and the capacitor MVM of every product
        per_sample_mvms = arrays * (2 * layers - 1) + (0.5 * layers / params["transfer_every"] if arrays == 2 else 0)
        if params["rule"] == "mixed_precision":
            update = 0.3 * cells * t.pulse  # pulses per sample ~0.6 x weights (measured early in training)
        elif params["rule"] == PCM_RULE:
            update = 0.3 * cells * t.pulse  # charge steps as pulses, plus the transfers' write-verify
            setup += t.write_verify_layers(sizes, params["tolerance"]) * samples / params["cap_transfer_every"] * 0.1
        else:
            update = layers * params["bl"] * t.slot * (1.5 if arrays == 2 else 1.0)
        per_epoch_mvms = n_train * per_sample_mvms + n_test * arrays * layers + 20 * arrays * layers
        mvms = int(params["epochs"] * per_epoch_mvms)
        time = setup + mvms * t.mvm + params["epochs"] * n_train * update
        return Estimate(operations=mvms, instrument_time=time,
                        detail=f"{params['epochs']} epochs of {n_train} samples: {mvms} MVMs + update pulses")

    # -- set-up ----------------------------------------------------------------------------------------------
    def _float_net(self, sizes: list[int]) -> MLP:
        return MLP([FloatLayer(w) for w in init_weights(sizes, seed=self.params["seed"])])

    def _analog_net(self, sizes: list[int], result: TrainResult) -> MLP:
        p = self.params
        refused = pcm_update_problems(p["rule"], p["update"], device_kind(self.station), "train")
        if refused:
            raise ConfigError(refused[0])
        if p["rule"] == PCM_RULE or p["update"] == "set_only":
            shape = tuple(self.station.require_board().shape)
            regions = plan_layout(sizes, "mixed_precision", shape, row0=p["row0"], col0=p["col0"])
            return build_pcm_net(self, sizes, result, regions)
        board = self.station.require_board()
        regions = plan_layout(sizes, p["rule"], tuple(board.shape), row0=p["row0"], col0=p["col0"])
        pulses = PulseSpec(p["pulse_amplitude"], p["pulse_width"])
        enc = InputEncoding("amplitude", p["v_in"])
        w_maxes = [p["w_max_hidden"]] * (len(sizes) - 2) + [p["w_max_out"]]
        weights = init_weights(sizes, seed=p["seed"])
        rng = np.random.default_rng(p["seed"] + 11)

        # program the initial weights; zero-shift Tiki-Taka's A blocks
        blocks: list[tuple[ArrayBlock, ArrayBlock | None, WeightMapping]] = []
        prog: dict[str, Any] = {}
        for k, (w, regs, w_max) in enumerate(zip(weights, regions, w_maxes, strict=True)):
            self.checkpoint()
            self.report(0, 3, f"programming layer {k + 1} ({w.shape[0]}x{w.shape[1]})")
            mapping = WeightMapping(p["g_min"], p["g_max"], w_max, "differential")
            single = p["update"] == "single_device"
            main = ArrayBlock(board, regs[-1], mapping, w.shape[0], w.shape[1], pulses, enc, single_device=single)
            tolerance = p["tolerance"] * (p["g_max"] - p["g_min"])
            if p["rule"] == ZERO_SHIFT_RULE:
                outcome = self._program_zero_shifted(board, main, w, k, pulses, tolerance)
            else:
                outcome = program_weights(self.station, board, main.rows, main.matrix.cols, mapping, w, centered=True,
                                          pulse=pulses, tolerance=tolerance, checkpoint=self.checkpoint)
            prog[f"layer{k}"] = outcome.summary()
            a_block = None
            if p["rule"] == "tiki_taka":
                a_block = ArrayBlock(board, regs[0], mapping, w.shape[0], w.shape[1], pulses, enc,
                                     single_device=single)
                self._zero_shift(board, a_block, pulses)
            blocks.append((main, a_block, mapping))
        result.programming = prog

        # device step at the operating point, on a sample of the programmed cells
        self.checkpoint()
        self.report(1, 3, "measuring the device step")
        cells = np.array([(int(r), int(c)) for main, _, _ in blocks for r in main.rows for c in main.matrix.cols])
        pick = cells[rng.choice(len(cells), size=min(64, len(cells)), replace=False)]
        read_v = station_defaults(self.station)[0]
        with tia_range(self.station, board, 1.5 * p["g_max"] * abs(read_v)):
            step: DeviceStep = measure_device_step(board, pick[:, 0], pick[:, 1], pulses, pulses=10,
                                                   read_voltage=read_v)
        result.device_step = {"up_S": step.up, "down_S": step.down, "asymmetry": step.asymmetry}
        self.recorder.add_calibration("train-device-step", "device_step",
                                      {"up": np.array(step.up), "down": np.array(step.down)},
                                      {"cells": int(len(pick)), "pulse_amplitude": pulses.amplitude,
                                       "pulse_width": pulses.width})

        layers: list[Any] = []
        for k, (main, a_block, mapping) in enumerate(blocks):
            # weight change per update event: a push-pull pulse pair, or one pulse on G+ (mean of SET and RESET)
            dw = (step.mean if main.single_device else step.up + step.down) / mapping.unit
            if p["rule"] in ("sgd", ZERO_SHIFT_RULE):
                layers.append(StochasticPulseLayer(main, dw, bl=p["bl"], seed=p["seed"] + k))
            elif p["rule"] == "mixed_precision":
                layers.append(MixedPrecisionLayer(main, dw, max_pulses=p["max_pulses"], seed=p["seed"] + k))
            else:
                assert a_block is not None
                layers.append(TikiTakaLayer(a_block, main, dw, dw, gamma=p["gamma"],
                                            transfer_every=p["transfer_every"], transfer_lr=p["transfer_lr"],
                                            bl=p["bl"], seed=p["seed"] + k))
        self.commit("initialised", **{f"{k}_yield": v["yield"] for k, v in prog.items()}, dw_up=step.up,
                    dw_down=step.down)
        return MLP(layers)

    def _program_zero_shifted(self, board: CrossbarArray, block: ArrayBlock, w: np.ndarray, layer: int,
                              pulses: PulseSpec, tolerance: float) -> Any:
        """Zero shifting (Kim et al. 2019/2020): measure every G+ device's symmetry point on the bench, program its
        reference G- to it and G+ to g_sym + w·unit, so that W = 0 sits where the device's updates balance."""
        read_v = station_defaults(self.station)[0]
        mapping = block.mapping
        # the symmetry point may lie above the weight window: read up to 3x its top
        with tia_range(self.station, board, 3.0 * mapping.g_max * abs(read_v)):
            sym = measure_symmetry_points(board, block.rows, block.plus, amplitude=pulses.amplitude,
                                          width=pulses.width, read_voltage=read_v,
                                          max_rounds=self.params["symmetry_rounds"], checkpoint=self.checkpoint)
        g_sym = sym.g_sym.reshape(block.rows.size, block.plus.size)  # n_in x n_out
        self.recorder.add_calibration(
            f"symmetry-points-layer{layer}", "symmetry_point",
            {"g_sym": g_sym, "spread": sym.spread.reshape(g_sym.shape), "change_per_round": np.array(sym.history)},
            {"rows": [int(r) for r in block.rows], "columns": [int(c) for c in block.plus], "rounds": sym.rounds,
             "pulse_pairs": sym.pairs, "settled": sym.settled, "pulse_amplitude": pulses.amplitude,
             "pulse_width": pulses.width})
        self.commit(f"symmetry-points-layer{layer}", rounds=sym.rounds, settled=sym.settled,
                    g_sym_median=float(np.median(g_sym)), g_sym_spread=float(np.std(g_sym)))
        top = max(mapping.g_max, float(np.max(g_sym)))
        targets = np.empty((block.rows.size, 2 * block.plus.size))
        targets[:, 1::2] = np.clip(g_sym, mapping.g_min, top)
        targets[:, 0::2] = np.clip(targets[:, 1::2] + np.asarray(w, dtype=float).T * mapping.unit, mapping.g_min, top)
        return program(self.station, board, block.rows, block.matrix.cols, targets, pulse=pulses,
                       tolerance=tolerance, checkpoint=self.checkpoint, g_lo=mapping.g_min, g_hi=top)

    def _zero_shift(self, board: CrossbarArray, block: ArrayBlock, pulses: PulseSpec) -> None:
        """Alternating SET/RESET on every cell of the block: each device settles at its symmetry point."""
        n = self.params["zero_shift_pulses"]
        if n == 0:
            return
        rt, ct = alternating_trains(board.shape, block.rows, block.matrix.cols, n)
        board.outer_product_update(rt, ct, pulses.amplitude, pulses.width)

    # -- run ----------------------------------------------------------------------------------------------
    def execute(self) -> TrainResult:
        p = self.params
        ds: Dataset = load_dataset(p["dataset"], test_fraction=p["test_fraction"], seed=p["seed"],
                                   limit=p["limit"] or None)
        sizes = [ds.features, p["hidden"], ds.classes]
        result = TrainResult(p["rule"], sizes)
        analog = p["rule"] != "float"
        t0 = instrument_time(self.station) if analog else 0.0
        stream = self.recorder.stream(
            "epochs",
            columns=["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "pulses", "instrument_time"],
            units=["1", "nat", "1", "nat", "1", "1", "s"],
        )
        if analog:
            board = self.station.require_board()
            # worst-case column current: every input at full scale on a column of g_max devices
            full_scale = 1.2 * max(sizes[:-1]) * p["g_max"] * p["v_in"]
            with tia_range(self.station, board, full_scale):
                net = self._analog_net(sizes, result)
                self._matrices = [m for layer in net.layers for m in _layer_matrices(layer)]
                self._train(net, ds, result, stream, t0)
                result.counters = pcm_counters(net)
                if result.counters["transfers"] or result.counters["refreshes"]:
                    self.commit("pcm-counters", **result.counters)
        else:
            self._train(self._float_net(sizes), ds, result, stream, t0)
        result.instrument_time = (instrument_time(self.station) - t0) if analog else 0.0
        return result

    def _train(self, net: MLP, ds: Dataset, result: TrainResult, stream: Any, t0: float) -> None:
        p = self.params
        rng = np.random.default_rng(p["seed"] + 1)
        n = len(ds.y_train)
        analog = p["rule"] != "float"
        total_steps = p["epochs"] * n
        for epoch in range(1, p["epochs"] + 1):
            if analog:  # the weights moved: re-range the TIAs and re-measure the output offsets
                board = self.station.require_board()
                autorange(board, self._matrices, station_defaults(self.station)[0])
                for m in self._matrices:
                    m.measure_offsets()
            loss_sum, hits, pulses = 0.0, 0, 0
            lr = p["lr"] * p["lr_decay"] ** (epoch - 1)
            for k, i in enumerate(rng.permutation(n)):
                self.checkpoint()
                r = net.train_sample(ds.x_train[i], int(ds.y_train[i]), lr)
                loss_sum += r.loss
                hits += r.correct
                pulses += r.pulses
                if k % 100 == 99:
                    self.report((epoch - 1) * n + k + 1, total_steps, f"epoch {epoch}: {k + 1}/{n} samples",
                                train_loss=loss_sum / (k + 1), train_acc=hits / (k + 1))
            self.checkpoint()
            test_loss, test_acc = net.evaluate(ds.x_test, ds.y_test)
            t = (instrument_time(self.station) - t0) if analog else 0.0
            stats = EpochStats(epoch, loss_sum / n, hits / n, test_loss, test_acc, pulses, t)
            result.history.append(stats)
            result.total_pulses += pulses
            stream.append(np.array([[epoch, stats.train_loss, stats.train_acc, test_loss, test_acc, pulses, t]]))
            self.commit(f"epoch-{epoch}", train_loss=stats.train_loss, train_acc=stats.train_acc,
                        test_loss=test_loss, test_acc=test_acc, pulses=pulses, instrument_time=t)
            self.report(epoch * n, total_steps, f"epoch {epoch}: test accuracy {test_acc:.2%}", test_acc=test_acc,
                        train_acc=stats.train_acc, loss=stats.train_loss)


def _layer_matrices(layer: Any) -> list[ArrayMatrix]:
    """The array matrices a layer's products use (re-ranged and offset-measured every epoch)."""
    if hasattr(layer, "matrices"):
        return layer.matrices()
    return [blk.matrix for blk in ([layer.a, layer.c] if isinstance(layer, TikiTakaLayer) else [layer.block])]


# -- command line ----------------------------------------------------------------------------------------------
def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``xbarlab train``; the handler is ``cli_main``."""
    p = subparsers.add_parser("train", help="train a small network on the array (or the float baseline)")
    add_run_arguments(p)
    add_param_options(p, TrainExperiment.params_spec)
    p.set_defaults(handler=cli_main)
    return p


def cli_main(args: argparse.Namespace) -> int:
    params = params_from_args(args, TrainExperiment.params_spec)
    if params["rule"] == "eqprop":  # equilibrium propagation: its own experiment, options given here carried over
        defaults = {p.name: p.default for p in TrainExperiment.params_spec}
        return eqprop_cli_train(args, {k: v for k, v in params.items() if v != defaults[k]})
    result = run_cli_experiment(TrainExperiment, args, params)  # float too: the run is logged the same way
    print(f"{'epoch':>5} {'loss':>7} {'train':>7} {'test':>7} {'pulses':>10} {'time/s':>8}")
    for e in result.history:
        print(f"{e.epoch:>5} {e.train_loss:>7.3f} {e.train_acc:>7.2%} {e.test_acc:>7.2%} {e.pulses:>10} "
              f"{e.instrument_time:>8.2f}")
    if result.counters.get("transfers") or result.counters.get("refreshes"):
        c = result.counters
        print(f"{c['transfers']} capacitor transfers, {c['refreshes']} PCM refreshes, {c['pcm_program_pulses']} PCM "
              f"programming pulses, {c.get('transfer_set_pulses', 0)} transfer SET pulses, {c['cap_steps']} charge "
              "steps")
    return 0
