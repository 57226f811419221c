"""Driver methods of the board's 3T1C capacitor array (opcodes 0x70–0x76, docs/board-protocol.md §9).

A mixin of :class:`~xbarlab.drivers.crossbar_board.CrossbarBoard`: it uses the board's link
(``_exchange``), argument checks and measurement decoding. A board without the capacitor array
answers CAP_INFO with UNKNOWN_OPCODE; :meth:`CapArrayMethods.cap_info` turns that into a
ConfigError saying so. Conductances (S) are currents at the configured read voltage.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.errors import ConfigError, InstrumentError
from xbarlab.protocol import board as bp
from xbarlab.protocol import cap as cp
from xbarlab.protocol.board import Err, Op


class CapArrayMethods:
    """CAP_* commands; mixed into the crossbar board driver."""

    _cap_info: cp.CapInfo | None = None

    def cap_info(self: Any) -> cp.CapInfo:
        """CAP_INFO: the capacitor array's geometry, largest steps per record and step time (s)."""
        try:
            payload, _ = self._exchange(Op.CAP_INFO)
        except InstrumentError as exc:
            if exc.code == Err.UNKNOWN_OPCODE:
                raise ConfigError(f"{self.name}: this board has no 3T1C capacitor array (CAP_INFO unknown)") from None
            raise
        try:
            info = cp.CapInfo.unpack(payload)
        except bp.PayloadError as exc:
            raise self._fail(f"malformed CAP_INFO reply: {exc}") from None
        self._cap_info = info
        return info

    def _cap_limits(self: Any) -> cp.CapInfo:
        return self._cap_info if self._cap_info is not None else self.cap_info()

    def cap_update(self: Any, rows: object, cols: object, steps: object) -> int:
        """CAP_UPDATE: ``steps[k]`` charge steps on capacitor cell (rows[k], cols[k]) (> 0 charge, < 0 discharge).

        Records are applied in order, in frames of at most the payload limit. Returns the number of steps.
        """
        r, c = self._cell_pairs(rows, cols)
        s = np.asarray(steps)
        if s.shape != r.shape:
            raise ValueError(f"{self.name}: rows, columns and steps must have the same length")
        if s.size and not np.issubdtype(s.dtype, np.integer):
            raise ValueError(f"{self.name}: charge steps must be integers, got dtype {s.dtype}")
        limit = self._cap_limits().max_steps
        if s.size and np.abs(s).max() > limit:
            raise ValueError(f"{self.name}: {int(np.abs(s).max())} charge steps in one record exceed the board's "
                             f"+-{limit}")
        keep = s != 0
        r, c, s = r[keep], c[keep], s[keep]
        per_frame = self._request_limit // cp.CAP_STEP_RECORD.itemsize
        for start in range(0, len(r), per_frame):
            chunk = slice(start, start + per_frame)
            self._exchange(Op.CAP_UPDATE, cp.pack_cap_update(r[chunk], c[chunk], s[chunk]), 0)
        return int(np.abs(s).sum())

    def cap_reset(self: Any, rows: object, cols: object) -> None:
        """CAP_RESET: set the listed capacitor cells to the board's reset level."""
        r, c = self._cell_pairs(rows, cols)
        per_frame = self._request_limit // bp.CELL_RECORD.itemsize
        for start in range(0, len(r), per_frame):
            chunk = slice(start, start + per_frame)
            self._exchange(Op.CAP_RESET, bp.pack_cells(r[chunk], c[chunk]), 0)

    def cap_read_cells_reading(self: Any, rows: object, cols: object) -> Any:
        """CAP_READ_CELLS: currents (A) of listed capacitor cells' read transistors, with the saturation mask."""
        r, c = self._cell_pairs(rows, cols)
        per_frame = self._cells_per_frame()
        readings = []
        for start in range(0, len(r), per_frame):
            rr, cc = r[start:start + per_frame], c[start:start + per_frame]
            reply, _ = self._exchange(Op.CAP_READ_CELLS, bp.pack_cells(rr, cc), bp.measurement_size(len(rr)))
            readings.append(self._reading(reply, len(rr)))
        if len(readings) == 1:
            return readings[0]
        if not readings:  # no cells: an empty reading of the driver's reading type
            return self._reading(b"", 0)
        return type(readings[0])(np.concatenate([x.currents for x in readings]),
                                 np.concatenate([x.saturated for x in readings]))

    def cap_read_cells(self: Any, rows: object, cols: object) -> np.ndarray:
        """Conductances (S) of listed capacitor cells; raises AdcSaturationError for a clipped sample."""
        cfg = self._configured()
        return self._checked(self.cap_read_cells_reading(rows, cols), "CAP_READ_CELLS") / cfg.read_voltage

    def cap_read_all(self: Any) -> np.ndarray:
        """Conductance map (S, rows × cols) of the capacitor cells, row by row (blocks of rows per frame)."""
        cfg = self._configured()
        ar, ac = self.shape
        per_frame = self._rows_per_frame()
        blocks = []
        for start in range(0, ar, per_frame):
            count = min(per_frame, ar - start)
            reply, _ = self._exchange(Op.CAP_READ_ALL, bp.pack_read_all(start, count), bp.measurement_size(count * ac))
            blocks.append(self._checked(self._reading(reply, count * ac, (count, ac)), "CAP_READ_ALL"))
        return np.concatenate(blocks) / cfg.read_voltage

    def cap_mvm_forward(self: Any, row_voltages: np.ndarray) -> np.ndarray:
        """CAP_MVM_FORWARD: column currents (A) of the capacitor cells for row voltages (V)."""
        ar, ac = self.shape
        v = self._vector(row_voltages, ar, "row voltages")
        reply, _ = self._exchange(Op.CAP_MVM_FORWARD, bp.pack_vector(v), bp.measurement_size(ac))
        return self._checked(self._reading(reply, ac), "CAP_MVM_FORWARD")

    def cap_mvm_transpose(self: Any, col_voltages: np.ndarray) -> np.ndarray:
        """CAP_MVM_TRANSPOSE: row currents (A) of the capacitor cells for column voltages (V)."""
        ar, ac = self.shape
        v = self._vector(col_voltages, ac, "column voltages")
        reply, _ = self._exchange(Op.CAP_MVM_TRANSPOSE, bp.pack_vector(v), bp.measurement_size(ar))
        return self._checked(self._reading(reply, ar), "CAP_MVM_TRANSPOSE")
