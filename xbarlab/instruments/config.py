"""Station files: parse and validate the TOML that describes a bench.

A station file names each instrument, its driver, its address, options and safety
limits. Validation collects every problem with its key so a user fixes the file in
one pass; nothing is opened until the whole file is valid.

Example::

    [station]
    name = "Lab 3 probe station"

    [station.defaults]
    read_voltage = 0.2      # V
    tia_range = 1e-3        # A
    device = "pcm"          # device technology on the board: rram | pcm | ecram (optional)

    [instruments.smu1]
    driver = "keithley2400"
    address = "GPIB0::24::INSTR"
    board_port = 1          # the board's SMU port this SMU is cabled to
    [instruments.smu1.limits]
    max_voltage = 5.0       # V
    max_current = 1e-3      # A

    [instruments.board]
    driver = "crossbar_board"
    address = "/dev/ttyACM0"
    rows = 128              # the array's size (optional; checked against the board's IDENTIFY at open)
    cols = 128
    [instruments.board.limits]
    max_pulse_amplitude = 3.0  # V

A ``[sim]`` table makes every instrument an emulator on an embedded simulated bench.

The array's size is :meth:`StationConfig.array_shape`: the board's ``rows``/``cols`` keys, else the
simulated array's ``[sim.array]`` size; validation and ``--dry-run`` use it, and opening the station
checks it against what the board reports (IDENTIFY).
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbarlab.errors import ConfigError, problem_listing
from xbarlab.instruments.registry import DRIVERS, DriverSpec
from xbarlab.instruments.safety import BoardLimits, SmuLimits, limits_from_mapping
from xbarlab.sim.schema import sim_problems

_INSTRUMENT_KEYS = {"driver", "address", "limits", "options", "board_port", "channel", "timeout", "baudrate", "rows",
                    "cols"}
#: array size of a simulated array without ``rows``/``cols`` in ``[sim.array]`` (the simulator's default)
SIM_ARRAY_DEFAULT = 64
_DEFAULT_KEYS = {"read_voltage", "tia_range", "device"}
DEVICE_KINDS = ("rram", "pcm", "ecram")
#: the board protocol reports SMU ports as bits of one status byte
MAX_SMU_PORTS = 8


@dataclass(frozen=True)
class InstrumentConfig:
    """One instrument entry of a station file."""

    name: str
    driver: str
    address: str
    spec: DriverSpec
    limits: SmuLimits | BoardLimits
    channel: str | None = None
    board_port: int | None = None
    timeout: float = 2.0  # s
    baudrate: int = 921600
    options: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None  # board only: the array's rows (None: not stated)
    cols: int | None = None  # board only: the array's columns (None: not stated)


@dataclass(frozen=True)
class StationConfig:
    """A validated station file."""

    name: str
    source: str  # file path or "<string>"
    text: str  # the file's text, stored in every log
    instruments: dict[str, InstrumentConfig]
    read_voltage: float = 0.2  # V
    tia_range: float = 1e-3  # A
    visa_library: str = ""  # pyvisa library spec for real benches ("" = pyvisa default, "@py" = pyvisa-py)
    sim: dict[str, Any] | None = None
    device: str | None = None  # device technology: "rram" | "pcm" | "ecram" (None: not stated)

    @property
    def is_simulated(self) -> bool:
        return self.sim is not None

    def smu_names(self) -> list[str]:
        return [n for n, i in self.instruments.items() if i.spec.kind == "smu"]

    def board_name(self) -> str | None:
        names = [n for n, i in self.instruments.items() if i.spec.kind == "board"]
        return names[0] if names else None

    def array_shape(self) -> tuple[int, int] | None:
        """(rows, cols) of the board's array: the board's ``rows``/``cols`` keys, else the simulated array's
        ``[sim.array]`` size; None when the file states neither (known once the board has identified itself)."""
        board = self.board_name()
        inst = self.instruments[board] if board is not None else None
        if inst is not None and inst.rows is not None and inst.cols is not None:
            return inst.rows, inst.cols
        return _sim_shape(self.sim)


def _sim_shape(sim: Any) -> tuple[int, int] | None:
    """(rows, cols) of a ``[sim]`` table's array (the simulator's default where not given); None without one."""
    if not isinstance(sim, dict):
        return None
    array = sim.get("array", {})
    array = array if isinstance(array, dict) else {}
    rows, cols = array.get("rows", SIM_ARRAY_DEFAULT), array.get("cols", SIM_ARRAY_DEFAULT)
    return (rows, cols) if all(isinstance(v, int) and not isinstance(v, bool) for v in (rows, cols)) else None


def load_station(path: str | Path) -> StationConfig:
    """Read and validate a station file. Raises ConfigError naming the file and keys."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: station file not found")
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, expected a station TOML file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read station file: {exc}") from None
    return parse_station(text, source=str(p))


def parse_station(text: str, source: str = "<string>") -> StationConfig:
    """Validate station TOML text; every problem is listed in one ConfigError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None

    problems: list[str] = []
    station = data.get("station", {})
    if not isinstance(station, dict):
        problems.append("[station] must be a table")
        station = {}
    unknown_top = sorted(set(data) - {"station", "instruments", "sim"})
    if unknown_top:
        hints = "".join(_did_you_mean(k, ("station", "instruments", "sim")) for k in unknown_top)
        problems.append(f"unknown top-level table(s) {', '.join(unknown_top)}{hints}; "
                        "expected station, instruments, sim")
    name = station.get("name", Path(source).stem if source != "<string>" else "station")
    if not isinstance(name, str):
        problems.append("station.name must be a string")
        name = "station"
    visa_library = station.get("visa_library", "")
    if not isinstance(visa_library, str):
        problems.append('station.visa_library must be a string such as "@py"')
        visa_library = ""

    defaults = station.get("defaults", {})
    read_voltage, tia_range = 0.2, 1e-3
    if not isinstance(defaults, dict):
        problems.append("[station.defaults] must be a table")
        defaults = {}
    for key in sorted(set(defaults) - _DEFAULT_KEYS):
        problems.append(f"station.defaults.{key}: unknown key{_did_you_mean(key, _DEFAULT_KEYS)}; "
                        f"expected one of {', '.join(sorted(_DEFAULT_KEYS))}")
    if "read_voltage" in defaults:
        read_voltage = _number(defaults["read_voltage"], "station.defaults.read_voltage", problems, nonzero=True)
    if "tia_range" in defaults:
        tia_range = _number(defaults["tia_range"], "station.defaults.tia_range", problems, positive=True)

    sim = data.get("sim")
    if sim is not None and not isinstance(sim, dict):
        problems.append("[sim] must be a table")
        sim = None
    device = _device_kind(defaults.get("device"), sim, problems)

    instruments_raw = data.get("instruments")
    instruments: dict[str, InstrumentConfig] = {}
    if not isinstance(instruments_raw, dict) or not instruments_raw:
        problems.append("[instruments] is missing or empty: a station needs at least one instrument table")
        instruments_raw = {}
    for inst_name, entry in instruments_raw.items():
        where = f"instruments.{inst_name}"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a table")
            continue
        cfg = _instrument(inst_name, entry, where, problems, simulated=sim is not None)
        if cfg is not None:
            instruments[inst_name] = cfg

    if sim is not None:
        problems += sim_problems(sim, instruments)

    boards = [n for n, c in instruments.items() if c.spec.kind == "board"]
    if len(boards) > 1:
        problems.append(f"more than one crossbar board ({', '.join(boards)}); a station drives one board")
    ports = [(c.board_port, n) for n, c in instruments.items() if c.board_port is not None]
    seen: dict[int, str] = {}
    for port, n in ports:
        if port in seen:
            problems.append(f"instruments.{n}.board_port: port {port} already used by {seen[port]}")
        seen[port] = n
    chans: dict[tuple[str, str | None], str] = {}
    for n, c in instruments.items():
        key = (c.address, c.channel)
        if key in chans:
            problems.append(f"instruments.{n}: same address and channel as instruments.{chans[key]}")
        chans[key] = n
    if boards:
        board = instruments[boards[0]]
        stated, simulated = (board.rows, board.cols), _sim_shape(sim)
        if None not in stated and simulated is not None and stated != simulated:
            problems.append(f"instruments.{board.name}: rows = {board.rows}, cols = {board.cols} but the simulated "
                            f"array is {simulated[0]}x{simulated[1]} ([sim.array])")
        board_limits = instruments[boards[0]].limits
        assert isinstance(board_limits, BoardLimits)
        if abs(read_voltage) > board_limits.max_read_voltage:
            problems.append(
                f"station.defaults.read_voltage = {read_voltage:g} V exceeds the board limit "
                f"max_read_voltage = {board_limits.max_read_voltage:g} V"
            )
        if tia_range > board_limits.max_tia_range:
            problems.append(
                f"station.defaults.tia_range = {tia_range:g} A exceeds the board limit "
                f"max_tia_range = {board_limits.max_tia_range:g} A"
            )

    if problems:
        raise ConfigError(problem_listing(f"{source}: invalid station file", problems))
    return StationConfig(
        name=name,
        source=source,
        text=text,
        instruments=instruments,
        read_voltage=read_voltage,
        tia_range=tia_range,
        visa_library=visa_library,
        sim=sim,
        device=device,
    )


def _device_kind(stated: Any, sim: dict[str, Any] | None, problems: list[str]) -> str | None:
    """``station.defaults.device``, or the simulated array's ``[sim.array] device``; they must agree."""
    array = sim.get("array") if isinstance(sim, dict) else None
    simulated = array.get("device", "rram") if isinstance(array, dict) else ("rram" if sim is not None else None)
    if stated is None:
        return str(simulated).lower() if simulated is not None else None
    if not isinstance(stated, str) or stated.lower() not in DEVICE_KINDS:
        problems.append(f"station.defaults.device = {stated!r}: expected one of {', '.join(DEVICE_KINDS)}")
        return None
    if simulated is not None and str(simulated).lower() != stated.lower():
        problems.append(f"station.defaults.device = {stated!r} but the simulated array is {simulated!r} "
                        "([sim.array] device)")
    return stated.lower()


def _did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), sorted(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(value: Any, where: str, problems: list[str], positive: bool = False, nonzero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{where}: expected a finite number, got {value!r}")
        return 1.0
    if positive and value <= 0:
        problems.append(f"{where}: expected a positive number, got {value!r}")
    if nonzero and value == 0:
        problems.append(f"{where}: must not be zero")
    return float(value)


def _instrument(
    name: str, entry: dict[str, Any], where: str, problems: list[str], simulated: bool
) -> InstrumentConfig | None:
    n_before = len(problems)
    for key in sorted(set(entry) - _INSTRUMENT_KEYS):
        problems.append(f"{where}.{key}: unknown key{_did_you_mean(key, _INSTRUMENT_KEYS)}; "
                        f"expected some of {', '.join(sorted(_INSTRUMENT_KEYS))}")
    driver = entry.get("driver")
    if not isinstance(driver, str):
        problems.append(f"{where}.driver: missing; expected one of {', '.join(sorted(DRIVERS))}")
        return None
    spec = DRIVERS.get(driver)
    if spec is None:
        problems.append(f"{where}.driver: unknown driver {driver!r}; expected one of {', '.join(sorted(DRIVERS))}")
        return None
    address = entry.get("address")
    if not isinstance(address, str) or not address.strip():
        hint = "a VISA resource name such as GPIB0::24::INSTR" if spec.transport == "visa" else (
            "a serial port such as /dev/ttyACM0 or a pyserial URL such as socket://127.0.0.1:5100"
        )
        problems.append(f"{where}.address: missing; expected {hint}")
        address = ""
    channel = entry.get("channel")
    if spec.channels:
        if channel is None:
            channel = spec.channels[0]
        if channel not in spec.channels:
            problems.append(
                f"{where}.channel: {channel!r} is not a channel of {driver}; expected one of {spec.channels}"
            )
    elif channel is not None:
        problems.append(f"{where}.channel: {driver} has no channels")
    board_port = entry.get("board_port")
    if board_port is not None:
        if spec.kind != "smu":
            problems.append(f"{where}.board_port: only SMUs are cabled to board ports")
        elif isinstance(board_port, bool) or not isinstance(board_port, int) or not 0 <= board_port < MAX_SMU_PORTS:
            problems.append(f"{where}.board_port: expected an SMU port 0..{MAX_SMU_PORTS - 1} of the board, "
                            f"got {board_port!r}")
    timeout = _number(entry.get("timeout", 2.0), f"{where}.timeout", problems, positive=True)
    baudrate = entry.get("baudrate", 921600)
    if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
        problems.append(f"{where}.baudrate: expected a positive integer, got {baudrate!r}")
    shape = {}
    for key in ("rows", "cols"):
        value = entry.get(key)
        if value is None:
            continue
        if spec.kind != "board":
            problems.append(f"{where}.{key}: only a crossbar board has an array size")
        elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            problems.append(f"{where}.{key}: expected the array's number of {key} (an integer 1..65535), "
                            f"got {value!r}")
        else:
            shape[key] = value
    if spec.kind == "board" and len(shape) == 1:
        problems.append(f"{where}: give both rows and cols of the array, or neither")
    options = entry.get("options", {})
    if not isinstance(options, dict):
        problems.append(f"{where}.options must be a table")
        options = {}
    limits_raw = entry.get("limits", {})
    limits: SmuLimits | BoardLimits | None = None
    if not isinstance(limits_raw, dict):
        problems.append(f"{where}.limits must be a table")
    else:
        cls = SmuLimits if spec.kind == "smu" else BoardLimits
        try:
            limits = limits_from_mapping(cls, limits_raw, f"{where}.limits")
        except ConfigError as exc:
            problems.append(str(exc))
    if len(problems) > n_before or limits is None:
        return None
    return InstrumentConfig(
        name=name,
        driver=driver,
        address=address,
        spec=spec,
        limits=limits,
        channel=channel,
        board_port=board_port,
        timeout=timeout,
        baudrate=baudrate,
        options=options,
        rows=shape.get("rows"),
        cols=shape.get("cols"),
    )
