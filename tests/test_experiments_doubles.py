"""The experiments' crossbar TEST DOUBLE behaves as documented (tests/experiment_doubles.py)."""

from __future__ import annotations

from experiment_doubles import FakeCrossbar


def test_double_soft_bounds_and_threshold():
    fb = FakeCrossbar(2, 2, up=1.0, down=0.5)
    fb.g[:] = 50.5e-6
    fb.pulse_cell(0, 0, 1.0, 1e-7)
    fb.pulse_cell(0, 1, -1.0, 1e-7)
    fb.pulse_cell(1, 1, 0.5, 1e-7)  # below threshold: no change
    assert fb.g[0, 0] - 50.5e-6 > 2 * (50.5e-6 - fb.g[0, 1]) * 0.99
    assert fb.g[1, 1] == 50.5e-6
    assert fb.pulses == 2
