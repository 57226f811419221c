"""Readings of a noisy device (no two within 0.5 %) are accepted by consensus; a corrupted one is an outlier."""

from __future__ import annotations

import pytest

from xbarlab.drivers.replies import confirmed
from xbarlab.errors import ProtocolError


def _more(values):
    it = iter(values)
    return lambda: next(it)


def test_noisy_or_moving_readings_give_the_earliest_consistent_one():
    # a PCM cell read nine times (five, then four more when no two agree): 4 % spread, no two within 0.5 %
    seen = [4.82049e-06, 4.88106e-06, 4.93413e-06, 4.96614e-06, 5.01079e-06, 4.79e-06, 4.90e-06, 4.99e-06, 4.85e-06]
    assert confirmed(seen[0], seen[1], _more(seen[2:]), 1e-10, "smu1", ":READ?") == seen[0]
    # a cell the reads disturb: a steady climb, each reading a real measurement
    seen = [7.60127e-07, 8.74341e-07, 9.74461e-07, 1.11089e-06, 1.212e-06, 1.31e-06, 1.425e-06, 1.53e-06, 1.64e-06]
    assert confirmed(seen[0], seen[1], _more(seen[2:]), 1e-10, "smu1", ":READ?") == seen[0]


def test_a_corrupted_reading_among_noisy_ones_is_never_returned():
    # one digit flipped in the first
    seen = [8.82e-06, 4.91e-06, 4.93e-06, 4.97e-06, 5.03e-06, 4.88e-06, 4.95e-06, 5.06e-06, 4.90e-06]
    got = confirmed(seen[0], seen[1], _more(seen[2:]), 1e-10, "smu1", ":READ?")
    assert got == 4.91e-06


def test_readings_with_no_consensus_are_an_error():
    seen = [1e-06, 3e-06, 9e-06, 2.7e-05, 8.1e-05, 2.4e-04, 7.3e-04, 2.2e-03, 6.6e-03]
    with pytest.raises(ProtocolError, match="disagree pairwise"):
        confirmed(seen[0], seen[1], _more(seen[2:]), 1e-10, "smu1", ":READ?")
