"""Simulator checkpoints cannot run code: npz without pickle, versioned, clear errors (issue 11 §4)."""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

from xbarlab.campaigns.runner import CampaignRunner
from xbarlab.campaigns.spec import load_campaign
from xbarlab.cli import main
from xbarlab.instruments.station import Station
from xbarlab.logbook import LogReader
from xbarlab.sim import checkpoint
from xbarlab.sim.checkpoint import CheckpointError
from xbarlab.sim.stations import sim_station_text

CAMPAIGN = """
[campaign]
name = "checkpoint"
station = "bench.toml"

[[steps]]
type = "pulse_response"
[steps.params]
row = 1
col = 2
pulses = 4
set_amplitude = 1.2
reset_amplitude = -1.2
cycles = 1

[[steps]]
type = "array_read"
[steps.sweep]
read_voltage = [0.1, 0.2]
"""


class _RunsCode:
    """Unpickling this runs os.system: the attack of issue 11 §4."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def campaign_file(tmp_path):
    (tmp_path / "bench.toml").write_text(sim_station_text(8, 8, seed=5))
    path = tmp_path / "camp.toml"
    path.write_text(CAMPAIGN)
    return path


def _interrupted_log(campaign_file, tmp_path):
    """A log whose last step was stopped, with a checkpoint of the first."""
    log = tmp_path / "c.h5"
    runner = CampaignRunner(load_campaign(campaign_file), log)
    seen = []

    def on_step(k, total, step):
        seen.append(step.step_id)
        if len(seen) == 2:
            runner.abort.request()

    runner.on_step = on_step
    assert runner.run().status == "interrupted"
    return log, runner.sim_state_path


def _runs(log):
    return [(r["run_id"], r["status"]) for r in LogReader(log).runs()]


def test_checkpoint_round_trips_bit_for_bit_without_pickle(tmp_path):
    from xbarlab.instruments.interfaces import Pulse

    with Station.from_text(sim_station_text(8, 8, seed=3)) as st:
        b = st.require_board()
        b.pulse_batch([Pulse(2, 2, 1.3, 1e-6)] * 3)
        checkpoint.save(st.sim, tmp_path / "s", tag="a")
        before = b.read_all()
        b.pulse_batch([Pulse(1, 1, 1.3, 1e-6)] * 4)
    with zipfile.ZipFile(tmp_path / "s") as z:
        assert all(n.endswith(".npy") for n in z.namelist())
    with np.load(tmp_path / "s", allow_pickle=False) as npz:  # loads with pickle forbidden
        assert npz["__meta__"].dtype == np.uint8
    with Station.from_text(sim_station_text(8, 8, seed=3)) as st:
        assert checkpoint.load(st.sim, tmp_path / "s", ["a"]) == "a"
        assert np.array_equal(st.require_board().read_all(), before)


def test_a_crafted_pickle_checkpoint_never_runs_and_appends_nothing(campaign_file, tmp_path, capsys):
    log, state = _interrupted_log(campaign_file, tmp_path)
    marker = tmp_path / "pwned"
    state.write_bytes(pickle.dumps([("000-pulse_response", _RunsCode(marker))]))
    runs_before = _runs(log)
    assert main(["run", "--resume", str(log), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists(), "the checkpoint ran code"
    assert len(err.splitlines()) == 1 and "old pickle format" in err and "Traceback" not in err
    assert _runs(log) == runs_before  # no junk session appended
    state.unlink()  # the message says how to go on: later resumes are not blocked
    assert main(["run", "--resume", str(log), "-q"]) == 0
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign_npz", "other_bench", "future_version"])
def test_damaged_or_foreign_checkpoints_are_one_clear_line(campaign_file, tmp_path, capsys, damage):
    log, state = _interrupted_log(campaign_file, tmp_path)
    good = state.read_bytes()
    if damage == "truncated":
        state.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        state.write_bytes(b"\x00hello" * 100)
    elif damage == "foreign_npz":
        with open(state, "wb") as fh:
            np.savez(fh, x=np.arange(3))
    elif damage == "other_bench":  # a checkpoint of a differently built bench under the right tag
        with Station.from_text(sim_station_text(6, 6, seed=5)) as st:
            checkpoint.save(st.sim, state, tag="000-pulse_response")
    else:
        import json

        with np.load(state, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays["__meta__"].tobytes())
        meta["version"] = 99
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(state, "wb") as fh:
            np.savez(fh, **arrays)
    runs_before = _runs(log)
    with pytest.raises(CheckpointError) as info:
        CampaignRunner(load_campaign(campaign_file), log, resume=True).run()
    assert str(state) in str(info.value) and "\n" not in str(info.value)
    assert _runs(log) == runs_before
    state.write_bytes(good)  # once the file is good again, resume works
    assert CampaignRunner(load_campaign(campaign_file), log, resume=True).run().status == "completed"
