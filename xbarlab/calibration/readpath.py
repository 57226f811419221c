"""Read-path calibration: each column's TIA/ADC gain and offset against the SMU as reference.

The board reads a cell through its column TIA and ADC, whose gain (≈2 % spread) and
offset (a fraction of the TIA full scale) differ per column. Routing the station's SMU
to the same cell through the board's switch matrix measures the cell's true current at
the same read voltage; per column

    I_board = gain · I_smu + offset_frac · full_scale

with the offset taken from zero-input conversions (all inputs at 0 V) and the gain from a
least-squares fit over several reference cells of different conductance. The corrected
current is (I_board − offset_frac·FS) / gain. The offset scales with the TIA range, so it
is stored as a fraction of full scale and the correction follows the range in use.
:class:`CalibratedBoard` applies a record to every later board read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.calibration.writeverify import _pulse
from xbarlab.drivers.replies import confirming
from xbarlab.errors import ConfigError, InstrumentError
from xbarlab.experiments.support import instrument_time
from xbarlab.instruments.interfaces import (
    AdcSaturationError,
    BenchStation,
    CellReads,
    CrossbarArray,
    CurrentReads,
    require,
)
from xbarlab.instruments.safety import SafeSourceMeter

RECORD_KIND = "read_path"


@dataclass
class ReadCalibration:
    """Per-column read-path correction (dimensionless gain, offset in A per A of full scale)."""

    gain: np.ndarray
    offset_frac: np.ndarray
    read_voltage: float  # V the record was measured at
    residual_before: float = float("nan")  # rms relative read error of held-out cells, raw
    residual_after: float = float("nan")  # the same after correction
    chord_factor: float = 1.0  # I/(V·G) at the read voltage: cell non-linearity from SMU I–V sweeps
    reference: str = ""  # "<run_id>/<record_id>" once logged
    detail: dict[str, Any] = field(default_factory=dict)
    measured_at_s: float = float("nan")  # instrument time (s) when it was measured; NaN: unknown
    #: V, common offset of the input DACs, separated from the TIA offsets (0: none found, or not separable)
    dac_offset: float = 0.0

    def age(self, now_s: float) -> float:
        """Age (s) at instrument time ``now_s``; NaN when the measurement time is unknown (old records)."""
        return float(now_s - self.measured_at_s)

    def stale(self, now_s: float, max_age_s: float) -> bool:
        """True when older than ``max_age_s`` (s) at ``now_s``, or of unknown age: time to measure it again."""
        return not self.age(now_s) <= max_age_s

    def correct_currents(self, currents: np.ndarray, full_scale: float, cols: np.ndarray | None = None) -> np.ndarray:
        """True currents (A) from board currents (A) of columns ``cols`` (default: the last axis is every column)."""
        i = np.asarray(currents, dtype=float)
        if cols is None:
            return (i - self.offset_frac * full_scale) / self.gain
        c = np.asarray(cols, dtype=int)
        return (i - self.offset_frac[c] * full_scale) / self.gain[c]

    def to_record(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(data, meta) for ``recorder.add_calibration(record_id, RECORD_KIND, data, meta)``."""
        data = {"gain": np.asarray(self.gain, dtype=float), "offset_frac": np.asarray(self.offset_frac, dtype=float)}
        meta = {"read_voltage": float(self.read_voltage), "chord_factor": float(self.chord_factor),
                "residual_before": float(self.residual_before),
                "residual_after": float(self.residual_after), "measured_at_s": float(self.measured_at_s),
                **({"dac_offset_v": float(self.dac_offset)} if self.dac_offset else {}),
                **{k: v for k, v in self.detail.items()
                                                                  if isinstance(v, (int, float, str, bool))}}
        return data, meta

    @classmethod
    def from_record(
        cls, data: dict[str, Any], meta: dict[str, Any] | None = None, reference: str = ""
    ) -> ReadCalibration:
        """A calibration from a logged record (``LogReader.find_calibration("read_path")``)."""
        meta = dict(meta or {})
        try:
            gain = np.asarray(data["gain"], dtype=float)
            off = np.asarray(data["offset_frac"], dtype=float)
        except KeyError as exc:
            raise ConfigError(f"read-path calibration record lacks {exc.args[0]!r}") from None
        if gain.shape != off.shape or np.any(gain <= 0):
            raise ConfigError("read-path calibration record: gain must be > 0 and match offset_frac in shape")
        return cls(gain, off, float(meta.get("read_voltage", 0.2)), float(meta.get("residual_before", np.nan)),
                   float(meta.get("residual_after", np.nan)), float(meta.get("chord_factor", 1.0)), reference,
                   measured_at_s=float(meta.get("measured_at_s", np.nan)),
                   dac_offset=float(meta.get("dac_offset_v", 0.0)))


def _measuring_bench() -> bool:
    """False only while a log written before the reply-confirming drivers (format 1) is replayed: its
    read-path calibration neither checked the chord sweeps for disturbance nor adapted its reads to the
    read noise, and replay must send the traffic it recorded."""

    return confirming()


def _smu_name(station: BenchStation, smu: str | None) -> str:
    if smu:
        return smu
    for name in station.smus:
        if station.config.instruments[name].board_port is not None:
            return name
    raise ConfigError("read-path calibration needs an SMU cabled to a board port (board_port) as the reference")


def _board_currents(board: CrossbarArray, rows: np.ndarray, cols: np.ndarray,
                    read_v: float) -> tuple[np.ndarray, np.ndarray]:
    """(currents A, clipped mask) of the listed cells, one read each, never raising for clipping."""
    r = require(board, CellReads).read_cells_reading(rows, cols)
    return np.asarray(r.currents, dtype=float), np.asarray(r.saturated, dtype=bool)


def smu_cell_current(station: BenchStation, board: CrossbarArray, smu: str, row: int, col: int, voltage: float,
                     reads: int = 1) -> float:
    """Current (A) of one cell measured by ``smu`` routed to it through the board (output off afterwards)."""
    meter, port = station.smu(smu), station.board_port(smu)
    limit = float(meter.limits.max_current) if isinstance(meter, SafeSourceMeter) else 1e-3
    board.route_smu(port, int(row), int(col))
    try:
        meter.source_voltage(voltage, min(limit, 1e-3))
        meter.set_output(True)
        return float(np.mean([meter.measure_current() for _ in range(reads)]))
    finally:
        meter.set_output(False)
        board.unroute_smu(port)


def chord_factor(station: BenchStation, board: CrossbarArray, smu: str, cells: list[tuple[int, int]],
                 read_voltage: float, v_sweep: float = 0.4, points: int = 17, disturb: float = 0.01) -> float:
    """I/(V·G) at ``read_voltage``: SMU I–V sweeps (±``v_sweep`` V) of ``cells`` fitted by I/V = G·(1 + c·V²).

    Reads at a finite voltage see the chord conductance of a slightly non-linear cell; the
    small-signal G is what a linear (MVM) model needs, so reads are divided by this factor.
    A sweep that changed the cell (SMU reads at ``read_voltage`` before and after differ by more
    than ``disturb`` relative: a device that switches under the sweep's DC stress) is not used;
    when no sweep is usable the factor is 1.
    """
    meter, port = station.smu(smu), station.board_port(smu)
    check = _measuring_bench()
    cs = []
    for r, c in cells:
        before = smu_cell_current(station, board, smu, r, c, read_voltage) if check else 0.0
        board.route_smu(port, int(r), int(c))
        try:
            sw = meter.sweep_voltage(-v_sweep, v_sweep, points, 1e-3)
        finally:
            meter.set_output(False)
            board.unroute_smu(port)
        if check:
            after = smu_cell_current(station, board, smu, r, c, read_voltage)
            if not abs(after - before) <= disturb * abs(before):
                continue
        v, i = np.asarray(sw.voltage, dtype=float), np.asarray(sw.current, dtype=float)
        use = np.abs(v) > 0.2 * v_sweep
        slope, intercept = np.polyfit(v[use] ** 2, i[use] / v[use], 1)
        if intercept > 0:
            cs.append(slope / intercept)
    return float(1 + np.median(cs) * read_voltage**2) if cs else 1.0


def calibrate_read_path(
    station: BenchStation,
    board: CrossbarArray | None = None,
    *,
    full_scale: float,
    cells_per_column: int = 3,
    reads: int = 8,
    smu: str | None = None,
    seed: int = 0,
    checkpoint: Any = None,
    set_amplitudes: tuple[float, ...] = (1.2, 1.5, 1.8, 2.2),
    set_width: float = 1e-6,
    target_noise: float = 0.002,
    max_reads: int = 512,
    separate_dac_offset: bool = True,
    read_voltage: float | None = None,
) -> ReadCalibration:
    """Measure every column's read gain and offset against the SMU at TIA range ``full_scale`` (A).

    Per column, ``cells_per_column`` reference cells spread over the conductances present
    (chosen from one board read, unclipped) are read ``reads`` times by the board and once
    by the SMU (more board reads, up to ``max_reads``, when the cells' read noise needs them for a
    relative 1σ of ``target_noise``); one more cell per column is held out to report the residual read error
    (rms of board/SMU − 1) before and after correction. Leaves the TIA at ``full_scale``.
    Columns with too few conducting cells (an unprogrammed array) first get graded SET pulses
    (``set_amplitudes`` V, ``set_width`` s) on their first rows; an empty tuple disables this.
    The chord factor (cell non-linearity at the read voltage) comes from SMU I–V sweeps of
    the three most conductive reference cells. ``read_voltage`` (V): default the station's.

    DAC offset (``separate_dac_offset``): an offset δ of the input DACs drives δ through every "0 V"
    row, so the zero-input conversions hold g·δ·S_c (S_c: the column's conductance sum) besides the
    TIA offset, while a single-cell read does not (the other rows carry no current). Per column the
    fit of board against SMU currents then has an intercept −g·δ·S_c; δ is the median over the
    columns of −intercept/(slope·S_c), with S_c from the board read of all cells. When it is
    significant (≥ 5 standard errors of the median, ≥ 8 columns) the array current is taken out of the offsets,
    the gains refitted and δ recorded (``dac_offset``; :class:`CalibratedBoard` trims MVM inputs by it).
    Otherwise nothing changes: a bench without a DAC offset gets the same numbers as before.
    """
    board = board if board is not None else station.require_board()
    read_v = float(station.config.read_voltage if read_voltage is None else read_voltage)
    name = _smu_name(station, smu)
    if cells_per_column < 1 or reads < 1:
        raise ConfigError("cells_per_column and reads must be >= 1")
    board.configure(read_v, full_scale)
    n_rows, n_cols = board.shape
    if cells_per_column + 1 > n_rows:
        raise ConfigError(f"{cells_per_column} reference cells + 1 held out per column need more than {n_rows} rows")
    # zero-input offsets (A at this range), averaged
    zero = np.zeros(n_rows)
    offs = [np.asarray(board.mvm_forward_reading(zero).currents, dtype=float) if isinstance(board, CurrentReads)
            else np.asarray(board.mvm_forward(zero), dtype=float) for _ in range(16)]
    offset_a = np.mean(offs, axis=0)
    # choose reference cells from one read: spread over the unclipped conductances of each column
    rr = np.repeat(np.arange(n_rows), n_cols)
    cc = np.tile(np.arange(n_cols), n_rows)
    cur, sat = _board_currents(board, rr, cc, read_v)
    cur = cur.reshape(n_rows, n_cols)
    # clearly above the offset; capped at 0.05 FS: a DAC offset's array current in the zero-input offsets (several
    # per cent of full scale) must not hide every cell (a TIA offset alone is ~1e-4 FS, far below the cap)
    floor = 20 * np.minimum(np.abs(offset_a), 0.002 * full_scale)[None, :] + 0.01 * full_scale
    ok = ~sat.reshape(n_rows, n_cols) & (cur > floor)
    need = cells_per_column + 1
    short = np.flatnonzero(ok.sum(axis=0) < need)
    cells_set = 0
    if short.size and set_amplitudes:
        # an unprogrammed array (e.g. fresh PCM) has no conducting cells: SET graded reference cells

        amps = np.resize(np.asarray(set_amplitudes, dtype=float), need)
        pr = np.concatenate([np.arange(need) for _ in short])
        pc = np.repeat(short, need)
        _pulse(board, pr, pc, np.tile(amps, short.size), np.full(pr.size, set_width))
        cells_set = int(pr.size)
        cur2, sat2 = _board_currents(board, rr, cc, read_v)
        cur = cur2.reshape(n_rows, n_cols)
        ok = ~sat2.reshape(n_rows, n_cols) & (cur > floor)
    rng = np.random.default_rng(seed)
    refs: list[tuple[int, int, bool]] = []  # (row, col, held out)
    for c in range(n_cols):
        cand = np.flatnonzero(ok[:, c])
        if cand.size < 2:
            continue
        order = cand[np.argsort(cur[cand, c])]
        pick = np.unique(np.rint(np.linspace(order.size - 1, order.size // 3, min(cells_per_column, order.size - 1)))
                         .astype(int))
        chosen = list(order[pick])
        rest = [r for r in cand if r not in chosen]
        held = int(rng.choice(rest)) if rest else None
        refs += [(int(r), c, False) for r in chosen]
        if held is not None:
            refs.append((held, c, True))
    if not refs:
        raise ConfigError("read-path calibration: no cell conducts enough to serve as a reference; "
                          "program some cells or lower full_scale")
    r_ref = np.array([r for r, _, _ in refs])
    c_ref = np.array([c for _, c, _ in refs])
    held = np.array([h for _, _, h in refs])
    b_cur, b_sat = _board_currents(board, np.tile(r_ref, reads), np.tile(c_ref, reads), read_v)
    b_all, valid = b_cur.reshape(reads, -1), ~b_sat.reshape(reads, -1).any(axis=0)
    if reads >= 4 and max_reads > reads and _measuring_bench():
        # noisy devices (PCM): average as many board reads as the reference cells' read noise needs for
        # a mean within ``target_noise`` (relative 1σ), up to ``max_reads``
        m = np.abs(b_all.mean(axis=0))
        rel = float(np.median(b_all.std(axis=0, ddof=1)[m > 0] / m[m > 0])) if (m > 0).any() else 0.0
        need = int(min(np.ceil((rel / target_noise) ** 2), max_reads))
        if need > reads:
            more, sat_more = _board_currents(board, np.tile(r_ref, need - reads), np.tile(c_ref, need - reads),
                                             read_v)
            b_all = np.vstack([b_all, more.reshape(need - reads, -1)])
            valid &= ~sat_more.reshape(need - reads, -1).any(axis=0)
            reads = need
    b_cur = b_all.mean(axis=0)
    s_cur = np.empty(len(refs))
    for k, (r, c, _) in enumerate(refs):
        if checkpoint is not None and k % 16 == 0:
            checkpoint()
        s_cur[k] = smu_cell_current(station, board, name, r, c, read_v)
    board.configure(read_v, full_scale)
    gain = np.ones(n_cols)
    fitted = np.zeros(n_cols, dtype=bool)
    for c in range(n_cols):
        use = (c_ref == c) & ~held & valid & (s_cur > 0)
        if not use.any():
            continue
        x, y = s_cur[use], b_cur[use] - offset_a[c]
        gain[c] = float(np.dot(x, y) / np.dot(x, x))
        fitted[c] = True
    dac_offset = 0.0
    if separate_dac_offset:
        usable = ~held & valid & (s_cur > 0)
        zero_input = offset_a
        for _ in range(3):  # the column sums and gains improve as the offsets do: a few refinements
            found = _separate_dac_offset(c_ref, usable, s_cur, b_cur, offset_a, gain,
                                         _column_sums(cur, offset_a, gain, read_v), read_v)
            if found is None:
                break
            # the zero-input conversions held the DAC offset's array current: take it out, refit the gains
            dac_offset += found[0]
            offset_a = offset_a - found[1]
            for c in np.flatnonzero(fitted):
                use = (c_ref == c) & usable
                x, y = s_cur[use], b_cur[use] - offset_a[c]
                gain[c] = float(np.dot(x, y) / np.dot(x, x))
        if dac_offset:  # δ from the array current taken out, over the final column sums
            sums = _column_sums(cur, offset_a, gain, read_v)
            good = sums > 0
            dac_offset = float(np.median((zero_input - offset_a)[good] / (gain[good] * sums[good])))
    top = np.argsort(-s_cur)[: min(3, len(refs))]
    chord = chord_factor(station, board, name, [(int(r_ref[k]), int(c_ref[k])) for k in top], read_v)
    board.configure(read_v, full_scale)

    cal = ReadCalibration(gain, offset_a / full_scale, read_v, chord_factor=chord,
                          measured_at_s=instrument_time(station), dac_offset=dac_offset)
    test = held & valid & (s_cur > 0)
    if test.any():
        raw = b_cur[test] / s_cur[test] - 1
        fixed = cal.correct_currents(b_cur[test], full_scale, c_ref[test]) / s_cur[test] - 1
        cal.residual_before = float(np.sqrt(np.mean(raw**2)))
        cal.residual_after = float(np.sqrt(np.mean(fixed**2)))
    cal.detail = {"full_scale": float(full_scale), "reference_cells": int((~held).sum()),
                  "held_out_cells": int(held.sum()), "columns_fitted": int(fitted.sum()), "smu": name,
                  "reference_cells_set": cells_set,
                  "reads": int(reads)}
    return cal


def _column_sums(cur: np.ndarray, offset_a: np.ndarray, gain: np.ndarray, read_v: float) -> np.ndarray:
    """Each column's conductance sum S_c (S) from one board read of every cell (rows × cols currents, A)."""
    return np.clip(cur - offset_a[None, :], 0.0, None).sum(axis=0) / (gain * abs(read_v))


def _separate_dac_offset(c_ref: np.ndarray, usable: np.ndarray, s_cur: np.ndarray, b_cur: np.ndarray,
                         offset_a: np.ndarray, gain: np.ndarray, col_sums: np.ndarray,
                         read_v: float) -> tuple[float, np.ndarray] | None:
    """(DAC offset δ in V, its array current g·δ·S_c per column in A), or None when not significant."""
    per_col = []
    for c in np.unique(c_ref[usable]):
        use = usable & (c_ref == c)
        x, y = s_cur[use], b_cur[use] - offset_a[c]
        if x.size < 2 or np.ptp(x) <= 0.2 * np.max(x) or col_sums[c] <= 0:
            continue
        slope, intercept = np.polyfit(x, y, 1)
        if slope > 0:
            per_col.append(-intercept / (slope * col_sums[c]))
    if len(per_col) < 8:  # too few columns for a robust spread: nothing is separated
        return None
    d = np.asarray(per_col)
    delta = float(np.median(d))
    se = 1.2533 * 1.4826 * float(np.median(np.abs(d - delta))) / np.sqrt(d.size)  # standard error of a median
    if not abs(delta) > 5 * se or not abs(delta) < 0.05 * abs(read_v):  # not found, or not an offset
        return None
    return delta, gain * delta * col_sums


class CalibratedBoard:
    """A board whose column reads (READ_CELL(S), READ_ALL, forward MVM) are corrected by a :class:`ReadCalibration`.

    Conductance reads (S) are also divided by the chord factor (small-signal conductance);
    MVM currents (A) are corrected for gain and offset only.

    Tracks the TIA full scale through :meth:`configure`; everything else passes through.
    ``read_voltage``/``full_scale``: the board's configuration when wrapped (V, A).

    It has exactly the optional capabilities of the board it wraps: ``CalibratedBoard(board, …)`` is an
    instance of a subclass with the corrected list reads (:class:`CellReads`) only when ``board`` has them,
    so ``require(calibrated, CellReads)`` answers before anything is read, as it would for ``board``.
    """

    def __new__(cls, board: CrossbarArray, *args: Any, **kwargs: Any) -> CalibratedBoard:
        if cls is CalibratedBoard and isinstance(board, CellReads):
            cls = _CalibratedCellReads
        return object.__new__(cls)

    def __init__(self, board: CrossbarArray, calibration: ReadCalibration, read_voltage: float,
                 full_scale: float) -> None:
        if calibration.gain.shape != (board.shape[1],):
            raise ConfigError(f"read-path calibration covers {calibration.gain.size} columns; "
                              f"the board has {board.shape[1]}")
        self.inner = board
        self.calibration = calibration
        self.read_voltage = float(read_voltage)
        self.full_scale = float(full_scale)

    @property
    def shape(self) -> tuple[int, int]:
        return self.inner.shape

    def configure(self, read_voltage: float, tia_range: float) -> None:
        self.inner.configure(read_voltage, tia_range)
        self.read_voltage, self.full_scale = float(read_voltage), float(tia_range)

    def _fix_exc(self, exc: InstrumentError, cols: np.ndarray | None) -> InstrumentError:
        if isinstance(exc, AdcSaturationError):
            exc.currents = self.calibration.correct_currents(np.asarray(exc.currents, dtype=float), self.full_scale,
                                                             cols)
        return exc

    def _conductances(self, read: Any, cols: np.ndarray | None) -> np.ndarray:
        """Corrected conductances (S) of ``read()`` (S) for columns ``cols`` (None: rows of every column)."""
        try:
            g = np.asarray(read(), dtype=float)
        except InstrumentError as exc:
            raise self._fix_exc(exc, cols) from None
        g = self.calibration.correct_currents(g * self.read_voltage, self.full_scale, cols) / self.read_voltage
        return g / self.calibration.chord_factor

    def read_cell(self, row: int, col: int) -> float:
        return float(self._conductances(lambda: [self.inner.read_cell(row, col)], np.array([col]))[0])

    def read_all(self) -> np.ndarray:
        return self._conductances(self.inner.read_all, None)

    def read_rows(self, first: int, count: int) -> np.ndarray:
        return self._conductances(lambda: self.inner.read_rows(first, count), None)

    def mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        """Corrected column currents (A); with a DAC offset δ the inputs are trimmed by −δ (never beyond the
        largest commanded magnitude or |δ|) and the gain, fitted on cell reads at V_read + δ, rescaled."""
        delta = self.calibration.dac_offset
        v = row_voltages
        if delta:
            v = np.asarray(row_voltages, dtype=float)
            m = max(float(np.max(np.abs(v), initial=0.0)), abs(delta))  # a "0 V" row is commanded to −δ
            v = np.clip(v - delta, -m, m)
        try:
            i = np.asarray(self.inner.mvm_forward(v), dtype=float)
        except InstrumentError as exc:
            raise self._fix_exc(exc, None) from None
        out = self.calibration.correct_currents(i, self.full_scale)
        return out * (1 + delta / self.calibration.read_voltage) if delta else out

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)


class _CalibratedCellReads(CalibratedBoard):
    """A :class:`CalibratedBoard` over a board with :class:`CellReads`: list reads corrected too (and a single
    cell read through READ_CELLS)."""

    inner: CellReads

    def read_cells_reading(self, rows: Any, cols: Any) -> Any:
        r = self.inner.read_cells_reading(rows, cols)
        r.currents[...] = self.calibration.correct_currents(r.currents, self.full_scale, np.asarray(cols, dtype=int))
        return r

    def read_cells(self, rows: Any, cols: Any) -> np.ndarray:
        return self._conductances(lambda: self.inner.read_cells(rows, cols), np.asarray(cols, dtype=int))

    def read_cell(self, row: int, col: int) -> float:
        return float(self.read_cells([row], [col])[0])
