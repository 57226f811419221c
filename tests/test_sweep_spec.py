"""Sweep files: axes (lists, ranges, seeds; grid and zip), generated point files, validation messages."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from xbarlab.cli import main
from xbarlab.errors import ConfigError
from xbarlab.instruments.config import parse_station
from xbarlab.sim.stations import sim_station_text
from xbarlab.sweep import load_sweep
from xbarlab.sweep.tomlwrite import dumps

CAMPAIGN = """
[campaign]
name = "wv"
station = "bench.toml"
seed = 3

[[steps]]
type = "write_verify"
[steps.params]
tolerance = 0.02
max_pulses = 40

[[steps]]
type = "array_read"
[steps.sweep]
read_voltage = [0.1, 0.2]
"""


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "bench.toml").write_text(sim_station_text(8, 8, seed=5), encoding="utf-8")
    (tmp_path / "camp.toml").write_text(CAMPAIGN, encoding="utf-8")
    return tmp_path


def sweep_file(folder: Path, body: str) -> Path:
    p = folder / "s.toml"
    p.write_text('[sweep]\ncampaign = "camp.toml"\n' + body, encoding="utf-8")
    return p


def test_grid_of_sim_and_step_axes_writes_point_files(folder: Path) -> None:
    sw = load_sweep(sweep_file(folder, """
[axes]
sim.device.c2c = [0.1, 0.5]
"steps.write_verify.tolerance" = {start = 0.01, stop = 0.03, num = 3}
"""))
    assert len(sw.points) == 6
    assert sw.points[1].values == {"sim.device.c2c": 0.1, "steps.write_verify.tolerance": 0.02}
    p = sw.points[5]
    station = tomllib.loads(p.station_text)
    camp = tomllib.loads(p.campaign_text)
    assert station["sim"]["device"]["c2c"] == 0.5
    assert station["sim"]["array"]["rows"] == 8  # the rest of the station is kept
    assert camp["steps"][0]["params"] == {"tolerance": 0.03, "max_pulses": 40}
    assert camp["steps"][1]["sweep"] == {"read_voltage": [0.1, 0.2]}
    assert camp["campaign"]["station"] == "p005.station.toml"
    assert parse_station(p.station_text).sim["device"]["c2c"] == 0.5


def test_zip_seeds_and_step_ranges(folder: Path) -> None:
    sw = load_sweep(sweep_file(folder, """
mode = "zip"
[axes]
seed = {seeds = 3, first = 10}
"steps[0].max_pulses" = {start = 20, stop = 60, step = 20}
"""))
    assert [p.values for p in sw.points] == [
        {"seed": 10, "steps[0].max_pulses": 20}, {"seed": 11, "steps[0].max_pulses": 40},
        {"seed": 12, "steps[0].max_pulses": 60}]
    camp = tomllib.loads(sw.points[2].campaign_text)
    assert camp["campaign"]["seed"] == 12 and tomllib.loads(sw.points[2].station_text)["sim"]["seed"] == 12
    assert camp["steps"][0]["params"]["max_pulses"] == 60


@pytest.mark.parametrize(("body", "message"), [
    ('[axes]\n"sim.device.no_such_parameter" = [1.0]', "no_such_parameter"),
    ('[axes]\n"steps.write_verify.tolerance" = [0.01, 0.9]', "tolerance = 0.9 is above the maximum"),
    ('[axes]\n"steps.iv_sweep.stop" = [0.1]', "no step of type 'iv_sweep'"),
    ('[axes]\n"steps.array_read.read_voltage" = [0.1]', "already sweeps read_voltage"),
    ('[axes]\n"steps[7].tolerance" = [0.1]', "steps[0] to steps[1]"),
    ('[axes]\nbias = [1]', "unknown axis"),
    ('mode = "zip"\n[axes]\nseed = [1, 2]\n"sim.device.c2c" = [0.1]', "same number of values"),
    ('[axes]\n"sim.device.c2c" = {start = 0.1, stop = 0.5}', "exactly one of num or step"),
    ('[axes]\n"sim.device.c2c" = []', "empty list"),
    ('mode = "spiral"\n[axes]\nseed = [1]', "sweep.mode = 'spiral'"),
])
def test_bad_sweeps_name_the_problem(folder: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_sweep(sweep_file(folder, body))
    assert message in str(err.value)


def test_sim_axis_needs_a_simulated_station(tmp_path: Path) -> None:
    lab = Path(__file__).resolve().parents[1] / "stations" / "example-lab.toml"
    (tmp_path / "camp.toml").write_text(CAMPAIGN.replace("bench.toml", str(lab)), encoding="utf-8")
    with pytest.raises(ConfigError, match="not simulated"):
        load_sweep(sweep_file(tmp_path, '[axes]\n"sim.device.c2c" = [0.1]'))


def test_cli_bad_sweep_is_one_line_and_status_2(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sweep_file(folder, '[axes]\n"sim.periphery.adc_bits" = [12, 40]')
    assert main(["sweep", str(path), "-o", str(folder / "out"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "invalid sweep" in err and "point p001" in err and "adc_bits=40" in err
    assert not (folder / "out").exists()  # nothing written for an invalid sweep


def test_cli_dry_run_lists_points(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sweep_file(folder, '[axes]\n"sim.periphery.noise" = [1e-6, 5e-6]\ncampaign.seed = [1, 2]')
    assert main(["sweep", str(path), "-o", str(folder / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 points" in out and "p003  sim.periphery.noise=5e-06, campaign.seed=2" in out


def test_toml_writer_round_trips() -> None:
    data = {"a": 1, "b": 1e-8, "s": 'quote " and \\ and é', "t": {"x": [1, 2.5, True], "u": {"k": "v"}},
            "arr": [{"type": "x", "params": {"p": -1.5}}, {"type": "y"}], "sp ace": {"k": 1}}
    assert tomllib.loads(dumps(data, header="two\nlines")) == data
