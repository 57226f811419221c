"""Device characterisation: range and stuck-cell map, pulse-response fit, I–V sweep and forming.

* :class:`BoundsMap` — per-cell g_lo, g_hi and stuck map of a block (measured by
  :func:`xbarlab.calibration.characterize.characterize`, bounds with a stopping rule) and the
  usable range covered by a chosen fraction of the live cells.
* :func:`pulse_response` + :func:`fit_pulse_response` — N potentiating then N depressing
  pulses per cycle on a set of cells, reading after each; a soft-bounds fit per cell
  (g' = g + k_up·(g_hi − g), g' = g − k_down·(g − g_lo)) gives the step size, up/down
  asymmetry, bounds, nonlinearity (the state dependence of the step, soft bounds) and
  cycle-to-cycle noise; population values carry bootstrap uncertainties.
* :func:`iv_sweep` and :func:`form_cell` — SMU through the board's switch matrix, with compliance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.calibration.readpath import _smu_name, smu_cell_current
from xbarlab.calibration.writeverify import PulseModel, _pulse, cell_reader
from xbarlab.errors import ConfigError
from xbarlab.instruments.interfaces import BenchStation, CrossbarArray


@dataclass
class BoundsMap:
    """Per-cell range (S) and stuck map of a block rows × cols."""

    rows: np.ndarray
    cols: np.ndarray
    g_lo: np.ndarray
    g_hi: np.ndarray
    stuck: np.ndarray  # int8: 0 ok, 1 stuck off, 2 stuck on
    pulses: int = 0

    @property
    def live(self) -> np.ndarray:
        return self.stuck == 0

    def usable_range(self, coverage: float = 0.995) -> tuple[float, float]:
        """(g_low, g_high) S that a fraction ``coverage`` of the live cells can reach at either end."""
        if not 0.5 < coverage < 1:
            raise ConfigError(f"coverage must be in (0.5, 1), got {coverage}")
        live = self.live
        if not live.any():
            raise ConfigError("no live cell in the block: every cell is stuck")
        lo = float(np.quantile(self.g_lo[live], coverage))
        hi = float(np.quantile(self.g_hi[live], 1 - coverage))
        if not hi > lo:
            raise ConfigError(f"no common range: {coverage:.3f} of the cells reach [{lo:g}, {hi:g}] S")
        return lo, hi

    def to_record(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        lo, hi = self.usable_range()
        return ({"rows": self.rows, "cols": self.cols, "g_lo": self.g_lo, "g_hi": self.g_hi,
                 "stuck": self.stuck.astype(np.int8)},
                {"stuck_off": int(np.sum(self.stuck == 1)), "stuck_on": int(np.sum(self.stuck == 2)),
                 "usable_low_S": lo, "usable_high_S": hi, "pulses": int(self.pulses)})


# -- pulse response and model fit -----------------------------------------------------------------
@dataclass
class PulseResponse:
    """Readings after each pulse: g[cycle, k, cell] for k < 2N (first N SET, then N RESET), S."""

    rows: np.ndarray
    cols: np.ndarray
    g: np.ndarray  # (cycles, 2N + 1, cells): index 0 is the read before the cycle
    pulses: int
    amplitude: float
    width: float
    repeat: np.ndarray | None = None  # (cycles, cells): a second read before each cycle (read noise)


def pulse_response(
    board: CrossbarArray,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    pulses: int = 20,
    amplitude: float = 1.3,
    width: float = 1e-6,
    cycles: int = 3,
    read_voltage: float = 0.2,
    reader: Any = None,
    checkpoint: Any = None,
) -> PulseResponse:
    """N potentiating then N depressing pulses of ±``amplitude`` V, ``width`` s on the cells rows[i], cols[i]
    (one batch per pulse index, all cells in parallel), reading every cell after each pulse."""

    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    if rows.shape != cols.shape or rows.size == 0:
        raise ConfigError("pulse_response needs matching, non-empty lists of rows and columns")
    if pulses < 2 or cycles < 1:
        raise ConfigError("pulse_response needs pulses >= 2 and cycles >= 1")
    read = reader or cell_reader(board, read_voltage)
    n = rows.size
    g = np.empty((cycles, 2 * pulses + 1, n))
    rep = np.empty((cycles, n))
    for cyc in range(cycles):
        if checkpoint is not None:
            checkpoint()
        g[cyc, 0] = read(rows, cols)
        rep[cyc] = read(rows, cols)
        for k in range(2 * pulses):
            sign = 1.0 if k < pulses else -1.0
            _pulse(board, rows, cols, np.full(n, sign * amplitude), np.full(n, width))
            g[cyc, k + 1] = read(rows, cols)
    return PulseResponse(rows, cols, g, pulses, amplitude, width, rep)


@dataclass
class DeviceFit:
    """Soft-bounds device model fitted to pulse responses (S; fractions of the cell's range per pulse).

    ``values`` and ``errors`` (1σ, bootstrap over cells) hold: dw_up, dw_down (fraction of range per
    pulse at the measured amplitude), up_down (asymmetry (up − down)/mean), g_lo, g_hi (S),
    c2c (relative step spread), d2d (relative spread of the step between devices),
    nonlinearity (fitted exponent of the headroom dependence of the step; 1 = soft bounds).
    """

    values: dict[str, float]
    errors: dict[str, float]
    per_cell: dict[str, np.ndarray] = field(default_factory=dict)
    amplitude: float = 1.0
    width: float = 1e-6

    def pulse_model(self, *, v_scale: float, width_exp: float, read_sigma: float | None = None,
                    v_ref: float | None = None) -> PulseModel:
        """A write-verify prior from this fit (log step fractions at the measured amplitude) and the
        kinetics ``v_scale`` (V per e-fold) and ``width_exp`` this fit does not measure (take them
        from :func:`~xbarlab.calibration.characterize.characterize`); ``read_sigma`` defaults to the fit's."""
        return PulseModel(s_up=float(np.log(max(self.values["dw_up"], 1e-9))),
                          s_down=float(np.log(max(self.values["dw_down"], 1e-9))),
                          v_ref=self.amplitude if v_ref is None else v_ref, v_scale=v_scale,
                          width_ref=self.width, width_exp=width_exp,
                          read_sigma=float(self.values["read_sigma"]) if read_sigma is None else read_sigma)

    def simulator_params(self) -> dict[str, float]:
        """RRAM simulator parameters ([sim.device]) implied by the fit at v_ref = the measured amplitude."""
        v = self.values
        mean = 0.5 * (v["dw_up"] + v["dw_down"])
        return {"dw_min": mean, "step_ratio": v["dw_up"] / v["dw_down"],
                "c2c": v["c2c"], "g_min": v["g_lo"], "g_max": v["g_hi"], "v_ref": self.amplitude,
                "width_ref": self.width}

    def to_record(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        data = {k: np.asarray(a, dtype=float) for k, a in self.per_cell.items()}
        meta: dict[str, Any] = {f"{k}": float(x) for k, x in self.values.items()}
        meta.update({f"{k}_err": float(x) for k, x in self.errors.items()})
        meta.update(amplitude=float(self.amplitude), width=float(self.width))
        return data, meta


def _fit_cell(
    g: np.ndarray, n: int, read_sigma: float = 0.0
) -> tuple[float, float, float, float, float, float, float] | None:
    """Per-cell soft-bounds fit: (k_up, k_down, g_lo, g_hi, c2c, nonlinearity, n_steps) or None."""
    up_prev = g[:, :n].ravel()
    up_next = g[:, 1 : n + 1].ravel()
    dn_prev = g[:, n : 2 * n].ravel()
    dn_next = g[:, n + 1 : 2 * n + 1].ravel()
    # linear recursions: g' = (1 − k_up)·g + k_up·g_hi ; g' = (1 − k_dn)·g + k_dn·g_lo
    try:
        a_up, b_up = np.polyfit(up_prev, up_next, 1)
        a_dn, b_dn = np.polyfit(dn_prev, dn_next, 1)
    except (np.linalg.LinAlgError, ValueError):
        return None
    k_up, k_dn = 1 - a_up, 1 - a_dn
    if not (0 < k_up < 1 and 0 < k_dn < 1):
        return None
    g_hi, g_lo = b_up / k_up, b_dn / k_dn
    if not g_hi > g_lo:
        return None
    # cycle-to-cycle noise: relative spread of the observed step around the model step
    step_up = up_next - up_prev
    model_up = k_up * (g_hi - up_prev)
    big = model_up > 0.2 * np.max(model_up)
    if big.sum() > 3:
        # observed step variance = c2c²·model² + two reads' noise (σ_read·g)² each: deconvolve
        resid2 = (step_up[big] - model_up[big]) ** 2 - read_sigma**2 * (up_prev[big] ** 2 + up_next[big] ** 2)
        c2c = float(np.sqrt(max(np.mean(resid2) / np.mean(model_up[big] ** 2), 0.0)))
    else:
        c2c = float("nan")
    # nonlinearity: exponent p of the headroom dependence Δg = a·h^p, h = (g_hi − g)/(g_hi − g_lo)
    # (1 = soft bounds, 0 = constant step), least squares on the steps themselves (unbiased by noise)
    h = np.clip((g_hi - up_prev) / (g_hi - g_lo), 1e-6, None)
    p = _fit_power(h, step_up)
    return k_up, k_dn, g_lo, g_hi, c2c, p, float(up_prev.size)


def _fit_power(h: np.ndarray, step: np.ndarray) -> float:
    """Exponent p of step ≈ a·h^p by non-linear least squares (scipy curve_fit)."""
    from scipy.optimize import curve_fit

    if h.size < 4:
        return float("nan")
    try:
        (a, p), _ = curve_fit(lambda x, a, p: a * x**p, h, step, p0=(float(np.mean(step) / np.mean(h)), 1.0),
                              maxfev=2000)
    except (RuntimeError, ValueError):
        return float("nan")
    return float(p)


def fit_pulse_response(resp: PulseResponse, *, bootstrap: int = 200, seed: int = 0) -> DeviceFit:
    """Fit the soft-bounds model to every responding cell; population means with bootstrap 1σ.

    Cells that do not respond (stuck, or no fit) are left out and counted in ``values["failed"]``.
    The step fractions are per pulse at ``resp.amplitude``/``resp.width``.
    """
    n = resp.pulses
    fits = []
    failed = 0
    read_sigma = 0.0
    if resp.repeat is not None:  # relative read noise from the repeated reads before each cycle
        a0, b0 = resp.g[:, 0, :].ravel(), resp.repeat.ravel()
        ok = (a0 + b0) > 0
        read_sigma = float(np.std((a0[ok] - b0[ok]) / (0.5 * (a0[ok] + b0[ok])))) / np.sqrt(2)
    for i in range(resp.g.shape[2]):
        f = _fit_cell(resp.g[:, :, i], n, read_sigma)
        if f is None:
            failed += 1
            fits.append([np.nan] * 7)
        else:
            fits.append(list(f))
    arr = np.asarray(fits, dtype=float)
    good = np.all(np.isfinite(arr[:, :4]), axis=1)
    if good.sum() < 2:
        raise ConfigError(f"pulse-response fit: only {int(good.sum())} of {arr.shape[0]} cells responded; "
                          "raise the pulse amplitude or check for stuck cells")
    a = arr[good]
    k_up, k_dn, lo, hi, c2c, p = (a[:, j] for j in range(6))
    # per-cell fraction of the range per pulse: k is already a fraction of the headroom, i.e. of the range at w=0/1

    def stats(x: np.ndarray) -> np.ndarray:
        mu_up, mu_dn = np.mean(x[:, 0]), np.mean(x[:, 1])
        return np.array([
            mu_up, mu_dn, 2 * (mu_up - mu_dn) / (mu_up + mu_dn), np.mean(x[:, 2]), np.mean(x[:, 3]),
            np.nanmean(x[:, 4]), np.std(0.5 * (x[:, 0] + x[:, 1])) / np.mean(0.5 * (x[:, 0] + x[:, 1])),
            np.nanmean(x[:, 5]),
        ])

    names = ["dw_up", "dw_down", "up_down", "g_lo", "g_hi", "c2c", "d2d", "nonlinearity"]
    est = stats(a)
    rng = np.random.default_rng(seed)
    boots = np.array([stats(a[rng.integers(0, len(a), len(a))]) for _ in range(bootstrap)])
    err = np.nanstd(boots, axis=0)
    values = dict(zip(names, map(float, est), strict=True))
    values["cells"] = float(len(a))
    values["failed"] = float(failed)
    values["read_sigma"] = read_sigma
    errors = dict(zip(names, map(float, err), strict=True))
    per_cell = {"row": resp.rows[good].astype(float), "col": resp.cols[good].astype(float), "k_up": k_up,
                "k_down": k_dn, "g_lo": lo, "g_hi": hi, "c2c": c2c, "nonlinearity": p}
    return DeviceFit(values, errors, per_cell, resp.amplitude, resp.width)


# -- SMU: I–V sweep and forming --------------------------------------------------------------------
@dataclass
class IVCurve:
    cell: tuple[int, int]
    voltage: np.ndarray  # V
    current: np.ndarray  # A
    compliance: np.ndarray  # bool


def iv_sweep(station: BenchStation, row: int, col: int, *, start: float = -0.3, stop: float = 0.3, points: int = 31,
             compliance: float = 100e-6, smu: str | None = None) -> IVCurve:
    """Staircase I–V sweep of one cell through the SMU routed by the board (output off afterwards)."""

    name = _smu_name(station, smu)
    meter, port = station.smu(name), station.board_port(name)
    board = station.require_board()
    board.route_smu(port, int(row), int(col))
    try:
        sw = meter.sweep_voltage(start, stop, points, compliance)
    finally:
        meter.set_output(False)
        board.unroute_smu(port)
    v, i = np.asarray(sw.voltage, dtype=float), np.asarray(sw.current, dtype=float)
    comp = np.asarray(sw.compliance, dtype=bool)
    return IVCurve((int(row), int(col)), v, i, comp if comp.size == v.size else np.zeros(v.size, dtype=bool))


@dataclass
class FormingResult:
    cell: tuple[int, int]
    formed: bool
    voltage: float  # V at which the current first exceeded the threshold (nan if never)
    g_before: float  # S at the read voltage
    g_after: float  # S
    curve: IVCurve


def form_cell(station: BenchStation, row: int, col: int, *, v_max: float = 3.0, points: int = 31,
              compliance: float = 100e-6, read_voltage: float = 0.2, threshold: float = 1e-6,
              smu: str | None = None) -> FormingResult:
    """Forming: a 0 → ``v_max`` V sweep with current ``compliance`` (A) through the SMU; formed when the
    read conductance rises above ``threshold`` S. The compliance caps the filament (no overshoot)."""

    if not 0 < compliance:
        raise ConfigError(f"forming compliance must be > 0 A, got {compliance}")
    name = _smu_name(station, smu)
    board = station.require_board()
    g0 = smu_cell_current(station, board, name, row, col, read_voltage) / read_voltage
    curve = iv_sweep(station, row, col, start=0.0, stop=v_max, points=points, compliance=compliance, smu=name)
    g1 = smu_cell_current(station, board, name, row, col, read_voltage) / read_voltage
    jump = np.flatnonzero(curve.current >= 0.5 * compliance)
    v_form = float(curve.voltage[jump[0]]) if jump.size else float("nan")
    return FormingResult((int(row), int(col)), bool(g1 > threshold), v_form, float(g0), float(g1), curve)
