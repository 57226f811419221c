"""Read-path calibration and write-verify programming on small simulated arrays."""

import numpy as np
import pytest
from experiment_doubles import FakeCrossbar

from xbarlab.calibration import PulseModel, calibrate_read_path, prepare, program_conductances, program_matrix
from xbarlab.calibration.readpath import CalibratedBoard, ReadCalibration
from xbarlab.calibration.writeverify import BUDGET, STUCK, UNREACHABLE, array_reader
from xbarlab.errors import CapabilityError, ConfigError
from xbarlab.experiments import MemoryRecorder
from xbarlab.instruments.interfaces import CellReads, capabilities, require
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text


def _station(n=8, seed=5, stuck=0.0, **kw):
    return Station.from_text(sim_station_text(n, n, seed=seed, stuck_fraction=stuck, **kw))


def test_read_calibration_reduces_read_error_and_round_trips():
    with _station(8) as st:
        board = st.require_board()
        cal = calibrate_read_path(st, board, full_scale=4e-5)
        assert cal.residual_before > 0.005  # 2 % column gain spread
        assert cal.residual_after < 0.5 * cal.residual_before
        assert 1.003 < cal.chord_factor < 1.01  # sinh cell at 0.2 V: 1.0067
        # corrected reads agree with the simulator's conductances better than raw ones
        truth = st.sim.model.conductance_map()
        raw = board.read_all()
        fixed = CalibratedBoard(board, cal, 0.2, 4e-5).read_all()
        ok = truth > 5e-6
        assert np.std(fixed[ok] / truth[ok] - 1) < np.std(raw[ok] / truth[ok] - 1)
        rec = MemoryRecorder()
        rec.add_calibration("read_path", "read_path", *cal.to_record())
        kind, data, meta = rec.calibrations["read_path"]
        back = ReadCalibration.from_record(data, meta)
        assert np.allclose(back.gain, cal.gain) and back.chord_factor == pytest.approx(cal.chord_factor)


def test_write_verify_reaches_tolerance_and_reports_a_stuck_off_cell():
    with _station(8) as st:
        st.sim.model.kill_cell(2, 3, "off")
        prep = prepare(st)
        lo, hi = prep.usable_range()
        tol = 0.01 * (hi - lo)
        targets = np.random.default_rng(1).uniform(lo, hi, (8, 8))
        # the range map finds the dead cell; it is skipped, never pulsed
        assert prep.bounds.stuck[2, 3] == 1
        rep = program_matrix(st, prep, targets, tolerance=tol)
        assert rep.status[2, 3] != 0 and rep.pulses[2, 3] == 0
        assert rep.yield_fraction >= 0.95
        truth = st.sim.model.conductance_map()
        live = np.ones((8, 8), bool)
        live[2, 3] = False
        assert np.mean(np.abs(truth - targets)[live] <= tol) >= 0.9
        # without the map, write-verify itself detects the stuck cell and stops pulsing it
        rep2 = program_conductances(prep.board, np.arange(8), np.arange(8), targets, tolerance=tol,
                                    g_lo=lo, g_hi=hi, model=prep.model, reader=prep.reader(), max_pulses=60)
        assert rep2.status[2, 3] == STUCK
        assert rep2.pulses[2, 3] < 20
        assert "stuck 1" in rep2.describe()


def test_unreachable_tolerance_gives_a_report_not_a_hang():
    with _station(6) as st:
        prep = prepare(st)
        lo, hi = prep.usable_range()
        targets = np.full((6, 6), 0.5 * (lo + hi))
        rep = program_matrix(st, prep, targets, tolerance=1e-4 * (hi - lo), max_pulses=12)
        assert np.all(rep.pulses <= 12)
        assert np.any(rep.status == BUDGET)
        s = rep.summary()
        assert s["budget_spent"] > 0 and s["yield"] < 0.5
        assert "budget" in rep.stop_reason


def test_bad_input_is_a_clear_error():
    with _station(4) as st:
        b = st.require_board()
        m = PulseModel(s_up=-4.0, s_down=-4.0, v_ref=1.2, v_scale=0.08, width_ref=1e-6, width_exp=0.6,
                       read_sigma=0.01)
        with pytest.raises(ConfigError, match="tolerance"):
            program_conductances(b, [0], [0], np.ones((1, 1)) * 1e-5, tolerance=0, g_lo=1e-6, g_hi=1e-4, model=m)
        with pytest.raises(ConfigError, match="shape"):
            program_conductances(b, [0], [0], np.ones((2, 1)), tolerance=1e-7, g_lo=1e-6, g_hi=1e-4, model=m)
        with pytest.raises(ConfigError, match="PulseModel"):
            program_conductances(b, [0], [0], np.ones((1, 1)) * 1e-5, tolerance=1e-7, g_lo=1e-6, g_hi=1e-4,
                                 model=None)
        with pytest.raises(ConfigError):
            PulseModel(s_up=-4.0, s_down=-4.0, v_ref=1.2, v_scale=0.08, width_ref=1e-6, width_exp=0.6,
                       read_sigma=0.01, reset="sometimes")
        with pytest.raises(ConfigError, match="v_scale"):
            PulseModel(s_up=-4.0, s_down=-4.0, v_ref=1.2, v_scale=0.0, width_ref=1e-6, width_exp=0.6,
                       read_sigma=0.01)


def test_array_verify_reads_and_bad_reader_name():
    with _station(6) as st:
        prep = prepare(st)
        lo, hi = prep.usable_range()
        targets = np.random.default_rng(2).uniform(lo, hi, (6, 6))
        rep = program_matrix(st, prep, targets, tolerance=0.02 * (hi - lo), reader="array")
        assert rep.yield_fraction >= 0.9
        with pytest.raises(ConfigError, match="reader"):
            program_matrix(st, prep, targets, tolerance=0.02 * (hi - lo), reader="rows")


def test_array_reader_reads_only_the_rows_of_the_listed_cells_and_stays_calibrated():
    with _station(16) as st:
        board = st.require_board()
        cal = calibrate_read_path(st, board, full_scale=4e-5)
        cboard = CalibratedBoard(board, cal, 0.2, 4e-5)
        rows, cols = np.array([3, 3, 4, 9]), np.array([1, 7, 2, 5])
        t0 = st.sim_time()
        got = array_reader(cboard, 0.2)(rows, cols)
        t_rows = st.sim_time() - t0
        t0 = st.sim_time()
        full = cboard.read_all()
        assert t_rows < 0.4 * (st.sim_time() - t0)  # rows 3-4 and 9 of 16
        np.testing.assert_allclose(got, full[rows, cols], rtol=0.02)  # corrected like read_all (raw: 3-4 % off)
        truth = st.sim.model.conductance_map()[rows, cols]
        assert np.max(np.abs(got / truth - 1)) < 0.05


def test_patience_gives_up_a_cell_whose_target_is_beyond_its_range():
    with _station(6) as st:
        prep = prepare(st)
        lo, hi = prep.usable_range()
        targets = np.full((6, 6), 0.5 * (lo + hi))
        targets[1, 2] = 3.0 * float(prep.bounds.g_hi[1, 2])  # far above what the cell reaches
        rep = program_matrix(st, prep, targets, tolerance=0.01 * (hi - lo), max_pulses=200, patience=20)
        assert rep.status[1, 2] in (STUCK, UNREACHABLE)
        assert rep.pulses[1, 2] < 200
        others = np.ones((6, 6), bool)
        others[1, 2] = False
        assert np.mean(rep.within[others]) >= 0.9


def _calibration(cols: int) -> ReadCalibration:
    return ReadCalibration(gain=np.full(cols, 0.5), offset_frac=np.full(cols, 0.01), read_voltage=0.2,
                           chord_factor=1.25)


def test_calibrated_board_has_exactly_the_capabilities_of_its_board():
    plain = FakeCrossbar(4, 4, seed=1)  # no READ_CELLS
    cboard = CalibratedBoard(plain, _calibration(4), 0.2, 1e-4)
    assert not isinstance(cboard, CellReads) and capabilities(cboard) == capabilities(plain)
    with pytest.raises(CapabilityError, match="this board cannot read a list of cells"):
        require(cboard, CellReads)  # asked up front, not found out when called
    # a single cell is read with READ_CELL and corrected like every other read
    assert cboard.read_cell(2, 3) == pytest.approx((plain.g[2, 3] * 0.2 - 0.01 * 1e-4) / 0.5 / 0.2 / 1.25)
    assert cboard.read_cell(2, 3) == pytest.approx(cboard.read_all()[2, 3])
    with _station(6) as st:
        board = st.require_board()
        cboard = CalibratedBoard(board, _calibration(6), 0.2, 4e-5)
        assert isinstance(cboard, CellReads) and isinstance(cboard, CalibratedBoard)
        assert capabilities(cboard) == capabilities(board)
        raw = board.read_cells([1, 2], [3, 4])
        fixed = cboard.read_cells([1, 2], [3, 4])
        np.testing.assert_allclose(fixed, (raw * 0.2 - 0.01 * 4e-5) / 0.5 / 0.2 / 1.25, rtol=0.1)  # read noise
