"""Station file validation: every problem named with its key, nothing opened."""

from __future__ import annotations

import pytest

from xbarlab.errors import ConfigError
from xbarlab.instruments.config import load_station, parse_station
from xbarlab.instruments.station import embedded_station_path

GOOD = """
[station]
name = "t"
[station.defaults]
read_voltage = 0.1
[instruments.smu1]
driver = "keithley2400"
address = "GPIB0::24::INSTR"
board_port = 0
[instruments.smu1.limits]
max_voltage = 2.0
max_current = 1e-4
[instruments.board]
driver = "crossbar_board"
address = "/dev/ttyACM0"
"""


def test_good_file_parses_with_limits_and_defaults():
    cfg = parse_station(GOOD)
    assert cfg.name == "t"
    assert cfg.read_voltage == 0.1
    assert cfg.smu_names() == ["smu1"]
    assert cfg.board_name() == "board"
    assert cfg.instruments["smu1"].limits.max_current == 1e-4
    assert cfg.instruments["board"].limits.max_pulse_amplitude == 3.0  # default
    assert not cfg.is_simulated
    assert cfg.device is None  # a real bench that does not state its device technology


def test_embedded_sim_station_is_valid():
    cfg = load_station(embedded_station_path("sim"))
    assert cfg.is_simulated
    assert cfg.board_name() == "board"
    assert {i.driver for i in cfg.instruments.values()} == {
        "keithley2400", "keithley2600", "keysight_b2900", "keithley2450", "crossbar_board",
    }


def test_example_lab_station_is_valid():
    from pathlib import Path

    cfg = load_station(Path(__file__).parents[1] / "stations" / "example-lab.toml")
    assert cfg.visa_library == "@py"
    assert not cfg.is_simulated


def test_malformed_toml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[station\nname = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML.*line 1"):
        load_station(p)


def test_missing_file():
    with pytest.raises(ConfigError, match="station file not found"):
        load_station("/nonexistent/station.toml")


def test_every_problem_listed_at_once():
    text = GOOD.replace('driver = "crossbar_board"', 'driver = "arc_one"').replace(
        "max_current = 1e-4", "max_current = -1\nmax_volts = 3"
    )
    with pytest.raises(ConfigError) as err:
        parse_station(text)
    msg = str(err.value)
    assert "instruments.board.driver: unknown driver 'arc_one'" in msg
    assert "instruments.smu1.limits: unknown limit(s) max_volts" in msg


def test_bad_limit_value_and_missing_address():
    text = GOOD.replace('address = "GPIB0::24::INSTR"\n', "").replace("max_voltage = 2.0", 'max_voltage = "high"')
    with pytest.raises(ConfigError) as err:
        parse_station(text)
    msg = str(err.value)
    assert "instruments.smu1.address: missing" in msg
    assert "max_voltage must be a number" in msg


def test_read_voltage_above_board_limit_rejected():
    text = GOOD.replace("read_voltage = 0.1", "read_voltage = 0.9")
    with pytest.raises(ConfigError, match="read_voltage = 0.9 V exceeds the board limit"):
        parse_station(text)


def test_device_technology_stated_checked_and_taken_from_the_simulator():
    assert parse_station(GOOD.replace("read_voltage = 0.1", 'read_voltage = 0.1\ndevice = "PCM"')).device == "pcm"
    with pytest.raises(ConfigError, match=r"station.defaults.device = 'oxram': expected one of rram, pcm, ecram"):
        parse_station(GOOD.replace("read_voltage = 0.1", 'read_voltage = 0.1\ndevice = "oxram"'))
    assert load_station(embedded_station_path("sim")).device == "rram"
    sim = GOOD + '[sim]\n[sim.array]\ndevice = "pcm"\n'
    assert parse_station(sim).device == "pcm"
    with pytest.raises(ConfigError, match="but the simulated array is 'pcm'"):
        parse_station(sim.replace("read_voltage = 0.1", 'read_voltage = 0.1\ndevice = "rram"'))


def test_bad_channel():
    text = GOOD + """
[instruments.smu2]
driver = "keithley2600"
address = "TCPIP0::1.2.3.4::inst0::INSTR"
channel = "c"
board_port = 0
"""
    with pytest.raises(ConfigError) as err:
        parse_station(text)
    msg = str(err.value)
    assert "instruments.smu2.channel: 'c' is not a channel" in msg


def test_no_instruments():
    with pytest.raises(ConfigError, match=r"\[instruments\] is missing"):
        parse_station('[station]\nname = "x"\n')


def test_duplicate_board_port():
    text = GOOD + """
[instruments.smu2]
driver = "keithley2600"
address = "TCPIP0::1.2.3.4::inst0::INSTR"
channel = "b"
board_port = 0
"""
    with pytest.raises(ConfigError, match="board_port: port 0 already used by smu1"):
        parse_station(text)
