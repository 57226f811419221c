"""Logged streams as pandas / xarray objects with named dimensions and units."""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")

from xbarlab.errors import ConfigError  # noqa: E402
from xbarlab.logbook import LogReader  # noqa: E402
from xbarlab.logbook.frames import frame_dims  # noqa: E402
from xbarlab.session import LabSession  # noqa: E402
from xbarlab.sim.stations import sim_station_text  # noqa: E402


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    station = d / "bench.toml"
    station.write_text(sim_station_text(8, 8, seed=2))
    path = d / "log.h5"
    with LabSession.open(station, path) as lab:
        lab.run("iv_sweep", {"row": 1, "col": 2, "points": 7, "return_sweep": True})
        lab.run("array_read", {"repeats": 3})
    return path


def test_columns_become_a_dataframe_and_a_dataset_with_units(log):
    r = LogReader(log)
    rid = next(x["run_id"] for x in r.runs() if x["kind"] == "iv_sweep")
    df = r.to_pandas(rid, "iv")
    raw = r.stream(rid, "iv").data
    assert list(df.columns) == ["voltage", "current", "compliance"] and df.index.name == "sample"
    assert df.attrs["units"] == {"voltage": "V", "current": "A", "compliance": "1"} and df.attrs["run_id"] == rid
    np.testing.assert_array_equal(df["current"].to_numpy(), raw[:, 1])
    assert len(df) == 14  # up and back
    ds = r.to_xarray(rid, "iv")
    assert ds["voltage"].dims == ("sample",) and ds["current"].attrs["units"] == "A"
    np.testing.assert_array_equal(ds["voltage"].values, raw[:, 0])


def test_frames_get_named_dims_and_long_form(log):
    r = LogReader(log)
    rid = next(x["run_id"] for x in r.runs() if x["kind"] == "array_read")
    da = r.to_xarray(rid, "conductance")
    raw = r.stream(rid, "conductance").data
    assert da.dims == ("sample", "row", "col") and da.shape == (3, 8, 8) and da.attrs["units"] == "S"
    assert float(da.sel(sample=2, row=3, col=4)) == raw[2, 3, 4]
    df = r.to_pandas(rid, "conductance")
    assert df.index.names == ["sample", "row", "col"] and len(df) == 3 * 64
    assert df.loc[(1, 5, 6), "conductance"] == raw[1, 5, 6] and df.attrs["units"] == {"conductance": "S"}
    with pytest.raises(ConfigError, match="2 frame axes"):
        frame_dims(r.stream(rid, "conductance"), ("only_one",))
