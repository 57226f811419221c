"""Driver registry: the names station files use for each instrument model."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class DriverSpec:
    """Where a driver lives and how it is reached."""

    kind: Literal["smu", "board"]
    transport: Literal["visa", "serial"]
    module: str
    class_name: str
    channels: tuple[str, ...] = ()
    description: str = ""

    def load(self) -> type[Any]:
        """Import and return the driver class."""
        return getattr(importlib.import_module(self.module), self.class_name)


DRIVERS: dict[str, DriverSpec] = {
    "keithley2400": DriverSpec(
        "smu", "visa", "xbarlab.drivers.keithley2400", "Keithley2400",
        description="Keithley 2400-series SourceMeter (SCPI)",
    ),
    "keithley2450": DriverSpec(
        "smu", "visa", "xbarlab.drivers.keithley2450", "Keithley2450",
        description="Keithley 2450 SourceMeter (native SCPI)",
    ),
    "keithley2600": DriverSpec(
        "smu", "visa", "xbarlab.drivers.keithley2600", "Keithley2600", channels=("a", "b"),
        description="Keithley 2600B System SourceMeter (TSP), channels smua/smub",
    ),
    "keysight_b2900": DriverSpec(
        "smu", "visa", "xbarlab.drivers.keysight_b2900", "KeysightB2900", channels=("1", "2"),
        description="Keysight B2900 precision SMU (SCPI), channels 1/2",
    ),
    "crossbar_board": DriverSpec(
        "board", "serial", "xbarlab.drivers.crossbar_board", "CrossbarBoard",
        description="xbarlab crossbar test board (framed binary serial protocol v1)",
    ),
}
