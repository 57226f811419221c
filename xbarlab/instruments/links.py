"""How a station reaches its bench: links to the instruments, the instrument clock, and the bench's state.

:class:`BenchLinks` is what :meth:`Station.open <xbarlab.instruments.station.Station.open>` takes. A real
bench opens pyvisa resources and pyserial ports and keeps wall time; the embedded simulated bench
(:class:`~xbarlab.sim.bench.SimBench`) is one more provider of the same three things — it serves the
instruments through the in-process VISA backend (``@xbarsim``) and the ``xbarsim://`` pyserial handler,
keeps the simulated clock, and saves/restores its physics for ``--resume`` — chosen in one place,
:func:`links_for`. Offline replay supplies links that answer from a transcript and the recorded clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyvisa
import serial

from xbarlab.drivers.transport import ByteTransport, MessageTransport, SerialTransport, VisaTransport
from xbarlab.errors import TransportError
from xbarlab.instruments.config import InstrumentConfig, StationConfig
from xbarlab.sim.bench import SimBench

Transport = MessageTransport | ByteTransport
#: ``open(instrument_names, config) -> transport`` for the instruments sharing one address
TransportOpener = Callable[[tuple[str, ...], InstrumentConfig], Transport]


class InstrumentClock(Protocol):
    """The bench's time base."""

    def now(self) -> float | None:
        """Instrument time in s, or None on a bench without its own clock (wall time)."""
        ...

    def idle(self, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
        """Let ``seconds`` of instrument time pass with the outputs idle (calling ``checkpoint`` meanwhile)."""
        ...


class BenchState(Protocol):
    """What a bench keeps across a crash of the control computer, for ``--resume``.

    A real bench keeps its own state (the array keeps its conductances): nothing to do. The simulated
    bench lives inside the process, so it saves its physics after each committed step and restores it.
    """

    def save_state(self, path: Path, tag: str) -> None:
        """Save the bench's state under ``tag`` (called before a step counts as done)."""
        ...

    def restore_state(self, path: Path, tags: list[str]) -> str | None:
        """Restore the newest saved state whose tag is in ``tags``; return its tag (None: nothing restored)."""
        ...

    def state_record(self) -> dict[str, Any]:
        """What the session's log records about the bench's state (e.g. fault generators' entropy)."""
        ...


class WallClock:
    """Wall time: ``now`` is None (no instrument clock); ``idle`` sleeps in chunks of at most 1 s."""

    def now(self) -> float | None:
        return None

    def idle(self, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if checkpoint is not None:
                checkpoint()
            time.sleep(min(1.0, left))


class HardwareState:
    """A real bench keeps its state itself: nothing to save or restore."""

    def save_state(self, path: Path, tag: str) -> None:
        return None

    def restore_state(self, path: Path, tags: list[str]) -> str | None:
        return None

    def state_record(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class BenchLinks:
    """Everything a station needs from its bench: how to open each link, the clock, the bench's state.

    ``world`` is the simulated world (physics and emulators) on a simulated bench, else None: like walking
    up to the hardware, not a link the safety guarantee covers. ``release`` runs after the links close.
    """

    open: TransportOpener
    clock: InstrumentClock = field(default_factory=WallClock)
    state: BenchState = field(default_factory=HardwareState)
    world: Any = None
    release: Callable[[], None] = lambda: None


def visa_serial_opener(config: StationConfig, visa_library: str,
                       serial_url: Callable[[InstrumentConfig], str]) -> TransportOpener:
    """Open message instruments through pyvisa (``visa_library``) and byte instruments through pyserial."""

    def open_link(names: tuple[str, ...], inst: InstrumentConfig) -> Transport:
        where = f"{config.source}: instruments.{inst.name}"
        if inst.spec.transport == "visa":
            try:
                rm = pyvisa.ResourceManager(visa_library)
                res = rm.open_resource(inst.address, read_termination="\n", write_termination="\n",
                                       timeout=int(inst.timeout * 1000))
            except (pyvisa.errors.Error, ValueError, OSError) as exc:
                raise TransportError(f"{where}: cannot open VISA address {inst.address!r}: {exc}") from None
            return VisaTransport(res)
        try:
            port = serial.serial_for_url(serial_url(inst), baudrate=inst.baudrate, timeout=inst.timeout)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise TransportError(f"{where}: cannot open serial port {inst.address!r}: {exc}") from None
        return SerialTransport(port)

    return open_link


def hardware_links(config: StationConfig) -> BenchLinks:
    """A real bench: the station file's VISA library and serial ports, wall time."""
    return BenchLinks(open=visa_serial_opener(config, config.visa_library, lambda inst: inst.address))


def simulated_links(config: StationConfig) -> BenchLinks:
    """The embedded simulated bench of a station with a ``[sim]`` table: emulators behind the real wire protocols."""
    bench = SimBench.from_station(config)
    return BenchLinks(open=visa_serial_opener(config, f"{bench.bench_id}@xbarsim",
                                              lambda inst: bench.serial_url(inst.name)),
                      clock=bench, state=bench, world=bench, release=bench.close)


def links_for(config: StationConfig) -> BenchLinks:
    """The bench a station file describes: THE one place where the simulated bench is chosen."""
    return simulated_links(config) if config.is_simulated else hardware_links(config)
