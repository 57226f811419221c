"""Equilibrium propagation: training a nonlinear resistive network on the board, and its float reference.

Scellier & Bengio, "Equilibrium propagation", Front. Comput. Neurosci. 11, 24 (2017); Kendall et al.,
"Training end-to-end analog neural networks with equilibrium propagation", arXiv:2006.01981 (2020).
The board's equilibrium-network mode (docs/board-protocol.md §5.11) lays a layered network on
tiles of the array; the network computes by settling. Per mini-batch:

* **free phase**: inputs applied, outputs left alone; the board returns every row and node voltage;
* **nudged phase**: the same inputs, plus currents I_k = β·(t_k − y_k) injected into the output
  nodes (β in S, targets t in V); with ``centered`` a second nudged phase with −β replaces the free
  phase in the rule (Laborieux et al. 2021: removes the first-order bias of the estimate);
* **local rule**: every weight device moves by
  ΔG_rc = −η_l·(w_c/w_out)/β·[½(ΔV_rc^nudged)² − ½(ΔV_rc^free)²], averaged over the batch, with
  ΔV_rc = V_r − V_c its voltage drop in each phase (w_c/w_out = gain^(2·(L − l)): the amplifiers'
  1/gain backward current gain). The host only subtracts and squares voltage drops: no matrix
  products. On the board ΔG becomes pulses through the measured device step (S per SET and per
  RESET pulse, :func:`~xbarlab.experiments.programming.measure_device_step`), stochastically
  rounded, at most ``max_pulses`` per device and update, one PULSE_BATCH; the devices respond with
  their own nonlinearity, asymmetry, noise and stuck cells.

``rule="float"`` trains the same network with ideal (ohmic, noise-free, exactly updated, clipped to
[g_min, g_max]) devices and the same settling equations (:mod:`xbarlab.protocol.eqprop_circuit`),
on the host without a station: the float EP reference. Everything is logged: per epoch the loss,
accuracies, pulses, settling times and instrument time; the free and nudged output voltages of a
fixed probe sample.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.experiments.base import Estimate, Experiment, Param, PlotSpec, register
from xbarlab.experiments.datasets import Dataset, dataset_shape, dataset_size, load_dataset
from xbarlab.experiments.programming import measure_device_step
from xbarlab.experiments.support import (
    array_shape,
    bench_timing,
    board_limit_problems,
    instrument_time,
    run_cli_experiment,
    station_defaults,
)
from xbarlab.experiments.update_rules import DeviceStep, PulseSpec, stochastic_round
from xbarlab.instruments.interfaces import BatchedPulses, EqpropMode, require
from xbarlab.protocol.eqprop import EqConfig
from xbarlab.protocol.eqprop_circuit import (
    AmplifierSpec,
    DiodeSpec,
    EquilibriumNetwork,
    NeuronSpec,
    layered_topology,
)

EQPROP_RULES = ("board", "float")


def plan_tiles(sizes: list[int], shape: tuple[int, int], row0: int = 0, col0: int = 0) -> tuple[tuple[int, int], ...]:
    """Tiles on disjoint rows and columns, diagonally from (row0, col0); ConfigError when they do not fit."""
    rows = sum(2 * (n + 1) for n in sizes[:-1])
    cols = sum(sizes[1:])
    if row0 + rows > shape[0] or col0 + cols > shape[1]:
        raise ConfigError(
            f"an equilibrium network {'-'.join(map(str, sizes))} needs {rows} rows x {cols} columns from row {row0}, "
            f"column {col0} (each input and hidden unit drives two rows: +V and -V, plus a bias pair per tile); "
            f"the array is {shape[0]}x{shape[1]}. Use a smaller hidden layer or a larger array "
            "([sim.array] rows/cols on the simulated bench)")
    tiles, r, c = [], row0, col0
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        tiles.append((r, c))
        r += 2 * (n_in + 1)
        c += n_out
    return tuple(tiles)


@dataclass
class EqEpoch:
    epoch: int
    train_loss: float  # V², ½Σ(y − t)² of the free phase, mean over samples
    train_acc: float
    test_loss: float
    test_acc: float
    pulses: int
    instrument_time: float  # s since the start of training
    settle_free: float  # s, mean settling time per sample, free phase
    settle_nudged: float  # s, nudged phase(s)


@dataclass
class EqResult:
    rule: str
    sizes: list[int]
    history: list[EqEpoch] = field(default_factory=list)
    device_step: dict[str, float] = field(default_factory=dict)
    total_pulses: int = 0
    instrument_time: float = 0.0

    @property
    def test_acc(self) -> float:
        return self.history[-1].test_acc if self.history else float("nan")


class _FloatNetwork:
    """Ideal devices on the host: the float EP reference."""

    def __init__(self, net: EquilibriumNetwork, mask: np.ndarray, g: np.ndarray, g_min: float, g_max: float) -> None:
        self.net, self.mask, self.g, self.g_min, self.g_max = net, mask, g, g_min, g_max

    def settle(self, x: np.ndarray, inject: np.ndarray | None, start: np.ndarray | None = None, repeats: int = 1
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        eq = self.net.solve(self.g, x, inject, v_init=start)  # the nudged phases start from the free state
        return eq.rows, eq.nodes, eq.settle_time

    def update(self, delta_g: np.ndarray) -> int:
        self.g = np.where(self.mask, np.clip(self.g + delta_g, self.g_min, self.g_max), 0.0)
        return 0


class _BoardNetwork:
    """The network on the board: EQ_SETTLE for the phases, PULSE_BATCH for the updates.

    ``update``: ``"stochastic"``: every device's ΔG becomes pulse counts by stochastic rounding (SET up,
    RESET down); ``"pairs"``: the rows ±x_i (and ±a_j, ±V_b) of a column form a differential pair and
    only its difference is trained, ΔW = ½(ΔG⁺ − ΔG⁻), as pulse pairs (SET G⁺ with RESET G⁻, or the
    reverse), stochastically rounded; ``"accumulate"``: the same pairs, but ΔW is accumulated on the
    host per pair and a pulse pair fires only when the accumulator passes one step (Nandakumar et al.
    2020's mixed precision), so read-noise-driven updates average out instead of walking the devices.
    """

    def __init__(self, board: Any, n_rows: int, rows: np.ndarray, cols: np.ndarray, mask: np.ndarray,
                 step: DeviceStep, pulses: PulseSpec, max_pulses: int, rng: np.random.Generator,
                 update: str = "stochastic") -> None:
        self.board, self.n_rows, self.step, self.pulses = board, n_rows, step, pulses
        self.max_pulses, self.rng, self.mode = max_pulses, rng, update
        self.cell_r, self.cell_c = np.nonzero(mask)  # tile cells in network coordinates
        self.phys_r, self.phys_c = rows[self.cell_r], cols[self.cell_c]
        plus = self.cell_r % 2 == 0  # tile rows come in (+, −) pairs from an even row
        self.pair_r, self.pair_c = self.cell_r[plus], self.cell_c[plus]  # the G⁺ cell of every pair
        self.pair_plus_r, self.pair_minus_r = rows[self.pair_r], rows[self.pair_r + 1]
        self.pair_col = cols[self.pair_c]
        self.chi = np.zeros(self.pair_r.size)  # S, accumulated ΔW per pair (update "accumulate")

    def settle(self, x: np.ndarray, inject: np.ndarray | None, start: np.ndarray | None = None, repeats: int = 1
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row and node voltages (V) and settling times (s) per sample; with ``repeats`` > 1 every sample is
        settled that many times (in one EQ_SETTLE) and its voltages averaged: the devices' read noise, drawn
        anew at every settling, then shrinks by √repeats."""
        if repeats > 1:
            x = np.tile(x, (repeats, 1))
            inject = None if inject is None else np.tile(inject, (repeats, 1))
        reply = self.board.eq_settle(x, inject)  # the circuit finds its own way from where it is
        v, t = reply.voltages, reply.settle_time
        if repeats > 1:
            v = v.reshape(repeats, -1, v.shape[1]).mean(axis=0)
            t = t.reshape(repeats, -1).mean(axis=0)
        return v[:, : self.n_rows], v[:, self.n_rows :], t

    def update(self, delta_g: np.ndarray) -> int:
        """Apply ΔG (S, network rows × nodes) as pulses; returns the number of pulses."""
        if self.mode == "stochastic":
            return self._update_devices(delta_g)
        dw = 0.5 * (delta_g[self.pair_r, self.pair_c] - delta_g[self.pair_r + 1, self.pair_c])
        per_pair = self.step.up + self.step.down  # S: change of G⁺ − G⁻ per pulse pair
        if self.mode == "pairs":
            exact = 2.0 * dw / per_pair
            counts = stochastic_round(exact, self.rng)
        else:
            self.chi += 2.0 * dw
            counts = np.trunc(self.chi / per_pair)
        counts = np.clip(counts, -self.max_pulses, self.max_pulses).astype(np.int64)
        if self.mode == "accumulate":
            self.chi -= counts * per_pair
        return self._pulse_pairs(counts)

    def _update_devices(self, delta_g: np.ndarray) -> int:
        """ΔG (S) of the tile cells as pulse counts: SET steps up, RESET steps down, stochastic rounding."""
        dg = delta_g[self.cell_r, self.cell_c]
        per_pulse = np.where(dg > 0, self.step.up, self.step.down)
        exact = np.abs(dg) / per_pulse
        counts = stochastic_round(exact, self.rng).astype(np.int64)  # exact >= 0
        counts = np.minimum(counts, self.max_pulses)
        if not counts.any():
            return 0
        sign = np.where(dg > 0, 1.0, -1.0)
        r = np.repeat(self.phys_r, counts)
        c = np.repeat(self.phys_c, counts)
        a = np.repeat(sign * self.pulses.amplitude, counts)
        self.board.pulse_arrays(r, c, a, self.pulses.width)
        return int(r.size)

    def _pulse_pairs(self, counts: np.ndarray) -> int:
        """Signed pulse-pair counts per pair: +n → n × (SET G⁺, RESET G⁻); −n → n × (RESET G⁺, SET G⁻)."""
        reps = np.abs(counts)
        if not reps.any():
            return 0
        amp = np.repeat(np.where(counts > 0, self.pulses.amplitude, -self.pulses.amplitude), reps)
        r = np.stack([np.repeat(self.pair_plus_r, reps), np.repeat(self.pair_minus_r, reps)], axis=1).ravel()
        c = np.repeat(np.repeat(self.pair_col, reps), 2)
        a = np.stack([amp, -amp], axis=1).ravel()
        self.board.pulse_arrays(r, c, a, self.pulses.width)
        return int(r.size)


@register
class EquilibriumTrainExperiment(Experiment):
    """Train a layered nonlinear resistive network by equilibrium propagation (board or float reference)."""

    kind = "equilibrium_train"
    #: 2: differential pulse pairs from a host accumulator by default (was: per-device stochastic rounding), β 10 mS
    revision = 2
    title = "Equilibrium propagation on the board's nonlinear resistive network, with a float reference"
    plots = (PlotSpec("epochs", "epoch", ("train_acc", "test_acc"), "1", "1", "accuracy per epoch"),
             PlotSpec("outputs", "epoch", ("free_0", "nudged_0", "free_1", "nudged_1"), "1", "V",
                      "probe sample: free and nudged output voltages (first two classes)"))
    params_spec = (
        Param("rule", str, "board", choices=EQPROP_RULES, help="board: on the array; float: ideal devices, host"),
        Param("dataset", str, "digits", help="'digits' or a .npz file with arrays X and y (features in [0, 1])"),
        Param("hidden", int, 32, min=1, max=1024, help="hidden neurons"),
        Param("epochs", int, 5, min=1, max=10000),
        Param("batch", int, 32, min=1, max=4096, help="samples per update (the float reference learns faster with 8)"),
        Param("lr", float, 1e-6, "S^2/V^2", "learning rate of the output tile", min=0.0),
        Param("lr_hidden", float, 4e-6, "S^2/V^2", "learning rate of the hidden tiles", min=0.0),
        Param("lr_decay", float, 0.85, min=0.01, max=1.0, help="learning-rate factor per epoch"),
        Param("beta", float, 1e-2, "S", "nudging strength: I = beta*(target - output)", min=1e-9, max=1.0),
        Param("centered", bool, True, help="two nudged phases +-beta instead of free and +beta"),
        Param("v_in", float, 0.5, "V", "input full scale: features in [0, 1] map to [-v_in, v_in]", min=1e-3),
        Param("target_on", float, 0.05, "V", "output target of the true class"),
        Param("target_off", float, -0.05, "V", "output target of the other classes"),
        Param("amp_gain", float, 12.0, help="layer amplifier voltage gain", min=1.0, max=1000.0),
        Param("amp_rail", float, 0.5, "V", "layer amplifier output rail", min=1e-3),
        Param("bias_voltage", float, 0.5, "V", "bias row pair +-V_b of every tile"),
        Param("diode_bias", float, -0.25, "V", "bias sources of the neurons' diode pairs"),
        Param("g_min", float, 1e-6, "S", "float reference: lowest conductance", min=0.0),
        Param("g_max", float, 100e-6, "S", "float reference: highest conductance", min=1e-9),
        Param("g_init_low", float, 5e-6, "S", "float reference: initial conductances from", min=0.0),
        Param("g_init_high", float, 60e-6, "S", "float reference: initial conductances up to", min=0.0),
        Param("pulse_amplitude", float, 1.2, "V", "update pulse amplitude", min=1e-3),
        Param("pulse_width", float, 100e-9, "s", "update pulse width", min=1e-9),
        Param("max_pulses", int, 8, min=1, max=1000, help="most pulses per device and update"),
        Param("settle_repeats", int, 1, min=1, max=64,
              help="board: settle every training sample this many times per phase and average (read noise / sqrt)"),
        Param("update", str, "accumulate", choices=("stochastic", "pairs", "accumulate"),
              help="board: pulses per device (stochastic), per differential pair (pairs), or per pair from a "
                   "host accumulator (accumulate)"),
        Param("park_amplitude", float, 1.6, "V", "RESET amplitude that parks off-tile cells", min=1e-3),
        Param("park_pulses", int, 30, min=0, max=10000, help="RESET pulses per off-tile cell (0: leave them)"),
        Param("limit", int, 0, min=0, help="use only this many samples (0 = all)"),
        Param("test_fraction", float, 0.2, min=0.01, max=0.9),
        Param("row0", int, 0, min=0),
        Param("col0", int, 0, min=0),
        Param("seed", int, 0),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        problems = []
        if params["g_min"] >= params["g_max"]:
            problems.append(f"{where}.g_min = {params['g_min']:g} S must be below g_max = {params['g_max']:g} S")
        if params["rule"] == "board":
            problems += board_limit_problems(params, station_config, where, {
                "pulse_amplitude": "max_pulse_amplitude", "park_amplitude": "max_pulse_amplitude",
                "v_in": "max_mvm_voltage", "amp_rail": "max_mvm_voltage", "bias_voltage": "max_mvm_voltage",
                "diode_bias": "max_mvm_voltage"})
            shape = array_shape(station_config)
            if shape is not None:
                try:
                    features, classes = dataset_shape(params["dataset"])
                    plan_tiles([features, params["hidden"], classes], shape, params["row0"], params["col0"])
                except ConfigError as exc:
                    problems.append(f"{where}: {exc}")
        return problems

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        if params["rule"] == "float":
            return Estimate(operations=0, instrument_time=0.0, detail="float reference on the host, no instrument")
        t = bench_timing(station_config)
        features, classes = dataset_shape(params["dataset"])
        total = dataset_size(params["dataset"])
        samples = min(params["limit"], total) if params["limit"] else total
        n_train = samples - int(round(params["test_fraction"] * samples))
        hidden = params["hidden"]
        lines = 2 * (features + 1) + 2 * (hidden + 1) + hidden + classes
        phases = 3 if params["centered"] else 2
        settles = params["epochs"] * (phases * n_train + samples - n_train)
        per_settle = 53e-6 * lines  # s: 4 bytes of every line voltage at 921 600 baud plus its 10 µs conversion
        updates = params["epochs"] * -(-n_train // params["batch"])
        cells = 2 * (features + 1) * hidden + 2 * (hidden + 1) * classes
        per_update = 0.05 * cells * t.pulse  # judgement: about one device in 20 gets a pulse per update
        time = settles * per_settle + updates * per_update + 3 * t.read_all
        return Estimate(operations=settles + updates, instrument_time=time,
                        detail=f"{params['epochs']} epochs: {settles} network settlings, {updates} pulse batches")

    # -- set-up ----------------------------------------------------------------------------------------------
    def _config(self, sizes: list[int], tiles: tuple[tuple[int, int], ...]) -> EqConfig:
        p = self.params
        return EqConfig(tuple(sizes), tiles, bias_voltage=p["bias_voltage"], amp_gain=p["amp_gain"],
                        amp_rail=p["amp_rail"], diode_bias=p["diode_bias"])

    @staticmethod
    def _circuit(cfg: EqConfig) -> EquilibriumNetwork:
        spec = NeuronSpec(DiodeSpec(cfg.diode_saturation_current, cfg.diode_ideality,
                                    series_resistance=cfg.diode_series_resistance, bias=cfg.diode_bias),
                          AmplifierSpec(cfg.amp_gain, cfg.amp_rail), cfg.bias_voltage, cfg.output_load)
        topo, _ = layered_topology(list(cfg.sizes), cfg.bias_voltage)
        return EquilibriumNetwork(topo, spec, v0=None)

    @staticmethod
    def _tile_mask(cfg: EqConfig, net: EquilibriumNetwork) -> np.ndarray:
        _, tiles = layered_topology(list(cfg.sizes), cfg.bias_voltage)
        mask = np.zeros((net.topo.rows, net.topo.nodes), dtype=bool)
        for rows, nodes in tiles:
            mask[rows, nodes] = True
        return mask

    def _float_network(self, cfg: EqConfig, net: EquilibriumNetwork, mask: np.ndarray) -> _FloatNetwork:
        p = self.params
        rng = np.random.default_rng(p["seed"] + 5)
        g = np.where(mask, rng.uniform(p["g_init_low"], p["g_init_high"], mask.shape), 0.0)
        return _FloatNetwork(net, mask, g, p["g_min"], p["g_max"])

    def _board_network(self, cfg: EqConfig, mask: np.ndarray, result: EqResult) -> _BoardNetwork:
        p = self.params
        board = require(self.station.require_board(), EqpropMode)
        require(board, BatchedPulses)
        read_v, tia = station_defaults(self.station)
        board.configure(read_v, tia)
        rows, cols = cfg.lines()
        pulses = PulseSpec(p["pulse_amplitude"], p["pulse_width"])
        off = np.argwhere(~mask)
        if p["park_pulses"] and off.size:  # cells where one tile's rows cross another's columns: to the low state
            self.checkpoint()
            self.report(0, 3, f"parking {len(off)} off-tile cells")
            r = np.repeat(rows[off[:, 0]], p["park_pulses"])
            c = np.repeat(cols[off[:, 1]], p["park_pulses"])
            board.pulse_arrays(r, c, -p["park_amplitude"], p["pulse_width"])
        self.checkpoint()
        self.report(1, 3, "measuring the device step")
        rng = np.random.default_rng(p["seed"] + 11)
        cell_r, cell_c = np.nonzero(mask)
        pick = rng.choice(len(cell_r), size=min(64, len(cell_r)), replace=False)
        step = measure_device_step(board, rows[cell_r[pick]], cols[cell_c[pick]], pulses, pulses=10,
                                   read_voltage=read_v)
        result.device_step = {"up_S": step.up, "down_S": step.down, "asymmetry": step.asymmetry}
        self.recorder.add_calibration("eqprop-device-step", "device_step",
                                      {"up": np.array(step.up), "down": np.array(step.down)},
                                      {"cells": int(len(pick)), "pulse_amplitude": pulses.amplitude,
                                       "pulse_width": pulses.width})
        self.report(2, 3, "laying out the network")
        echoed = board.eq_configure(cfg)
        if echoed.sizes != cfg.sizes or echoed.tiles != cfg.tiles:
            raise ConfigError(f"the board echoed a different network: {echoed}")
        self.commit("initialised", dw_up=step.up, dw_down=step.down, off_tile_cells=int(len(off)))
        return _BoardNetwork(board, len(rows), rows, cols, mask, step, pulses, p["max_pulses"],
                             np.random.default_rng(p["seed"] + 13), p["update"])

    # -- run ------------------------------------------------------------------------------------------------
    def execute(self) -> EqResult:
        p = self.params
        ds: Dataset = load_dataset(p["dataset"], test_fraction=p["test_fraction"], seed=p["seed"],
                                   limit=p["limit"] or None)
        sizes = [ds.features, p["hidden"], ds.classes]
        result = EqResult(p["rule"], sizes)
        on_board = p["rule"] == "board"
        if on_board:
            board = self.station.require_board()
            tiles = plan_tiles(sizes, tuple(board.shape), p["row0"], p["col0"])
        else:
            tiles = plan_tiles(sizes, (1 << 16, 1 << 16))
        cfg = self._config(sizes, tiles)
        net = self._circuit(cfg.as_float32() if on_board else cfg)
        mask = self._tile_mask(cfg, net)
        t0 = instrument_time(self.station) if on_board else 0.0
        model = self._board_network(cfg, mask, result) if on_board else self._float_network(cfg, net, mask)
        self._train(model, net, mask, ds, result, t0)
        result.instrument_time = (instrument_time(self.station) - t0) if on_board else 0.0
        return result

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return (2.0 * np.clip(x, 0.0, 1.0) - 1.0) * self.params["v_in"]

    def _targets(self, labels: np.ndarray, classes: int) -> np.ndarray:
        t = np.full((len(labels), classes), self.params["target_off"])
        t[np.arange(len(labels)), labels] = self.params["target_on"]
        return t

    def _evaluate(self, model: Any, net: EquilibriumNetwork, x: np.ndarray, y: np.ndarray, classes: int
                  ) -> tuple[float, float]:
        out = net.topo.output_nodes
        losses, hits = [], 0
        for start in range(0, len(y), 256):
            xb, yb = x[start : start + 256], y[start : start + 256]
            _, nodes, _ = model.settle(self._encode(xb), None)
            outputs = nodes[:, out]
            losses.append(0.5 * ((outputs - self._targets(yb, classes)) ** 2).sum(axis=1))
            hits += int((outputs.argmax(axis=1) == yb).sum())
        return float(np.concatenate(losses).mean()), hits / len(y)

    def _train(self, model: Any, net: EquilibriumNetwork, mask: np.ndarray, ds: Dataset, result: EqResult,
               t0: float) -> None:
        p = self.params
        on_board = p["rule"] == "board"
        classes = ds.classes
        out = net.topo.output_nodes
        factor = net.layer_factor()[None, :]  # w_c / w_out per node (column)
        hidden_cols = ~np.isin(np.arange(net.topo.nodes), out)
        lr_cols = np.where(hidden_cols, p["lr_hidden"], p["lr"])[None, :]
        max_inject = self._max_injection() if on_board else np.inf
        epochs = self.recorder.stream(
            "epochs",
            columns=["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "pulses", "instrument_time",
                     "settle_free", "settle_nudged"],
            units=["1", "V^2", "1", "V^2", "1", "1", "s", "s", "s"],
        )
        probe = self.recorder.stream(
            "outputs",
            columns=["epoch", "label", *(f"free_{k}" for k in range(classes)),
                     *(f"nudged_{k}" for k in range(classes))],
            units=["1", "1", *["V"] * (2 * classes)],
        )
        rng = np.random.default_rng(p["seed"] + 1)
        n = len(ds.y_train)
        batches = -(-n // p["batch"])
        for epoch in range(1, p["epochs"] + 1):
            decay = p["lr_decay"] ** (epoch - 1)
            loss_sum, hits, pulses = 0.0, 0, 0
            settle_free, settle_nudged = [], []
            order = rng.permutation(n)
            for k, start in enumerate(range(0, n, p["batch"])):
                self.checkpoint()
                sel = order[start : start + p["batch"]]
                x = self._encode(ds.x_train[sel])
                t = self._targets(ds.y_train[sel], classes)
                rep = p["settle_repeats"]
                rows0, nodes0, st0 = model.settle(x, None, repeats=1 if p["centered"] else rep)
                y0 = nodes0[:, out]
                loss_sum += float((0.5 * ((y0 - t) ** 2).sum(axis=1)).sum())
                hits += int((y0.argmax(axis=1) == ds.y_train[sel]).sum())
                inject = np.clip(p["beta"] * (t - y0), -max_inject, max_inject)
                rows1, nodes1, st1 = model.settle(x, inject, nodes0, repeats=rep)
                if p["centered"]:
                    rows0, nodes0, st2 = model.settle(x, -inject, nodes0, repeats=rep)
                    beta_eff = 2.0 * p["beta"]
                    settle_nudged.append(np.concatenate([st1, st2]))
                else:
                    beta_eff = p["beta"]
                    settle_nudged.append(st1)
                settle_free.append(st0)
                dv1 = rows1[:, :, None] - nodes1[:, None, :]
                dv0 = rows0[:, :, None] - nodes0[:, None, :]
                grad = (0.5 * (dv1 * dv1 - dv0 * dv0)).mean(axis=0) * factor / beta_eff  # ∂C/∂G, S⁻¹·V²
                delta = np.where(mask, -decay * lr_cols * grad, 0.0)
                pulses += model.update(delta)
                if k % 10 == 9:
                    self.report((epoch - 1) * batches + k + 1, p["epochs"] * batches,
                                f"epoch {epoch}: batch {k + 1}/{batches}", train_acc=hits / min(n, start + len(sel)))
            self.checkpoint()
            # the probe: the first training sample, free and nudged, with this epoch's weights
            probe_label = int(ds.y_train[0])
            x_probe = self._encode(ds.x_train[:1])
            _, nodes_p, _ = model.settle(x_probe, None)
            probe_free = nodes_p[0, out]
            nudge = np.clip(p["beta"] * (self._targets(ds.y_train[:1], classes) - probe_free), -max_inject, max_inject)
            probe_nudged = model.settle(x_probe, nudge, nodes_p)[1][0, out]
            test_loss, test_acc = self._evaluate(model, net, ds.x_test, ds.y_test, classes)
            elapsed = (instrument_time(self.station) - t0) if on_board else 0.0
            stats = EqEpoch(epoch, loss_sum / n, hits / n, test_loss, test_acc, pulses, elapsed,
                            float(np.concatenate(settle_free).mean()), float(np.concatenate(settle_nudged).mean()))
            result.history.append(stats)
            result.total_pulses += pulses
            epochs.append(np.array([[epoch, stats.train_loss, stats.train_acc, test_loss, test_acc, pulses, elapsed,
                                     stats.settle_free, stats.settle_nudged]]))
            probe.append(np.concatenate([[epoch, probe_label], probe_free, probe_nudged])[None, :])
            self.commit(f"epoch-{epoch}", train_loss=stats.train_loss, train_acc=stats.train_acc,
                        test_loss=test_loss, test_acc=test_acc, pulses=pulses, instrument_time=elapsed,
                        settle_free=stats.settle_free, settle_nudged=stats.settle_nudged)
            self.report(epoch * batches, p["epochs"] * batches, f"epoch {epoch}: test accuracy {test_acc:.2%}",
                        test_acc=test_acc, train_acc=stats.train_acc, loss=stats.train_loss,
                        free=probe_free.tolist(), nudged=probe_nudged.tolist())

    def _max_injection(self) -> float:
        """The smaller of the board's injection range and the station's limit (A)."""
        board = require(self.station.require_board(), EqpropMode)
        info = board.eq_info()
        limit = getattr(getattr(board, "limits", None), "max_injection_current", info.max_injection)
        return float(min(info.max_injection, limit))


# -- command line (``xbarlab train --rule eqprop``) ------------------------------------------------------------
def cli_train(args: argparse.Namespace, params: dict[str, Any]) -> int:
    """``xbarlab train --rule eqprop``: the train options given on the command line (``params``) that this
    experiment shares are carried over; everything else keeps this experiment's defaults."""
    names = {p.name for p in EquilibriumTrainExperiment.params_spec} - {"rule", "lr", "g_min", "g_max"}
    shared = {k: v for k, v in params.items() if k in names}
    result = run_cli_experiment(EquilibriumTrainExperiment, args, {"rule": "board", **shared})
    print(f"{'epoch':>5} {'loss':>9} {'train':>7} {'test':>7} {'pulses':>10} {'time/s':>8}")
    for e in result.history:
        print(f"{e.epoch:>5} {e.train_loss:>9.5f} {e.train_acc:>7.2%} {e.test_acc:>7.2%} {e.pulses:>10} "
              f"{e.instrument_time:>8.2f}")
    return 0
