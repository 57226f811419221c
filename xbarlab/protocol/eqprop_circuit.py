"""The nonlinear resistive network of equilibrium propagation, solved by Newton's method.

Kendall, Pantone, Manickavasagam, Bengio, Scellier, "Training end-to-end analog neural networks
with equilibrium propagation" (arXiv:2006.01981, 2020): crossbar conductances are the weights,
diode pairs are the neurons' nonlinearity, bidirectional amplifiers sit between layers, inputs
are voltage sources, and the circuit settles where Kirchhoff's current law holds at every node,
the minimum of its (layer-weighted) co-content.

This module is the circuit of the board's equilibrium-network mode (docs/board-protocol.md §5.11):
the emulator solves it on the array's devices, the host solves it with ideal devices as the float
reference. Units: V, A, S, s, F.

**Circuit.** Every row line of a tile is driven by a voltage source: an input ``±x_i`` (the input
and its inverted copy, so positive conductances give signed weights), a bias pair ``±V_b``, or an
amplifier output ``±a(u_j)`` of a hidden neuron ``j``. Every column of a tile is a node (a neuron):
hidden nodes carry a pair of diodes (Shockley with series resistance, each in series with a bias
source: ``D+`` from the node to ``b``, ``D−`` from ``−b`` to the node) and drive an amplifier;
output nodes carry an optional load conductance to ground and the nudging current sources. A cell
between row r and node c conducts ``i = G·V0·sinh(ΔV/V0)`` with ``ΔV = V_r − V_c`` (the cell I–V of
:mod:`xbarlab.sim.array`; ``v0=None``: ideal ohmic cells). ``g`` may hold conductances for every
(row, node) pair: where one tile's rows cross another tile's columns the crossbar's cells conduct
too, and the board includes them.

**Amplifier.** ``a(u) = rail·tanh(A·u/rail)``: voltage gain A forward with soft rails; backward,
the current its output rows draw reaches its input node multiplied by ``a'(u)/A²`` (1/A for small
signals: Kendall et al.'s bidirectional amplifier, voltage gain A forward, current gain 1/A
backward). With it, and without off-tile cells, the circuit is a gradient system: KCL at the
nodes of layer l, multiplied by ``w_l = A^(−2(l−1))``, is ∂E/∂V of ::

    E(V) = Σ_rc w_c·G_rc·F(V_r − V_c) + Σ_hidden w_c·[J(V_c − b) + J(−b − V_c)]
           + Σ_out w_c·(½·G_L·V_c² − I_c·V_c)

with ``F(v) = V0²·(cosh(v/V0) − 1)`` (``½v²`` for ohmic cells) and J the co-content of a diode.
So the equilibrium is the minimum of E and ``∂E/∂G_rc = w_c·F(ΔV_rc)``: the local rule of
equilibrium propagation. (Off-tile cells between an amplifier's rows and the nodes of its own
layer are not reciprocal; with them the network has an equilibrium but no exact energy.)

**Solver.** Newton's method on the weighted nodal equations with a backtracking line search on
the squared residual; the Newton systems of a batch of independent samples form one
block-diagonal ``scipy.sparse`` matrix. Converged when every KCL residual is below a tolerance and
the last step moved no node by more than 1 nV; otherwise :class:`EquilibriumError`.

**Settling time.** Each node has a capacitance C (judgement: 10 pF, a board-level node: line,
switch matrix, diode junctions, amplifier input). Near equilibrium C·dV/dt = −J·δV (J: the
unweighted nodal Jacobian), so the slowest mode relaxes with τ = C/λ_min(J); an amplifier of gain A
and unity-gain bandwidth f_u follows with τ_a = A/(2π·f_u). The nodes are within one ADC LSB of
equilibrium after ``ln(2^bits)·max(τ, τ_a)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.special import wrightomega

#: row driver kinds
ROW_INPUT, ROW_CONST, ROW_AMP = 0, 1, 2


class EquilibriumError(ArithmeticError):
    """The nonlinear network did not converge (the message names the sample, residual and iterations)."""


@dataclass(frozen=True)
class DiodeSpec:
    """One diode: Shockley law with series resistance; the pair sits in series with ±``bias`` sources.

    Defaults: a small-signal silicon diode (1N4148-like: I_s ≈ 2.5 nA, n ≈ 1.75, R_s ≈ 0.6 Ω) would
    clamp near 0.5 V at mA; we default to a low-leakage part with I_s = 1 nA, n = 1.5 and R_s = 100 Ω
    (series resistor for current limiting), and bias sources of −0.25 V that move the knee of the
    pair to ≈ ±0.1 V at the µA–100 µA currents of this network (judgement).
    """

    saturation_current: float = 1e-9  # A
    ideality: float = 1.5
    thermal_voltage: float = 0.025852  # V, kT/q at 300 K
    series_resistance: float = 100.0  # Ω
    bias: float = -0.25  # V, D+ conducts above bias + knee, D− below −(bias + knee)

    def __post_init__(self) -> None:
        for name in ("saturation_current", "ideality", "thermal_voltage", "series_resistance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"diode {name} must be finite and > 0, got {value}")
        if not math.isfinite(self.bias):
            raise ValueError(f"diode bias must be finite, got {self.bias}")

    @property
    def nvt(self) -> float:
        return self.ideality * self.thermal_voltage

    def _omega(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z, ω(z)) with I + I_s = (nVt/R_s)·ω(z): the Lambert-W solution of V = R_s·I + nVt·ln(1 + I/I_s)."""
        i_s, r_s, nvt = self.saturation_current, self.series_resistance, self.nvt
        z = math.log(i_s * r_s / nvt) + (np.asarray(v, dtype=float) + i_s * r_s) / nvt
        return z, np.real(wrightomega(z))

    def current(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(I A, dI/dV S) of one diode at forward voltage ``v`` (V), series resistance included (Lambert W)."""
        _, w = self._omega(v)
        p = (self.nvt / self.series_resistance) * w  # I + I_s, > 0 without cancellation
        return p - self.saturation_current, 1.0 / (self.series_resistance + self.nvt / p)

    def cocontent(self, v: np.ndarray) -> np.ndarray:
        """∫₀^v I dv' (J): V·I minus the content R_s·I²/2 + nVt·((I + I_s)·ln(1 + I/I_s) − I)."""
        i_s, r_s, nvt = self.saturation_current, self.series_resistance, self.nvt
        z, w = self._omega(v)
        p = (nvt / r_s) * w
        i = p - i_s
        log_ratio = (np.asarray(v, dtype=float) + i_s * r_s) / nvt - w  # ln((I + I_s)/I_s), from ln ω = z − ω
        content = 0.5 * r_s * i**2 + nvt * (p * log_ratio - i)
        return v * i - content


@dataclass(frozen=True)
class AmplifierSpec:
    """Bidirectional amplifier between layers: a(u) = rail·tanh(gain·u/rail), backward current × a'(u)."""

    gain: float = 4.0  # V/V, small-signal voltage gain
    rail: float = 0.5  # V, output swing (the outputs drive array rows)
    gbw: float = 10e6  # Hz, unity-gain bandwidth (sets the amplifier's settling)

    def __post_init__(self) -> None:
        for name in ("gain", "rail", "gbw"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"amplifier {name} must be finite and > 0, got {value}")

    def transfer(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a(u) V, a'(u), a''(u) 1/V)."""
        t = np.tanh(self.gain * u / self.rail)
        d1 = self.gain * (1 - t * t)
        d2 = -2.0 * self.gain**2 / self.rail * t * (1 - t * t)
        return self.rail * t, d1, d2


@dataclass(frozen=True)
class NeuronSpec:
    """The circuit around the crossbar: diodes, amplifiers, bias rows, output load, node capacitance."""

    diode: DiodeSpec = field(default_factory=DiodeSpec)
    amplifier: AmplifierSpec = field(default_factory=AmplifierSpec)
    bias_voltage: float = 0.2  # V, the ±V_b bias rows of every tile
    output_load: float = 0.0  # S, from every output node to ground
    node_capacitance: float = 10e-12  # F per node (judgement, see the module docstring)


@dataclass(frozen=True)
class Topology:
    """Which source drives each row line and which layer each node (column) belongs to.

    ``row_kind`` (ROW_INPUT/ROW_CONST/ROW_AMP), ``row_index`` (input feature or driving node),
    ``row_sign`` (±1), ``row_value`` (V, for constant rows); ``node_hidden`` (True: diode pair and
    amplifier; False: output node), ``output_nodes`` (node indices of the outputs in order),
    ``node_layer`` (1-based layer of each node).
    """

    row_kind: np.ndarray
    row_index: np.ndarray
    row_sign: np.ndarray
    row_value: np.ndarray
    node_hidden: np.ndarray
    output_nodes: np.ndarray
    n_inputs: int
    node_layer: np.ndarray  # 1-based layer of every node

    @property
    def rows(self) -> int:
        return len(self.row_kind)

    @property
    def nodes(self) -> int:
        return len(self.node_hidden)


def layered_topology(sizes: list[int], bias_voltage: float) -> tuple[Topology, list[tuple[slice, slice]]]:
    """Topology of a layered network of ``sizes`` (inputs, hidden..., outputs), tiles in block-diagonal order.

    Tile l has rows 2·(n_l + 1): unit i of layer l drives rows 2i (+) and 2i+1 (−), the last pair is
    the bias pair ±V_b; its columns are the n_{l+1} nodes of layer l+1. Returns the topology (rows and
    nodes in tile order) and each tile's (row slice, node slice).
    """
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"a layered network needs at least an input and an output layer of >= 1 units, got {sizes}")
    kinds, index, sign, value, tiles = [], [], [], [], []
    node0 = 0
    row0 = 0
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        prev0 = node0 - n_in  # first node of the previous layer (hidden layers only)
        for i in range(n_in):
            for s in (1, -1):
                kinds.append(ROW_INPUT if layer == 0 else ROW_AMP)
                index.append(i if layer == 0 else prev0 + i)
                sign.append(s)
                value.append(0.0)
        for s in (1, -1):
            kinds.append(ROW_CONST)
            index.append(-1)
            sign.append(s)
            value.append(s * bias_voltage)
        n_rows = 2 * (n_in + 1)
        tiles.append((slice(row0, row0 + n_rows), slice(node0, node0 + n_out)))
        row0 += n_rows
        node0 += n_out
    hidden = np.zeros(node0, dtype=bool)
    hidden[: node0 - sizes[-1]] = True
    layer_of = np.repeat(np.arange(1, len(sizes)), sizes[1:])
    topo = Topology(np.array(kinds), np.array(index), np.array(sign, dtype=float), np.array(value),
                    hidden, np.arange(node0 - sizes[-1], node0), sizes[0], layer_of)
    return topo, tiles



@dataclass(frozen=True)
class Equilibrium:
    """Settled network of a batch: node and row voltages (V), Newton iterations, settling."""

    nodes: np.ndarray  # (B, N) V
    rows: np.ndarray  # (B, R) V, the row-line voltages (inputs, bias, amplifier outputs)
    iterations: int
    rate: np.ndarray  # (B,) S, slowest relaxation rate C/τ: smallest real part of the nodal Jacobian's eigenvalues
    settle_time: np.ndarray  # (B,) s


class EquilibriumNetwork:
    """The network of ``topology`` with neurons ``spec`` on conductances ``g`` (S, rows × nodes, or one
    such map per sample: batch × rows × nodes).

    ``v0`` (V): cell I–V scale, i = G·V0·sinh(ΔV/V0); None for ohmic (ideal) cells.
    """

    def __init__(self, topology: Topology, spec: NeuronSpec, v0: float | None = 1.0) -> None:
        self.topo = topology
        self.spec = spec
        self.v0 = None if v0 is None else float(v0)
        t = topology
        self._amp_rows = np.flatnonzero(t.row_kind == ROW_AMP)
        self._amp_node = t.row_index[self._amp_rows]
        self._in_rows = np.flatnonzero(t.row_kind == ROW_INPUT)
        self._const_rows = np.flatnonzero(t.row_kind == ROW_CONST)
        self._hidden = np.flatnonzero(t.node_hidden)
        self._owner = np.zeros((t.rows, t.nodes))  # (R, N) one-hot: the node whose amplifier drives each row
        self._owner[self._amp_rows, self._amp_node] = 1.0
        gain = spec.amplifier.gain
        #: KCL weight of every node, w_l = A^(−2(l−1)): the weighted equations are the gradient of E
        self.node_weight = gain ** (-2.0 * (np.asarray(t.node_layer, dtype=float) - 1.0))

    # -- element laws ------------------------------------------------------------------------------------
    def _f(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(F(v) V², f(v) V, f'(v)) of a unit cell: co-content, current and conductance per siemens."""
        if self.v0 is None:
            return 0.5 * v * v, v, np.ones_like(v)
        x = v / self.v0
        return self.v0**2 * (np.cosh(x) - 1.0), self.v0 * np.sinh(x), np.cosh(x)

    def cell_cocontent(self, dv: np.ndarray) -> np.ndarray:
        """F(ΔV) per unit conductance (V²): ∂E/∂G of a cell with voltage drop ``dv``, before the node weight."""
        return self._f(np.asarray(dv, dtype=float))[0]

    def row_voltages(self, x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row voltages (B, R) V, ∂V_r/∂V_owner (B, R), s·a''(u) (B, R) 1/V) for inputs x and nodes v."""
        t = self.topo
        b = v.shape[0]
        vr = np.empty((b, t.rows))
        d1 = np.zeros((b, t.rows))
        d2 = np.zeros((b, t.rows))
        vr[:, self._in_rows] = t.row_sign[self._in_rows] * x[:, t.row_index[self._in_rows]]
        vr[:, self._const_rows] = t.row_value[self._const_rows]
        if self._amp_rows.size:
            a, a1, a2 = self.spec.amplifier.transfer(v[:, self._amp_node])
            s = t.row_sign[self._amp_rows]
            vr[:, self._amp_rows] = s * a
            d1[:, self._amp_rows] = s * a1
            d2[:, self._amp_rows] = s * a2
        return vr, d1, d2

    def _diodes(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(co-content W, current out of the node A, conductance S) of the diode pairs, (B, hidden)."""
        d = self.spec.diode
        u = v[:, self._hidden]
        i_up, g_up = d.current(u - d.bias)
        i_dn, g_dn = d.current(-d.bias - u)
        return d.cocontent(u - d.bias) + d.cocontent(-d.bias - u), i_up - i_dn, g_up + g_dn

    # -- energy (reciprocal networks) ---------------------------------------------------------------------
    def energy(self, g: np.ndarray, x: np.ndarray, v: np.ndarray, inject: np.ndarray | None = None) -> np.ndarray:
        """E (W, layer-weighted co-content minus the injected work) per sample (B,); exact without
        off-tile cells between an amplifier's rows and its own layer's nodes."""
        x, v = np.atleast_2d(x), np.atleast_2d(v)
        w = self.node_weight
        vr, _, _ = self.row_voltages(x, v)
        e = (w * g * self._f(vr[:, :, None] - v[:, None, :])[0]).sum(axis=(1, 2))
        if self._hidden.size:
            e += (w[self._hidden] * self._diodes(v)[0]).sum(axis=1)
        out = self.topo.output_nodes
        vo = v[:, out]
        e += (w[out] * 0.5 * self.spec.output_load * vo**2).sum(axis=1)
        if inject is not None:
            e -= (w[out] * np.atleast_2d(inject) * vo).sum(axis=1)
        return e

    # -- nodal equations -----------------------------------------------------------------------------------
    def residual(self, g: np.ndarray, x: np.ndarray, v: np.ndarray, inject: np.ndarray | None = None,
                 jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(KCL residual (B, N) A: current leaving each node, unweighted; its Jacobian (B, N, N) S or None)."""
        t = self.topo
        gain2 = self.spec.amplifier.gain ** 2
        vr, d1, d2 = self.row_voltages(x, v)
        dv = vr[:, :, None] - v[:, None, :]
        if self.v0 is None:  # ohmic cells: the conductances themselves
            cur, k = g * dv, np.broadcast_to(g, dv.shape)
        else:
            cur, k = g * (self.v0 * np.sinh(dv / self.v0)), g * np.cosh(dv / self.v0)
        res = -cur.sum(axis=1)
        rows_out = cur.sum(axis=2)  # (B, R) A, current each row line sends into the array
        if self._amp_rows.size:
            res += ((d1 * rows_out) @ self._owner) / gain2  # reflected to the amplifier's input: a'(u)/A²
        hidden = self._hidden
        if hidden.size:
            _, i_d, g_d = self._diodes(v)
            res[:, hidden] += i_d
        out = t.output_nodes
        gl = self.spec.output_load
        res[:, out] += gl * v[:, out]
        if inject is not None:
            res[:, out] -= inject
        if not jacobian:
            return res, None
        n = t.nodes
        diag = k.sum(axis=1)
        jac = np.zeros((v.shape[0], n, n))
        if self._amp_rows.size:
            m = np.matmul(self._owner.T, d1[:, :, None] * k)  # m[j, c] = Σ_{r of j} a'_r·k_rc
            jac -= m.transpose(0, 2, 1) + m / gain2
            diag += ((d1 * d1 * k.sum(axis=2) + d2 * rows_out) @ self._owner) / gain2
        if hidden.size:
            diag[:, hidden] += g_d
        diag[:, out] += gl
        idx = np.arange(n)
        jac[:, idx, idx] += diag
        return res, jac

    def solve(self, g: np.ndarray, x: np.ndarray, inject: np.ndarray | None = None, v_init: np.ndarray | None = None,
              *, tol: float = 1e-13, max_iter: int = 60, bits: int = 14) -> Equilibrium:
        """Node voltages where KCL holds, for inputs ``x`` (B, n_in) V and output injections (B, n_out) A.

        Converged when every KCL residual is below ``tol`` A plus 1e-9 of the largest possible cell
        current and the last Newton step moved no node by more than 1 nV; raises EquilibriumError.
        """
        t = self.topo
        g = np.asarray(g, dtype=float)
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if x.ndim != 2 or x.shape[1] != t.n_inputs:
            raise ValueError(f"inputs must have {t.n_inputs} columns, got shape {x.shape}")
        b = x.shape[0]
        if g.shape not in ((t.rows, t.nodes), (b, t.rows, t.nodes)):
            raise ValueError(f"conductances must have shape ({t.rows}, {t.nodes}) or ({b}, {t.rows}, {t.nodes}) "
                             f"(one map per sample), got {g.shape}")
        if inject is not None:
            inject = np.atleast_2d(np.asarray(inject, dtype=float))
            if inject.shape != (b, len(t.output_nodes)):
                raise ValueError(f"injections must have shape ({b}, {len(t.output_nodes)}), got {inject.shape}")
        v = np.zeros((b, t.nodes)) if v_init is None else np.array(v_init, dtype=float)
        n = t.nodes
        w = self.node_weight
        swing = max(float(np.abs(x).max(initial=0.0)), self.spec.amplifier.rail, abs(self.spec.bias_voltage))
        threshold = tol + 1e-9 * float(np.abs(g).sum(axis=-2).max()) * swing
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            res, jac = self.residual(g, x, v, inject)
            merit = (res**2).sum(axis=1)
            it = 0
            while it < max_iter:
                it += 1
                mat = sp.block_diag(list(jac * w[None, :, None]), format="csc")  # weighted: symmetric if reciprocal
                step = -spla.spsolve(mat, (res * w).ravel()).reshape(b, n)
                if not np.isfinite(step).all():  # singular: fall back to a small gradient step
                    step = np.where(np.isfinite(step), step, -res * 1e-3)
                alpha = np.ones(b)
                for _ in range(30):  # backtracking on the squared residual, per sample
                    trial = v + alpha[:, None] * step
                    r_trial, _ = self.residual(g, x, trial, inject, jacobian=False)
                    m_trial = (r_trial**2).sum(axis=1)
                    ok = m_trial <= (1 - 1e-4 * alpha) * merit + threshold**2
                    if ok.all():
                        break
                    alpha = np.where(ok, alpha, 0.5 * alpha)
                moved = float(np.abs(alpha[:, None] * step).max())
                v = v + alpha[:, None] * step
                res, jac = self.residual(g, x, v, inject)
                merit = (res**2).sum(axis=1)
                if float(np.abs(res).max()) <= threshold and moved <= 1e-9:
                    break
            if float(np.abs(res).max()) > threshold or moved > 1e-9:
                worst = int(np.argmax(np.abs(res).max(axis=1)))
                raise EquilibriumError(
                    f"equilibrium network: Newton did not converge in {max_iter} iterations: sample {worst} has a "
                    f"KCL residual of {float(np.abs(res[worst]).max()):.3g} A (tolerance {threshold:.3g} A)")
        rate = np.linalg.eigvals(jac).real.min(axis=1)
        return Equilibrium(v, self.row_voltages(x, v)[0], it, rate, self.settle_time(rate, bits))

    def settle_time(self, rate: np.ndarray, bits: int = 14) -> np.ndarray:
        """Time (s) to settle within 2^-bits of the swing: RC (node capacitance / slowest rate) or the amplifiers."""
        spec = self.spec
        tau = spec.node_capacitance / np.maximum(np.asarray(rate, dtype=float), 1e-15)
        if self._amp_rows.size:
            tau = np.maximum(tau, spec.amplifier.gain / (2 * math.pi * spec.amplifier.gbw))
        return math.log(2.0**bits) * tau

    def layer_factor(self) -> np.ndarray:
        """Per node: w_c / w_out, the factor of the EP rule ∂C/∂G_rc = (w_c/w_out)/β·[F(ΔV^β) − F(ΔV^0)]."""
        out_w = self.node_weight[self.topo.output_nodes[0]]
        return self.node_weight / out_w
