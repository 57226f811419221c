"""Crossbar board serial protocol, version 1: frame codec, opcodes, error codes, payloads.

Shared by the board driver (``xbarlab.drivers.crossbar_board``) and the board emulator
(``xbarlab.sim.board_emulator``), so both sides agree byte for byte. The normative
description, with a table per command and example frames, is ``docs/board-protocol.md``.

Frame (both directions, all integers little-endian)::

    off  size  field
    0    2     sync            A5 5A
    2    1     version         01
    3    1     opcode          request: opcode; reply: opcode | 0x80
    4    2     seq             u16, chosen by the host, echoed by the reply
    6    1     status          request: 0; reply: 0 OK, 1 ERROR
    7    1     flags           reply bit 0: SATURATED (an ADC sample in this reply is clipped)
    8    4     length          u32 payload length N (≤ MAX_PAYLOAD)
    12   2     header check    CRC-16/CCITT-FALSE of bytes 2..11 (binascii.crc_hqx, init 0xFFFF)
    14   N     payload
    14+N 4     CRC-32          zlib.crc32 of bytes 2..13+N (everything after the sync)

The header check lets a receiver trust ``length`` before it waits for the payload, so a
corrupted length is reported at once instead of swallowing the next frames.
"""

from __future__ import annotations

import binascii
import math
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from xbarlab.errors import ProtocolError

PROTOCOL_VERSION = 1
SYNC = b"\xa5\x5a"
REPLY_BIT = 0x80
HEADER_SIZE = 14  # sync (2) + header fields (10) + header check (2)
TRAILER_SIZE = 4  # CRC-32
OVERHEAD = HEADER_SIZE + TRAILER_SIZE
#: largest payload of one frame in either direction (bytes); the driver splits bigger requests
MAX_PAYLOAD = 65536
#: longest message text in an error reply (bytes of ASCII)
MAX_ERROR_MESSAGE = 200

_FIELDS = struct.Struct("<BBHBBI")  # version, opcode, seq, status, flags, length
_HEAD = struct.Struct("<BBHBBIH")  # the header fields, then the header check (from offset 2)
_HEAD_SYNC = 0x5AA5  # the sync bytes read as a little-endian u16
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class Op(IntEnum):
    """Request opcodes (a reply carries ``opcode | 0x80``)."""

    IDENTIFY = 0x01
    GET_STATUS = 0x02
    CONFIGURE = 0x03
    ALL_OFF = 0x04
    READ_CELL = 0x10
    READ_ALL = 0x11
    READ_CELLS = 0x12
    MVM_FORWARD = 0x13
    MVM_TRANSPOSE = 0x14
    PULSE = 0x20
    PULSE_BATCH = 0x21
    OUTER_PRODUCT = 0x22
    ROUTE_SMU = 0x30
    UNROUTE_SMU = 0x31
    CLOSED_LOOP_SOLVE = 0x40
    CLOSED_LOOP_EIGEN = 0x41
    CLOSED_LOOP_INFO = 0x42
    # 3T1C capacitor array (revision 1.1, docs/board-protocol.md §9; payloads in xbarlab.protocol.cap)
    CAP_INFO = 0x70
    CAP_UPDATE = 0x71
    CAP_READ_CELLS = 0x72
    CAP_READ_ALL = 0x73
    CAP_MVM_FORWARD = 0x74
    CAP_MVM_TRANSPOSE = 0x75
    CAP_RESET = 0x76


class Status(IntEnum):
    """Reply status byte."""

    OK = 0
    ERROR = 1


#: reply flag: at least one ADC sample in this reply is clipped (see the payload's mask)
FLAG_SATURATED = 0x01


class Err(IntEnum):
    """Error codes carried by error replies (u16)."""

    BAD_CRC = 0x0001  # frame CRC-32 mismatch: the frame was discarded
    BAD_HEADER = 0x0002  # header check mismatch: sync bytes skipped, input resynchronised
    BAD_VERSION = 0x0003  # protocol version not supported
    FRAME_TOO_LARGE = 0x0004  # announced payload length above MAX_PAYLOAD
    UNKNOWN_OPCODE = 0x0005
    BAD_LENGTH = 0x0006  # payload length wrong for the opcode
    NOT_CONFIGURED = 0x0010  # array command before CONFIGURE (power-on or after a reset)
    INDEX_RANGE = 0x0011  # row/col outside the active region (or physical array)
    VOLTAGE_LIMIT = 0x0012  # |V| above the hardware limit
    WIDTH_LIMIT = 0x0013  # pulse width outside the hardware limits
    TIA_RANGE = 0x0014  # TIA full scale outside the hardware ranges
    VECTOR_LENGTH = 0x0015  # vector length does not match the active region
    BAD_VALUE = 0x0016  # non-finite number, train value not in {-1, 0, +1}, zero slots, ...
    BAD_PORT = 0x0017  # SMU port does not exist
    SMU_ROUTED = 0x0018  # interlock: array operations refused while an SMU port is routed
    ROUTE_CONFLICT = 0x0019  # another routed port shares the row or the column
    BAD_REGION = 0x001A  # active rows/cols zero or larger than the physical array
    INTERNAL = 0x00FF  # the board failed while executing (nothing further applied)
    #: host-side code (never sent by the board): a returned ADC sample is clipped
    ADC_SATURATED = 0x0101


class ArrayKind(IntEnum):
    """Array architecture byte of IDENTIFY."""

    ONE_T_ONE_R = 0
    PASSIVE = 1

    @property
    def label(self) -> str:
        return "1T1R" if self is ArrayKind.ONE_T_ONE_R else "passive"

    @classmethod
    def from_label(cls, label: str) -> ArrayKind:
        try:
            return {"1T1R": cls.ONE_T_ONE_R, "passive": cls.PASSIVE}[label]
        except KeyError:
            raise ValueError(f"array kind must be '1T1R' or 'passive', got {label!r}") from None


class FrameError(ProtocolError):
    """A frame failed a check; ``code`` says which (an :class:`Err` value)."""

    def __init__(self, code: Err, message: str, seq: int | None = None, opcode: int | None = None) -> None:
        self.code = code
        self.seq = seq
        self.opcode = opcode
        super().__init__(message)


class PayloadError(ValueError):
    """A payload is malformed for its opcode; ``code`` is the error code to reply with."""

    def __init__(self, code: Err, message: str) -> None:
        self.code = code
        super().__init__(message)


# -- frames -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Header:
    """The decoded 10 header bytes after the sync."""

    version: int
    opcode: int
    seq: int
    status: int
    flags: int
    length: int


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame."""

    opcode: int
    seq: int
    payload: bytes
    status: int = Status.OK
    flags: int = 0
    version: int = PROTOCOL_VERSION

    @property
    def is_reply(self) -> bool:
        return bool(self.opcode & REPLY_BIT)


def encode_frame(
    opcode: int,
    seq: int,
    payload: bytes = b"",
    *,
    status: int = Status.OK,
    flags: int = 0,
    version: int = PROTOCOL_VERSION,
    max_payload: int = MAX_PAYLOAD,
) -> bytes:
    """Build one frame. ``seq`` is reduced modulo 2¹⁶; raises ValueError for an oversized payload."""
    n = len(payload)
    if n > max_payload:
        raise ValueError(f"payload of {n} bytes exceeds the frame limit of {max_payload} bytes")
    fields = _FIELDS.pack(version, opcode, seq & 0xFFFF, status, flags, n)
    head = fields + binascii.crc_hqx(fields, 0xFFFF).to_bytes(2, "little")
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((SYNC, head, payload, crc.to_bytes(4, "little")))


def encode_request(opcode: int, seq: int, payload: bytes = b"", max_payload: int = MAX_PAYLOAD) -> bytes:
    """A host → board frame."""
    return encode_frame(opcode, seq, payload, max_payload=max_payload)


def encode_reply(opcode: int, seq: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """A board → host OK reply to request ``opcode`` (the reply bit is added here)."""
    return encode_frame((opcode | REPLY_BIT) & 0xFF, seq, payload, flags=flags)


def encode_error_reply(opcode: int, seq: int, code: int, message: str) -> bytes:
    """A board → host error reply carrying ``code`` and a short ASCII ``message``."""
    return encode_frame((opcode | REPLY_BIT) & 0xFF, seq, pack_error(code, message), status=Status.ERROR)


def parse_header(buf: bytes | bytearray, max_payload: int = MAX_PAYLOAD) -> tuple[int, int, int, int, int, int]:
    """:func:`decode_header` as a tuple (version, opcode, seq, status, flags, length); ``buf`` ≥ 14 bytes."""
    if _U16.unpack_from(buf)[0] != _HEAD_SYNC:
        raise FrameError(Err.BAD_HEADER, f"bad sync bytes {bytes(buf[:2]).hex(' ')} (expected a5 5a)")
    version, opcode, seq, status, flags, length, check = _HEAD.unpack_from(buf, 2)
    if binascii.crc_hqx(buf[2:12], 0xFFFF) != check:
        raise FrameError(Err.BAD_HEADER, "header check mismatch (corrupted header)")
    if length > max_payload:
        raise FrameError(
            Err.FRAME_TOO_LARGE,
            f"announced payload of {length} bytes exceeds the limit of {max_payload}",
            seq=seq,
            opcode=opcode,
        )
    return version, opcode, seq, status, flags, length


def decode_header(head: bytes, max_payload: int = MAX_PAYLOAD) -> Header:
    """Check and decode the first ``HEADER_SIZE`` bytes of a frame.

    Raises FrameError (BAD_HEADER for bad sync or header check, FRAME_TOO_LARGE for a length
    above ``max_payload``). The version is returned, not checked: the caller decides.
    """
    if len(head) < HEADER_SIZE:
        raise FrameError(Err.BAD_HEADER, f"truncated header: {len(head)} of {HEADER_SIZE} bytes")
    return Header(*parse_header(head, max_payload))


def frame_payload(head: bytes, body: bytes, length: int, seq: int, opcode: int) -> bytes:
    """:func:`check_body` given the header's length, seq and opcode (the payload, or FrameError BAD_CRC)."""
    if len(body) != length + TRAILER_SIZE:
        raise FrameError(Err.BAD_CRC, f"truncated frame: {len(body)} of {length + TRAILER_SIZE} bytes after the header")
    payload = body[:length] if type(body) is bytes else bytes(body[:length])
    if zlib.crc32(payload, zlib.crc32(head[2:HEADER_SIZE])) != _U32.unpack_from(body, length)[0]:
        raise FrameError(Err.BAD_CRC, "CRC-32 mismatch (corrupted frame)", seq=seq, opcode=opcode)
    return payload


def check_body(head: bytes, header: Header, body: bytes) -> bytes:
    """Verify the CRC-32 of a frame given its header bytes and the ``length + 4`` bytes after them.

    Returns the payload; raises FrameError(BAD_CRC) on a mismatch or wrong body size.
    """
    n = header.length
    if len(body) != n + TRAILER_SIZE:
        raise FrameError(Err.BAD_CRC, f"truncated frame: {len(body)} of {n + TRAILER_SIZE} bytes after the header")
    payload = bytes(body[:n])
    crc = zlib.crc32(payload, zlib.crc32(head[2:HEADER_SIZE]))
    if crc != _U32.unpack_from(body, n)[0]:
        raise FrameError(Err.BAD_CRC, "CRC-32 mismatch (corrupted frame)", seq=header.seq, opcode=header.opcode)
    return payload


def decode_frame(data: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """Decode exactly one complete frame; any damage, truncation or trailing byte raises FrameError."""
    header = decode_header(data[:HEADER_SIZE], max_payload)
    expected = HEADER_SIZE + header.length + TRAILER_SIZE
    if len(data) != expected:
        raise FrameError(Err.BAD_LENGTH, f"frame is {len(data)} bytes, header announces {expected}")
    payload = check_body(data[:HEADER_SIZE], header, data[HEADER_SIZE:])
    return Frame(header.opcode, header.seq, payload, header.status, header.flags, header.version)


def split_frames(buf: bytearray, max_payload: int = MAX_PAYLOAD) -> list[Frame | FrameError]:
    """Consume every complete frame from a receive buffer, in place (the board's receiver).

    Bytes before a sync are discarded. A bad header skips its sync and resynchronises; a bad
    CRC drops the whole frame (its length is trusted after the header check). Errors are
    returned in stream order, so the receiver can answer each one. An incomplete frame stays
    in ``buf``.
    """
    out: list[Frame | FrameError] = []
    while True:
        start = buf.find(SYNC)
        if start < 0:
            # keep a trailing first sync byte: its partner may arrive with the next chunk
            keep = 1 if buf[-1:] == SYNC[:1] else 0
            del buf[: len(buf) - keep]
            return out
        if start:
            del buf[:start]
        if len(buf) < HEADER_SIZE:
            return out
        try:
            version, opcode, seq, status, flags, length = parse_header(buf, max_payload)
        except FrameError as exc:
            out.append(exc)
            del buf[: HEADER_SIZE if exc.code == Err.FRAME_TOO_LARGE else len(SYNC)]
            continue
        body = HEADER_SIZE + length
        end = body + TRAILER_SIZE
        if len(buf) < end:
            return out
        with memoryview(buf) as view:  # released before the buffer is resized below
            good = zlib.crc32(view[2:body]) == _U32.unpack_from(buf, body)[0]
            payload = bytes(view[HEADER_SIZE:body]) if good else b""
        if good:
            out.append(Frame(opcode, seq, payload, status, flags, version))
        else:
            out.append(FrameError(Err.BAD_CRC, "CRC-32 mismatch (corrupted frame)", seq=seq, opcode=opcode))
        del buf[:end]


# -- scalar payloads ----------------------------------------------------------------------------
def _unpack(st: struct.Struct, payload: bytes, what: str) -> tuple:
    if len(payload) != st.size:
        raise PayloadError(Err.BAD_LENGTH, f"{what} payload must be {st.size} bytes, got {len(payload)}")
    return st.unpack(payload)


_ERROR = struct.Struct("<HB")


def pack_error(code: int, message: str) -> bytes:
    """Error payload: code u16, message length u8, ASCII message (truncated to 200 bytes)."""
    text = message.encode("ascii", errors="replace")[:MAX_ERROR_MESSAGE]
    return _ERROR.pack(code, len(text)) + text


def unpack_error(payload: bytes) -> tuple[int, str]:
    """(code, message) of an error payload; raises PayloadError if malformed."""
    if len(payload) < _ERROR.size:
        raise PayloadError(Err.BAD_LENGTH, f"error payload too short ({len(payload)} bytes)")
    code, n = _ERROR.unpack_from(payload)
    if len(payload) != _ERROR.size + n:
        raise PayloadError(Err.BAD_LENGTH, f"error payload announces {n} message bytes, has {len(payload) - 3}")
    return code, payload[3:].decode("ascii", errors="replace")


_CELL = struct.Struct("<HH")


def pack_cell(row: int, col: int) -> bytes:
    """READ_CELL payload: row u16, col u16."""
    return _CELL.pack(row, col)


def unpack_cell(payload: bytes) -> tuple[int, int]:
    return _unpack(_CELL, payload, "READ_CELL")


_ROWS = struct.Struct("<HH")


def pack_read_all(first_row: int, row_count: int) -> bytes:
    """READ_ALL payload: first row u16, number of rows u16 (of the active region)."""
    return _ROWS.pack(first_row, row_count)


def unpack_read_all(payload: bytes) -> tuple[int, int]:
    return _unpack(_ROWS, payload, "READ_ALL")


_CONFIGURE = struct.Struct("<HHff")


@dataclass(frozen=True, slots=True)
class Configuration:
    """CONFIGURE payload (request and echoed reply)."""

    active_rows: int
    active_cols: int
    read_voltage: float  # V
    tia_range: float  # A, TIA full-scale current

    def pack(self) -> bytes:
        return _CONFIGURE.pack(self.active_rows, self.active_cols, self.read_voltage, self.tia_range)

    @classmethod
    def unpack(cls, payload: bytes) -> Configuration:
        return cls(*_unpack(_CONFIGURE, payload, "CONFIGURE"))


_PULSE = struct.Struct("<HHfI")


def pack_pulse(row: int, col: int, amplitude: float, width_ns: int) -> bytes:
    """PULSE payload: row u16, col u16, amplitude f32 (V), width u32 (ns)."""
    return _PULSE.pack(row, col, amplitude, width_ns)


def unpack_pulse(payload: bytes) -> tuple[int, int, float, int]:
    return _unpack(_PULSE, payload, "PULSE")


_ROUTE = struct.Struct("<BxHH")


def pack_route(port: int, row: int, col: int) -> bytes:
    """ROUTE_SMU payload: port u8, reserved u8, row u16, col u16."""
    return _ROUTE.pack(port, row, col)


def unpack_route(payload: bytes) -> tuple[int, int, int]:
    return _unpack(_ROUTE, payload, "ROUTE_SMU")


def pack_port(port: int) -> bytes:
    """UNROUTE_SMU payload: port u8."""
    return bytes((port,))


def unpack_port(payload: bytes) -> int:
    if len(payload) != 1:
        raise PayloadError(Err.BAD_LENGTH, f"UNROUTE_SMU payload must be 1 byte, got {len(payload)}")
    return payload[0]


def seconds_to_ns(width: float) -> int:
    """Pulse width on the wire: integer nanoseconds (rounded). Raises ValueError if not representable."""
    ns = round(float(width) * 1e9)
    if not 0 <= ns <= 0xFFFFFFFF:
        raise ValueError(f"pulse width {width!r} s is not representable as u32 nanoseconds")
    return ns


# -- identity and status ------------------------------------------------------------------------
_IDENTITY = struct.Struct("<BBHHBBBxIffIIff")


@dataclass(frozen=True, slots=True)
class HardwareLimits:
    """What the board's hardware can do; the board refuses anything outside (nothing applied)."""

    max_pulse_amplitude: float = 10.0  # V, |pulse amplitude| (pulse generator range)
    max_input_voltage: float = 1.0  # V, |read or MVM input| (input DAC full scale)
    min_pulse_width_ns: int = 10  # ns
    max_pulse_width_ns: int = 1_000_000_000  # ns (1 s)
    min_tia_range: float = 1e-6  # A, smallest TIA full scale
    max_tia_range: float = 10e-3  # A, largest TIA full scale
    max_payload: int = MAX_PAYLOAD  # bytes per frame payload

    def __post_init__(self) -> None:
        for name in ("max_pulse_amplitude", "max_input_voltage", "min_tia_range", "max_tia_range"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"hardware limit {name} must be a positive finite number, got {value!r}")
        if not 1 <= self.min_pulse_width_ns <= self.max_pulse_width_ns <= 0xFFFFFFFF:
            raise ValueError(
                f"pulse width limits must satisfy 1 <= min ({self.min_pulse_width_ns}) <= max "
                f"({self.max_pulse_width_ns}) <= 2^32-1 ns"
            )
        if self.min_tia_range > self.max_tia_range:
            raise ValueError(f"min_tia_range {self.min_tia_range} A exceeds max_tia_range {self.max_tia_range} A")
        if not 256 <= self.max_payload <= 0xFFFFFFFF:
            raise ValueError(f"max_payload must be at least 256 bytes, got {self.max_payload}")


@dataclass(frozen=True, slots=True)
class BoardIdentity:
    """IDENTIFY reply: who the board is, its array and its hardware limits."""

    identity: str
    protocol_version: int
    rows: int  # physical rows
    cols: int  # physical columns
    array_kind: ArrayKind
    smu_ports: int
    dac_bits: int
    adc_bits: int
    limits: HardwareLimits

    def pack(self) -> bytes:
        text = self.identity.encode("ascii", errors="replace")[:255]
        lim = self.limits
        fixed = _IDENTITY.pack(
            self.protocol_version,
            int(self.array_kind),
            self.rows,
            self.cols,
            self.smu_ports,
            self.dac_bits,
            self.adc_bits,
            lim.max_payload,
            lim.max_pulse_amplitude,
            lim.max_input_voltage,
            lim.min_pulse_width_ns,
            lim.max_pulse_width_ns,
            lim.min_tia_range,
            lim.max_tia_range,
        )
        return fixed + bytes((len(text),)) + text

    @classmethod
    def unpack(cls, payload: bytes) -> BoardIdentity:
        n = _IDENTITY.size
        if len(payload) < n + 1 or len(payload) != n + 1 + payload[n]:
            raise PayloadError(Err.BAD_LENGTH, f"IDENTIFY reply of {len(payload)} bytes is malformed")
        (version, kind, rows, cols, ports, dac_bits, adc_bits, max_payload, max_amp, max_in, wmin, wmax, tmin,
         tmax) = _IDENTITY.unpack_from(payload)
        try:
            array_kind = ArrayKind(kind)
            limits = HardwareLimits(max_amp, max_in, wmin, wmax, tmin, tmax, max_payload)
        except ValueError as exc:
            raise PayloadError(Err.BAD_VALUE, f"IDENTIFY reply: {exc}") from None
        text = payload[n + 1 :].decode("ascii", errors="replace")
        return cls(text, version, rows, cols, array_kind, ports, dac_bits, adc_bits, limits)


_STATUS = struct.Struct("<dfIIIHBBHHff")


@dataclass(frozen=True, slots=True)
class BoardStatus:
    """GET_STATUS reply."""

    board_time: float  # s, board clock (simulated time on the emulator)
    temperature: float  # °C, array temperature
    error_count: int  # error replies sent since power-on
    link_errors: int  # frames with a bad header or CRC since power-on
    frames: int  # frames received since power-on
    boot_count: int  # power-on resets ever (non-volatile; a change means the board reset)
    configured: bool  # CONFIGURE accepted since the last power-on
    routed_ports: int  # bit p set: SMU port p is routed to a cell
    active_rows: int
    active_cols: int
    read_voltage: float  # V
    tia_range: float  # A

    def pack(self) -> bytes:
        return _STATUS.pack(
            self.board_time, self.temperature, self.error_count, self.link_errors, self.frames, self.boot_count,
            int(self.configured), self.routed_ports, self.active_rows, self.active_cols, self.read_voltage,
            self.tia_range,
        )

    @classmethod
    def unpack(cls, payload: bytes) -> BoardStatus:
        t, temp, errs, link, frames, boots, conf, routed, ar, ac, rv, tia = _unpack(_STATUS, payload, "GET_STATUS")
        return cls(t, temp, errs, link, frames, boots, bool(conf), routed, ar, ac, rv, tia)


# -- vectors and measurements -------------------------------------------------------------------
F32 = np.dtype("<f4")
I8 = np.dtype("i1")
#: one PULSE_BATCH record: row u16, col u16, amplitude f32 (V), width u32 (ns) — 12 bytes
PULSE_RECORD = np.dtype([("row", "<u2"), ("col", "<u2"), ("amplitude", "<f4"), ("width_ns", "<u4")])
CELL_RECORD = np.dtype([("row", "<u2"), ("col", "<u2")])
PULSE_BATCH_READBACK = 0x01  # PULSE_BATCH flags bit 0: read the pulsed cells back after the batch


def mask_bytes(n: int) -> int:
    """Size in bytes of the saturation mask of ``n`` samples."""
    return (n + 7) // 8


def measurement_size(n: int) -> int:
    """Payload size of a measurement reply with ``n`` samples: n float32 + ceil(n/8) mask bytes."""
    return 4 * n + (n + 7) // 8


def pack_vector(values: np.ndarray) -> bytes:
    """float32 little-endian bytes of a 1-D vector (no length prefix: the length is implied)."""
    return np.ascontiguousarray(values, dtype=F32).tobytes()


def unpack_vector(payload: bytes, n: int, what: str = "vector") -> np.ndarray:
    """A float32 vector of exactly ``n`` values (read-only view). PayloadError(VECTOR_LENGTH) otherwise."""
    if len(payload) != 4 * n:
        raise PayloadError(
            Err.VECTOR_LENGTH, f"{what} must hold {n} float32 values ({4 * n} bytes), got {len(payload)} bytes"
        )
    return np.frombuffer(payload, dtype=F32)


def pack_measurement(currents: np.ndarray, saturated: np.ndarray) -> bytes:
    """Measurement payload: n float32 currents (A) then the saturation mask, LSB-first bits."""
    mask = np.asarray(saturated, dtype=bool).ravel()
    values = np.ascontiguousarray(currents, dtype=F32).tobytes()
    if not np.count_nonzero(mask):  # an all-clear mask packs to zero bytes (the usual case, without packbits)
        return values + bytes(mask_bytes(mask.size))
    return values + np.packbits(mask, bitorder="little").tobytes()


def unpack_measurement(payload: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(currents float32 (n,), saturated bool (n,)) of a measurement payload with ``n`` samples."""
    if len(payload) != measurement_size(n):
        raise PayloadError(
            Err.BAD_LENGTH, f"measurement of {n} samples must be {measurement_size(n)} bytes, got {len(payload)}"
        )
    values = np.frombuffer(payload, dtype=F32, count=n)
    if isinstance(payload, (bytes, bytearray)) and payload.count(0, 4 * n) == len(payload) - 4 * n:
        # no sample clipped (the usual case): the all-clear mask without unpacking bits
        return values, np.zeros(n, dtype=bool)
    bits = np.frombuffer(payload, dtype=np.uint8, offset=4 * n)
    mask = np.unpackbits(bits, count=n, bitorder="little").view(bool)
    return values, mask


def pack_pulse_batch(records: np.ndarray, readback: bool = False) -> bytes:
    """PULSE_BATCH payload: flags u8, 3 reserved bytes, then ``PULSE_RECORD`` records."""
    head = bytes((PULSE_BATCH_READBACK if readback else 0, 0, 0, 0))
    return head + np.ascontiguousarray(records, dtype=PULSE_RECORD).tobytes()


def unpack_pulse_batch(payload: bytes) -> tuple[np.ndarray, bool]:
    """(records, readback) of a PULSE_BATCH payload."""
    body = len(payload) - 4
    if body <= 0 or body % PULSE_RECORD.itemsize:
        raise PayloadError(
            Err.BAD_LENGTH, f"PULSE_BATCH payload must be 4 + 12*n bytes with n >= 1, got {len(payload)}"
        )
    flags = payload[0]
    if flags & ~PULSE_BATCH_READBACK:
        raise PayloadError(Err.BAD_VALUE, f"PULSE_BATCH flags 0x{flags:02x} has reserved bits set")
    return np.frombuffer(payload, dtype=PULSE_RECORD, offset=4), bool(flags & PULSE_BATCH_READBACK)


def pack_cells(rows: np.ndarray, cols: np.ndarray) -> bytes:
    """READ_CELLS payload: n records of row u16, col u16."""
    rec = np.empty(len(rows), dtype=CELL_RECORD)
    rec["row"] = rows
    rec["col"] = cols
    return rec.tobytes()


def unpack_cells(payload: bytes) -> np.ndarray:
    if not payload or len(payload) % CELL_RECORD.itemsize:
        raise PayloadError(Err.BAD_LENGTH, f"READ_CELLS payload must be 4*n bytes with n >= 1, got {len(payload)}")
    return np.frombuffer(payload, dtype=CELL_RECORD)


_OUTER = struct.Struct("<fIHH")


def pack_outer_product(amplitude: float, width_ns: int, row_trains: np.ndarray, col_trains: np.ndarray) -> bytes:
    """OUTER_PRODUCT payload: amplitude f32 (V), width u32 (ns), slots u16, reserved u16,
    row trains (rows × slots int8, row-major), column trains (cols × slots int8, row-major)."""
    slots = row_trains.shape[1]
    return b"".join(
        (
            _OUTER.pack(amplitude, width_ns, slots, 0),
            np.ascontiguousarray(row_trains, dtype=I8).tobytes(),
            np.ascontiguousarray(col_trains, dtype=I8).tobytes(),
        )
    )


def unpack_outer_product(payload: bytes, rows: int, cols: int) -> tuple[float, int, np.ndarray, np.ndarray]:
    """(amplitude V, width ns, row trains (rows, slots), col trains (cols, slots)) for the active region."""
    if len(payload) < _OUTER.size:
        raise PayloadError(Err.BAD_LENGTH, f"OUTER_PRODUCT payload too short ({len(payload)} bytes)")
    amplitude, width_ns, slots, _ = _OUTER.unpack_from(payload)
    expected = _OUTER.size + (rows + cols) * slots
    if len(payload) != expected:
        raise PayloadError(
            Err.VECTOR_LENGTH,
            f"OUTER_PRODUCT with {slots} slots on {rows}x{cols} active cells needs {expected} bytes, "
            f"got {len(payload)}",
        )
    trains = np.frombuffer(payload, dtype=I8, offset=_OUTER.size)
    return amplitude, width_ns, trains[: rows * slots].reshape(rows, slots), trains[rows * slots :].reshape(cols, slots)


OUTER_PRODUCT_HEADER = _OUTER.size


# -- closed-loop (feedback) mode -------------------------------------------------------------------
#: matrix layouts of the feedback mode: column pairs (A ∝ G⁺ − G⁻) or one column per output (A ∝ G)
CLOSED_LOOP_LAYOUTS = ("differential", "positive")
#: closed-loop reply flags bit 0: the loop settled (solve: stable; eigenvector: a mode grew and settled)
CLOSED_LOOP_STABLE = 0x01
_CLOSED_LOOP = struct.Struct("<HHHBx")  # n, first row, first column, layout, reserved
_CLOSED_LOOP_REPLY = struct.Struct("<fffB3x")  # settle time, input conductance, rail, flags, reserved
CLOSED_LOOP_HEADER = _CLOSED_LOOP.size


@dataclass(frozen=True, slots=True)
class ClosedLoopBlock:
    """Where the feedback-mode matrix sits: n×n, from (row0, col0), in a layout."""

    n: int
    row0: int
    col0: int
    layout: str = "differential"

    @property
    def width(self) -> int:
        """Columns used: 2n (differential) or n (positive)."""
        return 2 * self.n if self.layout == "differential" else self.n

    def pack(self) -> bytes:
        return _CLOSED_LOOP.pack(self.n, self.row0, self.col0, CLOSED_LOOP_LAYOUTS.index(self.layout))

    @classmethod
    def unpack_from(cls, payload: bytes, what: str) -> ClosedLoopBlock:
        if len(payload) < _CLOSED_LOOP.size:
            raise PayloadError(Err.BAD_LENGTH, f"{what} payload too short ({len(payload)} bytes)")
        n, row0, col0, layout = _CLOSED_LOOP.unpack_from(payload)
        if payload[7] != 0:
            raise PayloadError(Err.BAD_VALUE, f"{what}: reserved byte must be 0")
        if layout >= len(CLOSED_LOOP_LAYOUTS):
            raise PayloadError(Err.BAD_VALUE, f"{what}: layout {layout} unknown (0 differential, 1 positive)")
        if n < 1:
            raise PayloadError(Err.BAD_VALUE, f"{what}: matrix size n must be >= 1")
        return cls(n, row0, col0, CLOSED_LOOP_LAYOUTS[layout])


def pack_closed_loop_solve(block: ClosedLoopBlock, inputs: np.ndarray) -> bytes:
    """CLOSED_LOOP_SOLVE payload: block (8 bytes) then n f32 input voltages (V)."""
    return block.pack() + pack_vector(inputs)


def unpack_closed_loop_solve(payload: bytes) -> tuple[ClosedLoopBlock, np.ndarray]:
    block = ClosedLoopBlock.unpack_from(payload, "CLOSED_LOOP_SOLVE")
    return block, unpack_vector(payload[_CLOSED_LOOP.size :], block.n, "CLOSED_LOOP_SOLVE input voltages")


def pack_closed_loop_eigen(block: ClosedLoopBlock, g_lambda: float) -> bytes:
    """CLOSED_LOOP_EIGEN payload: block (8 bytes) then the feedback conductance g_λ f32 (S)."""
    return block.pack() + struct.pack("<f", g_lambda)


def unpack_closed_loop_eigen(payload: bytes) -> tuple[ClosedLoopBlock, float]:
    block = ClosedLoopBlock.unpack_from(payload, "CLOSED_LOOP_EIGEN")
    if len(payload) != _CLOSED_LOOP.size + 4:
        raise PayloadError(Err.BAD_LENGTH, f"CLOSED_LOOP_EIGEN payload must be {_CLOSED_LOOP.size + 4} bytes, "
                           f"got {len(payload)}")
    return block, struct.unpack_from("<f", payload, _CLOSED_LOOP.size)[0]


_CLOSED_LOOP_INFO = struct.Struct("<ff")  # output rail (V), input conductance (S)


@dataclass(frozen=True, slots=True)
class ClosedLoopInfo:
    """CLOSED_LOOP_INFO reply: what the feedback circuit can put on the array."""

    rail: float  # V, op-amp outputs (which drive the array columns) swing within ±rail
    input_conductance: float  # S, g_in from each input DAC to its row node

    def pack(self) -> bytes:
        return _CLOSED_LOOP_INFO.pack(self.rail, self.input_conductance)

    @classmethod
    def unpack(cls, payload: bytes) -> ClosedLoopInfo:
        rail, g_in = _unpack(_CLOSED_LOOP_INFO, payload, "CLOSED_LOOP_INFO")
        return cls(float(rail), float(g_in))


def closed_loop_reply_size(n: int) -> int:
    """Payload size of a closed-loop reply with ``n`` outputs."""
    return _CLOSED_LOOP_REPLY.size + measurement_size(n)


@dataclass(frozen=True)
class ClosedLoopReply:
    """Reply of CLOSED_LOOP_SOLVE / CLOSED_LOOP_EIGEN."""

    voltages: np.ndarray  # V, op-amp outputs as digitised
    saturated: np.ndarray  # bool, output at a rail
    settle_time: float  # s
    input_conductance: float  # S, g_in from each input DAC to its row (solve mode)
    rail: float  # V, output swing
    stable: bool

    def pack(self) -> bytes:
        flags = CLOSED_LOOP_STABLE if self.stable else 0
        head = _CLOSED_LOOP_REPLY.pack(self.settle_time, self.input_conductance, self.rail, flags)
        return head + pack_measurement(self.voltages, self.saturated)

    @classmethod
    def unpack(cls, payload: bytes, n: int) -> ClosedLoopReply:
        if len(payload) != closed_loop_reply_size(n):
            raise PayloadError(Err.BAD_LENGTH, f"closed-loop reply with {n} outputs must be "
                               f"{closed_loop_reply_size(n)} bytes, got {len(payload)}")
        settle, g_in, rail, flags = _CLOSED_LOOP_REPLY.unpack_from(payload)
        v, sat = unpack_measurement(payload[_CLOSED_LOOP_REPLY.size :], n)
        stable = bool(flags & CLOSED_LOOP_STABLE)
        return cls(v.astype(float), sat.copy(), float(settle), float(g_in), float(rail), stable)
