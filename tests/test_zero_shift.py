"""Zero-shifted SGD: the symmetry point measured on the bench, and its effect on asymmetric devices."""

import numpy as np
import pytest
from experiment_doubles import FakeCrossbar, FakeStation

from xbarlab.experiments.base import resolve_params
from xbarlab.experiments.support import tia_range
from xbarlab.experiments.training import TrainExperiment
from xbarlab.experiments.zero_shift import measure_symmetry_points
from xbarlab.instruments.config import load_station
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text

ASYMMETRIC = {"step_ratio": 1.4 / 0.6}  # SET steps 2.3x RESET steps


def test_symmetry_point_measured_by_pulses_and_reads_matches_the_simulator():
    text = sim_station_text(8, 8, seed=3, wire_resistance=0.0, stuck_fraction=0.0, device_params=ASYMMETRIC)
    with Station.from_text(text) as station:
        board = station.require_board()
        with tia_range(station, board, 3 * 60e-6 * 0.2):
            sp = measure_symmetry_points(board, np.arange(8), np.arange(0, 8, 2), amplitude=1.2, width=100e-9,
                                         read_voltage=0.2)
        d = station.sim.model.device  # the truth, for the test only: where SET and RESET steps are equal
        idx = sp.rows * 8 + sp.cols
        span = d.hi[idx] - d.lo[idx]
        truth = d.lo[idx] + span * d.up[idx] / (d.up[idx] + d.down[idx])
    assert sp.settled and sp.rounds < 60
    err = (sp.g_sym - truth) / span
    assert np.sqrt(np.mean(err**2)) < 0.03 and np.max(np.abs(err)) < 0.08, err
    # far from where the cells started (uniform in 5-60 % of the range): the pulses moved them there
    assert np.median((truth - d.lo[idx]) / span) > 0.65


def test_zero_shifted_sgd_beats_plain_sgd_on_strongly_asymmetric_devices():
    acc = {"sgd": [], "sgd_zero_shift": []}
    for seed in (0, 1):
        for rule in acc:
            fb = FakeCrossbar(64, 64, step=0.004, up=1.4, down=0.6, seed=seed)
            r = TrainExperiment(FakeStation(fb), {"rule": rule, "update": "single_device", "epochs": 2,
                                                  "limit": 500, "hidden": 8, "lr": 0.1, "seed": seed}).run()
            acc[rule].append(r.test_acc)
            if rule == "sgd_zero_shift":  # the reference columns hold the measured symmetry points
                assert abs(r.device_step["asymmetry"]) < 0.1  # measured at the symmetry point: balanced steps
    assert np.mean(acc["sgd_zero_shift"]) > np.mean(acc["sgd"]) + 0.1, acc


@pytest.mark.parametrize("update", ["push_pull", "set_only"])
def test_zero_shift_needs_a_fixed_reference_device(tmp_path, update):
    path = tmp_path / "st.toml"
    path.write_text(sim_station_text(64, 64, seed=1))
    values, problems = resolve_params(TrainExperiment.params_spec, {"rule": "sgd_zero_shift", "update": update})
    assert not problems
    found = TrainExperiment.check(values, load_station(path), "train")
    assert any("needs update = 'single_device'" in p for p in found), found
