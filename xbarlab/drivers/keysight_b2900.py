"""Keysight B2900-series precision SMU over SCPI (B2901A/B2902A/B2911A/B2912A), channels 1 and 2."""

from __future__ import annotations

import numpy as np

from xbarlab.drivers import replies
from xbarlab.drivers.scpi import ScpiInstrument
from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import ProtocolError
from xbarlab.instruments.interfaces import SourceMeter, SweepResult

MAX_POINTS = 100000


class KeysightB2900(ScpiInstrument, SourceMeter):
    """One channel of a B2900 (``channel`` "1" or "2"); two objects may share a transport."""

    def __init__(self, transport: MessageTransport, channel: str = "1", name: str = "smu") -> None:
        if str(channel) not in ("1", "2"):
            raise ValueError(f"B2900 channel must be '1' or '2', got {channel!r}")
        ScpiInstrument.__init__(self, transport, name)
        self.channel = str(channel)

    @property
    def _ch(self) -> str:
        return self.channel

    def identify(self) -> str:
        return self.query_stable("*IDN?")

    def reset(self) -> None:
        self.configure("*RST", "*CLS")
        self._set_output_flag(False)
        self._level_v = None

    def source_voltage(self, level: float, compliance_current: float) -> None:
        c = self._ch
        self._level_v = float(f"{level:.6g}")
        self.configure(f":SOUR{c}:FUNC:MODE VOLT", f":SOUR{c}:VOLT:MODE FIX",
                       f":SENS{c}:CURR:PROT {compliance_current:.6g}", f":SOUR{c}:VOLT {level:.6g}")

    def source_current(self, level: float, compliance_voltage: float) -> None:
        self._level_v = None
        c = self._ch
        self.configure(f":SOUR{c}:FUNC:MODE CURR", f":SENS{c}:VOLT:PROT {compliance_voltage:.6g}",
                       f":SOUR{c}:CURR {level:.6g}")

    def set_nplc(self, nplc: float) -> None:
        self.configure(f":SENS{self._ch}:CURR:NPLC {nplc:.6g}")

    def set_output(self, enabled: bool) -> None:
        self._set_output_flag(enabled)
        self.configure(f":OUTP{self._ch} {'ON' if enabled else 'OFF'}")
        if enabled:
            self.verify_sourcing(f":MEAS:VOLT? (@{self._ch})", self.compliance_tripped)

    def output_enabled(self) -> bool:
        return self.query_flag(f":OUTP{self._ch}?")

    def measure_current(self) -> float:
        return self.measure_confirmed(f":MEAS:CURR? (@{self._ch})", f":OUTP{self._ch}?", self.CURRENT_FLOOR)

    def measure_voltage(self) -> float:
        return self.measure_confirmed(f":MEAS:VOLT? (@{self._ch})", f":OUTP{self._ch}?", self.VOLTAGE_FLOOR)

    def compliance_tripped(self) -> bool:
        return self.query_flag(f":SENS{self._ch}:CURR:PROT:TRIP?")

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
