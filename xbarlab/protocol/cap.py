"""Payloads of the 3T1C capacitor-array commands (opcodes 0x70–0x76, docs/board-protocol.md §9).

Shared by the board driver and the board emulator. CAP_READ_CELLS and CAP_RESET take the
READ_CELLS records (:func:`xbarlab.protocol.board.pack_cells`), CAP_READ_ALL the READ_ALL
payload, CAP_MVM_* the MVM vectors; only CAP_INFO and CAP_UPDATE have layouts of their own.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from xbarlab.protocol.board import Err, PayloadError

#: revision of the capacitor-array extension reported by CAP_INFO
CAP_REVISION = 1
#: one CAP_UPDATE record: row u16, col u16, signed charge steps i16 (> 0 charge, < 0 discharge) — 6 bytes
CAP_STEP_RECORD = np.dtype([("row", "<u2"), ("col", "<u2"), ("steps", "<i2")])
_INFO = struct.Struct("<BxHHHf")  # revision, reserved, rows, cols, max steps per record, step time


@dataclass(frozen=True, slots=True)
class CapInfo:
    """CAP_INFO reply: the capacitor array's geometry and update limits."""

    revision: int
    rows: int  # physical rows of 3T1C cells (one beside each array cell)
    cols: int  # physical columns
    max_steps: int  # largest |steps| of one CAP_UPDATE record
    step_time: float  # s, duration of one charge step

    def pack(self) -> bytes:
        return _INFO.pack(self.revision, self.rows, self.cols, self.max_steps, self.step_time)

    @classmethod
    def unpack(cls, payload: bytes) -> CapInfo:
        if len(payload) != _INFO.size:
            raise PayloadError(Err.BAD_LENGTH, f"CAP_INFO reply must be {_INFO.size} bytes, got {len(payload)}")
        return cls(*_INFO.unpack(payload))


def pack_cap_update(rows: np.ndarray, cols: np.ndarray, steps: np.ndarray) -> bytes:
    """CAP_UPDATE payload: n records of (row u16, col u16, steps i16)."""
    rec = np.empty(len(rows), dtype=CAP_STEP_RECORD)
    rec["row"], rec["col"], rec["steps"] = rows, cols, steps
    return rec.tobytes()


def unpack_cap_update(payload: bytes) -> np.ndarray:
    """The records of a CAP_UPDATE payload (PayloadError BAD_LENGTH unless 6·n bytes, n ≥ 1)."""
    if not payload or len(payload) % CAP_STEP_RECORD.itemsize:
        raise PayloadError(Err.BAD_LENGTH, f"CAP_UPDATE payload must be 6*n bytes with n >= 1, got {len(payload)}")
    return np.frombuffer(payload, dtype=CAP_STEP_RECORD)
