"""Programming target conductances into array cells and measuring the device step.

.. note:: Interim. ``xbarlab.calibration`` (docs/calibration.md) now provides the SMU-referenced
   read-path calibration, range/stuck maps, device fits and a batched model-based write-verify
   (``program_matrix``); the experiments still call the loop below, kept unchanged so their
   results stay comparable. The fallback here is a plain adaptive write-verify loop: read, pulse
   every cell outside tolerance with a pulse count proportional to its error (SET up,
   RESET down), re-estimate the mean step per pulse, repeat (Alibart et al., Nanotechnology
   23, 075201 (2012): adaptive programming to ~1 % of the range).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError, InstrumentError
from xbarlab.experiments.analog import ADC_SATURATED, WeightMapping
from xbarlab.experiments.support import board_limit, station_defaults, tia_range
from xbarlab.experiments.update_rules import DeviceStep, PulseSpec
from xbarlab.instruments.interfaces import Pulse


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
            "repaired_pairs": self.repaired,
        }


def read_map(board: Any, read_voltage: float) -> np.ndarray:
    """Conductance map (S); a clipped ADC sample reads as the full scale (the cell is above range)."""
    try:
        return np.asarray(board.read_all(), dtype=float)
    except InstrumentError as exc:
        currents = getattr(exc, "currents", None)
        if getattr(exc, "code", None) != ADC_SATURATED or currents is None:
            raise
        return np.asarray(currents, dtype=float) / read_voltage


def read_unclipped(station: Any, board: Any, rows: np.ndarray, cols: np.ndarray, start_range: float) -> np.ndarray:
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
            except InstrumentError as exc:
                currents = getattr(exc, "currents", None)
                if getattr(exc, "code", None) != ADC_SATURATED or currents is None:
                    raise
                g = np.asarray(currents, dtype=float) / read_v
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


def _read_block(board: Any, rows: np.ndarray, cols: np.ndarray, read_voltage: float) -> np.ndarray:
    return read_map(board, read_voltage)[np.ix_(rows, cols)]


def write_verify(
    board: Any,
    rows: np.ndarray,
    cols: np.ndarray,
    targets: np.ndarray,
    *,
    pulse: PulseSpec,
    tolerance: float,
    read_voltage: float = 0.2,
    max_rounds: int = 60,
    max_pulses_per_round: int = 8,
    amplitude_step: float = 0.1,
    max_amplitude: float | None = None,
    active: np.ndarray | None = None,
    patience: int = 6,
    reader: Callable[[], np.ndarray] | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> ProgrammingOutcome:
    """Program ``targets`` (len(rows) × len(cols), S) into the block ``rows`` × ``cols``.

    ``tolerance`` in S; ``read_voltage`` (V) is the board's configured read voltage. Set a TIA
    range suited to single-cell reads first (:func:`program` does). Every round reads the
    block, then gives each cell outside tolerance a number of pulses proportional to its
    error over its own measured step (SET up, RESET down). The amplitude adapts per cell
    (Alibart et al. 2012): +``amplitude_step`` V when the cell needs more than
    ``max_pulses_per_round`` pulses, −``amplitude_step`` V when one step overshoots the error,
    within [pulse.amplitude/2, ``max_amplitude``] (default: the board's pulse limit, at most
    pulse.amplitude + 1 V). A cell at the largest amplitude whose error has not improved for
    ``patience`` rounds is given up (stuck, or its target beyond its range). Only cells where
    ``active`` is True are programmed (default: all). Stops when every active cell is within
    tolerance or given up, or after ``max_rounds``; failures stay flagged in ``within``.
    ``reader()`` returns the block's conductances (default: a whole-array read);
    ``checkpoint`` runs between rounds (abort at a safe point).
    """
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    targets = np.asarray(targets, dtype=float)
    read = reader or (lambda: _read_block(board, rows, cols, read_voltage))
    if targets.shape != (len(rows), len(cols)):
        raise ConfigError(f"targets have shape {targets.shape}, expected ({len(rows)}, {len(cols)})")
    if not tolerance > 0:
        raise ConfigError(f"write-verify tolerance must be > 0 S, got {tolerance}")
    limit = board_limit(board, "max_pulse_amplitude", pulse.amplitude + 1.0)
    a_max = min(max_amplitude if max_amplitude is not None else pulse.amplitude + 1.0, limit)
    a_min = 0.5 * pulse.amplitude
    shape = targets.shape
    amp = np.full(shape, min(pulse.amplitude, a_max))
    step = np.zeros(shape)  # S per pulse at the cell's amplitude (0 = unknown)
    todo = np.ones(shape, dtype=bool) if active is None else np.asarray(active, dtype=bool).copy()
    if todo.shape != shape:
        raise ConfigError(f"active mask has shape {todo.shape}, expected {shape}")
    best = np.full(shape, np.inf)
    stale = np.zeros(shape, dtype=int)
    g = read()
    pulses_total = 0
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - rounds is reported
        err = targets - g
        improved = np.abs(err) < 0.9 * best
        best = np.where(improved, np.abs(err), best)
        stale = np.where(improved, 0, stale + 1)
        todo &= ~((stale >= patience) & (amp >= a_max))  # give up: no progress at full strength
        bad = (np.abs(err) > tolerance) & todo
        if not bad.any():
            rounds -= 1
            break
        if checkpoint is not None:
            checkpoint()
        ii, jj = np.nonzero(bad)
        e = err[ii, jj]
        known = step[ii, jj] > 0
        need = np.where(known, np.abs(e) / np.where(known, step[ii, jj], 1.0), 1.0)
        # amplitude adaptation: too slow -> stronger pulses; overshooting -> weaker pulses
        faster = known & (need > max_pulses_per_round)
        slower = known & (need < 0.5)
        a = amp[ii, jj]
        a = np.where(faster, np.minimum(a + amplitude_step, a_max), a)
        a = np.where(slower, np.maximum(a - amplitude_step, a_min), a)
        changed = a != amp[ii, jj]
        amp[ii, jj] = a
        step[ii[changed], jj[changed]] = 0.0  # re-learn the step at the new amplitude
        counts = np.where(known & ~changed, np.clip(np.rint(0.7 * need), 1, max_pulses_per_round), 1).astype(int)
        signs = np.sign(e)
        # interleave: pass k pulses every cell that still needs a k-th pulse (devices see distinct cells per pass)
        r_list, c_list, a_list = [], [], []
        for k in range(int(counts.max())):
            sel = counts > k
            r_list.append(rows[ii[sel]])
            c_list.append(cols[jj[sel]])
            a_list.append(signs[sel] * a[sel])
        pr, pc, pa = np.concatenate(r_list), np.concatenate(c_list), np.concatenate(a_list)
        board.pulse_batch([Pulse(int(r), int(c), float(v), pulse.width) for r, c, v in zip(pr, pc, pa, strict=True)])
        pulses_total += int(pr.size)
        g_new = read()
        moved = (g_new - g)[ii, jj] * signs / counts
        ok = moved > 0
        old = step[ii, jj]
        est = np.where(old > 0, 0.5 * old + 0.5 * moved, moved)
        step[ii[ok], jj[ok]] = est[ok]
        # a cell that did not move in the intended direction gets a stronger pulse next round
        amp[ii[~ok], jj[~ok]] = np.minimum(amp[ii[~ok], jj[~ok]] + amplitude_step, a_max)
        step[ii[~ok], jj[~ok]] = 0.0
        g = g_new
    within = np.abs(targets - g) <= tolerance
    return ProgrammingOutcome(targets, g, within, float(tolerance), rounds, pulses_total)


def program(
    station: Any,
    board: Any,
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
) -> ProgrammingOutcome:
    """:func:`write_verify` with the TIA range set for single-cell reads of these targets.

    Full scale = ``headroom`` × the largest target × read voltage, so the ADC resolves the
    conductance window instead of the MVM range; the station default is restored afterwards.

    ``absolute``: program true conductances rather than what the board's read path reports —
    needed when something other than the board's TIAs uses the array (the closed-loop
    circuit). The column read gains are calibrated against an SMU (:func:`column_read_gains`)
    and cells are verified one at a time (``read_cells``, no line IR drop) when the board offers it.
    """
    read_v, _ = station_defaults(station)
    targets = np.asarray(targets, dtype=float)
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    fs = headroom * float(np.max(targets, initial=0.0)) * abs(read_v)
    with tia_range(station, board, max(fs, 1e-6)) as fs_set:
        first = write_verify(board, rows, cols, targets, pulse=pulse, tolerance=tolerance, read_voltage=read_v,
                             active=active, checkpoint=checkpoint)
        if not absolute:
            return first
        # the cells now sit in the window: calibrate the read path on them, then correct the programming
        gains = column_read_gains(station, board, rows, cols, full_scale=fs_set)
        second = write_verify(board, rows, cols, targets, pulse=pulse, tolerance=tolerance, read_voltage=read_v,
                              active=active, reader=_cell_reader(board, rows, cols, gains, read_v),
                              checkpoint=checkpoint)
        second.rounds += first.rounds
        second.pulses += first.pulses
        return second


def _cell_reader(
    board: Any, rows: np.ndarray, cols: np.ndarray, gains: np.ndarray, read_v: float
) -> Callable[[], np.ndarray]:
    """Block conductances from per-cell reads (READ_CELLS) divided by the column read gains."""
    read_cells = getattr(board, "read_cells", None)
    rr, cc = np.repeat(rows, len(cols)), np.tile(cols, len(rows))

    def read() -> np.ndarray:
        if callable(read_cells):
            try:
                g = np.asarray(read_cells(rr, cc), dtype=float).reshape(len(rows), len(cols))
            except InstrumentError as exc:
                currents = getattr(exc, "currents", None)
                if getattr(exc, "code", None) != ADC_SATURATED or currents is None:
                    raise
                g = (np.asarray(currents, dtype=float) / read_v).reshape(len(rows), len(cols))
        else:
            g = _read_block(board, rows, cols, read_v)
        return g / gains[None, :]

    return read


def column_read_gains(
    station: Any, board: Any, rows: np.ndarray, cols: np.ndarray, *, reads: int = 8, smu: str | None = None,
    full_scale: float | None = None,
) -> np.ndarray:
    """Read gain of each column (board reading / SMU reading of the same cell), one cell per column.

    .. note:: Interim stand-in for the read-path calibration of ``xbarlab.calibration``.

    For every column the cell with the largest conductance in ``rows`` that the board reads
    without clipping (at the present TIA range ``full_scale``, A) is read ``reads`` times
    by the board (READ_CELL through the column TIA) and once by the SMU routed to it at the
    same read voltage (the reference); the ratio is the TIA's gain. Needs an SMU cabled to a
    board port (``board_port`` in the station file).
    """
    read_v, _ = station_defaults(station)
    name = smu
    if name is None:
        name = next((n for n in getattr(station, "smus", {}) if station.config.instruments[n].board_port is not None),
                    None)
    if name is None:
        raise ConfigError("absolute programming needs an SMU cabled to a board port (board_port) as the reference")
    meter, port = station.smu(name), station.board_port(name)
    g_block = read_map(board, read_v)[np.ix_(rows, cols)]
    if full_scale:
        g_block = np.where(g_block < 0.9 * full_scale / abs(read_v), g_block, -np.inf)
    limit = float(getattr(getattr(meter, "limits", None), "max_current", 1e-3))
    gains = np.ones(len(cols))
    for k, c in enumerate(cols):
        if not np.isfinite(np.max(g_block[:, k])):
            continue  # every cell of this column clips: keep gain 1
        r = int(rows[int(np.argmax(g_block[:, k]))])
        g_board = float(np.mean([board.read_cell(r, int(c)) for _ in range(reads)]))
        board.route_smu(port, r, int(c))
        try:
            meter.source_voltage(read_v, min(limit, 1e-3))
            meter.set_output(True)
            current = float(np.mean([meter.measure_current() for _ in range(2)]))
        finally:
            meter.set_output(False)
            board.unroute_smu(port)
        if current / read_v > 0 and g_board > 0:
            gains[k] = g_board / (current / read_v)
    return gains


def program_weights(
    station: Any,
    board: Any,
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
) -> ProgrammingOutcome:
    """Program W (n_out × n_in) into ``rows`` × ``cols`` with ``mapping``; repair differential pairs.

    After write-verify, a pair with one failed device (stuck on/off, or a target beyond its
    range) keeps its weight if the partner can follow: the failed device's actual conductance
    is read at the widest TIA range and the partner is re-targeted to g_failed ∓ Δg (defect-
    aware mapping). Pairs where both devices fail, or where the partner cannot reach its new
    target, stay flagged in ``within``. ``tolerance`` in S; ``absolute``: see :func:`program`.
    """
    targets = mapping.to_conductance(weights, centered=centered)
    out = program(station, board, rows, cols, targets, pulse=pulse, tolerance=tolerance, checkpoint=checkpoint,
                  absolute=absolute)
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
                     checkpoint=checkpoint, active=fix, absolute=absolute)
    within = np.where(fix, second.within, out.within)
    # a repaired pair counts as good for both devices: its weight is right
    failed_partner = fix & ~second.within
    pair_ok = (fix[:, 0::2] | fix[:, 1::2]) & ~(failed_partner[:, 0::2] | failed_partner[:, 1::2])
    within[:, 0::2] |= pair_ok
    within[:, 1::2] |= pair_ok
    achieved = np.where(within, second.achieved, read_wide())
    return ProgrammingOutcome(final_targets, achieved, within, out.tolerance, out.rounds + second.rounds,
                              out.pulses + second.pulses, int(pair_ok.sum()))


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
    board: Any, rows: np.ndarray, cols: np.ndarray, pulse: PulseSpec, pulses: int = 10, read_voltage: float = 0.2
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
