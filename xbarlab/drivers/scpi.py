"""Shared pieces of SCPI drivers: error-queue draining and validated reply parsing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from xbarlab.drivers import replies
from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import InstrumentError, ProtocolError


def parse_error(reply: str) -> tuple[int, str]:
    """``-113,"Undefined header"`` → (-113, "Undefined header"); a garbled reply is a ProtocolError."""
    return replies.scpi_error(reply, "instrument")


def parse_floats(reply: str, what: str = "reply") -> np.ndarray:
    """Comma-separated numbers → float array; ProtocolError on anything else."""
    return np.array(replies.numbers(reply, "instrument", what), dtype=float)


class ScpiInstrument:
    """Base of SCPI drivers: command/query helpers and the error queue as exceptions."""

    #: how many queued errors are read at most when draining (the queue depth of these instruments)
    MAX_ERRORS = 32
    #: absolute agreement floor of two current readings (A) and two voltage readings (V)
    CURRENT_FLOOR = 1e-10
    VOLTAGE_FLOOR = 1e-4

    def __init__(self, transport: MessageTransport, name: str) -> None:
        self.transport = transport
        self.name = name
        self._output_expected = False  # what the host last set (a reset switches it off)
        self._level_v: float | None = None  # the voltage level set, while sourcing voltage (V)

    def write(self, command: str) -> None:
        self.transport.write(command)

    def query(self, command: str) -> str:
        return replies.printable(self.transport.query(command).strip(), self.name, command)

    def query_float(self, command: str) -> float:
        return replies.repeat(lambda: replies.numbers(self.query(command), self.name, command, count=1)[0])

    def query_flag(self, command: str) -> bool:
        return replies.repeat(lambda: replies.flag(self.query(command), self.name, command))

    def query_stable(self, command: str) -> str:
        """The reply to an idempotent query of stored data, read until two copies are identical."""
        if not replies.confirming():
            return self.query(command)

        def once() -> str | None:
            try:
                return self.query(command)
            except ProtocolError:  # non-ASCII: never taken
                return None
        return replies.same_twice(once, self.name, command)

    def query_stored(self, command: str, count: int, valid: Callable[[int, float], bool] | None = None) -> np.ndarray:
        """``count`` numbers of stored data (a buffer), each confirmed by two identical copies and ``valid``."""
        if not replies.confirming():
            return np.array(replies.numbers(self.query(command), self.name, command, count=count), dtype=float)

        def once() -> str | None:
            try:
                return self.query(command)
            except ProtocolError:
                return None
        return np.array(replies.stored_numbers(once, count, self.name, command, valid=valid), dtype=float)

    def check_errors(self) -> None:
        """Drain ``:SYST:ERR?``; raise InstrumentError for the first error found."""
        first: tuple[int, str] | None = None
        for _ in range(self.MAX_ERRORS):
            code, message = replies.scpi_error(self.transport.query(":SYST:ERR?").strip(), self.name)
            if code == 0:
                break
            first = first or (code, message)
        if first is not None:
            raise InstrumentError(self.name, first[0], first[1])

    def configure(self, *commands: str) -> None:
        """Send configuration commands, then check the error queue once."""
        for c in commands:
            self.write(c)
        self.check_errors()

    def measure_confirmed(self, command: str, output_query: str, floor: float) -> float:
        """One reading of ``command``, confirmed by a second taken in the same line with the output state."""
        if not replies.confirming():
            return self.query_float(command)

        def readings(count: int) -> list[float]:
            line = ";".join([command] * count + [output_query])
            parts = self.query(line).split(";")
            if len(parts) != count + 1:
                raise ProtocolError(f"{self.name}: expected {count + 1} replies to {line}, got {len(parts)}")
            self._check_output(parts[-1], output_query)
            replies.same_format(parts[:-1], self.name, command)
            return [replies.numbers(p, self.name, command, count=1)[0] for p in parts[:-1]]

        a, b = replies.repeat(lambda: readings(2))
        return replies.confirmed(a, b, lambda: replies.repeat(lambda: readings(1))[0], floor, self.name, command)

    def verify_sourcing(self, measure_voltage: str, tripped: Callable[[], bool], restore: tuple[str, ...] = ()) -> None:
        """After switching the output on, for models whose readings carry no source level: the voltage
        measured at the terminals (``measure_voltage``) is the level set, unless in compliance. Wrong in
        every repeat means the settings were lost between setting them and switching on (a reset).
        ``restore``: commands that put the measure function back after the voltage measurement."""
        level = self._level_v
        if not replies.confirming() or level is None:
            return

        def check() -> None:
            v = replies.numbers(self.query(measure_voltage), self.name, measure_voltage, count=1)[0]
            if abs(v - level) > 1e-3 * abs(level) + self.VOLTAGE_FLOOR and not tripped():
                raise replies.SettingMismatch(f"{self.name}: {v:.6g} V at the terminals instead of the {level:.6g} V "
                                              "set")

        try:
            replies.repeat(check)
        finally:
            if restore:
                self.configure(*restore)

    def _set_output_flag(self, enabled: bool) -> None:
        self._output_expected = enabled

    def _check_output(self, reply: str, what: str) -> None:
        """The instrument's output state (``reply``, 1/0) must be what the host set."""
        on = replies.flag(reply, self.name, what)
        if self._output_expected and not on:
            raise replies.SettingMismatch(f"{self.name}: the output reads off although it was switched on")
