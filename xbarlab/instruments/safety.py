"""Safety limits: an allowlist of checked operations between xbarlab and the instruments.

A station hands out :class:`SafeSourceMeter` and :class:`SafeCrossbar` objects, never drivers.
Each exposes only the operations registered in its ``OPERATIONS`` table:

* ``checked`` operations compare every value that sources energy (source levels, compliance,
  sweep ends, pulse amplitudes and widths, read/MVM/closed-loop input voltages, the closed-loop
  output rail, TIA range) with the station's limits and raise
  :class:`~xbarlab.errors.SafetyLimitError` before anything is sent;
* ``query`` operations only read (identity, status, measurements of what is already applied,
  the frozen limits).

Nothing else is reachable: raw commands (``configure``/``query``/``write`` of a SCPI driver,
``_send``), transports, the driver itself and private members raise
:class:`~xbarlab.errors.SafetyAccessError`; attributes cannot be assigned (``smu.limits = ...``
raises). The driver lives only in the closure of a dispatcher that knows nothing but the checked
operations, with a private copy of the limits, so even ``object.__getattribute__`` on the
wrapper reaches no unchecked path. What remains possible for a determined Python user is
interpreter introspection (a function's ``__closure__`` cells, ``gc.get_referents``) or
opening the instrument's address with pyvisa/pyserial directly, outside xbarlab — no xbarlab
code does either, and ``tests/test_safety_allowlist.py`` fails if any module uses them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from xbarlab.drivers.keithley2400 import Keithley2400
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keithley2600 import Keithley2600
from xbarlab.drivers.keysight_b2900 import KeysightB2900
from xbarlab.errors import ConfigError, SafetyAccessError, SafetyLimitError
from xbarlab.instruments import expert
from xbarlab.instruments.interfaces import (
    BatchedPulses,
    BoardInfo,
    CapacitorCells,
    CellReads,
    ClosedLoop,
    CrossbarArray,
    CurrentReads,
    EqpropMode,
    OuterProductUpdate,
    Pulse,
    SourceMeter,
    StatusReports,
    SweepResult,
    capabilities,
)
from xbarlab.protocol.eqprop import EqConfig


@dataclass(frozen=True)
class SmuLimits:
    """Safe operating area of one SMU channel on this bench."""

    max_voltage: float = 5.0  # V: |source level| and voltage compliance
    max_current: float = 10e-3  # A: |source level| and current compliance
    max_sweep_points: int = 2500

    def __post_init__(self) -> None:
        _positive(self, "max_voltage", "max_current", "max_sweep_points")


@dataclass(frozen=True)
class BoardLimits:
    """Safe operating area of the crossbar board on this bench."""

    max_read_voltage: float = 0.5  # V, |read voltage|
    max_mvm_voltage: float = 0.5  # V, |any MVM or closed-loop input|, and the closed-loop output rail
    max_pulse_amplitude: float = 3.0  # V, |pulse amplitude|
    min_pulse_width: float = 10e-9  # s
    max_pulse_width: float = 1e-3  # s
    max_tia_range: float = 10e-3  # A, TIA full scale
    max_batch_pulses: int = 1_000_000
    max_injection_current: float = 1e-3  # A, |equilibrium-network output current injection|

    def __post_init__(self) -> None:
        _positive(self, *(f.name for f in fields(self)))
        if self.min_pulse_width > self.max_pulse_width:
            raise ConfigError(
                f"min_pulse_width ({self.min_pulse_width:g} s) exceeds max_pulse_width "
                f"({self.max_pulse_width:g} s)"
            )


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"limit {name} must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"limit {name} must be a positive finite number, got {value!r}")


def limits_from_mapping(cls: type, mapping: dict[str, Any], where: str) -> Any:
    """Build a limits dataclass from a TOML table, naming unknown keys clearly."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown limit(s) {', '.join(unknown)}; expected some of: {', '.join(sorted(known))}"
        )
    try:
        return cls(**mapping)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


# -- value checks -----------------------------------------------------------------------------------
def _check_finite(instrument: str, name: str, value: Any) -> float:
    if isinstance(value, (str, bytes)):
        raise SafetyLimitError(instrument, name, float("nan"), "a finite number")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SafetyLimitError(instrument, name, float("nan"), "a finite number") from None
    if not math.isfinite(v):
        raise SafetyLimitError(instrument, name, v, "a finite number")
    return v


def _check_abs(instrument: str, name: str, value: Any, limit: float) -> float:
    v = _check_finite(instrument, name, value)
    if abs(v) > limit:
        raise SafetyLimitError(instrument, name, v, f"|{name}| <= {limit:g}")
    return v


def _check_range(instrument: str, name: str, value: Any, low: float, high: float) -> float:
    v = _check_finite(instrument, name, value)
    if not low <= v <= high:
        raise SafetyLimitError(instrument, name, v, f"[{low:g}, {high:g}]")
    return v


def _check_positive_up_to(instrument: str, name: str, value: Any, limit: float) -> float:
    v = _check_finite(instrument, name, value)
    if not 0 < v <= limit:
        raise SafetyLimitError(instrument, name, v, f"(0, {limit:g}]")
    return v


def _check_vector(instrument: str, name: str, values: Any, limit: float, n: int | None = None) -> np.ndarray:
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError):
        raise SafetyLimitError(instrument, name, float("nan"), "an array of finite numbers") from None
    if n is not None:
        try:
            arr = np.broadcast_to(arr, (n,)).copy()
        except ValueError:
            raise SafetyLimitError(instrument, name, float(arr.size), f"a scalar or {n} values") from None
    if not np.all(np.isfinite(arr)):
        bad = float(arr[~np.isfinite(arr)].ravel()[0])
        raise SafetyLimitError(instrument, name, bad, "finite numbers")
    if arr.size and np.max(np.abs(arr)) > limit:
        worst = float(arr.ravel()[np.argmax(np.abs(arr))])
        raise SafetyLimitError(instrument, name, worst, f"|{name}| <= {limit:g}")
    return arr


def _check_count(instrument: str, name: str, n: int, limit: int) -> None:
    if n > limit:
        raise SafetyLimitError(instrument, name, float(n), f"<= {limit}")


# -- the gate: the only holder of a driver ---------------------------------------------------------
@dataclass
class _Context:
    """What a checked operation sees: instrument name, driver, private copy of the limits."""

    name: str
    driver: Any
    limits: Any
    rail: float | None = None  # V, closed-loop output rail as the board reported it (hardware constant)
    armed: bool = False  # SMU: a checked level and compliance were set since open/reset (output may go on)
    ports: frozenset[int] | None = None  # board: SMU ports cabled to a station SMU (None: not known)


_Operation = Callable[..., Any]


def _make_gate(operations: Mapping[str, _Operation], name: str, driver: Any, limits: Any,
               ports: frozenset[int] | None = None) -> Callable[..., Any]:
    """A dispatcher that runs only the named checked operations on ``driver`` (held in its closure)."""
    ctx = _Context(name, driver, dataclasses.replace(limits), ports=ports)

    def gate(op: str, *args: Any, **kwargs: Any) -> Any:
        try:
            fn = operations[op]
        except KeyError:
            raise SafetyAccessError(f"{name}: {op!r} is not a checked operation") from None
        return fn(ctx, *args, **kwargs)

    return gate


class _Guarded:
    """Base of the safe wrappers: only the names in ``OPERATIONS`` are reachable; nothing can be assigned."""

    __slots__ = ("_gate", "_name", "_limits")
    #: public name -> "checked: what is compared with which limit" or "query: what it reads"
    OPERATIONS: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __init__(self, gate: Callable[..., Any], name: str, limits: Any) -> None:
        object.__setattr__(self, "_gate", gate)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_limits", limits)

    def __getattribute__(self, item: str) -> Any:
        if item.startswith("_") and not (item.startswith("__") and item.endswith("__")):
            raise SafetyAccessError(
                f"{object.__getattribute__(self, '_name')}: private member {item!r} is not reachable through "
                "the safety layer"
            )
        return object.__getattribute__(self, item)

    def __getattr__(self, item: str) -> Any:
        name = object.__getattribute__(self, "_name")
        ops = type(self).OPERATIONS
        raise SafetyAccessError(
            f"{name}: {item!r} is not an operation of the safety layer (raw commands, transports and drivers "
            f"are not reachable); available: {', '.join(sorted(ops))}"
        )

    def __setattr__(self, item: str, value: Any) -> None:
        name = object.__getattribute__(self, "_name")
        raise SafetyAccessError(f"{name}: {item!r} is read-only (limits and instruments are fixed when the "
                                "station opens)")

    def __delattr__(self, item: str) -> None:
        self.__setattr__(item, None)

    def __dir__(self) -> list[str]:
        return sorted(type(self).OPERATIONS)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {object.__getattribute__(self, '_name')}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be pickled or copied")

    @property
    def name(self) -> str:
        """Instrument name in the station."""
        return object.__getattribute__(self, "_name")

    @property
    def limits(self) -> Any:
        """The frozen limits this instrument is held to."""
        return object.__getattribute__(self, "_limits")


def _call(obj: _Guarded, op: str, *args: Any, **kwargs: Any) -> Any:
    return object.__getattribute__(obj, "_gate")(op, *args, **kwargs)


# -- SMU ---------------------------------------------------------------------------------------------
def _smu_compliance_current(ctx: _Context, value: Any) -> float:
    return _check_positive_up_to(ctx.name, "compliance current (A)", value, ctx.limits.max_current)


def _smu_compliance_voltage(ctx: _Context, value: Any) -> float:
    return _check_positive_up_to(ctx.name, "compliance voltage (V)", value, ctx.limits.max_voltage)


def _smu_source_voltage(ctx: _Context, level: Any, compliance_current: Any) -> None:
    level = _check_abs(ctx.name, "source voltage (V)", level, ctx.limits.max_voltage)
    compliance = _smu_compliance_current(ctx, compliance_current)
    ctx.driver.source_voltage(level, compliance)
    ctx.armed = True


def _smu_source_current(ctx: _Context, level: Any, compliance_voltage: Any) -> None:
    level = _check_abs(ctx.name, "source current (A)", level, ctx.limits.max_current)
    compliance = _smu_compliance_voltage(ctx, compliance_voltage)
    ctx.driver.source_current(level, compliance)
    ctx.armed = True


def _smu_sweep_voltage(ctx: _Context, start: Any, stop: Any, points: Any, compliance_current: Any) -> SweepResult:
    lim = ctx.limits
    start = _check_abs(ctx.name, "sweep start (V)", start, lim.max_voltage)
    stop = _check_abs(ctx.name, "sweep stop (V)", stop, lim.max_voltage)
    n = _check_finite(ctx.name, "sweep points", points)
    if int(n) != n or not 2 <= n <= lim.max_sweep_points:
        raise SafetyLimitError(ctx.name, "sweep points", n, f"an integer in [2, {lim.max_sweep_points}]")
    compliance = _smu_compliance_current(ctx, compliance_current)
    result = ctx.driver.sweep_voltage(start, stop, int(n), compliance)
    ctx.armed = True
    return result


def _smu_set_nplc(ctx: _Context, nplc: Any) -> None:
    ctx.driver.set_nplc(_check_range(ctx.name, "NPLC", nplc, 1e-3, 25.0))


def _smu_set_output(ctx: _Context, enabled: Any) -> None:
    if not isinstance(enabled, (bool, np.bool_, int)):
        raise SafetyLimitError(ctx.name, "output state", float("nan"), "True or False")
    if enabled and not ctx.armed:
        # after open or reset the instrument holds its own defaults (a 2600B: 100 mA compliance)
        raise SafetyLimitError(ctx.name, "output on", 1.0, "only after source_voltage/source_current set a checked "
                               "level and compliance")
    ctx.driver.set_output(bool(enabled))


def _smu_reset(ctx: _Context) -> None:
    ctx.armed = False
    ctx.driver.reset()


def _smu_expert(ctx: _Context, message: Any, reply: bool) -> str | None:
    """Expert link: parse ``message`` (SCPI or TSP), check every sourcing value, then send it."""
    if not isinstance(message, str) or not message.isascii():
        raise SafetyAccessError(f"{ctx.name}: the expert link sends one ASCII message (str); nothing was sent")
    driver = ctx.driver
    if isinstance(driver, Keithley2600):
        resets = expert.check_tsp(ctx.name, message, ctx.limits, driver.smu)
    elif isinstance(driver, (Keithley2400, Keithley2450, KeysightB2900)):
        channel = str(getattr(driver, "channel", "")) if isinstance(driver, KeysightB2900) else ""
        resets = expert.check_scpi(ctx.name, message, ctx.limits, channel)
    else:
        raise SafetyAccessError(f"{ctx.name}: no expert parser for {type(driver).__name__}; nothing was sent")
    if resets:
        ctx.armed = False
    if reply:
        return driver.transport.query(message)
    driver.transport.write(message)
    return None


def _passthrough(method: str) -> _Operation:
    def op(ctx: _Context) -> Any:
        return getattr(ctx.driver, method)()

    op.__name__ = method
    return op


_SMU_OPERATIONS: Mapping[str, _Operation] = MappingProxyType({
    "source_voltage": _smu_source_voltage,
    "source_current": _smu_source_current,
    "sweep_voltage": _smu_sweep_voltage,
    "set_nplc": _smu_set_nplc,
    "set_output": _smu_set_output,
    "reset": _smu_reset,
    "expert_send": lambda ctx, message: _smu_expert(ctx, message, False),
    "expert_ask": lambda ctx, message: _smu_expert(ctx, message, True),
    **{m: _passthrough(m) for m in ("identify", "output_enabled", "measure_current", "measure_voltage",
                                    "compliance_tripped", "check_errors", "close")},
})


class SafeSourceMeter(_Guarded, SourceMeter):
    """A :class:`SourceMeter` that refuses anything outside :class:`SmuLimits` and exposes nothing else."""

    __slots__ = ()
    OPERATIONS: ClassVar[Mapping[str, str]] = MappingProxyType({
        "source_voltage": "checked: |level| <= max_voltage, 0 < compliance current <= max_current",
        "source_current": "checked: |level| <= max_current, 0 < compliance voltage <= max_voltage",
        "sweep_voltage": "checked: |start|, |stop| <= max_voltage, points <= max_sweep_points, "
                         "0 < compliance current <= max_current",
        "set_nplc": "checked: 0.001 <= NPLC <= 25 (no sourcing)",
        "set_output": "checked: a bool; on only after a checked source_voltage/source_current/sweep since "
                      "open or reset",
        "reset": "checked: power-on state, output off; the output stays off until a checked source call",
        "close": "checked: releases the link (the station switched the output off)",
        "identify": "query: identity string",
        "output_enabled": "query: output state",
        "measure_current": "query: current (A) at the applied, checked source level",
        "measure_voltage": "query: voltage (V) at the applied, checked source level",
        "compliance_tripped": "query: compliance state",
        "check_errors": "query: drains the error queue",
        "name": "query: instrument name",
        "limits": "query: the frozen SmuLimits",
        "OPERATIONS": "query: this table",
    })

    def __init__(self, driver: SourceMeter, limits: SmuLimits) -> None:
        if not isinstance(limits, SmuLimits):
            raise ConfigError(f"{driver.name}: SMU limits must be SmuLimits, got {type(limits).__name__}")
        super().__init__(_make_gate(_SMU_OPERATIONS, driver.name, driver, limits), driver.name, limits)

    def identify(self) -> str:
        return _call(self, "identify")

    def reset(self) -> None:
        _call(self, "reset")

    def source_voltage(self, level: float, compliance_current: float) -> None:
        """Source ``level`` V with current compliance ``compliance_current`` A (both checked)."""
        _call(self, "source_voltage", level, compliance_current)

    def source_current(self, level: float, compliance_voltage: float) -> None:
        """Source ``level`` A with voltage compliance ``compliance_voltage`` V (both checked)."""
        _call(self, "source_current", level, compliance_voltage)

    def set_nplc(self, nplc: float) -> None:
        _call(self, "set_nplc", nplc)

    def set_output(self, enabled: bool) -> None:
        _call(self, "set_output", enabled)

    def output_enabled(self) -> bool:
        return _call(self, "output_enabled")

    def measure_current(self) -> float:
        return _call(self, "measure_current")

    def measure_voltage(self) -> float:
        return _call(self, "measure_voltage")

    def compliance_tripped(self) -> bool:
        return _call(self, "compliance_tripped")

    def sweep_voltage(self, start: float, stop: float, points: int, compliance_current: float) -> SweepResult:
        """Staircase sweep start → stop V (checked) with current compliance (checked)."""
        return _call(self, "sweep_voltage", start, stop, points, compliance_current)

    def check_errors(self) -> None:
        _call(self, "check_errors")

    def close(self) -> None:
        _call(self, "close")


# -- board -------------------------------------------------------------------------------------------
def _pulse_checks(ctx: _Context, amplitudes: Any, widths: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    lim = ctx.limits
    _check_count(ctx.name, "pulses in one batch", n, lim.max_batch_pulses)
    a = _check_vector(ctx.name, "pulse amplitude (V)", amplitudes, lim.max_pulse_amplitude, n)
    w = _check_vector(ctx.name, "pulse width (s)", widths, math.inf, n)
    if n and (w.min() < lim.min_pulse_width or w.max() > lim.max_pulse_width):
        bad = float(w[(w < lim.min_pulse_width) | (w > lim.max_pulse_width)][0])
        raise SafetyLimitError(ctx.name, "pulse width (s)", bad, f"[{lim.min_pulse_width:g}, {lim.max_pulse_width:g}]")
    return a, w


def _read_voltage_ok(ctx: _Context) -> None:
    """Reads apply the configured read voltage: check the value the board echoed at CONFIGURE."""
    cfg = getattr(ctx.driver, "configuration", None)
    if cfg is not None:
        _check_abs(ctx.name, "read voltage (V)", cfg.read_voltage, ctx.limits.max_read_voltage)


def _board_configure(ctx: _Context, read_voltage: Any, tia_range: Any, **region: Any) -> None:
    v = _check_abs(ctx.name, "read voltage (V)", read_voltage, ctx.limits.max_read_voltage)
    if v == 0:
        raise SafetyLimitError(ctx.name, "read voltage (V)", 0.0, "non-zero")
    tia = _check_positive_up_to(ctx.name, "TIA range (A)", tia_range, ctx.limits.max_tia_range)
    unknown = set(region) - {"active_rows", "active_cols"}
    if unknown:
        raise SafetyAccessError(f"{ctx.name}: configure() takes no {', '.join(sorted(unknown))}")
    ctx.driver.configure(v, tia, **region)


def _board_read(method: str) -> _Operation:
    def op(ctx: _Context, *args: Any) -> Any:
        _read_voltage_ok(ctx)
        return getattr(ctx.driver, method)(*args)

    op.__name__ = method
    return op


def _board_mvm(method: str, what: str) -> _Operation:
    def op(ctx: _Context, voltages: Any) -> Any:
        v = _check_vector(ctx.name, what, voltages, ctx.limits.max_mvm_voltage)
        return getattr(ctx.driver, method)(v)

    op.__name__ = method
    return op


def _pulse_ok(ctx: _Context, amplitude: Any, width: Any) -> tuple[float, float]:
    lim = ctx.limits
    a = _check_abs(ctx.name, "pulse amplitude (V)", amplitude, lim.max_pulse_amplitude)
    w = _check_range(ctx.name, "pulse width (s)", width, lim.min_pulse_width, lim.max_pulse_width)
    return a, w


def _board_pulse_cell(ctx: _Context, row: int, col: int, amplitude: Any, width: Any) -> None:
    a, w = _pulse_ok(ctx, amplitude, width)
    ctx.driver.pulse_cell(row, col, a, w)


def _board_pulse_batch(ctx: _Context, pulses: Any) -> None:
    try:
        pulses = [Pulse(p.row, p.col, p.amplitude, p.width) for p in pulses]
    except (TypeError, AttributeError):
        raise SafetyLimitError(ctx.name, "pulse batch", float("nan"), "a list of Pulse records") from None
    a, w = _pulse_checks(ctx, [p.amplitude for p in pulses], [p.width for p in pulses], len(pulses))
    checked = [Pulse(p.row, p.col, float(ai), float(wi)) for p, ai, wi in zip(pulses, a, w, strict=True)]
    ctx.driver.pulse_batch(checked)


def _board_pulse_arrays(ctx: _Context, rows: Any, cols: Any, amplitudes: Any, widths: Any, *,
                        readback: bool = False) -> Any:
    n = int(np.size(rows))
    a, w = _pulse_checks(ctx, amplitudes, widths, n)
    return ctx.driver.pulse_arrays(rows, cols, a, w, readback=bool(readback))


def _board_outer_product(ctx: _Context, row_trains: Any, col_trains: Any, amplitude: Any, width: Any) -> None:
    a, w = _pulse_ok(ctx, amplitude, width)
    ctx.driver.outer_product_update(row_trains, col_trains, a, w)


def _f32(value: float) -> float:
    """A float32 from the board as the shortest decimal that reads back to it (0.9, not 0.8999999761581421)."""
    return float(str(np.float32(value)))


def _closed_loop_rail_ok(ctx: _Context) -> None:
    """The op-amp outputs drive array lines up to the board's rail: it must lie within max_mvm_voltage."""
    if ctx.rail is None:
        info = ctx.driver.closed_loop_info()
        ctx.rail = _f32(info.rail)
    if not (math.isfinite(ctx.rail) and ctx.rail <= ctx.limits.max_mvm_voltage):
        raise SafetyLimitError(ctx.name, "closed-loop output rail (V)", ctx.rail,
                               f"<= max_mvm_voltage {ctx.limits.max_mvm_voltage:g} (the outputs drive the array)")


def _region(where: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(where) - {"row0", "col0", "layout"}
    if unknown:
        raise SafetyAccessError(f"closed-loop operations take no {', '.join(sorted(unknown))}")
    return dict(where)


def _board_closed_loop_solve(ctx: _Context, inputs: Any, **where: Any) -> Any:
    u = _check_vector(ctx.name, "closed-loop input voltage (V)", inputs, ctx.limits.max_mvm_voltage)
    region = _region(where)
    _closed_loop_rail_ok(ctx)
    return ctx.driver.closed_loop_solve(u, **region)


def _board_closed_loop_eigen(ctx: _Context, g_lambda: Any, n: int, **where: Any) -> Any:
    g = _check_finite(ctx.name, "feedback conductance g_lambda (S)", g_lambda)
    if g <= 0:
        raise SafetyLimitError(ctx.name, "feedback conductance g_lambda (S)", g, "> 0")
    region = _region(where)
    _closed_loop_rail_ok(ctx)
    return ctx.driver.closed_loop_eigen(g, n, **region)


def _board_closed_loop_info(ctx: _Context) -> Any:
    info = ctx.driver.closed_loop_info()
    ctx.rail = _f32(info.rail)
    return info


def _board_eq_configure(ctx: _Context, config: Any) -> Any:
    """The network's sources drive array lines: amplifier rail, bias rows and diode bias sources within
    max_mvm_voltage (checked as the board will receive them, in float32)."""
    if not isinstance(config, EqConfig):
        raise SafetyAccessError(f"{ctx.name}: eq_configure takes an EqConfig; nothing was sent")
    limit = ctx.limits.max_mvm_voltage
    rail = "equilibrium amplifier rail (V)"
    _check_finite(ctx.name, rail, config.amp_rail)  # a number before _f32 (which would parse a string)
    _check_positive_up_to(ctx.name, rail, _f32(config.amp_rail), limit)  # 0 < rail <= limit, as the board receives it
    for what, value in (("bias voltage", config.bias_voltage), ("diode bias", config.diode_bias)):
        _check_finite(ctx.name, f"equilibrium {what} (V)", value)
        _check_abs(ctx.name, f"equilibrium {what} (V)", _f32(value), limit)  # as the board receives it
    return ctx.driver.eq_configure(config)


def _board_eq_settle(ctx: _Context, inputs: Any, injections: Any = None) -> Any:
    x = np.atleast_2d(np.asarray(inputs, dtype=float))
    _check_vector(ctx.name, "equilibrium input voltage (V)", x.ravel(), ctx.limits.max_mvm_voltage)
    if injections is not None:
        inj = np.atleast_2d(np.asarray(injections, dtype=float))
        _check_vector(ctx.name, "equilibrium injection current (A)", inj.ravel(), ctx.limits.max_injection_current)
        return ctx.driver.eq_settle(x, inj)
    return ctx.driver.eq_settle(x)


def _board_expert(ctx: _Context, opcode: Any, payload: Any = b"") -> bytes:
    """Expert link: check one raw board request (opcode, payload) against the limits, then exchange it."""
    if not isinstance(payload, (bytes, bytearray)) or isinstance(opcode, bool) or not isinstance(opcode, int):
        raise SafetyAccessError(f"{ctx.name}: the expert link takes an opcode (int) and a payload (bytes); "
                                "nothing was sent")
    def rail() -> float:
        if ctx.rail is None:
            ctx.rail = _f32(ctx.driver.closed_loop_info().rail)
        return ctx.rail

    cfg = getattr(ctx.driver, "configuration", None)
    op = expert.check_board(ctx.name, opcode, bytes(payload), ctx.limits, cfg.read_voltage if cfg else None, rail)
    reply, _ = ctx.driver._exchange(op, bytes(payload))
    return reply


def _board_route(ctx: _Context, port: int, row: int, col: int) -> None:
    if ctx.ports is not None and port not in ctx.ports:
        # whatever is cabled to another port has no limits in this station
        allowed = ", ".join(str(p) for p in sorted(ctx.ports)) or "none"
        raise SafetyLimitError(ctx.name, "SMU port", float(port) if isinstance(port, (int, float)) else float("nan"),
                               f"a port cabled to a station SMU ({allowed})")
    ctx.driver.route_smu(port, row, col)


def _board_unroute(ctx: _Context, port: int) -> None:
    ctx.driver.unroute_smu(port)


def _board_attribute(attribute: str) -> _Operation:
    def op(ctx: _Context) -> Any:
        return getattr(ctx.driver, attribute, None)

    op.__name__ = attribute
    return op


_CORE_READS = ("read_cell", "read_all", "read_rows")
_CELL_READS = ("read_cells", "read_cells_reading")
_CURRENT_READS = ("read_cell_current", "read_all_currents", "read_all_reading", "read_rows_reading")
_CORE_MVMS = {"mvm_forward": "MVM row voltage (V)", "mvm_transpose": "MVM column voltage (V)"}
_READING_MVMS = {"mvm_forward_reading": "MVM row voltage (V)", "mvm_transpose_reading": "MVM column voltage (V)"}
_READ_DOC = "checked: the read voltage the board echoed at CONFIGURE is within max_read_voltage"
_MVM_DOC = "checked: every |input voltage| <= max_mvm_voltage"
_PULSES_DOC = "checked: every pulse as pulse_cell, count <= max_batch_pulses, before the first is sent"

def _board_cap_update(ctx: _Context, rows: Any, cols: Any, steps: Any) -> int:
    """3T1C charge steps: no host-chosen level (a fixed charge per step from the board's own supply);
    integer counts, as many records as a pulse batch may hold, checked before the first is sent."""
    try:
        s = np.asarray(steps)
    except (TypeError, ValueError):
        raise SafetyLimitError(ctx.name, "charge steps", float("nan"), "integers") from None
    if s.size and not np.issubdtype(s.dtype, np.integer):
        raise SafetyLimitError(ctx.name, "charge steps", float("nan"), "integers")
    _check_count(ctx.name, "charge steps in one update", int(np.abs(s).sum()) if s.size else 0,
                 ctx.limits.max_batch_pulses)
    return ctx.driver.cap_update(rows, cols, s)


def _board_cap_reset(ctx: _Context, rows: Any, cols: Any) -> None:
    _check_count(ctx.name, "capacitor cells in one reset", int(np.size(rows)), ctx.limits.max_batch_pulses)
    ctx.driver.cap_reset(rows, cols)


_CAP_READS = ("cap_read_cells", "cap_read_cells_reading", "cap_read_all")
_CAP_MVMS = {"cap_mvm_forward": "capacitor MVM row voltage (V)",
             "cap_mvm_transpose": "capacitor MVM column voltage (V)"}

#: what every board can do: gate operations and their public registry entries
_CORE_GATE: Mapping[str, _Operation] = MappingProxyType({
    "configure": _board_configure,
    **{m: _board_read(m) for m in _CORE_READS},
    **{m: _board_mvm(m, what) for m, what in _CORE_MVMS.items()},
    "pulse_cell": _board_pulse_cell,
    "pulse_batch": _board_pulse_batch,
    "expert_exchange": _board_expert,
    "route_smu": _board_route,
    "unroute_smu": _board_unroute,
    **{m: _passthrough(m) for m in ("identify", "all_off", "close")},
    "shape": _board_attribute("shape"),
    "hardware": _board_attribute("hardware"),
    "configuration": _board_attribute("configuration"),
})
_CORE_DOCS: Mapping[str, str] = MappingProxyType({
    "configure": "checked: 0 < |read voltage| <= max_read_voltage, 0 < TIA range <= max_tia_range",
    **{m: _READ_DOC for m in _CORE_READS},
    **{m: _MVM_DOC for m in _CORE_MVMS},
    "pulse_cell": "checked: |amplitude| <= max_pulse_amplitude, min_pulse_width <= width <= max_pulse_width",
    "pulse_batch": _PULSES_DOC,
    "route_smu": "checked: only a port cabled to a station SMU (whose own limits then apply) to a cell",
    "unroute_smu": "checked: disconnects an SMU port",
    "all_off": "checked: safe state (lines grounded, ports unrouted)",
    "close": "checked: releases the link",
    "identify": "query: identity and array size",
    "shape": "query: active (rows, cols)",
    "hardware": "query: the board's IDENTIFY record (frozen; None before IDENTIFY or on a board without one)",
    "configuration": "query: the configuration the board echoed (frozen; None before CONFIGURE)",
    "name": "query: instrument name",
    "limits": "query: the frozen BoardLimits",
    "capabilities": "query: the optional capabilities of this board (interface types)",
    "OPERATIONS": "query: this table",
})

#: each optional capability: its gate operations and registry entries (exposed only when the driver has it)
_CAPABILITY_GATE: Mapping[type, Mapping[str, _Operation]] = MappingProxyType({
    CellReads: {m: _board_read(m) for m in _CELL_READS},
    CurrentReads: {**{m: _board_read(m) for m in _CURRENT_READS},
                   **{m: _board_mvm(m, what) for m, what in _READING_MVMS.items()}},
    BatchedPulses: {"pulse_arrays": _board_pulse_arrays},
    OuterProductUpdate: {"outer_product_update": _board_outer_product},
    ClosedLoop: {"closed_loop_solve": _board_closed_loop_solve, "closed_loop_eigen": _board_closed_loop_eigen,
                 "closed_loop_info": _board_closed_loop_info},
    StatusReports: {"status": _passthrough("status")},
    EqpropMode: {"eq_info": _passthrough("eq_info"), "eq_configure": _board_eq_configure,
                         "eq_settle": _board_eq_settle, "eq_config": _board_attribute("eq_config")},
    CapacitorCells: {**{m: _board_read(m) for m in _CAP_READS},
                     **{m: _board_mvm(m, what) for m, what in _CAP_MVMS.items()},
                     "cap_update": _board_cap_update, "cap_reset": _board_cap_reset,
                     "cap_info": _passthrough("cap_info")},
})
_CAPABILITY_DOCS: Mapping[type, Mapping[str, str]] = MappingProxyType({
    CellReads: {m: _READ_DOC for m in _CELL_READS},
    CurrentReads: {**{m: _READ_DOC for m in _CURRENT_READS}, **{m: _MVM_DOC for m in _READING_MVMS}},
    BatchedPulses: {"pulse_arrays": _PULSES_DOC},
    OuterProductUpdate: {"outer_product_update": "checked: amplitude and width as pulse_cell"},
    ClosedLoop: {
        "closed_loop_solve": "checked: every |input voltage| <= max_mvm_voltage; board output rail <= max_mvm_voltage",
        "closed_loop_eigen": "checked: g_lambda finite and > 0; board output rail <= max_mvm_voltage",
        "closed_loop_info": "query: the board's closed-loop rail (V) and input conductance (S)",
    },
    StatusReports: {"status": "query: board status"},
    EqpropMode: {
        "eq_info": "query: the equilibrium-network mode's hardware (rail, injection, capacitance, ADC)",
        "eq_configure": "checked: amplifier rail, |bias voltage| and |diode bias| <= max_mvm_voltage",
        "eq_settle": "checked: every |input voltage| <= max_mvm_voltage, every |injection| <= max_injection_current",
        "eq_config": "query: the equilibrium network the board echoed (frozen)",
    },
    CapacitorCells: {
        **{m: _READ_DOC for m in _CAP_READS},
        **{m: _MVM_DOC for m in _CAP_MVMS},
        "cap_update": "checked: integer 3T1C charge steps (no host-chosen level), total <= max_batch_pulses, "
                      "before the first is sent",
        "cap_reset": "checked: 3T1C cells to the board's reset level, count <= max_batch_pulses",
        "cap_info": "query: the 3T1C capacitor array's geometry and step limits",
    },
})

#: every board operation of a board with every capability (the gate of such a board)
_BOARD_OPERATIONS: Mapping[str, _Operation] = MappingProxyType(
    {**_CORE_GATE, **{op: fn for ops in _CAPABILITY_GATE.values() for op, fn in ops.items()}})


class SafeCrossbar(_Guarded, CrossbarArray):
    """A :class:`CrossbarArray` that refuses anything outside :class:`BoardLimits` and exposes nothing else.

    ``SafeCrossbar(driver, limits)`` returns an instance of a subclass that adds exactly the optional
    capabilities (:mod:`xbarlab.instruments.interfaces`) the driver has, so ``isinstance(board, ClosedLoop)``
    and :func:`~xbarlab.instruments.interfaces.require` tell the truth through the safety layer.
    """

    __slots__ = ()
    OPERATIONS: ClassVar[Mapping[str, str]] = _CORE_DOCS
    #: the optional capabilities this class exposes
    _CAPABILITIES: ClassVar[tuple[type, ...]] = ()

    def __new__(cls, driver: CrossbarArray | None = None, limits: BoardLimits | None = None,
                cabled_ports: Any = None) -> SafeCrossbar:
        if cls is SafeCrossbar and driver is not None:
            cls = _safe_crossbar_class(capabilities(driver))
        return object.__new__(cls)

    def __init__(self, driver: CrossbarArray, limits: BoardLimits, cabled_ports: Any = None) -> None:
        """``cabled_ports``: the board SMU ports a station SMU is cabled to (None: any port may be routed)."""
        if not isinstance(limits, BoardLimits):
            raise ConfigError(f"{driver.name}: board limits must be BoardLimits, got {type(limits).__name__}")
        ports = None if cabled_ports is None else frozenset(int(p) for p in cabled_ports)
        gate_ops = dict(_CORE_GATE)
        for cap in type(self)._CAPABILITIES:
            gate_ops.update(_CAPABILITY_GATE[cap])
        super().__init__(_make_gate(MappingProxyType(gate_ops), driver.name, driver, limits, ports), driver.name,
                         limits)

    # -- queries -----------------------------------------------------------------------------------
    def identify(self) -> BoardInfo:
        return _call(self, "identify")

    @property
    def capabilities(self) -> tuple[type, ...]:
        """The optional capabilities of this board (interface types of :mod:`xbarlab.instruments.interfaces`)."""
        return type(self)._CAPABILITIES

    @property
    def shape(self) -> tuple[int, int]:
        return _call(self, "shape")

    @property
    def hardware(self) -> Any:
        """The board's IDENTIFY record (None before the first IDENTIFY)."""
        return _call(self, "hardware")

    @property
    def configuration(self) -> Any:
        """The configuration the board echoed at CONFIGURE (None before)."""
        return _call(self, "configuration")

    # -- set-up and reads --------------------------------------------------------------------------
    def configure(self, read_voltage: float, tia_range: float, *, active_rows: int | None = None,
                  active_cols: int | None = None) -> None:
        """Read voltage (V) and TIA full scale (A), both checked; optional active region."""
        region = {k: v for k, v in (("active_rows", active_rows), ("active_cols", active_cols)) if v is not None}
        _call(self, "configure", read_voltage, tia_range, **region)

    def read_cell(self, row: int, col: int) -> float:
        return _call(self, "read_cell", row, col)

    def read_all(self) -> np.ndarray:
        return _call(self, "read_all")

    def read_rows(self, first: int, count: int) -> np.ndarray:
        return _call(self, "read_rows", first, count)

    # -- MVM ----------------------------------------------------------------------------------------
    def mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        return _call(self, "mvm_forward", row_voltages)

    def mvm_transpose(self, col_voltages: np.ndarray) -> np.ndarray:
        return _call(self, "mvm_transpose", col_voltages)

    # -- programming ----------------------------------------------------------------------------------
    def pulse_cell(self, row: int, col: int, amplitude: float, width: float) -> None:
        _call(self, "pulse_cell", row, col, amplitude, width)

    def pulse_batch(self, pulses: list[Pulse]) -> None:
        _call(self, "pulse_batch", pulses)

    # -- routing and safe state -------------------------------------------------------------------------
    def route_smu(self, port: int, row: int, col: int) -> None:
        _call(self, "route_smu", port, row, col)

    def unroute_smu(self, port: int) -> None:
        _call(self, "unroute_smu", port)

    def all_off(self) -> None:
        _call(self, "all_off")

    def close(self) -> None:
        _call(self, "close")


# -- the optional capabilities of a safe board (each mixed in only when the driver has it) ----------------
class SafeCellReads:
    """:class:`CellReads` through the safety layer."""

    __slots__ = ()

    def read_cells(self, rows: Any, cols: Any) -> np.ndarray:
        return _call(self, "read_cells", rows, cols)

    def read_cells_reading(self, rows: Any, cols: Any) -> Any:
        return _call(self, "read_cells_reading", rows, cols)


class SafeCurrentReads:
    """:class:`CurrentReads` through the safety layer."""

    __slots__ = ()

    def read_cell_current(self, row: int, col: int) -> float:
        return _call(self, "read_cell_current", row, col)

    def read_all_currents(self) -> np.ndarray:
        return _call(self, "read_all_currents")

    def read_all_reading(self) -> Any:
        return _call(self, "read_all_reading")

    def read_rows_reading(self, first: int, count: int) -> Any:
        return _call(self, "read_rows_reading", first, count)

    def mvm_forward_reading(self, row_voltages: np.ndarray) -> Any:
        return _call(self, "mvm_forward_reading", row_voltages)

    def mvm_transpose_reading(self, col_voltages: np.ndarray) -> Any:
        return _call(self, "mvm_transpose_reading", col_voltages)


class SafeBatchedPulses:
    """:class:`BatchedPulses` through the safety layer."""

    __slots__ = ()

    def pulse_arrays(self, rows: Any, cols: Any, amplitudes: Any, widths: Any, *, readback: bool = False) -> Any:
        """Vectorised pulse batch: every amplitude (V) and width (s) is checked before the first pulse is sent."""
        return _call(self, "pulse_arrays", rows, cols, amplitudes, widths, readback=readback)


class SafeOuterProductUpdate:
    """:class:`OuterProductUpdate` through the safety layer."""

    __slots__ = ()

    def outer_product_update(self, row_trains: np.ndarray, col_trains: np.ndarray, amplitude: float,
                             width: float) -> None:
        _call(self, "outer_product_update", row_trains, col_trains, amplitude, width)


class SafeClosedLoop:
    """:class:`ClosedLoop` through the safety layer."""

    __slots__ = ()

    def closed_loop_info(self) -> Any:
        """The board's closed-loop rail (V) and input conductance (S)."""
        return _call(self, "closed_loop_info")

    def closed_loop_solve(self, inputs: np.ndarray, *, row0: int = 0, col0: int = 0,
                          layout: str = "differential") -> Any:
        """Feedback-mode solve: input voltages (V) and the board's output rail are checked."""
        return _call(self, "closed_loop_solve", inputs, row0=row0, col0=col0, layout=layout)

    def closed_loop_eigen(self, g_lambda: float, n: int, *, row0: int = 0, col0: int = 0,
                          layout: str = "differential") -> Any:
        """Feedback-mode eigenvector: g_λ (S) and the board's output rail are checked."""
        return _call(self, "closed_loop_eigen", g_lambda, n, row0=row0, col0=col0, layout=layout)


class SafeEqpropMode:
    """:class:`EqpropMode` through the safety layer."""

    __slots__ = ()

    def eq_info(self) -> Any:
        """The equilibrium-network mode's hardware."""
        return _call(self, "eq_info")

    @property
    def eq_config(self) -> Any:
        """The equilibrium network the board echoed (None before eq_configure)."""
        return _call(self, "eq_config")

    def eq_configure(self, config: Any) -> Any:
        """Lay out a layered network (``EqConfig``): its rail and bias sources are checked."""
        return _call(self, "eq_configure", config)

    def eq_settle(self, inputs: Any, injections: Any = None) -> Any:
        """Settle the network: input voltages (V) and output injections (A) are checked first."""
        return _call(self, "eq_settle", inputs, injections)


class SafeStatusReports:
    """:class:`StatusReports` through the safety layer."""

    __slots__ = ()

    def status(self) -> Any:
        """GET_STATUS record of the board."""
        return _call(self, "status")


class SafeCapacitorCells:
    """:class:`CapacitorCells` through the safety layer."""

    __slots__ = ()

    def cap_info(self) -> Any:
        """The capacitor array's geometry, largest steps per record and step time (s)."""
        return _call(self, "cap_info")

    def cap_update(self, rows: Any, cols: Any, steps: Any) -> int:
        """Signed integer charge steps per capacitor cell (> 0 charge); returns the steps applied."""
        return _call(self, "cap_update", rows, cols, steps)

    def cap_reset(self, rows: Any, cols: Any) -> None:
        """Reset the listed capacitor cells to the board's reset level."""
        _call(self, "cap_reset", rows, cols)

    def cap_read_cells(self, rows: Any, cols: Any) -> np.ndarray:
        """Conductances (S) of listed capacitor cells."""
        return _call(self, "cap_read_cells", rows, cols)

    def cap_read_cells_reading(self, rows: Any, cols: Any) -> Any:
        """Currents (A) of listed capacitor cells with the saturation mask."""
        return _call(self, "cap_read_cells_reading", rows, cols)

    def cap_read_all(self) -> np.ndarray:
        """Conductance map (S) of the capacitor cells."""
        return _call(self, "cap_read_all")

    def cap_mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        """Column currents (A) of the capacitor cells for row voltages (V, checked)."""
        return _call(self, "cap_mvm_forward", row_voltages)

    def cap_mvm_transpose(self, col_voltages: np.ndarray) -> np.ndarray:
        """Row currents (A) of the capacitor cells for column voltages (V, checked)."""
        return _call(self, "cap_mvm_transpose", col_voltages)


_SAFE_MIXINS: Mapping[type, type] = MappingProxyType({
    CellReads: SafeCellReads, CurrentReads: SafeCurrentReads, BatchedPulses: SafeBatchedPulses,
    OuterProductUpdate: SafeOuterProductUpdate, ClosedLoop: SafeClosedLoop, StatusReports: SafeStatusReports,
    EqpropMode: SafeEqpropMode,
    CapacitorCells: SafeCapacitorCells,
})


@functools.cache
def _safe_crossbar_class(caps: tuple[type, ...]) -> type[SafeCrossbar]:
    """The SafeCrossbar subclass exposing exactly ``caps`` (one class per set of capabilities)."""
    if not caps:
        return SafeCrossbar
    docs = dict(_CORE_DOCS)
    for cap in caps:
        docs.update(_CAPABILITY_DOCS[cap])
    return type("SafeCrossbar", (*(_SAFE_MIXINS[c] for c in caps), SafeCrossbar),
                {"__slots__": (), "OPERATIONS": MappingProxyType(docs), "_CAPABILITIES": caps,
                 "__module__": __name__, "__doc__": SafeCrossbar.__doc__})


def safe_crossbar_class(*caps: type) -> type[SafeCrossbar]:
    """The SafeCrossbar class of a board with the optional capabilities ``caps`` (every one when none given)."""
    chosen = caps or tuple(_SAFE_MIXINS)
    return _safe_crossbar_class(tuple(c for c in _SAFE_MIXINS if c in chosen))


# -- the expert escape hatch ------------------------------------------------------------------------------
class ExpertRawSmu(_Guarded):
    """EXPERT: raw SCPI/TSP messages to one SMU. Each message is parsed first; every sourcing value is
    checked against the station limits and any command not on the allowlist is refused (nothing sent)."""

    __slots__ = ()
    OPERATIONS: ClassVar[Mapping[str, str]] = MappingProxyType({
        "send": "checked: parses the message; levels, sweep/list points and compliance within the limits; "
                "output on only after a checked level and compliance; unknown commands refused",
        "ask": "checked: as send, then returns the reply",
        "name": "query: instrument name",
        "limits": "query: the frozen SmuLimits",
        "OPERATIONS": "query: this table",
    })

    def send(self, message: str) -> None:
        """Send one raw message after it passed the checks."""
        _call(self, "expert_send", message)

    def ask(self, message: str) -> str:
        """Send one raw message after it passed the checks and return the reply."""
        return _call(self, "expert_ask", message)


class ExpertRawBoard(_Guarded):
    """EXPERT: raw board requests (opcode, payload). Pulses, MVM and closed-loop inputs are checked against the
    station limits; CONFIGURE and unknown opcodes are refused (nothing sent)."""

    __slots__ = ()
    OPERATIONS: ClassVar[Mapping[str, str]] = MappingProxyType({
        "exchange": "checked: decodes the payload; pulse amplitudes/widths, MVM, read and closed-loop inputs and "
                    "the closed-loop rail within the limits; CONFIGURE and unknown opcodes refused",
        "name": "query: instrument name",
        "limits": "query: the frozen BoardLimits",
        "OPERATIONS": "query: this table",
    })

    def exchange(self, opcode: int, payload: bytes = b"") -> bytes:
        """One request/reply round trip after the request passed the checks; returns the reply payload."""
        return _call(self, "expert_exchange", opcode, payload)


def expert_link(instrument: SafeSourceMeter | SafeCrossbar) -> ExpertRawSmu | ExpertRawBoard:
    """The expert escape hatch of a safe instrument: shares its checks, limits and output state."""
    gate = object.__getattribute__(instrument, "_gate")
    cls = ExpertRawSmu if isinstance(instrument, SafeSourceMeter) else ExpertRawBoard
    return cls(gate, instrument.name, instrument.limits)
