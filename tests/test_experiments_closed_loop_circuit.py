"""Physics of the one-step closed-loop circuit (xbarlab.sim.closed_loop) on a linear array double."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.sim.clock import SimClock
from xbarlab.sim.closed_loop import ClosedLoopCircuit, OpAmpSpec


class LinearArrayDouble:
    """TEST DOUBLE of CrossbarModel: ideal ohmic cells, no wires."""

    def __init__(self, g: np.ndarray) -> None:
        self.g = g
        self.rows, self.cols = g.shape

    def conductance_map(self) -> np.ndarray:
        return self.g.copy()

    def row_currents(self, col_voltages: np.ndarray) -> np.ndarray:
        return self.g @ col_voltages


def spd(n: int, cond: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.geomspace(1.0, cond, n)
    return (q * lam) @ q.T, q, lam


def differential(a: np.ndarray, g_min: float = 1e-6, g_span: float = 99e-6) -> tuple[np.ndarray, float]:
    unit = g_span / np.abs(a).max()
    g = np.full((a.shape[0], 2 * a.shape[1]), g_min)
    g[:, 0::2] += np.maximum(a, 0) * unit
    g[:, 1::2] += np.maximum(-a, 0) * unit
    return g, unit


IDEAL = OpAmpSpec(open_loop_gain=1e12, offset_sigma=0.0, noise_rms=0.0, inverter_gain_sigma=0.0, adc_bits=24)


def test_ideal_circuit_solves_the_system():
    a, _, _ = spd(12, 20.0)
    g, unit = differential(a)
    clock = SimClock()
    circuit = ClosedLoopCircuit(LinearArrayDouble(g), IDEAL, clock=clock)
    b = np.random.default_rng(1).normal(size=12)
    x = np.linalg.solve(a, b)
    scale = 0.4 / np.abs(x).max() * unit / IDEAL.input_conductance
    out = circuit.solve(-b * scale)  # A·V = −g_in·U
    assert out.stable and not out.saturated.any()
    x_est = out.voltages * unit / (IDEAL.input_conductance * scale)
    assert np.linalg.norm(x_est - x) / np.linalg.norm(x) < 1e-5
    assert clock.now == pytest.approx(out.settle_time) and out.settle_time > 0


def test_finite_gain_offsets_and_conditioning_cost_accuracy():
    a, _, _ = spd(12, 100.0)
    g, unit = differential(a)
    b = np.random.default_rng(2).normal(size=12)
    x = np.linalg.solve(a, b)
    scale = 0.4 / np.abs(x).max() * unit / IDEAL.input_conductance
    errors = []
    for spec in (IDEAL, OpAmpSpec(open_loop_gain=1e3, offset_sigma=0.0, noise_rms=0.0), OpAmpSpec()):
        out = ClosedLoopCircuit(LinearArrayDouble(g), spec, seed=3).solve(-b * scale)
        x_est = out.voltages * unit / (spec.input_conductance * scale)
        errors.append(np.linalg.norm(x_est - x) / np.linalg.norm(x))
    assert errors[0] < 1e-5 < errors[1]  # finite gain: (A + diag(S)/A0)·V = −g_in·U
    assert errors[2] > 1e-3  # offsets and noise of real op-amps, amplified by the condition number


def test_settling_time_follows_the_smallest_eigenvalue():
    times = []
    for cond in (10.0, 100.0):
        a, _, _ = spd(10, cond)
        g, unit = differential(a)
        out = ClosedLoopCircuit(LinearArrayDouble(g), IDEAL).solve(np.full(10, 0.01))
        times.append(out.settle_time)
    assert times[1] > 5 * times[0]


def test_indefinite_matrix_runs_away_to_the_rails():
    a, q, lam = spd(8, 10.0)
    a = a - 2.0 * np.outer(q[:, 0], q[:, 0]) * 1.0  # one negative eigenvalue (1 − 2 = −1)
    g, _ = differential(a)
    out = ClosedLoopCircuit(LinearArrayDouble(g), IDEAL).solve(np.full(8, 0.01))
    assert not out.stable and out.saturated.all()


def test_eigenvector_mode_finds_the_principal_eigenvector():
    a, q, lam = spd(16, 50.0, seed=4)
    g, unit = differential(a)
    circuit = ClosedLoopCircuit(LinearArrayDouble(g), OpAmpSpec(), seed=5)
    out = circuit.eigenvector(0.97 * lam[-1] * unit, 16)
    assert out.stable
    v = out.voltages / np.linalg.norm(out.voltages)
    assert abs(v @ q[:, -1]) > 0.995
    # above the largest eigenvalue nothing grows: the loop only shows its offsets
    quiet = circuit.eigenvector(1.2 * lam[-1] * unit, 16)
    assert not quiet.stable and np.max(np.abs(quiet.voltages)) < 0.1 * OpAmpSpec().rail


def test_geometry_is_checked():
    circuit = ClosedLoopCircuit(LinearArrayDouble(np.full((4, 6), 1e-5)))
    with pytest.raises(ValueError, match="needs rows 0..3 and columns 0..7"):
        circuit.solve(np.zeros(4))
    with pytest.raises(ValueError, match="layout"):
        circuit.solve(np.zeros(3), layout="triangular")
    assert circuit.solve(np.zeros(4), layout="positive").voltages.shape == (4,)
