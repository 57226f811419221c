"""The lab's shared queue of campaigns on a Dask scheduler: submit, status, cancel, collect.

Queue state lives on the scheduler, so it outlives the submitting client: each entry is a task
``xbarlab-queue-<id>`` kept alive as a published dataset (with its description beside it), and a
distributed ``Event`` per entry carries a cancel request to a running campaign, which then stops
at its next safe point with every output off. Campaigns naming a physical station carry the
bench's resource (``bench-<station name>``), so only the worker bound to that bench runs them, one
at a time; simulated campaigns run on any worker.

A finished entry's result holds the log file's bytes and their SHA-256; ``collect`` writes the
log into a folder, checks the digest and that every step of the campaign completed, then removes
the entry from the queue.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import os
import socket
import threading
import tomllib
import uuid
from pathlib import Path
from typing import Any

from xbarlab.campaigns.runner import CampaignRunner, completed_steps
from xbarlab.campaigns.spec import Campaign, load_campaign, parse_campaign
from xbarlab.errors import ConfigError, XbarlabError
from xbarlab.experiments.base import AbortToken
from xbarlab.logbook import LogReader
from xbarlab.sweep.point import log_state
from xbarlab.sweep.run import bench_resource
from xbarlab.sweep.tomlwrite import dumps

PREFIX = "xbarlab-queue-"
META = "xbarlab-queue-meta-"
CANCEL = "xbarlab-queue-cancel-"


def _station_reference(campaign: Campaign) -> dict[str, Any]:
    if campaign.station.is_simulated:
        return {"bench": None, "station_text": campaign.station.text}
    return {"bench": bench_resource(campaign.station.name), "station_text": ""}


def submit(client: Any, campaign_file: str | Path) -> dict[str, Any]:
    """Validate a campaign here, then queue it on the scheduler; returns the entry's description."""
    campaign = load_campaign(campaign_file)
    stamp = _dt.datetime.now(_dt.UTC)
    entry_id = stamp.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    meta = {"id": entry_id, "campaign": campaign.name, "source": str(Path(campaign_file).resolve()),
            "campaign_text": campaign.text, "station": campaign.station.name,
            "submitted": stamp.isoformat(timespec="seconds"), "by": f"{getpass.getuser()}@{socket.gethostname()}",
            **_station_reference(campaign)}
    resources = {meta["bench"]: 1} if meta["bench"] else None
    future = client.submit(run_queued, meta, key=PREFIX + entry_id, resources=resources, pure=False, retries=0)
    client.publish_dataset(**{PREFIX + entry_id: future, META + entry_id: meta})
    return meta


def _scheduler_states(dask_scheduler: Any, keys: list[str]) -> dict[str, tuple[str, str]]:
    out = {}
    for k in keys:
        ts = dask_scheduler.tasks.get(k)
        if ts is not None:
            out[k] = (ts.state, ts.processing_on.address if ts.processing_on is not None else "")
    return out


def _executing(dask_worker: Any) -> list[str]:
    """Queue tasks a worker is executing now (not merely holding until its bench is free)."""
    return [str(k) for k, ts in dask_worker.state.tasks.items()
            if str(k).startswith(PREFIX) and ts.state in ("executing", "long-running")]


def entries(client: Any) -> list[dict[str, Any]]:
    """Every entry with its state: queued | waiting for bench | running | done | failed | cancelled."""
    names = [n for n in client.list_datasets() if n.startswith(META)]
    metas = [client.get_dataset(n) for n in names]
    keys = [PREFIX + m["id"] for m in metas]
    states = client.run_on_scheduler(_scheduler_states, keys=keys) if keys else {}
    executing = {k for ks in (client.run(_executing) if keys else {}).values() for k in ks}
    out = []
    for meta in sorted(metas, key=lambda m: m["id"]):
        state, worker = states.get(PREFIX + meta["id"], ("forgotten", ""))
        if state == "processing" and PREFIX + meta["id"] not in executing:
            state = "no-worker"  # sent to its worker, which runs one campaign at a time
        label = {"processing": "running", "memory": "done", "erred": "failed", "released": "cancelled",
                 "forgotten": "cancelled", "no-worker": "waiting for bench"}.get(state, "queued")
        out.append({**meta, "state": label, "worker": worker})
    return out


def cancel(client: Any, entry_id: str) -> str:
    """Cancel a queued entry (it never starts) or stop a running one at its next safe point."""
    from distributed import Event

    known = {e["id"]: e for e in entries(client)}
    if entry_id not in known:
        raise ConfigError(f"no queue entry {entry_id!r}; entries: {', '.join(known) or 'none'}")
    entry = known[entry_id]
    if entry["state"] == "running":
        Event(CANCEL + entry_id, client=client).set()
        return "running: stops at its next safe point (outputs off); collect its partial log with status --collect"
    if entry["state"] in ("queued", "waiting for bench"):
        future = client.get_dataset(PREFIX + entry_id)
        client.cancel(future, force=True)
        _forget(client, entry_id)
        return "cancelled before it started"
    return f"already {entry['state']}; nothing to cancel"


def _forget(client: Any, entry_id: str) -> None:
    for name in (PREFIX + entry_id, META + entry_id):
        if name in client.list_datasets():
            client.unpublish_dataset(name)


def collect(client: Any, entry_id: str, folder: Path) -> dict[str, Any]:
    """Bring a finished entry's log into ``folder``, check it, and drop the entry from the queue."""
    future = client.get_dataset(PREFIX + entry_id)
    result = future.result()
    data: bytes = result.pop("log_bytes")
    if hashlib.sha256(data).hexdigest() != result["sha256"]:
        raise XbarlabError(f"queue entry {entry_id}: the log arrived damaged (SHA-256 mismatch); not removed")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{entry_id}.h5"
    tmp = folder / f".{entry_id}.h5.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    state = _collected_state(target, result)
    result.update(collected=str(target), log_state=state)
    _forget(client, entry_id)
    return result


def _collected_state(log: Path, result: dict[str, Any]) -> str:
    """complete | incomplete, from the log itself (the steps it says completed against its campaign)."""

    done = completed_steps(LogReader(log))
    return "complete" if set(result["step_ids"]) <= done else "incomplete"


# -- on the worker --------------------------------------------------------------------------------------
def _watch_cancel(entry_id: str, token: AbortToken, finished: threading.Event) -> None:
    from distributed import Event, get_client

    event = Event(CANCEL + entry_id, client=get_client())

    def watch() -> None:
        while not finished.is_set():
            try:
                if event.wait(timeout=0.5):
                    token.request()
                    return
            except Exception:  # noqa: BLE001 - scheduler gone: nothing to watch any more
                return

    threading.Thread(target=watch, name=f"xbarlab-cancel-{entry_id}", daemon=True).start()


def run_queued(meta: dict[str, Any]) -> dict[str, Any]:
    """Run one queued campaign on this worker (the bench's own station file for a physical bench)."""
    from xbarlab.sweep.bench import current_binding  # the Dask worker side (click, distributed)

    entry_id = meta["id"]
    binding = current_binding()
    data = tomllib.loads(meta["campaign_text"])
    if meta["bench"]:
        if binding is None or binding.resource != meta["bench"]:
            raise ConfigError(f"queue entry {entry_id}: this worker is not bound to {meta['bench']} "
                              "(start it with --preload xbarlab.sweep.bench --station FILE)")
        spool = binding.spool
        data["campaign"]["station"] = str(binding.station_path)
    else:
        spool = binding.spool if binding is not None else Path("xbarlab-queue").resolve()
        spool.mkdir(parents=True, exist_ok=True)
        station_file = spool / f"{entry_id}.station.toml"
        station_file.write_text(meta["station_text"], encoding="utf-8")
        data["campaign"]["station"] = station_file.name
    text = dumps(data, header=f"queue entry {entry_id} from {meta['by']}: {meta['source']}")
    campaign = parse_campaign(text, source=str(spool / f"{entry_id}.campaign.toml"), base_dir=spool)
    log = spool / f"{entry_id}.h5"
    token, finished = AbortToken(), threading.Event()
    _watch_cancel(entry_id, token, finished)
    try:
        report = CampaignRunner(campaign, log, resume=log.exists(), abort=token).run()
    finally:
        finished.set()
    data_bytes = log.read_bytes()
    return {"id": entry_id, "status": report.status, "counts": report.counts(),
            "errors": [f"{o.step.step_id}: {o.error}" for o in report.outcomes if o.error],
            "log_state": log_state(log, campaign), "step_ids": [s.step_id for s in campaign.steps],
            "campaign_text": campaign.text, "worker": f"{socket.gethostname()}:{os.getpid()}",
            "log_bytes": data_bytes, "sha256": hashlib.sha256(data_bytes).hexdigest()}
