"""The read path drifts with instrument time on the simulated bench: a calibration goes stale and a new one fixes it."""

import numpy as np

from xbarlab.calibration.readpath import calibrate_read_path
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text

MONTH = 30 * 86400.0  # s


def _gain_error(cal, periphery) -> float:
    """rms relative error (1) of a calibration's column gains against the board's true gains now
    (TIA gain x the common DAC gain: both scale a read), after removing their common factor."""
    truth = periphery.line_errors("col")[0] * periphery.dac_gain
    ratio = cal.gain / truth
    return float(np.sqrt(np.mean((ratio / np.median(ratio) - 1) ** 2)))


def test_read_path_calibration_goes_stale_with_sim_time_and_recalibration_restores_it():
    text = sim_station_text(8, 8, seed=4, wire_resistance=0.0, stuck_fraction=0.0)
    with Station.from_text(text) as station:
        periphery = station.sim.periphery
        assert periphery.clock is station.sim.clock  # the periphery sees the bench's clock
        board = station.require_board()
        old = calibrate_read_path(station, board, full_scale=1e-4, reads=16)
        fresh_error = _gain_error(old, periphery)
        g_then = periphery.line_errors("col")[0].copy()
        station.wait(MONTH)  # a month of instrument time, outputs idle
        assert np.max(np.abs(periphery.line_errors("col")[0] / g_then - 1)) > 1e-3  # the TIAs moved
        stale_error = _gain_error(old, periphery)
        assert old.age(station.sim_time()) >= MONTH
        new = calibrate_read_path(station, board, full_scale=1e-4, reads=16)
        recal_error = _gain_error(new, periphery)
    assert stale_error > 2 * recal_error, (fresh_error, stale_error, recal_error)
    assert stale_error > 2 * fresh_error


def test_a_bench_restored_from_a_checkpoint_drifts_along_the_same_path():
    from xbarlab.sim.checkpoint import restore, snapshot

    text = sim_station_text(6, 6, seed=9, wire_resistance=0.0, stuck_fraction=0.0)
    with Station.from_text(text) as first:
        first.wait(5 * 3600.0)
        first.sim.periphery.line_errors("col")  # the first bench has drawn 5 h of its walk
        state = snapshot(first.sim)
        first.wait(7 * 3600.0 + 17.0)
        reads_first = first.require_board().read_all()
        expected = first.sim.periphery.line_errors("col")
        t_first = first.sim_time()
    with Station.from_text(text) as second:  # a resumed worker: a new bench, the checkpoint restored
        restore(second.sim, state)
        assert second.sim.periphery.clock is second.sim.clock
        second.wait(7 * 3600.0 + 17.0)
        reads_second = second.require_board().read_all()
        got = second.sim.periphery.line_errors("col")
        assert second.sim_time() == t_first
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(reads_second, reads_first)
