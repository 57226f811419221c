"""Keithley 2400-series SourceMeter over SCPI (2400, 2401, 2410, 2420, 2440)."""

from __future__ import annotations

import numpy as np

from xbarlab.drivers import replies
from xbarlab.drivers.identity import KEITHLEY_2400
from xbarlab.drivers.scpi_smu import ScpiSourceMeter
from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import InstrumentError, ProtocolError
from xbarlab.readings import SweepResult

BUFFER_POINTS = 2500  # trace buffer size of the 2400 series


class Keithley2400(ScpiSourceMeter):
    """One Keithley 2400 channel. Readings are formatted as VOLT,CURR (``:FORM:ELEM``)."""

    DRIVER = "keithley2400"
    FAMILY = KEITHLEY_2400
    RESET = ("*RST", "*CLS", ":FORM:ELEM VOLT,CURR")
    SOURCE_VOLTAGE = (":SOUR:FUNC VOLT", ":SOUR:VOLT:MODE FIX", ":SENS:CURR:PROT {compliance:.6g}",
                      ":SOUR:VOLT:LEV {level:.6g}", ":SENS:FUNC 'CURR'", ":FORM:ELEM VOLT,CURR")
    SOURCE_CURRENT = (":SOUR:FUNC CURR", ":SENS:VOLT:PROT {compliance:.6g}", ":SOUR:CURR:LEV {level:.6g}",
                      ":FORM:ELEM VOLT,CURR")
    COMPLIANCE_TRIPPED = ":SENS:CURR:PROT:TRIP?"

    def __init__(self, transport: MessageTransport, name: str = "smu") -> None:
        ScpiSourceMeter.__init__(self, transport, name)
        self._source: tuple[str, float, float] | None = None  # (VOLT|CURR, level, compliance) as set

    def reset(self) -> None:
        ScpiSourceMeter.reset(self)
        self._source = None

    def source_voltage(self, level: float, compliance_current: float) -> None:
        self._source = ("VOLT", float(f"{level:.6g}"), float(f"{compliance_current:.6g}"))
        ScpiSourceMeter.source_voltage(self, level, compliance_current)

    def source_current(self, level: float, compliance_voltage: float) -> None:
        self._source = ("CURR", float(f"{level:.6g}"), float(f"{compliance_voltage:.6g}"))
        ScpiSourceMeter.source_current(self, level, compliance_voltage)

    def _pair(self, text: str) -> tuple[float, float]:
        """One VOLT,CURR reading, checked against the source settings the host asked for."""
        v, i = replies.numbers(text, self.name, ":READ?", count=2)
        if self._source is not None and self._output_expected:
            func, level, limit = self._source
            sourced, measured = (v, i) if func == "VOLT" else (i, v)
            at_limit = abs(measured) >= limit * (1 - 1e-3)
            if abs(measured) > limit * 1.01 + (self.CURRENT_FLOOR if func == "VOLT" else self.VOLTAGE_FLOOR):
                raise ProtocolError(f"{self.name}: reading {measured:.6g} beyond the compliance {limit:.6g} set")
            if not at_limit and abs(sourced - level) > 1e-3 * abs(level) + (
                    self.VOLTAGE_FLOOR if func == "VOLT" else self.CURRENT_FLOOR):
                raise replies.SettingMismatch(f"{self.name}: sourcing {sourced:.6g} instead of the {level:.6g} set")
        return v, i

    def _readings(self, count: int) -> list[tuple[float, float]]:
        # the output state first: with the output off the 2400 refuses :READ? (+803) and drops the rest
        command = ";".join([":OUTP?"] + [":READ?"] * count)
        parts = self.query(command).split(";")
        if not replies.flag(parts[0], self.name, ":OUTP?"):
            self.query(":SYST:ERR?")  # the refused :READ? (+803): taken from the queue, it is answered here
            self._check_output(parts[0], ":OUTP?")  # switched on by the host: it reset itself (repeated)
            raise InstrumentError(self.name, 803, "Not permitted with OUTPUT off (measure with the output on)")
        if len(parts) != count + 1:
            raise ProtocolError(f"{self.name}: expected {count + 1} replies to {command}, got {len(parts)}")
        replies.same_format(",".join(parts[1:]).split(","), self.name, ":READ?")
        return [self._pair(p) for p in parts[1:]]

    def _read(self, index: int) -> float:
        """Element ``index`` (0 VOLT, 1 CURR) of a reading confirmed by a second one taken in the same line."""
        if not replies.confirming():
            return self._pair(self.query(":READ?"))[index]
        floor = self.VOLTAGE_FLOOR if index == 0 else self.CURRENT_FLOOR
        a, b = replies.repeat(lambda: self._readings(2))
        return replies.confirmed(a[index], b[index], lambda: replies.repeat(lambda: self._readings(1))[0][index],
                                 floor, self.name, ":READ?")

    def measure_current(self) -> float:
        return self._read(1)

    def measure_voltage(self) -> float:
        return self._read(0)

    def sweep_voltage(self, start: float, stop: float, points: int, compliance_current: float) -> SweepResult:
        if not 2 <= points <= BUFFER_POINTS:
            raise ValueError(f"{self.name}: a 2400 sweep holds 2 to {BUFFER_POINTS} points, got {points}")
        self._source = None  # the sweep leaves the source level where it ended
        self.configure(
            ":SOUR:FUNC VOLT",
            f":SENS:CURR:PROT {compliance_current:.6g}",
            ":SENS:FUNC 'CURR'",
            ":FORM:ELEM VOLT,CURR",
            ":SOUR:VOLT:MODE SWE",
            ":SOUR:SWE:SPAC LIN",
            f":SOUR:VOLT:STAR {start:.6g}",
            f":SOUR:VOLT:STOP {stop:.6g}",
            f":SOUR:SWE:POIN {points}",
            f":TRIG:COUN {points}",
            ":TRAC:CLE",
            f":TRAC:POIN {points}",
            ":TRAC:FEED SENS",
            ":TRAC:FEED:CONT NEXT",
            # auto output-off is off after *RST: :INIT needs the output on (else +803); not in format-1 logs
            *([":OUTP ON"] if self.traffic_revision >= 2 else []),
        )
        self._set_output_flag(self.traffic_revision >= 2 or self._output_expected)
        self.write(":INIT")
        try:
            self.query_flag("*OPC?")
            if replies.confirming():
                self.check_errors()
        except InstrumentError as exc:
            if exc.code == 803:  # INIT found the output off in fixed mode: the sweep mode set above was lost
                raise replies.InstrumentResetDetected(
                    f"{self.name}: the sweep set-up was lost before :INIT ({exc}): the instrument reset itself"
                ) from None
            raise
        data = self.query_stored(":TRAC:DATA?", 2 * points, replies.sweep_point_check(
            float(f"{start:.6g}"), float(f"{stop:.6g}"), points, compliance_current, voltage_every=2))
        if self.traffic_revision >= 2:
            self._set_output_flag(False)
            self.configure(":OUTP OFF", ":SOUR:VOLT:MODE FIX", ":TRIG:COUN 1")  # :READ? takes TRIG:COUN readings
        else:
            self.configure(":SOUR:VOLT:MODE FIX")
        if data.size != 2 * points:
            raise ProtocolError(f"{self.name}: sweep returned {data.size // 2} of {points} points")
        pairs = data.reshape(points, 2)
        replies.check_sweep(self.name, pairs[:, 0], pairs[:, 1], float(f"{start:.6g}"), float(f"{stop:.6g}"), points,
                            compliance_current)
        return SweepResult(voltage=pairs[:, 0], current=pairs[:, 1],
                           compliance=np.abs(pairs[:, 1]) >= compliance_current * (1 - 1e-3))
