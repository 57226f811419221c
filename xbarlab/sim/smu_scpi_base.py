"""Base of the emulated SCPI source-measure units: channels, terminals, physics, shared command pieces.

The models' command tables are in ``smu_k2400.py``, ``smu_k2450.py`` and ``smu_b2900.py``
(:mod:`xbarlab.sim.smu_scpi` gathers them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xbarlab.sim.clock import SimClock
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.scpi_instrument import (
    ESR_PON,
    ScpiInstrumentEmulator,
)
from xbarlab.sim.scpi_tree import (
    Bool,
    Call,
    Choice,
    Node,
    Num,
    Param,
    ScpiError,
    fmt_e,
    parse_number,
    split_args,
)
from xbarlab.sim.smu_engine import Channel, Reading, SmuModel, SourceMeasure, pick_range
from xbarlab.sim.terminals import SmuTerminal

NAN_READING = 9.91e37  # what these instruments return for "no value" (SCPI NaN)



class FloatList(Param):
    """A comma-separated list of numbers in [lo, hi] (source lists)."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def parse(self, text: str) -> list[float]:
        values = [parse_number(x) for x in split_args(text)]
        if not values:
            raise ScpiError(-109, "Missing parameter")
        if any(not self.lo <= v <= self.hi for v in values):
            raise ScpiError(-222, "Data out of range")
        return values

    def format(self, value: Any) -> str:
        return ",".join(fmt_e(v) for v in value)


class OnOffOnce(Param):
    """ON|OFF|ONCE (2400 ``:SYST:AZER:STAT``); answered 1/0."""

    def parse(self, text: str) -> str:
        t = text.strip().upper()
        if t in ("ONCE",):
            return "ON"
        try:
            return "ON" if Bool().parse(t) else "OFF"
        except ScpiError:
            raise ScpiError(-224, "Illegal parameter value") from None

    def format(self, value: Any) -> str:
        return "1" if value == "ON" else "0"


SENSE_NAMES = {"VOLT": "VOLT:DC", "CURR": "CURR:DC", "RES": "RES"}


def sense_functions(text: str) -> list[str]:
    """``'CURR'`` / ``"VOLT:DC","CURR:DC"`` -> ["CURR"] / ["VOLT", "CURR"]; -224 otherwise."""
    out = []
    for part in split_args(text):
        name = Choice(("VOLTage", "CURRent", "RESistance", "VOLTage:DC", "CURRent:DC")).parse(part)
        out.append(name.split(":")[0])
    if not out:
        raise ScpiError(-109, "Missing parameter")
    return out


class ScpiSmuEmulator(ScpiInstrumentEmulator):
    """An SCPI SMU: channels, terminals, physics; the subclass gives the model's command table."""

    MODEL: SmuModel
    ERROR_QUEUE_DEPTH = 10

    def __init__(self, clock: SimClock | None = None, seed: int = 0, faults: FaultPlan | None = None) -> None:
        self.clock = clock or SimClock()
        self.engine = SourceMeasure(self.clock, seed)
        self.CHANNELS = self.MODEL.channels
        self.IDENTITY = self.MODEL.identity
        self._terminals = [SmuTerminal() for _ in range(self.MODEL.channels)]
        self.ch = [Channel(t) for t in self._terminals]
        super().__init__(faults)
        self.power_on_reset()

    # -- wiring -----------------------------------------------------------------------------------
    def terminal(self, channel: str | int | None = None) -> SmuTerminal:
        """The terminals of channel ``channel`` ("1", "2"; None = the only/first channel)."""
        idx = 0 if channel is None else int(channel) - 1
        if not 0 <= idx < len(self._terminals):
            raise ValueError(f"{self.MODEL.identity.split(',')[1]} has no channel {channel!r}")
        return self._terminals[idx]

    # -- state -------------------------------------------------------------------------------------
    def settings(self, channel: int) -> dict[str, Any]:
        return self.ch[channel].s

    def power_on_reset(self) -> None:
        self.errors.clear()
        self.esr, self.ese, self.sre = ESR_PON, 0, 0
        for reg in self.status.values():
            reg.update(event=0, enable=0, cond=0)
        self.reset_settings()

    def reset_settings(self) -> None:
        defaults = {n.key: n.default_value() for n in self.tree.nodes if n.key is not None}
        for c in self.ch:
            c.s = dict(defaults)
            c.output = False
            c.tripped = False
        self._reset_model()

    def _reset_model(self) -> None:
        """Model state beyond the table's settings (buffers, sweeps)."""

    # -- shared command pieces ------------------------------------------------------------------------
    def _level_node(self, pattern: str, func: str, lo: float, hi: float, ranges: tuple[float, ...]) -> Node:
        """A source level: checked against the present range unless autoranging (-222)."""
        key = "level_v" if func == "VOLT" else "level_i"
        rkey, akey = ("v_range", "v_auto") if func == "VOLT" else ("i_range", "i_auto")

        def check(call: Call, value: float) -> None:
            s = self.ch[call.channel].s
            if s[akey]:
                s[rkey] = pick_range(ranges, value)
            elif abs(value) > s[rkey] * self.MODEL.overrange:
                raise ScpiError(-222, "Data out of range")

        return Node(pattern, Num(lo, hi, 0.0), key=key, on_set=check)

    def _range_nodes(self, prefix: str, func: str, ranges: tuple[float, ...]) -> list[Node]:
        rkey, akey, lkey = ("v_range", "v_auto", "level_v") if func == "VOLT" else ("i_range", "i_auto", "level_i")

        def set_range(call: Call, value: float) -> None:
            s = self.ch[call.channel].s
            s[rkey] = pick_range(ranges, value)
            s[akey] = False
            if abs(s[lkey]) > s[rkey] * self.MODEL.overrange:
                s[lkey] = 0.0

        def set_auto(call: Call, value: bool) -> None:
            s = self.ch[call.channel].s
            if value:
                s[rkey] = pick_range(ranges, s[lkey])

        return [
            Node(f"{prefix}:RANGe[:UPPer]", Num(-ranges[-1] * self.MODEL.overrange, ranges[-1] * self.MODEL.overrange,
                                              ranges[-1]), key=rkey, on_set=set_range, default=ranges[0]),
            Node(f"{prefix}:RANGe:AUTO", Bool(), key=akey, on_set=set_auto, default=True),
        ]

    def _read(self, c: Channel) -> Reading:
        """One reading with the channel's present source settings."""
        s = c.s
        func = s["func"]
        level = s["level_v"] if func == "VOLT" else s["level_i"]
        limit = s["comp_i"] if func == "VOLT" else s["comp_v"]
        delay = s.get("trig_delay", 0.0) + (0.0 if s.get("sour_delay_auto", True) else s.get("sour_delay", 0.0))
        if delay:
            self.clock.advance(delay)
        return self.engine.measure(c, func, level, limit, s["nplc"])

    def _sweep_values(self, c: Channel) -> np.ndarray:
        s = c.s
        if s.get("v_mode") == "LIST":
            return np.asarray(s["v_list"], dtype=float)
        n = int(s["sweep_points"])
        if s.get("sweep_spacing", "LIN") == "LOG" and s["v_start"] * s["v_stop"] > 0:
            vals = np.geomspace(s["v_start"], s["v_stop"], n)
        else:
            vals = np.linspace(s["v_start"], s["v_stop"], n)
        return vals[::-1] if s.get("sweep_direction", "UP") == "DOWN" else vals

    def _sweep_step(self, call: Call, value: float) -> None:
        s = self.ch[call.channel].s
        if value == 0:
            raise ScpiError(-222, "Data out of range")
        n = int(math.floor(abs(s["v_stop"] - s["v_start"]) / abs(value) + 1e-9)) + 1
        s["sweep_points"] = max(1, n)

    def _run_readings(self, c: Channel, count: int) -> list[Reading]:
        """``count`` triggers: each steps the sweep (if any) and takes one reading."""
        s = c.s
        sweeping = s.get("v_mode", "FIX") in ("SWE", "LIST") and s["func"] == "VOLT"
        values = self._sweep_values(c) if sweeping else None
        level = s["level_v"]
        out = []
        for k in range(count):
            if values is not None:
                s["level_v"] = float(values[k % len(values)])
            out.append(self._read(c))
        if values is not None:
            s["level_v"] = level
        return out


