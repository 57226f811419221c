"""Device characterisation, weight mapping and residual programming on small simulated arrays."""

import numpy as np
import pytest

from xbarlab.calibration import fit_pulse_response, prepare, pulse_response
from xbarlab.calibration.mapping import PairMapping, compensate_stuck, plan_tiles, tiled_matvec
from xbarlab.calibration.residual import program_residual
from xbarlab.errors import ConfigError
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text


def test_fit_recovers_simulator_parameters_within_uncertainty():
    # c2c 0.3 (the literature default): at 0.1 the step spread is below the two reads' noise and its
    # deconvolution scatters over 0.04-0.1 from seed to seed (measured on seeds 4-6)
    # (no threshold spread: its exp(−δ/v_scale) step factor would add to the d2d the fit is compared with)
    params = {"dw_min": 0.002, "step_ratio": 1.2 / 0.8, "c2c": 0.3, "d2d": 0.1, "v_ref_d2d": 0.0}
    with Station.from_text(sim_station_text(8, 8, seed=4, stuck_fraction=0.0, device_params=params)) as st:
        prep = prepare(st)
        rr, cc = np.repeat(np.arange(8), 8), np.tile(np.arange(8), 8)
        fit = fit_pulse_response(pulse_response(prep.board, rr, cc, pulses=30, amplitude=1.3, cycles=3,
                                                reader=prep.reader()))
        d = st.sim.model.device
        rate = np.exp((1.3 - d.v_ref) / d.v_scale)
        k_up, k_dn = np.mean(d.step * d.up) * rate, np.mean(d.step * d.down) * rate
        v, e = fit.values, fit.errors
        assert abs(v["dw_up"] - k_up) < 4 * e["dw_up"]
        assert abs(v["dw_down"] - k_dn) < 4 * e["dw_down"]
        assert abs(v["up_down"] - 2 * (k_up - k_dn) / (k_up + k_dn)) < 4 * e["up_down"]
        assert abs(v["g_hi"] - d.hi.mean()) < 4 * e["g_hi"] + 0.01 * d.hi.mean()
        assert abs(v["d2d"] - 0.1) < 4 * e["d2d"]
        assert abs(v["c2c"] - 0.3) < 0.05
        assert abs(v["nonlinearity"] - 1.0) < 0.02  # soft bounds
        assert abs(v["read_sigma"] - 0.005) < 0.001
        pm = fit.pulse_model(v_scale=prep.model.v_scale, width_exp=prep.model.width_exp)
        assert pm.v_ref == 1.3 and np.exp(pm.s_up) == pytest.approx(v["dw_up"])
        sim = fit.simulator_params()
        assert sim["step_ratio"] == pytest.approx(v["dw_up"] / v["dw_down"], rel=1e-9)


def test_stuck_map_matches_the_simulator():
    with Station.from_text(sim_station_text(12, 12, seed=9, stuck_fraction=0.05)) as st:
        st.sim.model.kill_cell(0, 0, "on")
        prep = prepare(st)
        truth = st.sim.model.stuck_mask
        assert np.array_equal(prep.bounds.stuck != 0, truth != 0)
        assert prep.bounds.stuck[0, 0] == 2
        lo, hi = prep.usable_range()
        assert 0 < lo < hi


def test_mapping_clips_compensates_and_tiles():
    m = PairMapping(1e-6, 51e-6, w_max=1.0)
    w = np.array([[0.5, -2.0]])
    g = m.to_conductance(w)
    assert g.shape == (2, 2) and m.clipped(w) == 1
    assert np.allclose(m.to_weights(g), [[0.5, -1.0]])
    c = PairMapping(1e-6, 51e-6, w_max=1.0, centered=True).to_conductance(np.array([[0.5, -1.0, 0.0]]))
    assert np.allclose(c[:, 0::2] + c[:, 1::2], 52e-6)  # the pair current does not depend on w
    assert np.allclose(PairMapping(1e-6, 51e-6, centered=True).to_weights(c), [[0.5, -1.0, 0.0]])
    # G+ of the first pair stuck at 30 µS: the partner follows to keep the difference
    stuck = np.zeros_like(g, dtype=bool)
    stuck[0, 0] = True
    new, short = compensate_stuck(g, stuck, np.full(g.shape, 30e-6), 1e-6, 51e-6)
    assert m.to_weights(new)[0, 0] == pytest.approx(0.5) and not short.any()
    # G+ stuck off under a positive weight cannot be compensated
    new, short = compensate_stuck(g, stuck, np.full(g.shape, 0.1e-6), 1e-6, 51e-6)
    assert short[0, 0]
    loads = plan_tiles(100, 150, 64, 64, arrays=2)
    tiles = [t for load in loads for t in load]
    covered = np.zeros((100, 150), int)
    for t in tiles:
        covered[t.out0:t.out0 + t.n_out, t.in0:t.in0 + t.n_in] += 1
        assert t.n_in <= 64 and 2 * t.n_out <= 64
    assert np.all(covered == 1)
    big = np.random.default_rng(0).normal(size=(100, 150))
    x = np.random.default_rng(1).normal(size=150)
    y = tiled_matvec(loads, x, 100, lambda t, xb: big[t.out0:t.out0 + t.n_out, t.in0:t.in0 + t.n_in] @ xb)
    assert np.allclose(y, big @ x)
    with pytest.raises(ConfigError):
        PairMapping(2e-6, 1e-6)


def test_residual_programming_improves_mvm_error():
    n = 8
    with Station.from_text(sim_station_text(n, 6 * n, seed=11, stuck_fraction=0.0)) as st:
        prep = prepare(st)
        rng = np.random.default_rng(0)
        w = rng.uniform(-1, 1, (n, n))
        x = rng.uniform(-1, 1, (24, n))
        res = program_residual(st, prep, w, col0s=[0, 2 * n, 4 * n], test_inputs=x, repeats=8)
        assert res.errors[2] < 0.7 * res.first_alone
        assert res.stage_errors[1] < res.stage_errors[0]
        assert res.scales[0] == 1.0 and res.scales[1] > 5
