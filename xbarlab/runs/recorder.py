"""Where a step's measurements go: a logbook run (:class:`LoggedRun`) or memory (:class:`MemoryRecorder`).

Every recorder answers :meth:`Recorder.latest_calibration`, so a step finds the calibration
record it applies without knowing where records are kept.
"""

from __future__ import annotations

from typing import Any, Protocol

from xbarlab.logbook.reader import LogReader
from xbarlab.logbook.writer import Logbook, RunWriter, StreamHandle

#: a calibration record as a step sees it: (reference "<run_id>/<record_id>", data, meta)
CalibrationRecord = tuple[str, dict[str, Any], dict[str, Any]]


class Stream(Protocol):
    def append(self, rows: Any) -> None: ...


class Recorder(Protocol):
    """What an experiment writes to: a logbook run (:class:`LoggedRun`) or :class:`MemoryRecorder`."""

    def stream(self, name: str, **spec: Any) -> Stream: ...

    def commit_step(self, step_id: str, info: dict[str, Any] | None = None) -> None: ...

    def add_calibration(
        self, record_id: str, kind: str, data: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> None: ...

    def use_calibration(self, reference: str) -> None:
        """Note that this run applied calibration record ``reference`` ("<run_id>/<record_id>")."""
        ...

    def latest_calibration(self, kind: str) -> CalibrationRecord | None:
        """The newest calibration record of ``kind`` this run may apply, or None."""
        ...


class _MemoryStream:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.rows: list[Any] = []

    def append(self, rows: Any) -> None:
        self.rows.append(rows)


class MemoryRecorder:
    """An in-memory recorder for quick scripts and unit tests (nothing is written to disk)."""

    def __init__(self) -> None:
        self.streams: dict[str, _MemoryStream] = {}
        self.steps: list[tuple[str, dict[str, Any]]] = []
        self.calibrations: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        self.calibrations_used: list[str] = []

    def use_calibration(self, reference: str) -> None:
        if reference not in self.calibrations_used:
            self.calibrations_used.append(reference)

    def stream(self, name: str, **spec: Any) -> _MemoryStream:
        if name not in self.streams:
            self.streams[name] = _MemoryStream(spec)
        return self.streams[name]

    def commit_step(self, step_id: str, info: dict[str, Any] | None = None) -> None:
        self.steps.append((step_id, dict(info or {})))

    def add_calibration(
        self, record_id: str, kind: str, data: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> None:
        self.calibrations[record_id] = (kind, data, dict(meta or {}))

    def latest_calibration(self, kind: str) -> CalibrationRecord | None:
        """The newest record of ``kind`` this recorder holds itself (``memory/<record_id>``)."""
        for rid, (k, data, meta) in reversed(list(self.calibrations.items())):
            if k == kind:
                return f"memory/{rid}", data, meta
        return None


class LoggedRun:
    """A run of a logbook as a recorder: writes go to ``run``; calibrations are looked up in its ``book``."""

    def __init__(self, run: RunWriter) -> None:
        self.run = run

    @property
    def book(self) -> Logbook:
        return self.run.book

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def stream(self, name: str, **spec: Any) -> StreamHandle:
        return self.run.stream(name, **spec)

    def commit_step(self, step_id: str, info: dict[str, Any] | None = None) -> None:
        self.run.commit_step(step_id, info)

    def add_calibration(
        self, record_id: str, kind: str, data: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> None:
        self.run.add_calibration(record_id, kind, data, meta)

    def use_calibration(self, reference: str) -> None:
        self.run.use_calibration(reference)

    def latest_calibration(self, kind: str) -> CalibrationRecord | None:
        """The newest record of ``kind`` in the log's completed runs (an unreadable log: None, measure afresh)."""
        try:
            return LogReader.from_book(self.run.book).find_calibration(kind)
        except Exception:  # noqa: BLE001 - an unreadable log means: measure afresh
            return None

    def finish(self, status: str, error: str = "") -> None:
        self.run.finish(status, error=error)


def as_recorder(recorder: Any) -> Recorder:
    """A recorder for a step: a logbook :class:`RunWriter` is wrapped in :class:`LoggedRun`; None: memory."""
    if recorder is None:
        return MemoryRecorder()
    if isinstance(recorder, RunWriter):
        return LoggedRun(recorder)
    return recorder
