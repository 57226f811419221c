"""One sweep point on a worker: a campaign run into its own log, under a lease so a log never has two writers.

The lease is an exclusive ``flock`` on ``<point>.lease`` next to the log, held for the whole
attempt and released by the operating system when the process ends (a killed worker frees it at
once). A retried attempt takes the lease, then looks at the log: complete → nothing to run;
incomplete → resume it (only the missing steps, the simulated bench restored from its checkpoint);
unreadable → set aside as ``<log>.damaged-<n>`` and started afresh. The log writer's own lock
(``xbarlab.logbook``) is a second guard.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xbarlab.campaigns.runner import SESSION, CampaignRunner, completed_steps, step_of
from xbarlab.campaigns.spec import Campaign, parse_campaign
from xbarlab.errors import ConfigError, LogbookError, XbarlabError
from xbarlab.logbook import LogReader


class LeaseTimeout(XbarlabError):
    """Another live process kept a point's lease for longer than the timeout."""


@dataclass(frozen=True)
class PointTask:
    """Everything a worker needs to run one point (picklable, no open handles)."""

    directory: str  # the sweep's points folder (absolute; shared by client and workers)
    point_id: str
    values: dict[str, Any]
    station_file: str
    station_text: str
    campaign_file: str
    campaign_text: str
    log_file: str
    lease_timeout: float = 600.0  # s
    bench: str | None = None  # the Dask resource of a physical bench (None: simulated station)


@contextmanager
def lease(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; wait at most ``timeout`` s (s) for a live holder."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise LeaseTimeout(f"{path}: another process kept this point for over {timeout:g} s") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` atomically (temporary file, then rename) unless ``path`` already holds it."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def headline_figures(reader: LogReader, campaign: Campaign) -> dict[str, float]:
    """Every number the completed steps committed, as ``<step type>.<key>`` (``<step id>.<key>`` if a type repeats)."""
    kinds = Counter(s.kind for s in campaign.steps)
    by_id = {s.step_id: s for s in campaign.steps}
    figures: dict[str, float] = {}
    for run in reader.runs():
        if run["kind"] == SESSION or run["status"] != "completed":
            continue
        step = by_id.get(step_of(run["run_id"]))
        if step is None:
            continue
        label = step.kind if kinds[step.kind] == 1 else step.step_id
        for commit in reader.steps(run["run_id"]):
            for key, value in commit["info"].items():
                if isinstance(value, (bool, int, float)):
                    figures[f"{label}.{key}"] = float(value)
    return figures


def log_state(path: Path, campaign: Campaign) -> str:
    """``missing`` | ``complete`` | ``incomplete`` | ``damaged`` | ``foreign`` (holds another campaign)."""
    if not path.exists():
        return "missing"
    try:
        reader = LogReader(path)
        runs = reader.runs()
        done = completed_steps(reader)
    except (LogbookError, OSError):
        return "damaged"
    sessions = [r for r in runs if r["kind"] == SESSION]
    if sessions and sessions[0]["params"].get("campaign_text") not in (None, campaign.text):
        return "foreign"
    return "complete" if all(s.step_id in done for s in campaign.steps) else "incomplete"


def _set_aside(path: Path) -> Path:
    n = 1
    while path.with_name(f"{path.name}.damaged-{n}").exists():
        n += 1
    target = path.with_name(f"{path.name}.damaged-{n}")
    os.replace(path, target)
    return target


def run_point(task: PointTask) -> dict[str, Any]:
    """Run (or resume, or just read) one point; returns its index row: status, figures, log, worker."""
    folder = Path(task.directory)
    folder.mkdir(parents=True, exist_ok=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    result: dict[str, Any] = {"point_id": task.point_id, "values": dict(task.values), "log": task.log_file,
                              "worker": f"{socket.gethostname()}:{os.getpid()}", "action": "", "error": ""}
    station_text = task.station_text
    if task.bench is not None:  # a physical bench: its own station file (its limits) is the one that counts
        from xbarlab.sweep.bench import current_binding

        binding = current_binding()
        if binding is None or binding.resource != task.bench:
            raise ConfigError(f"point {task.point_id}: this worker is not bound to {task.bench} "
                              "(start it with --preload xbarlab.sweep.bench --station FILE)")
        station_text = binding.station.text
    with lease(folder / f"{task.point_id}.lease", task.lease_timeout):
        _write_if_changed(folder / task.station_file, station_text)
        _write_if_changed(folder / task.campaign_file, task.campaign_text)
        campaign = parse_campaign(task.campaign_text, source=str(folder / task.campaign_file), base_dir=folder)
        log = folder / task.log_file
        state = log_state(log, campaign)
        if state == "foreign":
            result.update(status="failed", action="none", figures={}, wall_s=time.perf_counter() - t0,
                          error=f"{log}: holds a different campaign; move it away to rerun this point")
            return result
        if state == "damaged":
            result["error"] = f"unreadable log set aside as {_set_aside(log).name}; "
            state = "missing"
        if state == "complete":
            result["action"] = "already complete"
            status = "completed"
        else:
            result["action"] = "resumed" if state == "incomplete" else "ran"
            report = CampaignRunner(campaign, log, resume=state == "incomplete").run()
            status = report.status
            errors = [f"{o.step.step_id}: {o.error}" for o in report.outcomes if o.error]
            result["error"] += "; ".join(errors)
            if status == "completed" and log_state(log, campaign) != "complete":
                status = "failed"
                result["error"] += "the runner reported success but the log misses steps"
        reader = LogReader(log)
        result.update(status=status, figures=headline_figures(reader, campaign), wall_s=time.perf_counter() - t0,
                      cpu_s=time.process_time() - cpu0)
    return result
