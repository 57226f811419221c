"""The logbook's on-disk layout (see docs/logbook.md): names, JSON helpers, file checks."""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from xbarlab.errors import LogbookError

FORMAT = "xbarlab-logbook"
FORMAT_VERSION = 3
#: format 3: each run records ``code_revision``, the revision of its step type's code (``Experiment.revision``);
#: replay re-derives only runs written at today's revision (runs without the attribute: revision 1)
#: format 2: the drivers confirm SMU replies (second readings and copies); replay of a format-1 log sends
#: the single-copy traffic of its time (``xbarlab.drivers.replies.single_copy_traffic``); also adds
#: ``outside_runs/<session>``, the instrument traffic of a session outside its runs (optional: readers
#: look for the group; version-1 logs have none, and appending to one adds it without changing the version)
#: Each session run also records its drivers' open-time traffic (``driver_traffic`` in its params: identity
#: check, status clear, output-off read-back); a session without it replays at revision 1.
RUNS = "runs"
OUTSIDE_RUNS = "outside_runs"

STR = h5py.string_dtype()
#: one row per committed step; its text (JSON: step_id, info, committed stream lengths) is inline in ``text``
#: when it fits, else in the ``step_text`` byte blob at text_offset/text_length
STEP_TEXT_INLINE = 480
STEP_DTYPE = np.dtype([("wall_time", "f8"), ("sim_time", "f8"), ("text", f"S{STEP_TEXT_INLINE}"),
                       ("text_offset", "u8"), ("text_length", "u4")])
LINK_BYTES = 32
#: one row per instrument exchange; its bytes are in ``transcript/bytes`` at offset/length
EVENT_DTYPE = np.dtype([("link", f"S{LINK_BYTES}"), ("code", "S1"), ("wall_time", "f8"), ("sim_time", "f8"),
                        ("offset", "u8"), ("length", "u4")])


def utc_now() -> str:
    """ISO 8601 UTC wall-clock timestamp."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan", "inf": JSON has no spelling for them
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def to_json(value: Any) -> str:
    """JSON text of parameters/metadata (numpy values become plain numbers and lists)."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # numpy values, paths, NaN: convert first
        return json.dumps(_plain(value), sort_keys=True)


def from_json(text: Any) -> Any:
    if isinstance(text, bytes):
        text = text.decode()
    return json.loads(text) if text else None


def group_name(run_id: str) -> str:
    """HDF5 group name of a run id ('/' is the HDF5 path separator and is escaped)."""
    if not run_id or run_id in (".", ".."):
        raise LogbookError(f"invalid run id {run_id!r}")
    return run_id.replace("%", "%25").replace("/", "%2F")


def check_log_file(path: str | Path) -> Path:
    """The path of an existing file that looks like HDF5, else one clear LogbookError."""
    p = Path(path)
    if not p.exists():
        raise LogbookError(f"{p}: no such log file")
    if p.is_dir():
        raise LogbookError(f"{p}: is a directory, not a log file")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise LogbookError(f"{p}: empty file (not an xbarlab log, or one that is just being created)")
    if head != b"\x89HDF\r\n\x1a\n":
        raise LogbookError(f"{p}: not an HDF5 file (no HDF5 signature); is this an xbarlab log?")
    return p


def check_is_logbook(f: h5py.File, path: Path) -> None:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT or RUNS not in f:
        raise LogbookError(f"{path}: an HDF5 file, but not an xbarlab logbook (no '{FORMAT}' format attribute)")
    version = int(f.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise LogbookError(f"{path}: logbook format {version} is newer than this xbarlab reads ({FORMAT_VERSION})")


# -- the structural-window lock --------------------------------------------------------------
# While a writer changes the file's structure (outside SWMR) it holds an exclusive Linux
# open-file-description lock on one byte far beyond the end of the file; readers take it
# shared for the duration of a snapshot. OFD locks belong to one open file, so HDF5 opening
# and closing the same file does not release them (unlike classic POSIX locks), and they
# are independent of the writer's flock. Where OFD locks do not exist, readers retry instead.
WINDOW_LOCK_OFFSET = 1 << 50
_OFD = getattr(__import__("fcntl"), "F_OFD_SETLK", None)


def window_lock(fd: int, exclusive: bool, wait: bool) -> bool:
    """Take (exclusive or shared) the window lock on ``fd``. Returns False if busy and not ``wait``."""
    import fcntl
    import struct

    if _OFD is None:
        return True
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    cmd = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
    try:
        fcntl.fcntl(fd, cmd, struct.pack("hhqqi4x", kind, 0, WINDOW_LOCK_OFFSET, 1, 0))
    except (BlockingIOError, PermissionError):
        return False
    except OSError:  # a file system without OFD locks
        return True
    return True


def window_unlock(fd: int) -> None:
    import fcntl
    import struct

    if _OFD is None:
        return
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_UNLCK, 0, WINDOW_LOCK_OFFSET, 1, 0))
    except OSError:
        pass
