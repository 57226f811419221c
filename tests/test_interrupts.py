"""Ctrl-C: the outputs-off traffic is logged, closing is not cut short, messages say what happened, exit 0/130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from xbarlab.campaigns.runner import CampaignRunner, completed_steps
from xbarlab.campaigns.spec import load_campaign
from xbarlab.cli import main
from xbarlab.experiments.base import AbortToken
from xbarlab.interrupts import close_station
from xbarlab.logbook import LogReader
from xbarlab.logbook.format import FORMAT_VERSION
from xbarlab.logbook.replay import replay
from xbarlab.session import LabSession
from xbarlab.sim.stations import sim_station_text

CAMPAIGN = """
[campaign]
station = "bench.toml"
[[steps]]
type = "array_read"
[steps.sweep]
read_voltage = [0.1, 0.15, 0.2]
"""


@pytest.fixture()
def campaign_file(tmp_path):
    (tmp_path / "bench.toml").write_text(sim_station_text(8, 8, seed=2))
    path = tmp_path / "camp.toml"
    path.write_text(CAMPAIGN)
    return path


def _outputs_off(events) -> bool:
    """An SMU 'output off' command and a board ALL_OFF frame are among the recorded exchanges."""
    from xbarlab.protocol import board as bp

    smu_off = any(e.code == "w" and b"OUTP OFF" in e.data.upper() or b"OUTP 0" in e.data.upper() for e in events)
    board_off = any(bytes([bp.Op.ALL_OFF]) == e.data[3:4] for e in events if e.link == "board")
    return smu_off and board_off


def test_stop_between_steps_logs_the_outputs_off_traffic_outside_the_runs(campaign_file, tmp_path):
    log = tmp_path / "stop.h5"
    token = AbortToken()

    def on_step(k, total, step):
        if k == 1:
            token.request()

    report = CampaignRunner(load_campaign(campaign_file), log, abort=token, on_step=on_step).run()
    assert report.status == "interrupted"
    reader = LogReader(log)
    outside = reader.outside_runs()
    assert list(outside) == ["session-1"]
    assert _outputs_off(outside["session-1"]), [(e.link, e.code, e.data[:20]) for e in outside["session-1"]]
    assert reader.attrs["format_version"] == FORMAT_VERSION
    replay(log)  # the record outside the runs is kept, and replay (which replays runs) is not disturbed


def test_lab_session_close_is_recorded(tmp_path):
    log = tmp_path / "lab.h5"
    with LabSession.open(None, log) as lab:
        lab.run("array_read", {"read_voltage": 0.2})
    assert _outputs_off(LogReader(log).outside_runs()["session-1"])


def test_interrupt_before_anything_opened_does_not_claim_outputs_off(campaign_file, monkeypatch, capsys):
    import xbarlab.campaigns.console as console

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(console, "load_campaign", interrupted)
    assert main(["run", str(campaign_file)]) == 130
    assert capsys.readouterr().err == "xbarlab: interrupted while no station was open (nothing was sourced)\n"


def test_interrupt_during_an_experiment_switches_outputs_off_and_says_so(tmp_path, monkeypatch, capsys):
    from xbarlab.experiments.mvm import MvmExperiment

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(MvmExperiment, "execute", interrupted)
    (tmp_path / "bench.toml").write_text(sim_station_text(8, 16, seed=2))
    log = tmp_path / "mvm.h5"
    assert main(["mvm", "--station", str(tmp_path / "bench.toml"), "-o", str(log), "-q", "--n-in", "4",
                 "--n-out", "4"]) == 130
    assert capsys.readouterr().err.endswith("xbarlab: interrupted; outputs were switched off\n")
    reader = LogReader(log)
    assert [r["status"] for r in reader.runs() if r["kind"] == "mvm"] == ["interrupted"]
    assert _outputs_off(reader.outside_runs()["session-1"])


def test_ctrl_c_while_closing_takes_effect_after_the_outputs_are_off():
    class Station:
        closed = False

        def close(self):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the outputs-off traffic
            self.closed = True

    st = Station()
    with pytest.raises(KeyboardInterrupt):
        close_station(st)
    assert st.closed


def test_ctrl_c_storm_while_a_completed_campaign_shuts_down_exits_0_or_130(campaign_file, tmp_path, subprocess_env):
    log = tmp_path / "storm.h5"
    proc = subprocess.Popen([sys.executable, "-m", "xbarlab", "run", str(campaign_file), "-o", str(log), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not (log.exists() and _done(log) == 3):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    while proc.poll() is None:  # the last step has committed: Ctrl-C again and again during the shutdown
        proc.send_signal(signal.SIGINT)
        time.sleep(0.002)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert "Traceback" not in err
    statuses = {r["status"] for r in LogReader(log).runs()}
    assert "running" not in statuses


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.25])
def test_ctrl_c_storm_from_the_start_exits_0_or_130_with_a_readable_log(campaign_file, tmp_path, delay, subprocess_env):
    """Ctrl-C every 3 ms from the moment the log exists (station opening, steps, shutdown)."""
    log = tmp_path / "storm.h5"
    proc = subprocess.Popen([sys.executable, "-m", "xbarlab", "run", str(campaign_file), "-o", str(log), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not log.exists():
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(delay)
    while proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.003)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert "Traceback" not in err
    assert "running" not in {r["status"] for r in LogReader(log).runs()}


def _done(log):
    try:
        return len(completed_steps(LogReader(log)))
    except Exception:  # noqa: BLE001 - the writer may be mid-structure
        return 0


def test_ctrl_c_in_a_logbook_structure_window_takes_effect_after_it(tmp_path):
    from xbarlab.logbook import Logbook

    book = Logbook.create(tmp_path / "w.h5")
    reached_end = []
    with pytest.raises(KeyboardInterrupt):
        with book.structure() as f:
            os.kill(os.getpid(), signal.SIGINT)
            f.attrs["title"] = "changed after the Ctrl-C"
            reached_end.append(True)
    assert reached_end
    run = book.start_run("x")  # the file went back to SWMR and takes further changes
    run.finish("completed")
    book.close()
    assert LogReader(tmp_path / "w.h5").attrs["title"] == "changed after the Ctrl-C"


def test_nested_deferral_raises_once_after_the_outer_block():
    from xbarlab.interrupts import sigint_deferred

    inner_done = []
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            with sigint_deferred():
                os.kill(os.getpid(), signal.SIGINT)
            inner_done.append(True)  # the inner block did not raise: the outer one holds the Ctrl-C
    assert inner_done


def test_ctrl_c_while_a_step_commits_takes_effect_after_it_and_the_run_still_finishes(tmp_path, monkeypatch):
    """A KeyboardInterrupt half-way through a commit (a dataset grown, its rows not yet written) used to leave
    the writer's view of its datasets behind the file: finishing the run then failed with an HDF5 error."""
    import numpy as np

    from xbarlab.logbook import Logbook
    from xbarlab.logbook import writer as writer_module

    book = Logbook.create(tmp_path / "c.h5")
    run = book.start_run("x")
    stream = run.stream("data", columns=["a"], units=["V"])
    original = writer_module.Logbook.append
    calls = []

    def append_then_ctrl_c(self, *args, **kwargs):
        n = original(self, *args, **kwargs)
        calls.append(n)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the commit's writes
        return n

    monkeypatch.setattr(writer_module.Logbook, "append", append_then_ctrl_c)
    stream.append(np.arange(5.0).reshape(5, 1))
    with pytest.raises(KeyboardInterrupt):
        run.commit_step("s1")
    assert len(calls) > 1 and run.steps == 1  # the commit ran to its end before the KeyboardInterrupt
    run.finish("interrupted")
    book.close()
    reader = LogReader(tmp_path / "c.h5")
    (info,) = reader.runs()
    assert info["status"] == "interrupted"
    assert reader.stream(info["run_id"], "data").data.shape == (5, 1)


def test_ctrl_c_during_a_log_read_takes_effect_after_the_read(tmp_path, monkeypatch):
    """A read holds Ctrl-C back until the file is closed again (inside h5py a KeyboardInterrupt surfaces as a
    SystemError from its lock or file callbacks)."""
    from xbarlab.logbook import Logbook
    from xbarlab.logbook import reader as reader_module

    with Logbook.create(tmp_path / "r.h5") as book:
        book.start_run("x").finish("completed")
    reader = LogReader(tmp_path / "r.h5")
    original = reader_module.LogReader._open_file

    def open_then_ctrl_c(self):
        opened = original(self)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the file is open
        for _ in range(100):  # bytecode boundaries for the handler
            pass
        return opened

    monkeypatch.setattr(reader_module.LogReader, "_open_file", open_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt) as caught:
        reader.runs()
    assert caught.traceback[-1].path.name == "interrupts.py"  # raised where the deferral ended, the file closed
