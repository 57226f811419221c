"""The expert escape hatch: raw messages pass only when every sourcing value is within the limits.

Hypothesis composes raw SCPI and TSP messages and board requests from the instruments' command
sets with values around and beyond the limits; whatever the expert link lets through, the
instrument-side audits must see nothing beyond a limit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safety_bench import bench_text

from xbarlab.errors import SafetyLimitError, XbarlabError
from xbarlab.instruments.station import Station
from xbarlab.protocol import board as bp
from xbarlab.sim import audit


@pytest.fixture(scope="module")
def audited():
    station = Station.from_text(bench_text())
    wire, physics = audit.attach(station.sim, station.config.instruments.values())
    yield station, wire, physics
    wire.close()
    physics.close()
    station.close()


def number(limit: float) -> st.SearchStrategy[str]:
    edge = [0.0, 0.5 * limit, limit, 1.01 * limit, 10 * limit]
    values = st.one_of(st.sampled_from(edge + [-x for x in edge]), st.floats(-2 * limit, 2 * limit))
    text = values.map(lambda v: f"{v:.6g}")
    inside = st.floats(-limit, limit).map(lambda v: f"{v:.6g}")
    return st.one_of(text, inside, inside, st.sampled_from(["MAX", "MIN", "DEF", "1e999", "nan"]))


def scpi_unit(v: float, i: float) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([":SOUR:FUNC VOLT", ":SOUR:FUNC CURR", ":OUTP ON", ":OUTP OFF", ":READ?", "*RST",
                         ":SOUR:VOLT:RANG 20", ":SENS:FUNC \"CURR\"", ":MEAS:VOLT?", ":INIT"]),
        number(i).map(lambda x: f":SENS:CURR:PROT {x}"),
        number(v).map(lambda x: f":SENS:VOLT:PROT {x}"),
        number(v).map(lambda x: f":SOURce:VOLTage:LEVel {x}"),
        number(i).map(lambda x: f":SOUR:CURR {x}"),
        number(i).map(lambda x: f":SOUR:VOLT:ILIM {x}"),
        number(v).map(lambda x: f":SOUR:CURR:VLIM {x}"),
        st.tuples(number(v), number(v)).map(lambda p: f":SOUR:LIST:VOLT {p[0]},{p[1]}"),
        st.tuples(number(v), number(v)).map(lambda p: f":SOUR:SWE:VOLT:LIN {p[0]},{p[1]},5,0"),
    )


def tsp_statement(v: float, i: float) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["smua.source.func = smua.OUTPUT_DCVOLTS", "smua.source.func = smua.OUTPUT_DCAMPS",
                         "smua.source.output = smua.OUTPUT_ON", "smua.source.output = smua.OUTPUT_OFF",
                         "print(smua.measure.i())", "print(smua.measure.v())", "smua.reset()"]),
        number(v).map(lambda x: f"smua.source.levelv = {x}"),
        number(i).map(lambda x: f"smua.source.leveli = {x}"),
        number(i).map(lambda x: f"smua.source.limiti = {x}"),
        number(v).map(lambda x: f"smua.source.limitv = {x}"),
    )


def board_request(rows: int) -> st.SearchStrategy[tuple[int, bytes]]:
    amp = st.one_of(st.sampled_from([0.0, 1.0, 3.5, 3.6, 9.0, -3.5, -9.9]), st.floats(-10, 10))
    width = st.sampled_from([10, 9, 1000, 1_000_000, 1_000_001, 500_000_000])
    volts = st.one_of(st.sampled_from([0.1, 0.5, 0.51, 0.95, -0.5, -2.0]), st.floats(-1, 1))
    return st.one_of(
        st.tuples(amp, width).map(lambda p: (bp.Op.PULSE, bp.pack_pulse(1, 2, p[0], p[1]))),
        st.tuples(amp, width).map(lambda p: (bp.Op.PULSE_BATCH, bp.pack_pulse_batch(
            np.array([(0, 0, 1.0, 1000), (1, 1, p[0], p[1])], dtype=bp.PULSE_RECORD)))),
        st.tuples(amp, width).map(lambda p: (bp.Op.OUTER_PRODUCT, bp.pack_outer_product(
            p[0], p[1], np.ones((rows, 1), np.int8), -np.ones((rows, 1), np.int8)))),
        volts.map(lambda x: (bp.Op.MVM_FORWARD, bp.pack_vector(np.r_[np.zeros(rows - 1), x]))),
        volts.map(lambda x: (bp.Op.MVM_TRANSPOSE, bp.pack_vector(np.r_[x, np.zeros(rows - 1)]))),
        volts.map(lambda x: (bp.Op.CLOSED_LOOP_SOLVE, bp.pack_closed_loop_solve(
            bp.ClosedLoopBlock(2, 0, 0, "differential"), np.array([0.1, x])))),
        st.sampled_from([(bp.Op.READ_ALL, bp.pack_read_all(0, 2)), (bp.Op.IDENTIFY, b""), (bp.Op.ALL_OFF, b""),
                         (bp.Op.CONFIGURE, bp.Configuration(8, 8, 0.2, 1e-3).pack()), (0x7E, b"")]),
    )


def scpi_complete(v: float, i: float, ilim: bool) -> st.SearchStrategy[str]:
    """A message that sets compliance and function before its level (so the link may let it through)."""
    comp = ":SOUR:VOLT:ILIM" if ilim else ":SENS:CURR:PROT"
    return st.tuples(number(i), number(v), st.sampled_from(["", ";:OUTP ON", ";:OUTP ON;:MEAS:VOLT?"])).map(
        lambda p: f"{comp} {p[0]};:SOUR:FUNC VOLT;:SOUR:VOLT {p[1]}{p[2]}")


def tsp_complete(v: float, i: float) -> st.SearchStrategy[str]:
    return st.tuples(number(i), number(v), st.sampled_from(["", "; smua.source.output = smua.OUTPUT_ON"])).map(
        lambda p: f"smua.source.limiti = {p[0]}; smua.source.func = smua.OUTPUT_DCVOLTS; "
                  f"smua.source.levelv = {p[1]}{p[2]}")


LIMITS = {"smu1": (5.0, 1e-3), "smu2": (5.0, 1e-3), "smu3": (10.0, 10e-3), "smu4": (10.0, 10e-3)}
messages = st.one_of(
    *(st.tuples(st.just(n), scpi_complete(*LIMITS[n], ilim=n == "smu4")) for n in ("smu1", "smu3", "smu4")),
    st.tuples(st.just("smu2"), tsp_complete(*LIMITS["smu2"])),
    *(st.tuples(st.just(n), st.lists(scpi_unit(*LIMITS[n]), min_size=1, max_size=5).map(";".join))
      for n in ("smu1", "smu3", "smu4")),
    st.tuples(st.just("smu2"), st.lists(tsp_statement(*LIMITS["smu2"]), min_size=1, max_size=5).map("; ".join)),
    st.tuples(st.just("board"), board_request(8)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(messages, min_size=1, max_size=6))
def test_whatever_the_expert_link_lets_through_stays_within_the_limits(audited, sequence):
    station, wire, physics = audited
    try:
        for name, message in sequence:
            link = station.expert_raw(name)
            try:
                if name == "board":
                    link.exchange(*message)
                elif "?" in message or "print" in message:
                    link.ask(message)
                else:
                    link.send(message)
            except XbarlabError:
                pass  # refused by the link (nothing sent) or by the instrument
            assert not wire.violations, "\n".join(map(str, wire.violations))
            assert not physics.violations, "\n".join(map(str, physics.violations))
    finally:
        for name in LIMITS:  # clear the error queues the raw messages may have filled (unknown headers)
            try:
                station.smu(name).check_errors()
            except XbarlabError:
                pass
        for problem in station.safe_state():
            raise AssertionError(problem)


def test_a_complete_raw_message_passes_and_is_applied(audited):
    station, wire, physics = audited
    smu1 = station.expert_raw("smu1")
    smu1.send(":SENS:CURR:PROT 1e-4;:SOUR:FUNC VOLT;:SOUR:VOLT 0.3;:OUTP ON")
    assert float(smu1.ask(":READ?").split(",")[0]) == pytest.approx(0.3)
    smu1.send(":OUTP OFF")
    smu2 = station.expert_raw("smu2")
    smu2.send("smua.source.limiti = 1e-4; smua.source.func = smua.OUTPUT_DCVOLTS; smua.source.levelv = 0.3; "
              "smua.source.output = smua.OUTPUT_ON")
    assert math.isfinite(float(smu2.ask("print(smua.measure.i())")))
    smu2.send("smua.source.output = smua.OUTPUT_OFF")
    reply = station.expert_raw("board").exchange(bp.Op.PULSE, bp.pack_pulse(0, 0, 1.0, 1000))
    assert reply == b""
    with pytest.raises(SafetyLimitError, match="source level"):
        smu1.send(":SENS:CURR:PROT 1e-4;:SOUR:FUNC VOLT;:SOUR:VOLT 5.01")
    assert not wire.violations and not physics.violations
