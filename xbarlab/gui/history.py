"""Per-cell history: every measurement of one cell (row, col) that a log holds, across runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xbarlab.errors import XbarlabError
from xbarlab.logbook import LogReader


@dataclass(frozen=True)
class CellEvent:
    """One measurement of the cell: which run, what kind, and the conductance(s) it gave (S)."""

    run_id: str
    kind: str  # "read" (whole-array read), "iv" (chord conductance of an I–V sweep), "pulse" (pulse response)
    sim_time: float  # s, instrument time at the start of the run (NaN if the log has none)
    conductance: np.ndarray  # S, one value per read / sweep / pulse
    amplitude: np.ndarray | None = None  # V per pulse (pulse responses)


def cell_history(reader: LogReader, row: int, col: int) -> list[CellEvent]:
    """Reads (array_read), I–V sweeps (iv_sweep) and pulse responses (pulse_response) of cell (row, col), in
    run order; runs that did not touch the cell, or wrote nothing, are left out."""
    events: list[CellEvent] = []
    for info in reader.runs():
        rid, kind, params = info["run_id"], info["kind"], info["params"]
        t = float(info["start_sim_time"]) if info.get("start_sim_time") is not None else float("nan")
        try:
            names = reader.stream_names(rid)
            if kind == "array_read" and "conductance" in names:
                frames = reader.stream(rid, "conductance").data
                if frames.ndim == 3 and row < frames.shape[1] and col < frames.shape[2] and len(frames):
                    events.append(CellEvent(rid, "read", t, frames[:, row, col].astype(float)))
            elif params.get("row") == row and params.get("col") == col:
                if kind == "iv_sweep" and "iv" in names:
                    iv = reader.stream(rid, "iv")
                    v, i = iv.column("voltage"), iv.column("current")
                    if v.size:
                        g = float(np.dot(v, i) / max(float(np.dot(v, v)), 1e-30))
                        events.append(CellEvent(rid, "iv", t, np.array([g])))
                elif kind == "pulse_response" and "response" in names:
                    resp = reader.stream(rid, "response")
                    if len(resp.data):
                        events.append(CellEvent(rid, "pulse", t, resp.column("conductance").astype(float),
                                                resp.column("amplitude").astype(float)))
        except XbarlabError:
            continue  # a run whose streams cannot be read (e.g. still opening) is skipped, not fatal
    return events
