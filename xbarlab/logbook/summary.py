"""``xbarlab log show``: a readable summary of a logbook."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xbarlab.logbook.reader import LogReader


def _sim(t: object) -> str:
    return f"{t:.6g} s" if isinstance(t, float) and not math.isnan(t) else "-"


def _short(value: object) -> str:
    if isinstance(value, str) and "\n" in value:
        return f"<text, {value.count(chr(10)) + 1} lines>"
    return str(value)


def summary(path: str | Path, *, streams: bool = True,
            plots: Callable[[str, str], Any] | None = None) -> str:
    """Runs with status, times, parameters, streams (rows, units) and calibration records.

    ``plots(kind, stream)``: the plot the step type declares for a stream (an object with ``describe()``), or
    None; ``xbarlab log show`` passes the step types' declarations.
    """
    reader = LogReader(path)
    runs = reader.runs()
    a = reader.attrs
    lines = [f"{reader.path}: xbarlab logbook (format {a.get('format_version')}, written by xbarlab "
             f"{a.get('software_version')}, created {a.get('created')})"]
    lines += [f"recovered: {note}" for note in reader.recovered]
    counts: dict[str, int] = {}
    for r in runs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines.append(f"{len(runs)} run(s): " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for r in runs:
        lines.append("")
        lines.append(f"run {r['run_id']}  [{r['kind']}]  {r['status']}")
        lines.append(f"  started {r['start_time']}  ended {r['end_time'] or '-'}  "
                     f"sim clock {_sim(r['start_sim_time'])} -> {_sim(r['end_sim_time'])}")
        if r["error"]:
            lines.append(f"  error: {r['error']}")
        if r["params"]:
            text = ", ".join(f"{k}={_short(v)}" for k, v in r["params"].items())
            lines.append(f"  params: {text if len(text) < 300 else text[:300] + ' ...'}")
        if r["instruments"]:
            lines.append("  instruments: " + "; ".join(f"{k}: {v}" for k, v in r["instruments"].items()))
        if r["calibrations_used"]:
            lines.append("  calibrations used: " + ", ".join(r["calibrations_used"]))
        lines.append(f"  steps committed: {r['steps']}")
        if streams:
            for name in reader.stream_names(r["run_id"]):
                s = reader.stream(r["run_id"], name)
                cols = f" columns {s.columns}" if s.columns else ""
                lines.append(f"  stream {name}: {s.data.shape[0]} rows of {s.data.shape[1:] or 'scalars'}"
                             f"{cols} units {s.units}")
                spec = plots(r["kind"], name) if plots is not None else None
                if spec is not None:
                    lines.append(f"    plot: {spec.describe()}")
            for rid, (kind, _data, _meta) in reader.calibrations(r["run_id"]).items():
                lines.append(f"  calibration record {rid} ({kind})")
    return "\n".join(lines)
