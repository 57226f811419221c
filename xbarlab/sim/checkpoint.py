"""Checkpoint the state of a simulated bench, as a physical bench keeps its state across a crash.

A real crossbar keeps its conductances when the control computer crashes, and its
instruments keep running; the embedded simulator lives inside the crashed process. To
let a resumed campaign continue on the same array, the campaign runner saves the
simulated bench's state (device conductances and hidden state, every random generator,
the simulated clock, instrument counters) after each committed step and restores it
when the campaign resumes. The restored bench is bit-for-bit the bench as it was at the
end of the last committed step (whatever an interrupted step did to it is rolled back,
which a physical array could not do).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

_SCALARS = (bool, int, float, str, bytes, type(None))


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
            state[key] = ("array", v.copy())
        elif isinstance(v, np.generic) or isinstance(v, _SCALARS):
            state[key] = ("value", v)
        elif depth > 0 and _is_sim_object(v) and id(v) not in seen:
            state[key] = ("object", _capture(v, seen, depth - 1))
    return state


def _restore(obj: Any, state: dict[str, Any]) -> None:
    for key, (kind, value) in state.items():
        if kind == "rng":
            getattr(obj, key).bit_generator.state = value
        elif kind == "array":
            current = getattr(obj, key, None)
            if isinstance(current, np.ndarray) and current.shape == value.shape and current.flags.writeable:
                current[...] = value
            else:
                object.__setattr__(obj, key, value.copy())
        elif kind == "value":
            if getattr(obj, key, None) is not value and getattr(obj, key, None) != value:
                object.__setattr__(obj, key, value)  # also frozen dataclasses (their fields never change)
        else:
            _restore(getattr(obj, key), value)


def _parts(bench: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {"model": bench.model, "periphery": bench.periphery}
    for name, emulator in bench.emulators.items():
        parts[f"emulator:{name}"] = emulator
    return parts


def snapshot(bench: Any) -> bytes:
    """The bench's state as bytes."""
    seen: set[int] = set()
    state = {"clock": bench.clock.now, "parts": {k: _capture(v, seen, 3) for k, v in _parts(bench).items()}}
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def restore(bench: Any, data: bytes) -> None:
    """Put the bench back in a state taken by :func:`snapshot` on a bench built from the same station."""
    state = pickle.loads(data)  # noqa: S301 - our own checkpoint file
    parts = _parts(bench)
    if set(parts) != set(state["parts"]):
        raise ValueError("the checkpoint was taken on a differently built simulated bench")
    for key, part_state in state["parts"].items():
        _restore(parts[key], part_state)
    bench.clock._now = float(state["clock"])
    bench.model.invalidate()


def save(bench: Any, path: str | Path) -> None:
    """Write a checkpoint atomically (a kill leaves the previous one intact)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(snapshot(bench))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def load(bench: Any, path: str | Path) -> bool:
    """Restore from ``path`` if it exists. Returns whether a checkpoint was applied."""
    p = Path(path)
    if not p.exists():
        return False
    restore(bench, p.read_bytes())
    return True
