"""3T1C capacitor cells: the volatile, near-linear least-significant pair of Ambrogio et al. (Nature 558, 60, 2018).

Each cell stores its weight as the voltage V_c (V) on a capacitor. Two transistors add or remove
charge: a charge step through the pull-up (PMOS) raises V_c by ΔV⁺, a step through the pull-down
(NMOS) lowers it by ΔV⁻ (one step = one fixed-width gate pulse). The third transistor reads: its
gate is the capacitor, so the cell conducts g(V_c) between its row and column lines (triode, small
drain voltage). The weight contribution of a pair is g⁺ − g⁻.

Physics, vectorised over ``rows × cols`` cells (one 3T1C cell beside every PCM cell of the array):

* **charge steps** ΔV⁺ = ``dv_step``·a⁺ᵢ·(1 − e^{−(V_dd − V_c)/V_knee})·(1 + σ_c2c·z) and
  ΔV⁻ = ``dv_step``·a⁻ᵢ·(1 − e^{−V_c/V_knee})·(1 + σ_c2c·z); a⁺ᵢ, a⁻ᵢ are drawn once per cell with
  spread ``step_d2d`` each, independently, so every cell has its own fixed up/down asymmetry
  (PMOS/NMOS mismatch — the asymmetry Ambrogio's polarity inversion cancels). The factor in
  brackets makes the current source run out of headroom near the rails; V_c stays in [0, V_dd].
* **leakage**: V_c relaxes to ``v_leak`` with a time constant τᵢ (spread ``tau_d2d``), evaluated
  at the simulated clock's time (the capacitor is volatile: instrument time alone changes it).
* **read transistor**: g(V_c) = β·u/(1 + θ·u) with the smooth overdrive u = n·φ_t·ln(1 + e^{(V_c − V_th)/(n·φ_t)})
  (sub-threshold → triode, EKV-style interpolation) and mobility degradation θ: g is not linear in
  V_c, so equal charge steps give unequal conductance steps. V_th and β vary cell to cell.
* **reset**: V_c is set to ``v_reset`` (± ``reset_sigma``) through the charge transistors.
* **read noise**: relative ``read_noise`` (1σ) of g.

Parameter sources. Ambrogio 2018 gives the architecture (W = F·(G⁺ − G⁻) + g⁺ − g⁻, F = 3), that
the capacitor update is near-linear and symmetric in the ideal case, that the real cells' charge
and discharge currents are mismatched from cell to cell (cancelled by polarity inversion), and that
the capacitor leaks, so the transfer interval must be short against the retention. The numbers
below are **judgements**, not measured values of that paper: a ~100 steps window (dv_step 8 mV over
0.8 V, the paper's "near-linear" range of the read transistor), 10 % d2d mismatch of each charge
path (typical matched-pair σ of small CMOS devices), 2 % c2c noise, τ = 10 s (a ~100 fF capacitor
with ~10 fA off-state leakage: 0.1 V/s), V_th = 0.3 V ± 10 mV, β = 20 µS/V, θ = 0.5 /V (g ≈ 0–10 µS,
5 µS at the reset level), read noise 0.2 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from xbarlab.sim.clock import SimClock

THERMAL_VOLTAGE = 0.02585  # V, kT/q at 300 K


@dataclass(frozen=True)
class CapCellParams:
    """3T1C cell parameters (V, s, S); see the module docstring for sources and judgements."""

    v_dd: float = 1.0  # V, capacitor voltage rail (V_c ∈ [0, v_dd])
    v_reset: float = 0.6  # V, capacitor voltage after a reset
    reset_sigma: float = 0.002  # V, 1σ error of the reset level
    dv_step: float = 0.008  # V per nominal charge step
    step_d2d: float = 0.10  # relative cell-to-cell spread of each charge path (up and down independent)
    step_c2c: float = 0.02  # relative step-to-step noise
    v_knee: float = 0.05  # V, headroom over which a charge path runs out near its rail
    tau: float = 10.0  # s, leakage time constant (median)
    tau_d2d: float = 0.2  # relative spread of τ (log-normal σ)
    v_leak: float = 0.0  # V, voltage the capacitor leaks towards
    v_th: float = 0.3  # V, read-transistor threshold
    v_th_sigma: float = 0.01  # V, 1σ cell-to-cell threshold spread
    beta: float = 20e-6  # S/V, read-transistor transconductance factor
    beta_d2d: float = 0.05  # relative spread of β
    theta: float = 0.5  # 1/V, mobility degradation
    slope_factor: float = 1.5  # sub-threshold slope factor n
    read_noise: float = 0.002  # relative 1σ read noise of g
    step_time: float = 50e-9  # s, duration of one charge step (gate pulse) on the board

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"cap cell {f.name} must be a finite number, got {value!r}")
        positive = ("v_dd", "dv_step", "v_knee", "tau", "beta", "slope_factor", "step_time")
        bad = [n for n in positive if getattr(self, n) <= 0]
        if bad:
            raise ValueError(f"cap cell {', '.join(bad)} must be > 0")
        negative = [f.name for f in fields(self) if getattr(self, f.name) < 0 and f.name not in ("v_leak",)]
        if negative:
            raise ValueError(f"cap cell {', '.join(negative)} must be >= 0")
        if not 0 <= self.v_reset <= self.v_dd or not 0 <= self.v_leak <= self.v_dd:
            raise ValueError(f"cap cell v_reset and v_leak must lie within [0, v_dd = {self.v_dd:g}] V")


def cap_params(table: dict[str, Any] | None) -> CapCellParams:
    """:class:`CapCellParams` from a station's ``[sim.cap_cells]`` table (ValueError naming an unknown key)."""
    table = dict(table or {})
    known = {f.name for f in fields(CapCellParams)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"unknown cap cell parameter(s) {', '.join(unknown)}; expected some of {sorted(known)}")
    return CapCellParams(**table)


class CapacitorArray:
    """``rows × cols`` 3T1C cells on the simulated clock (V, S, s)."""

    def __init__(self, rows: int, cols: int, params: CapCellParams | None = None, *, seed: int = 0,
                 clock: SimClock | None = None) -> None:
        if rows < 1 or cols < 1:
            raise ValueError(f"a capacitor array needs at least one row and column, got {rows}x{cols}")
        self.rows, self.cols = int(rows), int(cols)
        self.params = p = params or CapCellParams()
        self.clock = clock or SimClock()
        self.rng = np.random.default_rng(seed)
        n = self.rows * self.cols
        shape = (self.rows, self.cols)
        self.up = np.maximum(1 + p.step_d2d * self.rng.standard_normal(n), 0.1).reshape(shape)
        self.down = np.maximum(1 + p.step_d2d * self.rng.standard_normal(n), 0.1).reshape(shape)
        self.tau = (p.tau * np.exp(p.tau_d2d * self.rng.standard_normal(n))).reshape(shape)
        self.v_th = (p.v_th + p.v_th_sigma * self.rng.standard_normal(n)).reshape(shape)
        self.beta = (p.beta * np.maximum(1 + p.beta_d2d * self.rng.standard_normal(n), 0.1)).reshape(shape)
        self._v = np.full(shape, p.v_reset)  # V at self._t
        self._t = np.full(shape, self.clock.now)  # s, when each cell's voltage was last set
        self.steps_applied = 0
        self.resets_applied = 0

    # -- state -----------------------------------------------------------------------------------------
    def voltages(self, t: float | None = None) -> np.ndarray:
        """Capacitor voltages (V) at simulated time ``t`` (default now), leakage included."""
        t = self.clock.now if t is None else float(t)
        p = self.params
        decay = np.exp(-np.maximum(t - self._t, 0.0) / self.tau)
        return p.v_leak + (self._v - p.v_leak) * decay

    def _settle(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Bring the listed cells' stored voltage to now (leakage applied); returns their voltages."""
        now = self.clock.now
        p = self.params
        v = p.v_leak + (self._v[rows, cols] - p.v_leak) * np.exp(-np.maximum(now - self._t[rows, cols], 0.0)
                                                                  / self.tau[rows, cols])
        self._v[rows, cols] = v
        self._t[rows, cols] = now
        return v

    def conductance_of(self, v: np.ndarray, rows: Any = slice(None), cols: Any = slice(None)) -> np.ndarray:
        """Read-transistor conductance (S) at capacitor voltages ``v`` of the given cells."""
        p = self.params
        nphi = p.slope_factor * THERMAL_VOLTAGE
        u = nphi * np.logaddexp(0.0, (v - self.v_th[rows, cols]) / nphi)
        return self.beta[rows, cols] * u / (1.0 + p.theta * u)

    def conductance_map(self) -> np.ndarray:
        """Conductance of every cell now (S), without read noise."""
        return self.conductance_of(self.voltages())

    def read_sigma(self, g: np.ndarray) -> np.ndarray:
        """1σ of one read of conductances ``g`` (S)."""
        return self.params.read_noise * np.abs(g)

    # -- operations ------------------------------------------------------------------------------------
    def step(self, rows: np.ndarray, cols: np.ndarray, steps: np.ndarray) -> None:
        """Apply ``steps[k]`` charge steps to cell (rows[k], cols[k]): > 0 charge (pull-up), < 0 discharge.

        Records are applied in order; each record's steps are applied one at a time (the headroom
        factor changes as V_c moves). Advances nothing: the board emulator charges the clock.
        """
        rows = np.asarray(rows, dtype=np.intp)
        cols = np.asarray(cols, dtype=np.intp)
        steps = np.asarray(steps, dtype=np.int64)
        p = self.params
        # the records' cells may repeat: process them in rounds of distinct cells, each record's steps in turn
        order_keys = rows * self.cols + cols
        remaining = np.abs(steps)
        sign = np.sign(steps)
        pending = np.flatnonzero(remaining > 0)
        while pending.size:
            _, first = np.unique(order_keys[pending], return_index=True)
            batch = pending[np.sort(first)]
            r, c, s = rows[batch], cols[batch], sign[batch]
            count = remaining[batch]
            v = self._settle(r, c)
            top = int(count.max())
            for k in range(top):
                live = count > k
                if not live.any():
                    break
                rr, cc, ss, vv = r[live], c[live], s[live], v[live]
                z = self.rng.standard_normal(rr.size)
                up = p.dv_step * self.up[rr, cc] * -np.expm1(-(p.v_dd - vv) / p.v_knee)
                down = p.dv_step * self.down[rr, cc] * -np.expm1(-vv / p.v_knee)
                dv = np.where(ss > 0, up, -down) * (1.0 + p.step_c2c * z)
                v[live] = np.clip(vv + dv, 0.0, p.v_dd)
            self._v[r, c] = v
            self.steps_applied += int(count.sum())
            remaining[batch] = 0
            pending = np.flatnonzero(remaining > 0)

    def reset(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Set the listed cells' capacitor voltage to ``v_reset`` (with the reset error)."""
        rows = np.asarray(rows, dtype=np.intp)
        cols = np.asarray(cols, dtype=np.intp)
        p = self.params
        v = np.clip(p.v_reset + p.reset_sigma * self.rng.standard_normal(rows.size), 0.0, p.v_dd)
        self._v[rows, cols] = v
        self._t[rows, cols] = self.clock.now
        self.resets_applied += int(rows.size)

    def read(self, rows: np.ndarray, cols: np.ndarray, voltage: float) -> np.ndarray:
        """Currents (A) of the listed cells biased at ``voltage`` V, with read noise."""
        rows = np.asarray(rows, dtype=np.intp)
        cols = np.asarray(cols, dtype=np.intp)
        g = self.conductance_of(self.voltages()[rows, cols], rows, cols)
        g = g + self.read_sigma(g) * self.rng.standard_normal(g.size)
        return g * voltage

    def column_currents(self, row_voltages: np.ndarray) -> np.ndarray:
        """Forward MVM through the read transistors: rows driven (V), columns at virtual ground (A)."""
        g = self._noisy_map()
        return np.asarray(row_voltages, dtype=float) @ g

    def row_currents(self, col_voltages: np.ndarray) -> np.ndarray:
        """Transpose MVM: columns driven (V), rows at virtual ground (A)."""
        g = self._noisy_map()
        return g @ np.asarray(col_voltages, dtype=float)

    def _noisy_map(self) -> np.ndarray:
        g = self.conductance_map()
        return g + self.read_sigma(g) * self.rng.standard_normal(g.shape)
