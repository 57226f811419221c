"""Offline replay: re-run the recorded experiment code against the recorded transcript.

No hardware and no simulator: every driver command must equal the recorded one, byte
for byte, and gets the recorded reply; the re-computed streams must equal the recorded
ones bit for bit. The first difference stops the replay with a :class:`ReplayDivergence`
naming the run, the step in progress and what the log holds versus what the code did.

Sessions are replayed in order: the session run re-opens the station from the station
text stored in the log (identify, configure), then each experiment run of that session
runs with its recorded parameters through the run engine, under the guard the session recorded
(:func:`~xbarlab.runs.engine.session_guard`). Runs that did not complete are replayed up to where
they stopped, so the drivers' state (e.g. frame sequence numbers) stays in step. Step types are
looked up in the registry: import ``xbarlab.experiments`` (or use ``xbarlab.logbook.replay``) first.

A run written by another revision of its step type's code (``code_revision`` in the log,
``Experiment.revision`` today) cannot be re-derived: replay says so in one line (its data are
intact in the log) and goes on. The board's frame numbering resumes from the recording after
it; a later run of that session that still differs is reported the same way, because the
instruments' state the skipped run left behind cannot be reproduced. Every other run must
replay bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.drivers.replies import floor_pairs_agree, single_copy_traffic
from xbarlab.errors import ConfigError, ReplayDivergence, XbarlabError
from xbarlab.instruments.config import InstrumentConfig, parse_station
from xbarlab.instruments.links import BenchLinks
from xbarlab.instruments.station import Station
from xbarlab.logbook.reader import LogReader
from xbarlab.logbook.transcript import (
    Event,
    ReplayByteTransport,
    ReplayCursor,
    ReplayMessageTransport,
    TranscriptExhausted,
    describe,
)
from xbarlab.runs.engine import SESSION_KIND, Engine, session_guard
from xbarlab.runs.recorder import CalibrationRecord, MemoryRecorder
from xbarlab.runs.step import STEP_TYPES, Progress

NOT_REDERIVED = "not re-derived"


class ReplayStation(Station):
    """A station whose links answer from a transcript; its clock is the recorded simulated clock."""

    def close(self) -> None:
        # the recording's closing traffic (outputs off) happened outside any run: nothing to answer from
        self._closed = True


class _ReplayClock:
    def __init__(self) -> None:
        self.t: float | None = None

    def on_event(self, ev: Event) -> None:
        if ev.sim_time == ev.sim_time:
            self.t = ev.sim_time

    def idle(self, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
        if self.t is not None:
            self.t += seconds

    def now(self) -> float | None:
        return self.t


class _StepTracker(MemoryRecorder):
    def __init__(self, find: Callable[[str], Any] | None = None) -> None:
        super().__init__()
        self.last_step = ""
        self._find = find

    def latest_calibration(self, kind: str) -> CalibrationRecord | None:
        """The calibration record of ``kind`` the recorded run applied (see :func:`_calibration_finder`)."""
        return self._find(kind) if self._find is not None else None

    def commit_step(self, step_id: str, info: dict[str, Any] | None = None) -> None:
        super().commit_step(step_id, info)
        self.last_step = step_id


@dataclass
class RunReplay:
    """How one run replayed."""

    run_id: str
    kind: str
    outcome: str  # reproduced | stopped as recorded | not re-derived
    exchanges: int = 0
    streams: dict[str, int] = field(default_factory=dict)  # stream -> rows compared
    note: str = ""
    result: Any = None


@dataclass
class ReplayReport:
    path: Path
    runs: list[RunReplay] = field(default_factory=list)

    @property
    def reproduced(self) -> list[RunReplay]:
        return [r for r in self.runs if r.outcome == "reproduced"]

    @property
    def not_rederived(self) -> list[RunReplay]:
        """Runs whose data are intact in the log but which today's code cannot re-derive (see ``note``)."""
        return [r for r in self.runs if r.outcome == NOT_REDERIVED]

    def text(self) -> str:
        lines = [f"{self.path}: replayed {len(self.runs)} run(s) from the recorded transcript"]
        for r in self.runs:
            if r.outcome == NOT_REDERIVED:
                lines.append(f"  {r.run_id:<48} {r.outcome}: {r.note}")
                continue
            rows = sum(r.streams.values())
            lines.append(f"  {r.run_id:<48} {r.outcome:<20} {r.exchanges:>7} exchanges  "
                         f"{len(r.streams)} streams / {rows} rows identical{('  ' + r.note) if r.note else ''}")
        return "\n".join(lines)


def _sessions(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    out: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for info in runs:
        if info["kind"] == SESSION_KIND:
            out.append((info, []))
        elif out:
            out[-1][1].append(info)
    return out


def replay(
    path: str | Path,
    run_id: str | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
) -> ReplayReport:
    """Replay every run of a log (or up to and including ``run_id``), comparing streams bit for bit.

    Raises :class:`ReplayDivergence` at the first difference, LogbookError for a bad file.
    """
    reader = LogReader(path)
    runs = reader.runs()
    if run_id is not None and run_id not in {r["run_id"] for r in runs}:
        raise ConfigError(f"{reader.path}: no run {run_id!r}; runs: {', '.join(r['run_id'] for r in runs)}")
    sessions = _sessions(runs)
    if run_id is not None:  # only the session holding the run, up to that run
        for session, members in sessions:
            ids = [m["run_id"] for m in members]
            if run_id == session["run_id"] or run_id in ids:
                cut = ids.index(run_id) + 1 if run_id in ids else 0
                sessions = [(session, members[:cut])]
                break
    total = sum(len(m) for _, m in sessions) + len(sessions)
    report = ReplayReport(reader.path)
    _replay_sessions(reader, sessions, run_id, report, total, runs, progress)
    if progress is not None:
        progress(Progress(total, total, "replay complete"))
    return report


def _replay_sessions(reader: LogReader, sessions: list[tuple[dict[str, Any], list[dict[str, Any]]]],
                     run_id: str | None, report: ReplayReport, total: int, runs: list[dict[str, Any]],
                     progress: Callable[[Progress], None] | None) -> None:
    done = 0
    for session, members in sessions:
        # a session written before the drivers confirmed SMU replies (format 1) replays with its own traffic
        with contextlib.ExitStack() as legacy:
            if session.get("format_version", 1) < 2:
                legacy.enter_context(single_copy_traffic())
            if int(session["params"].get("driver_traffic", 1)) < 3:  # before the third reading near zero
                legacy.enter_context(floor_pairs_agree())
            done = _replay_session(reader, session, members, run_id, report, total, runs, progress, done)


def _replay_session(reader: LogReader, session: dict[str, Any], members: list[dict[str, Any]], run_id: str | None,
                    report: ReplayReport, total: int, runs: list[dict[str, Any]],
                    progress: Callable[[Progress], None] | None, done: int) -> int:
    try:
        station, cursors = _open_session(reader, session)
    except (TranscriptExhausted, ReplayDivergence, XbarlabError) as exc:
        if session["status"] == "completed" or members:
            raise ReplayDivergence(f"{reader.path}: opening the station of {session['run_id']}: {exc}") from None
        # killed (or failed) while the station was opening: replayed as far as it was recorded
        report.runs.append(RunReplay(session["run_id"], SESSION_KIND, "stopped as recorded",
                                     note=f"status {session['status']}: the recording ends while the station "
                                          "was opening"))
        return done + 1
    guarded = session_guard(session["params"])  # e.g. campaign steps check the board's boot count
    report.runs.append(RunReplay(session["run_id"], SESSION_KIND, "reproduced",
                                 exchanges=sum(c.position for c in cursors.values())))
    done += 1
    skipped = False  # a run of this session was not re-derived: the instruments' state after it is unknown
    try:
        for info in members:
            if progress is not None:
                progress(Progress(done, total, f"replaying {info['run_id']}"))
            rr = _other_revision(reader, info, cursors)
            if rr is None:
                try:
                    rr = _replay_run(reader, info, station, cursors, guarded, runs)
                except ReplayDivergence as exc:
                    if not skipped:
                        raise
                    rr = _not_rederived(info, cursors, f"step {info['run_id']} follows a step that was not "
                                        "re-derived, and the instruments' state it left differs; its data are "
                                        f"intact but cannot be re-derived ({exc})")
            skipped = skipped or rr.outcome == NOT_REDERIVED
            if run_id is None or info["run_id"] == run_id:
                report.runs.append(rr)
            done += 1
    finally:
        station.close()
    return done


def _other_revision(reader: LogReader, info: dict[str, Any], cursors: dict[str, ReplayCursor]) -> RunReplay | None:
    """A run written by another revision of its step type's code: reported and skipped (None: same revision)."""
    cls = STEP_TYPES.get(info["kind"])
    recorded = int(info.get("code_revision", 1))
    if cls is None or recorded == cls.revision:
        return None
    _load(cursors, info["run_id"], reader.transcript(info["run_id"]))
    return _not_rederived(info, cursors, f"step {info['run_id']} was written by {info['kind']} controller revision "
                          f"{recorded}; this version replays revision {cls.revision}; its data are intact but "
                          "cannot be re-derived")


def _not_rederived(info: dict[str, Any], cursors: dict[str, ReplayCursor], note: str) -> RunReplay:
    """Skip the rest of a run's recording; the board's frame numbering resumes from the recording after it."""
    for c in cursors.values():
        if c.run_id == info["run_id"]:
            c.position = len(c.events)
        c.resync = True
    return RunReplay(info["run_id"], info["kind"], NOT_REDERIVED, note=note)


def _split(events: list[Event]) -> dict[str, list[Event]]:
    per: dict[str, list[Event]] = {}
    for ev in events:
        per.setdefault(ev.link, []).append(ev)
    return per


def _load(cursors: dict[str, ReplayCursor], run_id: str, events: list[Event]) -> None:
    for cur in cursors.values():
        if cur.remaining:
            raise ReplayDivergence(
                f"run {cur.run_id}, link {cur.link}: the code stopped after exchange {cur.position}, "
                f"the log holds {cur.remaining} more ({_next(cur)})"
            )
    per = _split(events)
    unknown = set(per) - set(cursors)
    if unknown:
        raise ReplayDivergence(f"run {run_id}: the log has exchanges on links {sorted(unknown)} that the "
                               "station stored with the session does not have")
    for link, cur in cursors.items():
        cur.load(run_id, per.get(link, []))


def _next(cur: ReplayCursor) -> str:
    return "next: " + describe(cur.events[cur.position])


def _open_session(reader: LogReader, session: dict[str, Any]) -> tuple[ReplayStation, dict[str, ReplayCursor]]:
    config = parse_station(session["station_text"], source=f"{reader.path}:{session['run_id']}")
    clock = _ReplayClock()
    cursors: dict[str, ReplayCursor] = {}
    for inst in config.instruments.values():
        label = "+".join(i.name for i in config.instruments.values() if i.address == inst.address)
        if label not in cursors:
            cursors[label] = ReplayCursor(label)
            cursors[label].on_event = clock.on_event
    _load(cursors, session["run_id"], reader.transcript(session["run_id"]))

    def opener(names: tuple[str, ...], inst: InstrumentConfig) -> Any:
        cur = cursors["+".join(names)]
        if inst.spec.transport == "visa":
            return ReplayMessageTransport(cur, inst.address)
        return ReplayByteTransport(cur, inst.address)

    try:
        # the drivers' open-time traffic of this session (sessions written before it was recorded: revision 1)
        revision = int(session["params"].get("driver_traffic", 1))
        station = ReplayStation.open(config, links=BenchLinks(open=opener, clock=clock), traffic_revision=revision)
    except ReplayDivergence as exc:
        raise ReplayDivergence(f"{reader.path}: opening the station: {exc}") from None
    assert isinstance(station, ReplayStation)
    return station, cursors


def _calibration_finder(reader: LogReader, runs: list[dict[str, Any]], info: dict[str, Any]) -> Callable[[str], Any]:
    """What ``calibration = "auto"`` found when the run was recorded, from the log alone.

    A run that finished lists the records it applied (``calibrations_used``): exactly those. A run
    killed before it finished has no list; it looked up the newest record of the kind among the
    runs completed before it, which the log still holds in order.
    """
    used = list(info.get("calibrations_used") or [])
    before = runs[: next(k for k, r in enumerate(runs) if r["run_id"] == info["run_id"])]
    authoritative = info["status"] not in ("running", "crashed")  # a killed run never wrote its list

    def find(kind: str) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        for ref in used:
            run_id, _, record = ref.partition("/")
            found = reader.calibrations(run_id).get(record)
            if found is not None and found[0] == kind:
                return ref, found[1], found[2]
        if authoritative:
            return None
        for r in reversed(before):
            if r["status"] == "completed":
                for record, (k, data, meta) in reversed(list(reader.calibrations(r["run_id"]).items())):
                    if k == kind:
                        return f"{r['run_id']}/{record}", data, meta
        return None

    return find


def _replay_run(reader: LogReader, info: dict[str, Any], station: ReplayStation,
                cursors: dict[str, ReplayCursor], guarded: bool = False,
                runs: list[dict[str, Any]] | None = None) -> RunReplay:
    rid, kind = info["run_id"], info["kind"]
    _load(cursors, rid, reader.transcript(rid))
    cls = STEP_TYPES.get(kind)
    if cls is None:
        raise ReplayDivergence(f"run {rid}: experiment type {kind!r} is not known to this xbarlab; cannot replay it")
    rec = _StepTracker(_calibration_finder(reader, runs if runs is not None else reader.runs(), info))
    start = {k: c.position for k, c in cursors.items()}
    where = lambda: f"{reader.path}: run {rid}, step {len(rec.steps) + 1} (after {rec.last_step or 'the start'!r})"  # noqa: E731
    try:
        outcome = Engine(station, guard_board_resets=guarded).run(cls, info["params"], run_id=rid, recorder=rec)
        result = outcome.result
        outcome.reraise()
    except ReplayDivergence as exc:
        raise ReplayDivergence(f"{where()}: {exc}") from None
    except TranscriptExhausted as exc:
        if info["status"] == "completed":
            raise ReplayDivergence(f"{where()}: {exc}") from None
        return RunReplay(rid, kind, "stopped as recorded", _count(cursors, start), note=f"status {info['status']}")
    except XbarlabError as exc:
        if info["status"] == "completed":
            raise ReplayDivergence(f"{where()}: the recorded run completed, the replay raised {exc}") from None
        for c in cursors.values():  # the recorded run stopped here too; drop what it did not reach
            c.position = len(c.events)
        return RunReplay(rid, kind, "stopped as recorded", _count(cursors, start),
                         note=f"status {info['status']}: {exc}")
    if info["status"] != "completed":
        for c in cursors.values():  # e.g. a reset noticed after the step: the recording ends here too
            c.position = len(c.events)
        return RunReplay(rid, kind, "stopped as recorded", _count(cursors, start), note=f"status {info['status']}")
    compared = _compare_streams(reader, rid, rec)
    return RunReplay(rid, kind, "reproduced", _count(cursors, start), compared, result=result)


def _count(cursors: dict[str, ReplayCursor], start: dict[str, int]) -> int:
    return sum(c.position - (start[k] if c.run_id == c.run_id else 0) for k, c in cursors.items())


def _compare_streams(reader: LogReader, rid: str, rec: MemoryRecorder) -> dict[str, int]:
    compared: dict[str, int] = {}
    recorded = set(reader.stream_names(rid))
    produced = {n for n, s in rec.streams.items() if s.rows}
    if recorded != produced:
        raise ReplayDivergence(f"{reader.path}: run {rid}: the log holds streams {sorted(recorded)}, "
                               f"the replay produced {sorted(produced)}")
    for name in sorted(recorded):
        want = reader.stream(rid, name).data
        got = _rows(rec.streams[name].rows, want)
        if got.shape != want.shape or got.tobytes() != want.tobytes():
            bad = _first_difference(want, got)
            raise ReplayDivergence(f"{reader.path}: run {rid}: stream {name!r} differs from the log {bad}")
        compared[name] = int(want.shape[0])
    return compared


def _rows(chunks: list[Any], like: np.ndarray) -> np.ndarray:
    row_shape = like.shape[1:]
    parts = []
    for c in chunks:
        a = np.asarray(c).astype(like.dtype, copy=False)
        parts.append(a[np.newaxis] if a.shape == row_shape else a)
    return np.concatenate(parts) if parts else np.empty((0, *row_shape), like.dtype)


def _first_difference(want: np.ndarray, got: np.ndarray) -> str:
    if got.shape != want.shape:
        return f"(log: {want.shape[0]} rows of {want.shape[1:]}, replay: {got.shape[0]} rows of {got.shape[1:]})"
    diff = np.argwhere(want.view(np.uint8).reshape(len(want), -1) != got.view(np.uint8).reshape(len(got), -1))
    row = int(diff[0][0])
    return f"at row {row} (log: {want[row]!r}, replay: {got[row]!r})"
