"""Calibration step types: validation, dry-run estimates and logged runs through LabSession."""

import math

import numpy as np
import pytest

from xbarlab.errors import ConfigError
from xbarlab.experiments import STEP_TYPES, MemoryRecorder
from xbarlab.experiments.catalog import CLI_MODULES  # noqa: F401 - registers every step type
from xbarlab.instruments.config import load_station
from xbarlab.instruments.station import Station
from xbarlab.logbook import LogReader
from xbarlab.session import LabSession
from xbarlab.sim.stations import sim_station_text

KINDS = ("read_calibration", "range_map", "device_fit", "forming", "write_verify", "residual_program",
         "drift_compensation")


def test_step_types_are_registered_with_checks_and_estimates(tmp_path):
    path = tmp_path / "st.toml"
    path.write_text(sim_station_text(8, 8, seed=1))
    cfg = load_station(path)
    for kind in KINDS:
        cls = STEP_TYPES[kind]
        from xbarlab.experiments.base import resolve_params

        values, problems = resolve_params(cls.params_spec, {})
        assert not problems
        # the default blocks of these two need a larger array than this 8x8 station: each says so
        expected = {"residual_program": ["residual_program: 3 blocks of 16x32 do not fit the 8x8 array"],
                    "drift_compensation": ["drift_compensation: a 16x32 block does not fit the 8x8 array"]}
        assert cls.check(values, cfg, kind) == expected.get(kind, []), kind
        est = cls.estimate(values, cfg)
        assert est.instrument_time > 0 and math.isfinite(est.instrument_time), kind
    bad = STEP_TYPES["forming"].check({"row": 20, "col": 0, "v_max": 9.0, "points": 5, "compliance": 1e-4}, cfg, "f")
    assert any("outside" in p for p in bad) and any("v_max" in p for p in bad)
    fit = STEP_TYPES["residual_program"]
    values, _ = resolve_params(fit.params_spec, {"n": 8, "arrays": 3})
    assert any("do not fit" in p for p in fit.check(values, cfg, "r"))
    with pytest.raises(ConfigError):
        STEP_TYPES["write_verify"](None, {"tolerance": 2.0})


def test_logged_runs_produce_and_use_calibration_records(tmp_path):
    station = tmp_path / "st.toml"
    station.write_text(sim_station_text(6, 6, seed=2))
    log = tmp_path / "log.h5"
    with LabSession.open(station, log) as lab:
        cal = lab.run("read_calibration", {})
        first = lab.last_run_id
        rep = lab.run("write_verify", {"tolerance": 0.02})
        second = lab.last_run_id
    assert cal.residual_after < cal.residual_before
    assert rep.yield_fraction > 0.8
    r = LogReader(log)
    runs = {i["run_id"]: i for i in r.runs()}
    assert runs[first]["status"] == "completed" and runs[second]["status"] == "completed"
    assert "read_path" in r.calibrations(first)
    assert "range_map" in r.calibrations(second)
    assert runs[second]["calibrations_used"] == [f"{first}/read_path"]
    hist = r.stream(second, "error_histogram")
    assert hist.column("count").sum() > 0


def test_forming_and_drift_steps_on_small_benches():
    text = sim_station_text(4, 4, seed=3, device_params={"unformed_fraction": 1.0})
    with Station.from_text(text) as st:
        rec = MemoryRecorder()
        res = STEP_TYPES["forming"](st, {"row": 1, "col": 2, "compliance": 50e-6}, recorder=rec).run()
        assert res.formed and res.g_before < 1e-7 < res.g_after
        assert res.g_after <= 50e-6 / 0.2 * 1.5  # the compliance capped the filament
        assert rec.steps[-1][0] == "forming"
    with Station.from_text(sim_station_text(8, 16, device="pcm", seed=3)) as st:
        rec = MemoryRecorder()
        res = STEP_TYPES["drift_compensation"](st, {"n": 8, "times": [1.0, 86400.0], "vectors": 8, "repeats": 4},
                                               recorder=rec).run()
        assert res.raw[-1] > res.raw[0]
        assert res.compensated[-1] < res.raw[-1]
        assert "read_path" in rec.calibrations and "range_map" in rec.calibrations
        assert np.asarray(rec.streams["drift"].rows[0]).shape == (2, 4)


def test_a_stale_read_calibration_is_measured_again_and_the_characterisation_is_logged(tmp_path):
    station = tmp_path / "st.toml"
    station.write_text(sim_station_text(6, 6, seed=2))
    log = tmp_path / "log.h5"
    with LabSession.open(station, log) as lab:
        lab.run("read_calibration", {})
        first = lab.last_run_id
        lab.run("range_map", {"max_calibration_age": 3600.0})
        fresh = lab.last_run_id
        lab.station.wait(7200.0)  # two hours of instrument time: the read path has drifted since
        lab.run("range_map", {"max_calibration_age": 3600.0})
        stale = lab.last_run_id
        lab.run("range_map", {})  # no age limit: the newest record, whatever its age
        any_age = lab.last_run_id
    r = LogReader(log)
    runs = {i["run_id"]: i for i in r.runs()}
    assert runs[fresh]["calibrations_used"] == [f"{first}/read_path"]
    assert runs[stale]["calibrations_used"] == [] and "read_path" in r.calibrations(stale)
    assert runs[any_age]["calibrations_used"] == [f"{stale}/read_path"]
    cals = r.calibrations(fresh)
    kind, data, meta = cals["device_characterization"]
    assert kind == "device_characterization" and meta["set_v_scale"] > 0 and meta["set_v_scale_err"] > 0
    assert r.stream(fresh, "characterization").data.shape[1] == 7
