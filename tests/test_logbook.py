"""Logbook writer/reader: layout, commit semantics, bad files, concurrent reading."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from xbarlab.cli import main
from xbarlab.errors import LogbookError
from xbarlab.logbook import Logbook, LogReader, summary
from xbarlab.logbook.h5clear import clear_consistency_flags, consistency_flags, lookup3


def test_roundtrip_streams_units_steps_calibrations_and_transcript(tmp_path):
    p = tmp_path / "a.h5"
    with Logbook.create(p, title="t") as book:
        run = book.start_run("iv", {"v": np.float64(0.2), "n": 3}, "station text", {"smu1": "KEITHLEY 2400"})
        iv = run.stream("iv", columns=["voltage", "current"], units=["V", "A"])
        g = run.stream("conductance", shape=(2, 3), units="S")
        iv.append([0.1, 1e-6])
        iv.append(np.array([[0.2, 2e-6], [0.3, 3e-6]]))
        g.append(np.full((2, 3), 1e-5))
        run.record_transcript("smu1", "w", b"*IDN?", 0.0)
        run.record_transcript("smu1", "r", b"KEITHLEY", 1e-3)
        run.commit_step("sweep", {"points": 3})
        run.add_calibration("gains", "read_gain", {"gain": np.array([1.0, 0.98])}, {"reference": "smu1"})
        run.use_calibration("earlier/gains")
        run.finish("completed")
    r = LogReader(p)
    (info,) = r.runs()
    assert info["status"] == "completed" and info["params"] == {"n": 3, "v": 0.2}
    assert info["instruments"] == {"smu1": "KEITHLEY 2400"} and info["calibrations_used"] == ["earlier/gains"]
    s = r.stream(info["run_id"], "iv")
    assert s.units == ["V", "A"] and s.columns == ["voltage", "current"]
    np.testing.assert_array_equal(s.column("current"), [1e-6, 2e-6, 3e-6])
    c = r.stream(info["run_id"], "conductance")
    assert c.data.shape == (1, 2, 3) and c.units == "S"
    assert [st["step_id"] for st in r.steps(info["run_id"])] == ["sweep"]
    ev = r.transcript(info["run_id"])
    assert [(e.code, e.data) for e in ev] == [("w", b"*IDN?"), ("r", b"KEITHLEY")] and ev[1].sim_time == 1e-3
    ref, data, meta = r.find_calibration("read_gain")
    assert ref == f"{info['run_id']}/gains" and meta == {"reference": "smu1"}
    np.testing.assert_array_equal(data["gain"], [1.0, 0.98])
    text = summary(p)
    assert "iv-1" in text and "completed" in text and "stream iv: 3 rows" in text


def test_rows_are_visible_only_once_their_step_commits(tmp_path):
    p = tmp_path / "b.h5"
    book = Logbook.create(p)
    run = book.start_run("x")
    s = run.stream("v", units="V")
    s.append(np.arange(3.0))
    run.commit_step("one")
    s.append(np.arange(5.0))  # not committed
    assert LogReader(p).stream(run.run_id, "v").data.tolist() == [0, 1, 2]
    run.finish("aborted", error="stopped by the user")
    book.close()
    info = LogReader(p).runs()[0]
    assert info["status"] == "aborted" and info["error"] == "stopped by the user"
    assert LogReader(p).stream(run.run_id, "v").data.tolist() == [0, 1, 2]  # the aborted step's rows dropped


def test_bad_rows_and_names_are_refused(tmp_path):
    with Logbook.create(tmp_path / "c.h5") as book:
        run = book.start_run("x")
        s = run.stream("iv", columns=["v", "i"])
        with pytest.raises(LogbookError, match="row shape"):
            s.append([1.0, 2.0, 3.0])
        with pytest.raises(LogbookError, match="numbers"):
            run.stream("t").append(["a"])
        with pytest.raises(LogbookError, match="already exists"):
            book.start_run("y", run_id=run.run_id)
        with pytest.raises(LogbookError, match="invalid run status"):
            run.finish("done")


def test_existing_logs_are_never_overwritten_unless_asked(tmp_path):
    p = tmp_path / "d.h5"
    Logbook.create(p).close()
    with pytest.raises(LogbookError, match="already exists"):
        Logbook.create(p)
    with Logbook.create(p, overwrite=True) as book:
        with pytest.raises(LogbookError, match="being written by another"):
            Logbook.open_append(p)
        assert book.run_ids == []


@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "foreign", "directory"])
def test_bad_files_give_one_clear_error(tmp_path, kind, capsys):
    p = tmp_path / "bad.h5"
    if kind == "text":
        p.write_text("not hdf5\n")
    elif kind == "truncated":
        with Logbook.create(p) as book:
            run = book.start_run("x")
            run.stream("v").append(np.arange(100000.0))
            run.finish("completed")
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 3])
    elif kind == "foreign":
        with h5py.File(p, "w") as f:
            f["x"] = 1
    elif kind == "directory":
        p.mkdir()
    with pytest.raises(LogbookError) as exc:
        LogReader(p)
    expected = {"missing": "no such log file", "text": "not an HDF5 file", "truncated": "truncated or damaged",
                "foreign": "not an xbarlab logbook", "directory": "is a directory"}[kind]
    assert expected in str(exc.value)
    assert main(["log", "show", str(p)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_lookup3_matches_hdf5_superblock_checksum(tmp_path):
    p = tmp_path / "e.h5"
    with h5py.File(p, "w", libver="latest") as f:
        f["x"] = 1
    head = p.read_bytes()[:48]
    assert lookup3(head[:44]) == int.from_bytes(head[44:48], "little")
    assert consistency_flags(p) == 0 and clear_consistency_flags(p) is False


WRITER = """
import sys, numpy as np
from xbarlab.logbook import Logbook
book = Logbook.create(sys.argv[1])
run = book.start_run("count")
s = run.stream("n")
for k in range(int(sys.argv[2])):
    if k % 50 == 0:
        extra = book.start_run(f"side-{k}")  # structural changes while the reader watches
        extra.finish("completed")
    s.append(float(k))
    run.commit_step(f"k{k}")
    print(k, flush=True)
if sys.argv[3] == "hang":
    import time; time.sleep(60)
run.finish("completed")
book.close()
"""


def test_a_reader_watches_a_log_while_another_process_writes_it(tmp_path):
    p = tmp_path / "live.h5"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(p), "400", "finish"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # the file exists and holds a committed step
    seen = []
    while proc.poll() is None:
        r = LogReader(p)
        data = r.stream("count-1", "n").data
        assert np.array_equal(data, np.arange(len(data)))  # never a torn or duplicated row
        seen.append(len(data))
    proc.wait()
    assert seen == sorted(seen) and len(set(seen)) >= 2, seen
    assert len(LogReader(p).stream("count-1", "n").data) == 400


def test_sigkill_leaves_a_readable_file_that_can_be_appended_to(tmp_path):
    p = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(p), "120", "hang"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(120)]
    proc.kill()
    proc.wait()
    assert lines[-1].strip() == "119"
    r = LogReader(p)
    assert r.runs()[0]["status"] == "running"
    assert r.stream("count-1", "n").data.tolist() == list(range(120))  # every committed step, exactly once
    with Logbook.open_append(p) as book:  # clears the killed writer's flags under the lock
        book.start_run("after").finish("completed")
    statuses = {i["run_id"]: i["status"] for i in LogReader(p).runs()}
    assert statuses["count-1"] == "crashed" and statuses[f"after-{len(statuses)}"] == "completed"
    with h5py.File(p, "r") as f:  # a plain HDF5 open works again
        assert "runs" in f
