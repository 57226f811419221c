"""Emulators answer as the manuals say; drivers check what they talk to; old logs still replay."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbarlab.cli import main
from xbarlab.logbook.replay import replay
from xbarlab.sim.bench import SimBench
from xbarlab.sim.server import BenchServer
from xbarlab.sim.smu_scpi import Keithley2400Emulator, Keithley2450Emulator, KeysightB2900Emulator
from xbarlab.sim.smu_tsp import Keithley2600Emulator
from xbarlab.sim.terminals import Resistor

DATA = Path(__file__).parent / "data"


def ask(emu, message: str) -> str:
    emu.feed((message + "\n").encode())
    return emu.read_output().decode().rstrip("\n")


def errors(emu) -> list[str]:
    out = []
    while not (e := ask(emu, ":SYST:ERR?")).lstrip("+").startswith("0,"):
        out.append(e)
    return out


# -- SCPI tree ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [Keithley2400Emulator, Keithley2450Emulator, KeysightB2900Emulator])
def test_optional_nodes_long_short_forms_and_a_query_for_every_setting(cls):
    emu = cls(seed=1)
    src = ":SOUR1" if cls is KeysightB2900Emulator else ":SOUR"
    for cmd in (f"{src}:VOLT:LEV:IMM:AMPL 1.5", f"{src}:VOLTAGE 1.5", f"{src.lower()}:volt:level 1.5",
                "SOURCE1:VOLT 1.5"):
        ask(emu, cmd)
        assert float(ask(emu, f"{src}:VOLT?")) == 1.5, cmd
    ask(emu, ":OUTP:STAT 1")
    assert ask(emu, ":OUTP:STATE?") == "1" and ask(emu, ":OUTP?") == "1"
    assert float(ask(emu, f"{src}:VOLT? MAX")) == pytest.approx(210.0)
    assert ask(emu, ":SOUR:VOLTA 1") is not None and errors(emu) == ['-113,"Undefined header"']  # neither form
    ask(emu, f"{src}:VOLT 500")
    assert errors(emu)[0].endswith('"Data out of range"')
    assert float(ask(emu, f"{src}:VOLT?")) == 1.5  # unchanged


def test_compound_messages_root_rule_and_error_discards_the_rest():
    emu = Keithley2400Emulator(seed=1)
    assert ask(emu, ":SENS:CURR:PROT 1e-3;NPLC 2;:SENS:CURR:NPLC?;PROT?") == "+2.000000E+00;+1.000000E-03"
    assert ask(emu, ":SOUR:BOGUS 1;:SOUR:VOLT 2") == ""  # -113, and the rest of the message is discarded
    assert float(ask(emu, ":SOUR:VOLT?")) == 0.0
    assert errors(emu) == ['-113,"Undefined header"']


def test_2400_status_model_and_common_commands():
    emu = Keithley2400Emulator(seed=1)
    emu.terminal().connect(Resistor(1e4))
    assert int(ask(emu, "*ESR?")) & 128  # power on
    assert ask(emu, "*ESR?") == "0"
    ask(emu, "*ESE 60;*SRE 36")
    ask(emu, ":BOGUS")
    stb = int(ask(emu, "*STB?"))
    assert stb & 4 and stb & 32 and stb & 64  # EAV, ESB, MSS
    assert int(ask(emu, "*ESR?")) == 32  # command error
    ask(emu, "*CLS")
    assert int(ask(emu, "*STB?")) == 0 and errors(emu) == []
    ask(emu, "*OPC")
    assert int(ask(emu, "*ESR?")) & 1 and ask(emu, "*OPC?") == "1"
    ask(emu, ":STAT:PRES;*SRE 1;:STAT:MEAS:ENAB 512")
    ask(emu, ":OUTP ON;:TRIG:COUN 4;:TRAC:POIN 4;:TRAC:FEED SENS;:TRAC:FEED:CONT NEXT;:INIT")
    assert int(ask(emu, "*STB?")) & 65 == 65  # buffer full (measurement event bit 9) -> MSB -> MSS
    assert ask(emu, ":TRIG:COUN?;:ARM:COUN?") == "4;1"
    assert ask(emu, ":SENS:FUNC?") == '"CURR:DC"'


def test_2400_read_with_output_off_is_error_803():
    emu = Keithley2400Emulator(seed=1)
    assert ask(emu, ":READ?") == ""
    assert errors(emu) == ['+803,"Not permitted with OUTPUT off"']
    assert ask(emu, ":FETC?") == ""
    assert errors(emu) == ['-230,"Data corrupt or stale"']


def test_b2900_channels_and_channel_lists():
    emu = KeysightB2900Emulator(seed=1)
    emu.terminal(2).connect(Resistor(1e3))
    ask(emu, ":SOUR2:VOLT 0.5;:SENS2:CURR:PROT 0.1")
    assert float(ask(emu, ":SOUR2:VOLT?")) == 0.5 and float(ask(emu, ":SOUR1:VOLT?")) == 0.0
    assert abs(float(ask(emu, ":MEAS:CURR? (@2)"))) < 1e-9  # :MEAS? reads the terminals as they are (off)
    assert float(ask(emu, ":READ? (@2)").split(",")[1]) == pytest.approx(0.5e-3, rel=1e-3)  # :READ? auto-on
    assert ask(emu, ":OUTP2?") == "1"
    ask(emu, ":SOUR3:VOLT 1")
    assert errors(emu) == ['-114,"Header suffix out of range"']


# -- hypothesis: nothing crashes or desynchronises an emulator -----------------------------------------------
_EMULATORS: dict = {}
_WORDS = ["SOUR", "SOURCE", "VOLT", "CURR", "LEV", "SENS", "PROT", "NPLC", "OUTP", "STAT", "TRAC", "DATA", "TRIG",
          "COUN", "ARM", "FORM", "ELEM", "READ", "FETC", "MEAS", "INIT", "CALC3", "SYST", "ERR", "*RST", "*CLS",
          "*OPC", "*ESR", "*STB", "*SRE", "FUNC", "RANG", "AUTO", "SWE", "POIN", "MODE", "ILIM", "BOGUS", "1", "2"]
_ARGS = ["", " 1", " 0", " ON", " MAX", " MIN", " DEF", " 1e-3", " -5", " 1e99", " 'CURR'", ' "VOLT"', " (@1)",
         " (@3)", " VOLT,CURR", " x", " ;", " nan"]
_unit = st.builds(lambda words, q, arg, lead: lead + ":".join(words) + ("?" if q else "") + arg,
                  st.lists(st.sampled_from(_WORDS), min_size=1, max_size=4), st.booleans(), st.sampled_from(_ARGS),
                  st.sampled_from(["", ":"]))
_message = st.one_of(st.lists(_unit, min_size=1, max_size=3).map(";".join),
                     st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\n"),
                             max_size=40))


def _short_header(pattern: str) -> str:
    """The short-form header of a tree pattern, optional nodes left out, channel suffix 1."""
    import re

    pattern = re.sub(r"\[[^\[\]]*(\[[^\]]*\])?[^\[\]]*\]", "", pattern.replace("[1]", "#"))
    parts = [p for p in pattern.split(":") if p]
    return ":" + ":".join("".join(ch for ch in p if not ch.islower()).replace("#", "1").replace("&", "1")
                          for p in parts)


@pytest.mark.parametrize("cls", [Keithley2400Emulator, Keithley2450Emulator, KeysightB2900Emulator])
def test_every_setting_of_the_tree_answers_its_query_with_the_value_set(cls):
    from xbarlab.sim.scpi_tree import Bool, Choice, Num

    emu = cls(seed=1)
    checked = 0
    for node in emu.tree.nodes:
        if node.key is None or node.query is not None or not (node.settable and node.queryable):
            continue
        if isinstance(node.param, Num):
            p = node.param
            value = p.lo + 0.37 * (p.hi - p.lo)
            value = float(round(value)) if p.integer else value
            text = str(int(value)) if p.integer else repr(value)
        elif isinstance(node.param, Bool):
            value, text = not node.default_value(), "ON" if not node.default_value() else "OFF"
        elif isinstance(node.param, Choice):
            choice = node.param.choices[-1]
            value, text = node.param.parse(choice), choice
        else:
            continue
        header = _short_header(node.pattern)
        ask(emu, "*RST;*CLS")
        ask(emu, f"{header} {text}")
        if emu.errors:  # a setting refused by its own rule (a range, a line frequency) is a clear error
            assert emu.errors[0][0] in (-222, -224, 800), (header, emu.errors)
            continue
        reply = ask(emu, f"{header}?")
        if node.key in ("v_range", "i_range"):  # a source range answers the hardware range that holds the value
            assert abs(value) <= float(reply) < 11 * abs(value), header
        else:
            assert reply == node.param.format(value), header
        checked += 1
    assert checked >= 25


@pytest.mark.parametrize("cls", [Keithley2400Emulator, Keithley2450Emulator, KeysightB2900Emulator])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=_message)
def test_random_scpi_messages_get_a_reply_or_an_error_and_the_next_query_answers(cls, message):
    emu = _EMULATORS.get(cls) or _EMULATORS.setdefault(cls, cls(seed=3))
    emu.terminal().connect(Resistor(1e4))
    emu.power_on_reset()
    emu.clear()
    ask(emu, "*CLS")
    emu.feed((message + "\n").encode())
    reply = emu.read_output()
    assert reply.count(b"\n") <= 1 and (not reply or reply.endswith(b"\n"))  # at most one reply line
    if "?" in message and not reply:  # a query that is not answered leaves its error in the queue
        assert emu.errors
    assert all(code != -300 for code, _ in emu.errors)  # no emulator fault
    assert ask(emu, "*IDN?") == emu.IDENTITY
    assert float(ask(emu, "*RST;:SOUR:VOLT 0.25;:SOUR:VOLT?")) == 0.25
    assert emu.pending_output() == 0


# -- TSP ---------------------------------------------------------------------------------------------------
def test_tsp_chunks_functions_factory_sweeps_and_status():
    emu = Keithley2600Emulator(seed=2, time_limit=0.3)
    emu.terminal("a").connect(Resistor(1e3))
    i_off, v_off = (float(x) for x in ask(emu, "i, v = smua.measure.iv() print(i, v)").split("\t"))
    assert abs(i_off) < 1e-9 and v_off == 0.0  # output off: open terminals
    out = ask(emu, "smua.source.levelv = 0.5 smua.source.output = smua.OUTPUT_ON i, v = smua.measure.iv() print(i, v)")
    i, v = (float(x) for x in out.split("\t"))
    assert i == pytest.approx(0.5e-3, rel=1e-3) and v == pytest.approx(0.5)
    assert ask(emu, "function sq(x) return x * x end local s = 0 for k = 1, 3 do s = s + sq(k) end print(s)") \
        == "1.40000e+01"
    assert float(ask(emu, "print(smua.source.rangev)")) == 2.0  # autorange: the 2 V range holds 0.5 V
    assert ask(emu, "print(smua.AUTORANGE_ON, smua.OUTPUT_DCVOLTS)") == "1.00000e+00\t1.00000e+00"
    ask(emu, "smua.source.limiti = 1e-4 print(smua.measure.i())")
    assert ask(emu, "print(status.measurement.instrument.smua.condition)") == "2.00000e+00"  # current limit
    ask(emu, "smua.source.limiti = 0.1")
    ask(emu, "SweepVLinMeasureI(smua, -1, 1, 0.001, 5)")
    values = [float(x) for x in ask(emu, "printbuffer(1, smua.nvbuffer1.n, smua.nvbuffer1.readings)").split(",")]
    assert values == pytest.approx([-1e-3, -0.5e-3, 0.0, 0.5e-3, 1e-3], abs=1e-6)
    assert ask(emu, "print(smua.source.output)") == "0.00000e+00"  # the factory script ends with output off
    ask(emu, "SweepIListMeasureV(smua, {1e-4, 2e-4}, 0, 2)")
    volts = [float(x) for x in ask(emu, "printbuffer(1, 2, smua.nvbuffer1)").split(",")]
    assert volts == pytest.approx([0.1, 0.2], rel=1e-3)  # I = 0.1, 0.2 mA into 1 kΩ
    t0 = emu.clock.now
    ask(emu, "delay(5)")
    assert emu.clock.now - t0 == pytest.approx(5.0)
    ask(emu, "reset() waitcomplete()")
    assert ask(emu, "print(smua.source.levelv, errorqueue.count)") == "0.00000e+00\t0.00000e+00"


def test_tsp_trigger_model_sweep_into_buffers():
    emu = Keithley2600Emulator(seed=2)
    emu.terminal("b").connect(Resistor(2e3))
    script = ("smub.reset() smub.nvbuffer1.clear() smub.nvbuffer2.clear() "
              "smub.trigger.source.linearv(0, 1, 5) smub.trigger.source.action = smub.ENABLE "
              "smub.trigger.measure.iv(smub.nvbuffer1, smub.nvbuffer2) smub.trigger.measure.action = smub.ENABLE "
              "smub.trigger.count = 5 smub.source.output = smub.OUTPUT_ON smub.trigger.initiate() waitcomplete() "
              "smub.source.output = smub.OUTPUT_OFF "
              "printbuffer(1, smub.nvbuffer1.n, smub.nvbuffer1.readings, smub.nvbuffer2.readings)")
    values = [float(x) for x in ask(emu, script).split(",")]
    i, v = values[0::2], values[1::2]
    assert v == pytest.approx([0, 0.25, 0.5, 0.75, 1.0], abs=1e-4)
    assert i == pytest.approx([x / 2e3 for x in v], rel=1e-3, abs=1e-9)


def test_tsp_errors_and_endless_loops_do_not_hang_or_desynchronise():
    emu = Keithley2600Emulator(seed=2, time_limit=0.2)
    assert ask(emu, "print(1) foo()") == ""  # runtime error: no partial output
    assert ask(emu, "print(errorqueue.next())").startswith("-2.86000e+02\tTSP Runtime error at line 1: attempt to call")
    assert ask(emu, "x = = 1") == ""
    assert ask(emu, "print(errorqueue.next())").startswith("-2.85000e+02\tTSP Syntax error")
    for loop in ("print(1) while true do end", "while true do pcall(function() while true do end end) end",
                 "local co = coroutine.wrap(function() while true do end end) co()"):
        assert ask(emu, loop) == ""
        assert "time limit" in ask(emu, "print(errorqueue.next())")
        assert ask(emu, "print(localnode.model)") == "2636B"  # in step again
    ask(emu, "smua.source.levelv = 300")
    assert ask(emu, "print(errorqueue.next())").startswith("1.10000e+03\tParameter too big")
    assert ask(emu, "print(os, io, debug, python, load)") == "nil\tnil\tnil\tnil\tnil"


# -- drivers check what they talk to (through `xbarlab station check --connect`) -------------------------------
def _station(tmp_path, body: str) -> str:
    path = tmp_path / "bench.toml"
    path.write_text('[station]\nname = "t"\nvisa_library = "@py"\n' + body)
    return str(path)


@pytest.fixture
def served():
    bench = SimBench.from_station(__import__("xbarlab.instruments.config", fromlist=["x"]).load_station(
        Path(__file__).parents[1] / "xbarlab" / "stations" / "sim.toml"))
    server = BenchServer(bench).start()
    yield bench, server
    server.stop()
    bench.close()


def test_model_mismatch_is_refused_naming_both(served, tmp_path, capsys):
    bench, server = served
    path = _station(tmp_path, f'[instruments.smu1]\ndriver = "keithley2400"\naddress = "{server.addresses["smu3"]}"\n')
    assert main(["station", "check", path, "--connect"]) == 2
    err = capsys.readouterr().err
    assert "keithley2400" in err and "2400-series" in err and "B2902A" in err and "Traceback" not in err
    assert "all instruments answered" not in capsys.readouterr().out


def test_an_http_server_on_the_port_is_refused(tmp_path, capsys):
    seen: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def handle_one_request(self):
            super().handle_one_request()
            seen.append(self.raw_requestline)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        path = _station(tmp_path, f'[instruments.smu1]\ndriver = "keysight_b2900"\n'
                                  f'address = "TCPIP0::127.0.0.1::{port}::SOCKET"\ntimeout = 2.0\n')
        assert main(["station", "check", path, "--connect"]) == 2
    finally:
        # the handler records the request after its reply went out: shutdown() waits for the request in hand
        httpd.shutdown()
        thread.join()
        httpd.server_close()
    err = capsys.readouterr().err
    assert "B2900" in err and "answered *IDN? with" in err and "HTML" in err and "Traceback" not in err
    assert seen == [b"*IDN?\n"]  # refused after the identity: nothing else was sent


def test_stale_error_is_cleared_on_open(served, tmp_path, capsys):
    bench, server = served
    emu = bench.emulators["smu1"]
    ask(emu, ":SOUR:BOGUS 1")  # a stale error from an earlier session
    assert emu.errors
    path = _station(tmp_path, f'[instruments.smu1]\ndriver = "keithley2400"\naddress = "{server.addresses["smu1"]}"\n')
    assert main(["station", "check", path, "--connect"]) == 0
    assert "all instruments answered" in capsys.readouterr().out
    assert emu.errors == []


def test_limits_beyond_the_models_rating_are_named(served, tmp_path, capsys):
    bench, server = served
    path = _station(tmp_path, f'[instruments.smu2]\ndriver = "keithley2600"\nchannel = "a"\n'
                              f'address = "{server.addresses["smu2"]}"\n'
                              "[instruments.smu2.limits]\nmax_voltage = 300.0\nmax_current = 1e-3\n")
    assert main(["station", "check", path, "--connect"]) == 2
    err = capsys.readouterr().err
    assert "limits.max_voltage = 300 V is beyond what a 2636B can source (202 V)" in err


def test_sim_serve_prints_each_port_with_its_model(served):
    from xbarlab.sim.server import describe_emulator

    bench, server = served
    lines = {name: describe_emulator(bench.emulators[name]) for name in server.addresses}
    assert "MODEL 2400" in lines["smu1"] and "2636B" in lines["smu2"] and "B2902A" in lines["smu3"]
    assert "board" in lines["board"].lower()


# -- replay of a log written before the open checks ------------------------------------------------------------
def test_format1_log_written_before_the_open_checks_still_replays():
    report = replay(DATA / "format1_iv_sweeps.h5")  # written by the pre-change code: no *CLS, no readbacks
    assert [r.exchanges for r in report.runs] == [16, 36, 28]


def test_a_format1_log_appended_to_by_the_new_code_replays_session_by_session(tmp_path):
    import shutil

    from xbarlab.experiments.measurements import IVSweep
    from xbarlab.session import LabSession

    log = tmp_path / "old.h5"
    shutil.copy(DATA / "format1_iv_sweeps.h5", log)
    station = tmp_path / "small.toml"
    station.write_text(_small_station())
    with LabSession.open(station=station, log=log, append=True) as lab:
        lab.run(IVSweep, {"points": 5, "row": 1, "col": 1})
    report = replay(log)
    assert [r.run_id for r in report.runs][-2:] == ["session-2", "iv_sweep-1@session-2"]
    assert report.runs[-1].exchanges > 36  # the new session's sweep carries :OUTP ON/OFF and :TRIG:COUN 1


def _small_station() -> str:
    text = (Path(__file__).parents[1] / "xbarlab" / "stations" / "sim.toml").read_text()
    return text.replace("rows = 64", "rows = 8").replace("cols = 64", "cols = 8")


def test_a_failed_output_off_is_a_failure_never_outputs_off(tmp_path):
    from xbarlab.errors import InstrumentError
    from xbarlab.session import LabSession

    with LabSession.open(station=None, log=str(tmp_path / "log.h5")) as lab:
        emu = lab.station.sim.emulators["smu1"]
        node = emu.tree.resolve("OUTP")[0]
        stuck = node.on_set
        node.on_set = lambda call, value: setattr(emu.ch[0], "output", True)  # a welded output relay
        emu.handle_line(":OUTP ON")
        with pytest.raises(InstrumentError, match="safe state NOT reached: smu1: output off failed.*still on"):
            lab.run("safe_state", {})
        node.on_set = stuck


def test_2400_auto_output_off_and_measure_turns_the_output_on():
    emu = Keithley2400Emulator(seed=1)
    emu.terminal().connect(Resistor(1e4))
    values = ask(emu, ":FORM:ELEM VOLT,CURR;:SOUR:VOLT 1;:MEAS:CURR?").split(",")
    assert float(values[1]) == pytest.approx(1e-4, rel=1e-3) and ask(emu, ":OUTP?") == "1"  # stays on
    ask(emu, ":OUTP OFF;:SOUR:CLE:AUTO ON")
    assert float(ask(emu, ":READ?").split(",")[1]) == pytest.approx(1e-4, rel=1e-3)
    assert ask(emu, ":OUTP?") == "0" and errors(emu) == []  # auto output-off: off after the measurement


_TSP_TOKENS = ["smua", "smub", ".source", ".measure", ".levelv", ".limiti", ".output", ".i()", ".iv()", " = ", "1",
               "1e9", "-5", "print(", ")", "(", " ", "for k = 1, 3 do ", " end", "errorqueue.next()", "nil", "{",
               "}", ",", '"x"', "smua.nvbuffer1", ".readings", "printbuffer(1, 2, ", "reset()", "local x",
               "function f() ", "status.", "format.data = format.REAL32", "*IDN?", "while true do end"]


@settings(max_examples=60, deadline=None)
@given(chunk=st.one_of(st.lists(st.sampled_from(_TSP_TOKENS), max_size=8).map("".join),
                       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)))
def test_random_tsp_chunks_never_crash_or_desynchronise(chunk):
    emu = _EMULATORS.get("tsp") or _EMULATORS.setdefault("tsp", Keithley2600Emulator(seed=4, time_limit=0.05))
    emu.power_on_reset()
    emu.clear()
    emu.feed((chunk + "\n").encode())
    emu.read_output()
    assert ask(emu, "format.data = format.ASCII print(localnode.model)") == "2636B"
    assert emu.pending_output() == 0


# -- open-time traffic of our drivers (revision 2) and of logs written before it (revision 1) ---------------
class _Scripted:
    def __init__(self, script):
        self.script, self.pending = list(script), []

    def write(self, message):
        expected, reply = self.script.pop(0)
        assert message == expected
        if reply is not None:
            self.pending.append(reply)

    def query(self, message):
        self.write(message)
        return self.pending.pop(0)

    def read(self):
        return self.pending.pop(0)


@pytest.mark.parametrize("revision", [1, 2])
def test_drivers_open_time_traffic(revision):
    from xbarlab.drivers.keithley2400 import Keithley2400
    from xbarlab.drivers.keithley2600 import Keithley2600
    from xbarlab.drivers.keysight_b2900 import KeysightB2900

    cases = [(Keithley2400, {}, Keithley2400Emulator.MODEL.identity, "*CLS"),
             (KeysightB2900, {"channel": "2"}, KeysightB2900Emulator.MODEL.identity, "*CLS"),
             (Keithley2600, {"channel": "b"}, Keithley2600Emulator.MODEL.identity, "errorqueue.clear()")]
    for cls, kw, identity, clear in cases:
        # revision 2: the family checked on a first reply, then two identical copies (reply confirmation)
        script = [("*IDN?", identity)] * (3 if revision == 2 else 2) + ([(clear, None)] if revision == 2 else [])
        t = _Scripted(script)
        drv = cls(t, name="smu", **kw)
        drv.traffic_revision = revision
        assert drv.identify() == identity
        assert not t.script
        assert (drv.rating is not None) == (revision == 2)


def _spelled(draw, pattern: str) -> str:
    """A random valid spelling of a tree pattern: short or long form, any case, optional nodes or not."""
    import re

    out = []
    for m in re.finditer(r"(\[)?:?([*A-Za-z][A-Za-z0-9]*)([#&])?\]?", pattern.replace("[1]", "#")):
        optional, word, suffix = m.group(1) is not None, m.group(2), m.group(3)
        if optional and not draw(st.booleans()):
            continue
        form = word if draw(st.booleans()) else "".join(ch for ch in word if not ch.islower())
        form = "".join(ch.lower() if draw(st.booleans()) else ch.upper() for ch in form)
        out.append(form + (draw(st.sampled_from(["", "1"])) if suffix else ""))
    return ":" + ":".join(out)


@pytest.mark.parametrize("cls", [Keithley2400Emulator, Keithley2450Emulator, KeysightB2900Emulator])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_valid_random_spellings_of_every_setting_are_accepted_and_read_back(cls, data):
    from xbarlab.sim.scpi_tree import Bool, Choice, Num

    emu = _EMULATORS.get(("valid", cls)) or _EMULATORS.setdefault(("valid", cls), cls(seed=5))
    emu.power_on_reset()
    nodes = [n for n in emu.tree.nodes if n.key and n.query is None and n.settable and n.queryable
             and isinstance(n.param, (Num, Bool, Choice))]
    node = data.draw(st.sampled_from(nodes))
    p = node.param
    if isinstance(p, Num):
        value = data.draw(st.integers(int(p.lo), int(p.hi)) if p.integer else
                          st.floats(p.lo, p.hi, allow_nan=False))
        text, expected = repr(value), float(value)
    elif isinstance(p, Bool):
        text = data.draw(st.sampled_from(["ON", "OFF", "1", "0", "on", "off"]))
        expected = text.upper() in ("ON", "1")
    else:
        choice = data.draw(st.sampled_from(p.choices))
        text = _spelled(data.draw, choice).lstrip(":").replace(":#", "")
        expected = p.parse(choice)
    header = _spelled(data.draw, node.pattern)
    ask(emu, f"{header} {text}")
    if emu.errors:  # only a setting's own rule may refuse a valid value
        assert emu.errors[0][0] in (-222, -224, 800), (header, text, emu.errors)
        return
    reply = ask(emu, f"{header}?")
    if node.key in ("v_range", "i_range"):
        assert float(reply) * 1.05 >= abs(expected) * (1 - 1e-6), (header, text, reply)  # up to 105 % of a range
    else:
        assert reply == p.format(expected), (header, text, reply)


def test_a_long_form_of_another_mnemonic_is_not_accepted():
    emu = Keithley2400Emulator(seed=1)
    ask(emu, ":OUTP:STATUS 1;:STATE:PRES")  # STATe and STATus share the short form STAT
    assert errors(emu) == ['-113,"Undefined header"'] and ask(emu, ":OUTP?") == "0"
    ask(emu, ":OUTP:STATE 1;:STATUS:PRES")
    assert errors(emu) == [] and ask(emu, ":OUTP?") == "1"


def test_an_interrupted_cli_never_claims_outputs_off_when_one_failed(monkeypatch, capsys):
    import xbarlab.cli as cli
    from xbarlab.instruments import station as station_mod

    def interrupted(args):
        station_mod.CLOSE_PROBLEMS.append("smu1: output off failed: output still on after switching it off")
        raise KeyboardInterrupt

    monkeypatch.setattr(station_mod, "CLOSE_PROBLEMS", [])
    monkeypatch.setattr(cli, "cmd_station_check", interrupted)
    assert cli.main(["station", "check", "x.toml"]) == 1
    err = capsys.readouterr().err
    assert "outputs NOT confirmed off: smu1: output off failed" in err and "were switched off" not in err
