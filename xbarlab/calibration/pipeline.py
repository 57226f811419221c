"""Calibrated programming on an open station: read-path calibration, characterisation, write-verify.

:func:`prepare` calibrates the read path against the SMU, then characterises the devices
(:func:`~xbarlab.calibration.characterize.characterize`: read noise, switching thresholds and
kinetics, every cell's reachable range and the stuck cells; all reads corrected);
:func:`program_matrix` programs a target matrix with the result, starting write-verify
from the measured pulse model. These are the Python API behind the campaign step types of
:mod:`xbarlab.calibration.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xbarlab.calibration.characterize import Characterization, characterize
from xbarlab.calibration.device import BoundsMap
from xbarlab.calibration.readpath import CalibratedBoard, ReadCalibration, calibrate_read_path
from xbarlab.calibration.writeverify import (
    ProgramReport,
    PulseModel,
    array_reader,
    cell_reader,
    program_conductances,
)
from xbarlab.errors import ConfigError
from xbarlab.experiments.support import instrument_time
from xbarlab.instruments.interfaces import BenchStation, board_limit


def station_read_voltage(station: BenchStation) -> float:
    return float(station.config.read_voltage)


def sim_clock(station: BenchStation) -> Any:
    """``station.sim_time`` when the station has a simulated clock, else None."""
    if station.sim_time() is not None:
        return lambda: float(station.sim_time())
    return None


def instrument_clock(station: BenchStation) -> Any:
    """Instrument time in s as a callable: the simulated clock, or a monotonic clock on hardware."""

    return lambda: instrument_time(station)


@dataclass
class Prepared:
    """A calibrated board with its read calibration, device characterisation and range map (S)."""

    board: CalibratedBoard
    read_cal: ReadCalibration
    bounds: BoundsMap
    full_scale: float  # A, TIA range used for single-cell reads
    read_voltage: float  # V
    characterization: Characterization | None = None

    @property
    def model(self) -> PulseModel:
        """The write-verify prior measured by the characterisation."""
        if self.characterization is None:
            raise ConfigError("no device characterisation: prepare() the block first")
        return self.characterization.pulse_model()

    def usable_range(self, coverage: float = 0.995) -> tuple[float, float]:
        return self.bounds.usable_range(coverage)

    def reader(self, kind: str = "cells") -> Any:
        """Verify reads: "cells" (READ_CELLS: device conductances) or "array" (READ_ALL rows: with
        the row IR drop a forward MVM sees)."""
        if kind == "cells":
            return cell_reader(self.board, self.read_voltage)
        if kind == "array":
            return array_reader(self.board, self.read_voltage)
        raise ConfigError(f"reader {kind!r}: expected 'cells' or 'array'")


def prepare(
    station: BenchStation,
    *,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    g_max_expected: float = 150e-6,
    read_cal: ReadCalibration | None = None,
    cells_per_column: int = 3,
    reads: int = 8,
    characterization: Characterization | None = None,
    width: float = 1e-6,
    checkpoint: Any = None,
    **characterize_kwargs: Any,
) -> Prepared:
    """Read-path calibration (unless ``read_cal`` is given) and characterisation of rows × cols
    (unless ``characterization`` is given, e.g. from the logbook): read noise, thresholds,
    kinetics, range and stuck map. ``width`` (s): the reference pulse width.

    The TIA range for single-cell reads is 1.3 × ``g_max_expected`` (S) × read voltage, so the
    ADC resolves the conductance window rather than the MVM range.
    """
    board = station.require_board()
    v = station_read_voltage(station)
    fs = min(1.3 * g_max_expected * abs(v), board_limit(board, "max_tia_range", 10e-3))
    if read_cal is None:
        read_cal = calibrate_read_path(station, board, full_scale=fs, cells_per_column=cells_per_column, reads=reads,
                                       checkpoint=checkpoint)
    board.configure(v, fs)
    cal_board = CalibratedBoard(board, read_cal, v, fs)
    n_rows, n_cols = board.shape
    rows = np.arange(n_rows) if rows is None else np.asarray(rows, dtype=int)
    cols = np.arange(n_cols) if cols is None else np.asarray(cols, dtype=int)
    if characterization is None:
        characterization = characterize(cal_board, rows, cols, reader=cell_reader(cal_board, v), read_voltage=v,
                                        width=width, clock=instrument_clock(station), checkpoint=checkpoint,
                                        **characterize_kwargs)
    return Prepared(cal_board, read_cal, characterization.bounds, fs, v, characterization)


def program_matrix(
    station: BenchStation,
    prep: Prepared,
    targets: np.ndarray,
    *,
    tolerance: float,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    model: PulseModel | None = None,
    max_pulses: int = 100,
    checkpoint: Any = None,
    reader: str = "cells",
    **kwargs: Any,
) -> ProgramReport:
    """Write-verify ``targets`` (S) into rows × cols (default: the block of ``prep.bounds``);
    ``reader``: "cells" or "array" (see :meth:`Prepared.reader`)."""
    rows = prep.bounds.rows if rows is None else np.asarray(rows, dtype=int)
    cols = prep.bounds.cols if cols is None else np.asarray(cols, dtype=int)
    ri = np.searchsorted(prep.bounds.rows, rows)
    ci = np.searchsorted(prep.bounds.cols, cols)
    if not (np.array_equal(prep.bounds.rows[np.clip(ri, 0, len(prep.bounds.rows) - 1)], rows)
            and np.array_equal(prep.bounds.cols[np.clip(ci, 0, len(prep.bounds.cols) - 1)], cols)):
        raise ConfigError("program_matrix: the block is not covered by the range map; prepare() it first")
    sub = np.ix_(ri, ci)
    return program_conductances(
        prep.board, rows, cols, targets, tolerance=tolerance, g_lo=prep.bounds.g_lo[sub], g_hi=prep.bounds.g_hi[sub],
        model=model or prep.model, reader=prep.reader(reader), read_voltage=prep.read_voltage, max_pulses=max_pulses,
        skip=prep.bounds.stuck[sub] != 0, clock=instrument_clock(station), checkpoint=checkpoint,
        **{"g_range": prep.usable_range(), **kwargs})
