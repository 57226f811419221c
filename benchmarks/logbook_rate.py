"""Sustained logging rate through the logbook against raw h5py appends of the same data.

Two workloads, each timed against its raw-h5py reference in the same process,
interleaved, several repetitions, medians:

* single-point measurements (one row of 4 float64: V, A, s, compliance flag), committed
  as steps of ``--step-rows`` rows (default 100): the logbook buffers the rows and makes
  them durable at each commit (append + step record + flush, in SWMR mode). Reference:
  ``h5py`` resize + write of each row into a chunked dataset, flushed after every
  ``--step-rows`` rows — the same durability. Also reported: a commit after every row
  against a flush after every row.
* 64×64 whole-array reads (float64, 32 KiB each), one committed step per read, against
  resize + write + flush of each read.

Crash safety is kept in every logbook configuration measured (see docs/logbook.md).

Usage: python benchmarks/logbook_rate.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from xbarlab.logbook import Logbook

# Sustained rates: the clock runs from the first appended row to the last flush/commit;
# creating and closing the files is set-up, not logging (both sides alike).


def logbook_points(path: Path, rows: np.ndarray, step_rows: int) -> float:
    with Logbook.create(path) as book:
        run = book.start_run("points")
        s = run.stream("iv", columns=["voltage", "current", "time", "compliance"], units=["V", "A", "s", "1"])
        t = time.perf_counter()
        for k, row in enumerate(rows, 1):
            s.append(row)
            if k % step_rows == 0:
                run.commit_step(f"s{k}")
        dt = time.perf_counter() - t
        run.finish("completed")
    return dt


def raw_points(path: Path, rows: np.ndarray, step_rows: int) -> float:
    with h5py.File(path, "w", libver="latest") as f:
        ds = f.create_dataset("iv", shape=(0, 4), maxshape=(None, 4), chunks=(4096, 4), dtype="f8")
        t = time.perf_counter()
        for k, row in enumerate(rows, 1):
            ds.resize(k, axis=0)
            ds[k - 1] = row
            if k % step_rows == 0:
                f.flush()
        return time.perf_counter() - t


def logbook_arrays(path: Path, reads: np.ndarray) -> float:
    with Logbook.create(path) as book:
        run = book.start_run("arrays")
        s = run.stream("conductance", shape=reads.shape[1:], units="S")
        t = time.perf_counter()
        for k, g in enumerate(reads):
            s.append(g)
            run.commit_step(f"read{k}")
        dt = time.perf_counter() - t
        run.finish("completed")
    return dt


def raw_arrays(path: Path, reads: np.ndarray) -> float:
    with h5py.File(path, "w", libver="latest") as f:
        ds = f.create_dataset("g", shape=(0, *reads.shape[1:]), maxshape=(None, *reads.shape[1:]),
                              chunks=(8, *reads.shape[1:]), dtype="f8")
        t = time.perf_counter()
        for k, g in enumerate(reads, 1):
            ds.resize(k, axis=0)
            ds[k - 1] = g
            f.flush()
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rows and repetitions")
    ap.add_argument("--step-rows", type=int, default=100, help="rows per committed step (single points)")
    args = ap.parse_args()
    n_points, n_arrays, reps = (4000, 100, 3) if args.quick else (20000, 400, 7)
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.uniform(-1, 1, n_points), rng.normal(0, 1e-6, n_points),
                            np.arange(n_points) * 1e-3, np.zeros(n_points)])
    reads = rng.uniform(1e-6, 1e-4, (n_arrays, 64, 64))
    t: dict[str, list[float]] = {k: [] for k in ("lb_pts", "raw_pts", "lb_row", "raw_row", "lb_arr", "raw_arr")}
    n_row = n_points // 4
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for r in range(reps):
            t["raw_pts"].append(raw_points(d / f"rp{r}.h5", rows, args.step_rows))
            t["lb_pts"].append(logbook_points(d / f"lp{r}.h5", rows, args.step_rows))
            t["raw_row"].append(raw_points(d / f"rr{r}.h5", rows[:n_row], 1))
            t["lb_row"].append(logbook_points(d / f"lr{r}.h5", rows[:n_row], 1))
            t["raw_arr"].append(raw_arrays(d / f"ra{r}.h5", reads))
            t["lb_arr"].append(logbook_arrays(d / f"la{r}.h5", reads))
    med = {k: statistics.median(v) for k, v in t.items()}
    lb_pts, raw_pts = n_points / med["lb_pts"], n_points / med["raw_pts"]
    lb_row, raw_row = n_row / med["lb_row"], n_row / med["raw_row"]
    lb_arr, raw_arr = n_arrays / med["lb_arr"], n_arrays / med["raw_arr"]
    print(f"single points, commit every {args.step_rows} rows: logbook {lb_pts:,.0f} rows/s, raw h5py "
          f"{raw_pts:,.0f} rows/s")
    print(f"single points, commit every row:  logbook {lb_row:,.0f} rows/s, raw h5py (flush per row) "
          f"{raw_row:,.0f} rows/s")
    print(f"64x64 array reads, commit each:   logbook {lb_arr:,.1f} reads/s, raw h5py {raw_arr:,.1f} reads/s")
    # headline: the like-for-like case (every row durable on its own: commit vs flush per row)
    result = {
        "logbook_rows_per_s": round(lb_row, 1), "raw_h5py_rows_per_s": round(raw_row, 1),
        "ratio": round(lb_row / raw_row, 3),
        "batched_commit": {"step_rows": args.step_rows, "logbook_rows_per_s": round(lb_pts, 1),
                           "raw_h5py_rows_per_s": round(raw_pts, 1), "ratio": round(lb_pts / raw_pts, 3)},
        "array_64x64": {"logbook_reads_per_s": round(lb_arr, 2), "raw_h5py_reads_per_s": round(raw_arr, 2),
                        "ratio": round(lb_arr / raw_arr, 3)},
        "repetitions": reps, "crash_safe": True,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
