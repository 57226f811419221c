"""``xbarlab sweep`` and ``xbarlab queue``: argument parsing and console output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from xbarlab.campaigns.spec import load_campaign
from xbarlab.errors import ConfigError
from xbarlab.sweep import cluster, queue
from xbarlab.sweep.index import read_index
from xbarlab.sweep.run import check_folder, run_sweep
from xbarlab.sweep.show import default_figures, format_table, plot_figure
from xbarlab.sweep.spec import load_sweep


def _cluster_args(p: argparse.ArgumentParser, workers: bool = True) -> None:
    p.add_argument("--scheduler", metavar="ADDR", default=None,
                   help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: an embedded LocalCluster)")
    if workers:
        p.add_argument("--workers", metavar="N", type=int, default=None,
                       help="worker processes of the embedded cluster (default: one per CPU)")


def cmd_sweep(args: argparse.Namespace) -> int:
    target: list[str] = args.target
    if target and target[0] == "show":
        if len(target) != 2:
            raise ConfigError("usage: xbarlab sweep show DIR [--figure NAME] [--no-plot]")
        return show_sweep(Path(target[1]), args.figure, plot=not args.no_plot)
    if len(target) != 1:
        raise ConfigError("usage: xbarlab sweep SWEEP.toml -o DIR  (or: xbarlab sweep show DIR)")
    if args.output is None:
        raise ConfigError("give the output folder: xbarlab sweep SWEEP.toml -o DIR")
    return run_sweep_cli(Path(target[0]), Path(args.output), args.scheduler, args.workers, quiet=args.quiet,
                         dry_run=args.dry_run)


def run_sweep_cli(sweep_file: Path, out: Path, scheduler: str | None, workers: int | None, *,
                  quiet: bool = False, dry_run: bool = False) -> int:
    from tqdm import tqdm


    sweep = load_sweep(sweep_file)
    check_folder(sweep, out)
    axes = ", ".join(f"{a.name} ({len(a.values)})" for a in sweep.axes)
    print(f"sweep '{sweep.name}': {len(sweep.points)} points ({sweep.mode} of {axes}) of campaign "
          f"'{sweep.campaign.name}'")
    if dry_run:
        for p in sweep.points:
            print(f"  {p.point_id}  " + ", ".join(f"{k}={v!r}" for k, v in p.values.items()))
        return 0
    _quiet_dask_logs()
    bar = tqdm(total=len(sweep.points), desc="sweep", unit="point", disable=quiet)

    def progress(done: int, total: int, row: dict[str, Any]) -> None:
        bar.n = done
        bar.set_postfix_str(f"{row['point_id']} {row['status']}", refresh=True)

    try:
        index = run_sweep(sweep, out, connect=lambda: cluster.connect(scheduler, workers), progress=progress)
    except KeyboardInterrupt:
        bar.close()
        print(f"sweep stopped: finished points are kept ({out / 'index.h5'}); run the same command again to "
              "resume (points cut short resume from their logs)", file=sys.stderr)
        raise
    finally:
        bar.close()
    counts = index.counts()
    print(f"sweep {'completed' if counts.get('completed', 0) == len(index.rows) else 'incomplete'}: "
          + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; index: {out / 'index.h5'}")
    for r in index.rows:
        if r["status"] != "completed":
            print(f"  {r['point_id']}: {r['status']}{': ' + r['error'] if r['error'] else ''}")
    if counts.get("completed", 0) != len(index.rows):
        print(f"run the same command again to finish: xbarlab sweep {sweep_file} -o {out}")
        return 1
    return 0


def _quiet_dask_logs() -> None:
    """Dask logs every worker start at INFO; keep the console to warnings unless --debug set DEBUG."""
    import logging


    cluster._need_distributed()  # its modules create their loggers on import
    if logging.getLogger().level > logging.DEBUG:
        names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("distributed", "dask")]
        for name in ("distributed", "dask", *names):
            logging.getLogger(name).setLevel(logging.WARNING)


def show_sweep(folder: Path, figures: list[str] | None, *, plot: bool = True) -> int:

    index = read_index(folder)
    chosen = figures or default_figures(index)
    for f in chosen:
        if f not in index.figures:
            raise ConfigError(f"--figure {f}: not in the sweep index; figures: {', '.join(index.figures) or 'none'}")
    print(format_table(index, chosen))
    others = [f for f in index.figures if f not in chosen]
    if others:
        print("other figures (--figure NAME): " + ", ".join(others))
    if plot:
        for f in chosen:
            print("plot: " + plot_figure(index, f, folder / f"{f.replace('/', '_')}.png"))
    return 0


def _queue_scheduler(args: argparse.Namespace) -> str:
    import os

    address = args.scheduler or os.environ.get("XBARLAB_SCHEDULER")
    if not address:
        raise ConfigError("the lab queue lives on a running Dask scheduler: give --scheduler tcp://HOST:8786 "
                          "or set XBARLAB_SCHEDULER")
    return address


def cmd_queue(args: argparse.Namespace) -> int:

    _quiet_dask_logs()
    action = args.queue_command
    if action == "submit":

        load_campaign(args.campaign)  # one clear line before connecting if the file is bad
    with cluster.connect(_queue_scheduler(args)) as client:
        if action == "submit":
            meta = queue.submit(client, args.campaign)
            where = (f"the worker holding {meta['bench']} (dask worker ADDR --resources \"{meta['bench']}=1\" "
                     "--preload xbarlab.sweep.bench --station FILE)" if meta["bench"] else "any worker (simulated)")
            print(f"queued {meta['id']}: campaign '{meta['campaign']}' on station '{meta['station']}', runs on {where}")
            return 0
        if action == "cancel":
            print(f"{args.id}: {queue.cancel(client, args.id)}")
            return 0
        rows = queue.entries(client)
        if not rows:
            print("the queue is empty")
        for e in rows:
            bench = e["bench"] or "sim"
            print(f"{e['id']}  {e['state']:<10} {bench:<28} {e['campaign'][:40]:<40} {e['by']}  {e['worker']}")
        status = 0
        if args.collect:
            for e in rows:
                if e["state"] in ("done", "failed"):
                    try:
                        r = queue.collect(client, e["id"], Path(args.collect))
                    except Exception as exc:  # noqa: BLE001 - a campaign that raised on the worker: report, keep going
                        print(f"{e['id']}: failed on the worker: {type(exc).__name__}: {exc}")
                        status = 1
                        continue
                    counts = ", ".join(f"{n} {s}" for s, n in r["counts"].items())
                    print(f"{e['id']}: campaign {r['status']} ({counts}), log {r['log_state']}, "
                          f"sha256 checked -> {r['collected']}")
                    if r["status"] != "completed" or r["log_state"] != "complete":
                        status = 1
        return status


def add_cli(sub: Any) -> None:
    """Register ``sweep`` and ``queue`` on the ``xbarlab`` sub-command parser."""
    p = sub.add_parser("sweep", help="run a campaign over a grid of parameters on Dask; `sweep show DIR` plots it",
                       description="xbarlab sweep SWEEP.toml -o DIR [--scheduler ADDR] [--workers N]\n"
                                   "xbarlab sweep show DIR [--figure NAME]")
    p.add_argument("target", nargs="+", metavar="SWEEP.toml | show DIR")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="folder for the point logs and the index (default: none, required to run a sweep)")
    _cluster_args(p)
    p.add_argument("--dry-run", action="store_true", help="validate every point and list them; run nothing")
    p.add_argument("--figure", action="append", metavar="NAME", help="(show) figure to tabulate and plot; repeatable "
                   "(default: the sweep file's [sweep] figures, else the first figure that varies)")
    p.add_argument("--no-plot", action="store_true", help="(show) print the table only")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_sweep)

    p = sub.add_parser("queue", help="the lab's shared queue of campaigns on a Dask scheduler (benches, sims)")
    qsub = p.add_subparsers(dest="queue_command", metavar="ACTION")
    c = qsub.add_parser("submit", help="validate a campaign and queue it (physical stations go to their bench)")
    c.add_argument("campaign", metavar="CAMPAIGN.toml")
    _cluster_args(c, workers=False)
    c.set_defaults(handler=cmd_queue)
    c = qsub.add_parser("status", help="list the queue; --collect DIR brings finished logs back and checks them")
    _cluster_args(c, workers=False)
    c.add_argument("--collect", metavar="DIR", help="write finished entries' logs here, check them, drop the entries "
                   "(default: none, entries stay queued)")
    c.set_defaults(handler=cmd_queue)
    c = qsub.add_parser("cancel", help="cancel a queued entry, or stop a running one at its next safe point")
    c.add_argument("id", metavar="ID")
    _cluster_args(c, workers=False)
    c.set_defaults(handler=cmd_queue)
