"""SMU drivers: exact command transcripts, and each driver against its emulator."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.drivers.keithley2400 import Keithley2400
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keithley2600 import Keithley2600
from xbarlab.drivers.keysight_b2900 import KeysightB2900
from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import ConfigError, InstrumentError, TransportTimeout
from xbarlab.sim.smu_scpi import Keithley2400Emulator, Keithley2450Emulator, KeysightB2900Emulator
from xbarlab.sim.smu_tsp import Keithley2600Emulator
from xbarlab.sim.terminals import Resistor


class Scripted(MessageTransport):
    """Replies from a script of (expected command, reply or None); any deviation fails."""

    def __init__(self, script):
        self.script = list(script)
        self.pending: list[str] = []

    def write(self, message):
        assert self.script, f"unexpected command {message!r}"
        expected, reply = self.script.pop(0)
        assert message == expected, f"sent {message!r}, expected {expected!r}"
        if reply is not None:
            self.pending.append(reply)

    def read(self):
        if not self.pending:
            raise TransportTimeout("no reply")
        return self.pending.pop(0)

    def close(self):
        pass


class EmulatorLink(MessageTransport):
    def __init__(self, emulator):
        self.emulator = emulator
        self.lines: list[str] = []

    def write(self, message):
        self.emulator.feed((message + "\n").encode())
        self.lines += self.emulator.read_output().decode().splitlines()

    def read(self):
        if not self.lines:
            raise TransportTimeout("no reply")
        return self.lines.pop(0)

    def close(self):
        pass


OK = (":SYST:ERR?", '0,"No error"')


def test_2400_source_voltage_transcript():
    t = Scripted([(":SOUR:FUNC VOLT", None), (":SOUR:VOLT:MODE FIX", None), (":SENS:CURR:PROT 0.0001", None),
                  (":SOUR:VOLT:LEV 0.2", None), (":SENS:FUNC 'CURR'", None), (":FORM:ELEM VOLT,CURR", None), OK])
    Keithley2400(t).source_voltage(0.2, 1e-4)
    assert not t.script


def test_2400_measure_and_error_queue_transcript():
    t = Scripted([(":READ?;:READ?;:OUTP?", "+2.000000E-01,+1.234000E-05;+2.000000E-01,+1.234100E-05;0"),
                  (":SENS:CURR:PROT:TRIP?", "0"),
                  (":OUTP ON", None), (":SYST:ERR?", '-221,"Settings conflict"'), OK])
    smu = Keithley2400(t, name="smu1")
    assert smu.measure_current() == pytest.approx(1.234e-5)
    assert smu.compliance_tripped() is False
    with pytest.raises(InstrumentError) as err:
        smu.set_output(True)
    assert err.value.code == -221 and "Settings conflict" in str(err.value)


def test_2450_refuses_tsp_mode_and_uses_native_commands():
    t = Scripted([("*LANG?", "TSP"), ("*LANG?", "TSP")])  # read twice: a garbled reply never passes
    with pytest.raises(ConfigError, match="TSP mode"):
        Keithley2450(t).identify()
    t = Scripted([(":SOUR:FUNC VOLT", None), (":SOUR:VOLT:ILIM 1e-05", None), (":SOUR:VOLT 0.1", None),
                  (':SENS:FUNC "CURR"', None), OK, (":SOUR:VOLT:ILIM:TRIP?", "1")])
    smu = Keithley2450(t)
    smu.source_voltage(0.1, 1e-5)
    assert smu.compliance_tripped()


def test_b2900_channel_commands():
    t = Scripted([(":OUTP2 ON", None), OK,
                  (":MEAS:CURR? (@2);:MEAS:CURR? (@2);:OUTP2?", "+1.000000E-06;+1.000001E-06;1")])
    smu = KeysightB2900(t, channel="2")
    smu.set_output(True)
    assert smu.measure_current() == 1e-6


def test_2600_tsp_transcript_and_error_queue():
    t = Scripted([("smub.source.func = smub.OUTPUT_DCVOLTS", None), ("smub.source.limiti = 0.0001", None),
                  ("smub.source.levelv = 0.2", None), ("print(errorqueue.count)", "1.00000e+00"),
                  ("print(errorqueue.count)", "1.00000e+00"),  # the count is read until it repeats
                  ("print(errorqueue.next())", "1.10000e+03\tParameter too big\t2.00000e+00\t0.00000e+00")])
    with pytest.raises(InstrumentError) as err:
        Keithley2600(t, channel="b").source_voltage(0.2, 1e-4)
    assert err.value.code == 1100


CASES = [
    (Keithley2400Emulator, Keithley2400, {}, None, "MODEL 2400"),
    (Keithley2450Emulator, Keithley2450, {}, None, "MODEL 2450"),
    (Keithley2600Emulator, Keithley2600, {"channel": "b"}, "b", "2636B"),
    (KeysightB2900Emulator, KeysightB2900, {"channel": "2"}, "2", "B2902A"),
]


@pytest.mark.parametrize("emu_cls, drv_cls, kw, ch, ident", CASES)
def test_driver_against_emulator(emu_cls, drv_cls, kw, ch, ident):
    emu = emu_cls(seed=1)
    emu.terminal(ch).connect(Resistor(1e3))
    smu = drv_cls(EmulatorLink(emu), name="smu", **kw)
    assert ident in smu.identify()
    smu.source_voltage(0.5, 1e-2)
    smu.set_nplc(1.0)
    smu.set_output(True)
    t0 = emu.clock.now
    assert smu.measure_current() == pytest.approx(0.5e-3, rel=1e-3)  # Ohm
    assert emu.clock.now - t0 >= 1.0 / 50  # NPLC 1 at 50 Hz on the simulated clock
    assert not smu.compliance_tripped()
    smu.source_voltage(1.0, 1e-4)  # 1 kΩ at 1 V wants 1 mA: compliance holds 100 µA
    assert smu.measure_current() == pytest.approx(1e-4, rel=1e-3)
    assert smu.compliance_tripped()
    sweep = smu.sweep_voltage(-0.5, 0.5, 11, 1e-2)
    np.testing.assert_allclose(sweep.voltage, np.linspace(-0.5, 0.5, 11), atol=1e-4)
    np.testing.assert_allclose(sweep.current, sweep.voltage / 1e3, atol=1e-6)
    smu.set_output(True)
    smu.reset()
    assert not smu.output_enabled()
    smu.check_errors()


@pytest.mark.parametrize("emu_cls, drv_cls, kw, ch, ident", CASES)
def test_rejected_command_becomes_instrument_error(emu_cls, drv_cls, kw, ch, ident):
    emu = emu_cls(seed=1)
    smu = drv_cls(EmulatorLink(emu), name="smu", **kw)
    smu.transport.write(":BOGUS:CMD 1" if emu_cls is not Keithley2600Emulator else "smua.bogus(")
    with pytest.raises(InstrumentError) as err:
        smu.check_errors()
    assert err.value.code in (-113, -285)


def test_fault_reset_turns_output_off():
    emu = Keithley2400Emulator(seed=1)
    emu.terminal().connect(Resistor(1e3))
    smu = Keithley2400(EmulatorLink(emu))
    smu.source_voltage(0.5, 1e-2)
    smu.set_output(True)
    emu.faults.reset_next = 1
    assert not smu.output_enabled()
