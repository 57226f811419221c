"""Interfaces the rest of xbarlab programs against; drivers implement them.

Units throughout: volts (V), amperes (A), siemens (S), seconds (s).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

SourceFunction = Literal["voltage", "current"]


@dataclass(frozen=True)
class SweepResult:
    """A staircase sweep read back from the instrument buffer."""

    voltage: np.ndarray  # V, measured (or sourced) at each point
    current: np.ndarray  # A, measured at each point
    compliance: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per point, if known


class SourceMeter(ABC):
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
    def sweep_voltage(
        self, start: float, stop: float, points: int, compliance_current: float
    ) -> SweepResult:
        """Linear staircase voltage sweep, read back from the instrument buffer."""

    @abstractmethod
    def check_errors(self) -> None:
        """Drain the instrument error queue; raise InstrumentError for the first error."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the link (the station switches outputs off first)."""


@dataclass(frozen=True)
class BoardInfo:
    """What the crossbar board reports about itself."""

    identity: str
    protocol_version: int
    rows: int
    cols: int
    array_kind: str  # "1T1R" or "passive"
    smu_ports: int


@dataclass(frozen=True)
class Pulse:
    """One programming pulse on one cell. Positive amplitude potentiates (SET)."""

    row: int
    col: int
    amplitude: float  # V
    width: float  # s


class CrossbarArray(ABC):
    """A crossbar test board with its array."""

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
    def outer_product_update(
        self,
        row_trains: np.ndarray,
        col_trains: np.ndarray,
        amplitude: float,
        width: float,
    ) -> None:
        """Parallel stochastic update by coincidence.

        ``row_trains`` (rows × slots) and ``col_trains`` (cols × slots) hold -1/0/+1.
        In each slot a cell receives a pulse of ``amplitude`` V (sign = row·col) when
        both its row and its column fire; half-selected cells see half the amplitude.
        """

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
