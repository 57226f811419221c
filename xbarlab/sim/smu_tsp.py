"""Emulated Keithley 2600B System SourceMeter (TSP), channels smua and smub.

A small interpreter of the TSP (Lua) subset that drivers and simple scripts send:
attribute assignments (``smua.source.levelv = 0.1``), calls (``smua.reset()``,
``smua.measure.iv(smua.nvbuffer1, smua.nvbuffer2)``, ``smua.nvbuffer1.clear()``),
``print(...)``, ``printbuffer(1, n, smua.nvbuffer1.readings)``, one-line numeric
``for i = a, b do ... end`` loops, ``errorqueue.count`` / ``errorqueue.next()`` /
``errorqueue.clear()``, ``*IDN?``, and ``loadandrunscript ... endscript``. Anything else
queues error -285 "Program syntax error" as the instrument does; nothing raises.
The source-measure physics is shared with the SCPI emulators.
"""

from __future__ import annotations

import ast
import operator
import re

from xbarlab.sim.clock import SimClock
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.smu_scpi import Channel, ScpiSmuEmulator, SmuModel

IDENTITY = "Keithley Instruments Inc., Model 2636B, 4321234, 3.3.5"
CONSTANTS = {"OUTPUT_DCVOLTS": 1.0, "OUTPUT_DCAMPS": 0.0, "OUTPUT_ON": 1.0, "OUTPUT_OFF": 0.0,
             "ASCII": 1.0, "REAL32": 4.0}
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.USub: operator.neg, ast.UAdd: operator.pos}


class TspError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _fmt(x: float) -> str:
    return f"{x:.5e}"


class Keithley2600Emulator(ScpiSmuEmulator):
    """Keithley 2636B with channels ``a`` and ``b``."""

    MODEL = SmuModel(IDENTITY, 200.0, 1.5, 2, 60000, "2600")

    def __init__(self, clock: SimClock | None = None, seed: int = 0, faults: FaultPlan | None = None) -> None:
        super().__init__(clock, seed, faults)
        self._script: list[str] | None = None

    def terminal(self, channel: str | int | None = None):  # type: ignore[override]
        mapping = {None: 0, "a": 0, "b": 1, "smua": 0, "smub": 1}
        if channel not in mapping:
            raise ValueError(f"2636B has no channel {channel!r}; expected 'a' or 'b'")
        return self._terminals[mapping[channel]]

    def power_on_reset(self) -> None:
        super().power_on_reset()
        self.buffers: dict[str, list[float]] = {f"smu{c}.nvbuffer{n}": [] for c in "ab" for n in (1, 2)}
        for c in self.ch:
            c.comp_i = 0.1
            c.comp_v = 20.0

    # -- interpreter -----------------------------------------------------------------------------
    def handle_line(self, line: str) -> bytes | None:
        line = line.strip()
        if self._script is not None:
            if line == "endscript":
                lines, self._script = self._script, None
                out = [r for ln in lines for r in [self._run(ln)] if r]
                return "\n".join(out).encode() if out else None
            self._script.append(line)
            return None
        if line.startswith("loadandrunscript"):
            self._script = []
            return None
        out = self._run(line)
        return out.encode() if out else None

    def _run(self, line: str) -> str | None:
        try:
            return self._statement(line, {})
        except TspError as err:
            self.errors.append((err.code, err.message))
        except (ValueError, ZeroDivisionError, KeyError, SyntaxError):
            self.errors.append((-285, "Program syntax error"))
        return None

    def _chan(self, name: str) -> Channel:
        return self.ch[0 if name == "smua" else 1]

    def _statement(self, s: str, env: dict[str, float]) -> str | None:
        s = s.strip()
        if not s:
            return None
        if s == "*IDN?":
            return IDENTITY
        m = re.fullmatch(r"for\s+(\w+)\s*=\s*([^,]+),\s*(.+?)\s+do\s+(.*)\s+end", s)
        if m:
            var, a, b, body = m.groups()
            start, stop = int(self._expr(a, env)), int(self._expr(b, env))
            parts = [p for p in re.split(r"(?<![,(])\s+(?=smu[ab]\.|print\()", body) if p.strip()]
            outs = []
            for k in range(start, stop + 1):
                local = dict(env, **{var: float(k)})
                for p in parts:
                    r = self._statement(p, local)
                    if r:
                        outs.append(r)
            return "\n".join(outs) or None
        m = re.fullmatch(r"print\((.*)\)", s)
        if m:
            args = [a for a in _split_args(m.group(1))]
            return "\t".join(self._value(a, env) for a in args)
        m = re.fullmatch(r"printbuffer\((.+)\)", s)
        if m:
            a, b, buf = _split_args(m.group(1))
            name = buf.strip().removesuffix(".readings")
            data = self.buffers.get(name)
            if data is None:
                raise TspError(-285, "Program syntax error")
            i0, i1 = int(self._expr(a, env)), int(self._expr(b, env))
            if not 1 <= i0 <= i1 <= len(data):
                raise TspError(1400, "Buffer index out of range")
            return ", ".join(_fmt(x) for x in data[i0 - 1: i1])
        m = re.fullmatch(r"(smu[ab])\.(source|measure)\.(\w+)\s*=\s*(.+)", s)
        if m:
            self._assign(self._chan(m.group(1)), m.group(2), m.group(3), self._expr(m.group(4), env))
            return None
        m = re.fullmatch(r"format\.data\s*=\s*format\.(\w+)", s)
        if m:
            return None
        if re.fullmatch(r"(smu[ab])\.reset\(\)", s):
            c = self._chan(s[:4])
            idx = self.ch.index(c)
            self.ch[idx] = Channel(c.terminal, comp_i=0.1, comp_v=20.0)
            return None
        m = re.fullmatch(r"(smu[ab]\.nvbuffer[12])\.clear\(\)", s)
        if m:
            self.buffers[m.group(1)].clear()
            return None
        if s == "errorqueue.clear()":
            self.errors.clear()
            return None
        m = re.fullmatch(r"(smu[ab])\.measure\.(i|v|iv)\((.*)\)", s)
        if m:
            self._measure_into(m.group(1), m.group(2), m.group(3))
            return None
        raise TspError(-285, "Program syntax error")

    def _assign(self, c: Channel, group: str, attr: str, value: float) -> None:
        if group == "source":
            if attr == "func":
                c.func = "VOLT" if value == 1 else "CURR"
            elif attr == "levelv":
                c.level_v = self._range_v(value)
            elif attr == "leveli":
                c.level_i = self._range_i(value)
            elif attr == "limiti":
                c.comp_i = self._range_i(value)
            elif attr == "limitv":
                c.comp_v = self._range_v(value)
            elif attr == "output":
                c.output = value == 1
            elif attr in ("rangev", "rangei", "autorangev", "autorangei"):
                pass
            else:
                raise TspError(-285, "Program syntax error")
        else:
            if attr == "nplc":
                if not 0.001 <= value <= 25:
                    raise TspError(1100, "Parameter too big/small")
                c.nplc = value
            elif attr in ("autozero", "rangei", "rangev", "autorangei", "autorangev", "count"):
                pass
            else:
                raise TspError(-285, "Program syntax error")

    def _range_v(self, x: float) -> float:  # type: ignore[override]
        if abs(x) > self.MODEL.max_v:
            raise TspError(1100, "Parameter too big")
        return x

    def _range_i(self, x: float) -> float:  # type: ignore[override]
        if abs(x) > self.MODEL.max_i:
            raise TspError(1100, "Parameter too big")
        return x

    def _measure_into(self, smu: str, what: str, args: str) -> tuple[float, float]:
        c = self._chan(smu)
        v, i = self._measure(c)
        bufs = [b.strip() for b in _split_args(args)] if args.strip() else []
        for b in bufs:
            if b not in self.buffers:
                raise TspError(-285, "Program syntax error")
        if what == "i" and bufs:
            self.buffers[bufs[0]].append(i)
        elif what == "v" and bufs:
            self.buffers[bufs[0]].append(v)
        elif what == "iv":
            if len(bufs) >= 1:
                self.buffers[bufs[0]].append(i)
            if len(bufs) >= 2:
                self.buffers[bufs[1]].append(v)
        return v, i

    def _value(self, expr: str, env: dict[str, float]) -> str:
        e = expr.strip()
        m = re.fullmatch(r"(smu[ab])\.measure\.(i|v|iv)\(\)", e)
        if m:
            v, i = self._measure_into(m.group(1), m.group(2), "")
            return {"i": _fmt(i), "v": _fmt(v), "iv": f"{_fmt(i)}\t{_fmt(v)}"}[m.group(2)]
        if e == "localnode.model":
            return "2636B"
        if e == "localnode.serialno":
            return "4321234"
        if e == "errorqueue.count":
            return _fmt(float(len(self.errors)))
        if e == "errorqueue.next()":
            if not self.errors:
                return "0.00000e+00\tQueue Is Empty\t0.00000e+00\t0.00000e+00"
            code, msg = self.errors.pop(0)
            return f"{_fmt(float(code))}\t{msg}\t2.00000e+00\t0.00000e+00"
        m = re.fullmatch(r"(smu[ab])\.source\.compliance", e)
        if m:
            return "true" if self._chan(m.group(1)).tripped else "false"
        m = re.fullmatch(r"(smu[ab])\.source\.(\w+)", e)
        if m:
            c = self._chan(m.group(1))
            vals = {"output": 1.0 if c.output else 0.0, "levelv": c.level_v, "leveli": c.level_i,
                    "limiti": c.comp_i, "limitv": c.comp_v, "func": 1.0 if c.func == "VOLT" else 0.0}
            if m.group(2) not in vals:
                raise TspError(-285, "Program syntax error")
            return _fmt(vals[m.group(2)])
        m = re.fullmatch(r"(smu[ab])\.measure\.nplc", e)
        if m:
            return _fmt(self._chan(m.group(1)).nplc)
        m = re.fullmatch(r"(smu[ab]\.nvbuffer[12])\.n", e)
        if m:
            return _fmt(float(len(self.buffers[m.group(1)])))
        return _fmt(self._expr(e, env))

    def _expr(self, text: str, env: dict[str, float]) -> float:
        text = re.sub(r"smu[ab]\.(\w+)", lambda m: repr(CONSTANTS[m.group(1)]) if m.group(1) in CONSTANTS
                      else m.group(0), text.strip())
        text = re.sub(r"format\.(\w+)", lambda m: repr(CONSTANTS.get(m.group(1), 0.0)), text)
        return _eval(ast.parse(text, mode="eval").body, env)


def _eval(node: ast.AST, env: dict[str, float]) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand, env))
    raise TspError(-285, "Program syntax error")


def _split_args(text: str) -> list[str]:
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur))
    return out
