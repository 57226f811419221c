"""Keithley 2450 SourceMeter over its native SCPI command set."""

from __future__ import annotations

import numpy as np

from xbarlab.drivers import replies
from xbarlab.drivers.identity import KEITHLEY_2450
from xbarlab.drivers.scpi_smu import ScpiSourceMeter
from xbarlab.errors import ConfigError, ProtocolError
from xbarlab.readings import SweepResult


class Keithley2450(ScpiSourceMeter):
    """Keithley 2450 (SCPI mode; TSP or 2400-emulation mode is refused with a clear error)."""

    DRIVER = "keithley2450"
    FAMILY = KEITHLEY_2450
    SOURCE_VOLTAGE = (":SOUR:FUNC VOLT", ":SOUR:VOLT:ILIM {compliance:.6g}", ":SOUR:VOLT {level:.6g}",
                      ':SENS:FUNC "CURR"')
    SOURCE_CURRENT = (":SOUR:FUNC CURR", ":SOUR:CURR:VLIM {compliance:.6g}", ":SOUR:CURR {level:.6g}",
                      ':SENS:FUNC "VOLT"')
    MEASURE_CURRENT = ':READ? "defbuffer1"'
    MEASURE_VOLTAGE = ":MEAS:VOLT?"
    COMPLIANCE_TRIPPED = ":SOUR:VOLT:ILIM:TRIP?"

    def _check_mode(self) -> None:
        lang = self.query_stable("*LANG?")
        if lang.upper() != "SCPI":
            raise ConfigError(f"{self.name}: the 2450 is in {lang} mode; set it to SCPI (menu System > Settings)")

    def _verify_on(self) -> None:
        # :MEAS:VOLT? selects the voltage function: current readings are restored after it
        self.verify_sourcing(":MEAS:VOLT?", self.compliance_tripped, restore=(':SENS:FUNC "CURR"',))

    def sweep_voltage(self, start: float, stop: float, points: int, compliance_current: float) -> SweepResult:
        if points < 2:
            raise ValueError(f"{self.name}: a sweep needs at least 2 points, got {points}")
        self._level_v = None  # the sweep leaves the source level where it ended
        self.configure(":SOUR:FUNC VOLT", ':SENS:FUNC "CURR"', f":SOUR:VOLT:ILIM {compliance_current:.6g}",
                       ":TRAC:CLE", f":SOUR:SWE:VOLT:LIN {start:.6g},{stop:.6g},{points},0")
        self.write(":INIT")
        self.write("*WAI")
        self._set_output_flag(False)  # the output state after a sweep is the sweep's, not the host's
        if replies.confirming():
            def held() -> None:
                n = replies.numbers(self.query(":TRAC:ACT?"), self.name, ":TRAC:ACT?", count=1)[0]
                if n != points:
                    raise replies.SettingMismatch(f"{self.name}: the buffer holds {n:g} of the {points} sweep "
                                                  "readings")

            replies.repeat(held)  # wrong in every repeat: the sweep set-up was lost (the instrument reset itself)
        data = self.query_stored(f':TRAC:DATA? 1,{points},"defbuffer1",SOUR,READ', 2 * points,
                                 replies.sweep_point_check(float(f"{start:.6g}"), float(f"{stop:.6g}"), points,
                                                           compliance_current, voltage_every=2))
        if data.size != 2 * points:
            raise ProtocolError(f"{self.name}: sweep returned {data.size // 2} of {points} points")
        pairs = data.reshape(points, 2)
        replies.check_sweep(self.name, pairs[:, 0], pairs[:, 1], float(f"{start:.6g}"), float(f"{stop:.6g}"), points,
                            compliance_current)
        return SweepResult(voltage=pairs[:, 0], current=pairs[:, 1],
                           compliance=np.abs(pairs[:, 1]) >= compliance_current * (1 - 1e-3))
