"""Instrument transcripts: record every exchange on a link, and answer from a recording.

A transcript is a list of :class:`Event` per link (the instruments sharing one address,
labelled ``"smu2+smu3"`` when two channels share it). Recording wrappers sit between the
drivers and the real transports and hand each event to a *sink* (the current logbook
run). Replay transports give the drivers the recorded replies in order and check that
every command sent equals the recorded one, byte for byte.
"""

from __future__ import annotations

import binascii
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from xbarlab.drivers.transport import ByteTransport, MessageTransport
from xbarlab.errors import ReplayDivergence, TransportError, TransportTimeout, XbarlabError
from xbarlab.protocol import board as bp

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
        #: set after a run whose code could not be re-run was skipped: a stateful link (the board's frame
        #: sequence numbers) takes its numbering from the next recorded command
        self.resync = False

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
    """Answers a byte-stream driver (the board) from the recorded transcript.

    After a skipped run (``cursor.resync``) the driver's frame sequence numbers lag the recording by the
    requests of that run: the first request sets the offset, and from then on requests are compared and
    replies returned with the sequence number (and the header check and CRC that cover it) translated;
    every other byte is still compared and returned as recorded."""

    def __init__(self, cursor: ReplayCursor, address: str = "") -> None:
        self.cursor = cursor
        self.address = address or f"replay:{cursor.link}"
        self.seq_shift = 0  # recorded sequence number - the driver's (mod 2^16)
        self._reply_head: bytes | None = None  # the translated header of the reply being read

    def write(self, data: bytes) -> None:
        data = bytes(data)
        cur = self.cursor
        if cur.resync and cur.position < len(cur.events) and cur.events[cur.position].code == WRITE:
            recorded, mine = _frame_seq(cur.events[cur.position].data), _frame_seq(data)
            if recorded is not None and mine is not None:
                self.seq_shift = (recorded - mine) & 0xFFFF
            cur.resync = False
        if self.seq_shift:
            data = _with_seq(data, self.seq_shift)
        cur.expect_write(data)

    def read(self, count: int) -> bytes:
        data = self.cursor.reply(READ, f"read {count} bytes")
        if len(data) != count:
            self.cursor.position -= 1
            raise self.cursor._diverge(f"a read of {len(data)} bytes", f"read {count} bytes")
        if self.seq_shift:
            data = self._translate_reply(data)
        return data

    def _translate_reply(self, data: bytes) -> bytes:
        if len(data) == bp.HEADER_SIZE and data[:2] == bp.SYNC:
            self._reply_head = _with_seq(data, -self.seq_shift)
            return self._reply_head
        head, self._reply_head = self._reply_head, None
        if head is None or len(data) < bp.TRAILER_SIZE:
            return data
        payload = data[: len(data) - bp.TRAILER_SIZE]  # the body: payload + CRC over the header fields and payload
        return payload + zlib.crc32(payload, zlib.crc32(head[2:])).to_bytes(4, "little")

    def reset_input(self) -> None:
        self.cursor.take(CLEAR, "reset the input")

    def close(self) -> None:
        pass


def _frame_seq(data: bytes) -> int | None:
    """The sequence number of a board frame (None if ``data`` is not one)."""
    if len(data) < bp.HEADER_SIZE or data[:2] != bp.SYNC:
        return None
    return int.from_bytes(data[4:6], "little")


def _with_seq(frame: bytes, shift: int) -> bytes:
    """A board frame (or just its header) with the sequence number moved by ``shift``, checks recomputed."""
    if _frame_seq(frame) is None:
        return frame
    fields = bytearray(frame[2:12])
    fields[2:4] = ((int.from_bytes(fields[2:4], "little") + shift) & 0xFFFF).to_bytes(2, "little")
    head = bytes(fields) + binascii.crc_hqx(bytes(fields), 0xFFFF).to_bytes(2, "little")
    if len(frame) == bp.HEADER_SIZE:
        return frame[:2] + head
    payload = frame[bp.HEADER_SIZE: len(frame) - bp.TRAILER_SIZE]
    return frame[:2] + head + payload + zlib.crc32(payload, zlib.crc32(head)).to_bytes(4, "little")


def now() -> float:
    return time.time()
