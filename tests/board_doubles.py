"""Shared test helpers (not a test module): an ideal linear TEST DOUBLE of the board physics whose
conductances tests set directly, a raw-frame host, and an in-memory link from the board driver to an emulator.

The board emulator's own tests use the real CrossbarModel and Periphery; these doubles serve tests that need
exact, settable conductances (closed loop, driver transcripts).
"""

from __future__ import annotations

import numpy as np

from xbarlab.drivers.crossbar_board import CrossbarBoard
from xbarlab.drivers.transport import ByteTransport
from xbarlab.errors import TransportTimeout
from xbarlab.protocol import board as bp
from xbarlab.protocol.board import Op
from xbarlab.sim.board_emulator import BoardEmulator
from xbarlab.sim.clock import SimClock


class IdealArrayDouble:
    """TEST DOUBLE of CrossbarModel: ideal linear cells, no wires, no noise; ±1 µS per pulse."""

    def __init__(self, rows: int, cols: int, kind: str = "1T1R", seed: int = 0) -> None:
        self.rows, self.cols, self.kind = rows, cols, kind
        self.g = np.random.default_rng(seed).uniform(10e-6, 100e-6, (rows, cols))
        self.pulse_log: list[tuple[int, int, float, float]] = []

    def conductance_map(self) -> np.ndarray:
        return self.g.copy()

    def column_currents(self, row_voltages: np.ndarray) -> np.ndarray:
        return self.g.T @ row_voltages

    def row_currents(self, col_voltages: np.ndarray) -> np.ndarray:
        return self.g @ col_voltages

    def cell_current(self, row: int, col: int, voltage: float) -> float:
        return float(self.g[row, col] * voltage)

    def apply_pulses(self, rows, cols, amplitudes, widths) -> None:
        for r, c, a, w in zip(rows, cols, amplitudes, widths, strict=True):
            self.pulse_log.append((int(r), int(c), float(a), float(w)))
            self.g[r, c] = np.clip(self.g[r, c] + 1e-6 * np.sign(a), 1e-6, 200e-6)

    def outer_product_update(self, row_trains, col_trains, amplitude, width) -> None:
        self.g = np.clip(self.g + 1e-6 * np.sign(amplitude) * (row_trains.astype(float) @ col_trains.T), 1e-6, 200e-6)

    def cell_load(self, row: int, col: int):
        return _CellLoadDouble(self, row, col)

    def kill_cell(self, row: int, col: int, mode: str = "off") -> None:
        self.g[row, col] = 0.0 if mode == "off" else 200e-6


class _CellLoadDouble:
    def __init__(self, model: IdealArrayDouble, row: int, col: int) -> None:
        self.model, self.row, self.col = model, row, col

    def current(self, voltage: float) -> float:
        return float(self.model.g[self.row, self.col] * voltage)

    def stress(self, voltage: float, duration: float, current_limit: float) -> None:
        return None

    def describe(self) -> str:
        return f"cell ({self.row}, {self.col})"


class IdealPeripheryDouble:
    """TEST DOUBLE of Periphery: exact DAC within range, ADC that only clips at full scale."""

    dac_bits = 0
    adc_bits = 0

    def dac(self, voltages: np.ndarray, v_range: float) -> np.ndarray:
        return np.clip(voltages, -v_range, v_range)

    def adc(self, currents: np.ndarray, full_scale: float, side: str = "col") -> np.ndarray:
        return np.clip(currents, -full_scale, full_scale)


def make_board(rows: int = 8, cols: int = 6, **kwargs):
    """Emulator over the ideal TEST DOUBLE (``model.g`` is settable): (emulator, model, clock)."""
    clock = SimClock()
    model = IdealArrayDouble(rows, cols)
    emu = BoardEmulator(model, IdealPeripheryDouble(), clock, **kwargs)
    return emu, model, clock


class Host:
    """Sends raw frames to an emulator and decodes its replies."""

    def __init__(self, emu: BoardEmulator) -> None:
        self.emu = emu
        self.seq = 0

    def send_raw(self, data: bytes) -> list[bp.Frame]:
        self.emu.feed(data)
        out = bytearray(self.emu.read_output())
        frames = bp.split_frames(out)
        assert all(isinstance(f, bp.Frame) for f in frames), frames
        return frames  # type: ignore[return-value]

    def call(self, op: Op, payload: bytes = b"") -> bp.Frame:
        self.seq += 1
        (reply,) = self.send_raw(bp.encode_request(op, self.seq, payload))
        assert reply.seq == self.seq and reply.opcode == op | bp.REPLY_BIT
        return reply

    def ok(self, op: Op, payload: bytes = b"") -> bytes:
        reply = self.call(op, payload)
        assert reply.status == bp.Status.OK, bp.unpack_error(reply.payload)
        return reply.payload

    def error(self, op: Op, payload: bytes = b"") -> tuple[int, str]:
        reply = self.call(op, payload)
        assert reply.status == bp.Status.ERROR, f"{op.name} unexpectedly accepted"
        return bp.unpack_error(reply.payload)

    def configure(self, rows: int, cols: int, read_voltage: float = 0.2, tia: float = 1e-3) -> None:
        self.ok(Op.CONFIGURE, bp.Configuration(rows, cols, read_voltage, tia).pack())


class EmulatorLink(ByteTransport):
    """In-memory ByteTransport: write → emulator.feed; read(n) → emulator.read_output or TransportTimeout."""

    def __init__(self, emulator: BoardEmulator) -> None:
        self.emulator = emulator

    def write(self, data: bytes) -> None:
        self.emulator.feed(data)

    def read(self, count: int) -> bytes:
        data = self.emulator.read_output(count)
        if len(data) < count:
            raise TransportTimeout(f"expected {count} bytes, got {len(data)}")
        return data

    def reset_input(self) -> None:
        self.emulator.read_output()

    def close(self) -> None:
        pass


def sim_board(rows: int = 8, cols: int = 6, max_payload: int = bp.MAX_PAYLOAD, **emu_kwargs):
    """Driver ↔ emulator over the ideal TEST DOUBLE whose ``model.g`` is settable: (driver, emulator, model)."""
    model = IdealArrayDouble(rows, cols)
    emulator = BoardEmulator(model, IdealPeripheryDouble(), SimClock(), **emu_kwargs)
    board = CrossbarBoard(EmulatorLink(emulator), max_payload=max_payload)
    board.identify()
    board.configure(0.2, 1e-3)
    return board, emulator, model
