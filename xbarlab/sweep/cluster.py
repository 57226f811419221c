"""Connect to Dask: the embedded ``LocalCluster`` of worker processes, or a scheduler at an address."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from xbarlab.errors import ConfigError, XbarlabError


class ClusterError(XbarlabError):
    """The Dask scheduler could not be reached or the cluster could not start."""


def _need_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(f"sweeps and the bench queue need Dask distributed ({exc}); install it with: "
                          'pip install "xbarlab[cluster]"') from None
    return distributed


def default_workers() -> int:
    """One worker process per CPU this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


@contextmanager
def connect(scheduler: str | None = None, workers: int | None = None, *,
            resources: dict[str, float] | None = None, timeout: float = 10.0) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` (``tcp://host:8786``) or to a new LocalCluster.

    The LocalCluster has ``workers`` single-threaded worker processes (default: one per CPU);
    each point runs in a process of its own, so one point's simulated bench never shares a
    process with another's. The cluster and its processes end with the block.
    """
    distributed = _need_distributed()
    if scheduler is not None:
        if workers is not None:
            raise ConfigError("--workers sizes the embedded cluster; with --scheduler start workers with "
                              "`dask worker ADDRESS --nthreads 1`")
        try:
            client = distributed.Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = default_workers() if workers is None else workers
    if n < 1:
        raise ConfigError(f"--workers: expected at least 1 worker process, got {n}")
    try:
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.CRITICAL,
                                           resources=resources, preload=["xbarlab.sweep.worker_init"])
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot start the embedded Dask cluster: {exc}") from None
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()
