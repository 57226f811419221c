"""Read a logbook, also while another process is writing it.

Every call opens the file, reads and closes it again (a snapshot), so a reader never
holds the writer up and always sees the latest committed state. The file is opened
read-only in SWMR mode; while the writer is in one of its short structural windows the
open waits. A file left by a killed writer is read through an in-memory view of it as
recovery would leave it (journal applied, superblock flags and end of allocation fixed);
the file is never modified; ``LogReader.recovered`` says what was found and done. Stream rows beyond the
last committed step are not returned.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from xbarlab.errors import LogbookError
from xbarlab.interrupts import sigint_deferred
from xbarlab.logbook.format import (
    OUTSIDE_RUNS,
    RUNS,
    check_is_logbook,
    check_log_file,
    from_json,
    group_name,
    window_lock,
)
from xbarlab.logbook.h5clear import consistency_flags
from xbarlab.logbook.journal import OverlayFile, journal_path
from xbarlab.logbook.recovery import recovered_view, writer_alive
from xbarlab.logbook.transcript import Event

T = TypeVar("T")
RETRY_S = 2.0  # s, how long to wait out a writer's structural window


@dataclass
class StreamData:
    """A stream's committed rows with its metadata (units: SI unit string or one per column)."""

    name: str
    data: np.ndarray
    units: Any
    columns: list[str] | None
    attrs: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> np.ndarray:
        if not self.columns or name not in self.columns:
            raise LogbookError(f"stream {self.name!r} has no column {name!r} (columns: {self.columns})")
        return self.data[:, self.columns.index(name)]


def _step_count(steps: h5py.Dataset) -> int:
    """Committed steps: the rows written so far (a running writer grows the extent ahead; unwritten rows are 0)."""
    n = int(steps.shape[0])
    if n == 0 or steps[n - 1]["wall_time"] > 0:
        return n
    lo, hi = 0, n - 1  # rows [0, lo) written, row hi not
    while lo < hi:
        mid = (lo + hi) // 2
        if steps[mid]["wall_time"] > 0:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _step_text(row: Any, blob: bytes, base: int = 0) -> dict[str, Any]:
    """A step row's JSON record: inline, or at text_offset/text_length in the blob (``blob`` starts at ``base``)."""
    size = int(row["text_length"])
    if size == 0:
        return from_json(bytes(row["text"])) or {}
    start = int(row["text_offset"]) - base
    return from_json(blob[start: start + size]) or {}


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


class _ReadFailed(LogbookError):
    """A read failed: the file is damaged, or a writer changed it under us (retried)."""


def _retrying(method: Callable[..., T]) -> Callable[..., T]:
    """Retry a snapshot read that a concurrent writer disturbed, for up to RETRY_S."""

    @functools.wraps(method)
    def wrapper(self: LogReader, *args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                return method(self, *args, **kwargs)
            except _ReadFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    return wrapper


def _h5_open(path: Path, **kwargs: Any) -> h5py.File:
    """Open read-only without file locking (readers must not block the writer of another process).

    HDF5 shares one open file per process: when this process already holds the file through a
    handle opened with other locking flags (a user's ``h5py.File(path)``), open it with theirs.
    """
    try:
        return h5py.File(path, "r", locking=False, **kwargs)
    except OSError as exc:
        if "flag values" not in str(exc):
            raise
    for locking in (True, "best-effort"):
        try:
            return h5py.File(path, "r", locking=locking, **kwargs)
        except OSError as exc:
            if "flag values" not in str(exc):
                raise
    return h5py.File(path, "r", **kwargs)


class LogReader:
    """Read-only access to a logbook file."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_log_file(path)
        #: what was found and done to read a log left by a killed writer (sentences; empty for a sound log)
        self.recovered: list[str] = []
        self._load_attrs()

    @_retrying
    def _load_attrs(self) -> None:
        with self._open() as f:
            check_is_logbook(f, self.path)
            self.attrs = {k: _attr(v) for k, v in f.attrs.items()}

    @classmethod
    def from_book(cls, book: Any) -> LogReader:
        """A reader of a logbook this process is writing (its committed state)."""
        book.flush()
        return cls(book.path)

    # -- opening -------------------------------------------------------------------------------
    @contextmanager
    def _open(self) -> Iterator[h5py.File]:
        """The log open for one read. Ctrl-C is held back meanwhile: a KeyboardInterrupt raised inside h5py
        (its lock, its file-object callbacks) surfaces as a SystemError instead."""
        with sigint_deferred():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                deadline = time.monotonic() + RETRY_S
                while not window_lock(fd, exclusive=False, wait=False):  # a writer is changing the structure
                    if time.monotonic() > deadline:
                        raise _ReadFailed(f"{self.path}: a writer kept the file busy for {RETRY_S} s")
                    time.sleep(0.002)
                with self._opened() as f:
                    yield f
            finally:
                os.close(fd)  # releases the shared window lock

    @contextmanager
    def _opened(self) -> Iterator[h5py.File]:
        f, view = self._open_file()
        try:
            yield f
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise _ReadFailed(f"{self.path}: truncated or damaged log ({exc})") from None
        finally:
            f.close()
            if view is not None:
                view.close()

    KILLED = "the writing process ended without closing the file; read as of its last committed step"

    def _open_file(self) -> tuple[h5py.File, OverlayFile | None]:
        journal = journal_path(self.path).exists()
        if not journal and not consistency_flags(self.path):  # cleanly closed (the open checks truncation)
            try:
                f = _h5_open(self.path)
                self.recovered = []
                return f, None
            except OSError as exc:
                if "open for write" not in str(exc):
                    raise LogbookError(f"{self.path}: truncated or damaged HDF5 file ({exc})") from None
        if not journal and writer_alive(self.path):
            deadline = time.monotonic() + RETRY_S
            while True:  # SWMR read, waiting out transient states
                try:
                    f = _h5_open(self.path, swmr=True)
                    self.recovered = []
                    return f, None
                except OSError:
                    if time.monotonic() >= deadline:
                        break
                time.sleep(0.01)
        # the writer was killed: read the log as recovery would leave it (in memory; the file is not modified)
        try:
            view, notes = recovered_view(self.path)
        except (OSError, ValueError) as exc:
            raise LogbookError(f"{self.path}: truncated or damaged HDF5 file ({exc})") from None
        try:
            f = h5py.File(view, "r", locking=False)
        except OSError as exc:
            view.close()
            raise LogbookError(f"{self.path}: truncated or damaged HDF5 file ({exc})") from None
        self.recovered = [self.KILLED, *notes]
        return f, view

    def _run_group(self, f: h5py.File, run_id: str) -> h5py.Group:
        name = group_name(run_id)
        if name not in f[RUNS]:
            known = ", ".join(str(g.attrs.get("run_id", k)) for k, g in f[RUNS].items()) or "none"
            raise LogbookError(f"{self.path}: no run {run_id!r} (runs: {known})")
        return f[RUNS][name]

    # -- runs ----------------------------------------------------------------------------------
    @_retrying
    def runs(self) -> list[dict[str, Any]]:
        """Every run in order, as dicts: run_id, kind, status, start/end times, params, steps, ..."""
        out = []
        with self._open() as f:
            for key, g in f[RUNS].items():
                out.append(self._run_info(g, key))
        out.sort(key=lambda r: r["index"])
        return out

    @_retrying
    def run(self, run_id: str) -> dict[str, Any]:
        with self._open() as f:
            return self._run_info(self._run_group(f, run_id), group_name(run_id))

    @staticmethod
    def _run_info(g: h5py.Group, key: str) -> dict[str, Any]:
        a = {k: _attr(v) for k, v in g.attrs.items()}
        info: dict[str, Any] = {
            "run_id": a.get("run_id", key), "index": int(a.get("index", 0)), "kind": a.get("kind", ""),
            "status": a.get("status", ""), "error": a.get("error", ""),
            "start_time": a.get("start_time", ""), "end_time": a.get("end_time", ""),
            "start_sim_time": a.get("start_sim_time"), "end_sim_time": a.get("end_sim_time"),
            "software_version": a.get("software_version", ""),
            "format_version": int(a.get("format_version", 1)),  # of the xbarlab that wrote the run
            "code_revision": int(a.get("code_revision", 1)),  # of the step type's code (format 3; before: 1)
            "params": from_json(a.get("params", "")) or {}, "station_text": a.get("station_text", ""),
            "instruments": from_json(a.get("instruments", "")) or {},
            "calibrations_used": from_json(a.get("calibrations_used", "")) or [],
        }
        info["steps"] = _step_count(g["steps"]) if "steps" in g else 0
        return info

    @_retrying
    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """Committed steps of a run: step_id, info, wall_time (s since epoch), sim_time (s)."""
        with self._open() as f:
            g = self._run_group(f, run_id)
            rows = g["steps"][: _step_count(g["steps"])]
            blob = g["step_text"][()].tobytes()
        out = []
        for r in rows:
            text = _step_text(r, blob)
            out.append({"step_id": text.get("step_id", ""), "info": text.get("info", {}),
                        "wall_time": float(r["wall_time"]), "sim_time": float(r["sim_time"])})
        return out

    # -- streams ---------------------------------------------------------------------------------
    @_retrying
    def stream_names(self, run_id: str) -> list[str]:
        names: list[str] = []
        with self._open() as f:
            g = self._run_group(f, run_id)["streams"]
            g.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        return names

    @_retrying
    def stream(self, run_id: str, name: str) -> StreamData:
        """A stream's committed rows (numpy array) with units, columns and attributes."""
        with self._open() as f:
            g = self._run_group(f, run_id)
            if name not in g["streams"]:
                raise LogbookError(f"{self.path}: run {run_id!r} has no stream {name!r}")
            ds = g["streams"][name]
            n = self._committed_rows(g, name)
            data = ds[: min(n, ds.shape[0])]
            attrs = {k: _attr(v) for k, v in ds.attrs.items()}
        units = attrs.get("units", "")
        if isinstance(units, str) and units.startswith("["):
            units = from_json(units)
        cols = from_json(attrs.get("columns", "")) or None
        return StreamData(name, data, units, cols, attrs)

    @staticmethod
    def _committed_rows(g: h5py.Group, name: str) -> int:
        committed = from_json(_attr(g.attrs.get("committed", ""))) or {}
        n = int(committed.get(name, 0))
        steps = g["steps"]
        count = _step_count(steps)
        if count:
            last = steps[count - 1]
            off, size = int(last["text_offset"]), int(last["text_length"])
            text = _step_text(last, g["step_text"][off: off + size].tobytes(), base=off)
            n = max(n, int(text.get("lengths", {}).get(name, 0)))
        return n

    # -- calibrations ------------------------------------------------------------------------------
    @_retrying
    def calibrations(self, run_id: str) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
        """Records a run stored: ``{record_id: (kind, data, meta)}``."""
        out: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        with self._open() as f:
            for key, rg in self._run_group(f, run_id)["calibrations"].items():
                a = {k: _attr(v) for k, v in rg.attrs.items()}
                data: dict[str, Any] = {k.replace("%2F", "/").replace("%25", "%"): ds[()] for k, ds in rg.items()}
                for k, v in a.items():
                    if k.startswith("json:"):
                        data[k[5:]] = from_json(v)
                out[a.get("record_id", key)] = (a.get("kind", ""), data, from_json(a.get("meta", "")) or {})
        return out

    def find_calibration(self, kind: str) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        """The newest record of ``kind`` in completed runs: (reference ``run_id/record_id``, data, meta)."""
        for info in reversed(self.runs()):
            if info["status"] != "completed":
                continue
            for rid, (k, data, meta) in reversed(list(self.calibrations(info["run_id"]).items())):
                if k == kind:
                    return f"{info['run_id']}/{rid}", data, meta
        return None

    # -- transcript --------------------------------------------------------------------------------
    @_retrying
    def outside_runs(self) -> dict[str, list[Event]]:
        """Per session id, the instrument exchanges recorded outside its runs (closing the station: outputs off)."""
        with self._open() as f:
            if OUTSIDE_RUNS not in f:
                return {}
            names = [(str(g.attrs.get("run_id", k)), k) for k, g in f[OUTSIDE_RUNS].items()]
        return {sid: self._transcript_at(f"{OUTSIDE_RUNS}/{key}") for sid, key in names}  # one open each

    @_retrying
    def transcript(self, run_id: str) -> list[Event]:
        """Every recorded instrument exchange of a run, in order."""
        with self._open() as f:
            return self._transcript_of(self._run_group(f, run_id))

    @_retrying
    def _transcript_at(self, gpath: str) -> list[Event]:
        with self._open() as f:
            return self._transcript_of(f[gpath])

    @staticmethod
    def _transcript_of(g: h5py.Group) -> list[Event]:
        t = g["transcript"]
        events = t["events"][()]
        blob = t["bytes"][()].tobytes()
        out = []
        for e in events:
            start = int(e["offset"])
            out.append(Event(e["link"].decode(), e["code"].decode(), blob[start: start + int(e["length"])],
                             float(e["wall_time"]), float(e["sim_time"])))
        return out

    # -- pandas / xarray (the ``data`` extra) ------------------------------------------------------
    def to_pandas(self, run_id: str, name: str, dims: tuple[str, ...] | None = None) -> Any:
        """A stream as a pandas DataFrame with its units in ``df.attrs["units"]`` (see ``logbook.frames``)."""
        from xbarlab.logbook.frames import to_pandas

        return to_pandas(self.stream(run_id, name), run_id, dims)

    def to_xarray(self, run_id: str, name: str, dims: tuple[str, ...] | None = None) -> Any:
        """A stream as an xarray Dataset (columns) or DataArray (frames), named dims, ``units`` attributes."""
        from xbarlab.logbook.frames import to_xarray

        return to_xarray(self.stream(run_id, name), run_id, dims)
