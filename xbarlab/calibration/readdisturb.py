"""Read conditions that leave the cells where they are: the SMU reference reads and the read voltage.

A read is a bias: the SMU's reference read of a cell (read-path calibration) holds the read
voltage on it for the whole integration time (NPLC / line frequency: 20 ms at 1 PLC and 50 Hz),
which on a device with a low, soft threshold acts as a programming pulse (a low-threshold RRAM
moves by several per cent of its range per reading; a PCM cell is crystallised by it). The
reads then disagree with each other and with the board, and the column gains fitted from them
are wrong. :func:`choose_read_conditions` picks, after the device is characterised, the read
voltage V and SMU integration ``nplc`` the read-path calibration will use:

1. **Predicted** from the measured kinetics (:class:`~xbarlab.calibration.characterize.Characterization`):
   a read of V volts held t seconds moves a cell by a fraction
   k = exp(s + (V − v_ref)/v_scale)·(t/width_ref)^β of its headroom (SET direction: reads are
   positive). The exponential law extrapolated below the characterised amplitudes overstates
   the step of a device whose kinetics steepen near threshold, so the prediction errs safe; a
   direction whose step did not follow the amplitude (``v_scale`` not measured) has no
   prediction and relies on the measurement alone.
2. **Measured**: sample cells are read by the board (averaged) before and after ``smu_reads``
   SMU reads at the candidate conditions, and the same bracket is taken without the SMU reads
   (the null: read noise and slow 1/f wander over the same time). A read bias pushes cells one
   way, noise both ways, so the candidate disturbs when the mean signed move exceeds
   3 standard errors of the null plus ``budget`` of the cells' conductance.

Candidates go from gentle on the signal to gentle on the cells: at the station's read voltage
the SMU's own integration, then shorter ones (``nplcs``), then the same at lower voltages
(``voltage_fractions`` of the station's); a candidate predicted to disturb costs no measurement.
A voltage is usable only when the board still resolves the conductance window: its current-noise
floor, measured from zero-input conversions (A) and divided by V (S), stays below ``resolution`` of
the window (the device's own read noise is in S and does not change with V). No candidate left: ConfigError,
one line with what was tried. The choice (and every candidate's figures) goes into the read-path
calibration record. Units: V, s, S.

Board reads last ~10 µs (one conversion), three orders shorter than an SMU reading; their
predicted disturbance is reported (``board_disturb_per_read``) but not measured here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.calibration.characterize import Characterization
from xbarlab.calibration.readpath import smu_cell_current
from xbarlab.calibration.writeverify import _pulse
from xbarlab.errors import ConfigError, InstrumentError, ProtocolError
from xbarlab.experiments.support import instrument_time
from xbarlab.instruments.interfaces import BenchStation, CrossbarArray, board_limit

#: integration times tried after the SMU's own (PLC), down to the shortest the 2600B and B2900 take
#: (0.001 PLC); a model that refuses one (the 2400 and 2450 stop at 0.01) skips it
NPLCS = (0.1, 0.01, 0.001)
#: read voltages tried, as fractions of the station's read voltage (judgement: halving steps)
VOLTAGE_FRACTIONS = (1.0, 0.5, 0.25, 0.125)
#: mains frequency assumed for the integration time (s per PLC): 50 Hz, the longer of 50/60 Hz
LINE_PERIOD_S = 1 / 50


@dataclass
class Candidate:
    """One read condition tried: V, PLC, predicted step per SMU reading (fraction of headroom; NaN:
    no prediction), measured mean signed move (relative), its null standard error, and the verdict."""

    voltage: float
    nplc: float
    predicted: float
    measured: float = float("nan")
    null_se: float = float("nan")
    verdict: str = ""

    def describe(self) -> str:
        pred = "n/a" if not np.isfinite(self.predicted) else f"{self.predicted:.2g}"
        meas = "" if not np.isfinite(self.measured) else f", measured {self.measured:+.2%} (null ±{self.null_se:.2%})"
        return f"{self.voltage:.3g} V / {self.nplc:g} PLC: predicted {pred}/reading{meas}: {self.verdict}"


@dataclass
class ReadChoice:
    """The read conditions chosen (V, PLC; ``nplc`` None: the SMU's own setting was kept) and why."""

    read_voltage: float
    nplc: float | None
    candidates: list[Candidate] = field(default_factory=list)
    board_disturb_per_read: float = float("nan")  # predicted, fraction of headroom per board read

    def record(self) -> dict[str, Any]:
        """Scalar figures for a calibration record's metadata."""
        c = self.candidates[-1] if self.candidates else Candidate(self.read_voltage, np.nan, np.nan)
        return {"chosen_read_voltage": float(self.read_voltage),
                "chosen_smu_nplc": float(self.nplc) if self.nplc is not None else float("nan"),
                "read_disturb_predicted": float(c.predicted), "read_disturb_measured": float(c.measured),
                "read_disturb_null_se": float(c.null_se), "read_candidates_tried": len(self.candidates),
                "read_choice": "; ".join(x.describe() for x in self.candidates)[:2000],
                "board_read_disturb_predicted": float(self.board_disturb_per_read)}

    def describe(self) -> str:
        plc = "SMU's own integration" if self.nplc is None else f"{self.nplc:g} PLC"
        return f"read conditions: {self.read_voltage:.3g} V, {plc} ({len(self.candidates)} tried)"


def predicted_step(char: Characterization, voltage: float, duration: float) -> float:
    """Fraction of its SET headroom a cell moves under ``voltage`` V held ``duration`` s (NaN: the kinetics
    did not measure an amplitude dependence)."""
    up = char.up
    if not (np.isfinite(up.v_scale_err) and np.isfinite(up.width_exp) and up.v_scale > 0):
        return float("nan")
    return float(min(np.exp(up.s + (abs(voltage) - char.v_ref) / up.v_scale) * (duration / char.width_ref)
                     ** up.width_exp, 1.0))


def _bracket(station: BenchStation, board: CrossbarArray, read: Any, rr: np.ndarray, cc: np.ndarray, smu: str,
             voltage: float, smu_reads: int, board_reads: int, wait_s: float = 0.0) -> tuple[np.ndarray, float]:
    """(relative signed move of each cell across ``smu_reads`` SMU reads, instrument time they took s);
    ``smu_reads`` 0: the null bracket, ``wait_s`` s passed by waiting instead."""
    before = np.mean([read(rr, cc) for _ in range(board_reads)], axis=0)
    t0 = instrument_time(station)
    for r, c in zip(rr.tolist(), cc.tolist(), strict=True):
        for _ in range(smu_reads):
            smu_cell_current(station, board, smu, r, c, voltage)
    if wait_s > 0:
        station.wait(wait_s)
    spent = instrument_time(station) - t0
    after = np.mean([read(rr, cc) for _ in range(board_reads)], axis=0)
    return (after - before) / np.maximum(np.abs(before), 1e-30), spent


def choose_read_conditions(
    station: BenchStation,
    board: CrossbarArray,
    char: Characterization,
    read: Any,
    *,
    smu: str,
    read_voltage: float,
    full_scale: float,
    smu_reads: int = 3,
    board_reads: int = 16,
    budget: float = 0.001,
    nplcs: tuple[float, ...] = NPLCS,
    voltage_fractions: tuple[float, ...] = VOLTAGE_FRACTIONS,
    resolution: float = 0.01,
    board_read_s: float = 15e-6,
) -> ReadChoice:
    """Choose the read voltage and SMU integration for the read-path calibration (module doc).

    ``read(rows, cols)``: board conductance reads (S) at the board's present configuration; ``smu``:
    the reference SMU's name; ``read_voltage`` (V): the station's, the highest tried; ``full_scale`` (A): the
    TIA range the board reads at (kept). Sample cells:
    the characterisation's. ``budget``: largest disturbance of one SMU reading, as a fraction of the
    headroom (predicted) or of the conductance (measured): a fifth of the drivers' agreement tolerance
    between two readings (0.5 %), so a reference measurement is confirmed by its first two readings
    and reports the cell as the board read it. ``board_read_s``: duration of one board read for the reported prediction.
    """
    rr, cc = char.sample_rows, char.sample_cols
    if rr.size == 0:
        raise ConfigError("read conditions: the characterisation has no sample cells")
    lo, hi = char.bounds.usable_range()
    window = hi - lo
    # bring the sample cells up the range (the bracket needs current to resolve a move): SETs at the
    # characterised threshold + 2 steps until each is above the middle of the window
    g = read(rr, cc)
    amp = min(char.up.v_on + 0.1, float(board_limit(board, "max_pulse_amplitude", 3.0)))
    for _ in range(20):
        low = np.flatnonzero(g < lo + 0.5 * window)
        if low.size == 0:
            break
        _pulse(board, rr[low], cc[low], np.full(low.size, amp), np.full(low.size, char.width_ref))
        g[low] = read(rr[low], cc[low])
    meter = station.smu(smu)
    # the board's current-noise floor (A): spread of zero-input conversions, per column, median
    zero = np.zeros(board.shape[0])
    conv = np.array([np.asarray(board.mvm_forward(zero), dtype=float) for _ in range(16)])
    sigma_i = float(np.median(np.std(conv, axis=0, ddof=1)))
    candidates: list[Candidate] = []
    chosen: tuple[float, float | None] | None = None
    refused: set[float] = set()
    integration_changed = False
    plan = [(f, n) for f in voltage_fractions for n in (None, *nplcs)]
    for frac, nplc in plan:
        if nplc in refused:
            continue
        v = frac * read_voltage
        cand = Candidate(v, nplc if nplc is not None else 1.0,
                         predicted_step(char, v, (nplc if nplc is not None else 1.0) * LINE_PERIOD_S))
        candidates.append(cand)
        floor = sigma_i / v
        if floor > resolution * window:
            cand.verdict = f"noise floor {floor:.2g} S above {resolution:.0%} of the window {window:.2g} S"
            continue
        if np.isfinite(cand.predicted) and cand.predicted > budget:
            cand.verdict = "predicted to disturb"
            continue
        try:  # a candidate at the SMU's own integration (1 PLC) restores it after a faster one was tried
            if nplc is not None or integration_changed:
                meter.set_nplc(1.0 if nplc is None else nplc)
                integration_changed = nplc is not None
        except InstrumentError as exc:
            cand.verdict = f"the SMU refuses it ({str(exc)[:60]})"
            refused.add(nplc)
            continue
        board.configure(v, full_scale)
        try:
            moved, spent = _bracket(station, board, read, rr, cc, smu, v, smu_reads, board_reads)
            null, _ = _bracket(station, board, read, rr, cc, smu, v, 0, board_reads, wait_s=spent)
        except ProtocolError as exc:  # readings of a cell the reads move disagree beyond its noise
            cand.verdict = f"SMU readings disagree ({str(exc)[:60]})"
            continue
        cand.null_se = float(np.std(null, ddof=1) / np.sqrt(null.size)) if null.size > 1 else 0.0
        cand.measured = float(np.mean(moved))
        if cand.measured > 3 * cand.null_se + budget * 2 * smu_reads:  # two readings a measurement at least
            cand.verdict = "measured to disturb"
            continue
        cand.verdict = "chosen"
        chosen = (v, nplc)
        break
    if chosen is None:
        raise ConfigError("read conditions: no read voltage and SMU integration both resolves the conductance "
                          "window and leaves the cells undisturbed (" + "; ".join(c.describe() for c in candidates)
                          + ")")
    return ReadChoice(chosen[0], chosen[1], candidates,
                      predicted_step(char, chosen[0], board_read_s))

