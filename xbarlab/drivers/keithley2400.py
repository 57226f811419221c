"""Keithley 2400-series SourceMeter over SCPI (2400, 2401, 2410, 2420, 2440)."""

from __future__ import annotations

import numpy as np

from xbarlab.drivers.identity import KEITHLEY_2400, TRAFFIC_REVISION, Rating, check_identity
from xbarlab.drivers.scpi import ScpiInstrument, parse_floats
from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import ProtocolError
from xbarlab.instruments.interfaces import SourceMeter, SweepResult

BUFFER_POINTS = 2500  # trace buffer size of the 2400 series


class Keithley2400(ScpiInstrument, SourceMeter):
    """One Keithley 2400 channel. Readings are formatted as VOLT,CURR (``:FORM:ELEM``)."""

    def __init__(self, transport: MessageTransport, name: str = "smu") -> None:
        ScpiInstrument.__init__(self, transport, name)
        self.traffic_revision = TRAFFIC_REVISION
        self.rating: Rating | None = None

    def identify(self) -> str:
        """``*IDN?``; refuses anything but a 2400-series model, then clears status (``*CLS``)."""
        identity = self.query("*IDN?")
        if self.traffic_revision >= 2:
            self.rating = check_identity(self.name, "keithley2400", KEITHLEY_2400, identity)
            self.write("*CLS")
        return identity

    def reset(self) -> None:
        self.configure("*RST", "*CLS", ":FORM:ELEM VOLT,CURR")

    def source_voltage(self, level: float, compliance_current: float) -> None:
        self.configure(
            ":SOUR:FUNC VOLT",
            ":SOUR:VOLT:MODE FIX",
            f":SENS:CURR:PROT {compliance_current:.6g}",
            f":SOUR:VOLT:LEV {level:.6g}",
            ":SENS:FUNC 'CURR'",
            ":FORM:ELEM VOLT,CURR",
        )

    def source_current(self, level: float, compliance_voltage: float) -> None:
        self.configure(
            ":SOUR:FUNC CURR",
            f":SENS:VOLT:PROT {compliance_voltage:.6g}",
            f":SOUR:CURR:LEV {level:.6g}",
            ":FORM:ELEM VOLT,CURR",
        )

    def set_nplc(self, nplc: float) -> None:
        self.configure(f":SENS:CURR:NPLC {nplc:.6g}")

    def set_output(self, enabled: bool) -> None:
        self.configure(f":OUTP {'ON' if enabled else 'OFF'}")
        if not enabled and self.traffic_revision >= 2:
            self.verify_output_off()

    def output_enabled(self) -> bool:
        return self.query(":OUTP?") == "1"

    def _read(self) -> tuple[float, float]:
        values = parse_floats(self.query(":READ?"), ":READ?")
        if values.size != 2:
            raise ProtocolError(f"{self.name}: expected VOLT,CURR from :READ?, got {values.size} values")
        return float(values[0]), float(values[1])

    def measure_current(self) -> float:
        return self._read()[1]

    def measure_voltage(self) -> float:
        return self._read()[0]

    def compliance_tripped(self) -> bool:
        return self.query(":SENS:CURR:PROT:TRIP?") == "1"

    def sweep_voltage(self, start: float, stop: float, points: int, compliance_current: float) -> SweepResult:
        if not 2 <= points <= BUFFER_POINTS:
            raise ValueError(f"{self.name}: a 2400 sweep holds 2 to {BUFFER_POINTS} points, got {points}")
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
        )
        if self.traffic_revision >= 2:  # with auto output-off disabled (the *RST default) :INIT needs the output on
            self.configure(":OUTP ON")
        self.write(":INIT")
        self.query("*OPC?")
        data = parse_floats(self.query(":TRAC:DATA?"), ":TRAC:DATA?")
        if self.traffic_revision >= 2:
            self.configure(":OUTP OFF", ":SOUR:VOLT:MODE FIX", ":TRIG:COUN 1")  # :READ? takes TRIG:COUN readings
        else:
            self.configure(":SOUR:VOLT:MODE FIX")
        if data.size != 2 * points:
            raise ProtocolError(f"{self.name}: sweep returned {data.size // 2} of {points} points")
        pairs = data.reshape(points, 2)
        return SweepResult(voltage=pairs[:, 0], current=pairs[:, 1],
                           compliance=np.abs(pairs[:, 1]) >= compliance_current * (1 - 1e-3))
