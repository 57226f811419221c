"""Run a campaign against its station, logging every step; resume after a crash.

Log structure (see docs/logbook.md): each process that opens the station writes a
``session`` run holding the campaign text and the transcript of opening the bench;
each attempt at a step is a run ``<step_id>@<session>`` with the step's parameters,
streams and transcript. A step counts as done when one of its runs completed, so
``--resume`` skips it; a killed or interrupted attempt stays in the log with its status
and is redone. Instrument link faults (timeouts, corrupted frames, an instrument that
reset itself) make the runner close the bench, reopen it (a new session, instruments
re-initialised) and repeat the step, at most ``retries`` times; a corrupted value never
reaches a stream because it raises before its step commits.

Each step runs through the one run engine (:class:`xbarlab.runs.engine.Engine`, with the board
boot-count guard); what the bench keeps across a crash is saved after each step and restored on
resume through the station's ``bench_state`` (the simulated bench saves its physics; hardware keeps
its own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbarlab.campaigns.spec import Campaign, StepInstance, parse_campaign
from xbarlab.errors import InstrumentError, LogbookError
from xbarlab.instruments.config import parse_station
from xbarlab.instruments.links import links_for
from xbarlab.instruments.station import Station
from xbarlab.interrupts import sigint_deferred
from xbarlab.logbook import Logbook, LogReader
from xbarlab.logbook.recording import RunSink
from xbarlab.runs.engine import (
    BOOT_COUNT_GUARD,
    INTERRUPTED,
    LINK_FAULTS,
    SESSION_KIND,
    STEP_GUARD,
    BoardResetDuringStep,
    Engine,
    board_boot_count,
    is_link_fault,
)
from xbarlab.runs.session import close_session, next_session_id, open_session
from xbarlab.runs.step import AbortToken, Progress

#: the kind of a session run (the one definition is :data:`xbarlab.runs.engine.SESSION_KIND`)
SESSION = SESSION_KIND
RECOVERABLE = LINK_FAULTS
__all__ = ["SESSION", "BoardResetDuringStep", "CampaignReport", "CampaignRunner", "StepOutcome", "board_boot_count",
           "campaign_from_log", "completed_steps", "step_of"]


@dataclass
class StepOutcome:
    step: StepInstance
    run_id: str
    status: str  # completed | skipped | failed | interrupted
    result: Any = None
    error: str = ""


@dataclass
class CampaignReport:
    log_path: Path
    outcomes: list[StepOutcome] = field(default_factory=list)
    status: str = "completed"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out


def step_of(run_id: str) -> str:
    """The step id of a step run id ``<step_id>@<session>``."""
    return run_id.rsplit("@", 1)[0]


def completed_steps(reader: LogReader) -> set[str]:
    return {step_of(r["run_id"]) for r in reader.runs() if r["kind"] != SESSION and r["status"] == "completed"}


def campaign_from_log(path: str | Path) -> Campaign:
    """The campaign stored in a log's first session (for ``--resume`` and replay)."""
    reader = LogReader(path)
    sessions = [r for r in reader.runs() if r["kind"] == SESSION]
    if not sessions or "campaign_text" not in sessions[0]["params"]:
        raise LogbookError(f"{path}: not a campaign log (it holds no campaign); nothing to resume")
    params = sessions[0]["params"]
    source = params.get("campaign_source", str(path))
    base = Path(source).parent if Path(source).exists() else Path(path).parent
    return parse_campaign(params["campaign_text"], source=source, base_dir=base)


class CampaignRunner:
    """Executes a campaign step by step into a logbook."""

    def __init__(
        self,
        campaign: Campaign,
        log_path: str | Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        retries: int = 2,
        abort: AbortToken | None = None,
        on_step: Callable[[int, int, StepInstance], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_session: Callable[[Station], None] | None = None,
    ) -> None:
        self.campaign = campaign
        self.log_path = Path(log_path)
        self.resume = resume
        self.overwrite = overwrite
        self.retries = retries
        self.abort = abort or AbortToken()
        self.on_step = on_step
        self.on_progress = on_progress
        self.on_session = on_session  # sees each newly opened station (GUIs show identities; tests inject faults)
        self._sessions = 0

    def _open_station(self, book: Logbook, sink: RunSink) -> tuple[Station, Any]:
        self._sessions += 1
        session_id = next_session_id(book)
        done = completed_steps(LogReader.from_book(book))
        done_ids = [s.step_id for s in self.campaign.steps if s.step_id in done]

        def opened(station: Station) -> dict[str, Any]:
            restored = station.bench_state.restore_state(self.sim_state_path, done_ids) if done_ids else None
            info = {"sim_state_restored": restored, **station.bench_state.state_record()}
            if self.on_session is not None:
                self.on_session(station)
            return info

        params = {"campaign_text": self.campaign.text, "campaign_source": self.campaign.source,
                  "campaign_name": self.campaign.name, STEP_GUARD: BOOT_COUNT_GUARD}
        station = open_session(parse_station(self.campaign.station.text, self.campaign.station.source), sink, book,
                               session_id, params, opened=opened)
        return station, session_id

    def _open_retrying(self, book: Logbook, sink: RunSink) -> tuple[Station, Any]:
        """Open the station; a link fault while opening (a garbled identity, a timeout) is retried like a
        step's, at most ``retries`` times (each attempt is a session run in the log)."""
        for attempt in range(self.retries + 1):
            try:
                return self._open_station(book, sink)
            except RECOVERABLE:
                if attempt == self.retries:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_sim_state(self, done: set[str]) -> None:
        """Before anything is logged: the saved bench state a resume would restore must load.

        It is restored into a throwaway bench built from the station file (links are made, none opened), so
        a damaged, foreign or old (pickle) checkpoint stops the resume with one line and appends nothing to
        the log. Only a bench that saved its state (the simulated one) has a file to check.
        """
        if not self.sim_state_path.exists():
            return
        links = links_for(parse_station(self.campaign.station.text, self.campaign.station.source))
        try:
            links.state.restore_state(self.sim_state_path,
                                      [s.step_id for s in self.campaign.steps if s.step_id in done])
        finally:
            links.release()

    @staticmethod
    def _close_station(station: Station, sink: RunSink) -> None:
        """Outputs off and links released, recorded outside the session's runs."""
        close_session(station, sink)

    @property
    def sim_state_path(self) -> Path:
        """Where the bench's saved state goes between sessions (next to the log; only a simulated bench writes it)."""
        return self.log_path.with_name(self.log_path.name + ".simstate")

    def run(self) -> CampaignReport:
        if self.resume:
            book = Logbook.open_append(self.log_path)
            done = completed_steps(LogReader.from_book(book))
            try:
                self._check_sim_state(done)
            except BaseException:
                book.close()
                raise
        else:
            book = Logbook.create(self.log_path, overwrite=self.overwrite)
            self.sim_state_path.unlink(missing_ok=True)
            done = set()
        report = CampaignReport(self.log_path)
        sink = RunSink()
        station: Station | None = None
        try:
            station, session_id = self._open_retrying(book, sink)
            total = len(self.campaign.steps)
            for k, step in enumerate(self.campaign.steps):
                if step.step_id in done:
                    report.outcomes.append(StepOutcome(step, "", "skipped"))
                    continue
                if self.on_step is not None:
                    self.on_step(k, total, step)
                attempts = 0
                while True:
                    outcome = self._run_step(book, sink, station, session_id, step)
                    if outcome.status != "retry":
                        break
                    attempts += 1
                    self._close_station(station, sink)
                    station = None
                    if attempts > self.retries:
                        outcome.status = "failed"
                        break
                    station, session_id = self._open_retrying(book, sink)
                report.outcomes.append(outcome)
                if outcome.status == "interrupted":
                    report.status = "interrupted"
                    break
                if outcome.status == "failed":
                    report.status = "failed"
                    break
        except KeyboardInterrupt:
            report.status = "interrupted"
        finally:
            with sigint_deferred():  # the shutdown (outputs off, records finished, log closed) runs to its end
                try:
                    if station is not None:
                        self._close_station(station, sink)
                finally:
                    book.close()
        return report

    def _run_step(self, book: Logbook, sink: RunSink, station: Station, session_id: str,
                  step: StepInstance) -> StepOutcome:
        run_id = f"{step.step_id}@{session_id}"
        engine = Engine(station, book, sink, station_text=self.campaign.station.text, guard_board_resets=True,
                        abort_status=INTERRUPTED)
        outcome = engine.run(step.experiment_class, step.params, run_id=run_id, progress=self.on_progress,
                             abort=self.abort,
                             before_completed=lambda: station.bench_state.save_state(self.sim_state_path,
                                                                                      step.step_id))
        exc = outcome.exception
        if exc is None:
            return StepOutcome(step, run_id, "completed", result=outcome.result)
        if outcome.status == INTERRUPTED:
            return StepOutcome(step, run_id, "interrupted")
        if is_link_fault(exc):  # re-initialise and repeat
            cause = exc.__context__ if not isinstance(exc, LINK_FAULTS) and isinstance(exc.__context__, LINK_FAULTS) \
                else exc
            return StepOutcome(step, run_id, "retry", error=str(cause))
        if isinstance(exc, InstrumentError):  # an instrument refused: the step failed
            return StepOutcome(step, run_id, "failed", error=str(exc))
        raise exc
