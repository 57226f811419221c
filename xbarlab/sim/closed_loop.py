"""Closed-loop (feedback) crossbar circuits: one-step linear solve and eigenvector.

Sun, Pedretti, Ambrosi, Bricalli, Wang, Ielmini, "Solving matrix equations in one step with
cross-point resistive arrays", PNAS 116, 4123 (2019): operational amplifiers with the array in
their feedback path settle to the solution of a matrix equation.

**Solve mode.** The matrix occupies rows r0..r0+n−1 and, in the differential layout, the column
pairs (c0+2j, c0+2j+1) (A ∝ G⁺ − G⁻); in the ``positive`` layout columns c0..c0+n−1 (A ∝ G).
Row i is the inverting input of op-amp i; its output V_i drives column c0+2j (j = i) directly
and column c0+2j+1 through a unity inverter. An input voltage U_i reaches the row through the
board's input conductance g_in. Kirchhoff's current law at row node v_i, with the op-amp law
V_i = A0·(V_os,i + e_n,i − v_i) (finite open-loop gain A0, input offset V_os, input noise e_n):

    g_in·(U_i − v_i) + Σ_c G_ic·(Vcol_c − v_i) = 0,   v_i = V_os,i + e_n,i − V_i/A0

so for ideal op-amps A·V = −g_in·U. The array's own physics (wire resistance, device I–V) is
included by evaluating the column-driven row currents of the crossbar model; the steady state is
found by Newton iterations on the linear (conductance-map) Jacobian. Outputs beyond the rails
clip (flagged). With op-amps as integrators (unity-gain bandwidth f_u), the dynamics are
dV/dt = −2π·f_u·D⁻¹(A·V + g_in·U) with D = diag(g_in + Σ_c G_ic): stable iff the eigenvalues of
D⁻¹A have positive real parts, and the settling time to ``adc_bits`` precision is
ln(2^bits)/(2π·f_u·λ_min(D⁻¹A)) (Sun, Pedretti, Ielmini, IEEE TED 67, 2945 (2020): the time
depends on the smallest eigenvalue, not on n).

**Eigenvector mode.** The array maps V to row currents A·V; transimpedance amplifiers with
feedback conductance g_λ and unity inverters feed V' = A·V/g_λ back to the columns. Components
along eigenvectors with λ > g_λ grow at rate 2π·f_u·(λ/g_λ − 1) from the offsets and noise until
the outputs reach the rails; the clipped steady state approximates the principal eigenvector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from xbarlab.protocol import board as bp

#: layouts of the matrix on the array
CLOSED_LOOP_LAYOUTS = ("differential", "positive")


@dataclass(frozen=True)
class OpAmpSpec:
    """Feedback-circuit parameters of the board (defaults: general-purpose precision op-amps).

    Sun et al. (2019) used AD823 op-amps (16 MHz GBW); we default to a slower 1 MHz part,
    typical of multi-channel boards. Offsets and inverter gain errors are fixed per channel
    (seeded), noise is drawn per operation.
    """

    open_loop_gain: float = 1e5  # V/V
    gbw: float = 1e6  # Hz, unity-gain bandwidth
    offset_sigma: float = 0.2e-3  # V, input offset spread (AD823 typical, as in Sun et al. 2019)
    noise_rms: float = 2e-6  # V, input-referred noise over the measurement bandwidth
    inverter_gain_sigma: float = 1e-3  # relative gain error of the unity inverters
    rail: float = 0.5  # V, output swing (also limits the array voltages)
    input_conductance: float = 100e-6  # S, g_in from each input DAC to its row node
    adc_bits: int = 14  # output-voltage ADC over ±rail
    max_time: float = 10e-3  # s, the eigenvector mode gives up after this long

    def __post_init__(self) -> None:
        for name in ("open_loop_gain", "gbw", "rail", "input_conductance", "max_time"):
            if not getattr(self, name) > 0:
                raise ValueError(f"closed-loop {name} must be > 0, got {getattr(self, name)}")
        for name in ("offset_sigma", "noise_rms", "inverter_gain_sigma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"closed-loop {name} must be >= 0, got {getattr(self, name)}")
        if not 1 <= self.adc_bits <= 24:
            raise ValueError(f"closed-loop adc_bits must be 1..24, got {self.adc_bits}")


@dataclass(frozen=True)
class ClosedLoopReading:
    """Output voltages of the op-amps (V) after settling."""

    voltages: np.ndarray  # V, one per op-amp (row), as digitised
    saturated: np.ndarray  # bool, output at a rail
    settle_time: float  # s, time the circuit needed (the clock advanced by this)
    stable: bool  # solve mode: D⁻¹A had eigenvalues with positive real parts; eigen mode: a mode grew
    input_conductance: float = 0.0  # S, g_in of the solve mode
    rail: float = 0.0  # V, output swing


class ClosedLoopCircuit:
    """The feedback circuit around a crossbar model (``CrossbarModel``-like: ``rows``, ``cols``,
    ``row_currents(col_voltages)``, ``conductance_map()``)."""

    def __init__(self, model: Any, spec: OpAmpSpec | None = None, *, seed: int = 0, clock: Any = None) -> None:
        self.model = model
        self.spec = spec or OpAmpSpec()
        self.clock = clock
        self.rows, self.cols = int(model.rows), int(model.cols)
        rng = np.random.default_rng(seed)
        self.offsets = rng.normal(0.0, self.spec.offset_sigma, self.rows)  # V, per op-amp
        self.inverter_gain = 1.0 + rng.normal(0.0, self.spec.inverter_gain_sigma, self.cols)
        self.inverter_offset = rng.normal(0.0, self.spec.offset_sigma, self.cols)  # V
        self.rng = np.random.default_rng(seed + 1)

    # -- geometry -------------------------------------------------------------------------------
    def _check(self, n: int, row0: int, col0: int, layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if layout not in CLOSED_LOOP_LAYOUTS:
            raise ValueError(f"closed-loop layout {layout!r}: expected one of {', '.join(CLOSED_LOOP_LAYOUTS)}")
        width = 2 * n if layout == "differential" else n
        if n < 1 or row0 < 0 or col0 < 0 or row0 + n > self.rows or col0 + width > self.cols:
            raise ValueError(
                f"a {n}x{n} closed-loop matrix ({layout}) at row {row0}, column {col0} needs rows "
                f"{row0}..{row0 + n - 1} and columns {col0}..{col0 + width - 1}; the array is {self.rows}x{self.cols}"
            )
        rows = np.arange(row0, row0 + n)
        if layout == "differential":
            plus = col0 + 2 * np.arange(n)
            return rows, plus, plus + 1
        return rows, col0 + np.arange(n), np.zeros(0, dtype=int)

    def _column_drive(self, v: np.ndarray, plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
        """Full column-voltage vector: V on the + columns, inverted V on the − columns."""
        col = np.zeros(self.cols)
        col[plus] = v
        if minus.size:
            col[minus] = -self.inverter_gain[minus] * v + self.inverter_offset[minus]
        return col

    def _linear(self, rows: np.ndarray, plus: np.ndarray, minus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A_eff, total row conductance S) from the conductance map: row currents ≈ A_eff·V + const."""
        g = np.asarray(self.model.conductance_map(), dtype=float)
        a = g[np.ix_(rows, plus)].copy()
        if minus.size:
            a -= g[np.ix_(rows, minus)] * self.inverter_gain[minus][None, :]
        return a, g[rows].sum(axis=1)

    def _digitise(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rail = self.spec.rail
        saturated = np.abs(v) >= rail * (1 - 1e-9)
        lsb = 2 * rail / (1 << self.spec.adc_bits)
        return np.clip(np.round(v / lsb) * lsb, -rail, rail), saturated

    def _advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)

    # -- solve mode --------------------------------------------------------------------------------
    def solve(
        self, inputs: np.ndarray, *, row0: int = 0, col0: int = 0, layout: str = "differential"
    ) -> ClosedLoopReading:
        """Steady state for input voltages U (V, one per row): ideally A·V = −g_in·U."""
        u = np.asarray(inputs, dtype=float)
        n = u.size
        rows, plus, minus = self._check(n, row0, col0, layout)
        sp = self.spec
        a_lin, s_row = self._linear(rows, plus, minus)
        s_tot = s_row + sp.input_conductance
        bias = self.offsets[rows] + self.rng.normal(0.0, sp.noise_rms, n)  # V_os + e_n per op-amp

        def residual(v: np.ndarray) -> np.ndarray:
            node = bias - v / sp.open_loop_gain
            i_rows = np.asarray(self.model.row_currents(self._column_drive(v, plus, minus)), dtype=float)[rows]
            return sp.input_conductance * u + i_rows - s_tot * node

        jac = a_lin + np.diag(s_tot / sp.open_loop_gain)
        d = s_tot  # node conductance seen by each integrator
        eig = np.linalg.eigvals(a_lin / d[:, None])
        lam_min = float(np.min(eig.real))
        stable = lam_min > 0
        if not stable:
            # the loop runs away: every output ends at a rail in the direction it started to move
            drift = -residual(np.zeros(n))  # the direction the integrators start to move
            v = np.where(drift >= 0, sp.rail, -sp.rail)
            self._advance(sp.max_time)
            out, _ = self._digitise(v)
            return ClosedLoopReading(out, np.ones(n, dtype=bool), sp.max_time, False, sp.input_conductance, sp.rail)
        r0 = residual(np.zeros(n))  # the constant part: inputs, offsets, inverter offsets
        try:
            v = np.linalg.solve(jac, -r0)
            clipped = np.abs(v) > sp.rail
            for _ in range(n):  # outputs beyond a rail saturate there; the others settle around them
                if not clipped.any():
                    break
                free = ~clipped
                held = np.sign(v[clipped]) * sp.rail
                v[clipped] = held
                if not free.any():
                    break
                v[free] = np.linalg.solve(jac[np.ix_(free, free)], -(r0[free] + jac[np.ix_(free, clipped)] @ held))
                over = free & (np.abs(v) > sp.rail)
                if not over.any():
                    break
                clipped |= over
            if not clipped.any():
                for _ in range(8):  # Newton on the true array physics (wires, I–V), linear Jacobian
                    r = residual(v)
                    if float(np.max(np.abs(r))) <= 1e-13 * float(np.max(np.abs(sp.input_conductance * u)) + 1e-30):
                        break
                    v = np.clip(v - np.linalg.solve(jac, r), -sp.rail, sp.rail)
        except np.linalg.LinAlgError:
            v = np.full(n, sp.rail)
        v = np.clip(v, -sp.rail, sp.rail)
        settle = math.log(2.0**sp.adc_bits) / (2 * math.pi * sp.gbw * lam_min)
        settle = min(settle, sp.max_time)
        self._advance(settle)
        out, sat = self._digitise(v)
        return ClosedLoopReading(out, sat, settle, True, sp.input_conductance, sp.rail)

    # the board-command names, so a circuit can stand in for a feedback-mode board
    def closed_loop_info(self) -> bp.ClosedLoopInfo:
        """The output rail (V) and input conductance g_in (S), as the board's CLOSED_LOOP_INFO reports them."""
        return bp.ClosedLoopInfo(float(self.spec.rail), float(self.spec.input_conductance))

    def closed_loop_solve(
        self, inputs: np.ndarray, *, row0: int = 0, col0: int = 0, layout: str = "differential"
    ) -> ClosedLoopReading:
        """Same as :meth:`solve` (the name of the board command)."""
        return self.solve(inputs, row0=row0, col0=col0, layout=layout)

    def closed_loop_eigen(
        self, g_lambda: float, n: int, *, row0: int = 0, col0: int = 0, layout: str = "differential"
    ) -> ClosedLoopReading:
        """Same as :meth:`eigenvector` (the name of the board command)."""
        return self.eigenvector(g_lambda, n, row0=row0, col0=col0, layout=layout)

    # -- eigenvector mode ------------------------------------------------------------------------
    def eigenvector(
        self, g_lambda: float, n: int, *, row0: int = 0, col0: int = 0, layout: str = "differential"
    ) -> ClosedLoopReading:
        """Free-running loop V' = A·V/g_λ from offsets and noise until it settles (or ``max_time``)."""
        if not g_lambda > 0:
            raise ValueError(f"feedback conductance g_lambda must be > 0 S, got {g_lambda}")
        rows, plus, minus = self._check(n, row0, col0, layout)
        sp = self.spec
        # effective matrix including the array physics: probe the column-driven row currents
        probe = 0.1 * sp.rail
        base = np.asarray(self.model.row_currents(self._column_drive(np.zeros(n), plus, minus)), dtype=float)[rows]
        a_eff = np.empty((n, n))
        for j in range(n):
            e = np.zeros(n)
            e[j] = probe
            i_rows = np.asarray(self.model.row_currents(self._column_drive(e, plus, minus)), dtype=float)[rows]
            a_eff[:, j] = (i_rows - base) / probe
        loop = a_eff / g_lambda
        drive = base / g_lambda + self.offsets[rows]  # inverter and op-amp offsets, referred to V'
        omega = 2 * math.pi * sp.gbw
        v0 = self.offsets[rows] + self.rng.normal(0.0, sp.noise_rms, n)
        v, t, grew = _clipped_loop(loop, drive, v0, omega, sp.rail, sp.max_time, sp.adc_bits)
        self._advance(t)
        out, sat = self._digitise(v + self.rng.normal(0.0, sp.noise_rms, n))
        return ClosedLoopReading(out, sat, t, grew, sp.input_conductance, sp.rail)


def _clipped_loop(
    loop: np.ndarray, drive: np.ndarray, v0: np.ndarray, omega: float, rail: float, max_time: float, bits: int
) -> tuple[np.ndarray, float, bool]:
    """Event-driven solution of dV/dt = ω·(L·V + o − V) with outputs clipped at ±rail.

    Linear phase in closed form (eigendecomposition) until the first output reaches a rail;
    then the free outputs relax to the steady state of the sub-system with the clipped ones
    held at their rails, adding outputs to the clipped set while any free one would exceed a
    rail. Returns (V, time, whether a mode grew and the loop settled).
    """
    n = len(v0)
    m = loop - np.eye(n)
    lam, p = np.linalg.eig(m)
    try:
        v_inf = -np.linalg.solve(m, drive)
        c = np.linalg.solve(p, v0 - v_inf)
    except np.linalg.LinAlgError:
        return np.clip(v0, -rail, rail), max_time, False
    growth = float(np.max(lam.real))
    if growth <= 0:  # every mode decays: the loop sits at its offset-driven fixed point
        relax = math.log(2.0**bits) / (omega * max(-growth, 1e-12))
        return np.clip(v_inf, -rail, rail), min(relax, max_time), False

    def state(t: float) -> np.ndarray:
        return np.real(p @ (np.exp(omega * lam * t) * c)) + v_inf

    hi = 1.0 / (omega * growth)
    while float(np.max(np.abs(state(hi)))) < rail:
        hi *= 2.0
        if hi > max_time:
            return np.clip(state(max_time), -rail, rail), max_time, False
    lo = 0.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(np.max(np.abs(state(mid)))) < rail:
            lo = mid
        else:
            hi = mid
    t = hi
    v = np.clip(state(t), -rail, rail)
    clipped = np.abs(v) >= rail * (1 - 1e-9)
    slowest = growth
    for _ in range(n):
        free = ~clipped
        if not free.any():
            break
        held = np.sign(v[clipped]) * rail
        sub = m[np.ix_(free, free)]
        rhs = -(m[np.ix_(free, clipped)] @ held + drive[free])
        sub_lam = np.linalg.eigvals(sub)
        if float(np.max(sub_lam.real)) >= 0:  # another mode still grows: its largest output clips next
            k = np.flatnonzero(free)[int(np.argmax(np.abs(v[free])))]
            v[k] = np.sign(v[k]) * rail
            clipped[k] = True
            continue
        v_free = np.linalg.solve(sub, rhs)
        over = np.abs(v_free) > rail
        if over.any():
            k = np.flatnonzero(free)[int(np.argmax(np.abs(v_free)))]
            v[k] = np.sign(v_free[int(np.argmax(np.abs(v_free)))]) * rail
            clipped[k] = True
            continue
        v[free] = v_free
        slowest = float(-np.max(sub_lam.real))
        break
    t += math.log(2.0**bits) / (omega * max(slowest, 1e-12))
    return v, min(t, max_time), t <= max_time
