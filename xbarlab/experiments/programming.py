"""Programming target conductances into array cells and measuring the device step.

The write-verify is the calibration layer's
(:func:`xbarlab.calibration.writeverify.program_conductances`, docs/calibration.md): a batched,
model-based loop with bounded stopping and stuck detection. :func:`program` sets the TIA
range for single-cell reads and picks the device model (abrupt RESET for PCM); with
``absolute`` the read path is first calibrated against the SMU
(:func:`~xbarlab.calibration.readpath.calibrate_read_path`) and cells are verified through
the corrected single-cell reads. :func:`program_weights` adds defect-aware repair of
differential pairs.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from xbarlab.calibration.characterize import characterize, measure_read_noise
from xbarlab.calibration.pipeline import sim_clock
from xbarlab.calibration.readpath import CalibratedBoard, ReadCalibration, calibrate_read_path
from xbarlab.calibration.writeverify import (
    BUDGET,
    STUCK,
    UNREACHABLE,
    ProgramReport,
    PulseModel,
    array_reader,
    cell_reader,
    program_conductances,
)
from xbarlab.errors import AdcSaturated, ConfigError, InstrumentError
from xbarlab.experiments.analog import WeightMapping
from xbarlab.experiments.support import board_limit, station_defaults, tia_range
from xbarlab.experiments.update_rules import DeviceStep, PulseSpec
from xbarlab.instruments.interfaces import BenchStation, CellReads, CrossbarArray, Pulse
from xbarlab.runs.step import BEFORE_EACH_RUN


@dataclass
class ProgrammingOutcome:
    """Result of programming a block of cells (all conductances in S)."""

    targets: np.ndarray
    achieved: np.ndarray  # last read
    within: np.ndarray  # bool: |achieved − target| ≤ tolerance
    tolerance: float  # S
    rounds: int
    pulses: int
    repaired: int = 0  # differential pairs whose partner was re-targeted around a failed device
    stuck: int = 0  # cells the write-verify found stuck (never moved at the largest amplitude)
    unreachable: int = 0  # cells that moved but could not reach their target (beyond their range)
    budget_spent: int = 0  # cells that spent their pulse budget outside tolerance
    read_cal: ReadCalibration | None = None  # read-path calibration of absolute programming

    @property
    def yield_fraction(self) -> float:
        return float(np.mean(self.within)) if self.within.size else 1.0

    @property
    def rms_error(self) -> float:
        return float(np.sqrt(np.mean((self.achieved - self.targets) ** 2))) if self.targets.size else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "cells": int(self.targets.size),
            "yield": self.yield_fraction,
            "rms_error_S": self.rms_error,
            "tolerance_S": self.tolerance,
            "rounds": self.rounds,
            "pulses": self.pulses,
            "mean_pulses": self.pulses / self.targets.size if self.targets.size else 0.0,
            "repaired_pairs": self.repaired,
            "stuck": self.stuck,
            "unreachable": self.unreachable,
            "budget_spent": self.budget_spent,
        }


def read_map(board: CrossbarArray, read_voltage: float) -> np.ndarray:
    """Conductance map (S); a clipped ADC sample reads as the full scale (the cell is above range)."""
    try:
        return np.asarray(board.read_all(), dtype=float)
    except AdcSaturated as exc:
        if exc.currents is None:
            raise
        return np.asarray(exc.currents, dtype=float) / read_voltage


def read_unclipped(station: BenchStation, board: CrossbarArray, rows: np.ndarray, cols: np.ndarray,
                   start_range: float) -> np.ndarray:
    """Conductances (S) of the block rows × cols with no clipped sample: the TIA range starts at
    ``start_range`` (A) and grows ×4 while a cell of the block saturates; the column offsets at
    the final range (zero-input MVM) are subtracted, since they grow with the range."""
    read_v, _ = station_defaults(station)
    top = board_limit(board, "max_tia_range", 10e-3)
    fs = min(max(start_range, 1e-6), top)
    while True:
        with tia_range(station, board, fs):
            try:
                g = np.asarray(board.read_all(), dtype=float)
                clipped = False
            except AdcSaturated as exc:
                if exc.currents is None:
                    raise
                g = np.asarray(exc.currents, dtype=float) / read_v
                clipped = bool(np.any(np.asarray(exc.saturated)[np.ix_(rows, cols)]))
            if clipped and fs < top:
                fs = min(4 * fs, top)
                continue
            zero = np.zeros(board.shape[0])
            try:
                offsets = np.asarray(board.mvm_forward(zero), dtype=float)
            except InstrumentError:
                offsets = np.zeros(board.shape[1])
        return (g - offsets[None, :] / read_v)[np.ix_(rows, cols)]


#: pulse budget per cell (one pulse a round): gradual devices get the budget of the earlier
#: experiments' loop (60 rounds × 8 pulses), as a device whose step hardly follows the amplitude
#: needs hundreds of pulses across its range; abrupt-RESET (PCM) devices keep the calibration
#: default, since their conductance drifts from the moment it is programmed and a longer run
#: lets the cells settled early drift out of tolerance (quick drift benchmark, before the
#: patience rule below: device yield 0.88 with 480 against 0.94 with 100)
MAX_PULSES = {"gradual": 480, "abrupt": 100}
#: a cell whose error has not shrunk by 10 % over this many pulses is given up (it churns at a
#: bound, e.g. a repaired partner re-targeted beyond its range)
PATIENCE = 30


def device_kind(station: BenchStation) -> str | None:
    """The station's device technology: ``station.defaults.device`` in the station file, or on a
    simulated bench its ``[sim.array] device``; None when the file does not say."""
    kind = station.config.device
    return str(kind).lower() if kind else None


_MODELS: weakref.WeakKeyDictionary[Any, PulseModel] = weakref.WeakKeyDictionary()


def forget_characterizations() -> None:
    """Drop the pulse models :func:`characterized_model` keeps per board (a new experiment run starts)."""
    _MODELS.clear()


BEFORE_EACH_RUN.append(forget_characterizations)  # each run characterises the devices afresh


def characterized_model(board: CrossbarArray, rows: np.ndarray, cols: np.ndarray, *,
                        reader: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                        read_voltage: float = 0.2, width: float = 1e-6,
                        v_max: float | None = None, clock: Callable[[], float] | None = None,
                        checkpoint: Callable[[], None] | None = None, refresh: bool = False) -> PulseModel:
    """The write-verify prior of this board's devices: a characterisation
    (:func:`~xbarlab.calibration.characterize.characterize`) of up to 4 × 4 cells of the block, measured
    once per board object and experiment run, and reused (``refresh`` measures again)."""
    if not refresh:
        try:
            cached = _MODELS.get(board)
        except TypeError:
            cached = None
        if cached is not None and cached.width_ref == width:
            return cached
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    pick_r = rows[np.unique(np.linspace(0, rows.size - 1, min(4, rows.size)).round().astype(int))]
    pick_c = cols[np.unique(np.linspace(0, cols.size - 1, min(4, cols.size)).round().astype(int))]
    # single-cell reads (READ_CELLS) where the board has them: fast, and the kinetics are ratios of
    # conductance changes, which a read path's gain does not alter
    if isinstance(board, CellReads):
        reader = cell_reader(board, read_voltage)
    ch = characterize(board, pick_r, pick_c, reader=reader or array_reader(board, read_voltage),
                      read_voltage=read_voltage, sample=16, width=width,
                      v_max=v_max, clock=clock, checkpoint=checkpoint)
    model = ch.pulse_model()
    try:
        _MODELS[board] = model
    except TypeError:
        pass
    return model


def write_verify(
    board: CrossbarArray,
    rows: np.ndarray,
    cols: np.ndarray,
    targets: np.ndarray,
    *,
    pulse: PulseSpec,
    tolerance: float,
    read_voltage: float = 0.2,
    g_lo: float | None = None,
    g_hi: float | None = None,
    model: PulseModel | None = None,
    max_amplitude: float | None = None,
    max_pulses: int | None = None,
    active: np.ndarray | None = None,
    reader: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    clock: Callable[[], float] | None = None,
    checkpoint: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProgrammingOutcome:
    """Program ``targets`` (len(rows) × len(cols), S) into the block ``rows`` × ``cols``.

    Runs :func:`~xbarlab.calibration.writeverify.program_conductances` with

    * ``model``: default the board's characterised pulse model (:func:`characterized_model`:
      thresholds, kinetics and read noise measured on a few cells of the block); a cell is
      accepted within the tolerance less 3σ of its averaged verify read at the largest target
      (between 0.5 and 0.9 of the tolerance; 0.5 is the calibration layer's default);
    * the range ``g_lo``..``g_hi`` (S; default: the targets' span) as the soft bounds' prior;
    * pulses of ``pulse.width`` s at amplitudes up to ``max_amplitude`` (default
      ``pulse.amplitude`` + 1 V), never above the board's pulse limit;
    * at most ``max_pulses`` pulses a cell (default :data:`MAX_PULSES` of the model's RESET kind);
      a cell whose error has not shrunk by 10 % in :data:`PATIENCE` pulses is given up.

    ``tolerance`` in S; ``read_voltage`` (V) is the board's configured read voltage. Set a TIA
    range suited to single-cell reads first (:func:`program` does). Only cells where ``active``
    is True are programmed (default: all); the others are read once. ``reader(rows, cols)``
    returns conductances of listed cells (default: whole-array reads, READ_ALL, as a forward
    MVM sees them); ``clock()`` is the instrument time; ``checkpoint`` runs between rounds
    (abort at a safe point); ``progress(round, cells still active)`` after each round. Failures
    (stuck, unreachable, out of budget) stay flagged in
    ``within`` and are counted in the outcome.
    """
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    targets = np.asarray(targets, dtype=float)
    if targets.shape != (len(rows), len(cols)):
        raise ConfigError(f"targets have shape {targets.shape}, expected ({len(rows)}, {len(cols)})")
    skip = None
    if active is not None:
        act = np.asarray(active, dtype=bool)
        if act.shape != targets.shape:
            raise ConfigError(f"active mask has shape {act.shape}, expected {targets.shape}")
        skip = ~act
    limit = board_limit(board, "max_pulse_amplitude", pulse.amplitude + 1.0)
    v_max = min(max_amplitude if max_amplitude is not None else pulse.amplitude + 1.0, limit)
    lo = float(np.min(targets, initial=np.inf)) if g_lo is None else float(g_lo)
    hi = float(np.max(targets, initial=-np.inf)) if g_hi is None else float(g_hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        lo, hi = 0.0, max(hi if np.isfinite(hi) else 0.0, 1e-12)
    read = reader or array_reader(board, read_voltage)
    if model is None:
        model = characterized_model(board, rows, cols, reader=reader, read_voltage=read_voltage, width=pulse.width,
                                    v_max=v_max, clock=clock, checkpoint=checkpoint)
        # the read noise of the reads this write-verify verifies with (row reads see every cell of the
        # column and the MVM's TIA range): measured on the block
        rr_b, cc_b = np.repeat(rows, len(cols)), np.tile(cols, len(rows))
        rel, abs_ = measure_read_noise(read, rr_b, cc_b, reads=4)
        model = replace(model, read_sigma=max(rel, model.read_sigma), read_sigma_abs=max(abs_, model.read_sigma_abs))
    # acceptance margin: 3σ of the averaged verify read at the largest target (0.5..0.9 of the tolerance)
    top = float(np.max(np.abs(targets), initial=0.0))
    # verify reads: 4, or as many as bring the averaged read's 1σ to a quarter of the tolerance
    verify_reads = model.reads_for(top, tolerance, target=0.25)
    sigma_mean = float(model.sigma(np.asarray(top))) / np.sqrt(verify_reads)
    accept = float(np.clip(1.0 - 3.0 * sigma_mean / tolerance, 0.5, 0.9))
    if max_pulses is None:
        max_pulses = MAX_PULSES[model.reset]
    rep = program_conductances(
        board, rows, cols, targets, tolerance=tolerance, g_lo=lo, g_hi=hi, model=model, reader=read,
        read_voltage=read_voltage, width=pulse.width, max_pulses=max_pulses, max_rounds=max_pulses + 50, accept=accept,
        patience=PATIENCE, verify_reads=verify_reads,
        v_max=v_max, skip=skip, clock=clock, checkpoint=checkpoint, progress=progress,
    )
    return _outcome(rep)


def _outcome(rep: ProgramReport) -> ProgrammingOutcome:
    status = rep.status
    return ProgrammingOutcome(
        rep.targets, rep.achieved, rep.within, rep.tolerance, int(rep.rounds), int(np.sum(rep.pulses)),
        stuck=int(np.sum(status == STUCK)), unreachable=int(np.sum(status == UNREACHABLE)),
        budget_spent=int(np.sum(status == BUDGET)),
    )


def program(
    station: BenchStation,
    board: CrossbarArray,
    rows: np.ndarray,
    cols: np.ndarray,
    targets: np.ndarray,
    *,
    pulse: PulseSpec,
    tolerance: float,
    checkpoint: Callable[[], None] | None = None,
    headroom: float = 1.5,
    active: np.ndarray | None = None,
    absolute: bool = False,
    g_lo: float | None = None,
    g_hi: float | None = None,
    model: PulseModel | None = None,
    read_cal: ReadCalibration | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProgrammingOutcome:
    """:func:`write_verify` with the TIA range set for single-cell reads of these targets.

    Full scale = ``headroom`` × the largest target × read voltage, so the ADC resolves the
    conductance window instead of the MVM range; the station default is restored afterwards.
    ``model``: default the characterised model of the board (:func:`characterized_model`).

    ``absolute``: program true conductances rather than what the board's read path reports —
    needed when something other than the board's TIAs uses the array (the closed-loop
    circuit). The read path (every column's gain and offset) is calibrated against an SMU at
    this TIA range (:func:`~xbarlab.calibration.readpath.calibrate_read_path`) and cells are
    verified one at a time through the corrected reads (READ_CELLS, no line IR drop); a
    calibration given as ``read_cal`` (e.g. ``outcome.read_cal`` of an earlier call) is reused.
    """
    read_v, _ = station_defaults(station)
    targets = np.asarray(targets, dtype=float)
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    fs = headroom * float(np.max(targets, initial=0.0)) * abs(read_v)
    with tia_range(station, board, max(fs, 1e-6)) as fs_set:
        reader = None
        if absolute:
            if read_cal is None:
                read_cal = calibrate_read_path(station, board, full_scale=fs_set, checkpoint=checkpoint)
            reader = cell_reader(CalibratedBoard(board, read_cal, read_v, fs_set), read_v)
        out = write_verify(board, rows, cols, targets, pulse=pulse, tolerance=tolerance, read_voltage=read_v,
                           g_lo=g_lo, g_hi=g_hi, model=model, active=active, reader=reader,
                           clock=sim_clock(station), checkpoint=checkpoint, progress=progress)
    out.read_cal = read_cal if absolute else None
    return out


def program_weights(
    station: BenchStation,
    board: CrossbarArray,
    rows: np.ndarray,
    cols: np.ndarray,
    mapping: WeightMapping,
    weights: np.ndarray,
    *,
    pulse: PulseSpec,
    tolerance: float,
    centered: bool = False,
    checkpoint: Callable[[], None] | None = None,
    absolute: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ProgrammingOutcome:
    """Program W (n_out × n_in) into ``rows`` × ``cols`` with ``mapping``; repair differential pairs.

    After write-verify, a pair with one failed device (stuck on/off, or a target beyond its
    range) keeps its weight if the partner can follow: the failed device's actual conductance
    is read at the widest TIA range and the partner is re-targeted to g_failed ∓ Δg (defect-
    aware mapping). Pairs where both devices fail, or where the partner cannot reach its new
    target, stay flagged in ``within``. ``tolerance`` in S; ``absolute``: see :func:`program`;
    ``progress(round, cells still active)`` after each write-verify round (both passes).
    """
    targets = mapping.to_conductance(weights, centered=centered)
    window = {"g_lo": mapping.g_min, "g_hi": mapping.g_max}
    out = program(station, board, rows, cols, targets, pulse=pulse, tolerance=tolerance, checkpoint=checkpoint,
                  absolute=absolute, progress=progress, **window)
    if out.within.all():
        return out
    read_v, _ = station_defaults(station)

    def read_wide() -> np.ndarray:  # failed cells may sit far above the window (stuck on)
        return read_unclipped(station, board, rows, cols, 1.5 * float(np.max(targets)) * abs(read_v))

    actual = read_wide()
    if mapping.layout != "differential":
        out.achieved = np.where(out.within, out.achieved, actual)
        return out
    bad_p, bad_m = ~out.within[:, 0::2], ~out.within[:, 1::2]
    delta = targets[:, 0::2] - targets[:, 1::2]
    new = targets.copy()
    fix = np.zeros(targets.shape, dtype=bool)
    only_p, only_m = bad_p & ~bad_m, bad_m & ~bad_p
    new[:, 1::2] = np.where(only_p, actual[:, 0::2] - delta, new[:, 1::2])
    new[:, 0::2] = np.where(only_m, actual[:, 1::2] + delta, new[:, 0::2])
    fix[:, 1::2], fix[:, 0::2] = only_p, only_m
    fix &= (new >= mapping.g_min) & (new <= 2.0 * mapping.g_max)
    if not fix.any():
        out.achieved = np.where(out.within, out.achieved, actual)
        return out
    final_targets = np.where(fix, new, targets)
    second = program(station, board, rows, cols, final_targets, pulse=pulse, tolerance=tolerance,
                     checkpoint=checkpoint, active=fix, absolute=absolute, read_cal=out.read_cal, progress=progress,
                     **window)
    # yields from the final read of every cell after the last pulse (second.achieved: the repaired cells'
    # verify read, every other cell read once at the end), never from the first pass's verification: a
    # cell that died while its neighbours were repaired is reported failed
    within = np.abs(second.achieved - final_targets) <= tolerance
    wide = read_wide()  # failed cells may sit beyond the window's TIA range
    achieved = np.where(within, second.achieved, wide)
    # a repaired pair counts as good for both devices when its weight (the difference) is right within
    # the two devices' tolerances
    repaired = fix[:, 0::2] | fix[:, 1::2]
    pair_ok = repaired & (np.abs((achieved[:, 0::2] - achieved[:, 1::2]) - delta) <= 2 * tolerance)
    within[:, 0::2] |= pair_ok
    within[:, 1::2] |= pair_ok
    return ProgrammingOutcome(final_targets, achieved, within, out.tolerance, out.rounds + second.rounds,
                              out.pulses + second.pulses, int(pair_ok.sum()), out.stuck + second.stuck,
                              out.unreachable + second.unreachable, out.budget_spent + second.budget_spent,
                              out.read_cal)


def defect_correction(mapping: WeightMapping, outcome: ProgrammingOutcome, weights: np.ndarray) -> np.ndarray:
    """Digital correction W − W_programmed (n_out × n_in) on the weights whose devices failed, else 0.

    Adding ``correction @ x`` to an analog product cancels the known error of stuck or
    out-of-range devices (their conductance is read back); it costs one multiply-add per
    defective weight.
    """
    w = np.asarray(weights, dtype=float)
    ok = outcome.within if mapping.layout != "differential" else outcome.within[:, 0::2] & outcome.within[:, 1::2]
    programmed = mapping.to_weights(outcome.achieved)
    return np.where(ok.T, 0.0, np.clip(w, -mapping.w_max, mapping.w_max) - programmed)


def measure_device_step(
    board: CrossbarArray, rows: np.ndarray, cols: np.ndarray, pulse: PulseSpec, pulses: int = 10,
    read_voltage: float = 0.2,
) -> DeviceStep:
    """Mean conductance change per SET and per RESET pulse (S) on the cells rows[k], cols[k].

    Applies ``pulses`` SET pulses to every cell, reads, then as many RESET pulses, reads; the
    cells end near where they started. Stuck cells (no change) are excluded from the means.
    """
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    if rows.shape != cols.shape or rows.size == 0:
        raise ConfigError("measure_device_step needs matching, non-empty lists of rows and columns")
    g0 = read_map(board, read_voltage)[rows, cols]
    batch = [Pulse(int(r), int(c), pulse.amplitude, pulse.width) for r, c in zip(rows, cols, strict=True)]
    board.pulse_batch(batch * pulses)
    g1 = read_map(board, read_voltage)[rows, cols]
    batch = [Pulse(int(r), int(c), -pulse.amplitude, pulse.width) for r, c in zip(rows, cols, strict=True)]
    board.pulse_batch(batch * pulses)
    g2 = read_map(board, read_voltage)[rows, cols]
    up, down = (g1 - g0) / pulses, (g1 - g2) / pulses
    moving = (up > 0) & (down > 0)
    if not moving.any():
        raise ConfigError(
            f"no cell responded to {pulses} pulses of ±{pulse.amplitude:g} V, {pulse.width:g} s: "
            "check the pulse amplitude/width against the device"
        )
    return DeviceStep(float(np.mean(up[moving])), float(np.mean(down[moving])))
