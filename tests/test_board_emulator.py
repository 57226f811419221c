"""Board emulator: answers protocol v1 frames from the physics, refuses bad requests, keeps time."""

from __future__ import annotations

import numpy as np
import pytest
from board_doubles import Host
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarlab.protocol import board as bp
from xbarlab.protocol.board import Err, Op
from xbarlab.sim.array import CrossbarModel
from xbarlab.sim.board_emulator import BoardEmulator, BoardTiming
from xbarlab.sim.clock import SimClock
from xbarlab.sim.devices import make_device
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.periphery import Periphery
from xbarlab.sim.terminals import OpenCircuit, SmuTerminal

# -- the physics, made deterministic: no read noise, no cycle-to-cycle spread, no wires, ideal TIAs --------
IDEAL_DEVICE = {"read_noise": 0.0, "c2c": 0.0}
IDEAL_PERIPHERY = {"dac_bits": 24, "adc_bits": 24, "gain_sigma": 0.0, "offset_sigma": 0.0, "noise": 0.0,
                   "dac_gain_sigma": 0.0, "dac_offset_sigma": 0.0}


def make_model(rows: int, cols: int, clock: SimClock, seed: int = 5, kind: str = "1T1R", **device) -> CrossbarModel:
    return CrossbarModel(rows, cols, device=make_device("rram", **(IDEAL_DEVICE | device)), seed=seed, clock=clock,
                         kind=kind, wire_resistance=0.0, stuck_fraction=0.0)


def make_physics_board(rows: int = 8, cols: int = 6, *, seed: int = 5, periphery: dict | None = None, **kwargs):
    clock = SimClock()
    model = make_model(rows, cols, clock, seed)
    periph = Periphery(rows, cols, seed=seed + 1, **(IDEAL_PERIPHERY | (periphery or {})))
    emu = BoardEmulator(model, periph, clock, **kwargs)
    return emu, model, clock


def cell_i(model: CrossbarModel, g: np.ndarray, v) -> np.ndarray:
    """Ideal cell current (A) of conductance ``g`` at ``v`` V: I = G·V0·sinh(V/V0) (the model's I–V)."""
    return g * model.v0 * np.sinh(np.asarray(v, dtype=float) / model.v0)


V_READ = float(np.float32(0.2))  # the read voltage as the board holds it (float32 on the wire)
LSB = 2 * 1e-3 / 2**24  # A, one ADC step at the 1 mA TIA range


@pytest.fixture
def board():
    emu, model, clock = make_physics_board()
    host = Host(emu)
    host.configure(8, 6)
    return host, emu, model, clock


# -- identity, configuration -------------------------------------------------------------------
def test_identify_reports_array_and_limits():
    emu, _, _ = make_physics_board(identity="test board", smu_ports=2, limits={"max_pulse_amplitude": 4.0})
    ident = bp.BoardIdentity.unpack(Host(emu).ok(Op.IDENTIFY))
    assert (ident.identity, ident.rows, ident.cols, ident.smu_ports) == ("test board", 8, 6, 2)
    assert ident.array_kind == bp.ArrayKind.ONE_T_ONE_R and ident.protocol_version == 1
    assert ident.limits.max_pulse_amplitude == 4.0 and ident.limits.min_pulse_width_ns == 10


def test_array_commands_refused_before_configure_and_configure_checks_limits():
    emu, _, _ = make_physics_board()
    host = Host(emu)
    assert host.error(Op.READ_CELL, bp.pack_cell(0, 0))[0] == Err.NOT_CONFIGURED
    assert host.error(Op.CONFIGURE, bp.Configuration(9, 6, 0.2, 1e-3).pack())[0] == Err.BAD_REGION
    assert host.error(Op.CONFIGURE, bp.Configuration(8, 6, 1.5, 1e-3).pack())[0] == Err.VOLTAGE_LIMIT
    assert host.error(Op.CONFIGURE, bp.Configuration(8, 6, 0.0, 1e-3).pack())[0] == Err.VOLTAGE_LIMIT
    assert host.error(Op.CONFIGURE, bp.Configuration(8, 6, 0.2, 1.0).pack())[0] == Err.TIA_RANGE
    assert host.error(Op.CONFIGURE, bp.Configuration(8, 6, float("nan"), 1e-3).pack())[0] == Err.BAD_VALUE
    assert not emu.configured
    request = bp.Configuration(4, 3, 0.2, 1e-3).pack()
    assert host.ok(Op.CONFIGURE, request) == request
    status = bp.BoardStatus.unpack(host.ok(Op.GET_STATUS))
    assert status.configured and (status.active_rows, status.active_cols) == (4, 3)
    assert status.error_count == 6 and status.frames == 8


def test_bad_requests_get_error_codes(board):
    host, *_ = board
    assert host.error(Op.IDENTIFY, b"x")[0] == Err.BAD_LENGTH
    assert host.error(0x7E)[0] == Err.UNKNOWN_OPCODE  # type: ignore[arg-type]
    assert host.error(Op.READ_CELL, bp.pack_cell(8, 0))[0] == Err.INDEX_RANGE
    assert host.error(Op.READ_ALL, bp.pack_read_all(4, 5))[0] == Err.INDEX_RANGE
    assert host.error(Op.MVM_FORWARD, bp.pack_vector(np.zeros(7)))[0] == Err.VECTOR_LENGTH
    assert host.error(Op.MVM_FORWARD, bp.pack_vector(np.full(8, 1.5)))[0] == Err.VOLTAGE_LIMIT
    nan = np.zeros(6)
    nan[2] = np.nan
    assert host.error(Op.MVM_TRANSPOSE, bp.pack_vector(nan))[0] == Err.BAD_VALUE


def test_version_mismatch_is_refused(board):
    host, *_ = board
    (reply,) = host.send_raw(bp.encode_frame(Op.IDENTIFY, 5, version=2))
    assert reply.status == bp.Status.ERROR and bp.unpack_error(reply.payload)[0] == Err.BAD_VERSION


# -- reads and MVM ------------------------------------------------------------------------------------
def test_reads_and_mvm_follow_the_physics(board):
    host, _, model, _ = board
    g = model.conductance_map()
    values, mask = bp.unpack_measurement(host.ok(Op.READ_ALL, bp.pack_read_all(0, 8)), 48)
    np.testing.assert_allclose(values.reshape(8, 6), cell_i(model, g, V_READ), rtol=1e-5, atol=LSB)
    assert not mask.any()
    values, _ = bp.unpack_measurement(host.ok(Op.READ_ALL, bp.pack_read_all(2, 3)), 18)
    np.testing.assert_allclose(values.reshape(3, 6), cell_i(model, g[2:5], V_READ), rtol=1e-5, atol=LSB)
    value, _ = bp.unpack_measurement(host.ok(Op.READ_CELL, bp.pack_cell(5, 4)), 1)
    assert value[0] == pytest.approx(cell_i(model, g[5, 4], V_READ), rel=1e-5, abs=LSB)
    cells, _ = bp.unpack_measurement(host.ok(Op.READ_CELLS, bp.pack_cells(np.array([1, 7, 1]), np.array([0, 5, 0]))), 3)
    np.testing.assert_allclose(cells, cell_i(model, g[[1, 7, 1], [0, 5, 0]], V_READ), rtol=1e-5, atol=LSB)
    v = np.linspace(-0.3, 0.3, 8).astype(np.float32)
    out, _ = bp.unpack_measurement(host.ok(Op.MVM_FORWARD, bp.pack_vector(v)), 6)
    np.testing.assert_allclose(out, cell_i(model, g, v[:, None]).sum(axis=0), rtol=1e-5, atol=LSB)
    u = np.linspace(0.1, -0.2, 6).astype(np.float32)
    out, _ = bp.unpack_measurement(host.ok(Op.MVM_TRANSPOSE, bp.pack_vector(u)), 8)
    np.testing.assert_allclose(out, cell_i(model, g, u[None, :]).sum(axis=1), rtol=1e-5, atol=LSB)


def test_reads_go_through_the_dac_and_the_tia_errors():
    emu, model, _ = make_physics_board(periphery={"dac_bits": 4, "gain_sigma": 0.05})
    host = Host(emu)
    host.configure(8, 6, read_voltage=0.2)
    g = model.conductance_map()
    values, _ = bp.unpack_measurement(host.ok(Op.READ_ALL, bp.pack_read_all(0, 8)), 48)
    # 4-bit DAC over +-1 V: 0.2 V is applied as 0.25 V; each column's TIA has its own gain error
    ratio = values.reshape(8, 6) / cell_i(model, g, 0.25)
    np.testing.assert_allclose(ratio, np.broadcast_to(emu.periphery.gain["col"], (8, 6)), rtol=1e-4)
    assert np.std(emu.periphery.gain["col"]) > 0.01


def test_active_region_restricts_inputs_and_outputs(board):
    host, _, model, _ = board
    host.configure(3, 2)
    v = np.array([0.1, 0.2, -0.1], dtype=np.float32)
    out, _ = bp.unpack_measurement(host.ok(Op.MVM_FORWARD, bp.pack_vector(v)), 2)
    g = model.conductance_map()[:3, :2]
    np.testing.assert_allclose(out, cell_i(model, g, v[:, None]).sum(axis=0), rtol=1e-5, atol=LSB)
    assert host.error(Op.READ_CELL, bp.pack_cell(0, 2))[0] == Err.INDEX_RANGE


def test_saturated_samples_are_flagged(board):
    host, emu, model, _ = board
    for r in range(8):
        emu.inject_dead_cell(r, 3, mode="on")  # column 3 at g_max: 8 x 100 uS x 0.52 V > 300 uA
    host.configure(8, 6, read_voltage=0.5, tia=3e-4)  # other columns (<= 8 x 60 uS) stay below
    reply = host.call(Op.MVM_FORWARD, bp.pack_vector(np.full(8, 0.5)))
    values, mask = bp.unpack_measurement(reply.payload, 6)
    assert reply.flags & bp.FLAG_SATURATED
    assert mask.tolist() == [False, False, False, True, False, False]
    assert values[3] == pytest.approx(3e-4)
    cell = host.call(Op.READ_CELL, bp.pack_cell(0, 0))
    assert cell.flags == 0 and not bp.unpack_measurement(cell.payload, 1)[1][0]


def test_oversized_read_reply_is_refused():
    emu, _, _ = make_physics_board(rows=64, cols=64, limits={"max_payload": 4096})
    host = Host(emu)
    host.configure(64, 64)
    assert host.error(Op.READ_ALL, bp.pack_read_all(0, 64))[0] == Err.FRAME_TOO_LARGE
    bp.unpack_measurement(host.ok(Op.READ_ALL, bp.pack_read_all(0, 15)), 15 * 64)


# -- programming ------------------------------------------------------------------------------------
def _pulses(rows, cols, amps, widths_ns) -> np.ndarray:
    rec = np.zeros(len(rows), dtype=bp.PULSE_RECORD)
    rec["row"], rec["col"], rec["amplitude"], rec["width_ns"] = rows, cols, amps, widths_ns
    return rec


def twin(model: CrossbarModel, seed: int = 5) -> CrossbarModel:
    """An identical array in the same initial state (same seed), programmed directly."""
    return make_model(model.rows, model.cols, SimClock(), seed)


@pytest.mark.parametrize(
    ("pulse", "code"),
    [
        ((2, 3, 12.0, 100), Err.VOLTAGE_LIMIT),
        ((2, 3, -10.5, 100), Err.VOLTAGE_LIMIT),
        ((2, 3, float("inf"), 100), Err.BAD_VALUE),
        ((2, 3, 1.0, 5), Err.WIDTH_LIMIT),
        ((2, 3, 1.0, 2_000_000_000), Err.WIDTH_LIMIT),
        ((8, 3, 1.0, 100), Err.INDEX_RANGE),
    ],
)
def test_out_of_limit_pulse_is_refused_and_nothing_changes(board, pulse, code):
    host, _, model, clock = board
    before = model.conductance_map()
    assert host.error(Op.PULSE, bp.pack_pulse(*pulse))[0] == code
    np.testing.assert_array_equal(model.conductance_map(), before)


def test_pulse_batch_with_one_bad_pulse_applies_nothing(board):
    host, _, model, _ = board
    before = model.conductance_map()
    rec = _pulses([0, 1, 2], [0, 1, 2], [2.0, 11.0, 2.0], [1000, 1000, 1000])
    code, message = host.error(Op.PULSE_BATCH, bp.pack_pulse_batch(rec))
    assert code == Err.VOLTAGE_LIMIT and "pulse 1" in message
    np.testing.assert_array_equal(model.conductance_map(), before)


def test_pulse_batch_applies_in_order_and_reads_back(board):
    host, _, model, clock = board
    before = model.conductance_map()
    rows, cols, amps, widths = [1, 4, 1], [2, 5, 2], [2.0, -2.0, 1.5], [1000, 2000, 500]
    t0 = clock.now
    values, mask = bp.unpack_measurement(
        host.ok(Op.PULSE_BATCH, bp.pack_pulse_batch(_pulses(rows, cols, amps, widths), readback=True)), 3
    )
    after = model.conductance_map()
    reference = twin(model)
    reference.apply_pulses(np.array(rows), np.array(cols), np.array(amps), np.array(widths) * 1e-9)
    np.testing.assert_allclose(after, reference.conductance_map(), rtol=1e-12)
    assert after[1, 2] > before[1, 2] and after[4, 5] < before[4, 5]
    changed = np.argwhere(after != before).tolist()
    assert changed == [[1, 2], [4, 5]]
    np.testing.assert_allclose(values, cell_i(model, after[rows, cols], V_READ), rtol=1e-5, atol=LSB)
    assert not mask.any()
    assert clock.now - t0 > 3.5e-6 + 3 * 1e-6  # pulse widths + gaps are on the clock


def test_outer_product_update(board):
    host, _, model, _ = board
    before = model.conductance_map()
    rt = np.zeros((8, 2), dtype=np.int8)
    ct = np.zeros((6, 2), dtype=np.int8)
    rt[1, 0], ct[2, 0] = 1, 1
    rt[3, 1], ct[4, 1] = 1, -1
    host.ok(Op.OUTER_PRODUCT, bp.pack_outer_product(2.0, 1000, rt, ct))
    after = model.conductance_map()
    assert after[1, 2] > before[1, 2] and after[3, 4] < before[3, 4]
    assert np.argwhere(after != before).tolist() == [[1, 2], [3, 4]]
    reference = twin(model)
    reference.outer_product_update(rt, ct, 2.0, 1e-6)
    np.testing.assert_allclose(after, reference.conductance_map(), rtol=1e-12)
    rt[0, 0] = 2
    assert host.error(Op.OUTER_PRODUCT, bp.pack_outer_product(1.0, 100, rt, ct))[0] == Err.BAD_VALUE
    rt[0, 0] = 0
    ct[5, 1] = -128  # int8 -128 is its own absolute value: refused all the same, and nothing applied
    settled = model.conductance_map()
    assert host.error(Op.OUTER_PRODUCT, bp.pack_outer_product(1.0, 100, rt, ct))[0] == Err.BAD_VALUE
    np.testing.assert_array_equal(model.conductance_map(), settled)
    ct[5, 1] = 0
    assert host.error(Op.OUTER_PRODUCT, bp.pack_outer_product(float("nan"), 100, rt, ct))[0] == Err.BAD_VALUE
    assert host.error(Op.OUTER_PRODUCT, bp.pack_outer_product(10.5, 100, rt, ct))[0] == Err.VOLTAGE_LIMIT
    assert host.error(Op.OUTER_PRODUCT, bp.pack_outer_product(1.0, 0, rt, ct))[0] == Err.WIDTH_LIMIT
    assert host.error(Op.OUTER_PRODUCT, bp.pack_outer_product(1.0, 100, rt[:7], ct))[0] == Err.VECTOR_LENGTH


def test_dead_cell_injection(board):
    host, emu, model, _ = board
    g = model.conductance_map()[2, 2]
    emu.inject_dead_cell(2, 2, mode="off")
    assert model.stuck_mask[2, 2] == 1
    value, _ = bp.unpack_measurement(host.ok(Op.READ_CELL, bp.pack_cell(2, 2)), 1)
    assert value[0] < 0.1 * cell_i(model, g, V_READ)
    with pytest.raises(ValueError, match="outside"):
        emu.inject_dead_cell(8, 0)


# -- SMU routing ------------------------------------------------------------------------------------
def test_route_smu_connects_the_cell_load_and_interlocks_the_array():
    terminals = {0: SmuTerminal(), 1: SmuTerminal()}
    emu, model, _ = make_physics_board(smu_terminals=terminals)
    host = Host(emu)
    host.configure(8, 6)
    host.ok(Op.ROUTE_SMU, bp.pack_route(0, 3, 4))
    g = model.conductance_map()[3, 4]
    assert terminals[0].load.current(0.1) == pytest.approx(cell_i(model, g, 0.1), rel=1e-6)
    assert terminals[0].load.describe() == "cell (3, 4)"
    assert host.error(Op.READ_ALL, bp.pack_read_all(0, 8))[0] == Err.SMU_ROUTED
    assert host.error(Op.PULSE, bp.pack_pulse(0, 0, 1.0, 100))[0] == Err.SMU_ROUTED
    assert host.error(Op.ROUTE_SMU, bp.pack_route(1, 3, 0))[0] == Err.ROUTE_CONFLICT
    assert host.error(Op.ROUTE_SMU, bp.pack_route(4, 0, 0))[0] == Err.BAD_PORT
    host.ok(Op.ROUTE_SMU, bp.pack_route(1, 5, 1))
    assert bp.BoardStatus.unpack(host.ok(Op.GET_STATUS)).routed_ports == 0b11
    host.ok(Op.UNROUTE_SMU, bp.pack_port(0))
    assert isinstance(terminals[0].load, OpenCircuit)
    host.ok(Op.ALL_OFF)
    assert isinstance(terminals[1].load, OpenCircuit)
    bp.unpack_measurement(host.ok(Op.READ_ALL, bp.pack_read_all(0, 8)), 48)  # interlock released


def test_terminals_on_missing_ports_are_refused():
    with pytest.raises(ValueError, match="port"):
        make_physics_board(smu_terminals={5: SmuTerminal()})


# -- link errors and resets -------------------------------------------------------------------------
def test_bad_crc_from_host_gets_a_crc_error_reply_and_nothing_runs(board):
    host, _, model, _ = board
    before = model.conductance_map()
    frame = bytearray(bp.encode_request(Op.PULSE, 42, bp.pack_pulse(0, 0, 1.0, 100)))
    frame[20] ^= 0x08
    (reply,) = host.send_raw(bytes(frame))
    assert reply.status == bp.Status.ERROR and reply.seq == 42 and reply.opcode == Op.PULSE | 0x80
    assert bp.unpack_error(reply.payload)[0] == Err.BAD_CRC
    np.testing.assert_array_equal(model.conductance_map(), before)


def test_bad_header_is_answered_once_then_the_board_resynchronises(board):
    host, emu, _, _ = board
    frame = bytearray(bp.encode_request(Op.MVM_FORWARD, 5, bp.pack_vector(np.full(8, 0.1))))
    frame[4] ^= 0x01
    junk = b"\xa5\x5a" * 3
    replies = host.send_raw(bytes(frame) + junk + bp.encode_request(Op.IDENTIFY, 6))
    assert [bp.unpack_error(r.payload)[0] for r in replies[:-1]] == [Err.BAD_HEADER]
    assert replies[-1].seq == 6 and replies[-1].status == bp.Status.OK
    assert bp.BoardStatus.unpack(host.ok(Op.GET_STATUS)).link_errors >= 2


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 50))
def test_garbage_never_breaks_the_receiver(garbage, chunk):
    emu, _, _ = make_physics_board()
    stream = garbage + bp.SYNC[:1] + bp.encode_request(Op.IDENTIFY, 1234)
    for i in range(0, len(stream), chunk):
        emu.feed(stream[i : i + chunk])
    replies = bp.split_frames(bytearray(emu.read_output()))
    assert len(replies) <= 2  # at most one BAD_HEADER for the garbage, then the answer
    last = replies[-1]
    assert isinstance(last, bp.Frame) and last.seq == 1234 and last.status == bp.Status.OK


def test_oversized_frame_gets_one_error_reply_only(board):
    host, emu, _, _ = board
    big = bp.encode_frame(Op.PULSE_BATCH, 11, bytes([0xA5, 0x5A]) * 40000, max_payload=1 << 20)
    replies = host.send_raw(big + bp.encode_request(Op.IDENTIFY, 12))
    assert [r.seq for r in replies] == [11, 12]
    assert bp.unpack_error(replies[0].payload)[0] == Err.FRAME_TOO_LARGE


def test_frames_fed_byte_by_byte_are_answered(board):
    host, emu, _, _ = board
    frame = bp.encode_request(Op.READ_CELL, 77, bp.pack_cell(1, 1))
    for i in range(len(frame) - 1):
        emu.feed(frame[i : i + 1])
        assert emu.pending_output() == 0
    emu.feed(frame[-1:])
    assert bp.decode_frame(emu.read_output()).seq == 77


def test_power_on_reset_forgets_configuration():
    terminals = {0: SmuTerminal()}
    emu, _, _ = make_physics_board(smu_terminals=terminals, faults=FaultPlan(reset_next=0))
    host = Host(emu)
    host.configure(8, 6)
    host.ok(Op.ROUTE_SMU, bp.pack_route(0, 1, 1))
    emu.faults.reset_next = 1
    assert host.error(Op.READ_CELL, bp.pack_cell(0, 0))[0] == Err.NOT_CONFIGURED
    assert isinstance(terminals[0].load, OpenCircuit)
    status = bp.BoardStatus.unpack(host.ok(Op.GET_STATUS))
    assert status.boot_count == 2 and not status.configured and status.routed_ports == 0


# -- timing -----------------------------------------------------------------------------------------
def test_clock_advances_by_transfer_conversion_and_overhead(board):
    host, emu, _, clock = board
    timing = emu.timing
    t0 = clock.now
    host.ok(Op.MVM_FORWARD, bp.pack_vector(np.full(8, 0.1)))
    request, reply = bp.OVERHEAD + 32, bp.OVERHEAD + bp.measurement_size(6)
    expected = timing.transfer(request + reply) + timing.command_overhead + timing.conversions(6)
    assert clock.now - t0 == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx((50 + 43) * 10 / 921600 + 20e-6 + 5e-6 + 60e-6)


def test_limits_and_timing_from_dicts_are_validated():
    emu, _, _ = make_physics_board(timing={"baud_rate": 115200, "adc_channels": 4})
    assert emu.timing == BoardTiming(baud_rate=115200, adc_channels=4)
    with pytest.raises(ValueError, match="expected some of"):
        make_physics_board(timing={"baud": 1})
    with pytest.raises(ValueError, match="max_pulse_amplitude"):
        make_physics_board(limits={"max_pulse_amplitude": -1.0})


# -- with realistic non-idealities (read noise, c2c spread, IR drop, TIA gain/offset errors) -------------
def real_board(rows: int = 8, cols: int = 8):
    clock = SimClock()
    model = CrossbarModel(rows, cols, device=make_device("rram"), kind="1T1R", wire_resistance=0.35,
                          stuck_fraction=0.0, seed=11, clock=clock)
    periph = Periphery(rows, cols, seed=12)  # literature defaults: 2 % gain, 2e-4 FS offset, 18-bit ADC
    terminals = {0: SmuTerminal()}
    emu = BoardEmulator(model, periph, clock, smu_terminals=terminals)
    host = Host(emu)
    host.configure(rows, cols, tia=1e-4)
    return host, emu, model, terminals


def test_real_physics_reads_and_mvm_match_the_conductance_map():
    host, _, model, _ = real_board()
    g = model.conductance_map()
    values, mask = bp.unpack_measurement(host.ok(Op.READ_ALL, bp.pack_read_all(0, 8)), 64)
    assert not mask.any()
    np.testing.assert_allclose(values.reshape(8, 8) / np.float32(0.2), g, rtol=0.08, atol=0.01 * g.max())
    v = np.linspace(-0.2, 0.2, 8)
    out, _ = bp.unpack_measurement(host.ok(Op.MVM_FORWARD, bp.pack_vector(v)), 8)
    expected = g.T @ v
    assert np.max(np.abs(out - expected)) < 0.05 * np.max(np.abs(g)) * np.sum(np.abs(v))


def test_real_physics_pulses_move_the_cell_in_the_pulse_direction():
    host, _, model, _ = real_board()
    before = model.conductance_map()
    n = 50
    host.ok(Op.PULSE_BATCH, bp.pack_pulse_batch(_pulses([2] * n, [3] * n, [-3.0] * n, [1000] * n)))
    g_reset = model.conductance_map()[2, 3]
    host.ok(Op.PULSE_BATCH, bp.pack_pulse_batch(_pulses([2] * n, [3] * n, [3.0] * n, [1000] * n)))
    after = model.conductance_map()
    assert after[2, 3] > g_reset
    others = np.ones_like(before, dtype=bool)
    others[2, 3] = False
    np.testing.assert_allclose(after[others], before[others], rtol=1e-9)  # 1T1R: no disturb elsewhere


def test_real_physics_saturation_routing_and_dead_cells():
    host, emu, model, terminals = real_board()
    host.configure(8, 8, read_voltage=0.5, tia=1e-6)
    reply = host.call(Op.MVM_FORWARD, bp.pack_vector(np.full(8, 0.5)))
    assert reply.flags & bp.FLAG_SATURATED and bp.unpack_measurement(reply.payload, 8)[1].all()
    host.configure(8, 8)
    host.ok(Op.ROUTE_SMU, bp.pack_route(0, 4, 5))
    g = model.conductance_map()[4, 5]
    assert terminals[0].load.current(0.1) == pytest.approx(0.1 * g, rel=0.1)
    host.ok(Op.ALL_OFF)
    emu.inject_dead_cell(4, 5, "off")
    assert model.stuck_mask[4, 5] == 1
    value, _ = bp.unpack_measurement(host.ok(Op.READ_CELL, bp.pack_cell(4, 5)), 1)
    assert abs(value[0]) < 0.2 * 0.2 * g
