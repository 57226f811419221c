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


def _entries(path: Path) -> list[tuple[str, bytes]]:
    if not path.exists():
        return []
    return list(pickle.loads(path.read_bytes()))  # noqa: S301 - our own checkpoint file


def save(bench: Any, path: str | Path, tag: str = "") -> None:
    """Write a checkpoint tagged ``tag`` atomically, keeping the previous one.

    Two are kept because the caller saves before it marks the step done in its log: after a
    kill in between, the newest checkpoint belongs to a step the log does not count as done,
    and :func:`load` falls back to the one before.
    """
    p = Path(path)
    entries = [e for e in _entries(p) if e[0] != tag][-1:] + [(tag, snapshot(bench))]
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def load(bench: Any, path: str | Path, tags: list[str] | None = None) -> str | None:
    """Restore the newest checkpoint whose tag is in ``tags`` (any tag if None); return its tag."""
    entries = _entries(Path(path))
    for tag, data in reversed(entries):
        if tags is None or tag in tags:
            restore(bench, data)
            return tag
    return None
