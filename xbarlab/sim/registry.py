"""Process-wide registry of simulated benches: bench id → {resource name → emulator}.

The in-process VISA backend (``pyvisa_xbarsim``) and the ``xbarsim://`` pyserial URL
handler look emulators up here, so ``Station`` opens simulated instruments by address
exactly as it opens real ones.
"""

from __future__ import annotations

import threading

import serial

from xbarlab.errors import TransportError
from xbarlab.sim.emulator import StreamEmulator

_lock = threading.Lock()
_benches: dict[str, dict[str, StreamEmulator]] = {}

# pyserial imports ``<package>.protocol_<scheme>`` for a URL ``<scheme>://``
if "xbarlab.sim" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("xbarlab.sim")


def register(bench_id: str, name: str, emulator: StreamEmulator) -> None:
    """Make ``emulator`` reachable as resource ``name`` of bench ``bench_id``."""
    with _lock:
        _benches.setdefault(bench_id, {})[name] = emulator


def unregister_bench(bench_id: str) -> None:
    """Forget every emulator of a bench (links already open keep working until closed)."""
    with _lock:
        _benches.pop(bench_id, None)


def names(bench_id: str) -> list[str]:
    """Resource names registered for a bench."""
    with _lock:
        return list(_benches.get(bench_id, {}))


def lookup(bench_id: str, name: str) -> StreamEmulator:
    """The emulator for ``name`` on ``bench_id``; TransportError naming what exists otherwise."""
    with _lock:
        bench = _benches.get(bench_id)
        if bench is None:
            raise TransportError(f"no simulated bench {bench_id!r} is running (known: {', '.join(_benches) or 'none'})")
        try:
            return bench[name]
        except KeyError:
            raise TransportError(
                f"simulated bench {bench_id!r} has no instrument at {name!r} (it has: {', '.join(bench) or 'none'})"
            ) from None
