"""SimBench: the simulated physical world behind a simulated station.

One bench holds the simulated clock, the crossbar physics, the board periphery and
one emulator per instrument address, registered with the in-process transports
(``@xbarsim`` VISA backend, ``xbarsim://`` pyserial handler) under a bench id.
SMUs cabled to a board port share a terminal with the board's routing matrix, so
an SMU routed to a cell measures (and can stress) that cell.

The ``[sim]`` table of a station file configures it::

    [sim]
    seed = 2026
    [sim.array]               # CrossbarModel keywords
    rows = 64
    cols = 64
    device = "rram"           # rram | pcm | ecram
    kind = "1T1R"
    wire_resistance = 0.35    # Ω per segment
    stuck_fraction = 0.01
    [sim.device]              # device-model parameters overriding the literature defaults
    [sim.periphery]           # Periphery keywords (dac_bits, adc_bits, gain_sigma, ...)
    [sim.loads]               # fixed loads on SMUs not cabled to the board: name = Ω
    smu3 = 10e3
    [sim.cap_cells]           # a 3T1C capacitor cell beside every array cell (CapCellParams overrides)
    [sim.faults.smu1]         # FaultPlan switches per instrument
    timeout_probability = 0.01
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xbarlab.errors import ConfigError, problem_listing
from xbarlab.sim import checkpoint, registry, smu_scpi, smu_tsp
from xbarlab.sim.array import CrossbarModel
from xbarlab.sim.board_emulator import BoardEmulator
from xbarlab.sim.cap_cell import CapacitorArray, cap_params
from xbarlab.sim.clock import SimClock
from xbarlab.sim.devices import make_device
from xbarlab.sim.emulator import StreamEmulator
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.periphery import Periphery
from xbarlab.sim.schema import sim_problems
from xbarlab.sim.terminals import Resistor, SmuTerminal

_counter = itertools.count(1)
_counter_lock = threading.Lock()

_SIM_KEYS = {"seed", "array", "device", "periphery", "loads", "faults", "board", "cap_cells"}
_ARRAY_KEYS = {"rows", "cols", "device", "kind", "wire_resistance", "stuck_fraction", "access_resistance",
               "ir_solver"}


def _new_bench_id() -> str:
    with _counter_lock:
        return f"bench{next(_counter)}"


class SimBench:
    """The simulated instruments and physics of one station."""

    def __init__(self, sim: dict[str, Any], instruments: list[Any], source: str = "<sim>") -> None:
        where = f"{source}: sim"
        problems = sim_problems(sim, {inst.name: inst for inst in instruments})
        if problems:
            raise ConfigError(problem_listing(f"{source}: invalid [sim] table", problems))
        unknown = sorted(set(sim) - _SIM_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {sorted(_SIM_KEYS)}")
        self.bench_id = _new_bench_id()
        self.seed = int(sim.get("seed", 0))
        self.clock = SimClock()
        array_cfg = dict(sim.get("array", {}))
        bad = sorted(set(array_cfg) - _ARRAY_KEYS)
        if bad:
            raise ConfigError(f"{where}.array: unknown key(s) {', '.join(bad)}; expected some of {sorted(_ARRAY_KEYS)}")
        device_name = str(array_cfg.pop("device", "rram"))
        try:
            device = make_device(device_name, **dict(sim.get("device", {})))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.device: {exc}") from None
        rows = int(array_cfg.pop("rows", 64))
        cols = int(array_cfg.pop("cols", 64))
        try:
            self.model = CrossbarModel(rows, cols, device=device, seed=self.seed, clock=self.clock, **array_cfg)
            self.periphery = Periphery(rows, cols, seed=self.seed + 1, **dict(sim.get("periphery", {})))
            self.periphery.clock = self.clock  # the read path drifts with instrument time
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.array: {exc}") from None

        self.emulators: dict[str, StreamEmulator] = {}  # instrument name -> emulator
        self.terminals: dict[str, SmuTerminal] = {}  # SMU instrument name -> terminal
        board_terminals: dict[int, SmuTerminal] = {}
        by_address: dict[str, StreamEmulator] = {}
        loads = dict(sim.get("loads", {}))
        faults_cfg = dict(sim.get("faults", {}))
        board_name: str | None = None
        self._addresses: list[str] = []

        for index, inst in enumerate(instruments):
            if inst.spec.kind == "board":
                board_name = inst.name
                continue
            emulator = by_address.get(inst.address)
            if emulator is None:
                emulator = _make_smu_emulator(inst, self.clock, seed=self.seed + 100 + index)
                by_address[inst.address] = emulator
                registry.register(self.bench_id, inst.address, emulator)
                self._addresses.append(inst.address)
            terminal = emulator.terminal(inst.channel) if inst.spec.channels else emulator.terminal()
            if inst.name in loads:
                try:
                    terminal.default_load = Resistor(float(loads[inst.name]))
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{where}.loads.{inst.name}: {exc}") from None
                terminal.disconnect()
            if inst.board_port is not None:
                board_terminals[inst.board_port] = terminal
            self.terminals[inst.name] = terminal
            self.emulators[inst.name] = emulator

        if board_name is not None:
            board_cfg = dict(sim.get("board", {}))
            if "cap_cells" in sim:
                try:
                    params = cap_params(sim["cap_cells"])
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{where}.cap_cells: {exc}") from None
                board_cfg["cap_array"] = CapacitorArray(rows, cols, params, seed=self.seed + 3, clock=self.clock)
            self.board = BoardEmulator(
                self.model, self.periphery, self.clock, smu_terminals=board_terminals, **board_cfg
            )
            registry.register(self.bench_id, board_name, self.board)
            self._addresses.append(board_name)
            self.emulators[board_name] = self.board
        for name, switches in faults_cfg.items():
            self.set_faults(name, **dict(switches))

    @classmethod
    def from_station(cls, config: Any) -> SimBench:
        """Build the bench of a validated simulated StationConfig."""
        if config.sim is None:
            raise ConfigError(f"{config.source}: not a simulated station (no [sim] table)")
        return cls(config.sim, list(config.instruments.values()), source=config.source)

    # -- access ----------------------------------------------------------------------------
    def serial_url(self, name: str) -> str:
        """The in-process pyserial URL of a byte-stream instrument (the board)."""
        return f"xbarsim://{self.bench_id}/{name}"

    def set_faults(self, name: str, **switches: Any) -> FaultPlan:
        """Replace the fault plan of instrument ``name`` (FaultPlan keywords)."""
        if name not in self.emulators:
            raise ConfigError(f"sim.faults.{name}: no simulated instrument named {name!r}")
        try:
            plan = FaultPlan(**switches)
        except TypeError as exc:
            fields = ", ".join(f.name for f in dataclasses.fields(FaultPlan) if not f.name.startswith("_"))
            raise ConfigError(f"sim.faults.{name}: {exc}; expected some of {fields}") from None
        self.emulators[name].faults = plan
        return plan

    # -- the station's clock and resume hooks (xbarlab.instruments.links: InstrumentClock, BenchState) ----
    def now(self) -> float:
        """Simulated instrument time (s)."""
        return self.clock.now

    def idle(self, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
        """Let ``seconds`` pass with the outputs idle: the simulated clock jumps at once."""
        self.clock.advance(seconds)

    def save_state(self, path: Path, tag: str) -> None:
        """Checkpoint the physics after a committed step (:func:`xbarlab.sim.checkpoint.save`)."""
        checkpoint.save(self, path, tag=tag)

    def restore_state(self, path: Path, tags: list[str]) -> str | None:
        """Restore the newest checkpoint of a step in ``tags``; its tag (None: none saved)."""
        return checkpoint.load(self, path, tags) if Path(path).exists() else None

    def state_record(self) -> dict[str, Any]:
        """The fault generators' entropy per instrument (how a resumed session's faults continue)."""
        return {"sim_fault_entropy": {name: str(emu.faults.entropy) for name, emu in self.emulators.items()}}

    def close(self) -> None:
        """Unregister every emulator of this bench."""
        registry.unregister_bench(self.bench_id)


def _make_smu_emulator(inst: Any, clock: SimClock, seed: int) -> StreamEmulator:
    factories = {
        "keithley2400": smu_scpi.Keithley2400Emulator,
        "keithley2450": smu_scpi.Keithley2450Emulator,
        "keysight_b2900": smu_scpi.KeysightB2900Emulator,
        "keithley2600": smu_tsp.Keithley2600Emulator,
    }
    try:
        factory = factories[inst.driver]
    except KeyError:
        raise ConfigError(f"instruments.{inst.name}: no emulator for driver {inst.driver!r}") from None
    return factory(clock=clock, seed=seed)
