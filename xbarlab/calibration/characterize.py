"""Device characterisation that measures what write-verify needs, assuming nothing of the device.

:func:`characterize` runs on a block of cells through any board (usually a read-path
calibrated one) and returns a :class:`Characterization`, the logged record from which
write-verify takes its prior (:meth:`Characterization.pulse_model`):

1. **Read noise** from ``noise_reads`` repeated reads of sample cells, fitted as
   σ(g) = sqrt(σ_abs² + (σ_rel·g)²) (S); measured again after step 4, when the sample cells
   sit across their range, and fitted to both sets.
2. **Switching thresholds** (SET and RESET separately): an interleaved amplitude ladder of
   single SET and RESET pulses of width ``width`` on the sample cells, from ``v_start``
   upwards in ``v_step`` steps; a direction's threshold ``v_on`` is the first amplitude at
   which at least half of the sample cells move that way by more than 4σ of the read
   difference.
3. **Reachable bounds** of every cell of the block: pulse until reads stop changing. Each
   cell starts at ``v_on`` of the direction and its amplitude ramps by ``bound_step`` a
   pulse; a cell is at its bound when ``settle`` pulses in a row did not move it by 3σ of
   the read difference (σ from repeated reads at the cells' present states; a cell that has
   not moved at all ramps on to the cap, so a weak cell is not taken for a stuck one), or at
   ``bound_pulses``. Amplitudes never exceed ``v_on`` + ``max_overdrive`` nor the board's pulse limit.
   Cells whose range is below a tenth of the median are stuck.
4. **Kinetics** on the sample cells with their bounds known: an interleaved SET/RESET
   amplitude ladder around ``v_on`` (until one pulse covers ~30 % of the headroom) and a
   width ladder (``width`` × 1/9 … 9 within the board's limits) near the amplitude that
   covers ~5 %. Each pulse gives k = |Δg| / headroom; per direction
   ln k = s + (V − v_ref)/v_scale + β·ln(width/width_ref) is fitted by least squares
   (1σ errors from the residuals); the residual spread is the cycle-to-cycle spread.
   A RESET that covers most of the headroom in one pulse wherever it acts is *abrupt*
   (PCM melt-quench): its amplitude (the lowest rung that fully reset 90 % of the cells,
   plus one step) is recorded instead of a graded fit.

The generic search parameters (``v_start`` 0.4 V, ``v_step`` 0.05 V, ``max_overdrive`` 1 V)
are judgement: above any read voltage the board allows by default and fine enough that one
rung changes the step of a steep device (0.04 V per e-fold) by at most ~3.5×.
Units: V, s, S.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import nan
from typing import Any

import numpy as np

from xbarlab.calibration.device import BoundsMap
from xbarlab.calibration.writeverify import PulseModel, _pulse, cell_reader
from xbarlab.errors import ConfigError
from xbarlab.instruments.interfaces import CrossbarArray, board_limit

RECORD_KIND = "device_characterization"
#: V per e-fold recorded for a device whose step does not measurably follow the amplitude above its
#: threshold (a fixed-step device): write-verify then sizes steps by pulse count and width
FLAT_V_SCALE = 10.0

Reader = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class DirectionFit:
    """Kinetics of one direction: ln k = s + (V − v_ref)/v_scale + width_exp·ln(width/width_ref).

    ``k``: fraction of the headroom one pulse covers. ``*_err``: 1σ. ``v_on``: threshold (V).
    ``points``: observations used. ``abrupt``: one pulse covers most of the headroom (no graded fit).
    """

    s: float
    v_scale: float
    width_exp: float
    s_err: float
    v_scale_err: float
    width_exp_err: float
    c2c: float
    v_on: float
    points: int
    abrupt: bool = False
    v_abrupt: float = float("nan")  # V that fully switches 90 % of the cells (abrupt only)
    d2d: float = float("nan")  # device-to-device spread of ln k (of the step)


@dataclass
class Characterization:
    """What characterisation measured (see module doc). Conductances S, voltages V, times s."""

    read_sigma_rel: float
    read_sigma_abs: float
    up: DirectionFit
    down: DirectionFit
    v_ref: float
    width_ref: float
    bounds: Any  # BoundsMap of the block
    sample_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    sample_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    observations: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))  # dir, V, width, k, head, cell, sig.
    pulses: int = 0  # pulses spent by the characterisation
    instrument_time_s: float = float("nan")
    measured_at_s: float = float("nan")  # instrument clock when it finished (NaN: unknown)
    reference: str = ""

    @property
    def up_down_ratio(self) -> float:
        """SET/RESET step ratio k_up/k_down at v_ref and width_ref (NaN for an abrupt RESET)."""
        if self.down.abrupt:
            return float("nan")
        return float(np.exp(self.up.s - self.down.s))

    @property
    def up_down_ratio_err(self) -> float:
        return float(self.up_down_ratio * np.hypot(self.up.s_err, self.down.s_err))

    def pulse_model(self) -> PulseModel:
        """The write-verify prior: the fitted kinetics, read noise and RESET kind."""
        down = self.down
        return PulseModel(
            s_up=self.up.s, s_down=0.0 if down.abrupt else down.s, v_ref=self.v_ref, v_scale=self.up.v_scale,
            v_scale_down=down.v_scale if not down.abrupt else self.up.v_scale, width_ref=self.width_ref,
            width_exp=self.up.width_exp, width_exp_down=down.width_exp if not down.abrupt else self.up.width_exp,
            read_sigma=self.read_sigma_rel, read_sigma_abs=self.read_sigma_abs,
            reset="abrupt" if down.abrupt else "gradual",
            v_min=min(self.up.v_on, down.v_on if not down.abrupt else self.up.v_on) - 0.1,
            v_reset=down.v_abrupt if down.abrupt else None,
        )

    def figures(self) -> dict[str, float]:
        """Scalar figures with 1σ uncertainties (``*_err``), for logs, reports and the GUI."""
        out: dict[str, float] = {"read_sigma_rel": self.read_sigma_rel, "read_sigma_abs_S": self.read_sigma_abs,
                                 "v_ref": self.v_ref, "width_ref": self.width_ref, "pulses": float(self.pulses),
                                 "instrument_time_s": self.instrument_time_s, "measured_at_s": self.measured_at_s,
                                 "up_down_ratio": self.up_down_ratio, "up_down_ratio_err": self.up_down_ratio_err}
        for name, d in (("set", self.up), ("reset", self.down)):
            for key in ("s", "v_scale", "width_exp", "s_err", "v_scale_err", "width_exp_err", "c2c", "v_on",
                        "v_abrupt", "d2d"):
                out[f"{name}_{key}"] = float(getattr(d, key))
            out[f"{name}_points"] = float(d.points)
            out[f"{name}_abrupt"] = float(d.abrupt)
        lo, hi = self.bounds.usable_range()
        out.update(usable_low_S=lo, usable_high_S=hi, stuck=float(np.sum(self.bounds.stuck != 0)))
        return out

    def to_record(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        data = {"observations": np.asarray(self.observations, dtype=float),
                "sample_rows": self.sample_rows.astype(float), "sample_cols": self.sample_cols.astype(float)}
        return data, {k: float(v) for k, v in self.figures().items()}

    @classmethod
    def from_record(cls, data: dict[str, Any], meta: dict[str, Any], bounds: Any, reference: str = ""
                    ) -> Characterization:
        """A characterisation from its logged record (bounds from the ``range_map`` record)."""
        try:
            def direction(name: str) -> DirectionFit:
                return DirectionFit(*(float(meta[f"{name}_{k}"]) for k in (
                    "s", "v_scale", "width_exp", "s_err", "v_scale_err", "width_exp_err", "c2c", "v_on")),
                    int(meta[f"{name}_points"]), bool(meta[f"{name}_abrupt"]), float(meta[f"{name}_v_abrupt"]),
                    float(meta.get(f"{name}_d2d", float("nan"))))

            return cls(float(meta["read_sigma_rel"]), float(meta["read_sigma_abs_S"]), direction("set"),
                       direction("reset"), float(meta["v_ref"]), float(meta["width_ref"]), bounds,
                       np.asarray(data.get("sample_rows", []), dtype=int),
                       np.asarray(data.get("sample_cols", []), dtype=int),
                       np.asarray(data.get("observations", np.zeros((0, 7))), dtype=float), int(meta["pulses"]),
                       float(meta["instrument_time_s"]), float(meta["measured_at_s"]), reference)
        except KeyError as exc:
            raise ConfigError(f"device characterisation record lacks {exc.args[0]!r}") from None

    def describe(self) -> str:
        u, d = self.up, self.down
        reset = (f"RESET abrupt at {d.v_abrupt:.2f} V" if d.abrupt else
                 f"RESET v_on {d.v_on:.2f} V, {d.v_scale * 1e3:.0f}±{d.v_scale_err * 1e3:.0f} mV/e-fold, "
                 f"width exp {d.width_exp:.2f}±{d.width_exp_err:.2f}")
        return (f"characterisation: read noise {self.read_sigma_rel:.4f} rel + {self.read_sigma_abs:.2g} S; "
                f"SET v_on {u.v_on:.2f} V, {u.v_scale * 1e3:.0f}±{u.v_scale_err * 1e3:.0f} mV/e-fold, width exp "
                f"{u.width_exp:.2f}±{u.width_exp_err:.2f}, c2c {u.c2c:.2f}, d2d {u.d2d:.2f}; {reset}; up/down ratio "
                f"{self.up_down_ratio:.2f}±{self.up_down_ratio_err:.2f}; {self.pulses} pulses")


# -- building blocks ---------------------------------------------------------------------------------
def _avg(read: Reader, rr: np.ndarray, cc: np.ndarray, n: int) -> np.ndarray:
    return np.mean([read(rr, cc) for _ in range(max(n, 1))], axis=0)


def _avg_noise(read: Reader, rr: np.ndarray, cc: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """(mean of ``n`` ≥ 2 reads S, pooled 1σ S of one read at the cells' present states: the median over
    cells of the spread between their reads). Measured where the cells are, it needs no noise model."""
    g = np.array([read(rr, cc) for _ in range(max(n, 2))])
    sd = np.std(g, axis=0, ddof=1)
    return g.mean(axis=0), float(np.median(sd)) / 0.9  # median of the sample σ is ≈0.9σ for few reads


def read_repeats(read: Reader, rr: np.ndarray, cc: np.ndarray, reads: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(mean S, variance S²) per cell of ``reads`` repeated reads."""
    if reads < 3:
        raise ConfigError("read-noise measurement needs at least 3 repeated reads")
    g = np.array([read(rr, cc) for _ in range(reads)])
    return np.mean(g, axis=0), np.var(g, axis=0, ddof=1)


def fit_read_noise(mean: np.ndarray, var: np.ndarray) -> tuple[float, float]:
    """(σ_rel, σ_abs S): σ(g)² = σ_abs² + (σ_rel·g)² by non-negative least squares, relative weights.

    Cells that all sit at about one conductance cannot separate the two terms: then the noise is
    taken as absolute (σ_rel = 0) until cells spread over the range are measured."""
    from scipy.optimize import nnls

    m = np.abs(mean)
    if np.ptp(m) < 0.5 * max(float(np.median(m)), 1e-30):
        return 0.0, float(np.sqrt(np.median(var)))

    w = 1.0 / np.maximum(var, 1e-40) ** 0.5
    a = np.column_stack([np.ones_like(mean), mean**2])
    coef, _ = nnls(a * w[:, None], var * w)
    # then relative residuals against the fitted variance (iteratively reweighted; weighting by each cell's
    # own sample variance would favour the cells whose few reads happened to agree): a device whose relative
    # noise falls with g (PCM: σ ∝ g^0.35) is fitted by its absolute floor at low g and its relative noise
    # at high g, not by one relative noise the low-g cells inflate (which hid PCM's RESET steps)
    for _ in range(3):
        model = a @ coef
        w = 1.0 / np.maximum(model, max(0.01 * float(np.median(model)), 1e-40))
        coef, _ = nnls(a * w[:, None], var * w)
    return float(np.sqrt(coef[1])), float(np.sqrt(coef[0]))


def measure_read_noise(read: Reader, rr: np.ndarray, cc: np.ndarray, reads: int = 8) -> tuple[float, float]:
    """(σ_rel, σ_abs S) of one read from ``reads`` repeated reads of the listed cells."""
    return fit_read_noise(*read_repeats(read, rr, cc, reads))


def _sigma_diff(g: np.ndarray, rel: float, abs_: float, reads: int) -> np.ndarray:
    """1σ of the difference of two averaged reads (``reads`` each) of conductances g (S)."""
    return np.sqrt(2.0 * (abs_**2 + (rel * np.abs(g)) ** 2) / max(reads, 1))


def find_thresholds(board: CrossbarArray, read: Reader, rr: np.ndarray, cc: np.ndarray, *, v_start: float,
                    v_step: float, v_top: float, width: float, noise: tuple[float, float], reads: int = 2,
                    checkpoint: Callable[[], None] | None = None) -> tuple[float, float, int]:
    """(SET v_on V, RESET v_on V, pulses): an interleaved amplitude ladder, one SET and one RESET pulse
    a rung; a direction's threshold is the first rung at which half the cells move by > 4σ of the read
    difference in that direction (its pulses go on with the ladder). Interleaving lets a cell that starts at one
    bound be moved away from it by the other direction before that direction is judged."""
    n = rr.size
    g, sd = _avg_noise(read, rr, cc, reads)
    pulses = 0
    v_on: list[float | None] = [None, None]
    v = v_start
    while v <= v_top + 1e-9 and None in v_on:
        if checkpoint is not None:
            checkpoint()
        for d, sign in ((0, 1.0), (1, -1.0)):
            found = v_on[d] is not None
            # a direction already found keeps pulsing with the ladder: it gives the other one headroom
            _pulse(board, rr, cc, np.full(n, sign * v), np.full(n, width))
            pulses += n
            g_new, sd_new = _avg_noise(read, rr, cc, reads)
            sig = np.maximum(np.hypot(sd, sd_new), np.sqrt(2) * noise[1]) / np.sqrt(max(reads, 2))
            moved = sign * (g_new - g) > 4 * sig
            g, sd = g_new, sd_new
            if not found and np.mean(moved) >= 0.5:
                v_on[d] = float(v)
        v = round(v + v_step, 9)
    for d, word in ((0, "SET"), (1, "RESET")):
        if v_on[d] is None:
            raise ConfigError(f"characterisation: no {word} pulse up to {v_top:g} V moved half of the sample "
                              "cells; raise max_pulse_amplitude or check the devices")
    return float(v_on[0]), float(v_on[1]), pulses  # type: ignore[arg-type]


def drive_to_bounds(board: CrossbarArray, read: Reader, rr: np.ndarray, cc: np.ndarray, sign: float, *, v_on: float,
                    v_cap: float, bound_step: float, width: float, noise: tuple[float, float], settle: int = 3,
                    max_pulses: int = 60, reads: int = 2, sd_model: bool = False,
                    checkpoint: Callable[[], None] | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """(g S, pulses, unsettled mask): pulse every cell until ``settle`` pulses in a row do not move it.

    The amplitude ramps from ``v_on`` by ``bound_step`` a pulse up to ``v_cap``, so a soft-bounded
    cell is not left crawling; a pulse is quiet when it moves the cell by less than 3σ of the read
    difference and the last ``settle`` pulses together moved it by less than that too (a device whose
    single steps spread about their mean, as PCM's SET steps do, is not taken for settled after a few
    small steps while it still climbs), and only once the ramp has reached ``v_cap`` (a step that
    hides in the read noise at a low amplitude says nothing about the bound). The bound is a fresh
    averaged read.
    """
    n = rr.size
    v = np.full(n, min(v_on, v_cap))
    quiet = np.zeros(n, dtype=int)
    moved = np.zeros(n, dtype=bool)  # a cell that never moved is settled only at v_cap (weak cell or stuck)
    g, sd = _avg_noise(read, rr, cc, reads)
    history = [g.copy()]  # reads after each pulse round (cells not pulsed keep their last read)
    total = 0
    for _ in range(max_pulses):
        act = np.flatnonzero((quiet < settle) | (v < v_cap - 1e-9))
        if act.size == 0:
            break
        if checkpoint is not None:
            checkpoint()
        _pulse(board, rr[act], cc[act], sign * v[act], np.full(act.size, width))
        total += act.size
        g_new, sd_new = _avg_noise(read, rr[act], cc[act], reads)
        # quiet: no move beyond 3σ of the difference, σ from the model or measured now, whichever is larger
        sig = np.maximum(_sigma_diff(g[act], *noise, reads) if sd_model else 0.0,
                         np.hypot(sd, sd_new) / np.sqrt(max(reads, 2)))
        sd = sd_new
        still = sign * (g_new - g[act]) < 3 * sig
        if len(history) >= settle:  # net move over the last `settle` pulses
            still &= sign * (g_new - history[-settle][act]) < 3 * sig
        quiet[act] = np.where(still, quiet[act] + 1, 0)
        moved[act] |= ~still
        v[act] = np.minimum(v[act] + bound_step, v_cap)
        g[act] = g_new
        history.append(g.copy())
    return _avg(read, rr, cc, 2 * reads), total, (quiet < settle) | (v < v_cap - 1e-9)


def _uncensored(obs: np.ndarray, share: float = 0.75) -> np.ndarray:
    """Significant observations of the (V, width) rungs where at least ``share`` of the eligible pulses
    were significant: a rung where most steps hide in the read noise keeps only its upward
    fluctuations and would bias the fit (censoring)."""
    if obs.shape[0] == 0:
        return obs[:, :6]
    keys = np.round(obs[:, 1:3] * [1e3, 1e12]).astype(np.int64)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    frac = np.bincount(inv, weights=obs[:, 6]) / np.bincount(inv)
    keep = (frac[inv] >= share) & (obs[:, 6] > 0)
    return obs[keep][:, :6]


def _below_saturation(obs: np.ndarray, most: float = 0.4) -> np.ndarray:
    """Rows of the (V, width) rungs whose median k is below ``most``: near k = 1 the step saturates
    at the bound and its spread is truncated, which would bend the fit."""
    if obs.shape[0] == 0:
        return obs
    keys = np.round(obs[:, 1:3] * [1e3, 1e12]).astype(np.int64)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    med = np.array([np.median(obs[inv == i, 3]) for i in range(inv.max() + 1)])
    return obs[med[inv] < most]


def _fit_direction(obs: np.ndarray, v_ref: float, width_ref: float, v_on: float) -> DirectionFit:
    """Least-squares fit of ln k = s + (V − v_ref)/v_scale + β·ln(w/width_ref) to rows (V, width, k, cell).

    The residual spread splits into cell-to-cell (per-cell mean residual: d2d) and cycle-to-cycle (c2c)."""
    v, w, k, cell = obs[:, 0], obs[:, 1], obs[:, 2], obs[:, 3].astype(int)
    y = np.log(k)
    lw = np.log(w / width_ref)
    has_width = np.ptp(lw) > 0.5 and np.unique(np.round(lw, 3)).size >= 2
    # slopes from the variation within each cell (per-cell intercepts): a cell-to-cell spread of the
    # threshold shifts whole cells and, with the censoring of the low rungs, would flatten a pooled fit
    xs = np.column_stack([v - v_ref] + ([lw] if has_width else []))
    counts = np.bincount(cell)

    def within(a: np.ndarray) -> np.ndarray:
        return a - (np.bincount(cell, weights=a) / np.maximum(counts, 1))[cell]
    xw = np.column_stack([within(xs[:, j]) for j in range(xs.shape[1])])
    yw = within(y)
    multi = counts[cell] > 1
    if np.count_nonzero(multi) > xs.shape[1] + 2 and np.ptp(xw[multi, 0]) > 0:
        slopes, *_ = np.linalg.lstsq(xw[multi], yw[multi], rcond=None)
    else:  # too few repeats per cell: pooled
        slopes = np.linalg.lstsq(np.column_stack([np.ones_like(v), xs]), y, rcond=None)[0][1:]
    cell_int = np.bincount(cell, weights=y - xs @ slopes) / np.maximum(counts, 1)
    coef = np.concatenate([[float(np.mean(y - xs @ slopes))], slopes])
    resid = y - cell_int[cell] - xs @ slopes  # within-cell residual (cycle to cycle)
    dof = max(int(np.count_nonzero(multi)) - np.count_nonzero(counts[counts > 1]) - xs.shape[1], 1)
    s2 = float(resid[multi] @ resid[multi]) / dof
    k_par = xs.shape[1]
    cov = s2 * np.linalg.pinv(xw[multi].T @ xw[multi]) if np.count_nonzero(multi) else np.full((k_par, k_par), np.nan)
    # the intercept's error: the spread of the cells' intercepts over their number (plus the within noise)
    n_cells = max(np.count_nonzero(counts), 1)
    s_err = float(np.sqrt(s2 / max(y.size, 1)) + np.std(cell_int[counts > 0]) / np.sqrt(n_cells))
    err = np.concatenate([[s_err], np.sqrt(np.maximum(np.diag(cov), 0.0))])
    slope = float(coef[1])
    if slope > 2 * float(err[1]) and slope > 0.1:
        v_scale = 1.0 / slope
        v_scale_err = float(err[1]) / slope**2
    else:  # above its threshold the step does not follow the amplitude (a hard-threshold device)
        v_scale, v_scale_err = FLAT_V_SCALE, float("nan")
    if has_width:
        beta, beta_err = float(np.clip(coef[2], 0.05, 2.0)), float(err[2])
    else:  # no usable width ladder: the conservative choice (shortening a pulse then undershoots)
        beta, beta_err = 1.0, float("nan")
    seen = counts > 1
    c2c = float(np.sqrt(np.sum(resid[multi] ** 2) / max(int(np.count_nonzero(multi)) - np.count_nonzero(seen), 1)))
    means = cell_int - coef[0]
    d2d = float(np.sqrt(max(np.var(means[seen]) - c2c**2 / np.mean(counts[seen]), 0.0))) if seen.sum() > 2 else nan
    return DirectionFit(float(coef[0]), v_scale, beta, float(err[0]), v_scale_err, beta_err, c2c, v_on,
                        int(y.size), d2d=d2d)


def _kinetics(board: CrossbarArray, read: Reader, rr: np.ndarray, cc: np.ndarray, lo: np.ndarray, hi: np.ndarray, *,
              v_on: tuple[float, float], v_cap: tuple[float, float], v_step: float, width: float,
              w_limits: tuple[float, float], noise: tuple[float, float], reads: int,
              checkpoint: Callable[[], None] | None) -> tuple[np.ndarray, int]:
    """Interleaved SET/RESET amplitude ladder then width ladder from mid-range.

    Rows (dir 0/1, V, width, k, head S, cell, significant) of every pulse on a cell with headroom.
    """
    n = rr.size
    span = hi - lo
    g = _avg(read, rr, cc, reads)
    rows: list[np.ndarray] = []
    pulses = 0

    def one(direction: int, amp: float, wid: float) -> np.ndarray:
        nonlocal g, pulses
        sign = 1.0 if direction == 0 else -1.0
        head = np.where(direction == 0, hi - g, g - lo)
        _pulse(board, rr, cc, np.full(n, sign * amp), np.full(n, wid))
        pulses += n
        g_new = _avg(read, rr, cc, reads)
        dg = sign * (g_new - g)
        sig = _sigma_diff(g, *noise, reads)
        k = dg / np.maximum(head, 1e-30)
        eligible = head > 0.1 * span
        ok = (dg > 3 * sig) & eligible
        rows.append(np.column_stack([np.full(n, direction), np.full(n, amp), np.full(n, wid), k, head,
                                     np.arange(n), ok])[eligible])
        g = g_new
        return np.where(ok, k, np.where(eligible, 0.0, np.nan))

    # start from mid-range: ramped SETs from the threshold until every cell is above 40 % of its range
    v_mid = np.full(n, v_on[0])
    for _ in range(40):
        low = np.flatnonzero(g < lo + 0.4 * span)
        if low.size == 0:
            break
        _pulse(board, rr[low], cc[low], v_mid[low], np.full(low.size, width))
        pulses += low.size
        g[low] = _avg(read, rr[low], cc[low], reads)
        v_mid[low] = np.minimum(v_mid[low] + 0.5 * v_step, v_cap[0])

    amps = [v_on[0] - 2 * v_step, v_on[1] - 2 * v_step]
    done = [False, False]
    k_med = [0.0, 0.0]
    while not all(done):
        if checkpoint is not None:
            checkpoint()
        ks: list[list[np.ndarray]] = [[], []]
        for _ in range(2):  # SET, RESET, SET, RESET: each pulse starts where the other direction left the cell
            for d in (0, 1):
                ks[d].append(one(d, amps[d], width))
        for d in (0, 1):
            kd = np.concatenate(ks[d])
            k_med[d] = float(np.nanmedian(kd)) if np.isfinite(kd).any() else 0.0
        for d in (0, 1):
            if not done[d]:
                if k_med[d] >= 0.3 or amps[d] + v_step > v_cap[d] + 1e-9:
                    done[d] = True
                else:
                    amps[d] = round(amps[d] + v_step, 9)
    # width ladder near the amplitude that covers ~5 % of the headroom (from this ladder's data)
    obs = np.concatenate(rows) if rows else np.zeros((0, 7))
    obs = obs[obs[:, 6] > 0]
    w_lo, w_hi = w_limits
    widths = [w for w in width * np.array([1 / 9, 1 / 3, 1.0, 3.0, 9.0]) if w_lo <= w <= w_hi]
    v_w = []
    for d in (0, 1):
        od = obs[(obs[:, 0] == d) & (obs[:, 3] < 0.8)]
        if od.shape[0] >= 4 and np.ptp(od[:, 1]) > 0:
            a, b = np.polyfit(od[:, 1], np.log(od[:, 3]), 1)
            v_w.append(float(np.clip((np.log(0.05) - b) / a if a > 0 else v_on[d], v_on[d] - 2 * v_step, v_cap[d])))
        else:
            v_w.append(v_on[d])
    for wid in widths:
        if checkpoint is not None:
            checkpoint()
        for _ in range(2):
            for d in (0, 1):
                one(d, v_w[d], float(wid))
    return (np.concatenate(rows) if rows else np.zeros((0, 7))), pulses


def characterize(
    board: CrossbarArray,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    reader: Reader | None = None,
    read_voltage: float = 0.2,
    sample: int = 24,
    width: float = 1e-6,
    v_start: float = 0.4,
    v_step: float = 0.05,
    bound_step: float = 0.1,
    max_overdrive: float = 1.0,
    v_max: float | None = None,
    noise_reads: int = 8,
    reads: int = 2,
    settle: int = 3,
    bound_pulses: int = 60,
    seed: int = 0,
    clock: Callable[[], float] | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> Characterization:
    """Characterise the block rows × cols (module doc); ``sample`` random cells for noise, thresholds, kinetics.

    ``width`` (s) is the reference pulse width; ``v_max`` (V) caps every amplitude below the board's
    ``max_pulse_amplitude`` limit. ``clock()``: instrument time (s), recorded with the result.
    """

    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    if rows.size == 0 or cols.size == 0:
        raise ConfigError("characterisation needs a non-empty block of cells")
    if not (v_step > 0 and bound_step > 0 and max_overdrive > 0 and width > 0):
        raise ConfigError("characterisation: v_step, bound_step, max_overdrive and width must be > 0")
    v_top = board_limit(board, "max_pulse_amplitude", 3.0)
    if v_max is not None:
        v_top = min(v_top, float(v_max))
    w_limits = (board_limit(board, "min_pulse_width", width), board_limit(board, "max_pulse_width", width))
    if not w_limits[0] <= width <= w_limits[1]:
        raise ConfigError(f"characterisation width {width:g} s is outside the board's pulse-width limits "
                          f"{w_limits[0]:g}..{w_limits[1]:g} s")
    if v_start > v_top:
        raise ConfigError(f"characterisation start amplitude {v_start:g} V exceeds the pulse limit {v_top:g} V")
    t0 = clock() if clock is not None else float("nan")
    read = reader or cell_reader(board, read_voltage)
    rr, cc = np.repeat(rows, len(cols)), np.tile(cols, len(rows))
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(rr.size, size=min(sample, rr.size), replace=False))
    sr, sc = rr[pick], cc[pick]
    m0, v0 = read_repeats(read, sr, sc, noise_reads)
    noise = fit_read_noise(m0, v0)
    v_on_up, v_on_dn, p1 = find_thresholds(board, read, sr, sc, v_start=v_start, v_step=v_step, v_top=v_top,
                                           width=width, noise=noise, reads=reads, checkpoint=checkpoint)
    p2 = 0
    cap_up, cap_dn = min(v_on_up + max_overdrive, v_top), min(v_on_dn + max_overdrive, v_top)
    # noisy devices average more reads per bound step (up to 16: with 1/f noise more gains little)
    b_reads = int(np.clip(np.ceil((noise[0] / 0.02) ** 2), reads, 16))
    g_hi, p3, _ = drive_to_bounds(board, read, rr, cc, +1.0, v_on=v_on_up, v_cap=cap_up, bound_step=bound_step,
                                  width=width, noise=noise, settle=settle, max_pulses=bound_pulses, reads=b_reads,
                                  checkpoint=checkpoint)
    g_lo, p4, _ = drive_to_bounds(board, read, rr, cc, -1.0, v_on=v_on_dn, v_cap=cap_dn, bound_step=bound_step,
                                  width=width, noise=noise, settle=settle, max_pulses=bound_pulses, reads=b_reads,
                                  checkpoint=checkpoint)
    # a cell that stopped far short of the others (a noisy device's stop can come early) is driven on once
    # more from the cap, with twice the patience; a truly weak or stuck cell stays where it is
    mid_hi, mid_lo = float(np.median(g_hi)), float(np.median(g_lo))
    for sign, g_b, short, cap in ((+1.0, g_hi, g_hi < mid_lo + 0.5 * (mid_hi - mid_lo), cap_up),
                                  (-1.0, g_lo, g_lo > mid_lo + 0.25 * (mid_hi - mid_lo), cap_dn)):
        k = np.flatnonzero(short)
        if 0 < k.size < 0.5 * rr.size:
            g_k, p_k, _ = drive_to_bounds(board, read, rr[k], cc[k], sign, v_on=cap, v_cap=cap, bound_step=bound_step,
                                          width=width, noise=noise, settle=2 * settle, max_pulses=bound_pulses,
                                          reads=b_reads, checkpoint=checkpoint)
            g_b[k] = np.maximum(g_b[k], g_k) if sign > 0 else np.minimum(g_b[k], g_k)
            p2 += p_k
    span = g_hi - g_lo
    typical = float(np.median(span))
    stuck = np.zeros(rr.size, dtype=np.int8)
    dead = span < 0.1 * typical
    mid = 0.5 * (float(np.median(g_lo)) + float(np.median(g_hi)))
    stuck[dead & (g_hi < mid)] = 1
    stuck[dead & (g_hi >= mid)] = 2
    shape = (len(rows), len(cols))
    # kinetics on the live sample cells
    live = stuck[pick] == 0
    kr, kc = sr[live], sc[live]
    if kr.size < 2:
        raise ConfigError("characterisation: fewer than 2 live sample cells; enlarge the sample")
    obs, p5 = _kinetics(board, read, kr, kc, g_lo[pick][live], g_hi[pick][live], v_on=(v_on_up, v_on_dn),
                        v_cap=(cap_up, cap_dn), v_step=v_step, width=width, w_limits=w_limits, noise=noise,
                        reads=reads, checkpoint=checkpoint)
    # read noise again now that the sample cells sit across their range: σ_rel and σ_abs separate
    m1, v1 = read_repeats(read, kr, kc, noise_reads)
    noise = fit_read_noise(np.concatenate([m0, m1]), np.concatenate([v0, v1]))
    v_ref = round(0.5 * (v_on_up + v_on_dn), 3)
    fits = []
    for d, v_on in ((0, v_on_up), (1, v_on_dn)):
        od = _uncensored(obs[obs[:, 0] == d])
        oa = od  # the steps abruptness is judged on
        if d == 1 and oa.shape[0] < 4:  # few clean rungs (a noisy device): judge on half-clean ones,
            oa = _uncensored(obs[obs[:, 0] == d], share=0.5)  # then on every significant RESET step,
            if oa.shape[0] < 4:
                oa = _uncensored(obs[obs[:, 0] == d], share=0.0)
            if oa.shape[0] < 4:  # then, none significant against the read noise, on the steps' size alone
                oa = obs[(obs[:, 0] == d) & (obs[:, 4] > 0)][:, :6]
        big = oa[:, 3] > 0.7
        if d == 1 and oa.shape[0] >= 4 and np.mean(big) > 0.5:
            # abrupt RESET: the lowest rung at which 90 % of the cells were fully reset, plus one step
            full = oa[big & (oa[:, 2] == width)]
            amps = np.unique(full[:, 1])
            counts = np.array([np.unique(full[full[:, 1] == a][:, 5]).size for a in amps])
            ok = amps[counts >= 0.9 * kr.size]
            v_ab = float(min((ok[0] if ok.size else amps.max(initial=v_on)) + v_step, v_top))
            fits.append(DirectionFit(0.0, float("nan"), float("nan"), 0.0, float("nan"), float("nan"), float("nan"),
                                     v_on, int(od.shape[0]), True, v_ab))
            continue
        graded = _below_saturation(od)
        if graded.shape[0] < 4 or np.unique(graded[:, 1]).size < 2:
            # a steep device under strong noise leaves few clean rungs: accept half-significant rungs
            # and steps up to 0.6 of the headroom before giving up
            graded = _below_saturation(_uncensored(obs[obs[:, 0] == d], share=0.5), most=0.6)
        if graded.shape[0] < 4 or np.unique(graded[:, 1]).size < 2:
            word = "SET" if d == 0 else "RESET"
            raise ConfigError(f"characterisation: too few graded {word} steps to fit the kinetics "
                              f"({graded.shape[0]} points); increase the sample or lower v_step")
        fits.append(_fit_direction(graded[:, [1, 2, 3, 5]], v_ref, width, v_on))
    t1 = clock() if clock is not None else float("nan")
    bounds = BoundsMap(rows, cols, g_lo.reshape(shape), g_hi.reshape(shape), stuck.reshape(shape), p3 + p4)
    return Characterization(noise[0], noise[1], fits[0], fits[1], v_ref, width, bounds, kr, kc, obs,
                            p1 + p2 + p3 + p4 + p5, t1 - t0, t1)
