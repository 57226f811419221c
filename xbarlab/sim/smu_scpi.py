"""Emulated SCPI source-measure units: Keithley 2400, Keithley 2450, Keysight B2900.

One SCPI parser (case-insensitive, long or short mnemonics, optional leading colon,
``;``-separated commands, numeric channel suffixes and ``(@n)`` channel lists) and one
source-measure engine; each model accepts only its own command headers (anything else
queues -113 "Undefined header", as the instrument does) and answers in its own format.

Measurement physics: with the output on, the current is what the terminal's load
draws; when it exceeds the compliance the SMU regulates at the compliance, found by
bisection on the load curve, and reports compliance. The load is stressed at the
actual terminal voltage for the integration time. Readings carry seeded noise of
0.012 % of reading + 10 pA (order of the 2400's 1 µA-range accuracy spec). The
simulated clock advances NPLC/50 Hz + 1 ms per reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from xbarlab.sim.clock import SimClock
from xbarlab.sim.emulator import LineEmulator
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.terminals import SmuTerminal

LINE_FREQUENCY = 50.0  # Hz
READING_OVERHEAD = 1e-3  # s per reading
VOWELS = set("AEIOU")


def short_form(node: str) -> str:
    """SCPI short form of one mnemonic: short forms pass through; long forms keep their
    first 4 letters, or 3 when the 4th is a vowel (SOURce, LEVel, SWEep, ARRay)."""
    node = node.upper()
    if len(node) <= 4:
        return node
    return node[:3] if node[3] in VOWELS else node[:4]


def split_commands(line: str) -> list[str]:
    """Split on ';' outside quotes."""
    out, cur, quote = [], [], ""
    for ch in line:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch == ";":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [c.strip() for c in out if c.strip()]


_HEADER = re.compile(r"^(\*?[A-Za-z][A-Za-z0-9:]*\??)\s*(.*)$")


def parse_header(cmd: str) -> tuple[str, int | None, bool, str]:
    """(normalised header, channel suffix, is_query, argument text)."""
    m = _HEADER.match(cmd.lstrip(":"))
    if not m:
        return "", None, False, cmd
    head, args = m.group(1), m.group(2).strip()
    query = head.endswith("?")
    head = head.rstrip("?")
    if head.startswith("*"):
        return head.upper(), None, query, args
    channel = None
    nodes = []
    for node in head.split(":"):
        mm = re.match(r"^([A-Za-z]+)(\d*)$", node)
        if not mm:
            return "", None, query, args
        if mm.group(2):
            channel = int(mm.group(2))
        nodes.append(short_form(mm.group(1)))
    # optional default nodes
    norm = ":".join(nodes).replace(":LEV", "")
    if norm.endswith(":IMM"):
        norm = norm[: -len(":IMM")]
    return norm, channel, query, args


class ScpiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _number(text: str) -> float:
    t = text.strip().upper()
    try:
        return float(t)
    except ValueError:
        raise ScpiError(-104, "Data type error") from None


def _bool(text: str) -> bool:
    t = text.strip().upper()
    if t in ("ON", "1"):
        return True
    if t in ("OFF", "0"):
        return False
    raise ScpiError(-104, "Data type error")


@dataclass
class Channel:
    """Source-measure state of one channel."""

    terminal: SmuTerminal
    func: str = "VOLT"
    level_v: float = 0.0
    level_i: float = 0.0
    comp_i: float = 105e-6
    comp_v: float = 21.0
    nplc: float = 1.0
    output: bool = False
    tripped: bool = False
    sweep_mode: str = "FIX"
    start: float = 0.0
    stop: float = 0.0
    step: float = 0.0
    points: int = 2500
    trig_count: int = 1
    buffer: list[tuple[float, float, float]] = field(default_factory=list)
    buffer_size: int = 0
    feed: str = "NONE"


@dataclass(frozen=True)
class SmuModel:
    identity: str
    max_v: float
    max_i: float
    channels: int
    buffer_points: int
    dialect: str  # "2400" | "2450" | "b2900"


class ScpiSmuEmulator(LineEmulator):
    """An SCPI SMU; subclasses fix the model."""

    MODEL: SmuModel

    def __init__(self, clock: SimClock | None = None, seed: int = 0, faults: FaultPlan | None = None) -> None:
        super().__init__(faults)
        self.clock = clock or SimClock()
        self._rng = np.random.default_rng(seed)
        self._terminals = [SmuTerminal() for _ in range(self.MODEL.channels)]
        self.power_on_reset()

    # -- wiring ----------------------------------------------------------------------------------
    def terminal(self, channel: str | int | None = None) -> SmuTerminal:
        """The terminals of channel ``channel`` ("1", "2"; None = the only/first channel)."""
        idx = 0 if channel is None else int(channel) - 1
        if not 0 <= idx < len(self._terminals):
            raise ValueError(f"{self.MODEL.identity.split(',')[1]} has no channel {channel!r}")
        return self._terminals[idx]

    def power_on_reset(self) -> None:
        self.errors: list[tuple[int, str]] = []
        self.ch = [Channel(t) for t in self._terminals]
        self.elements = ["VOLT", "CURR", "RES", "TIME", "STAT"]
        self.lang_scpi = True

    def input_overrun(self) -> None:
        self.errors.append((-363, "Input buffer overrun"))  # SCPI-99 device-specific error

    # -- measurement physics -----------------------------------------------------------------------
    def _measure(self, c: Channel) -> tuple[float, float]:
        """One reading (V, A) of channel ``c``; advances the clock."""
        dt = c.nplc / LINE_FREQUENCY
        self.clock.advance(dt + READING_OVERHEAD)
        load = c.terminal.load
        if not c.output:
            c.tripped = False
            return 0.0, self._noisy(0.0)
        if c.func == "VOLT":
            v = c.level_v
            i = load.current(v)
            c.tripped = abs(i) > c.comp_i
            if c.tripped:
                v = self._solve_v(load, v, c.comp_i)
                i = np.sign(i) * c.comp_i
            load.stress(v, dt, c.comp_i)
            return v, self._noisy(i)
        # current source: find the voltage that drives level_i, limited by comp_v
        target = c.level_i
        v_lim = c.comp_v if target >= 0 else -c.comp_v
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
        load.stress(v, dt, abs(c.level_i))
        return self._noisy(v, volts=True), i

    @staticmethod
    def _solve_v(load: object, v: float, limit: float) -> float:
        lo, hi = 0.0, v
        for _ in range(60):
            mid = (lo + hi) / 2
            if abs(load.current(mid)) > limit:  # type: ignore[attr-defined]
                hi = mid
            else:
                lo = mid
        return (lo + hi) / 2

    def _noisy(self, x: float, volts: bool = False) -> float:
        floor = 10e-6 if volts else 10e-12
        return float(x + (abs(x) * 1.2e-4 + floor) * self._rng.standard_normal())

    def _sweep(self, c: Channel, values: np.ndarray) -> list[tuple[float, float, float]]:
        out = []
        was_on = c.output
        c.output = True
        for v in values:
            c.level_v = float(v)
            vm, im = self._measure(c)
            out.append((vm, im, 1.0 if c.tripped else 0.0))
        c.output = was_on if self.MODEL.dialect != "2400" else was_on
        return out

    # -- protocol ----------------------------------------------------------------------------------
    def handle_line(self, line: str) -> bytes | None:
        replies: list[str] = []
        for cmd in split_commands(line):
            try:
                r = self._execute(cmd)
            except ScpiError as err:
                self.errors.append((err.code, err.message))
                continue
            if r is not None:
                replies.append(r)
        return ";".join(replies).encode() if replies else None

    def _channel(self, suffix: int | None, args: str) -> Channel:
        m = re.search(r"\(@(\d+)\)", args)
        n = int(m.group(1)) if m else (suffix or 1)
        if not 1 <= n <= len(self.ch):
            raise ScpiError(-114, "Header suffix out of range")
        return self.ch[n - 1]

    def _range_v(self, x: float) -> float:
        if abs(x) > self.MODEL.max_v:
            raise ScpiError(-222, "Data out of range")
        return x

    def _range_i(self, x: float) -> float:
        if abs(x) > self.MODEL.max_i:
            raise ScpiError(-222, "Data out of range")
        return x

    def _execute(self, cmd: str) -> str | None:
        head, suffix, query, args = parse_header(cmd)
        handler = self._table().get((head, query))
        if handler is None:
            raise ScpiError(-113, "Undefined header")
        return handler(self._channel(suffix, args), args)

    def _common(self) -> dict[tuple[str, bool], object]:
        def rst(c: Channel, a: str) -> None:
            self.power_on_reset()

        def err(c: Channel, a: str) -> str:
            if not self.errors:
                return '0,"No error"'
            code, msg = self.errors.pop(0)
            return f'{code},"{msg}"'

        return {
            ("*IDN", True): lambda c, a: self.MODEL.identity,
            ("*RST", False): rst,
            ("*CLS", False): lambda c, a: self.errors.clear(),
            ("*OPC", True): lambda c, a: "1",
            ("*WAI", False): lambda c, a: None,
            ("SYST:ERR", True): err,
            ("SYST:ERR:NEXT", True): err,
        }

    def _table(self) -> dict[tuple[str, bool], object]:  # pragma: no cover - per model
        raise NotImplementedError


def _fmt(x: float) -> str:
    return f"{x:+.6E}"


class Keithley2400Emulator(ScpiSmuEmulator):
    """Keithley 2400 SourceMeter (SCPI, one channel, 2500-point trace buffer)."""

    MODEL = SmuModel("KEITHLEY INSTRUMENTS INC.,MODEL 2400,4112345,C32   Oct  4 2010 14:20:11/A02  /S/K",
                     210.0, 1.05, 1, 2500, "2400")

    def _reading(self, vals: tuple[float, float, float]) -> str:
        v, i, trip = vals
        parts = {"VOLT": _fmt(v), "CURR": _fmt(i), "RES": _fmt(9.91e37), "TIME": _fmt(self.clock.now),
                 "STAT": _fmt(8.0 + (16.0 if trip else 0.0))}
        return ",".join(parts[e] for e in self.elements)

    def _table(self):
        t = self._common()

        def func(c: Channel, a: str) -> None:
            f = short_form(a.strip().strip("'\""))
            if f not in ("VOLT", "CURR"):
                raise ScpiError(-224, "Illegal parameter value")
            c.func = f

        def elems(c: Channel, a: str) -> None:
            names = [short_form(x.strip()) for x in a.split(",")]
            if not names or any(n not in ("VOLT", "CURR", "RES", "TIME", "STAT") for n in names):
                raise ScpiError(-224, "Illegal parameter value")
            self.elements = names

        def read(c: Channel, a: str) -> str:
            if c.sweep_mode == "SWE":
                return ",".join(self._reading(r) for r in self._run_sweep(c))
            return self._reading((*self._measure(c), 1.0 if c.tripped else 0.0))

        def init(c: Channel, a: str) -> None:
            if not c.output and c.sweep_mode != "SWE":
                raise ScpiError(803, "Output disabled")
            readings = self._run_sweep(c) if c.sweep_mode == "SWE" else [
                (*self._measure(c), 1.0 if c.tripped else 0.0) for _ in range(c.trig_count)]
            if c.feed == "SENS":
                room = max(c.buffer_size - len(c.buffer), 0)
                c.buffer.extend(readings[:room])

        def points(c: Channel, a: str) -> None:
            n = int(_number(a))
            if not 1 <= n <= 2500:
                raise ScpiError(-222, "Data out of range")
            c.points = n

        def trace_points(c: Channel, a: str) -> None:
            n = int(_number(a))
            if not 1 <= n <= self.MODEL.buffer_points:
                raise ScpiError(-222, "Data out of range")
            c.buffer_size = n

        def trig_count(c: Channel, a: str) -> None:
            n = int(_number(a))
            if not 1 <= n <= 2500:
                raise ScpiError(-222, "Data out of range")
            c.trig_count = n

        def meas(what: str):
            def f(c: Channel, a: str) -> str:
                if not c.output:
                    c.output = True  # :MEASure turns the output on (2400 behaviour with auto-on)
                v, i = self._measure(c)
                return _fmt(i if what == "CURR" else v)
            return f

        def set_attr(name: str, conv):
            def f(c: Channel, a: str) -> None:
                setattr(c, name, conv(_number(a)) if conv else _number(a))
            return f

        t.update({
            ("SOUR:FUNC", False): func,
            ("SOUR:FUNC", True): lambda c, a: c.func,
            ("SOUR:VOLT", False): lambda c, a: setattr(c, "level_v", self._range_v(_number(a))),
            ("SOUR:VOLT", True): lambda c, a: _fmt(c.level_v),
            ("SOUR:CURR", False): lambda c, a: setattr(c, "level_i", self._range_i(_number(a))),
            ("SOUR:VOLT:MODE", False): lambda c, a: setattr(c, "sweep_mode", short_form(a.strip())),
            ("SOUR:SWE:SPAC", False): lambda c, a: None if short_form(a.strip()) == "LIN" else (_ for _ in ()).throw(
                ScpiError(-224, "Illegal parameter value")),
            ("SOUR:VOLT:STAR", False): lambda c, a: setattr(c, "start", self._range_v(_number(a))),
            ("SOUR:VOLT:STOP", False): lambda c, a: setattr(c, "stop", self._range_v(_number(a))),
            ("SOUR:VOLT:STEP", False): lambda c, a: setattr(c, "step", _number(a)),
            ("SOUR:SWE:POIN", False): points,
            ("SOUR:SWE:POIN", True): lambda c, a: str(c.points),
            ("SOUR:VOLT:RANG", False): lambda c, a: None,
            ("SOUR:VOLT:RANG:AUTO", False): lambda c, a: None,
            ("SENS:CURR:PROT", False): lambda c, a: setattr(c, "comp_i", self._range_i(_number(a))),
            ("SENS:CURR:PROT", True): lambda c, a: _fmt(c.comp_i),
            ("SENS:VOLT:PROT", False): lambda c, a: setattr(c, "comp_v", self._range_v(_number(a))),
            ("SENS:CURR:PROT:TRIP", True): lambda c, a: "1" if c.tripped else "0",
            ("SENS:FUNC", False): lambda c, a: None,
            ("SENS:CURR:NPLC", False): set_attr("nplc", None),
            ("SENS:CURR:NPLC", True): lambda c, a: _fmt(c.nplc),
            ("SENS:CURR:RANG", False): lambda c, a: None,
            ("SENS:CURR:RANG:AUTO", False): lambda c, a: None,
            ("FORM:ELEM", False): elems,
            ("OUTP", False): lambda c, a: setattr(c, "output", _bool(a)),
            ("OUTP", True): lambda c, a: "1" if c.output else "0",
            ("READ", True): read,
            ("MEAS:CURR", True): meas("CURR"),
            ("MEAS:VOLT", True): meas("VOLT"),
            ("TRAC:CLE", False): lambda c, a: c.buffer.clear(),
            ("TRAC:POIN", False): trace_points,
            ("TRAC:FEED", False): lambda c, a: setattr(c, "feed", short_form(a.strip())),
            ("TRAC:FEED:CONT", False): lambda c, a: None,
            ("TRAC:DATA", True): lambda c, a: ",".join(self._reading(r) for r in c.buffer),
            ("TRIG:COUN", False): trig_count,
            ("INIT", False): init,
        })
        return t

    def _run_sweep(self, c: Channel) -> list[tuple[float, float, float]]:
        n = c.trig_count
        values = np.linspace(c.start, c.stop, n)
        res = self._sweep(c, values)
        c.output = False  # source auto-off after a triggered sweep
        return res


class Keithley2450Emulator(ScpiSmuEmulator):
    """Keithley 2450 SourceMeter, native SCPI command set (one channel)."""

    MODEL = SmuModel("KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b", 210.0, 1.05, 1, 100000, "2450")

    def power_on_reset(self) -> None:
        super().power_on_reset()
        self._lin_sweep: dict[str, float] = {}

    def _table(self):
        t = self._common()
        sweep = self._lin_sweep

        def lin(c: Channel, a: str) -> None:
            parts = [p for p in a.split(",") if p.strip()]
            if len(parts) < 3:
                raise ScpiError(-109, "Missing parameter")
            start, stop = self._range_v(_number(parts[0])), self._range_v(_number(parts[1]))
            n = int(_number(parts[2]))
            if not 2 <= n <= 1000000:
                raise ScpiError(-222, "Data out of range")
            sweep.update(start=start, stop=stop, points=n)

        def init(c: Channel, a: str) -> None:
            if sweep:
                c.buffer = self._sweep(c, np.linspace(sweep["start"], sweep["stop"], int(sweep["points"])))
                c.output = False
                sweep.clear()
            else:
                c.buffer.append((*self._measure(c), 1.0 if c.tripped else 0.0))

        def data(c: Channel, a: str) -> str:
            parts = [p.strip().strip('"') for p in a.split(",")]
            try:
                first, last = int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                raise ScpiError(-109, "Missing parameter") from None
            if not 1 <= first <= last <= len(c.buffer):
                raise ScpiError(-222, "Data out of range")
            fields_ = [short_form(p) for p in parts[3:]] or ["READ"]
            out = []
            for v, i, _trip in c.buffer[first - 1: last]:
                for f in fields_:
                    out.append(_fmt(v if f == "SOUR" else i))
            return ",".join(out)

        def read(c: Channel, a: str) -> str:
            v, i = self._measure(c)
            c.buffer.append((v, i, 1.0 if c.tripped else 0.0))
            return _fmt(i)

        t.update({
            ("*LANG", True): lambda c, a: "SCPI",
            ("SOUR:FUNC", False): lambda c, a: setattr(c, "func", short_form(a.strip())),
            ("SOUR:VOLT", False): lambda c, a: setattr(c, "level_v", self._range_v(_number(a))),
            ("SOUR:CURR", False): lambda c, a: setattr(c, "level_i", self._range_i(_number(a))),
            ("SOUR:VOLT:ILIM", False): lambda c, a: setattr(c, "comp_i", self._range_i(_number(a))),
            ("SOUR:VOLT:ILIM:TRIP", True): lambda c, a: "1" if c.tripped else "0",
            ("SOUR:CURR:VLIM", False): lambda c, a: setattr(c, "comp_v", self._range_v(_number(a))),
            ("SOUR:SWE:VOLT:LIN", False): lin,
            ("SENS:FUNC", False): lambda c, a: None,
            ("SENS:CURR:NPLC", False): lambda c, a: setattr(c, "nplc", _number(a)),
            ("OUTP", False): lambda c, a: setattr(c, "output", _bool(a)),
            ("OUTP", True): lambda c, a: "1" if c.output else "0",
            ("READ", True): read,
            ("MEAS:CURR", True): lambda c, a: _fmt(self._measure(c)[1]),
            ("MEAS:VOLT", True): lambda c, a: _fmt(self._measure(c)[0]),
            ("TRAC:CLE", False): lambda c, a: c.buffer.clear(),
            ("TRAC:DATA", True): data,
            ("TRAC:ACT", True): lambda c, a: str(len(c.buffer)),
            ("INIT", False): init,
        })
        return t


class KeysightB2900Emulator(ScpiSmuEmulator):
    """Keysight B2902A precision SMU (SCPI, channels 1 and 2)."""

    MODEL = SmuModel("Keysight Technologies,B2902A,MY51140001,4.0.2047.6013", 210.0, 3.03, 2, 100000, "b2900")

    def _table(self):
        t = self._common()

        def init(c: Channel, a: str) -> None:
            if c.sweep_mode == "SWE":
                c.buffer = self._sweep(c, np.linspace(c.start, c.stop, c.points))
            else:
                c.buffer = [(*self._measure(c), 1.0 if c.tripped else 0.0) for _ in range(c.trig_count)]

        def points(c: Channel, a: str) -> None:
            n = int(_number(a))
            if not 1 <= n <= 100000:
                raise ScpiError(-222, "Data out of range")
            c.points = n

        def fetch(idx: int):
            return lambda c, a: ",".join(_fmt(r[idx]) for r in c.buffer)

        t.update({
            ("SOUR:FUNC:MODE", False): lambda c, a: setattr(c, "func", short_form(a.strip())),
            ("SOUR:VOLT", False): lambda c, a: setattr(c, "level_v", self._range_v(_number(a))),
            ("SOUR:CURR", False): lambda c, a: setattr(c, "level_i", self._range_i(_number(a))),
            ("SOUR:VOLT:MODE", False): lambda c, a: setattr(c, "sweep_mode", short_form(a.strip())),
            ("SOUR:VOLT:STAR", False): lambda c, a: setattr(c, "start", self._range_v(_number(a))),
            ("SOUR:VOLT:STOP", False): lambda c, a: setattr(c, "stop", self._range_v(_number(a))),
            ("SOUR:VOLT:POIN", False): points,
            ("SENS:CURR:PROT", False): lambda c, a: setattr(c, "comp_i", self._range_i(_number(a))),
            ("SENS:VOLT:PROT", False): lambda c, a: setattr(c, "comp_v", self._range_v(_number(a))),
            ("SENS:CURR:PROT:TRIP", True): lambda c, a: "1" if c.tripped else "0",
            ("SENS:CURR:NPLC", False): lambda c, a: setattr(c, "nplc", _number(a)),
            ("SENS:CURR:APER", False): lambda c, a: setattr(c, "nplc", _number(a) * LINE_FREQUENCY),
            ("OUTP", False): lambda c, a: setattr(c, "output", _bool(a)),
            ("OUTP", True): lambda c, a: "1" if c.output else "0",
            ("MEAS:CURR", True): lambda c, a: _fmt(self._measure(c)[1]),
            ("MEAS:VOLT", True): lambda c, a: _fmt(self._measure(c)[0]),
            ("TRIG:SOUR", False): lambda c, a: None,
            ("TRIG:COUN", False): lambda c, a: setattr(c, "trig_count", int(_number(a))),
            ("INIT", False): init,
            ("FETC:ARR:CURR", True): fetch(1),
            ("FETC:ARR:VOLT", True): fetch(0),
        })
        return t
