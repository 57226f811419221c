"""The experiment protocol shared by the CLI, campaigns, the GUI and user scripts.

An experiment is an object that runs step by step on an open station, reports
progress, stops at a safe point when asked (outputs off) and writes every
measurement to a logbook run. It declares its parameters as :class:`Param`
specifications, which campaign validation, ``--dry-run`` and GUI forms all use.

Subclasses implement :meth:`Experiment.execute`, calling ``self.checkpoint()``
between steps (a safe point: raises :class:`Aborted` if an abort was requested) and
``self.commit(step_id, ...)`` after each completed, durable step.
"""

from __future__ import annotations

import difflib
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from xbarlab.errors import ConfigError, XbarlabError


class Aborted(XbarlabError):
    """The experiment stopped at a safe point because an abort was requested."""


# -- recording -------------------------------------------------------------------------
class Stream(Protocol):
    def append(self, rows: Any) -> None: ...


class Recorder(Protocol):
    """What an experiment writes to: a logbook run (``xbarlab.logbook``) or :class:`MemoryRecorder`."""

    def stream(self, name: str, **spec: Any) -> Stream: ...

    def commit_step(self, step_id: str, info: dict[str, Any] | None = None) -> None: ...

    def add_calibration(
        self, record_id: str, kind: str, data: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> None: ...

    def use_calibration(self, reference: str) -> None:
        """Note that this run applied calibration record ``reference`` ("<run_id>/<record_id>")."""
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


# -- parameters --------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One experiment parameter: type, default, allowed range, units and help text."""

    name: str
    type: type  # int, float, str, bool, list
    default: Any = None
    units: str = ""
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    required: bool = False

    def validate(self, value: Any, where: str) -> tuple[Any, list[str]]:
        """Return (coerced value, problems)."""
        problems: list[str] = []
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, self.type):
                return value, [f"{where}: expected {self.type.__name__}, got {value!r}"]
            if self.type is float and not math.isfinite(value):
                return value, [f"{where}: expected a finite number, got {value!r}"]
            if self.min is not None and value < self.min:
                problems.append(f"{where} = {value!r} is below the minimum {self.min:g} {self.units}".rstrip())
            if self.max is not None and value > self.max:
                problems.append(f"{where} = {value!r} is above the maximum {self.max:g} {self.units}".rstrip())
        elif self.type is list:
            if not isinstance(value, list):
                return value, [f"{where}: expected a list, got {value!r}"]
            for i, item in enumerate(value):
                if isinstance(item, float) and not math.isfinite(item):
                    problems.append(f"{where}[{i}]: expected a finite number, got {item!r}")
        elif not isinstance(value, self.type):
            return value, [f"{where}: expected {self.type.__name__}, got {value!r}"]
        if self.choices is not None and value not in self.choices:
            problems.append(f"{where} = {value!r}: expected one of {', '.join(map(repr, self.choices))}")
        return value, problems


def did_you_mean(word: Any, options: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options`` to a misspelt ``word``, else ""."""
    close = difflib.get_close_matches(str(word), sorted(map(str, options)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve_params(
    specs: tuple[Param, ...], given: Mapping[str, Any], where: str = "params"
) -> tuple[dict[str, Any], list[str]]:
    """Fill defaults, coerce and check ``given`` against ``specs``. Returns (values, problems)."""
    known = {p.name: p for p in specs}
    problems = [
        f"{where}.{k}: unknown parameter{did_you_mean(k, known)}; expected some of {', '.join(sorted(known))}"
        for k in sorted(set(given) - set(known))
    ]
    values: dict[str, Any] = {}
    for p in specs:
        if p.name in given:
            value, probs = p.validate(given[p.name], f"{where}.{p.name}")
            problems += probs
            values[p.name] = value
        elif p.required:
            problems.append(f"{where}.{p.name}: missing required parameter ({p.help or p.type.__name__})")
        else:
            values[p.name] = p.default
    return values, problems


# -- progress and abort ----------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    """A progress report: ``done`` of ``total`` steps, a message, and any live values."""

    done: int
    total: int
    message: str = ""
    values: dict[str, Any] = field(default_factory=dict)


class AbortToken:
    """A thread-safe abort request, shared by a GUI/CLI and the running experiment."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()


@dataclass(frozen=True)
class Estimate:
    """What a dry run reports: operations and estimated instrument time (s)."""

    operations: int
    instrument_time: float  # s
    detail: str = ""


class Experiment(ABC):
    """Base of every experiment, calibration routine and measurement step."""

    #: step type name used in campaign files, e.g. "iv_sweep"
    kind: ClassVar[str] = ""
    #: one-line description
    title: ClassVar[str] = ""
    #: parameter specifications
    params_spec: ClassVar[tuple[Param, ...]] = ()
    #: controller revision: bump it when a change makes the step send other commands, or compute other
    #: results from the same replies. Each logged run records it; replay re-derives only runs written at
    #: today's revision (logs without one: 1).
    revision: ClassVar[int] = 1

    def __init__(
        self,
        station: Any,
        params: Mapping[str, Any] | None = None,
        *,
        recorder: Recorder | None = None,
        progress: Callable[[Progress], None] | None = None,
        abort: AbortToken | None = None,
    ) -> None:
        values, problems = resolve_params(self.params_spec, dict(params or {}), where=self.kind or "params")
        if problems:
            raise ConfigError(f"{self.kind}: invalid parameters:\n" + "\n".join(f"  - {p}" for p in problems))
        self.station = station
        self.params: dict[str, Any] = values
        self.recorder: Recorder = recorder if recorder is not None else MemoryRecorder()
        self._progress = progress
        self.abort = abort or AbortToken()

    # -- hooks for subclasses --------------------------------------------------------------
    @abstractmethod
    def execute(self) -> Any:
        """Run the experiment; return its result object."""

    @classmethod
    def check(cls, params: Mapping[str, Any], station_config: Any, where: str) -> list[str]:
        """Extra validation before anything touches an instrument (e.g. against station limits)."""
        return []

    @classmethod
    def estimate(cls, params: Mapping[str, Any], station_config: Any) -> Estimate:
        """Operations and instrument time for ``--dry-run``."""
        return Estimate(operations=1, instrument_time=0.0)

    # -- helpers ------------------------------------------------------------------------
    def report(self, done: int, total: int, message: str = "", **values: Any) -> None:
        if self._progress is not None:
            self._progress(Progress(done, total, message, values))

    def checkpoint(self) -> None:
        """A safe point: stop here (outputs off) if an abort was requested."""
        if self.abort.requested:
            raise Aborted(f"{self.kind or type(self).__name__}: aborted at a safe point")

    def commit(self, step_id: str, **info: Any) -> None:
        """Mark a step durable in the log."""
        self.recorder.commit_step(step_id, info)

    def run(self) -> Any:
        """Execute; on abort or error put the bench in its safe state before re-raising.

        Each run characterises the devices afresh where it needs a pulse model (nothing carried
        over from an earlier run), so a resumed campaign step does what the uninterrupted one did."""
        from xbarlab.experiments.programming import forget_characterizations

        forget_characterizations()
        try:
            return self.execute()
        except BaseException:
            safe_state = getattr(self.station, "safe_state", None)
            if safe_state is not None:
                safe_state()
            raise


# -- registry ------------------------------------------------------------------------------
STEP_TYPES: dict[str, type[Experiment]] = {}


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: make an experiment available as a campaign step type."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    if cls.kind in STEP_TYPES and STEP_TYPES[cls.kind] is not cls:
        raise ValueError(f"step type {cls.kind!r} registered twice")
    STEP_TYPES[cls.kind] = cls
    return cls
