"""Keysight B2900-series precision SMU over SCPI (B2901A/B2902A/B2911A/B2912A), channels 1 and 2."""

from __future__ import annotations

import numpy as np

from xbarlab.drivers import replies
from xbarlab.drivers.identity import KEYSIGHT_B2900
from xbarlab.drivers.scpi_smu import ScpiSourceMeter
from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import ProtocolError
from xbarlab.readings import SweepResult

MAX_POINTS = 100000


class KeysightB2900(ScpiSourceMeter):
    """One channel of a B2900 (``channel`` "1" or "2"); two objects may share a transport."""

    DRIVER = "keysight_b2900"
    FAMILY = KEYSIGHT_B2900
    SOURCE_VOLTAGE = (":SOUR{ch}:FUNC:MODE VOLT", ":SOUR{ch}:VOLT:MODE FIX", ":SENS{ch}:CURR:PROT {compliance:.6g}",
                      ":SOUR{ch}:VOLT {level:.6g}")
    SOURCE_CURRENT = (":SOUR{ch}:FUNC:MODE CURR", ":SENS{ch}:VOLT:PROT {compliance:.6g}", ":SOUR{ch}:CURR {level:.6g}")
    MEASURE_CURRENT = ":MEAS:CURR? (@{ch})"
    MEASURE_VOLTAGE = ":MEAS:VOLT? (@{ch})"

    def __init__(self, transport: MessageTransport, channel: str = "1", name: str = "smu") -> None:
        if str(channel) not in ("1", "2"):
            raise ValueError(f"B2900 channel must be '1' or '2', got {channel!r}")
        ScpiSourceMeter.__init__(self, transport, name)
        self.channel = str(channel)

    @property
    def _ch(self) -> str:
        return self.channel

    def _verify_on(self) -> None:
        self.verify_sourcing(self._cmd(":MEAS:VOLT? (@{ch})"), self.compliance_tripped)

    def sweep_voltage(self, start: float, stop: float, points: int, compliance_current: float) -> SweepResult:
        if not 2 <= points <= MAX_POINTS:
            raise ValueError(f"{self.name}: a B2900 sweep holds 2 to {MAX_POINTS} points, got {points}")
        self._level_v = None  # the sweep leaves the source level where it ended
        c = self._ch
        self.configure(f":SOUR{c}:FUNC:MODE VOLT", f":SENS{c}:CURR:PROT {compliance_current:.6g}",
                       f":SOUR{c}:VOLT:MODE SWE", f":SOUR{c}:VOLT:STAR {start:.6g}",
                       f":SOUR{c}:VOLT:STOP {stop:.6g}", f":SOUR{c}:VOLT:POIN {points}",
                       f":TRIG{c}:SOUR AINT", f":TRIG{c}:COUN {points}")
        self.write(f":INIT (@{c})")
        s0, s1 = float(f"{start:.6g}"), float(f"{stop:.6g}")
        current = self.query_stored(f":FETC:ARR:CURR? (@{c})", points,
                                    replies.sweep_point_check(s0, s1, points, compliance_current))
        voltage = self.query_stored(f":FETC:ARR:VOLT? (@{c})", points,
                                    replies.sweep_point_check(s0, s1, points, compliance_current, voltage_every=-1))
        self.configure(f":SOUR{c}:VOLT:MODE FIX")
        if current.size != points or voltage.size != points:
            raise ProtocolError(f"{self.name}: sweep returned {current.size} of {points} points")
        replies.check_sweep(self.name, voltage, current, s0, s1, points, compliance_current)
        return SweepResult(voltage=voltage, current=current,
                           compliance=np.abs(current) >= compliance_current * (1 - 1e-3))
