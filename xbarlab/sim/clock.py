"""Simulated clock: instrument time advances by what the bench does, never by sleeping."""

from __future__ import annotations

import threading


class SimClock:
    """Monotonic simulated time in seconds.

    Every pulse, read, integration and conversion advances it by its duration, so a
    simulated experiment reports realistic instrument time while running at CPU speed.
    ``start`` lets a run begin at a chosen time (drift models count from programming).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    @property
    def now(self) -> float:
        """Current simulated time in s."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Advance by ``seconds`` (≥ 0) and return the new time in s."""
        if seconds < 0:
            raise ValueError(f"cannot advance the simulated clock by a negative time ({seconds} s)")
        with self._lock:
            self._now += float(seconds)
            return self._now
