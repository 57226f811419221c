"""Programming target conductances into array cells and measuring the device step.

.. note:: Interim. ``xbarlab.calibration`` owns write-verify programming and device
   characterisation; once it is available this module only adapts its results to what the
   experiments need. The fallback here is a plain adaptive write-verify loop: read, pulse
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
from xbarlab.experiments.analog import ADC_SATURATED
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
    pulse.amplitude + 1 V). Stops when every cell is within tolerance or after ``max_rounds``;
    cells that never get there (stuck, out of range) stay flagged in ``within``.
    ``checkpoint`` runs between rounds (abort at a safe point).
    """
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    targets = np.asarray(targets, dtype=float)
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
    g = _read_block(board, rows, cols, read_voltage)
    pulses_total = 0
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - rounds is reported
        err = targets - g
        bad = np.abs(err) > tolerance
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
        g_new = _read_block(board, rows, cols, read_voltage)
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
) -> ProgrammingOutcome:
    """:func:`write_verify` with the TIA range set for single-cell reads of these targets.

    Full scale = ``headroom`` × the largest target × read voltage, so the ADC resolves the
    conductance window instead of the MVM range; the station default is restored afterwards.
    """
    read_v, _ = station_defaults(station)
    targets = np.asarray(targets, dtype=float)
    fs = headroom * float(np.max(targets, initial=0.0)) * abs(read_v)
    with tia_range(station, board, max(fs, 1e-6)):
        return write_verify(board, rows, cols, targets, pulse=pulse, tolerance=tolerance, read_voltage=read_v,
                            checkpoint=checkpoint)


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
