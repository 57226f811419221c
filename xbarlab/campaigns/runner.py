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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbarlab.campaigns.spec import Campaign, StepInstance, parse_campaign
from xbarlab.drivers.identity import TRAFFIC_REVISION
from xbarlab.errors import InstrumentError, LogbookError, ProtocolError, TransportError
from xbarlab.experiments.base import Aborted, AbortToken, Progress
from xbarlab.instruments.config import parse_station
from xbarlab.instruments.station import Station
from xbarlab.interrupts import close_station, sigint_deferred
from xbarlab.logbook import Logbook, LogReader
from xbarlab.logbook.recording import RunSink, open_recorded_station
from xbarlab.protocol.board import Err
from xbarlab.sim import checkpoint

SESSION = "session"


class BoardResetDuringStep(InstrumentError):
    def __init__(self, message: str) -> None:
        super().__init__("board", int(Err.NOT_CONFIGURED), message)


RECOVERABLE = (TransportError, ProtocolError)


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


def board_boot_count(station: Any) -> int | None:
    """The board's power-on count (GET_STATUS), read before and after every campaign step.

    A change means the board reset during the step: its configuration was lost mid-step,
    so the step is repeated after re-initialising. Replay makes the same two queries.
    """
    board = getattr(station, "board", None)
    status = getattr(board, "status", None) if board is not None else None
    return int(status().boot_count) if callable(status) else None


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
        session_id = f"{SESSION}-{sum(1 for r in book.run_ids if r.startswith(SESSION + '-')) + 1}"
        session = book.start_run(
            kind=SESSION,
            params={"campaign_text": self.campaign.text, "campaign_source": self.campaign.source,
                    "campaign_name": self.campaign.name, "driver_traffic": TRAFFIC_REVISION},
            station_text=self.campaign.station.text,
            run_id=session_id,
        )
        sink.run = session
        try:
            station = open_recorded_station(
                parse_station(self.campaign.station.text, self.campaign.station.source), sink)
        except BaseException as exc:
            session.finish("failed", error=str(exc))
            raise
        restored = None
        if station.sim is not None:
            done = completed_steps(LogReader.from_book(book))
            restored = checkpoint.load(station.sim, self.sim_state_path,
                                       [s.step_id for s in self.campaign.steps if s.step_id in done])
        faults = {name: str(emu.faults.entropy) for name, emu in station.sim.emulators.items()} \
            if station.sim is not None else {}
        session.commit_step("opened", {"identities": station.identities, "sim_state_restored": restored,
                                       "sim_fault_entropy": faults})
        if self.on_session is not None:
            self.on_session(station)
        session.finish("completed")
        sink.run = None
        sink.outside = book.outside_runs(session_id)  # traffic between steps and closing (outputs off) is kept
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
        """Before anything is logged: the simulator checkpoint a resume would restore must load.

        It is restored into a throwaway bench built from the station, so a damaged, foreign or
        old (pickle) checkpoint stops the resume with one line and appends nothing to the log.
        """
        config = parse_station(self.campaign.station.text, self.campaign.station.source)
        if config.sim is None or not self.sim_state_path.exists():
            return
        from xbarlab.sim.bench import SimBench

        bench = SimBench.from_station(config)
        try:
            checkpoint.load(bench, self.sim_state_path, [s.step_id for s in self.campaign.steps if s.step_id in done])
        finally:
            bench.close()

    @staticmethod
    def _close_station(station: Station, sink: RunSink) -> None:
        """Outputs off and links released (Ctrl-C held back meanwhile), recorded outside the session's runs."""
        try:
            close_station(station)
        finally:
            if sink.outside is not None:
                sink.outside.finish("completed")
                sink.outside = None

    @property
    def sim_state_path(self) -> Path:
        """Where a simulated bench keeps its state between sessions (next to the log)."""
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
        run = book.start_run(kind=step.kind, params=step.params, station_text=self.campaign.station.text,
                             instruments=dict(station.identities), run_id=run_id, sim_time=station.sim_time(),
                             code_revision=step.experiment_class.revision)
        if self.abort.requested:  # stop requested between steps: record it, touch nothing
            run.finish("interrupted", error="stop requested before the step started")
            return StepOutcome(step, run_id, "interrupted")
        sink.run = run
        try:
            boot = board_boot_count(station)
            experiment = step.experiment_class(station, step.params, recorder=run, progress=self.on_progress,
                                               abort=self.abort)
            result = experiment.run()
            if board_boot_count(station) != boot:
                raise BoardResetDuringStep(f"{step.step_id}: the board reset during the step (boot count changed)")
            if station.sim is not None:  # before the run counts as done (see checkpoint.save)
                checkpoint.save(station.sim, self.sim_state_path, tag=step.step_id)
        except (Aborted, KeyboardInterrupt):
            run.finish("interrupted")
            return StepOutcome(step, run_id, "interrupted")
        except RECOVERABLE as exc:
            run.finish("failed", error=str(exc))
            return StepOutcome(step, run_id, "retry", error=str(exc))
        except InstrumentError as exc:
            if isinstance(exc.__context__, RECOVERABLE):
                # raised while cleaning up after a link fault or a reset (e.g. switching the output off):
                # the fault is the cause; re-initialise and repeat
                run.finish("failed", error=f"{exc.__context__} (then, while cleaning up: {exc})")
                return StepOutcome(step, run_id, "retry", error=str(exc.__context__))
            if exc.code == Err.NOT_CONFIGURED:  # the board reset itself: re-initialise and repeat
                run.finish("failed", error=str(exc))
                return StepOutcome(step, run_id, "retry", error=str(exc))
            run.finish("failed", error=str(exc))
            return StepOutcome(step, run_id, "failed", error=str(exc))
        except BaseException as exc:
            run.finish("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            sink.run = None
        run.finish("completed")
        return StepOutcome(step, run_id, "completed", result=result)
