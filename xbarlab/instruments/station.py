"""Station: open a whole bench from one station file and close it safely.

``Station.open("stations/lab.toml")`` opens every instrument through pyvisa or
pyserial, wraps each driver in the safety layer and configures the board's read
path. ``close()`` (also on ``with`` exit and on error) turns every SMU output off,
puts the board in its safe state and releases every link.

For a station with a ``[sim]`` table the instruments are emulators on an embedded
simulated bench, reached through the in-process VISA backend (``@xbarsim``) and the
``xbarsim://`` pyserial URL handler, so the drivers run exactly the code they run on
hardware.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from xbarlab.drivers.transport import (
    ByteTransport,
    MessageTransport,
    SerialTransport,
    VisaTransport,
)
from xbarlab.errors import ConfigError, SafetyAccessError, TransportError, XbarlabError
from xbarlab.instruments.config import InstrumentConfig, StationConfig, load_station, parse_station
from xbarlab.instruments.interfaces import CrossbarArray, SourceMeter
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

Transport = MessageTransport | ByteTransport
#: ``wrap(instrument_names, transport) -> transport``: e.g. the logbook's recorder
TransportWrapper = Callable[[tuple[str, ...], Transport], Transport]
#: ``open(instrument_names, config) -> transport``: replaces opening a real link (offline replay)
TransportOpener = Callable[[tuple[str, ...], InstrumentConfig], Transport]


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
        "sim_time": "query: simulated clock (s)",
        "wait": "checked: lets time pass with outputs idle (sources nothing)",
        "safe_state": "checked: outputs off, lines grounded, SMUs unrouted",
        "close": "checked: safe state, then links released",
        "OPERATIONS": "query: this table",
    })

    def __init__(self, config: StationConfig) -> None:
        self.config = config
        self._smus: dict[str, SafeSourceMeter] = {}
        self._board: SafeCrossbar | None = None
        self.sim: Any = None  # SimBench for simulated stations (the simulated world, not an instrument)
        self._transports: dict[tuple[str, ...], Transport] = {}
        self.identities: dict[str, str] = {}
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

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        source: str | Path | StationConfig | None = None,
        *,
        wrap_transport: TransportWrapper | None = None,
        open_transport: TransportOpener | None = None,
        identify: bool = True,
        on_created: Callable[[Station], None] | None = None,
    ) -> Station:
        """Open the bench described by a station file path, TOML config or None (embedded sim).

        ``wrap_transport`` wraps every link (recording for the logbook); ``open_transport``
        replaces opening real links altogether (offline replay); ``on_created`` sees the
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
        if on_created is not None:
            on_created(station)
        try:
            station._open_all(wrap_transport, open_transport)
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

    def _open_all(self, wrap: TransportWrapper | None, opener: TransportOpener | None) -> None:
        cfg = self.config
        if cfg.is_simulated and opener is None:
            from xbarlab.sim.bench import SimBench

            self.sim = SimBench.from_station(cfg)
        for _address, members in self._link_groups().items():
            names = tuple(m.name for m in members)
            first = members[0]
            transport = opener(names, first) if opener is not None else self._open_link(first)
            if wrap is not None:
                transport = wrap(names, transport)
            self._transports[names] = transport
            for inst in members:
                self._make_driver(inst, transport)

    def _open_link(self, inst: InstrumentConfig) -> Transport:
        where = f"{self.config.source}: instruments.{inst.name}"
        if inst.spec.transport == "visa":
            import pyvisa

            library = f"{self.sim.bench_id}@xbarsim" if self.sim is not None else self.config.visa_library
            try:
                rm = pyvisa.ResourceManager(library)
                res = rm.open_resource(
                    inst.address,
                    read_termination="\n",
                    write_termination="\n",
                    timeout=int(inst.timeout * 1000),
                )
            except (pyvisa.errors.Error, ValueError, OSError) as exc:
                raise TransportError(f"{where}: cannot open VISA address {inst.address!r}: {exc}") from None
            return VisaTransport(res)
        import serial

        url = self.sim.serial_url(inst.name) if self.sim is not None else inst.address
        try:
            port = serial.serial_for_url(url, baudrate=inst.baudrate, timeout=inst.timeout)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise TransportError(f"{where}: cannot open serial port {inst.address!r}: {exc}") from None
        return SerialTransport(port)

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
            try:
                self.identities[name] = smu.identify()
            except TransportError as exc:
                addr = cfg.instruments[name].address
                raise TransportError(f"{cfg.source}: instruments.{name} ({addr}) does not answer: {exc}") from None
        if self.board is not None:
            try:
                self.identities[self.board.name] = self.board.identify().identity
            except TransportError as exc:
                addr = cfg.instruments[self.board.name].address
                raise TransportError(
                    f"{cfg.source}: instruments.{self.board.name} ({addr}) does not answer: {exc}"
                ) from None

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
        """Simulated clock in s (None on a real bench)."""
        return self.sim.clock.now if self.sim is not None else None

    def wait(self, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
        """Let ``seconds`` of instrument time pass, outputs idle.

        Simulated bench: the clock jumps at once. Hardware: sleep in chunks of at most 1 s,
        calling ``checkpoint`` between chunks so an abort request is honoured.
        """
        if seconds < 0:
            raise ConfigError(f"cannot wait a negative time ({seconds} s)")
        if self.sim is not None:
            self.sim.clock.advance(seconds)
            return
        import time

        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if checkpoint is not None:
                checkpoint()
            time.sleep(min(1.0, left))

    def safe_state(self) -> list[str]:
        """Outputs off, board lines grounded, SMUs unrouted. Returns problems met (if any)."""
        problems: list[str] = []
        for name, smu in self.smus.items():
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
        for names, transport in self._transports.items():
            try:
                transport.close()
            except Exception as exc:  # noqa: BLE001 - closing must go on
                log.warning("closing link of %s failed: %s", ", ".join(names), exc)
        if self.sim is not None:
            self.sim.close()

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
