"""Sweeps on real Dask clusters: a LocalCluster of worker processes, and a scheduler plus two workers
started as separate processes on 127.0.0.1 with one worker killed mid-sweep (no point lost, none duplicated)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from xbarlab.campaigns.runner import SESSION, step_of  # noqa: E402
from xbarlab.cli import main  # noqa: E402
from xbarlab.logbook import LogReader  # noqa: E402
from xbarlab.sim.stations import sim_station_text  # noqa: E402
from xbarlab.sweep import load_sweep  # noqa: E402
from xbarlab.sweep.index import read_index  # noqa: E402
from xbarlab.sweep.point import PointTask, run_point  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

CAMPAIGN = """
[campaign]
name = "tiny write-verify"
station = "bench.toml"
seed = 1

[[steps]]
type = "write_verify"
[steps.params]
tolerance = 0.03
max_pulses = 40
"""

LONG_CAMPAIGN = CAMPAIGN + """
[[steps]]
type = "array_read"
[steps.sweep]
read_voltage = [0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.22, 0.24]

[[steps]]
type = "write_verify"
[steps.params]
tolerance = 0.02
max_pulses = 40
seed = 9
"""


def make_sweep(folder: Path, campaign: str, axes: str) -> Path:
    (folder / "bench.toml").write_text(sim_station_text(8, 8, seed=4), encoding="utf-8")
    (folder / "camp.toml").write_text(campaign, encoding="utf-8")
    path = folder / "s.toml"
    path.write_text('[sweep]\ncampaign = "camp.toml"\nfigures = ["write_verify.yield"]\n' + axes, encoding="utf-8")
    return path


def completed_step_counts(log: Path) -> Counter[str]:
    runs = LogReader(log).runs()
    return Counter(step_of(r["run_id"]) for r in runs if r["kind"] != SESSION and r["status"] == "completed")


def test_local_cluster_runs_points_in_worker_processes_and_skips_them_on_rerun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_sweep(tmp_path, CAMPAIGN, '[axes]\n"sim.device.c2c" = [0.05, 1.5]\nseed = [1, 2]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out), "--workers", "2", "-q"]) == 0  # embedded LocalCluster
    assert "sweep completed: 4 completed" in capsys.readouterr().out
    index = read_index(out)
    assert [r["point_id"] for r in index.rows] == ["p000", "p001", "p002", "p003"]
    assert {r["status"] for r in index.rows} == {"completed"} and {r["action"] for r in index.rows} == {"ran"}
    assert all(r["worker"].split(":")[1] != str(os.getpid()) for r in index.rows)  # ran in worker processes
    assert index.rows[3]["values"] == {"sim.device.c2c": 1.5, "seed": 2}
    yields = index.column("write_verify.yield")
    pulses = index.column("write_verify.mean_pulses")
    assert yields.shape == (4,) and ((0 < yields) & (yields <= 1)).all()
    assert pulses[2:].mean() > pulses[:2].mean()  # c2c 1.5 needs more pulses than 0.05 on the same arrays
    for r in index.rows:
        assert completed_step_counts(out / r["log"]) == Counter({"000-write_verify": 1})

    # a re-run finds every log complete: it starts no cluster and touches no log
    import xbarlab.sweep.cluster

    def no_cluster(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished sweep must not start a cluster")

    monkeypatch.setattr(xbarlab.sweep.cluster, "connect", no_cluster)
    before = {r["log"]: (out / r["log"]).stat().st_mtime_ns for r in index.rows}
    assert main(["sweep", str(path), "-o", str(out), "-q"]) == 0
    again = read_index(out)
    assert {r["action"] for r in again.rows} == {"already complete"}
    assert [r["worker"] for r in again.rows] == [r["worker"] for r in index.rows]
    assert before == {r["log"]: (out / r["log"]).stat().st_mtime_ns for r in again.rows}


def test_show_prints_table_and_draws_one_axis_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xbarlab.sweep.index import SweepIndex, write_index

    rows = [{"point_id": f"p00{i}", "values": {"sim.device.c2c": c, "seed": s}, "status": "completed",
             "log": f"points/p00{i}.h5", "figures": {"write_verify.yield": y}}
            for i, (c, s, y) in enumerate([(0.1, 1, 1.0), (0.1, 2, 0.98), (0.5, 1, 0.9), (0.5, 2, 0.8)])]
    text = '[sweep]\ncampaign = "x.toml"\nfigures = ["write_verify.yield"]\n'
    write_index(tmp_path, SweepIndex(text, "s.toml", "demo", ["sim.device.c2c", "seed"], rows))
    assert main(["sweep", "show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "p003" in out and "0.8" in out and "write_verify.yield vs sim.device.c2c (mean ± std over 2 seeds)" in out
    png = tmp_path / "write_verify.yield.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["sweep", "show", str(tmp_path), "--figure", "nope"]) == 2
    assert "not in the sweep index" in capsys.readouterr().err


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def test_scheduler_and_two_worker_processes_survive_a_killed_worker(tmp_path: Path) -> None:
    path = make_sweep(tmp_path, LONG_CAMPAIGN, '[axes]\n"sim.device.c2c" = [0.1, 0.3, 0.6]\n')
    out = tmp_path / "out"
    sched_file = tmp_path / "scheduler.json"
    procs = [_start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--scheduler-file", str(sched_file)], tmp_path / "scheduler.log")]
    try:
        deadline = time.monotonic() + 30
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(_start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                 "--no-dashboard", "--name", f"w{i}"], tmp_path / f"worker{i}.log"))
        killed: list[tuple[str, int]] = []

        def kill_one_worker_mid_point() -> None:
            """Wait for a point log with some steps done and some to go, then SIGKILL the process writing it."""
            end = time.monotonic() + 60
            while time.monotonic() < end and not killed:
                for log in sorted((out / "points").glob("p*.h5")) if (out / "points").exists() else []:
                    try:
                        done = sum(completed_step_counts(log).values())
                    except Exception:  # noqa: BLE001 - being created
                        continue
                    if 2 <= done <= 6:
                        holder = (log.with_name(log.stem + ".lease")).read_text().split()
                        pid = int(holder[-1])
                        os.kill(pid, signal.SIGKILL)
                        killed.append((log.stem, pid))
                        return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_one_worker_mid_point, daemon=True)
        killer.start()
        assert main(["sweep", str(path), "-o", str(out), "--scheduler", address, "-q"]) == 0
        killer.join(5)
        assert killed, "no point log was caught mid-run"
        index = read_index(out)
        assert [r["status"] for r in index.rows] == ["completed"] * 3
        point, pid = killed[0]
        row = next(r for r in index.rows if r["point_id"] == point)
        assert row["action"] == "resumed" and row["worker"].split(":")[1] != str(pid)
        steps = [f"{i:03d}" for i in range(10)]
        for r in index.rows:  # every step of every point completed exactly once: nothing lost, nothing duplicated
            counts = completed_step_counts(out / r["log"])
            assert sorted(k[:3] for k in counts) == steps and set(counts.values()) == {1}
        runs = LogReader(out / "points" / f"{point}.h5").runs()
        assert [x["run_id"] for x in runs if x["kind"] == SESSION] == ["session-1", "session-2"]  # resumed once
        # a step cut short (if the kill fell inside one rather than between two) is left as crashed and redone
        assert len([x for x in runs if x["status"] == "crashed"]) <= 1
        # and the resumed point measured what an uninterrupted run measures (the bench restored from its checkpoint)
        p = next(x for x in load_sweep(path).points if x.point_id == point)
        fresh = run_point(PointTask(str(tmp_path / "fresh"), p.point_id, p.values, p.station_file, p.station_text,
                                    p.campaign_file, p.campaign_text, p.log_file))
        measured = {k: v for k, v in row["figures"].items() if not k.endswith("wall_s")}  # all but wall-clock times
        assert fresh["action"] == "ran" and measured == {k: v for k, v in fresh["figures"].items() if k in measured}
        assert len(measured) > 20
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
