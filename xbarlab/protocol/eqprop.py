"""Payloads of the board's equilibrium-network mode (opcodes 0x60–0x62, docs/board-protocol.md §5.11).

EQ_INFO (0x60) reports what the mode can do; EQ_CONFIGURE (0x61) lays a layered network on tiles
of the array with its neuron circuit (diodes, amplifiers, bias rows, output load); EQ_SETTLE
(0x62) applies input voltages and output current injections for a batch of samples, lets the
network settle for each and returns every row-line and node voltage with the settling times.
Shared by the driver and the emulator, like :mod:`xbarlab.protocol.board`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from xbarlab.protocol.board import F32, Err, PayloadError, measurement_size, pack_measurement, unpack_measurement

#: most layers (sizes, inputs included) one EQ_CONFIGURE can describe
MAX_LAYERS = 8

_INFO = struct.Struct("<ffffBBH")  # max rail, max injection, node capacitance, amplifier GBW, ADC bits, max layers
_CONFIG_HEAD = struct.Struct("<B3x")  # number of layer sizes, reserved
_PARAMS = struct.Struct("<8f")  # neuron circuit parameters, in EqConfig.PARAMS order
_SETTLE_HEAD = struct.Struct("<HH")  # samples, reserved


@dataclass(frozen=True, slots=True)
class EqInfo:
    """EQ_INFO reply: the mode's hardware."""

    max_rail: float  # V, largest amplifier output swing (the outputs drive array rows)
    max_injection: float  # A, largest |output current injection|
    node_capacitance: float  # F per node
    amplifier_gbw: float  # Hz, unity-gain bandwidth of the layer amplifiers
    adc_bits: int  # node-voltage ADC, full scale ± the board's max input voltage
    max_layers: int

    def pack(self) -> bytes:
        return _INFO.pack(self.max_rail, self.max_injection, self.node_capacitance, self.amplifier_gbw, self.adc_bits,
                          self.max_layers, 0)

    @classmethod
    def unpack(cls, payload: bytes) -> EqInfo:
        if len(payload) != _INFO.size:
            raise PayloadError(Err.BAD_LENGTH, f"EQ_INFO reply must be {_INFO.size} bytes, got {len(payload)}")
        rail, inj, cap, gbw, bits, layers, _ = _INFO.unpack(payload)
        return cls(float(rail), float(inj), float(cap), float(gbw), int(bits), int(layers))


EQ_INFO_SIZE = _INFO.size


@dataclass(frozen=True)
class EqConfig:
    """A layered network on the array and its neuron circuit (EQ_CONFIGURE).

    ``sizes``: units per layer, inputs first. Tile l (weights from layer l to l+1) sits at
    ``tiles[l] = (row0, col0)``: rows row0 .. row0 + 2·(sizes[l] + 1) − 1 (unit i drives rows
    row0 + 2i with +V and row0 + 2i + 1 with −V; the last pair is the bias pair ±bias_voltage),
    columns col0 .. col0 + sizes[l+1] − 1 (the nodes of layer l+1).
    """

    sizes: tuple[int, ...]
    tiles: tuple[tuple[int, int], ...]
    bias_voltage: float = 0.2  # V
    amp_gain: float = 4.0  # V/V
    amp_rail: float = 0.5  # V
    diode_saturation_current: float = 1e-9  # A
    diode_ideality: float = 1.5
    diode_series_resistance: float = 100.0  # Ω
    diode_bias: float = -0.25  # V
    output_load: float = 0.0  # S

    PARAMS = ("bias_voltage", "amp_gain", "amp_rail", "diode_saturation_current", "diode_ideality",
              "diode_series_resistance", "diode_bias", "output_load")

    def tile_rows(self, layer: int) -> int:
        """Rows of tile ``layer``: two per unit of the layer below plus the bias pair."""
        return 2 * (self.sizes[layer] + 1)

    def problems(self) -> list[str]:
        """What is wrong with this configuration on its own (empty when it is well-formed)."""
        out = []
        if not 2 <= len(self.sizes) <= MAX_LAYERS or min(self.sizes, default=0) < 1:
            out.append(f"layer sizes {list(self.sizes)}: need 2..{MAX_LAYERS} layers of >= 1 units")
        if len(self.tiles) != len(self.sizes) - 1:
            out.append(f"{len(self.sizes)} layers need {len(self.sizes) - 1} tiles, got {len(self.tiles)}")
        for name in self.PARAMS:
            value = float(getattr(self, name))
            if not math.isfinite(value):
                out.append(f"{name} must be finite, got {value}")
        positive = ("amp_gain", "amp_rail", "diode_saturation_current", "diode_ideality", "diode_series_resistance")
        out += [f"{name} must be > 0, got {getattr(self, name):g}" for name in positive if not getattr(self, name) > 0]
        if not self.output_load >= 0:
            out.append(f"output_load must be >= 0 S, got {self.output_load:g}")
        return out

    def lines(self) -> tuple[np.ndarray, np.ndarray]:
        """(physical rows in tile order, physical columns in node order) the network uses."""
        rows = [np.arange(r0, r0 + self.tile_rows(k)) for k, (r0, _) in enumerate(self.tiles)]
        cols = [np.arange(c0, c0 + self.sizes[k + 1]) for k, (_, c0) in enumerate(self.tiles)]
        return np.concatenate(rows), np.concatenate(cols)

    def pack(self) -> bytes:
        sizes = struct.pack(f"<{len(self.sizes)}H", *self.sizes)
        tiles = b"".join(struct.pack("<HH", r, c) for r, c in self.tiles)
        params = _PARAMS.pack(*(float(getattr(self, n)) for n in self.PARAMS))
        return _CONFIG_HEAD.pack(len(self.sizes)) + sizes + tiles + params

    @classmethod
    def unpack(cls, payload: bytes) -> EqConfig:
        if len(payload) < _CONFIG_HEAD.size:
            raise PayloadError(Err.BAD_LENGTH, f"EQ_CONFIGURE payload too short ({len(payload)} bytes)")
        (n,) = _CONFIG_HEAD.unpack_from(payload)
        if payload[1:4] != b"\0\0\0":
            raise PayloadError(Err.BAD_VALUE, "EQ_CONFIGURE: reserved bytes must be 0")
        if not 2 <= n <= MAX_LAYERS:
            raise PayloadError(Err.BAD_VALUE, f"EQ_CONFIGURE: {n} layers; the board takes 2..{MAX_LAYERS}")
        expected = _CONFIG_HEAD.size + 2 * n + 4 * (n - 1) + _PARAMS.size
        if len(payload) != expected:
            raise PayloadError(Err.BAD_LENGTH, f"EQ_CONFIGURE with {n} layers must be {expected} bytes, "
                               f"got {len(payload)}")
        off = _CONFIG_HEAD.size
        sizes = struct.unpack_from(f"<{n}H", payload, off)
        off += 2 * n
        flat = struct.unpack_from(f"<{2 * (n - 1)}H", payload, off)
        off += 4 * (n - 1)
        params = [float(np.float32(p)) for p in _PARAMS.unpack_from(payload, off)]
        tiles = tuple((flat[2 * k], flat[2 * k + 1]) for k in range(n - 1))
        return cls(tuple(sizes), tiles, **dict(zip(cls.PARAMS, params, strict=True)))

    def as_float32(self) -> EqConfig:
        """The configuration as the board receives it (parameters rounded to float32)."""
        return EqConfig.unpack(self.pack())


def pack_settle(inputs: np.ndarray, injections: np.ndarray) -> bytes:
    """EQ_SETTLE payload: samples u16, reserved u16, inputs (S × n_in f32 V), injections (S × n_out f32 A)."""
    return _SETTLE_HEAD.pack(inputs.shape[0], 0) + np.ascontiguousarray(inputs, dtype=F32).tobytes() \
        + np.ascontiguousarray(injections, dtype=F32).tobytes()


def unpack_settle(payload: bytes, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (S, n_in) V, injections (S, n_out) A) of an EQ_SETTLE payload for the configured network."""
    if len(payload) < _SETTLE_HEAD.size:
        raise PayloadError(Err.BAD_LENGTH, f"EQ_SETTLE payload too short ({len(payload)} bytes)")
    samples, reserved = _SETTLE_HEAD.unpack_from(payload)
    if reserved:
        raise PayloadError(Err.BAD_VALUE, "EQ_SETTLE: reserved field must be 0")
    if samples < 1:
        raise PayloadError(Err.BAD_VALUE, "EQ_SETTLE needs at least one sample")
    expected = _SETTLE_HEAD.size + 4 * samples * (n_in + n_out)
    if len(payload) != expected:
        raise PayloadError(Err.VECTOR_LENGTH, f"EQ_SETTLE of {samples} samples on a network with {n_in} inputs and "
                           f"{n_out} outputs needs {expected} bytes, got {len(payload)}")
    values = np.frombuffer(payload, dtype=F32, offset=_SETTLE_HEAD.size)
    x = values[: samples * n_in].reshape(samples, n_in)
    return x, values[samples * n_in :].reshape(samples, n_out)


def settle_reply_size(samples: int, lines: int) -> int:
    """EQ_SETTLE reply size: header, S settle times, then a measurement of S × lines voltages."""
    return _SETTLE_HEAD.size + 4 * samples + measurement_size(samples * lines)


def settle_request_size(samples: int, n_in: int, n_out: int) -> int:
    return _SETTLE_HEAD.size + 4 * samples * (n_in + n_out)


@dataclass(frozen=True)
class EqSettleReply:
    """EQ_SETTLE reply: per sample the settling time and every line voltage (rows in tile order, then nodes)."""

    settle_time: np.ndarray  # (S,) s
    voltages: np.ndarray  # (S, rows + nodes) V, as digitised
    saturated: np.ndarray  # (S, rows + nodes) bool, ADC clipped

    def pack(self) -> bytes:
        s = self.voltages.shape[0]
        return _SETTLE_HEAD.pack(s, 0) + np.ascontiguousarray(self.settle_time, dtype=F32).tobytes() \
            + pack_measurement(self.voltages.ravel(), self.saturated.ravel())

    @classmethod
    def unpack(cls, payload: bytes, samples: int, lines: int) -> EqSettleReply:
        if len(payload) != settle_reply_size(samples, lines):
            raise PayloadError(Err.BAD_LENGTH, f"EQ_SETTLE reply for {samples} samples of {lines} lines must be "
                               f"{settle_reply_size(samples, lines)} bytes, got {len(payload)}")
        s, _ = _SETTLE_HEAD.unpack_from(payload)
        if s != samples:
            raise PayloadError(Err.BAD_VALUE, f"EQ_SETTLE reply holds {s} samples, expected {samples}")
        off = _SETTLE_HEAD.size
        times = np.frombuffer(payload, dtype=F32, count=samples, offset=off).astype(float)
        v, sat = unpack_measurement(payload[off + 4 * samples :], samples * lines)
        return cls(times, v.astype(float).reshape(samples, lines), sat.copy().reshape(samples, lines))
