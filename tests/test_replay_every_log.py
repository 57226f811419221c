"""Replay of every log: each shipped campaign (reduced sizes) and logs SIGKILLed at any point,
including while the station was opening (issue 11 §3)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xbarlab.campaigns.runner import CampaignRunner
from xbarlab.campaigns.spec import load_campaign
from xbarlab.logbook import LogReader
from xbarlab.logbook.replay import replay
from xbarlab.sim.stations import sim_station_text

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "campaigns").glob("*.toml"))

#: reduced sizes: (pattern, replacement) applied to a shipped campaign's text
SMALLER = {
    "calibrate.toml": [(r"cells = 32", "cells = 6"), (r"pulses = 30", "pulses = 6"), (r"cycles = 3", "cycles = 1"),
                       (r"max_pulses = 100", "max_pulses = 20"), (r"n = 10\narrays = 3\nrepeats = 8",
                                                                   "n = 4\narrays = 2\nrepeats = 2")],
    "one_step.toml": [(r"^n = 16$", "n = 8"),
                      (r'potential = \["square", "harmonic", "double"\]', 'potential = ["double"]')],
    "characterize.toml": [(r"points = 31", "points = 7"), (r"pulses = 30", "pulses = 5")],
    "experiments.toml": [(r"n_in = 8\nn_out = 4\nsizes = \[2, 4\]\nv_ins = \[0.1, 0.2\]",
                          "n_in = 4\nn_out = 2\nsizes = [2]\nv_ins = [0.1]"),
                         (r"vectors = 10", "vectors = 2"), (r"^n = 8$", "n = 4"),
                         (r"hidden = 8", "hidden = 2"), (r"limit = 300", 'limit = 0\ndataset = "{tiny}"'),
                         (r"epochs = 5", "epochs = 1"),
                         (r'rule = \["float", "mixed_precision"\]', 'rule = ["mixed_precision"]'),
                         (r"times = \[1.0, 3600.0, 86400.0\]", "times = [1.0, 86400.0]")],
}


def _small_copy(path: Path, tmp_path: Path, rows: int = 16, cols: int = 32) -> Path:
    """A copy of a shipped campaign with smaller steps, on a small simulated station (and, for training,
    a 40-sample data set of 4 features and 3 classes instead of the 64-feature digits)."""
    text = path.read_text()
    tiny = tmp_path / "tiny.npz"
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    np.savez(tiny, X=rng.normal(size=(40, 4)) + y[:, None], y=y)
    for pattern, repl in SMALLER.get(path.name, []):
        text, n = re.subn(pattern, repl.replace("{tiny}", str(tiny)), text, flags=re.M)
        assert n, f"{path.name}: {pattern!r} no longer matches the shipped campaign; update the reduction"
    (tmp_path / "small.toml").write_text(sim_station_text(rows, cols, seed=7))
    text = re.sub(r'station = "sim"', 'station = "small.toml"', text)
    out = tmp_path / path.name
    out.write_text(text)
    return out


def _check_replay(log: Path) -> None:
    report = replay(log)
    runs = {r["run_id"]: r for r in LogReader(log).runs()}
    for rr in report.runs:
        info = runs[rr.run_id]
        if info["status"] == "completed":
            assert rr.outcome == "reproduced", (rr.run_id, rr.outcome, rr.note)
        else:
            assert rr.outcome == "stopped as recorded", (rr.run_id, rr.outcome)
    assert {r.run_id for r in report.runs} == set(runs)


#: array size of the reduced station per campaign
SIZES: dict[str, tuple[int, int]] = {}


def test_every_shipped_campaign_has_a_reduction():
    assert {p.name for p in SHIPPED} == set(SMALLER), "a new shipped campaign needs a reduced copy here"


@pytest.mark.parametrize("campaign", sorted(SMALLER))
def test_every_shipped_campaign_logs_replay(campaign, tmp_path):
    small = _small_copy(ROOT / "campaigns" / campaign, tmp_path, *SIZES.get(campaign, (16, 32)))
    log = tmp_path / "run.h5"
    assert CampaignRunner(load_campaign(small), log).run().status == "completed"
    _check_replay(log)


_KILLER = """
import os, signal, sys
from xbarlab.campaigns.runner import CampaignRunner
from xbarlab.campaigns.spec import load_campaign
from xbarlab.logbook.recording import RunSink

run_id, after = sys.argv[3], int(sys.argv[4])
real = RunSink.record_transcript
seen = {"n": 0}

def record(self, link, code, data, sim_time):
    real(self, link, code, data, sim_time)
    if self.run is not None and self.run.run_id == run_id:
        seen["n"] += 1
        if seen["n"] >= after:
            os.kill(os.getpid(), signal.SIGKILL)

RunSink.record_transcript = record
CampaignRunner(load_campaign(sys.argv[1]), sys.argv[2], resume=os.path.exists(sys.argv[2])).run()
"""


def _killed(campaign: Path, log: Path, run_id: str, after: int) -> None:
    """Run (or resume) the campaign in a process that SIGKILLs itself at exchange ``after`` of run ``run_id``."""
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(campaign), str(log), run_id, str(after)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == -9, proc.stderr[-2000:]


def test_logs_killed_while_the_station_opened_and_mid_step_replay(tmp_path):
    small = _small_copy(ROOT / "campaigns" / "calibrate.toml", tmp_path, rows=12, cols=16)
    log = tmp_path / "killed.h5"
    _killed(small, log, "session-1", 3)  # SIGKILL while the station opens (after 3 exchanges)
    _killed(small, log, "001-range_map@session-2", 30)  # mid-step, in a step that applies the logged calibration
    assert CampaignRunner(load_campaign(small), log, resume=True).run().status == "completed"
    runs = {r["run_id"]: r for r in LogReader(log).runs()}
    assert runs["session-1"]["status"] == runs["001-range_map@session-2"]["status"] == "crashed"
    assert runs["001-range_map@session-3"]["calibrations_used"] == ["000-read_calibration@session-2/read_path"]
    _check_replay(log)
    outcomes = {r.run_id: r.outcome for r in replay(log).runs}
    assert outcomes["session-1"] == outcomes["001-range_map@session-2"] == "stopped as recorded"
