"""Emulated SCPI source-measure units: Keithley 2400, Keithley 2450, Keysight B2902A.

Each model is a command table (:mod:`xbarlab.sim.scpi_tree`) written from its reference
manual: 2400 Series User's Manual §18 (2400S-900-01), 2450 Reference Manual §6 (2450-901-01),
Keysight B2900 Programming Guide. A setting is one line; the same line answers its query.
Physics: :mod:`xbarlab.sim.smu_engine`. Readings and replies use each model's own format.

Documented deviation: the trigger models run each ``:INIT`` to completion at once (``*OPC?``
answers 1); bus, timer and external trigger sources are stored, not waited for.
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
    Int,
    Node,
    Num,
    Param,
    ScpiError,
    Text,
    fmt_e,
    parse_number,
    split_args,
)
from xbarlab.sim.smu_engine import Channel, Reading, SmuModel, SourceMeasure, pick_range
from xbarlab.sim.terminals import SmuTerminal

NAN_READING = 9.91e37  # what these instruments return for "no value" (SCPI NaN)

__all__ = ["Keithley2400Emulator", "Keithley2450Emulator", "KeysightB2900Emulator", "ScpiSmuEmulator",
           "SmuModel"]


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


def _sense_functions(text: str) -> list[str]:
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


def _fmt2400(x: float) -> str:
    return f"{x:+.6E}"


class Keithley2400Emulator(ScpiSmuEmulator):
    """Keithley 2400 SourceMeter (SCPI, one channel, 2500-point trace buffer)."""

    MODEL = SmuModel("KEITHLEY INSTRUMENTS INC.,MODEL 2400,4112345,C32   Oct  4 2010 14:20:11/A02  /S/K",
                     210.0, 1.05, 1, 2500, v_ranges=(0.2, 2.0, 20.0, 200.0),
                     i_ranges=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0))
    ELEMENTS = ("VOLT", "CURR", "RES", "TIME", "STAT")
    # measurement event register bits (2400 manual, status structure)
    RAV, BAV, BFL, CP = 1 << 6, 1 << 8, 1 << 9, 1 << 14

    def _reset_model(self) -> None:
        self.buffer: list[Reading] = []
        self.latest: list[Reading] = []

    # -- readings -------------------------------------------------------------------------------
    def _format(self, readings: list[Reading]) -> str:
        s = self.ch[0].s
        out = []
        for r in readings:
            res = r.v / r.i if ("RES" in s["sense"] and r.i != 0) else NAN_READING
            status = (8 if r.tripped else 0) | 4  # bit 3 compliance, bit 2 front terminals
            vals = {"VOLT": r.v, "CURR": r.i, "RES": res, "TIME": r.t, "STAT": float(status)}
            out.extend(_fmt2400(vals[e]) for e in s["elements"])
        return ",".join(out)

    def _acquire(self) -> list[Reading]:
        """The trigger model: ARM:COUN × TRIG:COUN readings; buffer and status updated."""
        c = self.ch[0]
        s = c.s
        auto_off = s["clear_auto"]
        if not c.output and not auto_off:  # manual §18, :SOURce:CLEar:AUTO
            raise ScpiError(803, "Not permitted with OUTPUT off")
        c.output = True
        try:
            readings = self._run_readings(c, int(s["arm_count"]) * int(s["trig_count"]))
        finally:
            if auto_off:  # on for each source-delay-measure cycle, off after it
                c.output = False
        self.latest = readings
        self.set_condition("MEAS", self.RAV, True)
        self.set_condition("MEAS", self.CP, any(r.tripped for r in readings))
        if s["feed_control"] == "NEXT" and s["feed"] == "SENS":
            room = int(s["trace_points"]) - len(self.buffer)
            self.buffer.extend(readings[: max(room, 0)])
            self.set_condition("MEAS", self.BAV, bool(self.buffer))
            if len(self.buffer) >= int(s["trace_points"]):
                self.set_condition("MEAS", self.BFL, True)
                s["feed_control"] = "NEV"
        return readings

    def _configure(self, func: str | None) -> None:
        """``:CONFigure[:<function>]``: one-shot defaults, function selected, output ON (manual §18)."""
        s = self.ch[0].s
        if func is not None:
            s["sense"] = [func]
        s["trig_count"] = s["arm_count"] = 1
        s["trig_delay"] = 0.0
        s["feed_control"] = "NEV"
        self.ch[0].output = True

    def _nodes(self) -> list[Node]:
        m = self.MODEL
        vmax, imax = m.max_v, m.max_i

        def read(call: Call) -> str:
            return self._format(self._acquire())

        def fetch(call: Call) -> str:
            if not self.latest:
                raise ScpiError(-230, "Data corrupt or stale")
            return self._format(self.latest)

        def measure(func: str | None):
            def f(call: Call) -> str:
                self._configure(func)
                return read(call)
            return f

        def sense_set(call: Call) -> None:
            self.ch[0].s["sense"] = _sense_functions(call.args)

        def sense_query(call: Call) -> str:
            return ",".join(f'"{SENSE_NAMES[f]}"' for f in self.ch[0].s["sense"])

        def elements(call: Call) -> None:
            names = [Choice(("VOLTage", "CURRent", "RESistance", "TIME", "STATus")).parse(x)
                     for x in split_args(call.args)]
            if not names:
                raise ScpiError(-109, "Missing parameter")
            self.ch[0].s["elements"] = names

        def trace_data(call: Call) -> str:
            if not self.buffer:
                raise ScpiError(-230, "Data corrupt or stale")
            return self._format(self.buffer)

        def trace_clear(call: Call) -> None:
            self.buffer.clear()
            self.set_condition("MEAS", self.BAV | self.BFL, False)

        def trace_points(call: Call, value: float) -> None:
            if self.ch[0].s["feed_control"] == "NEXT":
                raise ScpiError(800, "Illegal with storage active")

        def calc3(call: Call) -> str:
            if not self.buffer:
                raise ScpiError(-230, "Data corrupt or stale")
            s = self.ch[0].s
            stat = s["calc3_format"]
            cols = {"VOLT": [r.v for r in self.buffer], "CURR": [r.i for r in self.buffer],
                    "RES": [r.v / r.i if r.i else NAN_READING for r in self.buffer]}
            fn = {"MEAN": np.mean, "SDEV": lambda a: np.std(a, ddof=1) if len(a) > 1 else 0.0, "MAX": np.max,
                  "MIN": np.min, "PKPK": np.ptp}[stat]
            names = [e for e in s["elements"] if e in cols]
            return ",".join(_fmt2400(float(fn(np.asarray(cols[e])))) if e != "RES" or "RES" in s["sense"]
                            else _fmt2400(NAN_READING) for e in names)

        def trip(call: Call) -> str:
            return "1" if self.ch[0].tripped else "0"

        def abort(call: Call) -> None:
            self.ch[0].s["feed_control"] = "NEV"

        nodes = [
            Node(":SOURce[1]:FUNCtion[:MODE]", Choice(("VOLTage", "CURRent")), key="func"),
            self._level_node(":SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "VOLT", -vmax, vmax, m.v_ranges),
            self._level_node(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", "CURR", -imax, imax, m.i_ranges),
            *self._range_nodes(":SOURce[1]:VOLTage", "VOLT", m.v_ranges),
            *self._range_nodes(":SOURce[1]:CURRent", "CURR", m.i_ranges),
            Node(":SOURce[1]:VOLTage:MODE", Choice(("FIXed", "SWEep", "LIST")), key="v_mode"),
            Node(":SOURce[1]:CURRent:MODE", Choice(("FIXed", "SWEep", "LIST")), key="i_mode"),
            Node(":SOURce[1]:VOLTage:STARt", Num(-vmax, vmax, 0.0), key="v_start"),
            Node(":SOURce[1]:VOLTage:STOP", Num(-vmax, vmax, 0.0), key="v_stop"),
            Node(":SOURce[1]:VOLTage:STEP", Num(-2 * vmax, 2 * vmax, 0.0), key="v_step", on_set=self._sweep_step),
            Node(":SOURce[1]:SWEep:POINts", Int(1, 2500, 2500), key="sweep_points"),
            Node(":SOURce[1]:SWEep:SPACing", Choice(("LINear", "LOGarithmic")), key="sweep_spacing"),
            Node(":SOURce[1]:SWEep:DIRection", Choice(("UP", "DOWn")), key="sweep_direction"),
            Node(":SOURce[1]:SWEep:RANGing", Choice(("BEST", "AUTO", "FIXed")), key="sweep_ranging"),
            Node(":SOURce[1]:LIST:VOLTage", FloatList(-vmax, vmax), key="v_list", default=[0.0]),
            Node(":SOURce[1]:DELay", Num(0, 9999.999, 0.0), key="sour_delay"),
            Node(":SOURce[1]:DELay:AUTO", Bool(), key="sour_delay_auto", default=True),
            Node(":SOURce[1]:CLEar:AUTO", Bool(), key="clear_auto"),
            Node(":SOURce[1]:CLEar:AUTO:MODE", Choice(("ALWays", "TCOunt")), key="clear_auto_mode"),
            Node(":SOURce[1]:CLEar[:IMMediate]", action=lambda c: setattr(self.ch[0], "output", False),
                 queryable=False),
            Node(":SENSe[1]:CURRent[:DC]:PROTection[:LEVel]", Num(-imax, imax, 105e-6), key="comp_i"),
            Node(":SENSe[1]:VOLTage[:DC]:PROTection[:LEVel]", Num(-vmax, vmax, 21.0), key="comp_v"),
            Node(":SENSe[1]:CURRent[:DC]:PROTection:TRIPped", query=trip, settable=False),
            Node(":SENSe[1]:VOLTage[:DC]:PROTection:TRIPped", query=trip, settable=False),
            Node(":SENSe[1]:FUNCtion[:ON]", action=sense_set, query=sense_query),
            Node(":SENSe[1]:FUNCtion:ALL", action=lambda c: self.ch[0].s.update(sense=["VOLT", "CURR", "RES"]),
                 queryable=False),
            Node(":SENSe[1]:FUNCtion:OFF:ALL", action=lambda c: self.ch[0].s.update(sense=[]), queryable=False),
            Node(":SENSe[1]:FUNCtion:CONCurrent", Bool(), key="concurrent", default=True),
            Node(":SENSe[1]:CURRent[:DC]:NPLCycles", Num(0.01, 10, 1.0), key="nplc"),
            Node(":SENSe[1]:VOLTage[:DC]:NPLCycles", Num(0.01, 10, 1.0), key="nplc"),
            Node(":SENSe[1]:RESistance:NPLCycles", Num(0.01, 10, 1.0), key="nplc"),
            Node(":SENSe[1]:CURRent[:DC]:RANGe[:UPPer]", Num(-imax, imax, 1.05e-4), key="sense_i_range"),
            Node(":SENSe[1]:CURRent[:DC]:RANGe:AUTO", Bool(), key="sense_i_auto", default=True),
            Node(":SENSe[1]:VOLTage[:DC]:RANGe[:UPPer]", Num(-vmax, vmax, 21.0), key="sense_v_range"),
            Node(":SENSe[1]:VOLTage[:DC]:RANGe:AUTO", Bool(), key="sense_v_auto", default=True),
            Node(":SENSe[1]:RESistance:RANGe[:UPPer]", Num(0, 2.1e8, 2.1e5), key="sense_r_range"),
            Node(":SENSe[1]:RESistance:RANGe:AUTO", Bool(), key="sense_r_auto", default=True),
            Node(":SENSe[1]:RESistance:MODE", Choice(("MANual", "AUTO")), key="res_mode", default="MAN"),
            Node(":SENSe[1]:AVERage[:STATe]", Bool(), key="average"),
            Node(":SENSe[1]:AVERage:TCONtrol", Choice(("REPeat", "MOVing")), key="average_tcontrol"),
            Node(":SENSe[1]:AVERage:COUNt", Int(1, 100, 10), key="average_count"),
            Node(":FORMat:ELEMents[:SENSe[1]]", action=elements,
                 query=lambda c: ",".join(self.ch[0].s["elements"])),
            Node(":FORMat[:DATA]", Choice(("ASCii",)), key="form_data"),
            Node(":FORMat:BORDer", Choice(("NORMal", "SWAPped")), key="border"),
            Node(":OUTPut[1][:STATe]", Bool(), key="output_state",
                 on_set=lambda c, v: setattr(self.ch[0], "output", v),
                 query=lambda c: "1" if self.ch[0].output else "0"),
            Node(":OUTPut[1]:SMODe", Choice(("NORMal", "HIMPedance", "ZERO", "GUARd")), key="off_mode"),
            Node(":OUTPut[1]:ENABle[:STATe]", Bool(), key="output_enable"),
            Node(":READ", query=read, settable=False),
            Node(":FETCh", query=fetch, settable=False),
            Node(":MEASure", query=measure(None), settable=False),
            Node(":MEASure:CURRent[:DC]", query=measure("CURR"), settable=False),
            Node(":MEASure:VOLTage[:DC]", query=measure("VOLT"), settable=False),
            Node(":MEASure:RESistance", query=measure("RES"), settable=False),
            Node(":CONFigure:CURRent[:DC]", action=lambda c: self._configure("CURR"), queryable=False),
            Node(":CONFigure:VOLTage[:DC]", action=lambda c: self._configure("VOLT"), queryable=False),
            Node(":CONFigure:RESistance", action=lambda c: self._configure("RES"), queryable=False),
            Node(":INITiate[:IMMediate]", action=lambda c: self._acquire() and None, queryable=False),
            Node(":ABORt", action=abort, queryable=False),
            Node(":TRACe:CLEar", action=trace_clear, queryable=False),
            Node(":TRACe:POINts", Int(1, m.buffer_points, 100), key="trace_points", on_set=trace_points),
            Node(":TRACe:POINts:ACTual", query=lambda c: str(len(self.buffer)), settable=False),
            Node(":TRACe:FREE", query=lambda c: f"{(m.buffer_points - len(self.buffer)) * 28},{len(self.buffer) * 28}",
                 settable=False),
            Node(":TRACe:FEED", Choice(("SENSe", "CALCulate", "CALCulate2"),
                                        aliases=(("SENSE1", "SENS"), ("SENS1", "SENS"), ("CALC1", "CALC"),
                                                 ("CALCULATE1", "CALC"))), key="feed"),
            Node(":TRACe:FEED:CONTrol", Choice(("NEVer", "NEXT")), key="feed_control", default="NEV"),
            Node(":TRACe:DATA", query=trace_data, settable=False),
            Node(":TRACe:TSTamp:FORMat", Choice(("ABSolute", "DELTa")), key="tstamp_format"),
            Node(":CALCulate3:FORMat", Choice(("MEAN", "SDEViation", "MAXimum", "MINimum", "PKPK")),
                 key="calc3_format"),
            Node(":CALCulate3:DATA", query=calc3, settable=False),
            Node(":TRIGger:COUNt", Int(1, 2500, 1), key="trig_count"),
            Node(":TRIGger[:SEQuence[1]]:DELay", Num(0, 999.9999, 0.0), key="trig_delay"),
            Node(":TRIGger[:SEQuence[1]]:SOURce", Choice(("IMMediate", "TLINk")), key="trig_source"),
            Node(":TRIGger[:SEQuence[1]]:INPut", Choice(("SOURce", "DELay", "SENSe", "NONE")), key="trig_input",
                 default="NONE"),
            Node(":TRIGger[:SEQuence[1]]:OUTPut", Choice(("NONE", "SOURce", "DELay", "SENSe")), key="trig_output"),
            Node(":TRIGger[:SEQuence[1]]:ILINe", Int(1, 4, 1), key="trig_iline"),
            Node(":TRIGger[:SEQuence[1]]:OLINe", Int(1, 4, 2), key="trig_oline"),
            Node(":TRIGger:CLEar", action=lambda c: None, queryable=False),
            Node(":ARM[:SEQuence[1]]:COUNt", Int(1, 2500, 1), key="arm_count"),
            Node(":ARM[:SEQuence[1]]:SOURce", Choice(("IMMediate", "TIMer", "MANual", "BUS", "TLINk", "NSTest",
                                                       "PSTest", "BSTest")), key="arm_source"),
            Node(":ARM[:SEQuence[1]]:TIMer", Num(0.001, 99999.99, 0.1), key="arm_timer"),
            Node(":ARM[:SEQuence[1]]:OUTPut", Choice(("NONE", "TENTer", "TEXit")), key="arm_output"),
            Node(":ARM[:SEQuence[1]]:ILINe", Int(1, 4, 1), key="arm_iline"),
            Node(":ARM[:SEQuence[1]]:OLINe", Int(1, 4, 2), key="arm_oline"),
            Node("*TRG", action=lambda c: None, queryable=False),
            Node(":SYSTem:AZERo[:STATe]", OnOffOnce(), key="azero", default="ON"),
            Node(":SYSTem:RSENse", Bool(), key="rsense"),
            Node(":SYSTem:LFRequency", Int(50, 60, 60), key="lfreq", default=50,
                 on_set=lambda c, v: None if v in (50, 60) else (_ for _ in ()).throw(
                     ScpiError(-224, "Illegal parameter value"))),
            Node(":SYSTem:LFRequency:AUTO", Bool(), key="lfreq_auto"),
            Node(":SYSTem:BEEPer[:IMMediate]", action=lambda c: None, queryable=False),
            Node(":SYSTem:TIME", query=lambda c: _fmt2400(self.clock.now), settable=False),
            Node(":SYSTem:TIME:RESet", action=lambda c: None, queryable=False),
            Node(":SYSTem:VERSion", query=lambda c: "1999.0", settable=False),
            Node(":SYSTem:PRESet", action=lambda c: self.reset_settings(), queryable=False),
            Node(":DISPlay:ENABle", Bool(), key="display", default=True),
            Node(":ROUTe:TERMinals", Choice(("FRONt", "REAR")), key="terminals"),
        ]
        self._extra_defaults = {"sense": ["CURR"], "elements": list(self.ELEMENTS)}
        return nodes

    def reset_settings(self) -> None:
        super().reset_settings()
        for c in self.ch:
            c.s.update({k: list(v) for k, v in self._extra_defaults.items()})


class Keithley2450Emulator(ScpiSmuEmulator):
    """Keithley 2450 SourceMeter, native SCPI command set (one channel, named reading buffers)."""

    MODEL = SmuModel("KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b", 210.0, 1.05, 1, 100000,
                     v_ranges=(0.02, 0.2, 2.0, 20.0, 200.0),
                     i_ranges=(1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0))
    ERROR_QUEUE_DEPTH = 100

    def _reset_model(self) -> None:
        self.buffers: dict[str, list[Reading]] = {"defbuffer1": [], "defbuffer2": []}
        self.capacity: dict[str, int] = {"defbuffer1": 100000, "defbuffer2": 100000}
        self.sweep: dict[str, Any] | None = None
        for c in self.ch:
            c.s["sense"] = "CURR"

    # -- buffers -----------------------------------------------------------------------------------
    def _buffer(self, name: str | None) -> tuple[str, list[Reading]]:
        key = (name or "defbuffer1").strip().strip("'\"")
        if key not in self.buffers:
            raise ScpiError(-224, "Illegal parameter value")  # buffer name does not exist
        return key, self.buffers[key]

    def _store(self, name: str, readings: list[Reading]) -> None:
        buf, cap = self.buffers[name], self.capacity[name]
        buf.extend(readings)
        if len(buf) > cap:
            del buf[: len(buf) - cap]

    def _elements(self, readings: list[Reading], names: list[str]) -> str:
        s = self.ch[0].s
        fields = [Choice(("READing", "SOURce", "RELative", "SEConds", "FRACtional", "UNIT", "SOURUNIT", "STATus",
                          "SOURSTATus", "TSTamp", "DATE", "TIME", "FORMatted", "SOURFORMatted")).parse(n)
                  for n in names] or ["READ"]
        t0 = readings[0].t if readings else 0.0
        out = []
        for r in readings:
            meas = r.i if s["sense"] == "CURR" else r.v if s["sense"] == "VOLT" else (r.v / r.i if r.i else NAN_READING)
            src = r.v if s["func"] == "VOLT" else r.i
            unit = {"CURR": "Amp DC", "VOLT": "Volt DC", "RES": "Ohm"}[s["sense"]]
            for f in fields:
                out.append({
                    "READ": fmt_e(meas), "SOUR": fmt_e(src), "REL": fmt_e(r.t - t0), "SEC": f"{int(r.t)}",
                    "FRAC": fmt_e(r.t - int(r.t)), "UNIT": unit, "SOURUNIT": "Volt DC" if s["func"] == "VOLT"
                    else "Amp DC", "STAT": "0", "SOURSTAT": "8" if r.tripped else "0",
                    "TST": f"01/01/2026 00:00:{r.t:012.9f}", "DATE": "01/01/2026",
                    "TIME": f"00:00:{r.t:012.9f}", "FORM": f"{meas:+.5E}", "SOURFORM": f"{src:+.5E}",
                }[f])
        return ",".join(out)

    def _split_buffer_args(self, args: str) -> tuple[str | None, list[str]]:
        parts = split_args(args)
        name = parts[0] if parts and parts[0][:1] in "'\"" else None
        return name, parts[1:] if name is not None else parts

    def _take(self, name: str | None, count: int | None = None) -> list[Reading]:
        c = self.ch[0]
        key, _ = self._buffer(name)
        readings = [self._read(c) for _ in range(int(count or c.s["count"]))]
        self._store(key, readings)
        return readings

    def _nodes(self) -> list[Node]:
        m = self.MODEL
        vmax, imax = m.max_v, m.max_i

        def read(call: Call) -> str:
            name, elems = self._split_buffer_args(call.args)
            return self._elements(self._take(name), elems)

        def measure(func: str | None):
            def f(call: Call) -> str:
                if func is not None:
                    self.ch[0].s["sense"] = func
                return read(call)
            return f

        def fetch(call: Call) -> str:
            name, elems = self._split_buffer_args(call.args)
            _, buf = self._buffer(name)
            if not buf:
                raise ScpiError(-230, "Data corrupt or stale")
            return self._elements(buf[-1:], elems)

        def sense_set(call: Call) -> None:
            funcs = _sense_functions(call.args)
            if len(funcs) != 1:
                raise ScpiError(-108, "Parameter not allowed")
            self.ch[0].s["sense"] = funcs[0]

        def trace_make(call: Call) -> None:
            parts = split_args(call.args)
            if len(parts) < 2:
                raise ScpiError(-109, "Missing parameter")
            name = Text().parse(parts[0])
            if not name or name in self.buffers:
                raise ScpiError(-224, "Illegal parameter value")
            size = int(Int(1, 10_000_000, 1000).parse(parts[1]))
            self.buffers[name], self.capacity[name] = [], size

        def trace_delete(call: Call) -> None:
            name = Text().parse(call.args)
            if name in ("defbuffer1", "defbuffer2") or name not in self.buffers:
                raise ScpiError(-224, "Illegal parameter value")
            del self.buffers[name], self.capacity[name]

        def trace_points_set(call: Call) -> None:
            parts = split_args(call.args)
            if not parts:
                raise ScpiError(-109, "Missing parameter")
            key, buf = self._buffer(parts[1] if len(parts) > 1 else None)
            size = int(Int(1 if key not in ("defbuffer1", "defbuffer2") else 10, 10_000_000, 100000).parse(parts[0]))
            self.capacity[key] = size
            buf.clear()

        def trace_points_query(call: Call) -> str:
            key, _ = self._buffer(call.args or None)
            return str(self.capacity[key])

        def trace_actual(call: Call) -> str:
            return str(len(self._buffer(call.args or None)[1]))

        def trace_clear(call: Call) -> None:
            self._buffer(call.args or None)[1].clear()

        def trace_data(call: Call) -> str:
            parts = split_args(call.args)
            if len(parts) < 2:
                raise ScpiError(-109, "Missing parameter")
            first, last = int(parse_number(parts[0])), int(parse_number(parts[1]))
            name = parts[2] if len(parts) > 2 else None
            _, buf = self._buffer(name)
            if not 1 <= first <= last <= len(buf):
                raise ScpiError(-222, "Data out of range")
            return self._elements(buf[first - 1: last], parts[3:])

        def stat(fn):
            def f(call: Call) -> str:
                _, buf = self._buffer(call.args or None)
                s = self.ch[0].s
                vals = np.array([r.i if s["sense"] == "CURR" else r.v for r in buf])
                return fmt_e(float(fn(vals))) if vals.size else fmt_e(NAN_READING)
            return f

        def lin_sweep(func: str):
            def f(call: Call) -> None:
                parts = split_args(call.args)
                if len(parts) < 3:
                    raise ScpiError(-109, "Missing parameter")
                hi = vmax if func == "VOLT" else imax
                start, stop = Num(-hi, hi).parse(parts[0]), Num(-hi, hi).parse(parts[1])
                points = int(Int(2, 1_000_000, 2).parse(parts[2]))
                delay = Num(-1, 10_000, -1).parse(parts[3]) if len(parts) > 3 else -1.0
                count = int(Int(1, 268_435_455, 1).parse(parts[4])) if len(parts) > 4 else 1
                buffer = Text().parse(parts[8]) if len(parts) > 8 else "defbuffer1"
                self._buffer(buffer)
                self.ch[0].s["func"] = func
                self.sweep = {"func": func, "values": np.linspace(start, stop, points), "count": count,
                              "delay": max(delay, 0.0), "buffer": buffer}
            return f

        def init(call: Call) -> None:
            c = self.ch[0]
            if self.sweep is None:
                self._take(None)
                return
            sw, self.sweep = self.sweep, None
            key = "level_v" if sw["func"] == "VOLT" else "level_i"
            level, was_on = c.s[key], c.output
            c.output = True
            readings = []
            for _ in range(sw["count"]):
                for x in sw["values"]:
                    c.s[key] = float(x)
                    self.clock.advance(sw["delay"])
                    readings.append(self._read(c))
            c.s[key] = level
            c.output = was_on
            self.buffers[sw["buffer"]].clear()  # a sweep's trigger model starts with its buffer cleared
            self._store(sw["buffer"], readings)

        def trip(call: Call) -> str:
            return "1" if self.ch[0].tripped else "0"

        def status_clear(call: Call) -> None:
            self.clear_status()

        def sense_nodes(func: str) -> list[Node]:
            hi = {"CURR": imax, "VOLT": vmax, "RES": 2e8}[func]
            base = {"CURR": ":SENSe[1]:CURRent[:DC]", "VOLT": ":SENSe[1]:VOLTage[:DC]",
                    "RES": ":SENSe[1]:RESistance"}[func]
            f = func.lower()
            return [
                Node(f"{base}:NPLCycles", Num(0.01, 10, 1.0), key="nplc"),
                Node(f"{base}:RANGe[:UPPer]", Num(-hi, hi, hi), key=f"sense_{f}_range"),
                Node(f"{base}:RANGe:AUTO", Bool(), key=f"sense_{f}_auto", default=True),
                Node(f"{base}:AZERo[:STATe]", Bool(), key=f"sense_{f}_azero", default=True),
                Node(f"{base}:RSENse", Bool(), key=f"sense_{f}_rsense"),
                Node(f"{base}:AVERage[:STATe]", Bool(), key=f"sense_{f}_average"),
                Node(f"{base}:AVERage:COUNt", Int(1, 100, 10), key=f"sense_{f}_average_count"),
                Node(f"{base}:AVERage:TCONtrol", Choice(("REPeat", "MOVing")), key=f"sense_{f}_average_tcontrol"),
                Node(f"{base}:DELay:USER&", Num(0, 10_000, 0.0), key=f"sense_{f}_user_delay"),
            ]

        def source_nodes(func: str) -> list[Node]:
            hi = vmax if func == "VOLT" else imax
            base = ":SOURce[1]:VOLTage" if func == "VOLT" else ":SOURce[1]:CURRent"
            ranges = m.v_ranges if func == "VOLT" else m.i_ranges
            limit = (Node(f"{base}:ILIMit[:LEVel]", Num(-imax, imax, 1.05e-4), key="comp_i") if func == "VOLT" else
                     Node(f"{base}:VLIMit[:LEVel]", Num(-vmax, vmax, 21.0), key="comp_v"))
            lim = "ILIMit" if func == "VOLT" else "VLIMit"
            f = func.lower()
            return [
                self._level_node(f"{base}[:LEVel][:IMMediate][:AMPLitude]", func, -hi, hi, ranges),
                *self._range_nodes(base, func, ranges),
                limit,
                Node(f"{base}:{lim}[:LEVel]:TRIPped", query=trip, settable=False),
                Node(f"{base}:DELay", Num(0, 10_000, 0.0), key=f"sour_{f}_delay"),
                Node(f"{base}:DELay:AUTO", Bool(), key=f"sour_{f}_delay_auto", default=True),
                Node(f"{base}:DELay:USER&", Num(0, 10_000, 0.0), key=f"sour_{f}_user_delay"),
                Node(f"{base}:READ:BACK", Bool(), key=f"sour_{f}_readback", default=True),
                Node(f"{base}:HIGH:CAPacitance", Bool(), key=f"sour_{f}_highc"),
                Node(f":OUTPut[1]:{'VOLTage' if func == 'VOLT' else 'CURRent'}:SMODe",
                     Choice(("NORMal", "HIMPedance", "ZERO", "GUARd")), key=f"off_mode_{f}"),
            ]

        return [
            Node("*LANG", Choice(("SCPI", "TSP", "SCPI2400")), key="lang"),
            Node(":SOURce[1]:FUNCtion[:MODE]", Choice(("VOLTage", "CURRent")), key="func"),
            *source_nodes("VOLT"),
            *source_nodes("CURR"),
            Node(":SOURce[1]:SWEep:VOLTage:LINear", action=lin_sweep("VOLT"), queryable=False),
            Node(":SOURce[1]:SWEep:CURRent:LINear", action=lin_sweep("CURR"), queryable=False),
            Node(":SENSe[1]:FUNCtion[:ON]", action=sense_set,
                 query=lambda c: f'"{SENSE_NAMES[self.ch[0].s["sense"]]}"'),
            *sense_nodes("CURR"),
            *sense_nodes("VOLT"),
            *sense_nodes("RES"),
            Node(":SENSe[1]:COUNt", Int(1, 300_000, 1), key="count"),
            Node(":SENSe[1]:AZERo:ONCE", action=lambda c: None, queryable=False),
            Node(":OUTPut[1][:STATe]", Bool(), key="output_state",
                 on_set=lambda c, v: setattr(self.ch[0], "output", v),
                 query=lambda c: "1" if self.ch[0].output else "0"),
            Node(":ROUTe:TERMinals", Choice(("FRONt", "REAR")), key="terminals"),
            Node(":FORMat[:DATA]", Choice(("ASCii",)), key="form_data"),
            Node(":READ", query=read, settable=False),
            Node(":FETCh", query=fetch, settable=False),
            Node(":MEASure", query=measure(None), settable=False),
            Node(":MEASure:CURRent[:DC]", query=measure("CURR"), settable=False),
            Node(":MEASure:VOLTage[:DC]", query=measure("VOLT"), settable=False),
            Node(":MEASure:RESistance", query=measure("RES"), settable=False),
            Node(":INITiate[:IMMediate]", action=init, queryable=False),
            Node(":ABORt", action=lambda c: setattr(self, "sweep", None), queryable=False),
            Node("*TRG", action=lambda c: None, queryable=False),
            Node(":TRACe:MAKE", action=trace_make, queryable=False),
            Node(":TRACe:DELete", action=trace_delete, queryable=False),
            Node(":TRACe:POINts", action=trace_points_set, query=trace_points_query),
            Node(":TRACe:ACTual", query=trace_actual, settable=False),
            Node(":TRACe:CLEar", action=trace_clear, queryable=False),
            Node(":TRACe:DATA", query=trace_data, settable=False),
            Node(":TRACe:TRIGger", action=lambda c: self._take(c.args or None, 1) and None, queryable=False),
            Node(":TRACe:STATistics:AVERage", query=stat(np.mean), settable=False),
            Node(":TRACe:STATistics:MAXimum", query=stat(np.max), settable=False),
            Node(":TRACe:STATistics:MINimum", query=stat(np.min), settable=False),
            Node(":TRACe:STATistics:PK2Pk", query=stat(np.ptp), settable=False),
            Node(":TRACe:STATistics:STDDev", query=stat(lambda a: np.std(a, ddof=1) if a.size > 1 else 0.0),
                 settable=False),
            Node(":STATus:CLEar", action=status_clear, queryable=False),
            Node(":SYSTem:CLEar", action=lambda c: self.errors.clear(), queryable=False),
            Node(":SYSTem:LFRequency", query=lambda c: "50", settable=False),
            Node(":SYSTem:BEEPer[:IMMediate]", action=lambda c: None, queryable=False),
        ]


class KeysightB2900Emulator(ScpiSmuEmulator):
    """Keysight B2902A precision SMU (SCPI, channels 1 and 2)."""

    MODEL = SmuModel("Keysight Technologies,B2902A,MY51140001,4.0.2047.6013", 210.0, 3.03, 2, 100000,
                     v_ranges=(0.2, 2.0, 20.0, 200.0),
                     i_ranges=(1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1.5, 3.0))
    ERROR_QUEUE_DEPTH = 30

    def _reset_model(self) -> None:
        self.results: list[list[Reading]] = [[] for _ in self.ch]

    def next_error(self) -> str:
        if not self.errors:
            return '+0,"No error"'
        code, msg = self.errors.pop(0)
        return f'{code:+d},"{msg}"'

    def _acquire(self, idx: int) -> list[Reading]:
        c = self.ch[idx]
        if not c.output:
            if not c.s["auto_on"]:
                self.results[idx] = [self._read(c)]
                return self.results[idx]
            c.output = True  # :OUTP:ON:AUTO (on by default) turns the output on for a measurement
        readings = self._run_readings(c, int(c.s["trig_count"]) * int(c.s["arm_count"]))
        if c.s["auto_off"]:
            c.output = False
        self.results[idx] = readings
        return readings

    def _spot(self, idx: int) -> list[Reading]:
        """A spot measurement (``:MEAS?``, ``:READ?``): one reading, output auto-on as for ``:INIT``."""
        c = self.ch[idx]
        if not c.output and c.s["auto_on"]:
            c.output = True
        self.results[idx] = [self._read(c)]
        if c.s["auto_off"]:
            c.output = False
        return self.results[idx]

    def _format(self, idx: int, readings: list[Reading], what: str | None) -> str:
        if what is not None:
            col = {"VOLT": lambda r: r.v, "CURR": lambda r: r.i,
                   "RES": lambda r: r.v / r.i if r.i else NAN_READING, "TIME": lambda r: r.t,
                   "STAT": lambda r: 8.0 if r.tripped else 0.0,
                   "SOUR": lambda r: r.v if self.ch[idx].s["func"] == "VOLT" else r.i}[what]
            return ",".join(fmt_e(col(r)) for r in readings)
        elements = self.ch[0].s["elements"]
        return ",".join(self._format(idx, [r], e) for r in readings for e in elements)

    def _nodes(self) -> list[Node]:
        m = self.MODEL
        vmax, imax = m.max_v, m.max_i

        def init(call: Call) -> None:
            self._acquire(call.channel)

        def fetch(what: str | None, last: bool = False):
            def f(call: Call) -> str:
                res = self.results[call.channel]
                if not res:
                    raise ScpiError(-230, "Data corrupt or stale")
                return self._format(call.channel, res[-1:] if last else res, what)
            return f

        def measure(what: str | None, spot: bool = True):
            def f(call: Call) -> str:
                readings = self._spot(call.channel) if spot else self._acquire(call.channel)
                return self._format(call.channel, readings, what)
            return f

        def trip(call: Call) -> str:
            return "1" if self.ch[call.channel].tripped else "0"

        def aperture(call: Call, value: float) -> None:
            self.ch[call.channel].s["nplc"] = value * 50.0

        def nplc(call: Call, value: float) -> None:
            self.ch[call.channel].s["aperture"] = value / 50.0

        def elements(call: Call) -> None:
            names = [Choice(("VOLTage", "CURRent", "RESistance", "TIME", "STATus", "SOURce")).parse(x)
                     for x in split_args(call.args)]
            if not names:
                raise ScpiError(-109, "Missing parameter")
            for c in self.ch:
                c.s["elements"] = names

        def sense_set(call: Call) -> None:
            self.ch[call.channel].s["sense"] = _sense_functions(call.args)

        def sense_query(call: Call) -> str:
            return ",".join(f'"{f}"' for f in self.ch[call.channel].s["sense"])

        nodes = [
            Node(":SOURce#:FUNCtion[:MODE]", Choice(("VOLTage", "CURRent")), key="func"),
            self._level_node(":SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "VOLT", -vmax, vmax, m.v_ranges),
            self._level_node(":SOURce#:CURRent[:LEVel][:IMMediate][:AMPLitude]", "CURR", -imax, imax, m.i_ranges),
            *self._range_nodes(":SOURce#:VOLTage", "VOLT", m.v_ranges),
            *self._range_nodes(":SOURce#:CURRent", "CURR", m.i_ranges),
            Node(":SOURce#:VOLTage:MODE", Choice(("FIXed", "SWEep", "LIST")), key="v_mode"),
            Node(":SOURce#:CURRent:MODE", Choice(("FIXed", "SWEep", "LIST")), key="i_mode"),
            Node(":SOURce#:VOLTage:STARt", Num(-vmax, vmax, 0.0), key="v_start"),
            Node(":SOURce#:VOLTage:STOP", Num(-vmax, vmax, 0.0), key="v_stop"),
            Node(":SOURce#:VOLTage:STEP", Num(-2 * vmax, 2 * vmax, 0.0), key="v_step", on_set=self._sweep_step),
            Node(":SOURce#:VOLTage:POINts", Int(1, 100000, 1), key="sweep_points"),
            Node(":SOURce#:SWEep:POINts", Int(1, 100000, 1), key="sweep_points"),
            Node(":SOURce#:SWEep:SPACing", Choice(("LINear", "LOGarithmic")), key="sweep_spacing"),
            Node(":SOURce#:SWEep:DIRection", Choice(("UP", "DOWn")), key="sweep_direction"),
            Node(":SOURce#:LIST:VOLTage", FloatList(-vmax, vmax), key="v_list", default=[0.0]),
            Node(":SENSe#:CURRent[:DC]:PROTection[:LEVel]", Num(-imax, imax, 1e-4), key="comp_i"),
            Node(":SENSe#:VOLTage[:DC]:PROTection[:LEVel]", Num(-vmax, vmax, 2.0), key="comp_v"),
            Node(":SENSe#:CURRent[:DC]:PROTection:TRIPped", query=trip, settable=False),
            Node(":SENSe#:VOLTage[:DC]:PROTection:TRIPped", query=trip, settable=False),
            Node(":SENSe#:CURRent[:DC]:NPLCycles", Num(4e-4, 100, 1.0), key="nplc", on_set=nplc),
            Node(":SENSe#:VOLTage[:DC]:NPLCycles", Num(4e-4, 100, 1.0), key="nplc", on_set=nplc),
            Node(":SENSe#:CURRent[:DC]:APERture", Num(8e-6, 2.0, 0.02), key="aperture", on_set=aperture),
            Node(":SENSe#:VOLTage[:DC]:APERture", Num(8e-6, 2.0, 0.02), key="aperture", on_set=aperture),
            Node(":SENSe#:CURRent[:DC]:RANGe[:UPPer]", Num(-imax, imax, 1e-4), key="sense_i_range"),
            Node(":SENSe#:CURRent[:DC]:RANGe:AUTO", Bool(), key="sense_i_auto", default=True),
            Node(":SENSe#:VOLTage[:DC]:RANGe[:UPPer]", Num(-vmax, vmax, 2.0), key="sense_v_range"),
            Node(":SENSe#:VOLTage[:DC]:RANGe:AUTO", Bool(), key="sense_v_auto", default=True),
            Node(":SENSe#:FUNCtion[:ON]", action=sense_set, query=sense_query),
            Node(":SENSe#:REMote", Bool(), key="remote_sense"),
            Node(":OUTPut#[:STATe]", Bool(), key="output_state",
                 on_set=lambda c, v: setattr(self.ch[c.channel], "output", v),
                 query=lambda c: "1" if self.ch[c.channel].output else "0"),
            Node(":OUTPut#:ON:AUTO", Bool(), key="auto_on", default=True),
            Node(":OUTPut#:OFF:AUTO", Bool(), key="auto_off"),
            Node(":OUTPut#:OFF:MODE", Choice(("ZERO", "HIZ", "NORMal")), key="off_mode"),
            Node(":OUTPut#:PROTection[:STATe]", Bool(), key="out_protection"),
            Node(":TRIGger#[:ALL]:SOURce", Choice(("AINT", "BUS", "TIMer", "INT1", "INT2", "LAN", "EXT1", "EXT2")),
                 key="trig_source"),
            Node(":TRIGger#[:ALL]:COUNt", Int(1, 100000, 1), key="trig_count"),
            Node(":TRIGger#[:ALL]:DELay", Num(0, 100_000, 0.0), key="trig_delay"),
            Node(":TRIGger#[:ALL]:TIMer", Num(1e-5, 100_000, 1e-5), key="trig_timer"),
            Node(":ARM#[:ALL]:COUNt", Int(1, 100000, 1), key="arm_count"),
            Node(":ARM#[:ALL]:SOURce", Choice(("AINT", "BUS", "TIMer", "INT1", "INT2", "LAN", "EXT1", "EXT2")),
                 key="arm_source"),
            Node(":INITiate[:IMMediate][:ALL]", action=init, queryable=False),
            Node(":ABORt[:ALL]", action=lambda c: None, queryable=False),
            Node(":FETCh:ARRay[:VOLTage]", query=fetch("VOLT"), settable=False),
            Node(":FETCh:ARRay:CURRent", query=fetch("CURR"), settable=False),
            Node(":FETCh:ARRay:RESistance", query=fetch("RES"), settable=False),
            Node(":FETCh:ARRay:TIME", query=fetch("TIME"), settable=False),
            Node(":FETCh:ARRay:SOURce", query=fetch("SOUR"), settable=False),
            Node(":FETCh:ARRay:STATus", query=fetch("STAT"), settable=False),
            Node(":FETCh:ARRay:ALL", query=fetch(None), settable=False),
            Node(":FETCh[:SCALar]:VOLTage", query=fetch("VOLT", last=True), settable=False),
            Node(":FETCh[:SCALar]:CURRent", query=fetch("CURR", last=True), settable=False),
            Node(":FETCh[:SCALar]:RESistance", query=fetch("RES", last=True), settable=False),
            Node(":FETCh[:SCALar]", query=fetch(None, last=True), settable=False),
            Node(":READ[:SCALar]", query=measure(None), settable=False),
            Node(":READ:ARRay", query=measure(None, spot=False), settable=False),
            Node(":MEASure[:SCALar]", query=measure(None), settable=False),
            Node(":MEASure[:SCALar]:CURRent[:DC]", query=measure("CURR"), settable=False),
            Node(":MEASure[:SCALar]:VOLTage[:DC]", query=measure("VOLT"), settable=False),
            Node(":MEASure[:SCALar]:RESistance", query=measure("RES"), settable=False),
            Node(":FORMat[:DATA]", Choice(("ASCii",)), key="form_data"),
            Node(":FORMat:ELEMents:SENSe", action=elements, query=lambda c: ",".join(self.ch[0].s["elements"])),
            Node(":SYSTem:LFRequency", Int(50, 60, 50), key="lfreq", default=50),
            Node(":SYSTem:BEEPer[:IMMediate]", action=lambda c: None, queryable=False),
        ]
        self._b2900_defaults = {"elements": ["VOLT", "CURR", "RES", "TIME", "STAT", "SOUR"],
                                "sense": ["VOLT", "CURR"]}
        return nodes

    def reset_settings(self) -> None:
        super().reset_settings()
        for c in self.ch:
            c.s.update({k: list(v) for k, v in self._b2900_defaults.items()})
