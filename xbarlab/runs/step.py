"""The step framework: the experiment protocol shared by the CLI, campaigns, the GUI, replay and scripts.

An experiment is an object that runs step by step on an open station, reports
progress, stops at a safe point when asked (outputs off) and writes every
measurement to a logbook run. It declares its parameters as :class:`Param`
specifications, which campaign validation, ``--dry-run`` and GUI forms all use.

Subclasses implement :meth:`Experiment.execute`, calling ``self.checkpoint()``
between steps (a safe point: raises :class:`Aborted` if an abort was requested) and
``self.commit(step_id, ...)`` after each completed, durable step.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from xbarlab.errors import ConfigError, XbarlabError, problem_listing
from xbarlab.runs.recorder import Recorder, as_recorder


class Aborted(XbarlabError):
    """The experiment stopped at a safe point because an abort was requested."""


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


@dataclass(frozen=True)
class ParamGroup:
    """Parameters several steps share (the programming window, array placement …), declared once.

    A step lists ``*GROUP()`` in its ``params_spec``; where its own figures were measured with another
    default it says so, ``*GROUP(tolerance=0.005)``, so the type, range, unit and help stay in one place.
    """

    name: str
    params: tuple[Param, ...]

    def __call__(self, **defaults: Any) -> tuple[Param, ...]:
        """Every parameter of the group, ``defaults`` replacing the declared defaults by name."""
        return self.take(*(p.name for p in self.params), **defaults)

    def take(self, *names: str, **defaults: Any) -> tuple[Param, ...]:
        """The parameters ``names`` of the group (in that order), ``defaults`` replacing declared defaults."""
        known = {p.name: p for p in self.params}
        unknown = sorted((set(names) | set(defaults)) - set(known))
        if unknown or not set(defaults) <= set(names):
            raise ValueError(f"parameter group {self.name!r}: no parameter(s) {', '.join(unknown or sorted(defaults))} "
                             f"among those taken; it has {', '.join(known)}")
        return tuple(dataclasses.replace(known[n], default=defaults[n]) if n in defaults else known[n] for n in names)


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
class PlotSpec:
    """A plot a step declares for one of its streams: columns ``y`` against column ``x``, with units.

    The GUI's logbook tab and ``xbarlab log show`` draw/describe a stream from its step's declaration
    (never guessed from stream names); ``log_x`` for quantities spanning decades (time after programming).
    """

    stream: str
    x: str
    y: tuple[str, ...]
    x_units: str = ""
    y_units: str = ""
    title: str = ""
    log_x: bool = False

    def describe(self) -> str:
        """``"current (A) vs voltage (V)"``."""
        y = ", ".join(self.y) + (f" ({self.y_units})" if self.y_units else "")
        x = self.x + (f" ({self.x_units})" if self.x_units else "") + (", log scale" if self.log_x else "")
        return f"{self.title + ': ' if self.title else ''}{y} vs {x}"


#: step categories (``Experiment.category``): the GUI's calibration tab lists the "calibration" steps
CATEGORIES = ("experiment", "calibration", "measurement", "bench")


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
    #: what kind of step this is (one of :data:`CATEGORIES`); choosers list steps by it
    category: ClassVar[str] = "experiment"
    #: the plots of the step's streams (what against what, with units)
    plots: ClassVar[tuple[PlotSpec, ...]] = ()

    @classmethod
    def plot_for(cls, stream: str) -> PlotSpec | None:
        """The declared plot of ``stream``, or None."""
        return next((p for p in cls.plots if p.stream == stream), None)

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
            raise ConfigError(problem_listing(f"{self.kind}: invalid parameters", problems))
        self.station = station
        self.params: dict[str, Any] = values
        self.recorder: Recorder = as_recorder(recorder)
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

        Each run starts from the same host state: the hooks in :data:`BEFORE_EACH_RUN` run first (e.g.
        the programming layer forgets its device characterisations, so a resumed campaign step does
        what the uninterrupted one did)."""
        for hook in BEFORE_EACH_RUN:
            hook()
        try:
            return self.execute()
        except BaseException:
            if self.station is not None:  # None: a step that needs no bench (e.g. the float baseline)
                self.station.safe_state()
            raise


#: called before every run (module-level host state that must not carry over between runs registers here)
BEFORE_EACH_RUN: list[Callable[[], None]] = []


# -- registry ------------------------------------------------------------------------------
STEP_TYPES: dict[str, type[Experiment]] = {}


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: make an experiment available as a campaign step type."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    if cls.kind in STEP_TYPES and STEP_TYPES[cls.kind] is not cls:
        raise ValueError(f"step type {cls.kind!r} registered twice")
    if cls.category not in CATEGORIES:
        raise ValueError(f"{cls.__name__}: category {cls.category!r}; expected one of {', '.join(CATEGORIES)}")
    STEP_TYPES[cls.kind] = cls
    return cls


def declared_plot(kind: str, stream: str) -> PlotSpec | None:
    """The plot the registered step type ``kind`` declares for ``stream`` (None: unknown type or none declared)."""
    cls = STEP_TYPES.get(kind)
    return cls.plot_for(stream) if cls is not None else None
