"""A lab session: an open station whose every experiment run is logged with its transcript.

The CLI's experiment commands and the GUI use this; campaigns use
:class:`xbarlab.campaigns.runner.CampaignRunner`; both open the station with :func:`open_session`
and run steps with the one :class:`~xbarlab.runs.engine.Engine`::

    with LabSession.open(station=None, log="bench.h5") as lab:     # None: the embedded sim bench
        result = lab.run("mvm", {"n": 16})                         # one logged run

Opening the station is itself logged as a ``session-N`` run (identify, configure), so the
log holds every exchange needed to replay the experiments offline. Step types named by string
must be registered: ``from xbarlab.session import LabSession`` registers the built-in ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xbarlab.drivers.identity import TRAFFIC_REVISION
from xbarlab.errors import ConfigError, problem_listing
from xbarlab.instruments.config import StationConfig, load_station
from xbarlab.instruments.station import Station, embedded_station_path
from xbarlab.interrupts import close_station, sigint_deferred
from xbarlab.logbook.reader import LogReader
from xbarlab.logbook.recording import RunSink, open_recorded_station
from xbarlab.logbook.writer import Logbook
from xbarlab.runs.engine import SESSION_KIND, Engine
from xbarlab.runs.recorder import MemoryRecorder
from xbarlab.runs.step import STEP_TYPES, AbortToken, Experiment, Progress, resolve_params


def resolve_station(station: str | Path | StationConfig | None) -> StationConfig:
    """A station config from a path, a config, or None / "sim" (the embedded simulated bench)."""
    if isinstance(station, StationConfig):
        return station
    if station is None or str(station) == "sim":
        return load_station(embedded_station_path("sim"))
    return load_station(station)


def experiment_class(experiment: str | type[Experiment]) -> type[Experiment]:
    """The registered step type ``experiment`` (the built-in types are registered by importing
    ``xbarlab.experiments.catalog``, which ``xbarlab.session`` does)."""
    if isinstance(experiment, type):
        return experiment
    try:
        return STEP_TYPES[experiment]
    except KeyError:
        raise ConfigError(f"unknown experiment {experiment!r}; known: {', '.join(sorted(STEP_TYPES))}") from None


def next_session_id(book: Logbook) -> str:
    """``session-N`` for the next session of ``book``."""
    return f"{SESSION_KIND}-{sum(1 for r in book.run_ids if r.startswith(SESSION_KIND + '-')) + 1}"


def open_session(
    config: StationConfig,
    sink: RunSink,
    book: Logbook | None,
    session_id: str,
    params: Mapping[str, Any],
    *,
    opened: Callable[[Station], Mapping[str, Any]] | None = None,
) -> Station:
    """Open the station with every link recorded; with a ``book``, as the session run ``session_id``.

    The session run holds ``params`` (plus the drivers' traffic revision, which replay opens the drivers at)
    and the transcript of opening; ``opened(station)`` adds to what its ``opened`` step records. Afterwards
    the traffic outside runs (between steps, closing: outputs off) goes to the session's outside record.
    """
    params = {**params, "driver_traffic": TRAFFIC_REVISION}
    run = book.start_run(SESSION_KIND, params, config.text, run_id=session_id) if book is not None else None
    sink.run = run
    try:
        station = open_recorded_station(config, sink)
    except BaseException as exc:
        if run is not None:
            run.finish("failed", error=str(exc))
        raise
    try:
        if run is not None:
            info = {"identities": station.identities, **(opened(station) if opened is not None else {})}
            run.commit_step("opened", info)
            run.finish("completed")
    except BaseException:
        close_station(station)
        raise
    finally:
        sink.run = None
    sink.outside = book.outside_runs(session_id) if book is not None else None
    return station


def close_session(station: Station, sink: RunSink) -> None:
    """Outputs off and links released, recorded outside the session's runs; then that record is finished."""
    try:
        close_station(station)  # outputs-off traffic goes to the session's record outside its runs
    finally:
        if sink.outside is not None:
            sink.outside.finish("completed")
            sink.outside = None


class LabSession:
    """An open station plus the logbook its runs go to (``log=None``: kept in memory only)."""

    def __init__(self, station: Station, config: StationConfig, book: Logbook | None, sink: RunSink,
                 session_id: str) -> None:
        self.station = station
        self.config = config
        self.book = book
        self.sink = sink
        self.session_id = session_id
        self.engine = Engine(station, book, sink, station_text=config.text)
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
            st = open_session(config, sink, book, session_id, {"title": title})
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
        Whatever stopped the run is raised after its status is logged.
        """
        cls = experiment_class(experiment)
        values, problems = resolve_params(cls.params_spec, dict(params or {}), where=cls.kind or cls.__name__)
        if not problems:
            problems = cls.check(values, self.config, f"{cls.kind or cls.__name__}.params")
        if problems:
            raise ConfigError(problem_listing(f"{cls.kind}: invalid parameters for this station", problems))
        with self._lock:
            self._runs += 1
            rid = run_id or f"{cls.kind}-{self._runs}@{self.session_id}"
        outcome = self.engine.run(cls, params, run_id=rid, progress=progress, abort=abort)
        if isinstance(outcome.recorder, MemoryRecorder):
            self.memory[rid] = outcome.recorder
        outcome.reraise()
        self.last_run_id = rid
        return outcome.result

    def abort(self) -> None:
        """Stop the running experiment at its next safe point (outputs off)."""
        self.engine.abort()

    def next_abort_token(self) -> AbortToken:
        """The token :meth:`abort` requests from now on, for the next :meth:`run` (see :meth:`Engine.next_token`)."""
        return self.engine.next_token()

    def close(self) -> None:
        """Outputs off and links released, then the log closed. Idempotent."""
        with sigint_deferred():  # the shutdown runs to its end; a Ctrl-C meanwhile takes effect after it
            try:
                close_session(self.station, self.sink)
            finally:
                if self.book is not None:
                    self.book.close()

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
