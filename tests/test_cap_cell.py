"""3T1C capacitor cells: physics (sim/cap_cell.py), board commands 0x70–0x76, driver, safety (emulator side)."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.errors import ConfigError, SafetyLimitError
from xbarlab.instruments.station import Station
from xbarlab.protocol import board as bp
from xbarlab.protocol import cap as cp
from xbarlab.protocol.board import Err, Op
from xbarlab.sim.audit import BoardAuditLimits, WireAudit
from xbarlab.sim.cap_cell import CapacitorArray, CapCellParams
from xbarlab.sim.clock import SimClock
from xbarlab.sim.stations import sim_station_text


def _array(**params) -> tuple[CapacitorArray, SimClock]:
    clock = SimClock()
    return CapacitorArray(8, 8, CapCellParams(**params), seed=3, clock=clock), clock


# -- physics ------------------------------------------------------------------------------------------------
def test_charge_steps_move_g_both_ways_and_rails_hold():
    a, _ = _array()
    g0 = a.conductance_map()
    a.step(np.array([0, 1]), np.array([0, 0]), np.array([10, -10]))
    g1 = a.conductance_map()
    assert g1[0, 0] > g0[0, 0] and g1[1, 0] < g0[1, 0]
    assert np.array_equal(g1[2:], g0[2:])  # untouched cells unchanged (no clock advance)
    a.step(np.array([2, 3]), np.array([0, 0]), np.array([255, -255]))
    a.step(np.array([2, 3]), np.array([0, 0]), np.array([255, -255]))
    v = a.voltages()
    assert v[2, 0] <= a.params.v_dd and v[3, 0] >= 0.0
    assert v[2, 0] > 0.95 * a.params.v_dd and v[3, 0] < 0.05  # driven into the rails, not beyond


def test_up_and_down_steps_differ_cell_to_cell():
    """Charge and discharge paths are mismatched per cell (the asymmetry polarity inversion cancels)."""
    a, _ = _array(step_c2c=0.0)
    n = 8
    rows, cols = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    v0 = a.voltages()
    a.step(rows, cols, np.full(rows.size, 5))
    v_up = a.voltages()
    a.step(rows, cols, np.full(rows.size, -5))
    back = a.voltages() - v0  # up then down by the same count: a net drift per cell
    assert np.std(back) > 0.005 and np.abs(back).max() > 0.01
    assert np.all(v_up > v0)


def test_leakage_follows_the_clock():
    a, clock = _array(tau=2.0, tau_d2d=0.0, v_leak=0.0)
    v0 = a.voltages().copy()
    clock.advance(2.0)
    assert a.voltages() == pytest.approx(v0 * np.exp(-1.0), rel=1e-9)
    b, _ = _array(tau=2.0, tau_d2d=0.0)
    assert np.array_equal(b.voltages(), v0)  # no time, no leakage


def test_read_transistor_is_nonlinear():
    """Equal voltage steps give unequal conductance steps: sub-threshold near V_th, mobility roll-off above."""
    a, _ = _array(v_th_sigma=0.0, beta_d2d=0.0)
    v = np.linspace(0.2, 1.0, 9)
    g = np.array([a.conductance_of(np.full((8, 8), x))[0, 0] for x in v])
    dg = np.diff(g)
    assert np.all(dg > 0)
    assert dg[0] < 0.5 * dg[3]  # below/near threshold: small slope
    assert dg[-1] < 0.9 * dg[3]  # mobility degradation: slope falls at high overdrive


# -- board commands and driver ------------------------------------------------------------------------------
def _station(cap: dict | None = None, **kw) -> Station:
    return Station.from_text(sim_station_text(rows=8, cols=8, device="pcm", cap_cells=cap, **kw))


def test_driver_round_trip_and_board_time():
    with _station({}) as st:
        b = st.board
        b.configure(0.2, 1e-4)
        info = b.cap_info()
        assert (info.rows, info.cols, info.revision) == (8, 8, cp.CAP_REVISION)
        g0 = b.cap_read_cells([0, 0], [0, 1])
        t0 = st.sim.clock.now
        assert b.cap_update([0, 0], [0, 1], [30, -30]) == 60
        assert st.sim.clock.now - t0 >= 60 * info.step_time
        g1 = b.cap_read_cells([0, 0], [0, 1])
        assert g1[0] - g0[0] > 1e-6 and g0[1] - g1[1] > 1e-6
        full = b.cap_read_all()
        assert full.shape == (8, 8) and full[0, 0] == pytest.approx(g1[0], rel=0.05)
        x = np.zeros(8)
        x[0] = 0.1
        assert b.cap_mvm_forward(x)[:2] / 0.1 == pytest.approx(g1, abs=0.3e-6)  # TIA offsets at 0.1 V
        b.cap_reset([0, 0], [0, 1])
        assert b.cap_read_cells([0, 0], [0, 1]) == pytest.approx(g0, rel=0.05)


def test_board_without_capacitors_says_so():
    with _station(None) as st:
        st.board.configure(0.2, 1e-4)
        with pytest.raises(ConfigError, match="no 3T1C capacitor array"):
            st.board.cap_info()


def test_emulator_refuses_bad_requests():
    with _station({}) as st:
        board = st.sim.board

        def ask(op: Op, payload: bytes) -> tuple[int, bytes]:
            board.feed(bp.encode_request(op, 7, payload))
            frame = bp.decode_frame(board.read_output(1 << 20))
            return frame.status, frame.payload

        board.power_on_reset()  # the board forgets its configuration
        status, payload = ask(Op.CAP_UPDATE, cp.pack_cap_update(np.array([0]), np.array([0]), np.array([5])))
        assert status == 1 and bp.unpack_error(payload)[0] == Err.NOT_CONFIGURED
        st.board.configure(0.2, 1e-4)
        status, payload = ask(Op.CAP_UPDATE, cp.pack_cap_update(np.array([0]), np.array([0]), np.array([300])))
        assert status == 1 and bp.unpack_error(payload)[0] == Err.BAD_VALUE
        status, payload = ask(Op.CAP_RESET, bp.pack_cells(np.array([9]), np.array([0])))
        assert status == 1 and bp.unpack_error(payload)[0] == Err.INDEX_RANGE
        status, payload = ask(Op.CAP_UPDATE, b"\x00" * 5)
        assert status == 1 and bp.unpack_error(payload)[0] == Err.BAD_LENGTH


def test_station_schema_names_a_bad_cap_key():
    text = sim_station_text(rows=8, cols=8, device="pcm", cap_cells={"taux": 1.0})
    with pytest.raises(ConfigError, match=r"sim\.cap_cells.*taux.*did you mean 'tau'"):
        Station.from_text(text)
    with pytest.raises(ConfigError, match=r"sim\.cap_cells\.v_reset"):
        Station.from_text(sim_station_text(rows=8, cols=8, device="pcm", cap_cells={"v_reset": 2.0}))


# -- safety, proven from the emulator's side ----------------------------------------------------------------
def test_safety_capacitor_inputs_never_reach_the_board_beyond_limits():
    """Every CAP request the board receives is decoded here: MVM inputs stay within max_mvm_voltage and reads
    run at a checked read voltage, whatever the caller asks."""
    with _station({}) as st:
        board = st.sim.board
        seen: list[bp.Frame] = []
        buf = bytearray()

        def tap(data: bytes) -> None:
            buf.extend(data)
            seen.extend(f for f in bp.split_frames(buf) if isinstance(f, bp.Frame))

        board.add_tap(tap)
        b = st.board
        limit = b.limits.max_mvm_voltage
        b.configure(0.2, 1e-4)
        for v in (limit, np.nextafter(limit, 1.0), 2 * limit, 10.0, float("nan"), float("inf")):
            for method in (b.cap_mvm_forward, b.cap_mvm_transpose):
                x = np.zeros(8)
                x[3] = v
                try:
                    method(x)
                except SafetyLimitError:
                    pass
        for steps in ([1.5], ["x"], [10**7]):
            with pytest.raises(SafetyLimitError):
                b.cap_update([0], [0], steps)
        with pytest.raises(SafetyLimitError):
            b.configure(0.6, 1e-4)
        b.cap_read_all()
        cap_ops = {Op.CAP_MVM_FORWARD, Op.CAP_MVM_TRANSPOSE}
        mvms = [f for f in seen if f.opcode in cap_ops]
        assert len(mvms) == 2  # only the two at the limit itself went out
        for f in mvms:
            assert np.all(np.abs(np.frombuffer(f.payload, dtype="<f4")) <= np.float32(limit))
        assert not any(f.opcode == Op.CAP_UPDATE for f in seen)
        configs = [bp.Configuration.unpack(f.payload) for f in seen if f.opcode == Op.CONFIGURE]
        assert all(abs(c.read_voltage) <= b.limits.max_read_voltage for c in configs)


def test_wire_audit_watches_capacitor_frames():
    """The project's wire audit (sim/audit.py) parses CAP MVM/read frames: raw traffic beyond the limit is
    flagged (so it can fail), traffic through the station is not."""
    with _station({}) as st:
        lim = st.board.limits
        audit = WireAudit()
        audit.watch_board(st.sim.board, "board", BoardAuditLimits(
            lim.max_read_voltage, lim.max_mvm_voltage, lim.max_pulse_amplitude, lim.min_pulse_width,
            lim.max_pulse_width, lim.max_tia_range))
        b = st.board
        b.configure(0.2, 1e-4)
        for v in (0.5, 0.7, -3.0):
            for method in (b.cap_mvm_forward, b.cap_mvm_transpose):
                try:
                    method(np.full(8, v))
                except SafetyLimitError:
                    pass
        b.cap_read_cells([1, 2], [3, 4])
        assert not audit.violations, audit.violations
        st.sim.board.feed(bp.encode_request(Op.CAP_MVM_FORWARD, 99, bp.pack_vector(np.full(8, 0.9))))
        assert [v.quantity for v in audit.violations] == ["MVM input voltage (V)"]
        audit.close()


def test_capacitor_commands_are_registered_operations():
    with _station({}) as st:
        ops = st.board.OPERATIONS
        for name in ("cap_info", "cap_update", "cap_reset", "cap_read_cells", "cap_read_all", "cap_mvm_forward",
                     "cap_mvm_transpose"):
            assert ops[name].startswith(("checked:", "query:"))
