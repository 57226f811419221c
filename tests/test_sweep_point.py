"""One sweep point in this process (no cluster): lease, damaged and foreign logs, resume of a cut-short log."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from xbarlab.campaigns.runner import CampaignRunner
from xbarlab.campaigns.spec import parse_campaign
from xbarlab.experiments.base import AbortToken
from xbarlab.logbook import LogReader
from xbarlab.sim.stations import sim_station_text
from xbarlab.sweep import parse_sweep
from xbarlab.sweep.point import LeaseTimeout, PointTask, run_point

CAMPAIGN = """
[campaign]
name = "reads"
station = "bench.toml"

[[steps]]
type = "array_read"
[steps.sweep]
read_voltage = [0.1, 0.15, 0.2]
"""


def first_task(tmp_path: Path, lease_timeout: float = 60.0) -> PointTask:
    (tmp_path / "bench.toml").write_text(sim_station_text(6, 6, seed=2), encoding="utf-8")
    (tmp_path / "camp.toml").write_text(CAMPAIGN, encoding="utf-8")
    sweep = parse_sweep('[sweep]\ncampaign = "camp.toml"\n[axes]\n"sim.periphery.noise" = [1e-6]\n',
                        source=str(tmp_path / "s.toml"), base_dir=tmp_path)
    p = sweep.points[0]
    folder = tmp_path / "points"
    return PointTask(str(folder), p.point_id, p.values, p.station_file, p.station_text, p.campaign_file,
                     p.campaign_text, p.log_file, lease_timeout=lease_timeout)


def test_a_cut_short_log_is_resumed_not_rerun(tmp_path: Path) -> None:
    task = first_task(tmp_path)
    folder = Path(task.directory)
    folder.mkdir()
    (folder / task.station_file).write_text(task.station_text, encoding="utf-8")
    campaign = parse_campaign(task.campaign_text, source=str(folder / task.campaign_file), base_dir=folder)
    token = AbortToken()
    CampaignRunner(campaign, folder / task.log_file, abort=token,
                   on_step=lambda k, n, s: token.request() if k == 1 else None).run()  # stop after one step
    result = run_point(task)
    assert result["status"] == "completed" and result["action"] == "resumed"
    runs = LogReader(folder / task.log_file).runs()
    done = [r["run_id"] for r in runs if r["kind"] == "array_read" and r["status"] == "completed"]
    assert [d.split("@")[0][:3] for d in done] == ["000", "001", "002"]  # step 0 kept, 1 and 2 added once
    assert result["figures"]  # every number the steps committed
    again = run_point(task)
    assert again["action"] == "already complete" and len(LogReader(folder / task.log_file).runs()) == len(runs)


def test_a_damaged_log_is_set_aside_and_a_foreign_one_left_alone(tmp_path: Path) -> None:
    task = first_task(tmp_path)
    folder = Path(task.directory)
    folder.mkdir()
    (folder / task.log_file).write_bytes(b"not an HDF5 file")
    result = run_point(task)
    assert result["status"] == "completed" and "set aside as p000.h5.damaged-1" in result["error"]
    assert (folder / "p000.h5.damaged-1").read_bytes() == b"not an HDF5 file"
    other = PointTask(**{**task.__dict__, "campaign_text": task.campaign_text.replace("0.15", "0.16")})
    foreign = run_point(other)
    assert foreign["status"] == "failed" and "holds a different campaign" in foreign["error"]


def test_a_held_lease_keeps_a_second_writer_out(tmp_path: Path) -> None:
    task = first_task(tmp_path, lease_timeout=0.3)
    folder = Path(task.directory)
    folder.mkdir()
    fd = os.open(folder / "p000.lease", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(LeaseTimeout, match="another process kept this point"):
            run_point(task)
        assert not (folder / task.log_file).exists()
    finally:
        os.close(fd)
    assert run_point(task)["status"] == "completed"
