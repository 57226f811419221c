"""What an emulated SMU's terminals are connected to.

An SMU emulator asks its :class:`SmuTerminal` for the current the connected load
draws at a voltage. The board emulator re-points the terminal when it routes an
SMU port to a cell, so an SMU routed through the board measures that cell.
"""

from __future__ import annotations

from typing import Protocol


class Load(Protocol):
    """A two-terminal load seen by an SMU."""

    def current(self, voltage: float) -> float:
        """Current in A drawn at ``voltage`` V (no side effects)."""
        ...

    def stress(self, voltage: float, duration: float, current_limit: float) -> None:
        """Hold ``voltage`` V for ``duration`` s with current limited to ``current_limit`` A.

        May change the device state (SET/RESET/forming under DC bias).
        """
        ...

    def describe(self) -> str:
        """Short human description for logs (e.g. "cell (3, 5)")."""
        ...


class OpenCircuit:
    """Nothing connected: only leakage of the test fixture (1 fA/V)."""

    def current(self, voltage: float) -> float:
        return 1e-15 * voltage

    def stress(self, voltage: float, duration: float, current_limit: float) -> None:
        return None

    def describe(self) -> str:
        return "open circuit"


class Resistor:
    """An ideal resistor of ``ohms`` Ω (a reference DUT on the bench)."""

    def __init__(self, ohms: float) -> None:
        if ohms <= 0:
            raise ValueError(f"resistance must be positive, got {ohms} Ω")
        self.ohms = float(ohms)

    def current(self, voltage: float) -> float:
        return voltage / self.ohms

    def stress(self, voltage: float, duration: float, current_limit: float) -> None:
        return None

    def describe(self) -> str:
        return f"resistor {self.ohms:g} Ω"


class SmuTerminal:
    """The pair of terminals of one SMU channel; ``load`` is swapped by routing."""

    def __init__(self, load: Load | None = None) -> None:
        self.default_load: Load = load or OpenCircuit()
        self.load: Load = self.default_load

    def connect(self, load: Load) -> None:
        self.load = load

    def disconnect(self) -> None:
        self.load = self.default_load
