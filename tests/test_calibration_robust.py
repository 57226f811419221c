"""Calibration that finds out: characterisation and write-verify on devices the controller is not told about."""

import types

import numpy as np
import pytest

from xbarlab.calibration import prepare
from xbarlab.calibration.characterize import Characterization
from xbarlab.calibration.drift import drift_study
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text

ROBUST = pytest.importorskip("benchmarks.program_verify_robust", reason="benchmarks package not importable")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_write_verify_meets_its_yield_on_randomly_drawn_devices(index):
    # devices drawn from the benchmark's wide family (v_ref 0.7-1.6 V, v_scale 0.04-0.2 V, width exponent
    # 0.3-1, c2c 0.1-0.6, read noise 0.2-2 %); nothing of the draw reaches the controller
    rng = np.random.default_rng(77)
    kinds = ["rram", "rram", "ecram"]
    draws = [ROBUST.draw_device(rng, k) for k in kinds]
    r = ROBUST.run_device(kinds[index], draws[index], 10, 300 + index)
    assert "error" not in r, r.get("error")
    assert r["yield"] >= 0.99, r
    assert r["yield_truth"] >= 0.97, r
    assert r["mean_pulses"] <= 20, r


def test_characterization_measures_kinetics_the_sim_hides():
    params = {"v_ref": 1.45, "v_scale": 0.06, "width_exponent": 0.8, "read_noise": 0.01}
    with Station.from_text(sim_station_text(8, 8, seed=5, stuck_fraction=0.0, device_params=params)) as st:
        ch = prepare(st).characterization
        assert ch.up.v_scale == pytest.approx(0.06, rel=0.25)
        assert ch.down.v_scale == pytest.approx(0.06, rel=0.25)
        assert ch.up.width_exp == pytest.approx(0.8, abs=0.15)
        assert ch.read_sigma_rel == pytest.approx(0.01, rel=0.3)
        assert 1.2 < ch.up.v_on < 1.7 and not ch.down.abrupt
        # the record round-trips (what later steps take from the logbook)
        data, meta = ch.to_record()
        back = Characterization.from_record(data, meta, ch.bounds)
        assert back.pulse_model() == ch.pulse_model()


def test_pcm_reset_is_found_abrupt():
    with Station.from_text(sim_station_text(6, 6, "pcm", seed=2, stuck_fraction=0.0,
                                            device_params={"v_ref": 1.4})) as st:
        ch = prepare(st, g_max_expected=30e-6).characterization
        assert ch.down.abrupt and ch.down.v_abrupt >= 1.4
        assert ch.pulse_model().reset == "abrupt"


def test_drift_study_uses_instrument_time_on_a_bench_without_a_sim_clock(monkeypatch):
    import time as real_time

    from xbarlab.experiments import support

    fake = [0.0]
    monkeypatch.setattr(support, "time", types.SimpleNamespace(monotonic=lambda: real_time.monotonic() + fake[0],
                                                               sleep=real_time.sleep))

    class Hardware:  # the simulated bench as the controller sees real hardware: no simulated clock
        def __init__(self, st):
            self._st, self.waits = st, []

        def sim_time(self):
            return None

        def wait(self, seconds, checkpoint=None):
            self.waits.append(seconds)
            fake[0] += seconds
            self._st.sim.clock.advance(seconds)

        def __getattr__(self, name):
            return getattr(self._st, name)

    with Station.from_text(sim_station_text(4, 8, "pcm", seed=3, stuck_fraction=0.0)) as st:
        hw = Hardware(st)
        prep = prepare(hw, g_max_expected=30e-6)
        w = np.random.default_rng(0).uniform(-1, 1, (4, 4))
        x = np.random.default_rng(1).uniform(-1, 1, (3, 4))
        res = drift_study(hw, prep, w, x, times=(100.0, 1000.0), repeats=2, tolerance_frac=0.05)
    assert res.times == [100.0, 1000.0]
    # waits reach each time after programming once (not the sum of the times, as with `sim_time() or 0`)
    assert sum(hw.waits) == pytest.approx(1000.0, abs=5.0)
    assert all(np.isfinite(res.factors)) and all(np.isfinite(res.raw))
