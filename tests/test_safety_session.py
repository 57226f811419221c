"""LabSession.run (the GUI path) checks parameters against the station before any instrument is touched."""

from __future__ import annotations

import pytest
from safety_bench import bench_text

from xbarlab.errors import ConfigError
from xbarlab.logbook.reader import LogReader
from xbarlab.session import LabSession


@pytest.mark.parametrize("kind, params, problem", [
    ("array_read", {"read_voltage": 0.9}, "read_voltage"),
    ("array_read", {"read_voltage": -0.7}, "read_voltage"),
])
def test_run_refuses_parameters_beyond_the_station_before_touching_anything(tmp_path, kind, params, problem):
    station = tmp_path / "bench.toml"
    station.write_text(bench_text())
    with LabSession.open(station, tmp_path / "log.h5") as lab:
        arrived = bytearray()
        for emulator in lab.station.sim.emulators.values():
            emulator.add_tap(arrived.extend)
        runs_before = len(list(LogReader.from_book(lab.book).runs()))
        with pytest.raises(ConfigError, match=rf"^{kind}: invalid parameters for this station: .*{problem}"):
            lab.run(kind, params)
        assert not arrived, "an instrument was touched"
        assert len(list(LogReader.from_book(lab.book).runs())) == runs_before, "a run was logged"
        lab.run(kind, {"read_voltage": 0.3})  # within the limits: runs
        assert arrived
