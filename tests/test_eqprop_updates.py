"""Board EP updates: per-device pulses, differential pulse pairs, the host accumulator, averaged settling."""

from __future__ import annotations

import numpy as np
import pytest
from test_board_driver import EmulatorLink

from xbarlab.drivers.crossbar_board import CrossbarBoard
from xbarlab.experiments.eqprop import _BoardNetwork
from xbarlab.experiments.update_rules import DeviceStep, PulseSpec
from xbarlab.protocol.eqprop import EqConfig
from xbarlab.protocol.eqprop_circuit import layered_topology
from xbarlab.sim.array import CrossbarModel
from xbarlab.sim.board_emulator import BoardEmulator
from xbarlab.sim.clock import SimClock
from xbarlab.sim.devices import RRAM
from xbarlab.sim.periphery import Periphery

NET = EqConfig((3, 2, 2), ((0, 0), (8, 2)), bias_voltage=0.2, amp_gain=4.0, amp_rail=0.4)
STEP = DeviceStep(up=2e-7, down=1e-7)  # S per SET and per RESET pulse


class PulseRecorder:
    """Stands in for the board: keeps every PULSE_BATCH (rows, cols, amplitudes)."""

    def __init__(self) -> None:
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def pulse_arrays(self, rows, cols, amplitudes, width):
        self.batches.append((np.asarray(rows), np.asarray(cols), np.broadcast_to(amplitudes, np.shape(rows)).copy()))


def _mask():
    topo, tiles = layered_topology(list(NET.sizes), NET.bias_voltage)
    mask = np.zeros((topo.rows, topo.nodes), dtype=bool)
    for rows, nodes in tiles:
        mask[rows, nodes] = True
    return mask


def _network(board, update, mask=None):
    mask = _mask() if mask is None else mask
    rows, cols = NET.lines()
    return _BoardNetwork(board, len(rows), rows, cols, mask, STEP, PulseSpec(1.2, 100e-9), 8,
                         np.random.default_rng(0), update), rows, cols


def test_pairs_pulse_the_two_devices_of_a_weight_in_opposite_directions():
    board = PulseRecorder()
    net, rows, cols = _network(board, "pairs")
    dg = np.zeros(_mask().shape)
    # weight (unit 1 -> node 0): G+ should rise by 3 pair steps, G- fall by as much; the rule's common mode is dropped
    per_pair = STEP.up + STEP.down
    dg[2, 0], dg[3, 0] = 1.5 * per_pair, -1.5 * per_pair
    dg[4, 1], dg[5, 1] = 0.7 * per_pair, 0.7 * per_pair  # pure common mode: no pulse
    assert net.update(dg) == 6
    r, c, a = board.batches[-1]
    assert list(r) == [rows[2], rows[3]] * 3 and set(c) == {cols[0]}
    assert list(a) == [1.2, -1.2] * 3  # SET G+, RESET G-: the imbalance of SET and RESET cancels in G+ - G-
    dg[2, 0], dg[3, 0] = -1.5 * per_pair, 1.5 * per_pair
    assert net.update(dg) == 6
    assert list(board.batches[-1][2]) == [-1.2, 1.2] * 3


def test_the_accumulator_fires_a_pair_only_after_it_passes_one_step_and_keeps_the_rest():
    board = PulseRecorder()
    net, rows, cols = _network(board, "accumulate")
    per_pair = STEP.up + STEP.down
    dg = np.zeros(_mask().shape)
    dg[0, 1], dg[1, 1] = 0.2 * per_pair, -0.2 * per_pair  # 0.4 of a pair step per update
    assert net.update(dg) == 0 and net.update(dg) == 0
    assert net.update(dg) == 2  # 1.2 steps accumulated: one pair fires, 0.2 stays
    assert list(board.batches[-1][0]) == [rows[0], rows[1]] and list(board.batches[-1][1]) == [cols[1]] * 2
    assert net.chi[np.flatnonzero(net.chi)] == pytest.approx([0.2 * per_pair])
    dg[0, 1], dg[1, 1] = -20 * per_pair, 20 * per_pair  # far beyond max_pulses: 8 pairs now, the rest kept
    assert net.update(dg) == 16
    assert net.chi[np.flatnonzero(net.chi)] == pytest.approx([(0.2 - 40 + 8) * per_pair])


def test_stochastic_rounding_is_unbiased_per_device():
    board = PulseRecorder()
    net, rows, cols = _network(board, "stochastic")
    dg = np.zeros(_mask().shape)
    dg[0, 0] = 0.3 * STEP.up  # 0.3 SET pulse per update on average
    total = sum(net.update(dg) for _ in range(2000))
    assert total == pytest.approx(600, rel=0.1)


def test_repeated_settling_averages_the_read_noise_down():
    clock = SimClock()
    model = CrossbarModel(16, 8, RRAM(read_noise=0.05), seed=2, clock=clock, stuck_fraction=0.0)
    ideal = Periphery(16, 8, dac_bits=32, adc_bits=32, gain_sigma=0, offset_sigma=0, dac_gain_sigma=0.0, seed=2)
    board = CrossbarBoard(EmulatorLink(BoardEmulator(model, ideal, clock, eqprop={"adc_bits": 24})))
    board.identify()
    board.configure(0.2, 1e-3)
    board.eq_configure(NET)
    net, rows, _ = _network(board, "accumulate")
    x = np.full((40, 3), 0.3)
    spreads = {}
    for repeats in (1, 16):
        t0 = clock.now
        _, nodes, times = net.settle(x, None, repeats=repeats)
        assert nodes.shape == (40, 4) and times.shape == (40,)
        spreads[repeats] = float(nodes.std(axis=0).mean())
        if repeats == 16:
            assert clock.now - t0 > 16 * times.sum()  # every repeat costs instrument time
    assert spreads[16] == pytest.approx(spreads[1] / 4, rel=0.4)
