"""`xbarlab demo`: an end-to-end tour of a bench through the real drivers.

Identifies every instrument, runs an SMU I–V sweep on one cell routed through the
board, reads the whole array as a conductance map, runs one forward MVM and compares
it with the digital product of the measured conductances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from xbarlab.experiments.base import Estimate, Experiment, Param, PlotSpec, register
from xbarlab.instruments.station import Station


@dataclass
class DemoResult:
    """Numbers the demo measured (SI units)."""

    identities: dict[str, str]
    iv_cell: tuple[int, int]
    iv_voltage: np.ndarray  # V
    iv_current: np.ndarray  # A
    iv_conductance: float  # S, slope of the I–V fit through the origin
    board_conductance: float  # S, the board's read of the same cell
    conductance_map: np.ndarray  # S
    mvm_input: np.ndarray  # V
    mvm_measured: np.ndarray  # A
    mvm_expected: np.ndarray  # A, G_measuredᵀ·V
    sim_time: float | None  # s
    notes: list[str] = field(default_factory=list)

    @property
    def mvm_relative_error(self) -> float:
        return float(np.linalg.norm(self.mvm_measured - self.mvm_expected) / np.linalg.norm(self.mvm_expected))


def pick_cell(gmap: np.ndarray) -> tuple[int, int]:
    """A cell near the median conductance (not stuck), for the I–V demonstration."""
    lo, hi = np.percentile(gmap, [10, 90])
    candidates = np.argwhere((gmap > lo) & (gmap < hi))
    if len(candidates) == 0:
        return (0, 0)
    median = np.median(gmap)
    best = candidates[np.argmin(np.abs(gmap[tuple(candidates.T)] - median))]
    return int(best[0]), int(best[1])


def run_demo(
    station: Station,
    *,
    seed: int = 0,
    iv_span: float = 0.2,
    iv_points: int = 21,
    mvm_amplitude: float = 0.1,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo on an open station. ``iv_span`` and ``mvm_amplitude`` in V."""
    say = progress or (lambda _msg: None)
    board = station.require_board()
    rng = np.random.default_rng(seed)

    say("identify")
    identities = dict(station.identities)

    say("read whole array")
    gmap = board.read_all()

    smu_name = next((n for n in station.smus if station.config.instruments[n].board_port is not None), None)
    if smu_name is None:
        raise ValueError("the demo needs an SMU with a board_port to route to a cell")
    smu = station.smus[smu_name]
    port = station.board_port(smu_name)
    row, col = pick_cell(gmap)
    say(f"I-V sweep of cell ({row}, {col}) through {smu_name}")
    board.route_smu(port, row, col)
    try:
        smu.set_nplc(1.0)
        sweep = smu.sweep_voltage(-iv_span, iv_span, iv_points, compliance_current=100e-6)
    finally:
        smu.set_output(False)
        board.unroute_smu(port)
    v, i = np.asarray(sweep.voltage), np.asarray(sweep.current)
    small = np.abs(v) <= iv_span / 2  # fit the low-field part, where the cell is ohmic
    g_iv = float(np.dot(v[small], i[small]) / np.dot(v[small], v[small]))

    say("forward MVM")
    rows, cols = board.shape
    x = rng.uniform(-mvm_amplitude, mvm_amplitude, size=rows)
    y = board.mvm_forward(x)
    expected = gmap.T @ x
    return DemoResult(
        identities=identities,
        iv_cell=(row, col),
        iv_voltage=v,
        iv_current=i,
        iv_conductance=g_iv,
        board_conductance=float(gmap[row, col]),
        conductance_map=gmap,
        mvm_input=x,
        mvm_measured=np.asarray(y),
        mvm_expected=expected,
        sim_time=station.sim_time(),
    )


def format_report(result: DemoResult, station: Station) -> str:
    """A short human-readable report with units."""
    g = result.conductance_map * 1e6
    lines = [f"xbarlab demo on: {station.config.name}", "", "Instruments:"]
    for name, ident in result.identities.items():
        lines.append(f"  {name:<6} {ident}")
    r, c = result.iv_cell
    lines += [
        "",
        f"I-V sweep of cell ({r}, {c}): {len(result.iv_voltage)} points, "
        f"{result.iv_voltage.min():+.3f} V to {result.iv_voltage.max():+.3f} V",
        f"  I at {result.iv_voltage[-1]:+.3f} V = {result.iv_current[-1] * 1e6:.3f} uA; "
        f"low-field G = {result.iv_conductance * 1e6:.2f} uS "
        f"(board read: {result.board_conductance * 1e6:.2f} uS)",
        "  board reads here are raw: column TIA gain and offset not yet calibrated against the SMU",
        "  (xbarlab run campaigns/calibrate.toml does that; see docs/calibration.md)",
        "",
        f"Conductance map {g.shape[0]}x{g.shape[1]}: mean {g.mean():.2f} uS, "
        f"min {g.min():.2f} uS, max {g.max():.2f} uS",
        f"  cells below 1% of max (stuck off?): {int((g < 0.01 * g.max()).sum())}",
        "",
        f"Forward MVM, inputs uniform in +-{np.abs(result.mvm_input).max():.3f} V:",
        f"  column currents {result.mvm_measured.min() * 1e6:+.2f} uA to {result.mvm_measured.max() * 1e6:+.2f} uA",
        f"  relative error vs digital G^T.V of the measured map: {result.mvm_relative_error * 100:.2f} %",
    ]
    if result.sim_time is not None:
        lines += ["", f"Simulated instrument time: {result.sim_time:.3f} s"]
    lines += result.notes
    return "\n".join(lines)


@register
class DemoExperiment(Experiment):
    """The demo as a logged experiment: every measurement goes to the run's streams."""

    kind = "demo"
    title = "Demo: I-V of a cell, array map, one forward MVM"
    plots = (PlotSpec("iv", "voltage", ("current",), "V", "A", "I-V sweep"),
             PlotSpec("mvm_output", "expected", ("measured",), "A", "A", "MVM: measured vs expected"))
    params_spec = (
        Param("seed", int, 0, help="seed of the random MVM input"),
        Param("iv_span", float, 0.2, "V", min=0.01, max=1.0, help="I-V sweep from -span to +span"),
        Param("iv_points", int, 21, min=3, max=1001),
        Param("mvm_amplitude", float, 0.1, "V", min=0.001, max=0.5, help="MVM inputs uniform in ±amplitude"),
    )

    @classmethod
    def estimate(cls, params: dict, station_config: object) -> Estimate:  # type: ignore[override]
        return Estimate(operations=int(params.get("iv_points", 21)) + 3, instrument_time=1.0)

    def execute(self) -> DemoResult:
        p = self.params
        total = 3

        def say(msg: str) -> None:
            self.report(min(say.n, total), total, msg)  # type: ignore[attr-defined]
            say.n += 1  # type: ignore[attr-defined]

        say.n = 0  # type: ignore[attr-defined]
        result = run_demo(self.station, seed=p["seed"], iv_span=p["iv_span"], iv_points=p["iv_points"],
                          mvm_amplitude=p["mvm_amplitude"], progress=say)
        rec = self.recorder
        rec.stream("conductance", shape=result.conductance_map.shape, units="S").append(result.conductance_map)
        rec.stream("iv", columns=["voltage", "current"], units=["V", "A"]).append(
            np.column_stack([result.iv_voltage, result.iv_current]))
        rec.stream("mvm_input", shape=result.mvm_input.shape, units="V").append(result.mvm_input)
        rec.stream("mvm_output", columns=["measured", "expected"], units=["A", "A"]).append(
            np.column_stack([result.mvm_measured, result.mvm_expected]))
        self.commit("demo", iv_cell=list(result.iv_cell), iv_conductance=result.iv_conductance,
                    mvm_relative_error=result.mvm_relative_error)
        self.report(total, total, "done")
        return result
