"""Safety proven from the instruments' side.

The audits of :mod:`xbarlab.sim.audit` watch what the emulated instruments received (every byte,
parsed independently of our drivers) and what the physics applied (SMU terminal voltages and
current limits, pulses, line voltages, closed-loop inputs and outputs). A hypothesis test drives
every checked operation of the station with values around and beyond every limit; nothing beyond
a limit may ever arrive.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import pyvisa
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safety_bench import bench_text

from xbarlab.errors import XbarlabError
from xbarlab.instruments.interfaces import Pulse
from xbarlab.instruments.safety import SafeSourceMeter, safe_crossbar_class
from xbarlab.instruments.station import Station
from xbarlab.protocol import board as bp
from xbarlab.protocol.eqprop import EqConfig
from xbarlab.sim import audit
from xbarlab.sim.audit import scpi_source_settings, tsp_source_settings

SMUS = ("smu1", "smu2", "smu3", "smu4")


def _audited_bench():
    # with the 3T1C capacitor array (board protocol §9), so its checked operations are driven too
    station = Station.from_text(bench_text().replace("\n# Keithley 2400", "\n[sim.cap_cells]\n\n# Keithley 2400", 1))
    wire, physics = audit.attach(station.sim, station.config.instruments.values())
    yield station, wire, physics
    wire.close()
    physics.close()
    station.close()


@pytest.fixture(scope="module")
def audited():
    """One audited bench for every example of the property (opening one per example would cost minutes)."""
    yield from _audited_bench()


@pytest.fixture()
def fresh_audited():
    """An audited bench of its own: what the property's random examples left behind cannot matter."""
    yield from _audited_bench()


# -- the audit itself sees what it must (so the property below can fail) --------------------------------------
def test_parsers_follow_the_command_trees():
    assert [(s.function, s.kind, s.values) for s in scpi_source_settings(":SOURce:VOLTage:LEVel:IMMediate:AMPLitude 50")
            ] == [("VOLT", "level", (50.0,))]
    assert [(s.function, s.kind) for s in scpi_source_settings(":SOUR:VOLT:LEV 60;:OUTP ON;:READ?")] == [
        ("VOLT", "level")]
    assert scpi_source_settings(":SENS:CURR:PROT 1")[0].kind == "compliance"
    assert scpi_source_settings(":SOUR2:VOLT 50")[0].channel == "2"
    assert scpi_source_settings("VOLT 5E1")[0].values == (50.0,)  # optional root omitted
    assert math.isnan(scpi_source_settings(":SOUR:VOLT MAX")[0].values[0])
    assert scpi_source_settings(":SOUR:VOLT:ILIM 1")[0].function == "CURR"
    assert scpi_source_settings(":SOUR:SWE:VOLT:LIN 0,50,5,0")[0].values == (0.0, 50.0)
    assert scpi_source_settings(":SOUR:LIST:VOLT 1,2,60")[0].values == (1.0, 2.0, 60.0)
    assert scpi_source_settings(":SOUR:VOLT 50mV")[0].values == pytest.approx((0.05,))
    assert scpi_source_settings(":SOUR:VOLT:LEV 1;LEV 70")[1].values == (70.0,)  # compound: relative header
    assert scpi_source_settings(':SENS:FUNC "CURR";:SOUR:FUNC VOLT;:SOUR:VOLT:RANG 20') == []
    assert tsp_source_settings("smua.source.levelv = 50")[0].values == (50.0,)
    assert tsp_source_settings("smub.source.limiti=1")[0].channel == "b"
    loop = tsp_source_settings("for i = 1, 11 do smua.source.levelv = -1 + (i - 1) * 0.6 smua.measure.i() end")
    assert max(loop[0].values) == pytest.approx(5.0) and min(loop[0].values) == pytest.approx(-1.0)
    assert math.isnan(tsp_source_settings("smua.source.levelv = x * 10")[0].values[0])
    assert tsp_source_settings("smua.trigger.source.linearv(0, 50, 11)")[0].values == (0.0, 50.0)
    assert tsp_source_settings("SweepVListMeasureI(smua, {1, 2, 60}, 0.01, 3)")[0].values == (1.0, 2.0, 60.0)
    assert tsp_source_settings("print(smua.source.levelv)") == []


def test_the_audit_flags_raw_traffic_beyond_the_limits():
    """Bypass the station (raw pyvisa/pyserial links to the simulated bench): the audits must see it."""
    with Station.from_text(bench_text()) as station:
        wire, physics = audit.attach(station.sim, station.config.instruments.values())
        rm = pyvisa.ResourceManager(f"{station.sim.bench_id}@xbarsim")
        addr = {n: station.config.instruments[n].address for n in SMUS}
        raw = {n: rm.open_resource(addr[n], read_termination="\n", write_termination="\n") for n in SMUS}
        hostile = [
            ("smu1", ":SOUR:VOLT:LEV 1"),  # within the limits: no violation
            ("smu1", ":SOURce:VOLTage:LEVel 50"),
            ("smu1", ":SENS:CURR:PROT 1"),
            ("smu2", "smua.source.levelv = 50"),
            ("smu2", "for i = 1, 10 do smua.source.levelv = i end"),
            ("smu3", ":SOUR1:VOLT 50"),
            ("smu3", ":SENS1:CURR:PROT 1"),
            ("smu4", ":SOUR:VOLT:ILIM 1"),
            ("smu4", ":SOUR:SWE:VOLT:LIN 0,50,5,0"),
        ]
        counts = []
        for name, line in hostile:
            raw[name].write(line)
            counts.append(len(wire.violations))
        assert counts[0] == 0
        assert all(b > a for a, b in zip(counts, counts[1:], strict=False)), counts
        # physics: a 2400 at 20 V into a 10 kOhm-ish cell through the board, output on, one reading
        before = len(physics.violations)
        raw["smu1"].write(":SOUR:VOLT:LEV 20;:SENS:CURR:PROT 1e-3;:OUTP ON")
        raw["smu1"].query(":READ?")
        raw["smu1"].write(":OUTP OFF")
        assert any(v.quantity == "terminal voltage (V)" and v.value == pytest.approx(20.0)
                   for v in physics.violations[before:])
        port = serial.serial_for_url(station.sim.serial_url("board"), timeout=0.1)
        for op, payload in [(bp.Op.PULSE, bp.pack_pulse(0, 0, 9.0, 1000)),
                            (bp.Op.PULSE, bp.pack_pulse(0, 0, 1.0, 500_000_000)),
                            (bp.Op.MVM_FORWARD, bp.pack_vector(np.full(8, 0.95)))]:
            n = len(wire.violations)
            port.write(bp.encode_request(op, 9, payload))
            assert len(wire.violations) == n + 1, op
        quantities = {v.quantity for v in physics.violations}
        assert {"pulse amplitude (V)", "pulse width (s)", "line voltage (V)"} <= quantities
        wire.close()
        physics.close()


# -- the property ---------------------------------------------------------------------------------------------
def around(limit: float) -> st.SearchStrategy[float]:
    """Values at, just inside, just beyond and far beyond ``limit`` (both signs), and non-finite ones."""
    edge = [0.0, 0.5 * limit, limit, math.nextafter(limit, 0), math.nextafter(limit, math.inf), 1.01 * limit,
            2 * limit, 10 * limit, 1e3 * limit]
    special = st.sampled_from([float("nan"), float("inf"), -float("inf")])
    sampled = st.sampled_from(edge + [-x for x in edge])
    return st.one_of(sampled, sampled, st.floats(-3 * limit, 3 * limit), special)


def value(limit: float) -> st.SearchStrategy[float]:
    """Half the time within ±limit, half the time around and beyond it."""
    return st.one_of(st.floats(-limit, limit), around(limit))


def positive(limit: float) -> st.SearchStrategy[float]:
    """Half the time within (0, limit], half the time around and beyond it."""
    return st.one_of(st.floats(limit * 1e-6, limit), around(limit))


V_SMU, I_SMU = 5.0, 1e-3  # smu1/smu2 limits; smu3/smu4 allow 10 V, 10 mA: both probed
V_ANY, I_ANY = st.one_of(value(V_SMU), value(10.0)), st.one_of(value(I_SMU), value(10e-3))
COMP_V, COMP_I = st.one_of(positive(V_SMU), positive(10.0)), st.one_of(positive(I_SMU), positive(10e-3))
V_READ, V_MVM, V_PULSE, TIA = value(0.5), value(0.5), value(3.5), positive(10e-3)
WIDTH = st.one_of(st.floats(1e-8, 1e-3),
                  st.sampled_from([1e-8, math.nextafter(1e-8, 0), 5e-9, 1e-6, 1e-3, math.nextafter(1e-3, 1), 2e-3,
                                   0.5, 0.0, -1e-6, float("nan")]))
smu_name = st.sampled_from(SMUS)

OPS = {
    "source_voltage": st.tuples(smu_name, V_ANY, COMP_I),
    "source_current": st.tuples(smu_name, I_ANY, COMP_V),
    "sweep_voltage": st.tuples(smu_name, V_ANY, V_ANY, st.sampled_from([2, 5, 11, 2501, 0]), COMP_I),
    "set_nplc": st.tuples(smu_name, st.sampled_from([0.01, 1.0, 25.0, 26.0, 0.0, float("nan")])),
    "set_output": st.tuples(smu_name, st.booleans()),
    "reset": st.tuples(smu_name),
    "measure": st.tuples(smu_name),
    "configure": st.tuples(V_READ, TIA),
    "reads": st.tuples(st.sampled_from(["read_cell", "read_cell_current", "read_cells", "read_cells_reading",
                                        "read_all", "read_all_reading", "read_all_currents", "read_rows",
                                        "read_rows_reading"])),
    "mvm": st.tuples(st.sampled_from(["mvm_forward", "mvm_transpose", "mvm_forward_reading",
                                      "mvm_transpose_reading"]), V_MVM, st.integers(0, 7)),
    "pulse_cell": st.tuples(V_PULSE, WIDTH),
    "pulse_batch": st.tuples(V_PULSE, WIDTH),
    "pulse_arrays": st.tuples(V_PULSE, WIDTH, st.booleans()),
    "outer_product_update": st.tuples(V_PULSE, WIDTH),
    "closed_loop_solve": st.tuples(V_MVM, st.integers(1, 4)),
    "closed_loop_eigen": st.tuples(st.sampled_from([1e-6, 1e-5, 1e-4, 0.0, -1e-5, float("nan")]), st.integers(1, 4)),
    "eq_configure": st.tuples(V_MVM, V_MVM),
    "eq_settle": st.tuples(V_MVM, st.sampled_from([1e-6, -1e-3, 1e-3, 1.001e-3, 1e-2, -1.0, float("nan")])),
    "route_and_source": st.tuples(st.sampled_from(["smu1", "smu2"]), V_ANY, COMP_I),
    "unroute_smu": st.tuples(st.integers(0, 1)),
    "route_uncabled": st.tuples(st.integers(2, 3)),
    "all_off": st.tuples(),
    "cap_mvm": st.tuples(st.sampled_from(["cap_mvm_forward", "cap_mvm_transpose"]), V_MVM, st.integers(0, 7)),
    "cap_reads": st.tuples(st.sampled_from(["cap_read_cells", "cap_read_cells_reading", "cap_read_all"])),
    "cap_update": st.tuples(st.sampled_from([1, -1, 255, -255, 256, 10**7, 1.5, float("nan")])),
    "cap_reset": st.tuples(),
}
#: which station operations each strategy drives
DRIVES = {
    "measure": {"measure_current", "measure_voltage", "compliance_tripped", "output_enabled"},
    "reads": {"read_cell", "read_cell_current", "read_cells", "read_cells_reading", "read_all", "read_all_reading",
              "read_all_currents", "read_rows", "read_rows_reading"},
    "mvm": {"mvm_forward", "mvm_transpose", "mvm_forward_reading", "mvm_transpose_reading"},
    "route_and_source": {"route_smu", "source_voltage", "set_output", "measure_current"},
    "cap_mvm": {"cap_mvm_forward", "cap_mvm_transpose"},
    "cap_reads": {"cap_read_cells", "cap_read_cells_reading", "cap_read_all"},
}


def test_every_checked_operation_is_driven():
    driven = set().union(*(DRIVES.get(k, {k}) for k in OPS))
    every_board = safe_crossbar_class()  # the safe board with every optional capability
    checked = {n for cls in (SafeSourceMeter, every_board) for n, d in cls.OPERATIONS.items()
               if d.startswith("checked:")} - {"close"}
    assert {"pulse_arrays", "outer_product_update", "closed_loop_solve", "closed_loop_eigen"} <= checked
    assert checked <= driven, checked - driven


def _run(station: Station, op: str, args: tuple) -> None:
    board = station.board
    rows, cols = board.shape
    if op in ("source_voltage", "source_current", "set_nplc", "set_output"):
        getattr(station.smu(args[0]), op)(*args[1:])
    elif op == "sweep_voltage":
        station.smu(args[0]).sweep_voltage(*args[1:])
    elif op == "reset":
        station.smu(args[0]).reset()
    elif op == "measure":
        smu = station.smu(args[0])
        smu.measure_current()
        smu.measure_voltage()
        smu.compliance_tripped()
        smu.output_enabled()
    elif op == "configure":
        board.configure(*args)
    elif op == "reads":
        method = args[0]
        if method in ("read_cell", "read_cell_current"):
            getattr(board, method)(1, 2)
        elif method.startswith("read_cells"):
            getattr(board, method)(np.array([0, 3]), np.array([1, 4]))
        elif method.startswith("read_rows"):
            getattr(board, method)(1, 2)
        else:
            getattr(board, method)()
    elif op == "mvm":
        method, level, k = args
        n = rows if "forward" in method else cols
        v = np.linspace(-abs(level) if math.isfinite(level) else 0.0, 0.0, n)
        v[k % n] = level
        getattr(board, method)(v)
    elif op == "pulse_cell":
        board.pulse_cell(2, 3, *args)
    elif op == "pulse_batch":
        board.pulse_batch([Pulse(0, 0, 1.0, 1e-6), Pulse(1, 2, *args)])
    elif op == "pulse_arrays":
        amplitude, width, readback = args
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        amplitudes = np.full(rows * cols, 1.0)
        amplitudes[-1] = amplitude
        board.pulse_arrays(r.ravel(), c.ravel(), amplitudes, width, readback=readback)
    elif op == "outer_product_update":
        rt = np.zeros((rows, 2), dtype=int)
        ct = np.zeros((cols, 2), dtype=int)
        rt[1, :], ct[2, :] = 1, -1
        board.outer_product_update(rt, ct, *args)
    elif op == "closed_loop_solve":
        level, n = args
        u = np.full(n, 0.1)
        u[-1] = level
        board.closed_loop_solve(u)
    elif op == "closed_loop_eigen":
        board.closed_loop_eigen(*args)
    elif op == "eq_configure":  # a 1-1-1 network on tiles of 4 rows each; rail and bias sources at the test values
        rail, bias = args
        board.eq_configure(EqConfig((1, 1, 1), ((0, 0), (4, 1)), bias_voltage=bias, amp_rail=abs(rail)))
    elif op == "eq_settle":
        level, injection = args
        board.eq_configure(EqConfig((1, 1, 1), ((0, 0), (4, 1)), bias_voltage=0.1, amp_rail=0.3))
        board.eq_settle(np.array([[0.1], [level]]), np.array([[0.0], [injection]]))
    elif op == "route_and_source":
        name, level, compliance = args
        port = station.board_port(name)
        board.route_smu(port, 4 + port, 5)
        smu = station.smu(name)
        smu.source_voltage(level, compliance)
        smu.set_output(True)
        smu.measure_current()
        smu.set_output(False)
    elif op == "route_uncabled":
        board.route_smu(args[0], 0, 0)  # refused: nothing of the station is cabled there
    elif op == "unroute_smu":
        board.unroute_smu(*args)
    elif op == "all_off":
        board.all_off()
    elif op == "cap_mvm":
        method, level, k = args
        v = np.zeros(rows if "forward" in method else cols)
        v[k % v.size] = level
        getattr(board, method)(v)
    elif op == "cap_reads":
        method = args[0]
        getattr(board, method)(*(() if method == "cap_read_all" else (np.array([0, 3]), np.array([1, 4]))))
    elif op == "cap_update":
        board.cap_update(np.array([1, 2]), np.array([2, 3]), np.array([3, args[0]]))
    elif op == "cap_reset":
        board.cap_reset(np.array([1, 2]), np.array([2, 3]))
    else:  # pragma: no cover - a strategy without a driver
        raise AssertionError(op)


calls = st.lists(st.one_of(*(st.tuples(st.just(k), v) for k, v in OPS.items())), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls)
def test_nothing_beyond_a_limit_ever_arrives(audited, sequence):
    station, wire, physics = audited
    try:
        for op, args in sequence:
            try:
                _run(station, op, args)
            except (XbarlabError, ValueError):
                pass  # refused (by the safety layer, the driver or the instrument): fine, if nothing arrived
            assert not wire.violations, "\n".join(map(str, wire.violations))
            assert not physics.violations, "\n".join(map(str, physics.violations))
    finally:
        for problem in station.safe_state():
            raise AssertionError(problem)
        station.board.configure(0.2, 1e-3)


def test_the_property_sees_traffic(fresh_audited):
    """The audits counted messages and physics calls for every instrument (they are really attached)."""
    station, wire, physics = fresh_audited
    for name in SMUS:
        station.smu(name).source_voltage(0.1, 1e-4)
        station.smu(name).set_output(True)
        station.smu(name).measure_current()
        station.smu(name).set_output(False)
    station.board.pulse_cell(0, 0, 1.0, 1e-6)
    station.board.mvm_forward(np.full(station.board.shape[0], 0.1))
    assert all(wire.counts.get(n, 0) > 0 for n in (*SMUS, "board"))
    assert all(physics.counts.get(n, 0) > 0 for n in (*SMUS, "board"))
    assert not wire.violations and not physics.violations
