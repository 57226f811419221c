"""Signed matrices on a crossbar region: layout, input encoding and output scaling of analog MVMs.

A signed matrix W (n_out × n_in, y = W·x) lives on a rectangular block of the array with its
inputs on rows and its outputs on columns, so a forward MVM (rows driven, columns read)
computes W·x and a transpose MVM (columns driven, rows read) computes Wᵀ·u:

* ``differential`` layout: two columns per output, W ∝ G⁺ − G⁻ (columns 2j, 2j+1). The
  transpose drives column 2j at +u and 2j+1 at −u, so both directions need no digital help.
* ``offset`` layout: one column per output, W ∝ G − g_ref with a fixed reference conductance
  g_ref; the forward output subtracts g_ref·Σv digitally (one multiply-add per output). Half
  the signal range of the differential layout, but half the columns.

Inputs are normalised per call (the largest |x| uses the full input range ``v_in``; "noise
management" as in aihwkit) and encoded as voltage amplitudes, as bit planes (bit-serial:
one MVM per bit at ±v_in, weighted 2⁻ᵏ digitally) or as pulse widths (thermometer-coded time
slots of one unit duration each, integrated digitally: the v1 board has no integrate mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from xbarlab.errors import AdcSaturated, ConfigError
from xbarlab.instruments.interfaces import CrossbarArray, board_limit
from xbarlab.readings import ADC_SATURATED

Layout = Literal["differential", "offset"]
Encoding = Literal["amplitude", "bit_serial", "pulse_width"]
LAYOUTS: tuple[str, ...] = ("differential", "offset")
ENCODINGS: tuple[str, ...] = ("amplitude", "bit_serial", "pulse_width")


@dataclass(frozen=True)
class Region:
    """A rectangular block of the physical array: first row/column and size."""

    row0: int
    col0: int
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if min(self.row0, self.col0) < 0 or min(self.rows, self.cols) < 1:
            raise ConfigError(f"region {self}: origin must be >= 0 and size >= 1")

    @property
    def row_slice(self) -> slice:
        return slice(self.row0, self.row0 + self.rows)

    @property
    def col_slice(self) -> slice:
        return slice(self.col0, self.col0 + self.cols)

    def check_within(self, shape: tuple[int, int], what: str = "region") -> None:
        """Raise ConfigError if the block does not fit an array of ``shape`` (rows, cols)."""
        if self.row0 + self.rows > shape[0] or self.col0 + self.cols > shape[1]:
            raise ConfigError(
                f"{what}: rows {self.row0}..{self.row0 + self.rows - 1}, columns {self.col0}.."
                f"{self.col0 + self.cols - 1} do not fit the {shape[0]}x{shape[1]} array"
            )

    def overlaps(self, other: Region) -> bool:
        return not (
            self.row0 + self.rows <= other.row0
            or other.row0 + other.rows <= self.row0
            or self.col0 + self.cols <= other.col0
            or other.col0 + other.cols <= self.col0
        )


@dataclass(frozen=True)
class WeightMapping:
    """Signed weights ↔ conductances (S) for one layout.

    ``w_max`` is the weight magnitude that maps onto the full conductance window
    [g_min, g_max] (differential: one device at g_max, its partner at g_min).
    """

    g_min: float  # S
    g_max: float  # S
    w_max: float = 1.0
    layout: Layout = "differential"

    def __post_init__(self) -> None:
        if not (0 <= self.g_min < self.g_max and math.isfinite(self.g_max)):
            raise ConfigError(f"conductance window must satisfy 0 <= g_min < g_max, got [{self.g_min}, {self.g_max}] S")
        if not self.w_max > 0:
            raise ConfigError(f"w_max must be > 0, got {self.w_max}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout {self.layout!r}: expected one of {', '.join(LAYOUTS)}")

    @property
    def g_ref(self) -> float:
        """Reference conductance of the offset layout (mid-window), S."""
        return 0.5 * (self.g_min + self.g_max)

    @property
    def unit(self) -> float:
        """Conductance difference per unit weight (S)."""
        span = self.g_max - self.g_min
        return span / self.w_max if self.layout == "differential" else 0.5 * span / self.w_max

    def columns(self, n_out: int) -> int:
        """Array columns needed for ``n_out`` outputs."""
        return 2 * n_out if self.layout == "differential" else n_out

    def to_conductance(self, weights: np.ndarray, *, centered: bool = False) -> np.ndarray:
        """Target conductances (n_in × columns, S) for W (n_out × n_in); clips |w| at w_max.

        Differential pairs are one-sided by default (the device of the other sign at g_min:
        least current, least IR drop); ``centered`` places both around the mid-window instead
        (push-pull training needs headroom in both devices).
        """
        w = np.clip(np.asarray(weights, dtype=float), -self.w_max, self.w_max).T  # n_in × n_out
        if self.layout == "offset":
            return self.g_ref + w * self.unit
        g = np.empty((w.shape[0], 2 * w.shape[1]))
        if centered:
            g[:, 0::2] = self.g_ref + 0.5 * w * self.unit
            g[:, 1::2] = self.g_ref - 0.5 * w * self.unit
        else:
            g[:, 0::2] = self.g_min + np.maximum(w, 0.0) * self.unit
            g[:, 1::2] = self.g_min + np.maximum(-w, 0.0) * self.unit
        return g

    def to_weights(self, conductances: np.ndarray) -> np.ndarray:
        """W (n_out × n_in) represented by conductances (n_in × columns, S)."""
        g = np.asarray(conductances, dtype=float)
        if self.layout == "offset":
            return ((g - self.g_ref) / self.unit).T
        return ((g[:, 0::2] - g[:, 1::2]) / self.unit).T


def choose_mapping(
    n_out: int, n_in: int, region_cols: int, g_min: float, g_max: float, w_max: float, layout: str = "auto"
) -> WeightMapping:
    """The requested layout, or for ``auto`` differential if the columns fit, else offset."""
    if layout == "auto":
        layout = "differential" if 2 * n_out <= region_cols else "offset"
    mapping = WeightMapping(g_min, g_max, w_max, layout)  # type: ignore[arg-type]
    if mapping.columns(n_out) > region_cols:
        raise ConfigError(
            f"{n_out} outputs need {mapping.columns(n_out)} columns in the {layout} layout; "
            f"only {region_cols} are available"
        )
    return mapping


def fit_problems(shape: tuple[int, int] | None, n_out: int, n_in: int, row0: int, col0: int, layout: str,
                 where: str) -> list[str]:
    """Why an n_out x n_in matrix at (row0, col0) in ``layout`` does not fit an array of ``shape`` ([] if it fits
    or the shape is not known before connecting)."""
    if shape is None:
        return []
    try:
        mapping = choose_mapping(n_out, n_in, shape[1] - col0, 1.0, 2.0, 1.0, layout)
        Region(row0, col0, n_in, mapping.columns(n_out)).check_within(shape, "matrix region")
    except ConfigError as exc:
        return [f"{where}: {exc}"]
    return []


@dataclass(frozen=True)
class InputEncoding:
    """How a normalised input vector in [−1, 1] becomes voltages.

    ``bits``: resolution of bit-serial and pulse-width codes (sign + ``bits`` magnitude
    bits); ``v_in``: full-scale input amplitude (V).
    """

    kind: Encoding = "amplitude"
    v_in: float = 0.2  # V
    bits: int = 6

    def __post_init__(self) -> None:
        if self.kind not in ENCODINGS:
            raise ConfigError(f"input encoding {self.kind!r}: expected one of {', '.join(ENCODINGS)}")
        if not self.v_in > 0:
            raise ConfigError(f"input amplitude v_in must be > 0 V, got {self.v_in}")
        if not 1 <= self.bits <= 16:
            raise ConfigError(f"input bits must be within 1..16, got {self.bits}")
        if self.kind == "pulse_width" and self.bits > 8:
            raise ConfigError(f"pulse-width encoding with {self.bits} bits needs {2**self.bits - 1} slots; use <= 8")

    def planes(self, u: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """(digital weight, voltage vector V) pairs whose weighted sum encodes u·v_in; u in [−1, 1]."""
        u = np.clip(np.asarray(u, dtype=float), -1.0, 1.0)
        if self.kind == "amplitude":
            return [(1.0, u * self.v_in)]
        levels = (1 << self.bits) - 1
        q = np.rint(np.abs(u) * levels).astype(np.int64)
        sign = np.sign(u)
        out: list[tuple[float, np.ndarray]] = []
        if self.kind == "bit_serial":
            for k in range(self.bits - 1, -1, -1):  # most significant plane first
                bit = (q >> k) & 1
                if bit.any():
                    out.append(((1 << k) / levels, sign * bit * self.v_in))
            return out
        for t in range(int(q.max(initial=0))):  # pulse width: slot t is on where the code exceeds t
            on = q > t
            out.append((1.0 / levels, sign * on * self.v_in))
        return out


MvmFunction = Callable[[np.ndarray], np.ndarray]


class ArrayMatrix:
    """A signed matrix programmed on a region of a crossbar, used as a linear operator.

    ``board`` is a :class:`~xbarlab.instruments.interfaces.CrossbarArray`; MVM vectors span the
    board's active region (zeros outside the block). ``matvec(x)`` ≈ W·x, ``rmatvec(u)`` ≈ Wᵀ·u
    in the units of W. Output offsets (per line, A) measured with zero input are subtracted;
    optional per-line gains (from a read calibration) divide the currents. Inputs are
    normalised per call (largest |x| → ``v_in``) unless ``full_scale`` is given: then x = ±full_scale
    maps to ±v_in and small inputs use small voltages (to study error vs. input magnitude).
    ``correction`` (n_out × n_in, units of W, mostly zero) is added digitally to every product:
    the known error of defective devices (``programming.defect_correction``).
    """

    def __init__(
        self,
        board: CrossbarArray,
        region: Region,
        mapping: WeightMapping,
        n_out: int,
        n_in: int,
        *,
        encoding: InputEncoding | None = None,
        repeats: int = 1,
        col_gain: np.ndarray | None = None,
        row_gain: np.ndarray | None = None,
        full_scale: float | None = None,
        correction: np.ndarray | None = None,
    ) -> None:
        self.board = board
        if full_scale is not None and not full_scale > 0:
            raise ConfigError(f"input full scale must be > 0, got {full_scale}")
        self.full_scale = full_scale
        self.region = region
        self.mapping = mapping
        self.n_out, self.n_in = int(n_out), int(n_in)
        self.encoding = encoding or InputEncoding()
        if repeats < 1:
            raise ConfigError(f"repeats must be >= 1, got {repeats}")
        self.repeats = int(repeats)
        self.active = tuple(board.shape)
        region.check_within(self.active, "matrix region")
        if region.rows < self.n_in or region.cols < mapping.columns(self.n_out):
            raise ConfigError(
                f"a {self.n_out}x{self.n_in} matrix in the {mapping.layout} layout needs a region of "
                f"{self.n_in} rows x {mapping.columns(self.n_out)} columns; got {region.rows}x{region.cols}"
            )
        self.rows = np.arange(region.row0, region.row0 + self.n_in)
        self.cols = np.arange(region.col0, region.col0 + mapping.columns(self.n_out))
        self.col_offset = np.zeros(self.active[1])  # A
        self.row_offset = np.zeros(self.active[0])  # A
        self.col_gain = np.ones(self.active[1]) if col_gain is None else np.asarray(col_gain, dtype=float)
        self.row_gain = np.ones(self.active[0]) if row_gain is None else np.asarray(row_gain, dtype=float)
        self.col_drive = np.ones(self.active[1])  # transpose input scale per column (calibrate_transpose)
        self.correction: np.ndarray | None = None
        if correction is not None:
            self.set_correction(correction)
        self.mvms = 0  # physical MVM commands issued
        self.saturations = 0  # MVMs repeated at a lower input scale after ADC clipping
        self.scale = 1.0  # fraction of v_in currently used (lowered after ADC saturation)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_out, self.n_in)

    def set_correction(self, correction: np.ndarray | None) -> int:
        """Digital correction of defective weights (n_out × n_in); returns how many entries are non-zero."""
        if correction is None:
            self.correction = None
            return 0
        c = np.asarray(correction, dtype=float)
        if c.shape != (self.n_out, self.n_in):
            raise ConfigError(f"correction has shape {c.shape}, expected ({self.n_out}, {self.n_in})")
        nz = int(np.count_nonzero(c))
        self.correction = c if nz else None
        return nz

    # -- calibration ------------------------------------------------------------------------------
    def measure_offsets(self, samples: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Output offsets (A) of every column and row with all inputs at 0 V, averaged."""
        zr, zc = np.zeros(self.active[0]), np.zeros(self.active[1])
        self.col_offset = np.mean([self._raw(self.board.mvm_forward, zr) for _ in range(samples)], axis=0)
        self.row_offset = np.mean([self._raw(self.board.mvm_transpose, zc) for _ in range(samples)], axis=0)
        return self.col_offset.copy(), self.row_offset.copy()

    def calibrate_transpose(self, g_block: np.ndarray, *, min_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
        """Make transpose MVMs consistent with the forward direction (and with reads).

        Forward MVMs and cell reads share the column TIAs, so a matrix programmed by
        write-verify is right as the forward direction sees it; transpose MVMs are read by the
        row TIAs, whose gains differ (Periphery gain error, ~2 %). With ``g_block`` the block's
        read conductances (S, n_in × columns), one-hot transpose MVMs give r_ik = I_i/(v·g_ik)
        = g_row,i / g_col,k; a rank-one fit of log r (cells above ``min_fraction`` of the largest
        conductance) yields both gain sets up to a common factor, which cancels. Transpose inputs
        are then scaled by the column gains and outputs divided by the row gains. Measure the
        offsets first. Returns (row gains, column gains), relative.
        """
        g = np.asarray(g_block, dtype=float)
        if g.shape != (len(self.rows), len(self.cols)):
            raise ConfigError(f"g_block has shape {g.shape}, expected ({len(self.rows)}, {len(self.cols)})")
        v = self.encoding.v_in
        ratio = np.empty_like(g)
        for k, c in enumerate(self.cols):
            drive = np.zeros(self.active[1])
            drive[c] = v
            i = self._measure(self.board.mvm_transpose, drive, self.rows) - self.row_offset
            ratio[:, k] = i[self.rows] / (v * np.where(g[:, k] > 0, g[:, k], np.inf))
        use = (g > min_fraction * float(np.max(g))) & (ratio > 0)
        if use.sum() < 2:
            return np.ones(len(self.rows)), np.ones(len(self.cols))
        log_r = np.where(use, np.log(np.where(use, ratio, 1.0)), 0.0)
        a = np.zeros(len(self.rows))  # log row gain
        b = np.zeros(len(self.cols))  # log column gain
        n_r, n_c = np.maximum(use.sum(axis=1), 1), np.maximum(use.sum(axis=0), 1)
        for _ in range(50):  # alternating least squares of log r = a_i − b_k on the used cells
            a = ((log_r + b[None, :]) * use).sum(axis=1) / n_r
            b = ((a[:, None] - log_r) * use).sum(axis=0) / n_c
        row_rel, col_rel = np.exp(a), np.exp(b)
        self.row_gain = np.ones(self.active[0])
        self.row_gain[self.rows] = row_rel
        self.col_drive = np.ones(self.active[1])
        self.col_drive[self.cols] = col_rel
        return row_rel, col_rel

    # -- products -----------------------------------------------------------------------------------
    def _peak(self, x: np.ndarray, what: str) -> float:
        """The input value that maps onto v_in: max|x| (normalised) or the fixed full scale."""
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if not math.isfinite(peak):
            raise ConfigError(f"{what} input contains non-finite values")
        if self.full_scale is None or peak == 0.0:
            return peak
        if peak > self.full_scale * (1 + 1e-12):
            raise ConfigError(f"{what} input {peak:g} exceeds the full scale {self.full_scale:g}")
        return self.full_scale

    def _raw(self, fn: MvmFunction, v: np.ndarray) -> np.ndarray:
        self.mvms += 1
        return np.asarray(fn(v), dtype=float)

    def _measure(self, fn: MvmFunction, v: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """One MVM. A clipped ADC sample on a line we read (``lines``) means: retry at half the
        input scale (up to 6 times); clipping on other lines of the active region is ignored."""
        for _ in range(7):
            try:
                return self._raw(fn, v * self.scale) / self.scale
            except AdcSaturated as exc:
                mask, currents = exc.saturated, exc.currents
                if mask is not None and currents is not None and not np.any(np.asarray(mask)[lines]):
                    return np.asarray(currents, dtype=float) / self.scale
                self.saturations += 1
                self.scale *= 0.5
        raise AdcSaturated(self.board.name, ADC_SATURATED,
                           "MVM output clipped even at 1/64 of the input range; raise the TIA range")

    def peak_currents(self, probes: int = 6, seed: int = 0) -> float:
        """Largest |current| (A) on the lines this matrix reads, for random full-scale inputs in
        both directions (used to choose the TIA range). Saturated probes count as the full scale."""
        rng = np.random.default_rng(seed)
        peak = 0.0
        for _ in range(probes):
            for fn, n_in, place_lines, read_lines in (
                (self.board.mvm_forward, self.active[0], self.rows, self.cols),
                (self.board.mvm_transpose, self.active[1], self.cols, self.rows),
            ):
                v = np.zeros(n_in)
                v[place_lines] = rng.choice([-1.0, 1.0], size=len(place_lines)) * self.encoding.v_in
                try:
                    i = self._raw(fn, v)
                except AdcSaturated as exc:
                    if exc.currents is None:
                        raise
                    i = np.asarray(exc.currents, dtype=float)
                peak = max(peak, float(np.max(np.abs(i[read_lines]))))
        return peak

    def _encoded(
        self, fn: MvmFunction, u: np.ndarray, place: Callable[[np.ndarray], np.ndarray], lines: np.ndarray
    ) -> np.ndarray:
        total = None
        for weight, volts in self.encoding.planes(u):
            acc = sum(self._measure(fn, place(volts), lines) for _ in range(self.repeats)) / self.repeats
            total = weight * acc if total is None else total + weight * acc
        return total if total is not None else np.zeros(0)

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """y ≈ W·x (forward MVM: inputs on rows, outputs on columns)."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.n_in,):
            raise ConfigError(f"matvec input has shape {x.shape}, expected ({self.n_in},)")
        peak = self._peak(x, "matvec")
        if peak == 0.0:
            return np.zeros(self.n_out)
        u = x / peak

        def place(volts: np.ndarray) -> np.ndarray:
            v = np.zeros(self.active[0])
            v[self.rows] = volts
            return v

        planes = self.encoding.planes(u)
        currents = self._encoded(self.board.mvm_forward, u, place, self.cols)
        if currents.size == 0:
            return np.zeros(self.n_out)
        total_weight = sum(w for w, _ in planes)
        currents = (currents - self.col_offset * total_weight) / self.col_gain
        i = currents[self.cols]
        v_eff = self.encoding.v_in
        if self.mapping.layout == "differential":
            signal = i[0::2] - i[1::2]
        else:
            applied = sum(w * volts for w, volts in planes)  # V, what the DAC was asked for
            signal = i - self.mapping.g_ref * float(np.sum(applied))
        y = signal / (self.mapping.unit * v_eff) * peak
        return y + self.correction @ x if self.correction is not None else y

    def rmatvec(self, u: np.ndarray) -> np.ndarray:
        """x' ≈ Wᵀ·u (transpose MVM: inputs on columns, outputs on rows)."""
        u = np.asarray(u, dtype=float)
        if u.shape != (self.n_out,):
            raise ConfigError(f"rmatvec input has shape {u.shape}, expected ({self.n_out},)")
        peak = self._peak(u, "rmatvec")
        if peak == 0.0:
            return np.zeros(self.n_in)
        un = u / peak

        drive = self.col_drive[self.cols]
        top = float(np.max(drive))

        def place(volts: np.ndarray) -> np.ndarray:
            v = np.zeros(self.active[1])
            if self.mapping.layout == "differential":
                v[self.cols[0::2]] = volts
                v[self.cols[1::2]] = -volts
            else:
                v[self.cols] = volts
            v[self.cols] *= drive / top  # column-gain equalisation (calibrate_transpose), never above v_in
            return v

        planes = self.encoding.planes(un)
        currents = self._encoded(self.board.mvm_transpose, un, place, self.rows)
        if currents.size == 0:
            return np.zeros(self.n_in)
        total_weight = sum(w for w, _ in planes)
        currents = (currents - self.row_offset * total_weight) / self.row_gain * top
        i = currents[self.rows]
        if self.mapping.layout == "offset":
            applied = sum(w * volts for w, volts in planes)
            i = i - self.mapping.g_ref * float(np.sum(applied))
        out = i / (self.mapping.unit * self.encoding.v_in) * peak
        return out + self.correction.T @ u if self.correction is not None else out


def autorange(board: CrossbarArray, matrices: list[ArrayMatrix], read_voltage: float, *,
              headroom: float = 1.3) -> float:
    """Set the board's TIA full scale (A) to ``headroom`` × the largest probe current of ``matrices``.

    Probes start at the board's largest allowed range (safety limit ``max_tia_range``); the
    ADC's resolution then goes to the currents these matrices really produce instead of a
    worst-case bound. Returns the range set. Use inside ``support.tia_range`` (which restores
    the station default afterwards).
    """
    top = board_limit(board, "max_tia_range", 10e-3)
    board.configure(read_voltage, top)
    peak = max((m.peak_currents() for m in matrices), default=0.0)
    fs = min(top, max(headroom * peak, 1e-6)) if peak > 0 else top
    board.configure(read_voltage, fs)
    return fs
