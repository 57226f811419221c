"""Feedback mode over the wire: CLOSED_LOOP_SOLVE / CLOSED_LOOP_EIGEN through the driver and emulator."""

from __future__ import annotations

import numpy as np
import pytest
from board_doubles import Host, make_board, sim_board

from xbarlab.errors import InstrumentError
from xbarlab.experiments.analog import Region, WeightMapping
from xbarlab.experiments.closed_loop import ClosedLoopSolver
from xbarlab.protocol import board as bp
from xbarlab.protocol.board import Err, Op

QUIET = {"offset_sigma": 0.0, "noise_rms": 0.0, "inverter_gain_sigma": 0.0, "open_loop_gain": 1e9, "adc_bits": 20}


def _program(model, a: np.ndarray) -> WeightMapping:
    mapping = WeightMapping(1e-6, 61e-6, float(np.abs(a).max()))
    n = a.shape[0]
    model.g[:n, : 2 * n] = mapping.to_conductance(a)
    return mapping


def _spd(n: int, cond: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * np.geomspace(1, cond, n)) @ q.T, q


def test_solve_over_the_wire_settles_to_the_circuit_equation():
    board, emulator, model = sim_board(rows=6, cols=12, closed_loop=QUIET)
    board.configure(0.2, 1e-3)
    a, _ = _spd(6, 5.0)
    mapping = _program(model, a)
    u = np.linspace(-0.05, 0.05, 6)
    t0 = emulator.clock.now
    reply = board.closed_loop_solve(u)
    assert reply.stable and not reply.saturated.any()
    a_g = a * mapping.unit
    assert np.allclose(a_g @ reply.voltages, -reply.input_conductance * u, atol=1e-6 * reply.input_conductance)
    assert emulator.clock.now - t0 > reply.settle_time > 0
    assert reply.rail == pytest.approx(0.5)


def test_eigen_over_the_wire_and_the_host_solver():
    board, emulator, model = sim_board(rows=8, cols=16)
    board.configure(0.2, 1e-3)
    a, q = _spd(8, 20.0, seed=2)
    mapping = _program(model, a)
    solver = ClosedLoopSolver(board, max_input=0.2)
    solver.bind(Region(0, 0, 8, 16), mapping)
    v, reply = solver.eigenvector(0.97 * 20.0 * mapping.unit, 8)
    assert reply.stable and abs(v @ q[:, -1]) > 0.99
    b = np.random.default_rng(3).normal(size=8)
    x, _ = solver.solve(b)
    assert np.linalg.norm(x - np.linalg.solve(a, b)) / np.linalg.norm(np.linalg.solve(a, b)) < 0.05


def test_feedback_mode_requests_are_checked_by_the_board():
    emu, model, clock = make_board(4, 8)
    host = Host(emu)
    block = bp.ClosedLoopBlock(4, 0, 0, "differential")
    payload = bp.pack_closed_loop_solve(block, np.zeros(4))
    code, _ = host.error(Op.CLOSED_LOOP_SOLVE, payload)
    assert code == Err.NOT_CONFIGURED
    host.configure(4, 8)
    code, msg = host.error(Op.CLOSED_LOOP_SOLVE, bp.pack_closed_loop_solve(bp.ClosedLoopBlock(4, 0, 1), np.zeros(4)))
    assert code == Err.INDEX_RANGE and "exceeds the active 4x8 region" in msg
    code, _ = host.error(Op.CLOSED_LOOP_SOLVE, bp.pack_closed_loop_solve(block, np.full(4, 5.0)))
    assert code == Err.VOLTAGE_LIMIT
    code, _ = host.error(Op.CLOSED_LOOP_SOLVE, payload[:-4])
    assert code == Err.VECTOR_LENGTH
    bad_layout = bytearray(payload)
    bad_layout[6] = 7
    assert host.error(Op.CLOSED_LOOP_SOLVE, bytes(bad_layout))[0] == Err.BAD_VALUE
    assert host.error(Op.CLOSED_LOOP_EIGEN, bp.pack_closed_loop_eigen(block, -1.0))[0] == Err.BAD_VALUE
    reply = bp.ClosedLoopReply.unpack(host.ok(Op.CLOSED_LOOP_EIGEN, bp.pack_closed_loop_eigen(block, 1e-5)), 4)
    assert reply.voltages.shape == (4,)


def test_driver_refuses_a_block_outside_the_active_region():
    board, _, _ = sim_board(rows=4, cols=6)
    board.configure(0.2, 1e-3)
    with pytest.raises(ValueError, match="does not fit the active 4x6 region"):
        board.closed_loop_solve(np.zeros(4))
    with pytest.raises(ValueError, match="g_lambda must be > 0"):
        board.closed_loop_eigen(0.0, 2)


def test_host_solver_reports_an_unstable_matrix():
    board, _, model = sim_board(rows=2, cols=4, closed_loop=QUIET)
    board.configure(0.2, 1e-3)
    mapping = WeightMapping(1e-6, 61e-6, 1.0)
    model.g[:2, :4] = mapping.to_conductance(-np.eye(2))  # negative definite: the loop runs away
    solver = ClosedLoopSolver(board)
    solver.bind(Region(0, 0, 2, 4), mapping)
    with pytest.raises(InstrumentError, match="unstable"):
        solver.solve(np.ones(2))
