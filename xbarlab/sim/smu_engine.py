"""Source-measure physics shared by every emulated SMU (SCPI and TSP).

With the output on, the current is what the terminal's load draws; when it exceeds the
compliance the SMU regulates at the compliance, found by bisection on the load curve, and
reports compliance. The load is stressed at the actual terminal voltage for the integration
time. Readings carry seeded noise of 0.012 % of reading + 10 pA (order of the 2400's 1 µA-range
accuracy spec). The simulated clock advances NPLC/50 Hz + 1 ms per reading. With the output
off the terminals are open: 0 A (plus noise) at 0 V.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.sim.clock import SimClock
from xbarlab.sim.terminals import SmuTerminal

LINE_FREQUENCY = 50.0  # Hz
READING_OVERHEAD = 1e-3  # s per reading


@dataclass(frozen=True)
class SmuModel:
    """Identity and hardware ratings of one SMU model.

    ``v_ranges`` / ``i_ranges``: source ranges in V / A (ascending); the largest level a range
    accepts is ``overrange`` × the range, and the model's rating is ``max_v`` / ``max_i``.
    """

    identity: str
    max_v: float
    max_i: float
    channels: int
    buffer_points: int
    v_ranges: tuple[float, ...]
    i_ranges: tuple[float, ...]
    overrange: float = 1.05


def pick_range(ranges: tuple[float, ...], value: float) -> float:
    """Smallest range that holds ``|value|`` (the largest range if none does)."""
    for r in ranges:
        if abs(value) <= r * (1 + 1e-12):
            return r
    return ranges[-1]


@dataclass
class Reading:
    """One source-measure reading: V, A, time stamp in s, compliance flag."""

    v: float
    i: float
    t: float
    tripped: bool


@dataclass
class Channel:
    """One SMU channel: its terminals, its settings (``s``) and its output state."""

    terminal: SmuTerminal
    s: dict[str, Any] = field(default_factory=dict)
    output: bool = False
    tripped: bool = False

    def _setting(self, scpi_key: str, tsp_key: str, default: float = 0.0) -> float:
        src = self.s.get("source")
        if isinstance(src, dict):  # TSP channel: smuX.source.*
            return float(src.get(tsp_key, default))
        return float(self.s.get(scpi_key, default))

    @property
    def level_v(self) -> float:
        """Programmed source voltage in V."""
        return self._setting("level_v", "levelv")

    @property
    def level_i(self) -> float:
        """Programmed source current in A."""
        return self._setting("level_i", "leveli")

    @property
    def comp_i(self) -> float:
        """Current compliance in A."""
        return self._setting("comp_i", "limiti")

    @property
    def comp_v(self) -> float:
        """Voltage compliance in V."""
        return self._setting("comp_v", "limitv")


class SourceMeasure:
    """The measurement physics over a simulated clock and a seeded noise source."""

    def __init__(self, clock: SimClock, seed: int) -> None:
        self.clock = clock
        self._rng = np.random.default_rng(seed)

    def measure(self, c: Channel, func: str, level: float, limit: float, nplc: float) -> Reading:
        """One reading of channel ``c`` sourcing ``func`` ("VOLT"/"CURR") at ``level`` with compliance ``limit``."""
        dt = nplc / LINE_FREQUENCY
        self.clock.advance(dt + READING_OVERHEAD)
        t = self.clock.now
        load = c.terminal.load
        if not c.output:
            c.tripped = False
            return Reading(0.0, self._noisy(0.0), t, False)
        limit = abs(limit)
        if func == "VOLT":
            v = level
            i = load.current(v)
            c.tripped = abs(i) > limit
            if c.tripped:
                v = self._solve_v(load, v, limit)
                i = float(np.sign(i)) * limit
            load.stress(v, dt, limit)
            return Reading(v, self._noisy(i), t, c.tripped)
        target = level
        v_lim = limit if target >= 0 else -limit
        i_lim = load.current(v_lim)
        c.tripped = abs(i_lim) < abs(target)
        if c.tripped:
            v, i = v_lim, i_lim
        else:
            lo, hi = 0.0, v_lim
            for _ in range(60):
                mid = (lo + hi) / 2
                if abs(load.current(mid)) < abs(target):
                    lo = mid
                else:
                    hi = mid
            v, i = (lo + hi) / 2, target
        load.stress(v, dt, abs(level))
        return Reading(self._noisy(v, volts=True), i, t, c.tripped)

    @staticmethod
    def _solve_v(load: Any, v: float, limit: float) -> float:
        lo, hi = 0.0, v
        for _ in range(60):
            mid = (lo + hi) / 2
            if abs(load.current(mid)) > limit:
                hi = mid
            else:
                lo = mid
        return (lo + hi) / 2

    def _noisy(self, x: float, volts: bool = False) -> float:
        floor = 10e-6 if volts else 10e-12
        return float(x + (abs(x) * 1.2e-4 + floor) * self._rng.standard_normal())
