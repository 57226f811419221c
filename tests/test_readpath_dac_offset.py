"""The read-path calibration separates a DAC offset from the TIA offsets (it used to book one as the other)."""

import numpy as np

from xbarlab.calibration.readpath import CalibratedBoard, calibrate_read_path
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text

FS = 1.3 * 100e-6 * 0.2  # A


def _bench(seed: int, periphery: dict | None = None) -> str:
    return sim_station_text(32, 32, seed=seed, wire_resistance=0.0, stuck_fraction=0.0, periphery=periphery)


def test_a_dac_offset_is_measured_and_kept_out_of_the_tia_offsets():
    text = _bench(2, {"dac_offset_sigma": 1e-3})
    with Station.from_text(text) as st:
        naive = calibrate_read_path(st, st.require_board(), full_scale=FS, separate_dac_offset=False)
    with Station.from_text(text) as st:
        board = st.require_board()
        cal = calibrate_read_path(st, board, full_scale=FS)
        truth = st.sim.periphery.dac_offset
        tia_offsets = st.sim.periphery.line_errors("col")[1]
        # the array changes after the calibration (programming): the column sums S_c grow
        rr, cc = np.repeat(np.arange(16), 32), np.tile(np.arange(32), 16)
        board.pulse_arrays(rr, cc, 1.5, 1e-6)
        board.configure(0.2, FS)
        # zero-input MVM through the calibrated board: the "0 V" rows are trimmed to the DAC's true zero
        calibrated = CalibratedBoard(board, cal, 0.2, FS)
        zero = np.mean([calibrated.mvm_forward(np.zeros(32)) for _ in range(8)], axis=0)
        untrimmed = np.mean([naive.correct_currents(np.asarray(board.mvm_forward(np.zeros(32))), FS)
                             for _ in range(8)], axis=0)
    assert abs(truth) > 5e-4  # this seed's DAC offset (1.38 mV)
    assert abs(cal.dac_offset - truth) < 0.15 * abs(truth), (cal.dac_offset, truth)
    assert naive.dac_offset == 0.0
    # held-out cells read against the SMU: the offset booked as TIA offset spoils single-cell reads
    assert naive.residual_after > 0.1 and cal.residual_after < 0.01, (naive.residual_after, cal.residual_after)
    assert np.sqrt(np.mean((cal.offset_frac - tia_offsets) ** 2)) < 2e-3
    assert np.sqrt(np.mean((naive.offset_frac - tia_offsets) ** 2)) > 2e-2
    assert np.sqrt(np.mean(zero**2)) < 0.003 * FS, zero  # the DAC offset's array current trimmed away
    # booked as TIA offset, the array current was right only for the array as it was then
    assert np.sqrt(np.mean(untrimmed**2)) > 3 * np.sqrt(np.mean(zero**2)), (untrimmed, zero)


def test_without_a_dac_offset_the_calibration_is_unchanged():
    text = _bench(4)  # default periphery: no DAC offset
    cals = []
    for separate in (False, True):
        with Station.from_text(text) as st:
            cals.append(calibrate_read_path(st, st.require_board(), full_scale=FS, separate_dac_offset=separate))
    old, new = cals
    assert new.dac_offset == 0.0
    np.testing.assert_array_equal(new.gain, old.gain)
    np.testing.assert_array_equal(new.offset_frac, old.offset_frac)
    assert "dac_offset_v" not in new.to_record()[1]
