"""The simulated station end to end through the real drivers, and the safety property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbarlab.errors import InstrumentError, SafetyLimitError, TransportError, XbarlabError
from xbarlab.instruments.interfaces import Pulse
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text


@pytest.fixture(scope="module")
def station():
    s = Station.from_text(sim_station_text(8, 8, seed=3))
    yield s
    s.close()


def test_embedded_station_identifies_every_instrument():
    with Station.open(None) as s:
        assert set(s.identities) == {"smu1", "smu2", "smu3", "smu4", "board"}
        assert "MODEL 2400" in s.identities["smu1"]
        assert "2636B" in s.identities["smu2"]
        assert "B2902A" in s.identities["smu3"]
        assert "MODEL 2450" in s.identities["smu4"]
        assert s.board.shape == (64, 64)


def test_routed_smu_measures_the_cell_and_board_agrees(station):
    board, smu = station.board, station.smu("smu1")
    g_true = station.sim.model.conductance_map()
    board.route_smu(station.board_port("smu1"), 4, 5)
    sweep = smu.sweep_voltage(-0.1, 0.1, 11, 1e-4)
    board.unroute_smu(station.board_port("smu1"))
    slope = np.polyfit(sweep.voltage, sweep.current, 1)[0]
    assert slope == pytest.approx(g_true[4, 5], rel=0.01)
    assert board.read_cell(4, 5) == pytest.approx(g_true[4, 5], rel=0.08)  # TIA gain error ~2 %
    assert not smu.output_enabled()


def test_forward_and_transpose_mvm_follow_kirchhoff(station):
    board = station.board
    g = station.sim.model.conductance_map()
    x = np.linspace(-0.1, 0.1, 8)
    np.testing.assert_allclose(board.mvm_forward(x), g.T @ x, rtol=0.1, atol=1e-6)
    np.testing.assert_allclose(board.mvm_transpose(x), g @ x, rtol=0.1, atol=1e-6)


def test_compliance_limits_current_through_a_cell(station):
    board, smu = station.board, station.smu("smu1")
    board.route_smu(0, 1, 1)
    smu.source_voltage(0.3, 1e-7)
    smu.set_output(True)
    i = smu.measure_current()
    tripped = smu.compliance_tripped()
    smu.set_output(False)
    board.unroute_smu(0)
    assert tripped and abs(i) <= 1e-7 * 1.01


def test_instrument_error_surfaces_as_exception(station):
    # a driver of our own on the simulated bench (the station hands out no raw access)
    import pyvisa

    from xbarlab.drivers.keithley2400 import Keithley2400
    from xbarlab.drivers.transport import VisaTransport

    res = pyvisa.ResourceManager(f"{station.sim.bench_id}@xbarsim").open_resource(
        "GPIB0::24::INSTR", read_termination="\n", write_termination="\n")
    smu = Keithley2400(VisaTransport(res), name="raw")
    smu.transport.write(":SOUR:VOLT:LEV 500")  # beyond the 2400's 210 V range
    with pytest.raises(InstrumentError) as err:
        smu.check_errors()
    assert err.value.code == -222


def test_unreachable_address_is_a_clear_error(tmp_path):
    text = sim_station_text(4, 4).replace("[sim]", "[simx]").replace("[sim.array]", "[simx.array]")
    p = tmp_path / "bad.toml"
    p.write_text(text)
    from xbarlab.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown top-level table"):
        Station.open(p)
    real = sim_station_text(4, 4)
    real = real[: real.index("[sim]")] + real[real.index("[instruments.smu1]"):]
    real = real.replace('[station]', '[station]\nvisa_library = "@py"')
    p.write_text(real.replace("GPIB0::24::INSTR", "TCPIP0::127.0.0.1::1::SOCKET").replace(
        "/dev/ttyACM0", "socket://127.0.0.1:1"))
    with pytest.raises(TransportError, match=r"instruments\.(smu1|board).*(cannot open|does not answer).*127.0.0.1"):
        Station.open(p)


_SMU_LIMIT_V, _SMU_LIMIT_I, _PULSE_LIMIT = 5.0, 1e-3, 3.5
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)
anyfloat = st.one_of(finite, st.just(float("nan")), st.just(float("inf")))
ops = st.one_of(
    st.tuples(st.just("source_voltage"), anyfloat, anyfloat),
    st.tuples(st.just("source_current"), anyfloat, anyfloat),
    st.tuples(st.just("sweep"), anyfloat, anyfloat),
    st.tuples(st.just("pulse"), anyfloat, st.floats(min_value=0, max_value=1)),
    st.tuples(st.just("batch"), anyfloat, st.floats(min_value=0, max_value=1)),
    st.tuples(st.just("outer"), anyfloat, st.floats(min_value=0, max_value=1)),
    st.tuples(st.just("mvm"), anyfloat, anyfloat),
    st.tuples(st.just("configure"), anyfloat, anyfloat),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ops, min_size=1, max_size=6))
def test_no_sequence_of_calls_gets_past_the_limits(station, calls):
    """Whatever the API is asked, the emulated instruments never see values beyond the limits."""
    model = station.sim.model
    seen_pulses: list[float] = []
    real_apply, real_outer = model.apply_pulses, model.outer_product_update

    def spy_apply(rows, cols, amps, widths):
        seen_pulses.extend(np.abs(np.asarray(amps, dtype=float)).tolist())
        return real_apply(rows, cols, amps, widths)

    def spy_outer(rt, ct, amplitude, width):
        seen_pulses.append(abs(amplitude))
        return real_outer(rt, ct, amplitude, width)

    model.apply_pulses, model.outer_product_update = spy_apply, spy_outer
    smu, board = station.smu("smu1"), station.board
    try:
        for op, a, b in calls:
            try:
                if op == "source_voltage":
                    smu.source_voltage(a, b)
                elif op == "source_current":
                    smu.source_current(a, b)
                elif op == "sweep":
                    smu.sweep_voltage(a, b, 3, 1e-4)
                elif op == "pulse":
                    board.pulse_cell(1, 1, a, b)
                elif op == "batch":
                    board.pulse_batch([Pulse(0, 0, 1.0, 1e-6), Pulse(1, 2, a, b)])
                elif op == "outer":
                    board.outer_product_update(np.ones((8, 1), int), np.ones((8, 1), int), a, b)
                elif op == "mvm":
                    board.mvm_forward(np.full(8, a))
                elif op == "configure":
                    board.configure(a, b)
            except (SafetyLimitError, XbarlabError, ValueError):
                pass
            ch = station.sim.emulators["smu1"].ch[0]
            assert abs(ch.level_v) <= _SMU_LIMIT_V and abs(ch.level_i) <= _SMU_LIMIT_I
            assert 0 < ch.comp_i <= max(_SMU_LIMIT_I, 105e-6) and ch.comp_v <= max(_SMU_LIMIT_V, 21.0)
            assert all(p <= _PULSE_LIMIT for p in seen_pulses)
            assert abs(station.sim.board.config.read_voltage) <= 0.5
    finally:
        model.apply_pulses, model.outer_product_update = real_apply, real_outer
        station.safe_state()
        board.configure(0.2, 1e-3)


def test_fault_injection_timeout_corruption_reset_and_dead_cell():
    from xbarlab.errors import ProtocolError, TransportTimeout

    with Station.from_text(sim_station_text(8, 8, seed=5)) as s:
        smu = s.smu("smu1")
        s.sim.set_faults("smu1", timeout_next=1)
        with pytest.raises(TransportTimeout):
            smu.identify()
        assert "MODEL 2400" in smu.identify()  # the link recovers
        s.sim.set_faults("board", corrupt_next=1)
        with pytest.raises(ProtocolError):
            s.board.read_cell(0, 0)
        assert s.board.read_cell(0, 0) > 0  # next exchange works
        smu.source_voltage(0.1, 1e-4)
        smu.set_output(True)
        s.sim.set_faults("smu1", reset_next=1)
        assert not smu.output_enabled()  # the instrument reset itself: output off, settings lost
        s.sim.board.inject_dead_cell(2, 2, "off")
        assert s.board.read_cell(2, 2) < 1e-6
