"""The closed-loop solve programs A so the circuit solves A·x = b, not Aᵀ·x = b (a non-symmetric matrix)."""

from __future__ import annotations

import numpy as np

from xbarlab.session import LabSession


def test_closed_loop_solve_of_a_non_symmetric_matrix(tmp_path):
    rng = np.random.default_rng(1)
    n = 6
    a = 2.0 * np.eye(n) + 0.6 * np.triu(rng.uniform(0.2, 1.0, (n, n)), 1)  # A != A^T, well conditioned
    np.savez(tmp_path / "ns.npz", A=a, b=rng.normal(size=n))
    with LabSession.open(station=None, log=tmp_path / "ns.h5") as lab:
        result = lab.run("closed_loop_solve", {"matrix": str(tmp_path / "ns.npz"), "rhs": 3, "seed": 0})
    # solving A^T x = b instead gives about 0.30 here; the circuit itself is good to a few per cent
    assert result.median_rel_error < 0.05, result.median_rel_error


def test_refinement_refuses_the_closed_loop_inner_solver_for_a_non_symmetric_matrix(tmp_path):
    import pytest

    from xbarlab.errors import ConfigError

    rng = np.random.default_rng(2)
    a = 2.0 * np.eye(4) + 0.5 * np.triu(rng.uniform(0.2, 1.0, (4, 4)), 1)
    np.savez(tmp_path / "ns.npz", A=a, b=rng.normal(size=4))
    with LabSession.open(station=None, log=tmp_path / "ls.h5") as lab:
        with pytest.raises(ConfigError, match="needs a symmetric matrix"):
            lab.run("linear_solve", {"matrix": str(tmp_path / "ns.npz"), "inner": "closed_loop"})
