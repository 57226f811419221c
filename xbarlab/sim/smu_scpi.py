"""Emulated SCPI source-measure units: Keithley 2400, Keithley 2450, Keysight B2902A.

Each model is a command table (:mod:`xbarlab.sim.scpi_tree`) written from its reference
manual: 2400 Series User's Manual §18 (2400S-900-01), 2450 Reference Manual §6 (2450-901-01),
Keysight B2900 Programming Guide. A setting is one line; the same line answers its query.
Physics: :mod:`xbarlab.sim.smu_engine`. Readings and replies use each model's own format.

Documented deviation: the trigger models run each ``:INIT`` to completion at once (``*OPC?``
answers 1); bus, timer and external trigger sources are stored, not waited for.
"""

from __future__ import annotations

from xbarlab.sim.smu_b2900 import KeysightB2900Emulator
from xbarlab.sim.smu_engine import SmuModel
from xbarlab.sim.smu_k2400 import Keithley2400Emulator
from xbarlab.sim.smu_k2450 import Keithley2450Emulator
from xbarlab.sim.smu_scpi_base import ScpiSmuEmulator

__all__ = ["Keithley2400Emulator", "Keithley2450Emulator", "KeysightB2900Emulator", "ScpiSmuEmulator", "SmuModel"]
