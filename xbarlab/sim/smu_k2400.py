"""Emulated Keithley 2400 SourceMeter: its SCPI command table (2400 Series User's Manual §18)."""

from __future__ import annotations

import numpy as np

from xbarlab.sim.scpi_tree import Bool, Call, Choice, Discrete, Int, Node, Num, ScpiError, split_args
from xbarlab.sim.smu_engine import Reading, SmuModel
from xbarlab.sim.smu_scpi_base import NAN_READING, SENSE_NAMES, FloatList, OnOffOnce, ScpiSmuEmulator, sense_functions


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
            self.ch[0].s["sense"] = sense_functions(call.args)

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
            Node(":SYSTem:LFRequency", Discrete((50, 60)), key="lfreq"),
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
