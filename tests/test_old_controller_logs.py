"""Replay of logs whose steps were written by another revision of their controller code.

``format1-controllers.h5.gz`` was written by xbarlab at commit 6a46c4a (before the write-verify,
bounds, characterisation and closed-loop changes; logbook format 1) from this campaign on a 4x4
simulated bench: iv_sweep, range_map, device_fit, write_verify, closed_loop_solve, array_read.
Today's code sends other commands in the four controller steps; replay must say so in one line
each, keep their data readable, and still reproduce the other steps bit for bit.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import h5py
import pytest

import xbarlab.experiments.catalog  # noqa: F401 - registers the step types
from xbarlab.campaigns.runner import CampaignRunner
from xbarlab.campaigns.spec import load_campaign
from xbarlab.cli import main
from xbarlab.errors import ReplayDivergence
from xbarlab.experiments.base import STEP_TYPES
from xbarlab.logbook import LogReader
from xbarlab.logbook.replay import NOT_REDERIVED, replay
from xbarlab.sim.stations import sim_station_text

DATA = Path(__file__).parent / "data"
CHANGED = ["range_map", "device_fit", "write_verify", "closed_loop_solve"]


@pytest.fixture()
def old_log(tmp_path):
    log = tmp_path / "old.h5"
    with gzip.open(DATA / "format1-controllers.h5.gz", "rb") as src, open(log, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return log


def test_steps_of_another_controller_revision_are_named_and_the_rest_replays_bit_for_bit(old_log, capsys):
    report = replay(old_log)
    outcomes = {r.kind: r.outcome for r in report.runs}
    assert outcomes == {"session": "reproduced", "iv_sweep": "reproduced", "array_read": "reproduced",
                        **{kind: NOT_REDERIVED for kind in CHANGED}}
    for r in report.not_rederived:
        assert r.note == (f"step {r.run_id} was written by {r.kind} controller revision 1; this version replays "
                          f"revision {STEP_TYPES[r.kind].revision}; its data are intact but cannot be re-derived")
    # the array read after four skipped steps replays: the board's frame numbering resumed from the recording
    assert sum(next(r for r in report.runs if r.kind == "array_read").streams.values()) == 1
    reader = LogReader(old_log)  # the data of the skipped steps are intact
    wv = next(i["run_id"] for i in reader.runs() if i["kind"] == "write_verify")
    assert reader.stream(wv, "achieved").data.shape == (1, 4, 4)
    assert main(["replay", str(old_log), "-q"]) == 0
    out = capsys.readouterr().out
    assert sum("cannot be re-derived" in line for line in out.splitlines()) == 4
    assert "4 run(s) not re-derived" in out


def test_replay_without_revisions_would_diverge(old_log, monkeypatch):
    """The revisions are not decoration: at revision 1 today's write-verify code diverges from the log."""
    for kind in CHANGED:
        monkeypatch.setattr(STEP_TYPES[kind], "revision", 1)
    with pytest.raises(ReplayDivergence, match="range_map"):
        replay(old_log)


CAMPAIGN = """
[campaign]
name = "revisions"
station = "bench.toml"

[[steps]]
type = "iv_sweep"
[steps.params]
row = 1
col = 2
points = 5
start = -0.1
stop = 0.1

[[steps]]
type = "array_read"
"""


def test_runs_record_their_controller_revision_and_a_changed_one_is_reported(tmp_path, monkeypatch):
    (tmp_path / "bench.toml").write_text(sim_station_text(4, 4, seed=2))
    (tmp_path / "camp.toml").write_text(CAMPAIGN)
    log = tmp_path / "new.h5"
    monkeypatch.setattr(STEP_TYPES["iv_sweep"], "revision", 7)
    assert CampaignRunner(load_campaign(tmp_path / "camp.toml"), log).run().status == "completed"
    runs = {i["kind"]: i for i in LogReader(log).runs()}
    assert runs["iv_sweep"]["code_revision"] == 7 and runs["array_read"]["code_revision"] == 1
    assert [r.outcome for r in replay(log).runs] == ["reproduced"] * 3
    monkeypatch.setattr(STEP_TYPES["iv_sweep"], "revision", 8)  # today's code is a later revision
    report = replay(log)
    assert [r.outcome for r in report.runs] == ["reproduced", NOT_REDERIVED, "reproduced"]
    assert "written by iv_sweep controller revision 7; this version replays revision 8" in report.runs[1].note
    # a run after a skipped one that really differs is reported too, not taken for a replay of the log
    with h5py.File(log, "r+") as f:
        ds = f["runs"][runs["array_read"]["run_id"]]["streams"]["conductance"]
        ds[0, 0, 0] = ds[0, 0, 0] * 2
    report = replay(log)
    assert report.runs[2].outcome == NOT_REDERIVED and "follows a step that was not re-derived" in report.runs[2].note
    monkeypatch.setattr(STEP_TYPES["iv_sweep"], "revision", 7)  # with nothing skipped, a difference is a divergence
    with pytest.raises(ReplayDivergence, match="differs from the log"):
        replay(log)
