"""The board's equilibrium-network mode over the array physics (protocol §5.11, opcodes 0x60–0x62).

A layered network (:class:`xbarlab.protocol.eqprop.EqConfig`) is laid on tiles of the
``CrossbarModel``; its circuit (:mod:`xbarlab.protocol.eqprop_circuit`) is solved by Newton's
method on the devices as they are: the true conductance map at the current simulated time (stuck
cells included) with one draw of each device's read noise per sample, the cells' sinh I–V
(``model.v0``), and every cell where a used row crosses a used column (off-tile cells couple the
layers, as on a real crossbar). Input voltages pass the input DAC; node and row voltages are
digitised by the mode's ADC over ± the board's input range. Not modelled: wire resistance inside
the tiles (lines of ≤ 200 cells at 0.35 Ω per segment add < 100 Ω to cells of ≥ 10 kΩ, < 1 %),
and read disturb of the cells by the settled voltages (≤ the amplifier rail, at most a few µs).
The simulated clock advances by each sample's settling time and the ADC conversions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from xbarlab.protocol.eqprop import MAX_LAYERS, EqConfig, EqInfo
from xbarlab.protocol.eqprop_circuit import AmplifierSpec, DiodeSpec, EquilibriumNetwork, NeuronSpec, layered_topology


@dataclass(frozen=True)
class EqHardware:
    """The mode's fixed hardware (station ``[sim.board.eqprop]``); judgement values for a board-level build."""

    max_rail: float = 0.5  # V, largest amplifier swing the board allows
    max_injection: float = 1e-3  # A, nudging current sources
    node_capacitance: float = 10e-12  # F per node: line, switch matrix, diode junctions, amplifier input
    amplifier_gbw: float = 10e6  # Hz
    #: node-voltage ADC over ± the board's input range: 18 bits (7.6 µV over ±1 V; an 18-bit SAR converter),
    #: because the nudged phases move the hidden nodes by tens of µV only
    adc_bits: int = 18
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "seed" and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"board eqprop {f.name} must be a positive number, got {value!r}")
        if not 8 <= self.adc_bits <= 24:
            raise ValueError(f"board eqprop adc_bits must be 8..24, got {self.adc_bits}")

    def info(self) -> EqInfo:
        return EqInfo(self.max_rail, self.max_injection, self.node_capacitance, self.amplifier_gbw, self.adc_bits,
                      MAX_LAYERS)


@dataclass(frozen=True)
class EqReading:
    """One batch settled on the board: voltages as digitised (V) and the settling time of each sample (s)."""

    voltages: np.ndarray  # (S, rows + nodes) V
    saturated: np.ndarray  # (S, rows + nodes) bool
    settle_time: np.ndarray  # (S,) s


class EquilibriumMode:
    """The configured network on ``model`` (a ``CrossbarModel``) with the board's ``periphery`` and ``clock``."""

    def __init__(self, model: Any, hardware: EqHardware, input_range: float) -> None:
        self.model = model
        self.hardware = hardware
        self.input_range = float(input_range)  # V, ADC full scale and input DAC range
        self.rng = np.random.default_rng(hardware.seed + 7)
        self.config: EqConfig | None = None

    def problems(self, cfg: EqConfig, active: tuple[int, int]) -> list[tuple[str, str]]:
        """Why the board cannot lay out ``cfg`` in the active region, as (kind, message): kind ``"value"``
        (malformed), ``"range"`` (tiles) or ``"limit"`` (a source beyond the hardware); empty when it can."""
        if cfg.problems():
            return [("value", p) for p in cfg.problems()]
        out: list[tuple[str, str]] = []
        ar, ac = active
        used_rows: set[int] = set()
        used_cols: set[int] = set()
        for k, (r0, c0) in enumerate(cfg.tiles):
            rows = set(range(r0, r0 + cfg.tile_rows(k)))
            cols = set(range(c0, c0 + cfg.sizes[k + 1]))
            if max(rows) >= ar or max(cols) >= ac:
                out.append(("range", f"tile {k} ({len(rows)} rows x {len(cols)} columns at row {r0}, column {c0}) "
                                     f"exceeds the active {ar}x{ac} region"))
            if rows & used_rows or cols & used_cols:
                out.append(("range", f"tile {k} shares rows or columns with an earlier tile"))
            used_rows |= rows
            used_cols |= cols
        hw = self.hardware
        if cfg.amp_rail > np.float32(hw.max_rail):
            out.append(("limit", f"amplifier rail {cfg.amp_rail:g} V exceeds the board's {hw.max_rail:g} V"))
        for name in ("bias_voltage", "diode_bias"):
            if abs(getattr(cfg, name)) > np.float32(self.input_range):
                out.append(("limit", f"{name} {getattr(cfg, name):g} V exceeds the board's source range "
                                     f"+-{self.input_range:g} V"))
        return out

    def configure(self, cfg: EqConfig) -> None:
        self.config = cfg
        spec = NeuronSpec(DiodeSpec(cfg.diode_saturation_current, cfg.diode_ideality,
                                    series_resistance=cfg.diode_series_resistance, bias=cfg.diode_bias),
                          AmplifierSpec(cfg.amp_gain, cfg.amp_rail, self.hardware.amplifier_gbw),
                          cfg.bias_voltage, cfg.output_load, self.hardware.node_capacitance)
        topo, _ = layered_topology(list(cfg.sizes), cfg.bias_voltage)
        self.network = EquilibriumNetwork(topo, spec, v0=float(getattr(self.model, "v0", 1.0)))
        self.rows, self.cols = cfg.lines()

    @property
    def lines(self) -> int:
        return len(self.rows) + len(self.cols)

    def settle(self, applied_inputs: np.ndarray, injections: np.ndarray) -> EqReading:
        """Settle every sample (inputs already through the DAC, V; injections A); digitise the line voltages."""
        g_map = np.asarray(self.model.conductance_map(), dtype=float)[np.ix_(self.rows, self.cols)]
        sigma = np.asarray(self.model._sigma_map(), dtype=float)[np.ix_(self.rows, self.cols)]
        s = applied_inputs.shape[0]
        g = np.maximum(g_map + sigma * self.rng.standard_normal((s, *g_map.shape)), 0.0)  # read noise per sample
        eq = self.network.solve(g, applied_inputs, injections, bits=self.hardware.adc_bits)
        volts = np.concatenate([eq.rows, eq.nodes], axis=1)
        fs = self.input_range
        lsb = 2 * fs / (1 << self.hardware.adc_bits)
        saturated = np.abs(volts) >= fs
        digitised = np.clip(np.round(volts / lsb) * lsb, -fs, fs)
        return EqReading(digitised, saturated, eq.settle_time)
