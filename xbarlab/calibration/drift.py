"""PCM drift compensation: MVM error from 1 s to 1 day with and without it.

PCM conductance decays as g(t) = g_prog·(t/t₀)^−ν with ν ≈ 0.05–0.1 per device
(Nandakumar et al. 2019), so MVM outputs shrink with time. Global drift compensation
(Joshi et al., Nat. Commun. 2020; REFERENCE.md): right after programming, record the
summed output current for a fixed calibration input (all inputs at +v_in: every device of
the block contributes); at time t repeat it and scale every output by the ratio
I_ref(t₀)/I_ref(t). One extra MVM per compensation; ``recalibrate_every`` re-measures the
ratio at each evaluation time (periodic re-calibration), else it is taken once per time.
Times are instrument time (:func:`~xbarlab.experiments.support.instrument_time`: the simulated
clock on a simulated bench, a monotonic clock on hardware); waits go through ``station.wait``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.calibration.mapping import PairMapping, compensate_stuck
from xbarlab.calibration.pipeline import program_matrix
from xbarlab.calibration.residual import DiffBlocks, relative_error
from xbarlab.experiments.support import instrument_time
from xbarlab.instruments.interfaces import BenchStation


@dataclass
class DriftResult:
    """MVM relative error at each time after programming (s), without and with compensation."""

    times: list[float]
    raw: list[float]
    compensated: list[float]
    factors: list[float] = field(default_factory=list)  # applied output scale at each time
    program_summary: dict[str, Any] = field(default_factory=dict)
    digital_corrections: int = 0

    def rows(self) -> np.ndarray:
        return np.column_stack([self.times, self.raw, self.compensated, self.factors])


def reference_current(db: DiffBlocks, repeats: int = 8) -> float:
    """Summed |current| (A) of the block's columns for all inputs at +v_in (the drift reference)."""
    v = np.zeros(db.board.shape[0])
    v[db.rows] = db.v_in
    i = np.mean([np.asarray(db.board.mvm_forward(v), dtype=float) for _ in range(repeats)], axis=0)
    if db.offsets is not None:
        i = i - db.offsets
    return float(np.sum(np.abs(i[db.columns(0)])))


def drift_study(
    station: BenchStation,
    prep: Any,
    weights: np.ndarray,
    test_inputs: np.ndarray,
    *,
    times: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4, 86400.0),
    tolerance_frac: float = 0.03,
    repeats: int = 8,
    model: Any = None,
    checkpoint: Any = None,
) -> DriftResult:
    """Program W (n_out × n_in) on columns 0..2·n_out of a PCM array, then measure the MVM error
    at each of ``times`` (s after programming, instrument time) raw and drift-compensated."""

    w = np.asarray(weights, dtype=float)
    n_out, n_in = w.shape
    lo, hi = prep.usable_range()
    mapping = PairMapping.for_matrix(w, lo, hi)
    rows, cols = np.arange(n_in), np.arange(2 * n_out)
    model = model or prep.model  # the characterisation's pulse model (abrupt RESET measured on PCM)
    targets = mapping.to_conductance(w)
    ri, ci = np.searchsorted(prep.bounds.rows, rows), np.searchsorted(prep.bounds.cols, cols)
    stuck = prep.bounds.stuck[np.ix_(ri, ci)] != 0
    short = np.zeros((n_in, n_out), dtype=bool)
    if stuck.any():  # the partner of a stuck device keeps the pair's difference where it can
        g_stuck = 0.5 * (prep.bounds.g_lo + prep.bounds.g_hi)[np.ix_(ri, ci)]
        targets, short = compensate_stuck(targets, stuck, g_stuck, lo, hi)
    rep = program_matrix(station, prep, targets, tolerance=tolerance_frac * (hi - lo),
                         rows=rows, cols=cols, model=model, checkpoint=checkpoint, max_pulses=60)
    t_prog = instrument_time(station)
    db = DiffBlocks(prep.board, rows, [0], n_out, [mapping], v_in=prep.read_voltage, repeats=repeats)
    db.set_range(prep.read_voltage, uniform_probe=True)
    i_ref0 = reference_current(db, repeats)
    # pairs a stuck device left short: their weights digitally (exact, and they do not drift)
    mask = short.T
    w_eff = db.effective_weights()[0] if mask.any() else np.zeros_like(w)
    digital = np.where(mask, w, 0.0)
    x = np.asarray(test_inputs, dtype=float)
    y_ref = x @ w.T
    out = DriftResult([], [], [], [], rep.summary(), int(mask.sum()))
    for t in times:
        if checkpoint is not None:
            checkpoint()
        now = instrument_time(station)
        if t_prog + t > now:
            station.wait(t_prog + t - now)
        factor = i_ref0 / max(reference_current(db, repeats), 1e-30)
        y = np.stack([db.outputs(xi)[0] for xi in x]) - x @ np.where(mask, w_eff, 0.0).T
        y_dig = x @ digital.T
        out.times.append(float(t))
        out.raw.append(relative_error(y + y_dig, y_ref))
        out.compensated.append(relative_error(factor * y + y_dig, y_ref))
        out.factors.append(float(factor))
    prep.board.configure(prep.read_voltage, prep.full_scale)
    return out
