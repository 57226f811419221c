"""LogReader beside another h5py handle to the same file in the same process."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from xbarlab.logbook import Logbook, LogReader


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "shared.h5"
    book = Logbook.create(path)
    run = book.start_run(kind="array_read", params={"repeats": 1}, station_text="", run_id="r1")
    run.stream("values", columns=["v"], units=["V"]).append(np.array([[0.1], [0.2]]))
    run.finish("completed")
    book.close()
    return path


@pytest.mark.parametrize("flags", [{}, {"locking": True}, {"locking": False}, {"locking": "best-effort"},
                                   {"swmr": True}, {"libver": "latest"}], ids=str)
def test_reader_works_while_the_user_holds_an_h5py_handle(log, flags):
    with h5py.File(log, "r", **flags) as user:
        reader = LogReader(log)
        assert [r["status"] for r in reader.runs()] == ["completed"]
        assert reader.stream("r1", "values").column("v").tolist() == [0.1, 0.2]
        assert "runs" in user  # the user's handle still works after the reader closed its own
