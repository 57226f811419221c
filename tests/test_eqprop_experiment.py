"""Equilibrium propagation on the board and in float: learning, logging, replay, CLI and campaign errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xbarlab.campaigns.runner import CampaignRunner
from xbarlab.campaigns.spec import load_campaign
from xbarlab.errors import ConfigError
from xbarlab.experiments.eqprop import EquilibriumTrainExperiment, plan_tiles
from xbarlab.logbook import LogReader
from xbarlab.logbook.replay import replay
from xbarlab.sim.stations import sim_station_text

#: a separable data set of 4 features and 3 classes: a 4-4-3 network needs 10 + 10 rows and 7 columns
QUICK = {"hidden": 4, "epochs": 3, "batch": 8, "beta": 1e-3, "lr": 5e-7, "lr_hidden": 2e-6, "lr_decay": 1.0}


def tiny_dataset(path: Path, n: int = 90, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[0.9, 0.1, 0.2, 0.8], [0.1, 0.9, 0.8, 0.2], [0.5, 0.5, 0.9, 0.9]])
    np.savez(path, X=centres[y] + 0.08 * rng.normal(size=(n, 4)), y=y)
    return path


def test_tiles_must_fit_the_array():
    assert plan_tiles([64, 32, 10], (256, 64)) == ((0, 0), (130, 32))
    with pytest.raises(ConfigError, match=r"64-32-10 needs 196 rows x 42 columns .* the array is 64x64"):
        plan_tiles([64, 32, 10], (64, 64))


def test_float_reference_learns(tmp_path):
    data = tiny_dataset(tmp_path / "tiny.npz")
    result = EquilibriumTrainExperiment(None, {"rule": "float", "dataset": str(data), **QUICK}).run()
    assert result.history[0].test_acc < 0.9 < result.test_acc
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.history[-1].settle_free > 0 and result.history[-1].settle_nudged > 0


def _campaign(tmp_path: Path, data: Path) -> Path:
    (tmp_path / "station.toml").write_text(sim_station_text(20, 8, seed=3))
    text = f"""
[campaign]
name = "equilibrium propagation"
station = "station.toml"
seed = 1

[[steps]]
type = "equilibrium_train"
[steps.params]
dataset = "{data}"
{chr(10).join(f"{k} = {v!r}" for k, v in QUICK.items())}
"""
    path = tmp_path / "eq.toml"
    path.write_text(text)
    return path


def test_board_training_learns_logs_and_replays_bit_for_bit(tmp_path):
    data = tiny_dataset(tmp_path / "tiny.npz")
    log = tmp_path / "eq.h5"
    assert CampaignRunner(load_campaign(_campaign(tmp_path, data)), log).run().status == "completed"
    reader = LogReader(log)
    run = next(r for r in reader.runs() if r["kind"] == "equilibrium_train")
    epochs = reader.stream(run["run_id"], "epochs")
    assert epochs.columns[:5] == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
    table = np.asarray(epochs.data)
    assert table.shape[0] == QUICK["epochs"]
    acc, pulses, settle_free = table[:, 4], table[:, 5], table[:, 7]
    assert acc[-1] >= 0.8, acc  # the board learned (chance: 1/3)
    assert (pulses > 0).all() and (settle_free > 0).all()
    outputs = np.asarray(reader.stream(run["run_id"], "outputs").data)
    assert outputs.shape == (QUICK["epochs"], 2 + 2 * 3)
    free, nudged = outputs[:, 2:5], outputs[:, 5:8]
    assert np.abs(nudged - free).max() > 0  # the nudge moved the outputs
    report = replay(log)
    outcomes = {r.run_id: r.outcome for r in report.runs}
    assert outcomes[run["run_id"]] == "reproduced", outcomes


def test_cli_train_rule_eqprop_refuses_a_too_small_array_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xbarlab", "train", "--rule", "eqprop", "-o", str(tmp_path / "x.h5")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "needs 196 rows x 42 columns" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.h5").exists()


def test_train_step_with_rule_eqprop_points_to_its_step_type(tmp_path):
    from xbarlab.experiments.training import TrainExperiment

    problems = TrainExperiment.check({"rule": "eqprop"}, None, "steps[0]")
    assert problems == ["steps[0].rule = 'eqprop': use the step type 'equilibrium_train' (xbarlab train --rule "
                        "eqprop runs it)"]


def test_cli_train_rule_eqprop_runs_and_logs(tmp_path):
    data = tiny_dataset(tmp_path / "tiny.npz")
    (tmp_path / "station.toml").write_text(sim_station_text(20, 8, seed=3))
    log = tmp_path / "eq.h5"
    proc = subprocess.run([sys.executable, "-m", "xbarlab", "train", "--rule", "eqprop", "--station",
                           str(tmp_path / "station.toml"), "--dataset", str(data), "--hidden", "4", "--epochs", "1",
                           "-o", str(log), "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "epoch" in proc.stdout and "pulses" in proc.stdout
    runs = [r for r in LogReader(log).runs() if r["kind"] == "equilibrium_train"]
    assert [(r["params"]["rule"], r["params"]["hidden"], r["status"]) for r in runs] == [("board", 4, "completed")]
