"""The command line: the demo, station checks, and clear one-line errors."""

from __future__ import annotations

from pathlib import Path

from xbarlab.cli import main

ROOT = Path(__file__).parents[1]


def test_demo_runs_end_to_end_on_the_embedded_bench(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for text in ("MODEL 2400", "2636B", "B2902A", "MODEL 2450", "crossbar test board",
                 "I-V sweep of cell", "Conductance map 64x64", "relative error", "Simulated instrument time"):
        assert text in out


def test_station_check_and_connect(capsys):
    assert main(["station", "check", str(ROOT / "stations" / "example-lab.toml")]) == 0
    out = capsys.readouterr().out
    assert "valid station file" in out and "max_voltage=4" in out
    assert main(["station", "check", str(ROOT / "xbarlab" / "stations" / "sim.toml"), "--connect"]) == 0
    assert "all instruments answered" in capsys.readouterr().out


def test_bad_station_file_gives_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bench.toml"
    bad.write_text('[instruments.smu1]\ndriver = "keithley9999"\naddress = "GPIB0::1::INSTR"\n')
    assert main(["station", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bench.toml" in err and "unknown driver 'keithley9999'" in err
    assert "Traceback" not in err
    assert main(["demo", "--station", str(tmp_path / "missing.toml")]) == 2
    assert "station file not found" in capsys.readouterr().err
