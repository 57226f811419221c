"""Station files with broken ``[sim]`` tables: each is one clear line naming the key, exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from xbarlab.cli import main
from xbarlab.errors import ConfigError
from xbarlab.instruments.config import parse_station
from xbarlab.sim.schema import BYTES_PER_CELL_WIRES, estimated_memory, sim_problems
from xbarlab.sim.stations import sim_station_text

BASE = sim_station_text(8, 8)


def _with(extra: str = "", replace: tuple[str, str] | None = None) -> str:
    text = BASE.replace(*replace) if replace else BASE
    return text.replace("[instruments.smu1]\n", textwrap.dedent(extra) + "\n[instruments.smu1]\n", 1)


#: (broken station text, the key the message must name, a word of the explanation)
BROKEN = [
    (_with(replace=("rows = 8", 'rows = "abc"')), "sim.array.rows", "integer"),
    (_with(replace=("rows = 8", "rows = 0")), "sim.array.rows", ">= 1"),
    (_with(replace=("cols = 8", "cols = 70000")), "sim.array.cols", "<= 65535"),
    (_with(replace=("rows = 8\ncols = 8", "rows = 20000\ncols = 20000")), "sim.array", "memory"),
    (_with(replace=("board_port = 0", "board_port = 99")), "instruments.smu1.board_port", "0..7"),
    (_with("[sim.board]\nsmu_ports = 2\n", replace=("board_port = 0", "board_port = 3")),
     "instruments.smu1.board_port", "0..1"),
    (_with("[sim.board.closed_loop]\nrail = 0\n"), "sim.board.closed_loop.rail", "> 0"),
    (_with("[sim.faults.smu1]\ntimeout_probability = \"a lot\"\n"), "sim.faults.smu1.timeout_probability", "number"),
    (_with("[sim.faults.smu1]\ncorrupt_probability = 1.5\n"), "sim.faults.smu1.corrupt_probability", "<= 1"),
    (_with("[sim.faults.smu1]\ntimeout_next = -1\n"), "sim.faults.smu1.timeout_next", ">= 0"),
    (_with("[sim.faults.smu9]\ntimeout_next = 1\n"), "sim.faults.smu9", "smu1"),
    (_with("[sim.faults.smu1]\ntimeout_nxt = 1\n"), "sim.faults.smu1.timeout_nxt", "did you mean 'timeout_next'"),
    (_with("[sim.board.limits]\nmax_pulse_amplitude = -3.0\n"), "sim.board.limits.max_pulse_amplitude", "> 0"),
    (_with("[sim.board.limits]\nmin_tia_range = 1e-2\nmax_tia_range = 1e-3\n"), "sim.board.limits", "exceeds"),
    (_with("[sim.board.timing]\nbaud_rate = 0\n"), "sim.board.timing.baud_rate", "> 0"),
    (_with(replace=("seed = 1", 'seed = "x"')), "sim.seed", "integer"),
    (_with(replace=("seed = 1", "seed = -4")), "sim.seed", ">= 0"),
    (_with(replace=('device = "rram"', 'device = "rarm"')), "sim.array.device", "did you mean 'rram'"),
    (_with(replace=('kind = "1T1R"', 'kind = "1t2r"')), "sim.array.kind", "1T1R"),
    (_with(replace=("stuck_fraction = 0.01", "stuck_fraction = 1.0")), "sim.array.stuck_fraction", "< 1"),
    (_with(replace=("wire_resistance = 0.35", "wire_resistance = nan")), "sim.array.wire_resistance", "finite"),
    (_with("[sim.device]\ng_min = 5e-5\ng_max = 1e-5\n"), "sim.device", "g_max"),
    (_with("[sim.device]\nset_step = 0.1\n"), "sim.device.set_step", "unknown key"),  # a PCM key on RRAM
    (_with("[sim.device]\ndw_min = true\n"), "sim.device.dw_min", "number"),
    (_with("[sim.periphery]\nadc_bit = 12\n"), "sim.periphery.adc_bit", "did you mean 'adc_bits'"),
    (_with("[sim.periphery]\ndac_bits = 40\n"), "sim.periphery.dac_bits", "<= 32"),
    (_with("[sim.loads]\nsmu1 = -10.0\n"), "sim.loads.smu1", "> 0"),
    (_with("[sim.loads]\nboard = 1e3\n"), "sim.loads.board", "no SMU"),
    (_with("[sim.arry]\nrows = 4\n"), "sim.arry", "did you mean 'array'"),
    (_with("[sim.board]\nsmu_ports = 9\n"), "sim.board.smu_ports", "<= 8"),
    # the rest of the file gets the same suggestions
    (_with(replace=("board_port = 0", "board_port = 0\ntimeot = 1")), "instruments.smu1.timeot",
     "did you mean 'timeout'"),
    (_with(replace=("read_voltage = 0.2", "read_votage = 0.2")), "station.defaults.read_votage",
     "did you mean 'read_voltage'"),
]


@pytest.mark.parametrize(("text", "key", "word"), BROKEN, ids=[f"{k}:{w}" for _, k, w in BROKEN])
def test_broken_sim_table_is_one_problem_naming_its_key(text, key, word):
    with pytest.raises(ConfigError) as info:
        parse_station(text, source="bench.toml")
    message = str(info.value)
    assert message.count("\n") == 0, message  # one problem: one line
    assert message.startswith("bench.toml: invalid station file: " + key), message
    assert word in message


def test_station_check_without_connect_rejects_broken_sim_tables(tmp_path, capsys):
    """The family above through the command line: exit 2, one line on stderr, no traceback."""
    for i, (text, key, _) in enumerate(BROKEN):
        path = tmp_path / f"broken{i}.toml"
        path.write_text(text)
        assert main(["station", "check", str(path)]) == 2, key
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and key in err and "Traceback" not in err, err


def test_valid_sim_tables_still_pass():
    text = _with("""
        [sim.device]
        dw_min = 0.002
        [sim.periphery]
        adc_bits = 12
        [sim.board]
        smu_ports = 2
        [sim.board.closed_loop]
        rail = 0.8
        seed = 3
        [sim.board.limits]
        max_pulse_amplitude = 4.0
        [sim.faults.smu1]
        timeout_probability = 0.01
        timeout_next = 1
        [sim.faults.board]
        corrupt_next = 2
        """)
    cfg = parse_station(text)
    assert cfg.sim["board"]["closed_loop"]["rail"] == 0.8


def test_many_problems_are_listed_together():
    text = _with("[sim.faults.smu1]\ntimeout_next = -1\n", replace=("rows = 8", 'rows = "abc"'))
    with pytest.raises(ConfigError) as info:
        parse_station(text)
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and "sim.array.rows" in lines[1] and "timeout_next" in lines[2]


def test_sim_bench_checks_its_own_table():
    """The simulator refuses a broken table even when handed one without the station parser."""
    from xbarlab.sim.bench import SimBench

    with pytest.raises(ConfigError, match=r"sim\.periphery\.gain_sigma = -1"):
        SimBench({"periphery": {"gain_sigma": -1}}, [], source="x")


def test_memory_refusal_uses_the_machine_budget():
    assert sim_problems({"array": {"rows": 100, "cols": 100}}, memory=10**12) == []
    [problem] = sim_problems({"array": {"rows": 100, "cols": 100}}, memory=10**6)
    assert "100x100" in problem and "needs about" in problem


def test_memory_estimate_covers_a_measured_array():
    """Peak RSS of building and solving a 256x256 array with wires stays within the per-cell estimate."""
    code = textwrap.dedent("""
        import resource, numpy as np
        import scipy.sparse.linalg  # noqa: F401  (imports before the baseline)
        from xbarlab.sim.array import CrossbarModel
        from xbarlab.sim.devices import make_device
        from xbarlab.sim.periphery import Periphery
        n = 256
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        m = CrossbarModel(n, n, make_device("rram"), wire_resistance=0.35)
        Periphery(n, n)
        m.conductance_map(); m.column_currents(np.full(n, 0.1)); m.row_currents(np.full(n, 0.1))
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    used = int(out.stdout.strip().splitlines()[-1])
    assert used <= estimated_memory(256, 256), (used / 256**2, BYTES_PER_CELL_WIRES)
