"""Safety limits: every value is checked here before any byte reaches a driver.

A station wraps each driver in :class:`SafeSourceMeter` or :class:`SafeCrossbar`.
The wrappers hold no experiment logic; they compare each requested voltage,
current, compliance, read/MVM voltage and pulse against the station's configured
limits and raise :class:`~xbarlab.errors.SafetyLimitError` (nothing sent) when a
value is outside them. Non-finite numbers are always rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError, SafetyLimitError
from xbarlab.instruments.interfaces import (
    BoardInfo,
    CrossbarArray,
    Pulse,
    SourceMeter,
    SweepResult,
)


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
    max_mvm_voltage: float = 0.5  # V, |any MVM input|
    max_pulse_amplitude: float = 3.0  # V, |pulse amplitude|
    min_pulse_width: float = 10e-9  # s
    max_pulse_width: float = 1e-3  # s
    max_tia_range: float = 10e-3  # A, TIA full scale
    max_batch_pulses: int = 1_000_000

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


def _check_finite(instrument: str, name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SafetyLimitError(instrument, name, float("nan"), "a finite number") from None
    if not math.isfinite(v):
        raise SafetyLimitError(instrument, name, v, "a finite number")
    return v


def _check_abs(instrument: str, name: str, value: float, limit: float) -> float:
    v = _check_finite(instrument, name, value)
    if abs(v) > limit:
        raise SafetyLimitError(instrument, name, v, f"|{name}| <= {limit:g}")
    return v


def _check_range(instrument: str, name: str, value: float, low: float, high: float) -> float:
    v = _check_finite(instrument, name, value)
    if not low <= v <= high:
        raise SafetyLimitError(instrument, name, v, f"[{low:g}, {high:g}]")
    return v


class SafeSourceMeter(SourceMeter):
    """A :class:`SourceMeter` that refuses anything outside :class:`SmuLimits`."""

    def __init__(self, inner: SourceMeter, limits: SmuLimits) -> None:
        self.inner = inner
        self.limits = limits
        self.name = inner.name

    def _compliance_current(self, value: float) -> float:
        v = _check_finite(self.name, "compliance current (A)", value)
        if not 0 < v <= self.limits.max_current:
            raise SafetyLimitError(
                self.name, "compliance current (A)", v, f"(0, {self.limits.max_current:g}]"
            )
        return v

    def _compliance_voltage(self, value: float) -> float:
        v = _check_finite(self.name, "compliance voltage (V)", value)
        if not 0 < v <= self.limits.max_voltage:
            raise SafetyLimitError(
                self.name, "compliance voltage (V)", v, f"(0, {self.limits.max_voltage:g}]"
            )
        return v

    def identify(self) -> str:
        return self.inner.identify()

    def reset(self) -> None:
        self.inner.reset()

    def source_voltage(self, level: float, compliance_current: float) -> None:
        level = _check_abs(self.name, "source voltage (V)", level, self.limits.max_voltage)
        compliance_current = self._compliance_current(compliance_current)
        self.inner.source_voltage(level, compliance_current)

    def source_current(self, level: float, compliance_voltage: float) -> None:
        level = _check_abs(self.name, "source current (A)", level, self.limits.max_current)
        compliance_voltage = self._compliance_voltage(compliance_voltage)
        self.inner.source_current(level, compliance_voltage)

    def set_nplc(self, nplc: float) -> None:
        self.inner.set_nplc(_check_range(self.name, "NPLC", nplc, 1e-3, 25.0))

    def set_output(self, enabled: bool) -> None:
        self.inner.set_output(bool(enabled))

    def output_enabled(self) -> bool:
        return self.inner.output_enabled()

    def measure_current(self) -> float:
        return self.inner.measure_current()

    def measure_voltage(self) -> float:
        return self.inner.measure_voltage()

    def compliance_tripped(self) -> bool:
        return self.inner.compliance_tripped()

    def sweep_voltage(
        self, start: float, stop: float, points: int, compliance_current: float
    ) -> SweepResult:
        start = _check_abs(self.name, "sweep start (V)", start, self.limits.max_voltage)
        stop = _check_abs(self.name, "sweep stop (V)", stop, self.limits.max_voltage)
        if int(points) != points or not 2 <= points <= self.limits.max_sweep_points:
            raise SafetyLimitError(
                self.name, "sweep points", float(points), f"an integer in [2, {self.limits.max_sweep_points}]"
            )
        compliance_current = self._compliance_current(compliance_current)
        return self.inner.sweep_voltage(start, stop, int(points), compliance_current)

    def check_errors(self) -> None:
        self.inner.check_errors()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, item: str) -> Any:
        # Only read-only extras (e.g. ``channel``) pass through; anything that sources is
        # an explicit method above.
        if item.startswith(("source", "set", "sweep", "write", "send", "pulse", "apply")):
            raise AttributeError(f"{item} is not available through the safety layer")
        return getattr(self.inner, item)


class SafeCrossbar(CrossbarArray):
    """A :class:`CrossbarArray` that refuses anything outside :class:`BoardLimits`."""

    def __init__(self, inner: CrossbarArray, limits: BoardLimits) -> None:
        self.inner = inner
        self.limits = limits
        self.name = inner.name

    # -- checks -------------------------------------------------------------------------
    def _pulse_ok(self, amplitude: float, width: float) -> tuple[float, float]:
        lim = self.limits
        amplitude = _check_abs(self.name, "pulse amplitude (V)", amplitude, lim.max_pulse_amplitude)
        width = _check_range(self.name, "pulse width (s)", width, lim.min_pulse_width, lim.max_pulse_width)
        return amplitude, width

    def _vector_ok(self, name: str, values: np.ndarray, limit: float) -> np.ndarray:
        arr = np.asarray(values, dtype=float)
        if not np.all(np.isfinite(arr)):
            bad = float(arr[~np.isfinite(arr)].ravel()[0])
            raise SafetyLimitError(self.name, name, bad, "finite numbers")
        if arr.size and np.max(np.abs(arr)) > limit:
            worst = float(arr.ravel()[np.argmax(np.abs(arr))])
            raise SafetyLimitError(self.name, name, worst, f"|{name}| <= {limit:g}")
        return arr

    # -- interface ------------------------------------------------------------------------
    def identify(self) -> BoardInfo:
        return self.inner.identify()

    @property
    def shape(self) -> tuple[int, int]:
        return self.inner.shape

    def configure(self, read_voltage: float, tia_range: float) -> None:
        read_voltage = _check_abs(self.name, "read voltage (V)", read_voltage, self.limits.max_read_voltage)
        if read_voltage == 0:
            raise SafetyLimitError(self.name, "read voltage (V)", 0.0, "non-zero")
        tia_range = _check_finite(self.name, "TIA range (A)", tia_range)
        if not 0 < tia_range <= self.limits.max_tia_range:
            raise SafetyLimitError(self.name, "TIA range (A)", tia_range, f"(0, {self.limits.max_tia_range:g}]")
        self.inner.configure(read_voltage, tia_range)

    def read_cell(self, row: int, col: int) -> float:
        return self.inner.read_cell(row, col)

    def read_all(self) -> np.ndarray:
        return self.inner.read_all()

    def read_rows(self, first: int, count: int) -> np.ndarray:
        return self.inner.read_rows(first, count)

    def mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        v = self._vector_ok("MVM row voltage (V)", row_voltages, self.limits.max_mvm_voltage)
        return self.inner.mvm_forward(v)

    def mvm_transpose(self, col_voltages: np.ndarray) -> np.ndarray:
        v = self._vector_ok("MVM column voltage (V)", col_voltages, self.limits.max_mvm_voltage)
        return self.inner.mvm_transpose(v)

    def pulse_cell(self, row: int, col: int, amplitude: float, width: float) -> None:
        amplitude, width = self._pulse_ok(amplitude, width)
        self.inner.pulse_cell(row, col, amplitude, width)

    def pulse_batch(self, pulses: list[Pulse]) -> None:
        if len(pulses) > self.limits.max_batch_pulses:
            raise SafetyLimitError(
                self.name, "pulses in one batch", float(len(pulses)), f"<= {self.limits.max_batch_pulses}"
            )
        checked = []
        for p in pulses:  # check every pulse before the first one is sent
            amplitude, width = self._pulse_ok(p.amplitude, p.width)
            checked.append(Pulse(p.row, p.col, amplitude, width))
        self.inner.pulse_batch(checked)

    def pulse_arrays(self, rows: Any, cols: Any, amplitudes: Any, widths: Any, *, readback: bool = False) -> Any:
        """Vectorised pulse batch (board extra ``pulse_arrays``): every amplitude (V) and width (s)
        is checked against the limits before the first pulse is sent."""
        inner = getattr(self.inner, "pulse_arrays", None)
        if not callable(inner):
            raise AttributeError(f"{self.name} has no pulse_arrays")
        n = int(np.size(rows))
        if n > self.limits.max_batch_pulses:
            raise SafetyLimitError(self.name, "pulses in one batch", float(n), f"<= {self.limits.max_batch_pulses}")
        lim = self.limits
        a = self._vector_ok("pulse amplitude (V)", np.broadcast_to(np.asarray(amplitudes, dtype=float), (n,)),
                            lim.max_pulse_amplitude)
        w = np.broadcast_to(np.asarray(widths, dtype=float), (n,))
        if not np.all(np.isfinite(w)):
            raise SafetyLimitError(self.name, "pulse width (s)", float(w[~np.isfinite(w)][0]), "finite numbers")
        if n and (w.min() < lim.min_pulse_width or w.max() > lim.max_pulse_width):
            bad = float(w[(w < lim.min_pulse_width) | (w > lim.max_pulse_width)][0])
            raise SafetyLimitError(self.name, "pulse width (s)", bad,
                                   f"[{lim.min_pulse_width:g}, {lim.max_pulse_width:g}]")
        return inner(rows, cols, a, w, readback=readback)

    def outer_product_update(
        self, row_trains: np.ndarray, col_trains: np.ndarray, amplitude: float, width: float
    ) -> None:
        amplitude, width = self._pulse_ok(amplitude, width)
        self.inner.outer_product_update(row_trains, col_trains, amplitude, width)

    def route_smu(self, port: int, row: int, col: int) -> None:
        self.inner.route_smu(port, row, col)

    def unroute_smu(self, port: int) -> None:
        self.inner.unroute_smu(port)

    def all_off(self) -> None:
        self.inner.all_off()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, item: str) -> Any:
        if item.startswith(("pulse", "apply", "write", "send", "mvm", "outer", "configure", "set")):
            raise AttributeError(f"{item} is not available through the safety layer")
        return getattr(self.inner, item)
