"""The sweep index: one HDF5 file, one row per point (varied values, status, log, worker, headline figures).

``DIR/index.h5``::

    attrs: format = "xbarlab-sweep-index", format_version, sweep_text, sweep_source, sweep_name,
           axes (JSON list of names), updated (UTC)
    /points/<column>      1-D datasets of equal length: point_id, status, log, worker, action, error
                          (strings), wall_s, every axis (float, int or string) and every figure (float,
                          NaN where a point did not report it)

It is rewritten whole after each finished point through a temporary file and an atomic rename,
so a reader never sees a half-written index and a killed client loses at most the last row (the
logs themselves are the ground truth; the next run rebuilds rows from them).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from xbarlab.errors import ConfigError

INDEX_FILE = "index.h5"
FORMAT = "xbarlab-sweep-index"
FORMAT_VERSION = 1
TEXT_COLUMNS = ("point_id", "status", "log", "worker", "action", "error")
STATUSES = ("pending", "completed", "failed", "interrupted", "lost")


@dataclass
class SweepIndex:
    """The rows of a sweep index (in point order) and the sweep they belong to."""

    sweep_text: str
    sweep_source: str
    sweep_name: str
    axes: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def figures(self) -> list[str]:
        names: dict[str, None] = {}
        for row in self.rows:
            names.update(dict.fromkeys(row.get("figures", {})))
        return sorted(names)

    def column(self, name: str) -> np.ndarray:
        """An axis, a figure (NaN where missing) or a text column, in point order."""
        if name in self.axes:
            return np.asarray([row["values"][name] for row in self.rows])
        if name in TEXT_COLUMNS:
            return np.asarray([str(row.get(name, "")) for row in self.rows], dtype=object)
        if name == "wall_s":
            return np.asarray([float(row.get("wall_s", math.nan)) for row in self.rows])
        if name in self.figures:
            return np.asarray([float(row.get("figures", {}).get(name, math.nan)) for row in self.rows])
        raise ConfigError(f"no column {name!r} in the sweep index; axes: {', '.join(self.axes)}; "
                          f"figures: {', '.join(self.figures) or 'none yet'}")

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            out[row["status"]] = out.get(row["status"], 0) + 1
        return out


def _axis_array(values: list[Any]) -> np.ndarray:
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=float)
    return np.asarray([json.dumps(v) if not isinstance(v, str) else v for v in values], dtype=h5py.string_dtype())


def write_index(directory: Path, index: SweepIndex) -> Path:
    """Write ``DIR/index.h5`` atomically."""
    path = directory / INDEX_FILE
    tmp = directory / f".{INDEX_FILE}.{os.getpid()}.tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "sweep_text": index.sweep_text,
                        "sweep_source": index.sweep_source, "sweep_name": index.sweep_name,
                        "axes": json.dumps(index.axes),
                        "updated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")})
        g = f.create_group("points", track_order=True)
        for name in TEXT_COLUMNS:
            g.create_dataset(name, data=np.asarray([str(r.get(name, "")) for r in index.rows],
                                                    dtype=h5py.string_dtype()))
        g.create_dataset("wall_s", data=np.asarray([float(r.get("wall_s", math.nan)) for r in index.rows]))
        axes = g.create_group("axes", track_order=True)
        for i, name in enumerate(index.axes):
            axes.create_dataset(str(i), data=_axis_array([r["values"][name] for r in index.rows]))
            axes[str(i)].attrs["name"] = name
        figs = g.create_group("figures", track_order=True)
        for i, name in enumerate(index.figures):
            figs.create_dataset(str(i), data=np.asarray(
                [float(r.get("figures", {}).get(name, math.nan)) for r in index.rows]))
            figs[str(i)].attrs["name"] = name
    os.replace(tmp, path)
    return path


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_index(directory: str | Path) -> SweepIndex:
    """Read ``DIR/index.h5``. Raises ConfigError with one line if it is missing or not an index."""
    d = Path(directory)
    path = d / INDEX_FILE if d.is_dir() else d
    if not path.is_file():
        raise ConfigError(f"{d}: no sweep index ({INDEX_FILE}); run `xbarlab sweep SWEEP.toml -o {d}` first")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ConfigError(f"{path}: not an xbarlab sweep index")
            version = int(f.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise ConfigError(f"{path}: sweep index format {version} is newer than this xbarlab reads "
                                  f"({FORMAT_VERSION}); update xbarlab")
            axes = json.loads(f.attrs["axes"])
            g = f["points"]
            n = len(g["point_id"])
            rows: list[dict[str, Any]] = [{} for _ in range(n)]
            for name in TEXT_COLUMNS:
                for row, v in zip(rows, g[name][()], strict=True):
                    row[name] = _decode(v)
            for row, v in zip(rows, g["wall_s"][()], strict=True):
                row["wall_s"] = float(v)
            for row in rows:
                row["values"], row["figures"] = {}, {}
            for ds in g["axes"].values():
                for row, v in zip(rows, ds[()], strict=True):
                    row["values"][_decode(ds.attrs["name"])] = _decode(v)
            for ds in g["figures"].values():
                for row, v in zip(rows, ds[()], strict=True):
                    if not math.isnan(v):
                        row["figures"][_decode(ds.attrs["name"])] = float(v)
            return SweepIndex(_decode(f.attrs["sweep_text"]), _decode(f.attrs["sweep_source"]),
                              _decode(f.attrs["sweep_name"]), axes, rows)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable sweep index ({exc})") from None
