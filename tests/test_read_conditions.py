"""Read conditions chosen so reads do not move the cells (calibration/readdisturb.py), measured from the
simulator's truth on a drawn low-threshold RRAM device, and the SMU consensus of noisy quantities."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.calibration import prepare
from xbarlab.calibration.pipeline import in_calibrated_units
from xbarlab.calibration.readdisturb import choose_read_conditions
from xbarlab.calibration.readpath import ReadCalibration, smu_cell_current
from xbarlab.drivers.replies import confirmed
from xbarlab.errors import ConfigError, ProtocolError
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text

#: a device of program_verify_robust's family (its 7th draw of seed 2026) with a low, soft threshold:
#: a 20 ms SMU reading at 0.2 V moves it by ~10 % of its headroom
LOW_THRESHOLD = {"v_ref": 0.888, "v_scale": 0.163, "width_exponent": 0.858, "c2c": 0.4, "read_noise": 0.0044}
SIZE = 8


@pytest.fixture(scope="module")
def low_threshold():
    st = Station.from_text(sim_station_text(SIZE, SIZE, "rram", seed=2128, device_params=LOW_THRESHOLD))
    st.__enter__()
    prep = prepare(st, g_max_expected=150e-6, seed=2128, sample=16)
    yield st, prep
    st.__exit__(None, None, None)


def _move_under_smu_reads(st, cells, voltage: float, reads: int = 3) -> np.ndarray:
    """Relative true change of each cell (simulator truth) across ``reads`` SMU measurements at ``voltage``."""
    board, model = st.require_board(), st.sim.model
    before = model.conductance_map()[tuple(np.array(cells).T)]
    for r, c in cells:
        for _ in range(reads):
            smu_cell_current(st, board, "smu1", r, c, voltage)
    after = model.conductance_map()[tuple(np.array(cells).T)]
    return (after - before) / before


def test_the_chosen_read_conditions_do_not_disturb_a_low_threshold_device(low_threshold):
    """Truth: SMU reads at the chosen voltage and integration move cells in the upper half of their range
    (where the read-path reference cells are) by < 0.25 % a measurement, half the drivers' agreement
    tolerance, so a reference measurement is confirmed by its first two readings; at the station's 0.2 V
    and the SMU's own 1 PLC they move them by several per cent."""
    st, prep = low_threshold
    choice = prep.read_choice
    assert choice is not None and choice.read_voltage < 0.2  # the station's voltage was not kept
    assert prep.read_voltage == choice.read_voltage == prep.read_cal.read_voltage
    assert prep.read_cal.detail["chosen_read_voltage"] == choice.read_voltage  # logged with the read path
    live = np.argwhere(prep.bounds.stuck == 0)[:6]
    # cells in the upper half of their range, not at the top (a cell at its bound cannot move further)
    board, model = st.require_board(), st.sim.model
    for _ in range(30):
        g = model.conductance_map()[tuple(live.T)]
        low = g < 0.6 * prep.bounds.g_hi[tuple(live.T)]
        if not low.any():
            break
        board.pulse_arrays(live[low, 0], live[low, 1], np.full(int(low.sum()), 1.4), np.full(int(low.sum()), 1e-6))
    board.configure(choice.read_voltage, prep.full_scale)
    gentle = _move_under_smu_reads(st, live, choice.read_voltage)
    assert np.max(np.abs(gentle)) / 3 < 0.0025, gentle
    st.smu("smu1").set_nplc(1.0)
    harsh = _move_under_smu_reads(st, live, 0.2)
    assert np.median(harsh) > 0.02, harsh  # the test can fail: the station's default does disturb


def test_read_path_gains_of_a_low_threshold_device_match_the_truth(low_threshold):
    """Calibrated board reads equal the simulator's conductances within 2 % (rms) on live cells (they were
    off by 6.5 % rms when the reference reads disturbed their cells)."""
    st, prep = low_threshold
    rr, cc = np.repeat(np.arange(SIZE), SIZE), np.tile(np.arange(SIZE), SIZE)
    g = np.mean([prep.reader()(rr, cc) for _ in range(8)], axis=0).reshape(SIZE, SIZE)
    truth = st.sim.model.conductance_map()
    live = (st.sim.model.stuck_mask == 0) & (truth > 5e-6)
    err = g[live] / truth[live] - 1
    assert np.sqrt(np.mean(err**2)) < 0.02, err


def test_no_undisturbing_read_condition_is_one_clear_error(low_threshold):
    """Only the station's voltage at the SMU's own integration allowed: refused, naming what was tried."""
    st, prep = low_threshold
    with pytest.raises(ConfigError, match=r"no read voltage .*0\.2 V / 1 PLC: predicted .*disturb") as exc:
        choose_read_conditions(st, prep.board, prep.characterization, prep.reader(), smu="smu1", read_voltage=0.2,
                               full_scale=prep.full_scale, nplcs=(), voltage_fractions=(1.0,))
    assert "\n" not in str(exc.value)


def test_bounds_measured_raw_are_corrected_column_by_column(low_threshold):
    """in_calibrated_units applies each column's gain and offset to the bounds and the absolute noise."""
    _, prep = low_threshold
    char = prep.characterization
    n = char.bounds.g_lo.shape[1]
    cal = ReadCalibration(np.linspace(0.9, 1.1, n), np.full(n, 1e-3), 0.1)
    out = in_calibrated_units(char, cal, 0.1, 1e-5)
    expect = (char.bounds.g_hi * 0.1 - 1e-3 * 1e-5) / cal.gain / 0.1
    np.testing.assert_allclose(out.bounds.g_hi, expect)
    assert out.read_sigma_abs == pytest.approx(char.read_sigma_abs / np.median(cal.gain))


def test_a_noisy_quantity_is_its_readings_median_not_a_protocol_error():
    """1/f read noise of ~60 % (a 0.1 µS PCM cell): no two readings agree within 0.5 %, yet they are one
    quantity; a reading within the noise band comes back."""
    rng = np.random.default_rng(3)
    values = list(2e-8 * np.exp(0.5 * rng.standard_normal(12)))
    it = iter(values[2:])
    got = confirmed(values[0], values[1], lambda: next(it), 1e-10, "smu1", "READ?")
    assert got in values[:9] and 2e-8 / 4 < got < 2e-8 * 4


def test_noisy_readings_with_a_flipped_exponent_keep_it_out():
    """An exponent digit flipped (e-08 -> e-05) among noisy readings is outside the band: never the result."""
    rng = np.random.default_rng(4)
    values = list(2e-8 * np.exp(0.4 * rng.standard_normal(9)))
    values[3] *= 1e3
    it = iter(values[2:])
    got = confirmed(values[0], values[1], lambda: next(it), 1e-10, "smu1", "READ?")
    assert got < 1e-7


def test_readings_spread_over_decades_are_refused():
    """Readings that scatter over decades are not a noisy quantity but garbage: ProtocolError."""
    values = [1e-8, 3e-6, 2e-7, 5e-9, 8e-5, 1e-10, 4e-7, 6e-6, 2e-9]
    it = iter(values[2:])
    with pytest.raises(ProtocolError, match="disagree"):
        confirmed(values[0], values[1], lambda: next(it), 1e-12, "smu1", "READ?")


def test_reference_amplitudes_follow_the_measured_kinetics(low_threshold):
    """Graded reference SETs: increasing with the step they aim at, each the amplitude the fitted SET law gives
    for it, within the characterised threshold and the board's pulse limit."""
    from xbarlab.calibration.pipeline import reference_amplitudes
    from xbarlab.instruments.interfaces import board_limit

    st, prep = low_threshold
    top = board_limit(st.require_board(), "max_pulse_amplitude", 3.0)
    char = prep.characterization
    amps = reference_amplitudes(char, st.require_board(), steps=(0.05, 0.2, 0.8))
    assert list(amps) == sorted(amps) and amps[0] < amps[-1]
    up = char.up
    k = np.exp(up.s + (np.array(amps) - char.v_ref) / up.v_scale)
    inside = (np.array(amps) > up.v_on) & (np.array(amps) < top)
    assert inside.sum() >= 2  # the law is checked on amplitudes it sets, not only on clipped ones
    np.testing.assert_allclose(k[inside], np.array([0.05, 0.2, 0.8])[inside], rtol=1e-6)
    assert all(up.v_on <= a <= top for a in amps)


def test_a_voltage_whose_current_noise_hides_the_window_is_not_used(low_threshold):
    """The board's current-noise floor (zero-input conversions, A) over V must stay below the resolution asked
    of the window: asked for an impossible one, every voltage is refused for its noise floor."""
    st, prep = low_threshold
    with pytest.raises(ConfigError, match=r"0\.1 V / 0\.01 PLC: predicted .*noise floor .* above"):
        choose_read_conditions(st, prep.board, prep.characterization, prep.reader(), smu="smu1", read_voltage=0.2,
                               full_scale=prep.full_scale, resolution=1e-9)


def test_noisy_readings_under_line_noise_never_return_a_value_off_by_decades():
    """1000 noisy measurements (a 20 nA quantity with 60 % log-normal read noise, as a low PCM cell) whose
    replies, written as the 2400 writes them, carry 0.3 % flipped bits per byte and 0.3 % dropped bytes: every
    value returned lies within 0.75 decade of the quantity (the rule keeps readings within half a decade of
    the readings' trend; a flipped exponent digit is ≥ 10×), their median is the quantity's, and most
    measurements return a value."""
    from xbarlab.drivers.replies import numbers, repeat

    rng = np.random.default_rng(11)

    def reply() -> float:
        text = bytearray(f"{2e-8 * np.exp(0.6 * rng.standard_normal()):+.6E}".encode())
        for pos in np.flatnonzero(rng.random(len(text)) < 0.003):
            text[pos] ^= 1 << int(rng.integers(0, 8))
        keep = rng.random(len(text)) >= 0.003
        raw = bytes(b for b, k in zip(text, keep, strict=True) if k)
        return numbers(raw.decode("latin-1"), "smu1", "READ?", count=1)[0]

    got, refused = [], 0
    for _ in range(1000):
        try:
            a, b = repeat(lambda: (reply(), reply()))
            got.append(confirmed(a, b, lambda: repeat(reply), 1e-10, "smu1", "READ?"))
        except ProtocolError:
            refused += 1
    got = np.array(got)
    off = np.abs(np.log10(got / 2e-8)) > 0.75
    assert not off.any(), got[off]
    assert np.median(got) == pytest.approx(2e-8, rel=0.1)
    assert refused < 50, refused


class _StillBoard:
    """A 1×4 board whose cells never move: only reads and waits are observed."""

    shape = (1, 4)

    def pulse_arrays(self, rows, cols, amps, widths):  # pragma: no cover - never needed: targets are met
        raise AssertionError("no pulse expected")


def test_spaced_verify_reads_wait_between_groups_and_keep_their_count():
    """read_spacing: averaged reads come in `spread` groups with one wait of read_spacing s between groups;
    the number of reads is unchanged; a negative spacing is one clear error."""
    from xbarlab.calibration.writeverify import PulseModel, program_conductances

    g = np.full(4, 10e-6)
    reads, waits = [], []

    def reader(rows, cols):
        reads.append(len(rows))
        return g[cols]

    model = PulseModel(s_up=-3.0, s_down=-3.0, v_ref=1.0, v_scale=0.1, width_ref=1e-6, width_exp=0.5,
                       read_sigma=0.0, read_sigma_abs=1e-9)
    kw = dict(tolerance=0.5e-6, g_lo=1e-6, g_hi=20e-6, model=model, reader=reader, verify_reads=8, final_reads=8,
              wait=waits.append)
    program_conductances(_StillBoard(), np.array([0]), np.arange(4), g.reshape(1, 4), read_spacing=0.25, spread=4,
                         **kw)
    spaced_reads = len(reads)
    assert waits and set(waits) == {0.25}
    reads.clear(), waits.clear()
    program_conductances(_StillBoard(), np.array([0]), np.arange(4), g.reshape(1, 4), **kw)
    assert waits == [] and len(reads) == spaced_reads
    with pytest.raises(ConfigError, match="read_spacing"):
        program_conductances(_StillBoard(), np.array([0]), np.arange(4), g.reshape(1, 4), read_spacing=-1.0, **kw)
