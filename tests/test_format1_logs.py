"""Logs written before SMU reply confirmation (logbook format 1, pickle checkpoints) still read,
replay with their own traffic, and resume without unpickling their checkpoint (issue 11 §2, §4).

The files in tests/data were written by xbarlab at the commit before this change: a 2400 and a
2600B campaign of an I-V sweep, an SMU-referenced read-path calibration and an array read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xbarlab.cli import main
from xbarlab.logbook import LogReader
from xbarlab.logbook.format import FORMAT_VERSION
from xbarlab.logbook.replay import replay

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["format1-k2400.h5", "format1-k2600.h5"])
def test_a_format1_log_replays_bit_for_bit(name):
    report = replay(DATA / name)
    assert [r.outcome for r in report.runs] == ["reproduced"] * 4
    assert LogReader(DATA / name).attrs["format_version"] == 1


def test_resuming_a_format1_log_refuses_its_pickle_checkpoint_then_appends_a_format2_session(tmp_path, capsys):
    log = tmp_path / "old.h5"
    shutil.copy(DATA / "format1-k2400.h5", log)
    shutil.copy(DATA / "format1-k2400.h5.simstate", tmp_path / "old.h5.simstate")
    runs = LogReader(log).runs()
    (tmp_path / "k2400.toml").write_text(runs[0]["station_text"])  # the campaign names its station file
    before = [r["run_id"] for r in runs]
    assert main(["run", "--resume", str(log), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "old pickle format" in err and len(err.splitlines()) == 1
    assert [r["run_id"] for r in LogReader(log).runs()] == before
    (tmp_path / "old.h5.simstate").unlink()
    assert main(["run", "--resume", str(log), "-q"]) == 0  # every step done: only a new session is opened
    runs = LogReader(log).runs()
    assert [r["format_version"] for r in runs] == [1, 1, 1, 1, FORMAT_VERSION]
    report = replay(log)  # the old session with its single-copy traffic, the new one with confirmation
    assert [r.outcome for r in report.runs] == ["reproduced"] * 5
