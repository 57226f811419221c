"""Instrument transcripts: record every exchange on a link, and answer from a recording.

A transcript is a list of :class:`Event` per link (the instruments sharing one address,
labelled ``"smu2+smu3"`` when two channels share it). Recording wrappers sit between the
drivers and the real transports and hand each event to a *sink* (the current logbook
run). Replay transports give the drivers the recorded replies in order and check that
every command sent equals the recorded one, byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from xbarlab.drivers.transport import ByteTransport, MessageTransport
from xbarlab.errors import ReplayDivergence, TransportError, TransportTimeout, XbarlabError

# event codes (one byte in the log)
WRITE = "w"  # bytes sent
READ = "r"  # a reply line (message links) or requested byte count (byte links)
READ_BYTES = "b"  # a raw binary block read on a message link
TIMEOUT = "t"  # a read that timed out (payload: partial bytes, if any)
ERROR = "e"  # any other transport failure (payload: message)
CLEAR = "c"  # device clear / input buffer reset
CODES = (WRITE, READ, READ_BYTES, TIMEOUT, ERROR, CLEAR)


@dataclass(frozen=True)
class Event:
    """One exchange on a link: code, payload, wall clock (s since epoch) and simulated clock (s)."""

    link: str
    code: str
    data: bytes
    wall_time: float
    sim_time: float  # NaN on hardware


class TranscriptSink(Protocol):
    def record_transcript(self, link: str, code: str, data: bytes, sim_time: float | None) -> None: ...


SimClock = Callable[[], float | None]


class _Recorder:
    def __init__(self, sink: TranscriptSink, link: str, sim_time: SimClock | None) -> None:
        self._sink, self._link, self._sim_time = sink, link, sim_time

    def _rec(self, code: str, data: bytes) -> None:
        self._sink.record_transcript(self._link, code, data, self._sim_time() if self._sim_time else None)

    def _exchange(self, code: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the inner transport; record its outcome (data under ``code``, a timeout, or a link error)."""
        try:
            result = fn(*args)
        except TransportTimeout as exc:
            self._rec(TIMEOUT, str(exc).encode())
            raise
        except TransportError as exc:
            self._rec(ERROR, str(exc).encode())
            raise
        if code == WRITE:
            data = args[0]
            self._rec(WRITE, data.encode() if isinstance(data, str) else bytes(data))
        elif code == CLEAR:
            self._rec(CLEAR, b"")
        else:
            self._rec(code, result.encode() if isinstance(result, str) else result)
        return result


class RecordingMessageTransport(MessageTransport, _Recorder):
    """Wraps a :class:`MessageTransport`; every write, reply, timeout and clear goes to ``sink``."""

    def __init__(self, inner: MessageTransport, sink: TranscriptSink, link: str,
                 sim_time: SimClock | None = None) -> None:
        _Recorder.__init__(self, sink, link, sim_time)
        self.inner = inner
        self.address = inner.address

    def write(self, message: str) -> None:
        self._exchange(WRITE, self.inner.write, message)

    def read(self) -> str:
        return self._exchange(READ, self.inner.read)

    def read_bytes(self, count: int) -> bytes:
        return self._exchange(READ_BYTES, self.inner.read_bytes, count)

    def clear(self) -> None:
        self._exchange(CLEAR, self.inner.clear)

    def close(self) -> None:
        self.inner.close()


class RecordingByteTransport(ByteTransport, _Recorder):
    """Wraps a :class:`ByteTransport`; every write, read, timeout and input reset goes to ``sink``."""

    def __init__(self, inner: ByteTransport, sink: TranscriptSink, link: str,
                 sim_time: SimClock | None = None) -> None:
        _Recorder.__init__(self, sink, link, sim_time)
        self.inner = inner
        self.address = inner.address

    def write(self, data: bytes) -> None:
        self._exchange(WRITE, self.inner.write, data)

    def read(self, count: int) -> bytes:
        return self._exchange(READ, self.inner.read, count)

    def reset_input(self) -> None:
        self._exchange(CLEAR, self.inner.reset_input)

    def close(self) -> None:
        self.inner.close()


# -- replay ----------------------------------------------------------------------------------
class TranscriptExhausted(XbarlabError):
    """The code asked for more exchanges than the recording of this run holds."""


class ReplayCursor:
    """The recorded events of one link, consumed in order; knows where it is for error messages."""

    def __init__(self, link: str) -> None:
        self.link = link
        self.events: list[Event] = []
        self.position = 0
        self.run_id = ""
        self.last_sim_time: float | None = None
        self.on_event: Callable[[Event], None] | None = None

    def load(self, run_id: str, events: Sequence[Event]) -> None:
        """Start on the events of the next run (the previous run must have been consumed)."""
        self.run_id, self.events, self.position = run_id, list(events), 0

    @property
    def remaining(self) -> int:
        return len(self.events) - self.position

    def _diverge(self, expected: str, got: str) -> ReplayDivergence:
        return ReplayDivergence(
            f"run {self.run_id}, link {self.link}, exchange {self.position + 1}: "
            f"the log holds {expected}, the code {got}"
        )

    def take(self, codes: str, got: str) -> Event:
        """The next event, which must have one of ``codes`` (else a divergence naming both)."""
        if self.position >= len(self.events):
            raise TranscriptExhausted(
                f"run {self.run_id}, link {self.link}: the code {got} after the last recorded exchange "
                f"({len(self.events)})"
            )
        ev = self.events[self.position]
        if ev.code not in codes:
            raise self._diverge(describe(ev), got)
        self.position += 1
        if ev.sim_time == ev.sim_time:  # not NaN
            self.last_sim_time = ev.sim_time
        if self.on_event is not None:
            self.on_event(ev)
        return ev

    def expect_write(self, data: bytes) -> None:
        ev = self.take(WRITE + ERROR, f"sent {_show(data)}")
        if ev.code == ERROR:
            raise TransportError(ev.data.decode(errors="replace"))
        if ev.data != data:
            self.position -= 1
            raise self._diverge(f"sent {_show(ev.data)}", f"sent {_show(data)}")

    def reply(self, code: str, got: str) -> bytes:
        ev = self.take(code + TIMEOUT + ERROR, got)
        if ev.code == TIMEOUT:
            raise TransportTimeout(ev.data.decode(errors="replace") + " (replayed)")
        if ev.code == ERROR:
            raise TransportError(ev.data.decode(errors="replace") + " (replayed)")
        return ev.data


def _show(data: bytes, limit: int = 60) -> str:
    try:
        text = data.decode("ascii")
        if text.isprintable():
            return repr(text if len(text) <= limit else text[:limit] + "...")
    except UnicodeDecodeError:
        pass
    hexed = data[:limit // 2].hex(" ")
    return f"<{len(data)} bytes: {hexed}{' ...' if len(data) > limit // 2 else ''}>"


def describe(ev: Event) -> str:
    names = {WRITE: "sent", READ: "a reply", READ_BYTES: "a binary block", TIMEOUT: "a timeout",
             ERROR: "a link error", CLEAR: "an input clear"}
    return f"{names.get(ev.code, ev.code)} {_show(ev.data)}" if ev.data else names.get(ev.code, ev.code)


class ReplayMessageTransport(MessageTransport):
    """Answers a message-based driver from the recorded transcript; checks every command sent."""

    def __init__(self, cursor: ReplayCursor, address: str = "") -> None:
        self.cursor = cursor
        self.address = address or f"replay:{cursor.link}"

    def write(self, message: str) -> None:
        self.cursor.expect_write(message.encode())

    def read(self) -> str:
        return self.cursor.reply(READ, "read a reply").decode()

    def read_bytes(self, count: int) -> bytes:
        data = self.cursor.reply(READ_BYTES, f"read {count} bytes")
        if len(data) != count:
            raise self.cursor._diverge(f"a {len(data)}-byte block", f"read {count} bytes")
        return data

    def clear(self) -> None:
        self.cursor.take(CLEAR, "cleared the input")

    def close(self) -> None:
        pass


class ReplayByteTransport(ByteTransport):
    """Answers a byte-stream driver (the board) from the recorded transcript."""

    def __init__(self, cursor: ReplayCursor, address: str = "") -> None:
        self.cursor = cursor
        self.address = address or f"replay:{cursor.link}"

    def write(self, data: bytes) -> None:
        self.cursor.expect_write(bytes(data))

    def read(self, count: int) -> bytes:
        data = self.cursor.reply(READ, f"read {count} bytes")
        if len(data) != count:
            self.cursor.position -= 1
            raise self.cursor._diverge(f"a read of {len(data)} bytes", f"read {count} bytes")
        return data

    def reset_input(self) -> None:
        self.cursor.take(CLEAR, "reset the input")

    def close(self) -> None:
        pass


def now() -> float:
    return time.time()
