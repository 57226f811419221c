"""Crossbar board driver: transcripts against a scripted link, and end to end with the emulator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from board_doubles import EmulatorLink

from xbarlab.drivers.crossbar_board import AdcSaturationError, BoardReading, CrossbarBoard
from xbarlab.drivers.transport import ByteTransport
from xbarlab.errors import ConfigError, InstrumentError, ProtocolError, TransportTimeout
from xbarlab.instruments.interfaces import Pulse
from xbarlab.protocol import board as bp
from xbarlab.protocol.board import Err, Op
from xbarlab.sim.array import CrossbarModel
from xbarlab.sim.board_emulator import BoardEmulator
from xbarlab.sim.clock import SimClock
from xbarlab.sim.devices import make_device
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.periphery import Periphery
from xbarlab.sim.terminals import OpenCircuit, SmuTerminal

IDENTITY = bp.BoardIdentity("xbarlab,XB-1", 1, 4, 3, bp.ArrayKind.ONE_T_ONE_R, 2, 7, 9, bp.HardwareLimits())


# -- scripted link ----------------------------------------------------------------------------------
Responder = Callable[[bp.Frame], bytes]


class ScriptedLink(ByteTransport):
    """A fake serial link: each write is answered by the next scripted responder."""

    def __init__(self, *responders: Responder) -> None:
        self.script = list(responders)
        self.written: list[bytes] = []
        self.inbox = bytearray()
        self.resets = 0

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        self.inbox += self.script.pop(0)(bp.decode_frame(data))

    def read(self, count: int) -> bytes:
        data = bytes(self.inbox[:count])
        del self.inbox[:count]
        if len(data) < count:
            raise TransportTimeout(f"expected {count} bytes, got {len(data)}")
        return data

    def reset_input(self) -> None:
        self.resets += 1
        self.inbox.clear()

    def close(self) -> None:
        pass


def ok(payload: bytes = b"", flags: int = 0) -> Responder:
    return lambda req: bp.encode_reply(req.opcode, req.seq, payload, flags)


def echo() -> Responder:
    return lambda req: bp.encode_reply(req.opcode, req.seq, req.payload)


def error(code: int, message: str) -> Responder:
    return lambda req: bp.encode_error_reply(req.opcode, req.seq, code, message)


def silence() -> Responder:
    return lambda req: b""


def configured_link(*more: Responder) -> tuple[CrossbarBoard, ScriptedLink]:
    link = ScriptedLink(ok(IDENTITY.pack()), echo(), *more)
    board = CrossbarBoard(link)
    board.identify()
    board.configure(0.2, 1e-3)
    return board, link


def test_identify_transcript_matches_the_documented_frames():
    documented_reply = bytes.fromhex(
        "a55a01810100000033000000 0b2a 0100 4000 4000 04 07 09 00 00000100 00002041 0000803f 0a000000 00ca9a3b"
        " bd378635 0ad7233c 0c 786261726c61622c58422d31 4784efb7".replace(" ", "")
    )
    link = ScriptedLink(lambda req: documented_reply)
    info = CrossbarBoard(link).identify()
    assert link.written == [bytes.fromhex("a5 5a 01 01 01 00 00 00 00 00 00 00 8c 22 5d a8 6a 8c")]
    assert (info.identity, info.rows, info.cols, info.array_kind, info.smu_ports) == ("xbarlab,XB-1", 64, 64,
                                                                                    "1T1R", 4)


def test_configure_sends_the_documented_frame_and_keeps_the_echo():
    link = ScriptedLink(ok(replace(IDENTITY, rows=64, cols=64).pack()), echo())
    board = CrossbarBoard(link)
    board.configure(0.2, 1e-3)
    assert link.written[1].hex(" ") == ("a5 5a 01 03 02 00 00 00 0c 00 00 00 ac 63 40 00 40 00 cd cc 4c 3e 6f 12 83 3a "
                                        "ff cf 7a 39")
    assert board.configuration is not None and board.configuration.read_voltage == pytest.approx(0.2, rel=1e-7)
    assert board.shape == (64, 64)


def test_mvm_is_one_round_trip_with_float32_vectors():
    currents = np.array([1e-5, -2e-5, 3e-5])
    board, link = configured_link(ok(bp.pack_measurement(currents, np.zeros(3, bool))))
    v = np.array([0.1, -0.2, 0.3, 0.0])
    out = board.mvm_forward(v)
    assert len(link.written) == 3
    request = bp.decode_frame(link.written[-1])
    assert request.opcode == Op.MVM_FORWARD and request.seq == 3
    np.testing.assert_array_equal(np.frombuffer(request.payload, "<f4"), v.astype(np.float32))
    np.testing.assert_allclose(out, currents, rtol=1e-7)
    assert out.dtype == np.float64


def test_read_cell_returns_conductance():
    board, _ = configured_link(ok(bp.pack_measurement(np.array([4e-6]), np.array([False]))))
    assert board.read_cell(1, 2) == pytest.approx(4e-6 / 0.2, rel=1e-6)


def test_error_reply_raises_instrument_error_with_code():
    board, link = configured_link(error(Err.WIDTH_LIMIT, "width 5 ns outside [10, 1000000000] ns"))
    with pytest.raises(InstrumentError) as info:
        board.pulse_cell(0, 0, 1.0, 1e-7)
    assert info.value.code == Err.WIDTH_LIMIT and info.value.instrument == "board"
    assert "WIDTH_LIMIT" in info.value.message and "width 5 ns" in info.value.message


def test_board_reporting_our_frame_corrupted_is_a_protocol_error():
    board, _ = configured_link(error(Err.BAD_CRC, "CRC-32 mismatch"))
    with pytest.raises(ProtocolError, match="corrupted PULSE frame"):
        board.pulse_cell(0, 0, 1.0, 1e-7)


def _corrupt(responder: Responder, at: int) -> Responder:
    def inner(req: bp.Frame) -> bytes:
        data = bytearray(responder(req))
        data[at] ^= 0x10
        return bytes(data)

    return inner


@pytest.mark.parametrize(
    "bad",
    [
        lambda req: bp.encode_reply(req.opcode, req.seq + 1),  # wrong sequence number
        lambda req: bp.encode_reply(Op.PULSE, req.seq),  # wrong opcode
        _corrupt(ok(), 3),  # header bit flip
        _corrupt(ok(), 15),  # CRC bit flip
        lambda req: bp.encode_reply(req.opcode, req.seq, b"xyz")[:-2],  # truncated
        lambda req: b"\x00" + bp.encode_reply(req.opcode, req.seq),  # garbage before sync
        lambda req: bp.encode_reply(req.opcode, req.seq, b"\x00"),  # wrong payload size
    ],
)
def test_bad_reply_raises_protocol_error_and_the_next_command_works(bad):
    board, link = configured_link(bad, ok())
    resets = link.resets
    with pytest.raises(ProtocolError):
        board.all_off()
    assert link.resets > resets and link.inbox == bytearray()
    board.all_off()
    assert bp.decode_frame(link.written[-1]).seq == 4


def test_missing_reply_times_out_and_a_late_reply_is_dropped():
    board, link = configured_link(silence(), ok())
    with pytest.raises(TransportTimeout, match="no reply to ALL_OFF"):
        board.all_off()
    link.inbox += bp.encode_reply(Op.ALL_OFF, 3)  # the late reply arrives after the timeout
    board.all_off()
    assert link.inbox == bytearray()


def test_sequence_numbers_wrap():
    board, link = configured_link(ok(), ok())
    board._seq = 0xFFFE
    board.all_off()
    board.all_off()
    assert [bp.decode_frame(w).seq for w in link.written[-2:]] == [0xFFFF, 0]


def test_saturation_raises_unless_the_mask_is_asked_for():
    sat = np.array([False, True, False])
    currents = np.array([1e-5, 1e-3, 2e-5])
    board, _ = configured_link(ok(bp.pack_measurement(currents, sat), bp.FLAG_SATURATED),
                               ok(bp.pack_measurement(currents, sat), bp.FLAG_SATURATED))
    with pytest.raises(AdcSaturationError) as info:
        board.mvm_forward(np.zeros(4))
    assert info.value.code == Err.ADC_SATURATED and info.value.saturated.tolist() == sat.tolist()
    assert "1 of 3" in info.value.message
    reading = board.mvm_forward_reading(np.zeros(4))
    assert isinstance(reading, BoardReading) and reading.any_saturated
    assert reading.saturated.tolist() == sat.tolist()


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.mvm_forward(np.zeros(3)),
        lambda b: b.mvm_forward(np.array([0.1, np.nan, 0, 0])),
        lambda b: b.mvm_transpose(np.full(3, 2.0)),  # beyond the 1 V input range
        lambda b: b.read_cell(4, 0),
        lambda b: b.read_cell(0, -1),
        lambda b: b.read_cell(True, 0),
        lambda b: b.read_cell(0.5, 0),
        lambda b: b.pulse_cell(0, 0, 11.0, 1e-7),
        lambda b: b.pulse_cell(0, 0, 1.0, 1e-9),
        lambda b: b.pulse_cell(0, 0, float("inf"), 1e-7),
        lambda b: b.pulse_arrays([0, 1], [0], 1.0, 1e-7),
        lambda b: b.pulse_arrays([0, 5], [0, 1], 1.0, 1e-7),
        lambda b: b.pulse_arrays([0, 1], [0, 1], [1.0, 2.0, 3.0], 1e-7),
        lambda b: b.pulse_batch([Pulse(0, 0, 1.0, 1e-7), Pulse(0, 0, 1.0, 2.0)]),
        lambda b: b.outer_product_update(np.zeros((4, 2)), np.zeros((3, 3)), 1.0, 1e-7),
        lambda b: b.outer_product_update(np.full((4, 2), 2), np.zeros((3, 2)), 1.0, 1e-7),
        lambda b: b.route_smu(2, 0, 0),
        lambda b: b.configure(0.0, 1e-3),
        lambda b: b.configure(0.2, 1e-3, active_rows=5),
        lambda b: b.read_rows(4, 1),
        lambda b: b.read_rows(2, 3),
        lambda b: b.read_rows(0, 0),
    ],
)
def test_bad_arguments_raise_before_anything_is_sent(call):
    board, link = configured_link()
    sent = len(link.written)
    with pytest.raises(ValueError):
        call(board)
    assert len(link.written) == sent


def test_reading_before_configure_is_a_config_error():
    board = CrossbarBoard(ScriptedLink(ok(IDENTITY.pack())))
    board.identify()
    with pytest.raises(ConfigError, match="configure"):
        board.read_all()


def test_max_payload_option_is_checked():
    with pytest.raises(ConfigError, match="max_payload"):
        CrossbarBoard(ScriptedLink(), max_payload=16)


# -- end to end with the emulator -----------------------------------------------------------------
def physics_board(rows: int = 8, cols: int = 6, max_payload: int = bp.MAX_PAYLOAD, seed: int = 0, **emu_kwargs):
    """Driver ↔ emulator over the real physics, made deterministic (no read noise, no c2c spread, no
    wire resistance, ideal 24-bit TIAs) so results can be compared with the model."""
    clock = SimClock()
    device = make_device("rram", read_noise=0.0, c2c=0.0)
    model = CrossbarModel(rows, cols, device=device, seed=seed, clock=clock, wire_resistance=0.0, stuck_fraction=0.0)
    periphery = Periphery(rows, cols, seed=seed + 1, dac_bits=24, adc_bits=24, gain_sigma=0.0, offset_sigma=0.0,
                          noise=0.0, dac_gain_sigma=0.0, dac_offset_sigma=0.0)
    emulator = BoardEmulator(model, periphery, clock, **emu_kwargs)
    board = CrossbarBoard(EmulatorLink(emulator), max_payload=max_payload)
    board.identify()
    board.configure(0.2, 1e-3)
    return board, emulator, model


LSB = 2 * 1e-3 / 2**24  # A, one ADC step at the 1 mA TIA range


def ideal_currents(model: CrossbarModel, v_rows: np.ndarray) -> np.ndarray:
    """Column currents (A) of the ideal array for row voltages (V): Σ G·V0·sinh(V/V0)."""
    v = np.asarray(v_rows, dtype=np.float32).astype(float)
    return (model.conductance_map() * model.v0 * np.sinh(v[:, None] / model.v0)).sum(axis=0)


def read_conductance(model: CrossbarModel, read_voltage: float = float(np.float32(0.2))) -> np.ndarray:
    """What a read returns for the model's cells: I(V_read) / V_read (S), with the cells' sinh I–V."""
    return model.conductance_map() * model.v0 * np.sinh(read_voltage / model.v0) / read_voltage


def test_end_to_end_reads_and_mvm():
    board, emulator, model = physics_board()
    g = model.conductance_map()
    expected = read_conductance(model)
    np.testing.assert_allclose(board.read_all(), expected, rtol=1e-5, atol=LSB / 0.2)
    np.testing.assert_allclose(board.read_all_currents(), 0.2 * expected, rtol=1e-5, atol=LSB)
    assert board.read_cell(3, 4) == pytest.approx(expected[3, 4], rel=1e-5, abs=LSB / 0.2)
    np.testing.assert_allclose(board.read_cells([0, 7], [5, 1]), expected[[0, 7], [5, 1]], rtol=1e-5,
                               atol=LSB / 0.2)
    v = np.linspace(-0.2, 0.2, 8)
    np.testing.assert_allclose(board.mvm_forward(v), ideal_currents(model, v), rtol=1e-5, atol=LSB)
    u = np.linspace(0.3, -0.1, 6).astype(np.float32)
    i_rows = (g * model.v0 * np.sinh(u[None, :] / model.v0)).sum(axis=1)
    np.testing.assert_allclose(board.mvm_transpose(u), i_rows, rtol=1e-5, atol=LSB)
    t0 = emulator.clock.now
    status = board.status()
    assert status.configured and status.frames == 9 and t0 < status.board_time < emulator.clock.now


def test_end_to_end_pulse_batch_changes_only_the_pulsed_cells():
    board, _, model = physics_board()
    before, g0 = board.read_all(), model.conductance_map()
    board.pulse_batch([Pulse(1, 1, 2.0, 1e-6), Pulse(6, 2, -2.0, 1e-6), Pulse(1, 1, 2.0, 1e-6)])
    after, g1 = board.read_all(), model.conductance_map()
    assert np.argwhere(g1 != g0).tolist() == [[1, 1], [6, 2]]
    assert g1[1, 1] > g0[1, 1] and g1[6, 2] < g0[6, 2]
    moved = np.abs(after - before) > 1e-9
    assert np.argwhere(moved).tolist() == [[1, 1], [6, 2]]
    reading = board.pulse_arrays([2, 3], [2, 3], 1.5, 1e-7, readback=True)
    assert reading is not None and not reading.any_saturated
    np.testing.assert_allclose(reading.currents, 0.2 * read_conductance(model)[[2, 3], [2, 3]], rtol=1e-5,
                               atol=LSB)


def test_end_to_end_split_batches_match_a_single_frame():
    rng = np.random.default_rng(3)
    n = 300
    rows, cols = rng.integers(0, 8, n), rng.integers(0, 6, n)
    amps = rng.choice([-2.0, 2.0], n)
    small, emu_small, model_small = physics_board(max_payload=256)
    big, emu_big, model_big = physics_board()
    frames_before = emu_small.frames
    got_small = small.pulse_arrays(rows, cols, amps, 1e-6, readback=True)
    got_big = big.pulse_arrays(rows, cols, amps, 1e-6, readback=True)
    assert emu_small.frames - frames_before > 10 and emu_big.frames == 3
    np.testing.assert_allclose(model_small.conductance_map(), model_big.conductance_map(), rtol=1e-12)
    assert not np.allclose(model_big.conductance_map(), physics_board()[2].conductance_map())  # the pulses did act
    assert got_small is not None and got_big is not None
    np.testing.assert_allclose(got_small.currents, got_big.currents, rtol=1e-6)
    rt = rng.choice([-1, 0, 1], (8, 40))
    ct = rng.choice([-1, 0, 1], (6, 40))
    frames_before = emu_small.frames
    small.outer_product_update(rt, ct, 2.0, 1e-6)
    big.outer_product_update(rt, ct, 2.0, 1e-6)
    assert emu_small.frames - frames_before == 3  # 17 slots of 14 lines per 256-byte frame
    np.testing.assert_allclose(model_small.conductance_map(), model_big.conductance_map(), rtol=1e-12)


def test_end_to_end_read_all_in_blocks_when_the_reply_limit_is_small():
    board, emulator, model = physics_board(rows=32, cols=32, limits={"max_payload": 1024})
    frames = emulator.frames
    np.testing.assert_allclose(board.read_all(), read_conductance(model), rtol=1e-5, atol=LSB / 0.2)
    assert emulator.frames - frames == 5  # 7 rows of 32 samples per 1024-byte reply


def test_end_to_end_read_rows_reads_only_those_rows_in_blocks():
    board, emulator, model = physics_board(rows=32, cols=32, limits={"max_payload": 1024})
    frames, t0 = emulator.frames, emulator.clock.now
    np.testing.assert_allclose(board.read_rows(9, 10), read_conductance(model)[9:19], rtol=1e-5, atol=LSB / 0.2)
    assert emulator.frames - frames == 2  # 7 + 3 rows
    t_rows = emulator.clock.now - t0
    t0 = emulator.clock.now
    board.read_all()
    assert t_rows < 0.5 * (emulator.clock.now - t0)  # instrument time follows the rows read


def test_end_to_end_smu_routing():
    terminals = {0: SmuTerminal()}
    board, _, model = physics_board(smu_terminals=terminals, smu_ports=2)
    board.route_smu(0, 2, 3)
    assert terminals[0].load.current(0.1) == pytest.approx(0.1 * model.conductance_map()[2, 3], rel=0.01)
    with pytest.raises(InstrumentError) as info:
        board.read_all()
    assert info.value.code == Err.SMU_ROUTED
    board.unroute_smu(0)
    assert isinstance(terminals[0].load, OpenCircuit)
    board.route_smu(0, 1, 1)
    board.all_off()
    assert isinstance(terminals[0].load, OpenCircuit)
    board.read_all()


def test_end_to_end_out_of_limit_pulse_is_refused_by_the_board_and_nothing_changes():
    board, _, model = physics_board()
    assert board.hardware is not None
    # a driver with a stale idea of the limits: the board itself still refuses
    board.hardware = replace(board.hardware, limits=replace(board.hardware.limits, max_pulse_amplitude=20.0))
    before = model.conductance_map()
    with pytest.raises(InstrumentError) as info:
        board.pulse_batch([Pulse(0, 0, 2.0, 1e-6), Pulse(1, 1, 12.0, 1e-7)])
    assert info.value.code == Err.VOLTAGE_LIMIT and "pulse 1" in info.value.message
    np.testing.assert_array_equal(model.conductance_map(), before)


@pytest.mark.parametrize(
    ("fault", "exc"),
    [("corrupt_next", ProtocolError), ("drop_next", ProtocolError), ("timeout_next", TransportTimeout)],
)
def test_end_to_end_reply_faults_are_raised_and_the_link_recovers(fault, exc):
    board, emulator, model = physics_board()
    v = np.full(8, 0.1)
    emulator.faults = FaultPlan(**{fault: 1})
    with pytest.raises(exc):
        board.mvm_forward(v)
    np.testing.assert_allclose(board.mvm_forward(v), ideal_currents(model, v), rtol=1e-5, atol=LSB)


def test_end_to_end_a_faulty_link_never_returns_a_wrong_value():
    board, emulator, model = physics_board(rows=16, cols=16)
    emulator.faults = FaultPlan(corrupt_probability=0.3, drop_probability=0.1, timeout_probability=0.05, seed=7)
    v = np.linspace(-0.1, 0.1, 16)
    expected = ideal_currents(model, v)
    good = failed = 0
    for _ in range(300):
        try:
            out = board.mvm_forward(v)
        except (ProtocolError, TransportTimeout):
            failed += 1
        else:
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=LSB)
            good += 1
    assert good > 50 and failed > 50


def test_end_to_end_board_reset_is_reported_and_recoverable():
    board, emulator, _ = physics_board()
    emulator.faults = FaultPlan(reset_next=1)
    with pytest.raises(InstrumentError) as info:
        board.read_cell(0, 0)
    assert info.value.code == Err.NOT_CONFIGURED
    assert board.status().boot_count == 2
    board.configure(0.2, 1e-3)
    assert board.read_cell(0, 0) > 0
