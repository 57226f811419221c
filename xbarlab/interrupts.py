"""Ctrl-C (SIGINT) and stations: closing is never cut short, and the command line reports what really happened.

:func:`close_station` puts a station in its safe state and releases it with SIGINT held back until it is
done (a Ctrl-C during the outputs-off traffic takes effect right after it); the logbook holds SIGINT back
during its structural windows the same way (:func:`sigint_deferred`), so a Ctrl-C never leaves the
HDF5 file half-changed. :data:`STATIONS` counts the
stations opened and closed in this process, so an interrupted command says "outputs were switched off"
only when every station it opened was closed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class StationCount:
    """Stations opened and closed (safe state reached, links released) in this process."""

    opened: int = 0
    closed: int = 0

    def snapshot(self) -> tuple[int, int]:
        return self.opened, self.closed


STATIONS = StationCount()
_count_lock = threading.Lock()


def note_opened() -> None:
    with _count_lock:
        STATIONS.opened += 1


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold SIGINT back for the duration; a Ctrl-C received meanwhile goes to the previous handler at the end
    (Python's default raises KeyboardInterrupt there; the campaign console's first Ctrl-C requests a stop)."""
    if threading.current_thread() is not threading.main_thread() or getattr(
            signal.getsignal(signal.SIGINT), "deferring", False):  # another thread, or already held back
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)

    hold.deferring = True  # type: ignore[attr-defined]
    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:  # deliver it now to the handler that was in place (a first Ctrl-C may only request a stop)
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


def absorb_sigint(signum: int, frame: Any) -> None:
    """SIGINT handler after the interrupt was raised: further Ctrl-C are ignored while the shutdown runs."""


absorb_sigint.deferring = True  # type: ignore[attr-defined]  # sigint_deferred need not hold anything back


def interrupt_once(signum: int, frame: Any) -> None:
    """SIGINT handler of the ``xbarlab`` program: the first Ctrl-C raises KeyboardInterrupt, later ones are
    absorbed, so the shutdown it starts (outputs off, records finished, log closed) is never cut short."""
    signal.signal(signal.SIGINT, absorb_sigint)
    raise KeyboardInterrupt


def close_station(station: Any) -> None:
    """``station.close()`` (outputs off, links released) that a Ctrl-C cannot interrupt half-way."""
    with sigint_deferred():
        station.close()
        with _count_lock:
            STATIONS.closed += 1


def interrupted_message(before: tuple[int, int]) -> str:
    """What an interrupted command tells the user about the outputs, given :data:`STATIONS` at its start."""
    opened = STATIONS.opened - before[0]
    closed = STATIONS.closed - before[1]
    if opened == 0:
        return "interrupted while no station was open (nothing was sourced)"
    if closed >= opened:
        return "interrupted; outputs were switched off"
    return "interrupted while a station was open; its outputs may still be on: check the instruments"
