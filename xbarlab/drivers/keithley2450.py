"""Keithley 2450 SourceMeter over its native SCPI command set."""

from __future__ import annotations

import numpy as np

from xbarlab.drivers.identity import KEITHLEY_2450, TRAFFIC_REVISION, Rating, check_identity
from xbarlab.drivers.scpi import ScpiInstrument, parse_floats
from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import ConfigError, ProtocolError
from xbarlab.instruments.interfaces import SourceMeter, SweepResult


class Keithley2450(ScpiInstrument, SourceMeter):
    """Keithley 2450 (SCPI mode; TSP or 2400-emulation mode is refused with a clear error)."""

    def __init__(self, transport: MessageTransport, name: str = "smu") -> None:
        ScpiInstrument.__init__(self, transport, name)
        self._compliance = 0.0
        self.traffic_revision = TRAFFIC_REVISION
        self.rating: Rating | None = None

    def identify(self) -> str:
        """``*IDN?`` (refusing anything but a 2450), the SCPI command set (``*LANG?``), then ``*CLS``."""
        if self.traffic_revision < 2:  # logs written before the open checks
            self._check_language()
            return self.query("*IDN?")
        identity = self.query("*IDN?")
        self.rating = check_identity(self.name, "keithley2450", KEITHLEY_2450, identity)
        self._check_language()
        self.write("*CLS")
        return identity

    def _check_language(self) -> None:
        lang = self.query("*LANG?")
        if lang.upper() != "SCPI":
            raise ConfigError(f"{self.name}: the 2450 is in {lang} mode; set it to SCPI (menu System > Settings)")

    def reset(self) -> None:
        self.configure("*RST", "*CLS")

    def source_voltage(self, level: float, compliance_current: float) -> None:
        self._compliance = compliance_current
        self.configure(":SOUR:FUNC VOLT", f":SOUR:VOLT:ILIM {compliance_current:.6g}",
                       f":SOUR:VOLT {level:.6g}", ':SENS:FUNC "CURR"')

    def source_current(self, level: float, compliance_voltage: float) -> None:
        self.configure(":SOUR:FUNC CURR", f":SOUR:CURR:VLIM {compliance_voltage:.6g}",
                       f":SOUR:CURR {level:.6g}", ':SENS:FUNC "VOLT"')

    def set_nplc(self, nplc: float) -> None:
        self.configure(f":SENS:CURR:NPLC {nplc:.6g}")

    def set_output(self, enabled: bool) -> None:
        self.configure(f":OUTP {'ON' if enabled else 'OFF'}")
        if not enabled and self.traffic_revision >= 2:
            self.verify_output_off()

    def output_enabled(self) -> bool:
        return self.query(":OUTP?") == "1"

    def measure_current(self) -> float:
        return self.query_float(':READ? "defbuffer1"')

    def measure_voltage(self) -> float:
        return self.query_float(":MEAS:VOLT?")

    def compliance_tripped(self) -> bool:
        return self.query(":SOUR:VOLT:ILIM:TRIP?") == "1"

    def sweep_voltage(self, start: float, stop: float, points: int, compliance_current: float) -> SweepResult:
        if points < 2:
            raise ValueError(f"{self.name}: a sweep needs at least 2 points, got {points}")
        self.configure(":SOUR:FUNC VOLT", ':SENS:FUNC "CURR"', f":SOUR:VOLT:ILIM {compliance_current:.6g}",
                       ":TRAC:CLE", f":SOUR:SWE:VOLT:LIN {start:.6g},{stop:.6g},{points},0")
        self.write(":INIT")
        self.write("*WAI")
        data = parse_floats(self.query(f':TRAC:DATA? 1,{points},"defbuffer1",SOUR,READ'), ":TRAC:DATA?")
        if data.size != 2 * points:
            raise ProtocolError(f"{self.name}: sweep returned {data.size // 2} of {points} points")
        pairs = data.reshape(points, 2)
        return SweepResult(voltage=pairs[:, 0], current=pairs[:, 1],
                           compliance=np.abs(pairs[:, 1]) >= compliance_current * (1 - 1e-3))
