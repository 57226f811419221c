"""The one run engine (xbarlab/runs), the station's bench links and geometry, parameter groups, declared plots."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import xbarlab.experiments.catalog  # noqa: F401 - registers the built-in step types
from xbarlab.cli import main
from xbarlab.errors import AdcSaturated, ConfigError, InstrumentError, TransportError
from xbarlab.experiments.programming import read_map
from xbarlab.instruments.config import load_station, parse_station
from xbarlab.instruments.links import BenchLinks, simulated_links
from xbarlab.instruments.station import Station, embedded_station_path
from xbarlab.logbook import LogReader
from xbarlab.runs.engine import (
    ABORTED,
    COMPLETED,
    FAILED,
    INTERRUPTED,
    SESSION_KIND,
    session_guard,
)
from xbarlab.runs.engine import run_status as status_of
from xbarlab.runs.recorder import MemoryRecorder
from xbarlab.runs.session import LabSession
from xbarlab.runs.step import STEP_TYPES, Aborted, Experiment, Param, ParamGroup

ROOT = Path(__file__).resolve().parents[1]
SIM_TEXT = embedded_station_path("sim").read_text()


# -- statuses, abort -----------------------------------------------------------------------------------------
def test_run_status_maps_each_ending_in_one_place():
    assert status_of(None) == (COMPLETED, "")
    assert status_of(Aborted("x: aborted")) == (ABORTED, "x: aborted")
    assert status_of(Aborted("x"), abort_status=INTERRUPTED) == (INTERRUPTED, "")
    assert status_of(KeyboardInterrupt()) == (INTERRUPTED, "interrupted (Ctrl-C)")
    assert status_of(ValueError("bad")) == (FAILED, "ValueError: bad")
    assert status_of(InstrumentError("smu1", 5, "no")) == (FAILED, "smu1: error 5: no")
    try:  # an instrument error while cleaning up after a link fault names the fault first
        try:
            raise TransportError("link lost")
        except TransportError:
            raise InstrumentError("smu1", 5, "output off failed") from None
    except InstrumentError as exc:
        exc.__context__ = TransportError("link lost")
        assert status_of(exc) == (FAILED, "link lost (then, while cleaning up: smu1: error 5: output off failed)")


def test_session_abort_goes_through_the_engine_and_is_logged(tmp_path):
    log = tmp_path / "abort.h5"
    with LabSession.open(None, log) as lab:
        def progress(p):  # the user presses Abort while the sweep runs
            lab.abort()

        lab.run("iv_sweep", {"points": 5})  # a run without an abort request completes
        token = lab.next_abort_token()
        with pytest.raises(Aborted):
            lab.run("pulse_response", {"pulses": 3, "cycles": 3}, progress=progress, abort=token)
        assert lab.engine.token is token and token.requested
    runs = {r["run_id"]: r for r in LogReader(log).runs()}
    assert [r["status"] for r in runs.values() if r["kind"] != SESSION_KIND] == [COMPLETED, ABORTED]


def test_session_guard_is_recorded_and_read_back_for_old_logs():
    assert session_guard({"step_guard": "board_boot_count"}) is True
    assert session_guard({"step_guard": "none", "campaign_text": "x"}) is False
    assert session_guard({"campaign_text": "[station]"}) is True  # a campaign session written before it was recorded
    assert session_guard({"title": "xbarlab mvm"}) is False


# -- station: bench links, clock, geometry -------------------------------------------------------------------
class CountingClock:
    def __init__(self):
        self.t, self.idled = 100.0, []

    def now(self):
        return self.t

    def idle(self, seconds, checkpoint=None):
        self.idled.append(seconds)
        self.t += seconds


def test_the_station_takes_its_clock_and_links_from_the_bench_links():
    config = parse_station(SIM_TEXT)
    sim = simulated_links(config)
    clock = CountingClock()
    with Station.open(config, links=BenchLinks(open=sim.open, clock=clock, release=sim.release)) as st:
        sim_before = sim.world.clock.now
        st.wait(3600.0)
        assert clock.idled == [3600.0] and st.sim_time() == 3700.0
        assert sim.world.clock.now == sim_before  # the station never reached for the simulator's clock
        assert st.sim is None  # these links offer no simulated world
        assert st.bench_state.restore_state(Path("nothing"), ["a"]) is None  # hardware: keeps its own state


def test_geometry_comes_from_the_station_file_and_validation_uses_it():
    lab = load_station(ROOT / "stations" / "example-lab.toml")
    assert lab.array_shape() == (128, 128)
    forming = STEP_TYPES["forming"]
    params = {"row": 70, "col": 3, "v_max": 2.0, "points": 11, "compliance": 100e-6}
    assert forming.check(params, lab, "forming") == []  # accepted on the 128x128 bench
    sim = parse_station(SIM_TEXT)
    assert sim.array_shape() == (64, 64)
    assert any("outside the 64x64 array" in p for p in forming.check(params, sim, "forming"))
    no_size = parse_station((ROOT / "stations" / "example-lab.toml").read_text().replace("rows = 128", "")
                            .replace("cols = 128", ""))
    assert no_size.array_shape() is None and forming.check(params, no_size, "forming") == []
    drift = STEP_TYPES["drift_compensation"]  # a block of 40x80 fits 128x128, not 64x64; unstated: the board checks
    values = {p.name: p.default for p in drift.params_spec} | {"n": 40}
    assert not any("does not fit" in p for p in drift.check(values, lab, "d") + drift.check(values, no_size, "d"))
    assert any("does not fit the 64x64 array" in p for p in drift.check(values, sim, "d"))


def test_station_file_geometry_is_validated():
    bad = SIM_TEXT.replace('driver = "crossbar_board"', 'driver = "crossbar_board"\nrows = 128\ncols = 128')
    with pytest.raises(ConfigError, match=r"rows = 128, cols = 128 but the simulated array is 64x64"):
        parse_station(bad)
    with pytest.raises(ConfigError, match="give both rows and cols"):
        parse_station(SIM_TEXT.replace('driver = "crossbar_board"', 'driver = "crossbar_board"\nrows = 64'))
    with pytest.raises(ConfigError, match="only a crossbar board has an array size"):
        parse_station(SIM_TEXT.replace('driver = "keithley2400"', 'driver = "keithley2400"\nrows = 64'))


def test_a_board_that_reports_another_size_than_the_station_file_is_one_config_error():
    config = parse_station(SIM_TEXT)
    board = config.board_name()
    wrong = dataclasses.replace(config, instruments={**config.instruments, board: dataclasses.replace(
        config.instruments[board], rows=128, cols=128)})
    with pytest.raises(ConfigError) as info:
        Station.open(wrong, links=simulated_links(config))
    assert "says a 128x128 array, the board reports 64x64" in str(info.value)
    assert "\n" not in str(info.value)


# -- parameter groups -----------------------------------------------------------------------------------------
def test_parameter_groups_are_declared_once_with_per_step_defaults():
    group = ParamGroup("g", (Param("tolerance", float, 0.01, min=1e-4), Param("pulse_width", float, 1e-7, "s")))
    assert [p.default for p in group(tolerance=0.005)] == [0.005, 1e-7]
    assert group.take("pulse_width")[0].units == "s"
    with pytest.raises(ValueError, match="tolerances"):
        group(tolerances=0.1)
    defaults = {k: {p.name: p for p in STEP_TYPES[k].params_spec}["tolerance"] for k in (
        "mvm", "linear_solve", "closed_loop_solve", "one_step", "train", "drift_inference", "write_verify",
        "drift_compensation")}
    # each step keeps the default its figures were measured with; range and help come from the one declaration
    assert {k: p.default for k, p in defaults.items()} == {
        "mvm": 0.01, "linear_solve": 0.005, "closed_loop_solve": 0.005, "one_step": 0.005, "train": 0.02,
        "drift_inference": 0.03, "write_verify": 0.01, "drift_compensation": 0.03}
    assert len({(p.min, p.max, p.help) for p in defaults.values()}) == 1


# -- recorders, plots, categories, saturation -----------------------------------------------------------------
def test_latest_calibration_from_memory_and_from_the_log(tmp_path):
    mem = MemoryRecorder()
    assert mem.latest_calibration("read_path") is None
    mem.add_calibration("a", "read_path", {"gain": np.ones(2)})
    mem.add_calibration("b", "read_path", {"gain": np.zeros(2)})
    ref, data, _ = mem.latest_calibration("read_path")
    assert ref == "memory/b" and data["gain"].tolist() == [0.0, 0.0]
    log = tmp_path / "cal.h5"
    with LabSession.open(None, log) as lab:
        first = lab.engine.run(_Calibrate, {}, run_id="first")
        assert first.status == COMPLETED
        second = lab.engine.run(_LookUp, {}, run_id="second")
    ref, data, _ = second.result
    assert ref == "first/rp" and data["gain"].tolist() == [1.0, 1.0, 1.0]


class _Calibrate(Experiment):
    kind = "test_calibrate"

    def execute(self):
        assert self.recorder.latest_calibration("read_path") is None
        self.recorder.add_calibration("rp", "read_path", {"gain": np.ones(3)})


class _LookUp(Experiment):
    kind = "test_look_up"

    def execute(self):
        return self.recorder.latest_calibration("read_path")


def test_declared_plots_name_logged_columns_with_their_units():
    with LabSession.open(None, None) as lab:
        lab.run("iv_sweep", {"points": 5})
        lab.run("pulse_response", {"pulses": 2})
        for rid, rec in lab.memory.items():
            cls = STEP_TYPES[rid.split("-")[0]]  # run ids are <kind>-<n>@<session>
            assert cls.plots
            for spec in cls.plots:
                stream = rec.streams[spec.stream].spec
                cols, units = stream["columns"], stream["units"]
                assert spec.x in cols and all(y in cols for y in spec.y)
                assert units[cols.index(spec.x)] == spec.x_units and {units[cols.index(y)] for y in spec.y} == {
                    spec.y_units}


def test_log_show_describes_the_declared_plots(tmp_path, capsys):
    log = tmp_path / "show.h5"
    with LabSession.open(None, log) as lab:
        lab.run("iv_sweep", {"points": 5})
    assert main(["log", "show", str(log)]) == 0
    assert "plot: I-V sweep: current (A) vs voltage (V)" in capsys.readouterr().out


class _Board:
    def __init__(self, exc):
        self.exc = exc

    def read_all(self):
        raise self.exc


def test_adc_saturation_is_recognised_by_its_type_not_its_code():
    currents, mask = np.full((2, 2), 1e-3), np.array([[True, False], [False, False]])
    clipped = AdcSaturated("board", 0x0101, "clipped", currents, mask)
    assert read_map(_Board(clipped), 0.2).tolist() == (currents / 0.2).tolist()
    same_code = InstrumentError("board", 0x0101, "clipped")  # an untyped error with the same code is not clipping
    with pytest.raises(InstrumentError):
        read_map(_Board(same_code), 0.2)


def test_dry_run_of_a_real_bench_uses_its_stated_array(tmp_path, capsys):
    campaign = tmp_path / "forming.toml"
    lab = (ROOT / "stations" / "example-lab.toml").as_posix()
    campaign.write_text(f'[campaign]\nname = "forming"\nstation = "{lab}"\n\n[[steps]]\ntype = "forming"\n'
                        '[steps.params]\nrow = 70\ncol = 100\nv_max = 2.0\n\n[[steps]]\ntype = "write_verify"\n')
    assert main(["run", str(campaign), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "forming" in out and "write_verify" in out
    small = tmp_path / "small.toml"
    small.write_text(campaign.read_text().replace(lab, (tmp_path / "lab64.toml").as_posix()))
    (tmp_path / "lab64.toml").write_text((ROOT / "stations" / "example-lab.toml").read_text()
                                         .replace("rows = 128", "rows = 64").replace("cols = 128", "cols = 64"))
    assert main(["run", str(small), "--dry-run"]) == 2
    assert "outside the 64x64 array" in capsys.readouterr().err
