"""Experiment objects end to end on a numpy crossbar double: results, logging, abort, validation."""

from __future__ import annotations

import numpy as np
import pytest
from experiment_doubles import FakeCrossbar, FakeStation

from xbarlab.errors import CapabilityError, ConfigError
from xbarlab.experiments.base import STEP_TYPES, Aborted, AbortToken, MemoryRecorder
from xbarlab.experiments.closed_loop import ClosedLoopExperiment, ClosedLoopSolver
from xbarlab.experiments.drift_inference import DriftInferenceExperiment
from xbarlab.experiments.linear_solve import LinearSolveExperiment, spd_matrix
from xbarlab.experiments.mvm import MvmExperiment
from xbarlab.experiments.training import TrainExperiment, plan_layout
from xbarlab.sim.closed_loop import ClosedLoopCircuit


class FakeModel:
    """The numpy double seen as a CrossbarModel, for the closed-loop circuit."""

    def __init__(self, fb: FakeCrossbar) -> None:
        self.fb = fb
        self.rows, self.cols = fb.g.shape

    def conductance_map(self) -> np.ndarray:
        return self.fb.g.copy()

    def row_currents(self, col_voltages: np.ndarray) -> np.ndarray:
        return self.fb.g @ col_voltages


def test_every_experiment_is_a_campaign_step_type():
    for kind in ("mvm", "linear_solve", "closed_loop_solve", "train", "drift_inference"):
        assert kind in STEP_TYPES


def test_mvm_statistics_and_log():
    fb = FakeCrossbar(24, 24, step=0.02)
    rec = MemoryRecorder()
    r = MvmExperiment(FakeStation(fb), {"n_in": 12, "n_out": 6, "vectors": 12, "sizes": [3, 6]},
                      recorder=rec).run()
    assert len(r.cases) == 4  # 2 sizes x 2 directions
    for case in r.cases:
        assert np.all(case.rel_error_programmed < 1e-9)  # no read noise: the MVM is exact on the programmed matrix
        assert np.median(case.rel_error) < 0.05  # the programming error stays within the write-verify tolerance
    assert r.programming["yield"] == 1.0
    assert len(rec.streams["mvm_vectors"].rows) == 4
    assert {s for s, _ in rec.steps} >= {"programmed", "case-0", "case-3"}
    assert "mvm-programming" in rec.calibrations


def test_mvm_error_grows_for_small_inputs_with_read_noise():
    fb = FakeCrossbar(24, 24, step=0.02, read_noise=0.05)
    r = MvmExperiment(FakeStation(fb), {"n_in": 16, "n_out": 8, "vectors": 30, "direction": "forward"}).run()
    bins = r.cases[0].error_vs_magnitude(3)
    assert bins[0][2] > 2 * bins[-1][2]


def test_refinement_on_the_array_reaches_1e_10_monotonically():
    fb = FakeCrossbar(16, 32, step=0.01, read_noise=0.01)
    rec = MemoryRecorder()
    r = LinearSolveExperiment(FakeStation(fb), {"n": 16, "condition": 30.0}, recorder=rec).run()
    assert r.converged and r.relative_residual <= 1e-10
    assert np.all(np.diff(r.residuals) < 0)
    assert r.analog_mvms == fb.mvm_count > 0
    assert len(rec.streams["refinement"].rows) == r.outer_iterations
    a = spd_matrix(16, 30.0, 0)
    b = np.random.default_rng(1).normal(size=16)
    assert np.linalg.norm(a @ r.x - b) / np.linalg.norm(b) == pytest.approx(r.relative_residual, rel=1e-6)


def test_closed_loop_inner_solver_and_one_step_modes():
    fb = FakeCrossbar(16, 32, step=0.01)
    circuit = ClosedLoopCircuit(FakeModel(fb))
    r = LinearSolveExperiment(FakeStation(fb), {"n": 16, "condition": 30.0, "inner": "closed_loop", "absolute": False},
                              closed_loop=ClosedLoopSolver(circuit)).run()
    assert r.converged and r.relative_residual <= 1e-10
    assert r.outer_iterations <= r.analog_mvms <= 3 * r.outer_iterations  # one solve per step (+ ranging)
    assert r.first_inner_rel_error < 0.5
    one = ClosedLoopExperiment(FakeStation(fb), {"n": 16, "rhs": 3, "absolute": False}, closed_loop=circuit).run()
    assert one.median_rel_error < 0.1
    eig = ClosedLoopExperiment(FakeStation(fb), {"n": 16, "mode": "eigenvector", "absolute": False},
                               closed_loop=circuit).run()
    assert eig.eigen_overlap > 0.99


def test_board_without_feedback_mode_is_refused_clearly(fake_bench):
    fb, station = fake_bench(16, 32)
    expected = r"^this board cannot run the closed-loop \(feedback\) circuit \(board\)$"
    with pytest.raises(CapabilityError, match=expected):
        ClosedLoopExperiment(station, {"n": 8}).run()
    assert fb.pulses == 0 and fb.mvm_count == 0  # refused before the board was used
    assert issubclass(CapabilityError, ConfigError)  # the CLI reports it in one line, exit status 2


def test_abort_stops_at_a_safe_point_with_outputs_off(fake_bench):
    fb, station = fake_bench(64, 64, step=0.01)
    token = AbortToken()
    seen = []

    def progress(pr):
        seen.append(pr)
        if "epoch 1:" in pr.message:
            token.request()

    exp = TrainExperiment(station, {"rule": "sgd", "epochs": 3, "limit": 300, "hidden": 8}, progress=progress,
                          abort=token)
    with pytest.raises(Aborted):
        exp.run()
    assert station.safe_calls == 1 and fb.off_calls == 1
    assert not any(s.startswith("epoch-") for s, _ in exp.recorder.steps)  # stopped inside epoch 1


def test_training_logs_every_epoch_and_beats_chance():
    fb = FakeCrossbar(64, 64, step=0.004, g_max=100e-6)
    rec = MemoryRecorder()
    r = TrainExperiment(FakeStation(fb), {"rule": "mixed_precision", "epochs": 2, "limit": 500, "hidden": 8,
                                          "lr": 0.1, "g_max": 95e-6}, recorder=rec).run()
    assert [e.epoch for e in r.history] == [1, 2]
    assert r.test_acc > 0.4 and r.total_pulses > 0
    assert len(rec.streams["epochs"].rows) == 2
    assert r.device_step["up_S"] > 0 and "train-device-step" in rec.calibrations
    base = TrainExperiment(None, {"rule": "float", "epochs": 2, "limit": 500, "hidden": 8, "lr": 0.1}).run()
    assert base.test_acc > 0.6 and base.total_pulses == 0


def test_layout_planner_explains_what_does_not_fit():
    assert len(plan_layout([64, 16, 10], "tiki_taka", (64, 128))[0]) == 2
    with pytest.raises(ConfigError, match=r"needs 64 rows x 104 columns.*Tiki-Taka uses two blocks"):
        plan_layout([64, 16, 10], "tiki_taka", (64, 64))
    with pytest.raises(ConfigError, match="invalid parameters"):
        TrainExperiment(None, {"rule": "adam"})


def test_invalid_parameters_are_one_line_for_one_problem_and_a_list_for_several():
    with pytest.raises(ConfigError) as one:
        TrainExperiment(None, {"rule": "adam"})
    assert str(one.value).startswith("train: invalid parameters: ") and "\n" not in str(one.value)
    with pytest.raises(ConfigError) as two:
        TrainExperiment(None, {"rule": "adam", "epochs": -1})
    head, *lines = str(two.value).split("\n")
    assert head == "train: invalid parameters:" and len(lines) == 2 and all(x.startswith("  - ") for x in lines)


def test_drift_inference_without_drift_keeps_float_accuracy():
    fb = FakeCrossbar(64, 64, step=0.01, g_min=0.1e-6, g_max=25e-6)
    r = DriftInferenceExperiment(FakeStation(fb), {"epochs": 3, "limit": 400, "times": [0.0]}).run()
    (pt,) = r.points
    assert abs(pt.accuracy - r.float_accuracy) < 0.05
    assert pt.scales[0] == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ConfigError, match="must be increasing"):
        DriftInferenceExperiment(FakeStation(fb), {"times": [10.0, 1.0]}).run()


def test_cli_hooks_register_commands(capsys, tmp_path, monkeypatch):
    import argparse

    monkeypatch.chdir(tmp_path)  # without -o the command keeps its run in a default log here

    from xbarlab.experiments import drift_inference, linear_solve, mvm, training

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    for module in (mvm, linear_solve, training, drift_inference):
        module.add_cli(sub)
    args = parser.parse_args(["solve", "-n", "8", "--inner", "gmres", "--one-step"])
    assert args.handler is linear_solve.cli_main and args.one_step and args.inner == "gmres"
    args = parser.parse_args(["mvm", "--v-in", "0.1", "0.2", "--sizes", "4", "8"])
    assert args.v_in == [0.1, 0.2] and args.sizes == [4, 8]
    args = parser.parse_args(["train", "--rule", "float", "--epochs", "1", "--limit", "200", "--hidden", "8"])
    assert args.handler(args) == 0
    assert "epoch" in capsys.readouterr().out
    assert len(list(tmp_path.glob("xbarlab-train-*.h5"))) == 1
