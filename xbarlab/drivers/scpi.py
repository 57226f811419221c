"""Shared pieces of SCPI drivers: error-queue draining and reply parsing."""

from __future__ import annotations

import re

import numpy as np

from xbarlab.drivers.transport import MessageTransport
from xbarlab.errors import InstrumentError, ProtocolError

_ERROR = re.compile(r'^\s*([+-]?\d+)\s*,\s*"?(.*?)"?\s*$')


def parse_error(reply: str) -> tuple[int, str]:
    """``-113,"Undefined header"`` → (-113, "Undefined header")."""
    m = _ERROR.match(reply)
    if not m:
        raise ProtocolError(f"cannot parse error-queue reply {reply!r}")
    return int(m.group(1)), m.group(2)


def parse_floats(reply: str, what: str = "reply") -> np.ndarray:
    """Comma-separated numbers → float array; ProtocolError on anything else."""
    try:
        return np.array([float(x) for x in reply.strip().split(",") if x.strip()], dtype=float)
    except ValueError:
        raise ProtocolError(f"expected numbers in {what}, got {reply[:80]!r}") from None


class ScpiInstrument:
    """Base of SCPI drivers: command/query helpers and the error queue as exceptions."""

    #: how many queued errors are read at most when draining (the queue depth of these instruments)
    MAX_ERRORS = 32

    def __init__(self, transport: MessageTransport, name: str) -> None:
        self.transport = transport
        self.name = name

    def write(self, command: str) -> None:
        self.transport.write(command)

    def query(self, command: str) -> str:
        return self.transport.query(command).strip()

    def query_float(self, command: str) -> float:
        values = parse_floats(self.query(command), command)
        if values.size != 1:
            raise ProtocolError(f"{self.name}: expected one number from {command}, got {values.size}")
        return float(values[0])

    def check_errors(self) -> None:
        """Drain ``:SYST:ERR?``; raise InstrumentError for the first error found."""
        first: tuple[int, str] | None = None
        for _ in range(self.MAX_ERRORS):
            code, message = parse_error(self.query(":SYST:ERR?"))
            if code == 0:
                break
            first = first or (code, message)
        if first is not None:
            raise InstrumentError(self.name, first[0], first[1])

    def verify_output_off(self) -> None:
        """Read the output state back after switching it off; still on is an InstrumentError."""
        if self.output_enabled():  # type: ignore[attr-defined]
            raise InstrumentError(self.name, 0, "output still on after switching it off")

    def configure(self, *commands: str) -> None:
        """Send configuration commands, then check the error queue once."""
        for c in commands:
            self.write(c)
        self.check_errors()
