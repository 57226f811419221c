"""Emulated Keysight B2902A: its SCPI command table (B2900 SCPI Command Reference)."""

from __future__ import annotations

from xbarlab.sim.scpi_tree import Bool, Call, Choice, Discrete, Int, Node, Num, ScpiError, fmt_e, split_args
from xbarlab.sim.smu_engine import Reading, SmuModel
from xbarlab.sim.smu_scpi_base import NAN_READING, FloatList, ScpiSmuEmulator, sense_functions


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

    def _spot(self, idx: int, auto_on: bool) -> list[Reading]:
        """A spot measurement: one reading. ``:READ?`` turns the output on under ``:OUTP:ON:AUTO`` (as ``:INIT``
        does); ``:MEAS?`` is not listed for auto-on and reads the terminals as they are."""
        c = self.ch[idx]
        if not c.output and auto_on and c.s["auto_on"]:
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

        def measure(what: str | None, spot: bool = True, auto_on: bool = False):
            def f(call: Call) -> str:
                readings = self._spot(call.channel, auto_on) if spot else self._acquire(call.channel)
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
            self.ch[call.channel].s["sense"] = sense_functions(call.args)

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
            Node(":READ[:SCALar]", query=measure(None, auto_on=True), settable=False),
            Node(":READ:ARRay", query=measure(None, spot=False), settable=False),
            Node(":MEASure[:SCALar]", query=measure(None), settable=False),
            Node(":MEASure[:SCALar]:CURRent[:DC]", query=measure("CURR"), settable=False),
            Node(":MEASure[:SCALar]:VOLTage[:DC]", query=measure("VOLT"), settable=False),
            Node(":MEASure[:SCALar]:RESistance", query=measure("RES"), settable=False),
            Node(":FORMat[:DATA]", Choice(("ASCii",)), key="form_data"),
            Node(":FORMat:ELEMents:SENSe", action=elements, query=lambda c: ",".join(self.ch[0].s["elements"])),
            Node(":SYSTem:LFRequency", Discrete((50, 60)), key="lfreq"),
            Node(":SYSTem:BEEPer[:IMMediate]", action=lambda c: None, queryable=False),
        ]
        self._b2900_defaults = {"elements": ["VOLT", "CURR", "RES", "TIME", "STAT", "SOUR"],
                                "sense": ["VOLT", "CURR"]}
        return nodes

    def reset_settings(self) -> None:
        super().reset_settings()
        for c in self.ch:
            c.s.update({k: list(v) for k, v in self._b2900_defaults.items()})
