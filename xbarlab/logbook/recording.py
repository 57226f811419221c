"""Open a station whose every instrument link records its transcript into the current logbook run."""

from __future__ import annotations

import threading
from typing import Any

from xbarlab.instruments.config import StationConfig
from xbarlab.instruments.station import Station, Transport
from xbarlab.interrupts import note_opened
from xbarlab.logbook.transcript import RecordingByteTransport, RecordingMessageTransport


class RunSink:
    """Forwards transcript events to whichever run is current; events between runs go to ``outside``
    (the session's record outside its runs, :meth:`Logbook.outside_runs`) when one is set."""

    def __init__(self) -> None:
        self.run: Any = None
        self.outside: Any = None
        self._lock = threading.Lock()

    def record_transcript(self, link: str, code: str, data: bytes, sim_time: float | None) -> None:
        with self._lock:
            target = self.run if self.run is not None else self.outside
            if target is not None:
                target.record_transcript(link, code, data, sim_time)


def open_recorded_station(config: StationConfig, sink: RunSink) -> Station:
    """``Station.open(config)`` with every link wrapped so ``sink`` gets each exchange and its sim time."""
    holder: dict[str, Station] = {}

    def sim_time() -> float | None:
        station = holder.get("station")
        return station.sim_time() if station is not None else None

    def wrap(names: tuple[str, ...], transport: Transport) -> Transport:
        label = "+".join(names)
        if hasattr(transport, "query"):
            return RecordingMessageTransport(transport, sink, label, sim_time=sim_time)  # type: ignore[arg-type]
        return RecordingByteTransport(transport, sink, label, sim_time=sim_time)  # type: ignore[arg-type]

    station = Station.open(config, wrap_transport=wrap, on_created=lambda st: holder.__setitem__("station", st))
    note_opened()
    return station
