"""The equilibrium-propagation circuit: hand-solved networks, co-content minimum, convergence errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from xbarlab.protocol.eqprop_circuit import (
    AmplifierSpec,
    DiodeSpec,
    EquilibriumError,
    EquilibriumNetwork,
    NeuronSpec,
    layered_topology,
)


def _tile_conductances(topo, tiles, rng, low=5e-6, high=80e-6):
    g = np.zeros((topo.rows, topo.nodes))
    for rows, cols in tiles:
        g[rows, cols] = rng.uniform(low, high, g[rows, cols].shape)
    return g


def test_single_layer_by_hand():
    """One input, one output node with a load: y = (G1·x − G2·x + G3·Vb − G4·Vb + I)/(ΣG + G_L)."""
    spec = NeuronSpec(bias_voltage=0.2, output_load=30e-6)
    topo, _ = layered_topology([1, 1], spec.bias_voltage)
    net = EquilibriumNetwork(topo, spec, v0=None)
    g = np.array([[10e-6], [40e-6], [25e-6], [5e-6]])
    x, inject = 0.3, 2e-6
    eq = net.solve(g, np.array([[x]]), np.array([[inject]]))
    by_hand = ((10e-6 - 40e-6) * x + (25e-6 - 5e-6) * 0.2 + inject) / (80e-6 + 30e-6)
    assert eq.nodes[0, 0] == pytest.approx(by_hand, abs=1e-12)
    assert eq.rows[0].tolist() == pytest.approx([x, -x, 0.2, -0.2])


def test_sinh_cells_satisfy_kcl_by_hand():
    """With the cells' sinh I–V the node sits where Σ G·V0·sinh((V_r − y)/V0) + I = G_L·y."""
    spec = NeuronSpec(bias_voltage=0.5, output_load=0.0)
    topo, _ = layered_topology([1, 1], spec.bias_voltage)
    net = EquilibriumNetwork(topo, spec, v0=0.5)
    g = np.array([[60e-6], [10e-6], [20e-6], [30e-6]])
    x = 0.8
    eq = net.solve(g, np.array([[x]]), np.array([[5e-6]]))
    y = eq.nodes[0, 0]
    vr = np.array([x, -x, 0.5, -0.5])
    kcl = (g[:, 0] * 0.5 * np.sinh((vr - y) / 0.5)).sum() + 5e-6
    assert abs(kcl) < 1e-15
    assert abs(y - ((60e-6 - 10e-6) * x + (20e-6 - 30e-6) * 0.5 + 5e-6) / 120e-6) > 1e-4  # not the ohmic answer


def test_diode_law_with_series_resistance():
    d = DiodeSpec(saturation_current=1e-12, ideality=1.0, series_resistance=50.0, bias=0.0)
    v = np.array([-0.2, 0.0, 0.3, 0.6, 0.9])
    i, di = d.current(v)
    # the implicit law V = R_s·I + nVt·ln(1 + I/I_s) holds to rounding
    assert np.allclose(d.series_resistance * i + d.nvt * np.log1p(i / d.saturation_current), v, atol=1e-6)
    assert i[1] == pytest.approx(0.0, abs=1e-20) and d.current(np.array([-2.0]))[0][0] == pytest.approx(-1e-12)
    assert i[4] < 0.9 / 50.0  # the series resistance limits the forward current
    h = 1e-7
    assert np.allclose((d.current(v + h)[0] - d.current(v - h)[0]) / (2 * h), di, rtol=1e-5, atol=1e-15)
    assert np.allclose((d.cocontent(v + h) - d.cocontent(v - h)) / (2 * h), i, rtol=1e-5, atol=1e-15)


@pytest.mark.parametrize("v0", [None, 1.0])
def test_equilibrium_is_the_cocontent_minimum(v0):
    """A network with a hidden layer (diodes conducting, amplifier near its rail): Newton's answer equals
    the minimum of the co-content found by a general optimiser, and KCL holds."""
    rng = np.random.default_rng(3)
    spec = NeuronSpec(DiodeSpec(bias=-0.35), AmplifierSpec(gain=6.0, rail=0.4), bias_voltage=0.3, output_load=20e-6)
    topo, tiles = layered_topology([3, 4, 2], spec.bias_voltage)
    net = EquilibriumNetwork(topo, spec, v0=v0)
    g = _tile_conductances(topo, tiles, rng)
    x = rng.uniform(-0.5, 0.5, (3, 3))
    inject = rng.uniform(-5e-6, 5e-6, (3, 2))
    eq = net.solve(g, x, inject)
    assert np.abs(net.residual(g, x, eq.nodes, inject, jacobian=False)[0]).max() < 1e-12
    _, i_d, _ = net._diodes(eq.nodes)
    assert np.abs(i_d).max() > 1e-7  # the diodes take part
    for b in range(len(x)):
        found = minimize(lambda v, b=b: 1e6 * net.energy(g, x[b : b + 1], v[None], inject[b : b + 1])[0],
                         np.zeros(topo.nodes), method="BFGS", options={"gtol": 1e-13})
        assert np.abs(found.x - eq.nodes[b]).max() < 2e-6
        assert net.energy(g, x[b : b + 1], eq.nodes[b : b + 1], inject[b : b + 1])[0] <= \
            net.energy(g, x[b : b + 1], found.x[None], inject[b : b + 1])[0] + 1e-18


def test_off_tile_cells_and_per_sample_maps_converge():
    rng = np.random.default_rng(4)
    spec = NeuronSpec()
    topo, _ = layered_topology([5, 4, 3], spec.bias_voltage)
    net = EquilibriumNetwork(topo, spec)
    g = rng.uniform(1e-6, 100e-6, (4, topo.rows, topo.nodes))  # every crossing conducts, one map per sample
    x = rng.uniform(-0.5, 0.5, (4, 5))
    eq = net.solve(g, x)
    for b in range(4):
        assert np.abs(net.residual(g[b], x[b : b + 1], eq.nodes[b : b + 1], None, False)[0]).max() < 1e-12
    assert (eq.settle_time > 0).all() and (eq.rate > 0).all()


def test_settling_time_follows_rc_and_amplifier():
    spec = NeuronSpec(node_capacitance=10e-12, output_load=0.0)
    topo, _ = layered_topology([1, 1], spec.bias_voltage)
    net = EquilibriumNetwork(topo, spec, v0=None)
    g = np.full((4, 1), 25e-6)
    eq = net.solve(g, np.array([[0.1]]))
    assert eq.rate[0] == pytest.approx(100e-6)
    assert eq.settle_time[0] == pytest.approx(np.log(2.0**14) * 10e-12 / 100e-6)
    slow_amp = NeuronSpec(amplifier=AmplifierSpec(gain=10.0, gbw=1e5))
    topo2, tiles2 = layered_topology([1, 1, 1], 0.2)
    eq2 = EquilibriumNetwork(topo2, slow_amp).solve(_tile_conductances(topo2, tiles2, np.random.default_rng(1)),
                                                    np.array([[0.1]]))
    assert eq2.settle_time[0] == pytest.approx(np.log(2.0**14) * 10 / (2 * np.pi * 1e5))


def test_non_convergence_is_a_clear_error():
    spec = NeuronSpec()
    topo, tiles = layered_topology([2, 2, 2], spec.bias_voltage)
    net = EquilibriumNetwork(topo, spec)
    g = _tile_conductances(topo, tiles, np.random.default_rng(0))
    with pytest.raises(EquilibriumError, match=r"did not converge in 1 iterations: sample \d+ has a KCL residual"):
        net.solve(g, np.array([[0.4, -0.3]]), max_iter=1)
    with pytest.raises(ValueError, match="conductances must have shape"):
        net.solve(g[:-1], np.array([[0.4, -0.3]]))


def test_the_local_rule_is_the_gradient_of_the_cost():
    """Kendall et al.'s rule, (w_c/w_out)/(2β)·[F(ΔV^+β) − F(ΔV^−β)] per device, equals the finite-difference
    derivative of the output cost ½Σ(y − t)² with respect to that device's conductance, in both tiles."""
    rng = np.random.default_rng(0)
    spec = NeuronSpec(amplifier=AmplifierSpec(gain=12.0, rail=0.5), bias_voltage=0.5)
    topo, tiles = layered_topology([4, 3, 2], spec.bias_voltage)
    net = EquilibriumNetwork(topo, spec, v0=None)
    g = _tile_conductances(topo, tiles, rng)
    x, t = rng.uniform(-0.5, 0.5, (1, 4)), np.array([[0.05, -0.05]])
    out = topo.output_nodes

    def cost(gg):
        return 0.5 * ((net.solve(gg, x).nodes[:, out] - t) ** 2).sum()

    free = net.solve(g, x)
    beta = 1e-6
    inject = beta * (t - free.nodes[:, out])
    plus, minus = net.solve(g, x, inject, free.nodes), net.solve(g, x, -inject, free.nodes)
    drop = [e.rows[0][:, None] - e.nodes[0][None, :] for e in (plus, minus)]
    rule = (net.cell_cocontent(drop[0]) - net.cell_cocontent(drop[1])) / (2 * beta) * net.layer_factor()[None, :]
    for r, c in [(0, 0), (3, 1), (8, 2), (10, 3), (12, 4), (15, 3)]:
        h = 1e-9
        up, down = g.copy(), g.copy()
        up[r, c] += h
        down[r, c] -= h
        assert rule[r, c] == pytest.approx((cost(up) - cost(down)) / (2 * h), rel=1e-4, abs=1e-6), (r, c)
