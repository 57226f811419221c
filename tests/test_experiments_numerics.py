"""Numerics of the experiments without a bench: solvers, analog operator, networks, update rules."""

from __future__ import annotations

import numpy as np
import pytest
from experiment_doubles import FakeCrossbar

from xbarlab.errors import ConfigError
from xbarlab.experiments.analog import ArrayMatrix, InputEncoding, Region, WeightMapping, choose_mapping
from xbarlab.experiments.datasets import load_dataset
from xbarlab.experiments.networks import MLP, FloatLayer, init_weights
from xbarlab.experiments.solvers import DenseOperator, cg, gmres, iterative_refinement
from xbarlab.experiments.update_rules import (
    ArrayBlock,
    MixedPrecisionLayer,
    PulseSpec,
    StochasticPulseLayer,
    TikiTakaLayer,
)


def spd(n: int, cond: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * np.geomspace(1.0, cond, n)) @ q.T


# -- solvers ------------------------------------------------------------------------------------------
def test_cg_and_gmres_solve_exactly_with_exact_products():
    a = spd(24, 50.0)
    b = np.random.default_rng(1).normal(size=24)
    for solver in (cg, gmres):
        res = solver(DenseOperator(a), b, tol=1e-10, maxiter=200)
        assert res.converged
        assert np.linalg.norm(a @ res.x - b) / np.linalg.norm(b) < 1e-9


def test_refinement_with_imprecise_products_reaches_float64_residual_monotonically():
    n = 32
    a = spd(n, 100.0)
    rng = np.random.default_rng(2)
    stored = a + rng.normal(0.0, 0.002 * np.abs(a).max(), a.shape)  # the "array" stores A + E
    op = DenseOperator(stored, rel_noise=0.01, seed=3)
    b = rng.normal(size=n)
    res = iterative_refinement(a, b, lambda r: cg(op, r, tol=0.05, maxiter=20), tol=1e-10)
    assert res.converged, res.stop_reason
    r = res.residuals
    assert r[-1] <= 1e-10
    assert np.all(np.diff(r) < 0), r  # decreases at every outer iteration
    assert res.inner_mvms == op.mvms
    assert 3 <= res.outer_iterations <= 30


def test_refinement_gives_up_when_the_inner_solver_is_too_imprecise():
    a = spd(16, 100.0)
    rng = np.random.default_rng(4)
    op = DenseOperator(a + rng.normal(0.0, 0.2 * np.abs(a).max(), a.shape))
    res = iterative_refinement(a, np.ones(16), lambda r: cg(op, r, tol=1e-3, maxiter=50), tol=1e-10, patience=3)
    assert not res.converged
    assert "no improvement" in res.stop_reason
    # the best iterate is returned (here x = 0: every correction made it worse)
    assert res.relative_residual == pytest.approx(min(1.0, *res.residuals))
    assert np.linalg.norm(np.ones(16) - a @ res.x) / 4.0 == pytest.approx(res.relative_residual)


def test_solver_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="right-hand side has shape"):
        cg(DenseOperator(np.eye(3)), np.ones(4))
    with pytest.raises(ConfigError, match="square"):
        gmres(DenseOperator(np.ones((2, 3))), np.ones(2))


# -- analog operator ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["differential", "offset"])
@pytest.mark.parametrize("encoding", ["amplitude", "bit_serial", "pulse_width"])
def test_array_matrix_forward_and_transpose(layout, encoding):
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, size=(5, 7))
    fb = FakeCrossbar(10, 12)
    mapping = WeightMapping(1e-6, 100e-6, 1.0, layout)
    region = Region(2, 1, 7, mapping.columns(5))
    bits = 8 if encoding == "bit_serial" else 5
    op = ArrayMatrix(fb, region, mapping, 5, 7, encoding=InputEncoding(encoding, 0.2, bits))
    fb.set_conductances(op.rows, op.cols, mapping.to_conductance(w))
    x, u = rng.uniform(-1, 1, 7), rng.uniform(-1, 1, 5)
    tol = 1e-9 if encoding == "amplitude" else 2.0 / (1 << bits) * np.abs(w).sum(axis=1).max()
    assert np.max(np.abs(op.matvec(x) - w @ x)) <= tol
    assert np.max(np.abs(op.rmatvec(u) - w.T @ u)) <= tol
    planes = {"amplitude": 1, "bit_serial": bits, "pulse_width": (1 << bits) - 1}[encoding]
    assert op.mvms <= 2 * planes
    assert np.allclose(op.matvec(np.zeros(7)), 0.0)


def test_mapping_round_trip_clips_and_layout_choice():
    m = WeightMapping(2e-6, 52e-6, 2.0)
    w = np.array([[1.0, -3.0], [0.5, 0.0]])
    assert np.allclose(m.to_weights(m.to_conductance(w)), np.clip(w, -2, 2))
    assert np.allclose(m.to_weights(m.to_conductance(w, centered=True)), np.clip(w, -2, 2))
    assert choose_mapping(4, 4, 8, 1e-6, 1e-4, 1.0).layout == "differential"
    assert choose_mapping(4, 4, 7, 1e-6, 1e-4, 1.0).layout == "offset"
    with pytest.raises(ConfigError, match="need 8 columns"):
        choose_mapping(4, 4, 7, 1e-6, 1e-4, 1.0, "differential")
    with pytest.raises(ConfigError, match="do not fit"):
        ArrayMatrix(FakeCrossbar(4, 4), Region(0, 2, 4, 4), m, 2, 4)


# -- data and float network ---------------------------------------------------------------------------------
def test_dataset_split_is_stratified_and_scaled(tmp_path):
    ds = load_dataset("digits", seed=3, limit=400)
    assert ds.features == 64 and ds.classes == 10
    assert len(ds.y_train) + len(ds.y_test) == 400
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert set(np.unique(ds.y_test)) == set(range(10))
    path = tmp_path / "toy.npz"
    np.savez(path, X=np.arange(40.0).reshape(20, 2), y=np.repeat(["a", "b"], 10))
    toy = load_dataset(str(path), test_fraction=0.5)
    assert toy.classes == 2 and len(toy.y_test) == 10
    np.savez(tmp_path / "bad.npz", data=np.zeros(3))
    with pytest.raises(ConfigError, match="arrays named X and y"):
        load_dataset(str(tmp_path / "bad.npz"))
    with pytest.raises(ConfigError, match="not found"):
        load_dataset(str(tmp_path / "missing.npz"))


def test_float_mlp_learns_digits():
    ds = load_dataset("digits", seed=0, limit=600)
    net = MLP([FloatLayer(w) for w in init_weights([64, 16, 10], seed=1)])
    rng = np.random.default_rng(0)
    for _ in range(4):
        for i in rng.permutation(len(ds.y_train)):
            net.train_sample(ds.x_train[i], int(ds.y_train[i]), 0.1)
    loss, acc = net.evaluate(ds.x_test, ds.y_test)
    assert acc > 0.85, acc


# -- pulsed update rules on the numpy double -----------------------------------------------------------------
def _analog_net(rule: str, fb: FakeCrossbar, seed: int = 1):
    ws = init_weights([64, 8, 10], seed=seed)
    w_max = [2.0, 3.0]
    pulses = PulseSpec(1.0, 100e-9)
    layers, col = [], 0
    for k, w in enumerate(ws):
        m = WeightMapping(fb.g_min, fb.g_max, w_max[k])

        def block(c0: int, w=w, m=m) -> ArrayBlock:
            return ArrayBlock(fb, Region(0, c0, w.shape[1], 2 * w.shape[0]), m, w.shape[0], w.shape[1], pulses)

        b = block(col)
        col += 2 * w.shape[0]
        fb.set_conductances(b.rows, b.matrix.cols, m.to_conductance(w, centered=True))
        dw = fb.step * (fb.g_max - fb.g_min) / m.unit  # pulse pair at mid-window
        if rule == "sgd":
            layers.append(StochasticPulseLayer(b, dw, seed=k))
        elif rule == "mixed_precision":
            layers.append(MixedPrecisionLayer(b, dw, seed=k))
        else:
            a = block(col)
            col += 2 * w.shape[0]
            fb.set_conductances(a.rows, a.matrix.cols, m.to_conductance(0 * w, centered=True))
            layers.append(TikiTakaLayer(a, b, dw, dw, seed=k))
    return MLP(layers)


@pytest.mark.parametrize("rule", ["sgd", "mixed_precision", "tiki_taka"])
def test_pulsed_rules_learn_above_chance(rule):
    ds = load_dataset("digits", seed=0, limit=500)
    fb = FakeCrossbar(64, 72, step=0.004)
    net = _analog_net(rule, fb)
    _, before = net.evaluate(ds.x_test, ds.y_test)
    rng = np.random.default_rng(0)
    pulses = 0
    for _ in range(2):
        for i in rng.permutation(len(ds.y_train)):
            pulses += net.train_sample(ds.x_train[i], int(ds.y_train[i]), 0.1).pulses
    _, acc = net.evaluate(ds.x_test, ds.y_test)
    assert pulses > 0 and fb.pulses > 0
    assert acc > 0.4, (before, acc)  # chance is 0.1; float reaches ~0.7 in this short run


def test_tiki_taka_refuses_overlapping_blocks():
    fb = FakeCrossbar(8, 8)
    m = WeightMapping(1e-6, 1e-4, 1.0)
    a = ArrayBlock(fb, Region(0, 0, 4, 4), m, 2, 4, PulseSpec())
    c = ArrayBlock(fb, Region(0, 2, 4, 4), m, 2, 4, PulseSpec())
    with pytest.raises(ConfigError, match="disjoint"):
        TikiTakaLayer(a, c, 0.01, 0.01)


@pytest.mark.parametrize("single", [False, True])
def test_single_device_updates_leave_the_reference_column_alone(single):
    fb = FakeCrossbar(4, 8, step=0.02)
    m = WeightMapping(fb.g_min, fb.g_max, 1.0)
    block = ArrayBlock(fb, Region(0, 0, 4, 4), m, 2, 4, PulseSpec(), single_device=single)
    fb.set_conductances(block.rows, block.matrix.cols, m.to_conductance(np.zeros((2, 4)), centered=True))
    before = fb.g.copy()
    rows = np.ones((4, 3), dtype=np.int8)
    outs = np.array([[1, 1, 1], [-1, -1, -1]], dtype=np.int8)
    pulses = block.outer(rows, outs)
    assert pulses == (1 if single else 2) * 4 * 2 * 3
    moved = np.abs(fb.g - before) > 0
    assert moved[:, block.plus].all()
    assert moved[:, block.minus].any() != single  # push-pull moves G-, single-device never does
    block.step_cells(np.array([0]), np.array([1]), np.array([-2]))
    assert (np.abs(fb.g - before)[:, block.minus] > 0).any() != single
