"""A lab session: an open station whose every experiment run is logged with its transcript.

The CLI's experiment commands and the GUI use this; campaigns use
:class:`xbarlab.campaigns.runner.CampaignRunner`, which logs the same way::

    with LabSession.open(station=None, log="bench.h5") as lab:     # None: the embedded sim bench
        result = lab.run("mvm", {"n": 16})                         # one logged run

Opening the station is itself logged as a ``session-N`` run (identify, configure), so the
log holds every exchange needed to replay the experiments offline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xbarlab.drivers.identity import TRAFFIC_REVISION
from xbarlab.errors import ConfigError
from xbarlab.experiments.base import STEP_TYPES, Aborted, AbortToken, Experiment, MemoryRecorder, Progress
from xbarlab.instruments.config import StationConfig, load_station
from xbarlab.instruments.station import Station, embedded_station_path
from xbarlab.interrupts import close_station, sigint_deferred
from xbarlab.logbook.reader import LogReader
from xbarlab.logbook.recording import RunSink, open_recorded_station
from xbarlab.logbook.writer import Logbook, RunWriter

SESSION_KIND = "session"


def resolve_station(station: str | Path | StationConfig | None) -> StationConfig:
    """A station config from a path, a config, or None / "sim" (the embedded simulated bench)."""
    if isinstance(station, StationConfig):
        return station
    if station is None or str(station) == "sim":
        return load_station(embedded_station_path("sim"))
    return load_station(station)


def experiment_class(experiment: str | type[Experiment]) -> type[Experiment]:
    if isinstance(experiment, type):
        return experiment
    import xbarlab.experiments.catalog  # noqa: F401 - registers the built-in step types

    try:
        return STEP_TYPES[experiment]
    except KeyError:
        raise ConfigError(f"unknown experiment {experiment!r}; known: {', '.join(sorted(STEP_TYPES))}") from None


class LabSession:
    """An open station plus the logbook its runs go to (``log=None``: kept in memory only)."""

    def __init__(self, station: Station, config: StationConfig, book: Logbook | None, sink: RunSink,
                 session_id: str) -> None:
        self.station = station
        self.config = config
        self.book = book
        self.sink = sink
        self.session_id = session_id
        self.last_run_id: str | None = None
        self.memory: dict[str, MemoryRecorder] = {}
        self._runs = 0
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        station: str | Path | StationConfig | None = None,
        log: str | Path | None = None,
        *,
        overwrite: bool = False,
        append: bool = False,
        title: str = "",
    ) -> LabSession:
        """Open the station (recording every link) and the log (new, or ``append`` to an existing one)."""
        config = resolve_station(station)
        book: Logbook | None = None
        if log is not None:
            book = Logbook.open_append(log) if append else Logbook.create(log, overwrite=overwrite, title=title)
        sink = RunSink()
        try:
            n = sum(1 for r in LogReader.from_book(book).runs() if r["kind"] == SESSION_KIND) if append and book else 0
            session_id = f"{SESSION_KIND}-{n + 1}"
            params = {"title": title, "driver_traffic": TRAFFIC_REVISION}  # replay opens the drivers at this revision
            run = book.start_run(SESSION_KIND, params, config.text, run_id=session_id) if book else None
            sink.run = run
            try:
                st = open_recorded_station(config, sink)
            except BaseException as exc:
                if run is not None:
                    run.finish("failed", error=str(exc))
                raise
            if run is not None:
                run.commit_step("opened", {"identities": st.identities})
                run.finish("completed")
            sink.run = None
            sink.outside = book.outside_runs(session_id) if book is not None else None
        except BaseException:
            if book is not None:
                book.close()
            raise
        return cls(st, config, book, sink, session_id)

    @property
    def log_path(self) -> Path | None:
        return self.book.path if self.book is not None else None

    def run(
        self,
        experiment: str | type[Experiment],
        params: Mapping[str, Any] | None = None,
        *,
        progress: Callable[[Progress], None] | None = None,
        abort: AbortToken | None = None,
        run_id: str | None = None,
    ) -> Any:
        """Run one experiment as a logged run; its status is completed, aborted, interrupted or failed.

        Parameters are validated before anything is logged or sent (ConfigError): their types and
        ranges, then the same check against the station (limits, instruments) a campaign runs up front.
        """
        cls = experiment_class(experiment)
        exp = cls(self.station, params, progress=progress, abort=abort)
        problems = cls.check(exp.params, self.config, f"{cls.kind or cls.__name__}.params")
        if problems:
            raise ConfigError(f"{cls.kind}: invalid parameters for this station:\n"
                              + "\n".join(f"  - {p}" for p in problems))
        with self._lock:
            self._runs += 1
            rid = run_id or f"{cls.kind}-{self._runs}@{self.session_id}"
        recorder: RunWriter | MemoryRecorder
        if self.book is not None:
            recorder = self.book.start_run(cls.kind, exp.params, self.config.text, dict(self.station.identities),
                                           run_id=rid, sim_time=self.station.sim_time(), code_revision=cls.revision)
        else:
            recorder = self.memory[rid] = MemoryRecorder()
        exp.recorder = recorder
        self.sink.run = recorder if isinstance(recorder, RunWriter) else None
        try:
            result = exp.run()
        except Aborted as exc:
            self._finish(recorder, "aborted", str(exc))
            raise
        except KeyboardInterrupt:
            self._finish(recorder, "interrupted", "interrupted (Ctrl-C)")
            raise
        except BaseException as exc:
            self._finish(recorder, "failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.sink.run = None
        self._finish(recorder, "completed", "")
        self.last_run_id = rid
        return result

    @staticmethod
    def _finish(recorder: Any, status: str, error: str) -> None:
        if isinstance(recorder, RunWriter):
            recorder.finish(status, error=error)

    def close(self) -> None:
        """Outputs off and links released, then the log closed. Idempotent."""
        with sigint_deferred():  # the shutdown runs to its end; a Ctrl-C meanwhile takes effect after it
            try:
                close_station(self.station)  # outputs-off traffic goes to the session's record outside its runs
            finally:
                if self.sink.outside is not None:
                    self.sink.outside.finish("completed")
                    self.sink.outside = None
                if self.book is not None:
                    self.book.close()

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
