"""Campaigns end to end: run, SIGKILL + resume, replay, divergence, injected faults, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from xbarlab.campaigns.runner import CampaignRunner, completed_steps
from xbarlab.campaigns.spec import load_campaign
from xbarlab.cli import main
from xbarlab.errors import ConfigError, ReplayDivergence
from xbarlab.experiments.base import AbortToken
from xbarlab.logbook import LogReader
from xbarlab.logbook.replay import replay
from xbarlab.sim.stations import sim_station_text

CAMPAIGN = """
[campaign]
name = "kill and resume"
station = "bench.toml"

[[steps]]
type = "array_read"
[steps.sweep]
read_voltage = [0.1, 0.15, 0.2]

[[steps]]
type = "pulse_response"
[steps.params]
row = 2
col = 3
pulses = 12
set_amplitude = 1.2
reset_amplitude = -1.2
cycles = 2

[[steps]]
type = "iv_sweep"
[steps.params]
row = 4
col = 4
points = 11
start = -0.2
stop = 0.2

[[steps]]
type = "array_read"
[steps.sweep]
read_voltage = [0.12, 0.18, 0.25, 0.3]
"""


@pytest.fixture()
def campaign_file(tmp_path):
    (tmp_path / "bench.toml").write_text(sim_station_text(24, 24, seed=11))
    path = tmp_path / "camp.toml"
    path.write_text(CAMPAIGN)
    return path


def _results(log):
    """{step_id: {stream: data}} of every completed step run."""
    r = LogReader(log)
    out = {}
    for info in r.runs():
        if info["kind"] == "session" or info["status"] != "completed":
            continue
        step = info["run_id"].rsplit("@", 1)[0]
        assert step not in out, f"step {step} completed twice"
        out[step] = {n: r.stream(info["run_id"], n).data for n in r.stream_names(info["run_id"])}
    return out


def test_campaign_runs_logs_and_replays_bit_for_bit(campaign_file, tmp_path, capsys):
    log = tmp_path / "run.h5"
    assert main(["run", str(campaign_file), "-o", str(log), "-q"]) == 0
    res = _results(log)
    assert len(res) == len(load_campaign(campaign_file).steps) == 9
    assert "campaign completed" in capsys.readouterr().out
    rep = replay(log)
    assert len(rep.reproduced) == 10 and sum(sum(r.streams.values()) for r in rep.reproduced) > 0
    assert main(["replay", str(log), "-q"]) == 0
    assert "bit for bit" in capsys.readouterr().out
    # only one run, by id
    rid = [i["run_id"] for i in LogReader(log).runs() if i["kind"] == "iv_sweep"][0]
    assert [r.run_id for r in replay(log, rid).runs] == ["session-1", rid]
    # the log is never overwritten
    assert main(["run", str(campaign_file), "-o", str(log), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_dry_run_prints_the_plan_without_touching_instruments(campaign_file, capsys):
    assert main(["run", str(campaign_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "9 steps" in out and "estimated instrument time" in out and "001-array_read[read_voltage=0.15]" in out


def _kill_after(log, campaign_file, completed, resume):
    args = [sys.executable, "-m", "xbarlab.cli", "run", "-q"]
    args += ["--resume", str(log)] if resume else [str(campaign_file), "-o", str(log)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False  # finished before we could kill it
            if log.exists():
                try:
                    if len(completed_steps(LogReader(log))) >= completed:
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        return True
                except Exception:  # noqa: BLE001 - the file may not be a logbook yet
                    pass
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    raise AssertionError("the campaign did not progress")


def test_sigkill_at_several_points_then_resume_equals_an_uninterrupted_run(campaign_file, tmp_path):
    ref = tmp_path / "ref.h5"
    assert CampaignRunner(load_campaign(campaign_file), ref).run().status == "completed"
    log = tmp_path / "killed.h5"
    killed = [_kill_after(log, campaign_file, 1, resume=False)]
    killed.append(_kill_after(log, campaign_file, 4, resume=True))
    killed.append(_kill_after(log, campaign_file, 6, resume=True))
    assert any(killed)
    assert main(["run", "--resume", str(log), "-q"]) == 0
    got, want = _results(log), _results(ref)
    assert got.keys() == want.keys()
    for step in want:  # every step exactly once, bit-identical to the uninterrupted run
        for name, data in want[step].items():
            assert got[step][name].tobytes() == data.tobytes(), (step, name)
    runs = LogReader(log).runs()
    assert sum(r["kind"] == "session" for r in runs) >= 2
    assert not [r for r in runs if r["status"] == "running"]  # killed runs are marked on resume
    replay(log)  # the multi-session log replays too


def test_replay_detects_a_command_that_differs_from_the_log(campaign_file, tmp_path):
    log = tmp_path / "run.h5"
    CampaignRunner(load_campaign(campaign_file), log).run()
    rid = [i["run_id"] for i in LogReader(log).runs() if i["kind"] == "iv_sweep"][0]
    with h5py.File(log, "r+") as f:  # the code will now ask for 12 points where the log holds 11
        g = f["runs"][rid]
        g.attrs["params"] = g.attrs["params"].replace('"points": 11', '"points": 12')
    with pytest.raises(ReplayDivergence) as exc:
        replay(log)
    msg = str(exc.value)
    assert rid in msg and "step 1" in msg and "the log holds" in msg and "the code" in msg


def test_replay_detects_results_that_differ_from_the_log(campaign_file, tmp_path):
    log = tmp_path / "run.h5"
    CampaignRunner(load_campaign(campaign_file), log).run()
    rid = [i["run_id"] for i in LogReader(log).runs() if i["kind"] == "iv_sweep"][0]
    with h5py.File(log, "r+") as f:
        ds = f["runs"][rid]["streams"]["iv"]
        ds[3, 1] = ds[3, 1] * (1 + 1e-15)
    with pytest.raises(ReplayDivergence, match=r"stream 'iv' differs from the log at row 3"):
        replay(log)


@pytest.mark.parametrize("fault", [{"timeout_next": 1}, {"corrupt_next": 1}, {"drop_next": 1}, {"reset_next": 1}])
def test_link_faults_are_recovered_by_reinitialising_and_repeating_the_step(campaign_file, tmp_path, fault):
    log = tmp_path / "faults.h5"
    opened = []

    def inject(progress):  # mid-step: after the first measurement of the first session's first step
        if len(opened) == 1 and not getattr(opened[0], "_faulted", False):
            opened[0]._faulted = True
            opened[0].sim.set_faults("board", **fault)

    report = CampaignRunner(load_campaign(campaign_file), log, on_session=opened.append, on_progress=inject).run()
    assert report.status == "completed", report.outcomes
    runs = LogReader(log).runs()
    failed = [r for r in runs if r["status"] == "failed"]
    assert len(failed) == 1 and len(opened) == 2
    words = {"timeout_next": "no reply", "corrupt_next": "reply", "drop_next": "reply", "reset_next": "reset"}
    assert words[next(iter(fault))] in failed[0]["error"], failed[0]["error"]
    # the faulty exchange raised before anything was appended: the step's later run holds the measurement
    assert len(_results(log)) == 9
    reader = LogReader(log)
    for name in reader.stream_names(failed[0]["run_id"]):
        assert np.all(np.isfinite(reader.stream(failed[0]["run_id"], name).data))


def test_a_fault_that_persists_stops_safely_with_a_resumable_log(campaign_file, tmp_path, capsys):
    log = tmp_path / "dead.h5"
    benches = []

    def inject(station):
        benches.append(station.sim)
        smu = station.smu("smu1")
        smu.source_voltage(0.1, 1e-4)
        smu.set_output(True)  # as if a step had left it on
        station.sim.set_faults("board", timeout_probability=1.0)

    report = CampaignRunner(load_campaign(campaign_file), log, on_session=inject, retries=1).run()
    assert report.status == "failed" and "no reply" in report.outcomes[-1].error
    runs = LogReader(log).runs()
    assert [r["status"] for r in runs if r["kind"] != "session"] == ["failed", "failed"]
    for bench in benches:  # every SMU output was switched off when the bench closed
        for name, emu in bench.emulators.items():
            if name != "board":
                assert not any(ch.output for ch in emu.ch), name
    from xbarlab.campaigns.console import format_report

    assert "resume with: xbarlab run --resume" in format_report(report)
    assert CampaignRunner(load_campaign(campaign_file), log, resume=True).run().status == "completed"


def test_abort_stops_at_a_safe_point_with_status_interrupted(campaign_file, tmp_path):
    log = tmp_path / "abort.h5"
    token = AbortToken()
    seen = []

    def on_step(k, total, step):
        seen.append(step.step_id)
        if k == 2:
            token.request()

    report = CampaignRunner(load_campaign(campaign_file), log, abort=token, on_step=on_step).run()
    assert report.status == "interrupted"
    runs = LogReader(log).runs()
    assert runs[-1]["status"] == "interrupted" and runs[-1]["run_id"].startswith("002-")
    report = CampaignRunner(load_campaign(campaign_file), log, resume=True).run()
    assert report.status == "completed" and report.counts()["skipped"] == 2


def test_ctrl_c_in_a_subprocess_leaves_an_interrupted_resumable_log(campaign_file, tmp_path):
    log = tmp_path / "ctrlc.h5"
    long = tmp_path / "long.toml"  # long enough that Ctrl-C arrives mid-campaign
    long.write_text(CAMPAIGN.replace("[0.12, 0.18, 0.25, 0.3]", str([round(0.1 + 0.0005 * k, 4) for k in range(400)])))
    proc = subprocess.Popen([sys.executable, "-m", "xbarlab.cli", "run", str(long), "-o", str(log), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (log.exists() and _safe_count(log) >= 1):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume with" in out
    statuses = [r["status"] for r in LogReader(log).runs()]
    assert "interrupted" in statuses and "running" not in statuses
    assert main(["run", "--resume", str(log), "-q"]) == 0


def _safe_count(log):
    try:
        return len(completed_steps(LogReader(log)))
    except Exception:  # noqa: BLE001
        return 0


def test_resume_refuses_a_log_that_is_not_a_campaign(tmp_path):
    from xbarlab.logbook import Logbook

    p = tmp_path / "plain.h5"
    Logbook.create(p).close()
    with pytest.raises(ConfigError, match="not a campaign log"):
        CampaignRunner.__init__  # noqa: B018
        from xbarlab.campaigns.runner import campaign_from_log

        campaign_from_log(p)


def test_sim_state_checkpoint_restores_the_array(tmp_path):
    from xbarlab.instruments.interfaces import Pulse
    from xbarlab.instruments.station import Station
    from xbarlab.sim import checkpoint

    with Station.from_text(sim_station_text(8, 8, seed=3)) as st:
        b = st.require_board()
        b.read_all()
        checkpoint.save(st.sim, tmp_path / "s", tag="a")
        before = b.read_all()
        b.pulse_batch([Pulse(1, 1, 1.3, 1e-6)] * 4)
    with Station.from_text(sim_station_text(8, 8, seed=3)) as st:
        assert checkpoint.load(st.sim, tmp_path / "s", ["b"]) is None
        assert checkpoint.load(st.sim, tmp_path / "s", ["a"]) == "a"
        assert np.array_equal(st.require_board().read_all(), before)
    assert not os.path.exists(tmp_path / "s.tmp")


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[campaign\nname = 1\n")
    assert main(["run", str(bad), "-q"]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[campaign]\nstation = "sim"\n[[steps]]\ntype = "warp_drive"\n')
    assert main(["run", str(unknown), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "warp_drive" in err and "steps[0]" in err
    (tmp_path / "x.h5").write_text("hello")
    assert main(["replay", str(tmp_path / "x.h5"), "-q"]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "missing.h5"), "-q"]) == 2
    assert "no such log file" in capsys.readouterr().err


def test_demo_logs_every_measurement_and_replays(tmp_path, capsys):
    log = tmp_path / "demo.h5"
    assert main(["demo", "-o", str(log)]) == 0
    assert "bit for bit" in capsys.readouterr().out
    r = LogReader(log)
    (run,) = [i for i in r.runs() if i["kind"] == "demo"]
    assert run["status"] == "completed" and "smu1" in run["instruments"]
    assert set(r.stream_names(run["run_id"])) == {"conductance", "iv", "mvm_input", "mvm_output"}
    assert r.stream(run["run_id"], "iv").units == ["V", "A"]
