"""The bench side of the lab queue: a Dask worker preload that binds a worker to one physical bench.

A bench PC runs::

    dask worker tcp://SCHEDULER:8786 --nthreads 1 --resources "bench-probe-station-2=1" \\
        --preload xbarlab.sweep.bench --station stations/lab.toml [--spool DIR]

The resource name is ``bench-`` plus the station's ``[station] name`` as a slug (``xbarlab queue
submit`` prints it). Campaigns naming that station are routed by the scheduler only to this worker,
and its single unit of the resource lets one campaign run at a time. The campaign is re-validated
on the worker against the worker's own station file: its safety limits are the ones that count.
Logs are written to the spool folder and sent back to whoever collects them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from xbarlab.errors import ConfigError
from xbarlab.instruments.config import StationConfig, load_station
from xbarlab.sweep.run import bench_resource

ATTRIBUTE = "xbarlab_bench"


@dataclass(frozen=True)
class BenchBinding:
    """The station file and spool folder of the bench a worker drives."""

    station_path: Path
    station: StationConfig
    resource: str
    spool: Path


def bind(worker: Any, station: str, spool: str) -> BenchBinding:
    """Check the station file and the worker's resources; attach the binding to the worker."""
    config = load_station(station)
    if config.is_simulated:
        raise ConfigError(f"{station}: a simulated station needs no bench worker; any worker runs it")
    resource = bench_resource(config.name)
    have = dict(getattr(worker.state, "total_resources", None) or getattr(worker, "total_resources", {}) or {})
    if have.get(resource) != 1:
        raise ConfigError(f"{station}: start this worker with --resources \"{resource}=1\" (it has "
                          f"{have or 'no resources'}); one unit, so campaigns run one at a time")
    folder = Path(spool).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    binding = BenchBinding(Path(station).resolve(), config, resource, folder)
    setattr(worker, ATTRIBUTE, binding)
    return binding


@click.command()
@click.option("--station", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the station file of the bench this worker drives")
@click.option("--spool", default="xbarlab-queue", show_default=True, type=click.Path(file_okay=False),
              help="folder for the logs of queued campaigns")
def dask_setup(worker: Any, station: str, spool: str) -> None:
    """Dask preload entry point: bind the worker to its bench."""
    try:
        binding = bind(worker, station, spool)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"xbarlab: worker drives bench '{binding.station.name}' ({binding.resource}); logs in {binding.spool}")


def current_binding() -> BenchBinding | None:
    """The bench of the worker running the current task (None outside a bench worker)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return None
    return getattr(worker, ATTRIBUTE, None)
