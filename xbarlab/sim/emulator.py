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

    def exchange(self, data: bytes) -> bytes:
        """:meth:`feed` then :meth:`read_output` as one step, so concurrent clients never take each other's replies."""
        with self._lock:
            self.feed(data)
            return self.read_output()

    def discard_input(self) -> None:
        """Drop a partial message (its sender went away); pending replies stay."""
        with self._lock:
            self._inbuf.clear()

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
    """A newline-terminated command emulator (SCPI or TSP).

    The input buffer holds at most :attr:`max_input` bytes: a longer line is discarded up to its
    newline and reported once through :meth:`input_overrun`, as an instrument's input buffer overrun.
    """

    #: bytes of one command line the instrument buffers
    max_input: int = 64 * 1024
    _discarding = False  # inside an overlong line: drop bytes up to the next newline

    def input_overrun(self) -> None:
        """Hook: a line longer than :attr:`max_input` arrived (SCPI instruments queue error -363)."""

    def report_input_overrun(self) -> None:
        """A transport dropped an overlong line before it reached the instrument: report it as the instrument does."""
        with self._lock:
            self.input_overrun()

    def clear(self) -> None:
        super().clear()
        self._discarding = False

    def discard_input(self) -> None:
        super().discard_input()
        self._discarding = False

    def _process(self, inbuf: bytearray) -> list[bytes]:
        replies: list[bytes] = []
        while True:
            idx = inbuf.find(b"\n")
            if self._discarding:  # inside an overlong line: drop it up to its newline
                if idx < 0:
                    inbuf.clear()
                    return replies
                del inbuf[: idx + 1]
                self._discarding = False
                continue
            if idx > self.max_input or (idx < 0 and len(inbuf) > self.max_input):
                self.input_overrun()
                if idx < 0:
                    inbuf.clear()
                    self._discarding = True
                    return replies
                del inbuf[: idx + 1]
                continue
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
