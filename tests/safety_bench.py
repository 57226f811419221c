"""A small simulated bench with every SMU model, for the safety tests."""

from __future__ import annotations

import re

from xbarlab.instruments.station import embedded_station_path


def bench_text(rows: int = 8, cols: int = 8, rail: float | None = None) -> str:
    """The embedded simulated bench (2400, 2636B, B2902A, 2450, board) on a ``rows`` × ``cols`` array.

    ``rail`` (V) sets the board's closed-loop output rail.
    """
    text = embedded_station_path("sim").read_text()
    text = re.sub(r"(?m)^rows = \d+", f"rows = {rows}", text)
    text = re.sub(r"(?m)^cols = \d+", f"cols = {cols}", text)
    if rail is not None:
        text = text.replace("\n# Keithley 2400", f"\n[sim.board.closed_loop]\nrail = {rail!r}\n\n# Keithley 2400", 1)
    return text
