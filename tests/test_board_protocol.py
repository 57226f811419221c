"""Board protocol v1 codec: frames, integrity checks, payload packing, documented examples."""

from __future__ import annotations

import binascii
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarlab.errors import ProtocolError
from xbarlab.protocol import board as bp
from xbarlab.protocol.board import Err, Op

DOC = Path(__file__).resolve().parents[1] / "docs" / "board-protocol.md"

frames_st = st.builds(
    lambda op, seq, payload, status, flags: (op, seq, payload, status, flags),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.binary(max_size=600),
    st.integers(0, 1),
    st.integers(0, 255),
)


@settings(max_examples=200, deadline=None)
@given(frames_st)
def test_any_frame_round_trips(args):
    op, seq, payload, status, flags = args
    data = bp.encode_frame(op, seq, payload, status=status, flags=flags)
    assert len(data) == bp.OVERHEAD + len(payload)
    frame = bp.decode_frame(data)
    assert (frame.opcode, frame.seq, frame.payload, frame.status, frame.flags, frame.version) == (
        op, seq, payload, status, flags, 1,
    )


@settings(max_examples=300, deadline=None)
@given(frames_st, st.data())
def test_every_single_bit_flip_is_detected(args, data):
    op, seq, payload, status, flags = args
    frame = bytearray(bp.encode_frame(op, seq, payload, status=status, flags=flags))
    bit = data.draw(st.integers(0, 8 * len(frame) - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ProtocolError):
        bp.decode_frame(bytes(frame))


@settings(max_examples=200, deadline=None)
@given(frames_st, st.data())
def test_every_truncation_is_detected(args, data):
    op, seq, payload, status, flags = args
    frame = bp.encode_frame(op, seq, payload, status=status, flags=flags)
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(ProtocolError):
        bp.decode_frame(frame[:cut])
    # a dropped byte anywhere (what FaultPlan.drop does) is caught as well
    with pytest.raises(ProtocolError):
        bp.decode_frame(frame[:cut] + frame[cut + 1 :])


def test_frame_layout_by_hand():
    payload = b"\x01\x02\x03"
    data = bp.encode_frame(0x13, 0x1234, payload, status=1, flags=1)
    assert data[:2] == b"\xa5\x5a"
    assert struct.unpack("<BBHBBI", data[2:12]) == (1, 0x13, 0x1234, 1, 1, 3)
    assert int.from_bytes(data[12:14], "little") == binascii.crc_hqx(data[2:12], 0xFFFF)
    assert data[14:17] == payload
    assert int.from_bytes(data[17:], "little") == zlib.crc32(data[2:17])


def test_oversized_payload_is_refused_both_ways():
    with pytest.raises(ValueError, match="exceeds the frame limit"):
        bp.encode_frame(1, 1, bytes(bp.MAX_PAYLOAD + 1))
    big = bp.encode_frame(1, 1, bytes(2000))
    with pytest.raises(bp.FrameError) as info:
        bp.decode_header(big[: bp.HEADER_SIZE], max_payload=1000)
    assert info.value.code == Err.FRAME_TOO_LARGE


def test_sequence_number_wraps_modulo_2_16():
    assert bp.decode_frame(bp.encode_request(Op.IDENTIFY, 0x10001)).seq == 1


# -- stream receiver ---------------------------------------------------------------------------
def test_split_frames_reassembles_byte_by_byte_and_skips_garbage():
    a = bp.encode_request(Op.PULSE, 7, bp.pack_pulse(1, 2, 1.0, 100))
    b = bp.encode_request(Op.IDENTIFY, 8)
    stream = b"\x00\xa5\x13" + a + b"junk" + b
    buf = bytearray()
    frames = []
    for byte in stream:
        buf.append(byte)
        frames += bp.split_frames(buf)
    assert [(f.opcode, f.seq) for f in frames] == [(Op.PULSE, 7), (Op.IDENTIFY, 8)]
    assert buf == bytearray()


def test_split_frames_reports_bad_crc_and_bad_header_then_resynchronises():
    good = bp.encode_request(Op.IDENTIFY, 3)
    bad_crc = bytearray(bp.encode_request(Op.READ_CELL, 4, bp.pack_cell(0, 0)))
    bad_crc[16] ^= 0x40  # payload bit: header intact, CRC-32 fails
    bad_head = bytearray(bp.encode_request(Op.READ_CELL, 5, bp.pack_cell(0, 0)))
    bad_head[8] ^= 0x01  # length bit: header check fails
    out = bp.split_frames(bytearray(bytes(bad_crc) + bytes(bad_head) + good))
    assert isinstance(out[0], bp.FrameError) and out[0].code == Err.BAD_CRC and out[0].seq == 4
    assert isinstance(out[1], bp.FrameError) and out[1].code == Err.BAD_HEADER
    assert isinstance(out[-1], bp.Frame) and out[-1].seq == 3


def test_split_frames_keeps_an_incomplete_frame():
    frame = bp.encode_request(Op.MVM_FORWARD, 9, bp.pack_vector(np.ones(8)))
    buf = bytearray(frame[:-3])
    assert bp.split_frames(buf) == []
    buf += frame[-3:]
    (got,) = bp.split_frames(buf)
    assert got.seq == 9 and len(got.payload) == 32


# -- payloads ---------------------------------------------------------------------------------
def test_measurement_mask_is_lsb_first_and_round_trips():
    currents = np.array([1e-6, 2e-6, -3e-6, 4e-6, 5e-6, 6e-6, 7e-6, 8e-6, 9e-6], dtype=float)
    mask = np.zeros(9, dtype=bool)
    mask[[1, 8]] = True
    payload = bp.pack_measurement(currents, mask)
    assert len(payload) == bp.measurement_size(9) == 36 + 2
    assert payload[36:] == bytes([0b00000010, 0b00000001])
    values, got = bp.unpack_measurement(payload, 9)
    np.testing.assert_allclose(values, currents, rtol=1e-7)
    assert got.tolist() == mask.tolist()
    with pytest.raises(bp.PayloadError):
        bp.unpack_measurement(payload, 8)


def test_identity_and_status_round_trip():
    ident = bp.BoardIdentity(
        "xbarlab,XB-1,SN9", 1, 128, 64, bp.ArrayKind.PASSIVE, 2, 7, 9,
        bp.HardwareLimits(max_pulse_amplitude=5.0, max_input_voltage=0.5, min_pulse_width_ns=20),
    )
    back = bp.BoardIdentity.unpack(ident.pack())
    assert (back.identity, back.rows, back.cols, back.array_kind, back.smu_ports) == ("xbarlab,XB-1,SN9", 128, 64,
                                                                                    bp.ArrayKind.PASSIVE, 2)
    assert back.limits.max_pulse_amplitude == 5.0 and back.limits.min_pulse_width_ns == 20
    assert back.array_kind.label == "passive"
    with pytest.raises(bp.PayloadError):
        bp.BoardIdentity.unpack(ident.pack()[:-1])
    status = bp.BoardStatus(1.25, 25.0, 3, 1, 100, 2, True, 0b101, 64, 32, 0.2, 1e-3)
    back_s = bp.BoardStatus.unpack(status.pack())
    assert back_s.board_time == 1.25 and back_s.routed_ports == 5 and back_s.configured is True
    assert back_s.active_cols == 32 and back_s.boot_count == 2


def test_pulse_batch_and_outer_product_payloads():
    rec = np.zeros(3, dtype=bp.PULSE_RECORD)
    rec["row"], rec["col"], rec["amplitude"], rec["width_ns"] = [0, 1, 2], [3, 4, 5], [1.0, -1.5, 2.0], [10, 20, 30]
    payload = bp.pack_pulse_batch(rec, readback=True)
    assert len(payload) == 4 + 36 and payload[0] == bp.PULSE_BATCH_READBACK
    assert payload[4:16] == bp.pack_pulse(0, 3, 1.0, 10)  # a record is a PULSE payload
    got, readback = bp.unpack_pulse_batch(payload)
    assert readback and got["col"].tolist() == [3, 4, 5] and got["width_ns"].tolist() == [10, 20, 30]
    with pytest.raises(bp.PayloadError):
        bp.unpack_pulse_batch(payload[:-1])
    rt = np.array([[1, 0], [-1, 1], [0, 0]])
    ct = np.array([[1, 1], [0, -1]])
    amp, ns, r2, c2 = bp.unpack_outer_product(bp.pack_outer_product(1.25, 50, rt, ct), 3, 2)
    assert (amp, ns) == (1.25, 50)
    assert r2.tolist() == rt.tolist() and c2.tolist() == ct.tolist()
    with pytest.raises(bp.PayloadError) as info:
        bp.unpack_outer_product(bp.pack_outer_product(1.25, 50, rt, ct), 4, 2)
    assert info.value.code == Err.VECTOR_LENGTH


def test_error_payload_and_width_conversion():
    code, message = bp.unpack_error(bp.pack_error(Err.WIDTH_LIMIT, "x" * 300))
    assert code == Err.WIDTH_LIMIT and message == "x" * bp.MAX_ERROR_MESSAGE
    assert bp.seconds_to_ns(1e-8) == 10 and bp.seconds_to_ns(1.0) == 1_000_000_000
    with pytest.raises(ValueError):
        bp.seconds_to_ns(5.0)


# -- the documented examples -------------------------------------------------------------------
def _doc_frames() -> list[bytes]:
    text = DOC.read_text()
    frames: list[bytes] = []
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        hexes = block.split()
        if not all(re.fullmatch(r"[0-9a-f]{2}", h) for h in hexes):
            continue
        data = bytes.fromhex("".join(hexes))
        while data:  # a block may hold several frames back to back
            n = bp.OVERHEAD + int.from_bytes(data[8:12], "little")
            frames.append(data[:n])
            data = data[n:]
    return frames


def test_every_documented_example_frame_is_valid():
    frames = _doc_frames()
    assert len(frames) >= 10
    for frame in frames:
        bp.decode_frame(frame)


def test_codec_builds_the_documented_bytes_exactly():
    expected = {
        bp.encode_request(Op.IDENTIFY, 1),
        bp.encode_request(Op.CONFIGURE, 2, bp.Configuration(64, 64, 0.2, 1e-3).pack()),
        bp.encode_request(Op.READ_CELL, 3, bp.pack_cell(3, 5)),
        bp.encode_reply(Op.READ_CELL, 3, bp.pack_measurement(np.array([1e-5]), np.array([False]))),
        bp.encode_request(Op.MVM_FORWARD, 4, bp.pack_vector(np.array([0.1, -0.1, 0.0, 0.25]))),
        bp.encode_reply(
            Op.MVM_FORWARD, 4, bp.pack_measurement(np.array([2.5e-5, 1e-3, -4e-6]), np.array([0, 1, 0])),
            bp.FLAG_SATURATED,
        ),
        bp.encode_request(Op.PULSE, 0x0102, bp.pack_pulse(3, 5, 1.5, 100)),
        bp.encode_reply(Op.PULSE, 0x0102),
        bp.encode_error_reply(Op.PULSE, 7, Err.VOLTAGE_LIMIT, "amplitude 12 V exceeds +-10 V"),
        bp.encode_request(Op.ROUTE_SMU, 9, bp.pack_route(0, 3, 5)),
    }
    doc = set(_doc_frames())
    assert expected <= doc
    assert bp.encode_request(Op.IDENTIFY, 1).hex(" ") == "a5 5a 01 01 01 00 00 00 00 00 00 00 8c 22 5d a8 6a 8c"
    ident = bp.BoardIdentity("xbarlab,XB-1", 1, 64, 64, bp.ArrayKind.ONE_T_ONE_R, 4, 7, 9, bp.HardwareLimits())
    assert bp.encode_reply(Op.IDENTIFY, 1, ident.pack()) in doc
