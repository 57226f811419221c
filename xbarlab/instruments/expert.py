"""Checks for the expert escape hatch: raw SCPI, TSP and board frames, parsed and limit-checked.

``Station.expert_raw(name)`` hands out a loudly named link that sends raw messages to one
instrument. Every message is parsed here first and refused (nothing sent) unless each of its
parts is on an allowlist: sourcing values (levels, sweep/list points, compliance/protection,
pulse amplitudes and widths, MVM/read/closed-loop inputs) are checked against the station's
limits; anything the parser does not know, or cannot evaluate (``MAX``, an expression), is
refused. The rules follow the instruments' reference manuals (SCPI-99 headers; the Keithley
2400/2450 and Keysight B2900 command trees; the 2600B TSP ``smuX`` attributes) and the board
protocol (``docs/board-protocol.md``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.errors import SafetyAccessError, SafetyLimitError
from xbarlab.protocol import board as bp


@dataclass
class MessageState:
    """What one raw message set so far, in order: the source function and the functions whose
    compliance it set (a level or output-on needs both earlier in the same message)."""

    function: str | None = None  # "VOLT" | "CURR"
    compliance: set[str] = field(default_factory=set)  # functions whose compliance this message set

    def require(self, name: str, function: str | None, what: str, message: str) -> None:
        fn = function or self.function
        if fn is None or self.function != fn or fn not in self.compliance:
            need = {"VOLT": "current compliance", "CURR": "voltage compliance"}.get(fn or "", "compliance")
            raise _refuse(name, f"{what} needs the source function ({fn or 'VOLT/CURR'}) and its {need} set "
                          "earlier in the same message", message)


def _refuse(name: str, what: str, message: str) -> SafetyAccessError:
    return SafetyAccessError(f"{name}: expert link refused {message.strip()[:120]!r}: {what}; nothing was sent")


def _number(name: str, text: str, message: str) -> float:
    t = text.strip()
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", t):
        raise _refuse(name, f"sourcing value {t!r} is not a plain number", message)
    return float(t)


def _abs_ok(name: str, what: str, value: float, limit: float) -> None:
    if not (math.isfinite(value) and abs(value) <= limit):
        raise SafetyLimitError(name, what, value, f"|{what}| <= {limit:g}")


def _positive_ok(name: str, what: str, value: float, limit: float) -> None:
    if not (math.isfinite(value) and 0 < value <= limit):
        raise SafetyLimitError(name, what, value, f"(0, {limit:g}]")


# -- SCPI --------------------------------------------------------------------------------------------------
_VOWELS = set("AEIOU")
_OPTIONAL = {"LEV", "IMM", "AMPL", "DC", "STAT"}
_COMMON = {"*IDN?", "*RST", "*CLS", "*OPC", "*OPC?", "*WAI", "*ESR?", "*STB?", "*TRG", "*TST?"}
#: roots that only configure measurement, triggering, buffers and reporting (nothing sourced)
_SCPI_MEASURE_ROOTS = {"SENS", "FORM", "TRAC", "TRIG", "ARM", "INIT", "ABOR", "FETC", "READ", "MEAS", "CALC",
                       "STAT", "DISP"}
#: SOURce subtrees that select a function, range or timing (nothing sourced)
_SCPI_SOURCE_SETTINGS = {("FUNC",), ("FUNC", "MODE"), ("VOLT", "MODE"), ("CURR", "MODE"), ("VOLT", "RANG"),
                         ("CURR", "RANG"), ("VOLT", "RANG", "AUTO"), ("CURR", "RANG", "AUTO"), ("DEL",),
                         ("DEL", "AUTO"), ("SWE", "POIN"), ("SWE", "SPAC"), ("SWE", "DIR"), ("SWE", "RANG")}


def _short(word: str) -> str:
    w = word.upper()
    return w if len(w) <= 4 else (w[:3] if w[3] in _VOWELS else w[:4])


def _split(text: str, sep: str) -> list[str]:
    out, cur, quote = [], [], ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == sep:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def check_scpi(name: str, message: str, limits: Any, channel: str) -> bool:
    """Refuse (raise) unless every program message unit of ``message`` is allowed; returns whether the
    message resets the instrument (``*RST``). ``channel``: the SMU's channel suffix ('' for one-channel SMUs).

    A message that sets a source level or switches the output on must itself set the source function and
    that function's compliance first, so nothing depends on what the instrument held before (a reset, a
    front-panel change)."""
    if "\n" in message or "\r" in message:
        raise _refuse(name, "one message per call (no line breaks)", message)
    resets = False
    state = MessageState()
    for index, unit in enumerate(_split(message, ";")):
        unit = unit.strip()
        if not unit:
            continue
        header, _, args = unit.partition(" ")
        head = header.upper()
        if head.startswith("*"):
            if head not in _COMMON:
                raise _refuse(name, f"common command {header} is not allowed (e.g. *RCL recalls a stored setup)",
                              message)
            resets |= head == "*RST"
            continue
        if index and not header.startswith(":"):
            raise _refuse(name, "use absolute headers (':...') after ';'", message)
        nodes = []
        for node in header.strip(":").rstrip("?").split(":"):
            m = re.fullmatch(r"([A-Za-z]+)(\d*)", node)
            if not m:
                raise _refuse(name, f"malformed header {header!r}", message)
            word, suffix = _short(m.group(1)), m.group(2)
            if word in ("SOUR", "SENS", "OUTP") and (suffix or "1") != (channel or "1"):
                raise _refuse(name, f"channel {suffix or '1 (no suffix)'} is not this instrument's channel "
                              f"{channel or '1'}", message)
            nodes.append(word)
        if not header.endswith("?"):
            lists = re.findall(r"\(@([^)]*)\)", args)
            if lists and any(lst.strip() != (channel or "1") for lst in lists):
                raise _refuse(name, "a channel list naming another channel", message)
        if header.endswith("?"):
            if nodes[0] == "SYST" or nodes[0] in _SCPI_MEASURE_ROOTS or nodes[0] in ("SOUR", "OUTP"):
                continue
            raise _refuse(name, f"query {header} is not on the allowlist", message)
        if nodes and nodes[0] in ("VOLT", "CURR", "LIST", "FUNC", "SWE", "DEL"):
            nodes = ["SOUR", *nodes]  # the SOURce root is optional on these instruments
        core = [n for n in nodes if n not in _OPTIONAL]
        values = [a for a in _split(args, ",") if a.strip()]
        if core[0] == "OUTP":
            if core[1:]:
                raise _refuse(name, f"{header} is not on the allowlist", message)
            on = args.strip().upper() in ("ON", "1")
            if not on and args.strip().upper() not in ("OFF", "0"):
                raise _refuse(name, f"output state {args.strip()!r} is not ON/OFF", message)
            if on:
                state.require(name, None, "output on", message)
            continue
        if core[0] == "SENS":
            if len(core) >= 3 and core[1] in ("VOLT", "CURR") and core[2] == "PROT":
                if len(core) > 3 or len(values) != 1:
                    raise _refuse(name, f"{header} is not on the allowlist", message)
                limit = limits.max_current if core[1] == "CURR" else limits.max_voltage
                _positive_ok(name, f"compliance ({'A' if core[1] == 'CURR' else 'V'})",
                             abs(_number(name, values[0], message)), limit)
                state.compliance.add("VOLT" if core[1] == "CURR" else "CURR")
            continue
        if core[0] in _SCPI_MEASURE_ROOTS:
            continue
        if core[0] == "SYST" and core[1:] in (["CLE"], ["PRES"], ["BEEP"], ["BEEP", "STAT"]):
            resets |= core[1:] == ["PRES"]
            continue
        if core[0] != "SOUR":
            raise _refuse(name, f"{header} is not on the allowlist", message)
        _check_scpi_source(name, tuple(core[1:]), values, limits, state, message)
    return resets


def _check_scpi_source(name: str, tail: tuple[str, ...], values: list[str], limits: Any, state: MessageState,
                       message: str) -> None:
    if tail in (("FUNC",), ("FUNC", "MODE")):
        fn = _short(values[0].strip().strip('"')) if len(values) == 1 else ""
        if fn not in ("VOLT", "CURR"):
            raise _refuse(name, "source function must be VOLT or CURR", message)
        if fn not in state.compliance:
            raise _refuse(name, f"switching to {fn} needs its compliance set earlier in the same message", message)
        state.function = fn
        return
    if tail in _SCPI_SOURCE_SETTINGS:
        return
    if any("(" in v for v in values):
        raise _refuse(name, "channel lists are not allowed in sourcing commands", message)
    nums = [_number(name, v, message) for v in values]
    if not nums:
        raise _refuse(name, "a sourcing command without a value", message)
    fn = tail[0] if tail else ""
    if fn in ("VOLT", "CURR"):
        lim = limits.max_voltage if fn == "VOLT" else limits.max_current
        unit = "V" if fn == "VOLT" else "A"
        rest = tail[1:]
        if rest in ((), ("TRIG",), ("STAR",), ("STOP",), ("CENT",)):
            _abs_ok(name, f"source level ({unit})", nums[0], lim)
            state.require(name, fn, "a source level", message)
            return
        if rest == ("SPAN",) or rest == ("STEP",):
            _abs_ok(name, f"sweep {rest[0].lower()} ({unit})", nums[0] / 2, lim)
            state.require(name, fn, "a sweep setting", message)
            return
        if rest == ("ILIM",) and fn == "VOLT":
            _positive_ok(name, "compliance current (A)", abs(nums[0]), limits.max_current)
            state.compliance.add("VOLT")
            return
        if rest == ("VLIM",) and fn == "CURR":
            _positive_ok(name, "compliance voltage (V)", abs(nums[0]), limits.max_voltage)
            state.compliance.add("CURR")
            return
        if rest == ("PROT",):  # overvoltage/overcurrent protection: at most the limit
            _positive_ok(name, f"protection ({unit})", abs(nums[0]), lim)
            return
    if len(tail) == 2 and tail[0] == "LIST" and tail[1] in ("VOLT", "CURR"):
        lim = limits.max_voltage if tail[1] == "VOLT" else limits.max_current
        for v in nums:
            _abs_ok(name, f"list level ({'V' if tail[1] == 'VOLT' else 'A'})", v, lim)
        state.require(name, tail[1], "a source list", message)
        return
    if len(tail) == 3 and tail[0] == "SWE" and tail[1] in ("VOLT", "CURR") and tail[2] == "LIN" and len(nums) >= 3:
        lim = limits.max_voltage if tail[1] == "VOLT" else limits.max_current
        for v in nums[:2]:
            _abs_ok(name, f"sweep level ({'V' if tail[1] == 'VOLT' else 'A'})", v, lim)
        state.require(name, tail[1], "a sweep", message)
        return
    raise _refuse(name, f"unknown sourcing command :SOUR:{':'.join(tail)}", message)


# -- TSP (2600B) ---------------------------------------------------------------------------------------------
_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def check_tsp(name: str, message: str, limits: Any, smu: str) -> bool:
    """Refuse (raise) unless every ';'-separated statement of ``message`` is an allowed TSP statement
    on ``smu`` ('smua'/'smub'); returns whether it resets the channel. Levels and output-on need the
    source function and its compliance set earlier in the same message (as :func:`check_scpi`)."""
    if "\n" in message or "\r" in message:
        raise _refuse(name, "one message per call (no line breaks)", message)
    s = re.escape(smu)
    resets = False
    state = MessageState()
    for stmt in (p.strip() for p in _split(message, ";")):
        if not stmt:
            continue
        m = re.fullmatch(rf"{s}\.source\.(levelv|leveli|limitv|limiti)\s*=\s*(\S+)", stmt)
        if m:
            what, value = m.group(1), _number(name, m.group(2), message)
            if what == "levelv":
                _abs_ok(name, "source level (V)", value, limits.max_voltage)
                state.require(name, "VOLT", "a source level", message)
            elif what == "leveli":
                _abs_ok(name, "source level (A)", value, limits.max_current)
                state.require(name, "CURR", "a source level", message)
            elif what == "limiti":
                _positive_ok(name, "compliance current (A)", value, limits.max_current)
                state.compliance.add("VOLT")
            else:
                _positive_ok(name, "compliance voltage (V)", value, limits.max_voltage)
                state.compliance.add("CURR")
            continue
        m = re.fullmatch(rf"{s}\.source\.output\s*=\s*(?:{s}\.OUTPUT_(ON|OFF)|([01]))", stmt)
        if m:
            if m.group(1) == "ON" or m.group(2) == "1":
                state.require(name, None, "output on", message)
            continue
        m = re.fullmatch(rf"{s}\.source\.func\s*=\s*(?:{s}\.OUTPUT_DC(VOLTS|AMPS)|([01]))", stmt)
        if m:
            fn = "VOLT" if m.group(1) == "VOLTS" or m.group(2) == "1" else "CURR"
            if fn not in state.compliance:
                raise _refuse(name, f"switching to {fn} needs its compliance set earlier in the same message",
                              message)
            state.function = fn
            continue
        if re.fullmatch(rf"{s}\.(?:source|measure)\.(?:rangev|rangei|autorangev|autorangei|nplc|count|autozero)"
                        rf"\s*=\s*(?:{_NUM}|{s}\.[A-Z_]+)", stmt):
            continue
        if re.fullmatch(rf"{s}\.reset\(\s*\)", stmt):
            resets = True
            continue
        if re.fullmatch(rf"(?:errorqueue\.clear|{s}\.nvbuffer[12]\.clear)\(\s*\)", stmt):
            continue
        if re.fullmatch(rf"{s}\.measure\.(?:i|v|iv|r|p)\(\s*(?:{s}\.nvbuffer[12]\s*(?:,\s*{s}\.nvbuffer[12]\s*)?)?\)",
                        stmt):
            continue
        if re.fullmatch(rf"print\(\s*(?:{s}\.(?:measure\.(?:i|v|iv|r|p)\(\s*\)|source\.\w+|[A-Z_]+)|"
                        r"errorqueue\.(?:count|next\(\s*\))|localnode\.\w+)\s*\)", stmt):
            continue
        if re.fullmatch(rf"printbuffer\(\s*\d+\s*,\s*\d+\s*,\s*{s}\.nvbuffer[12](?:\.\w+)?\s*\)", stmt):
            continue
        if stmt == "*IDN?":
            continue
        raise _refuse(name, f"TSP statement {stmt[:60]!r} is not on the allowlist", message)
    return resets


# -- board frames --------------------------------------------------------------------------------------------
_BOARD_QUERIES = {bp.Op.IDENTIFY, bp.Op.GET_STATUS, bp.Op.ALL_OFF, bp.Op.READ_CELL, bp.Op.READ_ALL,
                  bp.Op.READ_CELLS, bp.Op.ROUTE_SMU, bp.Op.UNROUTE_SMU, bp.Op.CLOSED_LOOP_INFO}


def check_board(name: str, opcode: int, payload: bytes, limits: Any, read_voltage: float | None,
                rail: Callable[[], float]) -> bp.Op:
    """Refuse (raise) a board request whose sourcing values exceed the limits; returns the opcode.

    CONFIGURE is refused here (the typed ``configure`` keeps the driver's record of the read voltage).
    """
    try:
        op = bp.Op(opcode)
    except ValueError:
        raise _refuse(name, f"unknown opcode 0x{opcode:02x}", f"opcode 0x{opcode:02x}") from None
    what = op.name
    f32 = np.float32
    try:
        if op in _BOARD_QUERIES:
            if op in (bp.Op.READ_CELL, bp.Op.READ_ALL, bp.Op.READ_CELLS) and read_voltage is not None:
                _abs_ok(name, "read voltage (V)", read_voltage, limits.max_read_voltage)
            return op
        if op in (bp.Op.MVM_FORWARD, bp.Op.MVM_TRANSPOSE):
            if len(payload) % 4:
                raise _refuse(name, "MVM payload is not a float32 vector", what)
            v = bp.unpack_vector(payload, len(payload) // 4)
            _vector_ok(name, "MVM input voltage (V)", v, limits.max_mvm_voltage)
            return op
        if op == bp.Op.PULSE:
            _, _, amplitude, width_ns = bp.unpack_pulse(payload)
            _pulses_ok(name, limits, np.array([amplitude], f32), np.array([width_ns]))
            return op
        if op == bp.Op.PULSE_BATCH:
            records, _ = bp.unpack_pulse_batch(payload)
            if len(records) > limits.max_batch_pulses:
                raise SafetyLimitError(name, "pulses in one batch", float(len(records)),
                                       f"<= {limits.max_batch_pulses}")
            _pulses_ok(name, limits, records["amplitude"], records["width_ns"])
            return op
        if op == bp.Op.OUTER_PRODUCT:
            if len(payload) < bp.OUTER_PRODUCT_HEADER:
                raise _refuse(name, "OUTER_PRODUCT payload too short", what)
            amplitude = np.frombuffer(payload[:4], "<f4")
            width_ns = np.frombuffer(payload[4:8], "<u4")
            _pulses_ok(name, limits, amplitude, width_ns)
            return op
        if op in (bp.Op.CLOSED_LOOP_SOLVE, bp.Op.CLOSED_LOOP_EIGEN):
            if op == bp.Op.CLOSED_LOOP_SOLVE:
                _, u = bp.unpack_closed_loop_solve(payload)
                _vector_ok(name, "closed-loop input voltage (V)", u, limits.max_mvm_voltage)
            else:
                _, g = bp.unpack_closed_loop_eigen(payload)
                _positive_ok(name, "feedback conductance g_lambda (S)", float(g), math.inf)
            value = rail()  # the board's output rail (may ask the board once)
            if not value <= limits.max_mvm_voltage:
                raise SafetyLimitError(name, "closed-loop output rail (V)", value,
                                       f"<= max_mvm_voltage {limits.max_mvm_voltage:g}")
            return op
    except bp.PayloadError as exc:
        raise _refuse(name, f"malformed payload: {exc}", what) from None
    raise _refuse(name, f"{what} is not available through the expert link (use the typed operation)", what)


def _vector_ok(name: str, what: str, v: np.ndarray, limit: float) -> None:
    v = np.asarray(v, dtype=float)
    bad = ~np.isfinite(v) | (np.abs(v) > float(np.float32(limit)))
    if bad.any():
        raise SafetyLimitError(name, what, float(v[bad][0]), f"|{what}| <= {limit:g}")


def _pulses_ok(name: str, limits: Any, amplitudes: np.ndarray, widths_ns: np.ndarray) -> None:
    _vector_ok(name, "pulse amplitude (V)", amplitudes, limits.max_pulse_amplitude)
    w = np.asarray(widths_ns, dtype=float) * 1e-9
    low, high = limits.min_pulse_width, limits.max_pulse_width
    bad = (w < low * (1 - 1e-9)) | (w > high * (1 + 1e-9))
    if bad.any():
        raise SafetyLimitError(name, "pulse width (s)", float(w[bad][0]), f"[{low:g}, {high:g}]")
