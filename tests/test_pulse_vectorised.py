"""Vectorised pulse sequences give the pulse-by-pulse loop's result bit for bit (same seed, same draws)."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.sim.array import CrossbarModel
from xbarlab.sim.devices import make_device


def twins(device, rows=24, cols=20, seed=8, stuck=0.01, **params):
    """The same array twice; the second with the vectorised path switched off (the slot/round loop)."""
    fast, slow = (CrossbarModel(rows, cols, make_device(device, **params), seed=seed, wire_resistance=0.0,
                                stuck_fraction=stuck) for _ in range(2))
    slow.device.pulse_sequence = lambda *a, **k: False  # the reference: one device.pulse per group
    return fast, slow


def trains(rng, n, slots, p=0.3):
    return (rng.choice([-1, 0, 1], size=(n, slots), p=[p / 2, 1 - p, p / 2])).astype(np.int8)


@pytest.mark.parametrize(("device", "rows", "cols"), [("rram", 24, 20), ("ecram", 24, 20), ("pcm", 24, 20),
                                                      ("rram", 100, 100), ("rram", 150, 160)])  # runs as rounds
def test_outer_product_matches_slot_loop(device, rows, cols):
    fast, slow = twins(device, rows, cols, stuck=0.2)
    rng = np.random.default_rng(1)
    for _ in range(4):
        rt, ct = trains(rng, rows, 10), trains(rng, cols, 10)
        rt[:, :2] = 0  # slots without a pulse, before and between the others
        ct[:, 5] = 0
        for m in (fast, slow):
            m.outer_product_update(rt, ct, 1.2, 100e-9)
    np.testing.assert_array_equal(fast.conductance_map(), slow.conductance_map())
    assert fast.rng.standard_normal() == slow.rng.standard_normal()  # and the generators agree afterwards


@pytest.mark.parametrize("device", ["rram", "ecram"])
def test_repeated_cells_match_round_loop(device):
    fast, slow = twins(device)
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 3, 400)  # 9 cells, each pulsed ~45 times in a mixed order
    cols = rng.integers(0, 3, 400)
    amps = rng.choice([-1.3, 1.1, 1.2], 400)
    for m in (fast, slow):
        m.apply_pulses(rows, cols, amps, 200e-9)
    np.testing.assert_array_equal(fast.conductance_map(), slow.conductance_map())
    before = slow.conductance_map()
    assert not np.array_equal(before, CrossbarModel(24, 20, make_device(device), seed=8).conductance_map())


def test_unformed_cells_fall_back_to_the_loop():
    fast, slow = twins("rram", unformed_fraction=0.5)
    rng = np.random.default_rng(3)
    rt, ct = trains(rng, 24, 6), trains(rng, 20, 6)
    for m in (fast, slow):
        m.outer_product_update(rt, ct, 1.2, 100e-9)
    np.testing.assert_array_equal(fast.conductance_map(), slow.conductance_map())


def test_stuck_cells_never_move_in_a_batch():
    m = CrossbarModel(16, 16, make_device("rram"), seed=4, stuck_fraction=0.2, wire_resistance=0.0)
    stuck = m.stuck_mask != 0
    before = m.conductance_map()
    ones = np.ones((16, 8), dtype=np.int8)
    m.outer_product_update(ones, ones, 1.3, 1e-6)
    after = m.conductance_map()
    np.testing.assert_array_equal(after[stuck], before[stuck])
    assert np.all(after[~stuck] > before[~stuck])
