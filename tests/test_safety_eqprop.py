"""Equilibrium-network mode: safety seen from the emulator's side (what the board received)."""

from __future__ import annotations

import numpy as np
import pytest
import serial
from safety_bench import bench_text

from xbarlab.errors import SafetyLimitError
from xbarlab.instruments.station import Station
from xbarlab.protocol import board as bp
from xbarlab.protocol import eqprop as eqp
from xbarlab.sim import audit

NET = eqp.EqConfig((2, 2, 2), ((0, 0), (6, 2)), bias_voltage=0.2, amp_gain=4.0, amp_rail=0.4)


@pytest.fixture()
def audited():
    station = Station.from_text(bench_text(rows=12, cols=6))
    wire, physics = audit.attach(station.sim, station.config.instruments.values())
    yield station, wire, physics
    wire.close()
    physics.close()
    station.close()


def _eq_frames(wire: audit.WireAudit) -> list[str]:
    return [m for n, m in wire.messages if n == "board" and m.startswith("EQ_")]


def test_refused_operations_send_nothing(audited):
    station, wire, physics = audited
    board = station.board
    limits = board.limits
    assert limits.max_mvm_voltage == 0.5 and limits.max_injection_current == 1e-3
    board.eq_configure(NET)
    before = list(_eq_frames(wire))
    attempts = [
        lambda: board.eq_configure(eqp.EqConfig((2, 2, 2), ((0, 0), (6, 2)), amp_rail=0.6)),
        lambda: board.eq_configure(eqp.EqConfig((2, 2, 2), ((0, 0), (6, 2)), bias_voltage=-0.51)),
        lambda: board.eq_configure(eqp.EqConfig((2, 2, 2), ((0, 0), (6, 2)), diode_bias=0.7)),
        lambda: board.eq_configure(eqp.EqConfig((2, 2, 2), ((0, 0), (6, 2)), amp_rail=float("nan"))),
        # the rail is held to 0 < rail <= max_mvm_voltage as the board receives it (float32), by one check
        *(lambda rail=rail: board.eq_configure(eqp.EqConfig((2, 2, 2), ((0, 0), (6, 2)), amp_rail=rail))
          for rail in (-0.6, -0.3, 0.0, 0.5000001, float("inf"), "0.3")),
        lambda: board.eq_settle(np.array([[0.1, 0.51]])),
        lambda: board.eq_settle(np.array([[0.1, np.inf]])),
        lambda: board.eq_settle(np.array([[0.1, 0.2]]), np.array([[0.0, 1.01e-3]])),
        lambda: board.eq_settle(np.array([[0.1, 0.2]]), np.array([[np.nan, 0.0]])),
    ]
    for attempt in attempts:
        with pytest.raises(SafetyLimitError):
            attempt()
    assert _eq_frames(wire) == before  # nothing of the refused requests reached the board
    board.eq_configure(eqp.EqConfig((2, 2, 2), ((0, 0), (6, 2)), bias_voltage=0.2, amp_gain=4.0,
                                    amp_rail=float(np.nextafter(np.float32(0.5), np.float32(0)))))  # just inside
    assert _eq_frames(wire)[-1] == "EQ_CONFIGURE"
    reply = board.eq_settle(np.array([[0.5, -0.5]]), np.array([[1e-3, -1e-3]]))  # at the limits: allowed
    assert reply.voltages.shape == (1, 6 + 6 + 4)
    assert _eq_frames(wire)[-1] == "EQ_SETTLE"
    assert not wire.violations and not physics.violations


def test_the_audit_sees_raw_eq_frames_beyond_the_limits(audited):
    """Bypass the station with a raw serial link: the wire audit flags rail, bias, inputs and injections; the
    physics audit sees the rows the board drove beyond the limit and the inputs it applied."""
    station, wire, physics = audited
    port = serial.serial_for_url(station.sim.serial_url("board"), timeout=0.1)
    seq = 40
    for payload, op, quantity in [
        (eqp.EqConfig((2, 2, 2), ((0, 0), (6, 2)), amp_rail=0.9).pack(), bp.Op.EQ_CONFIGURE,
         "equilibrium amp_rail (V)"),
        (eqp.EqConfig((2, 2, 2), ((0, 0), (6, 2)), bias_voltage=0.8).pack(), bp.Op.EQ_CONFIGURE,
         "equilibrium bias_voltage (V)"),
        (eqp.pack_settle(np.array([[0.9, 0.0]]), np.zeros((1, 2))), bp.Op.EQ_SETTLE, "equilibrium input voltage (V)"),
        (eqp.pack_settle(np.zeros((1, 2)), np.array([[2e-3, 0.0]])), bp.Op.EQ_SETTLE, "equilibrium injection (A)"),
    ]:
        n = len(wire.violations)
        seq += 1
        port.write(bp.encode_request(op, seq, payload))
        assert len(wire.violations) == n + 1, quantity
        assert wire.violations[-1].quantity == quantity
    port.close()
    seen = {v.quantity for v in physics.violations}
    assert {"equilibrium row voltage (V)", "equilibrium input voltage (V)"} <= seen, seen


def test_expert_link_refuses_eq_opcodes(audited):
    station, wire, _ = audited
    raw = station.expert_raw("board")
    before = list(_eq_frames(wire))
    for op in (bp.Op.EQ_CONFIGURE, bp.Op.EQ_SETTLE):
        with pytest.raises(Exception, match="not available through the expert link"):
            raw.exchange(int(op), NET.pack())
    assert _eq_frames(wire) == before
