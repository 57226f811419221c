"""Run a sweep on Dask: one task per point, resumable, with a progress bar and an index kept up to date.

Re-running a sweep into the same folder skips points whose logs are complete (checked here,
before anything is submitted), resumes incomplete logs on a worker, and runs the rest. A task
that raises is retried by Dask (``[sweep] retries``); a worker process that dies mid-point has
its task rescheduled on another worker by the scheduler, and the point's lease and log lock
(:mod:`xbarlab.sweep.point`) make sure only one process ever writes a point's log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from xbarlab.campaigns.spec import parse_campaign
from xbarlab.errors import ConfigError, XbarlabError
from xbarlab.logbook import LogReader
from xbarlab.sweep.index import INDEX_FILE, SweepIndex, read_index, write_index
from xbarlab.sweep.point import PointTask, headline_figures, log_state, run_point
from xbarlab.sweep.spec import Point, Sweep

POINTS = "points"


def bench_resource(station_name: str) -> str:
    """The Dask worker resource of a physical bench: ``bench-<station name as a slug>``."""
    slug = "".join(c if c.isalnum() else "-" for c in station_name.lower())
    return "bench-" + "-".join(p for p in slug.split("-") if p)


def _row(point: Point, status: str, **extra: Any) -> dict[str, Any]:
    row = {"point_id": point.point_id, "values": dict(point.values), "status": status,
           "log": f"{POINTS}/{point.log_file}", "worker": "", "action": "", "error": "", "wall_s": float("nan"),
           "figures": {}}
    row.update(extra)
    return row


def _existing_row(point: Point, folder: Path) -> dict[str, Any] | None:
    """The row of a point whose log is already complete (``None``: it still has to run)."""
    log, campaign_file = folder / point.log_file, folder / point.campaign_file
    if not log.exists() or not campaign_file.exists():
        return None
    try:
        campaign = parse_campaign(point.campaign_text, source=str(campaign_file), base_dir=folder)
    except ConfigError:
        return None
    if log_state(log, campaign) != "complete":
        return None
    return _row(point, "completed", action="already complete", figures=headline_figures(LogReader(log), campaign))


def check_folder(sweep: Sweep, out: Path) -> SweepIndex | None:
    """The folder's existing index, after checking it belongs to this sweep."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if not (out / INDEX_FILE).exists():
        return None
    old = read_index(out)
    if old.sweep_text != sweep.text:
        raise ConfigError(f"{out}: holds the sweep {old.sweep_source!r} with a different text; "
                          "give another folder (-o) or move the old results away")
    return old


def run_sweep(sweep: Sweep, out: str | Path, client: Any = None, *,
              connect: Callable[[], AbstractContextManager[Any]] | None = None,
              progress: Callable[[int, int, dict[str, Any]], None] | None = None,
              lease_timeout: float = 600.0) -> SweepIndex:
    """Run every point of ``sweep`` not yet complete in ``out`` on Dask; returns the index.

    ``client`` is a ``distributed.Client``; or give ``connect``, a context manager factory that yields
    one, used only if some point still has to run (a finished sweep starts no cluster).
    ``progress(done, total, row)`` is called once per finished point (skipped points first).
    """
    out = Path(out).resolve()
    old = check_folder(sweep, out)
    before = {r["point_id"]: r for r in old.rows} if old is not None else {}
    folder = out / POINTS
    folder.mkdir(parents=True, exist_ok=True)
    index = SweepIndex(sweep.text, sweep.source, sweep.name, [a.name for a in sweep.axes],
                       [_row(p, "pending") for p in sweep.points])
    resources = None
    if not sweep.simulated:
        resources = {bench_resource(sweep.campaign.station.name): 1}
    todo: list[Point] = []
    done = 0
    for p in sweep.points:
        row = _existing_row(p, folder)
        if row is None:
            todo.append(p)
            continue
        earlier = before.get(p.point_id, {})
        if earlier.get("status") == "completed":  # keep who ran it and how long it took
            row.update(worker=earlier.get("worker", ""), wall_s=earlier.get("wall_s", row["wall_s"]))
        index.rows[p.index] = row
        done += 1
        if progress is not None:
            progress(done, len(sweep.points), row)
    write_index(out, index)
    if not todo:
        return index
    if client is None:
        if connect is None:
            raise ValueError("run_sweep: give a Dask client or a connect factory")
        with connect() as made:
            return _run_points(sweep, out, made, index, todo, done, resources, progress, lease_timeout)
    return _run_points(sweep, out, client, index, todo, done, resources, progress, lease_timeout)


def _run_points(sweep: Sweep, out: Path, client: Any, index: SweepIndex, todo: list[Point], done: int,
                resources: dict[str, int] | None,
                progress: Callable[[int, int, dict[str, Any]], None] | None, lease_timeout: float) -> SweepIndex:
    from distributed import as_completed

    folder = out / POINTS
    run_tag = uuid.uuid4().hex[:8]
    futures = {}
    for p in todo:
        task = PointTask(str(folder), p.point_id, dict(p.values), p.station_file, p.station_text, p.campaign_file,
                         p.campaign_text, p.log_file, lease_timeout=lease_timeout,
                         bench=None if resources is None else next(iter(resources)))
        fut = client.submit(run_point, task, key=f"xbarlab-point-{p.point_id}-{run_tag}", pure=False,
                            retries=sweep.retries, resources=resources)
        futures[fut] = p
    try:
        for fut in as_completed(list(futures)):
            p = futures[fut]
            try:
                result = fut.result()
                row = _row(p, result["status"], **{k: v for k, v in result.items() if k not in ("values", "status")})
                row["log"] = f"{POINTS}/{p.log_file}"
            except XbarlabError as exc:
                row = _row(p, "failed", error=str(exc))
            except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError, a bug in a step: one row each
                row = _row(p, "lost" if type(exc).__name__ == "KilledWorker" else "failed",
                           error=f"{type(exc).__name__}: {exc}")
            index.rows[p.index] = row
            write_index(out, index)
            done += 1
            if progress is not None:
                progress(done, len(sweep.points), row)
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        write_index(out, index)
    return index
