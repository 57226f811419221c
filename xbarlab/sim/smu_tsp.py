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

from xbarlab.sim.clock import SimClock
from xbarlab.sim.emulator import LineEmulator
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.smu_engine import Channel, SmuModel, SourceMeasure
from xbarlab.sim.terminals import SmuTerminal
from xbarlab.sim.tsp_objects import TspError, TspObjectModel, tsp_number

IDENTITY = "Keithley Instruments Inc., Model 2636B, 4321234, 3.3.5"
TIME_LIMIT = 10.0  # s of wall time per chunk (an endless loop ends here; real scripts finish well before)
ERROR_QUEUE_DEPTH = 100
_TIMEOUT_MARK = "xbarlab-tsp-time-limit"


class _Timeout(Exception):
    pass


class Keithley2600Emulator(TspObjectModel, LineEmulator):
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
    def input_overrun(self) -> None:
        """A line longer than the input buffer was dropped (queued as -363, as the SCPI models do)."""
        self._push_error(-363, "Input buffer overrun")

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
        s = tsp_number(seconds, "delay")
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
