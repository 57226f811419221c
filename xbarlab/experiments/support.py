"""Small station helpers shared by the array experiments (time, limits, TIA range, waiting)."""

from __future__ import annotations

import datetime as dt
import math
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xbarlab.errors import ConfigError, problem_listing
from xbarlab.instruments import interfaces
from xbarlab.instruments.config import StationConfig
from xbarlab.instruments.interfaces import BenchStation, CrossbarArray
from xbarlab.runs.session import LabSession, resolve_station
from xbarlab.runs.step import did_you_mean, resolve_params


@dataclass(frozen=True)
class BenchTiming:
    """Instrument time of the board's basic operations (s), for dry-run estimates.

    Figures of the simulated board's timing model (serial transfer, settling, conversions),
    which follows the v1 board design; they scale with the array size as measured there.
    """

    rows: int
    cols: int

    @property
    def read_all(self) -> float:
        """One whole-array conductance read (s): 0.225 s on 64×64."""
        return 55e-6 * self.rows * self.cols

    @property
    def mvm(self) -> float:
        """One forward or transpose MVM (s): 6.7 ms on 64×64."""
        return 1.2e-3 + 43e-6 * (self.rows + self.cols)

    @property
    def slot(self) -> float:
        """One slot of an outer-product update (s): 1.4 ms on 64×64."""
        return 5e-5 + 11e-6 * (self.rows + self.cols)

    pulse: float = 130e-6  # s per pulse of a pulse batch (width, gap, transfer)
    closed_loop: float = 3e-3  # s per closed-loop operation (settling, output transfer)

    @property
    def read_calibration(self) -> float:
        """SMU-referenced read-path calibration of every column (s): 12.9 s measured on 64×64 with a
        2400 (4 SMU-referenced cells per column, 8 board reads each, three reference I–V sweeps; every
        SMU reading confirmed by a second, buffers read twice; a 2450/B2900 adds a reading per cell)."""
        return 1.0 + 0.185 * self.cols

    #: characterisation of 16 cells that gives write-verify its pulse model, once per board and run (s):
    #: 1.28–1.33 s measured on 8×32, 16×16, 32×32 and 64×64 simulated RRAM arrays
    characterization: float = 1.3

    #: read noise (1σ, fraction of the window) of a verify read at the top of the window, as the
    #: write-verify's characterisation finds it on the simulated RRAM arrays: sets its verify reads
    verify_read_sigma: float = 0.0055

    @staticmethod
    def verify_reads(tolerance: float, sigma: float | None = None) -> int:
        """Reads averaged per verify of a write-verify to ``tolerance`` (fraction of the window): as
        many as bring the mean's 1σ to a quarter of the tolerance, 4 to 256 (the programming layer's
        rule; measured 19–21 at 0.5 %, 5–6 at 1 %, 4 at 2 %)."""
        s = BenchTiming.verify_read_sigma if sigma is None else sigma
        n = (s / (0.25 * max(tolerance, 1e-6))) ** 2
        return int(min(max(math.ceil(n), 4), 256))

    def write_verify(self, cells: int, tolerance: float = 0.01, rows: int | None = None,
                     characterize: bool = True) -> float:
        """Programming ``cells`` cells in ``rows`` array rows (default: the fewest rows that hold
        them) by write-verify to ``tolerance`` (fraction of the window), s.

        The experiments' write-verify (row-block verify reads: only rows holding cells still being
        programmed are read; each verify averages :meth:`verify_reads` reads), as measured on the
        simulated RRAM arrays (8×32, 16×16, 32×32, 64×64; 48 to 288 cells in 6 to 16 rows;
        tolerance 0.5 %, 1 %, 2 %), instrument time per pass less pulses, in whole-block reads:
        the first pass ~13 verify reads' worth (8–16 × :meth:`verify_reads`) after 4 reads of the
        block's read noise, ~5 pulses a cell (4–7); once some cell has failed (``1 − exp(−0.015 cells)``)
        a pair-repair pass of ~4 verify reads' worth more (1–8 measured, its repaired targets read
        noisier); plus the board's characterisation the first time. Estimates within 0.9–1.2 of the
        measured instrument time there (the closed loop's single-cell verify reads: ~1.2).
        """
        if rows is None:
            rows = math.ceil(max(cells, 1) / max(self.cols, 1))
        block_read = self.read_all * min(max(rows, 1), self.rows) / self.rows
        n_verify = self.verify_reads(tolerance)
        repair = 1.0 - math.exp(-0.015 * cells)
        first = self.characterization if characterize else 0.0
        return first + (4.0 + 13.0 * n_verify + 4.0 * n_verify * repair) * block_read + 5 * cells * self.pulse

    def write_verify_layers(self, sizes: list[int], tolerance: float = 0.01) -> float:
        """Programming a network's layers (sizes = [inputs, hidden..., outputs]) as differential
        pairs, one write-verify pass per layer on its n_in rows, s."""
        return sum(self.write_verify(n_in * 2 * n_out, tolerance, rows=n_in, characterize=k == 0)
                   for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)))


#: array size a dry-run estimate assumes when the station file states none (the v1 board's 64×64)
ESTIMATE_SHAPE = (64, 64)


def bench_timing(station_config: StationConfig | None) -> BenchTiming:
    """Timing of the station's board for its array (:meth:`StationConfig.array_shape`; unstated: 64×64)."""
    rows, cols = array_shape(station_config) or ESTIMATE_SHAPE
    return BenchTiming(rows, cols)


def array_shape(station_config: StationConfig | None) -> tuple[int, int] | None:
    """(rows, cols) of the station's array as its file states it (the board's ``rows``/``cols``, or
    ``[sim.array]``); None when the file does not say (then only the board's IDENTIFY knows)."""
    return station_config.array_shape() if station_config is not None else None


def instrument_time(station: BenchStation) -> float:
    """Instrument time in s: the simulated clock on a simulated bench, else a monotonic wall clock."""
    now = station.sim_time() if station is not None else None
    return float(now) if now is not None else time.monotonic()


def board_limit(board: CrossbarArray, name: str, default: float) -> float:
    """A board safety limit (``SafeCrossbar.limits``) or ``default`` when the board has none."""
    return interfaces.board_limit(board, name, default)


def board_limit_problems(params: Mapping[str, Any], station_config: Any, where: str,
                         limits: Mapping[str, str]) -> list[str]:
    """One problem per voltage parameter above the station board's limit.

    ``limits`` maps a parameter name (value in V, compared by magnitude) to a ``BoardLimits``
    field, e.g. ``{"v_in": "max_mvm_voltage"}``. No station (None) or a station without a board gives no
    problem here.
    """
    board = station_config.board_name() if station_config is not None else None
    if board is None:
        return []
    lim = station_config.instruments[board].limits
    problems = []
    for key, name in limits.items():
        value, allowed = params.get(key), float(getattr(lim, name))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > allowed:
            problems.append(f"{where}.{key} = {value:g} V exceeds the board limit {name} = {allowed:g} V")
    return problems


def station_defaults(station: BenchStation) -> tuple[float, float]:
    """(read voltage V, TIA range A) of the station file."""
    return float(station.config.read_voltage), float(station.config.tia_range)


@contextmanager
def tia_range(station: BenchStation, board: CrossbarArray, full_scale: float) -> Iterator[float]:
    """Temporarily set the board's TIA full scale (A), clipped to its safety limit; restore on exit."""
    read_v, default_tia = station_defaults(station)
    fs = min(float(full_scale), board_limit(board, "max_tia_range", full_scale))
    if not fs > 0:
        raise ConfigError(f"TIA range must be > 0 A, got {full_scale}")
    board.configure(read_v, fs)
    try:
        yield fs
    finally:
        board.configure(read_v, default_tia)


def wait(station: BenchStation, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
    """Let ``seconds`` of instrument time pass with the outputs idle, on the station's own clock
    (:meth:`Station.wait`: on a simulated bench the simulated clock advances, a day passes at once; on
    hardware it sleeps in chunks of at most 1 s, calling ``checkpoint`` between chunks so an abort request
    is honoured)."""
    if seconds < 0:
        raise ConfigError(f"cannot wait a negative time ({seconds} s)")
    station.wait(seconds, checkpoint=checkpoint)


# -- command line ------------------------------------------------------------------------------------
def add_run_arguments(p: Any) -> None:
    """Arguments every experiment command shares: station, log file, free parameters, quiet."""
    p.add_argument("--station", metavar="FILE", default=None, help="station TOML (default: the embedded sim bench)")
    p.add_argument("-o", "--output", metavar="LOG.h5", default=None,
                   help="log the run to this HDF5 logbook (default: xbarlab-<command>-<UTC time>.h5 here)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing log file (default: off)")
    p.add_argument("--append", action="store_true", help="add the run to the existing log given with -o "
                   "(default: off)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="set_params",
                   help="any experiment parameter, TOML value syntax (repeatable), e.g. --set g_max=4e-5 "
                   "(default: none)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines (default: off)")


def parse_set_params(items: list[str], specs: Any) -> dict[str, Any]:
    """``["key=value", ...]`` → {key: value}, values parsed as TOML (``0.2``, ``true``, ``[4, 8]``, ``'x'``)."""
    known = {p.name for p in specs}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        if key not in known:
            raise ConfigError(f"--set {key}: unknown parameter{did_you_mean(key, known)}; "
                              f"expected one of {', '.join(sorted(known))}")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()  # a bare word: a string
        out[key] = value
    return out


def default_log_path(command: str, folder: Path | None = None) -> Path:
    """``xbarlab-<command>-<UTC time>.h5`` in ``folder`` (default: the current directory); never an existing file."""
    folder = Path(".") if folder is None else folder
    stem = f"xbarlab-{command}-{dt.datetime.now(dt.UTC).strftime('%Y%m%d-%H%M%S')}"
    path = folder / f"{stem}.h5"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.h5"
        n += 1
    return path


def run_cli_experiment(cls: Any, args: Any, params: dict[str, Any]) -> Any:
    """Run ``cls`` for an ``xbarlab`` command through a :class:`~xbarlab.session.LabSession`.

    Opens ``args.station`` (None: the embedded simulated bench) with transcript recording and
    logs the run to ``args.output`` (HDF5; when not given, a new ``xbarlab-<command>-<UTC time>.h5``
    in the current directory, named in the output: everything measured is kept). ``--set`` values
    override ``params``. Prints progress lines unless ``args.quiet``; the run's status
    (completed / aborted / interrupted / failed) is logged either way, outputs are off after it.
    """
    params = {**params, **parse_set_params(getattr(args, "set_params", []) or [], cls.params_spec)}
    config = resolve_station(args.station)
    values, problems = resolve_params(cls.params_spec, params, where=cls.kind)
    if not problems:
        problems = cls.check(values, config, cls.kind)
    if problems:  # before a log file or an instrument is touched
        raise ConfigError(problem_listing(f"{cls.kind}: invalid parameters", problems))

    def progress(pr: Any) -> None:
        print(f"  [{pr.done}/{pr.total}] {pr.message}", flush=True)

    output = args.output
    if output is None:
        if args.append:
            raise ConfigError("--append adds the run to an existing log: give it with -o LOG.h5")
        output = default_log_path(getattr(args, "command", None) or cls.kind)
        print(f"logging to {output}", flush=True)
    with LabSession.open(config, output, overwrite=args.overwrite, append=args.append,
                         title=f"xbarlab {cls.kind}") as lab:
        result = lab.run(cls, params, progress=None if args.quiet else progress)
        if lab.log_path is not None:
            print(f"logged as run {lab.last_run_id} in {lab.log_path}")
    return result
