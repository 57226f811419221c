"""Small station helpers shared by the array experiments (time, limits, TIA range, waiting)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from xbarlab.errors import ConfigError


def instrument_time(station: Any) -> float:
    """Instrument time in s: the simulated clock on a simulated bench, else a monotonic wall clock."""
    now = station.sim_time() if station is not None and hasattr(station, "sim_time") else None
    return float(now) if now is not None else time.monotonic()


def board_limit(board: Any, name: str, default: float) -> float:
    """A board safety limit (``SafeCrossbar.limits``) or ``default`` when the board has none."""
    limits = getattr(board, "limits", None)
    return float(getattr(limits, name, default)) if limits is not None else float(default)


def station_defaults(station: Any) -> tuple[float, float]:
    """(read voltage V, TIA range A) of the station file."""
    cfg = getattr(station, "config", None)
    return float(getattr(cfg, "read_voltage", 0.2)), float(getattr(cfg, "tia_range", 1e-3))


@contextmanager
def tia_range(station: Any, board: Any, full_scale: float) -> Iterator[float]:
    """Temporarily set the board's TIA full scale (A), clipped to its safety limit; restore on exit."""
    read_v, default_tia = station_defaults(station)
    fs = min(float(full_scale), board_limit(board, "max_tia_range", full_scale))
    if not fs > 0:
        raise ConfigError(f"TIA range must be > 0 A, got {full_scale}")
    board.configure(read_v, fs)
    try:
        yield fs
    finally:
        board.configure(read_v, default_tia)


def wait(station: Any, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
    """Let ``seconds`` of instrument time pass with the outputs idle.

    On a simulated bench the simulated clock advances (a day passes at once); on hardware
    this sleeps in chunks of at most 1 s, calling ``checkpoint`` between chunks so an abort
    request is honoured.
    """
    if seconds < 0:
        raise ConfigError(f"cannot wait a negative time ({seconds} s)")
    station_wait = getattr(station, "wait", None)
    if callable(station_wait):  # a Station that knows how to idle (preferred)
        station_wait(seconds, checkpoint=checkpoint)
        return
    sim = getattr(station, "sim", None)
    if sim is not None:
        sim.clock.advance(seconds)
        return
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if checkpoint is not None:
            checkpoint()
        time.sleep(min(1.0, left))
