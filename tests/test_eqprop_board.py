"""The board's equilibrium-network mode over the wire: driver ↔ emulator on the array physics."""

from __future__ import annotations

import numpy as np
import pytest
from test_board_driver import EmulatorLink

from xbarlab.drivers.crossbar_board import CrossbarBoard
from xbarlab.errors import ConfigError, InstrumentError
from xbarlab.protocol.board import Err
from xbarlab.protocol.eqprop import EqConfig
from xbarlab.protocol.eqprop_circuit import EquilibriumNetwork, NeuronSpec, layered_topology
from xbarlab.sim.array import CrossbarModel
from xbarlab.sim.board_emulator import BoardEmulator
from xbarlab.sim.clock import SimClock
from xbarlab.sim.devices import RRAM
from xbarlab.sim.periphery import Periphery

NET = EqConfig((3, 2, 2), ((0, 0), (8, 2)), bias_voltage=0.2, amp_gain=4.0, amp_rail=0.4)


def _board(rows=16, cols=8, **emu):
    clock = SimClock()
    model = CrossbarModel(rows, cols, RRAM(read_noise=0.0), seed=2, clock=clock, stuck_fraction=0.0)
    ideal = Periphery(rows, cols, dac_bits=32, adc_bits=32, gain_sigma=0, offset_sigma=0, dac_gain_sigma=0.0, seed=2)
    emulator = BoardEmulator(model, ideal, clock, **emu)
    board = CrossbarBoard(EmulatorLink(emulator))
    board.identify()
    board.configure(0.2, 1e-3)
    return board, emulator, model


def test_settled_voltages_satisfy_kcl_and_the_clock_advances_by_settling_and_conversions():
    board, emulator, model = _board(eqprop={"adc_bits": 24})
    info = board.eq_info()
    assert info.adc_bits == 24 and info.max_layers == 8
    assert board.eq_configure(NET).sizes == (3, 2, 2)
    x = np.array([[0.3, -0.2, 0.1], [0.0, 0.4, -0.4]])
    inject = np.array([[5e-6, -5e-6], [0.0, 0.0]])
    t0 = emulator.clock.now
    reply = board.eq_settle(x, inject)
    rows, cols = NET.lines()
    assert reply.voltages.shape == (2, len(rows) + len(cols))
    # the reply's voltages are an equilibrium of the circuit on the array's conductances (sinh cells)
    cfg = board.eq_config
    topo, _ = layered_topology(list(cfg.sizes), cfg.bias_voltage)
    from xbarlab.protocol.eqprop_circuit import AmplifierSpec

    spec = NeuronSpec(amplifier=AmplifierSpec(cfg.amp_gain, cfg.amp_rail), bias_voltage=cfg.bias_voltage)
    net = EquilibriumNetwork(topo, spec, v0=model.v0)
    g = model.conductance_map()[np.ix_(rows, cols)]
    nodes = reply.voltages[:, len(rows):]
    residual, _ = net.residual(g, x, nodes, inject, jacobian=False)
    assert np.abs(residual).max() < 1e-8  # A: only the ADC's 24-bit rounding of the voltages is left
    assert reply.voltages[0, :6].tolist() == pytest.approx([0.3, -0.3, -0.2, 0.2, 0.1, -0.1], abs=1e-6)
    conversions = 2 * emulator.timing.conversions(len(rows) + len(cols))
    elapsed = emulator.clock.now - t0
    assert elapsed > reply.settle_time.sum() + conversions
    assert (reply.settle_time > 0).all()


def test_errors_are_clear_and_nothing_is_applied():
    board, emulator, _ = _board()
    with pytest.raises(ConfigError, match="eq_configure"):
        board.eq_settle(np.zeros((1, 3)))
    with pytest.raises(InstrumentError) as err:
        board._exchange(board_op("EQ_SETTLE"), b"\x01\x00\x00\x00" + bytes(20))
    assert err.value.code == Err.NOT_CONFIGURED
    cases = [
        (EqConfig((3, 2, 2), ((0, 0), (6, 2))), Err.INDEX_RANGE, "shares rows"),
        (EqConfig((3, 2, 2), ((0, 0), (8, 7))), Err.INDEX_RANGE, "exceeds the active"),
        (EqConfig((3, 2, 2), ((0, 0), (8, 2)), amp_rail=0.9), Err.VOLTAGE_LIMIT, "amplifier rail"),
        (EqConfig((3, 2, 2), ((0, 0), (8, 2)), amp_gain=-1.0), Err.BAD_VALUE, "amp_gain must be > 0"),
    ]
    for cfg, code, text in cases:
        with pytest.raises(InstrumentError, match=text) as err:
            board._exchange(board_op("EQ_CONFIGURE"), cfg.pack())
        assert err.value.code == code
    assert emulator.eqprop.config is None
    board.eq_configure(NET)
    with pytest.raises(InstrumentError, match="injection") as err:
        board.eq_settle(np.zeros((1, 3)), np.array([[2e-3, 0.0]]))
    assert err.value.code == Err.VOLTAGE_LIMIT
    board.configure(0.2, 1e-3)  # CONFIGURE forgets the network, on both sides
    assert emulator.eqprop.config is None and board.eq_config is None


def test_big_batches_are_split_over_frames():
    board, emulator, _ = _board()
    board.max_payload = 2048
    board.eq_configure(NET)
    frames = emulator.frames
    reply = board.eq_settle(np.full((200, 3), 0.1))  # 4 kB of request: more than one 2 kB frame
    assert reply.voltages.shape[0] == 200 and emulator.frames - frames > 1
    assert np.allclose(reply.voltages, reply.voltages[0])  # no read noise: the same inputs, the same state


def board_op(name):
    from xbarlab.protocol.board import Op

    return Op[name]
