"""`xbarlab mvm | solve | train | drift` on small simulated benches, logged through LabSession."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xbarlab.cli import main
from xbarlab.errors import ConfigError
from xbarlab.experiments.mvm import MvmExperiment
from xbarlab.experiments.support import parse_set_params
from xbarlab.logbook import LogReader
from xbarlab.sim.stations import sim_station_text


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Commands without -o write their default log into the current directory: keep it in tmp_path."""
    monkeypatch.chdir(tmp_path)


def _station(tmp_path: Path, rows: int, cols: int, device: str = "rram", name: str = "bench.toml") -> str:
    path = tmp_path / name
    path.write_text(sim_station_text(rows=rows, cols=cols, device=device, seed=3, stuck_fraction=0.0))
    return str(path)


def _blobs(tmp_path: Path, features: int = 6, classes: int = 3, n: int = 150) -> str:
    """A small separable .npz data set (Gaussian blobs), so training fits a tiny array."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 1, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    x = centres[y] + 0.08 * rng.normal(size=(n, features))
    path = tmp_path / "blobs.npz"
    np.savez(path, X=x, y=y)
    return str(path)


def _only_run(log: Path, kind: str) -> tuple[LogReader, dict]:
    reader = LogReader(log)
    (run,) = [r for r in reader.runs() if r["kind"] == kind]
    return reader, run


def test_mvm_command_logs_a_completed_run(tmp_path, capsys):
    log = tmp_path / "mvm.h5"
    rc = main(["mvm", "--station", _station(tmp_path, 8, 16), "-o", str(log), "-q", "--n-in", "6", "--n-out", "3",
               "--vectors", "4", "--sizes", "2", "3", "--v-in", "0.1", "0.2", "--encoding", "bit_serial",
               "--bits", "4"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "transpose" in out and "error vs input magnitude" in out
    reader, run = _only_run(log, "mvm")
    assert run["status"] == "completed"
    vectors = reader.stream(run["run_id"], "mvm_vectors")
    assert vectors.data.shape[0] == 2 * 2 * 2 * 4  # sizes x v_ins x directions x vectors
    assert set(vectors.column("v_in")) == {0.1, 0.2}


def test_solve_command_converges_and_logs_residuals(tmp_path, capsys):
    log = tmp_path / "solve.h5"
    rc = main(["solve", "--station", _station(tmp_path, 8, 16), "-o", str(log), "-q", "-n", "8",
               "--condition", "5", "--tol", "1e-9"])
    assert rc == 0
    assert "converged" in capsys.readouterr().out
    reader, run = _only_run(log, "linear_solve")
    res = reader.stream(run["run_id"], "refinement").column("relative_residual")
    assert run["status"] == "completed" and res[-1] <= 1e-9 and np.all(np.diff(res) < 0)


def test_solve_one_step_and_eigenvector_commands(tmp_path, capsys):
    station = _station(tmp_path, 8, 16)
    assert main(["solve", "--station", station, "-q", "-n", "6", "--condition", "5", "--one-step"]) == 0
    out = capsys.readouterr().out
    assert "one-step closed-loop solve" in out
    (log,) = tmp_path.glob("xbarlab-solve-*.h5")  # no -o: a default log, named in the output
    assert f"logging to {log.name}" in out and LogReader(log).runs()[-1]["kind"] == "closed_loop_solve"
    assert main(["solve", "--station", station, "-q", "-n", "6", "--condition", "5", "--eigenvector"]) == 0
    assert "eigenvector: overlap" in capsys.readouterr().out


def test_train_command_on_an_npz_dataset(tmp_path, capsys):
    log = tmp_path / "train.h5"
    data = _blobs(tmp_path)
    rc = main(["train", "--station", _station(tmp_path, 8, 16), "-o", str(log), "-q", "--rule", "mixed_precision",
               "--dataset", data, "--hidden", "4", "--epochs", "2", "--lr", "0.2",
               "--set", "w_max_hidden=3.0", "--set", "tolerance=0.05"])
    assert rc == 0
    reader, run = _only_run(log, "train")
    epochs = reader.stream(run["run_id"], "epochs")
    assert run["status"] == "completed" and epochs.data.shape[0] == 2
    assert epochs.column("test_acc")[-1] > 0.5  # 3 classes: chance is 1/3
    assert epochs.column("pulses").sum() > 0
    assert main(["train", "-o", str(log), "--append", "-q", "--rule", "float", "--dataset", data, "--hidden", "4",
                 "--epochs", "1"]) == 0
    assert [r["kind"] for r in LogReader(log).runs()].count("train") == 2
    assert "epoch" in capsys.readouterr().out


def test_drift_command_on_a_pcm_bench(tmp_path, capsys):
    log = tmp_path / "drift.h5"
    rc = main(["drift", "--station", _station(tmp_path, 8, 16, device="pcm"), "-o", str(log), "-q",
               "--dataset", _blobs(tmp_path), "--hidden", "4", "--epochs", "5", "--times", "1", "3600"])
    assert rc == 0
    assert "compensated" in capsys.readouterr().out
    reader, run = _only_run(log, "drift_inference")
    drift = reader.stream(run["run_id"], "drift")
    assert run["status"] == "completed"
    assert drift.column("time")[-1] >= 3600.0  # simulated clock: an hour passed in no wall time


def test_bad_parameters_give_one_clear_line(tmp_path, capsys):
    assert main(["mvm", "--station", _station(tmp_path, 8, 16), "-q", "--n-out", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xbarlab: error:") and "columns" in err and "Traceback" not in err
    assert main(["train", "-q", "--rule", "float", "--set", "hiden=3"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    log = tmp_path / "exists.h5"
    log.write_bytes(b"")
    assert main(["solve", "-q", "-n", "4", "-o", str(log)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_set_values_are_parsed_as_toml():
    got = parse_set_params(["g_max=4e-5", "sizes=[2, 4]", "defect_correction=false", "matrix=random"],
                           MvmExperiment.params_spec)
    assert got == {"g_max": 4e-5, "sizes": [2, 4], "defect_correction": False, "matrix": "random"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_params(["g_max"], MvmExperiment.params_spec)
