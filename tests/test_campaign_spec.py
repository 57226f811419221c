"""Campaign validation: every problem listed with its location, before any instrument is touched."""

from __future__ import annotations

import pytest

from xbarlab.campaigns import load_campaign, parse_campaign
from xbarlab.errors import ConfigError

GOOD = """
[campaign]
name = "study"
station = "sim"
seed = 5

[[steps]]
type = "iv_sweep"
[steps.params]
row = 3
col = 4
stop = 0.3

[[steps]]
type = "array_read"
[steps.sweep]
read_voltage = [0.1, 0.2, 0.3]
"""


def test_sweep_expands_into_step_instances():
    c = parse_campaign(GOOD)
    assert [s.step_id for s in c.steps] == [
        "000-iv_sweep",
        "001-array_read[read_voltage=0.1]",
        "002-array_read[read_voltage=0.2]",
        "003-array_read[read_voltage=0.3]",
    ]
    assert c.steps[0].params["stop"] == 0.3
    assert c.steps[0].params["start"] == -0.2  # default filled in
    assert c.steps[2].params["read_voltage"] == 0.2
    est = c.estimate()
    assert est[0][1].operations == 21
    assert est[0][1].instrument_time > 0


def test_every_problem_reported_with_location():
    text = GOOD.replace('type = "array_read"', 'type = "array_raed"').replace("stop = 0.3", "stop = 9.0\npoints = 1")
    with pytest.raises(ConfigError) as err:
        parse_campaign(text)
    msg = str(err.value)
    assert "steps[1].type: unknown step type 'array_raed'" in msg
    assert "steps[0].params.points = 1 is below the minimum 2" in msg


def test_limits_of_the_station_are_enforced_before_running():
    text = GOOD.replace("stop = 0.3", "stop = 6.0")
    with pytest.raises(ConfigError, match=r"steps\[0\]\.params\.stop = 6 V exceeds smu1's limit max_voltage = 5 V"):
        parse_campaign(text)
    text = GOOD.replace("[0.1, 0.2, 0.3]", "[0.1, 0.7]")
    with pytest.raises(ConfigError, match=r"read_voltage = 0.7 V exceeds the board limit.*sweep read_voltage\[1\]"):
        parse_campaign(text)


def test_every_step_type_checks_its_voltages_against_the_board():
    text = "".join(f'[[steps]]\ntype = "{kind}"\nparams = {{ {key} = {value} }}\n' for kind, key, value in [
        ("array_read", "read_voltage", 0.9), ("train", "pulse_amplitude", 9.0), ("device_fit", "amplitude", 7.0),
        ("linear_solve", "v_in", 2.0), ("pulse_response", "set_amplitude", 4.0), ("mvm", "pulse_amplitude", 5.0)])
    with pytest.raises(ConfigError) as err:
        parse_campaign(text)
    msg = str(err.value)
    for where, limit in [("steps[0].params.read_voltage = 0.9", "max_read_voltage = 0.5"),
                         ("steps[1].params.pulse_amplitude = 9", "max_pulse_amplitude = 3.5"),
                         ("steps[2].params.amplitude = 7", "max_pulse_amplitude = 3.5"),
                         ("steps[3].params.v_in = 2", "max_mvm_voltage = 0.5"),
                         ("steps[4].params.set_amplitude = 4", "max_pulse_amplitude = 3.5"),
                         ("steps[5].params.pulse_amplitude = 5", "max_pulse_amplitude = 3.5")]:
        assert f"{where} V exceeds the board limit {limit} V" in msg


def test_missing_and_malformed(tmp_path):
    with pytest.raises(ConfigError, match="campaign file not found"):
        load_campaign(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[steps]\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_campaign(bad)
    with pytest.raises(ConfigError, match=r"\[\[steps\]\] is missing"):
        parse_campaign('[campaign]\nname = "x"\n')
    with pytest.raises(ConfigError, match="unknown parameter"):
        parse_campaign(GOOD.replace("row = 3", "rwo = 3"))


def test_station_path_relative_to_campaign(tmp_path):
    from xbarlab.sim.stations import sim_station_text

    (tmp_path / "bench.toml").write_text(sim_station_text(8, 8))
    camp = tmp_path / "c.toml"
    camp.write_text(GOOD.replace('station = "sim"', 'station = "bench.toml"').replace("col = 4", "col = 9"))
    with pytest.raises(ConfigError, match=r"col = 9 is outside the array \(columns 0..7\)"):
        load_campaign(camp)
