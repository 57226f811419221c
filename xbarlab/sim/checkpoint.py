"""Checkpoint the state of a simulated bench, as a physical bench keeps its state across a crash.

A real crossbar keeps its conductances when the control computer crashes, and its
instruments keep running; the embedded simulator lives inside the crashed process. To
let a resumed campaign continue on the same array, the campaign runner saves the
simulated bench's state (device conductances and hidden state, every random generator,
the simulated clock, instrument counters) after each committed step and restores it
when the campaign resumes. The restored bench is bit-for-bit the bench as it was at the
end of the last committed step (whatever an interrupted step did to it is rolled back,
which a physical array could not do).

The file is an ``.npz`` archive read with ``allow_pickle=False``: numeric arrays plus one
JSON document (format name, version, the attribute tree with plain values). Nothing in it
can execute code when loaded; a file that is damaged, foreign or in the old pickle format
(xbarlab < format 2) raises :class:`CheckpointError` with one line naming the file.
"""

from __future__ import annotations

import base64
import io
import json
import keyword
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError

FORMAT = "xbarlab-sim-checkpoint"
VERSION = 2  # 1 was a pickle file (never loaded any more: unpickling can run code)
_META = "__meta__"
_SCALARS = (bool, int, float, str, bytes, type(None))
_PICKLE_MAGIC = (b"\x80",)  # protocol 2+ pickles start with PROTO
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ConfigError):
    """A simulator checkpoint is damaged, foreign, or in a format that is no longer loaded."""


# -- capture / restore of the attribute tree ------------------------------------------------
def _is_sim_object(v: Any) -> bool:
    mod = type(v).__module__ or ""
    return hasattr(v, "__dict__") and mod.startswith("xbarlab.") and not isinstance(v, type)


def _capture(obj: Any, seen: set[int], depth: int) -> dict[str, Any]:
    state: dict[str, Any] = {}
    seen.add(id(obj))
    for key, v in vars(obj).items():
        if key in ("clock", "_cache", "_lock", "faults") or key.startswith("__"):  # faults: the environment
            continue
        if isinstance(v, np.random.Generator):
            state[key] = ("rng", v.bit_generator.state)
        elif isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                continue
            state[key] = ("array", v.copy())
        elif isinstance(v, np.generic) or isinstance(v, _SCALARS):
            state[key] = ("value", v)
        elif depth > 0 and _is_sim_object(v) and id(v) not in seen:
            state[key] = ("object", _capture(v, seen, depth - 1))
    return state


def _restore(obj: Any, state: dict[str, Any], where: str) -> None:
    for key, (kind, value) in state.items():
        if not key.isidentifier() or keyword.iskeyword(key) or key.startswith("__") or not hasattr(obj, key):
            raise CheckpointError(f"{where}: attribute {key!r} does not exist on this simulated bench")
        current = getattr(obj, key)
        if kind == "rng":
            if not isinstance(current, np.random.Generator):
                raise CheckpointError(f"{where}.{key}: not a random generator on this simulated bench")
            try:
                current.bit_generator.state = value
            except (TypeError, ValueError, KeyError) as exc:
                raise CheckpointError(f"{where}.{key}: bad random generator state ({exc})") from None
        elif kind == "array":
            if isinstance(current, np.ndarray) and current.shape == value.shape and current.flags.writeable:
                current[...] = value
            else:
                object.__setattr__(obj, key, value.copy())
        elif kind == "value":
            if current is not value and current != value:
                object.__setattr__(obj, key, value)  # also frozen dataclasses (their fields never change)
        elif kind == "object":
            if not _is_sim_object(current):
                raise CheckpointError(f"{where}.{key}: not a simulator part on this simulated bench")
            _restore(current, value, f"{where}.{key}")
        else:
            raise CheckpointError(f"{where}.{key}: unknown entry kind {kind!r}")


def _parts(bench: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {"model": bench.model, "periphery": bench.periphery}
    for name, emulator in bench.emulators.items():
        parts[f"emulator:{name}"] = emulator
    return parts


def fingerprint(bench: Any) -> str:
    """How the bench was built (seed, array shape, device, instruments): a checkpoint only fits the same."""
    parts = {k: type(v).__name__ for k, v in _parts(bench).items()}
    desc = {"seed": int(getattr(bench, "seed", 0)), "shape": [int(bench.model.rows), int(bench.model.cols)],
            "device": type(getattr(bench.model, "device", None)).__name__, "parts": parts}
    return json.dumps(desc, sort_keys=True)


def snapshot(bench: Any) -> dict[str, Any]:
    """The bench's state: the simulated clock and an attribute tree of plain values and arrays."""
    seen: set[int] = set()
    return {"clock": float(bench.clock.now), "bench": fingerprint(bench),
            "parts": {k: _capture(v, seen, 3) for k, v in _parts(bench).items()}}


def restore(bench: Any, state: dict[str, Any]) -> None:
    """Put the bench back in a state taken by :func:`snapshot` on a bench built from the same station."""
    parts = _parts(bench)
    if state.get("bench") != fingerprint(bench) or not isinstance(state.get("parts"), dict) \
            or set(parts) != set(state["parts"]):
        raise CheckpointError(f"the checkpoint was taken on a differently built simulated bench "
                              f"({state.get('bench')}; this bench: {fingerprint(bench)})")
    for key, part_state in state["parts"].items():
        _restore(parts[key], part_state, key)
    bench.clock._now = float(state["clock"])
    bench.model.invalidate()


# -- encoding: JSON for the tree, npz members for arrays ----------------------------------------
class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, a: np.ndarray) -> dict[str, Any]:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(a)
        return {"t": "array", "k": key}

    def plain(self, v: Any) -> Any:
        """A plain value (also the nested dicts/lists of a bit generator's state) as tagged JSON."""
        if isinstance(v, np.ndarray):
            return self.array(v)
        if isinstance(v, np.generic):
            return {"t": "scalar", "k": self.array(np.asarray(v))["k"]}
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return {"t": "json", "v": v}
        if isinstance(v, int):
            return {"t": "int", "v": str(v)}  # arbitrary size (PCG64 state is 128 bits)
        if isinstance(v, float):
            return {"t": "float", "v": repr(v)}  # exact, also nan/inf
        if isinstance(v, bytes):
            return {"t": "bytes", "v": base64.b64encode(v).decode("ascii")}
        if isinstance(v, dict):
            return {"t": "dict", "v": {str(k): self.plain(x) for k, x in v.items()}}
        if isinstance(v, list | tuple):
            return {"t": "list", "v": [self.plain(x) for x in v]}
        raise TypeError(f"cannot checkpoint a {type(v).__name__}")

    def tree(self, state: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, (kind, value) in state.items():
            if kind == "object":
                out[key] = {"kind": kind, "v": self.tree(value)}
            elif kind == "array":
                out[key] = {"kind": kind, "v": self.array(value)}
            else:
                out[key] = {"kind": kind, "v": self.plain(value)}
        return out


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray], where: str) -> None:
        self.arrays = arrays
        self.where = where

    def bad(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.where}: damaged simulator checkpoint ({what})")

    def array(self, ref: Any) -> np.ndarray:
        if not isinstance(ref, dict) or ref.get("t") not in ("array", "scalar") or ref.get("k") not in self.arrays:
            raise self.bad("an array entry refers to no stored array")
        return self.arrays[ref["k"]]

    def plain(self, v: Any) -> Any:
        if not isinstance(v, dict) or "t" not in v:
            raise self.bad("an entry without a type")
        t = v["t"]
        try:
            if t == "array":
                return self.array(v).copy()
            if t == "scalar":
                return self.array(v)[()]
            if t == "json" and (v["v"] is None or isinstance(v["v"], bool | str)):
                return v["v"]
            if t == "int":
                return int(v["v"])
            if t == "float":
                return float(v["v"])
            if t == "bytes":
                return base64.b64decode(v["v"], validate=True)
            if t == "dict" and isinstance(v["v"], dict):
                return {k: self.plain(x) for k, x in v["v"].items()}
            if t == "list" and isinstance(v["v"], list):
                return [self.plain(x) for x in v["v"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise self.bad(f"bad {t} entry: {exc}") from None
        raise self.bad(f"unknown entry type {t!r}")

    def tree(self, node: Any) -> dict[str, Any]:
        if not isinstance(node, dict):
            raise self.bad("an object entry is not a table")
        out: dict[str, Any] = {}
        for key, entry in node.items():
            if not isinstance(entry, dict) or entry.get("kind") not in ("object", "array", "rng", "value"):
                raise self.bad(f"entry {key!r} has no known kind")
            kind = entry["kind"]
            if kind == "object":
                out[key] = (kind, self.tree(entry.get("v")))
            elif kind == "array":
                out[key] = (kind, self.array(entry.get("v")).copy())
            else:
                out[key] = (kind, self.plain(entry.get("v")))
        return out


def _encode(entries: list[tuple[str, dict[str, Any]]]) -> bytes:
    enc = _Encoder()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "entries": [
            {"tag": tag, "clock": repr(float(state["clock"])), "bench": state["bench"],
             "parts": {k: enc.tree(v) for k, v in state["parts"].items()}}
            for tag, state in entries
        ],
    }
    buf = io.BytesIO()
    np.savez(buf, **{_META: np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}, **enc.arrays)
    return buf.getvalue()


def read_entries(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """The (tag, state) checkpoints stored in ``path``, oldest first ([] when there is no file).

    Never unpickles: a damaged, foreign or old-format (pickle) file raises CheckpointError.
    """
    p = Path(path)
    if not p.exists():
        return []
    where = str(p)
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head[:1] in _PICKLE_MAGIC:
        raise CheckpointError(f"{where}: simulator checkpoint in the old pickle format, which is never loaded "
                              "(unpickling a file can run code); delete it to resume on a freshly built "
                              "simulated bench")
    if head != _ZIP_MAGIC:
        raise CheckpointError(f"{where}: not an xbarlab simulator checkpoint")
    try:
        with np.load(p, allow_pickle=False) as npz:
            if _META not in npz.files:
                raise CheckpointError(f"{where}: not an xbarlab simulator checkpoint (no {_META} member)")
            arrays = {k: npz[k] for k in npz.files}
    except CheckpointError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise CheckpointError(f"{where}: damaged simulator checkpoint ({exc})") from None
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{where}: damaged simulator checkpoint ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not an xbarlab simulator checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{where}: simulator checkpoint format version {meta.get('version')!r}; "
                              f"this xbarlab reads version {VERSION}")
    dec = _Decoder(arrays, where)
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(meta.get("entries"), list):
        raise dec.bad("no list of entries")
    for e in meta["entries"]:
        if not isinstance(e, dict) or not isinstance(e.get("tag"), str) or not isinstance(e.get("parts"), dict):
            raise dec.bad("an entry without tag or parts")
        try:
            clock = float(e.get("clock"))
        except (TypeError, ValueError):
            raise dec.bad("an entry without a clock") from None
        parts = {k: dec.tree(v) for k, v in e["parts"].items()}
        out.append((e["tag"], {"clock": clock, "bench": e.get("bench"), "parts": parts}))
    return out


def save(bench: Any, path: str | Path, tag: str = "") -> None:
    """Write a checkpoint tagged ``tag`` atomically, keeping the previous one.

    Two are kept because the caller saves before it marks the step done in its log: after a
    kill in between, the newest checkpoint belongs to a step the log does not count as done,
    and :func:`load` falls back to the one before.
    """
    p = Path(path)
    entries = [e for e in read_entries(p) if e[0] != tag][-1:] + [(tag, snapshot(bench))]
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(_encode(entries))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def select(entries: list[tuple[str, dict[str, Any]]], tags: list[str] | None) -> tuple[str, dict[str, Any]] | None:
    """The newest entry whose tag is in ``tags`` (any tag if None)."""
    for tag, state in reversed(entries):
        if tags is None or tag in tags:
            return tag, state
    return None


def load(bench: Any, path: str | Path, tags: list[str] | None = None) -> str | None:
    """Restore the newest checkpoint whose tag is in ``tags`` (any tag if None); return its tag."""
    chosen = select(read_entries(path), tags)
    if chosen is None:
        return None
    try:
        restore(bench, chosen[1])
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: the checkpoint does not fit this simulated bench ({exc})") from None
    return chosen[0]
