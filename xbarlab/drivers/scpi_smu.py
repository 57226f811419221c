"""Common base of the SCPI source-meter drivers (Keithley 2400 and 2450, Keysight B2900).

What the three share lives here once: identity check on open, reset, sourcing a voltage or a current
with its compliance, integration time (NPLC), output on/off with the read-back that it went off,
output state, compliance state, confirmed measurements and the error queue (:class:`ScpiInstrument`).
Each model keeps only its dialect: the command templates below (``{ch}`` is the channel suffix, empty
on single-channel models) and what genuinely differs (the 2400's reading format, sweeps).
Units: V, A, s.
"""

from __future__ import annotations

from typing import ClassVar

from xbarlab.drivers.identity import TRAFFIC_REVISION, Family, Rating, checked_identity
from xbarlab.drivers.scpi import ScpiInstrument
from xbarlab.drivers.transport import MessageTransport


class ScpiSourceMeter(ScpiInstrument):
    """One SCPI source-measure channel; subclasses set the dialect's command templates."""

    #: driver name in station files and the model family its ``*IDN?`` must match
    DRIVER: ClassVar[str]
    FAMILY: ClassVar[Family]
    #: commands of a reset (power-on state, output off)
    RESET: ClassVar[tuple[str, ...]] = ("*RST", "*CLS")
    #: sourcing a voltage level with a current compliance: templates with {ch}, {level}, {compliance}
    SOURCE_VOLTAGE: ClassVar[tuple[str, ...]]
    #: sourcing a current level with a voltage compliance
    SOURCE_CURRENT: ClassVar[tuple[str, ...]]
    NPLC: ClassVar[str] = ":SENS{ch}:CURR:NPLC {nplc:.6g}"
    OUTPUT: ClassVar[str] = ":OUTP{ch} {state}"
    OUTPUT_QUERY: ClassVar[str] = ":OUTP{ch}?"
    COMPLIANCE_TRIPPED: ClassVar[str] = ":SENS{ch}:CURR:PROT:TRIP?"
    #: measurement queries (confirmed by a second reading in the same line with the output state)
    MEASURE_CURRENT: ClassVar[str] = ""
    MEASURE_VOLTAGE: ClassVar[str] = ""

    def __init__(self, transport: MessageTransport, name: str = "smu") -> None:
        ScpiInstrument.__init__(self, transport, name)
        self.traffic_revision = TRAFFIC_REVISION
        self.rating: Rating | None = None

    @property
    def _ch(self) -> str:
        """Channel suffix of the commands ("" on a single-channel model)."""
        return ""

    def _cmd(self, template: str, **values: object) -> str:
        return template.format(ch=self._ch, **values)

    # -- identity and reset ----------------------------------------------------------------------------
    def identify(self) -> str:
        """``*IDN?``; refuses anything but this driver's model family, then clears status (``*CLS``)."""
        if self.traffic_revision < 2:  # logs written before the open checks
            self._check_mode()
            return self.query_stable("*IDN?")
        identity, self.rating = checked_identity(self.name, self.DRIVER, self.FAMILY,
                                                 lambda: self.query("*IDN?"), lambda: self.query_stable("*IDN?"))
        self._check_mode()
        self.write("*CLS")
        return identity

    def _check_mode(self) -> None:
        """Refuse an instrument in a command set other than SCPI (models that have several)."""

    def reset(self) -> None:
        self.configure(*self.RESET)
        self._set_output_flag(False)
        self._level_v = None

    # -- sourcing --------------------------------------------------------------------------------------
    def source_voltage(self, level: float, compliance_current: float) -> None:
        """Source ``level`` V with current compliance ``compliance_current`` A."""
        self._level_v = float(f"{level:.6g}")
        self.configure(*(self._cmd(t, level=level, compliance=compliance_current) for t in self.SOURCE_VOLTAGE))

    def source_current(self, level: float, compliance_voltage: float) -> None:
        """Source ``level`` A with voltage compliance ``compliance_voltage`` V."""
        self._level_v = None
        self.configure(*(self._cmd(t, level=level, compliance=compliance_voltage) for t in self.SOURCE_CURRENT))

    def set_nplc(self, nplc: float) -> None:
        """Integration time in power-line cycles."""
        self.configure(self._cmd(self.NPLC, nplc=nplc))

    # -- output ----------------------------------------------------------------------------------------
    def set_output(self, enabled: bool) -> None:
        """Switch the output on (then :meth:`_verify_on`) or off (then read back that it is off)."""
        self._set_output_flag(enabled)
        self.configure(self._cmd(self.OUTPUT, state="ON" if enabled else "OFF"))
        if enabled:
            self._verify_on()
        if not enabled and self.traffic_revision >= 2:
            self.verify_output_off()

    def _verify_on(self) -> None:
        """After switching on: check the terminals carry the level set (models whose readings do not say)."""

    def output_enabled(self) -> bool:
        return self.query_flag(self._cmd(self.OUTPUT_QUERY))

    # -- measuring -------------------------------------------------------------------------------------
    def measure_current(self) -> float:
        """Current (A), confirmed by a second reading."""
        return self.measure_confirmed(self._cmd(self.MEASURE_CURRENT), self._cmd(self.OUTPUT_QUERY),
                                      self.CURRENT_FLOOR)

    def measure_voltage(self) -> float:
        """Voltage (V), confirmed by a second reading."""
        return self.measure_confirmed(self._cmd(self.MEASURE_VOLTAGE), self._cmd(self.OUTPUT_QUERY),
                                      self.VOLTAGE_FLOOR)

    def compliance_tripped(self) -> bool:
        return self.query_flag(self._cmd(self.COMPLIANCE_TRIPPED))

    def close(self) -> None:
        """Nothing to release here: the station closes the transport."""
