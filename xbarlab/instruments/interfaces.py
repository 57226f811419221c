"""Typed interfaces of the bench: what the rest of xbarlab programs against.

* :class:`SourceMeter` — one source-measure channel;
* :class:`CrossbarArray` — a crossbar test board with its array (what every board can do);
* optional board capabilities, each a small protocol: :class:`CellReads`, :class:`CurrentReads`,
  :class:`BatchedPulses`, :class:`OuterProductUpdate`, :class:`ClosedLoop`, :class:`StatusReports`;
  :class:`HasBoardLimits` for a board held to station limits (the safety wrapper).

Drivers satisfy these protocols structurally and do not import this module (the records they return live
below both, in :mod:`xbarlab.readings`). The safety wrapper exposes exactly the capabilities of the driver
it wraps, so ``isinstance(station.board, BatchedPulses)`` is truthful through it. Code that needs a
capability asks for it with :func:`require`, which raises one clear :class:`~xbarlab.errors.CapabilityError`
("this board cannot …") instead of an ``AttributeError`` deep inside an experiment.

Units throughout: volts (V), amperes (A), siemens (S), seconds (s).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

from xbarlab.errors import CapabilityError
from xbarlab.readings import AdcSaturationError, BoardInfo, BoardReading, Pulse, SweepResult

__all__ = [
    "ABILITIES", "AdcSaturationError", "BatchedPulses", "BenchStation", "BoardInfo", "BoardReading", "CellReads",
    "CapacitorCells", "ClosedLoop", "CrossbarArray", "CurrentReads", "HasBoardLimits", "OuterProductUpdate", "Pulse",
    "SourceFunction",
    "SourceMeter", "StatusReports", "SweepResult", "board_limit", "capabilities", "describe", "require",
]

SourceFunction = Literal["voltage", "current"]


@runtime_checkable
class SourceMeter(Protocol):
    """One source-measure channel."""

    #: name of the instrument in the station (e.g. "smu1")
    name: str = "smu"

    @abstractmethod
    def identify(self) -> str:
        """Return the identity string (``*IDN?`` or the TSP equivalent)."""

    @abstractmethod
    def reset(self) -> None:
        """Return the channel to its power-on state (output off)."""

    @abstractmethod
    def source_voltage(self, level: float, compliance_current: float) -> None:
        """Source ``level`` V with current compliance ``compliance_current`` A."""

    @abstractmethod
    def source_current(self, level: float, compliance_voltage: float) -> None:
        """Source ``level`` A with voltage compliance ``compliance_voltage`` V."""

    @abstractmethod
    def set_nplc(self, nplc: float) -> None:
        """Integration time in power-line cycles."""

    @abstractmethod
    def set_output(self, enabled: bool) -> None:
        """Switch the output on or off."""

    @abstractmethod
    def output_enabled(self) -> bool:
        """Whether the output is on (as reported by the instrument)."""

    @abstractmethod
    def measure_current(self) -> float:
        """Measure the current in A."""

    @abstractmethod
    def measure_voltage(self) -> float:
        """Measure the voltage in V."""

    @abstractmethod
    def compliance_tripped(self) -> bool:
        """Whether the last measurement was limited by compliance."""

    @abstractmethod
    def sweep_voltage(self, start: float, stop: float, points: int, compliance_current: float) -> SweepResult:
        """Linear staircase voltage sweep, read back from the instrument buffer."""

    @abstractmethod
    def check_errors(self) -> None:
        """Drain the instrument error queue; raise InstrumentError for the first error."""

    @abstractmethod
    def close(self) -> None:
        """Release the link (the station switches outputs off first)."""


class CrossbarArray(Protocol):
    """A crossbar test board with its array: what every board can do.

    Not checked at run time (``isinstance`` would read ``shape``, which may IDENTIFY the board on Python
    3.11): what varies between boards is an optional capability below, and those checks never talk to it.
    """

    #: name of the board in the station
    name: str = "board"

    @abstractmethod
    def identify(self) -> BoardInfo:
        """Identify the board and its array."""

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the active array region."""

    @abstractmethod
    def configure(self, read_voltage: float, tia_range: float) -> None:
        """Read voltage (V) for cell/array reads, TIA full-scale current (A)."""

    @abstractmethod
    def read_cell(self, row: int, col: int) -> float:
        """Conductance of one cell in S (current at the read voltage / read voltage)."""

    @abstractmethod
    def read_all(self) -> np.ndarray:
        """Conductance map (rows × cols) in S."""

    def read_rows(self, first: int, count: int) -> np.ndarray:
        """Conductances (count × cols, S) of rows first .. first + count − 1 as :meth:`read_all`
        reads them; boards that can read a block of rows override this to read only those."""
        return np.asarray(self.read_all())[first : first + count]

    @abstractmethod
    def mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        """Apply row voltages (V), return column currents (A): I = Gᵀ·V."""

    @abstractmethod
    def mvm_transpose(self, col_voltages: np.ndarray) -> np.ndarray:
        """Apply column voltages (V), return row currents (A): I = G·V."""

    @abstractmethod
    def pulse_cell(self, row: int, col: int, amplitude: float, width: float) -> None:
        """One programming pulse: amplitude V (sign = polarity), width s."""

    @abstractmethod
    def pulse_batch(self, pulses: list[Pulse]) -> None:
        """A list of pulses applied in order by the board in one exchange."""

    @abstractmethod
    def route_smu(self, port: int, row: int, col: int) -> None:
        """Connect external SMU port ``port`` across cell (row, col)."""

    @abstractmethod
    def unroute_smu(self, port: int) -> None:
        """Disconnect SMU port ``port`` from the array."""

    @abstractmethod
    def all_off(self) -> None:
        """Ground every line and disconnect every SMU (safe state)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the link."""


# -- optional capabilities (methods only: checking one never talks to the instrument) -------------------
@runtime_checkable
class CellReads(Protocol):
    """Reads of an arbitrary list of cells in one exchange (READ_CELLS)."""

    def read_cells(self, rows: Any, cols: Any) -> np.ndarray:
        """Conductances (S) of cells (rows[i], cols[i]); raises AdcSaturationError for a clipped sample."""
        ...

    def read_cells_reading(self, rows: Any, cols: Any) -> BoardReading:
        """Currents (A) of cells (rows[i], cols[i]) at the read voltage, with the ADC saturation mask."""
        ...


@runtime_checkable
class CurrentReads(Protocol):
    """Reads and MVMs that return currents (A) as measured: ``*_currents`` raise AdcSaturationError for a
    clipped sample, ``*_reading`` return the ADC saturation mask instead of raising."""

    def read_cell_current(self, row: int, col: int) -> float:
        """Current (A) of one cell at the read voltage."""
        ...

    def read_all_currents(self) -> np.ndarray:
        """Currents (A, rows × cols) at the read voltage."""
        ...

    def read_all_reading(self) -> BoardReading:
        """Currents (A, rows × cols) at the read voltage with the saturation mask."""
        ...

    def read_rows_reading(self, first: int, count: int) -> BoardReading:
        """Currents (A, count × cols) of a block of rows with the saturation mask."""
        ...

    def mvm_forward_reading(self, row_voltages: np.ndarray) -> BoardReading:
        """Column currents (A) for row voltages (V) with the saturation mask."""
        ...

    def mvm_transpose_reading(self, col_voltages: np.ndarray) -> BoardReading:
        """Row currents (A) for column voltages (V) with the saturation mask."""
        ...


@runtime_checkable
class BatchedPulses(Protocol):
    """A pulse batch sent as arrays in as few exchanges as the frame size allows (PULSE_BATCH)."""

    def pulse_arrays(self, rows: Any, cols: Any, amplitudes: Any, widths: Any, *, readback: bool = False) -> Any:
        """Pulses (rows[i], cols[i], amplitudes[i] V, widths[i] s) in order; ``readback``: the pulsed cells'
        conductances (S) read after the batch."""
        ...


@runtime_checkable
class OuterProductUpdate(Protocol):
    """Parallel stochastic update by coincidence of row and column pulse trains."""

    def outer_product_update(self, row_trains: np.ndarray, col_trains: np.ndarray, amplitude: float,
                             width: float) -> None:
        """``row_trains`` (rows × slots) and ``col_trains`` (cols × slots) hold -1/0/+1. In each slot a cell
        receives a pulse of ``amplitude`` V (sign = row·col) when both its row and its column fire;
        half-selected cells see half the amplitude."""
        ...


@runtime_checkable
class ClosedLoop(Protocol):
    """The feedback (closed-loop) circuit: one-step linear solve and eigenvector."""

    def closed_loop_info(self) -> Any:
        """The circuit's output rail (V) and input conductance (S)."""
        ...

    def closed_loop_solve(self, inputs: np.ndarray, *, row0: int = 0, col0: int = 0,
                          layout: str = "differential") -> Any:
        """Settled outputs (V) of the loop for input voltages (V)."""
        ...

    def closed_loop_eigen(self, g_lambda: float, n: int, *, row0: int = 0, col0: int = 0,
                          layout: str = "differential") -> Any:
        """Settled outputs (V) of the loop with feedback conductance g_λ (S)."""
        ...


@runtime_checkable
class EqpropMode(Protocol):
    """The equilibrium-network mode (docs/board-protocol.md §5.11): a layered nonlinear resistive network on tiles."""

    @property
    def eq_config(self) -> Any:
        """The network the board echoed (None before ``eq_configure``)."""
        ...

    def eq_info(self) -> Any:
        """The mode's hardware: max amplifier rail (V), max injection (A), node capacitance (F), ADC bits."""
        ...

    def eq_configure(self, config: Any) -> Any:
        """Lay out the network (``xbarlab.protocol.eqprop.EqConfig``); returns the echoed configuration."""
        ...

    def eq_settle(self, inputs: Any, injections: Any = None) -> Any:
        """Settle for each sample (inputs V, output injections A); line voltages (V) and settling times (s)."""
        ...


@runtime_checkable
class StatusReports(Protocol):
    """A board that reports its status record (GET_STATUS)."""

    def status(self) -> Any:
        """The board's status record (boot count, board time, routing)."""
        ...


@runtime_checkable
class CapacitorCells(Protocol):
    """A 3T1C capacitor array beside the resistive one (board protocol §9): charge-step updates, reads, MVMs."""

    def cap_info(self) -> Any:
        """The capacitor array's geometry, largest steps per record and step time (s)."""
        ...

    def cap_update(self, rows: Any, cols: Any, steps: Any) -> int:
        """Signed integer charge steps per capacitor cell (> 0 charge); returns the steps applied."""
        ...

    def cap_reset(self, rows: Any, cols: Any) -> None:
        """Reset the listed capacitor cells to the board's reset level."""
        ...

    def cap_read_cells(self, rows: Any, cols: Any) -> np.ndarray:
        """Conductances (S) of listed capacitor cells."""
        ...

    def cap_read_cells_reading(self, rows: Any, cols: Any) -> BoardReading:
        """Currents (A) of listed capacitor cells with the saturation mask."""
        ...

    def cap_read_all(self) -> np.ndarray:
        """Conductance map (S) of the capacitor cells."""
        ...

    def cap_mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        """Column currents (A) of the capacitor cells for row voltages (V)."""
        ...

    def cap_mvm_transpose(self, col_voltages: np.ndarray) -> np.ndarray:
        """Row currents (A) of the capacitor cells for column voltages (V)."""
        ...


@runtime_checkable
class HasBoardLimits(Protocol):
    """A board held to station limits (the safety wrapper): ``limits`` is its frozen ``BoardLimits``."""

    @property
    def limits(self) -> Any: ...


class BenchStation(Protocol):
    """An open bench as steps see it (:class:`xbarlab.instruments.station.Station`): the station file's
    settings (``config.read_voltage`` V, ``config.tia_range`` A, ``config.device``, ``config.instruments``), its
    safety-wrapped instruments and the instrument clock."""

    config: Any

    @property
    def board(self) -> CrossbarArray | None: ...

    @property
    def smus(self) -> Mapping[str, SourceMeter]: ...

    def smu(self, name: str | None = None) -> SourceMeter: ...

    def require_board(self) -> CrossbarArray: ...

    def board_port(self, smu_name: str) -> int: ...

    def sim_time(self) -> float | None: ...

    def wait(self, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
        """Let ``seconds`` (s) of instrument time pass with the outputs idle, calling ``checkpoint`` meanwhile."""
        ...

    def safe_state(self) -> list[str]: ...


#: what a board without the capability cannot do (the end of "this board cannot …")
ABILITIES: dict[type, str] = {
    CellReads: "read a list of cells in one exchange (read_cells)",
    CurrentReads: "return measured currents with the ADC saturation mask (read_all_reading, mvm_*_reading)",
    BatchedPulses: "send a pulse batch as arrays (pulse_arrays)",
    OuterProductUpdate: "apply an outer-product (coincidence) update",
    ClosedLoop: "run the closed-loop (feedback) circuit",
    StatusReports: "report its status (GET_STATUS)",
    EqpropMode: "run the equilibrium-network mode (EQ_CONFIGURE/EQ_SETTLE)",
    CapacitorCells: "address a 3T1C capacitor array (protocol §9)",
}

_C = TypeVar("_C")


def board_limit(board: object, name: str, default: float) -> float:
    """The station limit ``name`` a board is held to (``BoardLimits`` field, V/A/s), or ``default`` for a board
    outside the safety layer (a bare driver or a test double)."""
    return float(getattr(board.limits, name, default)) if isinstance(board, HasBoardLimits) else float(default)


def capabilities(board: object) -> tuple[type, ...]:
    """The optional capabilities ``board`` has, in the order of :data:`ABILITIES`."""
    return tuple(cap for cap in ABILITIES if isinstance(board, cap))


def describe(board: object) -> str:
    """``name: identity`` of a board for messages (identity when it has been read)."""
    name = str(getattr(board, "name", type(board).__name__))
    hardware = getattr(board, "hardware", None)
    identity = getattr(hardware, "identity", None)
    return f"{name}: {identity}" if identity else name


def require(board: object, capability: type[_C]) -> _C:
    """``board`` as ``capability``, or a :class:`CapabilityError` "this board cannot … (name: model)"."""
    if isinstance(board, capability):
        return board
    ability = ABILITIES.get(capability, capability.__name__)
    raise CapabilityError(f"this board cannot {ability} ({describe(board)})")
