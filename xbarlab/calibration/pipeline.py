"""Calibrated programming on an open station: read-path calibration, characterisation, write-verify.

:func:`prepare` calibrates the read path against the SMU, then characterises the devices
(:func:`~xbarlab.calibration.characterize.characterize`: read noise, switching thresholds and
kinetics, every cell's reachable range and the stuck cells; all reads corrected);
:func:`program_matrix` programs a target matrix with the result, starting write-verify
from the measured pulse model. These are the Python API behind the campaign step types of
:mod:`xbarlab.calibration.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from xbarlab.calibration.characterize import Characterization, characterize
from xbarlab.calibration.device import BoundsMap
from xbarlab.calibration.readdisturb import ReadChoice, choose_read_conditions
from xbarlab.calibration.readpath import CalibratedBoard, ReadCalibration, _smu_name, calibrate_read_path
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
    read_choice: ReadChoice | None = None  # how the read conditions were chosen (prepare() measured them)

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

    With neither given, the devices are characterised first through the uncorrected board, the read
    voltage and SMU integration are chosen so that the SMU's reference reads do not move the cells
    (:func:`~xbarlab.calibration.readdisturb.choose_read_conditions`; the choice is in the read-path
    record's metadata and ``Prepared.read_choice``), the read path is calibrated at them, and the
    characterisation's conductances are re-expressed through that calibration.

    The TIA range for single-cell reads is 1.3 × ``g_max_expected`` (S) × read voltage, so the
    ADC resolves the conductance window rather than the MVM range.
    """
    board = station.require_board()
    v = station_read_voltage(station)
    fs = min(1.3 * g_max_expected * abs(v), board_limit(board, "max_tia_range", 10e-3))
    n_rows, n_cols = board.shape
    rows = np.arange(n_rows) if rows is None else np.asarray(rows, dtype=int)
    cols = np.arange(n_cols) if cols is None else np.asarray(cols, dtype=int)
    choice = None
    if read_cal is None and characterization is None:
        # the device first, read through the uncorrected board (kinetics, thresholds and noise are ratios and
        # differences; the bounds are re-expressed below), then read conditions that do not disturb it, then
        # the SMU-referenced read-path calibration at those conditions
        board.configure(v, fs)
        raw = CalibratedBoard(board, identity_calibration(n_cols, v), v, fs)
        characterization = characterize(raw, rows, cols, reader=cell_reader(raw, v), read_voltage=v, width=width,
                                         clock=instrument_clock(station), checkpoint=checkpoint, **characterize_kwargs)
        choice = choose_read_conditions(station, raw, characterization, cell_reader(raw, v),
                                        smu=_smu_name(station, None), read_voltage=v, full_scale=fs)
        read_cal = calibrate_read_path(station, board, full_scale=fs, cells_per_column=cells_per_column, reads=reads,
                                       checkpoint=checkpoint, read_voltage=choice.read_voltage,
                                       set_amplitudes=reference_amplitudes(characterization, board))
        read_cal.detail.update(choice.record())
        characterization = in_calibrated_units(characterization, read_cal, v, fs)
        v = choice.read_voltage
    elif read_cal is None:
        read_cal = calibrate_read_path(station, board, full_scale=fs, cells_per_column=cells_per_column, reads=reads,
                                       checkpoint=checkpoint)
    board.configure(v, fs)
    cal_board = CalibratedBoard(board, read_cal, v, fs)
    if characterization is None:
        characterization = characterize(cal_board, rows, cols, reader=cell_reader(cal_board, v), read_voltage=v,
                                        width=width, clock=instrument_clock(station), checkpoint=checkpoint,
                                        **characterize_kwargs)
    return Prepared(cal_board, read_cal, characterization.bounds, fs, v, characterization, choice)


def reference_amplitudes(char: Characterization, board: Any, steps: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
                         ) -> tuple[float, ...]:
    """SET amplitudes (V) that the measured kinetics expect to take a cell at the bottom of its range to
    ``steps`` of its headroom in one pulse of the reference width: graded reference cells for the read-path
    calibration of an array the characterisation left at the bottom of its range. Within the characterised
    SET threshold and the board's pulse limit."""
    up = char.up
    top = board_limit(board, "max_pulse_amplitude", 3.0)
    amps = [char.v_ref + up.v_scale * (np.log(k) - up.s) for k in steps]
    return tuple(float(np.clip(a, up.v_on, top)) for a in amps)


def identity_calibration(n_cols: int, read_voltage: float) -> ReadCalibration:
    """A read-path record that corrects nothing (gain 1, offset 0): the board's own reads."""
    return ReadCalibration(np.ones(n_cols), np.zeros(n_cols), read_voltage)


def in_calibrated_units(char: Characterization, cal: ReadCalibration, read_voltage: float,
                        full_scale: float) -> Characterization:
    """``char`` measured through the uncorrected board at ``read_voltage`` V and TIA range ``full_scale`` A,
    with its conductances (bounds, absolute read noise) corrected by ``cal`` column by column."""
    b = char.bounds

    def fix(g: np.ndarray) -> np.ndarray:
        i = cal.correct_currents(np.asarray(g, dtype=float) * read_voltage, full_scale, b.cols)
        return i / read_voltage / cal.chord_factor

    bounds = BoundsMap(b.rows, b.cols, fix(b.g_lo), fix(b.g_hi), b.stuck, b.pulses)
    scale = float(np.median(cal.gain)) * cal.chord_factor
    return replace(char, bounds=bounds, read_sigma_abs=char.read_sigma_abs / scale)





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
