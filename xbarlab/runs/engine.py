"""The run engine: runs one step on an open station into a recorder, with progress and abort.

Every way of running a step goes through :meth:`Engine.run` — ``xbarlab`` commands and
:class:`~xbarlab.runs.session.LabSession` (GUI, scripts), campaigns
(:class:`~xbarlab.campaigns.runner.CampaignRunner`) and offline replay (:mod:`xbarlab.runs.replay`) —
so a run is recorded, guarded, aborted and given its status the same way everywhere:

1. the run record is opened (a logbook run, or memory) and the station's transcript goes to it;
2. with ``guard_board_resets``, the board's boot count is read before and after the step: a board that
   reset mid-step lost its configuration, so the step fails with :class:`BoardResetDuringStep`;
3. the step runs (:meth:`Experiment.run`: on any exception the bench is put in its safe state);
4. ``before_completed`` runs (e.g. the simulator's resume checkpoint) before the run counts as done;
5. the outcome's status comes from :func:`run_status`, the one place exceptions become statuses.

Abort is owned by the engine: :meth:`Engine.abort` asks the running step to stop at its next safe
point (``Experiment.checkpoint``), where it raises :class:`Aborted` with the outputs switched off.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xbarlab.errors import InstrumentError, ProtocolError, TransportError, XbarlabError
from xbarlab.instruments.interfaces import BenchStation, StatusReports
from xbarlab.logbook.recording import RunSink
from xbarlab.logbook.writer import Logbook
from xbarlab.protocol.board import Err
from xbarlab.runs.recorder import LoggedRun, MemoryRecorder, Recorder
from xbarlab.runs.step import Aborted, AbortToken, Experiment, Progress

#: kind of the run that records opening a station (identify, configure); one per session
SESSION_KIND = "session"

#: session parameter naming the guard its steps ran under (replay repeats it); see :func:`session_guard`
STEP_GUARD = "step_guard"
BOOT_COUNT_GUARD = "board_boot_count"

#: run statuses the engine gives (the logbook also knows "running" and "crashed")
COMPLETED, ABORTED, INTERRUPTED, FAILED = "completed", "aborted", "interrupted", "failed"

#: link faults: the instrument or its link misbehaved, the step may be repeated after re-initialising
LINK_FAULTS: tuple[type[BaseException], ...] = (TransportError, ProtocolError)


class BoardResetDuringStep(InstrumentError):
    """The board's boot count changed during a step: it reset and lost its configuration mid-step."""

    def __init__(self, message: str) -> None:
        super().__init__("board", int(Err.NOT_CONFIGURED), message)


def board_boot_count(station: BenchStation) -> int | None:
    """The board's power-on count (GET_STATUS), or None for a station without a board (or whose board
    reports no status)."""
    board = station.board
    return int(board.status().boot_count) if isinstance(board, StatusReports) else None


def session_guard(session_params: Mapping[str, Any]) -> bool:
    """Whether the steps of a recorded session ran under the boot-count guard.

    Sessions record it (``step_guard``); sessions written before it was recorded are campaign
    sessions exactly when they hold the campaign text (only campaigns used the guard then).
    """
    if STEP_GUARD in session_params:
        return session_params[STEP_GUARD] == BOOT_COUNT_GUARD
    return "campaign_text" in session_params


def is_link_fault(exc: BaseException) -> bool:
    """A fault of an instrument link, or a board reset: re-initialising the bench and repeating may cure it.

    Also an instrument error raised while cleaning up after such a fault (e.g. switching an output off).
    """
    if isinstance(exc, LINK_FAULTS):
        return True
    if isinstance(exc, InstrumentError):
        return isinstance(exc.__context__, LINK_FAULTS) or exc.code == Err.NOT_CONFIGURED
    return False


def run_status(exc: BaseException | None, *, abort_status: str = ABORTED) -> tuple[str, str]:
    """(status, error text) of a run that ended with ``exc`` (None: completed). The one place this is decided.

    ``abort_status``: what a requested abort is called (a campaign stopped by its user is "interrupted").
    """
    if exc is None:
        return COMPLETED, ""
    if isinstance(exc, Aborted):
        return abort_status, "" if abort_status == INTERRUPTED else str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted (Ctrl-C)"
    if isinstance(exc, InstrumentError) and isinstance(exc.__context__, LINK_FAULTS):
        # raised while cleaning up after a link fault: the fault is the cause
        return FAILED, f"{exc.__context__} (then, while cleaning up: {exc})"
    if isinstance(exc, XbarlabError):
        return FAILED, str(exc)
    return FAILED, f"{type(exc).__name__}: {exc}"


@dataclass
class RunOutcome:
    """How one run ended. ``exception`` is what stopped it (None when it completed)."""

    run_id: str
    status: str  # completed | aborted | interrupted | failed
    result: Any = None
    error: str = ""
    exception: BaseException | None = None
    recorder: Any = None

    def reraise(self) -> None:
        """Raise what stopped the run, if anything."""
        if self.exception is not None:
            raise self.exception


class Engine:
    """Runs steps on one open ``station``; records to ``book`` (None: memory) with the transcript via ``sink``.

    ``station_text`` is stored with every run (the station file it ran on).
    """

    def __init__(
        self,
        station: Any,
        book: Logbook | None = None,
        sink: RunSink | None = None,
        *,
        station_text: str = "",
        guard_board_resets: bool = False,
        abort_status: str = ABORTED,
    ) -> None:
        self.station = station
        self.book = book
        self.sink = sink
        self.station_text = station_text
        self.guard_board_resets = guard_board_resets
        self.abort_status = abort_status
        self.token = AbortToken()
        self.running: str | None = None  # run id of the step being run
        self._lock = threading.Lock()

    # -- abort -------------------------------------------------------------------------------------
    def abort(self) -> None:
        """Stop the running step at its next safe point (outputs off); the next run starts afresh."""
        self.token.request()

    def next_token(self) -> AbortToken:
        """A fresh token that :meth:`abort` requests from now on; pass it to the next :meth:`run` (a caller that
        starts the run on another thread takes it first, so an abort pressed meanwhile is not lost)."""
        with self._lock:
            self.token = AbortToken()
            return self.token

    def _token_for(self, abort: AbortToken | None) -> AbortToken:
        """The run's abort token (the caller's, else a fresh one), which :meth:`abort` then requests."""
        with self._lock:
            self.token = abort if abort is not None else AbortToken()
            return self.token

    # -- running -----------------------------------------------------------------------------------
    def open_record(self, cls: type[Experiment], params: Mapping[str, Any], run_id: str) -> Recorder:
        """The run's record: a new logbook run (status running) or a :class:`MemoryRecorder`."""
        if self.book is None:
            return MemoryRecorder()
        identities = dict(getattr(self.station, "identities", {}))
        return LoggedRun(self.book.start_run(cls.kind, dict(params), self.station_text, identities, run_id=run_id,
                                             sim_time=self.station.sim_time(), code_revision=cls.revision))

    def run(
        self,
        cls: type[Experiment],
        params: Mapping[str, Any] | None,
        *,
        run_id: str,
        recorder: Recorder | None = None,
        progress: Callable[[Progress], None] | None = None,
        abort: AbortToken | None = None,
        before_completed: Callable[[], None] | None = None,
    ) -> RunOutcome:
        """Run one step; never raises for how the step ended (see :attr:`RunOutcome.exception`).

        Parameters are validated by the step first (ConfigError, raised, nothing recorded). ``recorder``
        replaces the engine's own record (replay compares what it produces with the log). ``abort`` replaces
        a fresh token (a campaign shares one token with its caller across its steps).
        """
        token = self._token_for(abort)
        exp = cls(self.station, params, progress=progress, abort=token)
        rec = recorder if recorder is not None else self.open_record(cls, exp.params, run_id)
        exp.recorder = rec
        if token.requested:  # stop requested before the step started: record it, touch nothing
            outcome = self._finish(run_id, rec, Aborted(f"{cls.kind}: stop requested before the step started"))
            outcome.error = "stop requested before the step started"
            self._write_status(rec, outcome)
            return outcome
        if self.sink is not None:
            self.sink.run = getattr(rec, "run", None)
        self.running = run_id
        try:
            boot = board_boot_count(self.station) if self.guard_board_resets else None
            result = exp.run()
            if self.guard_board_resets and board_boot_count(self.station) != boot:
                raise BoardResetDuringStep(f"{run_id}: the board reset during the step (boot count changed)")
            if before_completed is not None:
                before_completed()
        except BaseException as exc:  # noqa: BLE001 - every ending gets its status; the caller decides to re-raise
            outcome = self._finish(run_id, rec, exc)
        else:
            outcome = self._finish(run_id, rec, None, result)
        finally:
            self.running = None
            if self.sink is not None:
                self.sink.run = None
        self._write_status(rec, outcome)
        return outcome

    def _finish(self, run_id: str, rec: Recorder, exc: BaseException | None, result: Any = None) -> RunOutcome:
        status, error = run_status(exc, abort_status=self.abort_status)
        return RunOutcome(run_id, status, result, error, exc, rec)

    @staticmethod
    def _write_status(rec: Recorder, outcome: RunOutcome) -> None:
        if isinstance(rec, LoggedRun):  # memory and replay records keep no status
            rec.finish(outcome.status, outcome.error)
