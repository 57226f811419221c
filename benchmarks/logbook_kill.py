"""SIGKILL a process writing a logbook at many random points and count the files left unreadable.

Each trial forks a writer process that logs a deterministic mix of structural changes (new runs,
new streams, calibration records, finished runs) and committed steps, and reports each structural
change before it starts and each operation after it returned. It is ended in one of two ways:

* ``uniform``: the parent sends SIGKILL at a random time (0.05-1.5 s) of the writer's life;
* ``aim``: inside a randomly chosen structural change (one of the first 30), a high-resolution
  timer ends the writer 0-5 ms after the change started; SIGALRM has no handler, so the kernel
  ends the process on the spot, as SIGKILL does (no Python code, atexit or HDF5 close runs).
  This lands kills inside the short non-SWMR windows that random kills rarely hit.

Then the parent checks the file as a user would:

* ``unopenable``: ``LogReader`` cannot list the runs or read a stream, steps or calibrations;
* ``lost``: a step the writer had seen committed is missing, or a row differs from what was
  written (every value is a known function of run, stream and row);
* ``append_failed``: ``Logbook.open_append`` (``xbarlab run --resume``) fails, or the data read
  differently after a run was appended.

``--load N`` adds N busy-looping processes for the duration (on top of whatever else runs).

Usage: python benchmarks/logbook_kill.py [--quick] [--kills N] [--seed S] [--load N] [--mode aim|uniform|both]
Last line: one JSON object with the counts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def writer(path: str, seed: int, out: int, aim: tuple[int, float] | None) -> None:
    """The writing process (forked): logs a mix of structural changes and commits for ever.

    ``aim = (k, delay)``: a high-resolution timer ends the process ``delay`` s after it starts the k-th
    structural change; SIGALRM has no handler, so the kernel ends the process on the spot (no Python
    code, no atexit, no HDF5 close runs), exactly as SIGKILL does."""
    import numpy as np

    from xbarlab.logbook import Logbook

    structural = 0

    def say(*words: object) -> None:
        nonlocal structural
        os.write(out, (" ".join(map(str, words)) + "\n").encode())
        if words[0] == "S":
            structural += 1
            if aim is not None and structural == aim[0]:
                signal.setitimer(signal.ITIMER_REAL, max(aim[1], 1e-6))

    rng = np.random.default_rng(seed)
    say("S", "create")
    book = Logbook.create(path)
    say("D", "create")
    run_no = 0
    while True:
        run_no += 1
        rid = f"r{run_no}"
        say("S", "start", rid)
        run = book.start_run("kill", {"n": run_no}, run_id=rid)
        say("D", "start", rid)
        streams: dict[str, list] = {}
        for step in range(int(rng.integers(1, 6))):
            if len(streams) < 4 and (not streams or rng.random() < 0.4):
                name = f"s{len(streams)}"
                streams[name] = [run.stream(name, columns=["a", "b"], units=["V", "A"]), 0]
                say("S", "stream", rid, name)  # created at the next commit
            for st in streams.values():
                k = int(rng.integers(1, 40))
                rows = np.arange(st[1], st[1] + k, dtype=float)
                st[0].append(np.stack([run_no * 1e6 + rows, -rows], axis=1))
                st[1] += k
            run.record_transcript("smu1", "w", b"MEAS?" * int(rng.integers(1, 20)), float(step))
            run.commit_step(f"k{step}", {"lengths": {n: s[1] for n, s in streams.items()}})
            say("D", "commit", rid, step, *[f"{n}={s[1]}" for n, s in streams.items()])
            if rng.random() < 0.3:
                say("S", "calibration", rid, step)
                run.add_calibration(f"cal{step}", "gain", {"gain": np.full(16, float(step))}, {"step": step})
                say("D", "calibration", rid, step)
        say("S", "finish", rid)
        run.finish("completed")
        say("D", "finish", rid)


def _expected(run_no: int, n: int) -> Any:
    import numpy as np

    rows = np.arange(n, dtype=float)
    return np.stack([run_no * 1e6 + rows, -rows], axis=1)


def check(path: Path, seen: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Read the killed writer's log as a user would, then resume it (``open_append``) and read it again."""
    import numpy as np

    from xbarlab.logbook import Logbook, LogReader

    out: dict[str, Any] = {"unopenable": 0, "lost": 0, "append_failed": 0, "recovered": "", "error": ""}
    try:
        r = LogReader(path)
        runs = {i["run_id"]: i for i in r.runs()}
        got = {rid: {n: r.stream(rid, n).data for n in r.stream_names(rid)} for rid in runs}
        for rid in runs:
            r.steps(rid)
            r.calibrations(rid)
        out["recovered"] = "; ".join(getattr(r, "recovered", []))
    except Exception as exc:  # noqa: BLE001 - counted, and the file kept
        out.update(unopenable=1, error=f"{type(exc).__name__}: {exc}")
        return out
    for rid, lengths in seen.items():  # every step the writer saw committed, with the values written
        for name, n in lengths.items():
            data = got.get(rid, {}).get(name)
            if data is None or len(data) < n or not np.array_equal(data[:n], _expected(int(rid[1:]), n)):
                out["lost"] = 1
                out["error"] = (f"run {rid} stream {name}: {n} committed rows expected, "
                                f"got {'none' if data is None else len(data)} (or different values)")
    for rid, streams in got.items():  # nothing torn is returned either
        for name, data in streams.items():
            if data.shape[1:] != (2,) or not np.array_equal(data, _expected(int(rid[1:]), len(data))):
                out["lost"] = 1
                out["error"] = f"run {rid} stream {name}: rows differ from what was written"
    try:
        with Logbook.open_append(path) as book:
            book.start_run("after", run_id="after").finish("completed")
        r = LogReader(path)
        assert r.runs()[-1]["status"] == "completed"
        for rid in runs:
            for n in r.stream_names(rid):
                assert np.array_equal(r.stream(rid, n).data, got[rid][n])
    except Exception as exc:  # noqa: BLE001 - counted, and the file kept
        out["append_failed"] = 1
        out["error"] = out["error"] or f"append: {type(exc).__name__}: {exc}"
    return out


def _spin() -> None:
    while True:
        pass


def trial(workdir: Path, k: int, rng: random.Random, mode: str, keep: Path | None) -> dict[str, Any]:
    """One writer killed at a random point, then checked. Returns the check's counts plus the kill point."""
    path = workdir / f"kill-{k}.h5"
    aim = (rng.randint(1, 30), rng.uniform(0.0, 0.005)) if mode == "aim" else None
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer
        os.close(rfd)
        try:
            writer(str(path), k, wfd, aim)
        finally:
            os._exit(1)
    os.close(wfd)
    seen: dict[str, dict[str, int]] = {}
    deadline = time.monotonic() + rng.uniform(0.05, 1.5)
    where = ""
    with os.fdopen(rfd) as lines:
        for line in lines:
            words = line.split()
            if words[:2] == ["D", "commit"]:
                seen[words[2]] = {w.split("=")[0]: int(w.split("=")[1]) for w in words[4:]}
            if words[0] == "S":
                where = " ".join(words[1:3])
            if aim is None and time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
    _, status = os.waitpid(pid, 0)
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    if not path.exists():
        return {"skipped": 1, "where": where, "signal": signum}
    res = check(path, seen)
    res.update(where=where, skipped=0, signal=signum)
    if keep is not None and (res["unopenable"] or res["lost"] or res["append_failed"]):
        keep.mkdir(parents=True, exist_ok=True)
        os.replace(path, keep / path.name)
    else:
        path.unlink()
    for extra in workdir.glob(f"*kill-{k}.h5*"):
        extra.unlink()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 kills")
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--load", type=int, default=1, help="busy-looping processes added while the trials run")
    ap.add_argument("--mode", choices=["aim", "uniform", "both"], default="both")
    ap.add_argument("--keep", type=Path, help="folder to keep the files that failed a check in")
    args = ap.parse_args()
    kills = 20 if args.quick else args.kills
    rng = random.Random(args.seed)
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.load)]
    for s in spinners:
        s.start()
    totals = {"kills": 0, "unopenable": 0, "lost": 0, "append_failed": 0}
    failures = []
    t0 = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="xbarlab-kill-") as tmp:
            workdir = Path(tmp) / "logs"
            workdir.mkdir()
            for k in range(kills):
                mode = args.mode if args.mode != "both" else ("aim" if k % 4 else "uniform")
                res = trial(workdir, k, rng, mode, args.keep)
                if res.get("skipped"):
                    continue
                totals["kills"] += 1
                for key in ("unopenable", "lost", "append_failed"):
                    totals[key] += int(res.get(key, 0))
                if res.get("unopenable") or res.get("lost") or res.get("append_failed"):
                    failures.append(f"kill {k} ({mode}, after '{res['where']}'): {res.get('error', '')}")
                    print(failures[-1], flush=True)
                if k % 20 == 19:
                    print(f"{k + 1} kills: {totals}", flush=True)
    finally:
        for s in spinners:
            s.terminate()
    totals.update(seconds=round(time.monotonic() - t0, 1), load_processes=args.load, seed=args.seed,
                  cpus=os.cpu_count(), loadavg_1min=os.getloadavg()[0], failures=failures[:10])
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
