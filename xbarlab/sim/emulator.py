"""Base class of emulated instruments: bytes in, bytes out.

The same emulator object sits behind every way in: the in-process pyvisa backend
(``pyvisa_xbarsim``), the in-process pyserial URL handler (``xbarsim://``) and the
loopback TCP servers of ``xbarlab sim serve``. Transports only call :meth:`feed`
and :meth:`read_output`; the emulator parses its command language and queues replies.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

from xbarlab.sim.faults import FaultPlan


class StreamEmulator(ABC):
    """An instrument that consumes a byte stream and produces a reply stream."""

    def __init__(self, faults: FaultPlan | None = None) -> None:
        self.faults = faults or FaultPlan()
        self._inbuf = bytearray()
        self._outbuf = bytearray()
        self._lock = threading.RLock()

    #: observers of the input stream (see :meth:`add_tap`); an instance list once one is added
    _taps: tuple[Callable[[bytes], None], ...] | list[Callable[[bytes], None]] = ()

    def add_tap(self, tap: Callable[[bytes], None]) -> None:
        """Call ``tap(data)`` with every chunk of bytes the host sends, before it is executed
        (audits: :mod:`xbarlab.sim.audit`). Every way in goes through :meth:`feed`."""
        with self._lock:
            self._taps = [*self._taps, tap]

    def remove_tap(self, tap: Callable[[bytes], None]) -> None:
        with self._lock:
            self._taps = [t for t in self._taps if t is not tap]

    def feed(self, data: bytes) -> None:
        """Accept bytes from the host; complete messages are executed at once."""
        with self._lock:
            for tap in self._taps:
                tap(data)
            self._inbuf.extend(data)
            for reply in self._process(self._inbuf):
                if reply:
                    self._outbuf.extend(self.faults.mangle_reply(reply))

    def read_output(self, max_bytes: int | None = None) -> bytes:
        """Take up to ``max_bytes`` pending reply bytes (all if None)."""
        with self._lock:
            if max_bytes is None or max_bytes >= len(self._outbuf):
                out = bytes(self._outbuf)
                self._outbuf.clear()
                return out
            n = min(max_bytes, len(self._outbuf))
            out = bytes(self._outbuf[:n])
            del self._outbuf[:n]
            return out

    def pending_output(self) -> int:
        """Number of reply bytes waiting to be read."""
        return len(self._outbuf)

    def clear(self) -> None:
        """Device clear: drop pending input and output."""
        with self._lock:
            self._inbuf.clear()
            self._outbuf.clear()

    @abstractmethod
    def _process(self, inbuf: bytearray) -> list[bytes]:
        """Consume complete messages from ``inbuf`` (in place); return replies in order."""

    @abstractmethod
    def power_on_reset(self) -> None:
        """Return to the power-on state (outputs off, defaults)."""


class LineEmulator(StreamEmulator):
    """A newline-terminated command emulator (SCPI or TSP)."""

    def _process(self, inbuf: bytearray) -> list[bytes]:
        replies: list[bytes] = []
        while True:
            idx = inbuf.find(b"\n")
            if idx < 0:
                return replies
            line = bytes(inbuf[:idx]).rstrip(b"\r").decode("ascii", errors="replace")
            del inbuf[: idx + 1]
            if self.faults.take_reset():
                self.power_on_reset()
            reply = self.handle_line(line)
            if reply is not None:
                replies.append(reply if reply.endswith(b"\n") else reply + b"\n")

    @abstractmethod
    def handle_line(self, line: str) -> bytes | None:
        """Execute one command line; return the reply (without or with terminator) or None."""
