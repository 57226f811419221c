"""The board emulator's 3T1C capacitor-array commands (opcodes 0x70–0x76, docs/board-protocol.md §9).

:func:`install` adds the handlers to a :class:`~xbarlab.sim.board_emulator.BoardEmulator` whose
station declares ``[sim.cap_cells]``; a board without them answers these opcodes with
``UNKNOWN_OPCODE``, as a board without the 3T1C array would. Reads and MVMs go through the same
input DAC and TIA/ADC periphery as the PCM array's; the clock advances by the charge steps, the
conversions and (in the frame layer) the serial transfer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.protocol import board as bp
from xbarlab.protocol import cap as cp
from xbarlab.protocol.board import Err, Op
from xbarlab.sim.cap_cell import CapacitorArray

#: largest |steps| of one CAP_UPDATE record (an 8-bit step counter in the board's charge sequencer; judgement)
MAX_STEPS = 255


class CapCommands:
    """Handlers of the capacitor-array opcodes of one emulated board."""

    def __init__(self, emulator: Any, array: CapacitorArray) -> None:
        if (array.rows, array.cols) != (emulator.rows, emulator.cols):
            raise ValueError(f"the 3T1C array ({array.rows}x{array.cols}) must match the crossbar "
                             f"({emulator.rows}x{emulator.cols}): one capacitor cell beside each array cell")
        self.board = emulator
        self.array = array
        self.info = cp.CapInfo(cp.CAP_REVISION, array.rows, array.cols, MAX_STEPS, float(array.params.step_time))

    def handlers(self) -> dict[int, Any]:
        return {
            Op.CAP_INFO: self._info,
            Op.CAP_UPDATE: self._update,
            Op.CAP_READ_CELLS: self._read_cells,
            Op.CAP_READ_ALL: self._read_all,
            Op.CAP_MVM_FORWARD: lambda payload: self._mvm(payload, transpose=False),
            Op.CAP_MVM_TRANSPOSE: lambda payload: self._mvm(payload, transpose=True),
            Op.CAP_RESET: self._reset,
        }

    # -- commands ------------------------------------------------------------------------------------
    def _info(self, payload: bytes) -> tuple[bytes, int]:
        self.board._empty(payload, "CAP_INFO")
        return self.info.pack(), 0

    def _update(self, payload: bytes) -> tuple[bytes, int]:
        rec = cp.unpack_cap_update(payload)
        rows, cols, steps = rec["row"].astype(np.intp), rec["col"].astype(np.intp), rec["steps"].astype(np.int64)
        self.board._check_cells(rows, cols, "CAP_UPDATE record")
        over = np.abs(steps) > MAX_STEPS
        if over.any():
            i = int(np.argmax(over))
            raise bp.PayloadError(Err.BAD_VALUE, f"CAP_UPDATE record {i}: {int(steps[i])} steps exceed "
                                  f"+-{MAX_STEPS}")
        self.array.step(rows, cols, steps)
        timing = self.board.timing
        self.board.clock.advance(float(np.abs(steps).sum()) * self.info.step_time + len(rows) * timing.pulse_gap)
        return b"", 0

    def _reset(self, payload: bytes) -> tuple[bytes, int]:
        rec = bp.unpack_cells(payload)
        rows, cols = rec["row"].astype(np.intp), rec["col"].astype(np.intp)
        self.board._check_cells(rows, cols, "CAP_RESET cell")
        self.array.reset(rows, cols)
        self.board.clock.advance(len(rows) * (self.info.step_time + self.board.timing.pulse_gap))
        return b"", 0

    def _read_cells(self, payload: bytes) -> tuple[bytes, int]:
        rec = bp.unpack_cells(payload)
        rows, cols = rec["row"].astype(np.intp), rec["col"].astype(np.intp)
        self.board._check_cells(rows, cols, "CAP_READ_CELLS cell")
        self.board._check_reply_size(len(rows), "CAP_READ_CELLS")
        currents = self.array.read(rows, cols, self.board._read_voltage_applied())
        return self.board._measurement(*self.board._convert_cells(cols, currents.tolist()))

    def _read_all(self, payload: bytes) -> tuple[bytes, int]:
        first, count = bp.unpack_read_all(payload)
        _, ac = self.board._check_row_block(first, count, "CAP_READ_ALL")
        currents = self.board._rows_one_at_a_time(self.array.column_currents, first, count,
                                                  self.board._read_voltage_applied())
        return self.board._measurement(*self.board._convert_rows(currents, ac))

    def _mvm(self, payload: bytes, transpose: bool) -> tuple[bytes, int]:
        board = self.board
        cfg = board.config
        if transpose:
            n_in, n_out, n_lines, what = cfg.active_cols, cfg.active_rows, board.cols, "CAP_MVM_TRANSPOSE voltages"
        else:
            n_in, n_out, n_lines, what = cfg.active_rows, cfg.active_cols, board.rows, "CAP_MVM_FORWARD voltages"
        v = bp.unpack_vector(payload, n_in, what)
        board._check_inputs(v, what)
        drive = np.zeros(n_lines)
        drive[:n_in] = board._dac(v)
        currents = self.array.row_currents(drive) if transpose else self.array.column_currents(drive)
        reported, saturated = board._adc(np.asarray(currents, dtype=float), "row" if transpose else "col")
        board.clock.advance(board.timing.conversions(n_out))
        return board._measurement(reported[:n_out], saturated[:n_out])


def install(emulator: Any, array: CapacitorArray) -> CapCommands:
    """Give ``emulator`` the capacitor-array commands over ``array``; returns the handler object."""
    commands = CapCommands(emulator, array)
    emulator._handlers.update(commands.handlers())
    return commands
