"""Station TOML text for simulated benches of any size (tests, benchmarks, experiments)."""

from __future__ import annotations

from typing import Any


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def sim_station_text(
    rows: int = 16,
    cols: int = 16,
    device: str = "rram",
    *,
    seed: int = 1,
    kind: str = "1T1R",
    wire_resistance: float = 0.35,
    stuck_fraction: float = 0.01,
    device_params: dict[str, Any] | None = None,
    periphery: dict[str, Any] | None = None,
    read_voltage: float = 0.2,
    tia_range: float = 1e-3,
    max_pulse_amplitude: float = 3.5,
    name: str = "Simulated test bench",
    cap_cells: dict[str, Any] | None = None,
) -> str:
    """A simulated station: one Keithley 2400 cabled to board port 0 and the crossbar board.

    ``cap_cells``: a ``[sim.cap_cells]`` table (a 3T1C capacitor cell beside every array cell); ``{}`` for the
    defaults, None for none.
    """
    lines = [
        "[station]",
        f'name = "{name}"',
        "[station.defaults]",
        f"read_voltage = {read_voltage!r}",
        f"tia_range = {tia_range!r}",
        "[sim]",
        f"seed = {seed}",
        "[sim.array]",
        f"rows = {rows}",
        f"cols = {cols}",
        f'device = "{device}"',
        f'kind = "{kind}"',
        f"wire_resistance = {wire_resistance!r}",
        f"stuck_fraction = {stuck_fraction!r}",
    ]
    if device_params:
        lines.append("[sim.device]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in device_params.items()]
    if periphery:
        lines.append("[sim.periphery]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in periphery.items()]
    if cap_cells is not None:
        lines.append("[sim.cap_cells]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in cap_cells.items()]
    lines += [
        "[instruments.smu1]",
        'driver = "keithley2400"',
        'address = "GPIB0::24::INSTR"',
        "board_port = 0",
        "[instruments.smu1.limits]",
        "max_voltage = 5.0",
        "max_current = 1e-3",
        "[instruments.board]",
        'driver = "crossbar_board"',
        'address = "/dev/ttyACM0"',
        "[instruments.board.limits]",
        "max_read_voltage = 0.5",
        "max_mvm_voltage = 0.5",
        f"max_pulse_amplitude = {max_pulse_amplitude!r}",
        "min_pulse_width = 1e-8",
        "max_pulse_width = 1e-3",
        "max_tia_range = 10e-3",
    ]
    return "\n".join(lines) + "\n"
