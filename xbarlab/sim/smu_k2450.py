"""Emulated Keithley 2450 SourceMeter: its native SCPI command table (2450 Reference Manual §6)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.sim.scpi_tree import Bool, Call, Choice, Int, Node, Num, ScpiError, Text, fmt_e, parse_number, split_args
from xbarlab.sim.smu_engine import Reading, SmuModel
from xbarlab.sim.smu_scpi_base import NAN_READING, SENSE_NAMES, ScpiSmuEmulator, sense_functions


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
            funcs = sense_functions(call.args)
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
