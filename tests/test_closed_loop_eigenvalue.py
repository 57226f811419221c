"""The closed-loop eigenvector experiment's eigenvalue is measured on the bench, not computed with the exact matrix."""

import numpy as np

from xbarlab.experiments import MemoryRecorder
from xbarlab.experiments.closed_loop import ClosedLoopExperiment
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text


def test_eigenvalue_comes_from_an_analog_mvm_of_the_found_vector():
    rec = MemoryRecorder()
    with Station.from_text(sim_station_text(8, 16, seed=7)) as station:
        result = ClosedLoopExperiment(station, {"mode": "eigenvector", "n": 6, "seed": 1}, recorder=rec).run()
    info = dict(rec.steps)["eigenvector"]
    lam1 = info["lambda_exact"]
    assert abs(info["lambda_measured"] - lam1) / abs(lam1) < 0.05
    assert result.eigenvalue_rel_error == abs(info["lambda_measured"] - lam1) / abs(lam1)
    # a Rayleigh quotient with the exact matrix would equal this to rounding; the bench's MVM does not
    assert abs(info["lambda_measured"] / info["rayleigh_with_exact_matrix"] - 1) > 1e-6
    assert np.isfinite(info["rayleigh_with_exact_matrix"])
