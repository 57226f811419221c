"""Preload of the embedded cluster's worker processes: Ctrl-C is the client's to handle.

A terminal's Ctrl-C reaches every process of the foreground group, the worker processes too;
they would print KeyboardInterrupt tracebacks while the client is already stopping the sweep
(cancelling its points and closing the cluster, which ends them). So they ignore SIGINT.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    """Ignore SIGINT in this worker process (called by Dask in the process's main thread)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
