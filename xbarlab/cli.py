"""The `xbarlab` command line.

Every command prints one clear line on bad input (file, key, what was expected) and
exits with status 2; instrument problems exit with status 1. No tracebacks unless
``--debug`` is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from xbarlab import __version__
from xbarlab.campaigns.console import format_step_types, run_campaign_cli
from xbarlab.demo import DemoExperiment, format_report
from xbarlab.errors import ConfigError, XbarlabError
from xbarlab.experiments.catalog import CLI_MODULES
from xbarlab.experiments.cli_options import add_param_options, params_from_args
from xbarlab.instruments import station as station_module
from xbarlab.instruments.config import load_station
from xbarlab.instruments.station import Station, embedded_station_path
from xbarlab.interrupts import STATIONS, interrupt_once, interrupted_message
from xbarlab.logbook import LogReader, summary
from xbarlab.logbook.replay import replay
from xbarlab.runs.step import declared_plot
from xbarlab.session import LabSession
from xbarlab.sim.bench import SimBench
from xbarlab.sim.server import serve_bench
from xbarlab.sweep.cli import add_cli as add_sweep_commands

Handler = Callable[[argparse.Namespace], int]


def _station_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--station",
        metavar="FILE",
        default=None,
        help="station TOML file (default: the embedded simulated bench)",
    )


def cmd_demo(args: argparse.Namespace) -> int:
    log = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="xbarlab-demo-")) / "demo.h5"
    with LabSession.open(args.station, log, overwrite=args.overwrite, title="xbarlab demo") as lab:
        result = lab.run(DemoExperiment, params_from_args(args, DemoExperiment.params_spec))
        print(format_report(result, lab.station))
    report = replay(log)
    exchanges = sum(r.exchanges for r in report.runs)
    print(f"\nLogged to {log}: settings, instrument identities, {exchanges} instrument exchanges.")
    print(f"Replayed offline from the log: every stream reproduced bit for bit (xbarlab replay {log}).")
    return 0


def cmd_station_check(args: argparse.Namespace) -> int:
    config = load_station(args.file)
    print(f"{args.file}: valid station file '{config.name}'")
    for inst in config.instruments.values():
        extra = f" channel {inst.channel}" if inst.channel else ""
        port = f" -> board port {inst.board_port}" if inst.board_port is not None else ""
        print(f"  {inst.name:<8} {inst.driver:<16} {inst.address}{extra}{port}")
        print(f"           limits: {_limits_text(inst.limits)}")
    shape = config.array_shape()
    if config.board_name() is not None:
        print(f"  array: {shape[0]}x{shape[1]} (checked against the board's IDENTIFY when it connects)" if shape
              else "  array: size not stated (rows/cols of the board); validation skips cell ranges")
    if config.is_simulated:
        print("  (simulated bench: every instrument is an emulator)")
    if args.connect:
        with Station.open(config) as station:
            for name, ident in station.identities.items():
                print(f"  {name:<8} answers: {ident}")
            if station.array_shape is not None:
                print(f"  array: {station.array_shape[0]}x{station.array_shape[1]} (IDENTIFY)")
        print("all instruments answered")
    return 0


def _limits_text(limits: object) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in asdict(limits).items())  # type: ignore[call-overload]


def cmd_sim_serve(args: argparse.Namespace) -> int:

    config = load_station(args.station or embedded_station_path("sim"))
    if not config.is_simulated:
        raise ConfigError(f"{config.source}: has no [sim] table; `sim serve` needs a simulated station")
    if not 0 <= args.base_port <= 65535:
        raise ConfigError(f"--base-port {args.base_port}: expected a TCP port 0..65535")
    bench = SimBench.from_station(config)
    try:
        serve_bench(bench, host=args.host, base_port=args.base_port, announce=print)
    except (ValueError, OverflowError) as exc:  # a non-loopback or unresolvable host, ports beyond 65535
        raise ConfigError(f"sim serve: {exc}") from None
    except OSError as exc:  # e.g. a port already in use
        raise ConfigError(f"sim serve: cannot listen on {args.host} from port {args.base_port}: {exc}") from None
    finally:
        bench.close()
    return 0


def cmd_log_show(args: argparse.Namespace) -> int:

    print(summary(args.file, streams=not args.brief, plots=declared_plot))
    return 0


def cmd_run(args: argparse.Namespace) -> int:

    if args.list_steps:
        print(format_step_types())
        return 0

    return run_campaign_cli(args.campaign, args.output, resume=args.resume, dry_run=args.dry_run,
                            overwrite=args.overwrite, retries=args.retries, quiet=args.quiet)


def cmd_replay(args: argparse.Namespace) -> int:
    from tqdm import tqdm


    LogReader(args.file)  # a missing or damaged file fails here, before any progress bar
    with tqdm(total=1, desc="replay", unit="run", disable=args.quiet) as bar:
        def progress(p: object) -> None:
            bar.total = max(p.total, 1)  # type: ignore[attr-defined]
            bar.n = p.done  # type: ignore[attr-defined]
            bar.set_postfix_str(p.message[:50], refresh=True)  # type: ignore[attr-defined]

        report = replay(args.file, args.run, progress=progress)
    print(report.text())
    if report.not_rederived:
        print(f"every other recorded stream reproduced bit for bit; {len(report.not_rederived)} run(s) not "
              "re-derived (their data are intact in the log)")
    else:
        print("every recorded stream reproduced bit for bit")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        import pyqtgraph  # noqa: F401
        from PyQt5 import QtWidgets  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the GUI needs PyQt5 and pyqtgraph ({exc}); install them with: "
                          'pip install "xbarlab[gui]"') from None
    from xbarlab.gui.main import main as gui_main

    return gui_main(args.station, args.screenshot, args.tab, args.log_folder)


class HelpFormatter(argparse.HelpFormatter):
    """Help that shows every option's default: ``(default: X)`` unless the help text already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        if action.default is None:
            return text
        shown = "off" if action.default is False else "%(default)s"
        return f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """An argument parser whose subcommands all accept ``--debug`` and show their defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # in a subcommand, --debug is only set when given (the top-level parser holds the default)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show tracebacks and debug logging (default: off)")

    def add_subparsers(self, **kwargs: Any) -> Any:
        """Command groups need their action: ``xbarlab station`` alone exits 2 as argparse does."""
        kwargs.setdefault("required", True)
        return super().add_subparsers(**kwargs)


def add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="end-to-end tour of a bench (default: the embedded simulated bench)")
    _station_arg(p)
    add_param_options(p, DemoExperiment.params_spec)  # --seed, --iv-span, ...: defaults from the declarations
    p.add_argument("-o", "--output", metavar="LOG.h5", help="log file (default: a new temporary folder)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing log file")
    p.set_defaults(handler=cmd_demo)


def add_station(sub: Any) -> None:
    p = sub.add_parser("station", help="station files")
    ssub = p.add_subparsers(dest="station_command", metavar="ACTION")
    c = ssub.add_parser("check", help="validate a station file; --connect identifies every instrument")
    c.add_argument("file", metavar="FILE", help="station TOML file")
    c.add_argument("--connect", action="store_true", help="open the bench and identify every instrument")
    c.set_defaults(handler=cmd_station_check)


def add_sim(sub: Any) -> None:
    p = sub.add_parser("sim", help="the simulated bench")
    ssub = p.add_subparsers(dest="sim_command", metavar="ACTION")
    c = ssub.add_parser("serve", help="serve the simulated instruments on loopback sockets")
    _station_arg(c)
    c.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    c.add_argument("--base-port", type=int, default=5025, help="first TCP port")
    c.set_defaults(handler=cmd_sim_serve)


def add_log(sub: Any) -> None:
    p = sub.add_parser("log", help="HDF5 logbooks")
    ssub = p.add_subparsers(dest="log_command", metavar="ACTION")
    c = ssub.add_parser("show", help="print a readable summary of a log file")
    c.add_argument("file", metavar="FILE", type=Path, help="log file")
    c.add_argument("--brief", action="store_true", help="runs only, no streams")
    c.set_defaults(handler=cmd_log_show)


def add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run a measurement campaign (TOML) into an HDF5 log")
    p.add_argument("campaign", metavar="CAMPAIGN.toml", nargs="?", help="campaign file")
    p.add_argument("-o", "--output", metavar="LOG.h5", help="log file (default: <campaign>-<UTC time>.h5)")
    p.add_argument("--resume", metavar="LOG.h5", help="continue the campaign stored in this log (default: none)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the plan; touch no instrument")
    p.add_argument("--list-steps", action="store_true",
                   help="list the step types a campaign can use, with their parameters and units")
    p.add_argument("--overwrite", action="store_true", help="replace an existing log file")
    p.add_argument("--retries", type=int, default=2, help="re-initialise and repeat a step after a link fault "
                   "at most this many times")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_run)


def add_gui(sub: Any) -> None:
    p = sub.add_parser("gui", help="the Qt lab GUI (default: the embedded simulated bench)")
    _station_arg(p)
    p.add_argument("--log-folder", metavar="DIR",
                   help="where session logs go (default: last used, else a temp folder)")
    p.add_argument("--screenshot", metavar="FILE.png",
                   help="connect, run the tab's default experiment, save a PNG and exit (default: none)")
    p.add_argument("--tab", metavar="NAME", help="bench, array, calibration, mvm, solve, training, logbook "
                   "or queue (default: bench)")
    p.set_defaults(handler=cmd_gui)


def add_replay(sub: Any) -> None:
    p = sub.add_parser("replay", help="re-run a log's experiments offline from the recorded transcript")
    p.add_argument("file", metavar="LOG.h5", type=Path, help="log file")
    p.add_argument("--run", metavar="ID", help="replay up to and including this run; compare only it "
                   "(default: every run)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_replay)


def add_experiments(sub: Any) -> None:

    for module in CLI_MODULES:  # experiment commands: mvm, solve, train, drift
        module.add_cli(sub)


#: one function per command, each registering its parser on the subcommands
COMMANDS: tuple[Callable[[Any], None], ...] = (
    add_demo, add_station, add_sim, add_log, add_run, add_gui, add_replay, add_experiments,
    add_sweep_commands,  # sweep, queue (Dask)
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="xbarlab",
        description="Analog in-memory computing experiments on resistive crossbar arrays.",
    )
    parser.set_defaults(debug=False)
    parser.add_argument("--version", action="version", version=f"xbarlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status.

    ``argv`` None: this process is the ``xbarlab`` program. Once the command is over (stations closed,
    logs closed) Ctrl-C is ignored and the process leaves at once with the command's status: a Ctrl-C
    during the interpreter's own shutdown would otherwise end it by SIGINT (status -2) instead of 0/130.
    """

    program = argv is None and threading.current_thread() is threading.main_thread()
    before = STATIONS.snapshot()
    if program:
        signal.signal(signal.SIGINT, interrupt_once)
    try:
        try:
            code = _main(argv, before, program)
        finally:  # inside the try: a Ctrl-C that lands after the command returned, before Ctrl-C is ignored,
            if program:  # is reported as an interrupt (130), not left to end the process by SIGINT (-2)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:  # outside a command's own handling (parsing, logging set-up), or while reporting
        if program:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"xbarlab: {interrupted_message(before)}", file=sys.stderr)
        code = 130
    if program:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None, before: tuple[int, int], program: bool = False) -> int:

    problems_before = len(station_module.CLOSE_PROBLEMS)  # only this command's closing problems count

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"xbarlab: error: {exc}", file=sys.stderr)
        return 2
    except XbarlabError as exc:
        if args.debug:
            raise
        print(f"xbarlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if program:  # the command is over: further Ctrl-C must not cut the report short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        problems = station_module.CLOSE_PROBLEMS[problems_before:]
        if problems:  # never "outputs off" when switching one off failed
            print("xbarlab: interrupted; outputs NOT confirmed off: " + "; ".join(problems), file=sys.stderr)
            return 1
        print(f"xbarlab: {interrupted_message(before)}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
