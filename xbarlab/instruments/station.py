"""Station: open a whole bench from one station file and close it safely.

``Station.open("stations/lab.toml")`` opens every instrument through pyvisa or
pyserial, wraps each driver in the safety layer and configures the board's read
path. ``close()`` (also on ``with`` exit and on error) turns every SMU output off,
puts the board in its safe state and releases every link.

How links are opened, the instrument clock and the bench's resume state come from a
:class:`~xbarlab.instruments.links.BenchLinks` (:func:`~xbarlab.instruments.links.links_for` chooses
the embedded simulated bench for a station with a ``[sim]`` table: emulators reached through the
in-process VISA backend and pyserial URL handler, so the drivers run exactly the code they run on
hardware). The station never asks whether it is simulated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from xbarlab.drivers.identity import TRAFFIC_REVISION
from xbarlab.errors import ConfigError, SafetyAccessError, TransportError, XbarlabError
from xbarlab.instruments.config import InstrumentConfig, StationConfig, load_station, parse_station
from xbarlab.instruments.interfaces import CrossbarArray, SourceMeter
from xbarlab.instruments.links import BenchLinks, BenchState, Transport, TransportOpener, links_for
from xbarlab.instruments.safety import (
    BoardLimits,
    ExpertRawBoard,
    ExpertRawSmu,
    SafeCrossbar,
    SafeSourceMeter,
    SmuLimits,
    expert_link,
)

log = logging.getLogger(__name__)

#: problems met while closing stations in this process ("smu1: output off failed: ..."); a caller that
#: reports "outputs off" after an interruption checks this first
CLOSE_PROBLEMS: list[str] = []

#: ``wrap(instrument_names, transport) -> transport``: e.g. the logbook's recorder
TransportWrapper = Callable[[tuple[str, ...], Transport], Transport]
__all__ = ["CLOSE_PROBLEMS", "Station", "Transport", "TransportOpener", "TransportWrapper", "embedded_station_path"]


def embedded_station_path(name: str = "sim") -> Path:
    """Path of a station file shipped with xbarlab (``sim`` is the embedded simulated bench)."""
    path = Path(str(resources.files("xbarlab") / "stations" / f"{name}.toml"))
    if not path.exists():
        raise ConfigError(f"no embedded station named {name!r}")
    return path


class Station:
    """An open bench: safety-wrapped SMUs and crossbar board.

    It hands out only :class:`SafeSourceMeter` and :class:`SafeCrossbar` objects (never a driver
    or a transport); ``OPERATIONS`` lists its public members (``tests/test_safety_allowlist.py``
    fails for any public member not listed there).
    """

    OPERATIONS: ClassVar[Mapping[str, str]] = MappingProxyType({
        "open": "opens a bench; every instrument is wrapped in the safety layer",
        "from_text": "opens a bench from TOML text (as open)",
        "smus": "query: read-only mapping name -> SafeSourceMeter",
        "board": "query: the SafeCrossbar, or None",
        "smu": "query: one SafeSourceMeter",
        "require_board": "query: the SafeCrossbar",
        "board_port": "query: board port an SMU is cabled to",
        "expert_raw": "checked: the expert escape hatch (ExpertRawSmu/ExpertRawBoard: every message parsed and "
                      "checked)",
        "config": "query: the frozen StationConfig it was opened from",
        "identities": "query: identity strings read at open",
        "sim": "query: the simulated world (None on hardware): physics and emulators, not an instrument link",
        "sim_time": "query: the instrument clock (s; None on a bench with wall time only)",
        "array_shape": "query: (rows, cols) of the board's array (station file, checked against IDENTIFY)",
        "bench_state": "checked: saves/restores what the bench keeps across a crash (sources nothing)",
        "wait": "checked: lets time pass with outputs idle (sources nothing)",
        "safe_state": "checked: outputs off, lines grounded, SMUs unrouted",
        "close": "checked: safe state, then links released",
        "OPERATIONS": "query: this table",
    })

    def __init__(self, config: StationConfig) -> None:
        self.config = config
        self._smus: dict[str, SafeSourceMeter] = {}
        self._board: SafeCrossbar | None = None
        self._links: BenchLinks | None = None
        self._array_shape: tuple[int, int] | None = config.array_shape()
        self._transports: dict[tuple[str, ...], Transport] = {}
        self.identities: dict[str, str] = {}
        self._traffic_revision = TRAFFIC_REVISION  # driver open-time traffic (older logs replay at theirs)
        self._ratings: dict[str, Callable[[], Any]] = {}  # the identified model's rating, per SMU
        self._unidentified: set[str] = set()
        self._closed = False
        self._sealed = False

    def __setattr__(self, item: str, value: Any) -> None:
        if not item.startswith("_") and self.__dict__.get("_sealed"):
            raise SafetyAccessError(f"station: {item!r} is read-only once the station is open")
        object.__setattr__(self, item, value)

    @property
    def smus(self) -> Mapping[str, SourceMeter]:
        """The safety-wrapped SMUs by name (read-only mapping)."""
        return MappingProxyType(self._smus)

    @property
    def board(self) -> CrossbarArray | None:
        """The safety-wrapped crossbar board, or None."""
        return self._board

    @property
    def sim(self) -> Any:
        """The simulated world (physics and emulators) of a simulated bench, else None; no xbarlab code branches
        on it (tests and demos inspect the physics through it, like walking up to the hardware)."""
        return self._links.world if self._links is not None else None

    @property
    def bench_state(self) -> BenchState:
        """What the bench keeps across a crash, for ``--resume`` (the simulated bench saves its physics)."""
        assert self._links is not None
        return self._links.state

    @property
    def array_shape(self) -> tuple[int, int] | None:
        """(rows, cols) of the board's array (None: no board)."""
        return self._array_shape

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        source: str | Path | StationConfig | None = None,
        *,
        links: BenchLinks | None = None,
        wrap_transport: TransportWrapper | None = None,
        open_transport: TransportOpener | None = None,
        identify: bool = True,
        on_created: Callable[[Station], None] | None = None,
        traffic_revision: int | None = None,
    ) -> Station:
        """Open the bench described by a station file path, TOML config or None (embedded sim).

        ``links``: how to open the links, the clock and the bench's state (default: :func:`links_for` the
        station file: its hardware, or the embedded simulated bench). ``wrap_transport`` wraps every link
        (recording for the logbook); ``open_transport`` replaces ``links``' opener (tests); ``on_created`` sees the
        station before any link opens (recorders read its simulated clock). Raises ConfigError for a bad
        file and TransportError for an instrument that cannot be reached; anything opened so
        far is closed again before the error propagates.
        """
        if source is None:
            config = load_station(embedded_station_path("sim"))
        elif isinstance(source, StationConfig):
            config = source
        else:
            config = load_station(source)
        station = cls(config)
        if traffic_revision is not None:
            station._traffic_revision = traffic_revision
        if on_created is not None:
            on_created(station)
        try:
            station._links = links if links is not None else links_for(config)
            station._open_all(wrap_transport, open_transport or station._links.open)
            if identify:
                station._identify_all()
            if station.board is not None:
                station.board.configure(config.read_voltage, config.tia_range)
        except BaseException:
            station.close()
            raise
        station._sealed = True
        return station

    @classmethod
    def from_text(cls, text: str, **kwargs: Any) -> Station:
        """Open a station from TOML text (tests, GUI editors)."""
        return cls.open(parse_station(text), **kwargs)

    def _link_groups(self) -> dict[str, list[InstrumentConfig]]:
        """Instruments sharing one address (channels of one SMU) share one link."""
        groups: dict[str, list[InstrumentConfig]] = {}
        for inst in self.config.instruments.values():
            groups.setdefault(inst.address, []).append(inst)
        return groups

    def _open_all(self, wrap: TransportWrapper | None, opener: TransportOpener) -> None:
        for _address, members in self._link_groups().items():
            names = tuple(m.name for m in members)
            transport = opener(names, members[0])
            if wrap is not None:
                transport = wrap(names, transport)
            self._transports[names] = transport
            for inst in members:
                self._make_driver(inst, transport)

    def _make_driver(self, inst: InstrumentConfig, transport: Transport) -> None:
        driver_cls = inst.spec.load()
        kwargs: dict[str, Any] = {"name": inst.name}
        if inst.spec.channels:
            kwargs["channel"] = inst.channel
        kwargs.update(inst.options)
        try:
            driver = driver_cls(transport, **kwargs)
        except TypeError as exc:
            raise ConfigError(
                f"{self.config.source}: instruments.{inst.name}.options: not accepted by {inst.driver}: {exc}"
            ) from None
        if hasattr(driver, "traffic_revision"):
            driver.traffic_revision = self._traffic_revision

        def rating() -> Any:
            return getattr(driver, "rating", None)

        self._ratings[inst.name] = rating
        if inst.spec.kind == "smu":
            assert isinstance(inst.limits, SmuLimits)
            self._smus[inst.name] = SafeSourceMeter(driver, inst.limits)
        else:
            assert isinstance(inst.limits, BoardLimits)
            ports = {i.board_port for i in self.config.instruments.values()
                     if i.spec.kind == "smu" and i.board_port is not None}
            self._board = SafeCrossbar(driver, inst.limits, cabled_ports=ports)

    def _identify_all(self) -> None:
        cfg = self.config
        for name, smu in self.smus.items():
            addr = cfg.instruments[name].address
            try:
                self.identities[name] = smu.identify()
            except TransportError as exc:
                raise TransportError(f"{cfg.source}: instruments.{name} ({addr}) does not answer: {exc}") from None
            except ConfigError as exc:
                self._unidentified.add(name)  # not what the station says: send it nothing more
                raise ConfigError(f"{cfg.source}: instruments.{name} ({addr}): {exc}") from None
            self._check_rating(name)
        if self.board is not None:
            try:
                info = self.board.identify()
            except TransportError as exc:
                addr = cfg.instruments[self.board.name].address
                raise TransportError(
                    f"{cfg.source}: instruments.{self.board.name} ({addr}) does not answer: {exc}"
                ) from None
            self.identities[self.board.name] = info.identity
            self._check_array_shape((int(info.rows), int(info.cols)))

    def _check_array_shape(self, reported: tuple[int, int]) -> None:
        """The board's array size (IDENTIFY) must be the one the station file states."""
        stated = self._array_shape
        if stated is not None and tuple(stated) != reported:
            assert self.board is not None
            raise ConfigError(f"{self.config.source}: instruments.{self.board.name}: the station file says a "
                              f"{stated[0]}x{stated[1]} array, the board reports {reported[0]}x{reported[1]} "
                              "(IDENTIFY)")
        self._array_shape = (int(reported[0]), int(reported[1]))

    def _check_rating(self, name: str) -> None:
        """The station's limits must be within what the identified model can source."""
        rating = self._ratings[name]() if name in self._ratings else None
        limits = self.config.instruments[name].limits
        if rating is None or not isinstance(limits, SmuLimits):
            return
        for field, rated, unit in (("max_voltage", rating.voltage, "V"), ("max_current", rating.current, "A")):
            value = getattr(limits, field)
            if value > rated:
                raise ConfigError(f"{self.config.source}: instruments.{name}.limits.{field} = {value:g} {unit} is "
                                  f"beyond what a {rating.model} can source ({rated:g} {unit})")

    # -- use -----------------------------------------------------------------------------
    def smu(self, name: str | None = None) -> SourceMeter:
        """The SMU called ``name``, or the first one when None."""
        if not self.smus:
            raise ConfigError(f"{self.config.source}: the station has no SMU")
        if name is None:
            return next(iter(self.smus.values()))
        try:
            return self.smus[name]
        except KeyError:
            raise ConfigError(f"no SMU named {name!r}; the station has {', '.join(self.smus)}") from None

    def require_board(self) -> CrossbarArray:
        """The crossbar board, or a clear error if the station has none."""
        if self.board is None:
            raise ConfigError(f"{self.config.source}: the station has no crossbar board")
        return self.board

    def expert_raw(self, name: str) -> ExpertRawSmu | ExpertRawBoard:
        """EXPERT escape hatch: raw SCPI/TSP messages or board requests to instrument ``name``.

        Every message is parsed and every sourcing value checked against the station limits before it
        is sent; commands the parser does not know are refused. Prefer the typed operations.
        """
        if self._board is not None and name == self._board.name:
            return expert_link(self._board)
        if name in self._smus:
            return expert_link(self._smus[name])
        raise ConfigError(f"no instrument named {name!r}; the station has {', '.join(self.config.instruments)}")

    def board_port(self, smu_name: str) -> int:
        """The board SMU port that ``smu_name`` is cabled to."""
        port = self.config.instruments[smu_name].board_port
        if port is None:
            raise ConfigError(
                f"{self.config.source}: instruments.{smu_name}.board_port is not set; "
                "cannot route this SMU to a cell"
            )
        return port

    def sim_time(self) -> float | None:
        """The instrument clock in s: simulated time on a simulated bench; None on a bench with wall time only."""
        return self._links.clock.now() if self._links is not None else None

    def wait(self, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
        """Let ``seconds`` of instrument time pass, outputs idle.

        Simulated bench: the clock jumps at once. Hardware: sleep in chunks of at most 1 s,
        calling ``checkpoint`` between chunks so an abort request is honoured.
        """
        if seconds < 0:
            raise ConfigError(f"cannot wait a negative time ({seconds} s)")
        assert self._links is not None
        self._links.clock.idle(seconds, checkpoint)

    def safe_state(self) -> list[str]:
        """Outputs off, board lines grounded, SMUs unrouted. Returns problems met (if any)."""
        problems: list[str] = []
        for name, smu in self.smus.items():
            if name in self._unidentified:
                problems.append(f"{name}: not the instrument the station names; its outputs were not touched")
                continue
            try:
                smu.set_output(False)
            except XbarlabError as exc:
                problems.append(f"{name}: output off failed: {exc}")
        if self.board is not None:
            try:
                self.board.all_off()
            except XbarlabError as exc:
                problems.append(f"{self.board.name}: all-off failed: {exc}")
        return problems

    def close(self) -> None:
        """Safe state, then release every link. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for problem in self.safe_state():
            log.warning("while closing station: %s", problem)
            CLOSE_PROBLEMS.append(problem)
        for names, transport in self._transports.items():
            try:
                transport.close()
            except Exception as exc:  # noqa: BLE001 - closing must go on
                log.warning("closing link of %s failed: %s", ", ".join(names), exc)
        if self._links is not None:
            self._links.release()

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
