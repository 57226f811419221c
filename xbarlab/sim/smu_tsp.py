"""Emulated Keithley 2600B System SourceMeter (TSP) on a real Lua interpreter (lupa, Lua 5.4).

Every line the host sends is one Lua chunk, run as the instrument runs it: several statements,
functions, loops, locals. The 2600B object model (``smua``/``smub`` with ``source``, ``measure``,
``nvbuffer1/2``, ``trigger``; ``errorqueue``, ``status``, ``localnode``, ``format``, ``timer``,
``reset()``, ``waitcomplete()``, ``delay()``, ``printbuffer``) is a Lua prelude
(``tsp_prelude.lua``) over the state kept here; the factory sweep scripts (``SweepVLinMeasureI``,
``SweepILinMeasureV``, ``SweepVListMeasureI``, ``SweepIListMeasureV``) ship in the prelude too.
Reference: Series 2600B Reference Manual (2600BS-901-01).

Errors go to the error queue with the instrument's codes: -285 "TSP Syntax error at line N: ...",
-286 "TSP Runtime error at line N: ...", 1100 "Parameter too big" for a value beyond the model's
rating, 5007 "Source range exceeded" for a level beyond a fixed source range. A chunk that fails
prints nothing (its partial output is dropped), so a failed or aborted chunk never leaves stray
lines that the next query would read.

Bounded run time: a count hook (every 1000 Lua instructions, also installed in coroutines, and
re-raised through ``pcall``) aborts a chunk after ``time_limit`` s of wall time; the chunk's error
is -286 "... script exceeded the emulator time limit". ``delay()`` advances the simulated clock,
never sleeps. The interpreter has no ``os``, ``io``, ``package``, ``debug`` or file loading, and
Lua code cannot reach Python attributes.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from typing import Any

import numpy as np

from xbarlab.sim.clock import SimClock
from xbarlab.sim.emulator import LineEmulator
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.smu_engine import Channel, SmuModel, SourceMeasure, pick_range
from xbarlab.sim.terminals import SmuTerminal

IDENTITY = "Keithley Instruments Inc., Model 2636B, 4321234, 3.3.5"
TIME_LIMIT = 10.0  # s of wall time per chunk (an endless loop ends here; real scripts finish well before)
ERROR_QUEUE_DEPTH = 100
_TIMEOUT_MARK = "xbarlab-tsp-time-limit"


class TspError(Exception):
    """An instrument error raised from an attribute or function (code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Timeout(Exception):
    pass


SOURCE_DEFAULTS: dict[str, float] = {
    "func": 1.0, "levelv": 0.0, "leveli": 0.0, "limitv": 20.0, "limiti": 0.1, "limitp": 1e30,
    "rangev": 0.2, "rangei": 1e-7, "autorangev": 1.0, "autorangei": 1.0, "lowrangev": 0.2, "lowrangei": 1e-7,
    "output": 0.0, "offmode": 0.0, "offfunc": 1.0, "offlimiti": 1e-3, "offlimitv": 40.0, "delay": 0.0,
    "highc": 0.0, "settling": 0.0, "sink": 0.0,
}
MEASURE_DEFAULTS: dict[str, float] = {
    "nplc": 1.0, "autozero": 2.0, "count": 1.0, "interval": 0.0, "delay": 0.0, "delayfactor": 1.0,
    "rangev": 0.2, "rangei": 1e-7, "autorangev": 1.0, "autorangei": 1.0, "lowrangev": 0.2, "lowrangei": 1e-7,
    "rel.enablev": 0.0, "rel.enablei": 0.0, "filter.enable": 0.0, "filter.count": 1.0, "filter.type": 1.0,
}
TRIGGER_DEFAULTS: dict[str, dict[str, float]] = {
    "trigger": {"count": 1.0, "initiated": 0.0, "autoclear": 0.0, "timeout": 0.0},
    "trigger.source": {"action": 0.0, "limitv": 0.0, "limiti": 0.0, "stimulus": 0.0},
    "trigger.measure": {"action": 0.0, "stimulus": 0.0},
    "trigger.arm": {"count": 1.0, "stimulus": 0.0},
    "trigger.endpulse": {"action": 1.0, "stimulus": 0.0},
    "trigger.endsweep": {"action": 0.0},
}
BUFFER_FIELDS = ("appendmode", "collectsourcevalues", "collecttimestamps", "fillmode", "timestampresolution")


class _Buffer:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.readings: list[float] = []
        self.sourcevalues: list[float] = []
        self.timestamps: list[float] = []
        self.fields: dict[str, float] = dict.fromkeys(BUFFER_FIELDS, 0.0)
        self.fields["collecttimestamps"] = 1.0
        self.fields["collectsourcevalues"] = 1.0

    def clear(self) -> None:
        self.readings.clear()
        self.sourcevalues.clear()
        self.timestamps.clear()

    def append(self, value: float, source: float, t: float) -> None:
        if len(self.readings) >= self.capacity:
            return
        self.readings.append(value)
        self.sourcevalues.append(source)
        self.timestamps.append(t)


class Keithley2600Emulator(LineEmulator):
    """Keithley 2636B with channels ``smua`` and ``smub``."""

    MODEL = SmuModel(IDENTITY, 202.0, 1.515, 2, 60000, v_ranges=(0.2, 2.0, 20.0, 200.0),
                     i_ranges=(1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1.5), overrange=1.01)

    def __init__(self, clock: SimClock | None = None, seed: int = 0, faults: FaultPlan | None = None,
                 time_limit: float = TIME_LIMIT) -> None:
        super().__init__(faults)
        self.clock = clock or SimClock()
        self.engine = SourceMeasure(self.clock, seed)
        self.time_limit = time_limit
        self._terminals = [SmuTerminal(), SmuTerminal()]
        self._script: list[str] | None = None
        self._script_name: str | None = None
        self._deadline = float("inf")
        self._out: list[bytes] = []
        self.power_on_reset()

    def terminal(self, channel: str | int | None = None) -> SmuTerminal:
        mapping = {None: 0, "a": 0, "b": 1, "smua": 0, "smub": 1}
        if channel not in mapping:
            raise ValueError(f"2636B has no channel {channel!r}; expected 'a' or 'b'")
        return self._terminals[mapping[channel]]

    # -- state ---------------------------------------------------------------------------------
    def power_on_reset(self) -> None:
        self.errors: list[tuple[int, str]] = []
        self.esr, self.ese, self.sre = 128, 0, 0
        self.format: dict[str, float] = {"data": 1.0, "asciiprecision": 6.0, "byteorder": 1.0}
        self.node: dict[str, Any] = {"prompts": 0.0, "showerrors": 0.0, "linefreq": 50.0, "autolinefreq": 0.0}
        self.timer_zero = self.clock.now
        self._reset_channels()
        self._start_lua()

    def _reset_channels(self) -> None:
        self.ch = [Channel(t) for t in self._terminals]
        for c in self.ch:
            self._reset_channel(c)

    def _reset_channel(self, c: Channel) -> None:
        c.output = False
        c.tripped = False
        c.s = {"source": dict(SOURCE_DEFAULTS), "measure": dict(MEASURE_DEFAULTS),
               **{k: dict(v) for k, v in TRIGGER_DEFAULTS.items()}}
        n = self.MODEL.buffer_points
        c.s["buffers"] = {"nvbuffer1": _Buffer(n), "nvbuffer2": _Buffer(n)}
        c.s["sweep"] = {"v": None, "i": None}
        c.s["trigger_measure"] = None
        c.s["meas_event"] = 0

    def _start_lua(self) -> None:
        import lupa.lua54 as lupa

        def deny(obj: Any, attr: Any, is_setting: bool) -> Any:
            raise AttributeError("not accessible from TSP")

        self._lupa = lupa
        lua = lupa.LuaRuntime(register_eval=False, register_builtins=False, unpack_returned_tuples=True,
                              max_memory=64 * 2**20, attribute_filter=deny)
        g = lua.globals()
        g._py = lua.table_from(self._callbacks())
        g._timeout_mark = _TIMEOUT_MARK
        lua.execute(_SANDBOX)
        lua.execute(resources.files("xbarlab.sim").joinpath("tsp_prelude.lua").read_text())
        self.lua = lua

    # -- interface ---------------------------------------------------------------------------------
    def handle_line(self, line: str) -> bytes | None:
        text = line.strip()
        if self._script is not None:
            if text == "endscript":
                body, name, self._script, self._script_name = "\n".join(self._script), self._script_name, None, None
                if name is None:
                    return self._run(body)
                return self._run(f"{name} = function()\n{body}\nend")
            self._script.append(line)
            return None
        m = re.fullmatch(r"(loadandrunscript|loadscript)(?:\s+([A-Za-z_]\w*))?", text)
        if m:
            self._script = []
            self._script_name = m.group(2) if m.group(1) == "loadscript" else None
            return None
        if text.startswith("*"):
            return self._common(text)
        return self._run(line) if text else None

    def _common(self, text: str) -> bytes | None:
        cmd = text.upper()
        if cmd == "*IDN?":
            return IDENTITY.encode()
        if cmd == "*RST":
            self._reset_all()
        elif cmd == "*CLS":
            self._clear_status()
        elif cmd == "*OPC?":
            return b"1"
        elif cmd in ("*OPC", "*WAI", "*TRG"):
            if cmd == "*OPC":
                self.esr |= 1
        elif cmd == "*ESR?":
            value, self.esr = self.esr, 0
            return str(value).encode()
        elif cmd == "*STB?":
            return str(self._status_byte()).encode()
        else:
            self._push_error(-285, f"TSP Syntax error at line 1: unexpected symbol near '{text[:10]}'")
        return None

    def _run(self, chunk: str) -> bytes | None:
        self._out = []
        self._deadline = time.monotonic() + self.time_limit
        try:
            self.lua.execute(chunk)
        except self._lupa.LuaSyntaxError as exc:
            self._out = []
            self._push_error(-285, "TSP Syntax error " + _lua_message(str(exc)))
        except TspError as exc:
            self._out = []
            self._push_error(exc.code, exc.message)
        except _Timeout:
            self._out = []
            self._push_error(-286, "TSP Runtime error: script exceeded the emulator time limit "
                             f"({self.time_limit:g} s)")
        except self._lupa.LuaMemoryError:
            self._out = []
            self._push_error(-286, "TSP Runtime error: not enough memory")
        except self._lupa.LuaError as exc:
            self._out = []
            message = str(exc)
            if _TIMEOUT_MARK in message:
                self._push_error(-286, "TSP Runtime error: script exceeded the emulator time limit "
                                 f"({self.time_limit:g} s)")
            else:
                self._push_error(-286, "TSP Runtime error " + _lua_message(message))
        except Exception as exc:  # noqa: BLE001 - a Python error inside a callback is a runtime error
            self._out = []
            self._push_error(-286, f"TSP Runtime error: {exc}")
        finally:
            self._deadline = float("inf")
        out, self._out = self._out, []
        return b"\n".join(out) if out else None

    # -- errors and status -------------------------------------------------------------------------
    def _push_error(self, code: int, message: str) -> None:
        if len(self.errors) >= ERROR_QUEUE_DEPTH:
            self.errors[-1] = (-350, "Queue overflow")
        else:
            self.errors.append((code, message))
        self.esr |= 32 if -199 <= code <= -100 or code in (-285,) else 16

    def _clear_status(self) -> None:
        self.errors.clear()
        self.esr = 0
        for c in self.ch:
            c.s["meas_event"] = 0

    def _status_byte(self) -> int:
        stb = 0
        if any(c.s["meas_event"] for c in self.ch):
            stb |= 1
        if self.errors:
            stb |= 4
        if self.esr & self.ese:
            stb |= 32
        if stb & self.sre:
            stb |= 64
        return stb

    def _reset_all(self) -> None:
        for c in self.ch:
            self._reset_channel(c)
        self.format.update(data=1.0, asciiprecision=6.0)

    # -- the callbacks the Lua prelude calls -------------------------------------------------------------
    def _check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise _Timeout()

    def _callbacks(self) -> dict[str, Any]:
        return {
            "get": self._get, "set": self._set, "measure": self._measure_cb, "smu_reset": self._smu_reset,
            "buffer_clear": lambda ref: self._buffer(ref).clear(),
            "buffer_item": self._buffer_item, "buffer_get": self._buffer_get, "buffer_set": self._buffer_set,
            "make_buffer": self._make_buffer,
            "trigger_sweep": self._trigger_sweep, "trigger_list": self._trigger_list,
            "trigger_measure": self._trigger_measure, "trigger_initiate": self._trigger_initiate,
            "format": self._format_value, "output": self._out_line, "printbuffer": self._printbuffer,
            "error_count": lambda: len(self.errors), "error_next": self._error_next, "error_clear": self.errors.clear,
            "status_get": self._status_get, "status_set": self._status_set, "status_reset": self._status_reset,
            "node_get": self._node_get, "node_set": self._node_set, "reset_all": self._reset_all,
            "format_get": self._format_get, "format_set": self._format_set,
            "timer_reset": self._timer_reset, "timer_t": lambda: self.clock.now - self.timer_zero,
            "opc": self._opc, "delay": self._delay, "expired": lambda: time.monotonic() > self._deadline,
        }

    def _out_line(self, text: str) -> None:
        self._out.append(text.encode("latin-1", errors="replace"))

    def _opc(self) -> None:
        self.esr |= 1

    def _timer_reset(self) -> None:
        self.timer_zero = self.clock.now

    def _delay(self, seconds: Any) -> None:
        s = _num(seconds, "delay")
        if s < 0:
            raise TspError(1100, "Parameter too small")
        self.clock.advance(s)

    def _format_value(self, value: Any) -> str:
        if value is None:
            return "nil"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            digits = int(self.format["asciiprecision"])
            return f"{float(value):.{max(digits - 1, 0)}e}"
        if isinstance(value, (str, bytes)):
            return value.decode() if isinstance(value, bytes) else value
        return f"{type(value).__name__.lower().lstrip('_lua')}: 0x{id(value) & 0xFFFFFFF:08x}"

    def _chan(self, ch: Any) -> Channel:
        return self.ch[int(ch)]

    # smuX.source / smuX.measure / smuX.trigger.* attributes
    def _get(self, ch: int, group: str, key: Any) -> Any:
        c = self._chan(ch)
        if group == "source" and key == "compliance":
            return c.tripped
        if group == "source" and key == "output":
            return 1.0 if c.output else 0.0
        if group == "source" and key in ("rangev", "rangei"):
            return self._source_range(c, key[-1])
        table = c.s.get(group)
        if table is None or key not in table:
            return None
        return table[key]

    def _set(self, ch: int, group: str, key: Any, value: Any) -> None:
        c = self._chan(ch)
        table = c.s.get(group)
        if table is None or key not in table or (group == "source" and key == "compliance"):
            raise TspError(-286, f"TSP Runtime error at line 1: attempt to set unknown or read-only attribute '{key}'")
        x = _num(value, key)
        m = self.MODEL
        if group == "source":
            if key in ("levelv", "limitv", "rangev", "lowrangev", "offlimitv") and abs(x) > m.max_v:
                raise TspError(1100, "Parameter too big")
            if key in ("leveli", "limiti", "rangei", "lowrangei", "offlimiti") and abs(x) > m.max_i:
                raise TspError(1100, "Parameter too big")
            if key in ("levelv", "leveli"):
                self._check_range(c, key[-1], x)
            if key in ("rangev", "rangei"):
                unit = key[-1]
                table["auto" + key] = 0.0
                x = pick_range(m.v_ranges if unit == "v" else m.i_ranges, x)
            if key == "output":
                c.output = x == 1.0
                if not c.output:
                    c.tripped = False
            if key == "func" and x not in (0.0, 1.0):
                raise TspError(1100, "Parameter out of range")
        if group == "measure" and key == "nplc" and not 0.001 <= x <= 25:
            raise TspError(1100, "Parameter too big" if x > 25 else "Parameter too small")
        if group == "measure" and key == "count" and not 1 <= x <= self.MODEL.buffer_points:
            raise TspError(1100, "Parameter out of range")
        table[key] = x

    def _source_range(self, c: Channel, unit: str) -> float:
        src = c.s["source"]
        ranges = self.MODEL.v_ranges if unit == "v" else self.MODEL.i_ranges
        if src["autorange" + unit]:
            return pick_range(ranges, src["level" + unit])
        return src["range" + unit]

    def _check_range(self, c: Channel, unit: str, level: float) -> None:
        src = c.s["source"]
        if not src["autorange" + unit] and abs(level) > src["range" + unit] * self.MODEL.overrange:
            raise TspError(5007, "Source range exceeded")

    def _smu_reset(self, ch: int) -> None:
        self._reset_channel(self._chan(ch))

    # measurements
    def _reading(self, c: Channel) -> tuple[float, float, float]:
        self._check_time()
        src, meas = c.s["source"], c.s["measure"]
        func = "VOLT" if src["func"] == 1.0 else "CURR"
        level = src["levelv"] if func == "VOLT" else src["leveli"]
        limit = src["limiti"] if func == "VOLT" else src["limitv"]
        if meas["delay"] > 0:
            self.clock.advance(meas["delay"])
        r = self.engine.measure(c, func, level, limit, meas["nplc"])
        if r.tripped:
            c.s["meas_event"] |= 2 if func == "VOLT" else 1
        return r.v, r.i, r.t

    def _measure_cb(self, ch: int, what: str, buf1: str | None = None, buf2: str | None = None) -> Any:
        c = self._chan(ch)
        result: Any = None
        for _ in range(int(c.s["measure"]["count"])):
            v, i, t = self._reading(c)
            src = v if c.s["source"]["func"] == 1.0 else i
            values = {"i": (i,), "v": (v,), "r": (v / i if i else 9.91e37,), "p": (v * i,), "iv": (i, v)}[what]
            for ref, value in zip((buf1, buf2), values, strict=False):
                if ref is not None:
                    self._buffer(ref).append(value, src, t - self.timer_zero)
            result = values
        return result if what == "iv" else result[0]

    # buffers
    def _buffer(self, ref: str) -> _Buffer:
        """``"0:nvbuffer1"`` (channel index : buffer name) -> the buffer."""
        ch, _, name = str(ref).partition(":")
        try:
            return self._chan(int(ch)).s["buffers"][name]
        except (KeyError, ValueError, IndexError):
            raise TspError(-286, "TSP Runtime error: reading buffer does not exist") from None

    def _buffer_item(self, ref: str, column: str, index: Any) -> Any:
        data = getattr(self._buffer(ref), column)
        k = int(_num(index, "index"))
        if not 1 <= k <= len(data):
            return None
        return data[k - 1]

    def _buffer_get(self, ref: str, key: str) -> Any:
        b = self._buffer(ref)
        if key == "n":
            return float(len(b.readings))
        if key == "capacity":
            return float(b.capacity)
        return b.fields.get(key)

    def _buffer_set(self, ref: str, key: str, value: Any) -> None:
        b = self._buffer(ref)
        if key not in b.fields:
            raise TspError(-286, f"TSP Runtime error: attempt to set read-only buffer attribute '{key}'")
        b.fields[key] = _num(value, key)

    def _make_buffer(self, ch: int, n: Any) -> str:
        size = int(_num(n, "makebuffer"))
        if not 1 <= size <= self.MODEL.buffer_points:
            raise TspError(1100, "Parameter out of range")
        buffers = self._chan(ch).s["buffers"]
        name = f"buffer{len(buffers) + 1}"
        buffers[name] = _Buffer(size)
        return name

    def _printbuffer(self, first: Any, last: Any, refs: str) -> None:
        i0, i1 = int(_num(first, "printbuffer")), int(_num(last, "printbuffer"))
        columns = []
        for ref in refs.split(","):
            where, _, column = ref.partition("|")
            columns.append(getattr(self._buffer(where), column))
        if not columns:
            raise TspError(-286, "TSP Runtime error: printbuffer needs a reading buffer")
        n = min(len(col) for col in columns)
        if not 1 <= i0 <= i1 <= n:
            raise TspError(1400, "Buffer index out of range")
        values = [col[k] for k in range(i0 - 1, i1) for col in columns]
        kind = self.format["data"]
        if kind == 1.0:
            self._out.append(", ".join(self._format_value(x) for x in values).encode())
        else:  # format.REAL32 / REAL64: "#0" then the raw IEEE floats (2600B manual, format.data)
            order = ">" if self.format["byteorder"] == 1.0 else "<"
            dtype = np.dtype(f"{order}f{4 if kind == 4.0 else 8}")
            self._out.append(b"#0" + np.asarray(values, dtype=dtype).tobytes())

    # trigger model
    def _trigger_sweep(self, ch: int, unit: str, spacing: str, start: Any, stop: Any, points: Any) -> None:
        a, b, n = _num(start, "start"), _num(stop, "stop"), int(_num(points, "points"))
        hi = self.MODEL.max_v if unit == "v" else self.MODEL.max_i
        if max(abs(a), abs(b)) > hi:
            raise TspError(1100, "Parameter too big")
        if n < 1:
            raise TspError(1100, "Parameter too small")
        values = np.geomspace(a, b, n) if spacing == "log" and a * b > 0 else np.linspace(a, b, n)
        self._chan(ch).s["sweep"][unit] = [float(x) for x in values]

    def _trigger_list(self, ch: int, unit: str, table: Any) -> None:
        values = [_num(table[k], "list") for k in range(1, len(table) + 1)]
        hi = self.MODEL.max_v if unit == "v" else self.MODEL.max_i
        if any(abs(x) > hi for x in values):
            raise TspError(1100, "Parameter too big")
        self._chan(ch).s["sweep"][unit] = values

    def _trigger_measure(self, ch: int, what: str, buf1: str | None = None, buf2: str | None = None) -> None:
        self._chan(ch).s["trigger_measure"] = (what, buf1, buf2)

    def _trigger_initiate(self, ch: int) -> None:
        c = self._chan(ch)
        src = c.s["source"]
        unit = "v" if src["func"] == 1.0 else "i"
        sweep = c.s["sweep"][unit]
        source_on = c.s["trigger.source"]["action"] == 1.0
        measure_on = c.s["trigger.measure"]["action"] == 1.0
        count = int(c.s["trigger"]["count"])
        level = src["level" + unit]
        limit_key = "limiti" if unit == "v" else "limitv"
        sweep_limit = c.s["trigger.source"]["limiti" if unit == "v" else "limitv"]
        limit = src[limit_key]
        if sweep_limit:
            src[limit_key] = sweep_limit
        try:
            for _ in range(int(c.s["trigger.arm"]["count"])):
                for k in range(count):
                    if source_on and sweep:
                        src["level" + unit] = sweep[k % len(sweep)]
                    if measure_on and c.s["trigger_measure"] is not None:
                        what, b1, b2 = c.s["trigger_measure"]
                        saved = c.s["measure"]["count"]
                        c.s["measure"]["count"] = 1.0
                        try:
                            self._measure_cb(ch, what, b1, b2)
                        finally:
                            c.s["measure"]["count"] = saved
        finally:
            src[limit_key] = limit
            if c.s["trigger.endsweep"]["action"] == 0.0:
                src["level" + unit] = level

    # errorqueue, status, localnode, format
    def _error_next(self) -> tuple[float, str, float, float]:
        if not self.errors:
            return 0.0, "Queue Is Empty", 0.0, 0.0
        code, message = self.errors.pop(0)
        return float(code), message, 2.0, 0.0

    def _status_get(self, path: str, key: str) -> Any:
        constants = {"VOLTAGE_LIMIT": 1.0, "CURRENT_LIMIT": 2.0, "MSB": 1.0, "EAV": 4.0, "ESB": 32.0, "MSS": 64.0,
                     "OPC": 1.0, "QYE": 4.0, "DDE": 8.0, "EXE": 16.0, "CME": 32.0, "PON": 128.0}
        if key in constants:
            return constants[key]
        if path == "" and key in ("condition", "event"):
            return float(self._status_byte())
        if path == "" and key == "request_enable":
            return float(self.sre)
        if path == "standard" and key in ("event", "condition"):
            value = self.esr
            if key == "event":
                self.esr = 0
            return float(value)
        if path == "standard" and key == "enable":
            return float(self.ese)
        if path.startswith("measurement"):
            chans = self.ch if path in ("measurement", "measurement.instrument") else [self.ch[path.endswith("smub")]]
            if key == "condition":
                bits = 0
                for c in chans:
                    if c.tripped:
                        bits |= 2 if c.s["source"]["func"] == 1.0 else 1
                return float(bits)
            if key == "event":
                bits = 0
                for c in chans:
                    bits |= c.s["meas_event"]
                    c.s["meas_event"] = 0
                return float(bits)
        if key in ("condition", "event", "enable", "ntr", "ptr"):
            return 0.0
        return None

    def _status_set(self, path: str, key: str, value: Any) -> None:
        x = int(_num(value, key))
        if not 0 <= x <= 65535:
            raise TspError(1100, "Parameter out of range")
        if path == "" and key == "request_enable":
            self.sre = x
        elif path == "standard" and key == "enable":
            self.ese = x
        elif key not in ("enable", "ntr", "ptr"):
            raise TspError(-286, f"TSP Runtime error: attempt to set read-only status attribute '{key}'")

    def _status_reset(self) -> None:
        self.ese = self.sre = 0

    def _node_get(self, key: str) -> Any:
        fixed = {"model": "2636B", "serialno": "4321234", "revision": "3.3.5",
                 "description": "System SourceMeter 2636B - 4321234"}
        if key in fixed:
            return fixed[key]
        return self.node.get(key)

    def _node_set(self, key: str, value: Any) -> None:
        if key not in self.node:
            raise TspError(-286, f"TSP Runtime error: attempt to set read-only localnode attribute '{key}'")
        self.node[key] = _num(value, key)

    def _format_get(self, key: str) -> Any:
        constants = {"ASCII": 1.0, "SREAL": 4.0, "REAL32": 4.0, "REAL64": 8.0, "REAL": 8.0, "NORMAL": 1.0,
                     "SWAPPED": 0.0, "LITTLEENDIAN": 0.0, "BIGENDIAN": 1.0, "NETWORK": 1.0}
        return constants.get(key, self.format.get(key))

    def _format_set(self, key: str, value: Any) -> None:
        if key not in self.format:
            raise TspError(-286, f"TSP Runtime error: attempt to set unknown format attribute '{key}'")
        x = _num(value, key)
        if key == "data" and x not in (1.0, 4.0, 8.0):
            raise TspError(1100, "Parameter out of range")
        if key == "byteorder" and x not in (0.0, 1.0):
            raise TspError(1100, "Parameter out of range")
        if key == "asciiprecision" and not 1 <= x <= 16:
            raise TspError(1100, "Parameter out of range")
        self.format[key] = x


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TspError(-286, f"TSP Runtime error: bad argument for {what} (number expected, got {value!r})")
    if not np.isfinite(value):
        raise TspError(1100, "Parameter out of range")
    return float(value)


def _lua_message(message: str) -> str:
    """``[string "<python>"]:3: msg`` -> ``at line 3: msg`` (the instrument's wording)."""
    message = message.replace("error loading code: ", "")
    m = re.search(r'\[string "[^"]*"\]:(\d+): (.*)', message, re.S)
    if m:
        return f"at line {m.group(1)}: {m.group(2).splitlines()[0]}"
    return message.splitlines()[0] if message else "unknown error"


# Sandbox: no files, no OS, no Python; a count hook bounds run time (also inside coroutines and pcall).
_SANDBOX = """
local py, mark = _py, _timeout_mark
local sethook, traceback = debug.sethook, debug.traceback
local function hook()
  if py.expired() then error(mark, 0) end
end
local function guard(co) sethook(co, hook, "", 1000) end
sethook(hook, "", 1000)
local cocreate, cowrap = coroutine.create, coroutine.wrap
coroutine.create = function(f) local co = cocreate(f); guard(co); return co end
coroutine.wrap = function(f)
  local co = coroutine.create(f)
  return function(...)
    local r = table.pack(coroutine.resume(co, ...))
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end
end
local function rethrow(ok, ...)
  if not ok and py.expired() then error(mark, 0) end
  return ok, ...
end
local raw_pcall, raw_xpcall = pcall, xpcall
pcall = function(...) return rethrow(raw_pcall(...)) end
xpcall = function(...) return rethrow(raw_xpcall(...)) end
os, io, package, require, dofile, loadfile, debug, python, load, collectgarbage = nil
string.dump = nil
_timeout_mark = nil
"""
