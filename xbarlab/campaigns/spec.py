"""Campaign files: a station and a list of steps, validated before anything runs.

A campaign is a TOML file::

    [campaign]
    name = "RRAM read-voltage study"
    station = "sim"              # "sim" (embedded bench) or a station file, relative to this file
    seed = 7                     # optional; steps without their own seed get seed + step index

    [[steps]]
    type = "iv_sweep"            # a registered step type (``xbarlab run --list-steps``)
    name = "forming check"       # optional label
    [steps.params]
    row = 3
    col = 5
    stop = 0.3

    [[steps]]
    type = "array_read"
    [steps.sweep]                # one step instance per value; several keys = cartesian product
    read_voltage = [0.1, 0.2, 0.3]

Validation collects every problem (unknown step type, missing/out-of-range parameter,
values beyond the station's safety limits) with its location in the file.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xbarlab.experiments.catalog  # noqa: F401 - registers every built-in step type
from xbarlab.errors import ConfigError, problem_listing
from xbarlab.experiments.base import STEP_TYPES, Estimate, Experiment, did_you_mean, resolve_params
from xbarlab.instruments.config import StationConfig, load_station
from xbarlab.instruments.station import embedded_station_path

_CAMPAIGN_KEYS = {"name", "station", "seed", "description"}
_STEP_KEYS = {"type", "name", "params", "sweep"}


@dataclass(frozen=True)
class StepInstance:
    """One concrete step after sweep expansion."""

    index: int  # position in the expanded plan, from 0
    step_id: str  # stable id, e.g. "002-array_read[read_voltage=0.2]"
    kind: str
    label: str
    params: dict[str, Any]
    location: str  # where in the file, e.g. "steps[1] sweep read_voltage[1]"

    @property
    def experiment_class(self) -> type[Experiment]:
        return STEP_TYPES[self.kind]


@dataclass(frozen=True)
class Campaign:
    """A validated, expanded campaign."""

    name: str
    source: str
    text: str
    station: StationConfig
    steps: list[StepInstance] = field(default_factory=list)
    seed: int | None = None

    def estimate(self) -> list[tuple[StepInstance, Estimate]]:
        """Operations and instrument time per step (dry run)."""
        return [(s, s.experiment_class.estimate(s.params, self.station)) for s in self.steps]


def step_types() -> dict[str, type[Experiment]]:
    """Every registered campaign step type by name, sorted."""
    return dict(sorted(STEP_TYPES.items()))


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file. Raises ConfigError listing every problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: campaign file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read campaign file: {exc}") from None
    return parse_campaign(text, source=str(p), base_dir=p.parent)


def _format_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def parse_campaign(text: str, source: str = "<string>", base_dir: Path | None = None) -> Campaign:
    """Validate campaign TOML text against the registered step types and the station limits."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    problems: list[str] = []
    for key in sorted(set(data) - {"campaign", "steps"}):
        problems.append(f"{key}: unknown top-level key; expected [campaign] and [[steps]]")
    head = data.get("campaign", {})
    if not isinstance(head, dict):
        problems.append("[campaign] must be a table")
        head = {}
    for key in sorted(set(head) - _CAMPAIGN_KEYS):
        problems.append(f"campaign.{key}: unknown key; expected some of {', '.join(sorted(_CAMPAIGN_KEYS))}")
    name = head.get("name", Path(source).stem)
    seed = head.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        problems.append(f"campaign.seed: expected an integer, got {seed!r}")
        seed = None

    station_ref = head.get("station", "sim")
    station: StationConfig | None = None
    if not isinstance(station_ref, str):
        problems.append(f"campaign.station: expected 'sim' or a station file path, got {station_ref!r}")
    else:
        try:
            if station_ref == "sim":
                station = load_station(embedded_station_path("sim"))
            else:
                sp = Path(station_ref)
                if not sp.is_absolute() and base_dir is not None:
                    sp = base_dir / sp
                station = load_station(sp)
        except ConfigError as exc:
            problems.append(f"campaign.station: {exc}")

    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("[[steps]] is missing or empty: a campaign needs at least one step")
        raw_steps = []
    steps: list[StepInstance] = []
    for i, raw in enumerate(raw_steps):
        where = f"steps[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where} must be a table")
            continue
        for key in sorted(set(raw) - _STEP_KEYS):
            problems.append(f"{where}.{key}: unknown key; expected some of {', '.join(sorted(_STEP_KEYS))}")
        kind = raw.get("type")
        if kind not in STEP_TYPES:
            problems.append(
                f"{where}.type: unknown step type {kind!r}{did_you_mean(kind, STEP_TYPES)}; "
                f"expected one of {', '.join(sorted(STEP_TYPES))}"
            )
            continue
        cls = STEP_TYPES[kind]
        params = raw.get("params", {})
        sweep = raw.get("sweep", {})
        if not isinstance(params, dict):
            problems.append(f"{where}.params must be a table")
            continue
        if not isinstance(sweep, dict):
            problems.append(f"{where}.sweep must be a table of lists")
            continue
        bad_sweep = False
        for key, values in sweep.items():
            if not isinstance(values, list) or not values:
                problems.append(f"{where}.sweep.{key}: expected a non-empty list of values")
                bad_sweep = True
            elif key in params:
                problems.append(f"{where}.sweep.{key}: also set in {where}.params; set it in one place")
                bad_sweep = True
        if bad_sweep:
            continue
        label = str(raw.get("name", kind))
        keys = list(sweep)
        combos = list(itertools.product(*(sweep[k] for k in keys))) if keys else [()]
        for combo in combos:
            given = dict(params)
            given.update(dict(zip(keys, combo, strict=True)))
            if seed is not None and "seed" in {p.name for p in cls.params_spec} and "seed" not in given:
                given["seed"] = seed + len(steps)
            loc = where if not keys else f"{where} sweep " + ", ".join(
                f"{k}[{sweep[k].index(v)}]" for k, v in zip(keys, combo, strict=True)
            )
            values, probs = resolve_params(cls.params_spec, given, where=f"{where}.params")
            if keys:
                probs = [f"{pr} (in {loc})" for pr in probs]
            problems += probs
            if not probs and station is not None:
                problems += [f"{pr} (in {loc})" for pr in cls.check(values, station, f"{where}.params")]
            suffix = ""
            if keys:
                suffix = "[" + ",".join(f"{k}={_format_value(v)}" for k, v in zip(keys, combo, strict=True)) + "]"
            step_id = f"{len(steps):03d}-{kind}{suffix}"
            steps.append(StepInstance(len(steps), step_id, kind, label, values, loc))

    if problems:
        raise ConfigError(problem_listing(f"{source}: invalid campaign", problems))
    assert station is not None
    return Campaign(name=str(name), source=source, text=text, station=station, steps=steps, seed=seed)
