"""Shared fixtures of the test suite.

Helper modules (imported by tests, never collected): ``tests/board_doubles.py`` (ideal board physics double,
raw-frame host, in-memory driver link), ``tests/experiment_doubles.py`` (numpy crossbar and station doubles
for the experiments), ``tests/safety_bench.py`` (the station text of the safety tests). No test module imports
another test module.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

#: the repository root (what a subprocess needs on PYTHONPATH to import this checkout of xbarlab)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """The environment for running ``python -m xbarlab`` in a subprocess: this checkout first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


@pytest.fixture(scope="session")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small 3-class, 6-feature data set (150 samples, fixed seed) as an .npz file with X and y."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 1, size=(3, 6))
    y = rng.integers(0, 3, size=150)
    path = tmp_path_factory.mktemp("data") / "blobs.npz"
    np.savez(path, X=centres[y] + 0.08 * rng.normal(size=(150, 6)), y=y)
    return str(path)


@pytest.fixture
def fake_bench():
    """Factory of a FakeCrossbar (keyword arguments as FakeCrossbar) inside a FakeStation: (board, station)."""
    from experiment_doubles import FakeCrossbar, FakeStation

    def make(rows: int = 16, cols: int = 16, **kwargs):
        board = FakeCrossbar(rows, cols, **kwargs)
        return board, FakeStation(board)

    return make
