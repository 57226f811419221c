"""A writer killed inside a structural change, or with its superblock behind its objects, leaves a log that
reads (saying what was recovered), resumes and keeps every committed step (benchmarks/logbook_kill.py
measures the same at random kill points)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys

import h5py
import numpy as np
import pytest

from xbarlab.cli import main
from xbarlab.logbook import Logbook, LogReader
from xbarlab.logbook.h5clear import lookup3
from xbarlab.logbook.journal import OverlayFile, journal_path, read_journal

# Writes a run with two committed steps, then dies (SIGKILL) inside the structural change that finishes it:
# ``journaled`` after the journal is complete and half of its pages are in the log, ``journaling`` half-way
# through writing the journal.
KILLED_IN_WINDOW = """
import os, signal, sys
import numpy as np
import xbarlab.logbook.writer as w
from xbarlab.logbook import Logbook

path, where = sys.argv[1], sys.argv[2]
book = Logbook.create(path)
run = book.start_run("x", run_id="r1")
s = run.stream("v", units="V")
for k in range(2):
    s.append(np.arange(3.0) + 10 * k)
    run.commit_step(f"k{k}")
real_write, real_apply = w.write_journal, w.apply_changes

def write_half(p, size, changes):
    jp = real_write(p, size, changes)
    data = jp.read_bytes()
    jp.write_bytes(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

def apply_half(p, size, changes):
    real_apply(p, size, changes[: len(changes) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

if where == "journaling":
    w.write_journal = write_half
else:
    w.apply_changes = apply_half
run.finish("completed")
"""


def _kill_in_window(path, where):
    proc = subprocess.run([sys.executable, "-c", KILLED_IN_WINDOW, str(path), where], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


@pytest.mark.parametrize("where", ["journaling", "journaled"])
def test_a_kill_inside_a_structural_change_leaves_a_log_that_reads_and_resumes(tmp_path, where):
    p = tmp_path / "killed.h5"
    _kill_in_window(p, where)
    assert journal_path(p).exists()
    assert (read_journal(p) is not None) == (where == "journaled")
    before = p.read_bytes()
    r = LogReader(p)
    assert r.stream("r1", "v").data.tolist() == [0, 1, 2, 10, 11, 12]  # both committed steps, exactly once
    status = r.runs()[0]["status"]
    assert status == ("completed" if where == "journaled" else "running")  # the change finished, or never was
    assert any("journal" in note for note in r.recovered), r.recovered
    assert p.read_bytes() == before  # readers never modify the log
    with Logbook.open_append(p) as book:
        assert any("journal" in note for note in book.recovered)
        book.start_run("after", run_id="after").finish("completed")
    assert not journal_path(p).exists()
    statuses = {i["run_id"]: i["status"] for i in LogReader(p).runs()}
    assert statuses == {"r1": "completed" if where == "journaled" else "crashed", "after": "completed"}
    assert LogReader(p).recovered == []
    with h5py.File(p, "r") as f:  # a plain HDF5 open works again
        assert list(f["runs"]) == ["r1", "after"]


def test_a_superblock_end_of_allocation_behind_the_objects_is_recovered(tmp_path):
    """The issue's failure: a killed writer's superblock records an end of allocation (EOA) short of objects
    it wrote ("addr overflow"). Made here directly: the flags of a killed writer and an EOA half the file."""
    p = tmp_path / "eoa.h5"
    with Logbook.create(p) as book:
        run = book.start_run("x", run_id="r1")
        run.stream("v", units="V").append(np.arange(5.0))
        run.commit_step("k0")
        book.start_run("y", run_id="r2")
    data = bytearray(p.read_bytes())
    eoa_at, sum_at = 12 + 2 * 8, 12 + 4 * 8
    eoa = struct.unpack_from("<Q", data, eoa_at)[0]
    assert eoa == len(data)
    struct.pack_into("<Q", data, eoa_at, len(data) // 2)
    data[11] = 0x05  # open for writing, SWMR writing: as a killed writer leaves it
    struct.pack_into("<I", data, sum_at, lookup3(bytes(data[:sum_at])))
    p.write_bytes(bytes(data))
    copy = tmp_path / "plain.h5"
    copy.write_bytes(bytes(data[:11]) + b"\0" + bytes(data[12:sum_at]) + struct.pack(
        "<I", lookup3(bytes(data[:11]) + b"\0" + bytes(data[12:sum_at]))) + bytes(data[sum_at + 4:]))
    read = []
    with pytest.raises(OSError, match="end of allocation|EOA|addr overflow"):  # the damage is real
        with h5py.File(copy, "r") as f:
            f.visititems(lambda name, obj: read.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    r = LogReader(p)
    assert [i["run_id"] for i in r.runs()] == ["r1", "r2"]
    assert r.stream("r1", "v").data.tolist() == [0, 1, 2, 3, 4]
    assert r.recovered and "ended without closing" in r.recovered[0]
    with Logbook.open_append(p) as book:
        assert any("end of allocation" in note for note in book.recovered), book.recovered
        book.start_run("after", run_id="after").finish("completed")
    statuses = {i["run_id"]: i["status"] for i in LogReader(p).runs()}
    assert statuses == {"r1": "interrupted", "r2": "interrupted", "after": "completed"}


def test_log_show_says_what_was_recovered(tmp_path, capsys):
    p = tmp_path / "killed.h5"
    _kill_in_window(p, "journaled")
    assert main(["log", "show", str(p)]) == 0
    out = capsys.readouterr().out
    assert "recovered:" in out and "journal" in out


def test_a_kill_while_a_log_is_created_leaves_no_log_or_a_complete_one(tmp_path):
    code = ("import os, signal, sys, h5py\nfrom xbarlab.logbook import Logbook\n"
            "real = h5py.File.close\n"
            "def close(self):\n    real(self)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            "h5py.File.close = close\nLogbook.create(sys.argv[1])\n")
    p = tmp_path / "new.h5"
    proc = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not p.exists()  # built under a temporary name: never an empty or partial file at the log's name
    with Logbook.create(p) as book:
        book.start_run("x").finish("completed")
    assert LogReader(p).runs()[0]["status"] == "completed"


def test_the_overlay_keeps_the_file_untouched_until_committed(tmp_path):
    p = tmp_path / "o.h5"
    with Logbook.create(p) as book:
        book.start_run("x", run_id="r1").finish("completed")
    before = p.read_bytes()
    overlay = OverlayFile(p)
    with h5py.File(overlay, "r+", libver="latest", locking=False) as f:
        f["runs"].create_group("extra")
        f["runs/r1"].attrs["note"] = "x" * 5000
    overlay.close()
    assert p.read_bytes() == before and overlay.changes()
    merged = bytearray(before + bytes(max(0, overlay.size - len(before))))
    for offset, chunk in overlay.changes():
        merged[offset: offset + len(chunk)] = chunk
    (tmp_path / "m.h5").write_bytes(bytes(merged[: overlay.size]))
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert "extra" in f["runs"] and f["runs/r1"].attrs["note"] == "x" * 5000
    os.unlink(tmp_path / "m.h5")


def test_a_structural_change_that_cannot_be_written_closes_the_log_and_recovery_finishes_it(tmp_path, monkeypatch):
    """A full disk after the journal was written: one clear error, nothing more written, the journal completes it."""
    import errno

    import xbarlab.logbook.writer as writer

    p = tmp_path / "full.h5"
    book = Logbook.create(p)
    run = book.start_run("x", run_id="r1")
    run.stream("v", units="V").append(np.arange(3.0))
    run.commit_step("k0")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer, "apply_changes", full)
    with pytest.raises(writer.LogbookError, match="could not be written .No space left on device.*journal"):
        book.start_run("y", run_id="r2")
    assert book.closed
    book.close()  # releases the lock; nothing more is written
    monkeypatch.undo()
    r = LogReader(p)
    assert [i["run_id"] for i in r.runs()] == ["r1", "r2"] and r.stream("r1", "v").data.tolist() == [0, 1, 2]
    assert any("completed from its journal" in note for note in r.recovered)
    with Logbook.open_append(p) as again:
        assert any("journal" in note for note in again.recovered)
    assert LogReader(p).recovered == [] and not journal_path(p).exists()
