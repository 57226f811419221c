"""Write a logbook: one HDF5 file per campaign or interactive session.

Crash safety (SIGKILL at any moment leaves a file that opens and holds every completed
step exactly once) rests on these rules:

* Measurements are buffered in memory and reach the file only when their step commits;
  a commit appends the rows and flushes them, then appends the step's row in ``steps``
  (with the committed length of every stream) and flushes again. Readers trust only rows
  covered by a committed step, so a kill in the middle of a commit leaves at most rows
  that no reader returns.
* Between structural changes the file is in HDF5 SWMR-write mode, in which the library
  orders its metadata writes so the file on disk is consistent at every instant (that is
  what lets readers watch it).
* Structural changes (a new run, stream or calibration record, a run's final status) are
  atomic: HDF5 makes them on an in-memory overlay of the file, the changed pages go to a
  redo journal first and only then into the log (:mod:`xbarlab.logbook.journal`). A new
  log is built under a temporary name and linked into place complete.
* A killed writer leaves the superblock's "open for writing" flags set (and, in SWMR mode,
  possibly an end of allocation short of its last objects) and maybe a journal; readers
  read an in-memory recovered view of the file, and ``open_append`` recovers the log
  (:mod:`xbarlab.logbook.recovery`) under an exclusive lock that proves the writer is gone.
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from xbarlab import __version__
from xbarlab.errors import LogbookError
from xbarlab.interrupts import sigint_deferred
from xbarlab.logbook.format import (
    EVENT_DTYPE,
    FORMAT,
    FORMAT_VERSION,
    LINK_BYTES,
    OUTSIDE_RUNS,
    RUNS,
    STEP_DTYPE,
    STEP_TEXT_INLINE,
    check_is_logbook,
    check_log_file,
    group_name,
    to_json,
    utc_now,
    window_lock,
    window_unlock,
)
from xbarlab.logbook.journal import OverlayFile, apply_changes, journal_path, write_journal
from xbarlab.logbook.recovery import recover_in_place

STATUSES = ("running", "completed", "aborted", "interrupted", "failed", "crashed")


LOCK_WAIT_S = 0.5  # s: a reader checking whether the writer is alive holds a shared lock for a moment


def _lock_file(path: Path, create: bool) -> int:
    """An exclusive advisory lock on ``path`` held for the writer's lifetime (released by the OS on kill)."""
    flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise LogbookError(f"{path}: cannot open for writing: {exc.strerror}") from None
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise LogbookError(f"{path}: is being written by another xbarlab process") from None
            time.sleep(0.01)


F = TypeVar("F", bound=Callable[..., Any])

def _uninterrupted(method: F) -> F:
    """Hold Ctrl-C back until ``method`` returns: a run is started, finished or the log closed as a whole
    (on disk and in this object), never half-way; the KeyboardInterrupt follows right after."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with sigint_deferred():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _TornLog(LogbookError):
    """A structural change was journaled but could not be written into the log: recovery finishes it."""


def _commit_overlay(path: Path, overlay: OverlayFile) -> None:
    """Make a structural change permanent: journal its pages, write them into the log, drop the journal.

    Raises LogbookError if the journal cannot be written (the log is untouched), :class:`_TornLog` if the
    log cannot be written after it (e.g. a full disk: the journal stays for recovery)."""
    changes = overlay.changes()
    if not changes and overlay.size == path.stat().st_size:
        return
    try:
        write_journal(path, overlay.size, changes)
    except OSError as exc:
        journal_path(path).unlink(missing_ok=True)
        raise LogbookError(f"{path}: a structural change could not be journaled ({exc.strerror}); "
                           "the log is as it was before it") from None
    try:
        apply_changes(path, overlay.size, changes)
    except OSError as exc:
        raise _TornLog(f"{path}: a structural change could not be written ({exc.strerror}); the log is "
                       "closed, and its journal completes the change when it is read or resumed") from None
    journal_path(path).unlink()


class Logbook:
    """An HDF5 logbook open for writing. Use :meth:`create` or :meth:`open_append`."""

    def __init__(self, path: Path, lock_fd: int, h5: h5py.File) -> None:
        self.path = path
        self._fd: int | None = lock_fd
        self._f: h5py.File | None = h5
        self._swmr = False
        self._lock = threading.RLock()
        self._datasets: dict[str, list[Any]] = {}  # path -> [low-level dataset id, length, extent, file space]
        self._mspaces: dict[tuple[int, ...], Any] = {}  # memory dataspaces by shape (reused)
        self._unflushed: set[str] = set()  # datasets appended to since the last flush
        self._open_runs: dict[str, RunWriter] = {}
        self._overlay: OverlayFile | None = None  # during a structural window
        self.recovered: list[str] = []  # what open_append repaired after a killed writer
        self.run_ids: list[str] = [str(g.attrs.get("run_id", k)) for k, g in h5[RUNS].items()]
        self._enter_swmr()
        window_unlock(lock_fd)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    @_uninterrupted
    def create(cls, path: str | Path, *, overwrite: bool = False, title: str = "") -> Logbook:
        """A new, empty logbook at ``path``. An existing file is only replaced when ``overwrite``.

        The file is built under a temporary name and linked into place complete, so a kill while
        it is created leaves either no log or an empty, valid one."""
        p = Path(path)
        if p.exists() and not overwrite:
            raise LogbookError(f"{p}: already exists; choose another file, resume it, or ask to overwrite it")
        if not p.parent.is_dir():
            raise LogbookError(f"{p}: folder {p.parent} does not exist")
        old = _lock_file(p, create=False) if p.exists() else None  # refuses a log another process writes
        tmp = p.with_name(f".{p.name}.{os.getpid()}.creating")
        fd = _lock_file(tmp, create=True)
        try:
            with h5py.File(tmp, "w", libver="latest", locking=False) as h5:
                h5.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "created": utc_now(),
                                 "software_version": __version__, "title": title})
                h5.create_group(RUNS, track_order=True)
            if old is not None:
                journal_path(p).unlink(missing_ok=True)  # a killed writer's journal belongs to the old log
                os.replace(tmp, p)
            else:
                try:
                    os.link(tmp, p)  # never replaces a file created meanwhile
                    tmp.unlink()
                except FileExistsError:
                    raise LogbookError(f"{p}: already exists; choose another file, resume it, or ask to "
                                       "overwrite it") from None
                except OSError:  # a file system without hard links
                    os.rename(tmp, p)
            window_lock(fd, exclusive=True, wait=True)  # released once the file is in SWMR mode
            h5 = h5py.File(p, "r+", libver="latest", locking=False)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        finally:
            if old is not None:
                os.close(old)
        return cls(p, fd, h5)

    @classmethod
    @_uninterrupted
    def open_append(cls, path: str | Path) -> Logbook:
        """An existing logbook, to add runs to (after a crash too: runs left running become 'crashed').

        A log left by a killed writer is recovered first (``recovered`` says what was done)."""
        p = check_log_file(path)
        fd = _lock_file(p, create=False)
        window_lock(fd, exclusive=True, wait=True)
        try:
            try:
                recovered = recover_in_place(p)  # the lock proves the writer that left the log is gone
            except ValueError as exc:
                raise LogbookError(f"{p}: damaged beyond repair ({exc})") from None
            try:
                overlay = OverlayFile(p)
                h5 = h5py.File(overlay, "r+", libver="latest", locking=False)
            except OSError as exc:
                raise LogbookError(f"{p}: cannot be opened (truncated or damaged HDF5 file: {exc})") from None
            try:
                check_is_logbook(h5, p)
                records = list(h5[OUTSIDE_RUNS].values()) if OUTSIDE_RUNS in h5 else []
                for g in [*h5[RUNS].values(), *records]:
                    if g.attrs.get("status") == "running":
                        g.attrs["status"] = "crashed"
                        g.attrs["error"] = "the writing process ended without finishing this run"
            finally:
                h5.close()
                overlay.close()
            _commit_overlay(p, overlay)
            h5 = h5py.File(p, "r+", libver="latest", locking=False)
        except BaseException:
            os.close(fd)
            raise
        book = cls(p, fd, h5)
        book.recovered = recovered
        return book

    # -- file modes ------------------------------------------------------------------------
    def _enter_swmr(self) -> None:
        assert self._f is not None
        self._f.flush()
        self._f.swmr_mode = True
        self._swmr = True

    @property
    def file(self) -> h5py.File:
        if self._f is None:
            raise LogbookError(f"{self.path}: the logbook is closed")
        return self._f

    @contextmanager
    def structure(self) -> Iterator[h5py.File]:
        """A window for structural changes, atomic against SIGKILL: HDF5 makes them on an in-memory overlay
        of the file, whose pages are journaled and then written into the log; then back to SWMR.

        Ctrl-C is held back until the window is closed (a KeyboardInterrupt half-way would leave HDF5
        objects open and the file unable to return to SWMR)."""
        with self._lock, sigint_deferred():
            f = self.file
            if self._overlay is not None:  # nested in an open window
                yield f
                return
            assert self._fd is not None
            window_lock(self._fd, exclusive=True, wait=True)  # readers wait until the file is consistent
            torn = False
            try:
                f.close()  # a clean close: the log on disk is consistent and unflagged
                self._f = None
                self._datasets.clear()
                self._unflushed.clear()
                self._swmr = False
                self._overlay = overlay = OverlayFile(self.path)
                try:
                    self._f = f = h5py.File(overlay, "r+", libver="latest", locking=False)
                    yield f
                finally:
                    if self._f is not None:
                        self._f.close()
                    self._f = None
                    self._overlay = None
                    overlay.close()
                _commit_overlay(self.path, overlay)
            except _TornLog:
                torn = True  # nothing more is written to this log; its journal is complete
                raise
            finally:
                if self._f is None and not torn:
                    self._f = h5py.File(self.path, "r+", libver="latest", locking=False)
                    self._enter_swmr()
                window_unlock(self._fd)

    def append(self, path: str, rows: np.ndarray, length: int | None = None, *, grow: bool = False) -> int:
        """Append rows to an existing dataset (allowed in SWMR mode). Returns the new length.

        Uses h5py's low-level dataset API (extent, hyperslab, write): the high-level
        ``resize`` + ``__setitem__`` costs several times more per call. With ``grow`` the
        extent grows in doublings ahead of the data (stream datasets, whose valid length is
        recorded by each step's commit marker and fixed when the run finishes); ``length``
        is the valid length so far when the extent runs ahead of it.
        """
        entry = self._datasets.get(path)
        if entry is None:
            dsid = self.file[path].id
            n = dsid.shape[0] if length is None else length
            entry = self._datasets[path] = [dsid, n, dsid.shape[0], dsid.get_space()]
        dsid, n0, extent, fspace = entry
        rows = np.ascontiguousarray(rows)
        shape = rows.shape
        n1 = n0 + shape[0]
        if n1 > extent:
            extent = max(n1, 2 * extent, 8) if grow else n1
            dsid.set_extent((extent, *shape[1:]))
            entry[2] = extent
            entry[3] = fspace = dsid.get_space()
        fspace.select_hyperslab((n0,) + (0,) * (len(shape) - 1), shape)
        mspace = self._mspaces.get(shape)
        if mspace is None:
            mspace = self._mspaces[shape] = h5py.h5s.create_simple(shape)
        dsid.write(mspace, fspace, rows)
        entry[1] = n1
        self._unflushed.add(path)
        return n1

    @_uninterrupted
    def flush(self) -> None:
        with self._lock:
            self.file.flush()
            self._unflushed.clear()

    def flush_appended(self) -> None:
        """Write the datasets appended to since the last flush (their rows and chunk indexes) to the file."""
        with self._lock:
            for path in sorted(self._unflushed):
                entry = self._datasets.get(path)
                if entry is not None:
                    entry[0].flush()
            self._unflushed.clear()

    # -- runs ------------------------------------------------------------------------------
    @_uninterrupted
    def start_run(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,
        station_text: str = "",
        instruments: Mapping[str, str] | None = None,
        run_id: str | None = None,
        calibrations_used: list[str] | None = None,
        sim_time: float | None = None,
        code_revision: int = 1,
    ) -> RunWriter:
        """Open a run (status 'running') with its settings. ``run_id`` defaults to ``<kind>-<n>``;
        ``code_revision`` is the revision of the code that runs it (the experiment's ``revision``)."""
        with self._lock:
            index = len(self.run_ids)
            rid = run_id or f"{kind}-{index + 1}"
            if rid in self.run_ids:
                raise LogbookError(f"{self.path}: a run named {rid!r} already exists")
            gname = f"{RUNS}/{group_name(rid)}"
            with self.structure() as f:
                self._create_run_group(f, gname, {
                    "run_id": rid, "index": index, "kind": kind,
                    "start_sim_time": float("nan") if sim_time is None else float(sim_time),
                    "format_version": FORMAT_VERSION, "code_revision": int(code_revision),
                    "params": to_json(dict(params or {})), "station_text": station_text,
                    "instruments": to_json(dict(instruments or {})),
                    "calibrations_used": to_json(list(calibrations_used or [])),
                })
            self.run_ids.append(rid)
            run = RunWriter(self, rid, gname, kind)
            self._open_runs[rid] = run
            return run

    @_uninterrupted
    def outside_runs(self, session_id: str) -> RunWriter:
        """The record of session ``session_id``'s instrument traffic outside any run (e.g. outputs switched
        off when the station closes), in ``outside_runs/<session>``: kept, and not a run, so replay skips it."""
        with self._lock:
            gname = f"{OUTSIDE_RUNS}/{group_name(session_id)}"
            key = f"{OUTSIDE_RUNS}/{session_id}"
            with self.structure() as f:
                if gname in f:
                    raise LogbookError(f"{self.path}: session {session_id!r} already has a record outside its runs")
                f.require_group(OUTSIDE_RUNS)  # optional group: an older log appended to keeps its format_version
                self._create_run_group(f, gname, {"run_id": session_id, "kind": "outside_runs"})
            record = RunWriter(self, key, gname, "outside_runs")
            self._open_runs[key] = record
            return record

    @staticmethod
    def _create_run_group(f: h5py.File, gname: str, attrs: Mapping[str, Any]) -> None:
        g = f.create_group(gname, track_order=True)
        g.attrs.update({
            "status": "running", "error": "", "start_time": utc_now(), "end_time": "", "start_wall": time.time(),
            "start_sim_time": float("nan"), "end_sim_time": float("nan"), "software_version": __version__,
            "params": to_json({}), "station_text": "", "instruments": to_json({}),
            "calibrations_used": to_json([]), "committed": to_json({}), **attrs,
        })
        g.create_dataset("steps", shape=(0,), maxshape=(None,), chunks=(4,), dtype=STEP_DTYPE)
        t = g.create_group("transcript")
        g.create_dataset("step_text", shape=(0,), maxshape=(None,), chunks=(4096,), dtype="u1")
        t.create_dataset("events", shape=(0,), maxshape=(None,), chunks=(32,), dtype=EVENT_DTYPE)
        t.create_dataset("bytes", shape=(0,), maxshape=(None,), chunks=(4096,), dtype="u1")
        g.create_group("streams", track_order=True)
        g.create_group("calibrations", track_order=True)

    @_uninterrupted
    def close(self) -> None:
        """Finish runs still open (status 'interrupted'), close the file, release the lock. Idempotent."""
        with self._lock:
            try:
                for run in list(self._open_runs.values()):
                    if self._f is None:  # a structural change could not be written: nothing more is
                        break
                    run.finish("interrupted", error="the logbook was closed while the run was open")
            finally:
                if self._f is not None:
                    self._f.close()
                    self._f = None
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None

    @property
    def closed(self) -> bool:
        return self._f is None

    def __enter__(self) -> Logbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamHandle:
    """What ``run.stream(name)`` returns: ``append(rows)`` buffers rows until the step commits."""

    def __init__(self, run: RunWriter, name: str) -> None:
        self.run, self.name = run, name

    def append(self, rows: Any) -> None:
        self.run._append(self.name, rows)


class _StreamState:
    def __init__(self, name: str, spec: dict[str, Any]) -> None:
        self.name = name
        self.columns: list[str] | None = list(spec["columns"]) if spec.get("columns") is not None else None
        shape = spec.get("shape")
        self.row_shape: tuple[int, ...] | None = (
            (len(self.columns),) if self.columns is not None else (tuple(int(s) for s in shape) if shape else None)
        )
        self.units = spec.get("units", "")
        self.dtype = np.dtype(spec.get("dtype", "f8"))
        self.pending: list[np.ndarray] = []
        self.committed = 0
        self.created = False

    def rows_of(self, rows: Any) -> np.ndarray:
        a = np.asarray(rows)
        if a.dtype.kind not in "biuf":
            raise LogbookError(f"stream {self.name!r}: measurements must be numbers, got {a.dtype}")
        a = a.astype(self.dtype, copy=False)
        if self.row_shape is None:  # inferred at the first append: a scalar, or a batch of rows
            self.row_shape = () if a.ndim == 0 else a.shape[1:]
        if a.shape == self.row_shape:
            a = a[np.newaxis]
        if a.shape[1:] != self.row_shape:
            raise LogbookError(f"stream {self.name!r}: rows of shape {a.shape[1:]} do not match the stream's "
                               f"row shape {self.row_shape}")
        return a

    @property
    def pending_rows(self) -> int:
        return sum(len(p) for p in self.pending)


class RunWriter:
    """One run in a logbook; implements the experiments' ``Recorder`` protocol."""

    def __init__(self, book: Logbook, run_id: str, gpath: str, kind: str) -> None:
        self.book, self.run_id, self.gpath, self.kind = book, run_id, gpath, kind
        self.status = "running"
        self._streams: dict[str, _StreamState] = {}
        self._events: list[tuple[str, bytes, float, float, int, int]] = []
        self._event_data: list[bytes] = []
        self._tx_bytes = 0  # transcript bytes already in the file
        self._tx_pending = 0
        self._calibrations_used: list[str] = []
        self.steps = 0
        self._last_sim = float("nan")  # s, simulated clock at the last exchange
        self._lock = threading.RLock()

    # -- Recorder protocol ----------------------------------------------------------------------
    def stream(self, name: str, **spec: Any) -> StreamHandle:
        """A measurement stream: ``columns=[..], units=[..]`` or ``shape=(..), units=".."`` (SI units)."""
        with self._lock:
            if not name or name.startswith("/") or ".." in name.split("/"):
                raise LogbookError(f"invalid stream name {name!r}")
            if name not in self._streams:
                self._streams[name] = _StreamState(name, spec)
            return StreamHandle(self, name)

    def _append(self, name: str, rows: Any) -> None:
        with self._lock:
            self._check_open()
            st = self._streams[name]
            st.pending.append(st.rows_of(rows))

    @_uninterrupted
    def commit_step(self, step_id: str, info: Mapping[str, Any] | None = None) -> None:
        """Make every row appended so far durable, then record the step (each step exactly once).

        Ctrl-C is held back until it returns: a KeyboardInterrupt between growing a dataset and writing
        into it would leave this writer's view of its datasets behind the file, so that finishing the run
        (after the Ctrl-C) failed."""
        with self._lock, self.book._lock:
            self._check_open()
            self._write_pending()
            self._write_transcript()
            # the rows reach the file before the marker that covers them (HDF5 writes the raw data of
            # different datasets in no set order within one flush)
            self.book.flush_appended()
            lengths = {n: s.committed for n, s in self._streams.items() if s.created}
            text = to_json({"step_id": step_id, "info": dict(info or {}), "lengths": lengths}).encode()
            if len(text) <= STEP_TEXT_INLINE:
                row = np.array([(time.time(), self._sim_now(), text, 0, 0)], dtype=STEP_DTYPE)
            else:  # a long step record goes to the blob, before its marker row
                end = self.book.append(f"{self.gpath}/step_text", np.frombuffer(text, dtype=np.uint8))
                row = np.array([(time.time(), self._sim_now(), b"", end - len(text), len(text))], dtype=STEP_DTYPE)
            # last: the step's commit marker (the extent grows ahead; unwritten rows read as wall_time 0)
            self.book.append(f"{self.gpath}/steps", row, self.steps, grow=True)
            self.book.flush()
            self.steps += 1

    def add_calibration(
        self, record_id: str, kind: str, data: Mapping[str, Any], meta: Mapping[str, Any] | None = None
    ) -> None:
        """Store a calibration record this run produced (arrays as datasets, ``meta`` as JSON)."""
        with self._lock, self.book._lock:
            self._check_open()
            with self.book.structure() as f:
                g = f[self.gpath]["calibrations"]
                name = group_name(record_id)
                if name in g:
                    raise LogbookError(f"run {self.run_id}: calibration record {record_id!r} already stored")
                rg = g.create_group(name)
                rg.attrs.update({"record_id": record_id, "kind": kind, "meta": to_json(dict(meta or {})),
                                 "created": utc_now()})
                for key, value in data.items():
                    arr = np.asarray(value)
                    if arr.dtype.kind in "biufS":
                        rg.create_dataset(group_name(key), data=arr)
                    else:
                        rg.attrs[f"json:{key}"] = to_json(value)

    def use_calibration(self, reference: str) -> None:
        """Note that this run used calibration record ``reference`` (``<run_id>/<record_id>``)."""
        with self._lock:
            if reference not in self._calibrations_used:
                self._calibrations_used.append(reference)

    def record_transcript(self, link: str, code: str, data: bytes, sim_time: float | None) -> None:
        """One instrument exchange (kept in memory until the next commit or the end of the run)."""
        with self._lock:
            if self.status != "running":
                return
            if len(link.encode()) > LINK_BYTES:
                raise LogbookError(f"link label {link!r} is longer than {LINK_BYTES} bytes")
            sim = float("nan") if sim_time is None else sim_time
            self._events.append((link.encode(), code.encode(), time.time(), sim,
                                 self._tx_bytes + self._tx_pending, len(data)))
            self._event_data.append(data)
            self._tx_pending += len(data)
            if sim_time is not None:
                self._last_sim = float(sim_time)

    @_uninterrupted
    def finish(self, status: str = "completed", error: str = "") -> None:
        """Close the run with its final status. A completed run keeps rows appended after its last commit."""
        if status not in STATUSES or status == "running":
            raise LogbookError(f"invalid run status {status!r}; expected one of {', '.join(STATUSES[1:])}")
        with self._lock, self.book._lock:
            if self.status != "running":
                return
            dropped = 0
            if status == "completed":
                self._write_pending()
            else:
                for st in self._streams.values():
                    dropped += st.pending_rows
                    st.pending.clear()
            self._write_transcript()
            with self.book.structure() as f:
                g = f[self.gpath]
                g.attrs.update({
                    "status": status, "error": error, "end_time": utc_now(), "end_wall": time.time(),
                    "end_sim_time": self._sim_now(), "uncommitted_rows_dropped": dropped,
                    "committed": to_json({n: s.committed for n, s in self._streams.items() if s.created}),
                    "calibrations_used": to_json(self._calibrations_used),
                })
                for st in self._streams.values():
                    if st.created:
                        ds = g["streams"][st.name]
                        ds.resize(st.committed, axis=0)  # drop the extent grown ahead of the data
                        ds.attrs["rows"] = st.committed
                g["steps"].resize(self.steps, axis=0)
            self.status = status
            self.book._open_runs.pop(self.run_id, None)

    # -- internals ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.status != "running":
            raise LogbookError(f"run {self.run_id} is already finished ({self.status})")
        if self.book.closed:
            raise LogbookError(f"{self.book.path}: the logbook is closed")

    def _sim_now(self) -> float:
        return self._last_sim

    def _write_pending(self) -> None:
        new = [s for s in self._streams.values() if s.pending and not s.created]
        if new:
            with self.book.structure() as f:
                streams = f[self.gpath]["streams"]
                for st in new:
                    assert st.row_shape is not None
                    row_bytes = max(1, int(np.prod(st.row_shape, dtype=np.int64)) * st.dtype.itemsize)
                    chunk_rows = int(max(1, min(4096, (16 * 1024) // row_bytes)))
                    ds = streams.create_dataset(st.name, shape=(0, *st.row_shape), maxshape=(None, *st.row_shape),
                                                chunks=(chunk_rows, *st.row_shape), dtype=st.dtype)
                    units = st.units
                    ds.attrs["units"] = to_json(units) if isinstance(units, (list, tuple)) else str(units)
                    ds.attrs["columns"] = to_json(st.columns) if st.columns is not None else ""
            for st in new:  # only once the window committed them
                st.created = True
        for st in self._streams.values():
            if st.pending:
                rows = st.pending[0] if len(st.pending) == 1 else np.concatenate(st.pending)
                st.committed = self.book.append(f"{self.gpath}/streams/{st.name}", rows, st.committed, grow=True)
                st.pending.clear()

    def _write_transcript(self) -> None:
        if not self._events:
            return
        data = b"".join(self._event_data)
        if data:
            self.book.append(f"{self.gpath}/transcript/bytes", np.frombuffer(data, dtype=np.uint8))
        self.book.append(f"{self.gpath}/transcript/events", np.array(self._events, dtype=EVENT_DTYPE))
        self._tx_bytes += self._tx_pending
        self._tx_pending = 0
        self._events.clear()
        self._event_data.clear()
