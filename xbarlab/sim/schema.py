"""Schema of a station's ``[sim]`` tables: allowed keys, types and ranges, checked before anything is built.

The keys of each table come from the simulator classes that take them (device models,
``Periphery``, ``HardwareLimits``, ``BoardTiming``, ``OpAmpSpec``, ``FaultPlan``), so a new
parameter is accepted as soon as the class has it; the ranges below are what the physics and
the emulated hardware accept. :func:`sim_problems` returns one line per problem, each naming
its key (``sim.array.rows: ...``); unknown keys get a "did you mean" suggestion.

An array is also refused up front when the simulator would need more memory than the
machine has (:func:`estimated_memory`), with the estimate in the message.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xbarlab.protocol.board import HardwareLimits
from xbarlab.sim.array import IR_SOLVERS
from xbarlab.sim.board_emulator import BoardEmulator, BoardTiming
from xbarlab.sim.cap_cell import CapCellParams
from xbarlab.sim.closed_loop import OpAmpSpec
from xbarlab.sim.devices import DEVICES
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.periphery import Periphery

#: Peak resident memory of a simulated array per cell (bytes) with wire resistance: the sparse LU
#: factors of the nodal network dominate (measured 6.8-10 kB per cell for 64x64 to 512x512 arrays;
#: tests/test_sim_schema.py re-measures it).
BYTES_PER_CELL_WIRES = 10_000
#: ... and with ideal wires (``wire_resistance = 0``: no nodal solve; device state and caches).
BYTES_PER_CELL_IDEAL = 1_000
#: the board protocol addresses rows and columns with u16 indices
MAX_LINES = 0xFFFF


@dataclass(frozen=True)
class Rule:
    """Type and range of one key. ``kind``: "float" (int accepted), "int", "bool", "str" or "table"."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: value must be > low (else >= low)
    high_open: bool = False
    choices: tuple[str, ...] | None = None

    def check(self, value: Any, where: str) -> str | None:
        """One problem line, or None if ``value`` fits."""
        if self.kind == "table":
            return None if isinstance(value, dict) else f"{where}: expected a table, got {value!r}"
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"{where}: expected true or false, got {value!r}"
        if self.kind == "str":
            if not isinstance(value, str):
                return f"{where}: expected a string, got {value!r}"
            if self.choices is not None and value not in self.choices:
                hint = _did_you_mean(value, self.choices)
                return f"{where} = {value!r}: expected one of {', '.join(self.choices)}{hint}"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = "an integer" if self.kind == "int" else "a number"
            return f"{where}: expected {what}, got {value!r}"
        if self.kind == "int" and not isinstance(value, int):
            return f"{where}: expected an integer, got {value!r}"
        if not math.isfinite(value):
            return f"{where}: expected a finite number, got {value!r}"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"{where} = {value!r}: must be {self._range_text()}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"{where} = {value!r}: must be {self._range_text()}"
        return None

    def _range_text(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts)


def _f(low: float | None = None, high: float | None = None, *, low_open: bool = False,
       high_open: bool = False) -> Rule:
    return Rule("float", low, high, low_open, high_open)


def _i(low: int | None = None, high: int | None = None) -> Rule:
    return Rule("int", low, high)


POSITIVE = _f(0, low_open=True)
NON_NEGATIVE = _f(0)
FRACTION = _f(0, 1)
SEED = _i(0, 2**63 - 1)

_SIM = {"seed": SEED, "array": Rule("table"), "device": Rule("table"), "periphery": Rule("table"),
        "loads": Rule("table"), "faults": Rule("table"), "board": Rule("table"), "cap_cells": Rule("table")}
_ARRAY = {"rows": _i(1, MAX_LINES), "cols": _i(1, MAX_LINES), "kind": Rule("str", choices=("1T1R", "passive")),
          "wire_resistance": NON_NEGATIVE,
          "access_resistance": NON_NEGATIVE, "stuck_fraction": _f(0, 1, high_open=True),
          "ir_solver": Rule("str", choices=IR_SOLVERS)}
_DEVICE = {"g_min": POSITIVE, "g_max": POSITIVE, "v_ref": POSITIVE, "v_scale": POSITIVE, "width_ref": POSITIVE,
           "dw_min": POSITIVE, "up_down": _f(-2, 2, low_open=True, high_open=True), "c2c": NON_NEGATIVE,
           "d2d": NON_NEGATIVE, "read_noise": NON_NEGATIVE, "initial_low": FRACTION, "initial_high": FRACTION,
           "unformed_fraction": FRACTION, "forming_voltage": POSITIVE, "g_unformed": NON_NEGATIVE,
           "set_step": POSITIVE, "t0": POSITIVE, "t_read": POSITIVE, "state_dependence": FRACTION}
_PERIPHERY = {"dac_bits": _i(1, 32), "adc_bits": _i(1, 32), "gain_sigma": NON_NEGATIVE,
              "offset_sigma": NON_NEGATIVE, "noise": NON_NEGATIVE}
_BOARD = {"identity": Rule("str"), "smu_ports": _i(1, 8), "temperature": _f(-273.15),
          "limits": Rule("table"), "timing": Rule("table"), "closed_loop": Rule("table")}
_HARDWARE_LIMITS = {"max_pulse_amplitude": POSITIVE, "max_input_voltage": POSITIVE, "min_tia_range": POSITIVE,
                    "max_tia_range": POSITIVE, "min_pulse_width_ns": _i(1, 0xFFFFFFFF),
                    "max_pulse_width_ns": _i(1, 0xFFFFFFFF), "max_payload": _i(256, 0xFFFFFFFF)}
_TIMING = {"baud_rate": POSITIVE, "bits_per_byte": _i(1), "adc_channels": _i(1)}
_CLOSED_LOOP = {"open_loop_gain": POSITIVE, "gbw": POSITIVE, "rail": POSITIVE, "input_conductance": POSITIVE,
                "max_time": POSITIVE, "offset_sigma": NON_NEGATIVE, "noise_rms": NON_NEGATIVE,
                "inverter_gain_sigma": NON_NEGATIVE, "adc_bits": _i(1, 24), "seed": SEED}

_CAP_CELLS = {"v_dd": POSITIVE, "dv_step": POSITIVE, "v_knee": POSITIVE, "tau": POSITIVE, "beta": POSITIVE,
              "slope_factor": POSITIVE, "step_time": POSITIVE, "v_leak": NON_NEGATIVE}


def _did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _default_rule(default: Any) -> Rule:
    """The type rule of a parameter from its default value: bool, int, str or a finite number."""
    if isinstance(default, bool):
        return Rule("bool")
    if isinstance(default, int):
        return _i()
    if isinstance(default, str):
        return Rule("str")
    return _f()


def _defaults(cls: type) -> dict[str, Any]:
    """Default value of every field of dataclass ``cls`` that has one."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _dataclass_rules(cls: type, explicit: Mapping[str, Rule]) -> dict[str, Rule]:
    """Rules for every init field of ``cls``: the explicit rule, else one from the field's default."""
    rules: dict[str, Rule] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        rules[f.name] = explicit.get(f.name) or _default_rule(f.default)
    return rules


def _fault_rules() -> dict[str, Rule]:
    """FaultPlan switches: ``*_probability`` in [0, 1], ``*_next`` counts >= 0, seeds >= 0."""

    rules: dict[str, Rule] = {}
    for f in dataclasses.fields(FaultPlan):
        if not f.init or f.name.startswith("_"):
            continue
        if f.name.endswith("_probability"):
            rules[f.name] = FRACTION
        elif f.name.endswith("_next") or f.name == "seed":
            rules[f.name] = _i(0)
        else:
            rules[f.name] = _default_rule(f.default)
    return rules


def _periphery_rules() -> dict[str, Rule]:

    params = inspect.signature(Periphery).parameters
    return {n: _PERIPHERY.get(n) or _default_rule(p.default)
            for n, p in params.items() if n not in ("rows", "cols", "seed")}


def _check_table(table: Mapping[str, Any], rules: Mapping[str, Rule], where: str, problems: list[str]) -> dict:
    """Append a problem per unknown key and per value that breaks its rule; return the valid entries."""
    good: dict[str, Any] = {}
    for key, value in table.items():
        rule = rules.get(key)
        if rule is None:
            problems.append(f"{where}.{key}: unknown key{_did_you_mean(key, rules)}; "
                            f"expected some of {', '.join(sorted(rules))}")
            continue
        problem = rule.check(value, f"{where}.{key}")
        if problem:
            problems.append(problem)
        else:
            good[key] = value
    return good


def available_memory() -> int | None:
    """Bytes of memory the machine can give a new allocation now (None if the platform does not say).

    Linux: ``MemAvailable`` (free memory plus reclaimable caches); elsewhere the free physical pages.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def estimated_memory(rows: int, cols: int, wire_resistance: float = 0.35) -> int:
    """Peak memory (bytes) the simulator needs for a rows × cols array."""
    per_cell = BYTES_PER_CELL_WIRES if wire_resistance > 0 else BYTES_PER_CELL_IDEAL
    return rows * cols * per_cell


def _mib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def sim_problems(sim: Any, instruments: Mapping[str, Any] | None = None, *,
                 memory: int | None | bool = True) -> list[str]:
    """Every problem of a ``[sim]`` table, one line each with its key; [] when valid.

    ``instruments`` maps instrument names to their configs (``spec.kind``, ``board_port``): fault
    tables and loads must name an instrument, board ports must exist on the simulated board.
    ``memory``: True checks the array size against :func:`available_memory`; an int is the
    bytes available; False or None skips the check.
    """

    if not isinstance(sim, dict):
        return [f"sim: expected a table, got {sim!r}"]
    problems: list[str] = []
    top = _check_table(sim, _SIM, "sim", problems)
    instruments = dict(instruments or {})

    array = dict(top.get("array", {}))
    device_name = array.pop("device", "rram")
    if not isinstance(device_name, str) or device_name.lower() not in DEVICES:
        problems.append(f"sim.array.device = {device_name!r}: expected one of {', '.join(DEVICES)}"
                        f"{_did_you_mean(device_name, DEVICES)}")
        device_cls = None
    else:
        device_cls = DEVICES[device_name.lower()]
    arr = _check_table(array, _ARRAY, "sim.array", problems)
    rows, cols = arr.get("rows", 64), arr.get("cols", 64)
    if all(k in arr or k not in array for k in ("rows", "cols")):  # sizes given are valid integers
        _check_memory(rows, cols, float(arr.get("wire_resistance", 0.35)), memory, problems)

    if device_cls is not None:
        dev = _check_table(top.get("device", {}), _dataclass_rules(device_cls, _DEVICE), "sim.device", problems)
        dev = {**_defaults(device_cls), **dev}
        g_min, g_max = dev["g_min"], dev["g_max"]
        if not g_max > g_min:
            problems.append(f"sim.device: g_max ({g_max:g} S) must exceed g_min ({g_min:g} S)")
        low, high = dev.get("initial_low", 0.0), dev.get("initial_high", 1.0)
        if low > high:
            problems.append(f"sim.device: initial_low ({low:g}) exceeds initial_high ({high:g})")

    _check_table(top.get("periphery", {}), _periphery_rules(), "sim.periphery", problems)

    board = _check_table(top.get("board", {}), _BOARD, "sim.board", problems)
    default_ports = inspect.signature(BoardEmulator).parameters["smu_ports"].default
    smu_ports = board.get("smu_ports", default_ports)
    limits = _check_table(board.get("limits", {}), _dataclass_rules(HardwareLimits, _HARDWARE_LIMITS),
                          "sim.board.limits", problems)
    hw = {**_defaults(HardwareLimits), **limits}
    lo_w, hi_w = hw["min_pulse_width_ns"], hw["max_pulse_width_ns"]
    if lo_w > hi_w:
        problems.append(f"sim.board.limits: min_pulse_width_ns ({lo_w}) exceeds max_pulse_width_ns ({hi_w})")
    lo_t, hi_t = hw["min_tia_range"], hw["max_tia_range"]
    if lo_t > hi_t:
        problems.append(f"sim.board.limits: min_tia_range ({lo_t:g} A) exceeds max_tia_range ({hi_t:g} A)")
    timing_rules = {n: _TIMING.get(n) or NON_NEGATIVE for n in _dataclass_rules(BoardTiming, {})}
    _check_table(board.get("timing", {}), timing_rules, "sim.board.timing", problems)
    _check_table(board.get("closed_loop", {}), {**_dataclass_rules(OpAmpSpec, _CLOSED_LOOP), "seed": SEED},
                 "sim.board.closed_loop", problems)

    if "cap_cells" in top:
        cap_rules = {**{f.name: NON_NEGATIVE for f in dataclasses.fields(CapCellParams)}, **_CAP_CELLS}
        cap = _check_table(top["cap_cells"], _dataclass_rules(CapCellParams, cap_rules), "sim.cap_cells", problems)
        cap = {**_defaults(CapCellParams), **cap}
        for key in ("v_reset", "v_leak"):
            if not 0 <= cap[key] <= cap["v_dd"]:
                problems.append(f"sim.cap_cells.{key} = {cap[key]!r}: must lie within [0, v_dd = {cap['v_dd']:g}] V")

    names = sorted(instruments)
    smus = [n for n in names if getattr(getattr(instruments[n], "spec", None), "kind", "smu") == "smu"]
    for n in smus:
        port = getattr(instruments[n], "board_port", None)
        if isinstance(port, int) and not isinstance(port, bool) and port >= smu_ports:
            problems.append(f"instruments.{n}.board_port = {port}: the simulated board has SMU ports "
                            f"0..{smu_ports - 1} (sim.board.smu_ports = {smu_ports})")

    fault_rules = _fault_rules()
    for name, switches in top.get("faults", {}).items():
        where = f"sim.faults.{name}"
        if instruments and name not in instruments:
            problems.append(f"{where}: no instrument named {name!r}{_did_you_mean(name, names)}; "
                            f"expected one of {', '.join(names)}")
        elif not isinstance(switches, dict):
            problems.append(f"{where}: expected a table of fault switches, got {switches!r}")
        else:
            _check_table(switches, fault_rules, where, problems)

    for name, ohms in top.get("loads", {}).items():
        where = f"sim.loads.{name}"
        if instruments and name not in smus:
            problems.append(f"{where}: no SMU named {name!r}{_did_you_mean(name, smus)}; "
                            f"expected one of {', '.join(smus)}")
            continue
        problem = POSITIVE.check(ohms, where)
        if problem:
            problems.append(problem + " (a resistance in Ω)")
    return problems


def _check_memory(rows: int, cols: int, wire_resistance: float, memory: int | None | bool,
                  problems: list[str]) -> None:
    if memory is False or memory is None:
        return
    available = available_memory() if memory is True else int(memory)
    if available is None:
        return
    need = estimated_memory(rows, cols, wire_resistance)
    if need > available:
        problems.append(f"sim.array: a {rows}x{cols} array needs about {_mib(need)} of memory to simulate; "
                        f"this machine has {_mib(available)} available")
