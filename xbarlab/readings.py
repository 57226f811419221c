"""What instruments hand back: plain records shared by the drivers, the safety layer and the experiments.

This module sits below ``drivers/`` and ``instruments/`` (it imports only numpy, :mod:`xbarlab.errors`
and the board codec), so drivers implement the bench interfaces of
:mod:`xbarlab.instruments.interfaces` without importing ``instruments``.
Units: volts (V), amperes (A), seconds (s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xbarlab.errors import AdcSaturated
from xbarlab.protocol.board import Err


@dataclass(frozen=True)
class SweepResult:
    """A staircase sweep read back from the instrument buffer."""

    voltage: np.ndarray  # V, measured (or sourced) at each point
    current: np.ndarray  # A, measured at each point
    compliance: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per point, if known


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


@dataclass(frozen=True)
class BoardReading:
    """Currents as the board measured them, with the ADC saturation mask."""

    currents: np.ndarray  # A
    saturated: np.ndarray  # bool, same shape: True where the ADC clipped (not a measurement)

    @property
    def any_saturated(self) -> bool:
        return bool(self.saturated.any())


#: error code of a clipped ADC sample (board protocol ``Err.ADC_SATURATED``), carried by AdcSaturationError
ADC_SATURATED = int(Err.ADC_SATURATED)


class AdcSaturationError(AdcSaturated):
    """At least one ADC sample was clipped at the TIA full scale: not a valid measurement.

    ``currents`` (A) and ``saturated`` (bool mask, same shape) hold the whole reading, so a
    caller can still use the unclipped samples deliberately.
    """

    def __init__(self, instrument: str, what: str, currents: np.ndarray, saturated: np.ndarray, tia_range: float):
        n = int(np.count_nonzero(saturated))
        first = tuple(int(i) for i in np.argwhere(saturated)[0]) if n else ()
        super().__init__(
            instrument,
            ADC_SATURATED,
            f"{what}: {n} of {saturated.size} ADC samples clipped at the TIA full scale ({tia_range:g} A), "
            f"first at index {first if len(first) > 1 else first[0] if first else '-'}; "
            "lower the voltages or raise tia_range",
            currents,
            saturated,
        )
