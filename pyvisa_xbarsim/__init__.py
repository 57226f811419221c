"""PyVISA backend for xbarlab's simulated bench: ``pyvisa.ResourceManager("<bench-id>@xbarsim")``.

Resources are ordinary VISA names (``GPIB0::24::INSTR``, ``TCPIP0::…::INSTR``,
``USB0::…::INSTR``) registered by a :class:`xbarlab.sim.bench.SimBench`; each is
answered by the emulator that speaks that instrument's command set.
"""

from pyvisa_xbarsim.highlevel import XbarsimVisaLibrary

WRAPPER_CLASS = XbarsimVisaLibrary

__all__ = ["WRAPPER_CLASS", "XbarsimVisaLibrary"]
