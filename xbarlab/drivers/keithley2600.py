"""Keithley 2600B System SourceMeter over TSP (2601B/2602B/2611B/2612B/2634B/2635B/2636B).

Commands are TSP (Lua) statements; queries are ``print(...)``. Channel ``a`` or ``b``
maps to ``smua``/``smub``; two driver objects may share one transport. Sweeps run as
a TSP loop on the instrument into ``nvbuffer1`` (current) and ``nvbuffer2`` (voltage)
and are read back with ``printbuffer``.
"""

from __future__ import annotations

import numpy as np

from xbarlab.drivers.identity import KEITHLEY_2600B, TRAFFIC_REVISION, Rating, check_identity
from xbarlab.drivers.scpi import parse_floats
from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import InstrumentError, ProtocolError
from xbarlab.instruments.interfaces import SourceMeter, SweepResult

BUFFER_POINTS = 60000  # dedicated reading buffer per channel


class Keithley2600(SourceMeter):
    """One channel of a 2600B."""

    def __init__(self, transport: MessageTransport, channel: str = "a", name: str = "smu") -> None:
        if channel not in ("a", "b"):
            raise ValueError(f"2600B channel must be 'a' or 'b', got {channel!r}")
        self.transport = transport
        self.channel = channel
        self.name = name
        self.smu = f"smu{channel}"
        self.traffic_revision = TRAFFIC_REVISION
        self.rating: Rating | None = None

    def _send(self, *statements: str) -> None:
        for s in statements:
            self.transport.write(s)
        self.check_errors()

    def _print(self, expr: str) -> str:
        return self.transport.query(f"print({expr})").strip()

    def _number(self, expr: str) -> float:
        values = parse_floats(self._print(expr), expr)
        if values.size != 1:
            raise ProtocolError(f"{self.name}: expected one number from print({expr})")
        return float(values[0])

    def check_errors(self) -> None:
        count = int(self._number("errorqueue.count"))
        first = None
        for _ in range(count):
            reply = self._print("errorqueue.next()").split("\t")
            if len(reply) < 2:
                raise ProtocolError(f"{self.name}: cannot parse errorqueue.next() reply {reply!r}")
            code = int(float(reply[0]))
            if first is None and code != 0:
                first = (code, reply[1])
        if first is not None:
            raise InstrumentError(self.name, *first)

    def identify(self) -> str:
        """``*IDN?``; refuses anything but a 2600B, then empties the error queue (``errorqueue.clear()``)."""
        identity = self.transport.query("*IDN?").strip()
        if self.traffic_revision >= 2:
            self.rating = check_identity(self.name, "keithley2600", KEITHLEY_2600B, identity)
            self.transport.write("errorqueue.clear()")
        return identity

    def reset(self) -> None:
        self._send(f"{self.smu}.reset()")

    def source_voltage(self, level: float, compliance_current: float) -> None:
        s = self.smu
        self._send(f"{s}.source.func = {s}.OUTPUT_DCVOLTS", f"{s}.source.limiti = {compliance_current:.6g}",
                   f"{s}.source.levelv = {level:.6g}")

    def source_current(self, level: float, compliance_voltage: float) -> None:
        s = self.smu
        self._send(f"{s}.source.func = {s}.OUTPUT_DCAMPS", f"{s}.source.limitv = {compliance_voltage:.6g}",
                   f"{s}.source.leveli = {level:.6g}")

    def set_nplc(self, nplc: float) -> None:
        self._send(f"{self.smu}.measure.nplc = {nplc:.6g}")

    def set_output(self, enabled: bool) -> None:
        self._send(f"{self.smu}.source.output = {self.smu}.OUTPUT_{'ON' if enabled else 'OFF'}")
        if not enabled and self.traffic_revision >= 2 and self.output_enabled():
            raise InstrumentError(self.name, 0, "output still on after switching it off")

    def output_enabled(self) -> bool:
        return self._number(f"{self.smu}.source.output") == 1.0

    def measure_current(self) -> float:
        return self._number(f"{self.smu}.measure.i()")

    def measure_voltage(self) -> float:
        return self._number(f"{self.smu}.measure.v()")

    def compliance_tripped(self) -> bool:
        reply = self._print(f"{self.smu}.source.compliance")
        if reply not in ("true", "false"):
            raise ProtocolError(f"{self.name}: expected true/false for compliance, got {reply!r}")
        return reply == "true"

    def sweep_voltage(self, start: float, stop: float, points: int, compliance_current: float) -> SweepResult:
        if not 2 <= points <= BUFFER_POINTS:
            raise ValueError(f"{self.name}: a 2600B sweep holds 2 to {BUFFER_POINTS} points, got {points}")
        s = self.smu
        step = (stop - start) / (points - 1)
        self._send(
            f"{s}.source.func = {s}.OUTPUT_DCVOLTS",
            f"{s}.source.limiti = {compliance_current:.6g}",
            f"{s}.nvbuffer1.clear()",
            f"{s}.nvbuffer2.clear()",
            f"{s}.source.levelv = {start:.6g}",
            f"{s}.source.output = {s}.OUTPUT_ON",
        )
        self.transport.write(
            f"for i = 1, {points} do {s}.source.levelv = {start:.9g} + (i - 1) * {step:.9g} "
            f"{s}.measure.iv({s}.nvbuffer1, {s}.nvbuffer2) end"
        )
        self._send(f"{s}.source.output = {s}.OUTPUT_OFF")
        current = parse_floats(self.transport.query(f"printbuffer(1, {points}, {s}.nvbuffer1.readings)"), "printbuffer")
        voltage = parse_floats(self.transport.query(f"printbuffer(1, {points}, {s}.nvbuffer2.readings)"), "printbuffer")
        if current.size != points or voltage.size != points:
            raise ProtocolError(f"{self.name}: sweep returned {current.size} of {points} points")
        return SweepResult(voltage=voltage, current=current,
                           compliance=np.abs(current) >= compliance_current * (1 - 1e-3))
