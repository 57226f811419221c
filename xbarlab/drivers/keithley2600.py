"""Keithley 2600B System SourceMeter over TSP (2601B/2602B/2611B/2612B/2634B/2635B/2636B).

Commands are TSP (Lua) statements; queries are ``print(...)``. Channel ``a`` or ``b``
maps to ``smua``/``smub``; two driver objects may share one transport. Sweeps run as
a TSP loop on the instrument into ``nvbuffer1`` (current) and ``nvbuffer2`` (voltage)
and are read back with ``printbuffer``.
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from xbarlab.drivers import replies
from xbarlab.drivers.identity import KEITHLEY_2600B, TRAFFIC_REVISION, Rating, checked_identity
from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import InstrumentError, ProtocolError
from xbarlab.readings import SweepResult

BUFFER_POINTS = 60000  # dedicated reading buffer per channel


class Keithley2600:
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
        self._output_expected = False  # what the host last set (a reset switches it off)
        self._level_v: float | None = None  # the voltage level the host set, while sourcing voltage

    #: absolute agreement floor of two current readings (A) and two voltage readings (V)
    CURRENT_FLOOR = 1e-10
    VOLTAGE_FLOOR = 1e-4

    def close(self) -> None:
        """Nothing to release here: the station closes the transport."""

    def _send(self, *statements: str) -> None:
        for s in statements:
            self.transport.write(s)
        self.check_errors()

    def _print(self, expr: str) -> str:
        return replies.printable(self.transport.query(f"print({expr})").strip(), self.name, f"print({expr})")

    def _number(self, expr: str) -> float:
        return replies.repeat(lambda: replies.numbers(self._print(expr), self.name, f"print({expr})", count=1)[0])

    def check_errors(self) -> None:
        def read_count() -> str | None:
            try:
                n = replies.numbers(self._print("errorqueue.count"), self.name, "errorqueue.count", count=1,
                                    signed=False)[0]
            except ProtocolError:
                return None
            return str(int(n)) if n == int(n) and 0 <= n <= 1000 else None

        if replies.confirming():
            count = int(replies.same_twice(read_count, self.name, "errorqueue.count"))  # the same count twice
        else:
            count = int(self._number("errorqueue.count"))
        first = None
        for _ in range(int(count)):
            reply = self.transport.query("print(errorqueue.next())").strip().split("\t")
            try:
                value = replies.numbers(reply[0], self.name, "errorqueue.next()", count=1, signed=False)[0]
                if value != int(value):
                    raise ProtocolError("not an error code")
                code = int(value)
                message = replies.printable(reply[1], self.name, "errorqueue.next()") if code else ""
            except (ProtocolError, IndexError):
                if len(reply) == 4 and difflib.SequenceMatcher(None, reply[1], "Queue Is Empty").ratio() >= 0.8:
                    continue  # the empty queue's reply with a garbled byte
                raise ProtocolError(f"{self.name}: garbled errorqueue.next() reply {reply!r}; an instrument error "
                                    "may have been lost") from None
            if first is None and code != 0:
                first = (code, message)
        if first is not None:
            raise InstrumentError(self.name, *first)

    def identify(self) -> str:
        """``*IDN?``; refuses anything but a 2600B, then empties the error queue (``errorqueue.clear()``)."""
        if self.traffic_revision < 2:  # logs written before the open checks
            return self._identity()
        identity, self.rating = checked_identity(self.name, "keithley2600", KEITHLEY_2600B,
                                                 lambda: self.transport.query("*IDN?").strip(), self._identity)
        self.transport.write("errorqueue.clear()")
        return identity

    def _identity(self) -> str:
        if not replies.confirming():
            return self.transport.query("*IDN?").strip()

        def once() -> str | None:
            try:
                return replies.printable(self.transport.query("*IDN?").strip(), self.name, "*IDN?")
            except ProtocolError:
                return None
        return replies.same_twice(once, self.name, "*IDN?")

    def reset(self) -> None:
        self._output_expected, self._level_v = False, None
        self._send(f"{self.smu}.reset()")

    def source_voltage(self, level: float, compliance_current: float) -> None:
        s = self.smu
        self._level_v = float(f"{level:.6g}")
        self._send(f"{s}.source.func = {s}.OUTPUT_DCVOLTS", f"{s}.source.limiti = {compliance_current:.6g}",
                   f"{s}.source.levelv = {level:.6g}")

    def source_current(self, level: float, compliance_voltage: float) -> None:
        s = self.smu
        self._level_v = None
        self._send(f"{s}.source.func = {s}.OUTPUT_DCAMPS", f"{s}.source.limitv = {compliance_voltage:.6g}",
                   f"{s}.source.leveli = {level:.6g}")

    def set_nplc(self, nplc: float) -> None:
        self._send(f"{self.smu}.measure.nplc = {nplc:.6g}")

    def set_output(self, enabled: bool) -> None:
        self._output_expected = enabled
        self._send(f"{self.smu}.source.output = {self.smu}.OUTPUT_{'ON' if enabled else 'OFF'}")
        if not enabled and self.traffic_revision >= 2 and replies.repeat(self.output_enabled) \
                and replies.repeat(self.output_enabled):  # a garbled reply is read again, a lone '1' twice
            raise InstrumentError(self.name, 0, "output still on after switching it off")

    def output_enabled(self) -> bool:
        value = self._number(f"{self.smu}.source.output")
        if value not in (0.0, 1.0):
            raise ProtocolError(f"{self.name}: {self.smu}.source.output read {value:g}")
        return value == 1.0

    def _readings(self, what: str, count: int) -> list[float]:
        """``count`` readings of ``smuX.measure.<what>()`` in one print, with the output state and level."""
        s = self.smu
        expr = ", ".join([f"{s}.measure.{what}()"] * count + [f"{s}.source.output", f"{s}.source.levelv"])
        fields = self._print(expr).split("\t")
        replies.same_format(fields[:count], self.name, f"print({expr})", signed=False)
        values = replies.numbers("\t".join(fields), self.name, f"print({expr})", count=count + 2, sep="\t",
                                 signed=False)
        output, level = values[-2:]
        if output not in (0.0, 1.0):
            raise ProtocolError(f"{self.name}: {s}.source.output read {output:g}")
        if self._output_expected and output == 0.0:
            raise replies.SettingMismatch(f"{self.name}: the output reads off although it was switched on")
        if self._output_expected and self._level_v is not None and \
                abs(level - self._level_v) > 1e-3 * abs(self._level_v) + self.VOLTAGE_FLOOR:
            raise replies.SettingMismatch(f"{self.name}: sourcing {level:.6g} V instead of the {self._level_v:.6g} V")
        return values[:count]

    def _measure(self, what: str, floor: float) -> float:
        if not replies.confirming():
            return self._number(f"{self.smu}.measure.{what}()")
        a, b = replies.repeat(lambda: self._readings(what, 2))
        return replies.confirmed(a, b, lambda: replies.repeat(lambda: self._readings(what, 1))[0], floor, self.name,
                                 f"{self.smu}.measure.{what}()")

    def measure_current(self) -> float:
        return self._measure("i", self.CURRENT_FLOOR)

    def measure_voltage(self) -> float:
        return self._measure("v", self.VOLTAGE_FLOOR)

    def compliance_tripped(self) -> bool:
        return replies.repeat(lambda: replies.flag(self._print(f"{self.smu}.source.compliance"), self.name,
                                                   "compliance", true="true", false="false"))

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
        if replies.confirming():
            self._sweep_intact(points)
        self._send(f"{s}.source.output = {s}.OUTPUT_OFF")
        self._output_expected, self._level_v = False, None
        current = self._buffer(f"printbuffer(1, {points}, {s}.nvbuffer1.readings)", points,
                               replies.sweep_point_check(start, stop, points, compliance_current))
        voltage = self._buffer(f"printbuffer(1, {points}, {s}.nvbuffer2.readings)", points,
                               replies.sweep_point_check(start, start + (points - 1) * step, points, compliance_current,
                                                         voltage_every=-1))
        if current.size != points or voltage.size != points:
            raise ProtocolError(f"{self.name}: sweep returned {current.size} of {points} points")
        replies.check_sweep(self.name, voltage, current, start, start + (points - 1) * step, points, compliance_current)
        return SweepResult(voltage=voltage, current=current,
                           compliance=np.abs(current) >= compliance_current * (1 - 1e-3))

    def _sweep_intact(self, points: int) -> None:
        """After the sweep loop: both buffers hold ``points`` readings and the output is still on (a reset
        during the sweep clears the buffers and switches the output off)."""
        s = self.smu
        expr = f"{s}.nvbuffer1.n, {s}.nvbuffer2.n, {s}.source.output"

        def read() -> None:
            n1, n2, output = replies.numbers(self._print(expr), self.name, f"print({expr})", count=3, sep="\t",
                                             signed=False)
            if output not in (0.0, 1.0) or n1 != int(n1) or n2 != int(n2):
                raise ProtocolError(f"{self.name}: garbled reply to print({expr})")
            if n1 != points or n2 != points or output != 1.0:
                raise replies.SettingMismatch(
                    f"{self.name}: after the sweep the buffers hold {n1:g} and {n2:g} of {points} readings and the "
                    f"output is {'on' if output == 1.0 else 'off'}")

        replies.repeat(read)  # wrong in every repeat: the instrument reset itself during the sweep

    def _buffer(self, command: str, count: int, valid: Any = None) -> np.ndarray:
        """``count`` numbers of a stored buffer, each confirmed by two identical copies and ``valid``."""
        if not replies.confirming():
            return np.array(replies.numbers(self.transport.query(command).strip(), self.name, command, count=count,
                                            signed=False), dtype=float)

        def once() -> str | None:
            try:
                return replies.printable(self.transport.query(command).strip(), self.name, command)
            except ProtocolError:
                return None
        return np.array(replies.stored_numbers(once, count, self.name, command, sep=",", valid=valid,
                                               signed=False), dtype=float)
