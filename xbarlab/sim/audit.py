"""Safety audit from the instruments' side: what did the simulated bench actually receive and apply?

Two independent observers, neither of which uses xbarlab's drivers or safety layer:

* :class:`WireAudit` taps every emulator's input (:meth:`StreamEmulator.add_tap`, the point where
  the VISA backend, the pyserial handler and the TCP server all deliver bytes) and parses the
  traffic itself: SCPI by the SCPI-99 header rules and the Keithley 2400/2450 and Keysight B2900
  command trees (source levels, sweep/list values, compliance/limit settings), TSP by the Lua
  statements of the 2600B reference (``smuX.source.levelv/leveli/limiti/limitv`` assignments,
  ``for`` loops over them, ``trigger.source.linear*/list*`` and the ``Sweep*`` factory functions),
  board frames with :mod:`xbarlab.protocol.board` (CONFIGURE read voltage and TIA range, MVM and
  closed-loop input vectors, PULSE/PULSE_BATCH/OUTER_PRODUCT amplitudes and widths). A sourcing
  value it cannot evaluate (``MAX``, an expression of unknown variables) counts as a violation.
* :class:`PhysicsAudit` watches the physical quantities the simulator applied: the voltage and
  current limit every SMU terminal was stressed with, the pulse amplitudes and widths and the line
  voltages the crossbar model received, and the closed-loop op-amp inputs and outputs.

Every value beyond a limit is a :class:`Violation`. Limits are given as plain numbers, so the
audit does not depend on how the host side stores them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.protocol import board as bp


@dataclass(frozen=True)
class Violation:
    """One value beyond a limit (or a sourcing value that could not be evaluated)."""

    instrument: str
    quantity: str
    value: float
    limit: float
    evidence: str  # the command, frame or call it came from

    def __str__(self) -> str:
        return f"{self.instrument}: {self.quantity} = {self.value:g} beyond {self.limit:g} ({self.evidence})"


@dataclass
class _Record:
    violations: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # messages/frames/calls seen, by instrument

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def check_abs(self, name: str, quantity: str, values: Any, limit: float, evidence: str,
                  rel: float = 1e-9, absolute: float = 0.0) -> None:
        arr = np.atleast_1d(np.asarray(values, dtype=float))
        if not arr.size:
            return
        bad = ~np.isfinite(arr) | (np.abs(arr) > limit * (1 + rel) + absolute)
        if bad.any():
            v = float(arr[bad][0])
            self.violations.append(Violation(name, quantity, v, limit, evidence[:200]))

    def check_range(self, name: str, quantity: str, values: Any, low: float, high: float, evidence: str) -> None:
        arr = np.atleast_1d(np.asarray(values, dtype=float))
        bad = ~np.isfinite(arr) | (arr < low * (1 - 1e-9)) | (arr > high * (1 + 1e-9))
        if bad.any():
            v = float(arr[bad][0])
            self.violations.append(Violation(name, quantity, v, high if v > high else low, evidence[:200]))


# -- SCPI ------------------------------------------------------------------------------------------------
_VOWELS = set("AEIOU")
_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)$")
_MULT = {"": 1.0, "M": 1e-3, "U": 1e-6, "N": 1e-9, "P": 1e-12, "K": 1e3, "MA": 1e6, "G": 1e9}


def scpi_short(mnemonic: str) -> str:
    """SCPI-99 short form of a header mnemonic (``VOLTage`` → ``VOLT``, ``LEVel`` → ``LEV``)."""
    m = mnemonic.upper()
    if len(m) <= 4:
        return m
    return m[:3] if m[3] in _VOWELS else m[:4]


def scpi_number(text: str) -> float:
    """A SCPI numeric parameter in base units; NaN for what cannot be evaluated (MAX, UP, ...)."""
    t = text.strip()
    if t.upper() in ("DEF", "DEFAULT"):
        return 0.0
    m = _NUMBER.match(t)
    if not m:
        return math.nan
    suffix = m.group(2).upper()
    for unit in ("V", "A", "OHM", "W", "S"):
        if suffix.endswith(unit) and suffix != "MA":
            suffix = suffix[: -len(unit)]
            break
    mult = _MULT.get(suffix)
    return float(m.group(1)) * mult if mult is not None else math.nan


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes."""
    out, cur, quote = [], [], ""
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


_OPTIONAL = {"LEV", "IMM", "AMPL", "DC"}


@dataclass(frozen=True)
class SourceSetting:
    """One sourcing value parsed from a command: function (VOLT/CURR), kind (level/compliance), channel."""

    function: str  # "VOLT" | "CURR": the quantity the value is in
    kind: str  # "level" | "compliance"
    channel: str
    values: tuple[float, ...]


def scpi_source_settings(line: str) -> list[SourceSetting]:
    """Every sourcing value a SCPI program message line sets (levels, sweep/list points, compliance)."""
    settings: list[SourceSetting] = []
    path: list[str] = []
    for unit in _split_top(line, ";"):
        unit = unit.strip()
        if not unit or unit.startswith("*"):
            continue
        header, _, args = unit.partition(" ")
        if header.endswith("?"):
            absolute = header.startswith(":")
            nodes = [n for n in header.strip(":").rstrip("?").split(":") if n]
            path = nodes[:-1] if absolute else path + nodes[:-1]
            continue
        absolute = header.startswith(":")
        nodes = [n for n in header.strip(":").split(":") if n]
        full = nodes if absolute or not path else path + nodes
        path = full[:-1]
        channel = ""
        norm: list[str] = []
        for n in full:
            m = re.match(r"^([A-Za-z_]+)(\d*)$", n)
            if not m:
                norm.append(n.upper())
                continue
            word, suffix = scpi_short(m.group(1)), m.group(2)
            if word in ("SOUR", "SENS") and suffix:
                channel = suffix
            norm.append(word)
        if not norm or norm[0] not in ("SOUR", "SENS"):
            # a 2400 command may omit the optional SOURce root: VOLT[:LEV] n
            if norm and norm[0] in ("VOLT", "CURR", "LIST"):
                norm = ["SOUR", *norm]
            else:
                continue
        core = [n for n in norm if n not in _OPTIONAL]
        values = tuple(scpi_number(a) for a in _split_top(args, ",") if a.strip())
        if not values:
            continue
        root, rest = core[0], core[1:]
        if root == "SENS":
            if len(rest) >= 2 and rest[0] in ("VOLT", "CURR") and rest[1] == "PROT":
                settings.append(SourceSetting(rest[0], "compliance", channel, values[:1]))
            continue
        if not rest:
            continue
        if rest[0] in ("VOLT", "CURR"):
            fn, tail = rest[0], rest[1:]
            if not tail or tail[0] in ("TRIG", "STAR", "STOP", "CENT"):
                settings.append(SourceSetting(fn, "level", channel, values[:1]))
            elif tail[0] == "ILIM":
                settings.append(SourceSetting("CURR", "compliance", channel, values[:1]))
            elif tail[0] == "VLIM":
                settings.append(SourceSetting("VOLT", "compliance", channel, values[:1]))
            elif tail[0] == "SPAN":
                settings.append(SourceSetting(fn, "level", channel, tuple(v / 2 for v in values[:1])))
        elif rest[0] == "LIST" and len(rest) >= 2 and rest[1] in ("VOLT", "CURR"):
            settings.append(SourceSetting(rest[1], "level", channel, values))
        elif rest[0] == "SWE" and len(rest) >= 2 and rest[1] in ("VOLT", "CURR"):
            settings.append(SourceSetting(rest[1], "level", channel, values[:2]))
    return settings


# -- TSP -------------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][\w.\[\]]*)|(\S))")
_ASSIGN = re.compile(r"\b(smu[ab])\.source\.(levelv|leveli|limiti|limitv)\s*=(?!=)")
_TRIGGER = re.compile(r"\b(smu[ab])\.trigger\.source\.(linearv|lineari|listv|listi|logv|logi)\s*\(")
_FACTORY = re.compile(r"\bSweep([VI])(Lin|Log|List)Measure[VI]\s*\(\s*(smu[ab])\s*,")
_FOR = re.compile(r"\bfor\s+([A-Za-z_]\w*)\s*=\s*")


def _eval_expr(text: str, env: Mapping[str, np.ndarray]) -> tuple[np.ndarray | None, int]:
    """Evaluate a Lua arithmetic expression at the start of ``text`` (numbers, known variables,
    + - * / ^ and parentheses). Returns (values or None if not evaluable, characters consumed)."""
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    depth = 0
    expect_operand = True
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            break
        num, name, op = m.groups()
        if expect_operand:
            if num is not None or name is not None:
                if name is not None and name in ("end", "do", "then", "and", "or", "not", "local"):
                    break
                tokens.append(("n" if num is not None else "v", num or name, m.end()))
                expect_operand = False
            elif op in ("-", "("):
                depth += op == "("
                tokens.append(("o", op, m.end()))
            else:
                break
        else:
            if op in ("+", "-", "*", "/", "^"):
                tokens.append(("o", op, m.end()))
                expect_operand = True
            elif op == ")" and depth > 0:
                depth -= 1
                tokens.append(("o", op, m.end()))
            else:
                break
        pos = m.end()
    while tokens and (tokens[-1][0] == "o" and tokens[-1][1] != ")"):
        tokens.pop()
    if not tokens:
        return None, 0
    consumed = tokens[-1][2]
    expr = []
    for kind, value, _ in tokens:
        if kind == "v":
            if value not in env:
                return None, consumed
            expr.append(f"env[{value!r}]")
        elif kind == "o":
            expr.append("**" if value == "^" else value)
        else:
            expr.append(value)
    try:
        result = eval("".join(expr), {"__builtins__": {}}, {"env": env})  # noqa: S307 - numbers and env only
    except Exception:  # noqa: BLE001 - a malformed expression is not evaluable
        return None, consumed
    return np.atleast_1d(np.asarray(result, dtype=float)), consumed


def _eval_args(text: str, env: Mapping[str, np.ndarray]) -> list[np.ndarray | None]:
    """Arguments of a call whose '(' was just consumed: expressions or {tables}."""
    args: list[np.ndarray | None] = []
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == "{":
            end = text.find("}", pos)
            if end < 0:
                args.append(None)
                return args
            items = [a for a in text[pos + 1 : end].split(",") if a.strip()]
            vals = [_eval_expr(a, env)[0] for a in items]
            args.append(None if any(v is None for v in vals) else np.concatenate(vals) if vals else np.zeros(0))
            pos = end + 1
        else:
            value, used = _eval_expr(text[pos:], env)
            if not used:
                return args
            args.append(value)
            pos += used
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        return args
    return args


def tsp_source_settings(line: str) -> list[SourceSetting]:
    """Every sourcing value a TSP (Lua) line sets; values that cannot be evaluated are NaN."""
    env: dict[str, np.ndarray] = {}
    for m in _FOR.finditer(line):  # numeric for loops: the variable takes every value of its range
        args = _eval_args(line[m.end():], env)
        if len(args) >= 2 and args[0] is not None and args[1] is not None:
            start, stop = float(args[0][0]), float(args[1][0])
            step = float(args[2][0]) if len(args) >= 3 and args[2] is not None else 1.0
            count = math.floor((stop - start) / step) + 1 if step else 0
            if 0 < count <= 1_000_000:
                env[m.group(1)] = start + step * np.arange(count)
    settings: list[SourceSetting] = []
    nan = (math.nan,)
    for m in _ASSIGN.finditer(line):
        value, _ = _eval_expr(line[m.end():], env)
        what = m.group(2)
        fn = "VOLT" if what.endswith("v") else "CURR"
        kind = "level" if what.startswith("level") else "compliance"
        settings.append(SourceSetting(fn, kind, m.group(1)[-1], nan if value is None else tuple(value.tolist())))
    for m in _TRIGGER.finditer(line):
        args = _eval_args(line[m.end():], env)
        fn = "VOLT" if m.group(2).endswith("v") else "CURR"
        vals = args[:1] if m.group(2).startswith("list") else args[:2]
        flat = nan if not vals or any(v is None for v in vals) else tuple(np.concatenate(vals).tolist())
        settings.append(SourceSetting(fn, "level", m.group(1)[-1], flat))
    for m in _FACTORY.finditer(line):
        args = _eval_args(line[m.end():], env)
        fn = "VOLT" if m.group(1) == "V" else "CURR"
        vals = args[:1] if m.group(2) == "List" else args[:2]
        flat = nan if not vals or any(v is None for v in vals) else tuple(np.concatenate(vals).tolist())
        settings.append(SourceSetting(fn, "level", m.group(3)[-1], flat))
    return settings


# -- the wire audit ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmuAuditLimits:
    max_voltage: float  # V
    max_current: float  # A


@dataclass(frozen=True)
class BoardAuditLimits:
    max_read_voltage: float  # V
    max_mvm_voltage: float  # V
    max_pulse_amplitude: float  # V
    min_pulse_width: float  # s
    max_pulse_width: float  # s
    max_tia_range: float  # A


class WireAudit(_Record):
    """Parses every byte sent to the watched emulators and records values beyond the limits."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[str, str]] = []  # (instrument, line or frame summary)
        self._detach: list[Callable[[], None]] = []

    def _tap(self, emulator: Any, tap: Callable[[bytes], None]) -> None:
        emulator.add_tap(tap)
        self._detach.append(lambda: emulator.remove_tap(tap))

    def close(self) -> None:
        """Stop watching."""
        for undo in self._detach:
            undo()
        self._detach.clear()

    def watch_smu(self, emulator: Any, language: str, channels: Mapping[str, tuple[str, SmuAuditLimits]]) -> None:
        """Watch a SCPI or TSP emulator; ``channels`` maps channel ('' '1' '2' 'a' 'b') → (name, limits).

        A value sent to a channel the station does not configure counts against the strictest
        configured limits of that emulator.
        """
        strictest = SmuAuditLimits(min(lim.max_voltage for _, lim in channels.values()),
                                   min(lim.max_current for _, lim in channels.values()))
        label = "/".join(name for name, _ in channels.values())
        parse = tsp_source_settings if language == "tsp" else scpi_source_settings
        buf = bytearray()

        def tap(data: bytes) -> None:
            buf.extend(data)
            while (idx := buf.find(b"\n")) >= 0:
                line = bytes(buf[:idx]).rstrip(b"\r").decode("ascii", errors="replace")
                del buf[: idx + 1]
                self.messages.append((label, line))
                self.count(label)
                for s in parse(line):
                    ch = s.channel
                    if ch not in channels and language == "scpi" and ch in ("", "1") and len(channels) == 1:
                        ch = next(iter(channels))
                    name, lim = channels.get(ch, (label, strictest))
                    limit = lim.max_voltage if s.function == "VOLT" else lim.max_current
                    unit = "V" if s.function == "VOLT" else "A"
                    self.check_abs(name, f"{s.kind} ({unit})", s.values, limit, line)

        self._tap(emulator, tap)

    def watch_board(self, emulator: Any, name: str, limits: BoardAuditLimits) -> None:
        """Watch the crossbar board's frames."""
        buf = bytearray()
        state: dict[str, Any] = {"read_voltage": None, "rows": None, "cols": None}
        lim = limits
        f32 = np.float32

        def over(values: Any, limit: float) -> Any:
            # float32 on the wire: a host value within the limit rounds to at most float32(limit)
            return np.asarray(values, dtype=np.float32).astype(float), float(f32(limit))

        def width_ns_ok(ns: Any, evidence: str) -> None:
            self.check_range(name, "pulse width (ns)", ns, round(lim.min_pulse_width * 1e9),
                             round(lim.max_pulse_width * 1e9), evidence)

        def tap(data: bytes) -> None:
            buf.extend(data)
            for frame in bp.split_frames(buf):
                if isinstance(frame, Exception):
                    self.messages.append((name, f"undecodable frame: {frame}"))
                    continue
                self.count(name)
                try:
                    op = bp.Op(frame.opcode)
                except ValueError:
                    self.messages.append((name, f"unknown opcode 0x{frame.opcode:02x}"))
                    continue
                self.messages.append((name, op.name))
                try:
                    self._board_frame(name, lim, state, op, frame.payload, over, width_ns_ok)
                except bp.PayloadError as exc:  # the board rejects it (nothing applied)
                    self.messages.append((name, f"{op.name} rejected by the codec: {exc}"))

        self._tap(emulator, tap)

    def _board_frame(self, name: str, lim: BoardAuditLimits, state: dict[str, Any], op: bp.Op, payload: bytes,
                     over: Callable[..., Any], width_ns_ok: Callable[..., None]) -> None:
        ev = op.name
        if op == bp.Op.CONFIGURE:
            cfg = bp.Configuration.unpack(payload)
            self.check_abs(name, "read voltage (V)", *over(cfg.read_voltage, lim.max_read_voltage), ev, rel=0)
            self.check_abs(name, "TIA range (A)", *over(cfg.tia_range, lim.max_tia_range), ev, rel=0)
            state.update(read_voltage=cfg.read_voltage, rows=cfg.active_rows, cols=cfg.active_cols)
        elif op in (bp.Op.READ_CELL, bp.Op.READ_ALL, bp.Op.READ_CELLS, bp.Op.CAP_READ_CELLS,
                    bp.Op.CAP_READ_ALL) and state["read_voltage"] is not None:
            self.check_abs(name, "read voltage (V)", *over(state["read_voltage"], lim.max_read_voltage), ev, rel=0)
        elif op in (bp.Op.MVM_FORWARD, bp.Op.MVM_TRANSPOSE, bp.Op.CAP_MVM_FORWARD, bp.Op.CAP_MVM_TRANSPOSE):
            v = bp.unpack_vector(payload, len(payload) // 4)
            self.check_abs(name, "MVM input voltage (V)", *over(v, lim.max_mvm_voltage), ev, rel=0)
        elif op == bp.Op.CLOSED_LOOP_SOLVE:
            _, u = bp.unpack_closed_loop_solve(payload)
            self.check_abs(name, "closed-loop input voltage (V)", *over(u, lim.max_mvm_voltage), ev, rel=0)
        elif op == bp.Op.PULSE:
            _, _, amplitude, width_ns = bp.unpack_pulse(payload)
            self.check_abs(name, "pulse amplitude (V)", *over(amplitude, lim.max_pulse_amplitude), ev, rel=0)
            width_ns_ok(width_ns, ev)
        elif op == bp.Op.PULSE_BATCH:
            records, _ = bp.unpack_pulse_batch(payload)
            self.check_abs(name, "pulse amplitude (V)", *over(records["amplitude"], lim.max_pulse_amplitude), ev,
                           rel=0)
            width_ns_ok(records["width_ns"], ev)
        elif op == bp.Op.OUTER_PRODUCT:
            amplitude, width_ns = np.frombuffer(payload[:4], "<f4")[0], np.frombuffer(payload[4:8], "<u4")[0]
            self.check_abs(name, "pulse amplitude (V)", *over(amplitude, lim.max_pulse_amplitude), ev, rel=0)
            width_ns_ok(width_ns, ev)


# -- the physics audit ------------------------------------------------------------------------------------
class PhysicsAudit(_Record):
    """Records what the simulated physics was made to apply, by wrapping the bench's objects in place.

    ``dac_tolerance`` (V): how far the board's input DAC may round a voltage at the limit upwards
    (half a DAC step of its range; 0 when the limits lie on the DAC grid).
    """

    def __init__(self) -> None:
        super().__init__()
        self._undo: list[Callable[[], None]] = []
        self._in_closed_loop = False

    def close(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _wrap(self, obj: Any, method: str, before: Callable[..., None], after: Callable[..., None] | None = None
              ) -> None:
        original = getattr(obj, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            before(*args, **kwargs)
            result = original(*args, **kwargs)
            if after is not None:
                after(result, *args, **kwargs)
            return result

        setattr(obj, method, wrapper)
        self._undo.append(lambda: delattr(obj, method) if method in vars(obj) else None)

    def watch_terminal(self, terminal: Any, name: str, limits: SmuAuditLimits) -> None:
        """Every stress of whatever load is on the terminal: |V| <= max_voltage, current limit <= max_current."""
        audit = self

        class ObservedLoad:
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            def current(self, voltage: float) -> float:
                return self.inner.current(voltage)

            def stress(self, voltage: float, duration: float, current_limit: float) -> None:
                audit.count(name)
                ev = f"stress {voltage:g} V for {duration:g} s, limit {current_limit:g} A on {self.inner.describe()}"
                audit.check_abs(name, "terminal voltage (V)", voltage, limits.max_voltage, ev, rel=1e-6)
                if voltage != 0:  # at 0 V nothing is sourced: the compliance setting is moot
                    audit.check_abs(name, "current limit (A)", current_limit, limits.max_current, ev, rel=1e-6)
                audit.check_abs(name, "terminal current (A)", self.inner.current(voltage),
                                limits.max_current, ev, rel=1e-3)
                self.inner.stress(voltage, duration, current_limit)

            def describe(self) -> str:
                return self.inner.describe()

        original_default, original_load, original_connect = terminal.default_load, terminal.load, terminal.connect
        terminal.default_load = ObservedLoad(original_default)
        terminal.load = ObservedLoad(original_load) if original_load is not original_default else terminal.default_load

        def connect(load: Any) -> None:
            original_connect(ObservedLoad(load))

        terminal.connect = connect

        def undo() -> None:
            terminal.default_load = original_default
            terminal.load = getattr(terminal.load, "inner", terminal.load)
            del terminal.connect

        self._undo.append(undo)

    def watch_board(self, board_emulator: Any, name: str, limits: BoardAuditLimits, dac_tolerance: float = 0.0
                    ) -> None:
        """Pulses, outer products and line voltages the crossbar model received; closed-loop inputs and outputs."""
        model = board_emulator.model
        lim = limits
        line_limit = max(lim.max_read_voltage, lim.max_mvm_voltage)

        def pulses(rows: Any, cols: Any, amplitudes: Any, widths: Any) -> None:
            self.count(name)
            self.check_abs(name, "pulse amplitude (V)", amplitudes, lim.max_pulse_amplitude, "apply_pulses", rel=1e-6)
            self.check_range(name, "pulse width (s)", widths, lim.min_pulse_width * (1 - 1e-6),
                             lim.max_pulse_width * (1 + 1e-6), "apply_pulses")

        def outer(row_trains: Any, col_trains: Any, amplitude: float, width: float) -> None:
            self.count(name)
            self.check_abs(name, "pulse amplitude (V)", amplitude, lim.max_pulse_amplitude, "outer_product_update",
                           rel=1e-6)
            self.check_range(name, "pulse width (s)", width, lim.min_pulse_width * (1 - 1e-6),
                             lim.max_pulse_width * (1 + 1e-6), "outer_product_update")

        def lines(what: str) -> Callable[..., None]:
            def check(voltages: Any, *args: Any, **kwargs: Any) -> None:
                if self._in_closed_loop:
                    return  # the circuit's own iterations; its settled outputs are checked below
                self.count(name)
                self.check_abs(name, "line voltage (V)", voltages, line_limit, what, absolute=dac_tolerance)
            return check

        def cell(row: int, col: int, voltage: float, noise: bool = True) -> None:
            if noise and not self._in_closed_loop:  # a board read (an SMU probe calls with noise=False)
                self.count(name)
                self.check_abs(name, "read voltage (V)", voltage, lim.max_read_voltage, "cell_current",
                               absolute=dac_tolerance)

        self._wrap(model, "apply_pulses", pulses)
        self._wrap(model, "outer_product_update", outer)
        self._wrap(model, "column_currents", lines("column_currents"))
        self._wrap(model, "row_currents", lines("row_currents"))
        self._wrap(model, "cell_current", cell)

        circuit = board_emulator.closed_loop

        def enter(*args: Any, **kwargs: Any) -> None:
            self.count(name)
            if args:
                u = np.asarray(args[0], dtype=float) if np.ndim(args[0]) else None
                if u is not None:
                    self.check_abs(name, "closed-loop input voltage (V)", u, lim.max_mvm_voltage, "closed loop",
                                   absolute=dac_tolerance)
            self._in_closed_loop = True

        def leave(reading: Any, *args: Any, **kwargs: Any) -> None:
            self._in_closed_loop = False
            self.check_abs(name, "closed-loop output voltage (V)", reading.voltages, lim.max_mvm_voltage,
                           "closed-loop outputs (drive the columns)", rel=1e-6)

        for method in ("solve", "eigenvector"):
            original = getattr(circuit, method)

            def wrapper(*args: Any, _original: Any = original, _method: str = method, **kwargs: Any) -> Any:
                enter(*args, **kwargs) if _method == "solve" else enter()
                try:
                    reading = _original(*args, **kwargs)
                finally:
                    self._in_closed_loop = False
                leave(reading)
                return reading

            setattr(circuit, method, wrapper)
            self._undo.append(lambda m=method: delattr(circuit, m) if m in vars(circuit) else None)


def attach(bench: Any, instruments: Iterable[Any]) -> tuple[WireAudit, PhysicsAudit]:
    """Wire and physics audits of a :class:`~xbarlab.sim.bench.SimBench` against the station's limits.

    ``instruments``: the station's instrument configs (``name``, ``driver``, ``channel``,
    ``spec.kind``, ``limits`` with the limit attributes).
    """
    wire, physics = WireAudit(), PhysicsAudit()
    by_emulator: dict[int, tuple[Any, str, dict[str, tuple[str, SmuAuditLimits]]]] = {}
    for inst in instruments:
        lim = inst.limits
        emulator = bench.emulators[inst.name]
        if inst.spec.kind == "board":
            blim = BoardAuditLimits(lim.max_read_voltage, lim.max_mvm_voltage, lim.max_pulse_amplitude,
                                    lim.min_pulse_width, lim.max_pulse_width, lim.max_tia_range)
            wire.watch_board(emulator, inst.name, blim)
            physics.watch_board(emulator, inst.name, blim, dac_tolerance=_dac_tolerance(bench, blim))
            continue
        slim = SmuAuditLimits(lim.max_voltage, lim.max_current)
        language = "tsp" if inst.driver == "keithley2600" else "scpi"
        entry = by_emulator.setdefault(id(emulator), (emulator, language, {}))
        entry[2][str(inst.channel or "")] = (inst.name, slim)
        physics.watch_terminal(bench.terminals[inst.name], inst.name, slim)
    for emulator, language, channels in by_emulator.values():
        wire.watch_smu(emulator, language, channels)
    return wire, physics


def _dac_tolerance(bench: Any, lim: BoardAuditLimits) -> float:
    """Half a step of the board's input DAC (V) if a limit is not on its grid, else 0."""
    board = bench.board
    v_range = float(board.identity.limits.max_input_voltage)
    lsb = 2 * v_range / 2 ** int(bench.periphery.dac_bits)
    on_grid = all(abs(x / lsb - round(x / lsb)) < 1e-9 for x in (lim.max_read_voltage, lim.max_mvm_voltage))
    return 0.0 if on_grid else lsb / 2
