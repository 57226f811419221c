"""Sweep files: a campaign and the axes to vary, expanded into points and validated before anything runs.

A sweep is a TOML file::

    [sweep]
    name = "write-verify vs c2c and read noise"
    campaign = "writeverify_small.toml"   # relative to this file
    mode = "grid"                         # grid (cartesian product, first axis slowest) | zip
    retries = 2                           # Dask retries of a point whose task raised (default 2)
    figures = ["write_verify.yield"]      # optional: what `xbarlab sweep show` plots by default

    [axes]
    "sim.device.c2c" = [0.1, 0.3, 0.5]                      # a list
    "sim.device.read_noise" = {start = 0.0, stop = 0.02, num = 3}   # a range: num values, ends included
    "steps.write_verify.tolerance" = {start = 0.01, stop = 0.03, step = 0.01}  # a range by step
    seed = {seeds = 3, first = 1}                           # seeds 1, 2, 3

Axis names:

* ``sim.<table>.<key>`` (or ``sim.seed``): any key of the station's ``[sim]`` table, e.g. any
  ``[sim.device]`` model parameter, ``[sim.array]`` size, ``[sim.periphery]`` or ``[sim.faults.<name>]``
  switch. The campaign's station must be simulated.
* ``steps.<type>.<param>``: a parameter of every step of that type; ``steps[<i>].<param>``: of the
  i-th ``[[steps]]`` table (from 0).
* ``campaign.seed``; ``seed``: both ``sim.seed`` (a fresh array) and ``campaign.seed``.

Every point becomes a station file and a campaign file of its own; each is validated exactly like
``xbarlab run`` validates a campaign (station limits included) and every distinct ``[sim]`` table (seed
aside) is built once, so a bad value is reported with its point before any worker starts.
"""

from __future__ import annotations

import copy
import itertools
import math
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbarlab.campaigns.spec import Campaign, load_campaign, parse_campaign
from xbarlab.errors import ConfigError
from xbarlab.instruments.config import parse_station
from xbarlab.sim.bench import SimBench
from xbarlab.sweep.tomlwrite import dumps

_SWEEP_KEYS = {"name", "campaign", "mode", "retries", "description", "figures"}
_RANGE_KEYS = {"start", "stop", "num", "step"}
_SEED_KEYS = {"seeds", "first"}
MODES = ("grid", "zip")
STATION_FILE = "{pid}.station.toml"
CAMPAIGN_FILE = "{pid}.campaign.toml"
LOG_FILE = "{pid}.h5"


@dataclass(frozen=True)
class Axis:
    """One varied quantity and its values."""

    name: str
    values: list[Any]


@dataclass(frozen=True)
class Point:
    """One point of a sweep: the varied values and the files that run it."""

    index: int
    point_id: str  # "p007"
    values: dict[str, Any]
    station_text: str
    campaign_text: str

    @property
    def station_file(self) -> str:
        return STATION_FILE.format(pid=self.point_id)

    @property
    def campaign_file(self) -> str:
        return CAMPAIGN_FILE.format(pid=self.point_id)

    @property
    def log_file(self) -> str:
        return LOG_FILE.format(pid=self.point_id)


@dataclass(frozen=True)
class Sweep:
    """A validated, expanded sweep."""

    name: str
    source: str
    text: str
    campaign: Campaign
    mode: str
    retries: int
    axes: list[Axis]
    points: list[Point] = field(default_factory=list)

    @property
    def simulated(self) -> bool:
        return self.campaign.station.is_simulated


def load_sweep(path: str | Path) -> Sweep:
    """Read, expand and validate a sweep file. Raises ConfigError listing every problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: sweep file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read sweep file: {exc}") from None
    return parse_sweep(text, source=str(p), base_dir=p.parent)


def _axis_values(name: str, raw: Any, problems: list[str]) -> list[Any] | None:
    where = f"axes.{name}"
    if isinstance(raw, list):
        if not raw:
            problems.append(f"{where}: empty list; give at least one value")
            return None
        return list(raw)
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a list, a range {{start, stop, num|step}} or {{seeds, first}}")
        return None
    keys = set(raw)
    if keys & _SEED_KEYS:
        if keys - _SEED_KEYS:
            problems.append(f"{where}: a seeds axis takes only seeds and first, got {', '.join(sorted(keys))}")
            return None
        n, first = raw.get("seeds"), raw.get("first", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            problems.append(f"{where}.seeds: expected a positive integer count, got {n!r}")
            return None
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            problems.append(f"{where}.first: expected a non-negative integer, got {first!r}")
            return None
        return list(range(first, first + n))
    if keys - _RANGE_KEYS or not {"start", "stop"} <= keys or len(keys & {"num", "step"}) != 1:
        problems.append(f"{where}: a range needs start, stop and exactly one of num or step; "
                        f"got {', '.join(sorted(keys))}")
        return None
    start, stop = raw["start"], raw["stop"]
    for k in ("start", "stop", *(keys & {"num", "step"})):
        v = raw[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            problems.append(f"{where}.{k}: expected a finite number, got {v!r}")
            return None
    if "num" in raw:
        num = raw["num"]
        if not isinstance(num, int) or num < 1:
            problems.append(f"{where}.num: expected a positive integer, got {num!r}")
            return None
        if num == 1:
            return [start]
        values = [start + (stop - start) * i / (num - 1) for i in range(num)]
    else:
        step = raw["step"]
        if step == 0 or (stop - start) * step < 0:
            problems.append(f"{where}.step = {step!r} never reaches stop = {stop!r} from start = {start!r}")
            return None
        n = int(math.floor((stop - start) / step + 1e-9)) + 1
        if n > 100_000:
            problems.append(f"{where}: {n} values; a sweep axis takes at most 100000")
            return None
        values = [start + i * step for i in range(n)]
    if all(isinstance(x, int) for x in (start, stop, raw.get("step", 1))) and "num" not in raw:
        return [int(v) for v in values]
    return [float(round(v, 12)) for v in values]


def _flatten_axes(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``[axes]`` entries as (dotted name, spec); unquoted dotted keys arrive as nested tables."""
    out: list[tuple[str, Any]] = []
    for k, v in table.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v and not (set(v) & (_RANGE_KEYS | _SEED_KEYS)):
            out += _flatten_axes(v, name + ".")
        else:
            out.append((name, v))
    return out


def _set_path(table: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        nxt = table.setdefault(key, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{'.'.join(path)}: {key} is a value, not a table")
        table = nxt
    table[path[-1]] = value


def _step_targets(name: str, steps: list[dict[str, Any]], problems: list[str]) -> tuple[list[int], str] | None:
    """Which [[steps]] tables an axis ``steps...`` addresses, and the parameter name."""
    if name.startswith("steps["):
        head, _, param = name.partition("].")
        try:
            i = int(head[len("steps["):])
        except ValueError:
            problems.append(f"axes.{name}: expected steps[<index>].<param>")
            return None
        if not 0 <= i < len(steps) or not param:
            problems.append(f"axes.{name}: the campaign has steps[0] to steps[{len(steps) - 1}]; "
                            "expected steps[<index>].<param>")
            return None
        return [i], param
    parts = name.split(".")
    if len(parts) != 3:
        problems.append(f"axes.{name}: expected steps.<type>.<param> or steps[<index>].<param>")
        return None
    kind, param = parts[1], parts[2]
    idx = [i for i, s in enumerate(steps) if isinstance(s, dict) and s.get("type") == kind]
    if not idx:
        kinds = sorted({str(s.get("type")) for s in steps if isinstance(s, dict)})
        problems.append(f"axes.{name}: the campaign has no step of type {kind!r} (its steps: {', '.join(kinds)})")
        return None
    return idx, param


def parse_sweep(text: str, source: str = "<string>", base_dir: Path | None = None) -> Sweep:
    """Validate sweep TOML text: its campaign, every axis and every point."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    problems: list[str] = []
    for key in sorted(set(data) - {"sweep", "axes"}):
        problems.append(f"{key}: unknown top-level key; expected [sweep] and [axes]")
    head = data.get("sweep")
    if not isinstance(head, dict):
        raise ConfigError(f"{source}: invalid sweep: [sweep] table with campaign = \"FILE\" is missing")
    for key in sorted(set(head) - _SWEEP_KEYS):
        problems.append(f"sweep.{key}: unknown key; expected some of {', '.join(sorted(_SWEEP_KEYS))}")
    mode = head.get("mode", "grid")
    if mode not in MODES:
        problems.append(f"sweep.mode = {mode!r}: expected one of {', '.join(MODES)}")
    retries = head.get("retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        problems.append(f"sweep.retries: expected an integer 0..20, got {retries!r}")
        retries = 2
    figures = head.get("figures", [])
    if not isinstance(figures, list) or not all(isinstance(f, str) for f in figures):
        problems.append(f"sweep.figures: expected a list of names such as \"write_verify.yield\", got {figures!r}")
    campaign_ref = head.get("campaign")
    campaign: Campaign | None = None
    if not isinstance(campaign_ref, str) or not campaign_ref:
        problems.append("sweep.campaign: missing; expected the campaign file, relative to the sweep file")
    else:
        cp = Path(campaign_ref)
        if not cp.is_absolute() and base_dir is not None:
            cp = base_dir / cp
        try:
            campaign = load_campaign(cp)
        except ConfigError as exc:
            problems.append(f"sweep.campaign: {exc}")
    axes_raw = data.get("axes")
    if not isinstance(axes_raw, dict) or not axes_raw:
        problems.append("[axes] is missing or empty: a sweep varies at least one quantity")
        axes_raw = {}
    axes: list[Axis] = []
    for name, raw in _flatten_axes(axes_raw):
        values = _axis_values(name, raw, problems)
        if values is not None:
            axes.append(Axis(name, values))
    if mode == "zip" and len({len(a.values) for a in axes}) > 1:
        problems.append("sweep.mode = 'zip': every axis needs the same number of values; got "
                        + ", ".join(f"{a.name}: {len(a.values)}" for a in axes))
    if problems or campaign is None:
        _raise(source, problems)
    assert campaign is not None
    camp_data = tomllib.loads(campaign.text)
    station_data = tomllib.loads(campaign.station.text)
    appliers = [_applier(a.name, camp_data, campaign, problems) for a in axes]
    if problems:
        _raise(source, problems)

    combos = (list(itertools.product(*(a.values for a in axes))) if mode == "grid"
              else list(zip(*(a.values for a in axes), strict=True)))
    width = max(3, len(str(len(combos) - 1)))
    points: list[Point] = []
    for i, combo in enumerate(combos):
        pid = f"p{i:0{width}d}"
        st, cp = copy.deepcopy(station_data), copy.deepcopy(camp_data)
        values = dict(zip((a.name for a in axes), combo, strict=True))
        for apply, value in zip(appliers, combo, strict=True):
            apply(st, cp, value)
        cp.setdefault("campaign", {})["station"] = STATION_FILE.format(pid=pid)
        cp["campaign"]["name"] = f"{campaign.name} [{pid}: " + ", ".join(f"{k}={v!r}" for k, v in values.items()) + "]"
        header = f"sweep point {pid} of {source}: " + ", ".join(f"{k} = {v!r}" for k, v in values.items())
        points.append(Point(i, pid, values, dumps(st, header), dumps(cp, header)))
    _validate_points(points, problems)
    if problems:
        _raise(source, problems)
    name = head.get("name", Path(source).stem)
    return Sweep(str(name), source, text, campaign, mode, retries, axes, points)


def _raise(source: str, problems: list[str]) -> None:
    listing = "\n".join(f"  - {p}" for p in problems[:40])
    more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
    raise ConfigError(f"{source}: invalid sweep:\n{listing}{more}")


def _applier(name: str, camp: dict[str, Any], campaign: Campaign, problems: list[str]) -> Any:
    """A function (station_data, campaign_data, value) that sets axis ``name`` to a value."""
    def nothing(st: dict[str, Any], cp: dict[str, Any], v: Any) -> None:
        return None

    if name == "seed" or name.startswith("sim."):
        if not campaign.station.is_simulated:
            problems.append(f"axes.{name}: the campaign's station '{campaign.station.name}' is not simulated "
                            "(no [sim] table); sim axes need a simulated station")
            return nothing
    if name == "seed":
        def both(st: dict[str, Any], cp: dict[str, Any], v: Any) -> None:
            st.setdefault("sim", {})["seed"] = v
            cp.setdefault("campaign", {})["seed"] = v
        return both
    if name == "campaign.seed":
        return lambda st, cp, v: cp.setdefault("campaign", {}).__setitem__("seed", v)
    if name.startswith("sim."):
        path = name.split(".")
        if any(not p for p in path):
            problems.append(f"axes.{name}: empty key in the dotted name")
            return nothing
        return lambda st, cp, v: _set_path(st, path, v)
    if name.startswith("steps"):
        steps = camp.get("steps", [])
        found = _step_targets(name, steps, problems)
        if found is None:
            return nothing
        idx, param = found
        for i in idx:
            if param in steps[i].get("sweep", {}):
                problems.append(f"axes.{name}: steps[{i}] already sweeps {param} in the campaign; vary it in one place")
                return nothing

        def set_param(st: dict[str, Any], cp: dict[str, Any], v: Any) -> None:
            for i in idx:
                cp["steps"][i].setdefault("params", {})[param] = v
        return set_param
    problems.append(f"axes.{name}: unknown axis; expected sim.<table>.<key>, steps.<type>.<param>, "
                    "steps[<index>].<param>, campaign.seed or seed")
    return nothing


def _validate_points(points: list[Point], problems: list[str]) -> None:
    """Validate every point's campaign against its station, and build every distinct simulated bench once."""

    built: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="xbarlab-sweep-check-") as tmp:
        for pt in points:
            where = f"point {pt.point_id} (" + ", ".join(f"{k}={v!r}" for k, v in pt.values.items()) + ")"
            (Path(tmp) / pt.station_file).write_text(pt.station_text, encoding="utf-8")
            try:
                parse_campaign(pt.campaign_text, source=pt.campaign_file, base_dir=Path(tmp))
                config = parse_station(pt.station_text, pt.station_file)
            except ConfigError as exc:
                problems.append(f"{where}: {exc}")
                continue
            # the seed picks random draws, not whether the bench can be built: one build per other [sim] content
            key = repr({k: v for k, v in (config.sim or {}).items() if k != "seed"})
            if config.sim is not None and key not in built:
                built.add(key)
                problems += [f"{where}: {p}" for p in _sim_problems(config)]
            if len(problems) > 40:
                return


def _sim_problems(config: Any) -> list[str]:
    """Problems building the simulated bench of a station (unknown or out-of-range [sim] values)."""

    try:
        bench = SimBench.from_station(config)
    except ConfigError as exc:
        return [str(exc)]
    except (TypeError, ValueError) as exc:
        return [f"{config.source}: sim: {exc}"]
    bench.close()
    return []
